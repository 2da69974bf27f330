//! The hand-over of a candidate to deep inspection: in `tap` mode a redirect to the AF_XDP socket
//! of its interface and queue, in `inline` mode a copy of its first bytes into the sample ring.

use aya_ebpf::{bindings::xdp_action, programs::XdpContext};
use sensor_common::{
    CAPTURE_INLINE, CAPTURE_TAP, MAX_QUEUES, SAMPLE_BYTES, SAMPLE_HEADER, Sample, Stat, xsk_key,
};

use crate::{
    count::slot_of,
    events::room,
    maps::{SAMPLES, SCRATCH, XSKS, capture_mode, stat},
    parse::load_into,
    replay::{ingress, now, wire_len},
};

/// Hands a candidate to userspace; the return value is the packet's action.
#[inline(always)]
pub(crate) fn capture(ctx: &XdpContext) -> u32 {
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

/// Copies the first `SAMPLE_BYTES` of the frame into the `SAMPLES` ring: the frame into SCRATCH,
/// then a record of the header and the bytes copied, no longer. A record reserved at the largest
/// size (1,560 bytes) spread a share's few hundred bytes over the whole ring, each into cache
/// lines no recent record had touched; records at their length follow one another, and the copy
/// of a share went from about 340 ns to 130 to 250 ns over the share's own cost (quick benchmark
/// runs, README "Benchmarks").
#[inline(always)]
fn sample(ctx: &XdpContext) {
    let frame_len = ctx.data_end() - ctx.data();
    let wire = wire_len(ctx);
    // Room for the longest record this frame can make, or no copy: with nobody reading the ring,
    // a copy made only for the ring to refuse it doubled what a candidate cost.
    let most = if frame_len > SAMPLE_BYTES {
        SAMPLE_BYTES
    } else {
        frame_len
    };
    let Some(flags) = room(&SAMPLES, (SAMPLE_HEADER + most) as u64) else {
        stat(Stat::SamplesLost);
        return;
    };
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: map value pointer, valid for the program run; only this CPU uses it.
    let s = unsafe { core::ptr::addr_of_mut!((*scratch).sample) };
    // SAFETY: `s` points at a Sample in map memory; `load_into` writes at most `SAMPLE_BYTES`
    // bytes into `data`.
    let Ok(n) = load_into(ctx, 0, frame_len, unsafe {
        core::ptr::addr_of_mut!((*s).data)
    }) else {
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
    // The record: the header and `n` bytes (`load_into` returned 0 < n <= SAMPLE_BYTES).
    let len = SAMPLE_HEADER + n;
    let len = if len > core::mem::size_of::<Sample>() {
        core::mem::size_of::<Sample>()
    } else {
        len
    };
    // SAFETY: `s` holds `size_of::<Sample>()` bytes, at least `len`.
    let record = unsafe { core::slice::from_raw_parts(s.cast::<u8>(), len) };
    if SAMPLES.output::<[u8]>(record, flags).is_err() {
        stat(Stat::SamplesLost);
        return;
    }
    stat(Stat::Candidates);
}
