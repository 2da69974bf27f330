//! Stratum inside WebSocket frames (browser-miner bridges): the messages a segment's frames
//! carry, unmasked, for the deep parser. The frame header is read as the XDP program reads it
//! (`sensor_common::websocket`).

use sensor_common::websocket::{Header, MAX_HEADER, TEXT_FIN, control_len, header};

/// The payloads of the text frames that open `payload`, unmasked, one a line (a frame cut by the
/// segment's end last, without its line end, so that it reads as a cut message); `None` when the
/// segment does not open with a text frame.
pub fn messages(payload: &[u8]) -> Option<Vec<u8>> {
    if payload.first() != Some(&TEXT_FIN) {
        return None;
    }
    let mut out = Vec::with_capacity(payload.len());
    let mut at = 0;
    while at < payload.len() {
        // A compressed frame is read with its direction's earlier messages (`deflate`), not here.
        let Some(h) = frame_at(payload, at).filter(|h| !h.compressed) else {
            break;
        };
        let start = at + h.len;
        let whole = (start as u64).saturating_add(h.payload) <= payload.len() as u64;
        let end = if whole {
            start + h.payload as usize
        } else {
            payload.len()
        };
        out.extend(
            payload[start..end]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ h.key[i % 4]),
        );
        if !whole {
            break;
        }
        out.push(b'\n');
        at = end;
    }
    (!out.is_empty()).then_some(out)
}

/// Whether `payload` opens with a text frame's header (what [`messages`] reads): its bytes are
/// frames, masked or not, and no plain-text reading of them (a line that opens with `{` in a
/// masked payload is chance) applies.
pub fn opens_text_frame(payload: &[u8]) -> bool {
    payload.first() == Some(&TEXT_FIN) && frame_at(payload, 0).is_some()
}

/// The length of the whole control frame (a ping, a pong, a close) at `at` in `payload`, if one
/// is there whole.
pub(super) fn control_at(payload: &[u8], at: usize) -> Option<usize> {
    let (b0, b1) = (*payload.get(at)?, *payload.get(at + 1)?);
    control_len(b0, b1).filter(|n| at + n <= payload.len())
}

/// The header of the frame at `at` in `payload`, as the XDP program reads one (from at most
/// `MAX_HEADER + 2` bytes); `None` when those bytes hold none.
pub(super) fn frame_at(payload: &[u8], at: usize) -> Option<Header> {
    let mut buf = [0u8; MAX_HEADER + 2];
    let rest = payload.get(at..)?;
    let n = rest.len().min(buf.len());
    buf[..n].copy_from_slice(&rest[..n]);
    header(&buf, n)
}

#[cfg(test)]
mod tests {
    use test_support::websocket_frame as frame;

    use super::*;

    #[test]
    fn frames_become_lines() {
        let a = br#"{"id":1,"method":"login"}"#;
        let b = [b"{\"x\":\"".as_slice(), &[b'y'; 200], b"\"}"].concat();
        // Two frames in one segment, one masked, one with a 16-bit length.
        let seg = [frame(a, Some([9, 8, 7, 6])), frame(&b, None)].concat();
        assert_eq!(
            messages(&seg).unwrap(),
            [a.as_slice(), b"\n", &b, b"\n"].concat()
        );
        // The second frame cut by the segment's end: its bytes, no line end.
        let cut = &seg[..seg.len() - 10];
        assert_eq!(
            messages(cut).unwrap(),
            [a.as_slice(), b"\n", &b[..b.len() - 10]].concat()
        );
        // A 64-bit length near 2^64 (found by fuzzing): the frame runs to the segment's end.
        let huge = [&[0x81u8, 127][..], &[0xff; 8], b"{\"a\":1}"].concat();
        assert_eq!(messages(&huge).unwrap(), b"{\"a\":1}");
        // Not a text frame first: nothing.
        assert_eq!(messages(a), None);
        assert_eq!(messages(&[0x81]), None);
    }
}
