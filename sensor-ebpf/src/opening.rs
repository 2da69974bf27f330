//! A new flow's first message split so that no segment alone carries a marker (a first segment of
//! one byte `{`, a login cut before its method or its `"agent"` key): the segment is held in
//! `OPENINGS`, bounded (`OPENING_BYTES` a flow, `OPENING_ENTRIES` flows, LRU), and the next
//! segment in sequence from the same endpoint is scanned after it, as one window. What is held:
//! a segment that opens a message, matches no rule, fits whole and ends without a line end (a
//! whole message ends with one), on a flow the flow table does not know. Such segments are
//! candidates too, so that deep inspection joins the same bytes (`inspect::stream`).
//!
//! A new flow's first segment that opens a JSON message and runs past the scanner's window with
//! nothing recognised (a login padded with kilobytes before its method) is noted there too, as
//! an `OPENING_FOLLOW` entry without bytes: its next `OPENING_FOLLOW_SEGMENTS` segments in
//! sequence from the same endpoint are handed to deep inspection as they are.
//!
//! Segments reach `OPENINGS` only through a slot array (`RECENT`'s opening marks,
//! `recent::opening_held`): a flow whose slot held no opening within `OPENING_MAX_AGE_NS` pays
//! nothing more.

use aya_ebpf::bindings::{BPF_ANY, BPF_NOEXIST};
use sensor_common::{
    FlowKey, OPENING_BYTES, OPENING_FOLLOW, OPENING_FOLLOW_SEGMENTS, OPENING_MAX_AGE_NS, Opening,
    Stat, stratum::WINDOW, websocket,
};

use crate::{
    flags,
    maps::{OPENINGS, SCRATCH, Scratch, UNWATCHED_FOLLOW, stat},
    recent,
    replay::now,
    scan::flow_unknown,
    words::{copy_words, zero},
};

/// Words of an opening, copied a word at a time (`words`).
const WORDS: usize = OPENING_BYTES / 8;

/// Whether a WebSocket frame's rest may be followed on a flow that involves no watched range,
/// pool address or pool port (`UNWATCHED_FOLLOW`): one array read while none was set to be within
/// `OPENING_MAX_AGE_NS`, which is what other traffic pays; the first read after that clears it.
#[inline(always)]
pub(crate) fn frames_followed() -> bool {
    let Some(t) = UNWATCHED_FOLLOW.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: array value; racing CPUs write a time or 0, either of which is valid.
    unsafe {
        if *t == 0 {
            return false;
        }
        if now().saturating_sub(*t) > OPENING_MAX_AGE_NS {
            *t = 0;
            return false;
        }
    }
    true
}

/// SCRATCH, its flow key and the key's `OPENINGS` entry (an opening, a followed flow, a
/// ClientHello's rest), for the global functions that read or move one; `None` when the flow
/// holds none.
#[inline(always)]
pub(crate) fn held() -> Option<(*mut Scratch, &'static FlowKey, *mut Opening)> {
    let scratch = SCRATCH.get_ptr_mut(0)?;
    // SAFETY: map value pointer, valid for the program run (the lifetime given here: no global
    // function keeps it past its return); only this CPU uses it.
    let key = unsafe { &(*scratch).flow.key };
    Some((scratch, key, OPENINGS.get_ptr_mut(key)?))
}

/// The opening held for SCRATCH's key that a segment with sequence number `seq` from the key's
/// lower endpoint (`from_lo`) continues: its bytes are copied to the window's start and their
/// count returned; 0 when there is none. One this segment does not continue (another sequence
/// number: a gap or a retransmission; or stale) is removed; one from the other endpoint stays.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn opening_join(seq: u64, from_lo: u64) -> u64 {
    let Some((scratch, key, o)) = held() else {
        return 0;
    };
    // SAFETY: LRU map value, valid for the program run; a concurrent update by another CPU
    // (the flow's segments on two CPUs) at worst joins bytes of either version.
    let o = unsafe { &*o };
    if o.from_lo as u64 != from_lo || o.kind != sensor_common::OPENING_MESSAGE {
        return 0;
    }
    if o.next_seq as u64 != seq || now().saturating_sub(o.at_ns) > OPENING_MAX_AGE_NS {
        remove(key);
        return 0;
    }
    let len = o.len as usize & (OPENING_BYTES - 1);
    let src = o.bytes.as_ptr().cast::<u64>();
    // SAFETY: map value pointer, valid for the program run; only this CPU uses it.
    let dst = unsafe { (*scratch).buf.bytes_mut().as_mut_ptr().cast::<u64>() };
    // SAFETY: both hold at least OPENING_BYTES bytes, 8-aligned (`Opening::bytes` follows 16
    // bytes of header; `Window` is words), in different values.
    unsafe { copy_words(dst, src, WORDS) };
    len as u64
}

/// The window's first `n` bytes (`n` < `OPENING_BYTES`) held as SCRATCH's key's opening, to be
/// continued by `next_seq` from `from_lo`; `fresh` when the flow held none (counted). Returns 1.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn opening_hold(n: u64, next_seq: u64, from_lo: u64, fresh: u64) -> u64 {
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    let now = now();
    // SAFETY: map value pointer, valid for the program run; only this CPU uses it.
    unsafe {
        let stage = &mut (*scratch).opening;
        let src = (*scratch).buf.bytes_mut().as_ptr().cast::<u64>();
        let dst = stage.bytes.as_mut_ptr().cast::<u64>();
        // SAFETY: as in `opening_join`.
        copy_words(dst, src, WORDS);
        stage.at_ns = now;
        stage.next_seq = next_seq as u32;
        stage.len = (n as usize & (OPENING_BYTES - 1)) as u16;
        stage.from_lo = from_lo as u8;
        stage.kind = sensor_common::OPENING_MESSAGE;
        stage.skip = 0;
        stage.end = 0;
        zero(stage._pad.as_mut_ptr(), stage._pad.len());
        let key = &(*scratch).flow.key;
        if OPENINGS.insert(key, stage, BPF_ANY as u64).is_err() {
            return 0;
        }
        if fresh != 0 {
            stat(Stat::OpeningsHeld);
        }
        recent::mark_opening(&(*scratch).flow, now);
    }
    1
}

/// A new flow whose first segment opened a JSON message and ran past the window with nothing
/// recognised (`long` in `tcp`): its next `OPENING_FOLLOW_SEGMENTS` segments in sequence from the
/// same endpoint (`from_lo`), the first at `next_seq`, are to be handed over too (an
/// `OPENING_FOLLOW` entry, no bytes). Only on a flow the table does not know and that holds no
/// opening. When the segment opened with a WebSocket frame whose `frame_rest` bytes run past it
/// (at most `websocket::MESSAGE_MAX`), the segments that carry them are handed over instead,
/// however many, on a known flow too (a client's Stratum message longer than its segment). A
/// frame's rest on a flow that involves no watched range, pool address or pool port
/// (`unwatched`) is noted in `UNWATCHED_FOLLOW` too (`frames_followed`). Returns 1 when noted.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn opening_follow_start(
    next_seq: u64,
    from_lo: u64,
    frame_rest: u64,
    unwatched: u64,
) -> u64 {
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    if frame_rest > websocket::MESSAGE_MAX as u64 {
        return 0;
    }
    let now = now();
    // SAFETY: map value pointer, valid for the program run; only this CPU uses it.
    unsafe {
        let key = &(*scratch).flow.key;
        if frame_rest == 0 && !flow_unknown(key) {
            return 0;
        }
        let stage = &mut (*scratch).opening;
        stage.at_ns = now;
        stage.next_seq = next_seq as u32;
        stage.len = if frame_rest == 0 {
            OPENING_FOLLOW_SEGMENTS
        } else {
            0
        };
        stage.from_lo = from_lo as u8;
        stage.kind = OPENING_FOLLOW;
        stage.skip = frame_rest as u16;
        stage.end = 0;
        zero(stage._pad.as_mut_ptr(), stage._pad.len());
        // Not over an entry already there (counted when it was held).
        if OPENINGS.insert(key, stage, BPF_NOEXIST as u64).is_err() {
            return 0;
        }
        stat(Stat::OpeningsHeld);
        recent::mark_opening(&(*scratch).flow, now);
        if frame_rest != 0
            && unwatched != 0
            && let Some(t) = UNWATCHED_FOLLOW.get_ptr_mut(0)
        {
            *t = now | 1;
        }
    }
    1
}

/// Whether the segment with sequence number `seq` from the key's lower endpoint (`from_lo`),
/// ending at `next_seq`, is one SCRATCH's key's `OPENING_FOLLOW` entry waits for: then the entry
/// moves past it (removed after its last segment, or once a frame's rest ends in it) and 1 is
/// returned. An entry this segment does not continue (a gap, stale, or, but for a frame's rest,
/// its flow now known) is removed; a retransmission of a segment before it leaves it waiting, and
/// one from the other endpoint stays.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn opening_follow(seq: u64, from_lo: u64, next_seq: u64) -> u64 {
    let Some((_, key, o)) = held() else {
        return 0;
    };
    // SAFETY: LRU map value, valid for the program run; the flow's segments on two CPUs at
    // worst hand one segment more or fewer over.
    let o = unsafe { &mut *o };
    if o.kind != OPENING_FOLLOW || o.from_lo as u64 != from_lo {
        return 0;
    }
    let now = now();
    // A segment resent (one before the segment awaited: a retransmission on a lossy link) is not
    // handed over again, deep inspection has it; the entry waits on.
    if ((seq as u32).wrapping_sub(o.next_seq) as i32) < 0
        && now.saturating_sub(o.at_ns) <= OPENING_MAX_AGE_NS
    {
        return 0;
    }
    // Out of sequence (past the segment awaited: one was missed) or stale; or the flow became
    // known (the pool's reply opened it), whose segments are scanned and handed over as any
    // Stratum flow's. A frame's rest is followed to its end whatever the flow's state: its bytes
    // are known to be the frame's.
    if o.next_seq as u64 != seq
        || now.saturating_sub(o.at_ns) > OPENING_MAX_AGE_NS
        || (o.skip == 0 && !flow_unknown(key))
    {
        remove(key);
        return 0;
    }
    // The segments to follow all passed (the last one left the entry at 0): this one is scanned
    // as any other, and the entry goes. Kept until here, it let the other endpoint's answers to
    // the last followed segment through (`opening_answers`).
    if o.skip == 0 && o.len == 0 {
        remove(key);
        return 0;
    }
    let len = next_seq.wrapping_sub(seq) as u32;
    if o.skip != 0 && len >= o.skip as u32 {
        remove(key);
    } else {
        o.len = o.len.saturating_sub(1);
        o.skip = (o.skip as u32).saturating_sub(len) as u16;
        o.next_seq = next_seq as u32;
        o.at_ns = now;
    }
    1
}

/// Whether SCRATCH's key's flow is followed (`OPENING_FOLLOW`, within `OPENING_MAX_AGE_NS`) from
/// the endpoint that did not send this segment (`from_lo` is the segment's): the segment, which
/// matched nothing, is the other endpoint's message while the opening is read, such as a pool's
/// `true` and work package answering an ethproxy login padded past the window. Handed over too:
/// until the kernel knows the flow (its first Stratum packet, or the agent opening it at the
/// login) the pool's messages, which carry no marker, went nowhere, and the shares they set the
/// difficulty of counted without hashes.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn opening_answers(from_lo: u64) -> u64 {
    let Some((_, _, o)) = held() else {
        return 0;
    };
    // SAFETY: LRU map value, valid for the program run; read only.
    let o = unsafe { &*o };
    (o.kind == OPENING_FOLLOW
        && o.from_lo as u64 != from_lo
        && now().saturating_sub(o.at_ns) <= OPENING_MAX_AGE_NS) as u64
}

/// Whether the segment at `seq`, `plen` bytes from the key's lower endpoint when `from_lo`, is
/// one SCRATCH's key's `OPENING_FOLLOW` entry waits for (`opening_follow`).
#[inline(always)]
pub(crate) fn waits_for(seq: u32, from_lo: bool, plen: usize) -> bool {
    opening_follow(
        seq as u64,
        from_lo as u64,
        seq.wrapping_add(plen as u32) as u64,
    ) != 0
}

#[inline(always)]
pub(crate) fn remove(key: &FlowKey) {
    if OPENINGS.remove(key).is_ok() {
        stat(Stat::OpeningsRemoved);
    }
}

/// Loads the segment at `payload` into the window after the `joined` bytes of its flow's
/// opening, up to `WINDOW - OPENING_BYTES` bytes; returns the window's length and whether the
/// whole segment is in it.
#[inline(always)]
pub(crate) fn load_after(
    ctx: &aya_ebpf::programs::XdpContext,
    payload: usize,
    plen: usize,
    joined: usize,
) -> Result<(usize, bool), ()> {
    let scratch = SCRATCH.get_ptr_mut(0).ok_or(())?;
    // Read through a volatile, so that the mask stays: LLVM knows `opening_join`'s result is
    // below OPENING_BYTES and dropped it, but the verifier, which checks that function apart,
    // does not.
    // SAFETY: reads a local.
    let at = unsafe { core::ptr::read_volatile(&joined) } & (OPENING_BYTES - 1);
    // SAFETY: map value pointer; at + (WINDOW - OPENING_BYTES) <= WINDOW bytes of the window.
    let dst = unsafe {
        (*scratch)
            .buf
            .bytes_mut()
            .as_mut_ptr()
            .add(at)
            .cast::<[u8; WINDOW - OPENING_BYTES]>()
    };
    let m = crate::parse::load_into(ctx, payload, plen, dst)?;
    Ok((at + m, m == plen))
}

/// After the scan of a window of `n` bytes (`joined` of them a held opening; `found` the scan's
/// result): a decided flow's opening goes, an undecided one is held or extended. `flags` holds
/// `flags::WHOLE` (the segment is all in the window) and `flags::FROM_LO` (its source is the
/// key's lower endpoint). Returns [`HELD`] when the segment is now held (a candidate), [`UNHELD`]
/// when it would be but is too long to hold (`OPENING_BYTES` or more, and no line end: followed
/// as a message that runs past the window is), else 0. A global function: verified once, not
/// once per path of the caller's.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn opening_settle(
    found: u64,
    n: u64,
    joined: u64,
    next_seq: u64,
    flags: u64,
) -> u64 {
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: map value pointer, valid for the program run; only this CPU uses it.
    let (key, buf) = unsafe { (&(*scratch).flow.key, &(*scratch).buf) };
    if found != 0 {
        if joined != 0 {
            remove(key);
        }
        return 0;
    }
    let n = n as usize;
    let from_lo = (flags & flags::FROM_LO != 0) as u64;
    let holdable =
        flags & flags::WHOLE != 0 && n > 0 && n < OPENING_BYTES && buf.byte(n - 1) != b'\n';
    if joined != 0 {
        if holdable {
            return opening_hold(n as u64, next_seq, from_lo, 0);
        }
        remove(key);
        return 0;
    }
    let unheld = flags & flags::WHOLE != 0 && n >= OPENING_BYTES && buf.byte(n - 1) != b'\n';
    if (holdable || unheld) && flow_unknown(key) {
        if unheld {
            return UNHELD;
        }
        return opening_hold(n as u64, next_seq, from_lo, 1);
    }
    0
}

/// `opening_settle`: the segment is held.
pub(crate) const HELD: u64 = 1;
/// `opening_settle`: a new flow's first segment that opens a message, matches nothing, fits the
/// window and ends without a line end, but is too long to hold (a login padded with 600 bytes
/// before its method and split at byte 300): its next segments are followed, as those of one
/// that runs past the window (`OPENING_FOLLOW`), and it is a candidate itself.
pub(crate) const UNHELD: u64 = 2;

/// `values` written to SCRATCH and read back: the verifier tracks no values in map memory, so
/// the paths that reach here with different known values (a joined opening or none, a plain
/// segment or not) go on as one state, and the scan and what follows it are verified once
/// rather than once per path (the same device as `try_sensor`'s offsets).
#[inline(always)]
pub(crate) fn forget(values: [u64; 4]) -> [u64; 4] {
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return values;
    };
    // SAFETY: map value pointer, valid for the program run; only this CPU uses it.
    unsafe {
        let w = core::ptr::addr_of_mut!((*scratch).window);
        core::ptr::write_volatile(w, values);
        core::ptr::read_volatile(w)
    }
}
