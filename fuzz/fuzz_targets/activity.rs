//! What the activity readers make of any payload: no panic; every difficulty a share can count at
//! is a finite number of at least one hash; a reported rate is finite and not negative; the ledger
//! fed the signals in order resolves no more shares than were submitted.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use mining_sensor::{
    activity::{
        ledger::Ledger,
        wire::{Signal, signals},
    },
    inspect::deep::read,
};

fuzz_target!(|data: &[u8]| {
    let mut ledger = Ledger::new();
    let (mut submitted, mut resolved) = (0usize, 0usize);
    let mut overflow = Vec::new();
    for (i, obj) in read(data).1.iter().enumerate() {
        let now = Duration::from_secs(i as u64);
        for s in signals(obj) {
            match s {
                Signal::Submit(share) => {
                    if let Some(c) = ledger.submit(&0u8, share, now, &mut overflow) {
                        submitted += 1;
                        assert!(c.hashes.is_none_or(|h| h.is_finite() && h >= 1.0));
                    }
                }
                Signal::Job { job, hashes } => {
                    assert!(hashes.is_none_or(|h| h.is_finite() && h >= 1.0));
                    ledger.job(&0, &job, hashes);
                }
                Signal::Difficulty(h) => {
                    assert!(h.is_finite() && h > 0.0);
                    ledger.difficulty(&0, h);
                }
                Signal::Reply { id, accepted } => {
                    resolved += ledger.reply(&0, &id, accepted).is_some() as usize;
                }
                Signal::ReportedRate(r) => assert!(r.is_finite() && r >= 0.0),
            }
        }
    }
    resolved += overflow.len() + ledger.end(&0).len();
    assert_eq!(resolved, submitted);
});
