//! Deep inspection live, in both capture modes, in namespaces this test creates:
//!
//! ```text
//!  miner ns                     pool ns                                  sensor ns
//!  m0 198.18.6.2/24  <------>   p0 198.18.6.1/24   -- tc mirred -->  s0 ====== s1 (tap: AF_XDP)
//!                               (inline: the sensor is attached to p0 itself)
//! ```
//!
//! `tap`: the pool's link is mirrored (tc mirred, as a switch's SPAN port would) onto a veth whose
//! far end, in the sensor's namespace, is all the sensor sees; candidates reach it over AF_XDP.
//! `inline`: the sensor sits on the live link and must leave the session untouched.
//! Either way an XMRig-style login must come out as `coin="monero", agent="xmrig"`, with no wallet
//! anywhere in `/metrics` or the events. Addresses from 198.18.0.0/15 only; every wait bounded.

mod common;

use common::{
    IO_TIMEOUT, Namespaces, http_get, in_ns, read_line, samples, sh, spawn_sensor, veth,
    wait_exported, wait_for,
};

use std::{
    io::{BufReader, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    process::Command,
    thread,
    time::{Duration, Instant},
};

const WALLET: &str = "48edfHu7V9Z84YzzMa6fUueoELZ9ZRXq9VetWzYGzKt52XU5xvqgzYnDK9URnRoJMk1j8nLwEVsaSWJ4fhdUyZijBGUicoD";
const POOL: &str = "198.18.6.1";

/// Miner and pool joined by a veth pair; with `mirror`, a sensor namespace whose `s1` receives a
/// copy of everything the pool's `p0` sends and receives.
fn topology(tag: &str, mirror: bool) -> (Namespaces, String, String, String) {
    let id = std::process::id();
    let (miner, pool, sensor) = (
        format!("msc-{tag}-m-{id}"),
        format!("msc-{tag}-p-{id}"),
        format!("msc-{tag}-s-{id}"),
    );
    let mut all = vec![miner.as_str(), pool.as_str()];
    if mirror {
        all.push(sensor.as_str());
    }
    let guard = Namespaces::new(&all);
    veth(
        (&miner, "m0", "198.18.6.2/24"),
        (&pool, "p0", "198.18.6.1/24"),
    );
    if mirror {
        sh(&[
            "ip", "netns", "exec", &pool, "tc", "qdisc", "add", "dev", "p0", "clsact",
        ]);
        mirror_port(&pool, &sensor);
    }
    (guard, miner, pool, sensor)
}

/// The SPAN port: a veth pair s0 (pool namespace) / s1 (sensor namespace), and everything p0 sends
/// and receives mirrored onto s0.
fn mirror_port(pool: &str, sensor: &str) {
    sh(&[
        "ip", "link", "add", "s0", "netns", pool, "type", "veth", "peer", "name", "s1", "netns",
        sensor,
    ]);
    sh(&["ip", "-n", pool, "link", "set", "s0", "up"]);
    sh(&["ip", "-n", sensor, "link", "set", "s1", "up"]);
    for hook in ["ingress", "egress"] {
        // Replaces the filter a deleted s0 left behind.
        let _ = Command::new("ip")
            .args([
                "netns", "exec", pool, "tc", "filter", "del", "dev", "p0", hook,
            ])
            .output();
        sh(&[
            "ip", "netns", "exec", pool, "tc", "filter", "add", "dev", "p0", hook, "protocol",
            "all", "u32", "match", "u32", "0", "0", "action", "mirred", "egress", "mirror", "dev",
            "s0",
        ]);
    }
}

/// A Monero pool for one session on `l`: a job for the login, OK for each submit.
fn pool(l: TcpListener) -> impl FnOnce() + Send {
    move || {
        let s = common::accept(&l);
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        assert!(read_line(&mut r).contains("\"login\""));
        w.write_all(b"{\"id\":1,\"jsonrpc\":\"2.0\",\"error\":null,\"result\":{\"id\":\"5f3a\",\"job\":{\"blob\":\"0e0e\",\"job_id\":\"311\",\"target\":\"f3220000\",\"algo\":\"rx/0\",\"height\":3000000,\"seed_hash\":\"ab\"},\"status\":\"OK\"}}\n").unwrap();
        for _ in 0..2 {
            assert!(read_line(&mut r).contains("submit"));
            w.write_all(
                b"{\"id\":2,\"jsonrpc\":\"2.0\",\"error\":null,\"result\":{\"status\":\"OK\"}}\n",
            )
            .unwrap();
        }
    }
}

/// XMRig's login and two submits; every answer must arrive (the session is untouched).
fn xmrig(addr: SocketAddr) -> impl FnOnce() + Send {
    move || {
        let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap();
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        w.write_all(format!("{{\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"login\",\"params\":{{\"login\":\"{WALLET}\",\"pass\":\"x\",\"agent\":\"XMRig/6.21.0 (Linux x86_64) libuv/1.44.2 gcc/12.2.0\",\"algo\":[\"rx/0\",\"cn/2\",\"rx/wow\"]}}}}\n").as_bytes()).unwrap();
        assert!(read_line(&mut r).contains("\"job\""));
        for n in 0..2 {
            w.write_all(format!("{{\"id\":{},\"jsonrpc\":\"2.0\",\"method\":\"submit\",\"params\":{{\"id\":\"5f3a\",\"job_id\":\"311\",\"nonce\":\"0{n}000000\",\"result\":\"f1e2\",\"algo\":\"rx/0\"}}}}\n", n + 2).as_bytes()).unwrap();
            assert!(read_line(&mut r).contains("OK"));
        }
    }
}

/// Runs the sensor in `ns` on `iface` in `mode`, one XMRig session, and checks the attribution.
fn attributed(tag: &str, mirror: bool, mode: &str, xdp_mode: &str, port: u16) {
    let (_guard, miner, pool_ns, sensor_ns) = topology(tag, mirror);
    let (ns, iface) = if mirror {
        (sensor_ns.as_str(), "s1")
    } else {
        (pool_ns.as_str(), "p0")
    };
    let dir = std::env::temp_dir().join(format!("msc-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("sensor.toml");
    let events = dir.join("events.jsonl");
    std::fs::write(
        &config,
        format!(
            "drain_interval = \"200ms\"\n[inspect]\ncapture_mode = \"{mode}\"\nframes = {TAP_FRAMES}\n[events]\nsink = \"file\"\npath = \"{}\"\n[[ranges]]\nname = \"harness\"\ncidrs = [\"198.18.6.2/32\"]\n",
            events.display()
        ),
    )
    .unwrap();
    let log = dir.join("sensor.log");
    let listen = format!("127.0.0.1:{port}");
    let mut sensor = spawn_sensor(
        ns,
        &config,
        &[
            "--iface",
            iface,
            "--listen",
            &listen,
            "--xdp-mode",
            xdp_mode,
        ],
        &log,
        "info",
    );
    // The session starts as soon as the program reads as attached: in `tap` mode its AF_XDP
    // socket must be registered by then (a candidate before that finds no socket: the login
    // would be lost, counted in capture_drops_total{ring="no_socket"}).
    let attached = format!("mining_sensor_xdp_attached{{iface=\"{iface}\",mode=\"{xdp_mode}\"}} 1");
    let text = wait_exported(ns, port, &mut sensor, &log, &attached);
    if mode == "tap" {
        let sockets = [("bind", "copy"), ("iface", iface)];
        assert_eq!(
            common::get(&samples(&text), "mining_sensor_afxdp_sockets", &sockets),
            1.0,
            "attached before its socket was open: {text}"
        );
        // What a tap sensor keeps once attached: CAP_BPF (39), CAP_NET_ADMIN (12), and for the
        // sockets of a re-created interface CAP_NET_RAW (13) and CAP_IPC_LOCK (14). The log line
        // comes after the drop.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(&log)
            .unwrap()
            .contains("capabilities reduced")
        {
            assert!(Instant::now() < deadline, "no capabilities line in the log");
            thread::sleep(Duration::from_millis(10));
        }
        let (effective, status) = common::capabilities(sensor.0.id(), "CapEff");
        assert_eq!(
            effective,
            (1 << 39) | (1 << 12) | (1 << 13) | (1 << 14),
            "{status}"
        );
    }

    let addr: SocketAddr = format!("{POOL}:3333").parse().unwrap();
    let server = thread::spawn(pool(common::listen(&pool_ns, addr)));
    in_ns(&miner, xmrig(addr)).join().unwrap();
    server.join().unwrap();

    let labels = [("agent", "xmrig"), ("coin", "monero"), ("range", "harness")];
    let logins = wait_for(
        ns,
        port,
        "mining_sensor_miner_logins_total",
        &labels,
        1.0,
        Duration::from_secs(10),
    );
    let text = http_get(ns, port, "/metrics");
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(logins, 1.0, "{text}\n{log_text}");
    let m = samples(&text);
    let path = if mode == "tap" { "afxdp" } else { "copy" };
    // What the kernel handed over is what was inspected, once both have settled: the kernel's
    // count follows at the next drain, and the last copies may still wait in their ring (read
    // every 50 ms without a wake-up) when the login is already counted.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (inspected, handed, text) = loop {
        let text = http_get(ns, port, "/metrics");
        let m = samples(&text);
        let inspected = common::get(
            &m,
            "mining_sensor_inspected_packets_total",
            &[("path", path)],
        );
        let handed = common::get(&m, "mining_sensor_inspect_candidates_total", &[]);
        if inspected == handed || Instant::now() > deadline {
            break (inspected, handed, text);
        }
        thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(handed, inspected, "{text}");
    // Candidates: the login, its reply and the submits with their answers, within the budget (8).
    assert!((1.0..=8.0).contains(&inspected), "{text}");
    assert_eq!(
        common::get(&m, "mining_sensor_distinct_miners", &[("range", "harness")]),
        1.0
    );
    if mode == "tap" {
        assert_eq!(
            common::get(
                &m,
                "mining_sensor_afxdp_sockets",
                &[("bind", "copy"), ("iface", "s1")]
            ),
            1.0,
            "{text}"
        );
        assert!(log_text.contains("AF_XDP socket open"), "{log_text}");
    }
    assert!(!text.contains(WALLET), "a wallet in /metrics: {text}");

    // The login event: coin, agent, version and a keyed hash, never the wallet.
    let lines = std::fs::read_to_string(&events).unwrap();
    assert!(!lines.contains(WALLET), "a wallet in the events: {lines}");
    let login: serde_json::Value = lines
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["event"] == "miner_login")
        .unwrap_or_else(|| panic!("no login event: {lines}"));
    assert_eq!(login["coin"], "monero");
    assert_eq!(login["agent"], "xmrig");
    assert_eq!(login["agent_version"], "6.21.0");
    assert_eq!(login["path"], path);
    assert_eq!(login["src"], "198.18.6.2");
    assert_eq!(login["iface"], iface);
    assert_eq!(login["login_hash"].as_str().unwrap().len(), 16);

    if mirror {
        // The mirror port deleted and re-created (a replugged SPAN cable): the sensor attaches
        // again, opens new sockets, and the next session, started as soon as the program reads
        // as attached again, is attributed over AF_XDP too.
        sh(&["ip", "-n", &sensor_ns, "link", "del", "s1"]);
        let s1 = [("bind", "copy"), ("iface", "s1")];
        let sockets = "mining_sensor_afxdp_sockets";
        assert_eq!(
            wait_for(ns, port, sockets, &s1, 0.0, Duration::from_secs(10)),
            0.0
        );
        mirror_port(&pool_ns, &sensor_ns);
        let text = wait_exported(ns, port, &mut sensor, &log, &attached);
        assert_eq!(
            common::get(&samples(&text), sockets, &s1),
            1.0,
            "attached again before its socket was open: {text}"
        );
        let server = thread::spawn(pool(common::listen(&pool_ns, addr)));
        in_ns(&miner, xmrig(addr)).join().unwrap();
        server.join().unwrap();
        assert_eq!(
            wait_for(
                ns,
                port,
                "mining_sensor_miner_logins_total",
                &labels,
                2.0,
                Duration::from_secs(10)
            ),
            2.0,
            "{}",
            std::fs::read_to_string(&log).unwrap()
        );
        let text = http_get(ns, port, "/metrics");
        assert_eq!(
            common::get(
                &samples(&text),
                "mining_sensor_capture_drops_total",
                &[("path", "afxdp"), ("ring", "no_socket")]
            ),
            0.0,
            "{text}"
        );
    }

    // SAFETY: signalling our own child.
    unsafe { libc::kill(sensor.0.id() as i32, libc::SIGTERM) };
    assert_eq!(sensor.0.wait().unwrap().code(), Some(0), "{log_text}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// UMEM frames of each AF_XDP socket (`inspect.frames`): 64 MiB of 2 KiB frames, which the kernel
/// pins when the socket is registered, so that opening it takes long enough for a sensor that
/// reported itself attached before its socket was open to be caught by the next scrape (3 runs
/// of 3 caught it), and more than the 8 MiB of RLIMIT_MEMLOCK a process without
/// CAP_SYS_RESOURCE keeps: the socket of a re-created interface, opened after the capabilities
/// are dropped, needs CAP_IPC_LOCK (every re-attach failed without it).
const TAP_FRAMES: u32 = 32_768;

#[test]
fn tap_mode_on_a_mirror_port_attributes_the_login_over_af_xdp() {
    attributed("tap", true, "tap", "native", 19831);
}

#[test]
fn inline_mode_on_the_live_link_attributes_the_login_and_leaves_the_session_alone() {
    attributed("inl", false, "inline", "native", 19832);
}

/// The same through generic (skb) XDP, for NICs without a native XDP driver: AF_XDP then works in
/// copy mode on the generic path.
#[test]
fn both_modes_work_through_generic_xdp() {
    attributed("gtap", true, "tap", "generic", 19833);
    attributed("ginl", false, "inline", "generic", 19834);
}
