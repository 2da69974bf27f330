//! `replay --report OUT.html`: one self-contained page (inline SVG, no scripts, no external
//! resources) that answers "did mining from this range rise?" by looking: per range, new Stratum
//! flows and IP bytes per bucket, the ratio of new flows in the last third of the capture
//! period to the first third, and the miner logins by coin and agent.

use std::{collections::BTreeMap, fmt::Write as _};

use super::results::Report;
use crate::metrics::names;

/// New Stratum flows and IP bytes per bucket for one range.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Timeline {
    /// (bucket end, new flows, bytes) per bucket.
    pub points: Vec<(f64, u64, u64)>,
}

/// The before/after comparison: new flows in the first and last thirds of the capture period.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thirds {
    pub first: u64,
    pub last: u64,
}

impl Thirds {
    pub fn ratio(&self) -> Option<f64> {
        (self.first > 0).then(|| self.last as f64 / self.first as f64)
    }
}

/// Per-range timelines from the report's cumulative bucket samples.
pub fn timelines(report: &Report) -> BTreeMap<String, Timeline> {
    let mut out: BTreeMap<String, Timeline> = BTreeMap::new();
    let mut before: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for b in &report.buckets {
        let mut now: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for s in &b.samples {
            let Some(range) = s.labels.get("range") else {
                continue;
            };
            let e = now.entry(range.clone()).or_default();
            match s.metric.as_str() {
                names::STRATUM_FLOWS => e.0 += s.value,
                names::BYTES => e.1 += s.value,
                _ => {}
            }
        }
        for (range, (flows, bytes)) in now {
            let (pf, pb) = before.get(&range).copied().unwrap_or_default();
            out.entry(range.clone())
                .or_default()
                .points
                .push((b.end, flows - pf, bytes - pb));
            before.insert(range, (flows, bytes));
        }
    }
    out
}

/// New flows whose bucket starts in the first, and in the last, third of the capture period.
pub fn thirds(report: &Report, t: &Timeline) -> Option<Thirds> {
    let (first, last) = (report.first_packet?, report.last_packet?);
    let third = (last - first) / 3.0;
    let mut th = Thirds { first: 0, last: 0 };
    for &(end, flows, _) in &t.points {
        let start = end - report.bucket_seconds;
        if start < first + third {
            th.first += flows;
        } else if start >= last - third {
            th.last += flows;
        }
    }
    Some(th)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn date(unix: f64) -> String {
    // Civil date from days since the epoch (proleptic Gregorian), without a date crate.
    let days = (unix / 86_400.0).floor() as i64;
    let secs = (unix - days as f64 * 86_400.0) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60
    )
}

/// A bar chart of `values` (one bar per bucket) as inline SVG.
fn bars(values: &[u64], color: &str, label: &str) -> String {
    let (w, h) = (900.0, 160.0);
    let max = values.iter().copied().max().unwrap_or(0).max(1) as f64;
    let bw = w / values.len().max(1) as f64;
    let mut svg = format!(
        "<svg viewBox=\"0 0 {w} {}\" width=\"100%\" role=\"img\" aria-label=\"{label}\"><text x=\"0\" y=\"12\" font-size=\"12\">{label} (max {max})</text>",
        h + 20.0
    );
    for (i, v) in values.iter().enumerate() {
        let bh = *v as f64 / max * h;
        let _ = write!(
            svg,
            "<rect x=\"{:.2}\" y=\"{:.2}\" width=\"{:.2}\" height=\"{bh:.2}\" fill=\"{color}\"><title>{v}</title></rect>",
            i as f64 * bw,
            20.0 + h - bh,
            (bw - 1.0).max(0.5)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Miner logins per range, coin and agent (the replay's totals), most first.
pub fn logins(report: &Report) -> Vec<(String, String, String, u64)> {
    let mut rows: Vec<(String, String, String, u64)> = report
        .totals
        .iter()
        .filter(|s| s.metric == names::MINER_LOGINS && s.value > 0)
        .map(|s| {
            let l = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
            (l("range"), l("coin"), l("agent"), s.value)
        })
        .collect();
    rows.sort_by(|a, b| b.3.cmp(&a.3).then_with(|| a.cmp(b)));
    rows
}

fn logins_table(report: &Report) -> String {
    let rows = logins(report);
    let mut out = String::from("<h2>Coins and miner software</h2>");
    if rows.is_empty() {
        out.push_str("<p>No miner login was read in this capture.</p>");
        return out;
    }
    out.push_str("<p>Miner logins read by deep inspection (each flow once), by range, coin and miner software; no login or wallet is kept.</p><table><tr><th>range</th><th>coin</th><th>agent</th><th>logins</th></tr>");
    for (range, coin, agent, n) in rows {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{n}</td></tr>",
            escape(&range),
            escape(&coin),
            escape(&agent)
        );
    }
    out.push_str("</table>");
    out
}

pub fn html(report: &Report) -> String {
    let mut out = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>mining-sensor replay report</title><style>body{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th:first-child,td:first-child{text-align:left}.ratio{font-size:1.4em;font-weight:bold}</style></head><body><h1>mining-sensor replay report</h1>",
    );
    let files: Vec<String> = report.files.iter().map(|f| escape(&f.file)).collect();
    let packets: u64 = report.files.iter().map(|f| f.packets).sum();
    let _ = write!(out, "<p>{packets} packets from {}; ", files.join(", "));
    match (report.first_packet, report.last_packet) {
        (Some(a), Some(b)) => {
            let _ = write!(
                out,
                "capture period {} to {} UTC, buckets of {}.</p>",
                date(a),
                date(b),
                humantime::format_duration(std::time::Duration::from_secs_f64(
                    report.bucket_seconds
                ))
            );
        }
        _ => out.push_str("no packets.</p>"),
    }
    let lines = timelines(report);
    out.push_str("<h2>New Stratum flows, first third against last third of the period</h2><table><tr><th>range</th><th>first third</th><th>last third</th><th>ratio</th></tr>");
    for (range, t) in &lines {
        if let Some(th) = thirds(report, t) {
            let ratio = match th.ratio() {
                Some(r) => format!("{r:.1}×"),
                None if th.last > 0 => "rise from none".to_string(),
                None => "none in either".to_string(),
            };
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"ratio\">{ratio}</td></tr>",
                escape(range),
                th.first,
                th.last
            );
        }
    }
    out.push_str("</table>");
    for (range, t) in &lines {
        let _ = write!(out, "<h2>Range {}</h2>", escape(range));
        let flows: Vec<u64> = t.points.iter().map(|p| p.1).collect();
        let bytes: Vec<u64> = t.points.iter().map(|p| p.2).collect();
        out.push_str(&bars(&flows, "#c0392b", "new Stratum flows per bucket"));
        out.push_str(&bars(&bytes, "#2c7fb8", "IP bytes per bucket"));
        if let (Some(a), Some(b)) = (t.points.first(), t.points.last()) {
            let _ = write!(
                out,
                "<p>From the bucket ending {} to the bucket ending {} UTC.</p>",
                date(a.0),
                date(b.0)
            );
        }
    }
    out.push_str(&logins_table(report));
    for f in report.files.iter().filter(|f| !f.problems.is_empty()) {
        let _ = write!(
            out,
            "<p>{}: {} records skipped: {}</p>",
            escape(&f.file),
            f.skipped,
            escape(&f.problems.join("; "))
        );
    }
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(date(0.0), "1970-01-01 00:00");
        assert_eq!(date(1_551_398_400.0), "2019-03-01 00:00");
        assert_eq!(date(1_559_347_200.0 + 3_660.0), "2019-06-01 01:01");
        assert_eq!(date(951_782_400.0), "2000-02-29 00:00");
    }
}
