//! Mining JSON-RPC inside HTTP messages (getwork over HTTP POST, the pool's answer in the
//! response): where the body of an HTTP message that opens a segment begins, so that the body is
//! scanned as the segment (`sensor_common::http` has the rules, shared with the deep parser); a
//! chunked body's from its first chunk's data, whether the head and the body share a segment or
//! the body opens the next one.

use aya_ebpf::programs::XdpContext;
use sensor_common::{http, stratum::WINDOW};

use crate::{
    maps::SCRATCH,
    parse::{load_into, load_window},
};

/// A body read as the segment: its offset in the payload, its first byte, and whether it is a
/// chunked body whose JSON runs on in a next chunk in the window (`more`: the scan reads only
/// the first chunk's data, and a chunk boundary may cut a token, so deep inspection de-chunks it).
pub(crate) struct Body {
    pub(crate) at: usize,
    pub(crate) first: u8,
    pub(crate) more: bool,
}

/// The body of the HTTP message that opens the payload at `payload`, when the segment opens a
/// POST request or a response and the body begins within the first `WINDOW` bytes (a chunked
/// body's from its first chunk's data, after the size line); `None` otherwise. Costs an 8-byte
/// copy for a segment that opens with `P` or `H` but no HTTP message, a window's copy and one
/// pass over it for one that does, and at most two size lines' steps (32 bytes each) more for a
/// body that opens with a hex digit.
#[inline(always)]
pub(crate) fn body(ctx: &XdpContext, payload: usize, plen: usize) -> Option<Body> {
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
    // A chunked body (`Transfer-Encoding: chunked`) opens with its first chunk's size line: the
    // chunk's data, when a size line is there, is read as the body.
    if first.is_ascii_hexdigit()
        && let Some(body) = chunk(at, n)
    {
        return Some(body);
    }
    Some(Body {
        at,
        first,
        more: false,
    })
}

/// The next segment of a chunked body whose head came in an earlier one: a segment that opens
/// with a chunk's size line and then `{`, read from the `{`. `None` for any other segment. Costs
/// a window's copy and at most two size lines' steps.
#[inline(always)]
pub(crate) fn chunk_segment(ctx: &XdpContext, payload: usize, plen: usize) -> Option<Body> {
    let n = load_window(ctx, payload, plen).ok()?;
    chunk(0, n).filter(|b| b.first == b'{')
}

/// The first chunk's data of the chunked body whose size line is at `at` of the SCRATCH window
/// (`n` bytes of payload in it).
#[inline(always)]
fn chunk(at: usize, n: usize) -> Option<Body> {
    let (data, more) = chunk_data(at, n)?;
    let data = data & (WINDOW - 1);
    if data == 0 {
        return None;
    }
    let scratch = SCRATCH.get_ptr(0)?;
    // SAFETY: map value pointer, valid for the program run; only this CPU uses it.
    let first = unsafe { (*scratch).buf.byte(data) };
    Some(Body {
        at: data,
        first,
        more,
    })
}

/// `http::chunk_data` over the SCRATCH window: the data's offset (0: none) and whether another
/// chunk with data follows, each size line read by `chunk_line` (verified once).
#[inline(always)]
fn chunk_data(at: usize, n: usize) -> Option<(usize, bool)> {
    let scratch = SCRATCH.get_ptr(0)?;
    // SAFETY: map value pointer, valid for the program run; only this CPU uses it.
    let buf = unsafe { &(*scratch).buf };
    Some(http::chunk_data_with(
        at,
        n,
        |from| {
            let line = chunk_line(from as u64, n as u64);
            (line != 0).then_some((line >> 32, line as usize & 0xff))
        },
        |p| buf.byte(p),
    ))
}

/// `http::chunk_line_in` over the SCRATCH window, as a BPF global function (its loops are
/// verified once, whatever the caller's state): 0 for no size line, else the size (at most
/// `u32::MAX`: every size from `WINDOW` up reads alike) in the high 32 bits and the line's length
/// (at most 32) in the low ones.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn chunk_line(from: u64, n: u64) -> u64 {
    let Some(scratch) = SCRATCH.get_ptr(0) else {
        return 0;
    };
    // SAFETY: map value pointer, valid for the program run; only this CPU uses it.
    let buf = unsafe { &(*scratch).buf };
    match http::chunk_line_in(buf, from as usize & (WINDOW - 1), n as usize) {
        Some((size, len)) => size.min(u32::MAX as u64) << 32 | len as u64,
        None => 0,
    }
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
