//! A remote mirror session made by Linux itself: the miner's port mirrored with `tc mirred` into
//! a `vxlan` device (VXLAN to port 4789, as AWS VPC Traffic Mirroring and Azure vTAP deliver),
//! whose packets cross a link to the sensor's namespace, where the sensor, attached in native
//! mode with `decapsulate = ["vxlan"]`, reads the frames inside. (Linux's `erspan` device needs
//! GRE, which this machine's kernel is built without: ERSPAN is tested with frames built by hand,
//! `sensor/tests/kernel.rs` and `sensor/tests/replay.rs`.) Needs root and namespaces.
//!
//! Addresses: the miner 192.0.2.10 and the pool 192.0.2.20 on one link; the mirror's tunnel from
//! 198.51.100.200 (the miner's namespace, the switch here) to the sensor's 198.51.100.201.

mod common;

use std::{
    io::{BufRead, BufReader, Write},
    net::SocketAddr,
    time::Duration,
};

use common::{get, http_get, samples, sh, spawn_sensor, tmp, wait_exported};

const MINER: &str = "192.0.2.10";
const POOL: &str = "192.0.2.20";
const SHARES: u32 = 5;

const WALLET: &str = "44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A";

/// The pool's side: a job at target `b88d0600` (10,000 hashes a share) for the login, OK for
/// each submit.
fn pool(listener: std::net::TcpListener) {
    let s = common::accept(&listener);
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(common::IO_TIMEOUT)).unwrap();
    let mut w = s.try_clone().unwrap();
    for line in BufReader::new(s).lines() {
        let line = line.unwrap();
        let id: u32 = line
            .split("\"id\":")
            .nth(1)
            .and_then(|r| r.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if line.contains("\"login\"") {
            w.write_all(b"{\"id\":1,\"jsonrpc\":\"2.0\",\"error\":null,\"result\":{\"id\":\"7d\",\"job\":{\"blob\":\"0b0b\",\"job_id\":\"1\",\"target\":\"b88d0600\",\"algo\":\"rx/0\"},\"status\":\"OK\"}}\n").unwrap();
        } else {
            w.write_all(
                format!("{{\"id\":{id},\"jsonrpc\":\"2.0\",\"error\":null,\"result\":{{\"status\":\"OK\"}}}}\n")
                    .as_bytes(),
            )
            .unwrap();
        }
    }
}

/// XMRig's login and `SHARES` submits, each answer read before the next message.
fn miner(pool: SocketAddr) {
    let mut c = common::LineClient::connect(pool);
    c.send(format!("{{\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"login\",\"params\":{{\"login\":\"{WALLET}\",\"pass\":\"x\",\"agent\":\"XMRig/6.16.0 (Linux x86_64) libuv/1.42.0 gcc/5.4.0\"}}}}\n").as_bytes());
    c.expect("\"job\"");
    for n in 2..2 + SHARES {
        c.send(format!("{{\"id\":{n},\"jsonrpc\":\"2.0\",\"method\":\"submit\",\"params\":{{\"id\":\"7d\",\"job_id\":\"1\",\"nonce\":\"b80000{n:02x}\",\"result\":\"ab\"}}}}\n").as_bytes());
        c.expect("\"OK\"");
    }
}

/// The session mirrored over VXLAN counts as if the sensor sat on the miner's port, in `inline`
/// mode (the inner frame's copy read by deep inspection, the packet passed on as it came).
#[test]
fn a_session_mirrored_over_linux_vxlan_counts_as_on_the_port() {
    mirrored_session("inline", 9851);
}

/// The same in `tap` mode: the inner frame goes to the AF_XDP socket. The session starts as soon
/// as the program reads as attached; before the agent opened its sockets ahead of the attach, it
/// failed in 5 of 36 runs beside two other runs of this file (the login, or every candidate, in
/// `capture_drops_total{ring="no_socket"}`).
#[test]
fn a_session_mirrored_over_linux_vxlan_counts_as_on_the_port_over_af_xdp() {
    mirrored_session("tap", 9852);
}

/// One Monero flow from the watched miner, its login with coin and agent, every share accepted
/// at 10,000 hashes; the tunnel's own packets (198.51.100.200 to .201) are not the miner's
/// traffic, and every one the sensor saw was read inside (`decapsulated`, no `bad_tunnel`).
fn mirrored_session(mode: &str, port: u16) {
    let id = std::process::id();
    let (m, p, s) = (
        format!("mir-{mode}-m-{id}"),
        format!("mir-{mode}-p-{id}"),
        format!("mir-{mode}-s-{id}"),
    );
    let _ns = common::Namespaces::new(&[&m, &p, &s]);
    common::veth(
        (&m, "r0", &format!("{MINER}/24")),
        (&p, "r1", &format!("{POOL}/24")),
    );
    common::veth(
        (&m, "t0", "198.51.100.200/24"),
        (&s, "t1", "198.51.100.201/24"),
    );
    // The mirror: every frame in and out of the miner's port, copied into VXLAN network 42.
    sh(&[
        "ip",
        "-n",
        &m,
        "link",
        "add",
        "vx0",
        "type",
        "vxlan",
        "id",
        "42",
        "local",
        "198.51.100.200",
        "remote",
        "198.51.100.201",
        "dstport",
        "4789",
    ]);
    sh(&["ip", "-n", &m, "link", "set", "vx0", "up"]);
    sh(&[
        "ip", "netns", "exec", &m, "tc", "qdisc", "add", "dev", "r0", "clsact",
    ]);
    for dir in ["ingress", "egress"] {
        sh(&[
            "ip", "netns", "exec", &m, "tc", "filter", "add", "dev", "r0", dir, "protocol", "all",
            "u32", "match", "u32", "0", "0", "action", "mirred", "egress", "mirror", "dev", "vx0",
        ]);
    }

    let dir = tmp(&format!("mirror-{mode}"));
    let config = dir.join("sensor.toml");
    std::fs::write(
        &config,
        format!("decapsulate = [\"vxlan\"]\n[[ranges]]\nname = \"m\"\ncidrs = [\"{MINER}/32\"]\n"),
    )
    .unwrap();
    let log = dir.join("sensor.log");
    let mut sensor = spawn_sensor(
        &s,
        &config,
        &[
            "--iface",
            "t1",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--xdp-mode",
            "native",
            "--capture-mode",
            mode,
        ],
        &log,
        "info",
    );
    wait_exported(
        &s,
        port,
        &mut sensor,
        &log,
        "mining_sensor_xdp_attached{iface=\"t1\",mode=\"native\"} 1",
    );

    let addr: SocketAddr = format!("{POOL}:3333").parse().unwrap();
    let listener = common::in_ns(&p, move || std::net::TcpListener::bind(addr).unwrap())
        .join()
        .unwrap();
    let server = std::thread::spawn(move || pool(listener));
    common::in_ns(&m, move || miner(addr)).join().unwrap();
    server.join().unwrap();

    // Shares are counted once deep inspection reads the pool's reply, the kernel's counts at its
    // next drain (every 5 s by default): wait for both, at most 30 s.
    let accepted = [("range", "m"), ("coin", "monero"), ("result", "accepted")];
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        let text = http_get(&s, port, "/metrics");
        let v = samples(&text);
        if common::range_sum(&v, "mining_sensor_shares_total", "m") >= SHARES as f64
            && common::range_sum(&v, "mining_sensor_stratum_packets_total", "m")
                >= 1.0 + SHARES as f64
        {
            break v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "shares not counted: {text}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let flows = [("range", "m"), ("direction", "from"), ("dialect", "monero")];
    assert_eq!(
        get(&metrics, "mining_sensor_stratum_flows_total", &flows),
        1.0
    );
    let login = [("range", "m"), ("coin", "monero"), ("agent", "xmrig")];
    assert_eq!(
        get(&metrics, "mining_sensor_miner_logins_total", &login),
        1.0
    );
    assert_eq!(
        get(&metrics, "mining_sensor_shares_total", &accepted),
        SHARES as f64
    );
    assert_eq!(
        get(
            &metrics,
            "mining_sensor_share_hashes_total",
            &[("range", "m"), ("coin", "monero")]
        ),
        SHARES as f64 * 10_000.0
    );
    // The login and the submits from the miner, each a segment: Stratum packets from it.
    let from = [("range", "m"), ("direction", "from"), ("dialect", "monero")];
    assert_eq!(
        get(&metrics, "mining_sensor_stratum_packets_total", &from),
        1.0 + SHARES as f64
    );
    assert!(
        get(
            &metrics,
            "mining_sensor_parse_events_total",
            &[("reason", "decapsulated")]
        ) >= 1.0 + 2.0 * (1 + SHARES) as f64
    );
    assert_eq!(
        get(
            &metrics,
            "mining_sensor_parse_events_total",
            &[("reason", "bad_tunnel")]
        ),
        0.0
    );
    drop(sensor);
    let _ = std::fs::remove_dir_all(&dir);
}
