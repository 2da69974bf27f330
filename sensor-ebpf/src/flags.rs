//! The flags word that carries a segment's facts past the Stratum scan (through
//! `opening::forget`, with the window's length, the joined opening's length and the next sequence
//! number). One table, so that no two facts share a bit: `opening_settle` reads `WHOLE` and
//! `FROM_LO`; the rest are read by `tcp` after the scan.

/// The segment is all in the window.
pub(crate) const WHOLE: u64 = 1;
/// The segment's source is the flow key's lower endpoint.
pub(crate) const FROM_LO: u64 = 2;
/// A plain segment that opens a message or continues an opening: `opening_settle` is called.
pub(crate) const SETTLE: u64 = 4;
/// A chunked HTTP body whose JSON runs on in a next chunk (`http::Body::more`).
pub(crate) const CHUNKS: u64 = 8;
/// The segment opens a message (`{` or blanks first).
pub(crate) const OPENS: u64 = 1 << 5;
/// A suspect signal already made the segment a candidate.
pub(crate) const SIGNALLED: u64 = 1 << 6;
/// The segment is not plain (a frame or a body opens it): where it opens with a WebSocket text
/// frame (a client's, masked, or a server's) that matched and runs past the segment, the frame's
/// rest is followed (`opening_follow_start`).
pub(crate) const NOT_PLAIN: u64 = 1 << 7;
/// The segment is not plain and its flow involves a watched range, a pool address or a pool
/// port; a frame's rest followed on any other flow is noted for `opening::frames_followed`.
/// Plain segments, the most scanned, read no pool-port bit for it.
pub(crate) const WATCHED: u64 = 1 << 8;
/// The flow's slot held an opening lately (`opening::maybe_held`): a segment that matched
/// nothing may be the other endpoint's answer to a followed opening (`opening::answers`).
pub(crate) const HELD_SLOT: u64 = 1 << 9;
/// Where the segment's length in bytes (header or head included) is kept, 16 bits ...
pub(crate) const SEGMENT_LEN: u32 = 16;
/// ... and its offset in the packet, 16 bits, so that neither is live across the scan.
pub(crate) const SEGMENT_AT: u32 = 32;

const _: () = {
    let bits = [
        WHOLE, FROM_LO, SETTLE, CHUNKS, OPENS, SIGNALLED, NOT_PLAIN, WATCHED, HELD_SLOT,
    ];
    let mut seen = 0u64;
    let mut i = 0;
    while i < bits.len() {
        assert!(bits[i].count_ones() == 1 && bits[i] & seen == 0 && bits[i] < 1 << SEGMENT_LEN);
        seen |= bits[i];
        i += 1;
    }
    assert!(SEGMENT_AT == SEGMENT_LEN + 16 && SEGMENT_AT + 16 <= 64);
};
