//! A flood of crafted packets beside a real plaintext session (issue "Cost and abuse"): the
//! session's counts stay exact.
//!
//! ```text
//!  miner ns                     vantage ns (mining-sensor, XDP native on cov0, cov1)       pool ns
//!  com0 198.18.20.2/24  <--->  cov0 198.18.20.1/24   [forwarding]   cov1 198.18.21.1/24  <--->  cop0 198.18.21.2/24
//! ```
//!
//! While an XMRig-style client logs in to the test's pool and submits `SHARES` shares, each
//! answered OK, the miner's namespace sends `ROUNDS` rounds of every crafted packet of
//! `test_support::crafted` (the benchmark's `crafted_*` rows) out of its link, from the watched
//! range to the pool's address: JSON-looking payloads to the pool port that run the scanner to
//! its window's end, a masked WebSocket frame, the longest DNS name, a ClientHello with 32
//! extensions and a 238-byte server name in a pool domain.
//!
//! Needs root and iproute2. Addresses are from 198.18.0.0/15 only; the flood is bounded in count
//! and the session in time.

mod common;

use common::{IO_TIMEOUT, Line, http_get, in_ns, read_line, samples, send_frames, wait_for};

use std::{
    io::{BufReader, Write},
    net::{Ipv4Addr, SocketAddr, TcpStream},
    thread,
    time::{Duration, Instant},
};

use test_support::{Packet, crafted::crafted};

const MINER: Ipv4Addr = Ipv4Addr::new(198, 18, 20, 2);
const POOL: Ipv4Addr = Ipv4Addr::new(198, 18, 21, 2);
const SENSOR_PORT: u16 = 19831;
const RANGE: &str = "flood";
/// Shares the session submits, one every `SHARE_GAP`, so that the session lasts as long as the
/// flood (about a second).
const SHARES: u64 = 20;
const SHARE_GAP: Duration = Duration::from_millis(50);
/// Rounds of the crafted packets: 7 families x 300 = 2,100 frames.
const ROUNDS: usize = 300;
/// The login reply's target, `f3220000`: t = 0x22f3 = 8,947; (2^32-1) / 8,947 = 480,045 (rest
/// 1,680); T = (2^64-1) / 480,045; (2^64-1) / T = 480,045 hashes a share (contract.md).
const TARGET: &str = "f3220000";
const SHARE_HASHES: u64 = 480_045;
const WALLET: &str = "48edfHu7V9Z84YzzMa6fUueoELZ9ZRXq9VetWzYGzKt52XU5xvqgzYnDK9URnRoJMk1j8nLwEVsaSWJ4fhdUyZijBGUicoD";

/// The pool: one connection, a login reply with a job at `TARGET`, every submit accepted, until
/// the client closes (at most `SHARES` + 2 lines).
fn pool(l: std::net::TcpListener) -> u64 {
    let mut submits = 0;
    common::answer_lines(common::accept(&l), SHARES as usize + 2, |v| {
        let id = &v["id"];
        match v["method"].as_str().unwrap_or("") {
            "login" => format!(
                "{{\"id\":{id},\"jsonrpc\":\"2.0\",\"error\":null,\"result\":{{\"id\":\"5f3a\",\"job\":{{\"blob\":\"0e0ea8c2a8f405\",\"job_id\":\"311\",\"target\":\"{TARGET}\",\"algo\":\"rx/0\",\"height\":2540000,\"seed_hash\":\"7b4d\"}},\"extensions\":[\"algo\",\"keepalive\"],\"status\":\"OK\"}}}}\n"
            ),
            "submit" => {
                submits += 1;
                format!(
                    "{{\"id\":{id},\"jsonrpc\":\"2.0\",\"error\":null,\"result\":{{\"status\":\"OK\"}}}}\n"
                )
            }
            other => panic!("pool: unexpected method {other:?}"),
        }
    });
    submits
}

/// An XMRig-style session: the login, then `SHARES` submits for job 311, each waited for.
fn miner(pool: SocketAddr) {
    let s = TcpStream::connect_timeout(&pool, IO_TIMEOUT).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let mut ask = |msg: String| {
        w.write_all(msg.as_bytes()).unwrap();
        read_line(&mut r)
    };
    let login = ask(format!(
        "{{\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"login\",\"params\":{{\"login\":\"{WALLET}\",\"pass\":\"x\",\"agent\":\"XMRig/6.21.0 (Linux x86_64) libuv/1.44.2 gcc/12.2.0\",\"algo\":[\"rx/0\",\"cn/2\",\"cn/r\"]}}}}\n"
    ));
    assert!(login.contains("\"job\""), "{login}");
    for n in 0..SHARES {
        thread::sleep(SHARE_GAP);
        let ok = ask(format!(
            "{{\"id\":{},\"jsonrpc\":\"2.0\",\"method\":\"submit\",\"params\":{{\"id\":\"5f3a\",\"job_id\":\"311\",\"nonce\":\"{n:08x}\",\"result\":\"f1e2d3c4b5a6978800112233445566778899aabbccddeeff0011223344556677\",\"algo\":\"rx/0\"}}}}\n",
            n + 2
        ));
        assert!(ok.contains("OK"), "{ok}");
    }
}

/// The sum of `name` over the samples whose labels include `labels`.
fn total(m: &common::Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    m.iter()
        .filter(|((n, l), _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, v)| v)
        .sum()
}

#[test]
fn cost_flood_beside_a_session_keeps_its_counts() {
    let t = Line::new(
        "co",
        ["com0", "198.18.20.2/24", "cov0", "198.18.20.1/24"],
        ["cop0", "198.18.21.2/24", "cov1", "198.18.21.1/24"],
    );
    let dir = std::env::temp_dir().join(format!("co-flood-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("sensor.toml");
    std::fs::write(
        &config,
        format!("drain_interval = \"200ms\"\n[[ranges]]\nname = \"{RANGE}\"\ncidrs = [\"198.18.20.0/24\"]\n"),
    )
    .unwrap();
    let log = dir.join("sensor.log");
    let sensor = common::sensor_on_line(&t, ["cov0", "cov1"], SENSOR_PORT, &config, &log);

    // The crafted frames, each family from a source port of its own, so that each makes at most
    // one flow: 7 x ROUNDS frames.
    let families = crafted();
    let frames: Vec<Vec<u8>> = (0..ROUNDS)
        .flat_map(|_| {
            families.iter().enumerate().map(|(i, c)| {
                let sport = 41001 + i as u16;
                if c.udp {
                    Packet::udp4(MINER, POOL, sport, c.dport, &c.payload).build()
                } else {
                    Packet::tcp4(MINER, POOL, sport, c.dport, &c.payload).build()
                }
            })
        })
        .collect();
    assert_eq!(frames.len(), 7 * ROUNDS);

    let pool_addr = SocketAddr::from((POOL, test_support::crafted::POOL_PORT));
    let listener = common::listen(&t.pool, pool_addr);
    let pool_thread = thread::spawn(move || pool(listener));
    let session = in_ns(&t.miner, move || miner(pool_addr));
    // The flood, beside the session: 2,100 frames, a 400 us pause after each (about 1 s).
    send_frames(&t.miner, "com0", frames, Duration::from_micros(400));
    session.join().unwrap();
    let submits = pool_thread.join().unwrap();
    assert_eq!(submits, SHARES);

    let settle = Duration::from_secs(10);
    let monero = [("coin", "monero"), ("range", RANGE)];
    let accepted = [&monero[..], &[("result", "accepted")]].concat();
    // 20 shares x 480,045 = 9,600,900 hashes.
    for (name, labels, want) in [
        ("mining_sensor_shares_total", &accepted[..], SHARES as f64),
        (
            "mining_sensor_share_hashes_total",
            &monero[..],
            (SHARES * SHARE_HASHES) as f64,
        ),
        (
            "mining_sensor_miner_logins_total",
            &[("agent", "xmrig"), ("coin", "monero"), ("range", RANGE)][..],
            1.0,
        ),
    ] {
        assert_eq!(
            wait_for(&t.vantage, SENSOR_PORT, name, labels, want, settle),
            want,
            "{name} {labels:?}: {}",
            http_get(&t.vantage, SENSOR_PORT, "/metrics")
        );
    }
    // The flood went through the program: every crafted frame and the session's own segments
    // (its handshake, the login and the submits at least) came in on cov0 from the range, counted
    // at a drain within the settling time.
    let least = (7 * ROUNDS) as f64 + 1.0 + 1.0 + SHARES as f64;
    let from_cov0 = [("range", RANGE), ("direction", "from"), ("iface", "cov0")];
    let deadline = Instant::now() + settle;
    let m = loop {
        let m = samples(&http_get(&t.vantage, SENSOR_PORT, "/metrics"));
        let from = total(&m, "mining_sensor_packets_total", &from_cov0);
        if from >= least || Instant::now() > deadline {
            assert!(
                from >= least,
                "{from} packets from the range, want {least} or more"
            );
            break m;
        }
        thread::sleep(Duration::from_millis(100));
    };
    // One Stratum flow, the session's: no crafted payload completes a rule.
    assert_eq!(
        total(&m, "mining_sensor_stratum_flows_total", &[("range", RANGE)]),
        1.0
    );
    assert_eq!(
        total(
            &m,
            "mining_sensor_stratum_flows_total",
            &[
                ("range", RANGE),
                ("direction", "from"),
                ("dialect", "monero")
            ]
        ),
        1.0
    );
    // Every share accepted: none rejected or unknown.
    assert_eq!(
        total(&m, "mining_sensor_shares_total", &[("range", RANGE)]),
        SHARES as f64
    );
    // The crafted ClientHellos are one flow whose server name is in a pool domain: one
    // `tls_pool_sni` suspect flow; the DNS name is in none.
    assert_eq!(
        total(
            &m,
            "mining_sensor_suspect_flows_total",
            &[("range", RANGE), ("reason", "tls_pool_sni")]
        ),
        1.0
    );
    assert_eq!(
        total(
            &m,
            "mining_sensor_suspect_flows_total",
            &[("range", RANGE), ("reason", "pool_dns")]
        ),
        0.0
    );
    drop(sensor);
    std::fs::remove_dir_all(&dir).ok();
}
