//! Every metric the sensor exports, in one place, and the drain that moves the kernel's per-CPU
//! counters into them.
//!
//! Kernel counters only grow (the maps live as long as the program), so each drain adds the
//! difference since the previous drain: Prometheus counters never go backwards, across
//! configuration reloads included. A range id handed to a new range name is first re-based, so the
//! new name does not inherit counts of the name that had the id before.

pub mod http;
pub mod names;
pub mod web;

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use anyhow::Result;
use prometheus::{
    Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

use sensor_common::{
    Counter, DIR_FROM, DIR_TO, MAX_IFACE_SLOTS, MAX_RANGES, ParseEvent, Reason, Stat,
    UNWATCHED_SLOT,
    stratum::{DIALECTS, Dialect},
    stratum_index, suspect_index, traffic_index,
};

use crate::{bpf::Kernel, config::UNWATCHED};

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

/// The sensor's metrics. Names and labels of the contract's metrics are fixed
/// (shared/docs/contract.md); the rest describe the sensor's own health and cost.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub packets: IntCounterVec,
    pub bytes: IntCounterVec,
    pub stratum_packets: IntCounterVec,
    pub stratum_flows: IntCounterVec,
    pub suspect_flows: IntCounterVec,
    pub mining_flows: IntGaugeVec,
    pub config_reloads: IntCounterVec,
    pub interface_up: IntGaugeVec,
    pub build_info: IntGaugeVec,
    pub xdp_attached: IntGaugeVec,
    pub parse_events: IntCounterVec,
    pub watched_prefixes: IntGaugeVec,
    pub flow_entries: IntGauge,
    pub flow_capacity: IntGauge,
    pub drain_duration: Histogram,
    pub last_drain: Gauge,
    pub flow_evictions: IntCounter,
    pub events: IntCounter,
    pub events_lost: IntCounter,
    pub miner_logins: IntCounterVec,
    pub distinct_miners: IntGaugeVec,
    pub inspected_packets: IntCounterVec,
    pub inspect_candidates: IntCounter,
    pub capture_drops: IntCounterVec,
    pub afxdp_sockets: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new();
        let flow_entries = IntGauge::with_opts(Opts::new(
            names::FLOW_TABLE_ENTRIES,
            "Entries in the kernel's Stratum flow table (LRU) at the last drain.",
        ))
        .expect("valid metric");
        let flow_capacity = IntGauge::with_opts(
            Opts::new(
                names::FLOW_TABLE_CAPACITY,
                "Capacity of the kernel's Stratum flow table (flow_table_size); the oldest flows are evicted beyond it.",
            )
            ,
        )
        .expect("valid metric");
        let drain_duration = Histogram::with_opts(
            HistogramOpts::new(
                names::DRAIN_DURATION,
                "Time to read the kernel's maps into the metrics, per drain cycle.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
        )
        .expect("valid metric");
        let last_drain = Gauge::with_opts(Opts::new(
            names::LAST_DRAIN,
            "Unix time of the last completed drain cycle.",
        ))
        .expect("valid metric");
        let counter = |name: &str, help: &str| {
            IntCounter::with_opts(Opts::new(name, help)).expect("valid metric")
        };
        let flow_evictions = counter(
            names::FLOW_TABLE_EVICTIONS,
            "Flows the kernel's LRU flow table evicted to make room (flows created minus entries).",
        );
        let events = counter(
            names::EVENTS,
            "Flow events the kernel wrote to its ring buffer.",
        );
        let events_lost = counter(
            names::EVENTS_LOST,
            "Flow events lost: the kernel's ring buffer was full, or the agent could not write them to the sink.",
        );
        let inspect_candidates = counter(
            names::INSPECT_CANDIDATES,
            "Packets the kernel handed to deep inspection (redirected to AF_XDP or copied); compare with inspected_packets_total.",
        );
        for m in [
            Box::new(inspect_candidates.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(flow_evictions.clone()),
            Box::new(events.clone()),
            Box::new(events_lost.clone()),
            Box::new(flow_entries.clone()),
            Box::new(flow_capacity.clone()),
            Box::new(drain_duration.clone()),
            Box::new(last_drain.clone()),
        ] {
            r.register(m).expect("unique metric");
        }
        let m = Self {
            packets: counter_vec(
                &r,
                names::PACKETS,
                "IP packets with an endpoint in a watched range, per range, direction and receiving interface.",
                &["range", "direction", "iface"],
            ),
            bytes: counter_vec(
                &r,
                names::BYTES,
                "IP bytes (IPv4 total length, IPv6 40 + payload length) of those packets.",
                &["range", "direction", "iface"],
            ),
            stratum_packets: counter_vec(
                &r,
                names::STRATUM_PACKETS,
                "Packets carrying a Stratum message, per range, direction and dialect (range=\"unwatched\", direction=\"none\" outside every range).",
                &["range", "direction", "dialect"],
            ),
            stratum_flows: counter_vec(
                &r,
                names::STRATUM_FLOWS,
                "Stratum flows, each counted once at its first Stratum packet.",
                &["range", "direction", "dialect"],
            ),
            suspect_flows: counter_vec(
                &r,
                names::SUSPECT_FLOWS,
                "Flows with a sign of mining but no readable Stratum, each once per reason: pool_endpoint (traffic with a configured pool address), stratum_v2 (the V2 handshake shape on a pool port), tls_no_sni (a ClientHello without server_name towards a pool), pool_dns (a DNS query for a name in a pool domain).",
                &["range", "direction", "reason"],
            ),
            mining_flows: gauge_vec(
                &r,
                names::MINING_FLOWS,
                "Stratum flows with a Stratum packet within flow_idle_timeout, per range and dialect.",
                &["range", "dialect"],
            ),
            config_reloads: counter_vec(
                &r,
                names::CONFIG_RELOADS,
                "Configuration reloads (SIGHUP), by result.",
                &["result"],
            ),
            interface_up: gauge_vec(
                &r,
                names::INTERFACE_UP,
                "1 while the program is attached to the interface and its link is up.",
                &["iface"],
            ),
            build_info: gauge_vec(
                &r,
                names::BUILD_INFO,
                "Always 1; the sensor's version.",
                &["version"],
            ),
            xdp_attached: gauge_vec(
                &r,
                names::XDP_ATTACHED,
                "1 while attached, by interface and XDP mode (native or generic).",
                &["iface", "mode"],
            ),
            parse_events: counter_vec(
                &r,
                names::PARSE_EVENTS,
                "Packets seen by the XDP program (reason=\"seen\") and what the parser met on the way: malformed headers by reason, non-IP, fragments, other transports.",
                &["reason"],
            ),
            watched_prefixes: gauge_vec(
                &r,
                names::WATCHED_PREFIXES,
                "Prefixes configured per range and address family.",
                &["range", "family"],
            ),
            flow_entries,
            flow_capacity,
            drain_duration,
            last_drain,
            flow_evictions,
            events,
            events_lost,
            miner_logins: counter_vec(
                &r,
                names::MINER_LOGINS,
                "Miner logins read by deep inspection, per range (either endpoint; unwatched outside every range), coin and miner software family.",
                &["range", "coin", "agent"],
            ),
            distinct_miners: gauge_vec(
                &r,
                names::DISTINCT_MINERS,
                "Distinct miner logins per range within inspect.distinct_window, counted by a keyed hash of the login (no login is stored).",
                &["range"],
            ),
            inspected_packets: counter_vec(
                &r,
                names::INSPECTED_PACKETS,
                "Candidate packets deep inspection read, by path: afxdp (tap mode, AF_XDP socket) or copy (inline mode, kernel copy).",
                &["path"],
            ),
            inspect_candidates,
            capture_drops: counter_vec(
                &r,
                names::CAPTURE_DROPS,
                "Candidate packets deep inspection did not get, by path and ring: copy/sample_ring (kernel ring full), afxdp/no_socket (no socket on the receive queue), afxdp/rx_ring (socket receive ring full), afxdp/fill_ring (no free frame), afxdp/dropped (dropped by the kernel for other reasons).",
                &["path", "ring"],
            ),
            afxdp_sockets: gauge_vec(
                &r,
                names::AFXDP_SOCKETS,
                "AF_XDP sockets open in tap mode, per interface and bind mode (zero-copy or copy).",
                &["iface", "bind"],
            ),
            registry: r,
        };
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        m
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus::TextEncoder::new()
            .encode_utf8(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// What the kernel's slots and range ids stand for.
#[derive(Clone, Debug, Default)]
pub struct Labels {
    /// Range name by range id.
    pub ranges: Vec<Option<String>>,
    /// Interface name by interface slot.
    pub ifaces: Vec<Option<String>>,
}

impl Labels {
    pub fn new() -> Self {
        Self {
            ranges: vec![None; MAX_RANGES],
            ifaces: vec![None; MAX_IFACE_SLOTS],
        }
    }

    fn range_slots(&self) -> impl Iterator<Item = (usize, &str)> {
        self.ranges
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_deref().map(|n| (i, n)))
    }
}

const DIRECTIONS: [(usize, &str); 2] = [(DIR_FROM, "from"), (DIR_TO, "to")];

/// Drains kernel counters into [`Metrics`], remembering what it has already added.
#[derive(Default)]
pub struct Drainer {
    traffic: HashMap<u32, Counter>,
    stratum_packets: HashMap<u32, u64>,
    stratum_flows: HashMap<u32, u64>,
    parse: HashMap<u32, u64>,
    mining_series: HashSet<(String, &'static str)>,
    /// Stratum and suspect series already exported, by (map, cell, range name).
    stratum_series: HashSet<(&'static str, u32, String)>,
    /// `STATS` cells already added.
    stats: HashMap<u32, u64>,
    suspect: HashMap<u32, u64>,
    /// Evictions already exported.
    evictions: u64,
}

impl Drainer {
    /// Marks the current kernel values of range `id` as already exported (for a range id that is
    /// handed to a new range name).
    pub fn rebase_range(&mut self, kernel: &Kernel, id: usize) -> Result<()> {
        let traffic: Vec<u32> = (0..MAX_IFACE_SLOTS)
            .flat_map(|s| DIRECTIONS.map(|(d, _)| traffic_index(s, id, d)))
            .collect();
        for (i, c) in kernel.traffic(traffic)? {
            self.traffic.insert(i, c);
        }
        let stratum: Vec<u32> = (0..DIALECTS)
            .flat_map(|dl| DIRECTIONS.map(|(d, _)| stratum_index(id, d, dl)))
            .collect();
        for (i, v) in kernel.sums("STRATUM_PACKETS", stratum.clone())? {
            self.stratum_packets.insert(i, v);
        }
        for (i, v) in kernel.sums("STRATUM_FLOWS", stratum)? {
            self.stratum_flows.insert(i, v);
        }
        let suspect: Vec<u32> = (0..Reason::COUNT)
            .flat_map(|r| DIRECTIONS.map(|(d, _)| suspect_index(id, d, r)))
            .collect();
        for (i, v) in kernel.sums("SUSPECT_FLOWS", suspect)? {
            self.suspect.insert(i, v);
        }
        Ok(())
    }

    /// One drain cycle of the live agent: counters, the mining-flows gauge, and its own timing.
    pub fn drain(
        &mut self,
        kernel: &Kernel,
        labels: &Labels,
        metrics: &Metrics,
        flow_idle_timeout: Duration,
    ) -> Result<()> {
        let started = Instant::now();
        self.drain_counters(kernel, labels, metrics)?;
        self.mining_flows(kernel, labels, metrics, flow_idle_timeout)?;
        metrics
            .drain_duration
            .observe(started.elapsed().as_secs_f64());
        metrics.last_drain.set(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
        );
        Ok(())
    }

    /// The counters: traffic, Stratum packets and flows, parse events. Shared by the live agent
    /// and by replay, so that both count alike.
    pub fn drain_counters(
        &mut self,
        kernel: &Kernel,
        labels: &Labels,
        metrics: &Metrics,
    ) -> Result<()> {
        // Traffic: every labelled interface slot (and slot 0, traffic of interfaces the agent did
        // not register, should there be any) x every configured range x direction.
        let mut cells = Vec::new();
        for (slot, iface) in labels.ifaces.iter().enumerate() {
            let iface = match (slot, iface) {
                (_, Some(name)) => name.as_str(),
                (0, None) => "unregistered",
                _ => continue,
            };
            for (id, range) in labels.range_slots() {
                for (dir, dir_name) in DIRECTIONS {
                    cells.push((traffic_index(slot, id, dir), range, dir_name, iface));
                }
            }
        }
        let values = kernel.traffic(cells.iter().map(|c| c.0))?;
        for ((idx, now), (_, range, dir, iface)) in values.into_iter().zip(&cells) {
            let before = self.traffic.insert(idx, now).unwrap_or_default();
            let (dp, db) = (now.packets - before.packets, now.bytes - before.bytes);
            if dp > 0 || (before == Counter::default() && *iface != "unregistered") {
                metrics
                    .packets
                    .with_label_values(&[range, dir, iface])
                    .inc_by(dp);
                metrics
                    .bytes
                    .with_label_values(&[range, dir, iface])
                    .inc_by(db);
            }
        }

        // Stratum packets and flows: configured ranges x direction x dialect, plus unwatched.
        let mut cells = Vec::new();
        for (id, range) in labels.range_slots() {
            for (dir, dir_name) in DIRECTIONS {
                for (dl, dialect) in Dialect::NAMES.iter().enumerate() {
                    cells.push((stratum_index(id, dir, dl), range, dir_name, *dialect));
                }
            }
        }
        for (dl, dialect) in Dialect::NAMES.iter().enumerate() {
            cells.push((
                stratum_index(UNWATCHED_SLOT, DIR_FROM, dl),
                UNWATCHED,
                "none",
                *dialect,
            ));
        }
        for (map, last, metric) in [
            (
                "STRATUM_PACKETS",
                &mut self.stratum_packets,
                &metrics.stratum_packets,
            ),
            (
                "STRATUM_FLOWS",
                &mut self.stratum_flows,
                &metrics.stratum_flows,
            ),
        ] {
            let values = kernel.sums(map, cells.iter().map(|c| c.0))?;
            for ((idx, now), (_, range, dir, dialect)) in values.into_iter().zip(&cells) {
                let before = last.insert(idx, now).unwrap_or(0);
                // Configured ranges get their series at 0 from the first drain on (a dashboard
                // then shows "none" rather than "no data"); unwatched series appear when used.
                let create = *range != UNWATCHED
                    && self.stratum_series.insert((map, idx, range.to_string()));
                if now > before || create {
                    metric
                        .with_label_values(&[range, dir, dialect])
                        .inc_by(now - before);
                }
            }
        }

        let sample_ring = metrics
            .capture_drops
            .with_label_values(&["copy", "sample_ring"]);
        let no_socket = metrics
            .capture_drops
            .with_label_values(&["afxdp", "no_socket"]);
        for (stat, metric) in [
            (Stat::EventsSent, &metrics.events),
            (Stat::EventsLost, &metrics.events_lost),
            (Stat::Candidates, &metrics.inspect_candidates),
            (Stat::SamplesLost, &sample_ring),
            (Stat::NoSocket, &no_socket),
        ] {
            let now = kernel.stat(stat)?;
            let before = self.stats.insert(stat as u32, now).unwrap_or(0);
            metric.inc_by(now.saturating_sub(before));
        }

        // Suspect flows: configured ranges x direction x reason, plus unwatched.
        let mut cells = Vec::new();
        for (id, range) in labels.range_slots() {
            for (dir, dir_name) in DIRECTIONS {
                for (r, reason) in Reason::NAMES.iter().enumerate() {
                    cells.push((suspect_index(id, dir, r), range, dir_name, *reason));
                }
            }
        }
        for (r, reason) in Reason::NAMES.iter().enumerate() {
            cells.push((
                suspect_index(UNWATCHED_SLOT, DIR_FROM, r),
                UNWATCHED,
                "none",
                *reason,
            ));
        }
        let values = kernel.sums("SUSPECT_FLOWS", cells.iter().map(|c| c.0))?;
        for ((idx, now), (_, range, dir, reason)) in values.into_iter().zip(&cells) {
            let before = self.suspect.insert(idx, now).unwrap_or(0);
            // Like the Stratum series: configured ranges show 0 from the first drain on.
            let create = *range != UNWATCHED
                && self
                    .stratum_series
                    .insert(("SUSPECT_FLOWS", idx, range.to_string()));
            if now > before || create {
                metrics
                    .suspect_flows
                    .with_label_values(&[range, dir, reason])
                    .inc_by(now - before);
            }
        }

        for (idx, now) in kernel.parse_events()? {
            let before = self.parse.insert(idx, now).unwrap_or(0);
            if let Some(reason) = ParseEvent::NAMES.get(idx as usize) {
                metrics
                    .parse_events
                    .with_label_values(&[reason])
                    .inc_by(now - before);
            }
        }

        Ok(())
    }

    fn mining_flows(
        &mut self,
        kernel: &Kernel,
        labels: &Labels,
        metrics: &Metrics,
        idle: Duration,
    ) -> Result<()> {
        let flows = kernel.flows()?;
        metrics.flow_entries.set(flows.len() as i64);
        // Nothing but the LRU removes flows, so what was created and is not there was evicted.
        let evicted = kernel
            .stat(Stat::FlowsCreated)?
            .saturating_sub(flows.len() as u64);
        if evicted > self.evictions {
            metrics.flow_evictions.inc_by(evicted - self.evictions);
            self.evictions = evicted;
        }
        let now = monotonic_ns();
        let idle = idle.as_nanos() as u64;
        let mut active: HashMap<(String, &'static str), i64> = HashMap::new();
        for (_, state) in &flows {
            if now.saturating_sub(state.last_seen_ns) > idle {
                continue;
            }
            let Some(dialect) = Dialect::from_index(state.dialect) else {
                continue;
            };
            let mut any = false;
            for (id, range) in labels.range_slots() {
                if state.ranges & (1 << id) != 0 {
                    *active
                        .entry((range.to_string(), dialect.name()))
                        .or_default() += 1;
                    any = true;
                }
            }
            if !any {
                *active
                    .entry((UNWATCHED.to_string(), dialect.name()))
                    .or_default() += 1;
            }
        }
        for key in self.mining_series.iter() {
            if !active.contains_key(key) {
                metrics
                    .mining_flows
                    .with_label_values(&[&key.0, key.1])
                    .set(0);
            }
        }
        for (key, n) in &active {
            metrics
                .mining_flows
                .with_label_values(&[&key.0, key.1])
                .set(*n);
            self.mining_series.insert(key.clone());
        }
        Ok(())
    }
}

/// CLOCK_MONOTONIC in nanoseconds: the clock of the kernel program's times, which it reads with
/// `bpf_ktime_get_coarse_ns` (the same clock at a tick's resolution).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// deploy/exported-metrics.txt is what the dashboard and the alert rules are checked against
    /// (deploy/check.sh); it must list exactly the metrics the sensor registers.
    #[test]
    fn deploy_lists_exactly_the_exported_metrics() {
        let m = Metrics::new();
        // Vectors export nothing until a label set exists: touch one of each.
        for v in [&m.packets, &m.bytes] {
            v.with_label_values(&["r", "from", "i"]);
        }
        for v in [&m.stratum_packets, &m.stratum_flows] {
            v.with_label_values(&["r", "from", "monero"]);
        }
        m.suspect_flows
            .with_label_values(&["r", "from", "stratum_v2"]);
        m.mining_flows.with_label_values(&["r", "monero"]);
        m.config_reloads.with_label_values(&["success"]);
        m.interface_up.with_label_values(&["i"]);
        m.xdp_attached.with_label_values(&["i", "native"]);
        m.parse_events.with_label_values(&["seen"]);
        m.watched_prefixes.with_label_values(&["r", "ipv4"]);
        m.miner_logins.with_label_values(&["r", "monero", "xmrig"]);
        m.distinct_miners.with_label_values(&["r"]);
        m.inspected_packets.with_label_values(&["afxdp"]);
        m.capture_drops.with_label_values(&["afxdp", "rx_ring"]);
        m.afxdp_sockets.with_label_values(&["i", "copy"]);
        let mut exported: Vec<String> = m
            .registry
            .gather()
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        exported.sort();
        let listed = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/exported-metrics.txt"
        ))
        .unwrap();
        let mut listed: Vec<String> = listed
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect();
        listed.sort();
        assert_eq!(exported, listed);
    }
}
