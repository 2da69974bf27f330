//! Shares per flow: each counted once, at the difficulty of the job it answers, with the result
//! the pool's reply gives it.
//!
//! The ledger is fed what a flow's messages say, in the order they pass (`job`, `difficulty`,
//! `submit`, `reply`), and says what to count; it knows nothing of JSON, ranges or labels, so
//! the live path and replay use it alike, and its rules are tested on their own:
//! - The difficulty in force is the latest one set (a Monero job's target, `mining.set_difficulty`,
//!   `mining.set_target`, a getWork boundary). A job takes the difficulty in force when it is
//!   announced, or its own (a Monero job carries its target); a share counts at its job's
//!   difficulty when the ledger has seen that job, else at the one in force. Pools change it at
//!   any job (vardiff), so a share answering an older job counts at that job's difficulty.
//! - A share counts once: a segment retransmitted carries the same submit (same id, job and
//!   nonce), which is recognised and not counted again.
//! - A share's hashes count when it is submitted; a share before any difficulty is known (a sensor
//!   started in the middle of a session) counts as a share without hashes.
//! - Its result counts when the pool's reply with the submit's id arrives (`accepted` or
//!   `rejected`), or as `unknown` when none has come within [`REPLY_TIMEOUT`] (a one-direction
//!   tap, a lost reply) or the flow ends.
//!
//! Memory is bounded: per flow at most [`MAX_JOBS`] jobs, [`MAX_PENDING`] shares awaiting a reply
//! and [`MAX_SEEN`] recent submits; the oldest go first (a pending share leaving unanswered counts
//! as `unknown`).

use std::{
    collections::{HashMap, VecDeque},
    hash::Hash,
    time::Duration,
};

/// How long a share waits for its reply before it counts as `unknown`. Pools answer within a
/// second; a reply later than this is not waited for.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Jobs remembered per flow (a share answers one of the last few; pools keep about as many).
pub const MAX_JOBS: usize = 16;
/// Shares awaiting a reply per flow.
pub const MAX_PENDING: usize = 256;
/// Recent submits remembered per flow, to recognise a retransmitted one.
pub const MAX_SEEN: usize = 256;

/// What the pool said of a share.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShareResult {
    Accepted,
    Rejected,
    Unknown,
}

impl ShareResult {
    /// The `result` label of `mining_sensor_shares_total`.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
            Self::Unknown => "unknown",
        }
    }
}

/// A share as its submit names it: the request id (which the reply repeats), the job it answers
/// and its nonce. Two submits with all three equal are one share sent twice.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Submit {
    pub id: String,
    pub job: Option<String>,
    pub nonce: String,
}

/// What a submit counts: its hashes (`None` while the flow's difficulty is unknown). `None` for a
/// submit already counted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Counted {
    pub hashes: Option<f64>,
}

/// A share whose result is now known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resolved<F> {
    pub flow: F,
    pub result: ShareResult,
}

#[derive(Default)]
struct FlowShares {
    /// Hashes per share of the difficulty in force.
    current: Option<f64>,
    /// Recent jobs and the hashes per share of each (None: announced before any difficulty).
    jobs: VecDeque<(String, Option<f64>)>,
    /// Shares awaiting their reply: request id and when they were submitted.
    pending: VecDeque<(String, Duration)>,
    /// Recent submits, oldest first.
    seen: VecDeque<Submit>,
}

/// The shares of every flow, keyed by the caller's flow identity `F`.
pub struct Ledger<F> {
    flows: HashMap<F, FlowShares>,
}

impl<F: Clone + Eq + Hash> Default for Ledger<F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F: Clone + Eq + Hash> Ledger<F> {
    pub fn new() -> Self {
        Self {
            flows: HashMap::new(),
        }
    }

    /// The pool set a difficulty, in hashes per share, for the jobs that follow.
    pub fn difficulty(&mut self, flow: &F, hashes: f64) {
        self.flow(flow).current = Some(hashes);
    }

    /// The pool announced job `job`, at its own difficulty (`Some`, a Monero target) or at the one
    /// in force (`None`, Stratum V1's `mining.notify`). Its own difficulty is then in force.
    pub fn job(&mut self, flow: &F, job: &str, hashes: Option<f64>) {
        let f = self.flow(flow);
        if hashes.is_some() {
            f.current = hashes;
        }
        let at = hashes.or(f.current);
        f.jobs.retain(|(j, _)| j != job);
        if f.jobs.len() == MAX_JOBS {
            f.jobs.pop_front();
        }
        f.jobs.push_back((job.to_owned(), at));
    }

    /// The miner submitted a share at `now`. Returns what to count, or `None` for a submit
    /// already counted; a pending share pushed out by a full table is returned in `overflow`.
    pub fn submit(
        &mut self,
        flow: &F,
        share: Submit,
        now: Duration,
        overflow: &mut Vec<Resolved<F>>,
    ) -> Option<Counted> {
        let f = self.flow(flow);
        if f.seen.contains(&share) {
            return None;
        }
        let hashes = share
            .job
            .as_deref()
            .and_then(|job| f.jobs.iter().find(|(j, _)| j == job))
            .map_or(f.current, |(_, at)| *at);
        if f.pending.len() == MAX_PENDING {
            f.pending.pop_front();
            overflow.push(Resolved {
                flow: flow.clone(),
                result: ShareResult::Unknown,
            });
        }
        f.pending.push_back((share.id.clone(), now));
        if f.seen.len() == MAX_SEEN {
            f.seen.pop_front();
        }
        f.seen.push_back(share);
        Some(Counted { hashes })
    }

    /// The pool replied to request `id`: the result of the share it answers, if one awaits it
    /// (a reply to anything else, or a second reply, resolves nothing). Miners that send every
    /// submit with the same id are answered in order, so the oldest share with that id is the one
    /// answered.
    pub fn reply(&mut self, flow: &F, id: &str, accepted: bool) -> Option<Resolved<F>> {
        let f = self.flows.get_mut(flow)?;
        let i = f.pending.iter().position(|(p, _)| p == id)?;
        f.pending.remove(i);
        Some(Resolved {
            flow: flow.clone(),
            result: if accepted {
                ShareResult::Accepted
            } else {
                ShareResult::Rejected
            },
        })
    }

    /// Shares that have waited longer than [`REPLY_TIMEOUT`] at `now`: `unknown`.
    pub fn expire(&mut self, now: Duration) -> Vec<Resolved<F>> {
        let mut out = Vec::new();
        for (flow, f) in &mut self.flows {
            while f
                .pending
                .front()
                .is_some_and(|(_, at)| now.saturating_sub(*at) > REPLY_TIMEOUT)
            {
                f.pending.pop_front();
                out.push(Resolved {
                    flow: flow.clone(),
                    result: ShareResult::Unknown,
                });
            }
        }
        out
    }

    /// The flow ended (or was forgotten): its pending shares are `unknown`.
    pub fn end(&mut self, flow: &F) -> Vec<Resolved<F>> {
        self.flows.remove(flow).map_or_else(Vec::new, |f| {
            f.pending
                .iter()
                .map(|_| Resolved {
                    flow: flow.clone(),
                    result: ShareResult::Unknown,
                })
                .collect()
        })
    }

    /// Flows the ledger holds.
    pub fn flows(&self) -> usize {
        self.flows.len()
    }

    fn flow(&mut self, flow: &F) -> &mut FlowShares {
        self.flows.entry(flow.clone()).or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activity::difficulty::{monero_target, sha256d_difficulty};

    const FLOW: u32 = 1;

    fn share(id: u32, job: &str, nonce: u32) -> Submit {
        Submit {
            id: id.to_string(),
            job: Some(job.to_owned()),
            nonce: format!("{nonce:08x}"),
        }
    }

    fn at(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// Submits `shares` at one second each from `t0`; the hashes each counts (0 for none).
    fn submit_all(l: &mut Ledger<u32>, shares: &[Submit], t0: u64) -> Vec<Option<f64>> {
        let mut overflow = Vec::new();
        let out = shares
            .iter()
            .enumerate()
            .map(|(i, s)| {
                l.submit(&FLOW, s.clone(), at(t0 + i as u64), &mut overflow)
                    .expect("a new share")
                    .hashes
            })
            .collect();
        assert!(overflow.is_empty());
        out
    }

    #[test]
    fn n_shares_at_a_monero_target_are_n_times_its_difficulty() {
        let mut l = Ledger::new();
        // A login reply's job with target b88d0600: 10,000 hashes a share (see difficulty.rs).
        l.job(&FLOW, "1", monero_target("b88d0600").map(|d| d as f64));
        let shares: Vec<Submit> = (2..7).map(|id| share(id, "1", id)).collect();
        let hashes = submit_all(&mut l, &shares, 0);
        assert_eq!(hashes, [Some(10_000.0); 5]);
        // 5 shares x 10,000 = 50,000 hashes.
        assert_eq!(hashes.iter().flatten().sum::<f64>(), 50_000.0);
        let results: Vec<_> = (2..7)
            .filter_map(|id| l.reply(&FLOW, &id.to_string(), true))
            .collect();
        assert_eq!(results.len(), 5);
        assert!(results.iter().all(|r| r.result == ShareResult::Accepted));
    }

    #[test]
    fn vardiff_counts_each_share_at_its_jobs_difficulty() {
        let mut l = Ledger::new();
        l.job(&FLOW, "1", Some(10_000.0));
        let mut hashes = submit_all(
            &mut l,
            &[share(2, "1", 1), share(3, "1", 2), share(4, "1", 3)],
            0,
        );
        // The pool raises the difficulty with job 2 (target f3220000: 480,045 hashes).
        l.job(&FLOW, "2", Some(480_045.0));
        hashes.extend(submit_all(
            &mut l,
            &[share(5, "2", 4), share(6, "2", 5)],
            10,
        ));
        // A late share still answering job 1 counts at job 1's difficulty.
        hashes.extend(submit_all(&mut l, &[share(7, "1", 6)], 20));
        // 3 x 10,000 + 2 x 480,045 + 10,000 = 1,000,090.
        assert_eq!(hashes.iter().flatten().sum::<f64>(), 1_000_090.0);
        // A share naming no job the ledger saw counts at the difficulty in force (job 2's).
        let unknown_job = submit_all(&mut l, &[share(8, "99", 7)], 30);
        assert_eq!(unknown_job, [Some(480_045.0)]);
    }

    #[test]
    fn stratum_v1_difficulty_applies_to_the_jobs_that_follow() {
        let mut l = Ledger::new();
        // mining.set_difficulty [2], then mining.notify "a": 2 x 2^32 = 8,589,934,592 a share.
        l.difficulty(&FLOW, sha256d_difficulty(2.0).unwrap());
        l.job(&FLOW, "a", None);
        // mining.set_difficulty [4] applies to the next job only.
        l.difficulty(&FLOW, sha256d_difficulty(4.0).unwrap());
        let on_a = submit_all(&mut l, &[share(10, "a", 1)], 0);
        assert_eq!(on_a, [Some(8_589_934_592.0)]);
        l.job(&FLOW, "b", None);
        let on_b = submit_all(&mut l, &[share(11, "b", 2)], 1);
        // 4 x 2^32 = 17,179,869,184.
        assert_eq!(on_b, [Some(17_179_869_184.0)]);
    }

    #[test]
    fn a_retransmitted_submit_counts_once() {
        let mut l = Ledger::new();
        l.job(&FLOW, "1", Some(10_000.0));
        let mut overflow = Vec::new();
        let s = share(2, "1", 42);
        assert!(l.submit(&FLOW, s.clone(), at(0), &mut overflow).is_some());
        assert_eq!(l.submit(&FLOW, s.clone(), at(1), &mut overflow), None);
        // Another nonce on the same job is another share; the same share on another flow too.
        assert!(
            l.submit(&FLOW, share(3, "1", 43), at(2), &mut overflow)
                .is_some()
        );
        assert!(l.submit(&2, s, at(3), &mut overflow).is_some());
        // One reply for the retransmitted share resolves one share.
        assert!(l.reply(&FLOW, "2", true).is_some());
        assert_eq!(l.reply(&FLOW, "2", true), None);
    }

    #[test]
    fn a_share_before_any_difficulty_counts_without_hashes() {
        let mut l = Ledger::new();
        // A sensor started mid-session: a submit for a job it never saw, no difficulty yet.
        assert_eq!(submit_all(&mut l, &[share(2, "7", 1)], 0), [None]);
        // The next job push brings the target; shares from then on count their hashes.
        l.job(&FLOW, "8", Some(10_000.0));
        assert_eq!(submit_all(&mut l, &[share(3, "8", 2)], 5), [Some(10_000.0)]);
    }

    #[test]
    fn replies_decide_accepted_and_rejected() {
        let mut l = Ledger::new();
        l.job(&FLOW, "1", Some(10_000.0));
        submit_all(&mut l, &[share(2, "1", 1), share(3, "1", 2)], 0);
        let rejected = l.reply(&FLOW, "3", false).unwrap();
        assert_eq!(
            (rejected.flow, rejected.result),
            (FLOW, ShareResult::Rejected)
        );
        assert_eq!(rejected.result.label(), "rejected");
        let accepted = l.reply(&FLOW, "2", true).unwrap();
        assert_eq!(accepted.result.label(), "accepted");
        // A reply to a request that was no share (the login, a keepalive) resolves nothing.
        assert_eq!(l.reply(&FLOW, "1", true), None);
        assert_eq!(l.reply(&7, "2", true), None);
    }

    #[test]
    fn shares_without_a_reply_are_unknown_after_the_timeout_or_at_the_flows_end() {
        let mut l = Ledger::new();
        l.job(&FLOW, "1", Some(10_000.0));
        // Submitted at 0 s and 1 s.
        submit_all(&mut l, &[share(2, "1", 1), share(3, "1", 2)], 0);
        // At 30 s the first has waited exactly REPLY_TIMEOUT: not yet.
        assert!(l.expire(at(30)).is_empty());
        let expired = l.expire(at(31));
        assert_eq!(
            expired,
            [Resolved {
                flow: FLOW,
                result: ShareResult::Unknown
            }]
        );
        assert_eq!(expired[0].result.label(), "unknown");
        // The flow ends with the second still waiting.
        assert_eq!(
            l.end(&FLOW),
            [Resolved {
                flow: FLOW,
                result: ShareResult::Unknown
            }]
        );
        assert_eq!(l.flows(), 0);
        assert!(l.expire(at(100)).is_empty());
    }

    #[test]
    fn a_full_table_of_pending_shares_lets_the_oldest_go_as_unknown() {
        let mut l = Ledger::new();
        l.job(&FLOW, "1", Some(1.0));
        let mut overflow = Vec::new();
        for n in 0..=MAX_PENDING as u32 {
            l.submit(&FLOW, share(n, "1", n), at(0), &mut overflow);
        }
        assert_eq!(
            overflow,
            [Resolved {
                flow: FLOW,
                result: ShareResult::Unknown
            }]
        );
        // The oldest (id 0) left; its reply now resolves nothing, the newest's does.
        assert_eq!(l.reply(&FLOW, "0", true), None);
        assert!(l.reply(&FLOW, &MAX_PENDING.to_string(), true).is_some());
    }
}
