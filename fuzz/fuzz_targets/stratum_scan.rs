//! The Stratum scanner (the code the XDP program runs, compiled for the host) on any payload: no
//! panic, and the token-at-a-time scan agrees with scanning byte by byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sensor_common::stratum::{Scanner, WINDOW, scan_slice};

fuzz_target!(|data: &[u8]| {
    let fast = scan_slice(data);
    let mut s = Scanner::new();
    let mut slow = 0;
    for &b in data.iter().take(WINDOW) {
        slow = s.step(b);
        if slow != 0 {
            break;
        }
    }
    if slow == 0 {
        slow = s.finish();
    }
    assert_eq!(fast.map(|d| d as u8 + 1).unwrap_or(0), slow);
});
