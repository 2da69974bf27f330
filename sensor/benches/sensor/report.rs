//! The analyst report at a year's scale: a year of hourly buckets for four ranges, written as
//! HTML and rendered by headless Chromium, against a blank page rendered the same way.

use std::{collections::BTreeMap, path::Path, process::Command};

use mining_sensor::{
    activity::tally::{Who, Work},
    metrics::names,
    replay::{Activity, Bucket, Report, Sample, report::time::UtcOffset},
};

use crate::median;

const RANGES: [&str; 4] = ["kp", "kp-2", "kp-3", "kp-4"];
const HOURS: usize = 365 * 24;

/// A year from 2025-01-01 (a Wednesday) in hourly buckets: each range mines on weekdays from
/// 09:00 to 17:00 at a rate that grows over the year, with shares, bytes, flows, suspects and a
/// reported rate, as cumulative samples like replay's.
pub(crate) fn year() -> Report {
    let t0 = 1_735_689_600.0;
    let mut cum: BTreeMap<(usize, &str, &str), u64> = BTreeMap::new();
    let mut buckets = Vec::with_capacity(HOURS);
    for h in 0..HOURS {
        let end = t0 + (h + 1) as f64 * 3600.0;
        let weekday = (h / 24 + 2) % 7; // Monday 0
        let hour = h % 24;
        let working = weekday < 5 && (9..17).contains(&hour);
        let mut samples = Vec::new();
        for (r, range) in RANGES.iter().enumerate() {
            let shares = if working {
                10 + (h / 876) as u64 * (r as u64 + 1)
            } else {
                0
            };
            let mut add = |metric: &'static str, label: &'static str, v: u64| {
                *cum.entry((r, metric, label)).or_default() += v;
            };
            add(names::SHARE_HASHES, "", shares * 120_000);
            add(names::SHARES, "accepted", shares);
            add(names::SHARES, "rejected", (shares > 0) as u64);
            add(names::BYTES, "from", 2_000 + shares * 180);
            add(names::BYTES, "to", 1_500 + shares * 60);
            add(names::STRATUM_FLOWS, "", (working && hour == 9) as u64);
            add(names::SUSPECT_FLOWS, "tls_no_sni", (hour == 12) as u64);
            for ((rr, metric, label), v) in cum.range((r, "", "")..(r + 1, "", "")) {
                debug_assert_eq!(*rr, r);
                let mut labels = BTreeMap::from([("range".to_string(), range.to_string())]);
                let key = match *metric {
                    names::SHARES => Some("result"),
                    names::BYTES | names::SUSPECT_FLOWS => Some("direction"),
                    _ => None,
                };
                if let Some(k) = key {
                    labels.insert(k.to_string(), label.to_string());
                }
                if *metric == names::SUSPECT_FLOWS {
                    labels.insert("direction".into(), "from".into());
                    labels.insert("reason".into(), label.to_string());
                }
                if *metric == names::SHARE_HASHES || *metric == names::SHARES {
                    labels.insert("coin".into(), "monero".into());
                }
                samples.push(Sample {
                    metric: metric.to_string(),
                    labels,
                    value: *v,
                });
            }
            if working {
                samples.push(Sample {
                    metric: names::REPORTED_HASHRATE.to_string(),
                    labels: BTreeMap::from([
                        ("range".to_string(), range.to_string()),
                        ("coin".to_string(), "monero".to_string()),
                    ]),
                    value: shares * 120_000 / 3600,
                });
            }
        }
        buckets.push(Bucket { end, samples });
    }
    let totals = buckets
        .last()
        .map(|b| {
            b.samples
                .iter()
                .map(|s| Sample {
                    metric: s.metric.clone(),
                    labels: s.labels.clone(),
                    value: s.value,
                })
                .collect()
        })
        .unwrap_or_default();
    let activity = RANGES
        .iter()
        .flat_map(|r| {
            (0..20).map(move |p| Activity {
                who: Who {
                    range: r.to_string(),
                    coin: "monero",
                    agent: if p % 2 == 0 { "xmrig" } else { "xmr-stak" },
                    pool: format!("198.51.100.{p}:3333"),
                },
                work: Work {
                    shares: 1000 - p as u64,
                    hashes: (1000 - p) as f64 * 120_000.0,
                },
            })
        })
        .collect();
    Report {
        files: Vec::new(),
        bucket_seconds: 3600.0,
        first_packet: Some(t0),
        last_packet: Some(t0 + HOURS as f64 * 3600.0 - 1.0),
        buckets,
        totals,
        events: Vec::new(),
        activity,
    }
}

/// Milliseconds from navigation start to a laid-out page, as Chromium measures it, for `page`.
fn render_ms(page: &Path) -> f64 {
    let html = std::fs::read_to_string(page).unwrap();
    let probe = page.with_extension("probe.html");
    // Once loaded, layout forced (a box measured), then the time since navigation started.
    let script = "<script>window.addEventListener('load',()=>{document.body.getBoundingClientRect();\
        const ms=performance.now();document.body.insertAdjacentHTML('beforeend',\
        '<pre id=\"ms\">'+ms+'</pre>')})</script>";
    std::fs::write(
        &probe,
        html.replacen("</body>", &format!("{script}</body>"), 1),
    )
    .unwrap();
    let out = Command::new("timeout")
        .args([
            "120",
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
        ])
        .args(["--window-size=1200,900", "--dump-dom"])
        .arg(format!("file://{}", probe.display()))
        .output()
        .expect("chromium (cargo xtask setup installs it)");
    let dom = String::from_utf8_lossy(&out.stdout);
    let at = dom.rfind("<pre id=\"ms\">").expect("the probe ran") + 13;
    let end = at + dom[at..].find("</pre>").unwrap();
    let _ = std::fs::remove_file(&probe);
    dom[at..end].parse().unwrap()
}

/// (page size in MB, render ms of the year's page, render ms of a blank page).
pub(crate) fn report_year(dir: &Path, runs: usize) -> (f64, f64, f64) {
    let page = dir.join("report-year.html");
    let html = mining_sensor::replay::report::html(&year(), UtcOffset(0));
    std::fs::write(&page, &html).unwrap();
    let blank = dir.join("report-blank.html");
    std::fs::write(&blank, "<!doctype html><html><body></body></html>").unwrap();
    let (mut year_ms, mut blank_ms) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        year_ms.push(render_ms(&page));
        blank_ms.push(render_ms(&blank));
    }
    (html.len() as f64 / 1e6, median(year_ms), median(blank_ms))
}
