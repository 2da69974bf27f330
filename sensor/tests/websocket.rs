//! Stratum inside WebSocket frames between two real WebSocket endpoints (issue "Encrypted and
//! evasive mining": browser-miner bridges carry a miner's Stratum in WebSocket text frames, the
//! client's masked): the Python `websockets` library (the version setup pins) on both ends, the
//! client sending an XMRig login and `SHARES` submits, each a text frame, the server answering as a
//! pool. The sensor must count the flow, the login with its coin and agent, and every share with
//! its hashes, exactly as for plaintext Stratum.
//!
//! ```text
//!  miner ns                     vantage ns (mining-sensor, XDP native on wsv0, wsv1)       pool ns
//!  wsm0 198.18.22.2/24  <--->  wsv0 198.18.22.1/24   [forwarding]   wsv1 198.18.23.1/24  <--->  wsp0 198.18.23.2/24
//! ```
//!
//! Compression is off on both ends: a frame compressed with permessage-deflate (RSV1 set) is not
//! read (README, "Reshaped messages"), and this test is about the framing and the masking.
//!
//! Needs root, iproute2 and the virtual environment `cargo xtask setup` makes for the TLS test
//! (`websockets`). Addresses are from 198.18.0.0/15 only; both ends run under `timeout`, and the
//! session is `SHARES` request-reply exchanges.

mod common;

use common::{Line, Proc, http_get, spawn_sensor, wait_for};

use std::{
    process::{Command, Stdio},
    time::Duration,
};

const SENSOR_PORT: u16 = 19832;
const RANGE: &str = "wsminer";
const POOL: &str = "198.18.23.2";
const POOL_PORT: u16 = 8181;
/// Shares the client submits, each answered before the next.
const SHARES: u64 = 12;
/// The login reply's target, `f3220000`: t = 0x22f3 = 8,947; (2^32-1) / 8,947 = 480,045 (rest
/// 1,680), so a share is 480,045 hashes (contract.md, Monero's 4-byte target).
const TARGET: &str = "f3220000";
const SHARE_HASHES: u64 = 480_045;

/// Both ends. `server HOST PORT TARGET`: answers each text message as a pool (a login with a
/// job at TARGET, a submit with OK) until the client closes. `client URI SHARES`: XMRig's login,
/// then SHARES submits, each waited for; prints `shares N` (the answers that said OK).
const SCRIPT: &str = r#"
import asyncio, json, sys
import websockets

WALLET = "48edfHu7V9Z84YzzMa6fUueoELZ9ZRXq9VetWzYGzKt52XU5xvqgzYnDK9URnRoJMk1j8nLwEVsaSWJ4fhdUyZijBGUicoD"

async def server(host, port, target):
    async def handler(ws):
        async for text in ws:
            msg = json.loads(text)
            if msg["method"] == "login":
                reply = {"id": msg["id"], "jsonrpc": "2.0", "error": None, "result": {
                    "id": "5f3a", "job": {"blob": "0e0ea8c2a8f405", "job_id": "311", "target": target,
                    "algo": "rx/0", "height": 2540000, "seed_hash": "7b4d"}, "status": "OK"}}
            else:
                reply = {"id": msg["id"], "jsonrpc": "2.0", "error": None, "result": {"status": "OK"}}
            await ws.send(json.dumps(reply, separators=(",", ":")) + "\n")
    async with websockets.serve(handler, host, port, compression=None):
        print("ready", flush=True)
        await asyncio.sleep(60)

async def client(uri, shares):
    async with websockets.connect(uri, compression=None) as ws:
        login = {"id": 1, "jsonrpc": "2.0", "method": "login", "params": {"login": WALLET, "pass": "x",
                 "agent": "XMRig/6.16.0 (Linux x86_64) libuv/1.42.0 gcc/5.4.0", "algo": ["rx/0"]}}
        await ws.send(json.dumps(login, separators=(",", ":")) + "\n")
        assert "job" in await ws.recv()
        ok = 0
        for n in range(shares):
            submit = {"id": n + 2, "jsonrpc": "2.0", "method": "submit", "params": {"id": "5f3a",
                      "job_id": "311", "nonce": "%08x" % n,
                      "result": "f1e2d3c4b5a6978800112233445566778899aabbccddeeff0011223344556677",
                      "algo": "rx/0"}}
            await ws.send(json.dumps(submit, separators=(",", ":")) + "\n")
            ok += '"OK"' in await ws.recv()
            await asyncio.sleep(0.05)
    print("shares", ok, flush=True)

if sys.argv[1] == "server":
    asyncio.run(server(sys.argv[2], int(sys.argv[3]), sys.argv[4]))
else:
    asyncio.run(client(sys.argv[2], int(sys.argv[3])))
"#;

/// `SCRIPT args` in `ns`, under `timeout`.
fn script(ns: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, "timeout", "90"])
        .arg(common::corpus_python())
        .args(["-c", SCRIPT])
        .args(args);
    c
}

#[test]
fn stratum_in_websocket_frames_between_real_endpoints_counts_exactly() {
    let t = Line::new(
        "ws",
        ["wsm0", "198.18.22.2/24", "wsv0", "198.18.22.1/24"],
        ["wsp0", "198.18.23.2/24", "wsv1", "198.18.23.1/24"],
    );
    let dir = std::env::temp_dir().join(format!("ws-stratum-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("sensor.toml");
    std::fs::write(
        &config,
        format!(
            "drain_interval = \"200ms\"\n[[ranges]]\nname = \"{RANGE}\"\ncidrs = [\"198.18.22.0/24\"]\n"
        ),
    )
    .unwrap();
    let listen = format!("127.0.0.1:{SENSOR_PORT}");
    let log = dir.join("sensor.log");
    let mut sensor = spawn_sensor(
        &t.vantage,
        &config,
        &[
            "--iface",
            "wsv0",
            "--iface",
            "wsv1",
            "--listen",
            &listen,
            "--xdp-mode",
            "native",
        ],
        &log,
        "info",
    );
    common::wait_exported(
        &t.vantage,
        SENSOR_PORT,
        &mut sensor,
        &log,
        "mining_sensor_xdp_attached{iface=\"wsv1\",mode=\"native\"} 1",
    );

    let port = POOL_PORT.to_string();
    let mut server = Proc(
        script(&t.pool, &["server", POOL, &port, TARGET])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("server.log")).unwrap())
            .spawn()
            .expect("the WebSocket pool"),
    );
    // Wait for its "ready" line (the library is listening).
    let mut out = server.0.stdout.take().unwrap();
    let mut ready = [0u8; 6];
    std::io::Read::read_exact(&mut out, &mut ready).expect("the server's ready line");
    assert_eq!(&ready, b"ready\n");

    let uri = format!("ws://{POOL}:{POOL_PORT}/");
    let shares = SHARES.to_string();
    let client = script(&t.miner, &["client", &uri, &shares])
        .output()
        .expect("the WebSocket miner");
    assert!(
        client.status.success(),
        "client: {}",
        String::from_utf8_lossy(&client.stderr)
    );
    // The pool said OK to every share.
    assert_eq!(
        String::from_utf8_lossy(&client.stdout).trim(),
        format!("shares {SHARES}")
    );
    drop(server);

    let settle = Duration::from_secs(10);
    let monero = [("coin", "monero"), ("range", RANGE)];
    let accepted = [&monero[..], &[("result", "accepted")]].concat();
    // 12 shares x 480,045 = 5,760,540 hashes.
    for (name, labels, want) in [
        (
            "mining_sensor_stratum_flows_total",
            &[
                ("range", RANGE),
                ("direction", "from"),
                ("dialect", "monero"),
            ][..],
            1.0,
        ),
        (
            "mining_sensor_miner_logins_total",
            &[("agent", "xmrig"), ("coin", "monero"), ("range", RANGE)][..],
            1.0,
        ),
        ("mining_sensor_shares_total", &accepted[..], SHARES as f64),
        (
            "mining_sensor_share_hashes_total",
            &monero[..],
            (SHARES * SHARE_HASHES) as f64,
        ),
    ] {
        assert_eq!(
            wait_for(&t.vantage, SENSOR_PORT, name, labels, want, settle),
            want,
            "{name} {labels:?}: {}",
            http_get(&t.vantage, SENSOR_PORT, "/metrics")
        );
    }
    // Nothing else: one flow, one login, every share accepted (none rejected or unknown).
    let m = common::samples(&http_get(&t.vantage, SENSOR_PORT, "/metrics"));
    let sum = |name: &str| -> f64 {
        m.iter()
            .filter(|((n, l), _)| n == name && l.get("range").map(String::as_str) == Some(RANGE))
            .map(|(_, v)| v)
            .sum()
    };
    assert_eq!(sum("mining_sensor_stratum_flows_total"), 1.0);
    assert_eq!(sum("mining_sensor_miner_logins_total"), 1.0);
    assert_eq!(sum("mining_sensor_shares_total"), SHARES as f64);
    drop(sensor);
    let _ = std::fs::remove_dir_all(&dir);
}
