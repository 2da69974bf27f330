//! Mining JSON-RPC inside HTTP messages: Ethereum's getwork over HTTP POST (`eth_getWork`,
//! `eth_submitWork`, `eth_submitHashrate` as a request body, the pool's or node's JSON in the
//! response body), as ethminer's `http://` pools and Go clients still send it, on port 80 or a
//! node's 8545. The XDP program and the deep parser read such a segment's body as a segment of its
//! own (the same scanner, the same rules): this file says which segments open an HTTP message and
//! where the body begins, once, for both.
//!
//! Only a message whose head ends inside the first [`WINDOW`] bytes is read: its body is then in
//! the same segment (a client writes a small request in one go). A head cut at the segment's end
//! (the body comes in the next segment, which opens with `{` and is scanned as any segment) or
//! longer than the window gives nothing here.

use crate::stratum::{WINDOW, Window, eq_bytes, first_byte, low_bytes};

/// The first bytes of a request that carries a body (`POST `) and of a response (`HTTP/1.`), as
/// little-endian words of the segment's first 8 bytes, with the masks of their lengths.
const POST: u64 = u64::from_le_bytes(*b"POST \0\0\0");
const POST_MASK: u64 = low_bytes(5);
const RESPONSE: u64 = u64::from_le_bytes(*b"HTTP/1.\0");
const RESPONSE_MASK: u64 = low_bytes(7);

/// Whether a segment whose first 8 bytes are `head` (little-endian; bytes past a shorter segment's
/// end are whatever they are, a shorter segment has no body anyway) opens an HTTP POST request or
/// an HTTP/1.x response.
#[inline(always)]
pub const fn opens_message(head: u64) -> bool {
    head & POST_MASK == POST || head & RESPONSE_MASK == RESPONSE
}

/// Words of the window the search for the head's end walks: all of it.
const WORDS: usize = WINDOW / 8;

/// Where the body of the HTTP message at the start of the window begins: the offset after the
/// head's first empty line (`\r\n\r\n`, or `\n\n` as some servers end lines), if that offset is
/// below `len` (at least one byte of body in the window); else 0. One pass of word-at-a-time
/// compares, three loads a word.
#[inline(always)]
pub fn body_start(buf: &Window, len: usize) -> usize {
    let len = if len > WINDOW { WINDOW } else { len };
    let mut i = 0;
    while i < WORDS {
        let p = i * 8;
        if p >= len {
            break;
        }
        let (w0, w1, w2) = (buf.load8(p), buf.load8(p + 1), buf.load8(p + 2));
        // A line end at byte k of w0 followed by `\r\n` (a body at k + 3) or by `\n` (k + 2).
        let nl = eq_bytes(w0, b'\n');
        let crlf = nl & eq_bytes(w1, b'\r') & eq_bytes(w2, b'\n');
        let lf = nl & eq_bytes(w1, b'\n');
        let found = crlf | lf;
        if found != 0 {
            let k = first_byte(found);
            let lowest = found & found.wrapping_neg();
            let body = p + k + if crlf & lowest != 0 { 3 } else { 2 };
            // Bytes past `len` are an earlier packet's: a match reaching them is none, and a
            // body must have a byte in the window.
            return if body < len { body } else { 0 };
        }
        i += 1;
    }
    0
}

/// The body of the HTTP message that opens `payload`, as [`body_start`] finds it in the payload's
/// first [`WINDOW`] bytes; `None` when the payload opens no HTTP message or its body does not
/// begin there. For the deep parser, which holds whole payloads.
pub fn body(payload: &[u8]) -> Option<&[u8]> {
    let mut head = [0u8; 8];
    let n = payload.len().min(8);
    head[..n].copy_from_slice(&payload[..n]);
    if !opens_message(u64::from_le_bytes(head)) {
        return None;
    }
    let mut buf = Window::new();
    let n = payload.len().min(WINDOW);
    buf.bytes_mut()[..n].copy_from_slice(&payload[..n]);
    match body_start(&buf, n) {
        0 => None,
        at => payload.get(at..),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_after_the_first_empty_line() {
        // Go's HTTP client posting getwork (header as a Go client writes it):
        // "POST / HTTP/1.1\r\n" is 17 bytes, "Host: 198.51.100.7\r\n" 20, "Content-Length: 61\r\n"
        // 20, "Content-Type: application/json\r\n" 32, "\r\n" 2: the body begins at 91.
        let req = b"POST / HTTP/1.1\r\nHost: 198.51.100.7\r\nContent-Length: 61\r\nContent-Type: application/json\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"eth_getWork\",\"params\":[]}";
        assert_eq!(body(req), Some(&req[91..]));
        assert_eq!(req[91], b'{');
        // A response with bare line ends: "HTTP/1.0 200 OK\n" is 16 bytes, "\n" 1: body at 17.
        let resp = b"HTTP/1.0 200 OK\n\n{\"id\":1,\"result\":true}";
        assert_eq!(body(resp), Some(&resp[17..]));
        // The empty line straddling a word boundary: "HTTP/1.1 204\r\n" is 14 bytes, its empty
        // line bytes 14 and 15, the body at 16 (the line end at 13 is in the first word, the
        // `\r\n` after it in the second).
        let straddle = b"HTTP/1.1 204\r\n\r\n{}";
        assert_eq!(body(straddle), Some(&b"{}"[..]));
        // No body in the segment (the head alone), no empty line, or not POST nor a response.
        assert_eq!(body(&req[..91]), None);
        assert_eq!(body(&req[..60]), None);
        assert_eq!(body(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n{\"a\":1}"), None);
        assert_eq!(body(b"POSTMAN\r\n\r\n{}"), None);
        assert_eq!(body(b"HTTP/2 200\r\n\r\n{}"), None);
        assert_eq!(body(b"POST"), None);
        // A head longer than the window: its end is not looked for.
        let long = [
            b"POST / HTTP/1.1\r\nCookie: ".as_slice(),
            &[b'a'; 600],
            b"\r\n\r\n{}",
        ]
        .concat();
        assert_eq!(body(&long), None);
        // The head's end as the window's last bytes, the body's first byte the 512th: found.
        // 17 + 8 + 482 = 507 bytes of head lines, then "\r\n\r\n": body at 511.
        let edge = [
            b"POST / HTTP/1.1\r\nCookie: ".as_slice(),
            &[b'a'; 482],
            b"\r\n\r\n{}",
        ]
        .concat();
        assert_eq!(body(&edge), Some(&b"{}"[..]));
    }

    #[test]
    fn no_match_from_bytes_past_the_window_length() {
        // An earlier packet left an empty line in the window past this one's end: not a body.
        let mut buf = Window::new();
        let old = b"POST / HTTP/1.1\r\nHost: a\r\n\r\n{}";
        buf.bytes_mut()[..old.len()].copy_from_slice(old);
        // The new segment is the first 20 bytes: "POST / HTTP/1.1\r\nHos".
        assert_eq!(body_start(&buf, 20), 0);
        assert_eq!(body_start(&buf, old.len()), 28);
    }
}
