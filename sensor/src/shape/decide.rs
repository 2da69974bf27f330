//! Whether a TLS flow's records have Stratum's shape. Every threshold is derived from the shape
//! of XMRig-family Stratum over TLS (README, "Suspect flows", `encrypted_stratum`):
//!
//! - a record's length field is its plaintext plus the TLS overhead: 17 bytes for TLS 1.3 (the
//!   inner content type and a 16-byte tag), 24 for TLS 1.2 AES-GCM (8-byte explicit nonce and the
//!   tag), 16 for TLS 1.2 ChaCha20-Poly1305; with the 5-byte header that is the 21 to 29 bytes a
//!   message grows by. The bands below take 16 to 40 (CBC suites reach about 40);
//! - a submit is 150 to 250 bytes of JSON: a client record of 166 to 290, band [`SUBMIT`];
//! - the pool's reply to it (`{"id":N,"jsonrpc":"2.0","error":null,"result":{"status":"OK"}}`
//!   and its kin) is 60 to 90 bytes: a server record of 76 to 130, band [`REPLY`];
//! - a job push is about 300 to 500 bytes, unasked, of near-constant size for one coin (the
//!   blob's length is the coin's, the job id's and target's the pool's; algorithms without a seed
//!   hash, such as `argon2/chukwa`, make it about 280): taken as 270 to 550, a server record of 286
//!   to 590, band [`JOB`], spread within [`JOB_SPREAD`];
//! - a keepalive (`keepalived` with the session id, 70 to 115 bytes) answered with
//!   `"status":"KEEPALIVED"` (about 71): a client record of 86 to 155 ([`KEEPALIVE`]) answered
//!   in the reply band; neither evidence nor against it;
//! - Equihash Stratum (aiostratum-proxy's dialect) submits a 1,344-byte solution in hex: client
//!   records of 2,816 to 3,040 ([`EQUIHASH_SUBMIT`]), answered by `true` in 51 to 140
//!   ([`BOOL_REPLY`]);
//! - shares come at the pool's vardiff cadence, one per 10 to 60 s, keepalives every 60 s, jobs at
//!   each block (Monero's 2 minutes) or template refresh: a few hundred bytes a minute;
//! - a share is found when a hash falls under the target, each hash an independent trial: share
//!   times are a Poisson process, their gaps exponential, whose standard deviation equals their
//!   mean (a coefficient of variation of 1). A timer's period varies by its jitter only (near 0).

use std::collections::VecDeque;

use sensor_common::tls_shape::{OPENING_MS, Record};

/// An inclusive range of record lengths.
#[derive(Clone, Copy, Debug)]
pub struct Band {
    pub lo: u32,
    pub hi: u32,
}

impl Band {
    pub const fn contains(&self, len: u32) -> bool {
        self.lo <= len && len <= self.hi
    }
}

/// A server record within this time of an unanswered client record answers it. A pool answers a
/// share after checking it (milliseconds of hashing) and a round trip; 2 s covers a 1-second round
/// trip twice over. A job arriving in that time is still a job (see [`classify`]).
pub const REPLY_MS: u32 = 2_000;
/// Client records waiting for an answer at once: a miner finding shares in a burst sends a few
/// submits before the first reply. More than this is not a request-reply exchange.
pub const MAX_PENDING: usize = 4;

/// 150 to 250 bytes of JSON plus 16 to 40 of overhead, to round figures.
pub const SUBMIT: Band = Band { lo: 160, hi: 300 };
/// 60 to 90 bytes of JSON plus 16 to 40.
pub const REPLY: Band = Band { lo: 70, hi: 140 };
/// A client record below the submit band answered in the reply band: a keepalive.
pub const KEEPALIVE: Band = Band { lo: 70, hi: 159 };
/// 300 to 500 bytes of JSON give or take a tenth (270 to 550) plus 16 to 40. Server records only:
/// it may overlap the client's submit band.
pub const JOB: Band = Band { lo: 286, hi: 590 };
/// Job pushes of one flow differ by a few bytes (a job id, a height's digits, a transaction
/// count's varint); a target of 16 hex digits instead of 8 adds 8. Twice that.
pub const JOB_SPREAD: u32 = 16;
/// Submits of one flow differ by their request id's digits (1 to 3) and a job id's length;
/// answered client records further apart than this are messages of a conversation.
pub const SUBMIT_SPREAD: u32 = 24;
/// No Stratum record after the opening comes near this (but an answered Equihash submit,
/// [`EQUIHASH_SUBMIT`]): a page, a file or a stream.
pub const MAX_RECORD: u32 = 1_024;
/// "Few bytes overall": both directions together, over the flow's life. A share every 5 s (twice
/// the fastest usual cadence) at the bands' tops is (300 + 140) / 5 = 88 B/s, a job every 5 s
/// 560 / 5 = 112 B/s: 200 B/s; five times that.
pub const MAX_BYTES_PER_S: u64 = 1_000;
/// "Long-lived": the records after the opening span at least a minute.
pub const MIN_SPAN_MS: u32 = 60_000;
/// Evidence: submits answered by a reply, and unasked job-sized server records.
pub const MIN_SUBMITS: u32 = 2;
pub const MIN_JOBS: u32 = 1;
/// Records that fit no Stratum exchange (an unasked server record that is not job-sized, a
/// client record answered out of the bands, a client record never answered) are tolerated up to
/// one, plus one for every four records of evidence (a job crossing a submit's reply).
pub const ANOMALY_BASE: u32 = 1;
pub const EVIDENCE_PER_ANOMALY: u32 = 4;

/// Equihash Stratum (ZIP 301: Zcash and its kin; the dialect aiostratum-proxy carries): a
/// `mining.submit` holds a 200,9 solution, 1,344 bytes after a 3-byte length, as 2,694 hex
/// digits; with the account (up to about 100 bytes), the job id, the time (8 hex), the nonce's
/// part (48 to 64 hex) and the framing (about 60), 2,800 to 3,000 bytes of JSON (2,828 for the
/// namespace harness's `kvetak.rig1`): a client record of 2,816 to 3,040. The one record over
/// [`MAX_RECORD`] a Stratum flow sends after its opening, and only when answered.
pub const EQUIHASH_SUBMIT: Band = Band {
    lo: 2_816,
    hi: 3_040,
};
/// Its answer, `{"id":N,"result":true,"error":null}` (35 to 41 bytes; more with `"jsonrpc"` or an
/// error object, up to the reply band's top): a server record of 51 to 140. Only for an Equihash
/// submit: XMRig's replies keep [`REPLY`].
pub const BOOL_REPLY: Band = Band { lo: 51, hi: 140 };
/// [`MAX_BYTES_PER_S`] for a flow whose submits are Equihash's, each about ten times XMRig's: a
/// share and a job every 5 s at the bands' tops are (3,040 + 140 + 590) / 5 = 754 B/s; five times
/// that, to round figures (a proxy carrying several workers: about 13 at a share every 10 s).
pub const MAX_BYTES_PER_S_EQUIHASH: u64 = 4_000;

/// Stratum without a job: a pool that pushes jobs only at Monero's blocks (one per 2 minutes on
/// average, Poisson) sends none between the opening and the verdict's 4 minutes in e^(-235/120),
/// about one session in seven. Such a flow is Stratum on its submits alone when they are at least
/// this many (5: a share every 30 s gives 7.8 on average in those 235 s, at least 5 in 89% of
/// sessions), over [`MIN_SPAN_MS`], with no job-band record unasked, nothing outside the
/// exchanges (no anomaly at all, where a flow with jobs is allowed one) and a random cadence
/// ([`CADENCE_CV_MIN`], [`CADENCE_CV_MAX`]).
pub const JOBLESS_SUBMITS: u32 = 5;
/// The least coefficient of variation of the gaps between a job-less flow's answered submits, as
/// a fraction (3/10). Exponential gaps have 1; with 4 to 7 gaps the sample's (population form,
/// below) is under 3/10 in under 1% of sessions at a share every 30 s (0.7%, by simulation:
/// `jobless_sessions_flagged_by_cadence_in_simulation`). A timer polling at a fixed period has 0,
/// and one with jitter of up to half its period either way (uniform on 0.5 to 1.5 periods)
/// 1/sqrt(12) = 0.289: under it.
pub const CADENCE_CV_MIN: (u64, u64) = (3, 10);
/// The most: 2. Exponential gaps exceed it in under 0.03% of sessions (n gaps reach sqrt(n - 1)
/// only when one gap holds nearly all the time, so 4 or 5 gaps never do); a person's requests,
/// bursts of seconds between pauses of minutes, go beyond it.
pub const CADENCE_CV_MAX: (u64, u64) = (2, 1);

/// The gaps between successive answered submits (client record times), summed for their
/// coefficient of variation: the standard deviation over the mean, sqrt(n S2 / S1^2 - 1) with
/// `n` gaps, their sum `S1` and sum of squares `S2` (population form).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cadence {
    pub gaps: u64,
    /// Sum of the gaps, ms.
    pub sum_ms: u64,
    /// Sum of their squares, ms^2.
    pub sq_ms2: u64,
}

impl Cadence {
    fn add(&mut self, gap_ms: u32) {
        let g = u64::from(gap_ms);
        self.gaps += 1;
        self.sum_ms += g;
        self.sq_ms2 += g * g;
    }

    /// Whether the coefficient of variation is at least `p / q`: CV^2 = n S2 / S1^2 - 1 >= p^2 /
    /// q^2, i.e. q^2 n S2 >= (p^2 + q^2) S1^2, in integers (exact at the edges).
    pub fn cv_at_least(&self, (p, q): (u64, u64)) -> bool {
        self.sum_ms > 0 && self.lhs(q) >= u128::from(p * p + q * q) * self.s1_sq()
    }

    /// Whether it is at most `p / q`.
    pub fn cv_at_most(&self, (p, q): (u64, u64)) -> bool {
        self.sum_ms > 0 && self.lhs(q) <= u128::from(p * p + q * q) * self.s1_sq()
    }

    fn lhs(&self, q: u64) -> u128 {
        u128::from(q * q) * u128::from(self.gaps) * u128::from(self.sq_ms2)
    }

    fn s1_sq(&self) -> u128 {
        u128::from(self.sum_ms) * u128::from(self.sum_ms)
    }

    /// The coefficient of variation (for logs and tests' messages).
    pub fn cv(&self) -> f64 {
        if self.sum_ms == 0 {
            return 0.0;
        }
        let (n, s1, s2) = (self.gaps as f64, self.sum_ms as f64, self.sq_ms2 as f64);
        (n * s2 / (s1 * s1) - 1.0).max(0.0).sqrt()
    }
}

/// What a flow's records show, after the opening (which the program does not keep; skipped here
/// too, for records built by hand).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Features {
    /// Submit-band client records answered in the reply band, and Equihash submits.
    pub submits: u32,
    /// Of those, Equihash submits ([`EQUIHASH_SUBMIT`] answered in [`BOOL_REPLY`]).
    pub equihash: u32,
    /// Keepalive-band client records answered in the reply band.
    pub keepalives: u32,
    /// Job-band server records with no client record waiting.
    pub jobs: u32,
    /// Smallest and largest job-band server record (asked or not), and answered submit.
    pub job_min: u32,
    pub job_max: u32,
    pub submit_min: u32,
    pub submit_max: u32,
    /// Records that fit no Stratum exchange.
    pub anomalies: u32,
    /// Records over [`MAX_RECORD`].
    pub large: u32,
    /// From the first record after the opening to the last, ms.
    pub span_ms: u32,
    /// The gaps between answered submits.
    pub cadence: Cadence,
}

/// Walks the kept records; `age_ms` is the flow's age now (a client record still waiting is an
/// anomaly only once its reply time has passed).
pub fn classify(records: impl IntoIterator<Item = Record>, age_ms: u64) -> Features {
    let mut f = Features {
        job_min: u32::MAX,
        submit_min: u32::MAX,
        ..Features::default()
    };
    let mut pending: VecDeque<Record> = VecDeque::new();
    let mut first_ms = None;
    let mut last_submit: Option<u32> = None;
    for r in records {
        if r.ms < OPENING_MS {
            continue;
        }
        f.span_ms = r.ms - *first_ms.get_or_insert(r.ms);
        while pending.front().is_some_and(|c| r.ms - c.ms > REPLY_MS) {
            pending.pop_front();
            f.anomalies += 1;
        }
        let equihash = !r.server && EQUIHASH_SUBMIT.contains(r.len);
        if r.len > MAX_RECORD && !equihash {
            f.large += 1;
        } else if !r.server {
            pending.push_back(r);
            if pending.len() > MAX_PENDING {
                pending.pop_front();
                f.anomalies += 1;
            }
        } else if JOB.contains(r.len) {
            // A job-sized record does not answer a waiting submit. Only an unasked one is a job
            // and sets the job size: one that comes while a submit waits may be a job crossing
            // the reply, or a job and the reply in one record (a TLS tunnel such as stunnel
            // writes what it has read as one record: 293 + 81 - 17 = 357 bytes seen), whose size
            // says nothing of the job's.
            if pending.is_empty() {
                f.jobs += 1;
                f.job_min = f.job_min.min(r.len);
                f.job_max = f.job_max.max(r.len);
            }
        } else if let Some(c) = pending.pop_front() {
            let xmrig = REPLY.contains(r.len) && SUBMIT.contains(c.len);
            let equihash = BOOL_REPLY.contains(r.len) && EQUIHASH_SUBMIT.contains(c.len);
            if xmrig || equihash {
                f.equihash += u32::from(equihash);
                f.submits += 1;
                f.submit_min = f.submit_min.min(c.len);
                f.submit_max = f.submit_max.max(c.len);
                if let Some(prev) = last_submit {
                    f.cadence.add(c.ms - prev);
                }
                last_submit = Some(c.ms);
            } else if REPLY.contains(r.len) && KEEPALIVE.contains(c.len) {
                f.keepalives += 1;
            } else {
                f.anomalies += 1;
            }
        } else {
            f.anomalies += 1;
        }
    }
    f.anomalies += pending
        .iter()
        .filter(|c| age_ms > (c.ms + REPLY_MS) as u64)
        .count() as u32;
    f
}

/// The verdict on a flow's features.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Stratum's shape.
    Stratum,
    /// Something that Stratum never does: a large record, too many bytes, job or submit sizes
    /// that vary, or too many records outside Stratum's exchanges.
    NotStratum,
    /// Nothing against Stratum, but not yet the evidence (submits, a job, a minute; or, without
    /// a job, the submits of [`jobless`]).
    Unproven,
}

/// Whether a flow without a job is Stratum on its submits alone ([`JOBLESS_SUBMITS`]).
pub fn jobless(f: &Features) -> bool {
    f.jobs == 0
        && f.anomalies == 0
        && f.submits >= JOBLESS_SUBMITS
        && f.span_ms >= MIN_SPAN_MS
        && f.cadence.cv_at_least(CADENCE_CV_MIN)
        && f.cadence.cv_at_most(CADENCE_CV_MAX)
}

/// `bytes` is the sum of all records' lengths (not only those kept), `age_ms` the flow's age.
pub fn verdict(f: &Features, bytes: u64, age_ms: u64) -> Verdict {
    let evidence = f.submits + f.keepalives + f.jobs;
    let max_bytes_per_s = if f.equihash > 0 {
        MAX_BYTES_PER_S_EQUIHASH
    } else {
        MAX_BYTES_PER_S
    };
    let against = f.large > 0
        || bytes * 1_000 > max_bytes_per_s * age_ms.max(1_000)
        || (f.jobs > 0 && f.job_max - f.job_min > JOB_SPREAD)
        || (f.submits > 0 && f.submit_max - f.submit_min > SUBMIT_SPREAD)
        || f.anomalies > ANOMALY_BASE + evidence / EVIDENCE_PER_ANOMALY;
    if against {
        Verdict::NotStratum
    } else if (f.submits >= MIN_SUBMITS && f.jobs >= MIN_JOBS && f.span_ms >= MIN_SPAN_MS)
        || jobless(f)
    {
        Verdict::Stratum
    } else {
        Verdict::Unproven
    }
}
