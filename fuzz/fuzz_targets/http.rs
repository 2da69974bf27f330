//! Where an HTTP message's body begins (the code the XDP program runs before scanning a getwork
//! POST's body, compiled for the host), on any payload, with stale bytes from an earlier packet
//! past its end: no panic, and the answer agrees with a plain reading, the offset after the
//! first `\n\r\n` or `\n\n` of the payload's first `WINDOW` bytes when a byte follows it there.
//! The same for a chunked body: a chunk's size line (`chunk_line`, and `chunk_data` over the
//! window, stale bytes past the payload's end included) agrees with a plain reading of RFC 9112's
//! grammar within the 32-byte bound, and the de-chunker (`chunks`) gives back exactly what was
//! chunked when the input is cut into chunks by sizes the fuzzer picks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sensor_common::{
    http::{CHUNK_LINE_MAX, CHUNK_SIZE_DIGITS, body, body_start, chunk_data, chunk_line, chunks},
    stratum::{WINDOW, Window},
};

fuzz_target!(|data: &[u8]| {
    // The first byte says how much of the rest is this packet; the rest of the window holds
    // what an earlier one left.
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let n = rest.len().min(WINDOW);
    let len = n * cut as usize / 255;
    let mut buf = Window::new();
    buf.bytes_mut()[..n].copy_from_slice(&rest[..n]);
    let this = &rest[..len];
    let expected = (0..len)
        .find_map(|i| {
            let after = &this[i..];
            if after.starts_with(b"\n\r\n") {
                Some(i + 3)
            } else if after.starts_with(b"\n\n") {
                Some(i + 2)
            } else {
                None
            }
        })
        .filter(|&at| at < len)
        .unwrap_or(0);
    // A `\n\r` at the packet's end with a stale `\n` after it would be found by a search that
    // looked past `len`; the reading above does not, and the search must not either.
    assert_eq!(body_start(&buf, len), expected, "len {len}");
    if let Some(b) = body(this) {
        assert!(this.len() > b.len() && this.ends_with(b));
        assert!(this.starts_with(b"POST ") || this.starts_with(b"HTTP/1."));
    }

    // The size line at the packet's start, read plainly: up to the first CRLF within the bound,
    // digits before an optional `;`, no CR or LF before the CRLF.
    let plain = this
        .windows(2)
        .take(CHUNK_LINE_MAX - 1)
        .position(|w| w == b"\r\n")
        .and_then(|cr| {
            let line = &this[..cr];
            let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
            let ok = (1..=CHUNK_SIZE_DIGITS).contains(&digits)
                && match line.get(digits) {
                    None => true,
                    Some(b';') => !line[digits..].iter().any(|&b| b == b'\r' || b == b'\n'),
                    Some(_) => false,
                };
            let size = line[..digits]
                .iter()
                .fold(0u64, |s, &b| s << 4 | (b as char).to_digit(16).unwrap_or(0) as u64);
            ok.then_some((size, cr + 2))
        });
    assert_eq!(chunk_line(|i| this.get(i).copied()), plain, "{this:?}");
    let (at, _) = chunk_data(&buf, 0, len);
    let want = plain
        .filter(|&(size, line)| size > 0 && line < len)
        .map_or(0, |(_, line)| line);
    assert_eq!(at, want, "len {len}");
    // Whatever the input, the chunks are pieces of it, in order, no more bytes than it has.
    let mut c = chunks(this);
    let total: usize = c.by_ref().map(<[u8]>::len).sum();
    assert!(total <= this.len());

    // Round trip: the rest cut into chunks of sizes taken from the packet's bytes (1 to 256
    // each), written as a sender writes them (lower-case hex, CRLF), then the last chunk.
    let (sizes, payload) = rest.split_at(rest.len() / 4);
    let mut wire = Vec::new();
    let mut from = 0;
    for s in sizes.iter().map(|&s| s as usize + 1) {
        if from >= payload.len() {
            break;
        }
        let to = (from + s).min(payload.len());
        wire.extend_from_slice(format!("{:x}\r\n", to - from).as_bytes());
        wire.extend_from_slice(&payload[from..to]);
        wire.extend_from_slice(b"\r\n");
        from = to;
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    let mut c = chunks(&wire);
    let back: Vec<u8> = c.by_ref().flatten().copied().collect();
    assert!(!c.broken());
    assert_eq!(back, payload[..from].to_vec());
});
