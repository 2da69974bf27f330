//! Stratum V2 shares by their encrypted size. After the Noise handshake every message travels as
//! its 6-byte frame header and its payload, each sealed apart with ChaCha20-Poly1305 (a 16-byte
//! tag each; sv2-spec, "Encrypted stratum message framing": the header's ciphertext is 22
//! bytes). `SubmitSharesStandard`, a standard channel's share, has a fixed payload of six `u32`
//! (channel id, sequence number, job id, nonce, ntime, version): 24 bytes, so its frame is
//! 22 + 24 + 16 = [`SHARE_FRAME`] bytes whatever it holds. `SubmitSharesExtended` carries an
//! extranonce of 0 to 32 bytes after a length byte (63 to 95 bytes on the wire), so no
//! extended-channel share is 62 bytes.
//!
//! What else a client may send in 62 bytes (a 24-byte payload): a `SetupConnection` whose five
//! strings total 8 bytes, or a `CloseChannel` whose reason is 19 bytes long; each at most once
//! per connection or channel, and real ones are longer (host and vendor names). A server's
//! `SubmitShares.Error` with a 15-byte error code is 62 bytes too: only the client's frames are
//! counted. Several frames in one segment (124 bytes for two shares) are not counted: a sum of
//! sizes is ambiguous.

/// Whether a payload of a Noise handshake message's size (64 or 234 bytes) may be one, from its
/// first two bytes: not when they are a TLS record's header (type 20 to 23, then the version's
/// major byte 3) or the start of a JSON message (`{`, then `"`, `}` or a blank), the ordinary
/// payloads that come in those sizes. A real handshake message opens with key bytes that are
/// uniform (ElligatorSwift), so this hides the handshake for 10 pairs of the 65,536: about 0.03%
/// of sessions, counting both messages. (The first byte alone would hide 5 in 256 for each
/// message: 1 - (251/256)^2, about 3.9% of sessions, which the reference implementation's
/// handshakes showed.)
pub const fn may_be_noise(first: u8, second: u8) -> bool {
    let tls = first >= 20 && first <= 23 && second == 3;
    let json = first == b'{' && matches!(second, b'"' | b'}' | b' ' | b'\t' | b'\r' | b'\n');
    !(tls || json)
}

/// Bytes of a Noise transport message's authentication tag (ChaCha20-Poly1305).
pub const MAC: usize = 16;
/// Bytes of a Stratum V2 frame header in plain text (extension type, message type, length).
pub const HEADER: usize = 6;
/// Bytes of `SubmitSharesStandard`'s payload: six `u32`.
pub const SUBMIT_SHARES_STANDARD: usize = 6 * 4;
/// Bytes of an encrypted `SubmitSharesStandard` frame: header and payload each sealed.
pub const SHARE_FRAME: usize = HEADER + MAC + SUBMIT_SHARES_STANDARD + MAC;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_standard_share_is_62_bytes_on_the_wire() {
        // By hand: (6 + 16) + (24 + 16) = 22 + 40 = 62.
        assert_eq!(SHARE_FRAME, 62);
        // An extended share: 24 + 1 + extranonce (0..=32) + 16 after the 22-byte header: 63
        // to 95 bytes, never 62.
        let extended =
            |extranonce: usize| HEADER + MAC + SUBMIT_SHARES_STANDARD + 1 + extranonce + MAC;
        assert_eq!((extended(0), extended(32)), (63, 95));
    }

    #[test]
    fn a_handshake_may_open_with_a_record_type_or_a_brace_but_not_with_a_header() {
        // TLS record headers of every type (change cipher spec, alert, handshake, application
        // data) with version major 3, and JSON's openings: not a handshake.
        for t in 20..=23 {
            assert!(!may_be_noise(t, 3));
        }
        for b in [b'"', b'}', b' ', b'\t', b'\r', b'\n'] {
            assert!(!may_be_noise(b'{', b));
        }
        // Key bytes that happen to start with a record type or a brace: may be one.
        assert!(may_be_noise(23, 0xcc));
        assert!(may_be_noise(22, 4));
        assert!(may_be_noise(b'{', 0xcc));
        assert!(may_be_noise(0xa7, 3));
        // Of the 65,536 first-two-byte pairs, exactly 4 + 6 = 10 hide a handshake message.
        let hidden = (0..=255u8)
            .flat_map(|a| (0..=255u8).map(move |b| (a, b)))
            .filter(|&(a, b)| !may_be_noise(a, b))
            .count();
        assert_eq!(hidden, 10);
    }
}
