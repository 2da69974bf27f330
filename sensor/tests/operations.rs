//! A running sensor through what operations throw at it, with exact counts in between:
//! check-config on good and bad files, a broken reload, a good reload adding a range, a link flap,
//! the interface deleted and re-created, hostile frames, the capabilities left after start-up,
//! and SIGKILL.
//!
//! Two namespaces this test creates: a client (c0 198.18.5.2/24) and the sensor's (s0
//! 198.18.5.1/24, XDP native). The client sends UDP datagrams; every IPv4 packet arriving on s0 is
//! one of them, so the expected counts are the numbers sent. Needs root and iproute2.

mod common;

use std::{net::UdpSocket, path::Path, process::Command, thread, time::Duration};

use common::{Namespaces, http_get, in_ns, output, sh, spawn_sensor, wait_for};
use test_support::Packet;

const PORT: u16 = 19821;
const WAIT: Duration = Duration::from_secs(8);

struct Pair {
    client: String,
    sensor: String,
    _namespaces: Namespaces,
}

impl Pair {
    /// `tag` keeps the namespaces of tests running in parallel apart.
    fn new(tag: &str) -> Self {
        let id = std::process::id();
        let (client, sensor) = (format!("mso-c-{tag}-{id}"), format!("mso-s-{tag}-{id}"));
        let p = Self {
            _namespaces: Namespaces::new(&[&client, &sensor]),
            client,
            sensor,
        };
        p.link();
        p
    }

    /// Starts the sensor on s0 (native XDP) with `cfg`, metrics on `port`, its log in `log`, and
    /// waits until it reports the interface up.
    fn start_sensor(&self, cfg: &Path, log: &Path, port: u16) -> common::Proc {
        self.start_sensor_on(&["s0"], cfg, log, port)
    }

    /// [`Pair::start_sensor`] on each of `ifaces` (in the sensor's namespace), waiting for all.
    fn start_sensor_on(&self, ifaces: &[&str], cfg: &Path, log: &Path, port: u16) -> common::Proc {
        let listen = format!("127.0.0.1:{port}");
        let mut args: Vec<&str> = ifaces.iter().flat_map(|i| ["--iface", *i]).collect();
        args.extend(["--xdp-mode", "native", "--listen", &listen]);
        let sensor = spawn_sensor(&self.sensor, cfg, &args, log, "info");
        for iface in ifaces {
            assert_eq!(
                wait_for(
                    &self.sensor,
                    port,
                    "mining_sensor_interface_up",
                    &[("iface", iface)],
                    1.0,
                    WAIT
                ),
                1.0,
                "{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        sensor
    }

    /// (Re-)creates the veth pair.
    fn link(&self) {
        sh(&[
            "ip",
            "link",
            "add",
            "c0",
            "netns",
            &self.client,
            "type",
            "veth",
            "peer",
            "name",
            "s0",
            "netns",
            &self.sensor,
        ]);
        sh(&[
            "ip",
            "-n",
            &self.client,
            "addr",
            "add",
            "198.18.5.2/24",
            "dev",
            "c0",
        ]);
        sh(&[
            "ip",
            "-n",
            &self.sensor,
            "addr",
            "add",
            "198.18.5.1/24",
            "dev",
            "s0",
        ]);
        sh(&["ip", "-n", &self.client, "link", "set", "c0", "up"]);
        sh(&["ip", "-n", &self.sensor, "link", "set", "s0", "up"]);
    }

    /// Sends `n` UDP datagrams from the client to the sensor's namespace.
    fn send(&self, n: usize) {
        in_ns(&self.client, move || {
            let u = UdpSocket::bind("198.18.5.2:0").unwrap();
            for i in 0..n {
                u.send_to(&[b'x'; 64], "198.18.5.1:9")
                    .unwrap_or_else(|e| panic!("datagram {i}: {e}"));
                // Pacing, part of the traffic: one datagram every 2 ms, well within what the
                // link and the program take.
                thread::sleep(Duration::from_millis(2));
            }
        })
        .join()
        .unwrap();
    }

    /// Sends raw Ethernet frames from the client's link.
    fn send_frames(&self, frames: Vec<Vec<u8>>) {
        common::send_frames(&self.client, "c0", frames, Duration::ZERO);
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

const GOOD: &str =
    "drain_interval = \"200ms\"\n[[ranges]]\nname = \"a\"\ncidrs = [\"198.18.5.2/32\"]\n";
const BROKEN: &str =
    "drain_interval = \"200ms\"\n[[ranges]]\nname = \"a\"\ncidrs = [\"198.18.5.2/33\"]\n";
const GROWN: &str = "drain_interval = \"200ms\"\n[[ranges]]\nname = \"a\"\ncidrs = [\"198.18.5.2/32\"]\n[[ranges]]\nname = \"b\"\ncidrs = [\"198.18.5.0/24\"]\n";

#[test]
fn a_watched_configuration_file_reloads_itself() {
    let p = Pair::new("watch");
    let dir = std::env::temp_dir().join(format!("mso-watch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("sensor.toml");
    let watched = |text: &str| format!("watch_config = true\n{text}");
    write(&cfg, &watched(GOOD));
    let log = dir.join("sensor.log");
    let port = PORT + 2;
    let _sensor = p.start_sensor(&cfg, &log, port);
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    let metric = |name: &str, labels: &[(&str, &str)], want: f64| {
        wait_for(&p.sensor, port, name, labels, want, WAIT)
    };
    let from = |range: &'static str| [("direction", "from"), ("iface", "s0"), ("range", range)];
    let pk = "mining_sensor_packets_total";
    p.send(10);
    assert_eq!(metric(pk, &from("a"), 10.0), 10.0);

    // No signal: the changed file is noticed and applied, a's counter goes on.
    write(&cfg, &watched(GROWN));
    let ok = [("result", "success")];
    assert_eq!(
        metric("mining_sensor_config_reloads_total", &ok, 1.0),
        1.0,
        "{}",
        logs()
    );
    p.send(10);
    assert_eq!(metric(pk, &from("a"), 20.0), 20.0);
    assert_eq!(metric(pk, &from("b"), 10.0), 10.0);

    // A broken edit is refused once and the running configuration stays; unchanged content is
    // not reloaded again.
    write(&cfg, &watched(BROKEN));
    let failed = [("result", "failure")];
    assert_eq!(
        metric("mining_sensor_config_reloads_total", &failed, 1.0),
        1.0,
        "{}",
        logs()
    );
    // Time passes on purpose: two ticks of the file watch (every second) over the unchanged
    // broken file, which must not count a second failure (checked below).
    thread::sleep(Duration::from_millis(2500));
    p.send(10);
    assert_eq!(metric(pk, &from("b"), 20.0), 20.0);
    let m = common::samples(&http_get(&p.sensor, port, "/metrics"));
    assert_eq!(
        common::get(&m, "mining_sensor_config_reloads_total", &failed),
        1.0
    );
    assert_eq!(
        common::get(&m, "mining_sensor_config_reloads_total", &ok),
        1.0
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_config_exit_codes_and_messages() {
    let dir = std::env::temp_dir().join(format!("mso-cc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.toml");
    let bad = dir.join("bad.toml");
    write(&good, GOOD);
    write(&bad, BROKEN);
    let bin = env!("CARGO_BIN_EXE_mining-sensor");
    let ok = Command::new(bin)
        .arg("check-config")
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(ok.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("valid: 1 ranges, 1 prefixes"));
    let no = Command::new(bin)
        .arg("check-config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(no.status.code(), Some(2));
    let msg = String::from_utf8_lossy(&no.stderr);
    assert!(
        msg.contains("bad.toml:4: ranges.a.cidrs: \"198.18.5.2/33\""),
        "{msg}"
    );
    let missing = Command::new(bin)
        .arg("check-config")
        .arg(dir.join("nope.toml"))
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nope.toml: cannot read"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_running_sensor_through_reloads_flaps_recreation_hostile_frames_and_sigkill() {
    let p = Pair::new("ops");
    let dir = std::env::temp_dir().join(format!("mso-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("sensor.toml");
    write(&cfg, GOOD);
    let log = dir.join("sensor.log");
    let mut sensor = p.start_sensor(&cfg, &log, PORT);
    let pid = sensor.0.id() as i32;
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    let metric = |name: &str, labels: &[(&str, &str)], want: f64| {
        wait_for(&p.sensor, PORT, name, labels, want, WAIT)
    };
    let from = |range: &'static str| [("direction", "from"), ("iface", "s0"), ("range", range)];
    let pk = "mining_sensor_packets_total";

    // Only CAP_BPF (39) and CAP_NET_ADMIN (12) remain after start-up.
    let kept = (1u64 << 39) | (1 << 12);
    for set in ["CapEff", "CapPrm", "CapBnd"] {
        let (mask, status) = common::capabilities(sensor.0.id(), set);
        assert_eq!(mask, kept, "{set}: {status}");
    }

    p.send(10);
    assert_eq!(metric(pk, &from("a"), 10.0), 10.0);

    // A broken file: refused, counted, the running configuration stays.
    write(&cfg, BROKEN);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    assert_eq!(
        metric(
            "mining_sensor_config_reloads_total",
            &[("result", "failure")],
            1.0
        ),
        1.0,
        "{}",
        logs()
    );
    assert!(logs().contains("ranges.a.cidrs"), "{}", logs());
    p.send(10);
    assert_eq!(metric(pk, &from("a"), 20.0), 20.0);

    // A good file adding a range: both count from now on, a's counter goes on from 20.
    write(&cfg, GROWN);
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    assert_eq!(
        metric(
            "mining_sensor_config_reloads_total",
            &[("result", "success")],
            1.0
        ),
        1.0,
        "{}",
        logs()
    );
    assert_eq!(
        metric(
            "mining_sensor_watched_prefixes",
            &[("family", "ipv4"), ("range", "b")],
            1.0
        ),
        1.0
    );
    p.send(10);
    assert_eq!(metric(pk, &from("a"), 30.0), 30.0);
    assert_eq!(metric(pk, &from("b"), 10.0), 10.0);

    // Link flap: down is seen, up again, the program stays and counts.
    sh(&["ip", "-n", &p.sensor, "link", "set", "s0", "down"]);
    assert_eq!(
        metric("mining_sensor_interface_up", &[("iface", "s0")], 0.0),
        0.0
    );
    sh(&["ip", "-n", &p.sensor, "link", "set", "s0", "up"]);
    assert_eq!(
        metric("mining_sensor_interface_up", &[("iface", "s0")], 1.0),
        1.0
    );
    p.send(10);
    assert_eq!(metric(pk, &from("a"), 40.0), 40.0);

    // The interface deleted and re-created: down, then attached again within seconds.
    sh(&["ip", "-n", &p.client, "link", "del", "c0"]);
    assert_eq!(
        metric("mining_sensor_interface_up", &[("iface", "s0")], 0.0),
        0.0
    );
    assert_eq!(
        metric(
            "mining_sensor_xdp_attached",
            &[("iface", "s0"), ("mode", "native")],
            0.0
        ),
        0.0
    );
    p.link();
    assert_eq!(
        metric(
            "mining_sensor_xdp_attached",
            &[("iface", "s0"), ("mode", "native")],
            1.0
        ),
        1.0,
        "{}",
        logs()
    );
    assert_eq!(
        metric("mining_sensor_interface_up", &[("iface", "s0")], 1.0),
        1.0
    );
    assert!(output(&["ip", "-n", &p.sensor, "link", "show", "s0"]).contains("xdp"));
    p.send(10);
    assert_eq!(metric(pk, &from("a"), 50.0), 50.0, "{}", logs());
    assert_eq!(metric(pk, &from("b"), 30.0), 30.0);

    // Hostile frames: each passes, none is counted as traffic, each is counted by its reason.
    let reason = |r: &str| {
        let s = common::samples(&http_get(&p.sensor, PORT, "/metrics"));
        common::get(&s, "mining_sensor_parse_events_total", &[("reason", r)])
    };
    let before: Vec<f64> = [
        "bad_ipv4_header",
        "bad_ipv4_length",
        "too_many_vlan_tags",
        "bad_tcp_header",
    ]
    .map(reason)
    .to_vec();
    let src = "198.18.5.2".parse().unwrap();
    let dst = "198.51.100.1".parse().unwrap();
    let good = Packet::tcp4(src, dst, 1, 2, b"{}").build();
    let mut bad_ihl = good.clone();
    bad_ihl[14] = 0x43;
    let mut bad_len = good.clone();
    bad_len[16..18].copy_from_slice(&1500u16.to_be_bytes());
    let vlans = Packet::tcp4(src, dst, 1, 2, b"{}")
        .vlan(0x88a8, 1)
        .vlan(0x8100, 2)
        .vlan(0x8100, 3)
        .vlan(0x8100, 4)
        .vlan(0x8100, 5)
        .build();
    let mut bad_doff = Packet::tcp4(src, dst, 1, 2, b"").build();
    bad_doff[14 + 20 + 12] = 0x20;
    p.send_frames(vec![bad_ihl, bad_len, vlans, bad_doff]);
    let want: Vec<f64> = before.iter().map(|b| b + 1.0).collect();
    for (r, w) in [
        "bad_ipv4_header",
        "bad_ipv4_length",
        "too_many_vlan_tags",
        "bad_tcp_header",
    ]
    .iter()
    .zip(&want)
    {
        assert_eq!(
            wait_for(
                &p.sensor,
                PORT,
                "mining_sensor_parse_events_total",
                &[("reason", r)],
                *w,
                WAIT
            ),
            *w,
            "{r}"
        );
    }
    // The bad data offset frame is a whole IPv4 packet from range a and b: traffic, not inspected.
    assert_eq!(metric(pk, &from("a"), 51.0), 51.0);
    assert!(
        sensor.0.try_wait().unwrap().is_none(),
        "sensor died: {}",
        logs()
    );

    // SIGKILL: no chance to clean up, yet the kernel removes the program with the process's link.
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    sensor.0.wait().unwrap();
    let mut gone = false;
    for _ in 0..50 {
        if !output(&["ip", "-n", &p.sensor, "link", "show", "s0"]).contains("xdp") {
            gone = true;
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    assert!(gone, "an XDP program was left behind after SIGKILL");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Received packets of `dev` in `ns`, from the driver's own statistics.
fn rx_packets(ns: &str, dev: &str) -> u64 {
    let text = output(&["ip", "-n", ns, "-s", "link", "show", "dev", dev]);
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if l.trim_start().starts_with("RX:") {
            return lines
                .next()
                .unwrap()
                .split_whitespace()
                .nth(1)
                .unwrap()
                .parse()
                .unwrap();
        }
    }
    panic!("no RX statistics: {text}");
}

#[test]
fn soak_counters_equal_what_the_driver_received_and_flows_beyond_the_table_are_accounted() {
    let p = Pair::new("soak");
    // IPv6 off: every frame that is not IPv4 from the client is then non-IP (ARP), which the
    // sensor counts as such.
    for (ns, dev) in [(&p.client, "c0"), (&p.sensor, "s0")] {
        sh(&[
            "ip",
            "netns",
            "exec",
            ns,
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{dev}.disable_ipv6=1"),
        ]);
    }
    let dir = std::env::temp_dir().join(format!("mso-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("sensor.toml");
    let events = dir.join("events.jsonl");
    const FLOWS: u64 = 300;
    const TABLE: u64 = 64;
    write(
        &cfg,
        &format!(
            "drain_interval = \"200ms\"\nflow_table_size = {TABLE}\n[events]\nsink = \"file\"\npath = \"{}\"\nring_bytes = 4096\n[[ranges]]\nname = \"soak\"\ncidrs = [\"198.18.5.2/32\"]\n",
            events.display()
        ),
    );
    let log = dir.join("sensor.log");
    let port = PORT + 1;
    let mut sensor = p.start_sensor(&cfg, &log, port);
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    let rx_before = rx_packets(&p.sensor, "s0");
    let seen_before = common::get(
        &common::samples(&http_get(&p.sensor, port, "/metrics")),
        "mining_sensor_parse_events_total",
        &[("reason", "seen")],
    );

    // A pool in the sensor's namespace and FLOWS logins from the client, far beyond the table.
    // The pool listens before the client starts.
    let l = common::listen(&p.sensor, "198.18.5.1:3333".parse().unwrap());
    let pool = thread::spawn(move || {
        for _ in 0..FLOWS {
            let mut s = common::accept(&l);
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 1024];
            let _ = std::io::Read::read(&mut s, &mut buf);
        }
    });
    in_ns(&p.client, || {
        let login = b"{\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"login\",\"params\":{\"login\":\"48edfHu7V9Z84YzzMa6fUueoELZ9ZRXq9VetWzYGzKt52XU5xvqgzYnDK9URnRoJMk1j8nLwEVsaSWJ4fhdUyZijBGUicoD\",\"pass\":\"x\",\"agent\":\"XMRig/6.21.0\"}}\n";
        for _ in 0..FLOWS {
            let mut s = std::net::TcpStream::connect("198.18.5.1:3333").unwrap();
            s.set_nodelay(true).unwrap();
            std::io::Write::write_all(&mut s, login).unwrap();
        }
    })
    .join()
    .unwrap();
    pool.join().unwrap();

    // UDP as fast as one socket sends, for a bounded two seconds.
    in_ns(&p.client, || {
        let u = UdpSocket::bind("198.18.5.2:0").unwrap();
        let end = std::time::Instant::now() + Duration::from_secs(2);
        while std::time::Instant::now() < end {
            for _ in 0..256 {
                let _ = u.send_to(&[0u8; 32], "198.18.5.1:9");
            }
        }
    })
    .join()
    .unwrap();

    // The program sees each frame as the driver receives it, and the agent exports the count at
    // its next drain (every 200 ms): wait, bounded, until the count meets the driver's, then
    // check that snapshot (or the last one).
    let deadline = std::time::Instant::now() + WAIT;
    let (rx, m) = loop {
        let rx = rx_packets(&p.sensor, "s0") - rx_before;
        let m = common::samples(&http_get(&p.sensor, port, "/metrics"));
        let seen = common::get(
            &m,
            "mining_sensor_parse_events_total",
            &[("reason", "seen")],
        );
        if (seen - seen_before) as u64 == rx || std::time::Instant::now() > deadline {
            break (rx, m);
        }
        thread::sleep(Duration::from_millis(100));
    };
    let g = |name: &str, labels: &[(&str, &str)]| common::get(&m, name, labels);
    let seen = g("mining_sensor_parse_events_total", &[("reason", "seen")]) - seen_before;
    let not_ip = g("mining_sensor_parse_events_total", &[("reason", "not_ip")]);
    let packets = g(
        "mining_sensor_packets_total",
        &[("direction", "from"), ("iface", "s0"), ("range", "soak")],
    );
    assert!(
        rx > 100_000,
        "the soak sent too little to mean anything: {rx}"
    );
    // The program saw every frame the driver received, and counted every IPv4 one.
    assert_eq!(seen as u64, rx, "seen by XDP vs received by the driver");
    assert!(not_ip < 20.0, "{not_ip}");
    assert_eq!(packets, seen - not_ip);
    // Flows beyond the table: all counted once, the excess evicted, every event sent or lost.
    let created = g(
        "mining_sensor_stratum_flows_total",
        &[
            ("dialect", "monero"),
            ("direction", "from"),
            ("range", "soak"),
        ],
    );
    assert_eq!(created as u64, FLOWS);
    let entries = g("mining_sensor_flow_table_entries", &[]);
    assert!(entries as u64 <= TABLE, "{entries}");
    assert_eq!(
        g("mining_sensor_flow_table_evictions_total", &[]) + entries,
        FLOWS as f64
    );
    let (sent, lost) = (
        g("mining_sensor_events_total", &[]),
        g("mining_sensor_events_lost_total", &[]),
    );
    assert_eq!(sent + lost, FLOWS as f64);
    let text = std::fs::read_to_string(&events).unwrap();
    let (logins, flows): (Vec<&str>, Vec<&str>) = text
        .lines()
        .partition(|l| l.contains("\"event\":\"miner_login\""));
    assert_eq!(
        flows.len() as f64,
        sent,
        "event lines vs events sent ({lost} lost)"
    );
    // Deep inspection (inline) read each flow's login once, unless its copy was dropped, which
    // is counted.
    let counted = g(
        "mining_sensor_miner_logins_total",
        &[("agent", "xmrig"), ("coin", "monero"), ("range", "soak")],
    );
    let dropped: f64 = m
        .iter()
        .filter(|((n, _), _)| n == "mining_sensor_capture_drops_total")
        .map(|(_, v)| v)
        .sum();
    assert_eq!(logins.len() as f64, counted);
    assert!(
        counted <= FLOWS as f64 && counted + dropped >= FLOWS as f64,
        "{counted} logins, {dropped} candidates dropped, {FLOWS} flows"
    );
    assert!(sensor.0.try_wait().unwrap().is_none(), "{}", logs());
    eprintln!(
        "soak: {rx} frames received and seen, {packets} counted, {entries} flows in the table, {} evicted, {sent} events, {lost} lost",
        FLOWS as f64 - entries
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `deploy/README.md`'s sizing table, held to a running sensor: with 3 ranges and 2 interfaces,
/// right after start, each metric has the series the table's formula gives (its rows without their
/// optional parts), 160 `mining_sensor_` series in all.
#[test]
fn a_fresh_sensor_exports_the_series_the_sizing_table_counts() {
    let p = Pair::new("size");
    common::veth(
        (&p.client, "c1", "198.18.6.2/24"),
        (&p.sensor, "s1", "198.18.6.1/24"),
    );
    let dir = std::env::temp_dir().join(format!("mso-size-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("sensor.toml");
    write(
        &cfg,
        "drain_interval = \"200ms\"\n\
         [[ranges]]\nname = \"a\"\ncidrs = [\"198.18.5.2/32\"]\n\
         [[ranges]]\nname = \"b\"\ncidrs = [\"198.18.6.0/24\", \"2001:db8:6::/48\"]\n\
         [[ranges]]\nname = \"c\"\ncidrs = [\"203.0.113.0/24\"]\n",
    );
    let log = dir.join("sensor.log");
    let port = PORT + 3;
    let _sensor = p.start_sensor_on(&["s0", "s1"], &cfg, &log, port);
    // Counters of the configured ranges exist from the first drain on.
    let from_c = [("direction", "from"), ("iface", "s1"), ("range", "c")];
    let pk = "mining_sensor_packets_total";
    assert_eq!(wait_for(&p.sensor, port, pk, &from_c, 0.0, WAIT), 0.0);
    let m = common::samples(&http_get(&p.sensor, port, "/metrics"));
    let mut families = std::collections::BTreeMap::<&str, usize>::new();
    for (name, _) in m.keys() {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| f.ends_with("_seconds")))
            .unwrap_or(name);
        *families.entry(family).or_default() += 1;
    }
    let (r, i, d) = (3, 2, 3);
    let table = [
        ("mining_sensor_packets_total", r * 2 * i),
        ("mining_sensor_bytes_total", r * 2 * i),
        ("mining_sensor_stratum_packets_total", r * 2 * d),
        ("mining_sensor_stratum_flows_total", r * 2 * d),
        ("mining_sensor_suspect_flows_total", r * 2 * 6),
        ("mining_sensor_interface_up", i),
        ("mining_sensor_xdp_attached", i),
        ("mining_sensor_build_info", 1),
        ("mining_sensor_drain_duration_seconds", 12 + 3),
        ("mining_sensor_last_drain_timestamp_seconds", 1),
        ("mining_sensor_flow_table_entries", 1),
        ("mining_sensor_flow_table_capacity", 1),
        ("mining_sensor_flow_table_evictions_total", 1),
        ("mining_sensor_opening_bytes", 1),
        ("mining_sensor_opening_evictions_total", 1),
        ("mining_sensor_events_total", 1),
        ("mining_sensor_events_lost_total", 1),
        ("mining_sensor_tls_shape_bytes", 1),
        ("mining_sensor_tls_shape_evictions_total", 1),
        ("mining_sensor_parse_events_total", 22),
        ("mining_sensor_watched_prefixes", r * 2),
        // Deep inspection's, present at start in the default `inline` capture mode.
        ("mining_sensor_inspect_candidates_total", 1),
        ("mining_sensor_reassembly_bytes", 1),
        ("mining_sensor_reassembly_evictions_total", 1),
        ("mining_sensor_inflate_bytes", 1),
        ("mining_sensor_inflate_evictions_total", 1),
        ("mining_sensor_capture_drops_total", 3),
    ];
    let want: std::collections::BTreeMap<&str, usize> = table.into_iter().collect();
    assert_eq!(
        families, want,
        "series per metric, against deploy/README.md's table"
    );
    assert_eq!(want.values().sum::<usize>(), 162);
    let _ = std::fs::remove_dir_all(&dir);
}
