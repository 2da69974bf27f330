//! WebSocket messages sent in several frames (RFC 6455, 5.4): a text frame without FIN (`01`),
//! then continuation frames (`00`), the last with FIN (`80`). Every WebSocket endpoint must
//! accept them, so a miner hiding its Stratum can cut each message into fragments of a few bytes,
//! none holding a whole marker; the `websockets` library sends one so when given an iterable
//! (its last frame an empty continuation with FIN). The program hands a segment that opens with
//! such a frame, whole, to deep inspection on a flow that involves a watched range, a pool
//! address or a pool port (`sensor_common::websocket::is_fragment`); this joins each direction's
//! fragments into the message and opens the flow when it is Stratum.
//!
//! - Frames are read from the segment's start while each is whole in it: a frame cut by the
//!   segment's end cannot be continued (the program does not hand over the segment that holds its
//!   rest, which opens with no frame header), and drops the direction's open message.
//! - Control frames (pings, pongs), which may come between a message's fragments, are read past;
//!   so are up to [`MAX_GAP`] bytes of the direction's sequence numbers between two fragments (a
//!   pong or a ping in a segment of its own, which the program does not hand over). A larger gap,
//!   or a continuation with no message open, drops what was open: the message is not read (a
//!   retransmission, before the sequence number that continues the message, is skipped).
//! - A whole text frame between fragments (which RFC 6455 forbids) is read as its own message.
//! - Compressed fragments (permessage-deflate) are not joined: the direction's open message is
//!   dropped (`inspect::deflate` reads compressed messages of one frame).
//! - Bounded: at most [`MAX_MESSAGE_BYTES`] a message (more: dropped), [`MAX_DIRECTIONS`] open
//!   messages in all (the least recently used is dropped beyond, counted in `evicted`), and one not
//!   continued within [`MAX_AGE`] is dropped. Their bytes and evictions are exported with the
//!   other joins' (`reassembly_bytes`, `reassembly_evictions_total`).

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use sensor_common::websocket::{TEXT_FIN, control_len, is_fragment};

use super::{stream::Direction, websocket::frame_at};

/// The longest message joined (a Stratum message is under 3 KB, an Equihash share's about 3 KB).
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;
/// Messages open at once over all flows.
pub const MAX_DIRECTIONS: usize = 1_024;
/// An open message not continued for this long is dropped.
pub const MAX_AGE: Duration = Duration::from_secs(60);
/// Bytes of a direction's stream that may pass unseen between two fragments: four control frames
/// of the largest size (131 bytes: `control_len`).
pub const MAX_GAP: u32 = 4 * 131;

struct Open {
    bytes: Vec<u8>,
    /// The sequence number after the message's last fragment.
    next_seq: u32,
    used: Instant,
}

#[derive(Default)]
pub struct Fragments {
    open: HashMap<Direction, Open>,
    /// Open messages dropped to stay within [`MAX_DIRECTIONS`].
    pub evicted: u64,
}

/// Whether `payload` holds a fragment of a message (`is_fragment`) whole, first or behind control
/// frames and whole text frames.
pub fn fragmented(payload: &[u8]) -> bool {
    let mut at = 0;
    while at < payload.len() {
        if let Some(n) = control_at(payload, at) {
            at += n;
            continue;
        }
        let Some((h, end)) = whole_frame(payload, at) else {
            return false;
        };
        if h.compressed {
            return false;
        }
        if is_fragment(payload[at]) {
            return true;
        }
        at = end;
    }
    false
}

/// The length of the whole control frame at `at` in `payload`, if one is there whole.
fn control_at(payload: &[u8], at: usize) -> Option<usize> {
    let (b0, b1) = (*payload.get(at)?, *payload.get(at + 1)?);
    control_len(b0, b1).filter(|n| at + n <= payload.len())
}

/// The header of the text or continuation frame at `at` and where the frame ends, if it is whole
/// in `payload`.
fn whole_frame(payload: &[u8], at: usize) -> Option<(sensor_common::websocket::Header, usize)> {
    let h = frame_at(payload, at)?;
    let end = ((at + h.len) as u64).checked_add(h.payload)?;
    (end <= payload.len() as u64).then_some((h, end as usize))
}

impl Fragments {
    /// The messages a segment of `dir` (sequence number `seq`) completes, one a line: whole text
    /// frames as they are, fragmented messages joined with their earlier fragments. `None` when
    /// it completes none.
    pub fn messages(
        &mut self,
        dir: Direction,
        seq: u32,
        payload: &[u8],
        now: Instant,
    ) -> Option<Vec<u8>> {
        self.expire(now);
        let mut out = Vec::new();
        let mut at = 0;
        while at < payload.len() {
            if let Some(n) = control_at(payload, at) {
                at += n;
                continue;
            }
            let Some((h, end)) = whole_frame(payload, at).filter(|(h, _)| !h.compressed) else {
                // A frame cut by the segment's end, compressed, or no frame: nothing after it
                // can be continued.
                self.open.remove(&dir);
                break;
            };
            let data = payload[at + h.len..end]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ h.key[i % 4]);
            let (here, after) = (seq.wrapping_add(at as u32), seq.wrapping_add(end as u32));
            match payload[at] {
                TEXT_FIN => {
                    out.extend(data);
                    out.push(b'\n');
                }
                // A message's first fragment: whatever was open is abandoned.
                0x01 => {
                    if !self.open.contains_key(&dir) && self.open.len() >= MAX_DIRECTIONS {
                        self.evict_oldest();
                    }
                    self.open.insert(
                        dir,
                        Open {
                            bytes: data.collect(),
                            next_seq: after,
                            used: now,
                        },
                    );
                }
                // A continuation: joined when it follows the open message's last fragment.
                b0 => {
                    match self
                        .open
                        .get(&dir)
                        .map(|o| here.wrapping_sub(o.next_seq) as i32)
                    {
                        // Nothing open, or a retransmission of a fragment already joined.
                        None => {}
                        Some(gap) if gap < 0 => {}
                        // Fragments missed: the message cannot be read.
                        Some(gap) if gap > MAX_GAP as i32 => {
                            self.open.remove(&dir);
                        }
                        Some(_) => {
                            let o = self.open.get_mut(&dir).expect("present");
                            o.bytes.extend(data);
                            o.next_seq = after;
                            o.used = now;
                            if o.bytes.len() > MAX_MESSAGE_BYTES {
                                self.open.remove(&dir);
                            } else if b0 & 0x80 != 0 {
                                let o = self.open.remove(&dir).expect("present");
                                out.extend_from_slice(&o.bytes);
                                out.push(b'\n');
                            }
                        }
                    }
                }
            }
            at = end;
        }
        (!out.is_empty()).then_some(out)
    }

    /// Bytes held in open messages.
    pub fn bytes(&self) -> usize {
        self.open.values().map(|o| o.bytes.len()).sum()
    }

    /// Drops open messages not continued within [`MAX_AGE`].
    pub fn expire(&mut self, now: Instant) {
        self.open
            .retain(|_, o| now.saturating_duration_since(o.used) < MAX_AGE);
    }

    fn evict_oldest(&mut self) {
        if let Some(dir) = self
            .open
            .iter()
            .min_by_key(|(_, o)| o.used)
            .map(|(d, _)| *d)
        {
            self.open.remove(&dir);
            self.evicted += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;

    const DIR: Direction = (
        IpAddr::V4(Ipv4Addr::new(198, 18, 22, 2)),
        40000,
        IpAddr::V4(Ipv4Addr::new(198, 18, 23, 2)),
        8181,
    );

    /// A frame with first byte `b0` (`test_support::websocket_frame` makes `81`).
    fn frame(b0: u8, payload: &[u8], key: Option<[u8; 4]>) -> Vec<u8> {
        let mut f = test_support::websocket_frame(payload, key);
        f[0] = b0;
        f
    }

    const LOGIN: &[u8] = br#"{"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"x"}}"#;

    #[test]
    fn fragments_over_segments_join_into_the_message() {
        let mut f = Fragments::default();
        let now = Instant::now();
        let key = Some([0x37, 0xfa, 0x21, 0x3d]);
        // As `websockets` sends an iterable: 01 with the first piece, 00 with each next, an
        // empty 80 last; one segment each, the client's masked.
        let (a, b, c) = (&LOGIN[..7], &LOGIN[7..30], &LOGIN[30..]);
        let segs = [
            frame(0x01, a, key),
            frame(0x00, b, key),
            frame(0x00, c, key),
            frame(0x80, b"", key),
        ];
        let mut seq = 1000u32;
        for s in &segs[..3] {
            assert_eq!(f.messages(DIR, seq, s, now), None);
            assert!(fragmented(s));
            seq += s.len() as u32;
        }
        assert_eq!(f.bytes(), LOGIN.len());
        let m = f.messages(DIR, seq, &segs[3], now).unwrap();
        assert_eq!(m, [LOGIN, b"\n"].concat());
        assert_eq!(f.bytes(), 0);
        // All in one segment, unmasked (a pool's), with a pong between two fragments and a
        // whole text frame after: both messages.
        let pong = [0x8a, 0x00];
        let one = [
            frame(0x01, a, None),
            pong.to_vec(),
            frame(0x80, &LOGIN[7..], None),
            frame(0x81, b"{\"x\":1}", None),
        ]
        .concat();
        assert!(fragmented(&one));
        assert_eq!(
            f.messages(DIR, 5000, &one, now).unwrap(),
            [LOGIN, b"\n{\"x\":1}\n"].concat()
        );
    }

    #[test]
    fn gaps_retransmissions_and_bounds() {
        let now = Instant::now();
        let (first, last) = (
            frame(0x01, &LOGIN[..9], None),
            frame(0x80, &LOGIN[9..], None),
        );
        let after = 100 + first.len() as u32;
        // A pong of its own segment between (6 bytes, masked, empty): within MAX_GAP, joined;
        // MAX_GAP exactly too; one byte more is a missed fragment: nothing.
        for (gap, joined) in [(6, true), (MAX_GAP, true), (MAX_GAP + 1, false)] {
            let mut f = Fragments::default();
            assert_eq!(f.messages(DIR, 100, &first, now), None);
            let m = f.messages(DIR, after + gap, &last, now);
            assert_eq!(m.is_some(), joined, "gap {gap}");
            assert_eq!(f.bytes(), 0);
        }
        // A retransmitted fragment (before the sequence number that continues the message) is
        // skipped: the message joins once, whole.
        let mut f = Fragments::default();
        let mid = frame(0x00, &LOGIN[9..20], None);
        let end = frame(0x80, &LOGIN[20..], None);
        assert_eq!(f.messages(DIR, 100, &first, now), None);
        assert_eq!(f.messages(DIR, after, &mid, now), None);
        // The middle fragment again (before the sequence number that continues): skipped.
        assert_eq!(f.messages(DIR, after, &mid, now), None);
        let m = f
            .messages(DIR, after + mid.len() as u32, &end, now)
            .unwrap();
        assert_eq!(m, [LOGIN, b"\n"].concat());
        // A continuation with nothing open, or after MAX_AGE: nothing, nothing kept.
        assert_eq!(f.messages(DIR, 9, &end, now), None);
        assert_eq!(f.messages(DIR, 100, &first, now), None);
        let later = now + MAX_AGE;
        assert_eq!(f.messages(DIR, after, &last, later), None);
        assert_eq!(f.bytes(), 0);
        // A message over MAX_MESSAGE_BYTES is dropped.
        let big = vec![b'x'; 40_000];
        let mut f = Fragments::default();
        let mut seq = 0u32;
        for (i, c) in big.chunks(8_000).enumerate() {
            let p = frame(if i == 0 { 0x01 } else { 0x00 }, c, None);
            assert_eq!(f.messages(DIR, seq, &p, now), None);
            seq += p.len() as u32;
        }
        assert!(f.bytes() <= MAX_MESSAGE_BYTES, "{}", f.bytes());
        assert_eq!(f.messages(DIR, seq, &frame(0x80, b"", None), now), None);
        // A frame cut by the segment's end drops what was open; a compressed fragment too.
        let mut f = Fragments::default();
        assert_eq!(f.messages(DIR, 100, &first, now), None);
        let cut = &last[..last.len() - 1];
        assert!(!fragmented(cut));
        assert_eq!(f.messages(DIR, after, cut, now), None);
        assert_eq!(f.bytes(), 0);
        let mut compressed = frame(0x01, &LOGIN[..9], None);
        compressed[0] = 0x41;
        assert!(!fragmented(&compressed));
        assert!(!fragmented(&frame(0x81, LOGIN, None)));
    }

    #[test]
    fn open_messages_are_bounded_in_number() {
        let now = Instant::now();
        let mut f = Fragments::default();
        let first = frame(0x01, b"{\"id\":", None);
        for i in 0..MAX_DIRECTIONS as u16 + 2 {
            let dir = (DIR.0, i, DIR.2, DIR.3);
            let at = now + Duration::from_millis(i as u64);
            assert_eq!(f.messages(dir, 0, &first, at), None);
        }
        assert_eq!(f.evicted, 2);
        assert_eq!(f.bytes(), MAX_DIRECTIONS * 6);
    }
}
