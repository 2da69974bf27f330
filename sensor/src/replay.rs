//! `mining-sensor replay`: runs the very XDP object of `run` over capture files through
//! BPF_PROG_TEST_RUN, packet by packet, and reports what `run` would have counted: a summary on
//! the terminal, OpenMetrics with a timestamp at every bucket boundary (for `promtool tsdb
//! create-blocks-from openmetrics`), and JSON.
//!
//! Time comes from the capture: buckets follow packet timestamps. Counting goes through the same
//! `Drainer` as the live agent, so replay and live counts cannot diverge.

use std::{
    cell::Cell,
    cmp::Reverse,
    collections::{BTreeMap, BinaryHeap},
    fmt::Write as _,
    fs::File,
    io::{self, BufRead, BufReader, Cursor, Read},
    path::{Path, PathBuf},
    rc::Rc,
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

use crate::{
    config::Config,
    kernel::Kernel,
    metrics::{Drainer, Labels, Metrics},
};

/// BPF_PROG_TEST_RUN runs the program as if frames arrived on the namespace's loopback device.
const TEST_RUN_IFINDEX: u32 = 1;

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
    "mining_sensor_packets_total",
    "mining_sensor_bytes_total",
    "mining_sensor_stratum_packets_total",
    "mining_sensor_stratum_flows_total",
    "mining_sensor_suspect_flows_total",
    "mining_sensor_miner_logins_total",
];

/// One packet of a capture, normalised to an Ethernet frame.
pub struct Frame {
    pub ts: Duration,
    pub data: Vec<u8>,
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
fn to_ethernet(link: DataLink, data: &[u8]) -> Result<Vec<u8>, String> {
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
        _ => Err("raw IP record with neither IPv4 nor IPv6 version".to_string()),
    };
    match link {
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
        other => Err(format!(
            "link type {other:?} is not supported (Ethernet, VLAN, Linux cooked SLL/SLL2, raw IP and loopback are)"
        )),
    }
}

/// Counts the bytes taken from a file (compressed bytes for gzip) so progress can be shown
/// against the files' sizes: the packet count is not known until the files have been read.
struct Counted<R> {
    inner: R,
    total: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.total.set(self.total.get() + n as u64);
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
type Stream<'a> = io::Chain<Cursor<Vec<u8>>, Box<dyn Read + 'a>>;

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
    fn open(name: String, mut input: impl BufRead + 'a, strict: bool) -> Result<Self> {
        let gzip = input
            .fill_buf()
            .map_err(|e| anyhow!("{name}: cannot read: {e}"))?
            .starts_with(&[0x1f, 0x8b]);
        let mut stream: Box<dyn Read + 'a> = if gzip {
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
        let stream = Cursor::new(head).chain(stream);
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
            let (ts, data) = match format {
                Format::Pcap(r) => {
                    let link = r.header().datalink;
                    let Some(p) = r.next_packet() else {
                        *done = true;
                        break;
                    };
                    *record += 1;
                    let n = *record;
                    let p = match p {
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
                    match to_ethernet(link, &p.data) {
                        Ok(data) => (p.timestamp, data),
                        Err(e) => {
                            problem(report, format!("record {n}: {e}"))?;
                            report.skipped += 1;
                            if n == 1 {
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
                            match to_ethernet(link, &epb.data) {
                                Ok(data) => (ts, data),
                                Err(e) => {
                                    problem(report, format!("block {n}: {e}"))?;
                                    report.skipped += 1;
                                    continue;
                                }
                            }
                        }
                        Block::SimplePacket(spb) => match ifaces.first() {
                            Some(&(link, _)) => match to_ethernet(link, &spb.data) {
                                // Simple packet blocks carry no timestamp: the previous packet's.
                                Ok(data) => (*last_ts, data),
                                Err(e) => {
                                    problem(report, format!("block {n}: {e}"))?;
                                    report.skipped += 1;
                                    continue;
                                }
                            },
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
            return Ok(Some(Frame { ts, data }));
        }
        Ok(None)
    }
}

/// Opens a capture file for `CaptureReader`, the bytes read from it added to `consumed`; also
/// returns the file's size.
fn open_capture(
    path: &Path,
    strict: bool,
    consumed: &Rc<Cell<u64>>,
) -> Result<(CaptureReader<'static>, u64)> {
    let name = path.display().to_string();
    let file = File::open(path).with_context(|| format!("{name}: cannot open"))?;
    let size = file.metadata().map_or(0, |m| m.len());
    let input = BufReader::new(Counted {
        inner: file,
        total: Rc::clone(consumed),
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
struct Merge<'a> {
    readers: Vec<Option<CaptureReader<'a>>>,
    pending: Vec<Option<Frame>>,
    /// (timestamp, file index, packet number in the file), smallest first.
    heap: BinaryHeap<Reverse<(Duration, usize, u64)>>,
    /// The file whose frame was handed out last: refilled only on the next call, so that a file's
    /// problems are reported after its last good packet was replayed and no second frame of it is
    /// held meanwhile.
    refill: Option<usize>,
}

impl<'a> Merge<'a> {
    /// Reads the first frame of every file: a file that cannot be read at all is an error before
    /// anything is replayed.
    fn new(readers: Vec<CaptureReader<'a>>, reports: &mut [FileReport]) -> Result<Self> {
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
    let mut kernel = Kernel::load_with_ranges(&config)?;
    let metrics = Metrics::new();
    let mut event_ring = kernel.take_events()?;
    let mut sample_ring = kernel.take_samples()?;
    let ranges = kernel.range_lookup()?;
    let mut inspector = crate::inspect::Inspector::new(
        crate::inspect::login_key(config.inspect.login_key_file.as_deref())?,
        metrics.clone(),
        config.inspect.distinct_window,
    );
    let mut events = Vec::new();
    let start = std::time::Instant::now();
    let mut drainer = Drainer::default();
    let mut labels = Labels::new();
    for (i, r) in config.ranges.iter().enumerate() {
        labels.ranges[i] = Some(r.name.clone());
    }

    let consumed = Rc::new(Cell::new(0u64));
    let mut total_bytes = 0u64;
    let mut readers = Vec::new();
    let mut reports = Vec::new();
    for (i, path) in opts.files.iter().enumerate() {
        let (reader, size) = open_capture(path, opts.strict, &consumed)?;
        total_bytes += size;
        readers.push(reader);
        let report = FileReport {
            file: path.display().to_string(),
            ..FileReport::default()
        };
        let label = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| report.file.clone());
        labels.ifaces[i + 1] = Some(label);
        reports.push(report);
    }
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
        bar.set_position(consumed.get());
    };
    show_progress(0);
    // Drawn only once position and message are set, not to flash an empty bar.
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) && total_bytes > 50_000_000 {
        bar.set_draw_target(ProgressDrawTarget::stderr());
    }

    let bucket = opts.bucket.as_nanos().max(1);
    let mut buckets = Vec::new();
    let mut current_file = usize::MAX;
    let mut bucket_end: Option<u128> = None;
    let mut first_packet: Option<Duration> = None;
    let mut last_packet: Option<Duration> = None;
    let mut replayed = 0u64;
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
    while let Some((f, n, frame)) = merge.next(&mut reports)? {
        let ts = frame.ts;
        // Earliest and latest rather than first and last: a file may be out of order.
        first_packet = Some(first_packet.map_or(ts, |t| t.min(ts)));
        last_packet = Some(last_packet.map_or(ts, |t| t.max(ts)));
        let t = ts.as_nanos();
        let end = *bucket_end.get_or_insert((t / bucket + 1) * bucket);
        if t >= end {
            snapshot(end, &mut drainer, &kernel, &mut buckets)?;
            bucket_end = Some((t / bucket + 1) * bucket);
        }
        if f != current_file {
            kernel.set_iface_slot(TEST_RUN_IFINDEX, f as u32 + 1)?;
            current_file = f;
        }
        kernel
            .count(&frame.data)
            .with_context(|| format!("{}: packet {n}", reports[f].file))?;
        // What the packet made the kernel report, at the packet's capture time.
        let wall = std::time::UNIX_EPOCH + ts;
        let iface = labels.ifaces[f + 1].as_deref().unwrap_or("?");
        let range_name = |id: usize| labels.ranges.get(id).cloned().flatten();
        while let Some(item) = event_ring.next() {
            let e = crate::kernel::event_from(&item)?;
            events.push(serde_json::to_value(crate::events::line_at(
                &e, range_name, iface, wall,
            ))?);
        }
        while let Some(item) = sample_ring.next() {
            let s = crate::kernel::sample_from(&item)?;
            let bytes = &s.data[..(s.cap_len as usize).min(s.data.len())];
            // Windows (distinct miners) follow capture time too.
            let now = start + ts.saturating_sub(first_packet.unwrap_or(ts));
            for line in inspector.frame(
                bytes,
                "copy",
                iface,
                now,
                wall,
                |a| ranges.ranges_of(a).unwrap_or(0),
                range_name,
            ) {
                events.push(serde_json::to_value(line)?);
            }
        }
        replayed += 1;
        if replayed.is_multiple_of(4096) {
            show_progress(replayed);
        }
    }
    if let Some(end) = bucket_end {
        snapshot(end, &mut drainer, &kernel, &mut buckets)?;
    } else {
        drainer.drain_counters(&kernel, &labels, &metrics)?;
    }
    bar.finish_and_clear();

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
        std::fs::write(path, crate::report::html(&report))
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
            "mining_sensor_packets_total" => format!("packets {dir}"),
            "mining_sensor_bytes_total" => format!("bytes {dir}"),
            "mining_sensor_stratum_packets_total" => {
                format!("stratum packets {dir} {}", s.labels["dialect"])
            }
            "mining_sensor_stratum_flows_total" => {
                format!("stratum flows {dir} {}", s.labels["dialect"])
            }
            "mining_sensor_suspect_flows_total" => {
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
    use crate::packet::Packet;

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
        crate::packet::write_pcap(Vec::new(), link, packets.iter().map(|(t, d)| (*t, d))).unwrap()
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
        let consumed = Rc::new(Cell::new(0));
        let mut readers = Vec::new();
        let mut reports = Vec::new();
        let mut total = 0;
        for f in files {
            let (r, size) = open_capture(f, false, &consumed).unwrap();
            readers.push(r);
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
        assert_eq!(consumed.get(), total, "every byte of every file was read");
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
}
