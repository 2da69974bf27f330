//! What a replay found: the `Report` every output is written from (terminal summary, JSON,
//! OpenMetrics, HTML), and which counters it holds.

use std::collections::BTreeMap;

use prometheus::proto::MetricFamily;
use serde::Serialize;

use crate::metrics::names;

/// The counters replay reports, as exported by `run`.
const REPORTED: [&str; 11] = [
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
];

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
                // Whole numbers: share hashes (a float counter) are rounded down.
                value: m.get_counter().get_value() as u64,
            });
        }
    }
    out
}
