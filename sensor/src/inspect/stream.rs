//! Messages split over TCP segments. Deep inspection reads one segment at a time; a message longer
//! than a segment (an Equihash share's solution is about 2.8 KB, a miner may pad its login), or
//! one a client splits on purpose, would never be whole. For each direction of a flow this keeps
//! the unfinished message at the end of a segment (from its opening `{`, over as many lines as a
//! pretty-printed one runs: `deep::open_message`) and the sequence number that continues it; the
//! next segment in sequence is read joined to it. Bounded: at most [`MAX_TAIL`] bytes a direction and [`MAX_BYTES`] in all (the oldest half
//! is dropped when full, and counted), and a tail not continued within [`MAX_AGE`] is dropped.
//!
//! Only segments captured whole are kept (a capture's snap length or a sample's size may cut one:
//! its missing bytes cannot be joined). A retransmission of an earlier segment is read alone, as
//! before (the shares it repeats count once, see `activity::ledger`); a segment after a gap drops
//! the tail, which can no longer be completed, and hands it back to be read for what its start
//! says (`take_dropped`).
//!
//! Segments out of order: a segment that continues nothing here and opens inside a message (its
//! first non-blank byte is no `{`) is read alone and also kept, one a direction, as the possible
//! later part of a message whose earlier segment comes after it (lost before the vantage point
//! and sent again, or sent so on purpose: TCP delivers it in order). When a later segment's
//! unfinished message ends where the kept one begins, the two are read joined. Both kinds count
//! in the same bounds.

use std::{
    borrow::Cow,
    collections::HashMap,
    net::IpAddr,
    time::{Duration, Instant},
};

/// Longest unfinished message kept for one direction of a flow.
pub const MAX_TAIL: usize = 16 * 1024;
/// Bytes kept over all flows.
pub const MAX_BYTES: usize = 8 * 1024 * 1024;
/// A tail not continued for this long is dropped.
pub const MAX_AGE: Duration = Duration::from_secs(60);

/// One direction of a flow: source and destination endpoints.
pub type Direction = (IpAddr, u16, IpAddr, u16);

/// Removes the entry of `by_dir` least recently `used`; returns whether there was one (the
/// per-direction readers' LRU bound: inflaters, open fragmented messages).
pub(super) fn evict_oldest<V>(
    by_dir: &mut HashMap<Direction, V>,
    used: impl Fn(&V) -> Instant,
) -> bool {
    let oldest = by_dir.iter().min_by_key(|(_, v)| used(v)).map(|(d, _)| *d);
    oldest.is_some_and(|d| by_dir.remove(&d).is_some())
}

struct Tail {
    next_seq: u32,
    bytes: Vec<u8>,
    at: Instant,
}

#[derive(Default)]
pub struct Streams {
    tails: HashMap<Direction, Tail>,
    /// Per direction, the last segment that opened inside a message and continued nothing here;
    /// its `next_seq` is its own sequence number (where the message it ends would have to end).
    early: HashMap<Direction, Tail>,
    /// The bytes at the end of what the last `join` returned that it kept as unfinished.
    last_kept: usize,
    /// The unfinished message the last `join` dropped at a gap (empty when none).
    dropped: Vec<u8>,
    bytes: usize,
    /// Tails dropped to stay within [`MAX_BYTES`].
    pub evicted: u64,
}

impl Streams {
    /// The bytes to read for a segment of `dir` with sequence number `seq`: the tail kept for
    /// `dir` joined with `payload` when the segment continues it, else `payload` alone. Keeps the
    /// unfinished message at the end of what it returns for the next segment.
    pub fn join<'a>(
        &mut self,
        dir: Direction,
        seq: u32,
        payload: &'a [u8],
        whole: bool,
        now: Instant,
    ) -> Cow<'a, [u8]> {
        self.last_kept = 0;
        self.dropped.clear();
        // Before where the direction's tail waits: sent again, read alone, the tail left as it is.
        let mut again = false;
        let mut data = match self.tails.get(&dir) {
            Some(t) if t.next_seq == seq => {
                let t = self.tails.remove(&dir).expect("present");
                self.bytes -= t.bytes.len();
                if t.bytes.is_empty() {
                    Cow::Borrowed(payload)
                } else {
                    let mut joined = t.bytes;
                    joined.extend_from_slice(payload);
                    Cow::Owned(joined)
                }
            }
            Some(t) if (seq.wrapping_sub(t.next_seq) as i32) > 0 => {
                // After the tail's end: a segment was missed and the message cannot be completed
                // (what follows the gap may be read with its start later). The cut message is
                // handed back (`take_dropped`).
                let t = self.tails.remove(&dir).expect("present");
                self.bytes -= t.bytes.len();
                self.dropped = t.bytes;
                self.keep_early(dir, seq, payload, whole, now);
                Cow::Borrowed(payload)
            }
            Some(_) => {
                // Before it: a retransmission, read alone; the tail still waits. Unless it is
                // before the early segment too: not seen yet, the start of what came early.
                again = self
                    .early
                    .get(&dir)
                    .is_none_or(|e| (e.next_seq.wrapping_sub(seq) as i32) <= 0);
                Cow::Borrowed(payload)
            }
            None => {
                self.keep_early(dir, seq, payload, whole, now);
                Cow::Borrowed(payload)
            }
        };
        let mut end = seq.wrapping_add(payload.len() as u32);
        // The message still open at the end, one line or several (pretty-printed).
        let mut open = (whole && !again && !payload.is_empty())
            .then(|| super::deep::open_message(&data))
            .flatten();
        // Its rest already here, out of order: read joined, and what is open at the rest's end
        // waits instead.
        if open.is_some() && self.early.get(&dir).is_some_and(|e| e.next_seq == end) {
            let e = self.early.remove(&dir).expect("present");
            self.bytes -= e.bytes.len();
            end = end.wrapping_add(e.bytes.len() as u32);
            let mut joined = data.into_owned();
            joined.extend_from_slice(&e.bytes);
            open = super::deep::open_message(&joined);
            data = Cow::Owned(joined);
        }
        if let Some(tail) = open.and_then(|i| data.get(i..))
            && tail.len() <= MAX_TAIL
        {
            self.last_kept = tail.len();
            self.put(false, dir, end, tail, now);
        } else if matches!(data, Cow::Owned(_)) && whole {
            // A message completed by joining: an empty tail marks where it ended until the next
            // segment, so that a retransmission of its later part (from before there) is told
            // from a segment come early and is not kept.
            self.put(false, dir, end, &[], now);
        }
        data
    }

    /// The unfinished message the last [`Streams::join`] dropped because a segment was missed
    /// after it (`None` when it dropped none): it will never be whole, but its start may still
    /// say something (a new flow's login whose later segment came first, and so was never
    /// handed over, names its coin and often its agent before the cut).
    pub fn take_dropped(&mut self) -> Option<Vec<u8>> {
        (!self.dropped.is_empty()).then(|| std::mem::take(&mut self.dropped))
    }

    /// Bytes at the end of what the last [`Streams::join`] returned that wait as an unfinished
    /// message for the next segment (0 when none): read then, whole.
    pub fn last_kept(&self) -> usize {
        self.last_kept
    }

    /// Keeps `payload` (at `seq`) as the direction's early segment when it opens inside a message,
    /// holds a `}` and was captured whole.
    fn keep_early(&mut self, dir: Direction, seq: u32, payload: &[u8], whole: bool, at: Instant) {
        let inside = payload
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|&b| b != b'{');
        // Where a message could end (a banner, an HTTP head hold none).
        let ends = payload.contains(&b'}');
        if whole && inside && ends && payload.len() <= MAX_TAIL {
            self.put(true, dir, seq, payload, at);
        }
    }

    /// Bytes of the unfinished message kept for `dir` to be continued at `next_seq` (0 when
    /// none): whether a segment there continues a message.
    pub fn kept(&self, dir: &Direction, next_seq: u32) -> usize {
        self.tails
            .get(dir)
            .filter(|t| t.next_seq == next_seq)
            .map_or(0, |t| t.bytes.len())
    }

    /// The early segments (`early`) or the tails.
    fn kind(&mut self, early: bool) -> &mut HashMap<Direction, Tail> {
        if early {
            &mut self.early
        } else {
            &mut self.tails
        }
    }

    /// Puts `bytes` in the direction's place among the early segments (`early`) or the tails,
    /// in place of what was there, within [`MAX_BYTES`].
    fn put(&mut self, early: bool, dir: Direction, next_seq: u32, bytes: &[u8], at: Instant) {
        if let Some(old) = self.kind(early).remove(&dir) {
            self.bytes -= old.bytes.len();
        }
        if self.bytes + bytes.len() > MAX_BYTES {
            self.drop_oldest_half();
        }
        self.bytes += bytes.len();
        let bytes = bytes.to_vec();
        self.kind(early).insert(
            dir,
            Tail {
                next_seq,
                bytes,
                at,
            },
        );
    }

    fn drop_oldest_half(&mut self) {
        let mut times: Vec<Instant> = self
            .tails
            .values()
            .chain(self.early.values())
            .map(|t| t.at)
            .collect();
        times.sort_unstable();
        let Some(&cut) = times.get(times.len() / 2) else {
            return;
        };
        let before = self.tails.len() + self.early.len();
        self.drop_until(cut);
        self.evicted += (before - self.tails.len() - self.early.len()) as u64;
    }

    /// Drops every tail last extended, and every early segment kept, at or before `cut`.
    fn drop_until(&mut self, cut: Instant) {
        let bytes = &mut self.bytes;
        let mut keep = |t: &Tail| {
            let keep = t.at > cut;
            if !keep {
                *bytes -= t.bytes.len();
            }
            keep
        };
        self.tails.retain(|_, t| keep(t));
        self.early.retain(|_, t| keep(t));
    }

    /// Drops the tails not continued within [`MAX_AGE`] of `now`.
    pub fn expire(&mut self, now: Instant) {
        if let Some(cut) = now.checked_sub(MAX_AGE) {
            self.drop_until(cut);
        }
    }

    /// Bytes kept now.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn dir(port: u16) -> Direction {
        let (a, b) = (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2));
        (a.into(), port, b.into(), 3333)
    }

    #[test]
    fn a_message_over_three_segments_is_read_whole_once() {
        let mut s = Streams::default();
        let t = Instant::now();
        let msg = b"{\"id\":4,\"method\":\"mining.submit\",\"params\":[\"w\",\"1\",\"00\",\"ab\",\"cd\"]}\n";
        let (a, rest) = msg.split_at(1);
        let (b, c) = rest.split_at(30);
        // Sequence numbers as on the wire: 1000, 1001, 1031.
        assert_eq!(&*s.join(dir(1), 1000, a, true, t), a);
        assert_eq!(s.bytes(), 1);
        assert_eq!(&*s.join(dir(1), 1001, b, true, t), [a, b].concat());
        assert_eq!(s.bytes(), 31);
        assert_eq!(&*s.join(dir(1), 1031, c, true, t), msg);
        assert_eq!(s.bytes(), 0);
    }

    #[test]
    fn complete_messages_pass_and_only_the_unfinished_one_waits() {
        let mut s = Streams::default();
        let t = Instant::now();
        let seg = b"{\"id\":1,\"result\":true}\n{\"id\":2,\"meth";
        assert_eq!(&*s.join(dir(1), 7, seg, true, t), seg);
        // The tail is the 13 bytes of `{"id":2,"meth`.
        assert_eq!(s.bytes(), 13);
        let next = b"od\":\"submit\"}\n";
        assert_eq!(
            &*s.join(dir(1), 7 + seg.len() as u32, next, true, t),
            b"{\"id\":2,\"method\":\"submit\"}\n"
        );
        // Not JSON at the end, a segment cut by the capture, another direction: nothing kept.
        s.join(dir(1), 100, b"HTTP/1.1 200 OK\r\nX: y", true, t);
        s.join(dir(1), 200, b"{\"id\":3,\"meth", false, t);
        assert_eq!(s.bytes(), 0);
        s.join(dir(2), 1, b"{\"id\":3", true, t);
        assert_eq!(&*s.join(dir(1), 8, b"}\n", true, t), b"}\n");
    }

    /// A pretty-printed login split after a line end, the way a client writing a line at a time
    /// sends it: the whole message waits, not only its last line.
    #[test]
    fn a_pretty_printed_message_split_at_a_line_end_waits_whole() {
        let mut s = Streams::default();
        let t = Instant::now();
        let a = b"{\"id\":1,\"result\":true}\n{\n  \"id\": 2,\n  \"method\": \"submit\",\n";
        let b = b"  \"params\": {\"job_id\": \"1\", \"nonce\": \"00\"}\n}\n";
        assert_eq!(&*s.join(dir(1), 50, a, true, t), a);
        // The first message is 23 bytes with its line end; the tail is the second one, its 35
        // bytes over three lines (1 + 1, 2 + 8 + 1, 2 + 19 + 1).
        assert_eq!(a.len(), 58);
        assert_eq!(s.bytes(), 35);
        assert_eq!(
            &*s.join(dir(1), 50 + a.len() as u32, b, true, t),
            [&a[23..], &b[..]].concat()
        );
        assert_eq!(s.bytes(), 0);
    }

    #[test]
    fn retransmissions_wait_and_gaps_drop() {
        let mut s = Streams::default();
        let t = Instant::now();
        s.join(dir(1), 100, b"{\"a\":", true, t);
        // The same segment again (sequence 100, before the tail's end at 105): read alone, the
        // tail still waits and is not doubled.
        assert_eq!(&*s.join(dir(1), 100, b"{\"a\":", true, t), b"{\"a\":");
        assert_eq!(s.bytes(), 5);
        assert_eq!(&*s.join(dir(1), 105, b"1}\n", true, t), b"{\"a\":1}\n");
        // A gap: sequence 200 after a tail ending at 150 drops it. The segment after the gap opens
        // inside a message: it is kept early (its 3 bytes), should its message's start come later.
        s.join(dir(1), 145, b"{\"b\":", true, t);
        assert_eq!(s.take_dropped(), None);
        assert_eq!(&*s.join(dir(1), 200, b"2}\n", true, t), b"2}\n");
        assert_eq!(s.bytes(), 3);
        // The dropped tail is handed back once, for what its start says.
        assert_eq!(s.take_dropped().as_deref(), Some(&b"{\"b\":"[..]));
        assert_eq!(s.take_dropped(), None);
        // A retransmission (sequence 100, before where the tail waits) drops nothing.
        s.join(dir(2), 100, b"{\"c\":", true, t);
        s.join(dir(2), 100, b"{\"c\":", true, t);
        assert_eq!(s.take_dropped(), None);
    }

    /// A submit's two segments in reverse order (the first lost before the vantage point and sent
    /// again after the second): read joined when the first comes.
    #[test]
    fn a_message_whose_segments_come_in_reverse_order_is_read_joined() {
        let mut s = Streams::default();
        let t = Instant::now();
        let msg =
            b"{\"id\":4,\"method\":\"submit\",\"params\":{\"job_id\":\"1\",\"nonce\":\"00\"}}\n";
        let (a, b) = msg.split_at(20);
        // The second segment first, at 1020: it continues nothing; read alone, and kept early.
        assert_eq!(&*s.join(dir(1), 1020, b, true, t), b);
        assert_eq!(s.bytes(), b.len());
        // The first, at 1000: its unfinished message ends at 1020, where the early one begins.
        assert_eq!(&*s.join(dir(1), 1000, a, true, t), msg);
        assert_eq!((s.bytes(), s.last_kept()), (0, 0));

        // Both sent again now (before where the joined message ended, 1064): read alone, kept
        // neither early nor as a tail.
        assert_eq!(&*s.join(dir(1), 1020, b, true, t), b);
        assert_eq!(&*s.join(dir(1), 1000, a, true, t), a);
        assert_eq!(s.bytes(), 0);

        // On another flow, from 3000: the early segment (44 bytes of the 64-byte submit, with its
        // line end) ends with the start of the next message (11 bytes), which waits to be
        // continued at the early segment's end, 3020 + 55 = 3075.
        let next = b"{\"id\":5,\"me";
        let b2 = [b, next.as_slice()].concat();
        assert_eq!(b.len(), 44);
        s.join(dir(3), 3020, &b2, true, t);
        assert_eq!(
            &*s.join(dir(3), 3000, a, true, t),
            [msg.as_slice(), next].concat()
        );
        assert_eq!((s.bytes(), s.last_kept()), (11, 11));
        let rest = b"thod\":\"submit\"}\n";
        assert_eq!(
            &*s.join(dir(3), 3075, rest, true, t),
            [next.as_slice(), rest].concat()
        );
        assert_eq!(s.bytes(), 0);

        // An early segment that the next unfinished message does not reach stays kept; one that
        // holds no `}`, or opens a message, is not kept.
        s.join(dir(2), 2040, b"\"00\"}}\n", true, t);
        s.join(dir(2), 2000, b"{\"id\":6,\"method\":", true, t);
        assert_eq!(s.bytes(), 7 + 17);
        let mut s = Streams::default();
        s.join(dir(1), 1, b"\"params\":[", true, t);
        s.join(dir(1), 2, b"{\"id\":6", true, t);
        assert_eq!(s.bytes(), 7, "only the second, as an unfinished message");
    }

    #[test]
    fn bounded_by_size_age_and_total() {
        let mut s = Streams::default();
        let t = Instant::now();
        let big = [b"{".as_slice(), &vec![b'x'; MAX_TAIL]].concat();
        s.join(dir(1), 1, &big, true, t);
        assert_eq!(s.bytes(), 0, "longer than MAX_TAIL");
        // 512 tails of 16,384 bytes fill MAX_BYTES (8 MiB); the 513th drops the oldest half:
        // every tail as old as the 257th oldest or older, 257 of them, and 256 stay.
        let tail = [b"{".as_slice(), &vec![b'x'; MAX_TAIL - 1]].concat();
        for i in 0..513u16 {
            s.join(dir(i), 1, &tail, true, t + Duration::from_millis(i as u64));
        }
        assert_eq!(s.evicted, 257);
        assert_eq!(s.bytes(), (513 - 257) * MAX_TAIL);
        s.expire(t + Duration::from_millis(512) + MAX_AGE);
        assert_eq!(s.bytes(), 0);
    }
}
