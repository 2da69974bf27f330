//! `mining-sensor replay`: runs the very XDP object of `run` over capture files through
//! BPF_PROG_TEST_RUN, packet by packet, and reports what `run` would have counted: a summary on
//! the terminal, OpenMetrics with a timestamp at every bucket boundary (for `promtool tsdb
//! create-blocks-from openmetrics`), and JSON.
//!
//! Time comes from the capture: buckets follow packet timestamps. Counting goes through the same
//! `Drainer` as the live agent, so replay and live counts cannot diverge.
//!
//! The way a packet goes, one file each:
//! - `reader`: capture files (pcap, pcapng, gzip) read a frame at a time, bad records reported;
//!   `link` makes every link type an Ethernet frame, `stream` is the bytes under the parser.
//! - `merge`: each file read ahead on a thread of its own, the files merged in timestamp order.
//! - `dispatch`: frames batched per flow onto workers, one per CPU, run through the kernel;
//!   `whole` keeps the frames longer than the kernel's copy for deep inspection.
//! - this module: the `replay` entry and its options, buckets and the rings read between batches.
//! - `results`: the `Report` all outputs come from; `output` writes OpenMetrics and the terminal
//!   summary, `report` the HTML page.

mod dispatch;
mod link;
mod merge;
mod output;
mod reader;
pub mod report;
mod results;
mod stream;
#[cfg(test)]
mod tests;
mod whole;

use std::{
    cell::Cell,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing::warn;

use sensor_common::ReplayHeader;

use self::{
    dispatch::{Dispatch, Queued, file_ifindex, ring_room, worker_cpus},
    merge::{Merge, ReadAhead},
    reader::open_capture,
    results::samples,
};
pub use self::{
    output::{openmetrics, summary},
    reader::{Frame, parse_capture},
    results::{Activity, Bucket, FileReport, Report, Sample},
};
use crate::{
    bpf::Kernel,
    config::{CaptureMode, Config, Tunnel},
    metrics::{Drainer, Labels, Metrics},
};

pub struct ReplayOptions {
    pub config: Option<PathBuf>,
    pub files: Vec<PathBuf>,
    pub openmetrics: Option<PathBuf>,
    pub json: Option<PathBuf>,
    pub report: Option<PathBuf>,
    pub bucket: Duration,
    pub strict: bool,
    /// Tunnels read as the frame inside, besides the configuration's `decapsulate`.
    pub decapsulate: Vec<crate::config::Tunnel>,
    /// Dates, ticks and the hour-of-week map of the HTML report in this offset from UTC.
    pub utc_offset: report::time::UtcOffset,
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
    for t in &opts.decapsulate {
        if !config.decapsulate.contains(t) {
            config.decapsulate.push(*t);
        }
    }
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
    inspector.keep_tally();
    inspector.open_flows_in(kernel.flow_table(true)?);
    // Read between batches (the rings) and at every bucket's end (the reported rates).
    let inspector = std::cell::RefCell::new(inspector);
    let start = std::time::Instant::now();
    let mut drainer = Drainer::default();
    let mut labels = Labels::new();
    for (i, r) in config.ranges.iter().enumerate() {
        labels.ranges[i] = Some(r.name.clone());
    }
    // As `Kernel::configure` numbers them.
    labels.set_peers(
        config
            .peers
            .iter()
            .enumerate()
            .map(|(i, p)| (i + 1, p.name.as_str())),
    );

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
        // Each file stands for an interface: its packets carry it as their ingress ifindex.
        let ifindex = file_ifindex(i);
        labels.ifaces[ifindex as usize] = Some(label);
        kernel.set_iface_slot(ifindex, ifindex)?;
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
    // The Inspector's clock at capture time `ts`: windows (distinct miners, reported rates)
    // follow the capture.
    let clock = |ts: Duration| start + ts.saturating_sub(first_packet.get().unwrap_or(ts));
    // `encrypted_stratum`: the TLS flows the program recorded are judged at every bucket's end
    // (all batches before it done), by capture time, and every one left at the capture's end.
    let judge = std::cell::RefCell::new(crate::shape::Judge::new(kernel.shape_maps()?));
    let shape_events = std::cell::RefCell::new(Vec::new());
    let snapshot = |end: u128,
                    last: bool,
                    drainer: &mut Drainer,
                    kernel: &Kernel,
                    buckets: &mut Vec<Bucket>|
     -> Result<()> {
        let started = kernel.stat(sensor_common::Stat::ShapesStarted)?;
        let flagged = judge
            .borrow_mut()
            .run(end as u64, last, started, &metrics)?;
        shape_events.borrow_mut().extend(flagged);
        drainer.drain_counters(kernel, &labels, &metrics)?;
        let end_ts = Duration::from_nanos(u64::try_from(end).unwrap_or(u64::MAX));
        inspector.borrow_mut().publish_rates(clock(end_ts));
        buckets.push(Bucket {
            end: end as f64 / 1e9,
            samples: samples(&metrics.registry.gather()),
        });
        Ok(())
    };
    // What the batches run so far made the kernel report, stamped with their packets' capture time.
    let mut read_rings = |whole: &mut whole::Whole| -> Result<()> {
        let iface = |ifindex: u32| {
            labels
                .ifaces
                .get(ifindex as usize)
                .cloned()
                .flatten()
                .unwrap_or_else(|| "?".into())
        };
        let range_name = |id: usize| labels.ranges.get(id).cloned().flatten();
        // A flow event, from the event ring or carried by a sample record.
        let flow_event = |e: &sensor_common::Event| -> Result<_> {
            let wall = std::time::UNIX_EPOCH + Duration::from_nanos(e.ts_ns);
            let line = crate::events::line_at(e, range_name, &iface(e.ifindex), wall);
            Ok((e.ts_ns, 0, serde_json::to_value(line)?))
        };
        while let Some(item) = event_ring.next() {
            events.push(flow_event(&crate::bpf::event_from(&item)?)?);
        }
        while let Some(item) = sample_ring.next() {
            let (s, opened) = crate::bpf::sample_from(&item)?;
            if let Some(e) = opened {
                events.push(flow_event(&e)?);
            }
            let copy = &s.data[..(s.cap_len as usize).min(s.data.len())];
            // A frame longer than the copy is read whole from the capture.
            let kept = whole.take(s.ifindex, s.ts_ns, s.frame_len, copy);
            let bytes = kept.as_deref().unwrap_or(copy);
            let ts = Duration::from_nanos(s.ts_ns);
            let wall = std::time::UNIX_EPOCH + ts;
            for line in inspector.borrow_mut().frame(
                bytes,
                CaptureMode::Inline.path_label(),
                &iface(s.ifindex),
                clock(ts),
                wall,
                |a| ranges.ranges_of(a).unwrap_or(0),
                range_name,
            ) {
                // At its login's time: a login that waited for its flow's coin comes out with a
                // later packet.
                events.push((wall_ns(line.at), 1, serde_json::to_value(line)?));
            }
        }
        Ok(())
    };

    let runner = kernel.batch_runner()?;
    let mut oversize = vec![0u64; opts.files.len()];
    // Frames in a tunnel `decapsulate` does not name, by file and tunnel (erspan, vxlan).
    let mut tunneled = vec![[0u64; Tunnel::ALL.len()]; opts.files.len()];
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
                snapshot(end, false, &mut drainer, &kernel, &mut buckets)?;
                bucket_end = Some((t / bucket + 1) * bucket);
            }
            if frame.wire_len + ReplayHeader::SIZE > dispatch.max_input {
                oversize[f] += 1;
            }
            if let Some(t) = crate::inspect::frame::tunnel_of(&frame.data)
                && !config.decapsulate.contains(&t)
            {
                tunneled[f][t as usize] += 1;
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
    for (report, counts) in reports.iter_mut().zip(tunneled) {
        for (t, n) in Tunnel::ALL.into_iter().zip(counts) {
            if n > 0 {
                let (what, name) = (t.kind(), t.name());
                let msg = format!(
                    "{n} frames in {what} tunnels (a remote mirror session's?): counted as the \
                     tunnel's own packets; give --decapsulate {name} to read the frames inside"
                );
                warn!("{}: {msg}", report.file);
                report.problems.push(msg);
            }
        }
    }
    for (report, n) in reports.iter_mut().zip(oversize) {
        if n > 0 {
            let msg = format!(
                "{n} frames longer than the {max} bytes a replay batch holds (jumbo frames, or \
                 segments merged by the capturing host's GRO): counted by their IP lengths; the \
                 program read their first {max} bytes, deep inspection the Stratum messages in \
                 them whole",
                max = max_input - ReplayHeader::SIZE
            );
            warn!("{}: {msg}", report.file);
            report.problems.push(msg);
        }
    }
    // Shares still waiting for a reply at the capture's end count as unknown, logins still
    // waiting for their flow's coin with the coin it showed.
    inspector.borrow_mut().end_shares();
    for line in inspector.borrow_mut().late_logins() {
        events.push((wall_ns(line.at), 1, serde_json::to_value(line)?));
    }
    if let Some(end) = bucket_end {
        snapshot(end, true, &mut drainer, &kernel, &mut buckets)?;
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
    for e in shape_events.take() {
        let iface = labels.ifaces.get(e.ifindex as usize).cloned().flatten();
        let wall = std::time::UNIX_EPOCH + Duration::from_nanos(e.ts_ns);
        let line = crate::events::line_at(
            &e,
            |id| labels.ranges.get(id).cloned().flatten(),
            iface.as_deref().unwrap_or("?"),
            wall,
        );
        events.push((e.ts_ns, 0, serde_json::to_value(line)?));
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
        activity: inspector
            .borrow()
            .tally()
            .map(|t| t.rows())
            .unwrap_or_default()
            .into_iter()
            .map(|(who, work)| results::Activity { who, work })
            .collect(),
    };
    if let Some(path) = &opts.openmetrics {
        std::fs::write(path, openmetrics(&report))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &opts.report {
        std::fs::write(path, crate::replay::report::html(&report, opts.utc_offset))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &opts.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(report)
}

/// Nanoseconds since the epoch of a capture time (0 before it).
fn wall_ns(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
