//! What a replay found: the `Report` every output is written from (terminal summary, JSON,
//! OpenMetrics, HTML), and which counters it holds.

use std::collections::BTreeMap;

use prometheus::proto::MetricFamily;
use serde::Serialize;

use crate::{
    activity::tally::{Who, Work},
    metrics::names,
};

/// The counters (and the one gauge, [`names::REPORTED_HASHRATE`]) replay reports, as exported by
/// `run`.
const REPORTED: [&str; 12] = [
    names::PACKETS,
    names::BYTES,
    names::PEER_PACKETS,
    names::PEER_BYTES,
    names::STRATUM_PACKETS,
    names::STRATUM_FLOWS,
    names::SUSPECT_FLOWS,
    names::MINER_LOGINS,
    names::SHARES,
    names::SHARE_HASHES,
    names::SHARES_UNKNOWN_DIFFICULTY,
    names::REPORTED_HASHRATE,
];

/// Whether `metric` is a gauge (a value at each bucket's end) rather than a counter.
pub fn is_gauge(metric: &str) -> bool {
    metric == names::REPORTED_HASHRATE
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
    /// Shares and hashes per range, coin, miner family and pool endpoint, most hashes first: who
    /// did the work (the metrics carry no pool label).
    pub activity: Vec<Activity>,
}

#[derive(Debug, Serialize)]
pub struct Activity {
    #[serde(flatten)]
    pub who: Who,
    #[serde(flatten)]
    pub work: Work,
}

pub(super) fn samples(families: &[MetricFamily]) -> Vec<Sample> {
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
                // Whole numbers: share hashes (a float counter) and the reported rate (hashes
                // per second) are rounded down.
                value: if is_gauge(f.name()) {
                    m.get_gauge().get_value() as u64
                } else {
                    m.get_counter().get_value() as u64
                },
            });
        }
    }
    out
}
