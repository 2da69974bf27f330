//! Replay's text outputs: OpenMetrics (`--openmetrics`) and the terminal summary. JSON is the
//! `Report` serialised as it is; the HTML page is `report`.

use std::{collections::BTreeMap, fmt::Write as _};

use super::{
    report::{figures::figures, headline_text, time::UtcOffset},
    results::{Report, is_gauge},
};
use crate::metrics::names;

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
        let (family, kind) = if is_gauge(metric) {
            (metric, "gauge")
        } else {
            (metric.strip_suffix("_total").unwrap_or(metric), "counter")
        };
        let _ = writeln!(out, "# TYPE {family} {kind}");
        for (labels, points) in by_labels {
            for (t, v) in points {
                let _ = writeln!(out, "{metric}{{{labels}}} {v} {t:.3}");
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

/// The terminal summary: each range's headline (as the HTML report's), then totals per range.
pub fn summary(report: &Report, offset: UtcOffset) -> String {
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
            names::PEER_PACKETS => format!("peer packets {dir} {}", s.labels["peer"]),
            names::PEER_BYTES => format!("peer bytes {dir} {}", s.labels["peer"]),
            names::STRATUM_PACKETS => {
                format!("stratum packets {dir} {}", s.labels["dialect"])
            }
            names::STRATUM_FLOWS => {
                format!("stratum flows {dir} {}", s.labels["dialect"])
            }
            names::SUSPECT_FLOWS => {
                format!("suspect flows {dir} {}", s.labels["reason"])
            }
            names::SHARES => format!(
                "shares coin={} result={}",
                s.labels["coin"], s.labels["result"]
            ),
            names::SHARE_HASHES => format!("share hashes coin={}", s.labels["coin"]),
            names::SHARES_UNKNOWN_DIFFICULTY => {
                format!("shares unknown difficulty coin={}", s.labels["coin"])
            }
            names::REPORTED_HASHRATE => {
                format!("reported hash rate at the end coin={}", s.labels["coin"])
            }
            _ => format!(
                "logins coin={} agent={}",
                s.labels["coin"], s.labels["agent"]
            ),
        };
        *by_range.entry(range).or_default().entry(key).or_default() += s.value;
    }
    for r in &figures(report).ranges {
        let _ = writeln!(out, "{}: {}", r.range, headline_text(r, offset));
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
