//! What the activity readers make of any payload: no panic; every difficulty a share can count at
//! is a finite number of at least one hash; a reported rate is finite and not negative; the ledger
//! fed the signals in order resolves no more shares than were submitted; a flow's proof of work
//! (the jobs, extranonce and shares it is fed) is decided at most once.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use mining_sensor::{
    activity::{
        ledger::Ledger,
        proof::{Budget, Prover},
        wire::{Signal, signals},
    },
    inspect::deep::read,
};

fuzz_target!(|data: &[u8]| {
    let mut ledger = Ledger::new();
    let (mut submitted, mut resolved) = (0usize, 0usize);
    let mut overflow = Vec::new();
    let (mut prover, mut budget, mut decided) = (Prover::default(), Budget::default(), 0);
    let t0 = Instant::now();
    for (i, obj) in read(data).1.iter().enumerate() {
        let now = Duration::from_secs(i as u64);
        for s in signals(obj) {
            match s {
                Signal::Submit(share) => {
                    let (job, parts) = (share.job.clone(), share.nonce.clone());
                    if let Some(c) = ledger.submit(&0u8, share, now, &mut overflow) {
                        submitted += 1;
                        assert!(c.hashes.is_none_or(|h| h.is_finite() && h >= 1.0));
                        if let Some(h) = c.hashes {
                            decided += prover
                                .share(job.as_deref(), &parts, h, &mut budget, t0 + now)
                                .is_some() as usize;
                        }
                    }
                }
                Signal::Extranonce(en1) => prover.extranonce(en1),
                Signal::Template { job, template } => prover.template(job, template),
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
    assert!(decided <= 1);
    resolved += overflow.len() + ledger.end(&0).len();
    assert_eq!(resolved, submitted);
});
