//! The flow events the agent reads (one per new Stratum flow, one per new suspect flow and
//! reason), and when a ring record wakes its reader.

use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, BPF_RB_RING_SIZE},
    maps::RingBuf,
};
use sensor_common::{Event, FlowKey, Stat, ring};

use crate::{
    maps::{EVENTS, stat},
    words::copy,
};

/// Reports a new flow through the ring buffer, written in place (no copy on the BPF stack, whose
/// 512 bytes the call chain already mostly uses); or, when `keep` is not null, into SCRATCH's
/// `opened` at `keep`, for the packet's copy to carry (`capture::sample`). `origin` is the
/// ingress interface, with whether the packet's source is the key's lower endpoint at bit 32.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn emit(
    keep: *mut Event,
    key: &FlowKey,
    now: u64,
    src_ranges: u64,
    dst_ranges: u64,
    origin: u64,
    kind: u8,
    detail: u8,
) {
    let write = |e: *mut Event| {
        // SAFETY: `e` points at a writable Event (a reserved ring record, or map memory); every
        // field is written.
        unsafe {
            core::ptr::addr_of_mut!((*e).ts_ns).write(now);
            copy(core::ptr::addr_of_mut!((*e).key), key);
            core::ptr::addr_of_mut!((*e).src_ranges).write(src_ranges);
            core::ptr::addr_of_mut!((*e).dst_ranges).write(dst_ranges);
            core::ptr::addr_of_mut!((*e).ifindex).write(origin as u32);
            core::ptr::addr_of_mut!((*e).kind).write(kind);
            core::ptr::addr_of_mut!((*e).dialect).write(detail);
            core::ptr::addr_of_mut!((*e).src_is_lo).write((origin >> 32) as u8 & 1);
            core::ptr::addr_of_mut!((*e)._pad).write(0);
        }
    };
    if keep.is_null() {
        send(write);
    } else {
        write(keep);
    }
}

/// Sends the event SCRATCH's `opened` holds through the ring buffer: a new flow's event whose
/// packet could not be copied with it (`capture::sample`).
#[inline(always)]
pub(crate) fn emit_opened(opened: *const Event) {
    // SAFETY: `opened` points at SCRATCH's event, written whole by `emit`; `e` at a reserved,
    // writable Event.
    send(|e| unsafe { copy(e, opened) });
}

/// One record of the event ring: reserved, filled whole by `write`, submitted; counted as sent,
/// or as lost when the ring is full.
#[inline(always)]
fn send(write: impl FnOnce(*mut Event)) {
    let Some(mut entry) = EVENTS.reserve::<Event>(0) else {
        stat(Stat::EventsLost);
        return;
    };
    write(entry.as_mut_ptr());
    entry.submit(wakeup(&EVENTS, core::mem::size_of::<Event>() as u64));
    stat(Stat::EventsSent);
}

/// The flags to submit a ring record of `bytes` with, once it is reserved. A wake-up is an
/// interrupt the submitting CPU sends itself (irq work) to wake the reader: on this VM about 6 us,
/// ten times a share's whole cost. So a record wakes the reader only when it takes the ring past
/// a quarter or past half full (`sensor_common::ring`): once per fill, which brings the reader in
/// before a burst fills the ring. Otherwise the agent reads its rings every `RING_POLL`. (Every
/// record past a quarter used to wake the reader: a burst it was slow to drain then paid the
/// interrupt on every record; README, "Events and deep-inspection copies".)
#[inline(always)]
pub(crate) fn wakeup(ring: &RingBuf, bytes: u64) -> u64 {
    let (used, size) = (
        ring.query(BPF_RB_AVAIL_DATA as u64),
        ring.query(BPF_RB_RING_SIZE as u64),
    );
    // `used` holds this record already.
    wakes(used.saturating_sub(bytes + RECORD_HEADER), used, size)
}

/// The flags to submit a record of `bytes` with (see `wakeup`), or `None` when the ring has no
/// room for it: then nothing is copied for a record the ring would refuse. Another CPU may fill
/// the ring in between; the ring then refuses the record, as it would have anyway.
#[inline(always)]
pub(crate) fn room(ring: &RingBuf, bytes: u64) -> Option<u64> {
    let (used, size) = (
        ring.query(BPF_RB_AVAIL_DATA as u64),
        ring.query(BPF_RB_RING_SIZE as u64),
    );
    let after = used + bytes + RECORD_HEADER;
    if after > size {
        return None;
    }
    Some(wakes(used, after, size))
}

/// `BPF_RB_FORCE_WAKEUP` for a record that takes the ring's used bytes from `before` to `after`
/// past a quarter or half of its `size` (`sensor_common::ring`), else `BPF_RB_NO_WAKEUP`.
#[inline(always)]
fn wakes(before: u64, after: u64, size: u64) -> u64 {
    if ring::wakes_reader(before, after, size) {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}

/// The ring's own header in front of every record (`BPF_RINGBUF_HDR_SZ`).
const RECORD_HEADER: u64 = 8;
