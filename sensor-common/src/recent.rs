//! `RECENT`, the XDP program's table of recent flow slots: for each of the [`RECENT_SLOTS`] slots
//! ([`crate::recent_slot`] of a flow key) two marks, a byte each: when a Stratum packet last
//! passed on a flow of the slot ([`STRATUM`]), and when a new flow's opening was last held in it
//! ([`OPENING`]). A segment that may carry JSON reads its slot's marks, and looks a flow up in
//! the flow table or the openings only when a mark is recent.
//!
//! A mark is the time on a coarse clock, one byte: its tick's low 7 bits with the top bit set, 0
//! for never ([`Clock::mark`]; no division, which BPF does with a `mod` instruction). Two
//! bytes a slot make the table 128 KiB, which stays in the cache. As two `u64` times a slot it
//! was 1 MiB: a new flow's slot in it was a cache miss to read and another to write (the write
//! waited for by the flow table's lock after it): the marks took 232 ns off a new flow's login
//! (README, "How it works"; BENCHMARKS.md, "Kernel program: designs measured").
//!
//! A mark is an approximation that errs one way: a time within its clock's span always reads as
//! recent; an older one may too, once its byte comes round again (every 128 ticks), and costs
//! one lookup that finds nothing. Marks are plain byte stores, by the program and by the agent
//! (through a mapping of the array, `BPF_F_MMAPABLE`), so no store rewrites a neighbour's byte.

use crate::{MAX_FLOW_IDLE_NS, OPENING_MAX_AGE_NS, RECENT_SLOTS};

/// Words (`u64`) of `RECENT`: four slots a word, two bytes a slot.
pub const WORDS: usize = RECENT_SLOTS / 4;

/// Where `slot`'s marks are: its word, and the byte of its Stratum mark in the word (the opening
/// mark is the byte after it). Bytes are numbered in memory order.
#[inline(always)]
pub const fn place(slot: u32) -> (u32, u32) {
    (slot / 4, 2 * (slot % 4))
}

/// A coarse clock for one kind of mark: ticks of `2^shift` ns, and how many ticks old a mark may
/// be and still be recent.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    shift: u32,
    ticks: u32,
}

/// The Stratum mark: ticks of 2^44 ns (about 4.89 hours); recent for 35 ticks, which covers
/// [`MAX_FLOW_IDLE_NS`] (7 days, 34.4 ticks) whatever the tick it was written in. Written at most
/// once a tick per slot.
pub const STRATUM: Clock = Clock {
    shift: 44,
    ticks: 35,
};

/// The opening mark: ticks of 2^30 ns (about 1.07 s); recent for 10 ticks, which covers
/// [`OPENING_MAX_AGE_NS`] (10 s, 9.3 ticks).
pub const OPENING: Clock = Clock {
    shift: 30,
    ticks: 10,
};

/// Ticks before a mark's byte comes round.
const WRAP: u32 = 128;

const _: () = assert!(
    ((STRATUM.ticks as u64) << STRATUM.shift) >= MAX_FLOW_IDLE_NS
        && ((OPENING.ticks as u64) << OPENING.shift) >= OPENING_MAX_AGE_NS
        && 2 * STRATUM.ticks < WRAP
        && 2 * OPENING.ticks < WRAP
);

impl Clock {
    /// The mark of time `now` (ns): its tick's low 7 bits, with the top bit set (0 is never).
    #[inline(always)]
    pub const fn mark(self, now: u64) -> u8 {
        0x80 | ((now >> self.shift) as u8 & 0x7f)
    }

    /// Whether `mark` is recent at `now`: written within the last `ticks` ticks, or up to as many
    /// ahead (replay runs flows on several workers, and a slot's other flow may be ahead in the
    /// capture); never when it is 0.
    #[inline(always)]
    pub const fn is_recent(self, mark: u8, now: u64) -> bool {
        if mark == 0 {
            return false;
        }
        let age = (self.mark(now).wrapping_sub(mark) & 0x7f) as u32;
        age <= self.ticks || age >= WRAP - self.ticks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;
    const HOUR: u64 = 3600 * S;
    const DAY: u64 = 24 * HOUR;

    #[test]
    fn four_slots_a_word_two_bytes_each() {
        // By hand: 65,536 slots at 4 a word are 16,384 words (128 KiB). Slot 4k + i: word k,
        // bytes 2i (Stratum) and 2i + 1 (opening).
        assert_eq!(WORDS, 16_384);
        assert_eq!(place(0), (0, 0));
        assert_eq!(place(3), (0, 6));
        assert_eq!(place(4), (1, 0));
        assert_eq!(place(130), (32, 4));
        assert_eq!(place(65_535), (16_383, 6));
    }

    #[test]
    fn a_stratum_mark_is_recent_for_at_least_a_week() {
        // A tick is 2^44 ns = 17,592.19 s. Written at any point of a tick, read 7 days
        // (604,800 s = 34.38 ticks) later: 34 or 35 ticks on, recent; 8 days (39.29 ticks)
        // later: 39 or 40, not.
        for written in [0, 1, 3 * HOUR, 100 * DAY + 17 * S, (1 << 44) - 1] {
            let mark = STRATUM.mark(written);
            assert_ne!(mark, 0);
            assert!(STRATUM.is_recent(mark, written));
            assert!(STRATUM.is_recent(mark, written + 7 * DAY), "{written}");
            assert!(!STRATUM.is_recent(mark, written + 8 * DAY), "{written}");
            // And back in time (another worker's flow of the slot ahead in the capture).
            assert!(STRATUM.is_recent(mark, written.saturating_sub(HOUR)));
        }
        // 128 ticks (26.06 days) on, the byte comes round: read as recent (one lookup).
        let mark = STRATUM.mark(5 * DAY);
        assert!(STRATUM.is_recent(mark, 5 * DAY + (128 << 44)));
        assert!(!STRATUM.is_recent(0, 5 * DAY));
    }

    #[test]
    fn an_opening_mark_is_recent_for_at_least_ten_seconds() {
        // A tick is 2^30 ns = 1.0737 s. 10 s = 9.31 ticks: 9 or 10 on, recent; 12 s = 11.18
        // ticks: 11 or 12, not.
        for written in [0, 1, 5 * S, DAY + 123_456_789, (1 << 30) - 1] {
            let mark = OPENING.mark(written);
            assert!(OPENING.is_recent(mark, written + 10 * S), "{written}");
            assert!(!OPENING.is_recent(mark, written + 12 * S), "{written}");
        }
        // Marks run 0x80 to 0xff: tick 127 is 0xff, tick 128 is 0x80 again.
        assert_eq!(OPENING.mark(127 << 30), 0xff);
        assert_eq!(OPENING.mark(128 << 30), 0x80);
        // Recent across that wrap: written in tick 127, read in tick 129 (2 on).
        assert!(OPENING.is_recent(OPENING.mark(127 << 30), 129 << 30));
    }
}
