//! Configuration parsing on any text: an error or a configuration, never a panic; a valid one
//! keeps its invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mining_sensor::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = Config::parse(text, "fuzz.toml") {
        assert!(cfg.ranges.len() <= sensor_common::MAX_RANGES);
        for r in &cfg.ranges {
            assert!(!r.name.is_empty() && r.name != "unwatched");
            for n in &r.cidrs {
                assert_eq!(*n, n.trunc());
            }
        }
        mining_sensor::bpf::ranges::build(
            cfg.ranges
                .iter()
                .enumerate()
                .map(|(i, r)| (i, r.cidrs.as_slice())),
        );
    }
});
