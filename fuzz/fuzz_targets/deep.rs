//! The userspace deep Stratum parser on any payload: no panic, label values stay within their
//! bounds, and every login it finds can be hashed and is redacted from the debug output.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mining_sensor::inspect::deep::{inspect, login_hash};

fuzz_target!(|data: &[u8]| {
    for m in inspect(data) {
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
