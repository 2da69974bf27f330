//! A TLS ClientHello split over segments (`sensor_common::tls::split`), on any port: the
//! first segment's walk stops where the segment ends, the bytes from the first extension not whole
//! in it (at most `OPENING_BYTES`: a server_name extension fits) are held in `OPENINGS` with where
//! the walk goes on, and the next segment in sequence from the same endpoint is walked after them.
//! A first segment cut before the extensions' length is held whole when it fits, and the hello
//! walked from its start. A hello still cut after its second segment (a smaller MSS: tunnels,
//! PPPoE, VPNs) is held the same way once more, for its third (`OPENING_HELLO_LAST`); a fourth
//! is never waited for. What is decided is what one segment would decide: `tls_no_sni` (the
//! caller counts it only towards a pool), or a server name for `tls_pool_sni`. Only a ClientHello
//! cut before its server_name is decided holds anything (one map update per such connection);
//! later segments reach the entry through `RECENT`'s opening times (see `opening::maybe_held`), and off
//! the pool ports only those that do not open like a TLS record (`tcp` in `main.rs`).

use aya_ebpf::{bindings::BPF_ANY, programs::XdpContext};
use sensor_common::{
    OPENING_BYTES, OPENING_HELLO, OPENING_HELLO_LAST, OPENING_MAX_AGE_NS, Stat,
    tls::{HELLO_WINDOW, Hello, Split, split, split_extensions},
};

use crate::{
    maps::{OPENINGS, SCRATCH, stat},
    opening::{held, remove},
    parse::{Ip, load_into},
    recent::{self, opening_held},
    replay::now,
    scan::packet_flow,
    signals::{client_hello, hello_answer},
};

/// `hello_answer` for what a walk found.
#[inline(always)]
fn answer(h: Hello) -> u64 {
    hello_answer(h.sni as u64, h.name_at as u64, h.name_len as u64)
}

/// The first segment of a ClientHello in SCRATCH.hello (`n` bytes, the whole segment): what it
/// decides alone (`client_hello`'s answer), or 0, its rest held for the next segment.
#[inline(always)]
pub(crate) fn first(ip: &Ip, sport: u16, dport: u16, n: usize, next_seq: u32) -> u64 {
    let Some((_, from_lo)) = packet_flow(ip, sport, dport) else {
        return 0;
    };
    hello_split(n as u64, next_seq as u64, from_lo as u64, 0, 0)
}

/// `first`'s walk and hold, and `hello_resume`'s when its walk is cut again, as a BPF global
/// function (verified once). The walk is `split`'s over SCRATCH.hello (`n` bytes) when `resume`
/// is 0, else `split_extensions`' from `resume >> 16` to `resume & 0xffff`. `stage` says what may
/// be held: 0 (a first segment) as `OPENING_HELLO`, 1 (a second) as `OPENING_HELLO_LAST`, 2
/// (a third, or a segment not all in the window) nothing.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn hello_split(n: u64, next_seq: u64, from_lo: u64, stage: u64, resume: u64) -> u64 {
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    let n = n as usize & (HELLO_WINDOW * 2 - 1);
    // SAFETY: map value pointer, valid for the program run; only this CPU uses it.
    let (hello, stage_entry) = unsafe { (&(*scratch).hello, &mut (*scratch).opening) };
    let walked = if resume == 0 {
        split(hello, n)
    } else {
        split_extensions(
            hello,
            n,
            (resume >> 16) as usize & 0xffff,
            resume as usize & 0xffff,
        )
    };
    let (base, skip, end) = match walked {
        Split::Decided(h) => return answer(h),
        _ if stage > 1 => return 0,
        Split::Early => (0, 0, 0),
        Split::Cut { at, end } => {
            let base = if at < n { at } else { n };
            (base, at - base, end - base)
        }
        Split::Not => return 0,
    };
    let carried = n - base;
    if carried >= OPENING_BYTES || skip > 0xffff || end > 0xffff {
        return 0;
    }
    let mut i = 0;
    while i < OPENING_BYTES {
        if i >= carried {
            break;
        }
        stage_entry.bytes[i] = hello[(base + i) & (HELLO_WINDOW - 1)];
        i += 1;
    }
    let now = now();
    stage_entry.at_ns = now;
    stage_entry.next_seq = next_seq as u32;
    stage_entry.len = carried as u16;
    stage_entry.from_lo = from_lo as u8;
    stage_entry.kind = if stage == 0 {
        OPENING_HELLO
    } else {
        OPENING_HELLO_LAST
    };
    stage_entry.skip = skip as u16;
    stage_entry.end = end as u16;
    stage_entry._pad = [0; 4];
    // SAFETY: map value pointer, valid for the program run; only this CPU uses it.
    let key = unsafe { &(*scratch).flow.key };
    if OPENINGS.insert(key, stage_entry, BPF_ANY as u64).is_ok() {
        stat(Stat::OpeningsHeld);
        // SAFETY: map value pointer, valid for the program run; only this CPU uses it.
        recent::mark_opening(unsafe { &(*scratch).flow }, now);
    }
    0
}

/// A segment that continues a held ClientHello of its flow: the walk's answer (as
/// `client_hello`'s), `None` when the segment continues none.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn continued(
    ctx: &XdpContext,
    ip: &Ip,
    sport: u16,
    dport: u16,
    seq: u32,
    payload: usize,
    plen: usize,
) -> Option<u64> {
    let scratch = SCRATCH.get_ptr_mut(0)?;
    let (flow, from_lo) = packet_flow(ip, sport, dport)?;
    if !opening_held(flow) {
        return None;
    }
    let joined = hello_join(seq as u64, from_lo as u64);
    if joined == 0 {
        return None;
    }
    // Read through a volatile, so that the mask stays (see `opening::load_after`).
    // SAFETY: reads a local.
    let at = unsafe { core::ptr::read_volatile(&joined) } as usize - 1;
    let at = at & (OPENING_BYTES - 1);
    // SAFETY: map value pointer; at + (HELLO_WINDOW - OPENING_BYTES) <= HELLO_WINDOW.
    let dst = unsafe {
        core::ptr::addr_of_mut!((*scratch).hello)
            .cast::<u8>()
            .add(at)
            .cast::<[u8; HELLO_WINDOW - OPENING_BYTES]>()
    };
    let m = load_into(ctx, payload, plen, dst).ok()?;
    Some(hello_resume(
        (at + m) as u64,
        seq.wrapping_add(plen as u32) as u64,
        from_lo as u64,
        (m == plen) as u64,
    ))
}

/// The held ClientHello rest of SCRATCH's key that a segment `seq` from `from_lo` continues: its
/// bytes copied to SCRATCH.hello's start, the walk's state to SCRATCH.window; returns their count
/// plus 1, or 0. The entry goes once joined (one segment continues it) or stale; one that a
/// segment out of sequence finds stays for its continuation.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn hello_join(seq: u64, from_lo: u64) -> u64 {
    let Some((scratch, key, o)) = held() else {
        return 0;
    };
    // SAFETY: LRU map value, valid for the program run.
    let o = unsafe { &*o };
    if (o.kind != OPENING_HELLO && o.kind != OPENING_HELLO_LAST) || o.from_lo as u64 != from_lo {
        return 0;
    }
    if now().saturating_sub(o.at_ns) > OPENING_MAX_AGE_NS {
        remove(key);
        return 0;
    }
    // Out of sequence (a segment after a gap, come before the one that continues the hello, or
    // a retransmission of one before it): the entry waits for its continuation.
    if o.next_seq as u64 != seq {
        return 0;
    }
    let len = o.len as usize & (OPENING_BYTES - 1);
    let mut i = 0;
    while i < OPENING_BYTES {
        if i >= len {
            break;
        }
        // SAFETY: map value pointer, valid for the program run; only this CPU uses it.
        unsafe { (*scratch).hello[i] = o.bytes[i] };
        i += 1;
    }
    // SAFETY: as above.
    unsafe { (*scratch).window = [len as u64, o.skip as u64, o.end as u64, o.kind as u64] };
    remove(key);
    // The slot forgets it too, so that later segments of flows hashed there stop at the slot's
    // read (another flow's opening held in the same slot meanwhile loses its join: 1 in 65,536).
    // SAFETY: map value pointer, valid for the program run; only this CPU uses it.
    recent::unmark_opening(unsafe { &(*scratch).flow });
    len as u64 + 1
}

/// The walk over SCRATCH.hello (`n` bytes: the held rest, then the segment, which ends at
/// `next_seq`, from `from_lo`; `whole` when all of it is in the window) from where `hello_join`
/// left it: `client_hello`'s answer. Cut again, after a second segment, the rest is held for a
/// third (`OPENING_HELLO_LAST`); after a third, nothing more is.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn hello_resume(n: u64, next_seq: u64, from_lo: u64, whole: u64) -> u64 {
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: map value pointer, valid for the program run; only this CPU uses it.
    let [_, skip, end, kind] = unsafe { (*scratch).window };
    let stage = if whole != 0 && kind == OPENING_HELLO as u64 {
        1
    } else {
        2
    };
    if end == 0 {
        // Held whole: the ordinary walk over the joined hello; cut again, `split`'s, which
        // decides on a whole server_name before the extensions' end too.
        let h = client_hello(n);
        if h != 0 {
            return h;
        }
        return hello_split(n, next_seq, from_lo, stage, 0);
    }
    hello_split(
        n,
        next_seq,
        from_lo,
        stage,
        (skip & 0xffff) << 16 | (end & 0xffff),
    )
}
