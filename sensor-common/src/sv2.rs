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
}
