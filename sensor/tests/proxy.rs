//! A real Stratum proxy between a miner and a pool: aiostratum-proxy 1.1 (PyPI, installed by
//! `cargo xtask setup` into its own virtual environment), in namespaces this test creates:
//!
//! ```text
//!  at-m ns                               at-v ns (mining-sensor on at1, at2)        at-p ns
//!  miner -> aiostratum-proxy (127.0.0.1:10666)
//!  at0 198.18.8.2/24  <--->  at1 198.18.8.1/24 [forwarding] at2 198.51.100.1/24 <---> at3 198.51.100.2/24
//!                                                                               scripted pool
//! ```
//!
//! The sensor sits between the proxy and the pool (XDP sees a link's incoming packets: each
//! direction arrives on one of the two interfaces).
//! The miner speaks Equihash Stratum (ZIP 301) to the proxy; the proxy logs in to the pool once,
//! as itself, and forwards the miner's shares. The pool records what the proxy sends upstream
//! (checked against the strings `deep/agent.rs` cites), and the sensor, which sees only the
//! proxy's connection, must attribute its one login to agent `aiostratum-proxy` and coin `zcash`
//! (the account `kvetak.rig1` names no coin; the pool's Equihash job does, so the login waits for
//! it). Addresses from 198.18.0.0/15 and 198.51.100.0/24 only; every wait bounded.

mod common;

use common::{
    IO_TIMEOUT, Line, Proc, http_get, in_ns, read_line, samples, sh, spawn_sensor, wait_for,
};

use std::{
    io::{BufReader, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use test_support::tools;

const POOL: &str = "198.51.100.2";
const PROXY_PORT: u16 = 10666;
/// Shares the miner submits through the proxy.
const SHARES: usize = 3;
/// The pool's `mining.set_target` (2^240).
const TARGET: &str = "0001000000000000000000000000000000000000000000000000000000000000";

/// An Equihash pool for the proxy's one connection: the subscription (Zcash style, no
/// extranonce2 size), `true` for the authorize followed by the target and a job (8 params,
/// version 04000000, as Zcash pools send), `true` for each share. Returns what it received.
fn pool(l: TcpListener) -> impl FnOnce() -> Vec<serde_json::Value> + Send {
    move || {
        let s = common::accept(&l);
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        let mut got = Vec::new();
        let mut shares = 0;
        while shares < SHARES && got.len() < 16 {
            let line = read_line(&mut r);
            assert!(!line.is_empty(), "the proxy closed early: {got:?}");
            let v: serde_json::Value = serde_json::from_str(&line).expect("proxy JSON");
            let id = v["id"].clone();
            let reply = match v["method"].as_str().unwrap_or("") {
                "mining.subscribe" => {
                    format!("{{\"id\":{id},\"result\":[null,\"e1e1e1e1\"],\"error\":null}}\n")
                }
                "mining.authorize" => {
                    let h = "a".repeat(64);
                    format!(
                        "{{\"id\":{id},\"result\":true,\"error\":null}}\n\
                         {{\"id\":null,\"method\":\"mining.set_target\",\"params\":[\"{TARGET}\"]}}\n\
                         {{\"id\":null,\"method\":\"mining.notify\",\"params\":[\"j1\",\"04000000\",\"{h}\",\"{h}\",\"{h}\",\"5b0c2a6e\",\"1d0f2c4b\",true]}}\n"
                    )
                }
                "mining.submit" => {
                    shares += 1;
                    format!("{{\"id\":{id},\"result\":true,\"error\":null}}\n")
                }
                other => panic!("pool: unexpected method {other:?}"),
            };
            got.push(v);
            w.write_all(reply.as_bytes()).unwrap();
        }
        got
    }
}

/// An Equihash miner behind the proxy: subscribe, authorize as `kvetak.rig1`, wait for the job,
/// then `SHARES` shares, each answered `true`. Equihash 200,9 solutions are 1,344 bytes after a
/// 3-byte length (`fd4005`): each submit spans several TCP segments upstream.
fn miner() -> impl FnOnce() + Send {
    move || {
        let addr = SocketAddr::from(([127, 0, 0, 1], PROXY_PORT));
        let deadline = Instant::now() + IO_TIMEOUT;
        let s = loop {
            // The proxy listens once its interpreter has started.
            match TcpStream::connect_timeout(&addr, IO_TIMEOUT) {
                Ok(s) => break s,
                Err(e) => {
                    assert!(Instant::now() < deadline, "no proxy at {addr}: {e}");
                    thread::sleep(Duration::from_millis(100));
                }
            }
        };
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        w.write_all(b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[\"nheqminer/0.5c\",null,\"127.0.0.1\",\"10666\"]}\n").unwrap();
        assert!(read_line(&mut r).contains("\"result\""));
        w.write_all(
            b"{\"id\":2,\"method\":\"mining.authorize\",\"params\":[\"kvetak.rig1\",\"x\"]}\n",
        )
        .unwrap();
        let mut job = None;
        for _ in 0..8 {
            let v: serde_json::Value = serde_json::from_str(&read_line(&mut r)).unwrap();
            if v["method"] == "mining.notify" {
                job = v["params"][0].as_str().map(str::to_string);
                break;
            }
        }
        let job = job.expect("a job through the proxy");
        let solution = format!("fd4005{}", "00".repeat(1344));
        for k in 0..SHARES {
            let id = 3 + k;
            w.write_all(
                format!(
                    "{{\"id\":{id},\"method\":\"mining.submit\",\"params\":[\"kvetak.rig1\",\"{job}\",\"5b0c2a6e\",\"{k:054x}\",\"{solution}\"]}}\n"
                )
                .as_bytes(),
            )
            .unwrap();
            // Notifications may come first; the answer carries the submit's id.
            let mut answered = false;
            for _ in 0..8 {
                let v: serde_json::Value = serde_json::from_str(&read_line(&mut r)).unwrap();
                if v["id"] == id {
                    assert_eq!(v["result"], true, "{v}");
                    answered = true;
                    break;
                }
            }
            assert!(answered, "share {k} unanswered");
        }
    }
}

#[test]
fn a_proxy_is_its_own_agent_and_carries_its_miners_shares() {
    let proxy_bin = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(tools::AIOSTRATUM_PROXY_VENV)
        .join("bin/aiostratum-proxy");
    assert!(
        proxy_bin.exists(),
        "{} is missing: run `cargo xtask setup`",
        proxy_bin.display()
    );
    let id = std::process::id();
    let line = Line::new(
        "at",
        ["at0", "198.18.8.2/24", "at1", "198.18.8.1/24"],
        ["at3", "198.51.100.2/24", "at2", "198.51.100.1/24"],
    );
    let (miner_ns, vantage_ns, pool_ns) = (
        line.miner.as_str(),
        line.vantage.as_str(),
        line.pool.as_str(),
    );
    // Segments as a wire carries them: without segmentation offload the senders' TCP cuts its
    // stream into MSS-sized segments, as a NIC would before the wire (with it, veth hands over
    // one 2.8 KB frame per share, which no link between routers would carry).
    for (ns, dev) in [(miner_ns, "at0"), (pool_ns, "at3")] {
        sh(&[
            "ip", "netns", "exec", ns, "ethtool", "-K", dev, "tso", "off", "gso", "off",
        ]);
    }

    let dir = std::env::temp_dir().join(format!("at-proxy-{id}"));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("sensor.toml");
    let events = dir.join("events.jsonl");
    std::fs::write(
        &config,
        format!(
            "drain_interval = \"200ms\"\n[events]\nsink = \"file\"\npath = \"{}\"\n[[ranges]]\nname = \"at\"\ncidrs = [\"198.18.8.2/32\"]\n",
            events.display()
        ),
    )
    .unwrap();
    let log = dir.join("sensor.log");
    let port = 19861;
    let listen = format!("127.0.0.1:{port}");
    let mut sensor = spawn_sensor(
        vantage_ns,
        &config,
        &[
            "--iface",
            "at1",
            "--iface",
            "at2",
            "--listen",
            &listen,
            "--xdp-mode",
            "generic",
        ],
        &log,
        "info",
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let attached = |text: &str| {
        ["at1", "at2"].iter().all(|i| {
            text.contains(&format!(
                "mining_sensor_xdp_attached{{iface=\"{i}\",mode=\"generic\"}} 1"
            ))
        })
    };
    while !attached(&http_get(vantage_ns, port, "/metrics")) {
        assert!(
            Instant::now() < deadline && sensor.0.try_wait().unwrap().is_none(),
            "sensor did not attach: {}",
            std::fs::read_to_string(&log).unwrap()
        );
        thread::sleep(Duration::from_millis(100));
    }

    let addr: SocketAddr = format!("{POOL}:3333").parse().unwrap();
    let server = thread::spawn(pool(common::listen(pool_ns, addr)));
    let proxy_config = dir.join("proxy.yaml");
    std::fs::write(
        &proxy_config,
        format!(
            "proxies:\n- name: at\n  worker_class: aiostratum_proxy.protocols.equihash.EquihashWorkerProtocol\n  pool_class: aiostratum_proxy.protocols.equihash.EquihashPoolProtocol\n  listen:\n  - host: '127.0.0.1'\n    port: {PROXY_PORT}\n  pools:\n  - name: pool\n    host: {POOL}\n    port: 3333\n    account_name: kvetak\n    account_password: x\n"
        ),
    )
    .unwrap();
    let proxy_log = dir.join("proxy.log");
    let _proxy = Proc(
        Command::new("ip")
            .args(["netns", "exec", miner_ns])
            .arg(&proxy_bin)
            .arg("-c")
            .arg(&proxy_config)
            .arg("-l")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&proxy_log).unwrap())
            .spawn()
            .expect("ip netns exec aiostratum-proxy"),
    );
    in_ns(miner_ns, miner()).join().unwrap_or_else(|_| {
        panic!(
            "the miner's session failed; proxy log:\n{}",
            std::fs::read_to_string(&proxy_log).unwrap_or_default()
        )
    });
    let upstream = server.join().unwrap();

    // What the proxy sent the pool: its own name and the pool it was given in the subscribe
    // (aiostratum_proxy/__init__.py `app_version`, EquihashPoolProtocol's subscription
    // parameters), then one authorize for its miner's worker under the proxy's account.
    assert_eq!(upstream[0]["method"], "mining.subscribe");
    assert_eq!(
        upstream[0]["params"],
        serde_json::json!(["aiostratum-proxy/1.1", null, POOL, 3333])
    );
    assert_eq!(upstream[1]["method"], "mining.authorize");
    assert_eq!(
        upstream[1]["params"],
        serde_json::json!(["kvetak.rig1", "x"])
    );
    let submits = upstream
        .iter()
        .filter(|v| v["method"] == "mining.submit")
        .count();
    assert_eq!(submits, SHARES);

    // The sensor: one login, the proxy's, attributed to the proxy and to the coin of the pool's
    // Equihash job.
    let labels = [
        ("agent", "aiostratum-proxy"),
        ("coin", "zcash"),
        ("range", "at"),
    ];
    let logins = wait_for(
        vantage_ns,
        port,
        "mining_sensor_miner_logins_total",
        &labels,
        1.0,
        Duration::from_secs(10),
    );
    let text = http_get(vantage_ns, port, "/metrics");
    assert_eq!(logins, 1.0, "{text}");
    // Every login of the range is that one: no other agent or coin.
    let m = samples(&text);
    let all: f64 = m
        .iter()
        .filter(|((n, l), _)| {
            n == "mining_sensor_miner_logins_total" && l.get("range").is_some_and(|r| r == "at")
        })
        .map(|(_, v)| v)
        .sum();
    assert_eq!(all, 1.0, "{text}");
    let lines = std::fs::read_to_string(&events).unwrap();
    let logins: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event"] == "miner_login")
        .collect();
    assert_eq!(logins.len(), 1, "{lines}");
    assert_eq!(logins[0]["agent"], "aiostratum-proxy");
    assert_eq!(logins[0]["agent_version"], "1.1");
    assert_eq!(logins[0]["coin"], "zcash");
    assert_eq!(logins[0]["dialect"], "bitcoin");
    assert_eq!(logins[0]["src"], "198.18.8.2");
    // And its shares: each submit carries a 1,344-byte solution, about 2.8 KB of JSON over two
    // TCP segments, read whole once both are here. The target 2^240 makes a share worth
    // 2^256 / 2^240 = 65,536 hashes: 3 accepted shares, 196,608 hashes.
    let accepted = [("coin", "zcash"), ("range", "at"), ("result", "accepted")];
    let shares = wait_for(
        vantage_ns,
        port,
        "mining_sensor_shares_total",
        &accepted,
        SHARES as f64,
        Duration::from_secs(10),
    );
    let text = http_get(vantage_ns, port, "/metrics");
    assert_eq!(shares, SHARES as f64, "{text}");
    let m = samples(&text);
    let hashes = m
        .iter()
        .find(|((n, l), _)| {
            n == "mining_sensor_share_hashes_total" && l.get("coin").is_some_and(|c| c == "zcash")
        })
        .map(|(_, v)| *v);
    assert_eq!(hashes, Some(196_608.0), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
