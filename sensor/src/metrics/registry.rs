//! The registry: every metric the sensor exports, with its help text and labels. Names come from
//! `names`.

use prometheus::{
    CounterVec, Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};

use super::names;

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

fn float_counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> CounterVec {
    let c = CounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn float_gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    let g = GaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
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
    pub peer_packets: IntCounterVec,
    pub peer_bytes: IntCounterVec,
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
    pub opening_bytes: IntGauge,
    pub opening_evictions: IntCounter,
    pub events: IntCounter,
    pub events_lost: IntCounter,
    pub miner_logins: IntCounterVec,
    pub distinct_miners: IntGaugeVec,
    pub inspected_packets: IntCounterVec,
    pub inspect_candidates: IntCounter,
    pub reassembly_bytes: IntGauge,
    pub reassembly_evictions: IntCounter,
    pub inflate_bytes: IntGauge,
    pub inflate_evictions: IntCounter,
    /// `encrypted_stratum`: memory of the TLS flows the kernel records, and those it evicted.
    pub tls_shape_bytes: IntGauge,
    pub tls_shape_evictions: IntCounter,
    pub capture_drops: IntCounterVec,
    pub afxdp_sockets: IntGaugeVec,
    pub shares: IntCounterVec,
    pub share_hashes: CounterVec,
    pub shares_unknown_difficulty: IntCounterVec,
    pub reported_hashrate: GaugeVec,
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
        let opening_bytes = IntGauge::with_opts(Opts::new(
            names::OPENING_BYTES,
            "Bytes of kernel memory holding new flows' unfinished first messages (a login split before any marker) at the last drain: entries of the OPENINGS map times its key and value (bounded: 4,096 entries of 320 bytes).",
        ))
        .expect("valid metric");
        let opening_evictions = counter(
            names::OPENING_EVICTIONS,
            "New flows' unfinished first messages the kernel's OPENINGS map (LRU) evicted to make room before their next segment came (held minus removed minus entries).",
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
        let reassembly_bytes = IntGauge::with_opts(Opts::new(
            names::REASSEMBLY_BYTES,
            "Bytes deep inspection keeps of messages split over TCP segments, waiting for their next segment, and of segments come before the one they continue (bounded: 16 KiB each, one of each kind a flow direction, 8 MiB in all), and of WebSocket messages sent in several frames, waiting for their next fragment (16 KiB a direction, 1,024 directions).",
        ))
        .expect("valid metric");
        let reassembly_evictions = counter(
            names::REASSEMBLY_EVICTIONS,
            "Unfinished split messages and early segments dropped to keep reassembly within its 8 MiB (the oldest half each time), and fragmented WebSocket messages dropped beyond 1,024 open at once (the least recently continued).",
        );
        let inflate_bytes = IntGauge::with_opts(Opts::new(
            names::INFLATE_BYTES,
            "Memory deep inspection holds to inflate compressed WebSocket messages, estimated: 43 KiB a flow direction (DEFLATE's 32 KiB window and the decoder's tables), at most 256 directions (11 MiB).",
        ))
        .expect("valid metric");
        let inflate_evictions = counter(
            names::INFLATE_EVICTIONS,
            "Inflaters of compressed WebSocket messages dropped to stay within 256 flow directions (the least recently used each time); the direction's later messages are not read.",
        );
        let tls_shape_bytes = IntGauge::with_opts(Opts::new(
            names::TLS_SHAPE_BYTES,
            "Bytes of kernel memory holding the TLS flows whose shape is being recorded for encrypted_stratum (keys and values; the table holds at most 8,192 flows, 2.8 MB).",
        ))
        .expect("valid metric");
        let tls_shape_evictions = counter(
            names::TLS_SHAPE_EVICTIONS,
            "TLS flows the kernel's shape table evicted to make room before the agent judged them (started minus judged minus entries).",
        );
        for m in [
            Box::new(inspect_candidates.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(reassembly_bytes.clone()),
            Box::new(reassembly_evictions.clone()),
            Box::new(inflate_bytes.clone()),
            Box::new(inflate_evictions.clone()),
            Box::new(tls_shape_bytes.clone()),
            Box::new(tls_shape_evictions.clone()),
            Box::new(flow_evictions.clone()),
            Box::new(opening_bytes.clone()),
            Box::new(opening_evictions.clone()),
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
            peer_packets: counter_vec(
                &r,
                names::PEER_PACKETS,
                "IP packets with an endpoint in a watched range, per range, direction and neighbour ([[peers]]: the outermost VLAN tag, else the source address of traffic from the range and the destination address of traffic to it; peer=\"other\" for none); per range and direction they add up to packets_total summed over iface.",
                &["range", "direction", "peer"],
            ),
            peer_bytes: counter_vec(
                &r,
                names::PEER_BYTES,
                "IP bytes of those packets, per range, direction and neighbour; they add up to bytes_total summed over iface.",
                &["range", "direction", "peer"],
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
                "Flows with a sign of mining but no readable Stratum, each once per reason: pool_endpoint (traffic with a configured pool address), stratum_v2 (the V2 Noise handshake's shape: a 64- or 234-byte payload on a pool port, the 64/234 pair on any port), tls_no_sni (a ClientHello without server_name towards a pool), tls_pool_sni (a ClientHello naming a server in a pool domain, any port), pool_dns (a DNS query for a name in a pool domain), encrypted_stratum (a TLS flow whose records over time have Stratum's shape: submits answered by small replies, unasked jobs of one size, few bytes).",
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
            opening_bytes,
            opening_evictions,
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
            reassembly_bytes,
            reassembly_evictions,
            inflate_bytes,
            inflate_evictions,
            tls_shape_bytes,
            tls_shape_evictions,
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
            shares: counter_vec(
                &r,
                names::SHARES,
                "Shares miners submitted, each once (retransmissions not again), per range (either endpoint; unwatched outside every range), coin and result: accepted or rejected by the pool's reply, unknown when no reply came within 30 s or the flow was forgotten first.",
                &["range", "coin", "result"],
            ),
            share_hashes: float_counter_vec(
                &r,
                names::SHARE_HASHES,
                "Hashes the submitted shares represent (each share's difficulty on its job, added when submitted), per range and coin; its rate is the hash rate.",
                &["range", "coin"],
            ),
            shares_unknown_difficulty: counter_vec(
                &r,
                names::SHARES_UNKNOWN_DIFFICULTY,
                "Shares submitted before their flow's difficulty was known (a sensor started mid-session): counted in shares_total, adding no hashes.",
                &["range", "coin"],
            ),
            reported_hashrate: float_gauge_vec(
                &r,
                names::REPORTED_HASHRATE,
                "Sum over flows whose miner reported its own rate (eth_submitHashrate, mining.hashrate) within the last 5 minutes of the latest rate, in hashes per second, per range and coin.",
                &["range", "coin"],
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
        for v in [&m.peer_packets, &m.peer_bytes] {
            v.with_label_values(&["r", "from", "other"]);
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
        m.shares.with_label_values(&["r", "monero", "accepted"]);
        m.share_hashes.with_label_values(&["r", "monero"]);
        m.shares_unknown_difficulty
            .with_label_values(&["r", "monero"]);
        m.reported_hashrate.with_label_values(&["r", "ethereum"]);
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
