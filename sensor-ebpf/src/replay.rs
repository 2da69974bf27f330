//! `mining-sensor replay`: the batch entry (the frame's bounds moved onto each packet of a batch
//! in turn, the program tail-calling itself for the next), and the three facts of a packet that
//! replay supplies in place of the device: its time, its length on the wire and its ingress
//! interface.

use aya_ebpf::{
    helpers::{
        bpf_ktime_get_coarse_ns, bpf_xdp_adjust_head, bpf_xdp_adjust_meta, bpf_xdp_adjust_tail,
        bpf_xdp_load_bytes,
    },
    programs::XdpContext,
};
use sensor_common::{
    REPLAY_BAD_HEADER, REPLAY_BAD_LAYOUT, REPLAY_DONE, REPLAY_TAIL_CALL_FAILED, ReplayHeader,
};

use crate::maps::{REPLAY_NEXT, SCRATCH, replay_batch};

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
/// times, and the precise clock costs more a call (a VM's TSC read), paid by every Stratum packet
/// (see BENCHMARKS.md).
#[inline(always)]
pub(crate) fn now() -> u64 {
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
pub(crate) fn wire_len(ctx: &XdpContext) -> usize {
    match replay_header() {
        // SAFETY: as in `now`.
        Some(h) => unsafe { (*h).wire_len as usize },
        None => ctx.data_end() - ctx.data(),
    }
}

/// The packet's ingress interface: the device live, the capture file's stand-in in replay.
#[inline(always)]
pub(crate) fn ingress(ctx: &XdpContext) -> u32 {
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

/// Replay: moves the frame's bounds onto the next packet of a batch (see `ReplayHeader` for the
/// layout) and keeps its header in scratch memory, where `now` and `ingress` read it. `sensor`
/// then runs its per-packet code and `replay_next`.
#[inline(always)]
pub(crate) fn replay_enter(ctx: &XdpContext) -> Result<(), u32> {
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
pub(crate) fn replay_next(ctx: &XdpContext) -> u32 {
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
