//! The suspect signals, each counted once per flow and reason: a pool endpoint, a Stratum V2
//! handshake on a pool port, a TLS ClientHello without server_name towards a pool or with one in a
//! pool domain (on any port), and a DNS query for a name in a pool domain (the name walk, like the
//! scan, a `may_goto` loop or a `bpf_loop` callback; the ClientHello's name goes through the same
//! walk).

use aya_ebpf::{bindings::BPF_NOEXIST, helpers::bpf_loop, programs::XdpContext};
use sensor_common::{EVENT_SUSPECT_FLOW, Reason, Stat, dns, stratum, tls_shape};

use crate::{
    count::{bit_in, count_suspect},
    events::emit,
    maps::{
        NOISE_HELLOS, POOL_DOMAIN_FILTER, POOL_DOMAINS, POOL_PORTS, SCRATCH, SHAPE_RECENT,
        SUSPECTS, Scratch, TLS_SHAPES, inspect_budget, stat,
    },
    parse::{IPPROTO_UDP, Ip, byte, load_into, load_window, ptr_at},
    replay::{ingress, now},
    scan::{CANDIDATE, STEPS_PER_CALL, fill_flow_key, packet_key},
    words::zero,
};

#[inline(always)]
pub(crate) fn pool_port(port: u16) -> bool {
    bit_in(&POOL_PORTS, port as u32).unwrap_or(false)
}

/// `pool_dns`: a DNS query (UDP to port 53) for a name in a configured pool domain flags its flow.
/// Not a candidate for deep inspection: there is no Stratum in it.
#[inline(always)]
pub(crate) fn dns_query<const COMPAT: bool>(
    ctx: &XdpContext,
    ip: &Ip,
    sport: u16,
    dport: u16,
    src_ranges: u64,
    dst_ranges: u64,
) {
    let payload = ip.l4 + 8;
    let Ok(h) = ptr_at::<[u8; dns::HEADER]>(ctx, payload) else {
        return;
    };
    // SAFETY: bounds checked by ptr_at.
    if payload + dns::HEADER >= ip.end || !dns::is_query(unsafe { &*h }) {
        return;
    }
    let Ok(n) = load_window(ctx, payload, ip.end - payload) else {
        return;
    };
    let pool = if COMPAT {
        pool_dns_compat(n as u64)
    } else {
        pool_dns(n as u64)
    };
    if pool != 0 {
        suspect(
            ctx,
            ip,
            sport,
            dport,
            IPPROTO_UDP,
            Reason::PoolDns,
            src_ranges,
            dst_ranges,
            false,
        );
    }
}

/// Whether the DNS query in the SCRATCH window (`n` bytes) asks for a name in a pool domain. A
/// global function: verified once.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn pool_dns(n: u64) -> u64 {
    dns_walk::<false>(n)
}

/// `pool_dns` with the `bpf_loop` walk, for `sensor_compat`.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn pool_dns_compat(n: u64) -> u64 {
    dns_walk::<true>(n)
}

/// One step of the walk over a query name in SCRATCH (a label, or 8 bytes of a longer one; each
/// takes at least a byte or ends the walk); true once the walk is over.
#[inline(always)]
fn dns_step(scratch: *mut Scratch) -> bool {
    // SAFETY: map value pointer, valid for the program run; only this CPU uses it.
    unsafe { (*scratch).dns.step(&(*scratch).buf) }
}

/// Up to `STEPS_PER_CALL` steps of the walk per `bpf_loop` call (`sensor_compat`), as
/// `scan_steps` does for the scan.
#[inline(never)]
extern "C" fn dns_steps(_index: u64, ctx: *mut core::ffi::c_void) -> i64 {
    // SAFETY: `ctx` is the SCRATCH pointer `dns_walk` handed to bpf_loop.
    let scratch = unsafe { *(ctx as *const *mut Scratch) };
    let mut i = 0;
    while i < STEPS_PER_CALL {
        // SAFETY: reads a local (see `scan`).
        let s = unsafe { core::ptr::read_volatile(&scratch) };
        if dns_step(s) {
            return 1;
        }
        i += 1;
    }
    0
}

#[inline(always)]
fn dns_walk<const COMPAT: bool>(n: u64) -> u64 {
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: map value pointers, valid for the program run; only this CPU uses them.
    unsafe {
        let name = core::ptr::addr_of_mut!((*scratch).dns);
        // Field by field: writing a whole `QueryName::new` zeroed the label hashes through a
        // `memset` subprogram call on every query (see BENCHMARKS.md). Stale hashes are harmless:
        // each is set when its label starts, and only hashes of labels seen are read.
        (*name).pos = dns::HEADER as u32;
        (*name).next = dns::HEADER as u32;
        (*name).end = n as u32;
        (*name).labels = 0;
        (*name).state = dns::RUNNING;
        if COMPAT {
            let mut ctx = scratch;
            bpf_loop(
                stratum::WINDOW as u32,
                dns_steps as *mut core::ffi::c_void,
                (&mut ctx as *mut *mut Scratch).cast(),
                0,
            );
        } else {
            // State in memory, re-read each step, as in `scan`.
            loop {
                // SAFETY: the instruction only jumps (see `scan`).
                core::arch::asm!("may_goto {}", label { break }, options(nomem, nostack));
                if dns_step(core::ptr::read_volatile(&scratch)) {
                    break;
                }
            }
        }
        (*name).any_suffix(|key| {
            bit_in(&POOL_DOMAIN_FILTER, dns::filter_bit(key) as u32).unwrap_or(false)
                && POOL_DOMAINS.get(key).is_some()
        }) as u64
    }
}

/// The longest a Noise responder may take to answer the hello and still make a handshake.
const NOISE_ANSWER_NS: u64 = 10_000_000_000;

/// Whether a payload of a Noise handshake message's size may be one: it opens with neither a TLS
/// record's header nor a JSON message's start (`sensor_common::sv2::may_be_noise`; a plaintext
/// Stratum message of 64 or 234 bytes is no handshake, on a pool port either), and its first 16
/// bytes are not 7-bit text (`sv2::is_text16`: the rest of a JSON message cut after its `{`).
/// `first` is the payload's first byte, at `payload`; the second is read only when the first is
/// one a header or JSON opens with; the 16 straight from the packet (a payload of these sizes not
/// in the frame's linear part is judged by its first bytes alone).
#[inline(always)]
pub(crate) fn may_be_noise(ctx: &XdpContext, payload: usize, first: u8) -> bool {
    use sensor_common::sv2;
    let opens = !sv2::second_byte_decides(first)
        || sv2::may_be_noise(first, byte(ctx, payload + 1).unwrap_or(0));
    opens
        && match ptr_at::<[u8; 16]>(ctx, payload) {
            Ok(p) => {
                // SAFETY: bounds checked by ptr_at; read unaligned, as bytes.
                let b = unsafe { core::ptr::read_unaligned(p) };
                let (a, c) = (
                    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
                    u64::from_le_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]),
                );
                !sv2::is_text16(a, c)
            }
            Err(()) => true,
        }
}

/// Stratum V2 off the pool ports (443 included): a 64-byte payload (the initiator's Noise hello),
/// then, the other way on the same flow within 10 s, a 234-byte one (the responder's answer),
/// each one that `may_be_noise`. True at the answer: the handshake's shape, which nothing but a
/// Noise handshake of Stratum V2's sizes gives (SSH's encrypted packets cannot be 234 bytes
/// long, a TLS record opens with its header).
#[inline(always)]
pub(crate) fn noise_handshake(ip: &Ip, (sport, dport): (u16, u16), plen: usize) -> bool {
    let Some((key, src_is_lo)) = packet_key(ip, sport, dport) else {
        return false;
    };
    let src_is_lo = src_is_lo as u64;
    let now = now();
    if plen == 64 {
        let _ = NOISE_HELLOS.insert(key, (now & !1) | src_is_lo, 0);
        return false;
    }
    let Some(hello) = NOISE_HELLOS.get_ptr(key) else {
        return false;
    };
    // SAFETY: LRU map value, read once.
    let hello = unsafe { core::ptr::read_volatile(hello) };
    if hello & 1 == src_is_lo || now.wrapping_sub(hello & !1) > NOISE_ANSWER_NS {
        return false;
    }
    let _ = NOISE_HELLOS.remove(key);
    true
}

/// `client_hello`'s answer for a complete ClientHello without server_name.
pub(crate) const HELLO_NO_SNI: u64 = 1;

/// What the ClientHello in SCRATCH.hello (`n` bytes) says of its server: [`HELLO_NO_SNI`], or the
/// end of its host name written as a query's name into SCRATCH.buf (for the pool-domain walk,
/// see `tls::host_to_query`), or 0. A global function: the walk over the extensions and the copy
/// of the name are verified once.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn client_hello(n: u64) -> u64 {
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: map value pointer, valid for the program run; only this CPU uses it.
    let hello = unsafe { &(*scratch).hello };
    let h = sensor_common::tls::client_hello(hello, n as usize);
    hello_answer(h.sni as u64, h.name_at as u64, h.name_len as u64)
}

/// `client_hello`'s answer for what a walk over SCRATCH.hello found (`sni`, and where the name
/// is): also for a ClientHello split over two segments (see `hello`). A global function: the copy
/// of the name is verified once for every walk.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn hello_answer(sni: u64, name_at: u64, name_len: u64) -> u64 {
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: map value pointer, valid for the program run; only this CPU uses it.
    let (hello, buf, host) =
        unsafe { (&(*scratch).hello, &mut (*scratch).buf, &mut (*scratch).host) };
    match sni as u8 {
        sensor_common::tls::NO_SNI => HELLO_NO_SNI,
        sensor_common::tls::HAS_SNI => sensor_common::tls::host_to_query(
            hello,
            name_at as usize,
            name_len as usize,
            buf.bytes_mut(),
            host,
        ) as u64,
        _ => 0,
    }
}

/// Whether the name `client_hello` wrote into SCRATCH.buf, ending at `end`, is in a pool domain.
#[inline(always)]
pub(crate) fn pool_sni<const COMPAT: bool>(end: u64) -> bool {
    (if COMPAT {
        pool_dns_compat(end)
    } else {
        pool_dns(end)
    }) != 0
}

/// Copies up to `HELLO_WINDOW` bytes of payload into SCRATCH.hello; returns how many.
#[inline(always)]
pub(crate) fn load_hello(ctx: &XdpContext, payload: usize, plen: usize) -> Result<usize, ()> {
    let scratch = SCRATCH.get_ptr_mut(0).ok_or(())?;
    // SAFETY: map value pointer, valid for the program run.
    load_into(ctx, payload, plen, unsafe {
        core::ptr::addr_of_mut!((*scratch).hello)
    })
}

/// `encrypted_stratum`: starts recording the shape of the flow whose ClientHello this is (a
/// retransmitted or second ClientHello on a flow already recorded changes nothing).
#[inline(always)]
pub(crate) fn shape_start(
    ctx: &XdpContext,
    ip: &Ip,
    sport: u16,
    dport: u16,
    src_ranges: u64,
    dst_ranges: u64,
) {
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return;
    };
    let Some((key, client_is_lo)) = packet_key(ip, sport, dport) else {
        return;
    };
    // SAFETY: map value pointer, valid for the program run; only this CPU uses it.
    let s = unsafe { &mut (*scratch).shape };
    let now = now();
    s.first_ns = now;
    s.src_ranges = src_ranges;
    s.dst_ranges = dst_ranges;
    s.ifindex = ingress(ctx);
    s.records = 0;
    s.bytes = [0; 2];
    s.client_is_lo = client_is_lo as u8;
    s.kept = 0;
    s.last_tick = 0;
    // The kept records need no clearing: only the first `kept` are read.
    if TLS_SHAPES.insert(key, s, BPF_NOEXIST as u64).is_ok() {
        stat(Stat::ShapesStarted);
        let slot = tls_shape::shape_slot(&ip.src, &ip.dst, sport, dport);
        if let Some(t) = SHAPE_RECENT.get_ptr_mut(slot) {
            // SAFETY: array value; a race between CPUs leaves one of two recent times.
            unsafe { *t = now };
        }
    }
}

/// `encrypted_stratum`: records the application-data record whose header opens this segment, if
/// its flow is being recorded (kept after the opening, summed always). Segments that continue a record (their first bytes are ciphertext)
/// are not looked at: a record's length field already says how large it is.
#[inline(always)]
pub(crate) fn shape_record(ctx: &XdpContext, ip: &Ip, sport: u16, dport: u16, payload: usize) {
    let Ok(h) = ptr_at::<[u8; 5]>(ctx, payload) else {
        return;
    };
    // SAFETY: bounds checked by ptr_at.
    let h = unsafe { &*h };
    if !tls_shape::app_data(h[0], h[1], h[2]) {
        return;
    }
    let len = u16::from_be_bytes([h[3], h[4]]) as u32;
    // Most segments stop here: no ClientHello recorded on a flow of their slot (lately), with no
    // clock read where none ever was.
    let slot = tls_shape::shape_slot(&ip.src, &ip.dst, sport, dport);
    let recent = match SHAPE_RECENT.get(slot) {
        Some(&t) if t != 0 => t,
        _ => return,
    };
    let now = now();
    if now.wrapping_sub(recent) > tls_shape::RECORD_MS * 1_000_000 {
        return;
    }
    let Some((key, src_is_lo)) = packet_key(ip, sport, dport) else {
        return;
    };
    let Some(s) = TLS_SHAPES.get_ptr_mut(key) else {
        return;
    };
    // SAFETY: LRU map value. Two CPUs recording one flow at the same instant may lose a record
    // (plain stores, no atomics); a Stratum flow's records are a round trip apart at the least.
    unsafe {
        let server = src_is_lo != ((*s).client_is_lo != 0);
        let ticks = now.wrapping_sub((*s).first_ns) / tls_shape::TICK_NS;
        if ticks > tls_shape::RECORD_MS * 1_000_000 / tls_shape::TICK_NS {
            // Judged by now; the agent has not read the table since (replay between buckets).
            return;
        }
        let i = (*s).kept as usize;
        if ticks >= tls_shape::OPENING_TICKS && i < tls_shape::SHAPE_RECORDS {
            (*s).first[i & (tls_shape::SHAPE_RECORDS - 1)] = tls_shape::pack(ticks, server, len);
            (*s).kept = i as u8 + 1;
        }
        (*s).records = (*s).records.saturating_add(1);
        (*s).last_tick = ticks as u32;
        let b = &mut (*s).bytes[server as usize & 1];
        *b = b.wrapping_add(len);
    }
}

/// Counts the packet's flow once for `reason` (see `suspect_new`); true when the packet is a
/// candidate for deep inspection (it carries data, within the flow's budget).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn suspect(
    ctx: &XdpContext,
    ip: &Ip,
    sport: u16,
    dport: u16,
    proto: u8,
    reason: Reason,
    src_ranges: u64,
    dst_ranges: u64,
    data: bool,
) -> bool {
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: map value pointer, valid for the program run; only this CPU uses it.
    let sk = unsafe { &mut (*scratch).suspect };
    let src_is_lo = fill_flow_key(&mut sk.flow, ip, sport, dport);
    sk.flow.proto = proto;
    sk.reason = reason as u8;
    // SAFETY: the key's own padding bytes.
    unsafe { zero(sk._pad.as_mut_ptr(), sk._pad.len()) };
    let origin = ingress(ctx) as u64 | (src_is_lo as u64) << 32 | (data as u64) << ORIGIN_DATA;
    suspect_new(src_ranges, dst_ranges, origin) & CANDIDATE != 0
}

/// Bit of `origin` (ifindex | source-is-lower << 32) saying the packet carries transport data.
const ORIGIN_DATA: u64 = 33;

/// Counts and reports the (flow, reason) in SCRATCH.suspect if it is new. A global function:
/// verified once, whatever the caller's state. The table's value counts the flow's packets handed
/// to deep inspection for this reason. Returns `CANDIDATE` for a packet to inspect.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn suspect_new(src_ranges: u64, dst_ranges: u64, origin: u64) -> u64 {
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: map value pointer, valid for the program run.
    let sk = unsafe { &(*scratch).suspect };
    let data = (origin >> ORIGIN_DATA) & 1 != 0;
    let budget = inspect_budget();
    let take = data && budget > 0;
    if SUSPECTS.insert(sk, take as u8, BPF_NOEXIST as u64).is_err() {
        if data && let Some(used) = SUSPECTS.get_ptr_mut(sk) {
            // SAFETY: LRU map value; a race between CPUs costs at most one extra inspection.
            unsafe {
                if (*used as u32) < budget {
                    *used += 1;
                    return CANDIDATE;
                }
            }
        }
        return 0;
    }
    let reason = sk.reason as u64 % Reason::COUNT as u64;
    count_suspect(src_ranges, dst_ranges, reason);
    let now = now();
    emit(
        core::ptr::null_mut(),
        &sk.flow,
        now,
        src_ranges,
        dst_ranges,
        origin,
        EVENT_SUSPECT_FLOW,
        reason as u8,
    );
    if take { CANDIDATE } else { 0 }
}
