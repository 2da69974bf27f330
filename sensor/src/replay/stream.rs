//! The byte streams under the capture parser: the bytes taken from a file counted for progress,
//! gzip decompressed with its failures named as such, and reads handed out in cache-sized chunks.

use std::{
    io::{self, BufRead, Read},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use flate2::bufread::MultiGzDecoder;
use pcap_file::PcapError;

/// Counts the bytes taken from a file (compressed bytes for gzip) so progress can be shown
/// against the files' sizes: the packet count is not known until the files have been read.
pub(super) struct Counted<R> {
    pub(super) inner: R,
    pub(super) total: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.total.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Decompression fails mid-file when a gzip file is cut or damaged; the error is marked so that
/// the message names gzip as the cause (pcap-file's own message for an I/O error does not show it).
pub(super) struct Gunzip<R>(pub(super) MultiGzDecoder<R>);

#[derive(Debug)]
struct GzipCorrupt(io::Error);

impl std::fmt::Display for GzipCorrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "gzip data is corrupt: {}", self.0)
    }
}

impl std::error::Error for GzipCorrupt {}

impl<R: BufRead> Read for Gunzip<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0
            .read(buf)
            .map_err(|e| io::Error::new(e.kind(), GzipCorrupt(e)))
    }
}

/// Hands out at most `READ_CHUNK` bytes a read. pcap-file refills its 8 MB buffer with one read
/// each time it runs low: 8 MB at once is written to memory past the CPU's caches and read back
/// from there by the parser, where a quarter of a megabyte stays in cache (BENCHMARKS.md,
/// "Measurements behind replay's code").
pub(super) struct Chunked<R>(pub(super) R);

const READ_CHUNK: usize = 256 * 1024;

impl<R: Read> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(READ_CHUNK);
        self.0.read(&mut buf[..n])
    }
}

/// pcap-file's message, or the gzip one when decompression is what failed.
pub(super) fn describe(e: &PcapError) -> String {
    match e {
        PcapError::IoError(io) if io.get_ref().is_some_and(|i| i.is::<GzipCorrupt>()) => {
            io.to_string()
        }
        e => e.to_string(),
    }
}
