//! The joiner of messages split over TCP segments (`inspect::stream`), fed any run of segments in
//! any order, sent again or after gaps: no panic; what it returns holds at least the segment, what
//! the last join kept is the end of what it returned, what it dropped at a gap is within the
//! bound of a tail and handed back once, what it keeps stays within its bound, and once all of
//! it has aged past `MAX_AGE` nothing is kept.
#![no_main]

use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use libfuzzer_sys::fuzz_target;
use mining_sensor::inspect::stream::{Direction, MAX_AGE, MAX_BYTES, MAX_TAIL, Streams};

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let mut s = Streams::default();
    let mut rest = data;
    let mut at = t0;
    // A segment: its direction (the low two bits of the first byte: four) and whether it was
    // captured whole (bit 2 clear), its sequence number (two bytes, little-endian, from 1,000),
    // its length (one byte) and its bytes.
    while let [d, s0, s1, n, tail @ ..] = rest {
        let (payload, after) = tail.split_at((*n as usize).min(tail.len()));
        rest = after;
        let dir: Direction = (
            Ipv4Addr::new(198, 18, 0, 1).into(),
            40000 + u16::from(d & 3),
            Ipv4Addr::new(198, 18, 0, 2).into(),
            3333,
        );
        let seq = 1000 + u32::from(u16::from_le_bytes([*s0, *s1]));
        at += Duration::from_millis(1);
        let out = s.join(dir, seq, payload, d & 4 == 0, at);
        assert!(out.len() >= payload.len());
        assert!(s.last_kept() <= out.len());
        assert!(s.bytes() <= MAX_BYTES);
        if let Some(cut) = s.take_dropped() {
            assert!(!cut.is_empty() && cut.len() <= MAX_TAIL);
            assert!(s.take_dropped().is_none());
        }
    }
    s.expire(at + MAX_AGE + Duration::from_secs(1));
    assert_eq!(s.bytes(), 0);
});
