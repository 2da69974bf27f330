//! Capture parsing (pcap, pcapng, gzip, every link type) on any bytes: frames or an error, never a
//! panic, in both the forgiving and the strict mode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mining_sensor::replay::{FileReport, parse_capture};

fuzz_target!(|data: &[u8]| {
    let _ = parse_capture(
        "fuzz.pcap",
        data.to_vec(),
        false,
        &mut FileReport::default(),
    );
    let _ = parse_capture("fuzz.pcap", data.to_vec(), true, &mut FileReport::default());
});
