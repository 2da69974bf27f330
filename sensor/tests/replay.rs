//! `mining-sensor replay` on captures built here with known contents: exact counts in the JSON
//! report, OpenMetrics that promtool backfills, several link types and formats (pcap, pcapng
//! written by Wireshark's editcap, gzip), a broken file, a synthetic 90-day capture whose
//! mining flows rise tenfold, and a live session between two namespaces made here, captured by
//! tcpdump and rewritten by tcprewrite as the issue's held-out sessions are. Needs root
//! (BPF_PROG_TEST_RUN, namespaces), promtool, editcap, tcpdump, tcprewrite and tshark.
//!
//! Real-world ranges appear here only inside capture files, as the project's rules allow; the
//! live session runs between 198.18.7.1 and 198.18.7.2.

mod common;

use common::{Wire, replay, tmp, write_pcap};

use std::{net::Ipv4Addr, path::Path, process::Command, time::Duration};

use pcap_file::DataLink;
use serde_json::Value;
use test_support::Packet;

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

fn total(report: &Value, metric: &str, labels: &[(&str, &str)]) -> u64 {
    common::sample_sum(&report["totals"], metric, labels)
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
        page.contains("<td>new Stratum flows</td><td>10</td><td>100</td><td class=\"ratio\" data-ratio=\"flows\">10.0×</td>"),
        "{page}"
    );
    assert!(
        page.contains("2019-03-01 01:00"),
        "capture period in the page"
    );
    // Hash rate, bytes and new flows; no shares, no suspects, and daily buckets cannot say the
    // hour of the week.
    assert_eq!(page.matches("<svg").count(), 3, "{page}");
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
        common::sample_sum(
            &buckets[i]["samples"],
            "mining_sensor_stratum_flows_total",
            &[("range", "kp")],
        )
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

/// Addresses of the live session below: a test-made pair of namespaces in 198.18.0.0/15.
const LIVE_MINER: &str = "198.18.7.2";
const LIVE_POOL: &str = "198.18.7.1";
/// What the capture is rewritten to: a miner in `kp`, and a pool address outside the
/// documentation ranges (it exists only in this file, replayed offline).
const KP_MINER: &str = "175.45.176.20";
const REAL_POOL: &str = "94.130.12.27";
/// The session's shape: submits, keepalives among them, and a job pushed after some submits.
const SUBMITS: u32 = 12;
const KEEPALIVE_EVERY: u32 = 4;
const JOB_EVERY: u32 = 5;

/// The pool's side of one session, as nodejs-pool answers: a job for the login, OK per submit
/// (and, every `JOB_EVERY` submits, a new job pushed 20 ms later), KEEPALIVED per keepalive.
fn live_pool(listener: std::net::TcpListener) {
    use std::io::{BufRead, BufReader, Write};
    let s = common::accept(&listener);
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(common::IO_TIMEOUT)).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut submits = 0;
    for line in BufReader::new(s).lines() {
        let line = line.unwrap();
        if line.contains("\"login\"") {
            w.write_all(REPLY).unwrap();
        } else if line.contains("\"keepalived\"") {
            w.write_all(KEEPALIVED).unwrap();
        } else {
            assert!(line.contains("\"submit\""), "{line}");
            w.write_all(OK).unwrap();
            submits += 1;
            if submits % JOB_EVERY == 0 {
                // Pacing, part of the session: the pushed job leaves in a segment of its own.
                std::thread::sleep(Duration::from_millis(20));
                w.write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"job\",\"params\":{\"blob\":\"0c0c\",\"job_id\":\"2\",\"target\":\"b88d0600\",\"algo\":\"rx/0\"}}\n").unwrap();
            }
        }
    }
}

/// XMRig's side: the login, then `SUBMITS` submits with a keepalive before every
/// `KEEPALIVE_EVERY`th, each answer read before the next message (pushed jobs too).
fn live_miner(pool: std::net::SocketAddr) {
    let mut c = common::LineClient::connect(pool);
    c.send(&login());
    c.expect("\"job\"");
    for n in 1..=SUBMITS {
        if n % KEEPALIVE_EVERY == 0 {
            c.send(KEEPALIVE);
            c.expect("KEEPALIVED");
        }
        // Each share its own nonce (a miner never sends one twice), the same length as SUBMIT's.
        let share = String::from_utf8_lossy(SUBMIT).replace("b8000000", &format!("b80000{n:02x}"));
        c.send(share.as_bytes());
        c.expect("\"OK\"");
        if n % JOB_EVERY == 0 {
            c.expect("\"job\"");
        }
    }
}

/// tshark's reading of `file`: one field of each packet its display `filter` selects.
fn tshark_fields(file: &Path, filter: &str, field: &str) -> Vec<String> {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(file)
        .args(["-Y", filter, "-T", "fields", "-e", field])
        .output()
        .expect("tshark (cargo xtask setup installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .collect()
}

/// tshark's reading of `file`: packets and IP bytes with `field` (ip.src or ip.dst) equal to
/// `addr`. The reference for replay's traffic counts, from another parser.
fn tshark_traffic(file: &Path, field: &str, addr: &str) -> (u64, u64) {
    let lens: Vec<u64> = tshark_fields(file, &format!("{field} == {addr}"), "ip.len")
        .iter()
        .map(|l| l.parse().unwrap())
        .collect();
    (lens.len() as u64, lens.iter().sum())
}

/// tshark's reading of `file`: the TCP segments with `field` equal to `addr` that resend data
/// (retransmissions, spurious ones included) and hold any of `needles`.
fn tshark_resent(file: &Path, field: &str, addr: &str, needles: &[&str]) -> u64 {
    let filter = format!(
        "{field} == {addr} && tcp.len > 0 && (tcp.analysis.retransmission || \
         tcp.analysis.fast_retransmission || tcp.analysis.spurious_retransmission)"
    );
    tshark_fields(file, &filter, "tcp.payload")
        .iter()
        .map(|hex| {
            let hex = hex.replace(':', "");
            let bytes: Vec<u8> = (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            String::from_utf8_lossy(&bytes).into_owned()
        })
        .filter(|payload| needles.iter().any(|n| payload.contains(n)))
        .count() as u64
}

/// As the issue's check does with held-out real sessions: a session carried by the kernel's own
/// TCP stack between two namespaces made here (handshake, ACKs, close), captured by tcpdump,
/// rewritten by tcprewrite to a miner in `kp` and a real-world pool address, replayed with the
/// embedded default configuration. Every Stratum count is exact, the login is attributed, and
/// the traffic counts equal tshark's reading of the same file.
#[test]
fn a_live_session_captured_and_rewritten_to_kp_replays_exactly() {
    let id = std::process::id();
    let (miner, pool) = (format!("msr-m-{id}"), format!("msr-p-{id}"));
    let _ns = common::Namespaces::new(&[&miner, &pool]);
    common::veth(
        (&miner, "r0", &format!("{LIVE_MINER}/24")),
        (&pool, "r1", &format!("{LIVE_POOL}/24")),
    );
    // Every third data segment from the pool is dropped in the miner's namespace after tcpdump
    // has seen it: the pool's TCP sends it again and the capture holds both, as captures from
    // the wild hold retransmissions (a submit whose ACK rode on a dropped segment is resent too).
    common::sh(&[
        "ip",
        "netns",
        "exec",
        &miner,
        "nft",
        "add table inet lossy; \
         add chain inet lossy input { type filter hook input priority 0; }; \
         add rule inet lossy input tcp sport 3333 tcp flags & psh != 0 numgen inc mod 3 == 1 drop",
    ]);
    let dir = tmp("live");
    let raw = dir.join("live.pcap");
    let mut dump = Command::new("ip")
        .args([
            "netns",
            "exec",
            &miner,
            "tcpdump",
            "-i",
            "r0",
            "-n",
            "-U",
            "--immediate-mode",
            "-w",
        ])
        .arg(&raw)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("tcpdump (cargo xtask setup installs it)");
    // tcpdump opens its file once the capture is active.
    let started = std::time::Instant::now();
    while std::fs::metadata(&raw).map_or(0, |m| m.len()) < 24 {
        assert!(
            started.elapsed() < common::IO_TIMEOUT,
            "tcpdump did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let addr: std::net::SocketAddr = format!("{LIVE_POOL}:3333").parse().unwrap();
    let listener = common::in_ns(&pool, move || std::net::TcpListener::bind(addr).unwrap())
        .join()
        .unwrap();
    let server = std::thread::spawn(move || live_pool(listener));
    common::in_ns(&miner, move || live_miner(addr))
        .join()
        .unwrap();
    server.join().unwrap();
    // The close's last ACK, then tcpdump (which hands over each packet as it comes, not in
    // blocks it may still hold at SIGINT) exits. Time passes on purpose: nothing marks the last
    // segment of the close for the capture.
    std::thread::sleep(Duration::from_millis(300));
    common::sh(&["kill", "-INT", &dump.id().to_string()]);
    let started = std::time::Instant::now();
    while dump.try_wait().unwrap().is_none() {
        if started.elapsed() > common::IO_TIMEOUT {
            let _ = dump.kill();
            panic!("tcpdump did not stop");
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    let rewritten = dir.join("kp.pcap");
    let st = Command::new("tcprewrite")
        .arg(format!(
            "--pnat={LIVE_MINER}/32:{KP_MINER}/32,{LIVE_POOL}/32:{REAL_POOL}/32"
        ))
        .arg("--fixcsum")
        .arg("-i")
        .arg(&raw)
        .arg("-o")
        .arg(&rewritten)
        .status()
        .expect("tcprewrite (cargo xtask setup installs tcpreplay)");
    assert!(st.success());

    let (_, r) = replay(&[], &[&rewritten]);
    // The drops did their part: the capture holds segments sent twice.
    assert!(tshark_resent(&rewritten, "ip.dst", KP_MINER, &["{"]) > 0);
    let keepalives = SUBMITS / KEEPALIVE_EVERY;
    let jobs = SUBMITS / JOB_EVERY;
    let stratum = |direction| {
        total(
            &r,
            "mining_sensor_stratum_packets_total",
            &[
                ("range", "kp"),
                ("direction", direction),
                ("dialect", "monero"),
            ],
        )
    };
    // From the miner: the login, every submit and keepalive. To it: the login's job, the pushed
    // jobs and the keepalive answers; a submit's bare OK is no signature. A segment the kernel's
    // TCP sent again (a busy machine's late ACK fires the retransmission timer) is a packet on
    // the wire and counts again: tshark finds those in the capture, and the ones that carry such
    // a message add one each.
    assert_eq!(
        stratum("from"),
        1 + u64::from(SUBMITS + keepalives)
            + tshark_resent(
                &rewritten,
                "ip.src",
                KP_MINER,
                &["\"login\"", "\"submit\"", "\"keepalived\""]
            )
    );
    assert_eq!(
        stratum("to"),
        1 + u64::from(jobs + keepalives)
            + tshark_resent(&rewritten, "ip.dst", KP_MINER, &["\"job\"", "KEEPALIVED"])
    );
    assert_eq!(
        total(
            &r,
            "mining_sensor_stratum_flows_total",
            &[
                ("range", "kp"),
                ("direction", "from"),
                ("dialect", "monero")
            ]
        ),
        1
    );
    assert_eq!(total(&r, "mining_sensor_stratum_flows_total", &[]), 1);
    assert_eq!(
        total(
            &r,
            "mining_sensor_miner_logins_total",
            &[("range", "kp"), ("coin", "monero"), ("agent", "xmrig")]
        ),
        1
    );
    // Shares: every submit answers job 1 of the login reply, target b88d0600, 10,000 hashes a share
    // ((2^32-1) / 0x68db8 = 10,000; T = (2^64-1) / 10,000; (2^64-1) / T = 10,000), and the pool
    // answers each OK: 12 accepted, 120,000 hashes, as the live path counts them.
    let kp_monero = [("range", "kp"), ("coin", "monero")];
    assert_eq!(
        total(
            &r,
            "mining_sensor_shares_total",
            &[&kp_monero[..], &[("result", "accepted")]].concat()
        ),
        u64::from(SUBMITS)
    );
    assert_eq!(
        total(&r, "mining_sensor_shares_total", &[]),
        u64::from(SUBMITS)
    );
    assert_eq!(
        total(&r, "mining_sensor_share_hashes_total", &kp_monero),
        u64::from(SUBMITS) * 10_000
    );
    // Messages each way: the miner's, and the pool's (an OK per submit besides the signatures).
    let messages = [
        ("from", "ip.src", 1 + SUBMITS + keepalives),
        ("to", "ip.dst", 1 + SUBMITS + keepalives + jobs),
    ];
    for (direction, field, messages) in messages {
        let (packets, bytes) = tshark_traffic(&rewritten, field, KP_MINER);
        // The handshake besides the messages: tshark read the same session.
        assert!(packets > u64::from(messages), "{direction}: {packets}");
        let labels = [("range", "kp"), ("direction", direction)];
        assert_eq!(
            total(&r, "mining_sensor_packets_total", &labels),
            packets,
            "{direction}"
        );
        assert_eq!(
            total(&r, "mining_sensor_bytes_total", &labels),
            bytes,
            "{direction}"
        );
    }
    let events = r["events"].as_array().unwrap();
    let flows: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "stratum_flow")
        .collect();
    assert_eq!(flows.len(), 1, "{events:?}");
    assert_eq!(flows[0]["src"], KP_MINER);
    assert_eq!(flows[0]["dst"], REAL_POOL);
    assert_eq!(flows[0]["dport"], 3333);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The sessions of these tests: `MINER` and `POOL` on port 3333, from the miner's `port`.
fn wire_at(port: u16) -> Wire {
    Wire::new(ip(MINER), ip(POOL), port, 3333)
}

/// `w`'s session as a capture file, a segment every 10 ms.
fn write_wire(w: &Wire, file: &Path) {
    let frames: Vec<(Duration, Vec<u8>)> = w
        .packets
        .iter()
        .enumerate()
        .map(|(i, p)| (at(0, 10 * i as u64), p.build()))
        .collect();
    write_pcap(file, DataLink::ETHERNET, &frames);
}

/// A capture made on a busy proxy's host: its upstream's submits leave in segments its TSO has
/// not cut yet, and the pool's replies arrive merged by its GRO, each segment many messages long.
/// XMRig's login, the pool's reply at target `b88d0600` (10,000 hashes a share), then two bursts
/// of 150 submits: the first sent as one segment of 16,800 bytes (more than 16 KiB, past which
/// the program read no transport header at all) and answered by one of 9,750, the second in
/// segments of 2,896 bytes (two MSS merged; messages straddle them) both ways. Every share counts
/// once, accepted: 300 shares, 3,000,000 hashes. Before, deep inspection read a sample's 1,536
/// bytes of each segment, and nothing of the first burst: 74 shares counted, 40 of them accepted
/// (with the program's fix alone, 150 accepted; with the whole frames alone, 53).
#[test]
fn segments_merged_by_the_capturing_hosts_gro_are_read_whole() {
    let dir = tmp("gro");
    let mut w = wire_at(50100);
    w.send(true, &login());
    w.send(false, REPLY);
    // 112 bytes each (ids of 3 digits), 65 for their OKs.
    let submit = |id: u32| {
        format!(
            "{{\"id\":{id},\"jsonrpc\":\"2.0\",\"method\":\"submit\",\"params\":{{\"id\":\"7d\",\"job_id\":\"1\",\"nonce\":\"{id:08x}\",\"result\":\"ab\"}}}}\n"
        )
    };
    let ok = |id: u32| {
        format!(
            "{{\"id\":{id},\"jsonrpc\":\"2.0\",\"error\":null,\"result\":{{\"status\":\"OK\"}}}}\n"
        )
    };
    let burst = |ids: std::ops::Range<u32>, f: &dyn Fn(u32) -> String| -> Vec<u8> {
        ids.flat_map(|id| f(id).into_bytes()).collect()
    };
    let (up, down) = (burst(100..250, &submit), burst(100..250, &ok));
    assert_eq!((up.len(), down.len()), (16_800, 9_750));
    w.send(true, &up);
    w.send(false, &down);
    for (side, bytes) in [
        (true, burst(300..450, &submit)),
        (false, burst(300..450, &ok)),
    ] {
        for seg in bytes.chunks(2_896) {
            w.send(side, seg);
        }
    }
    let file = dir.join("proxy-host.pcap");
    write_wire(&w, &file);
    let (_, r) = replay(&[], &[&file]);
    assert_eq!(total(&r, "mining_sensor_stratum_flows_total", &[]), 1);
    let login = [("range", "kp"), ("coin", "monero"), ("agent", "xmrig")];
    assert_eq!(total(&r, "mining_sensor_miner_logins_total", &login), 1);
    let accepted = [("range", "kp"), ("coin", "monero"), ("result", "accepted")];
    assert_eq!(total(&r, "mining_sensor_shares_total", &accepted), 300);
    assert_eq!(total(&r, "mining_sensor_shares_total", &[]), 300);
    assert_eq!(
        total(&r, "mining_sensor_share_hashes_total", &[]),
        3_000_000
    );
    let problems = r["files"][0]["problems"].to_string();
    assert!(problems.contains("frames longer than"), "{problems}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A scrypt session logging in with an account (cpuminer's `worker.1`: no address names its
/// coin or algorithm), on Stratum V1's port 3333: subscribe, the reply's extranonce1, authorize,
/// difficulty 16, the job, then 3 submits, each accepted, the first a real scrypt share of that
/// job (`test_support::shares`, the worked example: its scrypt hash is difficulty 695.8). Its
/// shares count at scrypt's difficulty 1, 2^16 hashes: 3 x 16 x 65,536 = 3,145,728 (before,
/// at sha256d's 2^32: 206,158,430,208, 65,536 times the work). The share names a scrypt coin:
/// the login, which waits for it, and the shares are `other`, as a Litecoin or Dogecoin address
/// makes them (before, `unknown`).
#[test]
fn an_account_scrypt_session_replays_at_scrypts_difficulty() {
    use test_support::shares::{SCRYPT_EN1, SCRYPT_NOTIFY, SCRYPT_SHARE};
    let dir = tmp("scrypt");
    let mut w = wire_at(50200);
    let mut send = |up: bool, msg: &str| w.send(up, format!("{msg}\n").as_bytes());
    send(
        true,
        r#"{"id":1,"method":"mining.subscribe","params":["cpuminer/2.5.1"]}"#,
    );
    send(
        false,
        &format!(
            r#"{{"id":1,"result":[[["mining.notify","ae6812eb4cd7735a302a8a9dd95cf71f"]],"{SCRYPT_EN1}",4],"error":null}}"#
        ),
    );
    send(
        true,
        r#"{"id":2,"method":"mining.authorize","params":["worker.1","x"]}"#,
    );
    send(false, r#"{"id":2,"result":true,"error":null}"#);
    send(
        false,
        r#"{"id":null,"method":"mining.set_difficulty","params":[16]}"#,
    );
    send(false, SCRYPT_NOTIFY);
    let [en2, ntime, nonce] = SCRYPT_SHARE;
    for id in 3..=5 {
        let nonce = if id == 3 {
            nonce.to_owned()
        } else {
            format!("0000000{id}")
        };
        send(
            true,
            &format!(
                r#"{{"id":{id},"method":"mining.submit","params":["worker.1","5c04","{en2}","{ntime}","{nonce}"]}}"#
            ),
        );
        send(
            false,
            &format!(r#"{{"id":{id},"result":true,"error":null}}"#),
        );
    }
    let file = dir.join("scrypt.pcap");
    write_wire(&w, &file);
    let (_, r) = replay(&[], &[&file]);
    assert_eq!(total(&r, "mining_sensor_stratum_flows_total", &[]), 1);
    let login = [("range", "kp"), ("coin", "other"), ("agent", "cpuminer")];
    assert_eq!(total(&r, "mining_sensor_miner_logins_total", &login), 1);
    assert_eq!(total(&r, "mining_sensor_miner_logins_total", &[]), 1);
    let accepted = [("range", "kp"), ("coin", "other"), ("result", "accepted")];
    assert_eq!(total(&r, "mining_sensor_shares_total", &accepted), 3);
    assert_eq!(
        total(&r, "mining_sensor_share_hashes_total", &[("coin", "other")]),
        3_145_728
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// ethminer 0.19 in EthereumStratum/2.0.0 (`test_support::shares::ETHMINER_ESV2_SESSION`): the
/// program opens the flow at `mining.hello`, EthereumStratum's (before, at the subscribe, as
/// Stratum V1's `bitcoin`, the hello and its agent not handed over: `unknown`), and hands the
/// pool's `mining.set` over on the known flow; its target is 4,000,000,000 hashes a share
/// (`activity::wire`'s test), so two accepted shares are 8,000,000,000 (before: none, the
/// shares counted without hashes).
#[test]
fn an_ethereumstratum_2_session_replays_with_its_hashes() {
    let dir = tmp("esv2");
    let mut w = wire_at(50300);
    for (up, msg) in test_support::shares::ETHMINER_ESV2_SESSION {
        w.send(up, format!("{msg}\n").as_bytes());
    }
    let file = dir.join("esv2.pcap");
    write_wire(&w, &file);
    let (_, r) = replay(&[], &[&file]);
    let flows = [("dialect", "ethereum")];
    assert_eq!(total(&r, "mining_sensor_stratum_flows_total", &flows), 1);
    assert_eq!(total(&r, "mining_sensor_stratum_flows_total", &[]), 1);
    let login = [("range", "kp"), ("coin", "ethereum"), ("agent", "ethminer")];
    assert_eq!(total(&r, "mining_sensor_miner_logins_total", &login), 1);
    let accepted = [
        ("range", "kp"),
        ("coin", "ethereum"),
        ("result", "accepted"),
    ];
    assert_eq!(total(&r, "mining_sensor_shares_total", &accepted), 2);
    assert_eq!(
        total(&r, "mining_sensor_share_hashes_total", &[]),
        8_000_000_000
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A session captured on a provider's link, under MPLS: the miner's segments under a VLAN tag and
/// two labels (transport and service), the pool's under three (a second transport label on the
/// way back). The login, the pool's reply at target `b88d0600` (10,000 hashes a share), two
/// submits and their acceptances: one Stratum flow, its login attributed, 2 shares accepted,
/// 20,000 hashes, the IP bytes counted as on a plain Ethernet link. Before the header walks
/// stepped over labels, replay counted nothing of it.
/// What a replay of `two_shares` reports: one Monero flow from `kp`, the login with coin and
/// agent, 2 shares accepted at 10,000 hashes each.
fn assert_two_shares(r: &Value) {
    assert_eq!(
        total(
            r,
            "mining_sensor_stratum_flows_total",
            &[("range", "kp"), ("dialect", "monero")]
        ),
        1
    );
    let login = [("range", "kp"), ("coin", "monero"), ("agent", "xmrig")];
    assert_eq!(total(r, "mining_sensor_miner_logins_total", &login), 1);
    let accepted = [("range", "kp"), ("coin", "monero"), ("result", "accepted")];
    assert_eq!(total(r, "mining_sensor_shares_total", &accepted), 2);
    assert_eq!(total(r, "mining_sensor_shares_total", &[]), 2);
    assert_eq!(total(r, "mining_sensor_share_hashes_total", &[]), 20_000);
}

/// XMRig's login from the miner's `port`, the pool's reply at 10,000 hashes a share, and two
/// submits, each accepted.
fn two_shares(port: u16) -> Wire {
    let mut w = wire_at(port);
    w.send(true, &login());
    w.send(false, REPLY);
    w.send(true, SUBMIT);
    w.send(false, OK);
    w.send(
        true,
        b"{\"id\":3,\"jsonrpc\":\"2.0\",\"method\":\"submit\",\"params\":{\"id\":\"7d\",\"job_id\":\"1\",\"nonce\":\"c8000000\",\"result\":\"cd\"}}\n",
    );
    w.send(
        false,
        b"{\"id\":3,\"jsonrpc\":\"2.0\",\"error\":null,\"result\":{\"status\":\"OK\"}}\n",
    );
    w
}

#[test]
fn a_session_under_mpls_labels_replays_with_its_login_and_shares() {
    let dir = tmp("mpls");
    let w = two_shares(50400);
    let up_bytes: u64 = w.packets.iter().step_by(2).map(|p| p.ip_len()).sum();
    let frames: Vec<(Duration, Vec<u8>)> = w
        .packets
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let labelled = if i % 2 == 0 {
                p.clone().vlan(0x8100, 30).mpls(16_001).mpls(24)
            } else {
                p.clone().mpls(16_002).mpls(16_003).mpls(25)
            };
            (at(0, 10 * i as u64), labelled.build())
        })
        .collect();
    let file = dir.join("mpls.pcap");
    write_pcap(&file, DataLink::ETHERNET, &frames);
    let (_, r) = replay(&[], &[&file]);
    let from = [("range", "kp"), ("direction", "from")];
    assert_eq!(total(&r, "mining_sensor_packets_total", &from), 3);
    assert_eq!(total(&r, "mining_sensor_bytes_total", &from), up_bytes);
    assert_eq!(
        total(&r, "mining_sensor_packets_total", &[("direction", "to")]),
        3
    );
    assert_two_shares(&r);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A capture of a remote mirror session (ERSPAN type II from a switch, every frame in GRE):
/// without `--decapsulate` it is the switch's GRE, no watched traffic; with `--decapsulate
/// erspan` the same session as the MPLS test's above, read inside: `kp`'s 3 packets and their IP
/// bytes (the inner frames', not the tunnel's), the login with coin and agent, 2 shares accepted
/// at 10,000 hashes each; a frame whose IP length runs past it is no traffic.
#[test]
fn a_remote_mirror_sessions_capture_replays_inside_its_tunnel() {
    let dir = tmp("erspan");
    let w = two_shares(50500);
    let up_bytes: u64 = w.packets.iter().step_by(2).map(|p| p.ip_len()).sum();
    let mut frames: Vec<(Duration, Vec<u8>)> = w
        .packets
        .iter()
        .enumerate()
        .map(|(i, p)| {
            (
                at(0, 10 * i as u64),
                test_support::mirror::erspan2(&p.build()),
            )
        })
        .collect();
    // A frame whose IPv4 total length runs 10 bytes past its end (within the tunnel's 50 bytes
    // of headers): a bad length, no traffic, when the packet's length is the inner frame's.
    let mut long = w.packets[0].build();
    let length = u16::from_be_bytes([long[16], long[17]]) + 10;
    long[16..18].copy_from_slice(&length.to_be_bytes());
    frames.push((at(1, 0), test_support::mirror::erspan2(&long)));
    let file = dir.join("erspan.pcap");
    write_pcap(&file, DataLink::ETHERNET, &frames);
    let from = [("range", "kp"), ("direction", "from")];

    let (_, r) = replay(&[], &[&file]);
    assert_eq!(total(&r, "mining_sensor_packets_total", &from), 0);
    assert_eq!(total(&r, "mining_sensor_stratum_flows_total", &[]), 0);
    let problems = r["files"][0]["problems"].to_string();
    assert!(
        problems.contains("7 frames in ERSPAN or Ethernet-in-GRE tunnels")
            && problems.contains("--decapsulate erspan"),
        "{problems}"
    );

    let (_, r) = replay(&["--decapsulate", "erspan"], &[&file]);
    assert_eq!(total(&r, "mining_sensor_packets_total", &from), 3);
    assert_eq!(total(&r, "mining_sensor_bytes_total", &from), up_bytes);
    assert_two_shares(&r);
    assert_eq!(r["files"][0]["problems"], serde_json::json!([]));
    let _ = std::fs::remove_dir_all(&dir);
}
