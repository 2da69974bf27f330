//! Stratum inside WebSocket frames (browser-miner bridges such as coin-hive-stratum carry each
//! Stratum message in one text frame; the client's frames are XOR-masked with a 4-byte key, the
//! server's are not; RFC 6455, section 5.2). One reading of a frame header for the XDP program
//! (which scans the unmasked payload of a segment's first frame) and the deep parser (which reads
//! every frame of a segment).

/// The first byte of a final text frame (FIN, opcode 1): what a Stratum message is sent as.
pub const TEXT_FIN: u8 = 0x81;

/// The first byte of a final text frame compressed with permessage-deflate (RFC 7692: FIN, RSV1,
/// opcode 1): what a browser or the `websockets` library sends once the extension is negotiated.
/// Its payload is raw DEFLATE (the trailing `00 00 ff ff` of a sync flush removed), continuing
/// the LZ77 window of the same direction's earlier messages unless `*_no_context_takeover` was
/// negotiated: neither the kernel nor a reader of one frame can read it, only a reader of every
/// message of the direction in order (the agent's `inspect::deflate`).
pub const DEFLATED_TEXT_FIN: u8 = 0xc1;

/// The first byte of the first frame of a compressed message sent in several frames (RSV1,
/// opcode 1, no FIN: RFC 7692 sets RSV1 on a message's first frame only): its continuations are
/// plain fragments (`is_fragment`), and the message's DEFLATE data is their payloads joined. It is
/// `A` (0x41), printable: the program takes it for one only where a plain segment opening with it
/// would not be scanned (a flow not known to be Stratum).
pub const DEFLATED_TEXT: u8 = 0x41;

/// The longest frame header: 2 bytes, an 8-byte extended length and a 4-byte mask key.
pub const MAX_HEADER: usize = 14;

/// A frame header: its length, the payload's length, the mask key (0 when unmasked, the key's
/// four bytes little-endian otherwise, see [`Header::key64`]) and whether RSV1 marks its message
/// as compressed (permessage-deflate).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub len: usize,
    pub payload: u64,
    pub masked: bool,
    pub key: [u8; 4],
    pub compressed: bool,
}

impl Header {
    /// The mask key repeated over 8 bytes, as a little-endian word: XOR it into the 8-byte words of
    /// a payload that starts at a multiple of 4 bytes from the frame's payload start.
    pub const fn key64(&self) -> u64 {
        let k = u32::from_le_bytes(self.key) as u64;
        k | k << 32
    }
}

/// The header at the start of `buf` (at least [`MAX_HEADER`] bytes, the frame's first `len` of
/// them real), if it is a text or continuation frame (opcodes 0, 1) whose header fits `len`.
/// RSV1 (permessage-deflate's mark of a compressed message) is allowed and reported; RSV2 and
/// RSV3 are not.
#[inline(always)]
pub fn header(buf: &[u8; MAX_HEADER + 2], len: usize) -> Option<Header> {
    let (b0, b1) = (buf[0], buf[1]);
    // No RSV2 or RSV3; opcode 0 (continuation) or 1 (text).
    if b0 & 0x30 != 0 || b0 & 0x0f > 1 {
        return None;
    }
    let masked = b1 & 0x80 != 0;
    let short = (b1 & 0x7f) as u64;
    let (ext, payload) = match short {
        126 => (2, u16::from_be_bytes([buf[2], buf[3]]) as u64),
        127 => (
            8,
            u64::from_be_bytes([
                buf[2], buf[3], buf[4], buf[5], buf[6], buf[7], buf[8], buf[9],
            ]),
        ),
        n => (0, n),
    };
    let k = 2 + ext;
    let hlen = k + if masked { 4 } else { 0 };
    if hlen > len {
        return None;
    }
    let key = if masked {
        [
            buf[k & 15],
            buf[(k + 1) & 15],
            buf[(k + 2) & 15],
            buf[(k + 3) & 15],
        ]
    } else {
        [0; 4]
    };
    Some(Header {
        len: hlen,
        payload,
        masked,
        key,
        compressed: b0 & 0x40 != 0,
    })
}

/// Whether `b0` opens a frame of a message sent in several frames (RFC 6455, 5.4), uncompressed:
/// a text frame without FIN (`01`), or a continuation frame, without FIN (`00`) or with (`80`).
/// A miner hiding its messages can cut each into fragments no frame of which holds a whole
/// marker; every WebSocket endpoint must accept them.
#[inline(always)]
pub const fn is_fragment(b0: u8) -> bool {
    matches!(b0, 0x00 | 0x01 | 0x80)
}

/// Whether `b0` opens a fragment of any message sent in several frames: an uncompressed one's
/// (`is_fragment`) or the first frame of a compressed one (`DEFLATED_TEXT`). Where a segment
/// opening with `A` is plain text that the program scans, `is_fragment` alone applies.
#[inline(always)]
pub const fn opens_fragment(b0: u8) -> bool {
    is_fragment(b0) || b0 == DEFLATED_TEXT
}

/// Whether `b0` opens a control frame: FIN, no RSV bit, opcode 8 (close), 9 (ping) or 10 (pong).
#[inline(always)]
pub const fn is_control(b0: u8) -> bool {
    matches!(b0, 0x88..=0x8a)
}

/// The longest message deep inspection joins from a direction's fragments or from a frame that
/// runs over several segments (a Stratum message is under 3 KB, an Equihash share's about 3 KB);
/// the program follows a frame's rest into the next segments only up to this many bytes.
pub const MESSAGE_MAX: usize = 16 * 1024;

/// The most payload a control frame carries (RFC 6455 5.5).
const CONTROL_PAYLOAD_MAX: u8 = 125;
/// The longest control frame, whole: its 2-byte header, a mask key and `CONTROL_PAYLOAD_MAX` bytes.
pub const CONTROL_MAX: usize = 2 + 4 + CONTROL_PAYLOAD_MAX as usize;

/// The whole length (header, mask key and payload) of the control frame (close, ping or pong:
/// FIN, opcode 8, 9 or 10, no RSV bit, at most 125 bytes of payload, RFC 6455 5.5) that opens a
/// segment whose first two bytes are `b0` and `b1`; `None` for any other frame. A browser's or a
/// library's pong (or ping) can share a segment with the compressed message written after it.
#[inline(always)]
pub fn control_len(b0: u8, b1: u8) -> Option<usize> {
    if !is_control(b0) || b1 & 0x7f > CONTROL_PAYLOAD_MAX {
        return None;
    }
    Some(2 + if b1 & 0x80 != 0 { 4 } else { 0 } + (b1 & 0x7f) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_frames_as_rfc_6455_lays_them_out() {
        // A server's empty ping: 89 00, 2 bytes.
        assert_eq!(control_len(0x89, 0x00), Some(2));
        // A client's pong answering a 4-byte ping: 8a 84, the key, 4 bytes: 10.
        assert_eq!(control_len(0x8a, 0x84), Some(10));
        // A close with its 2-byte code, masked: 88 82, key, code: 8. The longest: 2 + 4 + 125.
        assert_eq!(control_len(0x88, 0x82), Some(8));
        assert_eq!(control_len(0x89, 0xfd), Some(131));
        assert_eq!(CONTROL_MAX, 131);
        // 126 bytes (an extended length) is no control frame; nor a ping without FIN (09), one
        // with RSV1 (c9), a text (81) or binary (82) frame, or opcode 11 (8b, reserved).
        assert_eq!(control_len(0x89, 0x7e), None);
        assert_eq!(control_len(0x09, 0x00), None);
        assert_eq!(control_len(0xc9, 0x00), None);
        assert_eq!(control_len(0x81, 0x05), None);
        assert_eq!(control_len(0x82, 0x05), None);
        assert_eq!(control_len(0x8b, 0x00), None);
    }

    fn buf(bytes: &[u8]) -> [u8; MAX_HEADER + 2] {
        let mut b = [0u8; MAX_HEADER + 2];
        b[..bytes.len()].copy_from_slice(bytes);
        b
    }

    #[test]
    fn headers_as_rfc_6455_lays_them_out() {
        // A server's text frame of 5 bytes: 81 05.
        assert_eq!(
            header(&buf(&[0x81, 0x05, b'h']), 3),
            Some(Header {
                len: 2,
                payload: 5,
                masked: false,
                key: [0; 4],
                compressed: false,
            })
        );
        // A client's masked frame of 300 bytes: 81 fe 01 2c, then the key 37 fa 21 3d.
        let h = header(&buf(&[0x81, 0xfe, 0x01, 0x2c, 0x37, 0xfa, 0x21, 0x3d]), 8).unwrap();
        assert_eq!(
            (h.len, h.payload, h.masked, h.key),
            (8, 300, true, [0x37, 0xfa, 0x21, 0x3d])
        );
        assert_eq!(h.key64(), 0x3d21_fa37_3d21_fa37);
        // A compressed text frame (c1: FIN, RSV1, text) of 5 bytes: read, marked compressed.
        let h = header(&buf(&[DEFLATED_TEXT_FIN, 0x05]), 2).unwrap();
        assert_eq!((h.len, h.payload, h.compressed), (2, 5, true));
        // Binary (opcode 2), close (8), RSV2 (a1), or a header longer than the segment: none.
        assert_eq!(header(&buf(&[0x82, 0x05]), 2), None);
        assert_eq!(header(&buf(&[0x88, 0x00]), 2), None);
        assert_eq!(header(&buf(&[0xa1, 0x05]), 2), None);
        assert_eq!(header(&buf(&[0x81, 0x85, 1, 2]), 4), None);
    }
}
