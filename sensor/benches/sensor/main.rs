//! `cargo xtask bench [--quick]`: what the sensor costs, with every baseline measured in the same
//! run. (`cargo xtask bench --against <rev>` compares this program with another revision's
//! instead: `against`; `cargo xtask profile <row>` samples where one row's time goes: `profile`.) Writes `target/bench/summary.json`, prints a table, and (full runs) rewrites
//! `BENCHMARKS.md`. Needs root: it loads BPF programs and creates network namespaces.
//!
//! Figures (each the median of repeated runs):
//! - `*_ns`: nanoseconds per packet of the real program with the embedded default configuration
//!   (range `kp`), through BPF_PROG_TEST_RUN with `repeat`, the kernel's own per-run average, over
//!   21 runs interleaved with the baseline's (`repeat` 2,000,000, or 500,000 with `--quick`),
//!   spread over `PER_PACKET_LOADS` loads of the program in turn;
//!   `xdp_pass_baseline_ns` is the object's trivial `bench_pass` program over the same packet;
//! - `*_1m_ns`: the same with 1,000,000 watched IPv4 prefixes loaded besides `kp`;
//! - `*_bpf_loop_ns`: the login, the share and the DNS query through the program's build for
//!   kernels before 6.9 (`sensor_compat`, whose loops are `bpf_loop` callbacks), the same way;
//! - `stratum_submit_copied_ns`: the share as a live flow's shares go, handed to deep inspection
//!   (copied into the sample ring, 2,000 copies between reads of the ring; see
//!   `per_packet_copied`), and its `_baseline_ns` run the same way;
//! - `stratum_submit_vxlan_ns`, `stratum_submit_erspan_ns`, `unwatched_tcp_vxlan_ns`: the share
//!   and the unwatched TLS record as a remote mirror session delivers them (`packets::tunneled`),
//!   through a program loaded with `decapsulate = ["erspan", "vxlan"]`, the same way;
//! - `crafted_*_ns`: the worst packet of each family a flooder can craft (`test_support::crafted`:
//!   blank-prefixed, escaped, pretty-printed and marker-laden JSON to a pool port, a masked
//!   WebSocket frame, the longest DNS name, a ClientHello with 32 extensions and a long name);
//! - `stratum_login_new_flow_ns`: the login as the first packet of its flow, one run per sample
//!   (see `per_packet_first`), and its `_baseline_ns` run the same way;
//!   `stratum_login_new_flow_batched_ns`: the same warm, through replay's batch entry, logins
//!   opening their flows one after another (see `per_packet_first_batched`): the batch's figure
//!   over a frame the program passes at once (not IP), plus that frame's own `not_ip_ns`; its
//!   `_baseline_ns` is `not_ip_baseline_ns`, XDP_PASS over that frame. Every login goes to
//!   one pool endpoint, so all but the run's first are decided at their method
//!   (`sensor_common::pools`); `stratum_login_new_pool_batched_ns` is the same with every login
//!   to an endpoint never seen, each reading its evidence;
//! - `veth_throughput_ratio`: packets per second received on a veth with the sensor attached in
//!   native mode, over the same without any program (`veth_pps_with_xdp_pass`: with the trivial
//!   program); the traffic comes from a generator in a second namespace, the object's `bench_tx`
//!   program run with BPF_F_TEST_XDP_LIVE_FRAMES, bounded in time, so that frames reach the
//!   receiving veth as XDP frames with or without a program there (GRO on in every mode);
//! - `replay_pps`, `ndpireader_pps`: packets per second of `mining-sensor replay` and of
//!   `ndpiReader -q` on the same capture, wall clock, start-up included, for one long mining
//!   session (655,000 packets of one flow, three in five a JSON message: the scanner's worst
//!   case, and one flow cannot spread over CPUs);
//!   `replay_transit_pps`, `ndpireader_transit_pps`: the same on a transit link's mix (mostly TLS
//!   and ACKs between thousands of hosts, 5% Stratum), which replay spreads over every CPU by flow;
//!   `replay_startup_s`: wall clock of replaying a one-packet capture (loading and verifying the
//!   program);
//! - `report_year_mb`, `report_year_render_ms`: the analyst report (`replay --report`) of a year
//!   of hourly buckets for four ranges: its size, and the milliseconds from navigation start to
//!   the laid-out page in headless Chromium (the page's own `performance.now()` at its load
//!   event, after forcing layout); `report_blank_render_ms`: a blank page measured the same way;
//! - `drain_ms_1m_prefixes_64k_flows`: one drain cycle of the agent's `Drainer` with 1,000,000
//!   prefixes and 65,536 flows in the flow table; `agent_rss_mib`: resident memory of this
//!   process then, which holds what the agent holds (the loaded program, its maps' user-side
//!   copies of the prefixes, the metrics).

mod against;
mod packets;
mod profile;
mod replay;
mod report;
mod veth;

use std::{
    collections::BTreeMap,
    io::Write as _,
    net::Ipv4Addr,
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use mining_sensor::{
    bpf::{Kernel, Variant},
    config::{Config, Range},
    metrics::{Drainer, Labels, Metrics},
};
use serde_json::{Value, json};
use test_support::Packet;

use packets::*;
use replay::*;
use veth::*;

/// Loads of the program the per-packet rows' runs are spread over (see `main`).
const PER_PACKET_LOADS: usize = 3;

pub(crate) struct Opts {
    quick: bool,
    runs: usize,
    repeat: u32,
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let kernel = String::from_utf8_lossy(&Command::new("uname").arg("-r").output().unwrap().stdout)
        .trim()
        .to_string();
    json!({
        "cpu": cpu,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "kernel": kernel,
        "bpf_jit": std::fs::read_to_string("/proc/sys/net/core/bpf_jit_enable").unwrap_or_default().trim(),
    })
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let o = Opts {
        quick,
        // Quick runs take as many samples as full ones, each shorter: with fewer, a noisy spell
        // can move a median past a goal (BENCHMARKS.md has the run that showed it).
        runs: 21,
        repeat: if quick { 500_000 } else { 2_000_000 },
    };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let out_dir = root.join("target/bench");
    std::fs::create_dir_all(&out_dir).unwrap();
    let mut fig: BTreeMap<String, f64> = BTreeMap::new();
    let step = |s: &str| eprintln!("bench: {s}");
    if std::env::var_os("MINING_SENSOR_BENCH_REPORT_ONLY").is_some() {
        let (mb, year_ms, blank_ms) = report::report_year(&out_dir, 3);
        println!(
            "report_year_mb {mb:.2}\nreport_year_render_ms {year_ms:.0}\nreport_blank_render_ms {blank_ms:.0}"
        );
        return;
    }

    // For iterating on one figure: `MINING_SENSOR_BENCH_ROWS=unwatched_tcp,stratum_submit` runs
    // only those packets (their rows and baselines), printed, with nothing written.
    let rows: Option<Vec<String>> = std::env::var("MINING_SENSOR_BENCH_ROWS")
        .ok()
        .map(|v| v.split(',').map(|r| r.trim().to_string()).collect());
    let wanted = |name: &str| rows.as_ref().is_none_or(|r| r.iter().any(|x| x == name));
    // Where one row's time goes, by source line (`profile`).
    if let Ok(row) = std::env::var("MINING_SENSOR_BENCH_PROFILE") {
        let seconds = std::env::var("MINING_SENSOR_BENCH_PROFILE_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(10);
        profile::profile(&row, seconds, &out_dir);
        return;
    }
    // Against another revision's program, turn about in this process (`against`).
    if let Ok(path) = std::env::var("MINING_SENSOR_BENCH_AGAINST") {
        against::compare(&path, &wanted, &o, &out_dir);
        return;
    }
    step("per-packet cost, embedded default configuration");
    let cfg = Config::embedded_default();
    // The per-packet rows' runs go to `PER_PACKET_LOADS` loads of the program in turn: two loads
    // of one object differ by up to tens of ns (where the JIT's image and the maps land; README,
    // "Benchmarks", `--against`), and a figure from one load is one draw of that. The first
    // load's rings serve the rows that read them.
    let mut loads: Vec<Kernel> = (0..PER_PACKET_LOADS)
        .map(|_| {
            let mut k = Kernel::load_with_ranges(&cfg).unwrap();
            k.set_iface_slot(1, 1).unwrap();
            k
        })
        .collect();
    let mut rings = [
        loads[0].take_events().unwrap(),
        loads[0].take_samples().unwrap(),
    ];
    for (name, frame) in frames().into_iter().filter(|(n, _)| wanted(n)) {
        if name == "stratum_login" {
            let (s, b) = per_packet_first(&mut loads[0], &mut rings, &frame, &o);
            fig.insert("stratum_login_new_flow_ns".into(), s);
            fig.insert("stratum_login_new_flow_baseline_ns".into(), b);
            // The same, warm (`per_packet_first_batched`): its figure over the not-IP frame the
            // program passes at once, plus that frame's own cost over XDP_PASS.
            let notip = login_notip();
            let (ns, nb) = per_packet(&mut loads, &notip, &o);
            let mut r = Kernel::load_for_replay(&cfg).unwrap();
            r.configure(&cfg).unwrap();
            r.set_iface_slot(1, 1).unwrap();
            let mut replay_rings = [r.take_events().unwrap(), r.take_samples().unwrap()];
            fig.insert("not_ip_ns".into(), ns);
            fig.insert("not_ip_baseline_ns".into(), nb);
            for (row, pools) in BATCHED_LOGIN_ROWS {
                let over = per_packet_first_batched(&mut r, &mut replay_rings, &notip, pools, &o);
                fig.insert(format!("{row}_ns"), ns + over);
                fig.insert(format!("{row}_baseline_ns"), nb);
            }
        }
        let (s, b) = per_packet(&mut loads, &frame, &o);
        fig.insert(format!("{name}_ns"), s);
        fig.insert(format!("{name}_baseline_ns"), b);
        if name == SUBMIT_ROW {
            let (s, b) = per_packet_copied(&mut loads[0], &mut rings, &frame, &o);
            fig.insert(format!("{SUBMIT_COPIED_ROW}_ns"), s);
            fig.insert(format!("{SUBMIT_COPIED_ROW}_baseline_ns"), b);
        }
        if name == "unwatched_tcp" {
            fig.insert("xdp_pass_baseline_ns".into(), b);
        }
    }
    for (name, frame) in crafted().into_iter().filter(|(n, _)| wanted(n)) {
        let (s, b) = per_packet(&mut loads, &frame, &o);
        fig.insert(format!("{name}_ns"), s);
        fig.insert(format!("{name}_baseline_ns"), b);
    }
    drop(loads);
    if TUNNELED_ROWS.iter().any(|r| wanted(r)) {
        step("per-packet cost of mirrored frames, decapsulate = [\"erspan\", \"vxlan\"]");
        let decap = decapsulating(&cfg);
        let mut loads: Vec<Kernel> = (0..PER_PACKET_LOADS)
            .map(|_| {
                let mut k = Kernel::load_with_ranges(&decap).unwrap();
                k.set_iface_slot(1, 1).unwrap();
                k
            })
            .collect();
        for (name, frame) in tunneled().into_iter().filter(|(n, _)| wanted(n)) {
            let (s, b) = per_packet(&mut loads, &frame, &o);
            fig.insert(format!("{name}_ns"), s);
            fig.insert(format!("{name}_baseline_ns"), b);
        }
    }
    if rows.is_some() {
        for (name, v) in &fig {
            println!("{name} {v:.1}");
        }
        return;
    }
    step("per-packet cost of the program's bpf_loop build (kernels before 6.9)");
    let mut k = Kernel::load_variant(&cfg, Variant::BpfLoop).unwrap();
    k.configure(&cfg).unwrap();
    k.set_iface_slot(1, 1).unwrap();
    for (name, frame) in frames() {
        if ["stratum_login", SUBMIT_ROW, "unwatched_udp_dns"].contains(&name) {
            let (s, b) = per_packet(std::slice::from_mut(&mut k), &frame, &o);
            fig.insert(format!("{name}_bpf_loop_ns"), s);
            fig.insert(format!("{name}_bpf_loop_baseline_ns"), b);
        }
    }
    drop(k);
    // For iterating on the program: the per-packet figures only, printed, nothing written.
    if std::env::var_os("MINING_SENSOR_BENCH_PACKETS_ONLY").is_some() {
        for (name, v) in &fig {
            println!("{name} {v:.1}");
        }
        return;
    }

    step("1,000,000 watched prefixes");
    let mut cfg = Config::embedded_default();
    let started = Instant::now();
    let prefixes = million_prefixes();
    cfg.ranges.push(Range {
        name: "blocklist".into(),
        cidrs: prefixes,
    });
    cfg.flow_table_size = 131_072;
    let mut k = Kernel::load_with_ranges(&cfg).unwrap();
    fig.insert("prefix_load_s_1m".into(), started.elapsed().as_secs_f64());
    k.set_iface_slot(1, 1).unwrap();
    let mut scale = frames()
        .into_iter()
        .filter(|(n, _)| *n == "unwatched_tcp" || *n == "watched_tcp")
        .collect::<Vec<_>>();
    // Both endpoints unwatched, but the destination's /24 holds a watched /32: the filter cannot
    // reject it and the trie decides (the worst case for unwatched traffic).
    scale.push((
        "unwatched_tcp_filter_miss",
        Packet::tcp4(
            Ipv4Addr::new(198, 51, 100, 10),
            Ipv4Addr::new(198, 18, 201, 20),
            44326,
            443,
            &tls_record(),
        )
        .build(),
    ));
    for (name, frame) in scale {
        let (s, b) = per_packet(std::slice::from_mut(&mut k), &frame, &o);
        fig.insert(format!("{name}_1m_ns"), s);
        fig.insert(format!("{name}_1m_baseline_ns"), b);
    }

    step("drain with 1,000,000 prefixes and 65,536 flows");
    let login = login();
    for i in 0..65_536u32 {
        let f = Packet::tcp4(
            kp(i),
            Ipv4Addr::new(198, 51, 100, (i >> 16) as u8 + 1),
            1024 + (i & 0x7fff) as u16,
            3333 + (i >> 15) as u16,
            &login,
        )
        .build();
        k.test_run(&f).unwrap();
    }
    let flows = k.flows().unwrap().len();
    assert_eq!(
        flows, 65_536,
        "the flow table must hold every flow for this figure"
    );
    let metrics = Metrics::new();
    let mut labels = Labels::new();
    for (i, r) in cfg.ranges.iter().enumerate() {
        labels.ranges[i] = Some(r.name.clone());
    }
    labels.ifaces[1] = Some("bench".into());
    let mut drainer = Drainer::default();
    let mut drains = Vec::new();
    for _ in 0..if quick { 3 } else { 7 } {
        let t = Instant::now();
        drainer
            .drain(&k, &labels, &metrics, Duration::from_secs(600))
            .unwrap();
        drains.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    fig.insert("drain_ms_1m_prefixes_64k_flows".into(), median(drains));
    fig.insert("agent_rss_mib".into(), rss_mib());
    drop(k);
    drop(cfg);

    step("veth throughput with and without the sensor (native mode)");
    let (ratio, with, without, pass) = veth_ratio(&o);
    fig.insert("veth_pps_with_xdp_pass".into(), pass);
    fig.insert("veth_throughput_ratio".into(), ratio);
    fig.insert("veth_pps_with_sensor".into(), with);
    fig.insert("veth_pps_without".into(), without);

    step("replay and ndpiReader on the same captures");
    let mut pair = |name: &str, write: fn(&std::path::Path, usize), n: usize, keys: [&str; 3]| {
        let path = out_dir.join(name);
        write(&path, n);
        let (replay, ndpi) = replay_vs_ndpi(&o, &path, n);
        std::fs::remove_file(&path).ok();
        fig.insert(keys[0].into(), replay);
        fig.insert(keys[1].into(), ndpi);
        fig.insert(keys[2].into(), n as f64);
    };
    // The full size in quick runs too, as for the transit mix below: on 100,000 packets replay's
    // start-up decided the figure.
    pair(
        "session.pcap",
        capture,
        655_000,
        ["replay_pps", "ndpireader_pps", "replay_capture_packets"],
    );
    // A million packets in quick runs too: on a smaller capture, replay's fixed start-up (loading
    // and verifying the program, `replay_startup_s`) would decide the figure, not its speed.
    pair(
        "transit.pcap",
        transit_capture,
        1_000_000,
        [
            "replay_transit_pps",
            "ndpireader_transit_pps",
            "replay_transit_capture_packets",
        ],
    );
    let one = out_dir.join("one.pcap");
    capture(&one, 1);
    let startup: Vec<f64> = (0..3)
        .map(|_| {
            wall(
                Command::new(env!("CARGO_BIN_EXE_mining-sensor"))
                    .args(["replay", "--json", "/dev/null"])
                    .arg(&one),
            )
        })
        .collect();
    fig.insert("replay_startup_s".into(), median(startup));
    std::fs::remove_file(&one).ok();

    step("the analyst report: a year of hourly buckets for four ranges, in Chromium");
    let (mb, year_ms, blank_ms) = report::report_year(&out_dir, if quick { 3 } else { 7 });
    fig.insert("report_year_mb".into(), mb);
    fig.insert("report_year_render_ms".into(), year_ms);
    fig.insert("report_blank_render_ms".into(), blank_ms);

    let over = |a: &str, b: &str| fig[a] - fig[b];
    let worst_crafted = crafted()
        .iter()
        .map(|(name, _)| over(&format!("{name}_ns"), &format!("{name}_baseline_ns")))
        .fold(0.0, f64::max);
    let goals = [
        (
            "unwatched traffic over XDP_PASS (ns)",
            "unwatched_tcp_ns - unwatched_tcp_baseline_ns",
            over("unwatched_tcp_ns", "unwatched_tcp_baseline_ns"),
            "<=",
            30.0,
        ),
        (
            "watched traffic over XDP_PASS (ns)",
            "watched_tcp_ns - watched_tcp_baseline_ns",
            over("watched_tcp_ns", "watched_tcp_baseline_ns"),
            "<=",
            80.0,
        ),
        (
            "Stratum login over XDP_PASS (ns)",
            "stratum_login_ns - stratum_login_baseline_ns",
            over("stratum_login_ns", "stratum_login_baseline_ns"),
            "<=",
            250.0,
        ),
        (
            "Stratum share handed to inspection (copied) over XDP_PASS (ns)",
            "stratum_submit_copied_ns - stratum_submit_copied_baseline_ns",
            over(
                "stratum_submit_copied_ns",
                "stratum_submit_copied_baseline_ns",
            ),
            "<=",
            500.0,
        ),
        (
            "Stratum login opening its flow to a pool seen before, warm, over XDP_PASS (ns)",
            "stratum_login_new_flow_batched_ns - stratum_login_new_flow_batched_baseline_ns",
            over(
                "stratum_login_new_flow_batched_ns",
                "stratum_login_new_flow_batched_baseline_ns",
            ),
            "<=",
            500.0,
        ),
        (
            "Stratum login opening its flow to a pool never seen, warm, over XDP_PASS (ns)",
            "stratum_login_new_pool_batched_ns - stratum_login_new_pool_batched_baseline_ns",
            over(
                "stratum_login_new_pool_batched_ns",
                "stratum_login_new_pool_batched_baseline_ns",
            ),
            "<=",
            500.0,
        ),
        (
            "worst crafted packet over XDP_PASS (ns)",
            "max of crafted_*_ns - crafted_*_baseline_ns",
            worst_crafted,
            "<=",
            2000.0,
        ),
        (
            "unwatched traffic, 1M prefixes, over XDP_PASS (ns)",
            "unwatched_tcp_1m_ns - unwatched_tcp_1m_baseline_ns",
            over("unwatched_tcp_1m_ns", "unwatched_tcp_1m_baseline_ns"),
            "<=",
            30.0,
        ),
        (
            "veth throughput with / without",
            "veth_throughput_ratio",
            fig["veth_throughput_ratio"],
            ">=",
            0.9,
        ),
        (
            "replay / ndpiReader packets per second, one mining session",
            "replay_pps / ndpireader_pps",
            fig["replay_pps"] / fig["ndpireader_pps"],
            ">=",
            1.0,
        ),
        (
            "replay / ndpiReader packets per second, transit mix",
            "replay_transit_pps / ndpireader_transit_pps",
            fig["replay_transit_pps"] / fig["ndpireader_transit_pps"],
            ">=",
            1.0,
        ),
        (
            "report: a year of hourly buckets, four ranges, rendered in Chromium (ms)",
            "report_year_render_ms",
            fig["report_year_render_ms"],
            "<=",
            2000.0,
        ),
        (
            "report: that page's size (MB)",
            "report_year_mb",
            fig["report_year_mb"],
            "<",
            5.0,
        ),
        (
            "drain cycle, 1M prefixes, 64k flows (ms)",
            "drain_ms_1m_prefixes_64k_flows",
            fig["drain_ms_1m_prefixes_64k_flows"],
            "<",
            250.0,
        ),
        (
            "agent RSS at that scale (MiB)",
            "agent_rss_mib",
            fig["agent_rss_mib"],
            "<",
            256.0,
        ),
    ];
    let goals_json: Vec<Value> = goals
        .iter()
        .map(|(what, expr, v, op, limit)| {
            let ok = match *op {
                "<=" => v <= limit,
                ">=" => v >= limit,
                _ => v < limit,
            };
            json!({"goal": what, "figure": expr, "value": v, "op": op, "limit": limit, "met": ok})
        })
        .collect();
    let summary = json!({
        "quick": quick,
        "runs_per_figure": o.runs,
        "test_run_repeat": o.repeat,
        "machine": machine(),
        "figures": fig,
        "goals": goals_json,
    });
    std::fs::write(
        out_dir.join("summary.json"),
        serde_json::to_string_pretty(&summary).unwrap(),
    )
    .unwrap();

    let mut table = String::new();
    table += "| figure | value |\n|---|---|\n";
    for (k, v) in &fig {
        table += &format!("| `{k}` | {v:.2} |\n");
    }
    table += "\n| goal | value | limit | met |\n|---|---|---|---|\n";
    for g in &goals_json {
        table += &format!(
            "| {} | {:.2} | {} {} | {} |\n",
            g["goal"].as_str().unwrap(),
            g["value"].as_f64().unwrap(),
            g["op"].as_str().unwrap(),
            g["limit"],
            if g["met"].as_bool().unwrap() {
                "yes"
            } else {
                "**no**"
            }
        );
    }
    std::fs::write(out_dir.join("summary.md"), &table).unwrap();
    let _ = std::io::stdout().write_all(table.as_bytes());
    eprintln!("bench: wrote {}", out_dir.join("summary.json").display());
}
