//! The header walk: Ethernet, up to `MAX_VLAN_TAGS` VLAN tags, up to `MAX_MPLS_LABELS` MPLS label
//! entries, IPv4 (options) or IPv6 (up to `MAX_IPV6_EXT` extension headers), down to the transport
//! header's offset; the bounds-checked reads of packet memory it is built from, and the copies of
//! payload into scratch memory.

use core::mem::size_of;

use aya_ebpf::{helpers::bpf_xdp_load_bytes, programs::XdpContext};
use sensor_common::{
    ETH_P_8021AD, ETH_P_8021Q, ETH_P_IPV4, ETH_P_IPV6, ETH_P_MPLS_MC, ETH_P_MPLS_UC,
    ETH_P_QINQ_LEGACY, IPV6_AUTH, IPV6_DSTOPTS, IPV6_FRAGMENT, IPV6_HOPOPTS, IPV6_ROUTING,
    MAX_IPV6_EXT, MAX_MPLS_LABELS, MAX_VLAN_TAGS, ParseEvent, mpls_bottom, mpls_ip_version,
    stratum,
};

use crate::{
    maps::{SCRATCH, bump},
    replay::wire_len,
};

pub(crate) use sensor_common::{IPPROTO_TCP, IPPROTO_UDP};

/// Bounds-checked pointer into the packet. The explicit `start + offset + len > end` test is the
/// form the verifier needs to see before any access.
#[inline(always)]
pub(crate) fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Result<*const T, ()> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + size_of::<T>() > end {
        return Err(());
    }
    Ok((start + offset) as *const T)
}

#[inline(always)]
pub(crate) fn be16(ctx: &XdpContext, offset: usize) -> Result<u16, ()> {
    let p: *const [u8; 2] = ptr_at(ctx, offset)?;
    // SAFETY: bounds checked by ptr_at.
    Ok(u16::from_be_bytes(unsafe { *p }))
}

/// The VLAN tags (802.1Q, 802.1ad, the legacy QinQ type) after an Ethernet header whose type is
/// `ethertype`, up to `MAX_VLAN_TAGS`: the type after the last and the offset after it (`ethertype`
/// and 14 when there is none); `Err` when a tag is cut short. More tags than that leave a tag's
/// type, which the caller sees.
#[inline(always)]
pub(crate) fn vlan_tags(ctx: &XdpContext, ethertype: u16) -> Result<(u16, usize), ()> {
    let (mut ethertype, mut l3) = (ethertype, 14);
    for _ in 0..MAX_VLAN_TAGS {
        if ethertype != ETH_P_8021Q && ethertype != ETH_P_8021AD && ethertype != ETH_P_QINQ_LEGACY {
            break;
        }
        ethertype = be16(ctx, l3 + 2)?;
        l3 += 4;
    }
    Ok((ethertype, l3))
}

/// One byte through the helper: for a 1-byte access LLVM folds `off + 1 > end` into `off >= end`,
/// which the verifier does not accept as a bounds proof.
#[inline(always)]
pub(crate) fn byte(ctx: &XdpContext, offset: usize) -> Result<u8, ()> {
    let mut b = 0u8;
    // SAFETY: writes one byte into `b`; the kernel checks the offset against the packet.
    let rc = unsafe { bpf_xdp_load_bytes(ctx.ctx, offset as u32, (&mut b as *mut u8).cast(), 1) };
    if rc != 0 { Err(()) } else { Ok(b) }
}

/// What the network layer found, for counting and for the transport layer.
pub(crate) struct Ip {
    pub(crate) src: [u8; 16],
    pub(crate) dst: [u8; 16],
    pub(crate) family: u8,
    /// IP bytes: IPv4 total length, IPv6 40 + payload length.
    pub(crate) bytes: u64,
    pub(crate) proto: u8,
    /// Offset of the transport header, 0 when there is none to read (fragment, unknown chain).
    pub(crate) l4: usize,
    /// Offset one past the last IP byte.
    pub(crate) end: usize,
}

#[inline(always)]
pub(crate) fn parse_ip(ctx: &XdpContext) -> Option<Ip> {
    let Ok(outer) = be16(ctx, 12) else {
        bump(ParseEvent::TruncatedEthernet);
        return None;
    };
    let Ok((mut ethertype, mut l3)) = vlan_tags(ctx, outer) else {
        bump(ParseEvent::TruncatedVlan);
        return None;
    };
    if ethertype == ETH_P_MPLS_UC || ethertype == ETH_P_MPLS_MC {
        (ethertype, l3) = mpls(ctx, l3)?;
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

/// An MPLS label stack at `l3`: up to `MAX_MPLS_LABELS` entries to the one marked bottom of the
/// stack. Returns the EtherType of the packet after it, told by its version (`mpls_ip_version`),
/// and its offset; `None` (counted) when the stack is cut short, runs longer, or carries no IP.
#[inline(always)]
fn mpls(ctx: &XdpContext, mut l3: usize) -> Option<(u16, usize)> {
    let mut bottom = false;
    for _ in 0..MAX_MPLS_LABELS {
        let Ok(e) = ptr_at::<[u8; 4]>(ctx, l3) else {
            bump(ParseEvent::TruncatedMpls);
            return None;
        };
        l3 += 4;
        // SAFETY: bounds checked by ptr_at.
        if mpls_bottom(unsafe { *e }) {
            bottom = true;
            break;
        }
    }
    if !bottom {
        bump(ParseEvent::TooManyMplsLabels);
        return None;
    }
    // Through memory, so that the verifier sees a bounded unknown: with each stack depth's own
    // known offset, it walked the IPv4 and IPv6 headers once for every depth.
    let l3 = opaque_offset(l3);
    let Ok(first) = ptr_at::<[u8; 2]>(ctx, l3) else {
        bump(ParseEvent::TruncatedMpls);
        return None;
    };
    // SAFETY: bounds checked by ptr_at.
    match mpls_ip_version(unsafe { (*first)[0] }) {
        4 => Some((ETH_P_IPV4, l3)),
        6 => Some((ETH_P_IPV6, l3)),
        _ => {
            bump(ParseEvent::MplsNotIp);
            None
        }
    }
}

/// The bound of a network header's offset after the link headers: 14 bytes of Ethernet, 4 VLAN
/// tags and 8 MPLS label entries are 62.
const MAX_L3: u64 = 0x7f;
const _: () = assert!(14 + 4 * MAX_VLAN_TAGS + 4 * MAX_MPLS_LABELS <= MAX_L3 as usize);

/// `offset` (at most `MAX_L3`) read back from SCRATCH's memory, where the verifier tracks no
/// values, masked to its bound: one state for every value it had. 0 without SCRATCH.
#[inline(always)]
fn opaque_offset(offset: usize) -> usize {
    let Some(s) = SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: map value pointer, valid for the program run; only this CPU uses it. `offsets` is
    // written again, whole, after the header walk (`try_sensor`).
    unsafe {
        let o = core::ptr::addr_of_mut!((*s).offsets[0]);
        core::ptr::write_volatile(o, offset as u64);
        (core::ptr::read_volatile(o) & MAX_L3) as usize
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
    // addresses into a call of a `memset` BPF subprogram, paid by every IPv4 packet (see
    // BENCHMARKS.md).
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
            IPV6_HOPOPTS | IPV6_ROUTING | IPV6_DSTOPTS => {
                let Ok(e) = ptr_at::<[u8; 2]>(ctx, off) else {
                    break;
                };
                // SAFETY: bounds checked by ptr_at.
                let e = unsafe { *e };
                next = e[0];
                off += (e[1] as usize + 1) * 8;
            }
            // Authentication header: (len + 2) * 4 bytes.
            IPV6_AUTH => {
                let Ok(e) = ptr_at::<[u8; 2]>(ctx, off) else {
                    break;
                };
                // SAFETY: bounds checked by ptr_at.
                let e = unsafe { *e };
                next = e[0];
                off += (e[1] as usize + 2) * 4;
            }
            IPV6_FRAGMENT => {
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

/// Copies up to a window of payload into SCRATCH.buf; returns how many bytes.
#[inline(always)]
pub(crate) fn load_window(ctx: &XdpContext, payload: usize, plen: usize) -> Result<usize, ()> {
    let scratch = SCRATCH.get_ptr_mut(0).ok_or(())?;
    // SAFETY: map value pointer, valid for the program run.
    load_into(ctx, payload, plen, unsafe {
        core::ptr::addr_of_mut!((*scratch).buf).cast::<[u8; stratum::WINDOW]>()
    })
}

/// Copies up to `N` bytes of payload into `dst` (map memory); returns how many. Live, the frame
/// holds all `plen` bytes; a replayed record cut short holds fewer, and only those are read.
#[inline(always)]
pub(crate) fn load_into<const N: usize>(
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
