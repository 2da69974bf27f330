//! Counting: the interface slot, the watched-range lookup (filter bitmap, then the LPM tries), and
//! the per-range traffic (per interface, and per neighbour: `peer_of`), Stratum and suspect
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
fn lowest_bit(x: u64) -> usize {
    let mut v = (x & x.wrapping_neg()) - 1;
    v -= (v >> 1) & 0x5555_5555_5555_5555;
    v = (v & 0x3333_3333_3333_3333) + ((v >> 2) & 0x3333_3333_3333_3333);
    v = (v + (v >> 4)) & 0x0f0f_0f0f_0f0f_0f0f;
    (v.wrapping_mul(0x0101_0101_0101_0101) >> 56) as usize
}

/// The neighbour a watched packet came from (`DIR_FROM`: the frame's source address) or is handed
/// to (`DIR_TO`: its destination address), as a peer index; `PEER_OTHER` when none is configured
/// for it. The outermost VLAN tag decides first: a tag names the link the frame crossed, while one
/// router's address can appear on several links (subinterfaces of one port). Called for watched
/// packets only, and only for the kinds of key configured.
#[inline(always)]
pub(crate) fn peer_of(ctx: &XdpContext, dir: usize) -> u64 {
    let kinds = PEER_KINDS.get(0).copied().unwrap_or(0);
    if kinds == 0 {
        return PEER_OTHER as u64;
    }
    // A watched packet passed the IP header walk, so the frame holds at least these 16 bytes.
    let Ok(h) = ptr_at::<[u8; 16]>(ctx, 0) else {
        return PEER_OTHER as u64;
    };
    // SAFETY: bounds checked by ptr_at.
    let h = unsafe { &*h };
    if kinds & PEER_KIND_VLAN != 0 {
        let ethertype = u16::from_be_bytes([h[12], h[13]]);
        if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD || ethertype == ETH_P_QINQ_LEGACY {
            let key = peer_key_vlan(u16::from_be_bytes([h[14], h[15]]));
            // SAFETY: the value is a plain u32 copied out at once.
            if let Some(p) = unsafe { PEERS.get(key) } {
                return *p as u64;
            }
        }
    }
    if kinds & PEER_KIND_MAC != 0 {
        let mac = if dir == DIR_FROM {
            [h[6], h[7], h[8], h[9], h[10], h[11]]
        } else {
            [h[0], h[1], h[2], h[3], h[4], h[5]]
        };
        // SAFETY: as above.
        if let Some(p) = unsafe { PEERS.get(peer_key_mac(mac)) } {
            return *p as u64;
        }
    }
    PEER_OTHER as u64
}

/// A BPF *global* function (exported, scalar arguments): the verifier checks it once on its own.
/// Inlined, the loop over range bits made `ranges` precise and multiplied the states every later
/// instruction was verified in. Counts the packet per interface and range, and per range and
/// neighbour (`peer`, see `peer_of`).
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
