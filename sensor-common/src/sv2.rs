//! Stratum V2 shares by their encrypted size. After the Noise handshake every message travels as
//! its 6-byte frame header and its payload, each sealed apart with ChaCha20-Poly1305 (a 16-byte
//! tag each; sv2-spec, "Encrypted stratum message framing": the header's ciphertext is 22
//! bytes). `SubmitSharesStandard`, a standard channel's share, has a fixed payload of six `u32`
//! (channel id, sequence number, job id, nonce, ntime, version): 24 bytes, so its frame is
//! 22 + 24 + 16 = [`SHARE_FRAME`] bytes whatever it holds. `SubmitSharesExtended` carries an
//! extranonce of 0 to 32 bytes after a length byte (63 to 95 bytes on the wire), so no
//! extended-channel share is 62 bytes; within a channel its size is fixed, and is learned per flow
//! ([`extended_share`]).
//!
//! What else a client may send in 62 bytes (a 24-byte payload): a `SetupConnection` whose five
//! strings total 8 bytes, or a `CloseChannel` whose reason is 19 bytes long; each at most once
//! per connection or channel, and real ones are longer (host and vendor names). A server's
//! `SubmitShares.Error` with a 15-byte error code is 62 bytes too: only the client's frames are
//! counted. Several shares in one segment (a client writing them faster than its pool
//! acknowledges: Nagle's algorithm joins them) count once the flow's share size is known, when
//! the segment is an exact multiple of it ([`several_shares`]).

use crate::stratum::{HIGHS, eq_bytes};

/// Whether a payload of a Noise handshake message's size (64 or 234 bytes) may be one, from its
/// first two bytes: not when they are a TLS record's header (type 20 to 23, then the version's
/// major byte 3) or the start of a JSON message (`{`, then `"`, `}` or a blank), the ordinary
/// payloads that come in those sizes. A real handshake message opens with key bytes that are
/// uniform (ElligatorSwift), so this hides the handshake for 10 pairs of the 65,536: about 0.03%
/// of sessions, counting both messages. (The first byte alone would hide 5 in 256 for each
/// message: 1 - (251/256)^2, about 3.9% of sessions, which the reference implementation's
/// handshakes showed.)
pub const fn may_be_noise(first: u8, second: u8) -> bool {
    match first {
        TLS_FIRST_TYPE..=TLS_LAST_TYPE => second != 3,
        b'{' => !matches!(second, b'"' | b'}' | b' ' | b'\t' | b'\r' | b'\n'),
        _ => true,
    }
}

/// Whether the first 16 bytes of a payload, as two 8-byte words `a` and `b` (in either byte
/// order), are 7-bit text: no byte 0, none of 0x80 or above. Such a payload is no Noise handshake
/// message: that is a public key (ElligatorSwift), uniform bytes, whose first 16 are text with a
/// chance of (127/256)^16, about 1.4 in 100,000. Text of a handshake's size is what a JSON
/// message cut after its first byte leaves (a 65-byte `mining.subscribe` sent as `{` and the
/// 64 bytes after it, as a miner hiding from signature matching splits it): the opening bytes
/// [`may_be_noise`] reads are then a key's or a string's, no brace.
pub const fn is_text16(a: u64, b: u64) -> bool {
    (a | b) & HIGHS == 0 && eq_bytes(a, 0) == 0 && eq_bytes(b, 0) == 0
}

/// Whether [`may_be_noise`] needs the second byte after `first`: only when `first` is one a TLS
/// record's header or a JSON message opens with (any other payload may be Noise at once, and
/// the XDP program reads no further byte).
pub const fn second_byte_decides(first: u8) -> bool {
    matches!(first, TLS_FIRST_TYPE..=TLS_LAST_TYPE | b'{')
}

/// A TLS record's content types: change_cipher_spec (20) to application_data (23).
const TLS_FIRST_TYPE: u8 = 20;
const TLS_LAST_TYPE: u8 = 23;

/// The shortest encrypted `SubmitSharesExtended`: 22 + 24 + 1 (the extranonce's length) + 16.
pub const EXTENDED_MIN: usize = HEADER + MAC + SUBMIT_SHARES_STANDARD + 1 + MAC;
/// The longest: with a 32-byte extranonce (`B0_32`).
pub const EXTENDED_MAX: usize = EXTENDED_MIN + 32;

/// A Stratum V2 flow's state in the kernel's table (`SV2_FLOWS`), one `u64`: which endpoint is the
/// client, where the next share may start, and what the flow's extended shares look like.
pub mod flow {
    /// The client is the flow key's lower endpoint.
    pub const CLIENT_IS_LO: u64 = 1;
    /// Bits 32 to 63 hold the sequence number after the last client segment counted or learned
    /// from: an earlier one is a retransmission.
    pub const NEXT_VALID: u64 = 1 << 1;
    /// A standard share was counted: the flow's channels are standard ones, and segments of an
    /// extended share's sizes are other messages.
    pub const STANDARD: u64 = 1 << 2;
    /// Bits 8 to 15 hold the size its extended shares were learned to have.
    pub const LEARNED: u64 = 1 << 3;
    /// Where the extended share size (learned, or the candidate) sits.
    pub const SIZE_SHIFT: u32 = 8;
}

/// A client segment of `len` bytes (`EXTENDED_MIN..=EXTENDED_MAX`) at sequence number `seq` on a
/// Stratum V2 flow in `state`: the new state and how many extended shares to count. Within one
/// channel every `SubmitSharesExtended` has the same size (its extranonce's length is the
/// channel's), but other client messages have sizes in the same range (`OpenExtendedMiningChannel`
/// with a short user name, `UpdateChannel` at 78 bytes, a short `SetupConnection`), so the size is
/// learned: two consecutive client segments of that range with the same size are shares, both
/// counted, and from then on each segment of that size is one. A segment of another size before
/// that replaces the candidate; a segment not past the last one looked at (a retransmission), or
/// any on a flow whose standard shares were counted, changes nothing. Ambiguous (README,
/// `stratum_v2`): two other messages of one size in a row (a proxy opening two channels with the
/// same user name) are counted as shares, and a share whose size another message shares is
/// counted with it.
pub const fn extended_share(state: u64, seq: u32, len: u32) -> (u64, u32) {
    use flow::*;
    if state & STANDARD != 0 {
        return (state, 0);
    }
    let next = (state >> 32) as u32;
    if state & NEXT_VALID != 0 && (seq.wrapping_sub(next) as i32) < 0 {
        return (state, 0);
    }
    let size = ((state >> SIZE_SHIFT) & 0xff) as u32;
    let kept = (state & CLIENT_IS_LO) | NEXT_VALID | (seq.wrapping_add(len) as u64) << 32;
    if state & LEARNED != 0 {
        let counted = if size == len { 1 } else { 0 };
        (kept | LEARNED | (size as u64) << SIZE_SHIFT, counted)
    } else if size == len {
        (kept | LEARNED | (size as u64) << SIZE_SHIFT, 2)
    } else {
        (kept | (len as u64 & 0xff) << SIZE_SHIFT, 0)
    }
}

/// Most shares one client segment is read as holding: 32 standard shares are 1,984 bytes, more
/// than a 1,500-byte link's segment carries (23).
pub const MAX_SEVERAL: u32 = 32;
/// The longest looked at: `MAX_SEVERAL` of the longest extended share.
pub const SEVERAL_MAX: usize = MAX_SEVERAL as usize * EXTENDED_MAX;

/// A client segment of `len` bytes (at most `SEVERAL_MAX`) at sequence number `seq` on a
/// Stratum V2 flow in `state`: the new state and how many shares it holds. Once the flow's share
/// size is known (a standard share counted, or an extended share's size learned), a segment of
/// 2 to [`MAX_SEVERAL`] times that size is that many shares, as a client that writes each share
/// as it finds it sends them when they come faster than its pool acknowledges (Nagle's
/// algorithm joins the writes). A retransmission (not past the last segment counted), a length
/// that is no multiple, or a flow whose share size is not known changes nothing. Ambiguous
/// (README, `stratum_v2`): another message, or several, whose sizes add up to such a multiple
/// (an `OpenStandardMiningChannel` with a 45-byte user name is 124 bytes) counts as shares.
pub const fn several_shares(state: u64, seq: u32, len: u32) -> (u64, u32) {
    use flow::*;
    let next = (state >> 32) as u32;
    if state & NEXT_VALID != 0 && (seq.wrapping_sub(next) as i32) < 0 {
        return (state, 0);
    }
    let size = if state & STANDARD != 0 {
        SHARE_FRAME as u32
    } else if state & LEARNED != 0 {
        ((state >> SIZE_SHIFT) & 0xff) as u32
    } else {
        return (state, 0);
    };
    if size == 0 || !len.is_multiple_of(size) {
        return (state, 0);
    }
    let n = len / size;
    if n < 2 || n > MAX_SEVERAL {
        return (state, 0);
    }
    let kept = (state & 0xffff_ffff) | NEXT_VALID | (seq.wrapping_add(len) as u64) << 32;
    (kept, n)
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
    fn extended_shares_are_learned_from_two_of_one_size() {
        use flow::*;
        // By hand: 22 + 24 + 1 + 16 = 63, with 32 extranonce bytes 95.
        assert_eq!((EXTENDED_MIN, EXTENDED_MAX), (63, 95));
        // A translator's channel: `OpenExtendedMiningChannel` of 90 bytes at seq 1000, then
        // shares of 71 (an 8-byte extranonce) at 1090, 1161, 1232 (1161 retransmitted), then an
        // `UpdateChannel` of 78 at 1303 and a share at 1381.
        let mut state = CLIENT_IS_LO | NEXT_VALID | 1000 << 32;
        let mut counted = Vec::new();
        for (seq, len) in [
            (1000, 90),
            (1090, 71),
            (1161, 71),
            (1161, 71),
            (1232, 71),
            (1303, 78),
            (1381, 71),
        ] {
            let (next, n) = extended_share(state, seq, len);
            state = next;
            counted.push(n);
        }
        // 90: a candidate; 71: another candidate; 71 again: learned, both counted; the
        // retransmission: nothing; 71: one; 78: not the size; 71: one. 2 + 1 + 1 = 4 shares of
        // the 4 sent.
        assert_eq!(counted, [0, 0, 2, 0, 1, 0, 1]);
        assert_eq!(state >> 32, 1381 + 71);
        assert_eq!((state >> SIZE_SHIFT) & 0xff, 71);
        assert_ne!(state & LEARNED, 0);
        assert_eq!(state & CLIENT_IS_LO, CLIENT_IS_LO);
        // On a flow whose standard shares were counted, nothing.
        let standard = CLIENT_IS_LO | NEXT_VALID | STANDARD | 500 << 32;
        assert_eq!(extended_share(standard, 500, 88), (standard, 0));
        assert_eq!(extended_share(standard, 588, 88), (standard, 0));
    }

    #[test]
    fn several_shares_in_one_segment_count_once_the_size_is_known() {
        use flow::*;
        // By hand: 32 of the longest extended share (95) are 3,040 bytes.
        assert_eq!(SEVERAL_MAX, 3040);
        // A standard flow whose last share ended at 700: 124 at 700 is 2 shares, 186 at 824 is
        // 3; the 186 retransmitted, 125 (no multiple) and 62 x 33 (over 32): nothing.
        let mut state = CLIENT_IS_LO | NEXT_VALID | STANDARD | 700 << 32;
        let mut counted = Vec::new();
        for (seq, len) in [
            (700, 124),
            (824, 186),
            (824, 186),
            (1010, 125),
            (1010, 62 * 33),
        ] {
            let (next, n) = several_shares(state, seq, len);
            state = next;
            counted.push(n);
        }
        assert_eq!(counted, [2, 3, 0, 0, 0]);
        assert_eq!(state >> 32, 824 + 186);
        assert_eq!(state & 0xffff_ffff, CLIENT_IS_LO | NEXT_VALID | STANDARD);
        // A flow that learned extended shares of 71 bytes: 142 is 2, 213 is 3, 124 is none.
        let learned = NEXT_VALID | LEARNED | 71 << SIZE_SHIFT | 2000 << 32;
        assert_eq!(several_shares(learned, 2000, 142).1, 2);
        assert_eq!(several_shares(learned, 2000, 213).1, 3);
        assert_eq!(several_shares(learned, 2000, 124).1, 0);
        assert_eq!(several_shares(learned, 2000, 142).0 >> 32, 2142);
        // Before the size is known (a candidate of 71 only, or nothing): nothing.
        let candidate = NEXT_VALID | 71 << SIZE_SHIFT | 2000 << 32;
        assert_eq!(several_shares(candidate, 2000, 142), (candidate, 0));
        assert_eq!(several_shares(0, 2000, 124), (0, 0));
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
        // The second byte is read only after the 5 first bytes those pairs open with: 20 to 23
        // and `{`; after any other, a payload may be a handshake's whatever follows.
        let decides: Vec<u8> = (0..=255u8).filter(|&a| second_byte_decides(a)).collect();
        assert_eq!(decides, [20, 21, 22, 23, b'{']);
        for a in (0..=255u8).filter(|&a| !second_byte_decides(a)) {
            assert!((0..=255u8).all(|b| may_be_noise(a, b)));
        }
    }

    #[test]
    fn text_is_no_handshake() {
        let words = |b: &[u8]| {
            (
                u64::from_le_bytes(b[..8].try_into().unwrap()),
                u64::from_le_bytes(b[8..16].try_into().unwrap()),
            )
        };
        // The rest of a `mining.subscribe` cut after its `{`; a pretty-printed message's rest
        // (blanks and newlines are text too).
        for t in [
            &b"\"id\":1,\"method\":\"mining.subscribe\""[..],
            b"\n    \"id\": 1,\r\n\t\"m",
        ] {
            let (a, b) = words(t);
            assert!(is_text16(a, b), "{t:?}");
        }
        // One byte of 0x80 or above, or a 0, anywhere in the 16: may be a key.
        for at in 0..16 {
            for bad in [0x00, 0x80, 0xa7, 0xff] {
                let mut t = *b"abcdefghijklmnop";
                t[at] = bad;
                let (a, b) = words(&t);
                assert!(!is_text16(a, b), "{bad:#x} at {at}");
            }
        }
        // Every byte from 1 to 0x7f, in every position, is text.
        for v in 1..=0x7fu8 {
            let (a, b) = words(&[v; 16]);
            assert!(is_text16(a, b), "{v:#x}");
        }
    }
}
