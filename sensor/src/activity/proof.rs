//! Which proof of work a Stratum V1 session does, read from its shares.
//!
//! Stratum V1 carries sha256d (Bitcoin and its forks) and scrypt (Litecoin, Dogecoin) alike, and
//! nothing in a job or a submit names the algorithm; only a login with a Litecoin or Dogecoin
//! address does (`deep::is_scrypt`). A pool's difficulty 1 is 2^32 hashes on sha256d and 2^16 on
//! scrypt, so a scrypt session logging in with an account (a worker name, as most pools use)
//! counted 65,536 times its work. A share says it, though: it is a block header whose hash meets
//! the target. From the session's subscribe reply (`extranonce1`), the job (`mining.notify`) and
//! the submit (`extranonce2`, `ntime`, `nonce`, the version bits a miner rolls), the header is
//! built as every V1 miner builds it (cpuminer's `stratum_gen_work`):
//! - the coinbase is `coinb1 | extranonce1 | extranonce2 | coinb2`, the merkle root its sha256d
//!   folded with each branch (`sha256d(root | branch)`);
//! - the header is version, the previous block's hash, the merkle root, ntime, nbits and nonce:
//!   the 4-byte fields are written in hex as big-endian numbers and go into the header little
//!   endian; the previous hash is written as 8 words whose bytes are each reversed.
//!
//! A share whose sha256d hash (read as a little-endian 256-bit number) is at most the sha256d
//! target of its difficulty, 0xffff x 2^208 / D, proves sha256d; one whose scrypt hash (N 1,024,
//! r 1, p 1, the header as password and salt, as Litecoin hashes) is at most 0xffff x 2^224 / D
//! proves scrypt. A random hash meets a target of difficulty 1 with probability 2^-32 (sha256d)
//! or 2^-16 (scrypt), so one share decides. Nothing is decided from a share whose header cannot
//! be built (the sensor started after the subscribe reply, a job not seen), and after
//! [`MAX_TRIES`] headers that prove neither (another algorithm, X11 and the like, or version
//! bits rolled under a mask not the usual one) the flow stays at sha256d's scale, as before.
//!
//! Cost (measured here, release build): building a header about 2 us and its sha256d 0.4 us, per
//! share until the flow is decided; a scrypt hash about 270 us, for a share that is not sha256d,
//! at most [`MAX_TRIES`] per flow and [`SCRYPT_PER_SECOND`] over all flows (crafted sessions
//! cannot make the agent hash all day: a share that finds the budget spent is not tried, and
//! the flow's next share is). The jobs kept for a flow are dropped once it is decided.

use std::{collections::VecDeque, time::Instant};

use ring::digest::{SHA256, digest};
use serde_json::Value;

use super::difficulty::bytes;

/// The proofs of work a share can show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pow {
    Sha256d,
    Scrypt,
}

/// Headers built and proving neither algorithm before a flow is left undecided for good.
pub const MAX_TRIES: u8 = 2;
/// Scrypt hashes computed per second over all flows (about 2% of a core), and as many at once.
pub const SCRYPT_PER_SECOND: f64 = 64.0;
/// Jobs kept per undecided flow (a share answers one of the last few).
pub const MAX_TEMPLATES: usize = 4;
/// The longest coinbase part, merkle branch and extranonce taken from a job (a coinbase is a
/// transaction of a few hundred bytes; a block's branch is at most log2 of its transactions).
const MAX_COINBASE_PART: usize = 4_096;
const MAX_BRANCH: usize = 24;
/// The longest extranonce (1 or 2) taken: pools give 4 to 8 bytes.
pub const MAX_EXTRANONCE: usize = 32;

/// What a `mining.notify` gives of the header (Stratum V1's nine parameters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    /// The previous block's hash, in header order.
    prevhash: [u8; 32],
    coinb1: Vec<u8>,
    coinb2: Vec<u8>,
    branch: Vec<[u8; 32]>,
    /// Big-endian numbers, as written.
    version: u32,
    nbits: u32,
}

impl Template {
    /// The template of a `mining.notify`'s parameters: job id, previous hash, coinbase parts,
    /// merkle branch, version, nbits, ntime, clean. `None` for another shape (an Equihash job's
    /// eight parameters, EthereumStratum's four) or a field that is not hex of its length.
    pub fn of_notify(params: &[Value]) -> Option<(String, Self)> {
        if params.len() < 9 {
            return None;
        }
        let text = |i: usize| params.get(i).and_then(Value::as_str);
        let job = text(0)?.to_owned();
        let prev: [u8; 32] = bytes(text(1)?)?.try_into().ok()?;
        let mut prevhash = [0u8; 32];
        for (to, from) in prevhash.chunks_exact_mut(4).zip(prev.chunks_exact(4)) {
            to.copy_from_slice(&[from[3], from[2], from[1], from[0]]);
        }
        let part = |i: usize| bytes(text(i)?).filter(|p| p.len() <= MAX_COINBASE_PART);
        let (coinb1, coinb2) = (part(2)?, part(3)?);
        let branch = params.get(4)?.as_array()?;
        if branch.len() > MAX_BRANCH {
            return None;
        }
        let branch = branch
            .iter()
            .map(|b| bytes(b.as_str()?)?.try_into().ok())
            .collect::<Option<Vec<[u8; 32]>>>()?;
        let version = number(text(5)?)?;
        let nbits = number(text(6)?)?;
        Some((
            job,
            Self {
                prevhash,
                coinb1,
                coinb2,
                branch,
                version,
                nbits,
            },
        ))
    }

    /// The 80-byte header of a share: `extranonce1` from the subscribe reply, the submit's
    /// parameters after its job (`extranonce2`, `ntime`, `nonce`, and the version bits a miner
    /// rolling them sends, BIP 310). `None` when a part is not hex of its length.
    pub fn header(&self, extranonce1: &[u8], parts: &[&str]) -> Option<[u8; 80]> {
        let [en2, ntime, nonce, rest @ ..] = parts else {
            return None;
        };
        let en2 = bytes(en2).filter(|e| e.len() <= MAX_EXTRANONCE)?;
        let (ntime, nonce) = (number(ntime)?, number(nonce)?);
        let version = match rest.first() {
            // The rolled bits replace the job's under BIP 310's default mask.
            Some(bits) => {
                (self.version & !VERSION_ROLLING_MASK) | (number(bits)? & VERSION_ROLLING_MASK)
            }
            None => self.version,
        };
        let mut coinbase = Vec::with_capacity(
            self.coinb1.len() + extranonce1.len() + en2.len() + self.coinb2.len(),
        );
        for p in [&self.coinb1[..], extranonce1, &en2, &self.coinb2] {
            coinbase.extend_from_slice(p);
        }
        let mut root = sha256d(&coinbase);
        for b in &self.branch {
            let mut pair = [0u8; 64];
            pair[..32].copy_from_slice(&root);
            pair[32..].copy_from_slice(b);
            root = sha256d(&pair);
        }
        let mut h = [0u8; 80];
        h[..4].copy_from_slice(&version.to_le_bytes());
        h[4..36].copy_from_slice(&self.prevhash);
        h[36..68].copy_from_slice(&root);
        h[68..72].copy_from_slice(&ntime.to_le_bytes());
        h[72..76].copy_from_slice(&self.nbits.to_le_bytes());
        h[76..].copy_from_slice(&nonce.to_le_bytes());
        Some(h)
    }
}

/// BIP 310's default version-rolling mask (bits 13 to 28), what ASIC miners and pools agree on.
const VERSION_ROLLING_MASK: u32 = 0x1fff_e000;

/// Whether `header`'s hash under `pow` meets the target of a share worth `sha256d_hashes` on
/// sha256d's scale (D x 2^32 for a pool's difficulty D).
pub fn meets(pow: Pow, header: &[u8; 80], sha256d_hashes: f64) -> bool {
    let d = sha256d_hashes / 4_294_967_296.0;
    if !(d.is_finite() && d > 0.0) {
        return false;
    }
    let (hash, one) = match pow {
        Pow::Sha256d => (sha256d(header), 65_535.0 * 2f64.powi(208)),
        Pow::Scrypt => {
            let mut out = [0u8; 32];
            let params = scrypt::Params::new(10, 1, 1, 32).expect("N 1,024, r 1, p 1 are valid");
            scrypt::scrypt(header, header, &params, &mut out).expect("32 bytes is a valid length");
            (out, 65_535.0 * 2f64.powi(224))
        }
    };
    as_f64_le(&hash) <= one / d
}

/// What one Stratum V1 flow has shown towards its proof of work, until it is decided.
#[derive(Debug, Default)]
pub struct Prover {
    extranonce1: Option<Vec<u8>>,
    templates: VecDeque<(String, Template)>,
    tries: u8,
    decided: bool,
}

impl Prover {
    /// The pool's `extranonce1` (its subscribe reply, `mining.set_extranonce`).
    pub fn extranonce(&mut self, en1: Vec<u8>) {
        if !self.decided && en1.len() <= MAX_EXTRANONCE {
            self.extranonce1 = Some(en1);
        }
    }

    /// A job's template, kept while the flow is undecided.
    pub fn template(&mut self, job: String, t: Template) {
        if self.decided {
            return;
        }
        self.templates.retain(|(j, _)| *j != job);
        if self.templates.len() == MAX_TEMPLATES {
            self.templates.pop_front();
        }
        self.templates.push_back((job, t));
    }

    /// Whether a share has decided the flow's proof of work.
    pub fn decided(&self) -> bool {
        self.decided
    }

    /// Whether a later share may still decide: not decided, tries left, the pool's extranonce1
    /// seen (a flow whose subscribe reply passed before the sensor started never decides) and a
    /// job to build a header from (a job that is no Bitcoin-shaped template, another
    /// algorithm's, gives none).
    pub fn may_decide(&self) -> bool {
        !self.decided
            && self.tries < MAX_TRIES
            && self.extranonce1.is_some()
            && !self.templates.is_empty()
    }

    /// What a share of `job` (its submit's parameters after the job, joined by commas) worth
    /// `sha256d_hashes` proves, once: `Some` the first time a share decides, `None` before and
    /// after. A scrypt hash is computed only when `budget` has one left.
    pub fn share(
        &mut self,
        job: Option<&str>,
        parts: &str,
        sha256d_hashes: f64,
        budget: &mut Budget,
        now: Instant,
    ) -> Option<Pow> {
        if self.decided || self.tries >= MAX_TRIES {
            return None;
        }
        let en1 = self.extranonce1.as_deref()?;
        let (_, t) = self
            .templates
            .iter()
            .find(|(j, _)| Some(j.as_str()) == job)?;
        let parts: Vec<&str> = parts.split(',').collect();
        let header = t.header(en1, &parts)?;
        let pow = if meets(Pow::Sha256d, &header, sha256d_hashes) {
            Some(Pow::Sha256d)
        } else if !budget.take(now) {
            return None;
        } else {
            meets(Pow::Scrypt, &header, sha256d_hashes).then_some(Pow::Scrypt)
        };
        match pow {
            Some(_) => {
                self.decided = true;
                self.templates.clear();
                self.extranonce1 = None;
            }
            None => self.tries += 1,
        }
        pow
    }
}

/// Scrypt hashes left to compute: [`SCRYPT_PER_SECOND`], refilled as time passes.
#[derive(Debug)]
pub struct Budget {
    left: f64,
    at: Option<Instant>,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            left: SCRYPT_PER_SECOND,
            at: None,
        }
    }
}

impl Budget {
    /// One hash from the budget at `now`, if one is left.
    pub fn take(&mut self, now: Instant) -> bool {
        if let Some(at) = self.at {
            let refill = now.saturating_duration_since(at).as_secs_f64() * SCRYPT_PER_SECOND;
            self.left = (self.left + refill).min(SCRYPT_PER_SECOND);
        }
        self.at = Some(now);
        if self.left < 1.0 {
            return false;
        }
        self.left -= 1.0;
        true
    }
}

fn sha256d(data: &[u8]) -> [u8; 32] {
    let once = digest(&SHA256, data);
    digest(&SHA256, once.as_ref())
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes")
}

/// A 256-bit little-endian number as the nearest `f64` (a target compare needs no more: a share
/// lies within 2^-52 of its target's edge with that probability).
fn as_f64_le(b: &[u8; 32]) -> f64 {
    b.iter()
        .rev()
        .fold(0.0, |acc, &byte| acc * 256.0 + f64::from(byte))
}

/// Eight hex digits as the big-endian number they write.
fn number(s: &str) -> Option<u32> {
    Some(u32::from_be_bytes(bytes(s)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_support::shares::*;

    fn template(notify: &str) -> (String, Template) {
        let m: Value = serde_json::from_str(notify).unwrap();
        Template::of_notify(m["params"].as_array().unwrap()).unwrap()
    }

    fn header(notify: &str, en1: &str, share: [&str; 3]) -> [u8; 80] {
        template(notify)
            .1
            .header(&bytes(en1).unwrap(), &share)
            .unwrap()
    }

    /// A share with a full scrypt budget.
    fn share(p: &mut Prover, job: &str, parts: &str, hashes: f64) -> Option<Pow> {
        p.share(
            Some(job),
            parts,
            hashes,
            &mut Budget::default(),
            Instant::now(),
        )
    }

    /// D x 2^32: what the ledger counts a share at a pool's difficulty D before the flow's
    /// algorithm is known.
    fn at(d: f64) -> f64 {
        d * 4_294_967_296.0
    }

    #[test]
    fn a_stratum_job_and_share_build_the_block_header_miners_hash() {
        // The genesis block's hash, as block explorers write it (reversed bytes).
        let mut hash = sha256d(&header(GENESIS_NOTIFY, GENESIS_EN1, GENESIS_SHARE));
        hash.reverse();
        assert_eq!(
            bytes("000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f").unwrap(),
            hash
        );
        // The worked example's header, as published.
        assert_eq!(
            header(SCRYPT_NOTIFY, SCRYPT_EN1, SCRYPT_SHARE).to_vec(),
            bytes("02000000b0ad0dda1d38a4ede0bd42f44dd5238d5c1d377de73eafe77e2abd16b8ac7e0143c4345eb9ad9135836f5c31b697f62429c1be08d55906ff407852adfba680a5953f1a530eb6101ba001cb6a").unwrap()
        );
    }

    #[test]
    fn a_share_meets_its_algorithms_target_up_to_its_own_difficulty() {
        // The genesis hash is 0x19d6689c... x 2^192: difficulty 0xffff x 2^208 / it = 2,536.4.
        let g = header(GENESIS_NOTIFY, GENESIS_EN1, GENESIS_SHARE);
        assert!(meets(Pow::Sha256d, &g, at(1.0)));
        assert!(meets(Pow::Sha256d, &g, at(2_536.0)));
        assert!(!meets(Pow::Sha256d, &g, at(2_537.0)));
        // Its scrypt hash is 255 bits long, difficulty 0.000045 on scrypt's scale: no scrypt share
        // at difficulty 2^-12.
        assert!(!meets(Pow::Scrypt, &g, at(1.0 / 4_096.0)));
        // The scrypt share: its scrypt hash is 231 bits long, difficulty 695.8 on scrypt's
        // scale (0xffff x 2^224 / it); its sha256d hash 254 bits, difficulty 9 x 10^-10.
        let s = header(SCRYPT_NOTIFY, SCRYPT_EN1, SCRYPT_SHARE);
        assert!(meets(Pow::Scrypt, &s, at(695.0)));
        assert!(!meets(Pow::Scrypt, &s, at(696.0)));
        assert!(!meets(Pow::Sha256d, &s, at(1.0 / 65_536.0)));
    }

    #[test]
    fn a_flow_is_decided_by_its_first_share_whose_header_can_be_built() {
        let (job, t) = template(SCRYPT_NOTIFY);
        let mut p = Prover::default();
        p.template(job.clone(), t.clone());
        // No extranonce1 yet (the sensor started after the subscribe reply): nothing, no try.
        assert_eq!(
            share(&mut p, "5c04", &SCRYPT_SHARE.join(","), at(16.0)),
            None
        );
        p.extranonce(bytes(SCRYPT_EN1).unwrap());
        // A job it has not seen: nothing, no try.
        assert_eq!(
            share(&mut p, "5c05", &SCRYPT_SHARE.join(","), at(16.0)),
            None
        );
        assert_eq!(p.tries, 0);
        // A share whose nonce proves nothing (another nonce): a try.
        assert_eq!(
            share(&mut p, "5c04", "00000000,531a3f95,6acb01a1", at(16.0)),
            None
        );
        assert_eq!(p.tries, 1);
        assert_eq!(
            share(&mut p, "5c04", &SCRYPT_SHARE.join(","), at(16.0)),
            Some(Pow::Scrypt)
        );
        // Decided: said once, and the jobs are gone.
        assert_eq!(
            share(&mut p, "5c04", &SCRYPT_SHARE.join(","), at(16.0)),
            None
        );
        assert!(p.templates.is_empty());
        // After MAX_TRIES headers that prove nothing, the flow is not tried again.
        let mut p = Prover::default();
        p.extranonce(bytes(SCRYPT_EN1).unwrap());
        p.template(job, t);
        for _ in 0..MAX_TRIES {
            assert_eq!(
                share(&mut p, "5c04", "00000000,531a3f95,6acb01a1", at(16.0)),
                None
            );
        }
        assert_eq!(
            share(&mut p, "5c04", &SCRYPT_SHARE.join(","), at(16.0)),
            None
        );
        // A sha256d share decides sha256d.
        let mut p = Prover::default();
        p.extranonce(bytes(GENESIS_EN1).unwrap());
        let (job, t) = template(GENESIS_NOTIFY);
        p.template(job, t);
        assert_eq!(
            share(&mut p, "g", &GENESIS_SHARE.join(","), at(1.0)),
            Some(Pow::Sha256d)
        );
    }

    #[test]
    fn scrypt_hashes_are_computed_within_the_budget_only() {
        let t0 = Instant::now();
        let mut b = Budget::default();
        for _ in 0..64 {
            assert!(b.take(t0));
        }
        assert!(!b.take(t0));
        // 1/64 s later, one more; a second later, at most 64 again.
        assert!(b.take(t0 + std::time::Duration::from_micros(15_625)));
        assert!(!b.take(t0 + std::time::Duration::from_micros(15_625)));
        let later = t0 + std::time::Duration::from_secs(10);
        assert_eq!((0..100).filter(|_| b.take(later)).count(), 64);
        // A share that finds the budget spent is not tried: the flow's next one decides.
        let mut p = Prover::default();
        p.extranonce(bytes(SCRYPT_EN1).unwrap());
        let (job, t) = template(SCRYPT_NOTIFY);
        p.template(job, t);
        let parts = SCRYPT_SHARE.join(",");
        assert_eq!(p.share(Some("5c04"), &parts, at(16.0), &mut b, later), None);
        assert_eq!(p.tries, 0);
        let next = later + std::time::Duration::from_secs(1);
        assert_eq!(
            p.share(Some("5c04"), &parts, at(16.0), &mut b, next),
            Some(Pow::Scrypt)
        );
    }

    #[test]
    fn rolled_version_bits_replace_the_jobs_under_the_default_mask() {
        let (_, t) = template(GENESIS_NOTIFY);
        let en1 = bytes(GENESIS_EN1).unwrap();
        let [en2, ntime, nonce] = GENESIS_SHARE;
        let h = t.header(&en1, &[en2, ntime, nonce, "00002000"]).unwrap();
        // Version 1 with bit 13 rolled in: 0x00002001, little endian.
        assert_eq!(h[..4], [0x01, 0x20, 0, 0]);
        // Bits outside the mask are not taken.
        let h = t.header(&en1, &[en2, ntime, nonce, "e0000000"]).unwrap();
        assert_eq!(h[..4], [1, 0, 0, 0]);
    }

    #[test]
    fn what_no_v1_job_or_share_looks_like_builds_nothing() {
        // An Equihash job (8 parameters) and EthereumStratum's (4).
        let equihash = serde_json::json!(["1", "04000000", "00", "00", "00", "00", "00", true]);
        assert!(Template::of_notify(equihash.as_array().unwrap()).is_none());
        // A previous hash of one byte, a version of one digit, a branch that is no list.
        let genesis: Value = serde_json::from_str(GENESIS_NOTIFY).unwrap();
        for (i, v) in [(1, "00"), (5, "1"), (4, "00")] {
            let mut n = genesis["params"].clone();
            n[i] = Value::from(v);
            assert!(Template::of_notify(n.as_array().unwrap()).is_none());
        }
        let (_, t) = template(GENESIS_NOTIFY);
        let en1 = bytes(GENESIS_EN1).unwrap();
        assert!(t.header(&en1, &["01044554", "495fab29"]).is_none());
        assert!(
            t.header(&en1, &["0104455", "495fab29", "7c2bac1d"])
                .is_none()
        );
        assert!(
            t.header(&en1, &["01044554", "495fab2", "7c2bac1d"])
                .is_none()
        );
    }
}
