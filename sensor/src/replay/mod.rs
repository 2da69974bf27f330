//! `mining-sensor replay`: runs the very XDP object of `run` over capture files through
//! BPF_PROG_TEST_RUN, packet by packet, and reports what `run` would have counted: a summary on
//! the terminal, OpenMetrics with a timestamp at every bucket boundary (for `promtool tsdb
//! create-blocks-from openmetrics`), and JSON.
//!
//! Time comes from the capture: buckets follow packet timestamps. Counting goes through the same
//! `Drainer` as the live agent, so replay and live counts cannot diverge.

pub mod report;

use std::{
    cell::Cell,
    cmp::Reverse,
    collections::{BTreeMap, BinaryHeap},
    fmt::Write as _,
    fs::File,
    io::{self, BufRead, BufReader, Cursor, Read},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::{Context as _, Result, anyhow, bail};
use flate2::bufread::MultiGzDecoder;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use pcap_file::{
    DataLink, PcapError,
    pcap::PcapReader,
    pcapng::{Block, PcapNgReader, blocks::interface_description::InterfaceDescriptionOption},
};
use prometheus::proto::MetricFamily;
use serde::Serialize;
use tracing::warn;

use sensor_common::{
    REPLAY_BAD_HEADER, REPLAY_BAD_LAYOUT, REPLAY_BATCH_MAX, REPLAY_DONE, REPLAY_TAIL_CALL_FAILED,
    ReplayHeader,
};

use crate::{
    bpf::{BatchRunner, Kernel},
    config::Config,
    metrics::{Drainer, Labels, Metrics, names},
};

pub struct ReplayOptions {
    pub config: Option<PathBuf>,
    pub files: Vec<PathBuf>,
    pub openmetrics: Option<PathBuf>,
    pub json: Option<PathBuf>,
    pub report: Option<PathBuf>,
    pub bucket: Duration,
    pub strict: bool,
}

/// The counters replay reports, as exported by `run`.
const REPORTED: [&str; 6] = [
    names::PACKETS,
    names::BYTES,
    names::STRATUM_PACKETS,
    names::STRATUM_FLOWS,
    names::SUSPECT_FLOWS,
    names::MINER_LOGINS,
];

/// One packet of a capture, normalised to an Ethernet frame.
pub struct Frame {
    pub ts: Duration,
    pub data: Vec<u8>,
    /// Its length on the wire (more than `data.len()` when the capture cut the record short).
    pub wire_len: usize,
}

#[derive(Debug, Default, Serialize)]
pub struct FileReport {
    pub file: String,
    pub packets: u64,
    pub skipped: u64,
    pub problems: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Sample {
    pub metric: String,
    pub labels: BTreeMap<String, String>,
    pub value: u64,
}

#[derive(Debug, Serialize)]
pub struct Bucket {
    /// Unix seconds of the bucket's end: the samples are the counters' values at that moment.
    pub end: f64,
    pub samples: Vec<Sample>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub files: Vec<FileReport>,
    pub bucket_seconds: f64,
    pub first_packet: Option<f64>,
    pub last_packet: Option<f64>,
    pub buckets: Vec<Bucket>,
    /// Final values.
    pub totals: Vec<Sample>,
    /// The flow events (`stratum_flow`, `suspect_flow`) and deep inspection's `miner_login` lines
    /// `run` would have written, in packet order, stamped with the capture's time.
    pub events: Vec<serde_json::Value>,
}

/// Link-layer handling: which capture link types become which Ethernet frame.
/// The frame and its length on the wire: a record the capture cut short (its snap length) keeps
/// its original length, which the program checks IP lengths against, so the packet and its IP
/// bytes count as they did on the wire; only what the capture kept is inspected.
fn to_ethernet(
    link: DataLink,
    data: &[u8],
    orig_len: u32,
) -> Result<(Vec<u8>, usize), RecordError> {
    let frame = link_to_ethernet(link, data)?;
    let wire_len = frame.len() + (orig_len as usize).saturating_sub(data.len());
    Ok((frame, wire_len))
}

/// Why a record cannot be replayed; `link_unsupported` when it is the file's link type, not the
/// record, so that the whole file is reported once.
struct RecordError {
    msg: String,
    link_unsupported: bool,
}

impl From<String> for RecordError {
    fn from(msg: String) -> Self {
        Self {
            msg,
            link_unsupported: false,
        }
    }
}

impl From<&str> for RecordError {
    fn from(msg: &str) -> Self {
        msg.to_string().into()
    }
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}

fn link_to_ethernet(link: DataLink, data: &[u8]) -> Result<Vec<u8>, RecordError> {
    const MACS: [u8; 12] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    let with_ethertype = |ethertype: u16, payload: &[u8]| {
        let mut f = Vec::with_capacity(14 + payload.len());
        f.extend_from_slice(&MACS);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        f
    };
    let by_version = |ip: &[u8]| match ip.first().map(|b| b >> 4) {
        Some(4) => Ok(with_ethertype(0x0800, ip)),
        Some(6) => Ok(with_ethertype(0x86dd, ip)),
        _ => Err("raw IP record with neither IPv4 nor IPv6 version".into()),
    };
    match link {
        // What no link delivers: the program cannot even be run over it.
        DataLink::ETHERNET if data.len() < 14 => Err(format!(
            "Ethernet record of {} bytes, shorter than its 14-byte header; skipped",
            data.len()
        )
        .into()),
        DataLink::ETHERNET => Ok(data.to_vec()),
        DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => by_version(data),
        // Linux cooked capture v1: 16-byte header, protocol in the last two bytes.
        DataLink::LINUX_SLL => {
            if data.len() < 16 {
                return Err("Linux cooked (SLL) record shorter than its 16-byte header".into());
            }
            Ok(with_ethertype(
                u16::from_be_bytes([data[14], data[15]]),
                &data[16..],
            ))
        }
        // Linux cooked capture v2: 20-byte header, protocol first.
        DataLink::LINUX_SLL2 => {
            if data.len() < 20 {
                return Err("Linux cooked (SLL2) record shorter than its 20-byte header".into());
            }
            Ok(with_ethertype(
                u16::from_be_bytes([data[0], data[1]]),
                &data[20..],
            ))
        }
        // BSD loopback: 4-byte address family, then IP.
        DataLink::NULL | DataLink::LOOP => {
            if data.len() < 4 {
                return Err("loopback record shorter than its 4-byte header".into());
            }
            by_version(&data[4..])
        }
        other => Err(RecordError {
            msg: format!(
                "link type {other:?} is not supported (Ethernet, VLAN, Linux cooked SLL/SLL2, raw IP and loopback are)"
            ),
            link_unsupported: true,
        }),
    }
}

/// Counts the bytes taken from a file (compressed bytes for gzip) so progress can be shown
/// against the files' sizes: the packet count is not known until the files have been read.
struct Counted<R> {
    inner: R,
    total: Arc<AtomicU64>,
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
struct Gunzip<R>(MultiGzDecoder<R>);

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
/// from there by the parser, where a quarter of a megabyte stays in cache (the capture reader
/// thread spent a fifth of its time in the kernel's copy before).
struct Chunked<R>(R);

const READ_CHUNK: usize = 256 * 1024;

impl<R: Read> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(READ_CHUNK);
        self.0.read(&mut buf[..n])
    }
}

/// pcap-file's message, or the gzip one when decompression is what failed.
fn describe(e: &PcapError) -> String {
    match e {
        PcapError::IoError(io) if io.get_ref().is_some_and(|i| i.is::<GzipCorrupt>()) => {
            io.to_string()
        }
        e => e.to_string(),
    }
}

/// The decompressed stream, its first bytes (read to tell pcap from pcapng) put back in front.
type Stream<'a> = io::Chain<Cursor<Vec<u8>>, Box<dyn Read + Send + 'a>>;

enum Format<'a> {
    Pcap(PcapReader<Stream<'a>>),
    /// With each interface's link type and timestamp units per second (`if_tsresol`, default
    /// microseconds), as declared so far in the current section.
    PcapNg(PcapNgReader<Stream<'a>>, Vec<(DataLink, u128)>),
}

/// One capture, read a frame at a time, so that memory does not grow with the file: what is held
/// is the readers' buffers (pcap-file's is 8 MB, the largest record it accepts) and nothing more.
struct CaptureReader<'a> {
    name: String,
    strict: bool,
    format: Format<'a>,
    /// Records (pcap) or blocks after the section header (pcapng) read so far, for messages.
    record: u64,
    last_ts: Duration,
    done: bool,
}

impl<'a> CaptureReader<'a> {
    /// Reads just enough of `input` to know its format: gzip-compressed or not, pcap or pcapng.
    /// `name` names the capture in messages; with `strict` the first problem is an error.
    fn open(name: String, mut input: impl BufRead + Send + 'a, strict: bool) -> Result<Self> {
        let gzip = input
            .fill_buf()
            .map_err(|e| anyhow!("{name}: cannot read: {e}"))?
            .starts_with(&[0x1f, 0x8b]);
        let mut stream: Box<dyn Read + Send + 'a> = if gzip {
            Box::new(Gunzip(MultiGzDecoder::new(input)))
        } else {
            Box::new(input)
        };
        let mut head = Vec::with_capacity(4);
        stream
            .by_ref()
            .take(4)
            .read_to_end(&mut head)
            .map_err(|e| {
                if gzip {
                    anyhow!("{name}: {e}")
                } else {
                    anyhow!("{name}: cannot read: {e}")
                }
            })?;
        let magic = <[u8; 4]>::try_from(head.as_slice())
            .ok()
            .map(u32::from_le_bytes);
        let stream =
            Cursor::new(head).chain(Box::new(Chunked(stream)) as Box<dyn Read + Send + 'a>);
        let format = match magic {
            Some(0x0a0d0d0a) => Format::PcapNg(
                PcapNgReader::new(stream)
                    .map_err(|e| anyhow!("{name}: not a valid pcapng file: {}", describe(&e)))?,
                Vec::new(),
            ),
            Some(0xa1b2c3d4 | 0xd4c3b2a1 | 0xa1b23c4d | 0x4d3cb2a1) => Format::Pcap(
                PcapReader::new(stream)
                    .map_err(|e| anyhow!("{name}: not a valid pcap file: {}", describe(&e)))?,
            ),
            _ => bail!("{name}: neither pcap nor pcapng (nor gzip-compressed either)"),
        };
        Ok(Self {
            name,
            strict,
            format,
            record: 0,
            last_ts: Duration::ZERO,
            done: false,
        })
    }

    /// The next frame, or `None` once the file is done (at its end, or at a record that leaves the
    /// rest unreadable). Problems are recorded in `report`, which also counts the frames; with
    /// `strict` the first problem is the error.
    fn next_frame(&mut self, report: &mut FileReport) -> Result<Option<Frame>> {
        let Self {
            name,
            strict,
            format,
            record,
            last_ts,
            done,
        } = self;
        let problem = |report: &mut FileReport, msg: String| -> Result<()> {
            if *strict {
                bail!("{name}: {msg} (--strict)");
            }
            warn!("{name}: {msg}");
            report.problems.push(msg);
            Ok(())
        };
        while !*done {
            let (ts, (data, wire_len)) = match format {
                Format::Pcap(r) => {
                    let link = r.header().datalink;
                    let resolution = r.header().ts_resolution;
                    // Raw records, checked here: pcap-file 2.0 refuses a record whose original
                    // length exceeds the file's snap length, which is every record cut short
                    // by `tcpdump -s`.
                    let Some(p) = r.next_raw_packet() else {
                        *done = true;
                        break;
                    };
                    *record += 1;
                    let n = *record;
                    let p = match p.and_then(|p| checked_record(p, resolution)) {
                        Ok(p) => p,
                        Err(e) => {
                            *done = true;
                            problem(
                                report,
                                format!(
                                    "record {n}: {}; the rest of the file is unreadable",
                                    describe(&e)
                                ),
                            )?;
                            break;
                        }
                    };
                    match to_ethernet(link, &p.data, p.orig_len) {
                        Ok(data) => (p.timestamp, data),
                        Err(e) => {
                            problem(report, format!("record {n}: {e}"))?;
                            report.skipped += 1;
                            if n == 1 && e.link_unsupported {
                                // The link type is the whole file's: one message for the file,
                                // not one per packet.
                                report.skipped += r.by_ref_count();
                                *done = true;
                            }
                            continue;
                        }
                    }
                }
                Format::PcapNg(r, ifaces) => {
                    let Some(block) = r.next_block() else {
                        *done = true;
                        break;
                    };
                    *record += 1;
                    let n = *record;
                    let block = match block {
                        Ok(b) => b,
                        Err(e) => {
                            *done = true;
                            problem(
                                report,
                                format!(
                                    "block {n}: {}; the rest of the file is unreadable",
                                    describe(&e)
                                ),
                            )?;
                            break;
                        }
                    };
                    match block {
                        Block::SectionHeader(_) => {
                            ifaces.clear();
                            continue;
                        }
                        Block::InterfaceDescription(idb) => {
                            let mut per_second: u128 = 1_000_000;
                            for o in &idb.options {
                                if let InterfaceDescriptionOption::IfTsResol(r) = o {
                                    per_second = if r & 0x80 != 0 {
                                        1u128 << (r & 0x7f)
                                    } else {
                                        10u128.pow((*r as u32).min(30))
                                    };
                                }
                            }
                            ifaces.push((idb.linktype, per_second));
                            continue;
                        }
                        Block::EnhancedPacket(epb) => {
                            let Some(&(link, per_second)) = ifaces.get(epb.interface_id as usize)
                            else {
                                problem(
                                    report,
                                    format!(
                                        "block {n}: packet of undeclared interface {}",
                                        epb.interface_id
                                    ),
                                )?;
                                report.skipped += 1;
                                continue;
                            };
                            // pcap-file hands the raw timestamp over as nanoseconds.
                            let units = epb.timestamp.as_nanos();
                            let ts = Duration::from_nanos(
                                (units / per_second * 1_000_000_000
                                    + units % per_second * 1_000_000_000 / per_second)
                                    as u64,
                            );
                            match to_ethernet(link, &epb.data, epb.original_len) {
                                Ok(data) => (ts, data),
                                Err(e) => {
                                    problem(report, format!("block {n}: {e}"))?;
                                    report.skipped += 1;
                                    continue;
                                }
                            }
                        }
                        Block::SimplePacket(spb) => match ifaces.first() {
                            Some(&(link, _)) => {
                                match to_ethernet(link, &spb.data, spb.original_len) {
                                    // Simple packet blocks carry no timestamp: the previous packet's.
                                    Ok(data) => (*last_ts, data),
                                    Err(e) => {
                                        problem(report, format!("block {n}: {e}"))?;
                                        report.skipped += 1;
                                        continue;
                                    }
                                }
                            }
                            None => {
                                problem(
                                    report,
                                    format!("block {n}: simple packet before any interface"),
                                )?;
                                report.skipped += 1;
                                continue;
                            }
                        },
                        _ => continue,
                    }
                }
            };
            *last_ts = ts;
            report.packets += 1;
            return Ok(Some(Frame { ts, data, wire_len }));
        }
        Ok(None)
    }
}

/// A pcap record with its timestamp and lengths checked as pcap-file does, except that the
/// original length may exceed the snap length (that is what a snap length cuts).
fn checked_record(
    raw: pcap_file::pcap::RawPcapPacket<'_>,
    resolution: pcap_file::TsResolution,
) -> Result<pcap_file::pcap::PcapPacket<'_>, PcapError> {
    let nanos = match resolution {
        pcap_file::TsResolution::MicroSecond => raw.ts_frac.checked_mul(1000),
        pcap_file::TsResolution::NanoSecond => Some(raw.ts_frac),
    }
    .filter(|&n| n < 1_000_000_000)
    .ok_or(PcapError::InvalidField(
        "PacketHeader ts_frac is not below one second",
    ))?;
    if raw.incl_len > raw.orig_len {
        return Err(PcapError::InvalidField("PacketHeader incl_len > orig_len"));
    }
    Ok(pcap_file::pcap::PcapPacket {
        timestamp: Duration::new(raw.ts_sec as u64, nanos),
        orig_len: raw.orig_len,
        data: raw.data,
    })
}

/// Opens a capture file for `CaptureReader`, the bytes read from it added to `consumed`; also
/// returns the file's size.
fn open_capture(
    path: &Path,
    strict: bool,
    consumed: &Arc<AtomicU64>,
) -> Result<(CaptureReader<'static>, u64)> {
    let name = path.display().to_string();
    let file = File::open(path).with_context(|| format!("{name}: cannot open"))?;
    let size = file.metadata().map_or(0, |m| m.len());
    let input = BufReader::new(Counted {
        inner: file,
        total: Arc::clone(consumed),
    });
    Ok((CaptureReader::open(name, input, strict)?, size))
}

/// Parses a capture held in memory with `CaptureReader`; `name` names it in messages. Public for
/// the fuzz target: no input may make it panic.
pub fn parse_capture(
    name: &str,
    raw: Vec<u8>,
    strict: bool,
    report: &mut FileReport,
) -> Result<Vec<Frame>> {
    let mut reader = CaptureReader::open(name.to_string(), Cursor::new(raw), strict)?;
    let mut frames = Vec::new();
    while let Some(frame) = reader.next_frame(report)? {
        frames.push(frame);
    }
    Ok(frames)
}

/// A capture read on its own thread, handed over in chunks of frames: reading, decompressing and
/// parsing run beside the replay, not in turn with it. At most `READ_AHEAD` chunks wait.
struct ReadAhead {
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
    fn spawn(mut reader: CaptureReader<'static>) -> Result<Self> {
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

trait CountRest {
    fn by_ref_count(&mut self) -> u64;
}

impl<R: Read> CountRest for PcapReader<R> {
    fn by_ref_count(&mut self) -> u64 {
        let mut n = 0;
        while let Some(Ok(_)) = self.next_packet() {
            n += 1;
        }
        n
    }
}

/// Several captures merged by timestamp, ties broken by file order and then record order, with
/// one pending frame per file, so memory does not depend on the captures' sizes.
///
/// A file that is itself out of order is replayed in its own order: its frames join the merge one
/// at a time, so a frame older than its predecessor still comes after it (and after whatever
/// other files' frames were replayed in between), and it counts in the bucket then current.
struct Merge {
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
    fn new(readers: Vec<ReadAhead>, reports: &mut [FileReport]) -> Result<Self> {
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
    fn next(&mut self, reports: &mut [FileReport]) -> Result<Option<(usize, u64, Frame)>> {
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

fn samples(families: &[MetricFamily]) -> Vec<Sample> {
    let mut out = Vec::new();
    for f in families {
        if !REPORTED.contains(&f.name()) {
            continue;
        }
        for m in f.get_metric() {
            out.push(Sample {
                metric: f.name().to_string(),
                labels: m
                    .get_label()
                    .iter()
                    .map(|l| (l.name().to_string(), l.value().to_string()))
                    .collect(),
                value: m.get_counter().get_value() as u64,
            });
        }
    }
    out
}

/// A packet on its way to the kernel.
struct Queued {
    ts: Duration,
    file: usize,
    /// Its number in its file, for messages.
    packet: u64,
    data: Vec<u8>,
    /// Its length on the wire.
    wire_len: usize,
}

/// One BPF_PROG_TEST_RUN's packets. The worker lays them out and, once they ran, drops them: the
/// dispatching thread, which every packet passes through, neither copies nor frees frames.
struct Batch {
    packets: Vec<Queued>,
    /// How many packets, and the first one's file and number, for messages (`packets` comes
    /// back empty).
    n: u32,
    file: usize,
    packet: u64,
}

/// Batches handed to a worker at once: one hand-over (a thread wake-up) per `JOB_PACKETS`
/// packets rather than per batch.
struct Job {
    batches: Vec<Batch>,
    packets: usize,
}

/// Packets per job. Bounds what the jobs in flight can write into the rings (see `ring_room`).
const JOB_PACKETS: usize = 256;

struct Done {
    job: Job,
    /// The program's return value for each batch run, up to the first that failed to run.
    codes: Vec<u32>,
    error: Option<anyhow::Error>,
}

/// Ring bytes that hold whatever `jobs` jobs in flight can write: per packet, at most one sample,
/// and at most one Stratum flow event and one suspect event per reason.
fn ring_room(jobs: usize) -> (u32, u32) {
    let record = |size: usize| size + 16;
    let samples = jobs * JOB_PACKETS * record(std::mem::size_of::<sensor_common::Sample>());
    let events = jobs
        * JOB_PACKETS
        * (1 + sensor_common::Reason::COUNT)
        * record(std::mem::size_of::<sensor_common::Event>());
    (
        samples.next_power_of_two() as u32,
        events.next_power_of_two() as u32,
    )
}

/// BPF_PROG_TEST_RUN keeps at most this much of its input in the frame's linear part: a page less
/// XDP's headroom (256 bytes) and the room for `skb_shared_info` (320 bytes on 64-bit kernels).
/// The rest would go to fragments, which a batch cannot use: the kernel program checks and
/// refuses such a batch (`REPLAY_BAD_LAYOUT`). `probe_max_input` confirms the figure.
fn linear_max() -> usize {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    (page.max(4096) as usize).saturating_sub(256 + 320)
}

/// The largest batch this kernel keeps whole in the frame's linear part, starting from
/// `linear_max`: a batch of two frames that are not IP (an experimental EtherType, which the
/// program only counts in `parse_events_total{event="seen"}` and `"not_ip"`, never in what replay
/// reports) either runs whole or is refused before anything of it runs.
fn probe_max_input(runner: &BatchRunner<'_>) -> Result<usize> {
    let mut max = linear_max();
    let mut input = Vec::new();
    while max >= 1024 {
        let second = 64;
        let first = max - 2 * ReplayHeader::SIZE - second;
        let frame = |len: usize| {
            let mut f = vec![0u8; len];
            f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
            f
        };
        let probe = [first, second].map(|len| Queued {
            ts: Duration::ZERO,
            file: 0,
            packet: 0,
            data: frame(len),
            wire_len: len,
        });
        layout(&probe, &mut input);
        match runner.run_batch(&input)? {
            code if code == REPLAY_DONE + 2 => return Ok(max),
            REPLAY_BAD_LAYOUT => max -= 64,
            code => bail!("the replay program refused its probe batch (code {code:#x})"),
        }
    }
    bail!("this kernel runs no replay batch of 1024 bytes whole")
}

/// Lays `packets` out for one BPF_PROG_TEST_RUN (see `bpf::batch_input`).
fn layout(packets: &[Queued], out: &mut Vec<u8>) {
    crate::bpf::batch_input(
        packets.iter().map(|p| crate::bpf::BatchPacket {
            ts_ns: p.ts.as_nanos() as u64,
            ifindex: p.file as u32 + 1,
            data: &p.data,
            wire_len: p.wire_len,
        }),
        out,
    );
}

/// The worker a frame's flow runs on: both directions of a flow on the same one, so that its
/// packets run in capture order (the flow's first packet decides its dialect and direction, and
/// deep inspection reads a flow's messages in order). Frames without a transport flow go to 0.
fn flow_worker(frame: &[u8], workers: usize) -> usize {
    if workers <= 1 {
        return 0;
    }
    let Some(t) = crate::inspect::frame::transport(frame) else {
        return 0;
    };
    let wide = |ip: std::net::IpAddr| match ip {
        std::net::IpAddr::V4(a) => u32::from(a) as u128,
        std::net::IpAddr::V6(a) => u128::from(a),
    };
    let (a, b) = ((wide(t.src), t.sport), (wide(t.dst), t.dport));
    let (lo, hi) = (a.min(b), a.max(b));
    // A multiply-xorshift mix: the shard only spreads load (a capture is the analyst's own
    // input), and SipHash was a visible share of the dispatching thread's time.
    let h = [
        lo.0 as u64,
        (lo.0 >> 64) as u64,
        lo.1 as u64,
        hi.0 as u64,
        (hi.0 >> 64) as u64,
        hi.1 as u64,
    ]
    .into_iter()
    .fold(t.proto as u64, sensor_common::mix);
    (h % workers as u64) as usize
}

/// The CPUs replay may use (its affinity mask): one worker each.
fn worker_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above, with the set's real size.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    let cpus: Vec<usize> = if rc == 0 {
        (0..libc::CPU_SETSIZE as usize)
            // SAFETY: c is below CPU_SETSIZE.
            .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
            .collect()
    } else {
        Vec::new()
    };
    if cpus.is_empty() { vec![0] } else { cpus }
}

/// Pins the calling thread to `cpu`. A worker must own its CPU: the program's per-CPU scratch
/// memory assumes no second run on the same CPU at the same time.
fn pin_to(cpu: usize) -> io::Result<()> {
    // SAFETY: as in worker_cpus; cpu comes from this process's own affinity mask.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Replay's packets batched per worker (see `ReplayHeader`), batches grouped into jobs; each
/// worker thread owns a CPU and runs its jobs in order. At most `max_inflight` jobs are out at
/// once, so the rings the kernel reports through never hold more than that many jobs' output.
struct Dispatch {
    jobs: Vec<std::sync::mpsc::Sender<Job>>,
    done: std::sync::mpsc::Receiver<Done>,
    /// Each worker's batch being filled, and its size as input.
    pending: Vec<Vec<Queued>>,
    pending_bytes: Vec<usize>,
    /// Each worker's job being filled.
    open: Vec<Job>,
    inflight: usize,
    max_inflight: usize,
    max_input: usize,
    spare_lists: Vec<Vec<Queued>>,
    names: Vec<String>,
}

impl Dispatch {
    fn start<'scope>(
        scope: &'scope std::thread::Scope<'scope, '_>,
        runner: BatchRunner<'scope>,
        cpus: &[usize],
        max_inflight: usize,
        names: Vec<String>,
    ) -> Result<Self> {
        let max_input = probe_max_input(&runner)?;
        let (done_tx, done) = std::sync::mpsc::channel::<Done>();
        let mut jobs = Vec::new();
        for &cpu in cpus {
            let (tx, rx) = std::sync::mpsc::channel::<Job>();
            jobs.push(tx);
            let done_tx = done_tx.clone();
            scope.spawn(move || {
                let pinned = pin_to(cpu);
                let mut input = Vec::new();
                for mut job in rx {
                    let mut codes = Vec::with_capacity(job.batches.len());
                    let mut error = None;
                    for batch in &mut job.batches {
                        layout(&batch.packets, &mut input);
                        let result = match &pinned {
                            Ok(()) => runner.run_batch(&input),
                            Err(e) => Err(anyhow!("cannot pin a replay worker to CPU {cpu}: {e}")),
                        };
                        batch.packets.clear();
                        match result {
                            Ok(code) => codes.push(code),
                            Err(e) => {
                                error = Some(e);
                                break;
                            }
                        }
                    }
                    if done_tx.send(Done { job, codes, error }).is_err() {
                        break;
                    }
                }
            });
        }
        let workers = jobs.len();
        Ok(Self {
            jobs,
            done,
            pending: (0..workers).map(|_| Vec::new()).collect(),
            pending_bytes: vec![0; workers],
            open: (0..workers)
                .map(|_| Job {
                    batches: Vec::new(),
                    packets: 0,
                })
                .collect(),
            inflight: 0,
            max_inflight,
            max_input,
            spare_lists: Vec::new(),
            names,
        })
    }

    /// Queues a packet on its flow's worker. A packet longer than a batch holds is cut to fit:
    /// its header says how long it was, and its IP length checks against that.
    fn push(&mut self, mut q: Queued, after: &mut impl FnMut() -> Result<()>) -> Result<()> {
        let w = flow_worker(&q.data, self.jobs.len());
        q.data.truncate(self.max_input - ReplayHeader::SIZE);
        let size = ReplayHeader::SIZE + q.data.len();
        if !self.pending[w].is_empty() && self.pending_bytes[w] + size > self.max_input {
            self.close_batch(w, after)?;
        }
        self.pending[w].push(q);
        self.pending_bytes[w] += size;
        if self.pending[w].len() >= REPLAY_BATCH_MAX {
            self.close_batch(w, after)?;
        }
        Ok(())
    }

    /// Lays the worker's pending packets out as a batch of its open job; sends the job when full.
    fn close_batch(&mut self, w: usize, after: &mut impl FnMut() -> Result<()>) -> Result<()> {
        if self.pending[w].is_empty() {
            return Ok(());
        }
        let fresh = self.spare_lists.pop().unwrap_or_default();
        let packets = std::mem::replace(&mut self.pending[w], fresh);
        self.pending_bytes[w] = 0;
        self.open[w].packets += packets.len();
        let (file, packet) = (packets[0].file, packets[0].packet);
        self.open[w].batches.push(Batch {
            n: packets.len() as u32,
            packets,
            file,
            packet,
        });
        if self.open[w].packets >= JOB_PACKETS {
            self.send(w, after)?;
        }
        Ok(())
    }

    fn send(&mut self, w: usize, after: &mut impl FnMut() -> Result<()>) -> Result<()> {
        if self.open[w].batches.is_empty() {
            return Ok(());
        }
        let job = std::mem::replace(
            &mut self.open[w],
            Job {
                batches: Vec::new(),
                packets: 0,
            },
        );
        while self.inflight >= self.max_inflight {
            self.complete_one(after)?;
        }
        self.jobs[w]
            .send(job)
            .map_err(|_| anyhow!("a replay worker stopped"))?;
        self.inflight += 1;
        // Whatever finished meanwhile is read now, not to keep the rings full.
        while let Ok(done) = self.done.try_recv() {
            self.inflight -= 1;
            self.check(done, after)?;
        }
        Ok(())
    }

    fn complete_one(&mut self, after: &mut impl FnMut() -> Result<()>) -> Result<()> {
        let done = self
            .done
            .recv()
            .map_err(|_| anyhow!("the replay workers stopped"))?;
        self.inflight -= 1;
        self.check(done, after)
    }

    fn check(&mut self, done: Done, after: &mut impl FnMut() -> Result<()>) -> Result<()> {
        let Done { job, codes, error } = done;
        for (i, batch) in job.batches.into_iter().enumerate() {
            let n = batch.n;
            let at = || {
                format!(
                    "{}: packet {} (in a batch of {n})",
                    self.names[batch.file], batch.packet
                )
            };
            let Some(&code) = codes.get(i) else {
                let e = error.unwrap_or_else(|| anyhow!("the batch was not run"));
                return Err(e.context(at()));
            };
            if code != REPLAY_DONE + n {
                let k = code & 0xff_ffff;
                let what = match code & !0xff_ffff {
                    REPLAY_BAD_LAYOUT => "the batch did not fit the frame",
                    REPLAY_BAD_HEADER => {
                        "a packet header did not fit, or a bound could not be moved"
                    }
                    REPLAY_TAIL_CALL_FAILED => "the tail call to the next packet failed",
                    REPLAY_DONE => "it stopped early",
                    _ => "unexpected return value",
                };
                bail!(
                    "{}: the kernel program ran {k} of {n} packets of a batch: {what} (code {code:#x})",
                    at()
                );
            }
            // Emptied by the worker once the batch ran.
            self.spare_lists.push(batch.packets);
        }
        after()
    }

    /// Sends every pending batch and waits until all have run and their output is read.
    fn finish(&mut self, after: &mut impl FnMut() -> Result<()>) -> Result<()> {
        for w in 0..self.jobs.len() {
            self.close_batch(w, after)?;
            self.send(w, after)?;
        }
        while self.inflight > 0 {
            self.complete_one(after)?;
        }
        after()
    }
}

pub fn replay(opts: ReplayOptions) -> Result<Report> {
    let config = match &opts.config {
        Some(p) => Config::from_file(p)?,
        None => Config::embedded_default(),
    };
    for w in &config.warnings {
        warn!("{w}");
    }
    if opts.files.is_empty() {
        bail!("no capture file given");
    }
    if opts.bucket.is_zero() {
        // Zero would make every packet a bucket of its own: a snapshot of every counter each.
        bail!("--bucket 0s: a bucket must be longer than zero; give its length, e.g. 5m, 1h or 1d");
    }
    if opts.files.len() >= sensor_common::MAX_IFACE_SLOTS {
        bail!(
            "{} capture files; one replay takes at most {} (each file is an iface label)",
            opts.files.len(),
            sensor_common::MAX_IFACE_SLOTS - 1
        );
    }
    // Replay always copies candidates (there is no AF_XDP socket to redirect to), so the deep
    // parser sees what `run` in either mode would.
    let mut config = config;
    config.inspect.capture_mode = crate::config::CaptureMode::Inline;
    let cpus = worker_cpus();
    let max_inflight = 2 * cpus.len();
    // Room in the rings for everything the jobs in flight can write, so nothing is lost between
    // two reads.
    let (sample_room, event_room) = ring_room(max_inflight);
    config.inspect.sample_ring_bytes = config.inspect.sample_ring_bytes.max(sample_room);
    config.events.ring_bytes = config.events.ring_bytes.max(event_room);
    let mut kernel = Kernel::load_for_replay(&config)?;
    kernel.configure(&config)?;
    let metrics = Metrics::new();
    let mut event_ring = kernel.take_events()?;
    let mut sample_ring = kernel.take_samples()?;
    let ranges = kernel.range_lookup()?;
    let mut inspector = crate::inspect::Inspector::new(
        crate::inspect::login_key(config.inspect.login_key_file.as_deref())?,
        metrics.clone(),
        config.inspect.distinct_window,
    );
    let start = std::time::Instant::now();
    let mut drainer = Drainer::default();
    let mut labels = Labels::new();
    for (i, r) in config.ranges.iter().enumerate() {
        labels.ranges[i] = Some(r.name.clone());
    }

    let consumed = Arc::new(AtomicU64::new(0));
    let mut total_bytes = 0u64;
    let mut readers = Vec::new();
    let mut reports = Vec::new();
    for (i, path) in opts.files.iter().enumerate() {
        let (reader, size) = open_capture(path, opts.strict, &consumed)?;
        total_bytes += size;
        readers.push(ReadAhead::spawn(reader)?);
        let report = FileReport {
            file: path.display().to_string(),
            ..FileReport::default()
        };
        let label = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| report.file.clone());
        labels.ifaces[i + 1] = Some(label);
        // Each file stands for an interface: its packets carry `i + 1` as their ingress ifindex.
        kernel.set_iface_slot(i as u32 + 1, i as u32 + 1)?;
        reports.push(report);
    }
    let names: Vec<String> = reports.iter().map(|r| r.file.clone()).collect();
    let mut merge = Merge::new(readers, &mut reports)?;

    // The packet count is only known at the end: progress is in bytes read from the files.
    let bar = ProgressBar::with_draw_target(Some(total_bytes), ProgressDrawTarget::hidden());
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes}, {msg}, ETA {eta}")
            .expect("valid template"),
    );
    // Message first: the position update is what redraws the bar.
    let show_progress = |replayed: u64| {
        bar.set_message(format!(
            "{replayed} packets, {:.0} packets/s",
            replayed as f64 / bar.elapsed().as_secs_f64().max(1e-3)
        ));
        bar.set_position(consumed.load(Ordering::Relaxed));
    };
    show_progress(0);
    // Drawn only once position and message are set, not to flash an empty bar.
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) && total_bytes > 50_000_000 {
        bar.set_draw_target(ProgressDrawTarget::stderr());
    }

    let bucket = opts.bucket.as_nanos().max(1);
    let mut buckets = Vec::new();
    let mut bucket_end: Option<u128> = None;
    let first_packet: Cell<Option<Duration>> = Cell::new(None);
    let mut last_packet: Option<Duration> = None;
    let mut replayed = 0u64;
    // (capture time in ns, event): sorted by time at the end, since the workers' events interleave.
    // The rank puts a packet's kernel events before the login deep inspection read from it.
    let mut events: Vec<(u64, u8, serde_json::Value)> = Vec::new();
    let snapshot = |end: u128,
                    drainer: &mut Drainer,
                    kernel: &Kernel,
                    buckets: &mut Vec<Bucket>|
     -> Result<()> {
        drainer.drain_counters(kernel, &labels, &metrics)?;
        buckets.push(Bucket {
            end: end as f64 / 1e9,
            samples: samples(&metrics.registry.gather()),
        });
        Ok(())
    };
    // What the batches run so far made the kernel report, stamped with their packets' capture time.
    let mut read_rings = || -> Result<()> {
        let iface = |ifindex: u32| {
            labels
                .ifaces
                .get(ifindex as usize)
                .cloned()
                .flatten()
                .unwrap_or_else(|| "?".into())
        };
        let range_name = |id: usize| labels.ranges.get(id).cloned().flatten();
        while let Some(item) = event_ring.next() {
            let e = crate::bpf::event_from(&item)?;
            let wall = std::time::UNIX_EPOCH + Duration::from_nanos(e.ts_ns);
            let line = crate::events::line_at(&e, range_name, &iface(e.ifindex), wall);
            events.push((e.ts_ns, 0, serde_json::to_value(line)?));
        }
        while let Some(item) = sample_ring.next() {
            let s = crate::bpf::sample_from(&item)?;
            let bytes = &s.data[..(s.cap_len as usize).min(s.data.len())];
            let ts = Duration::from_nanos(s.ts_ns);
            // Windows (distinct miners) follow capture time too.
            let now = start + ts.saturating_sub(first_packet.get().unwrap_or(ts));
            let wall = std::time::UNIX_EPOCH + ts;
            for line in inspector.frame(
                bytes,
                "copy",
                &iface(s.ifindex),
                now,
                wall,
                |a| ranges.ranges_of(a).unwrap_or(0),
                range_name,
            ) {
                events.push((s.ts_ns, 1, serde_json::to_value(line)?));
            }
        }
        Ok(())
    };

    let runner = kernel.batch_runner()?;
    let mut oversize = vec![0u64; opts.files.len()];
    let mut max_input = 0;
    std::thread::scope(|scope| -> Result<()> {
        let mut dispatch = Dispatch::start(scope, runner, &cpus, max_inflight, names)?;
        while let Some((f, n, frame)) = merge.next(&mut reports)? {
            let ts = frame.ts;
            // Earliest and latest rather than first and last: a file may be out of order.
            first_packet.set(Some(first_packet.get().map_or(ts, |t| t.min(ts))));
            last_packet = Some(last_packet.map_or(ts, |t| t.max(ts)));
            let t = ts.as_nanos();
            let end = *bucket_end.get_or_insert((t / bucket + 1) * bucket);
            if t >= end {
                // Everything before the boundary is counted before the counters are read.
                dispatch.finish(&mut read_rings)?;
                snapshot(end, &mut drainer, &kernel, &mut buckets)?;
                bucket_end = Some((t / bucket + 1) * bucket);
            }
            if frame.wire_len + ReplayHeader::SIZE > dispatch.max_input {
                oversize[f] += 1;
            }
            dispatch.push(
                Queued {
                    ts,
                    file: f,
                    packet: n,
                    data: frame.data,
                    wire_len: frame.wire_len,
                },
                &mut read_rings,
            )?;
            replayed += 1;
            if replayed.is_multiple_of(4096) {
                show_progress(replayed);
            }
        }
        max_input = dispatch.max_input;
        dispatch.finish(&mut read_rings)
    })?;
    for (report, n) in reports.iter_mut().zip(oversize) {
        if n > 0 {
            let msg = format!(
                "{n} frames longer than the {} bytes a replay batch holds (jumbo frames, or \
                 segments merged by the capturing host's GRO): counted by their IP lengths, their \
                 content inspected up to that length only",
                max_input - ReplayHeader::SIZE
            );
            warn!("{}: {msg}", report.file);
            report.problems.push(msg);
        }
    }
    if let Some(end) = bucket_end {
        snapshot(end, &mut drainer, &kernel, &mut buckets)?;
    } else {
        drainer.drain_counters(&kernel, &labels, &metrics)?;
    }
    bar.finish_and_clear();
    for (stat, what) in [
        (sensor_common::Stat::EventsLost, "flow events"),
        (sensor_common::Stat::SamplesLost, "deep-inspection copies"),
    ] {
        let lost = kernel.stat(stat)?;
        if lost > 0 {
            warn!("{lost} {what} did not fit in their ring buffer and are missing from the output");
        }
    }
    // Ties (events of one packet, or of flows on different workers at the same instant) break
    // the same way on every run.
    events.sort_by_cached_key(|(ts, rank, v)| (*ts, *rank, v.to_string()));
    let events: Vec<serde_json::Value> = events.into_iter().map(|(_, _, v)| v).collect();
    let first_packet = first_packet.get();

    let report = Report {
        files: reports,
        bucket_seconds: opts.bucket.as_secs_f64(),
        first_packet: first_packet.map(|t| t.as_secs_f64()),
        last_packet: last_packet.map(|t| t.as_secs_f64()),
        buckets,
        totals: samples(&metrics.registry.gather()),
        events,
    };
    if let Some(path) = &opts.openmetrics {
        std::fs::write(path, openmetrics(&report))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &opts.report {
        std::fs::write(path, crate::replay::report::html(&report))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &opts.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(report)
}

/// OpenMetrics text: each family once, each series' samples in time order, `# EOF` last, as
/// `promtool tsdb create-blocks-from openmetrics` requires.
pub fn openmetrics(report: &Report) -> String {
    // metric -> rendered label set -> (timestamp, value) in time order.
    type Points = Vec<(f64, u64)>;
    let mut series: BTreeMap<&str, BTreeMap<String, Points>> = BTreeMap::new();
    for b in &report.buckets {
        for s in &b.samples {
            let labels = s
                .labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
                .collect::<Vec<_>>()
                .join(",");
            series
                .entry(s.metric.as_str())
                .or_default()
                .entry(labels)
                .or_default()
                .push((b.end, s.value));
        }
    }
    let mut out = String::new();
    for (metric, by_labels) in series {
        let family = metric.strip_suffix("_total").unwrap_or(metric);
        let _ = writeln!(out, "# TYPE {family} counter");
        for (labels, points) in by_labels {
            for (t, v) in points {
                let _ = writeln!(out, "{metric}{{{labels}}} {v} {t:.3}");
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

/// The terminal summary: totals per range.
pub fn summary(report: &Report) -> String {
    let mut out = String::new();
    for f in &report.files {
        let _ = writeln!(
            out,
            "{}: {} packets{}",
            f.file,
            f.packets,
            if f.skipped > 0 {
                format!(", {} skipped ({})", f.skipped, f.problems.join("; "))
            } else {
                String::new()
            }
        );
    }
    let mut by_range: BTreeMap<&str, BTreeMap<String, u64>> = BTreeMap::new();
    for s in &report.totals {
        let range = s.labels.get("range").map(String::as_str).unwrap_or("?");
        let dir = s.labels.get("direction").cloned().unwrap_or_default();
        let key = match s.metric.as_str() {
            names::PACKETS => format!("packets {dir}"),
            names::BYTES => format!("bytes {dir}"),
            names::STRATUM_PACKETS => {
                format!("stratum packets {dir} {}", s.labels["dialect"])
            }
            names::STRATUM_FLOWS => {
                format!("stratum flows {dir} {}", s.labels["dialect"])
            }
            names::SUSPECT_FLOWS => {
                format!("suspect flows {dir} {}", s.labels["reason"])
            }
            _ => format!(
                "logins coin={} agent={}",
                s.labels["coin"], s.labels["agent"]
            ),
        };
        *by_range.entry(range).or_default().entry(key).or_default() += s.value;
    }
    let _ = writeln!(out, "{:<12} {:<36} {:>14}", "range", "what", "value");
    for (range, rows) in by_range {
        for (what, v) in rows {
            if v > 0 || what.starts_with("packets") || what.starts_with("bytes") {
                let _ = writeln!(out, "{range:<12} {what:<36} {v:>14}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::{io::Write as _, net::Ipv4Addr};

    use flate2::{Compression, write::GzEncoder};
    use pcap_file::pcapng::{
        PcapNgWriter,
        blocks::{
            enhanced_packet::EnhancedPacketBlock, interface_description::InterfaceDescriptionBlock,
        },
    };

    use super::*;
    use test_support::Packet;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ms-replay-unit-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A distinct frame per (file, packet), so the merged order can be read back from the data.
    fn packet(file: u16, n: u16) -> Packet {
        Packet::udp4(
            Ipv4Addr::new(192, 0, 2, 1),
            Ipv4Addr::new(198, 51, 100, 1),
            file,
            n,
            b"payload",
        )
    }

    fn pcap(link: DataLink, packets: &[(Duration, Vec<u8>)]) -> Vec<u8> {
        test_support::write_pcap(Vec::new(), link, packets.iter().map(|(t, d)| (*t, d))).unwrap()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(1_559_347_200.0 + s)
    }

    /// (file index, packet number in the file, seconds since the base time, UDP ports naming the
    /// frame).
    type Replayed = (usize, u64, f64, (u16, u16));

    /// Replays `files` through `Merge` as `replay` does.
    fn merged(files: &[PathBuf]) -> (Vec<Replayed>, Vec<FileReport>) {
        let consumed = Arc::new(AtomicU64::new(0));
        let mut readers = Vec::new();
        let mut reports = Vec::new();
        let mut total = 0;
        for f in files {
            let (r, size) = open_capture(f, false, &consumed).unwrap();
            readers.push(ReadAhead::spawn(r).unwrap());
            total += size;
            reports.push(FileReport {
                file: f.display().to_string(),
                ..FileReport::default()
            });
        }
        let mut merge = Merge::new(readers, &mut reports).unwrap();
        let mut out = Vec::new();
        while let Some((f, n, frame)) = merge.next(&mut reports).unwrap() {
            let d = &frame.data;
            // Ethernet 14 + IPv4 20: the UDP ports.
            let ports = (
                u16::from_be_bytes([d[34], d[35]]),
                u16::from_be_bytes([d[36], d[37]]),
            );
            let t = (frame.ts - secs(0.0)).as_secs_f64();
            out.push((f, n, (t * 1000.0).round() / 1000.0, ports));
        }
        drop(merge);
        assert_eq!(
            consumed.load(Ordering::Relaxed),
            total,
            "every byte of every file was read"
        );
        (out, reports)
    }

    #[test]
    fn files_merge_in_timestamp_order_streaming_every_format() {
        let dir = tmp("merge");
        // a.pcap: Ethernet, two packets with the same timestamp.
        let a = dir.join("a.pcap");
        let a_times = [1.0, 4.0, 4.0, 8.0];
        let frames: Vec<_> = a_times
            .iter()
            .enumerate()
            .map(|(i, t)| (secs(*t), packet(1, i as u16 + 1).build()))
            .collect();
        std::fs::write(&a, pcap(DataLink::ETHERNET, &frames)).unwrap();

        // b.pcap.gz: raw IP records, compressed as two gzip members split inside a record.
        let b = dir.join("b.pcap.gz");
        let frames: Vec<_> = [2.0, 4.0, 9.0]
            .iter()
            .enumerate()
            .map(|(i, t)| (secs(*t), packet(2, i as u16 + 1).ip_bytes()))
            .collect();
        let raw = pcap(DataLink::RAW, &frames);
        let (head, tail) = raw.split_at(raw.len() / 2 + 3);
        std::fs::write(&b, [gzip(head), gzip(tail)].concat()).unwrap();

        // c.pcapng: interface 0 Ethernet in nanoseconds, interface 1 Linux cooked v1 in the
        // default microseconds.
        let c = dir.join("c.pcapng");
        let mut w = PcapNgWriter::new(Vec::new()).unwrap();
        let mut idb = InterfaceDescriptionBlock::new(DataLink::ETHERNET, 0xffff);
        idb.options.push(InterfaceDescriptionOption::IfTsResol(9));
        w.write_pcapng_block(idb).unwrap();
        w.write_pcapng_block(InterfaceDescriptionBlock::new(DataLink::LINUX_SLL, 0xffff))
            .unwrap();
        // (interface, seconds, data): the writer takes the raw timestamp as "nanoseconds".
        let epbs = [
            (0u32, 3.0, packet(3, 1).build()),
            (0, 4.0, packet(3, 2).build()),
            (0, 4.5, packet(3, 3).build()),
            (1, 6.0, {
                let eth = packet(3, 4).build();
                let mut sll = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0];
                sll.extend_from_slice(&eth[12..]);
                sll
            }),
        ];
        for (iface, t, data) in &epbs {
            let units = (secs(*t).as_nanos() / if *iface == 0 { 1 } else { 1000 }) as u64;
            w.write_pcapng_block(EnhancedPacketBlock {
                interface_id: *iface,
                timestamp: Duration::from_nanos(units),
                original_len: data.len() as u32,
                data: data.as_slice().into(),
                options: vec![],
            })
            .unwrap();
        }
        std::fs::write(&c, w.into_inner()).unwrap();

        // d.pcap: its last record cut short.
        let d = dir.join("d.pcap");
        let frames: Vec<_> = [5.0, 6.0, 7.0]
            .iter()
            .enumerate()
            .map(|(i, t)| (secs(*t), packet(4, i as u16 + 1).build()))
            .collect();
        let raw = pcap(DataLink::ETHERNET, &frames);
        std::fs::write(&d, &raw[..raw.len() - 10]).unwrap();

        let (order, reports) = merged(&[a, b, c, d]);
        assert_eq!(
            order,
            [
                (0, 1, 1.0, (1, 1)),
                (1, 1, 2.0, (2, 1)),
                (2, 1, 3.0, (3, 1)),
                // Equal timestamps: file order, then record order.
                (0, 2, 4.0, (1, 2)),
                (0, 3, 4.0, (1, 3)),
                (1, 2, 4.0, (2, 2)),
                (2, 2, 4.0, (3, 2)),
                (2, 3, 4.5, (3, 3)),
                (3, 1, 5.0, (4, 1)),
                (2, 4, 6.0, (3, 4)),
                (3, 2, 6.0, (4, 2)),
                (0, 4, 8.0, (1, 4)),
                (1, 3, 9.0, (2, 3)),
            ]
        );
        let packets: Vec<u64> = reports.iter().map(|r| r.packets).collect();
        assert_eq!(packets, [4, 3, 4, 2]);
        assert!(reports[..3].iter().all(|r| r.problems.is_empty()));
        assert_eq!(reports[3].problems.len(), 1);
        assert!(
            reports[3].problems[0].starts_with("record 3: ")
                && reports[3].problems[0].ends_with("the rest of the file is unreadable"),
            "{:?}",
            reports[3].problems
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_file_out_of_order_replays_in_its_own_order() {
        let dir = tmp("unordered");
        let x = dir.join("x.pcap");
        let y = dir.join("y.pcap");
        let frame = |f, n, t| (secs(t), packet(f, n).build());
        std::fs::write(
            &x,
            pcap(DataLink::ETHERNET, &[frame(1, 1, 5.0), frame(1, 2, 1.0)]),
        )
        .unwrap();
        std::fs::write(&y, pcap(DataLink::ETHERNET, &[frame(2, 1, 3.0)])).unwrap();
        let (order, _) = merged(&[x, y]);
        assert_eq!(
            order,
            [
                (1, 1, 3.0, (2, 1)),
                (0, 1, 5.0, (1, 1)),
                (0, 2, 1.0, (1, 2))
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn cut_files_are_problems_and_strict_makes_them_errors() {
        let frames: Vec<_> = (1..=3)
            .map(|n| (secs(n as f64), packet(1, n).build()))
            .collect();
        let raw = pcap(DataLink::ETHERNET, &frames);
        let cut = raw[..raw.len() - 10].to_vec();

        let mut report = FileReport::default();
        let got = parse_capture("cut.pcap", cut.clone(), false, &mut report).unwrap();
        assert_eq!((got.len(), report.packets), (2, 2));
        assert!(report.problems[0].starts_with("record 3: "), "{report:?}");
        let err = parse_capture("cut.pcap", cut, true, &mut FileReport::default())
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.starts_with("cut.pcap: record 3: ") && err.ends_with("(--strict)"),
            "{err}"
        );

        // Cut inside the compressed stream: what was decompressed is kept, gzip is named.
        let gz = gzip(&raw);
        let mut report = FileReport::default();
        let got = parse_capture(
            "cut.pcap.gz",
            gz[..gz.len() - 30].to_vec(),
            false,
            &mut report,
        )
        .unwrap();
        assert_eq!(got.len() as u64, report.packets);
        assert!(report.packets < 3);
        assert!(report.problems[0].contains("gzip"), "{report:?}");

        // Whole files still parse as before, gzip or not.
        for data in [raw.clone(), gzip(&raw)] {
            let mut report = FileReport::default();
            let got = parse_capture("ok.pcap", data, true, &mut report).unwrap();
            assert_eq!(got.len(), 3);
            assert_eq!(got[2].data, frames[2].1);
            assert_eq!(got[2].ts, frames[2].0);
        }
        let err = parse_capture(
            "junk",
            b"\x1f\x8bjunk".to_vec(),
            false,
            &mut FileReport::default(),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.starts_with("junk: gzip data is corrupt"), "{err}");
    }

    #[test]
    fn a_zero_bucket_is_refused_naming_the_option() {
        let e = replay(ReplayOptions {
            config: None,
            files: vec![PathBuf::from("capture.pcap")],
            openmetrics: None,
            json: None,
            report: None,
            bucket: Duration::ZERO,
            strict: false,
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("--bucket 0s") && e.contains("1h"), "{e}");
    }
}
