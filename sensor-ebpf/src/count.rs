//! Counting: the interface slot, the watched-range lookup (filter bitmap, then the LPM tries), and
//! the per-range traffic (per interface, and per neighbour: `peers_of`), Stratum and suspect
//! counters, as BPF global functions.

use aya_ebpf::{
    maps::{Array, PerCpuArray, lpm_trie::Key},
    programs::XdpContext,
};
use sensor_common::{
    Counter, DIR_FROM, DIR_TO, ETH_P_8021AD, ETH_P_8021Q, ETH_P_QINQ_LEGACY, FILTER_V4_ALL,
    FILTER_V6_ALL, IFINDEX_DIRECT, MAX_IFACE_SLOTS, MAX_RANGES, PEER_KIND_MAC, PEER_KIND_VLAN,
    PEER_OTHER, PEER_SLOTS, ParseEvent, Reason, UNWATCHED_SLOT, filter_bit_v4, filter_bit_v6,
    peer_index, peer_key_mac, peer_key_vlan, stratum, stratum_index, suspect_index, traffic_index,
};

use crate::{
    maps::{
        FILTER, FILTER_FLAGS, IFINDEX_SLOTS, IFINDEX_SLOTS_HIGH, PEER_KINDS, PEER_TRAFFIC, PEERS,
        RANGES_V4, RANGES_V6, STRATUM_FLOWS, STRATUM_PACKETS, SUSPECT_FLOWS, TRAFFIC, bump,
    },
    parse::{Ip, ptr_at},
    replay::ingress,
};

#[inline(always)]
pub(crate) fn iface_slot(ctx: &XdpContext) -> usize {
    let slot = slot_of(ctx);
    if slot == 0 {
        bump(ParseEvent::UnknownInterface);
    }
    slot
}

/// The interface's counter slot, 0 when the agent did not register it.
#[inline(always)]
pub(crate) fn slot_of(ctx: &XdpContext) -> usize {
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
pub(crate) fn bit_in(map: &Array<u64>, bit: u32) -> Option<bool> {
    map.get(bit >> 6).map(|w| (w >> (bit & 63)) & 1 != 0)
}

#[inline(always)]
pub(crate) fn lookup_ranges(ip: &Ip) -> (u64, u64) {
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
pub(crate) fn lowest_bit(x: u64) -> usize {
    let mut v = (x & x.wrapping_neg()) - 1;
    v -= (v >> 1) & 0x5555_5555_5555_5555;
    v = (v & 0x3333_3333_3333_3333) + ((v >> 2) & 0x3333_3333_3333_3333);
    v = (v + (v >> 4)) & 0x0f0f_0f0f_0f0f_0f0f;
    (v.wrapping_mul(0x0101_0101_0101_0101) >> 56) as usize
}

/// The frame's first 16 bytes (the two Ethernet addresses, then the EtherType and, when the frame
/// is tagged, the outermost tag's ID) as two words for `peers_of`. A watched packet passed the IP
/// header walk, so the frame holds them.
#[inline(always)]
pub(crate) fn frame_head(ctx: &XdpContext) -> (u64, u64) {
    match ptr_at::<[u64; 2]>(ctx, 0) {
        // SAFETY: bounds checked by ptr_at; BPF loads from packet memory need no alignment.
        Ok(h) => unsafe { core::ptr::read_unaligned(h).into() },
        Err(()) => (0, 0),
    }
}

/// The neighbours of a watched packet, as peer indexes: the one that delivered it (bits 0-7, for
/// `DIR_FROM`: the frame's source address) and the one it is handed to (bits 8-15, `DIR_TO`: the
/// destination address); `PEER_OTHER` where none is configured. The outermost VLAN tag decides
/// first, for both: a tag names the link the frame crossed, while one router's address can appear
/// on several links (subinterfaces of one port). Only the kinds of key configured are looked up.
/// Global, as `count_traffic`: verified once, not on every path of the program that reaches it.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn peers_of(w0: u64, w1: u64) -> u64 {
    let kinds = PEER_KINDS.get(0).copied().unwrap_or(0);
    if kinds == 0 {
        return PEER_OTHER as u64;
    }
    let (a, b) = (w0.to_ne_bytes(), w1.to_ne_bytes());
    if kinds & PEER_KIND_VLAN != 0 {
        let ethertype = u16::from_be_bytes([b[4], b[5]]);
        if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD || ethertype == ETH_P_QINQ_LEGACY {
            let key = peer_key_vlan(u16::from_be_bytes([b[6], b[7]]));
            // SAFETY: the value is a plain u32 copied out at once.
            if let Some(p) = unsafe { PEERS.get(key) } {
                let p = *p as u64 & 0xff;
                return p | p << 8;
            }
        }
    }
    if kinds & PEER_KIND_MAC == 0 {
        return PEER_OTHER as u64;
    }
    let dst = [a[0], a[1], a[2], a[3], a[4], a[5]];
    let src = [a[6], a[7], b[0], b[1], b[2], b[3]];
    // SAFETY: as above.
    let from = unsafe { PEERS.get(peer_key_mac(src)) }.map_or(PEER_OTHER as u64, |p| *p as u64);
    // SAFETY: as above.
    let to = unsafe { PEERS.get(peer_key_mac(dst)) }.map_or(PEER_OTHER as u64, |p| *p as u64);
    (from & 0xff) | (to & 0xff) << 8
}

/// A BPF *global* function (exported, scalar arguments): the verifier checks it once on its own.
/// Inlined, the loop over range bits made `ranges` precise and multiplied the states every later
/// instruction was verified in. Counts the packet per interface and range, and per range and
/// neighbour (`peer`, see `peers_of`).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn count_traffic(slot: u64, ranges: u64, dir: u64, bytes: u64, peer: u64) -> u64 {
    let slot = slot as usize % MAX_IFACE_SLOTS;
    let dir = dir as usize % 2;
    let peer = peer as usize % PEER_SLOTS;
    let mut ranges = ranges;
    for _ in 0..MAX_RANGES {
        if ranges == 0 {
            break;
        }
        let r = lowest_bit(ranges);
        ranges &= ranges - 1;
        add_counter(&TRAFFIC, traffic_index(slot, r, dir), bytes);
        add_counter(&PEER_TRAFFIC, peer_index(r, dir, peer), bytes);
    }
    0
}

#[inline(always)]
fn add_counter(map: &PerCpuArray<Counter>, index: u32, bytes: u64) {
    if let Some(c) = map.get_ptr_mut(index) {
        // SAFETY: per-CPU cell, no concurrent writer on this CPU.
        unsafe {
            (*c).packets += 1;
            (*c).bytes += bytes;
        }
    }
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
/// stays a helper call, on every Stratum packet (see BENCHMARKS.md).
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
