//! The Stratum scanner (the code the XDP program runs, compiled for the host) on any payload: no
//! panic, and the token-at-a-time scan agrees with scanning byte by byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sensor_common::stratum::{scan_byte_wise, scan_slice};

fuzz_target!(|data: &[u8]| {
    let fast = scan_slice(data);
    let slow = scan_byte_wise(data, data.len());
    assert_eq!(fast.map(|d| d as u8 + 1).unwrap_or(0), slow);
});
