//! The hand-over of a candidate to deep inspection: in `tap` mode a redirect to the AF_XDP socket
//! of its interface and queue, in `inline` mode a copy of its first bytes into the sample ring.

use aya_ebpf::{bindings::xdp_action, programs::XdpContext};
use sensor_common::{CAPTURE_INLINE, CAPTURE_TAP, MAX_QUEUES, Sample, Stat, xsk_key};

use crate::{
    count::slot_of,
    events::wakeup,
    maps::{SAMPLES, XSKS, capture_mode, stat},
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
