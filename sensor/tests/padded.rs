//! An ethproxy session (Ethereum) whose every client message is padded past the program's window,
//! live: the program reads no marker in any of its packets (the pool's messages carry none), the
//! agent reads the padded login whole and opens the flow in the program's table, and from then on
//! every share counts with the pool's verdict at its work's boundary.
//!
//! ```text
//!  miner ns                     vantage ns (mining-sensor, XDP native on pdv0, pdv1)       pool ns
//!  pdm0 198.18.30.2/24  <--->  pdv0 198.18.30.1/24   [forwarding]   pdv1 198.18.31.1/24  <--->  pdp0 198.18.31.2/24
//! ```
//!
//! The client is a script: no real miner pads its messages (the issue's reshapings are applied
//! to a real miner's bytes in `evasive.rs`). Needs root and iproute2. Addresses are from
//! 198.18.0.0/15 only; the session is bounded in messages and time.

mod common;

use common::{IO_TIMEOUT, Line, http_get, in_ns, read_line, wait_for};

use std::{
    io::{BufReader, Write},
    net::{Ipv4Addr, SocketAddr, TcpStream},
    thread,
    time::Duration,
};

const POOL: Ipv4Addr = Ipv4Addr::new(198, 18, 31, 2);
/// No pool port: only the watched range makes the program hand the padded messages over.
const POOL_PORT: u16 = 8008;
const SENSOR_PORT: u16 = 19834;
const RANGE: &str = "padded";
/// Shares submitted after the flow is open.
const SHARES: u64 = 12;
/// Bytes of the unknown key each client message carries before its method.
const PAD: usize = 600;
const HEADER: &str = "0x416e293fb0bd38d28e5ff6bd43bc13a0252333f9985485cbd5ed49f3c79d2960";
/// The work's boundary, 2^224: 2^256 / 2^224 = 2^32 = 4,294,967,296 hashes a share.
const BOUNDARY: &str = "0x0000000100000000000000000000000000000000000000000000000000000000";
const SHARE_HASHES: u64 = 1 << 32;

/// The pool: one connection; `true` to the login and to each share, the work to `eth_getWork`,
/// until the client closes (at most `SHARES` + 2 lines). Returns the shares it took.
fn pool(l: std::net::TcpListener) -> u64 {
    let mut shares = 0;
    common::answer_lines(common::accept(&l), SHARES as usize + 2, |v| {
        let result = match v["method"].as_str().unwrap_or("") {
            "eth_submitLogin" => "true".to_string(),
            "eth_getWork" => format!("[\"{HEADER}\",\"{HEADER}\",\"{BOUNDARY}\"]"),
            "eth_submitWork" => {
                shares += 1;
                "true".to_string()
            }
            other => panic!("pool: unexpected method {other:?}"),
        };
        format!(
            "{{\"id\":{},\"jsonrpc\":\"2.0\",\"result\":{result}}}\n",
            v["id"]
        )
    });
    shares
}

/// A client message with `PAD` bytes of an unknown key before its method.
fn padded(id: u64, method: &str, params: &str) -> String {
    let pad = "x".repeat(PAD);
    format!(
        "{{\"pad\":\"{pad}\",\"id\":{id},\"jsonrpc\":\"2.0\",\"method\":\"{method}\",\"params\":{params}}}\n"
    )
}

#[test]
fn an_ethproxy_session_padded_in_every_client_message_counts_its_shares_live() {
    let t = Line::new(
        "pd",
        ["pdm0", "198.18.30.2/24", "pdv0", "198.18.30.1/24"],
        ["pdp0", "198.18.31.2/24", "pdv1", "198.18.31.1/24"],
    );
    let dir = std::env::temp_dir().join(format!("pd-padded-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("sensor.toml");
    std::fs::write(
        &config,
        format!("drain_interval = \"200ms\"\n[[ranges]]\nname = \"{RANGE}\"\ncidrs = [\"198.18.30.0/24\"]\n"),
    )
    .unwrap();
    let log = dir.join("sensor.log");
    let sensor = common::sensor_on_line(&t, ["pdv0", "pdv1"], SENSOR_PORT, &config, &log);

    let pool_addr = SocketAddr::from((POOL, POOL_PORT));
    let listener = common::listen(&t.pool, pool_addr);
    let pool_thread = thread::spawn(move || pool(listener));
    // The client's socket, made in the miner's namespace, used from here.
    let s = in_ns(&t.miner, move || {
        TcpStream::connect_timeout(&pool_addr, IO_TIMEOUT).expect("connect to the pool")
    })
    .join()
    .unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let mut ask = |msg: String| {
        w.write_all(msg.as_bytes()).unwrap();
        read_line(&mut r)
    };
    let login = r#"["0x52bc44d5378309ee2abf1539bf71de1b7d7be3b5","x"]"#;
    assert!(ask(padded(1, "eth_submitLogin", login)).contains("true"));

    // The flow, opened by the agent at the login (from the range, its source), within 10 s.
    let settle = Duration::from_secs(10);
    let from = [
        ("dialect", "ethereum"),
        ("direction", "from"),
        ("range", RANGE),
    ];
    let flows = "mining_sensor_stratum_flows_total";
    let opened = wait_for(&t.vantage, SENSOR_PORT, flows, &from, 1.0, settle);
    assert_eq!(
        opened,
        1.0,
        "{}",
        http_get(&t.vantage, SENSOR_PORT, "/metrics")
    );

    // From then on the pool's answers are handed over: the work's boundary, each share's `true`.
    let work = ask(padded(2, "eth_getWork", "[]"));
    assert!(work.contains(BOUNDARY), "{work}");
    let share = format!("[\"0x63d8903c474b670f\",\"{HEADER}\",\"{HEADER}\"]");
    for id in 3..SHARES + 3 {
        assert!(ask(padded(id, "eth_submitWork", &share)).contains("true"));
    }
    assert_eq!(pool_thread.join().unwrap(), SHARES);

    let eth = [("coin", "ethereum"), ("range", RANGE)];
    let accepted = [&eth[..], &[("result", "accepted")]].concat();
    // 12 shares x 2^32 = 51,539,607,552 hashes.
    for (name, labels, want) in [
        ("mining_sensor_shares_total", &accepted[..], SHARES as f64),
        (
            "mining_sensor_share_hashes_total",
            &eth[..],
            (SHARES * SHARE_HASHES) as f64,
        ),
        // No agent travels in an ethproxy login.
        (
            "mining_sensor_miner_logins_total",
            &[("agent", "unknown"), ("coin", "ethereum"), ("range", RANGE)][..],
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
    let m = common::samples(&http_get(&t.vantage, SENSOR_PORT, "/metrics"));
    let sum = |name: &str| -> f64 {
        m.iter()
            .filter(|((n, _), _)| n == name)
            .map(|(_, v)| v)
            .sum()
    };
    // One flow, counted once; every share accepted, none without its difficulty.
    assert_eq!(sum(flows), 1.0);
    assert_eq!(sum("mining_sensor_shares_total"), SHARES as f64);
    assert_eq!(sum("mining_sensor_shares_unknown_difficulty_total"), 0.0);
    drop(sensor);
    std::fs::remove_dir_all(&dir).ok();
}
