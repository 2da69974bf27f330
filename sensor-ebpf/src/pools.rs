//! The table of pool endpoints (`sensor_common::pools`): read when a new flow's scan stopped at a
//! login's method (`stratum::Prior::PoolLogin`), written when a login met its rule on a new flow.

use sensor_common::{FlowKey, pools};

use crate::{maps::POOL_ENDPOINTS, replay::now};

/// Whether the destination of a packet of flow `key` (`dst_is_lo`: the key's lower endpoint) is
/// a pool endpoint: an array read, and the clock only when the slot holds that endpoint.
#[inline(always)]
pub(crate) fn known(key: &FlowKey, dst_is_lo: bool) -> bool {
    let e = pools::destination(key, dst_is_lo);
    match POOL_ENDPOINTS.get(pools::slot(&e)) {
        Some(entry) => pools::holds(entry, &e, now),
        None => false,
    }
}

/// Notes the destination of a packet of flow `key` as a pool endpoint seen at `now`.
#[inline(always)]
pub(crate) fn learn(key: &FlowKey, dst_is_lo: bool, now: u64) {
    let e = pools::destination(key, dst_is_lo);
    let Some(entry) = POOL_ENDPOINTS.get_ptr_mut(pools::slot(&e)) else {
        return;
    };
    // SAFETY: array value pointer, valid for the program run. CPUs writing one slot at once may
    // mix two pool endpoints' fields (`sensor_common::pools`). Field by field, the address a word
    // at a time: a copy of the whole endpoint put it on the stack, past the verifier's 512 bytes
    // for the chain of calls down to the scan.
    unsafe {
        let to = core::ptr::addr_of_mut!((*entry).endpoint);
        let addr = core::ptr::addr_of_mut!((*to).addr).cast::<u64>();
        core::ptr::write_volatile(addr, e.addr[0]);
        core::ptr::write_volatile(addr.add(1), e.addr[1]);
        core::ptr::write_volatile(core::ptr::addr_of_mut!((*to).port), e.port);
        core::ptr::write_volatile(core::ptr::addr_of_mut!((*to).family), e.family);
        // Never 0, which is an empty slot's.
        core::ptr::write_volatile(core::ptr::addr_of_mut!((*entry).seen_ns), now | 1);
    }
}
