//! Mining activity: how much work a flow's shares stand for.
//!
//! Flows, packets and logins stay flat when one proxy connection carries ten times the work; the
//! shares a miner submits, each worth the difficulty then in force on its flow, do not. This
//! folder holds that measure's arithmetic: `difficulty` turns what pools send (Monero targets,
//! Stratum V1 difficulties, 256-bit targets and boundaries) into hashes per share, following
//! `shared/docs/contract.md` ("share_hashes_total").

pub mod difficulty;
