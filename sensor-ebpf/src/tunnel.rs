//! A mirrored frame taken out of its tunnel (`decapsulate`, `sensor_common::tunnel`): the frame's
//! start moved to the frame inside before the packet is read, and back before it is passed on.

use aya_ebpf::{bindings::xdp_md, helpers::bpf_xdp_adjust_head, programs::XdpContext};
use sensor_common::{
    ETH_P_IPV4, ETH_P_IPV6, ParseEvent,
    tunnel::{
        DECAP_GRE, DECAP_VXLAN, ERSPAN3_PLATFORM, ETH_P_ERSPAN3, IPPROTO_GRE, VXLAN_HEADER,
        VXLAN_I, VXLAN_PORT, erspan, erspan3_platform, gre,
    },
};

use crate::{
    maps::{SCRATCH, bump, decap, replay_batch},
    parse::{self, IPPROTO_UDP, byte, ptr_at},
};

/// The offset of the mirrored frame inside the packet's tunnel, when `decapsulate` names the
/// tunnel and its headers are whole (the outer IP packet no fragment, IPv6 without extension
/// headers); 0 otherwise (read as the outer packet; `BadTunnel` counted when a named tunnel's
/// headers are not whole or not of a layout read). A global function: verified once, and the
/// per-packet code does not carry its walk. Moves nothing.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn tunnel_inner(ctx: *mut xdp_md) -> u64 {
    let ctx = XdpContext::new(ctx);
    match inner(&ctx) {
        Ok(at) => at as u64,
        Err(Bad) => {
            bump(ParseEvent::BadTunnel);
            0
        }
        Err(NotTunnel) => 0,
    }
}

/// Why a packet is read as it came.
enum Outer {
    /// Not a tunnel `decapsulate` names.
    NotTunnel,
    /// One, cut short or of a layout not read.
    Bad,
}
use Outer::*;

#[inline(always)]
fn be16(ctx: &XdpContext, at: usize) -> Result<u16, Outer> {
    parse::be16(ctx, at).map_err(|_| NotTunnel)
}

#[inline(always)]
fn inner(ctx: &XdpContext) -> Result<usize, Outer> {
    let which = decap();
    let (ethertype, l3) = parse::vlan_tags(ctx, be16(ctx, 12)?).map_err(|_| NotTunnel)?;
    let (proto, l4) = if ethertype == ETH_P_IPV4 {
        let h = ptr_at::<[u8; 20]>(ctx, l3).map_err(|_| NotTunnel)?;
        // SAFETY: bounds checked by ptr_at.
        let h = unsafe { &*h };
        // A fragment (more to come, or not the first): the tunnel's headers may be whole, but
        // the frame inside is not.
        let ihl = ((h[0] & 0x0f) as usize) * 4;
        if h[0] >> 4 != 4 || ihl < 20 || u16::from_be_bytes([h[6], h[7]]) & 0x3fff != 0 {
            return Err(NotTunnel);
        }
        (h[9], l3 + (ihl & 0x3c))
    } else if ethertype == ETH_P_IPV6 {
        let h = ptr_at::<[u8; 40]>(ctx, l3).map_err(|_| NotTunnel)?;
        // SAFETY: bounds checked by ptr_at.
        (unsafe { (*h)[6] }, l3 + 40)
    } else {
        return Err(NotTunnel);
    };
    if proto == IPPROTO_GRE && which & DECAP_GRE != 0 {
        let (len, seq) = gre(be16(ctx, l4).map_err(|_| Bad)?).ok_or(Bad)?;
        let kind = be16(ctx, l4 + 2).map_err(|_| Bad)?;
        let mut at = l4 + len + erspan(kind, seq).ok_or(Bad)?;
        if kind == ETH_P_ERSPAN3 && erspan3_platform(byte(ctx, at - 1).map_err(|_| Bad)?) {
            at += ERSPAN3_PLATFORM;
        }
        whole_frame(ctx, at)
    } else if proto == IPPROTO_UDP && which & DECAP_VXLAN != 0 {
        if be16(ctx, l4 + 2)? != VXLAN_PORT {
            return Err(NotTunnel);
        }
        if byte(ctx, l4 + 8).map_err(|_| Bad)? & VXLAN_I == 0 {
            return Err(Bad);
        }
        whole_frame(ctx, l4 + 8 + VXLAN_HEADER)
    } else {
        Err(NotTunnel)
    }
}

/// `at`, when an Ethernet header's worth of frame follows it.
#[inline(always)]
fn whole_frame(ctx: &XdpContext, at: usize) -> Result<usize, Outer> {
    ptr_at::<[u8; 14]>(ctx, at).map_err(|_| Bad)?;
    Ok(at)
}

/// Moves the frame's start `at` bytes on, to the mirrored frame (`tunnel_inner`), and notes it
/// in SCRATCH for [`leave`]; in replay the packet's length on the wire becomes the inner frame's.
#[inline(always)]
pub(crate) fn enter(ctx: &XdpContext, at: u64) {
    let Some(s) = SCRATCH.get_ptr_mut(0) else {
        return;
    };
    let at = at & 0xff;
    // SAFETY: a helper on the program's own context.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, at as i32) } != 0 {
        bump(ParseEvent::BadTunnel);
        return;
    }
    bump(ParseEvent::Decapsulated);
    // SAFETY: map value pointer, valid for the program run; only this CPU uses it.
    unsafe {
        core::ptr::write_volatile(core::ptr::addr_of_mut!((*s).peeled), at);
        if replay_batch() {
            let w = core::ptr::addr_of_mut!((*s).pkt.wire_len);
            core::ptr::write_volatile(w, core::ptr::read_volatile(w).saturating_sub(at as u32));
        }
    }
}

/// Forgets the tunnel's headers [`enter`] stepped over, if it did, moving the frame's start back
/// over them when `restore` (not when the inner frame goes to a tap's socket as it is).
#[inline(always)]
pub(crate) fn leave(ctx: &XdpContext, restore: bool) {
    let Some(s) = SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: as in `enter`.
    let at = unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*s).peeled)) } & 0xff;
    if at == 0 {
        return;
    }
    if restore {
        // SAFETY: a helper on the program's own context: the bytes stepped over are still there.
        unsafe { bpf_xdp_adjust_head(ctx.ctx, -(at as i32)) };
    }
    // SAFETY: as in `enter`.
    unsafe {
        core::ptr::write_volatile(core::ptr::addr_of_mut!((*s).peeled), 0);
        if replay_batch() {
            let w = core::ptr::addr_of_mut!((*s).pkt.wire_len);
            core::ptr::write_volatile(w, core::ptr::read_volatile(w) + at as u32);
        }
    }
}
