//! The user-side copy of the kernel's quick-rejection prefix filter, computed from the range
//! tries' entries, and the bitmap helper the kernel's other bitmaps share.

use sensor_common::{
    FILTER_V4_ALL, FILTER_V4_MIN_LEN, FILTER_V6_ALL, FILTER_V6_MIN_LEN, FILTER_WORDS,
    filter_bit_v4, filter_bit_v6,
};

use super::ranges::TrieEntries;

/// The user-side copy of the kernel's prefix filter (`sensor_common::FILTER_BITS`).
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Filter {
    pub(super) words: Vec<u64>,
    pub(super) flags: u32,
}

impl Filter {
    fn empty() -> Self {
        Self {
            words: vec![0; FILTER_WORDS],
            flags: 0,
        }
    }

    fn set(&mut self, bit: u32) {
        set_bit(&mut self.words, bit as usize);
    }

    /// Every bit an address inside one of `entries`' prefixes may map to.
    pub(super) fn of(entries: &TrieEntries) -> Self {
        let mut f = Self::empty();
        for &(len, addr, _) in &entries.v4 {
            if len < FILTER_V4_MIN_LEN as u32 {
                f.flags |= FILTER_V4_ALL;
                continue;
            }
            let first = filter_bit_v4(u32::from_be_bytes(addr));
            let count = if len >= 24 { 1 } else { 1u32 << (24 - len) };
            for b in first..first + count {
                f.set(b);
            }
        }
        for &(len, addr, _) in &entries.v6 {
            if len < FILTER_V6_MIN_LEN as u32 {
                f.flags |= FILTER_V6_ALL;
                continue;
            }
            let top = u32::from_be_bytes([addr[0], addr[1], addr[2], addr[3]]);
            let count = if len >= 32 { 1 } else { 1u32 << (32 - len) };
            for t in top..top.saturating_add(count) {
                f.set(filter_bit_v6(t));
            }
        }
        f
    }

    pub(super) fn union(&self, other: &Self) -> Self {
        Self {
            words: self
                .words
                .iter()
                .zip(&other.words)
                .map(|(a, b)| a | b)
                .collect(),
            flags: self.flags | other.flags,
        }
    }
}

/// Sets bit `bit` of a bitmap held as 64-bit words, as the kernel's bitmaps are.
pub(super) fn set_bit(words: &mut [u64], bit: usize) {
    words[bit >> 6] |= 1 << (bit & 63);
}
