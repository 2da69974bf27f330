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

#[cfg(test)]
mod tests {
    use super::*;

    /// The set bits of `f`, as (word, bits) pairs.
    fn set_words(f: &Filter) -> Vec<(usize, u64)> {
        f.words
            .iter()
            .enumerate()
            .filter(|(_, w)| **w != 0)
            .map(|(i, w)| (i, *w))
            .collect()
    }

    fn v4(entries: &[(u32, [u8; 4])]) -> TrieEntries {
        TrieEntries {
            v4: entries.iter().map(|&(l, a)| (l, a, 1)).collect(),
            v6: Vec::new(),
        }
    }

    #[test]
    fn an_ipv4_prefix_sets_the_bit_of_each_of_its_slash_24s() {
        // 192.0.2.0/24 is /24 number 0xC00002 = 12,582,914 = 196,608 * 64 + 2.
        let f = Filter::of(&v4(&[(24, [192, 0, 2, 0])]));
        assert_eq!(set_words(&f), vec![(196_608, 1 << 2)]);
        assert_eq!(f.flags, 0);
        // 10.0.0.0/23 covers /24s 0x0A0000 and 0x0A0001: word 10,240, bits 0 and 1.
        let f = Filter::of(&v4(&[(23, [10, 0, 0, 0])]));
        assert_eq!(set_words(&f), vec![(10_240, 0b11)]);
        // Longer than /24: the one /24 that holds it (10.1.2.0/24 = 0x0A0102: word 10,244, bit 2).
        let f = Filter::of(&v4(&[(25, [10, 1, 2, 128])]));
        assert_eq!(set_words(&f), vec![(10_244, 1 << 2)]);
    }

    #[test]
    fn prefixes_too_short_for_the_filter_send_their_family_to_the_tries() {
        let f = Filter::of(&v4(&[(7, [0, 0, 0, 0])]));
        assert_eq!((set_words(&f), f.flags), (vec![], 1));
        let f = Filter::of(&TrieEntries {
            v4: Vec::new(),
            v6: vec![(19, [0; 16], 1)],
        });
        assert_eq!((set_words(&f), f.flags), (vec![], 2));
    }

    #[test]
    fn a_union_holds_the_bits_and_flags_of_both() {
        let a = Filter::of(&v4(&[(24, [192, 0, 2, 0])]));
        let b = Filter::of(&v4(&[(7, [0, 0, 0, 0]), (24, [192, 0, 2, 0])]));
        let u = a.union(&b);
        assert_eq!(set_words(&u), vec![(196_608, 1 << 2)]);
        assert_eq!(u.flags, 1);
        let c = Filter::of(&v4(&[(24, [192, 0, 3, 0])]));
        assert_eq!(set_words(&a.union(&c)), vec![(196_608, 0b1100)]);
    }
}
