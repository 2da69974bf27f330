//! Stratum V2 shares by size (`sensor_common::sv2`): on a flow whose Noise handshake was seen
//! (`remember`, where the `stratum_v2` signal fires), each client segment of exactly
//! `SHARE_FRAME` bytes is one `SubmitSharesStandard`, counted once (a retransmission, whose
//! sequence number is not past the last counted one, is not) per watched range of either
//! endpoint (`UNWATCHED_SLOT` outside all); client segments of an extended share's sizes teach
//! the flow its `SubmitSharesExtended` size and then count as shares (`extended`); once a flow's
//! share size is known, a client segment of several times it is that many shares (`several`).
//! The agent exports them as `shares_total` with coin and result `unknown`.

use sensor_common::{
    MAX_RANGES, UNWATCHED_SLOT,
    sv2::{EXTENDED_MAX, EXTENDED_MIN, SEVERAL_MAX, extended_share, flow, several_shares},
};

use crate::{
    count::lowest_bit,
    maps::{SCRATCH, SV2_FLOWS, SV2_SHARES, SV2_SIZED},
    parse::Ip,
    scan::packet_key,
};

/// The flow of the packet in `ip` is Stratum V2 and its client is the packet's source
/// (`client_is_src`) or destination.
#[inline(always)]
pub(crate) fn remember(ip: &Ip, sport: u16, dport: u16, client_is_src: bool) {
    let Some(key) = packet_key(ip, sport, dport) else {
        return;
    };
    let (key, src_is_lo) = key;
    let client_is_lo = client_is_src == src_is_lo;
    if let Some(v) = SV2_FLOWS.get_ptr_mut(key) {
        // SAFETY: LRU map value; the handshake's packets come before any share.
        unsafe { *v = (*v & !1) | client_is_lo as u64 };
        return;
    }
    let _ = SV2_FLOWS.insert(key, client_is_lo as u64, 0);
}

/// Whether a segment of `plen` bytes is `size` bytes long, without a comparison of `plen`: the
/// verifier would learn its value on one path and walk the rest of the TCP path once more for it
/// (this, for the handshake's two sizes and a share's, halved the instructions it walks).
#[inline(always)]
pub(crate) fn is_size(plen: usize, size: usize) -> bool {
    // The difference, hidden from LLVM (which would compare `plen` itself again), is a new value
    // to the verifier: what it learns of it says nothing of `plen`.
    core::hint::black_box(plen as u64 ^ size as u64) == 0
}

/// A segment of `SHARE_FRAME` bytes with sequence number `seq`: counted as a share when its flow
/// is a Stratum V2 flow and it comes from the client, past the last share counted.
#[inline(always)]
pub(crate) fn share(ip: &Ip, sport: u16, dport: u16, seq: u32, ranges: u64) {
    let Some((key, src_is_lo)) = packet_key(ip, sport, dport) else {
        return;
    };
    let Some(v) = SV2_FLOWS.get_ptr_mut(key) else {
        return;
    };
    // SAFETY: LRU map value; two CPUs counting the same flow's shares at once is a client
    // sending two shares at once, whose order either way counts both.
    let state = unsafe { *v };
    let next = (state >> 32) as u32;
    if (state & 1 != 0) != src_is_lo || (state & 2 != 0 && (seq.wrapping_sub(next) as i32) < 0) {
        return;
    }
    let after = seq.wrapping_add(sensor_common::sv2::SHARE_FRAME as u32);
    // SAFETY: as above.
    unsafe { *v = (after as u64) << 32 | flow::NEXT_VALID | flow::STANDARD | (state & 1) };
    if state & flow::STANDARD == 0 {
        mark_sized();
    }
    sv2_count(ranges, 1);
}

/// Whether a segment of `plen` bytes has an extended share's size, without a comparison of
/// `plen` (see `is_size`).
#[inline(always)]
pub(crate) fn is_extended_size(plen: usize) -> bool {
    core::hint::black_box(plen as u64).wrapping_sub(EXTENDED_MIN as u64)
        <= (EXTENDED_MAX - EXTENDED_MIN) as u64
}

/// A segment of `may_be_sized`'s sizes, `plen` bytes, with sequence number `seq`: an extended
/// share's size (`is_extended_size`), or any longer once some flow's share size is known
/// (`SV2_SIZED`; until then such a segment reads nothing more), goes on to `sv2_sized`.
#[inline(always)]
pub(crate) fn sized(ip: &Ip, sport: u16, dport: u16, seq: u32, plen: usize, ranges: u64) {
    if !is_extended_size(plen) && SV2_SIZED.get(0).is_none_or(|v| *v == 0) {
        return;
    }
    if let Some((_, src_is_lo)) = packet_key(ip, sport, dport) {
        sv2_sized(seq as u64, plen as u64, ranges, src_is_lo as u64);
    }
}

/// `sized` past the flow key, which `packet_key` left in SCRATCH: on a Stratum V2 flow, from its
/// client, a segment of an extended share's size teaches or matches the flow's extended share
/// size (`sensor_common::sv2::extended_share`), a longer one is that many shares when it is an
/// exact multiple of the flow's known share size (`sensor_common::sv2::several_shares`); the
/// shares either proves are counted. A global function, verified once.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn sv2_sized(seq: u64, plen: u64, ranges: u64, src_is_lo: u64) -> u64 {
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: map value pointer, valid for the program run; only this CPU uses it.
    let key = unsafe { &(*scratch).flow.key };
    let Some(v) = SV2_FLOWS.get_ptr_mut(key) else {
        return 0;
    };
    // SAFETY: LRU map value; two CPUs counting the same flow's shares at once is a client
    // sending two segments at once, whose order either way counts both.
    let state = unsafe { *v };
    if (state & flow::CLIENT_IS_LO != 0) != (src_is_lo != 0) {
        return 0;
    }
    let (seq, len) = (seq as u32, plen as u32);
    let (next, shares) = if is_extended_size(plen as usize) {
        extended_share(state, seq, len)
    } else {
        several_shares(state, seq, len)
    };
    // SAFETY: as above.
    unsafe { *v = next };
    if state & (flow::LEARNED | flow::STANDARD) == 0 && next & flow::LEARNED != 0 {
        mark_sized();
    }
    if shares > 0 {
        sv2_count(ranges, shares as u64);
    }
    0
}

/// Whether a segment of `plen` bytes may be one `sized` reads: an extended share's size, or
/// several shares' (`EXTENDED_MIN..=SEVERAL_MAX`), without a comparison of `plen` (see
/// `is_size`). One compare: two here (the extended sizes', then the several shares' with
/// `SV2_SIZED`) made the verifier walk the rest of the TCP path once more (452,930 verified
/// instructions against 413,611).
#[inline(always)]
pub(crate) fn may_be_sized(plen: usize) -> bool {
    core::hint::black_box(plen as u64).wrapping_sub(EXTENDED_MIN as u64)
        <= (SEVERAL_MAX - EXTENDED_MIN) as u64
}

/// Some Stratum V2 flow's share size is known (`SV2_SIZED`), written once.
#[inline(always)]
fn mark_sized() {
    if let Some(v) = SV2_SIZED.get_ptr_mut(0) {
        // SAFETY: array value; every writer writes 1.
        unsafe {
            if *v == 0 {
                *v = 1;
            }
        }
    }
}

/// Counts `n` shares in each range of `ranges` (or unwatched). A global function: the loop over
/// the ranges is verified once.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn sv2_count(ranges: u64, n: u64) -> u64 {
    let mut ranges = ranges;
    if ranges == 0 {
        add(UNWATCHED_SLOT as u32, n);
        return 0;
    }
    for _ in 0..MAX_RANGES {
        if ranges == 0 {
            break;
        }
        let r = lowest_bit(ranges);
        ranges &= ranges - 1;
        add(r as u32, n);
    }
    0
}

#[inline(always)]
fn add(index: u32, n: u64) {
    if let Some(c) = SV2_SHARES.get_ptr_mut(index) {
        // SAFETY: per-CPU cell, no concurrent writer on this CPU.
        unsafe { *c += n };
    }
}
