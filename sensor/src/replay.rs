//! `mining-sensor replay`: runs the very XDP object of `run` over capture files through
//! BPF_PROG_TEST_RUN, packet by packet, and reports what `run` would have counted: a summary on
//! the terminal, OpenMetrics with a timestamp at every bucket boundary (for `promtool tsdb
//! create-blocks-from openmetrics`), and JSON.
//!
//! Time comes from the capture: buckets follow packet timestamps. Counting goes through the same
//! `Drainer` as the live agent, so replay and live counts cannot diverge.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    fs::File,
    io::{BufReader, Read},
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use flate2::read::MultiGzDecoder;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use pcap_file::{
    DataLink,
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
const REPORTED: [&str; 4] = [
    "mining_sensor_packets_total",
    "mining_sensor_bytes_total",
    "mining_sensor_stratum_packets_total",
    "mining_sensor_stratum_flows_total",
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

/// Opens a capture, gzip-compressed or not, pcap or pcapng, and reads its frames. Problems are
/// recorded in `report`; with `strict` the first one is an error.
fn read_capture(path: &Path, strict: bool, report: &mut FileReport) -> Result<Vec<Frame>> {
    let name = path.display();
    let mut raw = Vec::new();
    File::open(path)
        .with_context(|| format!("{name}: cannot open"))?
        .read_to_end(&mut raw)
        .with_context(|| format!("{name}: cannot read"))?;
    parse_capture(&name.to_string(), raw, strict, report)
}

/// Parses a capture held in memory (see `read_capture`); `name` names it in messages. Public for
/// the fuzz target: no input may make it panic.
pub fn parse_capture(
    name: &str,
    mut raw: Vec<u8>,
    strict: bool,
    report: &mut FileReport,
) -> Result<Vec<Frame>> {
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        MultiGzDecoder::new(BufReader::new(raw.as_slice()))
            .read_to_end(&mut out)
            .with_context(|| format!("{name}: gzip data is corrupt"))?;
        raw = out;
    }
    let mut frames = Vec::new();
    let problem = |report: &mut FileReport, msg: String| -> Result<()> {
        if strict {
            bail!("{name}: {msg} (--strict)");
        }
        warn!("{name}: {msg}");
        report.problems.push(msg);
        Ok(())
    };
    let magic = raw
        .get(..4)
        .map(|m| u32::from_le_bytes([m[0], m[1], m[2], m[3]]));
    match magic {
        Some(0x0a0d0d0a) => {
            let mut r = PcapNgReader::new(raw.as_slice())
                .map_err(|e| anyhow::anyhow!("{name}: not a valid pcapng file: {e}"))?;
            // Interface link types and timestamp units (if_tsresol, default microseconds).
            let mut ifaces: Vec<(DataLink, u128)> = Vec::new();
            let mut record = 0u64;
            while let Some(block) = r.next_block() {
                record += 1;
                let block = match block {
                    Ok(b) => b,
                    Err(e) => {
                        problem(
                            report,
                            format!("block {record}: {e}; the rest of the file is unreadable"),
                        )?;
                        break;
                    }
                };
                match block {
                    Block::SectionHeader(_) => ifaces.clear(),
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
                    }
                    Block::EnhancedPacket(epb) => {
                        let Some(&(link, per_second)) = ifaces.get(epb.interface_id as usize)
                        else {
                            problem(
                                report,
                                format!(
                                    "block {record}: packet of undeclared interface {}",
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
                            Ok(data) => frames.push(Frame { ts, data }),
                            Err(e) => {
                                problem(report, format!("block {record}: {e}"))?;
                                report.skipped += 1;
                            }
                        }
                    }
                    Block::SimplePacket(spb) => match ifaces.first() {
                        Some(&(link, _)) => match to_ethernet(link, &spb.data) {
                            // Simple packet blocks carry no timestamp: the previous packet's.
                            Ok(data) => frames.push(Frame {
                                ts: frames.last().map_or(Duration::ZERO, |f| f.ts),
                                data,
                            }),
                            Err(e) => {
                                problem(report, format!("block {record}: {e}"))?;
                                report.skipped += 1;
                            }
                        },
                        None => {
                            problem(
                                report,
                                format!("block {record}: simple packet before any interface"),
                            )?;
                            report.skipped += 1;
                        }
                    },
                    _ => {}
                }
            }
        }
        Some(0xa1b2c3d4 | 0xd4c3b2a1 | 0xa1b23c4d | 0x4d3cb2a1) => {
            let mut r = PcapReader::new(raw.as_slice())
                .map_err(|e| anyhow::anyhow!("{name}: not a valid pcap file: {e}"))?;
            let link = r.header().datalink;
            let mut record = 0u64;
            while let Some(p) = r.next_packet() {
                record += 1;
                let p = match p {
                    Ok(p) => p,
                    Err(e) => {
                        problem(
                            report,
                            format!("record {record}: {e}; the rest of the file is unreadable"),
                        )?;
                        break;
                    }
                };
                match to_ethernet(link, &p.data) {
                    Ok(data) => frames.push(Frame {
                        ts: p.timestamp,
                        data,
                    }),
                    Err(e) => {
                        problem(report, format!("record {record}: {e}"))?;
                        report.skipped += 1;
                        if record == 1 && !strict {
                            // One message for the file, not one per packet.
                            report.skipped += r.by_ref_count();
                            break;
                        }
                    }
                }
            }
        }
        _ => bail!("{name}: neither pcap nor pcapng (nor gzip-compressed either)"),
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
    let mut kernel = Kernel::load_with_ranges(&config)?;
    let metrics = Metrics::new();
    let mut drainer = Drainer::default();
    let mut labels = Labels::new();
    for (i, r) in config.ranges.iter().enumerate() {
        labels.ranges[i] = Some(r.name.clone());
    }

    // Read every file first, so that several files replay in timestamp order.
    let mut files = Vec::new();
    let mut reports = Vec::new();
    for (i, path) in opts.files.iter().enumerate() {
        let mut report = FileReport {
            file: path.display().to_string(),
            ..FileReport::default()
        };
        let frames = read_capture(path, opts.strict, &mut report)?;
        report.packets = frames.len() as u64;
        let label = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| report.file.clone());
        labels.ifaces[i + 1] = Some(label);
        files.push(frames);
        reports.push(report);
    }
    let mut order: Vec<(Duration, usize, usize)> = files
        .iter()
        .enumerate()
        .flat_map(|(f, frames)| frames.iter().enumerate().map(move |(i, fr)| (fr.ts, f, i)))
        .collect();
    order.sort();

    let bar = ProgressBar::with_draw_target(
        Some(order.len() as u64),
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) && order.len() > 100_000 {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} packets, {per_sec}, ETA {eta}")
            .expect("valid template"),
    );

    let bucket = opts.bucket.as_nanos().max(1);
    let mut buckets = Vec::new();
    let mut current_file = usize::MAX;
    let mut bucket_end: Option<u128> = None;
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
    for &(ts, f, i) in &order {
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
            .count(&files[f][i].data)
            .with_context(|| format!("{}: packet {}", reports[f].file, i + 1))?;
        bar.inc(1);
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
        first_packet: order.first().map(|o| o.0.as_secs_f64()),
        last_packet: order.last().map(|o| o.0.as_secs_f64()),
        buckets,
        totals: samples(&metrics.registry.gather()),
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
            _ => format!("stratum flows {dir} {}", s.labels["dialect"]),
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
