//! The window the scanner reads, and the word-at-a-time helpers that let it pass blanks and the
//! inside of long strings 8 bytes at a step.

use super::WINDOW;

pub(crate) const ONES: u64 = 0x0101_0101_0101_0101;
pub(super) const LOWS: u64 = 0x7f7f_7f7f_7f7f_7f7f;
pub(crate) const HIGHS: u64 = 0x8080_8080_8080_8080;
pub(super) const BLANKS: u64 = ONES * b' ' as u64;

/// The high bit of each byte of `w` equal to `c`, exactly (no borrow between bytes, unlike the
/// shorter `(v - ONES) & !v` test): the masks are combined and cut at any byte.
#[inline(always)]
pub(crate) const fn eq_bytes(w: u64, c: u8) -> u64 {
    let v = w ^ (ONES * c as u64);
    !(((v & LOWS) + LOWS) | v) & HIGHS
}

/// Flags bytes of `w` equal to `c`; only the lowest flag is sure to be right (the borrow of the
/// subtraction can flag the byte above a match), which is all that finding the first needs.
#[inline(always)]
pub(super) const fn first_of(w: u64, c: u8) -> u64 {
    let v = w ^ (ONES * c as u64);
    v.wrapping_sub(ONES) & !v & HIGHS
}

/// Flags bytes of `w` below 0x20 (control bytes: line ends, tab); as for [`first_of`], only the
/// lowest flag is sure.
#[inline(always)]
pub(super) const fn below_blank(w: u64) -> u64 {
    w.wrapping_sub(BLANKS) & !w & HIGHS
}

/// Flags the bytes of `w` that end a string or need the byte-wise step inside one: quotes,
/// backslashes, control bytes. As for [`first_of`], only the lowest flag is sure.
#[inline(always)]
pub(super) const fn string_stop(w: u64) -> u64 {
    first_of(w, b'"') | first_of(w, b'\\') | below_blank(w)
}

/// `w` with its ASCII capitals (`A`..=`Z`) made lower case, every other byte as it is: a method
/// name's letters are hashed folded (see `MARKERS`). Each byte's low 7 bits plus a bias carry
/// into its high bit exactly when it is at least `A` (or past `Z`), and no sum leaves its byte;
/// bytes with the high bit set (UTF-8) are left alone.
#[inline(always)]
pub(super) const fn fold_case(w: u64) -> u64 {
    let low = w & LOWS;
    let from_a = low + ONES * (0x80 - b'A') as u64;
    let past_z = low + ONES * (0x80 - b'Z' - 1) as u64;
    let upper = from_a & !past_z & !w & HIGHS;
    w | (upper >> 2)
}

/// One byte of [`fold_case`], without a comparison (a branch in BPF): `b - 'A'` is below 26
/// exactly when subtracting 26 more borrows into bit 31.
#[inline(always)]
pub(super) const fn fold_byte(b: u8) -> u8 {
    let upper = ((b.wrapping_sub(b'A') as u32).wrapping_sub(26) >> 31) as u8;
    b | (upper << 5)
}

/// How many bytes an exact flag mask (an [`eq_bytes`] result) flags: the flags, moved to each
/// byte's low bit, summed into the top byte by one multiply (BPF has no population count).
#[inline(always)]
pub(super) const fn count_flags(flags: u64) -> u8 {
    ((flags >> 7).wrapping_mul(ONES) >> 56) as u8
}

/// A mask of the low `n` bytes (0 ≤ n ≤ 8), without a shift by 64.
#[inline(always)]
pub(crate) const fn low_bytes(n: usize) -> u64 {
    ((1u64 << (4 * n)) << (4 * n)).wrapping_sub(1)
}

/// Words walked in one step inside a long string: a 95-character wallet takes two steps.
pub(super) const LONG_WORDS: usize = 8;
pub(super) const RUN_USED: u64 = 0xffff;
pub(super) const RUN_STOP: u32 = 16;
pub(super) const RUN_STOPPED: u64 = 1 << 24;

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
    /// XORs every word with `key` (a WebSocket mask key repeated over 8 bytes): a masked frame's
    /// payload loaded at the window's start becomes the message the client sent.
    #[inline(always)]
    pub fn xor(&mut self, key: u64) {
        let mut i = 0;
        while i < WINDOW_WORDS {
            self.words[i] ^= key;
            i += 1;
        }
    }

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
pub(crate) const fn first_byte(flags: u64) -> usize {
    let lowest = flags & flags.wrapping_neg();
    ((lowest >> 7).wrapping_mul(0x0001_0203_0405_0607) >> 56) as usize
}
