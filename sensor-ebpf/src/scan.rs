//! The Stratum scan over a payload window (one scanner step per loop iteration, its state in
//! scratch memory; `may_goto` loop in `sensor`, `bpf_loop` callback in `sensor_compat`) and the
//! flow table it counts Stratum flows in.

use aya_ebpf::{bindings::BPF_NOEXIST, helpers::bpf_loop};
use sensor_common::{
    CAPTURE_INLINE, EVENT_STRATUM_FLOW, FlowKey, FlowState, ParseEvent, Stat, recent_slot,
    stratum::{self, Prior},
};

use crate::{
    count::{count_stratum_flow, count_stratum_packet},
    events::emit,
    maps::{FLOWS, Flow, SCRATCH, Scratch, bump, capture_mode, inspect_budget, stat},
    parse::{IPPROTO_TCP, Ip},
    pools,
    recent::{self, recent_stratum},
    replay::now,
    words::zero,
};

/// `inspect_window` result bit: the packet opened a new Stratum flow.
pub(crate) const NEW_FLOW: u64 = 1 << 8;
/// Result bit of `inspect_window` and `suspect_new`: hand the packet to deep inspection.
pub(crate) const CANDIDATE: u64 = 1 << 9;

/// Scans the payload window in SCRATCH (its flow in SCRATCH too) and counts what it finds. A global
/// function with scalar arguments: verified once, whatever the caller's state. Returns 0 when the
/// window holds no Stratum message, else the dialect plus `NEW_FLOW` for a new flow.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn inspect_window(n: u64, src_ranges: u64, dst_ranges: u64, origin: u64) -> u64 {
    inspect::<false>(n, src_ranges, dst_ranges, origin)
}

/// `inspect_window` with the `bpf_loop` scan, for `sensor_compat`.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn inspect_window_compat(
    n: u64,
    src_ranges: u64,
    dst_ranges: u64,
    origin: u64,
) -> u64 {
    inspect::<true>(n, src_ranges, dst_ranges, origin)
}

#[inline(always)]
fn inspect<const COMPAT: bool>(n: u64, src_ranges: u64, dst_ranges: u64, origin: u64) -> u64 {
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: map value pointer, valid for the program run.
    let flow = unsafe { &(*scratch).flow };
    let key = &flow.key;
    // The flow is looked up before the scan when its `RECENT` slot says it may be a Stratum
    // flow: a known flow's message is then decided at its method
    // (`stratum::KNOWN_FLOW_METHODS`), and the lookup serves the counting below too. Any other
    // segment pays one array read more. When the scan finds a message on a flow whose slot
    // carried no Stratum packet lately, the flow is almost always new: it is inserted at once
    // (`BPF_NOEXIST`) and looked up only when that fails (a flow idle that long, or another
    // CPU's insert of the same flow a moment before), so a new flow's login does not pay a
    // lookup that finds nothing before its insert.
    //
    // A new flow's login to a pool endpoint (`pools`) is decided at its method, as a known
    // flow's is: the evidence after it is most of what a new flow's login costs. The scan stops
    // at the method (`Prior::PoolLogin`), the table is read, and the scan goes on from there
    // when the destination is no pool endpoint: a payload with no login reads no table.
    let recent = recent_stratum(flow);
    let existing = if recent { FLOWS.get_ptr_mut(key) } else { None };
    let prior = if existing.is_some() {
        Prior::KnownFlow
    } else {
        Prior::PoolLogin
    };
    let scan = |prior: u64| {
        if COMPAT {
            scan_window_compat(n, prior)
        } else {
            scan_window(n, prior)
        }
    };
    let mut d = scan(prior as u64);
    // SAFETY: map value pointer, valid for the program run; the scan wrote it.
    if d != 0
        && unsafe { (*scratch).scan.scanner.at_login_method() }
        && !pools::known(key, dst_is_lo(origin))
    {
        d = scan(SCAN_ON);
    }
    if d == 0 {
        return 0;
    }
    let now = now();
    recent::stratum_passed(flow, now);
    let budget = inspect_budget();
    // Every Stratum packet of a known flow is a candidate (the activity measure needs every
    // share, job and reply), and a new flow's first; the budget only bounds suspect flows.
    let candidate = if budget > 0 { CANDIDATE } else { 0 };
    let (dialect, new_flow) = match existing {
        Some(state) => (known_packet(state, now), false),
        None => {
            // Field by field, the padding zeroed a byte at a time (`words`): built whole, its
            // `_pad: [0; 3]` became a `memset` call on every new flow.
            let mut state = core::mem::MaybeUninit::<FlowState>::uninit();
            let p = state.as_mut_ptr();
            // SAFETY: every field of the local is written before it is read (`assume_init_ref`).
            let state = unsafe {
                core::ptr::addr_of_mut!((*p).first_seen_ns).write(now);
                core::ptr::addr_of_mut!((*p).last_seen_ns).write(now);
                core::ptr::addr_of_mut!((*p).ranges).write(src_ranges | dst_ranges);
                core::ptr::addr_of_mut!((*p).stratum_packets).write(1);
                core::ptr::addr_of_mut!((*p).dialect).write(d - 1);
                zero(core::ptr::addr_of_mut!((*p)._pad).cast::<u8>(), 3);
                state.assume_init_ref()
            };
            match insert_new_flow(key, state) {
                Ok(()) => {
                    stat(Stat::FlowsCreated);
                    // A login that met its rule teaches its destination; one decided at its
                    // method by that does not keep it known (`sensor_common::pools`).
                    // (The packet's direction read back from `origin`: kept in a register
                    // across the scan, it took the stack past 512 bytes.)
                    // SAFETY: map value pointer, valid for the program run; the scan wrote it.
                    if unsafe { (*scratch).scan.scanner.login_met_rule() } {
                        pools::learn(key, dst_is_lo(origin), now);
                    }
                    // The packet is copied into the sample ring (every new Stratum flow's first
                    // packet is a candidate): its record carries the event too, one ring record
                    // instead of two (`capture::sample`, which sends the event alone when the
                    // copy cannot be made). Otherwise the event takes the event ring.
                    let carry = candidate != 0 && capture_mode() == CAPTURE_INLINE;
                    // SAFETY: map value pointer, valid for the program run; only this CPU uses
                    // it.
                    let keep = unsafe {
                        (*scratch).carry = carry as u64;
                        if carry {
                            core::ptr::addr_of_mut!((*scratch).opened)
                        } else {
                            core::ptr::null_mut()
                        }
                    };
                    emit(
                        keep,
                        key,
                        now,
                        src_ranges,
                        dst_ranges,
                        origin,
                        EVENT_STRATUM_FLOW,
                        d - 1,
                    );
                    ((d - 1) as u64, true)
                }
                // In the table already (see above): counted as a known flow's packet.
                Err(_) => match FLOWS.get_ptr_mut(key) {
                    Some(state) => (known_packet(state, now), false),
                    None => {
                        bump(ParseEvent::FlowInsertFailed);
                        ((d - 1) as u64, false)
                    }
                },
            }
        }
    };
    count_stratum_packet(src_ranges, dst_ranges, dialect);
    if new_flow {
        count_stratum_flow(src_ranges, dst_ranges, dialect);
        return dialect | NEW_FLOW | candidate;
    }
    dialect | candidate
}

/// Whether the packet's destination is its flow key's lower endpoint, from `inspect_window`'s
/// `origin` (the source's side in bit 32, as `tcp` packs it and `events::emit` reads it).
#[inline(always)]
fn dst_is_lo(origin: u64) -> bool {
    (origin >> 32) & 1 == 0
}

/// A known flow's Stratum packet: its statistics, and the dialect it was counted with (a flow
/// keeps the dialect of its first Stratum packet: EthereumStratum pools push `mining.notify`
/// too).
#[inline(always)]
fn known_packet(state: *mut FlowState, now: u64) -> u64 {
    // SAFETY: LRU map value; concurrent updates of these statistics may race harmlessly.
    unsafe {
        (*state).last_seen_ns = now;
        (*state).stratum_packets += 1;
        (*state).dialect as u64
    }
}

/// `scan_window`'s `prior` that scans on from where the scan stopped, without its prior (a login
/// stopped at by `Prior::PoolLogin` to no pool endpoint).
const SCAN_ON: u64 = 0xff;

/// Scans the first `n` bytes of the SCRATCH window, of a flow of which `prior` (a
/// `stratum::Prior`) is known, or on from where it stopped (`SCAN_ON`); returns `dialect + 1`
/// or 0. A global function, so that the flow-table pointer
/// `inspect` holds across it does not make the verifier walk the scan once for each of its
/// states (a flow found or none).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn scan_window(n: u64, prior: u64) -> u8 {
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    scan::<false>(scratch, n as usize, prior)
}

/// `scan_window` with the `bpf_loop` scan, for `sensor_compat`.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn scan_window_compat(n: u64, prior: u64) -> u8 {
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    scan::<true>(scratch, n as usize, prior)
}

/// One scanner step: a token, a run of a long string, or a byte where the byte-wise rules apply.
/// Returns whether the scan is over (the window's end, or a message recognised). Generic only so
/// that each build of the program gets its own copy, inlined (shared, LLVM made a subprogram of
/// its long-string walk, which the verifier then walked many more times; see BENCHMARKS.md).
#[inline(always)]
fn scan_step<const COMPAT: bool>(scratch: *mut Scratch) -> bool {
    // SAFETY: map value pointer, valid for the program run; only this CPU uses it.
    let (c, buf) = unsafe { (&mut (*scratch).scan, &(*scratch).buf) };
    if c.pos >= c.len {
        return true;
    }
    let (advance, d) = c.scanner.feed_with(
        buf,
        c.pos as usize,
        c.len as usize,
        |packed, hash, len| token_end(packed, hash as u64, len as u64),
        |pos, len| stratum::long_run(buf, pos, len),
    );
    c.pos += advance as u64;
    if d != 0 {
        c.found = d as u64;
        return true;
    }
    false
}

/// The scanner's decision at a closing quote, as a BPF global function: the marker lookup and the
/// rules branch many ways, and inlined into the scan's step those branches multiplied the paths
/// the verifier walks, and its load time with them (see BENCHMARKS.md). Called for the few strings
/// that can be markers.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn token_end(packed: u64, hash: u64, len: u64) -> u64 {
    stratum::token_end(packed, hash as u32, len as u32)
}

/// Steps per `bpf_loop` call (`sensor_compat`): each call and return costs more than a step's own
/// work on CPUs whose returns go through a mitigation thunk.
pub(crate) const STEPS_PER_CALL: usize = 4;

/// Up to `STEPS_PER_CALL` scanner steps per `bpf_loop` call (`sensor_compat`). As a callback it is
/// verified once, with the scanner's state in memory.
#[inline(never)]
extern "C" fn scan_steps(_index: u64, ctx: *mut core::ffi::c_void) -> i64 {
    // SAFETY: `ctx` is the SCRATCH pointer `scan` handed to bpf_loop; the value stays valid for
    // the program run and only this CPU uses it.
    let scratch = unsafe { *(ctx as *const *mut Scratch) };
    let mut i = 0;
    while i < STEPS_PER_CALL {
        // SAFETY: reads a local (see `scan`).
        let s = unsafe { core::ptr::read_volatile(&scratch) };
        if scan_step::<true>(s) {
            return 1;
        }
        i += 1;
    }
    0
}

/// Scans the first `n` bytes of the SCRATCH window; returns `dialect + 1` or 0. One scanner step
/// per iteration, the scanner's state in SCRATCH: the verifier tracks no values in map memory, so
/// every step starts from unknown scalars and the step is verified once for all of them (an
/// open-coded loop with the state in registers made it walk every combination of the scanner's
/// flags at every byte, past its 1M-instruction budget). Every step consumes at least a byte, so
/// the loop ends within `WINDOW` steps.
#[inline(always)]
fn scan<const COMPAT: bool>(scratch: *mut Scratch, n: usize, prior: u64) -> u8 {
    // SAFETY: map value pointer, valid for the program run; only this CPU uses it.
    unsafe {
        let c = &mut (*scratch).scan;
        if prior == SCAN_ON {
            c.scanner.without_prior();
        } else {
            (*scratch).buf.seal(n);
            // Volatile: a plain assignment became calls to a byte-at-a-time `memset` (see
            // `zero`).
            core::ptr::write_volatile(
                &mut c.scanner,
                stratum::Scanner::for_prior(Prior::from_u64(prior)),
            );
            c.pos = 0;
            c.len = n as u64;
        }
        c.found = 0;
    }
    if COMPAT {
        let mut ctx = scratch;
        // SAFETY: callback and context as bpf_loop requires; n <= WINDOW.
        unsafe {
            bpf_loop(
                n as u32,
                scan_steps as *mut core::ffi::c_void,
                (&mut ctx as *mut *mut Scratch).cast(),
                0,
            )
        };
    } else {
        loop {
            // `may_goto`: the verifier checks this loop like an open-coded iterator, until its
            // state at the top repeats, and the kernel bounds it at run time. No `bpf_loop`
            // callback call per few steps, which is what makes it faster than `sensor_compat`.
            // SAFETY: the instruction only jumps.
            unsafe {
                core::arch::asm!("may_goto {}", label { break }, options(nomem, nostack));
            }
            // Re-read through a volatile pointer each step, so that no value of one step reaches
            // the next in a register: the state at the loop's top is then always the same to
            // the verifier.
            // SAFETY: reads a local.
            let s = unsafe { core::ptr::read_volatile(&scratch) };
            if scan_step::<false>(s) {
                break;
            }
        }
    }
    // SAFETY: as above; the steps wrote through the same pointer.
    let c = unsafe { &(*scratch).scan };
    if c.found != 0 {
        c.found as u8
    } else {
        c.scanner.finish()
    }
}

/// Whether the flow table lacks `key`. The map helpers take `impl Borrow<K>`: handing them a key or
/// state by value (clippy's suggestion for `&local`) copies it onto the BPF stack, which pushed
/// the combined stack of the call chain past the verifier's 512 bytes. These wrappers keep every
/// call by reference.
#[inline(always)]
pub(crate) fn flow_unknown(key: &FlowKey) -> bool {
    FLOWS.get_ptr_mut(key).is_none()
}

#[inline(always)]
fn insert_new_flow(key: &FlowKey, state: &FlowState) -> Result<(), i32> {
    FLOWS.insert(key, state, BPF_NOEXIST as u64)
}

/// Fills SCRATCH's flow for the packet: its key (`fill_flow_key`) and the key's slot
/// (`recent_slot`), which every later read of a table by slot on the packet's path takes from
/// there; and whether the packet's source is the key's lower endpoint. Every path that reads a
/// table by slot fills it so first (the key stays in SCRATCH: the BPF stack is nearly full).
#[inline(always)]
pub(crate) fn packet_flow(ip: &Ip, sport: u16, dport: u16) -> Option<(&'static Flow, bool)> {
    let (flow, src_is_lo) = fill_flow(ip, sport, dport)?;
    flow.slot = recent_slot(&flow.key) as u64;
    Some((flow, src_is_lo))
}

/// `packet_flow` without the slot, for the paths that read no table by slot (Stratum V2 sizes,
/// the TLS shape, the Noise handshake): they pay no hash. The slot left in SCRATCH may be an
/// earlier packet's; the `&FlowKey` this returns cannot be handed to a reader of the slot.
#[inline(always)]
pub(crate) fn packet_key(ip: &Ip, sport: u16, dport: u16) -> Option<(&'static FlowKey, bool)> {
    let (flow, src_is_lo) = fill_flow(ip, sport, dport)?;
    Some((&flow.key, src_is_lo))
}

#[inline(always)]
fn fill_flow(ip: &Ip, sport: u16, dport: u16) -> Option<(&'static mut Flow, bool)> {
    let scratch = SCRATCH.get_ptr_mut(0)?;
    // SAFETY: map value pointer, valid for the program run; only this CPU uses it.
    let flow = unsafe { &mut (*scratch).flow };
    let src_is_lo = fill_flow_key(&mut flow.key, ip, sport, dport);
    Some((flow, src_is_lo))
}

/// Writes the flow key into `key` (lower endpoint first, so that both directions give the same
/// key; written in place, in map memory, because the BPF stack is nearly full) and returns
/// whether the packet's source is that lower endpoint.
#[inline(always)]
pub(crate) fn fill_flow_key(key: &mut FlowKey, ip: &Ip, sport: u16, dport: u16) -> bool {
    key.proto = IPPROTO_TCP;
    key.family = ip.family;
    key._pad = [0; 2];
    let src_is_lo = (be_words(&ip.src), sport) <= (be_words(&ip.dst), dport);
    if src_is_lo {
        key.addr_lo = ip.src;
        key.addr_hi = ip.dst;
        key.port_lo = sport;
        key.port_hi = dport;
    } else {
        key.addr_lo = ip.dst;
        key.addr_hi = ip.src;
        key.port_lo = dport;
        key.port_hi = sport;
    }
    src_is_lo
}

/// An address as two big-endian words, which order as its bytes do. Compared as `[u8; 16]`, two
/// addresses went through a byte-at-a-time `memcmp` loop (BPF has no such instruction), past the
/// ten equal bytes of every pair of IPv4-mapped addresses.
#[inline(always)]
fn be_words(a: &[u8; 16]) -> (u64, u64) {
    let (hi, lo) = a.split_first_chunk::<8>().unwrap_or((&[0; 8], &[]));
    let lo = lo.first_chunk::<8>().unwrap_or(&[0; 8]);
    (u64::from_be_bytes(*hi), u64::from_be_bytes(*lo))
}
