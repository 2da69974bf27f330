//! Mining JSON-RPC inside HTTP messages (getwork over HTTP POST, the pool's answer in the
//! response): where the body of an HTTP message that opens a segment begins, so that the body is
//! scanned as the segment (`sensor_common::http` has the rules, shared with the deep parser).

use aya_ebpf::programs::XdpContext;
use sensor_common::{http, stratum::WINDOW};

use crate::{
    maps::SCRATCH,
    parse::{load_into, load_window},
};

/// The offset of the body of the HTTP message that opens the payload at `payload` and its first
/// byte, when the segment opens a POST request or a response and the body begins within the
/// first `WINDOW` bytes; `None` otherwise. Costs an 8-byte copy for a segment that opens with `P`
/// or `H` but no HTTP message, and a window's copy and one pass over it for one that does.
#[inline(always)]
pub(crate) fn body(ctx: &XdpContext, payload: usize, plen: usize) -> Option<(usize, u8)> {
    let mut head = [0u8; 8];
    if load_into(ctx, payload, plen, &mut head as *mut _).ok()? < 8
        || !http::opens_message(u64::from_le_bytes(head))
    {
        return None;
    }
    let n = load_window(ctx, payload, plen).ok()?;
    let at = body_start(n as u64) as usize & (WINDOW - 1);
    if at == 0 {
        return None;
    }
    let scratch = SCRATCH.get_ptr(0)?;
    // SAFETY: map value pointer, valid for the program run; only this CPU uses it.
    let first = unsafe { (*scratch).buf.byte(at) };
    Some((at, first))
}

/// `http::body_start` over the SCRATCH window, as a BPF global function: its loop is verified
/// once, whatever the caller's state.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn body_start(n: u64) -> u64 {
    let Some(scratch) = SCRATCH.get_ptr(0) else {
        return 0;
    };
    // SAFETY: map value pointer, valid for the program run; only this CPU uses it.
    http::body_start(unsafe { &(*scratch).buf }, n as usize) as u64
}
