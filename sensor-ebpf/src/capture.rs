//! The hand-over of a candidate to deep inspection: in `tap` mode a redirect to the AF_XDP socket
//! of its interface and queue, in `inline` mode a copy of its first bytes into the sample ring.

use aya_ebpf::{
    bindings::{BPF_RB_NO_WAKEUP, xdp_action},
    programs::XdpContext,
};
use sensor_common::{
    CAPTURE_INLINE, CAPTURE_TAP, Event, MAX_QUEUES, SAMPLE_BYTES, SAMPLE_HEADER, SAMPLE_OPENED,
    SAMPLE_OPENED_HEADER, Sample, Stat, xsk_key,
};

use crate::{
    count::slot_of,
    events::{emit_opened, room},
    maps::{SAMPLES, SCRATCH, XSKS, capture_mode, stat},
    parse::load_into,
    replay::{ingress, now, wire_len},
    words::copy,
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
///
/// A packet that opened a Stratum flow (`scan::inspect` left its event in SCRATCH) has the event
/// in its record (`SAMPLE_OPENED`); when no copy can be made, the event goes alone to `EVENTS`,
/// as every event did before.
#[inline(always)]
fn sample(ctx: &XdpContext) {
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: map value pointer, valid for the program run; only this CPU uses it.
    let (carry, opened) = unsafe {
        let carry = (*scratch).carry != 0;
        if carry {
            (*scratch).carry = 0;
        }
        (carry, core::ptr::addr_of!((*scratch).opened))
    };
    let copied = if carry {
        sized::<1>(ctx, opened)
    } else {
        sized::<0>(ctx, opened)
    };
    stat(if copied {
        Stat::Candidates
    } else {
        Stat::SamplesLost
    });
    if carry {
        if copied {
            stat(Stat::EventsSent);
        } else {
            emit_opened(opened);
        }
    }
}

/// One sample record with `E` events (0, or 1: SCRATCH's `opened`) of the smallest size that
/// holds the frame's first `SAMPLE_BYTES`; false when none could be made.
#[inline(always)]
fn sized<const E: usize>(ctx: &XdpContext, opened: *const Event) -> bool {
    let frame_len = ctx.data_end() - ctx.data();
    let most = if frame_len > SAMPLE_BYTES {
        SAMPLE_BYTES
    } else {
        frame_len
    };
    if most <= SAMPLE_SIZES[0] {
        record::<E, { SAMPLE_SIZES[0] }>(ctx, frame_len, opened)
    } else if most <= SAMPLE_SIZES[1] {
        record::<E, { SAMPLE_SIZES[1] }>(ctx, frame_len, opened)
    } else if most <= SAMPLE_SIZES[2] {
        record::<E, { SAMPLE_SIZES[2] }>(ctx, frame_len, opened)
    } else {
        record::<E, { SAMPLE_SIZES[3] }>(ctx, frame_len, opened)
    }
}

/// The bytes of frame a sample record holds, by size: the smallest that holds the frame's first
/// `SAMPLE_BYTES` is reserved (a share's frame of about 230 bytes takes the first, its record 280
/// bytes; a login of about 500 the second).
const SAMPLE_SIZES: [usize; 4] = [256, 512, 1024, SAMPLE_BYTES];

/// A sample record holding `E` events (0 or 1) and up to `D` bytes of frame: `Sample` with a
/// shorter `data`, and the event of the flow the packet opened before it when `E` is 1.
#[repr(C)]
struct Record<const E: usize, const D: usize> {
    ts_ns: u64,
    ifindex: u32,
    frame_len: u32,
    cap_len: u32,
    flags: u32,
    opened: [Event; E],
    data: [u8; D],
}

/// One sample record of up to `D` bytes of frame, with the event at `opened` when `E` is 1; false
/// when the ring has no room for it.
#[inline(always)]
fn record<const E: usize, const D: usize>(
    ctx: &XdpContext,
    frame_len: usize,
    opened: *const Event,
) -> bool {
    // Room for the record, or no copy: with nobody reading the ring, a copy made only for the
    // ring to refuse it doubled what a candidate cost.
    let Some(flags) = room(&SAMPLES, core::mem::size_of::<Record<E, D>>() as u64) else {
        return false;
    };
    let Some(mut entry) = SAMPLES.reserve::<Record<E, D>>(0) else {
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
    // SAFETY: as above; every header field (and the event, when the record has one) is written
    // before the record is submitted; `opened` points at SCRATCH's event, written whole.
    unsafe {
        core::ptr::addr_of_mut!((*r).ts_ns).write(now());
        core::ptr::addr_of_mut!((*r).ifindex).write(ingress(ctx));
        core::ptr::addr_of_mut!((*r).frame_len).write(wire_len(ctx) as u32);
        core::ptr::addr_of_mut!((*r).cap_len).write(n as u32);
        if E == 1 {
            core::ptr::addr_of_mut!((*r).flags).write(SAMPLE_OPENED);
            copy(core::ptr::addr_of_mut!((*r).opened).cast::<Event>(), opened);
        } else {
            core::ptr::addr_of_mut!((*r).flags).write(0);
        }
    }
    entry.submit(flags);
    true
}

const _: () = assert!(
    core::mem::offset_of!(Record<0, 256>, data) == SAMPLE_HEADER
        && core::mem::offset_of!(Record<1, 256>, data) == SAMPLE_OPENED_HEADER
        && core::mem::size_of::<Record<0, SAMPLE_BYTES>>() == core::mem::size_of::<Sample>()
);
