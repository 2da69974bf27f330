//! Where an HTTP message's body begins (the code the XDP program runs before scanning a getwork
//! POST's body, compiled for the host), on any payload, with stale bytes from an earlier packet
//! past its end: no panic, and the answer agrees with a plain reading, the offset after the
//! first `\n\r\n` or `\n\n` of the payload's first `WINDOW` bytes when a byte follows it there.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sensor_common::{
    http::{body, body_start},
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
});
