//! The readers of WebSocket messages that span frames or segments, on any bytes cut into segments
//! at the points the input's first byte picks: compressed messages (permessage-deflate): no
//! panic, what comes out is text (UTF-8 without a NUL byte, a line per message), no message
//! inflates past its bound, and the inflaters stay within theirs; messages sent in several
//! frames (`fragments`): no panic, no joined message past its bound, the open ones within theirs;
//! compressed messages joined from fragments inflate to text, or to nothing.
#![no_main]

use std::{
    net::{IpAddr, Ipv4Addr},
    time::{Duration, Instant},
};

use libfuzzer_sys::fuzz_target;
use mining_sensor::inspect::{
    deflate::{INFLATER_BYTES, Inflaters, MAX_DIRECTIONS, MAX_MESSAGE_BYTES},
    fragments::{self, Fragments},
};

fuzz_target!(|data: &[u8]| {
    let Some((&cuts, data)) = data.split_first() else {
        return;
    };
    let a: IpAddr = Ipv4Addr::new(198, 18, 0, 1).into();
    let b: IpAddr = Ipv4Addr::new(198, 18, 0, 2).into();
    let t = Instant::now();
    let mut i = Inflaters::default();
    // Segments of the input, cut every `cuts % 64 + 1` x 17 bytes, in two directions in turn,
    // each direction's sequence numbers consecutive; then the whole input as one segment.
    let step = (cuts as usize % 64 + 1) * 17;
    let mut seq = [1u32, 1u32];
    let mut f = Fragments::default();
    let mut joined = Inflaters::default();
    for (n, seg) in data.chunks(step).enumerate() {
        let d = n % 2;
        let dir = if d == 0 { (a, 40000, b, 8181) } else { (b, 8181, a, 40000) };
        let at = t + Duration::from_millis(n as u64);
        check(i.messages(dir, seq[d], seg, true, at), seg);
        // A joined message is at most its bound; a whole text frame at most its segment.
        if let Some(out) = f.messages(dir, seq[d], seg, true, at) {
            assert!(out.ends_with(b"\n"));
            for line in out.split(|&b| b == b'\n') {
                assert!(line.len() <= fragments::MAX_MESSAGE_BYTES.max(seg.len()));
            }
        }
        assert!(f.bytes() <= 2 * (fragments::MAX_MESSAGE_BYTES + seg.len()));
        // A compressed message joined from fragments: at most the joined bound, inflated (a
        // second set of inflaters, so that the segments' own stay as they were) to text.
        for m in f.take_deflated() {
            assert!(m.data.len() <= fragments::MAX_MESSAGE_BYTES + seg.len());
            let len = m.data.len();
            let out = joined.joined(dir, m.span, m.data, at).map(|mut o| {
                o.push(b'\n');
                o
            });
            check(out, &vec![0; len + 2]);
        }
        seq[d] = seq[d].wrapping_add(seg.len() as u32);
    }
    check(i.messages((a, 40001, b, 8181), 7, data, cuts & 1 == 0, t), data);
    for i in [&i, &joined] {
        assert!(i.held() <= MAX_DIRECTIONS);
        assert_eq!(i.bytes(), i.held() * INFLATER_BYTES);
    }
});

fn check(out: Option<Vec<u8>>, input: &[u8]) {
    let Some(out) = out else {
        return;
    };
    assert!(!out.contains(&0));
    assert!(std::str::from_utf8(&out).is_ok());
    // Each message at most MAX_MESSAGE_BYTES and a line end; a frame at least 2 bytes.
    assert!(out.len() <= (input.len() / 2 + 1) * (MAX_MESSAGE_BYTES + 1));
}
