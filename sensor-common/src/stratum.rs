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
//! Guards against the known false-positive traps:
//! - A message must begin with `{` at the start of the segment, or right after a newline that follows
//!   `}` (the end of the previous JSON message). HTML, JavaScript and HTTP bodies that quote a login
//!   object begin otherwise and are never inspected.
//! - `"method"` and `"id"` alone mean nothing: each rule needs a mining-specific method or a
//!   combination of keys (a login also needs `"login"`, `"pass"` and `"agent"`).
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
pub const MARKERS: [&[u8]; 23] = [
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
    b"eth_submitLogin",             // 18
    b"eth_getWork",                 // 19
    b"eth_submitWork",              // 20
    b"eth_submitHashrate",          // 21
    b"EthereumStratum/1.0.0",       // 22
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

/// A rule holds when: some bit of `method_any` is the message's method (or `method_any` is 0), every
/// bit of `words_all` occurs as another string, and some bit of `words_any` does (or it is 0).
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
pub const RULES: [Rule; 11] = [
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
        "ethproxy eth_submitLogin/getWork/submitWork/submitHashrate",
        ETH_METHODS,
        0,
    ),
    rule(
        Dialect::Monero,
        "login with login, pass and agent",
        LOGIN,
        LOGIN | PASS | AGENT,
    ),
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

/// The scanner's state between bytes. `#[repr(C)]` plain data, so that the XDP program can keep it
/// in memory across `bpf_loop` iterations: the verifier then checks one step, not every path
/// through every byte of the window.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Scanner {
    /// Bytes of the token's current chunk not yet folded into `hash` (`token_len % 8` of them).
    pending: u64,
    hash: u32,
    token_len: u32,
    methods: u32,
    words: u32,
    /// A Bitcoin match waits for the end of its message: EthereumStratum reuses `mining.subscribe`
    /// and names itself only in a later parameter. Every other dialect is final at once.
    provisional: u8,
    in_str: u8,
    escaped: u8,
    /// The previous string token was the key "method": the next one is the method's name.
    after_method: u8,
    /// Waiting for the first non-blank byte of a message; it must be `{`.
    at_start: u8,
    /// The current message began well (with `{` at a message boundary).
    in_msg: u8,
    /// The last byte that was no carriage return, which a line end reads (a message may begin
    /// after `}` and a line end). The byte-wise step keeps it; `feed_with` sets it from the window
    /// only before a line end or carriage return.
    prev: u8,
    _pad: u8,
}

impl Default for Scanner {
    fn default() -> Self {
        Self::new()
    }
}

impl Scanner {
    pub const fn new() -> Self {
        Self {
            pending: 0,
            hash: FNV_OFFSET,
            token_len: 0,
            methods: 0,
            words: 0,
            provisional: 0,
            in_str: 0,
            escaped: 0,
            after_method: 0,
            at_start: 1,
            in_msg: 0,
            prev: 0,
            _pad: 0,
        }
    }

    /// Feeds one byte. Returns `dialect + 1` once a message is recognised (the caller stops), else 0.
    #[inline(always)]
    pub fn step(&mut self, b: u8) -> u8 {
        self.step_with(b, token_end)
    }

    /// [`Scanner::step`] with the token-end decision supplied by the caller: the XDP program
    /// passes a BPF global function wrapping [`token_end`], which the verifier checks once instead
    /// of on every path through every byte.
    #[inline(always)]
    pub fn step_with(&mut self, b: u8, end: impl Fn(u64, u32, u32) -> u64) -> u8 {
        if b == b'\n' {
            if self.provisional != 0 {
                return self.provisional;
            }
            // JSON strings hold no raw newline, so this ends a message even when the segment began
            // inside a string of the previous one. A new message may follow only a closing brace.
            self.at_start = (self.prev == b'}') as u8;
            self.in_str = 0;
            self.escaped = 0;
            self.in_msg = 0;
            self.after_method = 0;
            self.methods = 0;
            self.words = 0;
            self.prev = b;
            return 0;
        }
        if b != b'\r' {
            self.prev = b;
        }
        if self.in_str != 0 {
            if self.escaped != 0 {
                self.escaped = 0;
            } else if b == b'\\' {
                self.escaped = 1;
            } else if b == b'"' {
                return self.close(end);
            }
            self.pending |= (b as u64) << (8 * (self.token_len & 7));
            self.token_len += 1;
            if self.token_len & 7 == 0 {
                self.hash = fold(self.hash, self.pending);
                self.pending = 0;
            }
            return 0;
        }
        if b == b' ' || b == b'\t' || b == b'\r' {
            return 0;
        }
        if self.at_start != 0 {
            self.at_start = 0;
            self.in_msg = (b == b'{') as u8;
            return 0;
        }
        if b == b'"' {
            self.in_str = 1;
            self.hash = FNV_OFFSET;
            self.token_len = 0;
            self.pending = 0;
        } else if b != b':' {
            self.after_method = 0;
        }
        0
    }

    /// Feeds the bytes at `pos` of the window: a whole token at a time where it can. Outside a
    /// string, the blanks and punctuation before the next quote go at once (up to 8 bytes), and the
    /// opening quote; inside one, up to the end of the token's current 8-byte chunk, and the
    /// closing quote when it follows. A short key like `"jsonrpc"` with its punctuation is then one
    /// step. Anything that needs the byte-wise rules (a message's first byte, line ends,
    /// backslashes and the byte they escape) goes through [`Scanner::step_with`] alone, so the
    /// result is always what stepping byte by byte gives (the `stratum_scan` fuzz target and the
    /// `fast_and_byte_wise_scans_agree` test hold the two to that). Returns how many bytes were
    /// consumed and `dialect + 1` or 0.
    ///
    /// Unlike the byte-wise step, it does not keep the last byte in `prev` at every step: only a
    /// line end reads it, and line ends and carriage returns always go through the byte-wise step,
    /// which takes it from the window (see `byte_wise` below).
    #[inline(always)]
    pub fn feed_with(
        &mut self,
        buf: &Window,
        pos: usize,
        len: usize,
        end: impl Fn(u64, u32, u32) -> u64 + Copy,
        run: impl Fn(usize, usize) -> u64,
    ) -> (usize, u8) {
        let p = pos & (WINDOW - 1);
        if self.escaped != 0 || self.at_start != 0 {
            return self.byte_wise(buf, p, end);
        }
        let mut used = 0;
        if self.in_str == 0 {
            let w = buf.load8(p);
            // Line ends and the other control bytes (a tab is rare enough) take the byte-wise step.
            let stop = first_of(w, b'"') | below_blank(w);
            let k = if stop == 0 { 8 } else { first_byte(stop) };
            if k > 0 && self.after_method != 0 {
                // Only blanks and the colon may stand between "method" and its value.
                let blank = eq_bytes(w, b' ') | eq_bytes(w, b'\t') | eq_bytes(w, b':');
                if !blank & HIGHS & low_bytes(k) != 0 {
                    self.after_method = 0;
                }
            }
            if k >= 8 {
                return (8, 0);
            }
            if (w >> (8 * k)) as u8 != b'"' {
                // A line end: the byte-wise step takes it.
                if k == 0 {
                    return self.byte_wise(buf, p, end);
                }
                return (k, 0);
            }
            self.in_str = 1;
            self.hash = FNV_OFFSET;
            self.token_len = 0;
            self.pending = 0;
            used = k + 1;
            if pos + used >= len {
                return (used, 0);
            }
        } else if self.token_len > MAX_MARKER_LEN {
            // A string already longer than any marker (a wallet, an agent, a job blob) is only
            // walked, several words a step (see `long_run`).
            let r = run(pos, len);
            let used = (r & RUN_USED) as usize;
            self.token_len += used as u32;
            if r & RUN_STOPPED != 0 && (r >> RUN_STOP) as u8 == b'"' {
                return (used + 1, self.close(end));
            }
            if used == 0 {
                return self.byte_wise(buf, p, end);
            }
            return (used, 0);
        }
        let q = (pos + used) & (WINDOW - 1);
        let w = buf.load8(q);
        let stop = string_stop(w);
        let k = if stop == 0 { 8 } else { first_byte(stop) };
        // Here the string is no longer than a marker (a longer one went to `run` above): it is
        // hashed chunk by chunk from its first byte, so a step takes at most the rest of its
        // current chunk.
        let done = (self.token_len & 7) as usize;
        let m = if k < 8 - done { k } else { 8 - done };
        if m > 0 {
            self.pending |= (w & low_bytes(m)) << (8 * done);
            self.token_len += m as u32;
            if self.token_len & 7 == 0 {
                self.hash = fold(self.hash, self.pending);
                self.pending = 0;
            }
            used += m;
        }
        if m == k && k < 8 && (w >> (8 * k)) as u8 == b'"' {
            return (used + 1, self.close(end));
        }
        if used == 0 {
            // A backslash or line end inside a string.
            return self.byte_wise(buf, p, end);
        }
        (used, 0)
    }

    /// The byte at `p` through the byte-wise rules, with `prev` as they would have it. A line end
    /// reads `prev`: the last byte before it that is no carriage return. Both go byte-wise (they
    /// are control bytes), so the first of a run of carriage returns, or a line end right after
    /// another byte, records the byte before it here; later ones in the run leave it.
    #[inline(always)]
    fn byte_wise(
        &mut self,
        buf: &Window,
        p: usize,
        end: impl Fn(u64, u32, u32) -> u64 + Copy,
    ) -> (usize, u8) {
        let b = buf.byte(p);
        if (b == b'\n' || b == b'\r') && p > 0 {
            let before = buf.byte(p - 1);
            if before != b'\r' {
                self.prev = before;
            }
        }
        (1, self.step_with(b, end))
    }

    /// A closing quote: the string token ends, and a candidate marker goes to the decision
    /// function. Returns `dialect + 1` once a message is recognised, else 0.
    #[inline(always)]
    fn close(&mut self, end: impl Fn(u64, u32, u32) -> u64) -> u8 {
        // (The byte-wise step has already made the quote `prev`; `feed_with` keeps none.)
        self.in_str = 0;
        if self.in_msg == 0 {
            return 0;
        }
        if self.token_len & 7 != 0 {
            self.hash = fold(self.hash, self.pending);
        }
        if self.token_len < MIN_MARKER_LEN || self.token_len > MAX_MARKER_LEN {
            // No marker has this length (nor has "method"): only the method-name expectation
            // ends, without calling the decision function.
            self.after_method = 0;
            return 0;
        }
        if MARKER_SLOTS[slot(self.hash)] == 0 {
            // No marker hashes to this slot: what `token_end` would decide for a string that is
            // no marker, without the call. Most strings of a message (`"jsonrpc"`, `"params"`,
            // values) end here.
            self.after_method =
                (self.after_method == 0 && self.hash == METHOD_HASH && self.token_len == 6) as u8;
            return 0;
        }
        let packed = end(self.pack(), self.hash, self.token_len);
        self.methods = (packed & MASK24) as u32;
        self.words = ((packed >> 24) & MASK24) as u32;
        self.after_method = ((packed >> 48) & 1) as u8;
        self.provisional = ((packed >> 49) & 3) as u8;
        ((packed >> 52) & 3) as u8
    }

    #[inline(always)]
    fn pack(&self) -> u64 {
        (self.methods as u64 & MASK24)
            | ((self.words as u64 & MASK24) << 24)
            | ((self.after_method as u64 & 1) << 48)
            | ((self.provisional as u64 & 3) << 49)
    }

    /// At the end of the window: a provisional match stands.
    #[inline(always)]
    pub fn finish(&self) -> u8 {
        self.provisional
    }
}

const MASK24: u64 = (1 << 24) - 1;

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

pub(crate) const ONES: u64 = 0x0101_0101_0101_0101;
const LOWS: u64 = 0x7f7f_7f7f_7f7f_7f7f;
pub(crate) const HIGHS: u64 = 0x8080_8080_8080_8080;
const BLANKS: u64 = ONES * b' ' as u64;

/// The high bit of each byte of `w` equal to `c`, exactly (no borrow between bytes, unlike the
/// shorter `(v - ONES) & !v` test): the masks are combined and cut at any byte.
#[inline(always)]
const fn eq_bytes(w: u64, c: u8) -> u64 {
    let v = w ^ (ONES * c as u64);
    !(((v & LOWS) + LOWS) | v) & HIGHS
}

/// Flags bytes of `w` equal to `c`; only the lowest flag is sure to be right (the borrow of the
/// subtraction can flag the byte above a match), which is all that finding the first needs.
#[inline(always)]
const fn first_of(w: u64, c: u8) -> u64 {
    let v = w ^ (ONES * c as u64);
    v.wrapping_sub(ONES) & !v & HIGHS
}

/// Flags bytes of `w` below 0x20 (control bytes: line ends, tab); as for [`first_of`], only the
/// lowest flag is sure.
#[inline(always)]
const fn below_blank(w: u64) -> u64 {
    w.wrapping_sub(BLANKS) & !w & HIGHS
}

/// Flags the bytes of `w` that end a string or need the byte-wise step inside one: quotes,
/// backslashes, control bytes. As for [`first_of`], only the lowest flag is sure.
#[inline(always)]
const fn string_stop(w: u64) -> u64 {
    first_of(w, b'"') | first_of(w, b'\\') | below_blank(w)
}

/// A mask of the low `n` bytes (0 ≤ n ≤ 8), without a shift by 64.
#[inline(always)]
pub(crate) const fn low_bytes(n: usize) -> u64 {
    ((1u64 << (4 * n)) << (4 * n)).wrapping_sub(1)
}

/// Words walked in one step inside a long string: a 95-character wallet takes two steps.
const LONG_WORDS: usize = 8;
const RUN_USED: u64 = 0xffff;
const RUN_STOP: u32 = 16;
const RUN_STOPPED: u64 = 1 << 24;

/// Walks the window from `pos` inside a string, up to [`LONG_WORDS`] words, to the first byte that
/// can end the string or needs the byte-wise step (a quote, a backslash, a control byte). Returns,
/// packed: the bytes walked past, and that byte with a flag that one was found.
#[inline(always)]
pub fn long_run(buf: &Window, pos: usize, len: usize) -> u64 {
    let mut used = 0;
    let mut i = 0;
    while i < LONG_WORDS {
        let at = pos + used;
        if at >= len {
            break;
        }
        let w = buf.load8(at & (WINDOW - 1));
        let stop = string_stop(w);
        if stop != 0 {
            let k = first_byte(stop);
            used += k;
            return used as u64 | ((w >> (8 * (k & 7))) & 0xff) << RUN_STOP | RUN_STOPPED;
        }
        used += 8;
        i += 1;
    }
    used as u64
}

/// Words in a [`Window`]: one more than the payload needs, so that 8 bytes can be read at any
/// position of it.
pub const WINDOW_WORDS: usize = WINDOW / 8 + 1;

/// The payload bytes the scanner reads, stored as 8-byte words, one word more than the payload
/// needs so that 8 bytes can be read from any position in one load (`load8`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Window {
    words: [u64; WINDOW_WORDS],
}

impl Default for Window {
    fn default() -> Self {
        Self::new()
    }
}

impl Window {
    pub const fn new() -> Self {
        Self {
            words: [0; WINDOW_WORDS],
        }
    }

    /// The window as bytes, for filling it.
    pub fn bytes_mut(&mut self) -> &mut [u8; WINDOW_WORDS * 8] {
        // SAFETY: an array of u64 has no padding and every byte pattern is a valid u64; the
        // array of bytes has the same size and a weaker alignment.
        unsafe { &mut *(self.words.as_mut_ptr() as *mut [u8; WINDOW_WORDS * 8]) }
    }

    /// The byte at `p` (< WINDOW).
    #[inline(always)]
    pub fn byte(&self, p: usize) -> u8 {
        let p = p & (WINDOW - 1);
        // SAFETY: p < WINDOW: inside `words`, whose bytes are plain data.
        unsafe { *self.words.as_ptr().cast::<u8>().add(p) }
    }

    /// Makes the 8 bytes from `len` (≤ WINDOW) blanks, which neither end a token nor change any
    /// decision: the scanner reads 8 bytes at a time and may read past the payload's end, into
    /// whatever an earlier packet left there. [`scan`] and the XDP program's scan call it first.
    #[inline(always)]
    pub fn seal(&mut self, len: usize) {
        let len = if len > WINDOW { WINDOW } else { len };
        let bytes = self.bytes_mut();
        let mut i = 0;
        while i < 8 {
            bytes[len + i] = b' ';
            i += 1;
        }
    }

    /// The 8 bytes from `p` (< WINDOW) as a little-endian word (past the payload: the blanks of
    /// [`Window::seal`]), in one unaligned load (see [`unaligned_u64`]).
    #[inline(always)]
    pub fn load8(&self, p: usize) -> u64 {
        let p = p & (WINDOW - 1);
        // SAFETY: p + 8 <= WINDOW + 7 < WINDOW_WORDS * 8: inside `words`, whose bytes are plain
        // data.
        u64::from_le(unsafe { unaligned_u64(self.words.as_ptr().cast::<u8>().add(p)) })
    }
}

/// Eight bytes at `at`, which need not be aligned. For BPF, LLVM turns an unaligned load into
/// eight byte loads (or, with its `allows-misaligned-mem-access` feature, also merges stores to
/// packed stack structures, which the verifier refuses); the instruction written out here is one
/// load, which the verifier allows from a map value on CPUs with efficient unaligned access
/// (x86-64, arm64). It replaced two aligned loads and four shifts.
///
/// # Safety
/// `at..at + 8` must be readable.
#[cfg(target_arch = "bpf")]
#[inline(always)]
unsafe fn unaligned_u64(at: *const u8) -> u64 {
    let v: u64;
    // SAFETY: the caller's; the instruction only reads those 8 bytes.
    unsafe {
        core::arch::asm!(
            "{0} = *(u64 *)({1} + 0)",
            out(reg) v,
            in(reg) at,
            options(readonly, nostack, preserves_flags)
        );
    }
    v
}

#[cfg(not(target_arch = "bpf"))]
#[inline(always)]
unsafe fn unaligned_u64(at: *const u8) -> u64 {
    // SAFETY: the caller's.
    unsafe { core::ptr::read_unaligned(at.cast::<u64>()) }
}

/// Index (0..8) of the lowest byte flagged in a non-zero `first_of`/`eq_bytes` result, without a count-
/// trailing-zeros instruction (BPF has none): the lowest flag is `1 << (8k + 7)`, and multiplying
/// `1 << 8k` by 0x0001020304050607 puts `k` in the top byte.
#[inline(always)]
const fn first_byte(flags: u64) -> usize {
    let lowest = flags & flags.wrapping_neg();
    ((lowest >> 7).wrapping_mul(0x0001_0203_0405_0607) >> 56) as usize
}

/// What a closing quote decides, as a pure function of scalars so that the XDP program can make
/// it a BPF global function. `packed` holds the message's method markers (bits 0..24), other
/// markers (24..48), the after-`"method"` flag (48) and a provisional Bitcoin match (49..51);
/// `hash` and `len` describe the string that just ended. Returns the same layout, plus the
/// recognised `dialect + 1` at bits 52..54 (0: keep scanning).
#[inline(always)]
pub fn token_end(packed: u64, hash: u32, len: u32) -> u64 {
    let mut methods = (packed & MASK24) as u32;
    let mut words = ((packed >> 24) & MASK24) as u32;
    let mut after_method = (packed >> 48) & 1;
    let mut provisional = (packed >> 49) & 3;
    let mut found = 0u64;
    let m = marker_bit(hash, len);
    if after_method != 0 {
        methods |= m;
        after_method = 0;
    } else if hash == METHOD_HASH && len == 6 {
        after_method = 1;
    } else {
        words |= m;
    }
    if m != 0 {
        let d = match_rules(methods, words) as u64;
        if d == Dialect::Bitcoin as u64 + 1 {
            provisional = d;
        } else if d != 0 {
            found = d;
        }
    }
    (methods as u64 & MASK24)
        | ((words as u64 & MASK24) << 24)
        | (after_method << 48)
        | (provisional << 49)
        | (found << 52)
}

/// Scans the first `len` bytes of `buf` (a TCP payload) for a Stratum message and returns its
/// dialect as `dialect + 1`, or 0 when there is none. Several messages in one segment are each
/// checked; the first that matches decides.
pub fn scan(buf: &mut Window, len: usize) -> u8 {
    buf.seal(len);
    let buf = &*buf;
    let mut s = Scanner::new();
    let mut pos = 0;
    while pos < WINDOW && pos < len {
        let (advance, d) = s.feed_with(buf, pos, len, token_end, |p, l| long_run(buf, p, l));
        if d != 0 {
            return d;
        }
        pos += advance;
    }
    s.finish()
}

/// The reference the fast scan is held to: [`Scanner::step`] on each of the first `len` bytes of
/// `payload` (at most [`WINDOW`]), then [`Scanner::finish`]. For tests and the fuzz target.
pub fn scan_byte_wise(payload: &[u8], len: usize) -> u8 {
    let mut s = Scanner::new();
    for &b in payload.iter().take(len.min(WINDOW)) {
        let d = s.step(b);
        if d != 0 {
            return d;
        }
    }
    s.finish()
}

/// Convenience for callers holding a slice (tests, userspace): copies up to [`WINDOW`] bytes.
pub fn scan_slice(payload: &[u8]) -> Option<Dialect> {
    let mut buf = Window::new();
    let n = payload.len().min(WINDOW);
    buf.bytes_mut()[..n].copy_from_slice(&payload[..n]);
    match scan(&mut buf, n) {
        0 => None,
        d => Dialect::from_index(d - 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Option<Dialect> {
        scan_slice(s.as_bytes())
    }

    const WALLET: &str = "44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A";

    #[test]
    fn the_slot_table_separates_every_marker_and_method() {
        let mut seen = std::collections::HashSet::new();
        for h in MARKER_HASHES.iter().chain([&METHOD_HASH]) {
            assert!(seen.insert(slot(*h)), "slot collision");
        }
        for (i, m) in MARKERS.iter().enumerate() {
            assert_eq!(marker_bit(fnv1a(m), m.len() as u32), bit(i));
        }
        assert_eq!(marker_bit(fnv1a(b"params"), 6), 0);
    }

    #[test]
    fn markers_are_unique_and_hashes_do_not_collide() {
        for i in 0..MARKERS.len() {
            for j in 0..i {
                assert_ne!(MARKERS[i], MARKERS[j]);
                assert_ne!(MARKER_HASHES[i], MARKER_HASHES[j], "{i} {j}");
            }
            assert_ne!(MARKER_HASHES[i], METHOD_HASH);
        }
    }

    #[test]
    fn xmrig_login_compact() {
        let login = format!(
            "{{\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"login\",\"params\":{{\"login\":\"{WALLET}\",\"pass\":\"x\",\"agent\":\"XMRig/6.16.0 (Linux x86_64) libuv/1.42.0 gcc/5.4.0\",\"algo\":[\"rx/0\",\"cn/2\"]}}}}\n"
        );
        assert_eq!(d(&login), Some(Dialect::Monero));
    }

    #[test]
    fn xmr_stak_and_cpuminer_order_with_spaces() {
        let a = format!(
            "{{\"method\": \"login\", \"params\": {{\"login\": \"{WALLET}\", \"pass\": \"x\", \"agent\": \"xmr-stak-cpu/1.0.0\"}}, \"id\": 1}}\n"
        );
        assert_eq!(d(&a), Some(Dialect::Monero));
        let b = format!(
            "{{\"method\":\"login\",\"params\":{{\"login\":\"{WALLET}\",\"pass\":\"w1\",\"agent\":\"cpuminer-multi/1.3\"}},\"id\":2}}\n"
        );
        assert_eq!(d(&b), Some(Dialect::Monero));
    }

    #[test]
    fn monero_other_messages() {
        assert_eq!(
            d(
                "{\"id\":7,\"jsonrpc\":\"2.0\",\"method\":\"submit\",\"params\":{\"id\":\"s1\",\"job_id\":\"j\",\"nonce\":\"0a0b0c0d\",\"result\":\"ff\",\"algo\":\"rx/0\"}}\n"
            ),
            Some(Dialect::Monero)
        );
        assert_eq!(
            d(
                "{\"id\":9,\"jsonrpc\":\"2.0\",\"method\":\"keepalived\",\"params\":{\"id\":\"s1\"}}\n"
            ),
            Some(Dialect::Monero)
        );
        assert_eq!(
            d(
                "{\"jsonrpc\":\"2.0\",\"method\":\"job\",\"params\":{\"blob\":\"0101\",\"job_id\":\"j2\",\"target\":\"ffff\"}}\n"
            ),
            Some(Dialect::Monero)
        );
        assert_eq!(
            d(
                "{\"id\":1,\"jsonrpc\":\"2.0\",\"error\":null,\"result\":{\"id\":\"s\",\"job\":{\"blob\":\"0707\",\"job_id\":\"1\"},\"status\":\"OK\"}}\n"
            ),
            Some(Dialect::Monero)
        );
        assert_eq!(
            d(
                "{\"id\":3,\"jsonrpc\":\"2.0\",\"error\":null,\"result\":{\"status\":\"KEEPALIVED\"}}\n"
            ),
            Some(Dialect::Monero)
        );
    }

    #[test]
    fn bitcoin_and_ethereum() {
        assert_eq!(
            d(
                "{\"id\": 1, \"method\": \"mining.subscribe\", \"params\": [\"cpuminer-opt/3.x\"]}\n"
            ),
            Some(Dialect::Bitcoin)
        );
        assert_eq!(
            d("{\"id\":null,\"method\":\"mining.notify\",\"params\":[\"a\"]}\n"),
            Some(Dialect::Bitcoin)
        );
        assert_eq!(
            d(
                "{\"id\":1,\"result\":[[[\"mining.notify\",\"ae68\"]],\"08000002\",4],\"error\":null}\n"
            ),
            Some(Dialect::Bitcoin)
        );
        assert_eq!(
            d(
                "{\"id\": 1, \"method\": \"mining.subscribe\", \"params\": [\"ethminer/0.19\", \"EthereumStratum/1.0.0\"]}\n"
            ),
            Some(Dialect::Ethereum)
        );
        assert_eq!(
            d(
                "{\"worker\": \"eth1.0\", \"jsonrpc\": \"2.0\", \"params\": [\"0x52bc44d5378309ee2abf1539bf71de1b7d7be3b5\", \"x\"], \"id\": 2, \"method\": \"eth_submitLogin\"}\n"
            ),
            Some(Dialect::Ethereum)
        );
    }

    #[test]
    fn second_message_after_newline_and_split_start() {
        // Tail of a previous message (split across segments, starting inside a string), then a new one.
        let s = "b2c3\",\"algo\":\"rx/0\"}}\n{\"id\":4,\"jsonrpc\":\"2.0\",\"method\":\"keepalived\",\"params\":{\"id\":\"x\"}}\n";
        assert_eq!(d(s), Some(Dialect::Monero));
        let two = "{\"id\":1,\"result\":true,\"error\":null}\n{\"id\":2,\"method\":\"mining.authorize\",\"params\":[\"u\",\"p\"]}\n";
        assert_eq!(d(two), Some(Dialect::Bitcoin));
    }

    #[test]
    fn false_positive_traps_stay_silent() {
        let html = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html><script>var x = {{\"method\":\"login\",\"params\":{{\"login\":\"{WALLET}\",\"pass\":\"x\",\"agent\":\"XMRig/6\"}}}};</script>"
        );
        assert_eq!(d(&html), None);
        // A JavaScript line that is itself a login object, but follows `;`, not a JSON message.
        let js = "var a = 1;\n{\"method\":\"login\",\"params\":{\"login\":\"a\",\"pass\":\"b\",\"agent\":\"c\"}}\n";
        assert_eq!(d(js), None);
        assert_eq!(
            d("{\"jsonrpc\":\"2.0\",\"method\":\"eth_blockNumber\",\"params\":[],\"id\":1}\n"),
            None
        );
        assert_eq!(
            d(
                "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"processId\":1,\"rootUri\":\"file:///x\"}}\n"
            ),
            None
        );
        // A web API's login without a miner's agent.
        assert_eq!(
            d(
                "{\"jsonrpc\":\"2.0\",\"method\":\"login\",\"params\":{\"login\":\"bob\",\"pass\":\"pw\"},\"id\":1}\n"
            ),
            None
        );
        // "submit" as a key or plain value, not a method.
        assert_eq!(
            d("{\"action\":\"submit\",\"job_id\":\"1\",\"nonce\":\"2\"}\n"),
            None
        );
        // Binary on a pool port.
        let bin: [u8; 16] = [
            0x16, 3, 1, 0, 0xa5, 1, 0, 0, 0xa1, 3, 3, b'{', b'"', 0, 0, 0,
        ];
        assert_eq!(scan_slice(&bin), None);
    }

    #[test]
    fn long_strings_end_at_every_alignment() {
        // The 8-byte skip must stop at a closing quote, backslash or newline wherever it falls.
        for pad in 0..20 {
            let wallet: String = "4".repeat(95 + pad);
            let login = format!(
                "{{\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"login\",\"params\":{{\"login\":\"{wallet}\",\"pass\":\"x\",\"agent\":\"XMRig/6.16.0\"}}}}\n"
            );
            assert_eq!(d(&login), Some(Dialect::Monero), "pad {pad}");
            let escaped = format!(
                "{{\"id\":1,\"note\":\"{}\\\"method\\\":\\\"keepalived\\\"\"}}\n",
                "n".repeat(30 + pad)
            );
            assert_eq!(d(&escaped), None, "pad {pad}: {escaped}");
            let two = format!(
                "{{\"id\":1,\"result\":\"{}\"}}\n{{\"id\":2,\"method\":\"mining.authorize\",\"params\":[]}}\n",
                "r".repeat(30 + pad)
            );
            assert_eq!(d(&two), Some(Dialect::Bitcoin), "pad {pad}");
        }
        assert_eq!(MAX_MARKER_LEN, 27);
        assert_eq!(eq_bytes(u64::from_le_bytes(*b"abcdefg\""), b'"'), 1 << 63);
        assert_eq!(eq_bytes(u64::from_le_bytes(*b"a!!!!!!!"), b' '), 0);
        assert_eq!(eq_bytes(u64::from_le_bytes(*b" !!!!!!!"), b' '), 0x80);
    }

    #[test]
    fn fast_and_byte_wise_scans_agree() {
        // Messages assembled from the pieces that steer the scanner (markers, "method", blanks,
        // escapes, line ends, long strings), cut at random lengths, with other bytes after the
        // cut as in the kernel's reused window.
        let mut pieces: Vec<Vec<u8>> = MARKERS
            .iter()
            .map(|m| format!("\"{}\"", std::str::from_utf8(m).unwrap()).into_bytes())
            .collect();
        for p in [
            "\"method\"",
            ":",
            ": ",
            ",",
            ", ",
            "{",
            "}",
            "[",
            "]",
            " ",
            "\t",
            "\r",
            "\n",
            "}\n",
            "}\r\n",
            "}\r\r\r\n",
            "\r\r\r\r\r\r\r\r\r\n",
            "\\",
            "\\\"",
            "\"",
            "1",
            "null",
            "\"x\"",
            "\"params\"",
            "\"id\"",
            "\"jsonrpc\"",
            "\"2.0\"",
            "\"rx/0\"",
            "\"abcdefgh\"",
            "\"abcdefghijklmnopqrstuvwxyz01\"",
            "{\"id\":1,",
            "\"method\":\"login\"",
            "\"method\" : \"mining.submit\"",
            "\"é\"",
            "\u{1}",
            "ÿ",
        ] {
            pieces.push(p.as_bytes().to_vec());
        }
        pieces.push(format!("\"{WALLET}\"").into_bytes());
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let mut found = [0usize; 4];
        for _ in 0..20_000 {
            let mut msg = Vec::new();
            if next(2) == 0 {
                msg.push(b'{');
            }
            while msg.len() < WINDOW + 40 {
                msg.extend_from_slice(&pieces[next(pieces.len())]);
            }
            for _ in 0..4 {
                let len = next(WINDOW + 1);
                let mut buf = Window::new();
                let n = msg.len().min(WINDOW);
                buf.bytes_mut()[..n].copy_from_slice(&msg[..n]);
                let fast = scan(&mut buf, len);
                let slow = scan_byte_wise(&msg, len);
                assert_eq!(
                    fast,
                    slow,
                    "len {len}: {}",
                    String::from_utf8_lossy(&msg[..len])
                );
                found[fast as usize] += 1;
            }
        }
        // The generator reaches every outcome, so the comparison covers them all.
        assert!(found.iter().all(|&n| n > 100), "{found:?}");
    }

    #[test]
    fn escaped_quotes_do_not_break_tokens() {
        let s = "{\"id\":1,\"note\":\"a \\\"method\\\": \\\"keepalived\\\"\",\"x\":1}\n";
        assert_eq!(d(s), None);
    }
}
