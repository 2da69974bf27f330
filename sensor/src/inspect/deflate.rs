//! WebSocket messages compressed with permessage-deflate (RFC 7692), the default of browsers and of
//! the `websockets` library: a compressed message is a text frame with RSV1 set
//! (`sensor_common::websocket::DEFLATED_TEXT_FIN`), its payload raw DEFLATE ending in a sync flush
//! whose last four bytes (`00 00 ff ff`) are left off. With context takeover (the default) each
//! message's LZ77 window continues the previous message's of the same direction, so a direction is
//! read only from its first message on, every message in order: this keeps one inflater per
//! direction of a flow.
//!
//! - A message is inflated with its direction's inflater, after its four bytes are put back
//!   (RFC 7692, 7.2.2), also after a gap in the sequence numbers: what the program does not hand
//!   over between two compressed messages is mostly control frames (pings and pongs, which a
//!   session sends every few seconds) and uncompressed messages, neither part of the DEFLATE
//!   stream. When that fails (a compressed message missed before it: a back reference past what
//!   was inflated), it is tried alone, as the first message of a stream (what every message is
//!   under `*_no_context_takeover`, and what the first message seen of a direction is taken for):
//!   if that works (UTF-8 without a NUL byte: an inflater started mid-stream reads what it missed
//!   as zeros), the direction goes on from it; if not, the direction's state is lost (counted)
//!   and its next message is tried alone again. A message ending in a final block (BFINAL) ends
//!   the stream: the next one starts a new one. Under `*_no_context_takeover` the sender starts
//!   each message afresh, and a message that refers to nothing before it inflates the same
//!   after earlier history, so the negotiation (in the HTTP Upgrade, which the program does not
//!   hand over) need not be seen.
//!   Control frames (pings, pongs) and uncompressed messages sharing a segment with compressed
//!   ones are read past (the kernel hands over a segment whose control frame a compressed frame
//!   follows). A compressed message missed (a copy the sample ring dropped, one behind a frame
//!   this reader cannot read past) leaves the stream wrong: what its direction's later messages
//!   inflate to is not what was sent (no JSON, or a failure, which loses the direction). A
//!   retransmission (before the direction's next sequence number) is skipped.
//! - A message cut by its segment's end (longer than a segment, or than a copy's sample) cannot
//!   be inflated whole: the direction's state is lost. A message split over several frames (its
//!   first `DEFLATED_TEXT`, RSV1 without FIN, then continuations) is joined by
//!   `inspect::fragments` and inflated here once whole (`joined`), in its place in the stream.
//! - Bounded: at most [`MAX_MESSAGE_BYTES`] inflated a message (more: the direction is dropped),
//!   [`MAX_DIRECTIONS`] inflaters in all (the least recently used is evicted beyond, counted),
//!   each dropped after [`MAX_AGE`] unused, and a direction that inflated
//!   [`MAX_UNCONFIRMED_MESSAGES`] messages while its flow showed no Stratum is given up (a chat,
//!   a game): its flow's frames are skipped from then on (remembered for at most
//!   [`MAX_GIVEN_UP`] directions).

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use flate2::{Decompress, FlushDecompress, Status};
use sensor_common::websocket::{DEFLATED_TEXT_FIN, TEXT_FIN};

use super::{stream::Direction, websocket::control_at};

/// Inflated bytes of one message at most (a Stratum message is under 3 KB; a job with a long
/// blob a few KB): a message that inflates to more drops its direction (a deflate bomb costs
/// this much once).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Inflaters kept over all flows; each holds DEFLATE's 32 KiB window and its tables, about
/// [`INFLATER_BYTES`].
pub const MAX_DIRECTIONS: usize = 256;
/// Kernel-independent estimate of one inflater's memory: the 32 KiB window and miniz_oxide's
/// decoder tables and state (about 11 KiB).
pub const INFLATER_BYTES: usize = 43 * 1024;
/// An inflater unused for this long is dropped (a mining session sends a share or receives a job
/// within minutes).
pub const MAX_AGE: Duration = Duration::from_secs(600);
/// Messages a direction inflates before its flow must have shown a Stratum message: a login is a
/// session's first message and a job the pool's first or second.
pub const MAX_UNCONFIRMED_MESSAGES: u32 = 8;
/// Given-up directions remembered (emptied when full).
pub const MAX_GIVEN_UP: usize = 65_536;

/// The RFC 7692 tail put back after each message.
const SYNC_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

struct Inflater {
    inflate: Decompress,
    /// The sequence number that continues this direction (its next frame).
    next_seq: u32,
    used: Instant,
    messages: u32,
    /// Whether the flow showed Stratum (see `confirm`).
    confirmed: bool,
}

impl Inflater {
    fn fresh(now: Instant) -> Self {
        Self {
            inflate: Decompress::new(false),
            next_seq: 0,
            used: now,
            messages: 0,
            confirmed: false,
        }
    }
}

/// What became of one compressed frame.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Inflated; the stream goes on (`false`) or ended with a final block (`true`).
    Inflated(Vec<u8>, bool),
    Failed,
}

#[derive(Default)]
pub struct Inflaters {
    by_dir: HashMap<Direction, Inflater>,
    given_up: HashSet<Direction>,
    /// Inflaters dropped to stay within [`MAX_DIRECTIONS`].
    pub evicted: u64,
    /// Directions whose stream could not be continued (a missed or cut message, a bomb).
    pub lost: u64,
}

/// Whether `payload` holds a compressed WebSocket text frame first, or behind control frames
/// (pongs, pings) and uncompressed messages whole in the segment.
pub fn compressed(payload: &[u8]) -> bool {
    let mut at = 0;
    while at < payload.len() {
        if payload[at] == DEFLATED_TEXT_FIN {
            return true;
        }
        if let Some(n) = control_at(payload, at) {
            at += n;
            continue;
        }
        match super::websocket::frame_at(payload, at) {
            Some(h) if payload[at] == TEXT_FIN && !h.compressed => {
                match (at + h.len).checked_add(h.payload as usize) {
                    Some(end) if end <= payload.len() => at = end,
                    _ => return false,
                }
            }
            _ => return false,
        }
    }
    false
}

impl Inflaters {
    /// The messages the compressed frames of a segment of `dir` (sequence number `seq`, captured
    /// `whole`) carry, inflated, one a line; `None` when nothing could be read.
    pub fn messages(
        &mut self,
        dir: Direction,
        seq: u32,
        payload: &[u8],
        whole: bool,
        now: Instant,
    ) -> Option<Vec<u8>> {
        if self.given_up.contains(&dir) {
            return None;
        }
        let mut out = Vec::new();
        let mut at = 0;
        while at < payload.len() {
            // Control frames (pings, pongs) are no part of a message: skipped.
            if let Some(n) = control_at(payload, at) {
                at += n;
                continue;
            }
            let Some(h) = super::websocket::frame_at(payload, at) else {
                break;
            };
            let start = at + h.len;
            let end = (start as u64).saturating_add(h.payload);
            let fin = payload[at] & 0x80 != 0;
            let unmasked = |end: usize| -> Vec<u8> {
                payload[start..end]
                    .iter()
                    .enumerate()
                    .map(|(i, b)| b ^ h.key[i % 4])
                    .collect()
            };
            // An uncompressed message whole in the segment is no part of the DEFLATE stream
            // (RFC 7692, 6): its text as it is (none that is not text).
            if payload[at] == TEXT_FIN && end <= payload.len() as u64 {
                if let Outcome::Inflated(m, _) = text(unmasked(end as usize), false) {
                    out.extend_from_slice(&m);
                    out.push(b'\n');
                }
                at = end as usize;
                continue;
            }
            // A message this reader cannot have whole: the stream is broken from here on.
            if !h.compressed || !fin || end > payload.len() as u64 || !whole {
                self.lose(&dir);
                break;
            }
            let end = end as usize;
            let mut data = unmasked(end);
            data.extend_from_slice(&SYNC_TAIL);
            let span = (seq.wrapping_add(at as u32), seq.wrapping_add(end as u32));
            if let Some(m) = self.inflate(dir, span, &data, now) {
                out.extend_from_slice(&m);
                out.push(b'\n');
            }
            at = end;
        }
        (!out.is_empty()).then_some(out)
    }

    /// A compressed message of `dir` joined from its fragments (`inspect::fragments`), whose
    /// frames span `span`: inflated after the direction's earlier messages, as one in a frame.
    pub fn joined(
        &mut self,
        dir: Direction,
        span: (u32, u32),
        mut data: Vec<u8>,
        now: Instant,
    ) -> Option<Vec<u8>> {
        if self.given_up.contains(&dir) {
            return None;
        }
        data.extend_from_slice(&SYNC_TAIL);
        self.inflate(dir, span, &data, now)
    }

    /// Inflates one message (its payload with the sync tail) of `dir` whose frame runs from
    /// sequence number `seq` to `end`.
    fn inflate(
        &mut self,
        dir: Direction,
        (seq, end): (u32, u32),
        data: &[u8],
        now: Instant,
    ) -> Option<Vec<u8>> {
        let had = match self.by_dir.get(&dir) {
            // A retransmission of a message already inflated: skipped, the stream goes on.
            Some(i) if (seq.wrapping_sub(i.next_seq) as i32) < 0 => return None,
            Some(_) => true,
            None => false,
        };
        let continued = self.by_dir.get_mut(&dir).map(|i| run(&mut i.inflate, data));
        let outcome = match continued {
            Some(Outcome::Inflated(m, end)) => Outcome::Inflated(m, end),
            // No state (a first message, or one after a loss), or a failure: alone.
            _ => {
                if had {
                    self.lost += 1;
                }
                let mut fresh = Decompress::new(false);
                let o = run(&mut fresh, data);
                if matches!(o, Outcome::Inflated(..)) {
                    if !self.by_dir.contains_key(&dir) && self.by_dir.len() >= MAX_DIRECTIONS {
                        self.evict_oldest();
                    }
                    let i = self
                        .by_dir
                        .entry(dir)
                        .or_insert_with(|| Inflater::fresh(now));
                    i.inflate = fresh;
                } else {
                    self.by_dir.remove(&dir);
                }
                o
            }
        };
        let Outcome::Inflated(m, ended) = outcome else {
            return None;
        };
        let i = self.by_dir.get_mut(&dir)?;
        i.next_seq = end;
        i.used = now;
        i.messages += 1;
        if ended {
            i.inflate.reset(false);
        }
        if !i.confirmed && i.messages > MAX_UNCONFIRMED_MESSAGES {
            self.by_dir.remove(&dir);
            if self.given_up.len() >= MAX_GIVEN_UP {
                self.given_up.clear();
            }
            self.given_up.insert(dir);
            return None;
        }
        Some(m)
    }

    /// The flow of `dir` showed Stratum: both its directions inflate on without a bound on
    /// their messages.
    pub fn confirm(&mut self, dir: Direction) {
        let back = (dir.2, dir.3, dir.0, dir.1);
        for d in [dir, back] {
            if let Some(i) = self.by_dir.get_mut(&d) {
                i.confirmed = true;
            }
        }
    }

    fn lose(&mut self, dir: &Direction) {
        if self.by_dir.remove(dir).is_some() {
            self.lost += 1;
        }
    }

    fn evict_oldest(&mut self) {
        if super::stream::evict_oldest(&mut self.by_dir, |i| i.used) {
            self.evicted += 1;
        }
    }

    /// Drops the inflaters unused for [`MAX_AGE`] at `now`.
    pub fn expire(&mut self, now: Instant) {
        self.by_dir
            .retain(|_, i| now.saturating_duration_since(i.used) <= MAX_AGE);
    }

    /// Inflaters held now.
    pub fn held(&self) -> usize {
        self.by_dir.len()
    }

    /// Their memory, estimated (see [`INFLATER_BYTES`]).
    pub fn bytes(&self) -> usize {
        self.by_dir.len() * INFLATER_BYTES
    }
}

/// Inflates `data` with `d`, at most [`MAX_MESSAGE_BYTES`]; `Failed` on a DEFLATE error or when
/// the message inflates to more.
fn run(d: &mut Decompress, data: &[u8]) -> Outcome {
    let mut out = Vec::with_capacity((data.len() * 4).min(MAX_MESSAGE_BYTES));
    let start_in = d.total_in();
    loop {
        let read = (d.total_in() - start_in) as usize;
        if out.len() == out.capacity() {
            if out.len() >= MAX_MESSAGE_BYTES {
                return Outcome::Failed;
            }
            out.reserve((out.len() * 2).min(MAX_MESSAGE_BYTES) - out.len() + 1);
        }
        let before = (d.total_in(), d.total_out());
        let status = match d.decompress_vec(&data[read..], &mut out, FlushDecompress::Sync) {
            Ok(s) => s,
            Err(_) => return Outcome::Failed,
        };
        if out.len() > MAX_MESSAGE_BYTES {
            return Outcome::Failed;
        }
        let read = (d.total_in() - start_in) as usize;
        match status {
            Status::StreamEnd => return text(out, true),
            _ if read == data.len() && out.len() < out.capacity() => return text(out, false),
            // No progress with room left: the input is cut short.
            _ if (d.total_in(), d.total_out()) == before && out.len() < out.capacity() => {
                return Outcome::Failed;
            }
            _ => {}
        }
    }
}

/// A text frame's message is UTF-8 (RFC 6455, 5.6), and JSON holds no NUL byte: an inflater
/// started in the middle of a stream reads the earlier messages it refers to as zeros (DEFLATE's
/// window starts zeroed), which this refuses.
fn text(out: Vec<u8>, ended: bool) -> Outcome {
    if out.contains(&0) || std::str::from_utf8(&out).is_err() {
        return Outcome::Failed;
    }
    Outcome::Inflated(out, ended)
}

#[cfg(test)]
mod tests;
