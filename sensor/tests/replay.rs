//! `mining-sensor replay` on captures built here with known contents: exact counts in the JSON
//! report, OpenMetrics that promtool backfills, several link types and formats (pcap, pcapng
//! written by Wireshark's editcap, gzip), a broken file, and a synthetic 90-day capture whose
//! mining flows rise tenfold. Needs root (BPF_PROG_TEST_RUN), promtool and editcap.
//!
//! Real-world ranges appear here only inside capture files, as the project's rules allow.

use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use mining_sensor::packet::Packet;
use pcap_file::DataLink;
use serde_json::Value;

/// 2019-06-01T00:00:00Z.
const T0: u64 = 1_559_347_200;
const MINER: &str = "175.45.178.10";
const POOL: &str = "198.51.100.5";

const WALLET: &str = "4AdUndXHHZ6cfufTMvppY6JwXNouMBzSkbLYfpAV5Usx3skxNgYeYTRj5UzqtReoS44qo9mtmXCqY45DJ852K5Jv2684Rge";

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn login() -> Vec<u8> {
    format!("{{\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"login\",\"params\":{{\"login\":\"{WALLET}\",\"pass\":\"x\",\"agent\":\"XMRig/2.14.1 (Linux x86_64) libuv/1.24.1 gcc/8.2.0\",\"algo\":[\"cn/r\"]}}}}\n").into_bytes()
}
const REPLY: &[u8] = b"{\"id\":1,\"jsonrpc\":\"2.0\",\"error\":null,\"result\":{\"id\":\"7d\",\"job\":{\"blob\":\"0b0b\",\"job_id\":\"1\",\"target\":\"b88d0600\"},\"status\":\"OK\"}}\n";
const SUBMIT: &[u8] = b"{\"id\":2,\"jsonrpc\":\"2.0\",\"method\":\"submit\",\"params\":{\"id\":\"7d\",\"job_id\":\"1\",\"nonce\":\"b8000000\",\"result\":\"ab\"}}\n";
const OK: &[u8] = b"{\"id\":2,\"jsonrpc\":\"2.0\",\"error\":null,\"result\":{\"status\":\"OK\"}}\n";
const KEEPALIVE: &[u8] =
    b"{\"id\":3,\"jsonrpc\":\"2.0\",\"method\":\"keepalived\",\"params\":{\"id\":\"7d\"}}\n";
const KEEPALIVED: &[u8] =
    b"{\"id\":3,\"jsonrpc\":\"2.0\",\"error\":null,\"result\":{\"status\":\"KEEPALIVED\"}}\n";

fn write_pcap(path: &Path, link: DataLink, packets: &[(Duration, Vec<u8>)]) {
    let f = std::fs::File::create(path).unwrap();
    mining_sensor::packet::write_pcap(f, link, packets.iter().map(|(t, d)| (*t, d))).unwrap();
}

/// An Ethernet frame as a Linux cooked v2 record: protocol, reserved, ifindex, hatype, pkttype,
/// address length, address (8), then the network layer.
fn sll2(frame: &[u8]) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(&frame[12..14]);
    r.extend_from_slice(&[0, 0]);
    r.extend_from_slice(&3u32.to_be_bytes());
    r.extend_from_slice(&1u16.to_be_bytes());
    r.push(0);
    r.push(6);
    r.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0, 0]);
    r.extend_from_slice(&frame[14..]);
    r
}

fn at(secs: u64, millis: u64) -> Duration {
    Duration::from_secs(T0 + secs) + Duration::from_millis(millis)
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ms-replay-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn replay(args: &[&str], files: &[&Path]) -> (std::process::Output, Value) {
    // One directory per call: the tests run in parallel, and a shared one let one test read
    // (or delete) another's report.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = tmp(&format!("out-{n}"));
    let json = dir.join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_mining-sensor"))
        .arg("replay")
        .arg("--json")
        .arg(&json)
        .args(args)
        .args(files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    (out, v)
}

fn total(report: &Value, metric: &str, labels: &[(&str, &str)]) -> u64 {
    report["totals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["metric"] == metric && labels.iter().all(|(k, v)| s["labels"][*k] == *v))
        .map(|s| s["value"].as_u64().unwrap())
        .sum()
}

#[test]
fn replay_counts_exactly_across_formats_and_backfills_with_promtool() {
    let dir = tmp("formats");
    let (m, p) = (ip(MINER), ip(POOL));
    let up = |payload: &[u8]| Packet::tcp4(m, p, 50000, 3333, payload);
    let down = |payload: &[u8]| Packet::tcp4(p, m, 3333, 50000, payload);

    // live.pcap: Ethernet, a three-hour session, some frames VLAN-tagged.
    let session = [
        (at(0, 0), up(&login()).vlan(0x8100, 30)),
        (at(0, 100), down(REPLY).vlan(0x88a8, 1).vlan(0x8100, 30)),
        (at(3601, 0), up(SUBMIT)),
        (at(3601, 50), down(OK)),
        (at(7202, 0), up(KEEPALIVE)),
        (at(7202, 40), down(KEEPALIVED)),
    ];
    let up_bytes: u64 = session.iter().step_by(2).map(|(_, p)| p.ip_len()).sum();
    let down_bytes: u64 = session
        .iter()
        .skip(1)
        .step_by(2)
        .map(|(_, p)| p.ip_len())
        .sum();
    let live = dir.join("live.pcap");
    write_pcap(
        &live,
        DataLink::ETHERNET,
        &session
            .iter()
            .map(|(t, p)| (*t, p.build()))
            .collect::<Vec<_>>(),
    );

    // cooked.pcapng.gz: a second flow in Linux cooked v2 records, converted to pcapng by editcap
    // (microsecond timestamps, the pcapng default), then gzip-compressed.
    let second = [
        (at(1800, 0), Packet::tcp4(m, p, 50001, 3333, &login())),
        (at(1800, 90), Packet::tcp4(p, m, 3333, 50001, REPLY)),
    ];
    let cooked_pcap = dir.join("cooked.pcap");
    write_pcap(
        &cooked_pcap,
        DataLink::LINUX_SLL2,
        &second
            .iter()
            .map(|(t, p)| (*t, sll2(&p.build())))
            .collect::<Vec<_>>(),
    );
    let cooked = dir.join("cooked.pcapng");
    let st = Command::new("editcap")
        .args(["-F", "pcapng"])
        .arg(&cooked_pcap)
        .arg(&cooked)
        .status()
        .expect("editcap (cargo xtask setup installs tshark)");
    assert!(st.success());
    assert!(
        Command::new("gzip")
            .arg("-f")
            .arg(&cooked)
            .status()
            .unwrap()
            .success()
    );
    let cooked = dir.join("cooked.pcapng.gz");

    // broken.pcap: two good UDP records, then a record cut short.
    let broken = dir.join("broken.pcap");
    let udp = Packet::udp4(m, p, 5353, 53, b"abcd");
    write_pcap(
        &broken,
        DataLink::ETHERNET,
        &[
            (at(10, 0), udp.build()),
            (at(11, 0), udp.build()),
            (at(12, 0), udp.build()),
        ],
    );
    let len = std::fs::metadata(&broken).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&broken)
        .unwrap()
        .set_len(len - 10)
        .unwrap();

    let om = dir.join("out.om");
    let (out, r) = replay(
        &["--bucket", "1h", "--openmetrics", om.to_str().unwrap()],
        &[&live, &cooked, &broken],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("broken.pcap") && stderr.contains("record 3"),
        "{stderr}"
    );

    let pk = "mining_sensor_packets_total";
    let by = "mining_sensor_bytes_total";
    assert_eq!(
        total(
            &r,
            pk,
            &[
                ("range", "kp"),
                ("direction", "from"),
                ("iface", "live.pcap")
            ]
        ),
        3
    );
    assert_eq!(
        total(
            &r,
            by,
            &[
                ("range", "kp"),
                ("direction", "from"),
                ("iface", "live.pcap")
            ]
        ),
        up_bytes
    );
    assert_eq!(
        total(
            &r,
            pk,
            &[("range", "kp"), ("direction", "to"), ("iface", "live.pcap")]
        ),
        3
    );
    assert_eq!(
        total(
            &r,
            by,
            &[("range", "kp"), ("direction", "to"), ("iface", "live.pcap")]
        ),
        down_bytes
    );
    assert_eq!(
        total(
            &r,
            pk,
            &[
                ("range", "kp"),
                ("direction", "from"),
                ("iface", "cooked.pcapng.gz")
            ]
        ),
        1
    );
    assert_eq!(
        total(
            &r,
            by,
            &[
                ("range", "kp"),
                ("direction", "from"),
                ("iface", "cooked.pcapng.gz")
            ]
        ),
        second[0].1.ip_len()
    );
    assert_eq!(
        total(
            &r,
            pk,
            &[
                ("range", "kp"),
                ("direction", "from"),
                ("iface", "broken.pcap")
            ]
        ),
        2
    );
    let sf = "mining_sensor_stratum_flows_total";
    let sp = "mining_sensor_stratum_packets_total";
    assert_eq!(
        total(
            &r,
            sf,
            &[
                ("range", "kp"),
                ("direction", "from"),
                ("dialect", "monero")
            ]
        ),
        2
    );
    assert_eq!(total(&r, sf, &[("direction", "to")]), 0);
    assert_eq!(
        total(
            &r,
            sp,
            &[
                ("range", "kp"),
                ("direction", "from"),
                ("dialect", "monero")
            ]
        ),
        4
    );
    assert_eq!(
        total(
            &r,
            sp,
            &[("range", "kp"), ("direction", "to"), ("dialect", "monero")]
        ),
        3
    );
    assert_eq!(r["files"][2]["packets"], 2);

    // The deep parser runs in replay too: both logins, by coin and agent, never the wallet; events
    // carry the capture's time.
    assert_eq!(
        total(
            &r,
            "mining_sensor_miner_logins_total",
            &[("range", "kp"), ("coin", "monero"), ("agent", "xmrig")]
        ),
        2
    );
    let events = r["events"].as_array().unwrap();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["stratum_flow", "miner_login", "stratum_flow", "miner_login"],
        "{events:?}"
    );
    let first_login = &events[1];
    assert_eq!(first_login["agent_version"], "2.14.1");
    assert_eq!(first_login["iface"], "live.pcap");
    let t0 = humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_secs(T0));
    assert_eq!(first_login["ts"], t0.to_string());
    assert_eq!(events[2]["iface"], "cooked.pcapng.gz");
    assert!(!r.to_string().contains(WALLET));

    // Time from the capture: hourly buckets ending at T0+1h, +2h, +3h; pcapng microseconds read
    // as such (the cooked file's packets fall in the first hour).
    let ends: Vec<f64> = r["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["end"].as_f64().unwrap())
        .collect();
    assert_eq!(
        ends,
        [(T0 + 3600) as f64, (T0 + 7200) as f64, (T0 + 10800) as f64]
    );
    assert_eq!(r["first_packet"].as_f64().unwrap(), T0 as f64);
    let first_hour_flows: u64 = r["buckets"][0]["samples"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["metric"] == sf && s["labels"]["direction"] == "from")
        .map(|s| s["value"].as_u64().unwrap())
        .sum();
    assert_eq!(first_hour_flows, 2);

    // Prometheus backfills the OpenMetrics output.
    let text = std::fs::read_to_string(&om).unwrap();
    assert!(text.ends_with("# EOF\n"));
    assert!(text.contains(&format!("mining_sensor_stratum_flows_total{{dialect=\"monero\",direction=\"from\",range=\"kp\"}} 2 {}.000", T0 + 3600)));
    let tsdb = dir.join("tsdb");
    let out = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&om)
        .arg(&tsdb)
        .output()
        .expect("promtool");
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn strict_stops_at_the_first_bad_record_and_bad_files_are_named() {
    let dir = tmp("strict");
    let f = dir.join("cut.pcap");
    let udp = Packet::udp4(ip(MINER), ip(POOL), 1, 2, b"x");
    write_pcap(
        &f,
        DataLink::ETHERNET,
        &[(at(0, 0), udp.build()), (at(1, 0), udp.build())],
    );
    let len = std::fs::metadata(&f).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&f)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mining-sensor"))
        .args(["replay", "--strict"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cut.pcap") && err.contains("record 2") && err.contains("--strict"),
        "{err}"
    );

    let junk = dir.join("notes.txt");
    std::fs::write(&junk, "not a capture").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mining-sensor"))
        .arg("replay")
        .arg(&junk)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("notes.txt: neither pcap nor pcapng"));

    // An unsupported link type (802.11) is reported once for the file, and the replay goes on.
    let wifi = dir.join("wifi.pcap");
    write_pcap(
        &wifi,
        DataLink::IEEE802_11,
        &[(at(0, 0), vec![0; 40]), (at(1, 0), vec![0; 40])],
    );
    let out = Command::new(env!("CARGO_BIN_EXE_mining-sensor"))
        .arg("replay")
        .arg(&wifi)
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("is not supported").count(), 1, "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_synthetic_season_shows_the_tenfold_rise() {
    // 90 days from 2019-03-01: one new mining flow every third day in the first 30 days,
    // ten every third day in the last 30, plain traffic every day throughout.
    let start = 1_551_398_400u64;
    let day = 86_400u64;
    let (m, p) = (ip(MINER), ip(POOL));
    let mut packets = Vec::new();
    let mut port = 40000u16;
    for d in 0..90u64 {
        let t = Duration::from_secs(start + d * day + 3600);
        packets.push((t, Packet::udp4(m, p, 123, 123, b"ntp").build()));
        let flows = match d {
            0..30 if d % 3 == 0 => 1,
            60..90 if d % 3 == 0 => 10,
            _ => 0,
        };
        for i in 0..flows {
            port += 1;
            packets.push((
                t + Duration::from_secs(i + 1),
                Packet::tcp4(m, p, port, 3333, &login()).build(),
            ));
        }
    }
    let dir = tmp("season");
    let f = dir.join("season.pcap");
    write_pcap(&f, DataLink::ETHERNET, &packets);
    let html = dir.join("season.html");
    let (_, r) = replay(
        &["--bucket", "1d", "--report", html.to_str().unwrap()],
        &[&f],
    );
    // The page answers the question by looking: the ratio, the timeline, nothing fetched.
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("<td>kp</td><td>10</td><td>100</td><td class=\"ratio\">10.0×</td>"),
        "{page}"
    );
    assert!(
        page.contains("2019-03-01 01:00"),
        "capture period in the page"
    );
    assert_eq!(page.matches("<svg").count(), 2);
    // The top coins and agents: every one of the 110 logins, by the miner's software.
    assert!(
        page.contains("<td>kp</td><td>monero</td><td>xmrig</td><td>110</td>"),
        "{page}"
    );
    assert!(!page.contains(WALLET));
    assert!(!page.contains("http://") && !page.contains("https://") && !page.contains("<script"));
    let buckets = r["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 90);
    let flows_at = |i: usize| -> u64 {
        buckets[i]["samples"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| {
                s["metric"] == "mining_sensor_stratum_flows_total" && s["labels"]["range"] == "kp"
            })
            .map(|s| s["value"].as_u64().unwrap())
            .sum()
    };
    let first_third = flows_at(29);
    let last_third = flows_at(89) - flows_at(59);
    assert_eq!((first_third, last_third), (10, 100));
    assert_eq!(
        total(
            &r,
            "mining_sensor_packets_total",
            &[("range", "kp"), ("direction", "from")]
        ),
        90 + 110
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Captures taken with a snap length (`tcpdump -s 96`) keep only the start of each record: the
/// counts must still be the wire's, as from the whole capture. A runt record (shorter than an
/// Ethernet header) is named and skipped, a frame longer than a batch holds is counted by its IP
/// length and named, and the replay goes on.
#[test]
fn cut_records_count_as_on_the_wire_and_odd_frames_are_named() {
    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
    let dir = tmp("snaplen");
    let (m, p) = (ip(MINER), ip(POOL));
    let mut packets = Vec::new();
    for i in 0..40u16 {
        let port = 50000 + i;
        packets.push(Packet::tcp4(m, p, port, 3333, &login()).build());
        packets.push(Packet::tcp4(p, m, 3333, port, REPLY).build());
        packets.push(Packet::tcp4(m, p, port, 443, &[0x17; 1400]).build());
        packets.push(Packet::udp4(p, m, 443, port, &[0x40; 1200]).build());
    }
    let timed: Vec<(Duration, Vec<u8>)> = packets
        .iter()
        .enumerate()
        .map(|(i, f)| (at(i as u64, 0), f.clone()))
        .collect();
    let jumbo = Packet::tcp4(m, p, 40000, 443, &[0x17; 6000]).build();
    let last = timed.last().unwrap().0;
    let whole = dir.join("whole.pcap");
    write_pcap(
        &whole,
        DataLink::ETHERNET,
        &[timed.clone(), vec![(last, jumbo.clone())]].concat(),
    );

    let cut = dir.join("cut.pcap");
    let header = PcapHeader {
        snaplen: 96,
        datalink: DataLink::ETHERNET,
        ..PcapHeader::default()
    };
    let mut w = PcapWriter::with_header(std::fs::File::create(&cut).unwrap(), header).unwrap();
    for (i, (t, f)) in timed.iter().enumerate() {
        w.write_packet(&PcapPacket::new(*t, f.len() as u32, &f[..f.len().min(96)]))
            .unwrap();
        if i == 10 {
            w.write_packet(&PcapPacket::new(*t, 10, &[0xff; 10]))
                .unwrap();
        }
    }
    w.write_packet(&PcapPacket::new(last, jumbo.len() as u32, &jumbo[..96]))
        .unwrap();
    drop(w);

    let (_, a) = replay(&[], &[&whole]);
    let (out, b) = replay(&[], &[&cut]);
    for dir in ["from", "to"] {
        for metric in ["mining_sensor_packets_total", "mining_sensor_bytes_total"] {
            let labels = [("range", "kp"), ("direction", dir)];
            assert_eq!(
                total(&a, metric, &labels),
                total(&b, metric, &labels),
                "{metric} {dir}"
            );
        }
    }
    assert_eq!(
        total(&a, "mining_sensor_packets_total", &[("range", "kp")]),
        161
    );
    // The whole capture also sees the logins' content; the cut one only their headers.
    assert_eq!(total(&a, "mining_sensor_stratum_flows_total", &[]), 40);
    assert_eq!(total(&b, "mining_sensor_stratum_flows_total", &[]), 0);
    let problems = b["files"][0]["problems"].to_string();
    assert!(
        problems.contains("record 12: Ethernet record of 10 bytes"),
        "{problems}"
    );
    assert!(problems.contains("1 frames longer than"), "{problems}");
    let problems = a["files"][0]["problems"].to_string();
    assert!(problems.contains("1 frames longer than"), "{problems}");
    assert_eq!(b["files"][0]["skipped"], 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cut.pcap: record 12"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
