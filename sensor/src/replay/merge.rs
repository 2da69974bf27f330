//! Reading ahead and merging: each capture is read on a thread of its own, and the files' frames
//! are handed out in timestamp order, one pending frame per file.

use std::{cmp::Reverse, collections::BinaryHeap, time::Duration};

use anyhow::{Context as _, Result, anyhow};

use super::{
    reader::{CaptureReader, Frame},
    results::FileReport,
};

/// A capture read on its own thread, handed over in chunks of frames: reading, decompressing and
/// parsing run beside the replay, not in turn with it. At most `READ_AHEAD` chunks wait.
pub(super) struct ReadAhead {
    chunks: std::sync::mpsc::Receiver<Chunk>,
    frames: std::vec::IntoIter<(u64, Frame)>,
    /// Set when the thread is done: its report, and the error that stopped it, if any.
    end: Option<Result<(), anyhow::Error>>,
}

enum Chunk {
    /// Frames with their packet numbers in the file.
    Frames(Vec<(u64, Frame)>),
    /// The file is done: the reader's report (problems, skipped records) and how it ended.
    End(FileReport, Result<(), anyhow::Error>),
}

const CHUNK_FRAMES: usize = 512;
const READ_AHEAD: usize = 4;

impl ReadAhead {
    pub(super) fn spawn(mut reader: CaptureReader<'static>) -> Result<Self> {
        let (tx, chunks) = std::sync::mpsc::sync_channel(READ_AHEAD);
        std::thread::Builder::new()
            .name("replay-read".into())
            .spawn(move || {
                let mut report = FileReport::default();
                loop {
                    let mut frames = Vec::with_capacity(CHUNK_FRAMES);
                    let ended = loop {
                        match reader.next_frame(&mut report) {
                            Ok(Some(frame)) => {
                                frames.push((report.packets, frame));
                                if frames.len() == CHUNK_FRAMES {
                                    break None;
                                }
                            }
                            Ok(None) => break Some(Ok(())),
                            Err(e) => break Some(Err(e)),
                        }
                    };
                    if !frames.is_empty() && tx.send(Chunk::Frames(frames)).is_err() {
                        return;
                    }
                    if let Some(result) = ended {
                        let _ = tx.send(Chunk::End(report, result));
                        return;
                    }
                }
            })
            .context("starting a capture reader thread")?;
        Ok(Self {
            chunks,
            frames: Vec::new().into_iter(),
            end: None,
        })
    }

    /// The next frame, as `CaptureReader::next_frame`: the file's packet count, problems and
    /// skipped records go into `report` (problems and skipped records once the file is done).
    fn next_frame(&mut self, report: &mut FileReport) -> Result<Option<Frame>> {
        loop {
            if let Some((n, frame)) = self.frames.next() {
                report.packets = n;
                return Ok(Some(frame));
            }
            if let Some(end) = &self.end {
                return match end {
                    Ok(()) => Ok(None),
                    Err(e) => Err(anyhow!("{e:#}")),
                };
            }
            match self.chunks.recv() {
                Ok(Chunk::Frames(frames)) => self.frames = frames.into_iter(),
                Ok(Chunk::End(r, result)) => {
                    report.packets = r.packets;
                    report.skipped += r.skipped;
                    report.problems.extend(r.problems);
                    self.end = Some(result);
                }
                Err(_) => self.end = Some(Err(anyhow!("the capture reader thread stopped"))),
            }
        }
    }
}

/// Several captures merged by timestamp, ties broken by file order and then record order, with
/// one pending frame per file, so memory does not depend on the captures' sizes.
///
/// A file that is itself out of order is replayed in its own order: its frames join the merge one
/// at a time, so a frame older than its predecessor still comes after it (and after whatever
/// other files' frames were replayed in between), and it counts in the bucket then current.
pub(super) struct Merge {
    readers: Vec<Option<ReadAhead>>,
    pending: Vec<Option<Frame>>,
    /// (timestamp, file index, packet number in the file), smallest first.
    heap: BinaryHeap<Reverse<(Duration, usize, u64)>>,
    /// The file whose frame was handed out last: refilled only on the next call, so that a file's
    /// problems are reported after its last good packet was replayed and no second frame of it is
    /// held meanwhile.
    refill: Option<usize>,
}

impl Merge {
    /// Reads the first frame of every file: a file that cannot be read at all is an error before
    /// anything is replayed.
    pub(super) fn new(readers: Vec<ReadAhead>, reports: &mut [FileReport]) -> Result<Self> {
        let mut merge = Self {
            pending: readers.iter().map(|_| None).collect(),
            heap: BinaryHeap::with_capacity(readers.len()),
            readers: readers.into_iter().map(Some).collect(),
            refill: None,
        };
        for f in 0..merge.readers.len() {
            merge.pull(f, reports)?;
        }
        Ok(merge)
    }

    fn pull(&mut self, f: usize, reports: &mut [FileReport]) -> Result<()> {
        let Some(reader) = &mut self.readers[f] else {
            return Ok(());
        };
        match reader.next_frame(&mut reports[f])? {
            Some(frame) => {
                self.heap.push(Reverse((frame.ts, f, reports[f].packets)));
                self.pending[f] = Some(frame);
            }
            // Frees the reader's buffers as soon as its file is done.
            None => self.readers[f] = None,
        }
        Ok(())
    }

    /// The next frame in replay order, with its file index and packet number in that file.
    pub(super) fn next(
        &mut self,
        reports: &mut [FileReport],
    ) -> Result<Option<(usize, u64, Frame)>> {
        if let Some(f) = self.refill.take() {
            self.pull(f, reports)?;
        }
        let Some(Reverse((_, f, n))) = self.heap.pop() else {
            return Ok(None);
        };
        self.refill = Some(f);
        let frame = self.pending[f]
            .take()
            .expect("one pending frame per heap entry");
        Ok(Some((f, n, frame)))
    }
}
