//! The analyst report (`replay --report`) rendered in a real browser: headless Chromium opens the
//! page, a measuring script reads what it laid out (tick labels, bar edges, ratios, the
//! hour-of-week figures), and the test holds that against facts worked out by hand from captures
//! made here. A screenshot of each page is kept beside the build (`target/tmp/report-*.png`).
//! Needs root (BPF_PROG_TEST_RUN) and Chromium (`cargo xtask setup` installs it).
//!
//! Real-world ranges appear only inside the capture files: the miner is in North Korea's
//! 175.45.176.0/22, the embedded default configuration's range `kp`.

mod common;

use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use common::{replay, tmp, write_pcap};
use pcap_file::DataLink;
use serde_json::Value;
use test_support::Packet;

/// 2019-03-04T00:00:00Z, a Monday.
const MONDAY: u64 = 1_551_657_600;
const DAY: u64 = 86_400;
const MINER: Ipv4Addr = Ipv4Addr::new(175, 45, 178, 10);
const POOL: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 5);
const WALLET: &str = "4AdUndXHHZ6cfufTMvppY6JwXNouMBzSkbLYfpAV5Usx3skxNgYeYTRj5UzqtReoS44qo9mtmXCqY45DJ852K5Jv2684Rge";

/// One miner's connection: its packets, the submits numbered so that each is a share of its own.
struct Session {
    packets: Vec<(Duration, Vec<u8>)>,
    submits: u32,
}

impl Session {
    /// Login at `t` (seconds), and the pool's reply with target b88d0600: 10,000 hashes a share
    /// (contract: 2^32 / 0x00068db8 = 4,294,967,296 / 429,496 = 10,000).
    fn start(t: u64) -> Self {
        let login = format!(
            "{{\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"login\",\"params\":{{\"login\":\"{WALLET}\",\"pass\":\"x\",\"agent\":\"XMRig/6.16.0 (Linux x86_64) libuv/1.42.0 gcc/5.4.0\",\"algo\":[\"rx/0\"]}}}}\n"
        );
        let reply = b"{\"id\":1,\"jsonrpc\":\"2.0\",\"error\":null,\"result\":{\"id\":\"7d\",\"job\":{\"blob\":\"0b0b\",\"job_id\":\"1\",\"target\":\"b88d0600\"},\"status\":\"OK\"}}\n";
        let mut s = Self {
            packets: Vec::new(),
            submits: 0,
        };
        s.up(Duration::from_secs(t), login.as_bytes());
        s.down(Duration::from_secs(t + 1), reply);
        s
    }

    fn up(&mut self, at: Duration, payload: &[u8]) {
        self.packets
            .push((at, Packet::tcp4(MINER, POOL, 40001, 3333, payload).build()));
    }

    fn down(&mut self, at: Duration, payload: &[u8]) {
        self.packets
            .push((at, Packet::tcp4(POOL, MINER, 3333, 40001, payload).build()));
    }

    /// One share at `t` seconds, accepted a second later.
    fn share(&mut self, t: u64) {
        self.submits += 1;
        let id = self.submits + 1;
        let submit = format!(
            "{{\"id\":{id},\"jsonrpc\":\"2.0\",\"method\":\"submit\",\"params\":{{\"id\":\"7d\",\"job_id\":\"1\",\"nonce\":\"{:08x}\",\"result\":\"ab\"}}}}\n",
            self.submits
        );
        let ok = format!(
            "{{\"id\":{id},\"jsonrpc\":\"2.0\",\"error\":null,\"result\":{{\"status\":\"OK\"}}}}\n"
        );
        self.up(Duration::from_secs(t), submit.as_bytes());
        self.down(Duration::from_secs(t + 1), ok.as_bytes());
    }
}

/// Replays `packets` with `--report` (and `args`), opens the page in Chromium, and returns what
/// the measuring script read from the rendered page, and the replay's JSON.
fn rendered(name: &str, packets: &[(Duration, Vec<u8>)], args: &[&str]) -> (Value, Value) {
    let dir = tmp(&format!("report-{name}"));
    let pcap = dir.join(format!("{name}.pcap"));
    write_pcap(&pcap, DataLink::ETHERNET, packets);
    let page = dir.join(format!("{name}.html"));
    let mut all = vec!["--report", page.to_str().unwrap()];
    all.extend_from_slice(args);
    let (_, json) = replay(&all, &[&pcap]);
    let html = std::fs::read_to_string(&page).unwrap();
    // Self-contained: nothing in the page could be fetched.
    for outside in ["http://", "https://", "<script", "<link", "@import", "url("] {
        assert!(!html.contains(outside), "{outside} in the page");
    }
    assert!(!html.contains(WALLET), "no wallet in the page");
    screenshot(&page, name);
    // The measuring script runs in a copy of the page, so the report itself stays script-free.
    let measured = dir.join(format!("{name}-measured.html"));
    std::fs::write(
        &measured,
        html.replace("</body>", &format!("<script>{MEASURE}</script></body>")),
    )
    .unwrap();
    let dom = chromium(&["--dump-dom"], &measured);
    // The last one: the script's own text names the element too.
    let start = dom.rfind("<pre id=\"measured\">").expect("the script ran") + 19;
    let end = start + dom[start..].find("</pre>").unwrap();
    let text = dom[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    (serde_json::from_str(&text).unwrap(), json)
}

/// What the rendered page shows, read the way a person would: the hash-rate chart's tick labels
/// and bars (positions in CSS pixels), the ratio cells, the hour-of-week figures.
const MEASURE: &str = r#"
const svg = document.querySelector('section.range figure svg');
const centre = r => (r.left + r.right) / 2;
const out = {
  ticks: [...svg.querySelectorAll('text')]
    .filter(t => /^\d{4}-\d\d-\d\d|^\d\d:\d\d$/.test(t.textContent.trim()))
    .map(t => ({ text: t.textContent.trim(), x: centre(t.getBoundingClientRect()) })),
  bars: [...svg.querySelectorAll('rect')]
    .filter(r => r.getAttribute('fill') === '#0072B2')
    .map(r => { const b = r.getBoundingClientRect(); return { left: b.left, right: b.right }; })
    .sort((a, b) => a.left - b.left),
  ratios: Object.fromEntries([...document.querySelectorAll('[data-ratio]')]
    .map(e => [e.dataset.ratio, e.textContent.trim()])),
  summary: document.querySelector('.summary').textContent,
  week: Object.fromEntries([...document.querySelectorAll('table.week td')]
    .map(td => [td.dataset.cell, Number(td.textContent)])),
  tops: [...document.querySelectorAll('table.top tr')].map(tr => tr.innerText),
};
document.body.insertAdjacentHTML('beforeend',
  '<pre id="measured">' + JSON.stringify(out).replace(/&/g, '&amp;').replace(/</g, '&lt;') + '</pre>');
"#;

fn chromium(args: &[&str], page: &Path) -> String {
    let out = Command::new("timeout")
        .args([
            "120",
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
        ])
        .arg("--window-size=1200,900")
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs (cargo xtask setup installs it)");
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Keeps a picture of the page for people to look at (`target/tmp/report-NAME.png`), and the page
/// printed on A4 (`target/tmp/report-NAME.pdf`, Chromium's print of the page's `@page` size).
fn screenshot(page: &Path, name: &str) {
    let pdf = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("report-{name}.pdf"));
    let _ = std::fs::remove_file(&pdf);
    chromium(
        &[
            &format!("--print-to-pdf={}", pdf.display()),
            "--no-pdf-header-footer",
        ],
        page,
    );
    let printed = std::fs::read(&pdf).expect("a printed report");
    // A4 is 210 x 297 mm, 595 x 842 points: every page of the print has that media box.
    let text = String::from_utf8_lossy(&printed);
    let boxes: Vec<Vec<f64>> = text
        .split("/MediaBox [")
        .skip(1)
        .map(|b| {
            b[..b.find(']').unwrap()]
                .split_whitespace()
                .map(|n| n.parse().unwrap())
                .collect()
        })
        .collect();
    assert!(!boxes.is_empty(), "pages in the print");
    for b in boxes {
        assert!(
            (b[2] - 595.0).abs() < 1.5 && (b[3] - 842.0).abs() < 1.5,
            "A4: {b:?}"
        );
    }
    let png = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("report-{name}.png"));
    let _ = std::fs::remove_file(&png);
    chromium(
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1100,3200",
        ],
        page,
    );
    assert!(
        std::fs::metadata(&png).is_ok_and(|m| m.len() > 10_000),
        "a screenshot at {}",
        png.display()
    );
}

fn tick(m: &Value, label: &str) -> f64 {
    m["ticks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["text"] == label)
        .unwrap_or_else(|| panic!("no tick {label}: {}", m["ticks"]))["x"]
        .as_f64()
        .unwrap()
}

#[test]
fn a_tenfold_rise_on_one_connection_reads_ten_on_a_dated_axis() {
    // One connection over three days from Monday 2019-03-04 00:00 UTC: a share every hour on
    // Monday (at h:30), nothing on Tuesday, ten shares every hour on Wednesday, and a keepalive
    // at Wednesday 23:59:59 that ends the capture.
    let mut s = Session::start(MONDAY);
    for h in 0..24 {
        s.share(MONDAY + h * 3600 + 1800);
    }
    let wednesday = MONDAY + 2 * DAY;
    for h in 0..24 {
        for i in 0..10 {
            s.share(wednesday + h * 3600 + 1800 + 2 * i);
        }
    }
    s.up(
        Duration::from_secs(wednesday + DAY - 1),
        b"{\"id\":999,\"jsonrpc\":\"2.0\",\"method\":\"keepalived\",\"params\":{\"id\":\"7d\"}}\n",
    );
    let (m, json) = rendered("three-days", &s.packets, &[]);

    // The counts behind the page: 24 + 240 shares, each 10,000 hashes.
    let hashes = common::sample_sum(
        &json["totals"],
        "mining_sensor_share_hashes_total",
        &[("range", "kp")],
    );
    assert_eq!(hashes, 2_640_000);

    // Thirds of the period Monday 00:00:00 to Wednesday 23:59:59 (259,199 s, 86,399.7 s each):
    // Monday's 240,000 hashes (less 0.3 s of the last hour's share, 0.9 hashes) against
    // Wednesday's 2,400,000 (less as much): 10.0; one new flow on Monday, none on Wednesday.
    assert_eq!(m["ratios"]["hashrate"], "10.0×", "{m}");
    assert_eq!(m["ratios"]["flows"], "0.0×", "{m}");
    // Mean hash rate: 2,640,000 hashes over 259,199 s = 10.19 H/s.
    let summary = m["summary"].as_str().unwrap();
    assert!(summary.contains("mean hash rate 10.2 H/s"), "{summary}");
    assert!(
        summary.contains("top coin monero, miner xmrig, pool 198.51.100.5:3333"),
        "{summary}"
    );

    // A true time axis: every tick label is a date (three days: a tick each midnight), and
    // Tuesday, empty, is a gap exactly one day wide between Monday's last bar and Wednesday's
    // first, whose edges are Tuesday's and Wednesday's midnights.
    let labels: Vec<&str> = m["ticks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        ["2019-03-04", "2019-03-05", "2019-03-06", "2019-03-07"]
    );
    let day = tick(&m, "2019-03-06") - tick(&m, "2019-03-05");
    assert!(day > 200.0, "a day is {day} px wide");
    let bars = m["bars"].as_array().unwrap();
    // An hourly bar each hour of Monday and of Wednesday.
    assert_eq!(bars.len(), 48, "{m}");
    let edge = |i: usize, side: &str| bars[i][side].as_f64().unwrap();
    let gap = edge(24, "left") - edge(23, "right");
    // The page is laid out on whole SVG pixels (scaled to the column): within 1.5 CSS pixels.
    assert!((gap - day).abs() <= 1.5, "gap {gap} px, a day {day} px");
    assert!((edge(23, "right") - tick(&m, "2019-03-05")).abs() <= 1.5);
    assert!((edge(24, "left") - tick(&m, "2019-03-06")).abs() <= 1.5);

    // Hour of the week: Monday's hours 10,000 hashes each, Wednesday's 100,000, the rest zero.
    let week = m["week"].as_object().unwrap();
    assert_eq!(week.len(), 168);
    for (cell, v) in week {
        let (d, _) = cell.split_once('-').unwrap();
        let want = match d {
            "0" => 10_000.0,
            "2" => 100_000.0,
            _ => 0.0,
        };
        assert_eq!(v.as_f64().unwrap(), want, "cell {cell}");
    }
}

#[test]
fn a_session_lights_its_hour_of_the_week_in_the_chosen_offset() {
    // Wednesday 2019-03-06, 13:10 UTC: a login, then four shares at 13:15, 13:25, 13:35, 13:45:
    // 40,000 hashes, all in Wednesday's 13:00 hour (UTC), 22:00 at UTC+09:00.
    let t = MONDAY + 2 * DAY + 13 * 3600 + 600;
    let mut s = Session::start(t);
    for i in 0..4 {
        s.share(t + 300 + i * 600);
    }
    for (args, cell) in [(&[][..], "2-13"), (&["--utc-offset", "+09:00"][..], "2-22")] {
        let name = if args.is_empty() {
            "hour-utc"
        } else {
            "hour-kst"
        };
        let (m, _) = rendered(name, &s.packets, args);
        let week = m["week"].as_object().unwrap();
        assert_eq!(week[cell], 40_000.0, "{name}: {m}");
        let others: f64 = week
            .iter()
            .filter(|(k, _)| *k != cell)
            .map(|(_, v)| v.as_f64().unwrap())
            .sum();
        assert_eq!(others, 0.0, "{name}");
        // One session of 35 minutes: a single hour on the axis, named with its date.
        let first = m["ticks"][0]["text"].as_str().unwrap();
        let date = if args.is_empty() {
            "2019-03-06 13"
        } else {
            "2019-03-06 22"
        };
        assert!(first.starts_with(date), "{name}: {first}");
    }
}
