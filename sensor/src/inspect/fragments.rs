//! WebSocket messages that span frames or segments. A message sent in several frames (RFC 6455,
//! 5.4) is a text frame without FIN (`01`), then continuation frames (`00`), the last with FIN
//! (`80`). Every WebSocket endpoint must accept them, so a miner hiding its Stratum can cut each message into fragments of a few bytes,
//! none holding a whole marker; the `websockets` library sends one so when given an iterable
//! (its last frame an empty continuation with FIN). The program hands a segment that opens with
//! such a frame, whole, to deep inspection on a flow that involves a watched range, a pool
//! address or a pool port (`sensor_common::websocket::is_fragment`); this joins each direction's
//! fragments into the message and opens the flow when it is Stratum.
//!
//! - A frame the segment's end cuts (a message longer than a segment, such as a login padded past
//!   one) goes on in the next segment, which opens with no frame header: its rest is joined when
//!   that segment comes next in sequence (`continues`), unmasked at the key's phase where the
//!   last segment left it. The program hands such segments over, to the frame's end, for a new
//!   flow whose first frame runs past its segment with nothing recognised in it (as for a padded
//!   plaintext login), and for a client's frame that matched on a watched or pool flow (a padded
//!   submit): `opening_follow_start`. A segment missed inside a frame, or one a capture cut short, drops
//!   the direction's open message; a segment a capture cut short is read as before when it
//!   opens the frame (its cut message repaired where it can be).
//! - Control frames (pings, pongs), which may come between a message's fragments, are read past;
//!   so are up to [`MAX_GAP`] bytes of the direction's sequence numbers between two fragments (a
//!   pong or a ping in a segment of its own, which the program does not hand over). A larger gap,
//!   or a continuation with no message open, drops what was open: the message is not read (a
//!   retransmission, before the sequence number that continues the message, is skipped).
//! - A whole text frame between fragments (which RFC 6455 forbids) is read as its own message.
//! - A compressed message's fragments (permessage-deflate: its first frame `DEFLATED_TEXT`, RSV1
//!   without FIN, then plain continuations) are joined the same way; the whole message goes to
//!   the direction's inflater (`take_deflated`, `inspect::deflate`), not out as text. So does a
//!   compressed message in one frame the segment's end cuts (`DEFLATED_TEXT_FIN`: a message
//!   padded with bytes that do not compress), once its rest is joined, and a compressed message
//!   in one whole frame in a segment read here (before a fragment or a cut frame), in its
//!   place; a segment of whole compressed frames only is `inspect::deflate`'s alone.
//! - A segment sent again after its message was joined (TCP resends a segment whose
//!   acknowledgement is late; the program hands it over as it did the first time) lies before
//!   where its direction's last joined message ended, which is kept ([`Fragments::already_read`]):
//!   it is not read again. Read as frames, a frame's masked middle can look like a run of frames
//!   whose last runs past the segment, and its "rest" would swallow the next message.
//! - Bounded: at most [`MAX_MESSAGE_BYTES`] a message (more: dropped), [`MAX_DIRECTIONS`] open
//!   messages in all (the least recently used is dropped beyond, counted in `evicted`), and one not
//!   continued within [`MAX_AGE`] is dropped. Their bytes and evictions are exported with the
//!   other joins' (`reassembly_bytes`, `reassembly_evictions_total`).

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use sensor_common::websocket::{DEFLATED_TEXT, DEFLATED_TEXT_FIN, TEXT_FIN, opens_fragment};

use super::{
    stream::Direction,
    websocket::{control_at, frame_at},
};

/// The longest message joined.
pub const MAX_MESSAGE_BYTES: usize = sensor_common::websocket::MESSAGE_MAX;
/// Messages open at once over all flows.
pub const MAX_DIRECTIONS: usize = 1_024;
/// An open message not continued for this long is dropped.
pub const MAX_AGE: Duration = Duration::from_secs(60);
/// How far before where a direction's last joined message ended a segment may start and still be
/// taken for one sent again; further back it is another connection's (the same addresses and
/// ports, a new initial sequence number), read as any. A sender resends within its window.
pub const RESENT_WINDOW: u32 = 1 << 20;
/// Bytes of a direction's stream that may pass unseen between two fragments: four control frames
/// of the largest size (`websocket::CONTROL_MAX`, 131 bytes).
pub const MAX_GAP: u32 = 4 * sensor_common::websocket::CONTROL_MAX as u32;

struct Open {
    /// The message's payload so far, unmasked.
    bytes: Vec<u8>,
    /// The sequence number after the message's last byte seen.
    next_seq: u32,
    used: Instant,
    /// The frame the last segment's end cut, whose rest opens the next segment.
    cut: Option<Cut>,
    /// A compressed message's (its first frame `DEFLATED_TEXT`): its bytes are DEFLATE data.
    compressed: bool,
    /// The sequence number of its first frame.
    from_seq: u32,
}

/// A compressed message joined from its fragments, for the direction's inflater: its payloads
/// (DEFLATE data, unmasked, without the sync flush's last four bytes) and the sequence numbers
/// its frames span.
pub struct Deflated {
    pub span: (u32, u32),
    pub data: Vec<u8>,
}

/// A frame cut by its segment's end: its mask key, the payload bytes seen (the key's phase), the
/// bytes still to come, and whether it ends its message (FIN).
#[derive(Clone, Copy)]
struct Cut {
    key: [u8; 4],
    done: u64,
    left: u64,
    fin: bool,
}

/// Where a direction's last joined message ended (the sequence number after its last frame), and
/// when.
struct Read {
    seq: u32,
    used: Instant,
}

#[derive(Default)]
pub struct Fragments {
    open: HashMap<Direction, Open>,
    /// Each direction's last joined message's end, kept as long as an open message would be, and
    /// as many (the least recently joined dropped beyond).
    read: HashMap<Direction, Read>,
    /// Compressed messages joined by the last `messages` call, to be inflated in order.
    deflated: Vec<Deflated>,
    /// Open messages dropped to stay within [`MAX_DIRECTIONS`].
    pub evicted: u64,
}

/// A frame this reads: a text frame, plain or compressed, or a continuation (without RSV1, which
/// only a message's first frame carries).
fn joinable(h: &sensor_common::websocket::Header, b0: u8) -> bool {
    !h.compressed || b0 == DEFLATED_TEXT || b0 == DEFLATED_TEXT_FIN
}

/// Whether deep inspection reads `payload` here rather than as whole frames: it holds a fragment
/// of a message (`opens_fragment`) whole, or (captured `whole`) ends inside a text or continuation
/// frame, first or behind control frames and whole text frames. A segment a capture cut short is
/// read as before (its cut message repaired where it can be).
pub fn spans(payload: &[u8], whole: bool) -> bool {
    let mut at = 0;
    while at < payload.len() {
        if let Some(n) = control_at(payload, at) {
            at += n;
            continue;
        }
        let Some(h) = frame_at(payload, at).filter(|h| joinable(h, payload[at])) else {
            return false;
        };
        let end = ((at + h.len) as u64).saturating_add(h.payload);
        if end > payload.len() as u64 {
            return whole;
        }
        if opens_fragment(payload[at]) {
            return true;
        }
        at = end as usize;
    }
    false
}

/// `bytes` unmasked with `key` from phase `done` (payload bytes of the frame before them).
fn unmask(bytes: &[u8], key: [u8; 4], done: u64) -> impl Iterator<Item = u8> + '_ {
    let phase = (done % 4) as usize;
    bytes
        .iter()
        .enumerate()
        .map(move |(i, b)| b ^ key[(i + phase) % 4])
}

impl Fragments {
    /// Whether a segment of `dir` at `seq` carries the rest of a frame the previous segment's end
    /// cut (it opens with no frame header: only the sequence number tells).
    pub fn continues(&self, dir: &Direction, seq: u32) -> bool {
        self.open
            .get(dir)
            .is_some_and(|o| o.cut.is_some() && o.next_seq == seq)
    }

    /// How many of the `len` bytes of a segment of `dir` at `seq` lie before where the
    /// direction's last joined message ended, sent again: all when the segment lies wholly
    /// before, none when it starts there or after (or more than [`RESENT_WINDOW`] before).
    pub fn already_read(&self, dir: &Direction, seq: u32, len: usize) -> usize {
        let Some(r) = self.read.get(dir) else {
            return 0;
        };
        match r.seq.wrapping_sub(seq) {
            0 => 0,
            behind if behind <= RESENT_WINDOW => (behind as usize).min(len),
            _ => 0,
        }
    }

    /// The messages a segment of `dir` (sequence number `seq`, captured `whole`) completes, one a
    /// line: whole text frames as they are, a message in several frames or segments joined with
    /// what came before it. `None` when it completes none.
    pub fn messages(
        &mut self,
        dir: Direction,
        seq: u32,
        payload: &[u8],
        whole: bool,
        now: Instant,
    ) -> Option<Vec<u8>> {
        self.expire(now);
        let mut out = Vec::new();
        // The rest of the frame the previous segment's end cut.
        let mut at = 0;
        if let Some(o) = self.open.get_mut(&dir)
            && let Some(c) = o.cut
        {
            match seq.wrapping_sub(o.next_seq) as i32 {
                0 => {
                    let n = c.left.min(payload.len() as u64) as usize;
                    o.bytes.extend(unmask(&payload[..n], c.key, c.done));
                    o.next_seq = seq.wrapping_add(n as u32);
                    o.used = now;
                    o.cut = Some(Cut {
                        done: c.done + n as u64,
                        left: c.left - n as u64,
                        ..c
                    })
                    .filter(|c| c.left > 0);
                    at = n;
                    if o.cut.is_some() && !whole {
                        self.open.remove(&dir);
                        return None;
                    }
                    if o.cut.is_none() && c.fin {
                        self.finish(&dir, &mut out);
                    }
                }
                // A retransmission of a segment already read: skipped.
                gap if gap < 0 => return None,
                // Bytes of the frame missed: the message cannot be read.
                _ => {
                    self.open.remove(&dir);
                }
            }
        }
        while at < payload.len() {
            if let Some(n) = control_at(payload, at) {
                at += n;
                continue;
            }
            let Some(h) = frame_at(payload, at).filter(|h| joinable(h, payload[at])) else {
                // Compressed, or no frame: nothing after it can be continued.
                self.open.remove(&dir);
                break;
            };
            let start = at + h.len;
            let full = (start as u64).saturating_add(h.payload);
            let end = full.min(payload.len() as u64) as usize;
            let data = unmask(&payload[start..end], h.key, 0);
            let here = seq.wrapping_add(at as u32);
            let cut = (full > end as u64).then_some(Cut {
                key: h.key,
                done: (end - start) as u64,
                left: full - end as u64,
                fin: payload[at] & 0x80 != 0,
            });
            // A frame cut short by the capture, or too long to join: not kept.
            if cut.is_some() && (!whole || full - start as u64 > MAX_MESSAGE_BYTES as u64) {
                self.open.remove(&dir);
                break;
            }
            let after = seq.wrapping_add(end as u32);
            match payload[at] {
                // A message in one frame, whole: read as it is. A message's first fragment, or a
                // frame the segment's end cuts: whatever was open is abandoned.
                TEXT_FIN if cut.is_none() => {
                    out.extend(data);
                    out.push(b'\n');
                }
                // A compressed message in one frame, whole: to the inflater in its place.
                DEFLATED_TEXT_FIN if cut.is_none() => self.deflated.push(Deflated {
                    span: (here, after),
                    data: data.collect(),
                }),
                TEXT_FIN | 0x01 | DEFLATED_TEXT | DEFLATED_TEXT_FIN => {
                    let compressed = matches!(payload[at], DEFLATED_TEXT | DEFLATED_TEXT_FIN);
                    self.start(dir, data.collect(), (here, after), cut, compressed, now)
                }
                // A continuation: joined when it follows the open message's last fragment.
                b0 => match self
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
                        o.cut = cut;
                        if o.bytes.len() > MAX_MESSAGE_BYTES {
                            self.open.remove(&dir);
                        } else if cut.is_none() && b0 & 0x80 != 0 {
                            self.finish(&dir, &mut out);
                        }
                    }
                },
            }
            at = end;
        }
        (!out.is_empty()).then_some(out)
    }

    /// Opens `dir`'s message with its first bytes, from its first frame's sequence number to the
    /// one after them.
    fn start(
        &mut self,
        dir: Direction,
        bytes: Vec<u8>,
        (from_seq, next_seq): (u32, u32),
        cut: Option<Cut>,
        compressed: bool,
        now: Instant,
    ) {
        if !self.open.contains_key(&dir) && self.open.len() >= MAX_DIRECTIONS {
            self.evict_oldest();
        }
        self.open.insert(
            dir,
            Open {
                bytes,
                next_seq,
                used: now,
                cut,
                compressed,
                from_seq,
            },
        );
    }

    /// The compressed messages joined by the last `messages` call, in order.
    pub fn take_deflated(&mut self) -> Vec<Deflated> {
        std::mem::take(&mut self.deflated)
    }

    /// Ends `dir`'s message: its bytes and a line end onto `out`, or, compressed, onto the
    /// messages to inflate; where it ended is kept (`already_read`).
    fn finish(&mut self, dir: &Direction, out: &mut Vec<u8>) {
        let Some(o) = self.open.remove(dir) else {
            return;
        };
        if !self.read.contains_key(dir) && self.read.len() >= MAX_DIRECTIONS {
            super::stream::evict_oldest(&mut self.read, |r| r.used);
        }
        self.read.insert(
            *dir,
            Read {
                seq: o.next_seq,
                used: o.used,
            },
        );
        if o.compressed {
            self.deflated.push(Deflated {
                span: (o.from_seq, o.next_seq),
                data: o.bytes,
            });
        } else {
            out.extend_from_slice(&o.bytes);
            out.push(b'\n');
        }
    }

    /// Bytes held in open messages.
    pub fn bytes(&self) -> usize {
        self.open.values().map(|o| o.bytes.len()).sum()
    }

    /// Drops open messages not continued within [`MAX_AGE`], and messages' ends kept as long.
    pub fn expire(&mut self, now: Instant) {
        self.open
            .retain(|_, o| now.saturating_duration_since(o.used) < MAX_AGE);
        self.read
            .retain(|_, r| now.saturating_duration_since(r.used) < MAX_AGE);
    }

    fn evict_oldest(&mut self) {
        if super::stream::evict_oldest(&mut self.open, |o| o.used) {
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

    fn spans_whole(payload: &[u8]) -> bool {
        spans(payload, true)
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
            assert_eq!(f.messages(DIR, seq, s, true, now), None);
            assert!(spans_whole(s));
            seq += s.len() as u32;
        }
        assert_eq!(f.bytes(), LOGIN.len());
        let m = f.messages(DIR, seq, &segs[3], true, now).unwrap();
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
        assert!(spans_whole(&one));
        assert_eq!(
            f.messages(DIR, 5000, &one, true, now).unwrap(),
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
        // MAX_GAP exactly too (four masked pings of 125 bytes: 4 x 131 = 524); one byte more is a
        // missed fragment: nothing.
        for (gap, joined) in [(6, true), (524, true), (525, false)] {
            let mut f = Fragments::default();
            assert_eq!(f.messages(DIR, 100, &first, true, now), None);
            let m = f.messages(DIR, after + gap, &last, true, now);
            assert_eq!(m.is_some(), joined, "gap {gap}");
            assert_eq!(f.bytes(), 0);
        }
        // A retransmitted fragment (before the sequence number that continues the message) is
        // skipped: the message joins once, whole.
        let mut f = Fragments::default();
        let mid = frame(0x00, &LOGIN[9..20], None);
        let end = frame(0x80, &LOGIN[20..], None);
        assert_eq!(f.messages(DIR, 100, &first, true, now), None);
        assert_eq!(f.messages(DIR, after, &mid, true, now), None);
        // The middle fragment again (before the sequence number that continues): skipped.
        assert_eq!(f.messages(DIR, after, &mid, true, now), None);
        let m = f
            .messages(DIR, after + mid.len() as u32, &end, true, now)
            .unwrap();
        assert_eq!(m, [LOGIN, b"\n"].concat());
        // A continuation with nothing open, or after MAX_AGE: nothing, nothing kept.
        assert_eq!(f.messages(DIR, 9, &end, true, now), None);
        assert_eq!(f.messages(DIR, 100, &first, true, now), None);
        let later = now + MAX_AGE;
        assert_eq!(f.messages(DIR, after, &last, true, later), None);
        assert_eq!(f.bytes(), 0);
        // A message over MAX_MESSAGE_BYTES is dropped.
        let big = vec![b'x'; 40_000];
        let mut f = Fragments::default();
        let mut seq = 0u32;
        for (i, c) in big.chunks(8_000).enumerate() {
            let p = frame(if i == 0 { 0x01 } else { 0x00 }, c, None);
            assert_eq!(f.messages(DIR, seq, &p, true, now), None);
            seq += p.len() as u32;
        }
        assert!(f.bytes() <= MAX_MESSAGE_BYTES, "{}", f.bytes());
        assert_eq!(
            f.messages(DIR, seq, &frame(0x80, b"", None), true, now),
            None
        );
        // A frame cut by a capture (the segment not captured whole) drops what was open.
        let mut f = Fragments::default();
        assert_eq!(f.messages(DIR, 100, &first, true, now), None);
        let cut = &last[..last.len() - 1];
        assert!(!spans(cut, false));
        assert_eq!(f.messages(DIR, after, cut, false, now), None);
        assert_eq!(f.bytes(), 0);
        assert!(!spans_whole(&frame(0x81, LOGIN, None)));
        // A compressed message's first frame (`41`) is joined with its continuations; the
        // message goes to the inflater, not out as text: its bytes, and the sequence numbers
        // from its first frame's header (100) to after its last frame.
        let mut compressed = frame(0x01, &LOGIN[..9], None);
        compressed[0] = 0x41;
        assert!(spans_whole(&compressed));
        assert_eq!(f.messages(DIR, 100, &compressed, true, now), None);
        let end = frame(0x80, &LOGIN[9..12], None);
        let at = 100 + compressed.len() as u32;
        assert_eq!(f.messages(DIR, at, &end, true, now), None);
        let d = f.take_deflated();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].span, (100, at + end.len() as u32));
        assert_eq!(d[0].data, LOGIN[..12].to_vec());
        assert!(f.take_deflated().is_empty());
        // A compressed message in one frame is not joined here (`inspect::deflate` reads it).
        let mut whole = frame(0x81, LOGIN, None);
        whole[0] = 0xc1;
        assert!(!spans_whole(&whole));
    }

    #[test]
    fn open_messages_are_bounded_in_number() {
        let now = Instant::now();
        let mut f = Fragments::default();
        let first = frame(0x01, b"{\"id\":", None);
        for i in 0..MAX_DIRECTIONS as u16 + 2 {
            let dir = (DIR.0, i, DIR.2, DIR.3);
            let at = now + Duration::from_millis(i as u64);
            assert_eq!(f.messages(dir, 0, &first, true, at), None);
        }
        assert_eq!(f.evicted, 2);
        assert_eq!(f.bytes(), MAX_DIRECTIONS * 6);
    }

    /// A login padded to 3,000 bytes, one masked frame (a 16-bit length: 8 bytes of header with
    /// the key) over three segments, the second and third opening with no header.
    #[test]
    fn a_frame_over_segments_joins_into_its_message() {
        let now = Instant::now();
        let padded = [
            br#"{"pad":""#.as_slice(),
            &[b'x'; 3000],
            br#"","#,
            &LOGIN[1..],
        ]
        .concat();
        let f3 = frame(0x81, &padded, Some([0x37, 0xfa, 0x21, 0x3d]));
        assert_eq!(f3.len(), 8 + padded.len());
        // Cuts at 1,000 and 2,001 bytes: the key's phase moves by 992 (0) and 1,001 (1).
        let (a, b, c) = (&f3[..1000], &f3[1000..2001], &f3[2001..]);
        let (sa, sb, sc) = (7u32, 1007u32, 2008u32);
        assert!(spans_whole(a));
        assert!(!spans(a, false), "a capture's cut is read as before");
        let mut f = Fragments::default();
        assert_eq!(f.messages(DIR, sa, a, true, now), None);
        assert!(f.continues(&DIR, sb));
        assert!(!f.continues(&DIR, sb + 1));
        assert_eq!(f.messages(DIR, sb, b, true, now), None);
        assert_eq!(f.bytes(), 2001 - 8);
        // The second segment again (a retransmission): skipped.
        assert_eq!(f.messages(DIR, sb, b, true, now), None);
        // The last, with a whole text frame after the rest: both messages.
        let tail = [c, &frame(0x81, b"{\"x\":1}", None)].concat();
        assert_eq!(
            f.messages(DIR, sc, &tail, true, now).unwrap(),
            [padded.as_slice(), b"\n{\"x\":1}\n"].concat()
        );
        assert_eq!(f.bytes(), 0);
        // The third without the second: nothing, nothing kept.
        let mut f = Fragments::default();
        assert_eq!(f.messages(DIR, sa, a, true, now), None);
        assert_eq!(f.messages(DIR, sc, c, true, now), None);
        assert_eq!(f.bytes(), 0);
        // The frame's rest cut by a capture: dropped.
        let mut f = Fragments::default();
        assert_eq!(f.messages(DIR, sa, a, true, now), None);
        assert_eq!(f.messages(DIR, sb, b, false, now), None);
        assert_eq!(f.bytes(), 0);
        // A fragment (no FIN) cut by its segment's end, its rest, then the last fragment.
        let first = frame(0x01, &padded[..1500], None);
        let last = frame(0x80, &padded[1500..], None);
        let mut f = Fragments::default();
        assert_eq!(f.messages(DIR, 0, &first[..700], true, now), None);
        assert_eq!(f.messages(DIR, 700, &first[700..], true, now), None);
        let m = f
            .messages(DIR, first.len() as u32, &last, true, now)
            .unwrap();
        assert_eq!(m, [padded.as_slice(), b"\n"].concat());
        // A frame longer than MAX_MESSAGE_BYTES is not kept.
        let huge = frame(0x81, &vec![b'x'; MAX_MESSAGE_BYTES + 1], None);
        let mut f = Fragments::default();
        assert_eq!(f.messages(DIR, 0, &huge[..1400], true, now), None);
        assert!(!f.continues(&DIR, 1400));
    }

    /// Compressed frames (their bytes here any bytes: the inflater reads them): one masked, of
    /// 3,000 bytes, over three segments at 7, 1,007 and 2,008, joined after its rest, unmasked,
    /// spanning 7 to 3,015; then a segment of a whole compressed frame (5 bytes) before a
    /// compressed message's first fragment (`41`, 4 bytes), and its last fragment: both, in
    /// order.
    #[test]
    fn compressed_frames_cut_or_before_fragments_go_to_the_inflater_in_order() {
        let now = Instant::now();
        let data: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut f3 = frame(0x81, &data, Some([0x9d, 0x11, 0xe0, 0x42]));
        f3[0] = DEFLATED_TEXT_FIN;
        let (a, b, c) = (&f3[..1000], &f3[1000..2001], &f3[2001..]);
        assert!(spans_whole(a));
        let mut f = Fragments::default();
        assert_eq!(f.messages(DIR, 7, a, true, now), None);
        assert!(f.continues(&DIR, 1007));
        assert_eq!(f.messages(DIR, 1007, b, true, now), None);
        assert!(f.take_deflated().is_empty());
        assert_eq!(f.messages(DIR, 2008, c, true, now), None);
        let d = f.take_deflated();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].span, (7, 3015));
        assert_eq!(d[0].data, data);
        assert_eq!(f.bytes(), 0);
        // A whole compressed frame alone is the inflater's; before a fragment, read here.
        let mut one = frame(0x81, b"abcde", None);
        one[0] = DEFLATED_TEXT_FIN;
        assert!(!spans_whole(&one));
        let mut first = frame(0x01, b"fghi", None);
        first[0] = DEFLATED_TEXT;
        let segment = [one.as_slice(), &first].concat();
        assert!(spans_whole(&segment));
        assert_eq!(f.messages(DIR, 3015, &segment, true, now), None);
        let last = frame(0x80, b"jk", None);
        let at = 3015 + segment.len() as u32;
        assert_eq!(f.messages(DIR, at, &last, true, now), None);
        let d = f.take_deflated();
        let spans: Vec<_> = d.iter().map(|d| (d.span, d.data.as_slice())).collect();
        assert_eq!(
            spans,
            [
                ((3015, 3022), b"abcde".as_slice()),
                ((3022, at + 4), b"fghijk".as_slice())
            ]
        );
    }

    /// A padded message's frame over three segments at 7, 1,007 and 2,008: it ends at 7 + 8 +
    /// 3,000 = 3,015. Segments resent from before that are read as far as it, no further.
    #[test]
    fn where_a_joined_message_ended_is_kept_for_segments_sent_again() {
        let now = Instant::now();
        let f3 = frame(0x81, &[b'x'; 3000], Some([0xbe, 0xf2, 0x21, 0x39]));
        let (a, b, c) = (&f3[..1000], &f3[1000..2001], &f3[2001..]);
        let mut f = Fragments::default();
        assert_eq!(f.messages(DIR, 7, a, true, now), None);
        assert_eq!(f.messages(DIR, 1007, b, true, now), None);
        // Open, not ended: nothing is taken for sent again.
        assert_eq!(f.already_read(&DIR, 7, 1000), 0);
        assert_eq!(f.messages(DIR, 2008, c, true, now).unwrap().len(), 3001);
        let end = 3015;
        assert_eq!(end, 2008 + c.len() as u32);
        // Each segment again, wholly before the end.
        assert_eq!(f.already_read(&DIR, 2008, c.len()), c.len());
        assert_eq!(f.already_read(&DIR, 7, 1000), 1000);
        // Sent again with 10 new bytes after it: the 1,007 before the end.
        assert_eq!(f.already_read(&DIR, 2008, c.len() + 10), 1007);
        // From the end on, or the other direction: nothing.
        assert_eq!(f.already_read(&DIR, end, 100), 0);
        assert_eq!(f.already_read(&DIR, end + 5, 100), 0);
        let back = (DIR.2, DIR.3, DIR.0, DIR.1);
        assert_eq!(f.already_read(&back, 7, 1000), 0);
        // A window back at most: further, another connection's numbers (and across the wrap).
        assert_eq!(
            f.already_read(&DIR, end.wrapping_sub(RESENT_WINDOW), 10),
            10
        );
        assert_eq!(
            f.already_read(&DIR, end.wrapping_sub(RESENT_WINDOW + 1), 10),
            0
        );
        assert_eq!(f.already_read(&DIR, end.wrapping_sub(5000), 10), 10);
        // Kept as long as an open message.
        f.expire(now + MAX_AGE - Duration::from_millis(1));
        assert_eq!(f.already_read(&DIR, 7, 1000), 1000);
        f.expire(now + MAX_AGE);
        assert_eq!(f.already_read(&DIR, 7, 1000), 0);
        // And as many: the first of MAX_DIRECTIONS + 1 directions' ends is dropped.
        let mut f = Fragments::default();
        for port in 0..=MAX_DIRECTIONS as u16 {
            let dir = (DIR.0, port, DIR.2, DIR.3);
            let at = now + Duration::from_millis(port.into());
            assert_eq!(f.messages(dir, 7, a, true, at), None);
            assert_eq!(f.messages(dir, 1007, b, true, at), None);
            assert!(f.messages(dir, 2008, c, true, at).is_some());
        }
        assert_eq!(f.read.len(), MAX_DIRECTIONS);
        assert_eq!(f.already_read(&(DIR.0, 0, DIR.2, DIR.3), 7, 10), 0);
        assert_eq!(f.already_read(&(DIR.0, 1, DIR.2, DIR.3), 7, 10), 10);
        assert_eq!(f.evicted, 0, "no message was dropped");
    }
}
