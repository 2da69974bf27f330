//! `replay --report OUT.html`: one self-contained page (inline SVG, no scripts, no external
//! resources) that answers an analyst's four questions of each watched range: how much mining it
//! does and how that changes (hash rate from shares, its last-third/first-third ratio beside that
//! of new flows), with what (coins, miner families, pools by hashes), at what times (timelines on
//! a true time axis, the hour-of-week map) and, where neighbours are configured (`[[peers]]`),
//! through whom (each neighbour's share of the range's bytes over time).
//!
//! - `figures` reads the numbers from the replay's [`Report`] (also used by the terminal summary);
//! - `chart` draws them with plotters' SVG backend;
//! - `time` and `units` format dates, ticks and SI figures.

pub mod chart;
pub mod figures;
pub mod time;
pub mod units;

use std::fmt::Write as _;

use self::{
    chart::{Combine, Line, Mark, Timeline},
    figures::{Figures, RangeFigures, Top},
    time::{UtcOffset, datetime},
    units::{ratio, si},
};
use super::results::Report;
use crate::metrics::names;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An SVG document as an element of the page: HTML needs no namespace declaration, and without
/// it the page names no address at all (nothing in it could be fetched).
fn inline(svg: &str) -> String {
    svg.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1)
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
    let mut out = String::from("<h2>Logins by coin and miner software</h2>");
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

/// The headline of a range in words, as the page and the terminal summary print it.
pub fn headline_text(r: &RangeFigures, offset: UtcOffset) -> String {
    let h = &r.headline;
    let mut out = String::new();
    if let Some((a, b)) = h.period {
        let _ = write!(
            out,
            "{} to {} {offset}: ",
            datetime(a, offset),
            datetime(b, offset)
        );
    }
    match h.mean_rate {
        Some(rate) => {
            let _ = write!(out, "mean hash rate {}", si(rate, "H/s"));
        }
        None => out.push_str("mean hash rate unknown (a period of one instant)"),
    }
    // Whole shares (an empty sum of floats is -0).
    let shares = h.shares.max(0.0) as u64;
    let _ = write!(out, " ({shares} shares, {} hashes); ", si(h.hashes, ""));
    let third = |t: Option<(f64, f64)>| t.map_or("n/a".to_string(), |(a, b)| ratio(a, b));
    let _ = write!(
        out,
        "hash rate {}, new flows {} (last third of the period against the first)",
        third(h.hash_thirds),
        third(h.flow_thirds)
    );
    let tops: Vec<String> = [
        ("coin", &h.top_coin),
        ("miner", &h.top_agent),
        ("pool", &h.top_pool),
    ]
    .iter()
    .filter_map(|(what, v)| v.as_ref().map(|v| format!("{what} {v}")))
    .collect();
    if !tops.is_empty() {
        let _ = write!(out, "; top {}", tops.join(", "));
    }
    if let Some((peer, share)) = &h.top_peer {
        let _ = write!(
            out,
            "; most bytes through neighbour {peer} ({:.1}%)",
            100.0 * share
        );
    }
    out
}

fn headline_html(r: &RangeFigures, offset: UtcOffset) -> String {
    let h = &r.headline;
    let mut out = String::from("<div class=\"headline\">");
    let _ = write!(
        out,
        "<p class=\"summary\">{}</p>",
        escape(&headline_text(r, offset))
    );
    let cell = |t: Option<(f64, f64)>, unit: &str| match t {
        Some((a, b)) => (si(a, unit), si(b, unit), ratio(a, b)),
        None => ("n/a".into(), "n/a".into(), "n/a".into()),
    };
    let (ha, hb, hr) = cell(h.hash_thirds, "");
    let (fa, fb, fr) = cell(h.flow_thirds, "");
    let _ = write!(
        out,
        "<table class=\"thirds\"><tr><th></th><th>first third</th><th>last third</th><th>ratio</th></tr>\
         <tr><td>hashes</td><td>{ha}</td><td>{hb}</td><td class=\"ratio\" data-ratio=\"hashrate\">{hr}</td></tr>\
         <tr><td>new Stratum flows</td><td>{fa}</td><td>{fb}</td><td class=\"ratio\" data-ratio=\"flows\">{fr}</td></tr></table>"
    );
    out.push_str("</div>");
    out
}

fn top_table(what: &str, rows: &[Top]) -> String {
    let total: f64 = rows.iter().map(|t| t.hashes).sum();
    let mut out = format!(
        "<table class=\"top\"><tr><th>{what}</th><th>hashes</th><th>share of hashes</th><th>shares</th></tr>"
    );
    for t in rows.iter().take(10) {
        let part = if total > 0.0 {
            format!("{:.1}%", 100.0 * t.hashes / total)
        } else {
            "-".into()
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td title=\"{:.0}\">{}</td><td>{part}</td><td>{}</td></tr>",
            escape(&t.name),
            t.hashes,
            si(t.hashes, ""),
            t.shares
        );
    }
    if rows.len() > 10 {
        let _ = write!(
            out,
            "<tr><td colspan=\"4\">and {} more</td></tr>",
            rows.len() - 10
        );
    }
    out.push_str("</table>");
    out
}

/// The hour-of-week figures as a table (the map's numbers, to copy or check).
fn week_table(cells: &[[f64; 24]; 7]) -> String {
    let mut out = String::from("<table class=\"week\"><tr><th></th>");
    for h in 0..24 {
        let _ = write!(out, "<th>{h:02}</th>");
    }
    out.push_str("</tr>");
    for (d, row) in cells.iter().enumerate() {
        let _ = write!(out, "<tr><th>{}</th>", chart::WEEKDAYS[d]);
        for (h, v) in row.iter().enumerate() {
            let _ = write!(out, "<td data-cell=\"{d}-{h}\">{v:.0}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
    out
}

fn range_section(report: &Report, f: &Figures, r: &RangeFigures, offset: UtcOffset) -> String {
    let g = &f.grid;
    let name = escape(&r.range);
    let mut out = format!("<section class=\"range\" id=\"range-{name}\"><h2>Range {name}</h2>");
    out.push_str(&headline_html(r, offset));

    // Hash rate: each bucket's hashes over its length.
    let rate: Vec<f64> = r.hashes.iter().map(|h| h / g.bucket).collect();
    let mut lines = vec![Line {
        name: "from shares",
        values: &rate,
        mark: Mark::Bars,
    }];
    if let Some(reported) = &r.reported_rate {
        lines.push(Line {
            name: "reported by miners",
            values: reported,
            mark: Mark::Steps,
        });
    }
    let charts: Vec<String> = {
        let mut charts = vec![chart::timeline(
            g,
            offset,
            &Timeline {
                title: "Hash rate",
                unit: "H/s",
                combine: Combine::Mean,
                lines,
            },
        )];
        let steps = |title: &'static str, unit: &'static str, s: &figures::Series| {
            chart::timeline(
                g,
                offset,
                &Timeline {
                    title,
                    unit,
                    combine: Combine::Sum,
                    lines: s
                        .iter()
                        .map(|(k, v)| Line {
                            name: k.as_str(),
                            values: v,
                            mark: Mark::Steps,
                        })
                        .collect(),
                },
            )
        };
        if !r.shares.is_empty() {
            charts.push(steps("Shares by result", "", &r.shares));
        }
        if !r.bytes.is_empty() {
            charts.push(steps("IP bytes by direction", "B", &r.bytes));
        }
        charts.push(chart::timeline(
            g,
            offset,
            &Timeline {
                title: "New Stratum flows",
                unit: "",
                combine: Combine::Sum,
                lines: vec![Line {
                    name: "new flows",
                    values: &r.flows,
                    mark: Mark::Bars,
                }],
            },
        ));
        if !r.suspects.is_empty() {
            charts.push(steps("Suspect flows by reason", "", &r.suspects));
        }
        if !r.peers.is_empty() {
            charts.push(chart::shares(
                g,
                offset,
                "Each neighbour's share of the range's IP bytes",
                &r.peers,
            ));
        }
        charts
    };
    for svg in charts {
        let _ = write!(out, "<figure>{}</figure>", inline(&svg));
    }

    out.push_str("<h3>Hash rate by hour of the week</h3>");
    match figures::week(g, &r.hashes, offset) {
        Some(cells) => {
            let _ = write!(
                out,
                "<figure>{}</figure><details><summary>The map's figures (hashes)</summary>{}</details>",
                inline(&chart::heatmap(
                    &format!("Hashes by hour of the week ({offset})"),
                    &cells,
                    offset
                )),
                week_table(&cells)
            );
        }
        None => out.push_str(
            "<p>The hour-of-week map needs buckets of one hour or less: replay again with <code>--bucket 1h</code>.</p>",
        ),
    }

    out.push_str("<h3>Who did the work</h3><div class=\"tops\">");
    let r_name = r.range.as_str();
    let coins = figures::top(report, r_name, figures::coin);
    if coins.is_empty() {
        out.push_str("<p>No share was seen: the logins below say what mined.</p>");
    } else {
        out.push_str(&top_table("coin", &coins));
        out.push_str(&top_table(
            "miner family",
            &figures::top(report, r_name, figures::agent),
        ));
        out.push_str(&top_table(
            "pool (address:port)",
            &figures::top(report, r_name, figures::pool),
        ));
    }
    out.push_str("</div></section>");
    out
}

const STYLE: &str = "body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222;padding:0 1em}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}\
th:first-child,td:first-child{text-align:left}.ratio{font-size:1.3em;font-weight:bold}\
figure{margin:.8em 0}figure svg{width:100%;height:auto}.summary{font-size:1.1em}\
.tops{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}\
table.week td,table.week th{padding:1px 3px;font-size:.75em}\
@page{size:A4;margin:12mm}@media print{body{max-width:none;margin:0}section.range{break-before:page}figure{break-inside:avoid}}";

/// The whole page, dates and the hour-of-week map in `offset`.
pub fn html(report: &Report, offset: UtcOffset) -> String {
    let mut out = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>mining-sensor replay report</title><style>{STYLE}</style></head><body><h1>mining-sensor replay report</h1>"
    );
    let files: Vec<String> = report.files.iter().map(|f| escape(&f.file)).collect();
    let packets: u64 = report.files.iter().map(|f| f.packets).sum();
    let _ = write!(out, "<p>{packets} packets from {}; ", files.join(", "));
    match (report.first_packet, report.last_packet) {
        (Some(a), Some(b)) => {
            let _ = write!(
                out,
                "capture period {} to {} {offset}, buckets of {}.</p>",
                datetime(a, offset),
                datetime(b, offset),
                humantime::format_duration(std::time::Duration::from_secs_f64(
                    report.bucket_seconds
                ))
            );
        }
        _ => out.push_str("no packets.</p>"),
    }
    out.push_str(
        "<p>Hash rate is the work the miners' shares stand for: each share adds the difficulty in force on its flow, in hashes (<code>mining_sensor_share_hashes_total</code>), over each bucket's length. \
         The ratios compare the last third of the capture period with the first: a proxy that merges many miners into one connection, or one miner that mines for a month on one connection, shows in hash rate while new flows stay flat.</p>",
    );
    let f = figures::figures(report);
    if f.ranges.is_empty() {
        out.push_str("<p>No watched range saw traffic in this capture.</p>");
    }
    for r in &f.ranges {
        out.push_str(&range_section(report, &f, r, offset));
    }
    out.push_str(&logins_table(report));
    for file in report.files.iter().filter(|f| !f.problems.is_empty()) {
        let _ = write!(
            out,
            "<p>{}: {} records skipped: {}</p>",
            escape(&file.file),
            file.skipped,
            escape(&file.problems.join("; "))
        );
    }
    out.push_str("</body></html>\n");
    out
}
