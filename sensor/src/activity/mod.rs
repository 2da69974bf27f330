//! Mining activity: how much work a flow's shares stand for.
//!
//! Flows, packets and logins stay flat when one proxy connection carries ten times the work; the
//! shares a miner submits, each worth the difficulty then in force on its flow, do not. This
//! folder holds that measure's parts, following `shared/docs/contract.md` (`shares_total`,
//! `share_hashes_total`):
//! - `difficulty` turns what pools send (Monero targets, Stratum V1 difficulties, 256-bit targets
//!   and boundaries) into hashes per share;
//! - `proof` tells a Stratum V1 session's proof of work (sha256d or scrypt, whose difficulty 1
//!   differ 65,536-fold) from its shares, when its login does not;
//! - `wire` reads what a message says of work (shares, jobs, difficulties, verdicts, a miner's own
//!   rate);
//! - `ledger` keeps each flow's shares: once each, at their job's difficulty, with the result the
//!   pool's reply gives them;
//! - `tally` adds shares and hashes up per range, coin, miner family and pool for replay's report.

pub mod difficulty;
pub mod ledger;
pub mod proof;
pub mod tally;
pub mod wire;
