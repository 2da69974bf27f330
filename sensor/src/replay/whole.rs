//! Frames longer than a deep-inspection copy (`SAMPLE_BYTES`, a standard-MTU frame): segments a
//! capturing host's GRO merged or its TSO had not yet cut, and jumbo frames. Live, a link carries
//! no such frame (XDP runs before GRO, and a segment on the wire is at most the MSS); a capture
//! made on an end host is full of them, and a burst of shares (a proxy's upstream) merged into
//! one 2,896-byte segment lost every share past its first 1,536 bytes. The kernel program copies
//! what it copies of a candidate; replay has the capture's own record, so it keeps every frame
//! longer than the copy while the job it is in runs, and deep inspection reads the record whole
//! in place of the copy.
//!
//! A sample names no packet: it is matched by what it does carry (file, capture time, length on
//! the wire) and by its copied bytes, which must begin the kept record. Frames alike in all of
//! these are alike for deep inspection too. Bounded by the jobs in flight: a job's frames are
//! forgotten once it has run and the rings have been read.

use std::collections::HashMap;

use sensor_common::SAMPLE_BYTES;

/// Most bytes kept of a frame: an IP packet's largest (65,535 bytes) after link headers of up to
/// 64 bytes. A record longer still (a host's "BIG TCP") is read up to that.
const KEEP_MAX: usize = 65_535 + 64;

/// What a sample carries of its frame: ingress (the file's stand-in), capture time in ns, length
/// on the wire.
type Key = (u32, u64, u32);

#[derive(Default)]
pub(super) struct Whole {
    frames: HashMap<Key, Vec<(u64, Vec<u8>)>>,
    next: u64,
}

impl Whole {
    /// Whether `data`, a frame of `len` bytes in the capture, is longer than the kernel copies.
    pub(super) fn wanted(len: usize) -> bool {
        len > SAMPLE_BYTES
    }

    /// Keeps `data` until `forget` is called with the returned id.
    pub(super) fn keep(&mut self, ifindex: u32, ts_ns: u64, wire_len: u32, data: &[u8]) -> u64 {
        self.next += 1;
        let kept = data[..data.len().min(KEEP_MAX)].to_vec();
        self.frames
            .entry((ifindex, ts_ns, wire_len))
            .or_default()
            .push((self.next, kept));
        self.next
    }

    /// The kept record of the frame a sample copied `copy` of, taken out of the table: `None`
    /// when no kept frame matches (the frame fitted the copy).
    pub(super) fn take(
        &mut self,
        ifindex: u32,
        ts_ns: u64,
        frame_len: u32,
        copy: &[u8],
    ) -> Option<Vec<u8>> {
        if copy.len() < SAMPLE_BYTES {
            return None;
        }
        let key = (ifindex, ts_ns, frame_len);
        let alike = self.frames.get_mut(&key)?;
        let i = alike.iter().position(|(_, f)| f.starts_with(copy))?;
        let (_, frame) = alike.remove(i);
        if alike.is_empty() {
            self.frames.remove(&key);
        }
        Some(frame)
    }

    /// Drops the frames kept under `ids` that no sample took (frames the program did not copy).
    pub(super) fn forget(&mut self, ids: &[u64]) {
        if ids.is_empty() {
            return;
        }
        self.frames.retain(|_, alike| {
            alike.retain(|(id, _)| !ids.contains(id));
            !alike.is_empty()
        });
    }

    /// Frames kept now.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.frames.values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_takes_the_kept_frame_its_copy_begins_and_forget_drops_the_rest() {
        let mut w = Whole::default();
        let a: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let mut b = a.clone();
        b[100] ^= 0xff;
        // Same file, time and length: told apart by their first bytes.
        let ia = w.keep(1, 7, 3000, &a);
        let ib = w.keep(1, 7, 3000, &b);
        assert_eq!(w.len(), 2);
        assert_eq!(w.take(1, 7, 3000, &b[..SAMPLE_BYTES]), Some(b.clone()));
        // Taken once.
        assert_eq!(w.take(1, 7, 3000, &b[..SAMPLE_BYTES]), None);
        // Another file, time or length: not this frame.
        assert_eq!(w.take(2, 7, 3000, &a[..SAMPLE_BYTES]), None);
        assert_eq!(w.take(1, 8, 3000, &a[..SAMPLE_BYTES]), None);
        assert_eq!(w.take(1, 7, 2999, &a[..SAMPLE_BYTES]), None);
        // A copy shorter than SAMPLE_BYTES is its frame whole.
        assert_eq!(w.take(1, 7, 3000, &a[..100]), None);
        w.forget(&[ia, ib]);
        assert_eq!(w.len(), 0);
        assert!(w.frames.is_empty());
    }

    #[test]
    fn a_record_longer_than_an_ip_packet_is_kept_up_to_one() {
        let mut w = Whole::default();
        let big = vec![b'x'; 100_000];
        w.keep(1, 1, 100_000, &big);
        let got = w.take(1, 1, 100_000, &big[..SAMPLE_BYTES]).unwrap();
        assert_eq!(got.len(), 65_599);
        assert!(Whole::wanted(SAMPLE_BYTES + 1) && !Whole::wanted(SAMPLE_BYTES));
    }
}
