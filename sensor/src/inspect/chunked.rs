//! HTTP bodies sent with chunked transfer encoding (`Transfer-Encoding: chunked`: a pool's HTTP
//! server answering without `Content-Length`, Node's HTTP client posting without one): the body
//! is a series of chunks, each its size in hex on a line of its own, then its data, then CRLF, so
//! the JSON does not open the body and a chunk boundary may fall anywhere inside it, even inside a
//! method's name. Here the chunks' data are joined back into the JSON the sender wrote, for the
//! deep parser. The size lines are read as the XDP program reads them (`sensor_common::http`).

use sensor_common::http;

/// A chunked body's data, joined.
pub struct Dechunked {
    /// The chunks' data, in order; what the payload holds of a chunk its end cut.
    pub bytes: Vec<u8>,
    /// Chunks with data: more than one, and a boundary may have cut what the kernel scanned.
    pub chunks: usize,
}

/// The data of the chunked body that `payload` holds, after the head of the HTTP message that
/// opens it (`http::body`) or from its first byte (the next segment of a body whose head came
/// earlier): `None` unless that body opens with a chunk's size line and a chunk with data, and its
/// framing holds up to the payload's end or to the last chunk (a hex-looking line that is no size
/// line, or data that does not end where its size says, is not a chunked body; the payload is then
/// read as it is). The result is never longer than the payload: as bounded as the sample is.
pub fn data(payload: &[u8]) -> Option<Dechunked> {
    let body = http::body(payload).unwrap_or(payload);
    if !body.first()?.is_ascii_hexdigit() {
        return None;
    }
    let mut it = http::chunks(body);
    let mut out = Dechunked {
        bytes: Vec::with_capacity(body.len()),
        chunks: 0,
    };
    for data in it.by_ref() {
        out.bytes.extend_from_slice(data);
        out.chunks += 1;
    }
    (!it.broken() && out.chunks > 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// getWork's request (59 bytes) as Node's HTTP client posts it without `Content-Length`: its
    /// head says chunked, the body is one chunk of 0x3b = 59 bytes and the last chunk.
    #[test]
    fn one_chunk_after_the_head() {
        let json = br#"{"jsonrpc":"2.0","id":1,"method":"eth_getWork","params":[]}"#;
        let post = [
            &b"POST / HTTP/1.1\r\nHost: 198.51.100.7\r\nTransfer-Encoding: chunked\r\n\r\n3b\r\n"[..],
            json,
            b"\r\n0\r\n\r\n",
        ]
        .concat();
        let d = data(&post).unwrap();
        assert_eq!(d.bytes, json.to_vec());
        assert_eq!(d.chunks, 1);
    }

    /// The same JSON over three chunks of 16, 27 and 16 bytes (0x10, 0x1b with an extension,
    /// 0x10), the second boundary inside `eth_getWork`, in a segment of its own (the head came
    /// before): joined back whole.
    #[test]
    fn chunks_joined_across_a_boundary_inside_a_name() {
        let json = br#"{"jsonrpc":"2.0","id":1,"method":"eth_getWork","params":[]}"#;
        assert_eq!(&json[38..43], b"getWo");
        let body = [
            &b"10\r\n"[..],
            &json[..16],
            b"\r\n1b;n=2\r\n",
            &json[16..43],
            b"\r\n10\r\n",
            &json[43..],
            b"\r\n0\r\n\r\n",
        ]
        .concat();
        let d = data(&body).unwrap();
        assert_eq!(d.bytes, json.to_vec());
        assert_eq!(d.chunks, 3);
        // Cut by the segment's end 5 bytes into the third chunk's data: 16 + 27 + 5 = 48 bytes.
        let cut = &body[..4 + 16 + 10 + 27 + 6 + 5];
        let d = data(cut).unwrap();
        assert_eq!(d.bytes, json[..48].to_vec());
    }

    /// Not chunked bodies: JSON (with `Content-Length`), a hex-looking first line whose chunk is
    /// not followed by a size line (`2`, its 2 bytes `ab` and CRLF, then `{}` where the next size
    /// line should be), a `0x` size, a body that is only the last chunk.
    #[test]
    fn what_is_not_a_chunked_body() {
        assert!(data(b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}").is_none());
        assert!(data(b"{\"id\":1}\n").is_none());
        assert!(data(b"2\r\nab\r\n{}\r\n").is_none());
        assert!(data(b"0x3b\r\n{\"id\":1}\r\n").is_none());
        assert!(data(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n").is_none());
        assert!(data(b"").is_none());
    }
}
