//! The scanner: one pass over the first [`WINDOW`] bytes of a payload that hashes every JSON
//! string token and, when a token that is a marker closes, applies [`RULES`](super::RULES).

use super::{
    ADDRESS_BIT, ADDRESS_MIN_LEN, Dialect, FNV_OFFSET, KNOWN_FLOW_METHODS, LOGIN, MARKER_SLOTS,
    MAX_MARKER_LEN, METHOD_HASH, MIN_MARKER_LEN, POOL_LOGIN_METHODS, Prior, SET_BITS, WINDOW, fold,
    marker_bit, match_rules, slot, window::*,
};

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
    /// Inside an escape: after its backslash, or before a `\u` escape's hex digits (see
    /// `ESCAPE_CHAR`, `ESCAPE_HEX`).
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
    /// Braces open in the current message (outside strings), wrapping: a line end inside an
    /// open message (1..=127) is a blank, as in pretty-printed JSON.
    depth: u8,
    /// The hex digits of a `\uXXXX` escape read so far, as a number.
    code: u16,
    /// A wallet-long string was noted among the words since the rules last ran (see `close`).
    fresh: u8,
    /// What is known of the payload's flow (a [`Prior`], the low 2 bits): on a flow already
    /// counted as Stratum, or a new one to a pool endpoint, a message's method may decide at once
    /// (see [`KNOWN_FLOW_METHODS`](super::KNOWN_FLOW_METHODS)). [`AT_LOGIN`] when the scan
    /// stopped at a login's method by [`Prior::PoolLogin`], no rule holding yet (a bit here, not
    /// a field: a 3-byte zeroed padding made the XDP program's scanner a `memset` call).
    known: u8,
    _pad: [u8; 4],
}

/// `Scanner::known`'s bit of a stop at a login's method.
const AT_LOGIN: u8 = 0x80;

impl Default for Scanner {
    fn default() -> Self {
        Self::new()
    }
}

impl Scanner {
    pub const fn new() -> Self {
        Self::for_prior(Prior::None)
    }

    /// A scanner for a payload of whose flow `prior` is known.
    pub const fn for_prior(prior: Prior) -> Self {
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
            depth: 0,
            code: 0,
            fresh: 0,
            known: prior as u8,
            _pad: [0; 4],
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
            if self.in_msg != 0 && self.in_str == 0 && self.depth.wrapping_sub(1) < 0x7f {
                // Pretty-printed JSON: a line end inside an open message (braces open, outside a
                // string) is a blank; the message goes on.
                self.prev = b;
                return 0;
            }
            if self.provisional != 0 {
                return self.provisional;
            }
            // JSON strings hold no raw newline, so this ends a message even when the segment began
            // inside a string of the previous one. A new message may follow only a closing brace,
            // or blanks alone (blank lines and CRLFs before a message's `{`, which pools' parsers
            // skip and a miner hiding from signatures may send).
            self.at_start = (self.prev == b'}' || self.at_start != 0) as u8;
            self.in_str = 0;
            self.escaped = 0;
            self.in_msg = 0;
            self.after_method = 0;
            self.methods = 0;
            self.words = 0;
            self.fresh = 0;
            self.depth = 0;
            self.prev = b;
            return 0;
        }
        if b != b'\r' {
            self.prev = b;
        }
        if self.in_str != 0 {
            // Escapes are hashed as the bytes they stand for (`\u006cogin` is `login`): the
            // backslash and a `\u`'s digits add nothing, the escape's end adds its byte (a
            // code point past ASCII adds 0x80, which no marker holds).
            let mut b = b;
            let digit = hex_digit(b);
            if self.escaped >= ESCAPE_HEX && digit > 0xf {
                // Not a hex digit: no escape (invalid JSON); the byte is read as it is.
                self.escaped = 0;
            }
            if self.escaped == ESCAPE_CHAR {
                if b == b'u' {
                    self.escaped = ESCAPE_HEX;
                    self.code = 0;
                    return 0;
                }
                self.escaped = 0;
                b = unescape(b);
            } else if self.escaped >= ESCAPE_HEX {
                self.code = (self.code << 4) | digit as u16;
                if self.escaped < ESCAPE_HEX + 3 {
                    self.escaped += 1;
                    return 0;
                }
                self.escaped = 0;
                b = if self.code < 0x80 {
                    self.code as u8
                } else {
                    0x80
                };
            } else if b == b'\\' {
                self.escaped = ESCAPE_CHAR;
                return 0;
            } else if b == b'"' {
                return self.close(end);
            }
            // A method's name is hashed with its letters folded to lower case (branch-free, as
            // in `feed_with`: a branch here doubled the paths the verifier walks through the
            // rest of the step).
            let c = b | ((fold_byte(b) ^ b) & self.after_method.wrapping_neg());
            self.pending |= (c as u64) << (8 * (self.token_len & 7));
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
            self.depth = self.in_msg;
            return 0;
        }
        self.depth = self
            .depth
            .wrapping_add((b == b'{') as u8)
            .wrapping_sub((b == b'}') as u8);
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
    /// backslashes and the rest of their escape, up to a `\u`'s four hex digits) goes through [`Scanner::step_with`] alone, so the
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
        if self.at_start != 0 && self.escaped == 0 {
            // Before a message: blanks, tabs and line ends change nothing (the line end that made
            // `at_start` reset the rest), up to 8 a step; the first other byte goes byte-wise. A
            // crafted payload of blanks alone went a byte a step.
            let w = buf.load8(p);
            let blank =
                eq_bytes(w, b' ') | eq_bytes(w, b'\t') | eq_bytes(w, b'\r') | eq_bytes(w, b'\n');
            let other = !blank & HIGHS;
            let k = if other == 0 { 8 } else { first_byte(other) };
            if k > 0 {
                return (k, 0);
            }
        }
        if self.escaped != 0 || self.at_start != 0 {
            return self.byte_wise(buf, p, end);
        }
        if self.in_str != 0 && buf.byte(p) == b'\\' {
            // A `\uXXXX` escape whole in the window is one step; any other escape goes byte-wise.
            let n = self.unicode_escape(buf, p, pos, len);
            if n != 0 {
                return (n, 0);
            }
            return self.byte_wise(buf, p, end);
        }
        let mut used = 0;
        if self.in_str == 0 {
            let w = buf.load8(p);
            // Line ends and the other control bytes take the byte-wise step, except inside an open
            // message (pretty-printed JSON), where they are blanks: up to the next quote, when no
            // `}` comes before it and the braces stay open (1..=127, the byte-wise rule).
            let quote = first_of(w, b'"');
            let q = if quote == 0 { 8 } else { first_byte(quote) };
            let open = self.in_msg != 0
                && self.depth >= 1
                && eq_bytes(w, b'}') & low_bytes(q) == 0
                && self.depth as u32 + count_flags(eq_bytes(w, b'{') & low_bytes(q)) as u32 <= 127;
            let stop = if open { quote } else { quote | below_blank(w) };
            let k = if stop == 0 { 8 } else { first_byte(stop) };
            // The braces among the bytes passed here (no quote among them: all outside strings).
            let opens = count_flags(eq_bytes(w, b'{') & low_bytes(k));
            let closes = count_flags(eq_bytes(w, b'}') & low_bytes(k));
            self.depth = self.depth.wrapping_add(opens).wrapping_sub(closes);
            if k > 0 && self.after_method != 0 {
                // Only blanks and the colon may stand between "method" and its value.
                let blank = eq_bytes(w, b' ')
                    | eq_bytes(w, b'\t')
                    | eq_bytes(w, b'\r')
                    | eq_bytes(w, b'\n')
                    | eq_bytes(w, b':');
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
            // A method's name is hashed with its letters folded to lower case (branch-free: the
            // fold's bits are kept only after "method").
            let folded = w | (fold_case(w) & (self.after_method as u64).wrapping_neg());
            self.pending |= (folded & low_bytes(m)) << (8 * done);
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

    /// The `\uXXXX` escape at `p` (inside a string, no escape under way) in one step, leaving the
    /// state as the byte-wise step leaves it after the escape's six bytes; returns 6, or 0 when
    /// no such escape is whole in the window (a crafted string of escapes went a byte a step).
    #[inline(always)]
    fn unicode_escape(&mut self, buf: &Window, p: usize, pos: usize, len: usize) -> usize {
        if pos + 6 > len {
            return 0;
        }
        let w = buf.load8(p);
        if w & 0xffff != (b'\\' as u64) | (b'u' as u64) << 8 {
            return 0;
        }
        let d = [
            hex_digit((w >> 16) as u8),
            hex_digit((w >> 24) as u8),
            hex_digit((w >> 32) as u8),
            hex_digit((w >> 40) as u8),
        ];
        if (d[0] | d[1] | d[2] | d[3]) > 0xf {
            return 0;
        }
        self.code = (d[0] as u16) << 12 | (d[1] as u16) << 8 | (d[2] as u16) << 4 | d[3] as u16;
        let b = if self.code < 0x80 {
            self.code as u8
        } else {
            0x80
        };
        // As the byte-wise step adds a string's byte (see `step_with`).
        let c = b | ((fold_byte(b) ^ b) & self.after_method.wrapping_neg());
        self.pending |= (c as u64) << (8 * (self.token_len & 7));
        self.token_len += 1;
        if self.token_len & 7 == 0 {
            self.hash = fold(self.hash, self.pending);
            self.pending = 0;
        }
        6
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
            // ends, without calling the decision function. A string as long as a wallet is noted
            // (branch-free) among the words; the rules see it at the next marker.
            let address = ((self.token_len >= ADDRESS_MIN_LEN) as u32) << ADDRESS_BIT;
            self.fresh |= (address & !self.words != 0) as u8;
            self.words |= address;
            self.after_method = 0;
            return 0;
        }
        let marker = MARKER_SLOTS[slot(self.hash)] as u32;
        if marker == 0 {
            // No marker hashes to this slot: what `token_end` would decide for a string that is
            // no marker, without the call. Most strings of a message (`"jsonrpc"`, `"params"`,
            // values) end here.
            self.after_method =
                (self.after_method == 0 && self.hash == METHOD_HASH && self.token_len == 6) as u8;
            return 0;
        }
        if self.after_method == 0
            && self.fresh == 0
            && self.words & (1u32 << (marker.wrapping_sub(1) & 31)) != 0
        {
            // A word whose marker is among the words already (or a string sharing its slot): the
            // decision function would add nothing and run the rules over what they last saw
            // (only a wallet-long string, `fresh`, adds a word without them). A message of one
            // marker over and over made a call per token.
            return 0;
        }
        self.fresh = 0;
        let packed = end(self.pack(), self.hash, self.token_len);
        self.known = (self.known & 3) | (((packed >> AT_LOGIN_SHIFT) & 1) as u8 * AT_LOGIN);
        self.methods = (packed & SET_MASK) as u32;
        self.words = ((packed >> WORDS_SHIFT) & SET_MASK) as u32;
        self.after_method = ((packed >> AFTER_METHOD_SHIFT) & 1) as u8;
        self.provisional = ((packed >> PROVISIONAL_SHIFT) & 3) as u8;
        ((packed >> FOUND_SHIFT) & 3) as u8
    }

    #[inline(always)]
    fn pack(&self) -> u64 {
        (self.methods as u64 & SET_MASK)
            | ((self.words as u64 & SET_MASK) << WORDS_SHIFT)
            | ((self.after_method as u64 & 1) << AFTER_METHOD_SHIFT)
            | ((self.provisional as u64 & 3) << PROVISIONAL_SHIFT)
            | ((self.known as u64 & 3) << KNOWN_SHIFT)
    }

    /// Whether the scan stopped at a message with the `login` method that met its rule (not at
    /// its method by a [`Prior`]): after a match, what teaches a pool endpoint (`crate::pools`).
    #[inline(always)]
    pub fn login_met_rule(&self) -> bool {
        self.known != Prior::KnownFlow as u8
            && self.known & AT_LOGIN == 0
            && self.methods & LOGIN != 0
    }

    /// Whether the scan stopped at a login's method by [`Prior::PoolLogin`]: the message counts
    /// if its destination is a pool endpoint; else [`Scanner::without_prior`] and scan on.
    #[inline(always)]
    pub fn at_login_method(&self) -> bool {
        self.known & AT_LOGIN != 0
    }

    /// Drops the scan's prior, to scan on from where it stopped (see [`Prior::PoolLogin`]).
    #[inline(always)]
    pub fn without_prior(&mut self) {
        self.known = Prior::None as u8;
    }

    /// At the end of the window: a provisional match stands.
    #[inline(always)]
    pub fn finish(&self) -> u8 {
        self.provisional
    }
}

/// The layout of `token_end`'s word (see there): the method markers from bit 0, the other
/// markers, then the flags and the answer, [`SET_BITS`] bits a set.
const SET_MASK: u64 = (1 << SET_BITS) - 1;
const WORDS_SHIFT: u32 = SET_BITS;
const AFTER_METHOD_SHIFT: u32 = 2 * SET_BITS;
const PROVISIONAL_SHIFT: u32 = AFTER_METHOD_SHIFT + 1;
/// `token_end`'s two bits of the flow's [`Prior`] (see `Scanner::known`).
const KNOWN_SHIFT: u32 = PROVISIONAL_SHIFT + 2;
const FOUND_SHIFT: u32 = KNOWN_SHIFT + 2;
/// `token_end`'s bit of a match made at a login's method by [`Prior::PoolLogin`].
const AT_LOGIN_SHIFT: u32 = FOUND_SHIFT + 2;
const _: () = assert!(AT_LOGIN_SHIFT < 64);

/// `Scanner::escaped`: after a backslash; from `ESCAPE_HEX` on, before the 1st..4th hex digit of
/// a `\u` escape.
const ESCAPE_CHAR: u8 = 1;
const ESCAPE_HEX: u8 = 2;

/// A hex digit's value, or 0xff.
#[inline(always)]
fn hex_digit(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0xff,
    }
}

/// The byte a one-character escape stands for (`\"`, `\\` and `\/` for themselves; any other
/// byte, invalid JSON, as it is).
#[inline(always)]
fn unescape(b: u8) -> u8 {
    match b {
        b'b' => 0x08,
        b'f' => 0x0c,
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        _ => b,
    }
}

/// What a closing quote decides, as a pure function of scalars so that the XDP program can make
/// it a BPF global function. `packed` holds the message's method markers (`SET_BITS` bits from
/// bit 0), other markers (the next `SET_BITS`), the after-`"method"` flag, a provisional Bitcoin
/// match (2 bits) and the flow's [`Prior`] (2), in that order (the `*_SHIFT` constants);
/// `hash` and `len` describe the string that just ended. Returns the same layout, plus the
/// recognised `dialect + 1` in the 2 bits after (0: keep scanning), and after them whether it
/// was recognised at a login's method by [`Prior::PoolLogin`].
#[inline(always)]
pub fn token_end(packed: u64, hash: u32, len: u32) -> u64 {
    let mut methods = (packed & SET_MASK) as u32;
    let mut words = ((packed >> WORDS_SHIFT) & SET_MASK) as u32;
    let mut after_method = (packed >> AFTER_METHOD_SHIFT) & 1;
    let mut provisional = (packed >> PROVISIONAL_SHIFT) & 3;
    let known = (packed >> KNOWN_SHIFT) & 3;
    let known_flow = known == Prior::KnownFlow as u64;
    let mut at_login = 0u64;
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
        if d == Dialect::Bitcoin as u64 + 1 && !known_flow {
            provisional = d;
        } else if d != 0 {
            found = d;
        } else if known_flow && methods & KNOWN_FLOW_METHODS != 0 {
            found = Dialect::Monero as u64 + 1;
        } else if known == Prior::PoolLogin as u64 && methods & POOL_LOGIN_METHODS != 0 {
            found = Dialect::Monero as u64 + 1;
            at_login = 1;
        }
    }
    (methods as u64 & SET_MASK)
        | ((words as u64 & SET_MASK) << WORDS_SHIFT)
        | (after_method << AFTER_METHOD_SHIFT)
        | (provisional << PROVISIONAL_SHIFT)
        | (known << KNOWN_SHIFT)
        | (found << FOUND_SHIFT)
        | (at_login << AT_LOGIN_SHIFT)
}

/// Scans the first `len` bytes of `buf` (a TCP payload) for a Stratum message and returns its
/// dialect as `dialect + 1`, or 0 when there is none. Several messages in one segment are each
/// checked; the first that matches decides.
pub fn scan(buf: &mut Window, len: usize) -> u8 {
    scan_flow(buf, len, false)
}

/// [`scan`] of a payload of whose flow `prior` is known (`true`: a flow already counted as
/// Stratum).
pub fn scan_flow(buf: &mut Window, len: usize, prior: impl Into<Prior>) -> u8 {
    buf.seal(len);
    let buf = &*buf;
    let mut s = Scanner::for_prior(prior.into());
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
    scan_byte_wise_flow(payload, len, false)
}

/// [`scan_byte_wise`] of a payload of whose flow `prior` is known.
pub fn scan_byte_wise_flow(payload: &[u8], len: usize, prior: impl Into<Prior>) -> u8 {
    let mut s = Scanner::for_prior(prior.into());
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
