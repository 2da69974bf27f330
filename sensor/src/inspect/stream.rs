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
//! the tail, which can no longer be completed.

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
        let data = match self.tails.get(&dir) {
            Some(t) if t.next_seq == seq => {
                let t = self.tails.remove(&dir).expect("present");
                self.bytes -= t.bytes.len();
                let mut joined = t.bytes;
                joined.extend_from_slice(payload);
                Cow::Owned(joined)
            }
            Some(t) => {
                // After the tail's end: a segment was missed and the message cannot be completed.
                // Before it: a retransmission, read alone; the tail still waits.
                if (seq.wrapping_sub(t.next_seq) as i32) > 0 {
                    self.drop_tail(&dir);
                }
                Cow::Borrowed(payload)
            }
            None => Cow::Borrowed(payload),
        };
        // The message still open at the end, one line or several (pretty-printed).
        let open = (whole && !payload.is_empty())
            .then(|| super::deep::open_message(&data))
            .flatten();
        if let Some(tail) = open.and_then(|i| data.get(i..))
            && tail.len() <= MAX_TAIL
        {
            self.keep(dir, seq.wrapping_add(payload.len() as u32), tail, now);
        }
        data
    }

    /// Bytes of the unfinished message kept for `dir` to be continued at `next_seq` (0 when
    /// none): what `join` just kept at the end of the segment ending there.
    pub fn kept(&self, dir: &Direction, next_seq: u32) -> usize {
        self.tails
            .get(dir)
            .filter(|t| t.next_seq == next_seq)
            .map_or(0, |t| t.bytes.len())
    }

    fn keep(&mut self, dir: Direction, next_seq: u32, tail: &[u8], now: Instant) {
        self.drop_tail(&dir);
        if self.bytes + tail.len() > MAX_BYTES {
            self.drop_oldest_half();
        }
        self.bytes += tail.len();
        self.tails.insert(
            dir,
            Tail {
                next_seq,
                bytes: tail.to_vec(),
                at: now,
            },
        );
    }

    fn drop_tail(&mut self, dir: &Direction) {
        if let Some(t) = self.tails.remove(dir) {
            self.bytes -= t.bytes.len();
        }
    }

    fn drop_oldest_half(&mut self) {
        let mut times: Vec<Instant> = self.tails.values().map(|t| t.at).collect();
        times.sort_unstable();
        let Some(&cut) = times.get(times.len() / 2) else {
            return;
        };
        let before = self.tails.len();
        self.drop_until(cut);
        self.evicted += (before - self.tails.len()) as u64;
    }

    /// Drops every tail last extended at or before `cut`.
    fn drop_until(&mut self, cut: Instant) {
        let bytes = &mut self.bytes;
        self.tails.retain(|_, t| {
            let keep = t.at > cut;
            if !keep {
                *bytes -= t.bytes.len();
            }
            keep
        });
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
        // A gap: sequence 200 after a tail ending at 150 drops it.
        s.join(dir(1), 145, b"{\"b\":", true, t);
        assert_eq!(&*s.join(dir(1), 200, b"2}\n", true, t), b"2}\n");
        assert_eq!(s.bytes(), 0);
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
