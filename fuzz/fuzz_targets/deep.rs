//! The userspace deep Stratum parser on any payload: no panic, label values stay within their
//! bounds, and every login it finds can be hashed and is redacted from the debug output. The
//! same for what the WebSocket reading makes of the payload (never longer than it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mining_sensor::inspect::{
    deep::{inspect, login_hash},
    websocket,
};

fuzz_target!(|data: &[u8]| {
    let unwrapped = websocket::messages(data);
    if let Some(m) = &unwrapped {
        // A line end per whole frame, each frame at least 2 header bytes: never longer.
        assert!(m.len() <= data.len());
    }
    for m in inspect(data)
        .into_iter()
        .chain(unwrapped.as_deref().map(inspect).unwrap_or_default())
    {
        if let Some(a) = &m.agent {
            assert!(!a.family.is_empty() && !a.family.bytes().any(|b| b.is_ascii_uppercase()));
            if let Some(v) = &a.version {
                assert!(v.len() <= 32);
                assert!(
                    v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                );
            }
        }
        if let Some(login) = &m.login {
            assert_eq!(login_hash(&[0x5a; 32], login).len(), 16);
            assert!(format!("{m:?}").contains(r#"login: Some("<redacted>")"#));
        }
    }
});
