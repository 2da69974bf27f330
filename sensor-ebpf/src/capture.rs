//! The hand-over of a candidate to deep inspection: in `tap` mode a redirect to the AF_XDP socket
//! of its interface and queue, in `inline` mode a copy of its first bytes into the sample ring.

use aya_ebpf::{
    bindings::{BPF_RB_NO_WAKEUP, xdp_action},
    programs::XdpContext,
};
use sensor_common::{
    CAPTURE_INLINE, CAPTURE_TAP, MAX_QUEUES, SAMPLE_BYTES, SAMPLE_HEADER, Sample, Stat, xsk_key,
};

use crate::{
    count::slot_of,
    events::room,
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

/// Copies the first `SAMPLE_BYTES` of the frame into the `SAMPLES` ring: a record reserved at the
/// smallest of four sizes that holds them (`SAMPLE_SIZES`), the frame loaded straight into it, its
/// header written in place. Two earlier ways, measured (quick benchmark runs, README
/// "Benchmarks"): a record reserved at the largest size (1,560 bytes) spread a share's few hundred
/// bytes over the whole ring, each into cache lines no recent record had touched (the copy cost
/// about 340 ns over the share's own cost); the frame copied into SCRATCH and then into a record
/// at its length (`bpf_ringbuf_output`) copied every byte twice. The reader takes `cap_len`
/// bytes, whatever the record's size.
#[inline(always)]
fn sample(ctx: &XdpContext) {
    let frame_len = ctx.data_end() - ctx.data();
    let most = if frame_len > SAMPLE_BYTES {
        SAMPLE_BYTES
    } else {
        frame_len
    };
    let copied = if most <= SAMPLE_SIZES[0] {
        record::<{ SAMPLE_SIZES[0] }>(ctx, frame_len)
    } else if most <= SAMPLE_SIZES[1] {
        record::<{ SAMPLE_SIZES[1] }>(ctx, frame_len)
    } else if most <= SAMPLE_SIZES[2] {
        record::<{ SAMPLE_SIZES[2] }>(ctx, frame_len)
    } else {
        record::<{ SAMPLE_SIZES[3] }>(ctx, frame_len)
    };
    stat(if copied {
        Stat::Candidates
    } else {
        Stat::SamplesLost
    });
}

/// The bytes of frame a sample record holds, by size: the smallest that holds the frame's first
/// `SAMPLE_BYTES` is reserved (a share's frame of about 230 bytes takes the first, its record 280
/// bytes; a login of about 500 the second).
const SAMPLE_SIZES: [usize; 4] = [256, 512, 1024, SAMPLE_BYTES];

/// A sample record holding up to `D` bytes of frame: `Sample` with a shorter `data`.
#[repr(C)]
struct Record<const D: usize> {
    ts_ns: u64,
    ifindex: u32,
    frame_len: u32,
    cap_len: u32,
    _pad: u32,
    data: [u8; D],
}

/// One sample record of up to `D` bytes of frame; false when the ring has no room for it.
#[inline(always)]
fn record<const D: usize>(ctx: &XdpContext, frame_len: usize) -> bool {
    // Room for the record, or no copy: with nobody reading the ring, a copy made only for the
    // ring to refuse it doubled what a candidate cost.
    let Some(flags) = room(&SAMPLES, core::mem::size_of::<Record<D>>() as u64) else {
        return false;
    };
    let Some(mut entry) = SAMPLES.reserve::<Record<D>>(0) else {
        return false;
    };
    let r = entry.as_mut_ptr();
    // SAFETY: `r` points at a reserved, writable record in the ring; `load_into` writes at most
    // `D` bytes into `data`.
    let Ok(n) = load_into(ctx, 0, frame_len, unsafe {
        core::ptr::addr_of_mut!((*r).data)
    }) else {
        entry.discard(BPF_RB_NO_WAKEUP as u64);
        return false;
    };
    // SAFETY: as above; every header field is written before the record is submitted.
    unsafe {
        core::ptr::addr_of_mut!((*r).ts_ns).write(now());
        core::ptr::addr_of_mut!((*r).ifindex).write(ingress(ctx));
        core::ptr::addr_of_mut!((*r).frame_len).write(wire_len(ctx) as u32);
        core::ptr::addr_of_mut!((*r).cap_len).write(n as u32);
        core::ptr::addr_of_mut!((*r)._pad).write(0);
    }
    entry.submit(flags);
    true
}

const _: () = assert!(
    core::mem::offset_of!(Record<256>, data) == SAMPLE_HEADER
        && core::mem::size_of::<Record<SAMPLE_BYTES>>() == core::mem::size_of::<Sample>()
);
