//! A TLS ClientHello split over two segments (`sensor_common::tls::split`), on any port: the
//! first segment's walk stops where the segment ends, the bytes from the first extension not whole
//! in it (at most `OPENING_BYTES`: a server_name extension fits) are held in `OPENINGS` with where
//! the walk goes on, and the next segment in sequence from the same endpoint is walked after them.
//! A first segment cut before the extensions' length is held whole when it fits, and the hello
//! walked from its start. What is decided is what one segment would decide: `tls_no_sni` (the
//! caller counts it only towards a pool), or a server name for `tls_pool_sni`. Only a ClientHello
//! cut before its server_name is decided holds anything (one map update per such connection);
//! later segments reach the entry through `OPENING_SLOTS` (see `opening::maybe_held`), and off
//! the pool ports only those that do not open like a TLS record (`tcp` in `main.rs`).
use aya_ebpf::{bindings::BPF_ANY, programs::XdpContext};
use sensor_common::{
    OPENING_BYTES, OPENING_HELLO, OPENING_MAX_AGE_NS, Stat, recent_slot,
    tls::{HELLO_WINDOW, Hello, Split, extensions, split},
};

use crate::{
    maps::{OPENING_SLOTS, OPENINGS, SCRATCH, stat},
    opening::{maybe_held, remove},
    parse::{Ip, load_into},
    replay::now,
    scan::fill_flow_key,
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
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: map value pointer, valid for the program run; only this CPU uses it.
    let key = unsafe { &mut (*scratch).key };
    let from_lo = fill_flow_key(key, ip, sport, dport);
    hello_split(n as u64, next_seq as u64, from_lo as u64)
}

/// `first`'s walk and hold, as a BPF global function (verified once).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn hello_split(n: u64, next_seq: u64, from_lo: u64) -> u64 {
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    let n = n as usize & (HELLO_WINDOW * 2 - 1);
    // SAFETY: map value pointer, valid for the program run; only this CPU uses it.
    let (hello, stage) = unsafe { (&(*scratch).hello, &mut (*scratch).opening) };
    let (base, skip, end) = match split(hello, n) {
        Split::Decided(h) => return answer(h),
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
        stage.bytes[i] = hello[(base + i) & (HELLO_WINDOW - 1)];
        i += 1;
    }
    let now = now();
    stage.at_ns = now;
    stage.next_seq = next_seq as u32;
    stage.len = carried as u16;
    stage.from_lo = from_lo as u8;
    stage.kind = OPENING_HELLO;
    stage.skip = skip as u16;
    stage.end = end as u16;
    stage._pad = [0; 4];
    // SAFETY: map value pointer, valid for the program run; only this CPU uses it.
    let key = unsafe { &(*scratch).key };
    if OPENINGS.insert(key, stage, BPF_ANY as u64).is_ok() {
        stat(Stat::OpeningsHeld);
        if let Some(t) = OPENING_SLOTS.get_ptr_mut(recent_slot(key)) {
            // SAFETY: array value; racing CPUs write nearly the same time.
            unsafe { *t = now | 1 };
        }
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
    // SAFETY: map value pointer, valid for the program run; only this CPU uses it.
    let key = unsafe { &mut (*scratch).key };
    let from_lo = fill_flow_key(key, ip, sport, dport);
    if !maybe_held(key) {
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
    Some(hello_resume((at + m) as u64))
}

/// The held ClientHello rest of SCRATCH's key that a segment `seq` from `from_lo` continues: its
/// bytes copied to SCRATCH.hello's start, the walk's state to SCRATCH.window; returns their count
/// plus 1, or 0. The entry goes once joined (one segment continues it) or stale; one that a
/// segment out of sequence finds stays for its continuation.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn hello_join(seq: u64, from_lo: u64) -> u64 {
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: map value pointer, valid for the program run; only this CPU uses it.
    let key = unsafe { &(*scratch).key };
    let Some(o) = OPENINGS.get_ptr(key) else {
        return 0;
    };
    // SAFETY: LRU map value, valid for the program run.
    let o = unsafe { &*o };
    if o.kind != OPENING_HELLO || o.from_lo as u64 != from_lo {
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
    unsafe { (*scratch).window = [len as u64, o.skip as u64, o.end as u64, 0] };
    remove(key);
    // The slot forgets it too, so that later segments of flows hashed there stop at the slot's
    // read (another flow's opening held in the same slot meanwhile loses its join: 1 in 65,536).
    if let Some(t) = OPENING_SLOTS.get_ptr_mut(recent_slot(key)) {
        // SAFETY: array value; a racing CPU's write wins or loses, either is a valid time.
        unsafe { *t = 0 };
    }
    len as u64 + 1
}

/// The walk over SCRATCH.hello (`n` bytes: the held rest, then the segment) from where
/// `hello_join` left it: `client_hello`'s answer.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn hello_resume(n: u64) -> u64 {
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: map value pointer, valid for the program run; only this CPU uses it.
    let (hello, state) = unsafe { (&(*scratch).hello, (*scratch).window) };
    let [_, skip, end, _] = state;
    if end == 0 {
        // Held whole: the ordinary walk over the joined hello.
        return client_hello(n);
    }
    let n = n as usize & (HELLO_WINDOW * 2 - 1);
    answer(extensions(hello, n, skip as usize, end as usize))
}
