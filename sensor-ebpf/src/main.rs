//! mining-sensor's XDP program. It never drops or alters a packet: every path returns XDP_PASS.
//!
//! Per packet: parse Ethernet, up to `MAX_VLAN_TAGS` 802.1Q/802.1ad tags, IPv4 (options) or IPv6
//! (extension headers), then TCP/UDP; look up source and destination in the watched-range LPM tries
//! (the value is the set of configured ranges containing the address), count packets and IP bytes
//! per interface slot, range and direction; on TCP payloads run the Stratum scanner from
//! `sensor-common` and count Stratum packets and, once per flow, Stratum flows.
//!
//! Candidates for deep inspection (packets with a Stratum signature, the first data packets of a
//! suspect flow, at most `INSPECT_BUDGET` per flow) go to userspace: in `tap` capture mode they are
//! redirected to an AF_XDP socket (a mirror port's copy of traffic is not needed by the stack); in
//! `inline` mode they pass like every other packet and their first bytes are copied to `SAMPLES`.
//! Nothing else is ever dropped or altered.
#![no_std]
#![no_main]
#![feature(asm_experimental_arch)]

use core::mem::size_of;

use aya_ebpf::{
    bindings::{
        BPF_NOEXIST, BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, BPF_RB_RING_SIZE,
        xdp_action,
    },
    helpers::{
        bpf_ktime_get_coarse_ns, bpf_loop, bpf_xdp_adjust_head, bpf_xdp_adjust_meta,
        bpf_xdp_adjust_tail, bpf_xdp_load_bytes,
    },
    macros::{map, xdp},
    maps::{
        Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, ProgramArray, RingBuf, XskMap,
        lpm_trie::Key,
    },
    programs::XdpContext,
};
use aya_log_ebpf::debug;
use sensor_common::{
    CAPTURE_INLINE, CAPTURE_TAP, Counter, DIR_FROM, DIR_TO, EVENT_STRATUM_FLOW, EVENT_SUSPECT_FLOW,
    Event, FILTER_V4_ALL, FILTER_V6_ALL, FILTER_WORDS, FlowKey, FlowState, IFINDEX_DIRECT,
    MAX_IFACE_SLOTS, MAX_IPV6_EXT, MAX_QUEUES, MAX_RANGES, MAX_VLAN_TAGS, POOL_BIT,
    POOL_PORT_WORDS, ParseEvent, RANGE_MASK, REPLAY_BAD_HEADER, REPLAY_BAD_LAYOUT, REPLAY_DONE,
    REPLAY_TAIL_CALL_FAILED, Reason, ReplayHeader, STRATUM_CELLS, SUSPECT_CELLS, Sample, Stat,
    SuspectKey, TRAFFIC_CELLS, UNWATCHED_SLOT, dns, filter_bit_v4, filter_bit_v6, stratum,
    stratum_index, suspect_index, traffic_index, xsk_key,
};

/// The largest header offset the transport code is handed (see `try_sensor`).
const MAX_OFFSET: u64 = 0x3fff;

const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const ETH_P_QINQ_LEGACY: u16 = 0x9100;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

#[map]
static TRAFFIC: PerCpuArray<Counter> = PerCpuArray::with_max_entries(TRAFFIC_CELLS as u32, 0);
#[map]
static STRATUM_PACKETS: PerCpuArray<u64> = PerCpuArray::with_max_entries(STRATUM_CELLS as u32, 0);
#[map]
static STRATUM_FLOWS: PerCpuArray<u64> = PerCpuArray::with_max_entries(STRATUM_CELLS as u32, 0);
#[map]
static PARSE: PerCpuArray<u64> = PerCpuArray::with_max_entries(ParseEvent::COUNT as u32, 0);
#[map]
static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Stat::COUNT as u32, 0);

#[map]
static SUSPECT_FLOWS: PerCpuArray<u64> = PerCpuArray::with_max_entries(SUSPECT_CELLS as u32, 0);
/// (flow, reason) pairs already counted: each suspect flow counts once per reason. Resized by the
/// agent like the flow table.
#[map]
static SUSPECTS: LruHashMap<SuspectKey, u8> = LruHashMap::with_max_entries(65536, 0);
/// Keys of the configured pool domains (`sensor_common::dns::name_key`), written by the agent.
#[map]
static POOL_DOMAINS: HashMap<u64, u8> = HashMap::with_max_entries(dns::MAX_POOL_DOMAINS, 0);
/// `dns::filter_bit` of each key in `POOL_DOMAINS`, written by the agent after the keys themselves
/// (a set bit without its key only costs the lookup).
#[map]
static POOL_DOMAIN_FILTER: Array<u64> = Array::with_max_entries(dns::FILTER_WORDS as u32, 0);
/// Pool ports, one bit per port, written by the agent.
#[map]
static POOL_PORTS: Array<u64> = Array::with_max_entries(POOL_PORT_WORDS as u32, 0);

/// One event per new Stratum flow, read by the agent. Resized by the agent from configuration;
/// an event that finds it full is counted in `STATS[EventsLost]`, never silently dropped.
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

/// Watched prefixes; the value is the bit set of configured ranges that contain the prefix (the
/// agent folds enclosing prefixes of every range in, so the longest match answers for all ranges).
/// The agent resizes both tries from configuration before loading.
#[map]
static RANGES_V4: LpmTrie<[u8; 4], u64> = LpmTrie::with_max_entries(1 << 16, 0);
#[map]
static RANGES_V6: LpmTrie<[u8; 16], u64> = LpmTrie::with_max_entries(1 << 16, 0);

/// Quick rejection in front of the tries (see `sensor_common::FILTER_BITS`): most addresses on a
/// transit link are in no watched range, and one array read proves it without a trie walk.
#[map]
static FILTER: Array<u64> = Array::with_max_entries(FILTER_WORDS as u32, 0);
/// `FILTER_V4_ALL` / `FILTER_V6_ALL`: a configured prefix too short for the filter; that family
/// always goes to the trie.
#[map]
static FILTER_FLAGS: Array<u32> = Array::with_max_entries(1, 0);

/// Interface index -> interface slot (0: not registered; its traffic is counted in slot 0).
#[map]
static IFINDEX_SLOTS: Array<u32> = Array::with_max_entries(IFINDEX_DIRECT, 0);
#[map]
static IFINDEX_SLOTS_HIGH: HashMap<u32, u32> = HashMap::with_max_entries(MAX_IFACE_SLOTS as u32, 0);

/// Stratum flows. Shared across CPUs (not per-CPU) so that the two directions of a connection,
/// which RSS may steer to different CPUs, are one flow and are counted once; `BPF_NOEXIST` makes
/// "first packet" a single winner even under a race. Resized by the agent from configuration.
#[map]
static FLOWS: LruHashMap<FlowKey, FlowState> = LruHashMap::with_max_entries(65536, 0);

/// When a Stratum packet last passed on a flow of each `recent_slot` (0: never). A segment that
/// does not start a JSON message is looked up in FLOWS only when its slot is recent: on a transit
/// link most such segments (TLS and other ciphertext continuing a record, a third of which start
/// with a printable byte) then cost an array read instead of a flow-table lookup.
#[map]
static RECENT: Array<u64> = Array::with_max_entries(sensor_common::RECENT_SLOTS as u32, 0);

/// Per-CPU working memory: the payload window the scanner reads (too large for the 512-byte BPF
/// stack), the scan's state between its steps (see `scan`), and the other walks' state.
#[repr(C)]
struct Scratch {
    buf: stratum::Window,
    /// The scan's state between steps (see `scan`).
    scan: ScanState,
    key: FlowKey,
    suspect: SuspectKey,
    /// The walk over a DNS query's name (see `pool_dns`).
    dns: dns::QueryName,
    /// The start of a TLS record, for the ClientHello walk (see `client_hello_without_sni`).
    hello: [u8; sensor_common::tls::HELLO_WINDOW],
    /// Replay: the header of the packet being run (see `replay_enter`).
    pkt: ReplayHeader,
    /// The transport header's offset and the IP packet's end, passed through memory (see
    /// `try_sensor`).
    offsets: [u64; 2],
}

#[map]
static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// `sensor_common::CAPTURE_*`, set by the agent at load time. A read-only global: the verifier
/// knows its value and prunes the capture path not taken.
#[unsafe(no_mangle)]
static CAPTURE_MODE: u32 = 0;
/// Packets per flow (and per suspect reason) handed to deep inspection; the rest are only counted.
#[unsafe(no_mangle)]
static INSPECT_BUDGET: u32 = 0;
/// 1 when loaded by `mining-sensor replay`: every run is a batch of packets with their capture
/// time (see `ReplayHeader`). Read-only like `CAPTURE_MODE`: the live program carries none of it.
#[unsafe(no_mangle)]
static REPLAY_BATCH: u32 = 0;

/// Replay: slot 0 holds the program itself, which tail-calls itself for each next packet.
#[map]
static REPLAY_NEXT: ProgramArray = ProgramArray::with_max_entries(1, 0);

/// `tap`: AF_XDP sockets by interface slot and receive queue (`slot * MAX_QUEUES + queue`),
/// registered by the agent. Keyed by slot too because a socket only takes packets of the device
/// and queue it is bound to: with several interfaces, queue 0 of one is not queue 0 of another.
#[map]
static XSKS: XskMap = XskMap::with_max_entries(MAX_IFACE_SLOTS as u32 * MAX_QUEUES, 0);
/// `inline`: the first `SAMPLE_BYTES` of each candidate. Resized by the agent from configuration;
/// a sample that finds it full is counted in `STATS[SamplesLost]`.
#[map]
static SAMPLES: RingBuf = RingBuf::with_byte_size(1024 * 1024, 0);

#[inline(always)]
fn capture_mode() -> u32 {
    // SAFETY: reads a global; volatile so that LLVM does not fold the compile-time 0.
    unsafe { core::ptr::read_volatile(&CAPTURE_MODE) }
}

#[inline(always)]
fn inspect_budget() -> u32 {
    // SAFETY: as above.
    unsafe { core::ptr::read_volatile(&INSPECT_BUDGET) }
}

#[inline(always)]
fn replay_batch() -> bool {
    // SAFETY: as above.
    unsafe { core::ptr::read_volatile(&REPLAY_BATCH) != 0 }
}

/// Replay: the header of the packet being run (see `replay_enter`); `None` live.
#[inline(always)]
fn replay_header() -> Option<*const ReplayHeader> {
    if !replay_batch() {
        return None;
    }
    // SAFETY: map value pointer, valid for the program run; only the address is taken here.
    SCRATCH
        .get_ptr(0)
        .map(|s| unsafe { core::ptr::addr_of!((*s).pkt) })
}

/// The packet's time: the clock live, the capture's time in replay. Live, the coarse monotonic
/// clock: a tick's resolution (a few ms) is plenty for flows that age in seconds and for event
/// times, and the precise clock cost about 25 ns more a call here (a VM's TSC read), paid by every
/// Stratum packet.
#[inline(always)]
fn now() -> u64 {
    match replay_header() {
        // SAFETY: points into SCRATCH, valid for the program run.
        Some(h) => unsafe { (*h).ts_ns },
        // SAFETY: helper without preconditions.
        None => unsafe { bpf_ktime_get_coarse_ns() },
    }
}

/// The frame's length on the wire: what the IP headers' lengths are checked against. Live, the
/// frame itself; in replay, the capture's record may have been cut short (by its snap length, or
/// to fit a batch) and the header says how long it was.
#[inline(always)]
fn wire_len(ctx: &XdpContext) -> usize {
    match replay_header() {
        // SAFETY: as in `now`.
        Some(h) => unsafe { (*h).wire_len as usize },
        None => ctx.data_end() - ctx.data(),
    }
}

/// The packet's ingress interface: the device live, the capture file's stand-in in replay.
#[inline(always)]
fn ingress(ctx: &XdpContext) -> u32 {
    match replay_header() {
        // SAFETY: as in `now`.
        Some(h) => unsafe { (*h).ifindex },
        // SAFETY: `ctx.ctx` is the program's xdp_md. A volatile read of the field itself: LLVM
        // merged the plain reads of the two paths into a load through a computed context pointer,
        // which the verifier refuses ("dereference of modified ctx ptr").
        None => unsafe {
            core::ptr::read_volatile(core::ptr::addr_of!((*ctx.ctx).ingress_ifindex))
        },
    }
}

/// The program: its loops (the Stratum scan, the DNS name walk) are `may_goto` loops, which
/// kernels from 6.9 on verify and run.
#[xdp]
pub fn sensor(ctx: XdpContext) -> u32 {
    run::<false>(ctx)
}

/// The same program for kernels before 6.9, which know no `may_goto`: its loops are `bpf_loop`
/// callbacks (Linux 5.18 on), each call a few steps. Up to about 10% slower on a Stratum packet; the
/// agent loads it only when the kernel refuses `sensor`.
#[xdp]
pub fn sensor_compat(ctx: XdpContext) -> u32 {
    run::<true>(ctx)
}

/// The whole program, with `bpf_loop` loops when `COMPAT`.
#[inline(always)]
fn run<const COMPAT: bool>(ctx: XdpContext) -> u32 {
    let replay = replay_batch();
    if replay && let Err(code) = replay_enter(&ctx) {
        return code;
    }
    // Whatever the parser concluded, the packet goes on untouched, unless it is a candidate for
    // deep inspection on a tap.
    let action = match try_sensor::<COMPAT>(&ctx) {
        Ok(true) => capture(&ctx),
        _ => xdp_action::XDP_PASS,
    };
    // One call site of the per-packet code for both paths, so that it stays inlined: called from
    // two, LLVM made it a subprogram, which cost the live path 13 ns an unwatched packet.
    if replay {
        return replay_next(&ctx);
    }
    action
}

/// Hands a candidate to userspace; the return value is the packet's action.
#[inline(always)]
fn capture(ctx: &XdpContext) -> u32 {
    let mode = capture_mode();
    if mode == CAPTURE_TAP {
        // SAFETY: `ctx.ctx` is the program's xdp_md.
        let queue = unsafe { (*ctx.ctx).rx_queue_index };
        if queue >= MAX_QUEUES {
            stat(Stat::NoSocket);
            return xdp_action::XDP_PASS;
        }
        let key = xsk_key(slot_of(ctx) as u32, queue);
        // XDP_PASS in the flags is the action when no socket serves the queue.
        match XSKS.redirect(key, xdp_action::XDP_PASS as u64) {
            Ok(action) => {
                stat(Stat::Candidates);
                action
            }
            Err(_) => {
                stat(Stat::NoSocket);
                xdp_action::XDP_PASS
            }
        }
    } else if mode == CAPTURE_INLINE {
        sample(ctx);
        xdp_action::XDP_PASS
    } else {
        xdp_action::XDP_PASS
    }
}

/// Replay: moves the frame's bounds onto the next packet of a batch (see `ReplayHeader` for the
/// layout) and keeps its header in scratch memory, where `now` and `ingress` read it. `sensor`
/// then runs its per-packet code and `replay_next`.
#[inline(always)]
fn replay_enter(ctx: &XdpContext) -> Result<(), u32> {
    let s = SCRATCH.get_ptr_mut(0).ok_or(REPLAY_BAD_HEADER)?;
    // The header goes straight into scratch memory: the main function's stack is nearly all
    // taken by the per-packet code's call chain.
    // SAFETY: map value pointer, valid for the program run; only this CPU uses it.
    let h = unsafe { core::ptr::addr_of_mut!((*s).pkt) };
    let hsize = ReplayHeader::SIZE;
    let meta = ctx.metadata();
    if meta + hsize <= ctx.data() {
        // The batch's first packet: its header is the metadata. Need not be aligned.
        // SAFETY: bounds checked above; `h` as above.
        unsafe { h.write(core::ptr::read_unaligned(meta as *const ReplayHeader)) };
        // SAFETY: helpers on the program's own context. The metadata is dropped: it would
        // otherwise move with the frame's start, over the packets before it.
        if unsafe { bpf_xdp_adjust_meta(ctx.ctx, hsize as i32) } != 0 {
            return Err(REPLAY_BAD_HEADER);
        }
        // SAFETY: as above.
        let (offset, len) = unsafe { ((*h).offset, (*h).len) };
        if offset != 0 {
            // SAFETY: as above.
            if unsafe { bpf_xdp_adjust_head(ctx.ctx, offset as i32) } != 0 {
                return Err(REPLAY_BAD_HEADER);
            }
            // The whole batch must be in the frame's linear part, or the bounds are wrong.
            if ctx.data_end() - ctx.data() != len as usize {
                return Err(REPLAY_BAD_LAYOUT);
            }
        }
    } else {
        // The frame is exactly the header, just before the packet it describes.
        let p = ctx.data();
        if p + hsize > ctx.data_end() {
            return Err(REPLAY_BAD_HEADER);
        }
        // The helper copies the header at once; an unaligned read of packet memory became a
        // byte-at-a-time `memmove` loop, a few hundred instructions for every replayed packet.
        // SAFETY: `h` points at a header's worth of writable map memory; offset 0 and the size
        // are within the frame (checked above).
        if unsafe { bpf_xdp_load_bytes(ctx.ctx, 0, h.cast(), hsize as u32) } != 0 {
            return Err(REPLAY_BAD_HEADER);
        }
        // SAFETY: as above.
        let (len, index) = unsafe { ((*h).len, (*h).index) };
        // SAFETY: helpers on the program's own context.
        if unsafe { bpf_xdp_adjust_head(ctx.ctx, -(len as i32)) } != 0
            || unsafe { bpf_xdp_adjust_tail(ctx.ctx, -(hsize as i32)) } != 0
        {
            return Err(REPLAY_BAD_HEADER + index.saturating_sub(1));
        }
    }
    Ok(())
}

/// Replay, after a packet ran: `REPLAY_DONE` plus the packets run when the batch is done, else
/// the frame becomes the next packet's header (which ends where this packet starts) and the
/// program tail-calls itself.
#[inline(always)]
fn replay_next(ctx: &XdpContext) -> u32 {
    let Some(s) = SCRATCH.get_ptr(0) else {
        return REPLAY_BAD_HEADER;
    };
    // SAFETY: map value pointer, valid for the program run.
    let (len, index, remaining) = unsafe { ((*s).pkt.len, (*s).pkt.index, (*s).pkt.remaining) };
    if remaining == 0 {
        return REPLAY_DONE + index;
    }
    let hsize = ReplayHeader::SIZE as i32;
    // SAFETY: helpers on the program's own context.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -hsize) } != 0
        || unsafe { bpf_xdp_adjust_tail(ctx.ctx, -(len as i32)) } != 0
    {
        return REPLAY_BAD_HEADER + index;
    }
    // SAFETY: the program tail-calls itself; on success this does not return.
    unsafe { REPLAY_NEXT.tail_call(ctx, 0) };
    REPLAY_TAIL_CALL_FAILED + index
}

/// Copies the first `SAMPLE_BYTES` of the frame into the `SAMPLES` ring, in place.
#[inline(always)]
fn sample(ctx: &XdpContext) {
    let frame_len = ctx.data_end() - ctx.data();
    let wire = wire_len(ctx);
    let Some(mut entry) = SAMPLES.reserve::<Sample>(0) else {
        stat(Stat::SamplesLost);
        return;
    };
    let s = entry.as_mut_ptr();
    // SAFETY: `s` points at a reserved, writable Sample; `load_into` writes at most
    // `SAMPLE_BYTES` bytes into `data`.
    let Ok(n) = load_into(ctx, 0, frame_len, unsafe {
        core::ptr::addr_of_mut!((*s).data)
    }) else {
        entry.discard(0);
        return;
    };
    // SAFETY: as above; the header is written field by field.
    unsafe {
        core::ptr::addr_of_mut!((*s).ts_ns).write(now());
        core::ptr::addr_of_mut!((*s).ifindex).write(ingress(ctx));
        core::ptr::addr_of_mut!((*s).frame_len).write(wire as u32);
        core::ptr::addr_of_mut!((*s).cap_len).write(n as u32);
        core::ptr::addr_of_mut!((*s)._pad).write(0);
    }
    entry.submit(wakeup(&SAMPLES));
    stat(Stat::Candidates);
}

/// The flags to submit a ring record with. A wake-up is an interrupt the submitting CPU sends
/// itself (irq work) to wake the reader: with one for the flow event and one for the copy, a login
/// opening its flow took 13,500 ns here (a VM), against 2,100 without (`stratum_login_new_flow_ns`
/// in the bench). So none is sent while the ring is less than a quarter full: the agent reads its
/// rings every `RING_POLL` anyway; past a quarter, every record wakes it, so a burst cannot fill
/// the ring while it sleeps.
#[inline(always)]
fn wakeup(ring: &RingBuf) -> u64 {
    if ring.query(BPF_RB_AVAIL_DATA as u64) * 4 >= ring.query(BPF_RB_RING_SIZE as u64) {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}

/// The benchmarks' baseline (`cargo xtask bench`): the cheapest possible XDP program, run over the
/// same packets through the same BPF_PROG_TEST_RUN path, so that the sensor's cost is reported as
/// time over this. Never attached.
#[xdp]
pub fn bench_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

/// The benchmarks' traffic generator: run with BPF_F_TEST_XDP_LIVE_FRAMES on one end of a veth
/// pair, it transmits each frame to the other end as an XDP frame. Never attached.
#[xdp]
pub fn bench_tx(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_TX
}

#[inline(always)]
fn stat(s: Stat) {
    if let Some(p) = STATS.get_ptr_mut(s as u32) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe { *p += 1 };
    }
}

#[inline(always)]
fn bump(event: ParseEvent) {
    if let Some(p) = PARSE.get_ptr_mut(event as u32) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe { *p += 1 };
    }
}

/// Bounds-checked pointer into the packet. The explicit `start + offset + len > end` test is the
/// form the verifier needs to see before any access.
#[inline(always)]
fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Result<*const T, ()> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + size_of::<T>() > end {
        return Err(());
    }
    Ok((start + offset) as *const T)
}

#[inline(always)]
fn be16(ctx: &XdpContext, offset: usize) -> Result<u16, ()> {
    let p: *const [u8; 2] = ptr_at(ctx, offset)?;
    // SAFETY: bounds checked by ptr_at.
    Ok(u16::from_be_bytes(unsafe { *p }))
}

/// One byte through the helper: for a 1-byte access LLVM folds `off + 1 > end` into `off >= end`,
/// which the verifier does not accept as a bounds proof.
#[inline(always)]
fn byte(ctx: &XdpContext, offset: usize) -> Result<u8, ()> {
    let mut b = 0u8;
    // SAFETY: writes one byte into `b`; the kernel checks the offset against the packet.
    let rc = unsafe { bpf_xdp_load_bytes(ctx.ctx, offset as u32, (&mut b as *mut u8).cast(), 1) };
    if rc != 0 { Err(()) } else { Ok(b) }
}

/// What the network layer found, for counting and for the transport layer.
struct Ip {
    src: [u8; 16],
    dst: [u8; 16],
    family: u8,
    /// IP bytes: IPv4 total length, IPv6 40 + payload length.
    bytes: u64,
    proto: u8,
    /// Offset of the transport header, 0 when there is none to read (fragment, unknown chain).
    l4: usize,
    /// Offset one past the last IP byte.
    end: usize,
}

/// Parses and counts the packet; `Ok(true)` when it is a candidate for deep inspection.
fn try_sensor<const COMPAT: bool>(ctx: &XdpContext) -> Result<bool, ()> {
    bump(ParseEvent::Seen);
    let Some(mut ip) = parse_ip(ctx) else {
        return Ok(false);
    };
    // The offsets go through memory, so that the verifier sees them as bounded unknowns: each
    // path through the link and network headers (VLAN tags, IPv4 options, IPv6 extension
    // headers) otherwise reached the transport code with its own known offsets, and the
    // transport code was verified once per path.
    if ip.l4 as u64 > MAX_OFFSET || ip.end as u64 > MAX_OFFSET {
        // Not in a frame's linear part: nothing past the network header can be read.
        ip.l4 = 0;
    }
    if let Some(s) = SCRATCH.get_ptr_mut(0) {
        // SAFETY: map value pointer, valid for the program run; only this CPU uses it.
        unsafe {
            let o = core::ptr::addr_of_mut!((*s).offsets);
            core::ptr::write_volatile(o, [ip.l4 as u64, ip.end as u64]);
            let [l4, end] = core::ptr::read_volatile(o);
            // The mask is what the verifier sees as the bound (the test above, on the values
            // written, is what makes it exact).
            ip.l4 = (l4 & MAX_OFFSET) as usize;
            ip.end = (end & MAX_OFFSET) as usize;
        }
    }

    let slot = iface_slot(ctx);
    let (src_found, dst_found) = lookup_ranges(&ip);
    // The pool bit rides in the same trie values; it is a signal, never a range.
    let pool = (src_found | dst_found) & POOL_BIT != 0;
    let (src_ranges, dst_ranges) = (src_found & RANGE_MASK, dst_found & RANGE_MASK);
    if src_ranges != 0 {
        count_traffic(slot as u64, src_ranges, DIR_FROM as u64, ip.bytes);
    }
    if dst_ranges != 0 {
        count_traffic(slot as u64, dst_ranges, DIR_TO as u64, ip.bytes);
    }

    if ip.l4 == 0 {
        return Ok(false);
    }
    if ip.proto == IPPROTO_TCP {
        tcp::<COMPAT>(ctx, &ip, src_ranges, dst_ranges, pool)
    } else if ip.proto == IPPROTO_UDP {
        let Ok(h) = ptr_at::<[u8; 8]>(ctx, ip.l4) else {
            bump(ParseEvent::TruncatedUdp);
            return Ok(false);
        };
        if ip.l4 + 8 > ip.end {
            bump(ParseEvent::TruncatedUdp);
            return Ok(false);
        }
        // SAFETY: bounds checked by ptr_at.
        let h = unsafe { &*h };
        let (sport, dport) = (
            u16::from_be_bytes([h[0], h[1]]),
            u16::from_be_bytes([h[2], h[3]]),
        );
        if dport == dns::DNS_PORT {
            dns_query::<COMPAT>(ctx, &ip, sport, dport, src_ranges, dst_ranges);
        }
        if pool {
            return Ok(suspect(
                ctx,
                &ip,
                sport,
                dport,
                IPPROTO_UDP,
                Reason::PoolEndpoint,
                src_ranges,
                dst_ranges,
                ip.l4 + 8 < ip.end,
            ));
        }
        Ok(false)
    } else {
        bump(ParseEvent::OtherTransport);
        Ok(false)
    }
}

#[inline(always)]
fn parse_ip(ctx: &XdpContext) -> Option<Ip> {
    let Ok(mut ethertype) = be16(ctx, 12) else {
        bump(ParseEvent::TruncatedEthernet);
        return None;
    };
    let mut l3 = 14;
    for _ in 0..MAX_VLAN_TAGS {
        if ethertype != ETH_P_8021Q && ethertype != ETH_P_8021AD && ethertype != ETH_P_QINQ_LEGACY {
            break;
        }
        let Ok(inner) = be16(ctx, l3 + 2) else {
            bump(ParseEvent::TruncatedVlan);
            return None;
        };
        ethertype = inner;
        l3 += 4;
    }
    if ethertype == ETH_P_IPV4 {
        parse_ipv4(ctx, l3)
    } else if ethertype == ETH_P_IPV6 {
        parse_ipv6(ctx, l3)
    } else if ethertype == ETH_P_8021Q
        || ethertype == ETH_P_8021AD
        || ethertype == ETH_P_QINQ_LEGACY
    {
        bump(ParseEvent::TooManyVlanTags);
        None
    } else {
        bump(ParseEvent::NotIp);
        None
    }
}

#[inline(always)]
fn parse_ipv4(ctx: &XdpContext, l3: usize) -> Option<Ip> {
    let Ok(h) = ptr_at::<[u8; 20]>(ctx, l3) else {
        bump(ParseEvent::TruncatedIpv4);
        return None;
    };
    // SAFETY: bounds checked by ptr_at.
    let h = unsafe { &*h };
    let ihl = ((h[0] & 0x0f) as usize) * 4;
    if h[0] >> 4 != 4 || ihl < 20 {
        bump(ParseEvent::BadIpv4Header);
        return None;
    }
    let total = u16::from_be_bytes([h[2], h[3]]) as usize;
    let frame = wire_len(ctx);
    if total < ihl || l3 + total > frame {
        bump(ParseEvent::BadIpv4Length);
        return None;
    }
    // Built from two words, not zeroed and then copied into: LLVM turns that zeroing of the two
    // addresses into a call of a `memset` BPF subprogram, which was a third of the cost of an
    // unwatched IPv4 packet.
    let widen = |a: [u8; 4]| -> [u8; 16] {
        // SAFETY: two u64 are 16 bytes of plain data; in memory the first 4 are `a`, in order.
        unsafe { core::mem::transmute::<[u64; 2], [u8; 16]>([u32::from_ne_bytes(a) as u64, 0]) }
    };
    let src = widen([h[12], h[13], h[14], h[15]]);
    let dst = widen([h[16], h[17], h[18], h[19]]);
    let frag_offset = u16::from_be_bytes([h[6], h[7]]) & 0x1fff;
    let l4 = if frag_offset != 0 {
        bump(ParseEvent::Fragment);
        0
    } else {
        l3 + ihl
    };
    Some(Ip {
        src,
        dst,
        family: 4,
        bytes: total as u64,
        proto: h[9],
        l4,
        end: l3 + total,
    })
}

#[inline(always)]
fn parse_ipv6(ctx: &XdpContext, l3: usize) -> Option<Ip> {
    let Ok(h) = ptr_at::<[u8; 40]>(ctx, l3) else {
        bump(ParseEvent::TruncatedIpv6);
        return None;
    };
    // SAFETY: bounds checked by ptr_at.
    let h = unsafe { &*h };
    let payload = u16::from_be_bytes([h[4], h[5]]) as usize;
    let frame = wire_len(ctx);
    if h[0] >> 4 != 6 || l3 + 40 + payload > frame {
        bump(ParseEvent::BadIpv6Length);
        return None;
    }
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src.copy_from_slice(&h[8..24]);
    dst.copy_from_slice(&h[24..40]);
    let end = l3 + 40 + payload;
    let mut next = h[6];
    let mut off = l3 + 40;
    let mut l4 = 0;
    for _ in 0..MAX_IPV6_EXT {
        match next {
            // Hop-by-hop, routing, destination options: (len + 1) * 8 bytes.
            0 | 43 | 60 => {
                let Ok(e) = ptr_at::<[u8; 2]>(ctx, off) else {
                    break;
                };
                // SAFETY: bounds checked by ptr_at.
                let e = unsafe { *e };
                next = e[0];
                off += (e[1] as usize + 1) * 8;
            }
            // Authentication header: (len + 2) * 4 bytes.
            51 => {
                let Ok(e) = ptr_at::<[u8; 2]>(ctx, off) else {
                    break;
                };
                // SAFETY: bounds checked by ptr_at.
                let e = unsafe { *e };
                next = e[0];
                off += (e[1] as usize + 2) * 4;
            }
            44 => {
                let Ok(e) = ptr_at::<[u8; 8]>(ctx, off) else {
                    break;
                };
                // SAFETY: bounds checked by ptr_at.
                let e = unsafe { *e };
                next = e[0];
                off += 8;
                if u16::from_be_bytes([e[2], e[3]]) & 0xfff8 != 0 {
                    bump(ParseEvent::Fragment);
                    return Some(Ip {
                        src,
                        dst,
                        family: 6,
                        bytes: 40 + payload as u64,
                        proto: next,
                        l4: 0,
                        end,
                    });
                }
            }
            _ => {
                l4 = off;
                break;
            }
        }
    }
    if l4 == 0 || l4 > end {
        bump(ParseEvent::BadIpv6Extension);
        l4 = 0;
    }
    Some(Ip {
        src,
        dst,
        family: 6,
        bytes: 40 + payload as u64,
        proto: next,
        l4,
        end,
    })
}

#[inline(always)]
fn iface_slot(ctx: &XdpContext) -> usize {
    let slot = slot_of(ctx);
    if slot == 0 {
        bump(ParseEvent::UnknownInterface);
    }
    slot
}

/// The interface's counter slot, 0 when the agent did not register it.
#[inline(always)]
fn slot_of(ctx: &XdpContext) -> usize {
    let ifindex = ingress(ctx);
    let slot = if ifindex < IFINDEX_DIRECT {
        IFINDEX_SLOTS.get(ifindex).copied().unwrap_or(0)
    } else {
        // SAFETY: the value is a plain u32 copied out at once.
        unsafe { IFINDEX_SLOTS_HIGH.get(ifindex) }
            .copied()
            .unwrap_or(0)
    };
    if slot as usize >= MAX_IFACE_SLOTS {
        return 0;
    }
    slot as usize
}

#[inline(always)]
fn maybe_watched(bit: u32) -> bool {
    bit_in(&FILTER, bit).unwrap_or(true)
}

/// Bit `bit` of a bitmap the agent keeps in an array of 64-bit words; `None` past its end.
#[inline(always)]
fn bit_in(map: &Array<u64>, bit: u32) -> Option<bool> {
    map.get(bit >> 6).map(|w| (w >> (bit & 63)) & 1 != 0)
}

#[inline(always)]
fn lookup_ranges(ip: &Ip) -> (u64, u64) {
    let flags = FILTER_FLAGS
        .get(0)
        .copied()
        .unwrap_or(FILTER_V4_ALL | FILTER_V6_ALL);
    if ip.family == 4 {
        let s = [ip.src[0], ip.src[1], ip.src[2], ip.src[3]];
        let d = [ip.dst[0], ip.dst[1], ip.dst[2], ip.dst[3]];
        let all = flags & FILTER_V4_ALL != 0;
        let src = if all || maybe_watched(filter_bit_v4(u32::from_be_bytes(s))) {
            RANGES_V4.get(Key::new(32, s)).copied().unwrap_or(0)
        } else {
            0
        };
        let dst = if all || maybe_watched(filter_bit_v4(u32::from_be_bytes(d))) {
            RANGES_V4.get(Key::new(32, d)).copied().unwrap_or(0)
        } else {
            0
        };
        (src, dst)
    } else {
        let all = flags & FILTER_V6_ALL != 0;
        let top = |a: &[u8; 16]| u32::from_be_bytes([a[0], a[1], a[2], a[3]]);
        let src = if all || maybe_watched(filter_bit_v6(top(&ip.src))) {
            RANGES_V6.get(Key::new(128, ip.src)).copied().unwrap_or(0)
        } else {
            0
        };
        let dst = if all || maybe_watched(filter_bit_v6(top(&ip.dst))) {
            RANGES_V6.get(Key::new(128, ip.dst)).copied().unwrap_or(0)
        } else {
            0
        };
        (src, dst)
    }
}

/// Index of the lowest set bit (x != 0), without a table: BPF has no count-trailing-zeros
/// instruction and LLVM's lowering would need a constant pool.
#[inline(always)]
fn lowest_bit(x: u64) -> usize {
    let mut v = (x & x.wrapping_neg()) - 1;
    v -= (v >> 1) & 0x5555_5555_5555_5555;
    v = (v & 0x3333_3333_3333_3333) + ((v >> 2) & 0x3333_3333_3333_3333);
    v = (v + (v >> 4)) & 0x0f0f_0f0f_0f0f_0f0f;
    (v.wrapping_mul(0x0101_0101_0101_0101) >> 56) as usize
}

/// A BPF *global* function (exported, scalar arguments): the verifier checks it once on its own.
/// Inlined, the loop over range bits made `ranges` precise and multiplied the states every later
/// instruction was verified in.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn count_traffic(slot: u64, ranges: u64, dir: u64, bytes: u64) -> u64 {
    let slot = slot as usize % MAX_IFACE_SLOTS;
    let dir = dir as usize % 2;
    let mut ranges = ranges;
    for _ in 0..MAX_RANGES {
        if ranges == 0 {
            break;
        }
        let r = lowest_bit(ranges);
        ranges &= ranges - 1;
        if let Some(c) = TRAFFIC.get_ptr_mut(traffic_index(slot, r, dir)) {
            // SAFETY: per-CPU cell, no concurrent writer on this CPU.
            unsafe {
                (*c).packets += 1;
                (*c).bytes += bytes;
            }
        }
    }
    0
}

/// Calls `f(range, direction)` for each range in the source (`from`) and destination (`to`) sets,
/// or once with the unwatched slot (direction `none`, stored as `from`) when both are empty.
#[inline(always)]
fn each_range(src: u64, dst: u64, mut f: impl FnMut(usize, usize)) {
    if src == 0 && dst == 0 {
        f(UNWATCHED_SLOT, DIR_FROM);
        return;
    }
    for (mut ranges, dir) in [(src, DIR_FROM), (dst, DIR_TO)] {
        for _ in 0..MAX_RANGES {
            if ranges == 0 {
                break;
            }
            let r = lowest_bit(ranges);
            ranges &= ranges - 1;
            f(r, dir);
        }
    }
}

#[inline(always)]
fn add_one(map: &PerCpuArray<u64>, index: u32) {
    if let Some(c) = map.get_ptr_mut(index) {
        // SAFETY: per-CPU cell, no concurrent writer on this CPU.
        unsafe { *c += 1 };
    }
}

/// Counts a Stratum packet. Global, as above. One function per map: the verifier inlines a
/// lookup whose map is constant into a few instructions, but one whose map is chosen at run time
/// stays a helper call (a hot login took about 13 ns longer with one function for both maps).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn count_stratum_packet(src: u64, dst: u64, dialect: u64) -> u64 {
    count_stratum(&STRATUM_PACKETS, src, dst, dialect);
    0
}

/// Counts a new Stratum flow. Global, as above.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn count_stratum_flow(src: u64, dst: u64, dialect: u64) -> u64 {
    count_stratum(&STRATUM_FLOWS, src, dst, dialect);
    0
}

#[inline(always)]
fn count_stratum(map: &PerCpuArray<u64>, src: u64, dst: u64, dialect: u64) {
    let dialect = dialect as usize % stratum::DIALECTS;
    each_range(src, dst, |r, dir| {
        add_one(map, stratum_index(r, dir, dialect))
    });
}

#[inline(always)]
fn pool_port(port: u16) -> bool {
    bit_in(&POOL_PORTS, port as u32).unwrap_or(false)
}

/// Copies up to a window of payload into SCRATCH.buf; returns how many bytes.
#[inline(always)]
fn load_window(ctx: &XdpContext, payload: usize, plen: usize) -> Result<usize, ()> {
    let scratch = SCRATCH.get_ptr_mut(0).ok_or(())?;
    // SAFETY: map value pointer, valid for the program run.
    load_into(ctx, payload, plen, unsafe {
        core::ptr::addr_of_mut!((*scratch).buf).cast::<[u8; stratum::WINDOW]>()
    })
}

/// Copies up to `N` bytes of payload into `dst` (map memory); returns how many. Live, the frame
/// holds all `plen` bytes; a replayed record cut short holds fewer, and only those are read.
#[inline(always)]
fn load_into<const N: usize>(
    ctx: &XdpContext,
    payload: usize,
    plen: usize,
    dst: *mut [u8; N],
) -> Result<usize, ()> {
    let present = (ctx.data_end() - ctx.data()).saturating_sub(payload);
    let plen = if plen > present { present } else { plen };
    let n = if plen > N { N } else { plen };
    // LLVM knows 0 < n <= N from the checks above and drops a repeated test, but the verifier
    // lost that fact on the way; a volatile re-read keeps the test it needs to see.
    // SAFETY: reads a local.
    let n = unsafe { core::ptr::read_volatile(&n) };
    if n == 0 || n > N {
        return Err(());
    }
    // SAFETY: `dst` points at N writable bytes of a map value; 0 < n <= N.
    let rc = unsafe { bpf_xdp_load_bytes(ctx.ctx, payload as u32, dst.cast(), n as u32) };
    if rc != 0 {
        return Err(());
    }
    Ok(n)
}

/// `pool_dns`: a DNS query (UDP to port 53) for a name in a configured pool domain flags its flow.
/// Not a candidate for deep inspection: there is no Stratum in it.
#[inline(always)]
fn dns_query<const COMPAT: bool>(
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
        // `memset` subprogram call, a quarter of the walk's cost. Stale hashes are harmless: each
        // is set when its label starts, and only hashes of labels seen are read.
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

/// Whether SCRATCH.hello holds a complete ClientHello without server_name. A global
/// function: the walk over the extensions is verified once.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn client_hello_without_sni(n: u64) -> u64 {
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: map value pointer, valid for the program run.
    let buf = unsafe { &(*scratch).hello };
    (sensor_common::tls::client_hello_sni(buf, n as usize) == sensor_common::tls::NO_SNI) as u64
}

/// Copies up to `HELLO_WINDOW` bytes of payload into SCRATCH.hello; returns how many.
#[inline(always)]
fn load_hello(ctx: &XdpContext, payload: usize, plen: usize) -> Result<usize, ()> {
    let scratch = SCRATCH.get_ptr_mut(0).ok_or(())?;
    // SAFETY: map value pointer, valid for the program run.
    load_into(ctx, payload, plen, unsafe {
        core::ptr::addr_of_mut!((*scratch).hello)
    })
}

/// Counts the packet's flow once for `reason` (see `suspect_new`); true when the packet is a
/// candidate for deep inspection (it carries data, within the flow's budget).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn suspect(
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
    zero(&mut sk._pad);
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

/// Counts a new suspect flow per range and direction (`unwatched`/`none` outside every range).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn count_suspect(src: u64, dst: u64, reason: u64) -> u64 {
    let reason = reason as usize % Reason::COUNT;
    each_range(src, dst, |r, dir| {
        add_one(&SUSPECT_FLOWS, suspect_index(r, dir, reason))
    });
    0
}

#[inline(always)]
fn tcp<const COMPAT: bool>(
    ctx: &XdpContext,
    ip: &Ip,
    src_ranges: u64,
    dst_ranges: u64,
    pool: bool,
) -> Result<bool, ()> {
    let Ok(h) = ptr_at::<[u8; 20]>(ctx, ip.l4) else {
        bump(ParseEvent::BadTcpHeader);
        return Err(());
    };
    // SAFETY: bounds checked by ptr_at.
    let h = unsafe { &*h };
    let doff = ((h[12] >> 4) as usize) * 4;
    let payload = ip.l4 + doff;
    if doff < 20 || payload > ip.end {
        bump(ParseEvent::BadTcpHeader);
        return Err(());
    }
    let plen = ip.end - payload;
    let sport = u16::from_be_bytes([h[0], h[1]]);
    let dport = u16::from_be_bytes([h[2], h[3]]);
    // The suspect signals of this segment's flow, each counted once per flow.
    let flag = |reason| {
        suspect(
            ctx,
            ip,
            sport,
            dport,
            IPPROTO_TCP,
            reason,
            src_ranges,
            dst_ranges,
            plen > 0,
        )
    };
    let mut candidate = false;
    if pool {
        candidate |= flag(Reason::PoolEndpoint);
    }
    // Stratum V2 has no readable content: its Noise handshake opens with exactly 64 bytes from the
    // client and 234 from the server, on a pool port.
    if (plen == 64 && pool_port(dport)) || (plen == 234 && pool_port(sport)) {
        candidate |= flag(Reason::StratumV2);
    }
    if plen == 0 {
        return Ok(candidate);
    }
    // The first payload byte decides what else is looked at. Two bytes straight from the packet
    // when the frame has them (the common case), else the helper (see `byte`).
    let first = match ptr_at::<[u8; 2]>(ctx, payload) {
        // SAFETY: bounds checked by ptr_at.
        Ok(p) => unsafe { (*p)[0] },
        Err(()) => byte(ctx, payload)?,
    };
    // A TLS handshake record towards a pool: a ClientHello without server_name is the signal.
    // The record type first: most TCP payload is TLS application data (23) and pays nothing more.
    if first == 22 && plen >= 43 && (pool || pool_port(dport)) {
        let n = load_hello(ctx, payload, plen)?;
        if client_hello_without_sni(n as u64) != 0 {
            candidate |= flag(Reason::TlsNoSni);
        }
        return Ok(candidate);
    }
    // Which segments are scanned, so that non-mining traffic pays almost nothing:
    // - one whose first byte is `{` can start a JSON message: always;
    // - one that continues a message (printable first byte) only on a flow already known to be
    //   Stratum, where a later message may start after a newline: an array read (`RECENT`) and,
    //   when a Stratum packet passed on a flow of its slot lately, one flow-table lookup;
    // - anything else (TLS records, binary protocols): never.
    let printable =
        (0x20..0x7f).contains(&first) || first == b'\t' || first == b'\r' || first == b'\n';
    if !printable {
        return Ok(candidate);
    }
    // Only segments that may carry JSON pay for the flow key.
    let scratch = SCRATCH.get_ptr_mut(0).ok_or(())?;
    // SAFETY: map value pointer, valid for the program run; only this CPU uses it.
    let key = unsafe { &mut (*scratch).key };
    let src_is_lo = fill_flow_key(key, ip, sport, dport);
    if first != b'{' && (!recent_stratum(key) || flow_unknown(key)) {
        return Ok(candidate);
    }

    let n = load_window(ctx, payload, plen)?;
    let origin = ingress(ctx) as u64 | (src_is_lo as u64) << 32;
    let found = if COMPAT {
        inspect_window_compat(n as u64, src_ranges, dst_ranges, origin)
    } else {
        inspect_window(n as u64, src_ranges, dst_ranges, origin)
    };
    if found & NEW_FLOW != 0 {
        debug!(
            ctx,
            "new stratum flow: dialect {} ports {} -> {}",
            (found & 0xff) as u8,
            sport,
            dport
        );
    }
    Ok(candidate || found & CANDIDATE != 0)
}

/// `inspect_window` result bit: the packet opened a new Stratum flow.
const NEW_FLOW: u64 = 1 << 8;
/// Result bit of `inspect_window` and `suspect_new`: hand the packet to deep inspection.
const CANDIDATE: u64 = 1 << 9;

/// Scans the payload window in SCRATCH (key in SCRATCH too) and counts what it finds. A global
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
    let d = scan::<COMPAT>(scratch, n as usize);
    if d == 0 {
        return 0;
    }
    // SAFETY: map value pointer, valid for the program run.
    let key = unsafe { &(*scratch).key };
    let existing = FLOWS.get_ptr_mut(key);
    let now = now();
    if let Some(t) = RECENT.get_ptr_mut(sensor_common::recent_slot(key)) {
        // SAFETY: array value; CPUs racing here write nearly the same time. Written about once
        // a second per slot at most: its cache line is then not moved between CPUs on every
        // Stratum packet.
        unsafe {
            if now.wrapping_sub(*t) > RECENT_REFRESH_NS {
                *t = now | 1;
            }
        }
    }
    let budget = inspect_budget();
    let mut candidate = 0;
    let (dialect, new_flow) = match existing {
        // SAFETY: LRU map value; concurrent updates of these statistics may race harmlessly (at
        // worst one packet more is inspected).
        Some(state) => unsafe {
            (*state).last_seen_ns = now;
            (*state).stratum_packets += 1;
            if ((*state).inspected as u32) < budget {
                (*state).inspected += 1;
                candidate = CANDIDATE;
            }
            // A flow keeps the dialect of its first Stratum packet (EthereumStratum pools push
            // `mining.notify` too).
            ((*state).dialect as u64, false)
        },
        None => {
            let take = budget > 0;
            let state = FlowState {
                first_seen_ns: now,
                last_seen_ns: now,
                ranges: src_ranges | dst_ranges,
                stratum_packets: 1,
                dialect: d - 1,
                inspected: take as u8,
                _pad: [0; 2],
            };
            if take {
                candidate = CANDIDATE;
            }
            match insert_new_flow(key, &state) {
                Ok(()) => {
                    stat(Stat::FlowsCreated);
                    emit(
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
                // Lost a race with another CPU inserting the same flow: that CPU counted it.
                Err(_) => {
                    bump(ParseEvent::FlowInsertFailed);
                    ((d - 1) as u64, false)
                }
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

/// Reports a new Stratum flow through the ring buffer, written in place (no copy on the BPF
/// stack, whose 512 bytes the call chain already mostly uses).
#[inline(always)]
fn emit(
    key: &FlowKey,
    now: u64,
    src_ranges: u64,
    dst_ranges: u64,
    origin: u64,
    kind: u8,
    detail: u8,
) {
    let Some(mut entry) = EVENTS.reserve::<Event>(0) else {
        stat(Stat::EventsLost);
        return;
    };
    let e = entry.as_mut_ptr();
    // SAFETY: `e` points at a reserved, writable Event in the ring; every field is written
    // before the entry is submitted.
    unsafe {
        core::ptr::addr_of_mut!((*e).ts_ns).write(now);
        core::ptr::addr_of_mut!((*e).key).write(*key);
        core::ptr::addr_of_mut!((*e).src_ranges).write(src_ranges);
        core::ptr::addr_of_mut!((*e).dst_ranges).write(dst_ranges);
        core::ptr::addr_of_mut!((*e).ifindex).write(origin as u32);
        core::ptr::addr_of_mut!((*e).kind).write(kind);
        core::ptr::addr_of_mut!((*e).dialect).write(detail);
        core::ptr::addr_of_mut!((*e).src_is_lo).write((origin >> 32) as u8 & 1);
        core::ptr::addr_of_mut!((*e)._pad).write(0);
    }
    entry.submit(wakeup(&EVENTS));
    stat(Stat::EventsSent);
}

/// State of one scan: the scanner, where it is and what it found. It lives in SCRATCH, not on
/// the stack: the chain of calls down to the step fits the verifier's 512 bytes of stack, and the
/// verifier tracks no values in map memory, so every step starts from unknown scalars and the
/// step is verified for all of them at once (see `scan`).
#[repr(C)]
struct ScanState {
    scanner: stratum::Scanner,
    pos: u64,
    len: u64,
    found: u64,
}

/// One scanner step: a token, a run of a long string, or a byte where the byte-wise rules apply.
/// Returns whether the scan is over (the window's end, or a message recognised). Generic only so
/// that each build of the program gets its own copy, inlined (shared, LLVM made a subprogram of
/// its long-string walk, which cost the `may_goto` build 20,000 verified instructions).
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
/// the verifier walks (127,000 instructions verified instead of 88,000, and 100 ms to load
/// instead of 52). Called for the few strings that can be markers.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn token_end(packed: u64, hash: u64, len: u64) -> u64 {
    stratum::token_end(packed, hash as u32, len as u32)
}

/// Steps per `bpf_loop` call (`sensor_compat`): each call and return costs more than a step's own
/// work on CPUs whose returns go through a mitigation thunk.
const STEPS_PER_CALL: usize = 4;

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
fn scan<const COMPAT: bool>(scratch: *mut Scratch, n: usize) -> u8 {
    // SAFETY: map value pointer, valid for the program run; only this CPU uses it.
    unsafe {
        (*scratch).buf.seal(n);
        let c = &mut (*scratch).scan;
        // Volatile: a plain assignment became calls to a byte-at-a-time `memset` (see `zero`).
        core::ptr::write_volatile(&mut c.scanner, stratum::Scanner::new());
        c.pos = 0;
        c.len = n as u64;
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
            // callback call per few steps: about 45 ns less for a login than `sensor_compat`.
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

/// How stale a `RECENT` slot may be before a Stratum packet writes it again.
const RECENT_REFRESH_NS: u64 = 1 << 30;

/// Whether a flow with `key`'s slot carried a Stratum packet within `MAX_FLOW_IDLE_NS` (slots are
/// shared, so sometimes another flow did: the flow table decides then).
#[inline(always)]
fn recent_stratum(key: &FlowKey) -> bool {
    match RECENT.get(sensor_common::recent_slot(key)) {
        Some(&t) if t != 0 => now().saturating_sub(t) <= sensor_common::MAX_FLOW_IDLE_NS,
        _ => false,
    }
}

/// Whether the flow table lacks `key`. The map helpers take `impl Borrow<K>`: handing them a key or
/// state by value (clippy's suggestion for `&local`) copies it onto the BPF stack, which pushed
/// the combined stack of the call chain past the verifier's 512 bytes. These wrappers keep every
/// call by reference.
#[inline(always)]
fn flow_unknown(key: &FlowKey) -> bool {
    FLOWS.get_ptr_mut(key).is_none()
}

#[inline(always)]
fn insert_new_flow(key: &FlowKey, state: &FlowState) -> Result<(), i32> {
    FLOWS.insert(key, state, BPF_NOEXIST as u64)
}

/// Writes the flow key into `key` (lower endpoint first, so that both directions give the same
/// key; written in place, in map memory, because the BPF stack is nearly full) and returns
/// whether the packet's source is that lower endpoint.
#[inline(always)]
fn fill_flow_key(key: &mut FlowKey, ip: &Ip, sport: u16, dport: u16) -> bool {
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

/// Zeroes `bytes` with one store each. A plain `[0; N]` assignment became a call to `memset`, which
/// BPF has only as a byte loop with a call and a branch per byte.
#[inline(always)]
fn zero(bytes: &mut [u8]) {
    for b in bytes {
        // SAFETY: a valid, exclusive byte.
        unsafe { core::ptr::write_volatile(b, 0) };
    }
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

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
