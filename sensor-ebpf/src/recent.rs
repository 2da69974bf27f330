//! `RECENT`, each flow slot's two marks (`sensor_common::recent`: a byte each, when a Stratum
//! packet last passed on a flow of the slot, when a new flow's opening was last held in it), read
//! and written a byte at a time.

use sensor_common::recent::{Clock, OPENING, STRATUM, place};

use crate::{
    maps::{Flow, RECENT},
    replay::now,
};

/// Whether a Stratum packet passed on a flow of `flow`'s slot within `MAX_FLOW_IDLE_NS` (slots
/// are shared, so sometimes another flow's: the flow table decides then).
#[inline(always)]
pub(crate) fn recent_stratum(flow: &Flow) -> bool {
    recent(flow, 0, STRATUM)
}

/// Whether `flow`'s slot held an opening within `OPENING_MAX_AGE_NS`.
#[inline(always)]
pub(crate) fn opening_held(flow: &Flow) -> bool {
    recent(flow, 1, OPENING)
}

/// Whether `flow`'s slot's mark `which` bytes after its Stratum mark is recent on `clock`; the
/// clock is not read when the mark is 0.
#[inline(always)]
fn recent(flow: &Flow, which: u32, clock: Clock) -> bool {
    match mark(flow, which) {
        // SAFETY: a byte of an array value (`mark`); racing writers store whole bytes.
        Some(m) => match unsafe { core::ptr::read_volatile(m) } {
            0 => false,
            m => clock.is_recent(m, now()),
        },
        None => false,
    }
}

/// The byte of `flow`'s slot's mark `which` (0: Stratum, 1: opening) in `RECENT`.
#[inline(always)]
fn mark(flow: &Flow, which: u32) -> Option<*mut u8> {
    let (word, byte) = place(flow.slot as u32);
    let w = RECENT.get_ptr_mut(word)?;
    // SAFETY: `byte + which` < 8, within the word's 8 bytes.
    Some(unsafe { w.cast::<u8>().add(((byte + which) & 7) as usize) })
}

/// A Stratum packet passed at `now` on a flow of `flow`'s slot: its mark is stored when it is not
/// already this tick's (once a tick per slot at most, so that its cache line is not moved between
/// CPUs on every Stratum packet).
#[inline(always)]
pub(crate) fn stratum_passed(flow: &Flow, now: u64) {
    if let Some(m) = mark(flow, 0) {
        let mark = STRATUM.mark(now);
        // SAFETY: as in `recent`.
        unsafe {
            if core::ptr::read_volatile(m) != mark {
                core::ptr::write_volatile(m, mark);
            }
        }
    }
}

/// Marks `flow`'s slot as holding an opening held at `now`.
#[inline(always)]
pub(crate) fn mark_opening(flow: &Flow, now: u64) {
    store_opening(flow, OPENING.mark(now));
}

/// Marks `flow`'s slot as holding no opening, once its opening is gone.
#[inline(always)]
pub(crate) fn unmark_opening(flow: &Flow) {
    store_opening(flow, 0);
}

#[inline(always)]
fn store_opening(flow: &Flow, mark: u8) {
    if let Some(m) = self::mark(flow, 1) {
        // SAFETY: as in `recent`.
        unsafe { core::ptr::write_volatile(m, mark) };
    }
}
