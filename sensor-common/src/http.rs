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

/// The longest chunk-size line read before a chunked body's data (RFC 9112 section 7.1: the
/// size in hex, an optional extension after `;`, CRLF): 32 bytes, CRLF included. Senders write a
/// few hex digits (`7b`, Go's and Node's lower-case, no leading zeros) and rarely an extension.
pub const CHUNK_LINE_MAX: usize = 32;
/// Hex digits of a chunk size at most: 16, a `u64`.
pub const CHUNK_SIZE_DIGITS: usize = 16;

/// The chunk-size line at the start of the bytes `at(0)`, `at(1)`, ... (`None` past their end):
/// 1 to [`CHUNK_SIZE_DIGITS`] hex digits, then either CRLF or `;` and an extension (any bytes but
/// CR and LF) and CRLF, all within [`CHUNK_LINE_MAX`] bytes. Returns the size and the line's
/// length (where the chunk's data begins). A bare LF, blanks, a `0x` prefix or more digits are
/// not a chunk size here. One definition for the XDP program (over its window) and the
/// de-chunking of deep inspection (over a payload): at most [`CHUNK_LINE_MAX`] steps.
#[inline(always)]
pub fn chunk_line(at: impl Fn(usize) -> Option<u8>) -> Option<(u64, usize)> {
    // The digits (a loop of its own, and one for the extension: few states for the verifier).
    let (mut size, mut i) = (0u64, 0usize);
    while i <= CHUNK_SIZE_DIGITS {
        let d = match at(i)? {
            b @ b'0'..=b'9' => b - b'0',
            b @ b'a'..=b'f' => b - b'a' + 10,
            b @ b'A'..=b'F' => b - b'A' + 10,
            _ => break,
        };
        size = size << 4 | d as u64;
        i += 1;
    }
    if i == 0 || i > CHUNK_SIZE_DIGITS {
        return None;
    }
    // An extension: from `;` to the CR, which may stand at byte 30 at the latest (CRLF is the
    // line's last two of `CHUNK_LINE_MAX`).
    let mut b = at(i)?;
    if b == b';' {
        while i < CHUNK_LINE_MAX - 2 {
            i += 1;
            b = at(i)?;
            if b == b'\r' || b == b'\n' {
                break;
            }
        }
    }
    if b != b'\r' {
        return None;
    }
    (at(i + 1)? == b'\n').then_some((size, i + 2))
}

/// The [`chunk_line`] at `from` of the window, whose first `len` bytes are the segment's.
#[inline(always)]
pub fn chunk_line_in(buf: &Window, from: usize, len: usize) -> Option<(u64, usize)> {
    let len = if len > WINDOW { WINDOW } else { len };
    chunk_line(|i| {
        let p = from + i;
        if p < len { Some(buf.byte(p)) } else { None }
    })
}

/// Where the data of the chunk whose size line begins at `at` of the window begins, when the line
/// is a [`chunk_line`] of a chunk with data (size above 0) and a byte of the data is below `len`
/// (0 otherwise), and whether another chunk with data follows in the window (the chunk's data
/// ends below `len`, then CRLF and the next size line, of a size above 0). For a chunked body
/// (`Transfer-Encoding: chunked`: its first bytes are the first chunk's size line, not the JSON),
/// so that the data is scanned as the body; a body whose JSON runs on in a next chunk is more
/// than the scan reads (a chunk boundary may cut a token). At most two size lines read.
#[inline(always)]
pub fn chunk_data(buf: &Window, at: usize, len: usize) -> (usize, bool) {
    chunk_data_with(
        at,
        len,
        |from| chunk_line_in(buf, from, len),
        |p| buf.byte(p),
    )
}

/// [`chunk_data`] with the window's size lines read by `line_at` (a line's offset in, what
/// [`chunk_line_in`] says of it out) and its bytes by `byte`: the XDP program reads each line in a
/// function of its own, verified once.
#[inline(always)]
pub fn chunk_data_with(
    at: usize,
    len: usize,
    line_at: impl Fn(usize) -> Option<(u64, usize)>,
    byte: impl Fn(usize) -> u8,
) -> (usize, bool) {
    let len = if len > WINDOW { WINDOW } else { len };
    if at >= len {
        return (0, false);
    }
    let Some((size, n)) = line_at(at) else {
        return (0, false);
    };
    let data = at + n;
    if size == 0 || data >= len {
        return (0, false);
    }
    // The next size line, after the data and its CRLF, if the window holds it.
    if size >= WINDOW as u64 {
        return (data, false);
    }
    let end = data + size as usize;
    let more = end + 2 < len
        && byte(end) == b'\r'
        && byte(end + 1) == b'\n'
        && matches!(line_at(end + 2), Some((next, _)) if next > 0);
    (data, more)
}

/// The data of a chunked body, chunk after chunk, as far as the payload holds it: ends at the last
/// chunk (size 0; trailers are not read), at the payload's end (a chunk cut there gives what the
/// payload has of it), or where the framing breaks (a size line that is none, or a chunk's data
/// not followed by CRLF): then [`Chunks::broken`] is true. Each step reads one size line and
/// moves past its chunk: at most one step per 4 bytes of payload.
pub struct Chunks<'a> {
    rest: &'a [u8],
    broken: bool,
}

/// The chunks of `body`, a chunked HTTP body (or the part of one a segment holds, from a chunk's
/// size line on).
pub fn chunks(body: &[u8]) -> Chunks<'_> {
    Chunks {
        rest: body,
        broken: false,
    }
}

impl Chunks<'_> {
    /// Whether the framing broke: the bytes read are not (all) a chunked body.
    pub fn broken(&self) -> bool {
        self.broken
    }
}

impl<'a> Iterator for Chunks<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest;
        if rest.is_empty() {
            return None;
        }
        self.rest = &[];
        // A size line cut by the payload's end is no break (the next segment holds its rest);
        // any other line that is no size line is.
        let cut = core::cell::Cell::new(false);
        let Some((size, line)) = chunk_line(|i| {
            let b = rest.get(i).copied();
            cut.set(b.is_none());
            b
        }) else {
            self.broken = !cut.get();
            return None;
        };
        if size == 0 {
            return None;
        }
        let data = rest.get(line..).unwrap_or_default();
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        if data.len() <= size {
            // Cut by the payload's end.
            return Some(data);
        }
        let (chunk, after) = data.split_at(size);
        match after {
            [b'\r', b'\n', more @ ..] => self.rest = more,
            [b'\r'] => {}
            _ => self.broken = true,
        }
        (!self.broken).then_some(chunk)
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
    fn a_chunk_size_line() {
        let line = |b: &[u8]| chunk_line(|i| b.get(i).copied());
        // "7b" is 7 x 16 + 11 = 123; the line is 2 digits and CRLF: 4 bytes.
        assert_eq!(line(b"7b\r\n{"), Some((123, 4)));
        // With an extension: "7b" 2 + ";x=y" 4 + CRLF 2 = 8 bytes.
        assert_eq!(line(b"7b;x=y\r\n{"), Some((123, 8)));
        // Upper case: 0x1F = 31. The last chunk: size 0, 3 bytes.
        assert_eq!(line(b"1F\r\n"), Some((31, 4)));
        assert_eq!(line(b"0\r\n\r\n"), Some((0, 3)));
        // 16 digits (leading zeros) then CRLF: 18 bytes; a 17th digit is none.
        assert_eq!(line(b"000000000000007b\r\n{"), Some((123, 18)));
        assert_eq!(line(b"0000000000000007b\r\n{"), None);
        // Lines that look like one but are not: a `0x` prefix, a bare LF, a blank before the CR,
        // no digits, an extension without digits, a line ending in the extension with a bare LF, a
        // CR without LF, a line cut short.
        for not in [
            &b"0x7b\r\n{"[..],
            b"7b\n{",
            b"7b \r\n{",
            b"\r\n{",
            b";x\r\n{",
            b"7b;x\n{",
            b"7b\r{",
            b"7b",
            b"",
        ] {
            assert_eq!(line(not), None, "{:?}", core::str::from_utf8(not));
        }
        // "1;" 2 + 28 + CRLF 2 = 32 bytes: the longest line read; one more byte of extension is
        // past the bound.
        let ext = |n: usize| [&b"1;"[..], &vec![b'a'; n], b"\r\n{"].concat();
        assert_eq!(line(&ext(28)), Some((1, 32)));
        assert_eq!(CHUNK_LINE_MAX, 32);
        assert_eq!(line(&ext(29)), None);
    }

    #[test]
    fn the_first_chunk_data_in_the_window() {
        // "HTTP/1.1 200 OK\r\n" is 17 bytes, "Transfer-Encoding: chunked\r\n" 28, "\r\n" 2: the body
        // (the size line "7b\r\n") at 47, the data at 51.
        let resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7b\r\n{\"id\":1}";
        let mut buf = Window::new();
        buf.bytes_mut()[..resp.len()].copy_from_slice(resp);
        let at = body_start(&buf, resp.len());
        assert_eq!(at, 47);
        assert_eq!(chunk_data(&buf, at, resp.len()), (51, false));
        // The data's first byte must be in the segment: cut after the size line, nothing.
        assert_eq!(chunk_data(&buf, at, 51), (0, false));
        // The last chunk (size 0) first: an empty body, no data.
        let put = |buf: &mut Window, b: &[u8]| buf.bytes_mut()[..b.len()].copy_from_slice(b);
        put(&mut buf, b"0\r\n\r\n");
        assert_eq!(chunk_data(&buf, 0, 5), (0, false));
        // A body that is JSON already: no size line.
        put(&mut buf, b"{\"id\":1}");
        assert_eq!(chunk_data(&buf, 0, 8), (0, false));
        // One chunk and the last: "8\r\n" 3, `{"id":1}` 8, CRLF 2, "0\r\n\r\n" 5 = 18 bytes; the
        // data at 3, no more chunk with data.
        put(&mut buf, b"8\r\n{\"id\":1}\r\n0\r\n\r\n");
        assert_eq!(chunk_data(&buf, 0, 18), (3, false));
        // Two chunks with data: `{"id":` (6) then `1}` (2): "6\r\n" 3 + 6 + CRLF 2, then
        // "2\r\n1}\r\n": the second line at 11, found; cut before its CR (at 12), not.
        put(&mut buf, b"6\r\n{\"id\":\r\n2\r\n1}\r\n0\r\n\r\n");
        assert_eq!(chunk_data(&buf, 0, 25), (3, true));
        assert_eq!(chunk_data(&buf, 0, 12), (3, false));
    }

    /// The 59 bytes of getWork's request as chunks: whole, over three chunks (16 + 27 + 16 = 59:
    /// `{"jsonrpc":"2.0"`, `,"id":1,"method":"eth_getWo`, `rk","params":[]}`, the second with an
    /// extension), cut by the payload's end, and framing that breaks.
    #[test]
    fn the_chunks_of_a_body() {
        let json = br#"{"jsonrpc":"2.0","id":1,"method":"eth_getWork","params":[]}"#;
        assert_eq!(json.len(), 59);
        let collect = |body: &[u8]| {
            let mut c = chunks(body);
            let parts: Vec<Vec<u8>> = c.by_ref().map(<[u8]>::to_vec).collect();
            (parts, c.broken())
        };
        // 0x3b = 59.
        let whole = [&b"3b\r\n"[..], json, b"\r\n0\r\n\r\n"].concat();
        assert_eq!(collect(&whole), (vec![json.to_vec()], false));
        // 0x10 = 16, 0x1b = 27.
        let three = [
            &b"10\r\n"[..],
            &json[..16],
            b"\r\n1b;n=2\r\n",
            &json[16..43],
            b"\r\n10\r\n",
            &json[43..],
            b"\r\n0\r\n\r\n",
        ]
        .concat();
        let (parts, broken) = collect(&three);
        assert!(!broken);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts.concat(), json.to_vec());
        // Cut inside the first chunk's data (4 + 20 bytes): its 20 bytes.
        assert_eq!(collect(&whole[..24]), (vec![json[..20].to_vec()], false));
        // Cut inside the next size line ("1" of "1b"): the first chunk, no break.
        let cut_line = &three[..4 + 16 + 2 + 1];
        assert_eq!(collect(cut_line), (vec![json[..16].to_vec()], false));
        // Cut between a chunk's data and its CRLF ("\r" alone): the chunk.
        assert_eq!(
            collect(&three[..4 + 16 + 1]),
            (vec![json[..16].to_vec()], false)
        );
        // The data longer than its size says ("5" but "hello!!" before the CRLF): broken, nothing.
        assert_eq!(collect(b"5\r\nhello!!\r\n0\r\n\r\n"), (vec![], true));
        // A second size line that is none: the first chunk, then broken.
        assert_eq!(
            collect(b"5\r\nhello\r\nzz\r\nworld\r\n"),
            (vec![b"hello".to_vec()], true)
        );
        // A first line that is no size line (a blank in it): broken at once.
        assert_eq!(collect(b"deadbeef 42\r\n{}"), (vec![], true));
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
