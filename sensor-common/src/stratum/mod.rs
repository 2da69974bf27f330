//! Stratum signatures: the one table the XDP program matches with and the tests read.
//!
//! Mining protocols are newline-delimited JSON, but clients differ in field order, spacing and ids
//! (see `shared/docs/stratum-on-the-wire.md`), so no signature is a fixed byte string. The scanner
//! walks the start of a TCP payload once, hashes every JSON string token, and records which *markers*
//! (method names and keys such as `"agent"`, `"job_id"`) occur, split into two bit sets:
//! tokens that are the value of a `"method"` key, and every other string. A message is Stratum when a
//! [`Rule`] of [`RULES`] holds over those bit sets.
//!
//! The agent's deep parser reads the JSON of the packets handed to it with structural rules of its
//! own, which decide what counts as a miner login; every message on which it and this table
//! disagree is listed in its test `where_the_kernel_table_and_the_parser_differ`.
//!
//! Reshaped messages read as plain ones (`shared/docs/stratum-on-the-wire.md`, "How miners
//! hide"): blanks and CRLFs before a message's `{`; line ends inside a message whose braces are
//! open (pretty-printed JSON); JSON escapes, decoded into the token's hash (`"\u006cogin"` is
//! `login`); a method's name in any letter case (its value is hashed folded to lower case).
//!
//! Guards against the known false-positive traps:
//! - A message must begin with `{` at the start of the segment, or right after a newline that follows
//!   `}` (the end of the previous JSON message). HTML, JavaScript and HTTP bodies that quote a login
//!   object begin otherwise and are never inspected.
//! - `"method"` and `"id"` alone mean nothing: each rule needs a mining-specific method or a
//!   combination of keys. A login needs the keys `"login"` and `"pass"` and, besides, either the
//!   key `"agent"` (what miners send) or a string of at least [`ADDRESS_MIN_LEN`] characters
//!   before a later marker (a CryptoNote wallet as the login: web-miner bridges such as
//!   coin-hive-stratum send `{"login":"<wallet>[.worker][+diff]","pass":..}` with no agent). A web
//!   API's login method with a user name and a password (`{"login":"bob","pass":"hunter2"}`) has
//!   neither and stays silent; one whose user name or password runs to 95 characters would count.
//!   To a pool endpoint (`crate::pools`: where a login with that evidence went within the hour)
//!   a login counts at its method ([`Prior::PoolLogin`]).
//!
//! This file holds the table (dialects, markers, rules) and the token hash; `scanner` the pass over
//! a payload that applies it, `window` the payload buffer it reads and the word-at-a-time helpers.
//!
//! The code is written for the BPF verifier as much as for the host: a fixed-size buffer, a loop
//! bounded by a constant, no slices whose length the verifier cannot see, no panicking paths.

/// Bytes of payload inspected per packet. Covers an XMRig login up to its `"agent"` key even with a
/// 106-character integrated address and a long password.
pub const WINDOW: usize = 512;

#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// XMRig-family JSON: login/submit/keepalived/job.
    Monero = 0,
    /// Stratum V1 `mining.*`.
    Bitcoin = 1,
    /// ethproxy `eth_submitLogin` and friends, EthereumStratum/1.0.0.
    Ethereum = 2,
}

pub const DIALECTS: usize = 3;

impl Dialect {
    /// Label values of `dialect`, in discriminant order.
    pub const NAMES: [&'static str; DIALECTS] = ["monero", "bitcoin", "ethereum"];

    pub const fn from_index(i: u8) -> Option<Self> {
        match i {
            0 => Some(Self::Monero),
            1 => Some(Self::Bitcoin),
            2 => Some(Self::Ethereum),
            _ => None,
        }
    }

    pub const fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// JSON string tokens the rules are built from. The position in this table is the marker's bit.
///
/// Method names are spelled lower-case: the scanner folds the ASCII letters of a `"method"` value
/// to lower case before hashing it (ckpool, for one, matches `mining.*` names ignoring case, so a
/// miner may send `MINING.SUBSCRIBE`), and compares every other string as sent (`KEEPALIVED` is a
/// status value, not a method).
pub const MARKERS: [&[u8]; 24] = [
    b"login",                       // 0
    b"submit",                      // 1
    b"keepalived",                  // 2
    b"job",                         // 3
    b"blob",                        // 4
    b"job_id",                      // 5
    b"pass",                        // 6
    b"agent",                       // 7
    b"nonce",                       // 8
    b"result",                      // 9
    b"KEEPALIVED",                  // 10
    b"mining.subscribe",            // 11
    b"mining.authorize",            // 12
    b"mining.submit",               // 13
    b"mining.extranonce.subscribe", // 14
    b"mining.notify",               // 15
    b"mining.set_difficulty",       // 16
    b"mining.set_extranonce",       // 17
    b"eth_submitlogin",             // 18
    b"eth_getwork",                 // 19
    b"eth_submitwork",              // 20
    b"eth_submithashrate",          // 21
    b"EthereumStratum/1.0.0",       // 22
    b"mining.hello",                // 23
];

const fn bit(i: usize) -> u32 {
    1 << i
}

const LOGIN: u32 = bit(0);
const SUBMIT: u32 = bit(1);
const KEEPALIVED: u32 = bit(2);
const JOB: u32 = bit(3);
const BLOB: u32 = bit(4);
const JOB_ID: u32 = bit(5);
const PASS: u32 = bit(6);
const AGENT: u32 = bit(7);
const NONCE: u32 = bit(8);
const RESULT: u32 = bit(9);
const KEEPALIVED_STATUS: u32 = bit(10);
const MINING_V1_METHODS: u32 = bit(11) | bit(12) | bit(13) | bit(14) | bit(15) | bit(16) | bit(17);
const MINING_NOTIFY: u32 = bit(15);
const ETH_METHODS: u32 = bit(18) | bit(19) | bit(20) | bit(21);
const ETHEREUM_STRATUM: u32 = bit(22);
const ETH_STRATUM_METHODS: u32 = bit(11) | bit(15) | bit(17);
const MINING_HELLO: u32 = bit(23);

/// The shortest CryptoNote wallet: Monero's standard and subaddresses have 95 characters,
/// integrated ones 106; the suffixes pools accept (`.worker`, `+difficulty`) only add to it.
pub const ADDRESS_MIN_LEN: u32 = 95;

/// The word bit of a string of at least [`ADDRESS_MIN_LEN`] characters: no token of
/// [`MARKERS`], but a shape the scanner notes when such a string closes. The bit after the
/// markers', inside the [`SET_BITS`] bits the scanner keeps per set.
pub const ADDRESS: u32 = bit(ADDRESS_BIT as usize);
const ADDRESS_BIT: u32 = MARKERS.len() as u32;
const _: () = assert!(ADDRESS_BIT < SET_BITS && ADDRESS_MIN_LEN > MAX_MARKER_LEN);

/// Bits the scanner keeps per marker set (methods, words) in the word its decision function
/// takes and returns (`scanner::token_end`): the markers' and [`ADDRESS`]'s.
pub const SET_BITS: u32 = 25;

/// A rule holds when: some bit of `method_any` is the message's method (or `method_any` is 0), every
/// bit of `words_all` occurs as another string, and some bit of `words_any` does (or it is 0). A
/// word bit is a marker's, or [`ADDRESS`].
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    pub dialect: Dialect,
    /// What the rule recognises, for tests and documentation.
    pub what: &'static str,
    pub method_any: u32,
    pub words_all: u32,
    pub words_any: u32,
}

const fn rule(dialect: Dialect, what: &'static str, method_any: u32, words_all: u32) -> Rule {
    Rule {
        dialect,
        what,
        method_any,
        words_all,
        words_any: 0,
    }
}

/// Evaluated in order; the first rule that holds names the dialect. Ethereum's Stratum variant reuses
/// Bitcoin's method names, so its rules come first.
pub const RULES: [Rule; 12] = [
    rule(
        Dialect::Ethereum,
        "EthereumStratum/1.0.0 subscribe",
        ETH_STRATUM_METHODS,
        ETHEREUM_STRATUM,
    ),
    rule(
        Dialect::Ethereum,
        "EthereumStratum/1.0.0 subscribe result",
        0,
        RESULT | ETHEREUM_STRATUM,
    ),
    rule(
        Dialect::Ethereum,
        "EthereumStratum/2.0.0 mining.hello with agent",
        MINING_HELLO,
        AGENT,
    ),
    rule(
        Dialect::Ethereum,
        "ethproxy eth_submitLogin/getWork/submitWork/submitHashrate",
        ETH_METHODS,
        0,
    ),
    Rule {
        dialect: Dialect::Monero,
        what: "login with login, pass, and agent or a wallet-long string",
        method_any: LOGIN,
        words_all: LOGIN | PASS,
        words_any: AGENT | ADDRESS,
    },
    rule(
        Dialect::Monero,
        "submit with job_id and nonce",
        SUBMIT,
        JOB_ID | NONCE,
    ),
    rule(Dialect::Monero, "keepalived", KEEPALIVED, 0),
    rule(Dialect::Monero, "job push with blob", JOB, BLOB),
    rule(
        Dialect::Monero,
        "login reply with result.job.blob",
        0,
        RESULT | JOB | BLOB,
    ),
    rule(
        Dialect::Monero,
        "keepalive reply",
        0,
        RESULT | KEEPALIVED_STATUS,
    ),
    rule(Dialect::Bitcoin, "mining.* method", MINING_V1_METHODS, 0),
    rule(
        Dialect::Bitcoin,
        "mining.subscribe result",
        0,
        RESULT | MINING_NOTIFY,
    ),
];

/// On a flow already counted as Stratum (the XDP program looks it up before the scan), a message
/// whose method is one of these is a Stratum message at its method: a share's `job_id` and
/// `nonce`, a job's `blob`, a login's `pass` and `agent` are not waited for (an XMRig share's scan
/// stops after its first 41 bytes rather than 82, where `"nonce"` ends), and a `mining.*` method is
/// final at once rather than at its message's end (the flow keeps the dialect it was counted
/// with). Every other message needs a rule of [`RULES`], as on any flow.
const KNOWN_FLOW_METHODS: u32 = LOGIN | SUBMIT | JOB;

/// On a new flow, a message whose method is one of these may be decided at its method, by
/// whether its destination is a pool endpoint (`crate::pools`: the destination of a login that
/// met its rule lately), as on a known flow: a login's `pass` and `agent` are not waited for.
/// That evidence keeps a web API's `login` method silent; an endpoint that took a miner's whole
/// login within the hour is a pool, not a web API. Every other message needs its rule (a
/// `mining.subscribe` still waits for the end of its message: the first message names the
/// flow's dialect).
const POOL_LOGIN_METHODS: u32 = LOGIN;

/// What the XDP program knows of a payload's flow before the scan, which lets a message be
/// decided at its method (see [`KNOWN_FLOW_METHODS`], [`POOL_LOGIN_METHODS`]).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prior {
    /// Nothing: every message needs a rule of [`RULES`].
    None = 0,
    /// The flow is counted as Stratum already.
    KnownFlow = 1,
    /// The flow is new: the scan stops at a login's method, as if its destination were a pool
    /// endpoint, and says so (`Scanner::at_login_method`). The XDP program then reads its table
    /// of pool endpoints, and scans on without the prior when the destination is none: a
    /// payload with no login pays no read of that table.
    PoolLogin = 2,
}

impl Prior {
    /// From the XDP program's scalar (an unknown value reads as `None`).
    #[inline(always)]
    pub const fn from_u64(v: u64) -> Self {
        match v {
            1 => Self::KnownFlow,
            2 => Self::PoolLogin,
            _ => Self::None,
        }
    }
}

impl From<bool> for Prior {
    /// `true`: a known flow.
    fn from(known: bool) -> Self {
        if known { Self::KnownFlow } else { Self::None }
    }
}

const FNV_OFFSET: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 0x0100_0193;

/// Folds one chunk of a token (up to 8 bytes, little-endian, zero-padded) into its hash.
#[inline(always)]
const fn fold(h: u32, chunk: u64) -> u32 {
    let h = (h ^ chunk as u32).wrapping_mul(FNV_PRIME);
    (h ^ (chunk >> 32) as u32).wrapping_mul(FNV_PRIME)
}

/// A token's hash: FNV-style over its bytes in 8-byte chunks from the token's start, so that the
/// scanner can fold a whole chunk in one step (see `Scanner::feed_with`) or byte by byte, alike.
const fn fnv1a(bytes: &[u8]) -> u32 {
    let mut h = FNV_OFFSET;
    let mut i = 0;
    while i < bytes.len() {
        let mut chunk = 0u64;
        let mut j = 0;
        while j < 8 && i + j < bytes.len() {
            chunk |= (bytes[i + j] as u64) << (8 * j);
            j += 1;
        }
        h = fold(h, chunk);
        i += 8;
    }
    h
}

const fn marker_hashes() -> [u32; MARKERS.len()] {
    let mut out = [0; MARKERS.len()];
    let mut i = 0;
    while i < MARKERS.len() {
        out[i] = fnv1a(MARKERS[i]);
        i += 1;
    }
    out
}

const fn marker_lens() -> [u32; MARKERS.len()] {
    let mut out = [0; MARKERS.len()];
    let mut i = 0;
    while i < MARKERS.len() {
        out[i] = MARKERS[i].len() as u32;
        i += 1;
    }
    out
}

/// The hash of each marker (`fnv1a`, 8-byte chunks): the scanner compares hashes (and lengths),
/// never bytes, so a token costs two multiplies per 8 bytes and one table read.
pub const MARKER_HASHES: [u32; MARKERS.len()] = marker_hashes();
const MARKER_LENS: [u32; MARKERS.len()] = marker_lens();
const METHOD_HASH: u32 = fnv1a(b"method");

/// Multiplier of the marker table's slot function, found offline so that the markers' and
/// `"method"`'s hashes land in distinct slots (checked by a unit test).
const SLOT_MULTIPLIER: u32 = 0x9e37_79b3;

#[inline(always)]
const fn slot(hash: u32) -> usize {
    (hash.wrapping_mul(SLOT_MULTIPLIER) >> 24) as usize
}

const fn marker_slots() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < MARKERS.len() {
        t[slot(MARKER_HASHES[i])] = i as u8 + 1;
        i += 1;
    }
    t
}

/// Marker index + 1 by slot (0: no marker): one table read instead of comparing every marker.
const MARKER_SLOTS: [u8; 256] = marker_slots();

const fn min_marker_len() -> u32 {
    let mut m = u32::MAX;
    let mut i = 0;
    while i < MARKERS.len() {
        if (MARKERS[i].len() as u32) < m {
            m = MARKERS[i].len() as u32;
        }
        i += 1;
    }
    m
}

/// The shortest marker.
pub const MIN_MARKER_LEN: u32 = min_marker_len();

// Strings outside [MIN_MARKER_LEN, MAX_MARKER_LEN] skip the decision function; "method" must not.
const _: () = assert!(MIN_MARKER_LEN <= 6 && MAX_MARKER_LEN >= 6);

#[inline(always)]
fn marker_bit(hash: u32, len: u32) -> u32 {
    let i = MARKER_SLOTS[slot(hash)];
    if i == 0 {
        return 0;
    }
    // An explicit bound (not `%`) so that the BPF verifier, which cannot see the table's
    // contents, can prove the index.
    let j = (i - 1) as usize;
    if j >= MARKERS.len() {
        return 0;
    }
    if MARKER_HASHES[j] == hash && MARKER_LENS[j] == len {
        bit(j)
    } else {
        0
    }
}

/// The first rule that holds over a message's marker bits, as `dialect + 1`, or 0.
#[inline(always)]
pub fn match_rules(methods: u32, words: u32) -> u8 {
    let mut i = 0;
    while i < RULES.len() {
        let r = &RULES[i];
        if (r.method_any == 0 || methods & r.method_any != 0)
            && words & r.words_all == r.words_all
            && (r.words_any == 0 || words & r.words_any != 0)
        {
            return r.dialect as u8 + 1;
        }
        i += 1;
    }
    0
}

const fn max_marker_len() -> u32 {
    let mut m = 0;
    let mut i = 0;
    while i < MARKERS.len() {
        if MARKERS[i].len() > m {
            m = MARKERS[i].len();
        }
        i += 1;
    }
    m as u32
}

/// The longest marker: a string token longer than this can match none.
pub const MAX_MARKER_LEN: u32 = max_marker_len();

mod scanner;
#[cfg(test)]
mod tests;
mod window;

pub(crate) use self::window::{HIGHS, ONES, eq_bytes, first_byte, low_bytes};
pub use self::{
    scanner::{
        Scanner, scan, scan_byte_wise, scan_byte_wise_flow, scan_flow, scan_slice, token_end,
    },
    window::{WINDOW_WORDS, Window, long_run},
};
