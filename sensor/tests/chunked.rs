//! Ethereum getwork over HTTP with chunked bodies between real HTTP programs (issue "Encrypted and
//! evasive mining", "Reshaped plaintext"): Node.js's `http` module on both ends, the server
//! answering every request with `res.write()` and no `Content-Length` (so Node sends the body
//! chunked), the client posting without `Content-Length` (so Node posts it chunked), some of its
//! bodies in two writes (two chunks, the boundary inside the method's name); and curl posting
//! chunked (`Transfer-Encoding: chunked`: curl puts the body, in one chunk and the last, after the
//! head). Beside them a REST client and server of Node's exchange chunked JSON that is no mining.
//! The sensor must count both getwork flows and every share with its verdict and its hashes, and
//! nothing for the REST exchange; then the same from `replay` of the capture taken on the way.
//!
//! ```text
//!  miner ns                     vantage ns (mining-sensor, XDP native on ckv0, ckv1)       pool ns
//!  ckm0 198.18.26.2/24  <--->  ckv0 198.18.26.1/24   [forwarding]   ckv1 198.18.27.1/24  <--->  ckp0 198.18.27.2/24
//! ```
//!
//! Needs root, iproute2, tcpdump, curl and Node.js (`cargo xtask setup` installs them; Node comes
//! with the npm it installs to fetch XMRig). Addresses are from 198.18.0.0/15 only; every program
//! runs under `timeout`, the client sends a fixed number of requests, each answered.

mod common;

use common::{Line, Proc, http_get, replay, sample_sum, start_capture, stop_capture, wait_for};

use std::{process::Command, time::Duration};

const SENSOR_PORT: u16 = 19833;
const RANGE: &str = "ckminer";
const POOL: &str = "198.18.27.2";
const POOL_PORT: u16 = 8088;
const REST_PORT: u16 = 8089;
/// Shares Node's client submits (nonces ending in 0 to 5), then curl's two (6, 7): the server
/// accepts a nonce whose last hex digit is even, so 3 + 1 accepted and 3 + 1 rejected.
const NODE_SHARES: u64 = 6;
const ACCEPTED: u64 = 4;
const REJECTED: u64 = 4;
/// The work's boundary, 2^224 (a 1 in the 8th of 64 hex digits): 2^256 / 2^224 = 2^32 =
/// 4,294,967,296 hashes a share, whatever its verdict.
const BOUNDARY: &str = "0x0000000100000000000000000000000000000000000000000000000000000000";
const SHARE_HASHES: u64 = 1 << 32;
/// REST requests the trap's client posts, each answered.
const REST: u64 = 6;

const HEADER: &str = "0x416e293fb0bd38d28e5ff6bd43bc13a0252333f9985485cbd5ed49f3c79d2960";

/// `server HOST PORT BOUNDARY`: answers getwork as a pool (getWork: the work at BOUNDARY;
/// submitWork: true for a nonce whose last hex digit is even, else false; submitHashrate: true),
/// each answer written with `res.write` and no length, so chunked. `rest-server HOST PORT`: a
/// REST API answering each POST with JSON, chunked. `client URL SHARES`: getWork, submitHashrate,
/// then SHARES submitWork, one at a time over one keep-alive connection, each posted without a
/// length (chunked), the odd ones in two writes (two chunks) cut inside the method's name; prints
/// `accepted N rejected M`. `rest URL N`: N REST POSTs, chunked, every other one in two writes;
/// prints `rest N` (the answers that said ok).
const SCRIPT: &str = r#"
const http = require("http");
const [mode, ...args] = process.argv.slice(1);
const H = "0x416e293fb0bd38d28e5ff6bd43bc13a0252333f9985485cbd5ed49f3c79d2960";

function serve(host, port, answer) {
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      res.setHeader("Content-Type", "application/json");
      res.write(JSON.stringify(answer(JSON.parse(body))));
      res.end();
    });
  });
  server.keepAliveTimeout = 30000;
  server.listen(port, host, () => console.log("ready"));
  setTimeout(() => process.exit(0), 60000);
}

function post(agent, url, parts) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: "POST", agent, headers: { "Content-Type": "application/json" } }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ te: res.headers["transfer-encoding"], body: JSON.parse(body) }));
    });
    req.on("error", reject);
    for (const p of parts) req.write(p);
    req.end();
  });
}

// The message in one part, or in two cut inside its method's name.
function parts(msg, split) {
  const s = JSON.stringify(msg);
  if (!split) return [s];
  const at = s.indexOf("eth_") + 6;
  return [s.slice(0, at), s.slice(at)];
}

async function client(url, shares) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const work = await post(agent, url, parts({ jsonrpc: "2.0", id: 1, method: "eth_getWork", params: [] }, false));
  if (work.te !== "chunked" || work.body.result.length !== 3) throw new Error("no chunked work");
  await post(agent, url, parts({ jsonrpc: "2.0", id: 2, method: "eth_submitHashrate", params: ["0x1e8480", H] }, false));
  let accepted = 0, rejected = 0;
  for (let i = 0; i < shares; i++) {
    const nonce = "0x63d8903c474b670" + i.toString(16);
    const r = await post(agent, url, parts({ jsonrpc: "2.0", id: 3 + i, method: "eth_submitWork", params: [nonce, H, H] }, i % 2 === 1));
    if (r.body.result === true) accepted++; else rejected++;
    await new Promise((ok) => setTimeout(ok, 50));
  }
  agent.destroy();
  console.log(`accepted ${accepted} rejected ${rejected}`);
}

async function rest(url, n) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  let ok = 0;
  for (let i = 0; i < n; i++) {
    const msg = JSON.stringify({ user: "ana", cart: [i, i + 1, i + 2], method: "update", note: "deliver after 5 pm" });
    const r = await post(agent, url, i % 2 === 1 ? [msg.slice(0, 9), msg.slice(9)] : [msg]);
    ok += r.body.ok === true;
    await new Promise((done) => setTimeout(done, 50));
  }
  agent.destroy();
  console.log(`rest ${ok}`);
}

if (mode === "server") {
  const [host, port, boundary] = args;
  serve(host, +port, (m) => {
    const reply = { id: m.id, jsonrpc: "2.0" };
    if (m.method === "eth_getWork") reply.result = [H, H, boundary];
    else if (m.method === "eth_submitWork") reply.result = parseInt(m.params[0].slice(-1), 16) % 2 === 0;
    else reply.result = true;
    return reply;
  });
} else if (mode === "rest-server") {
  serve(args[0], +args[1], (m) => ({ ok: true, user: m.user, items: m.cart.length, total: "12.50" }));
} else if (mode === "client") {
  client(args[0], +args[1]).catch((e) => { console.error(e); process.exit(1); });
} else {
  rest(args[0], +args[1]).catch((e) => { console.error(e); process.exit(1); });
}
"#;

/// `node -e SCRIPT args` in `ns`, under `timeout`.
fn script(ns: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args([
        "netns", "exec", ns, "timeout", "90", "node", "-e", SCRIPT, "--",
    ])
    .args(args);
    c
}

/// A server of SCRIPT's in `ns`, once it said it is listening.
fn serve(ns: &str, args: &[&str], log: std::path::PathBuf) -> Proc {
    common::spawn_ready(
        script(ns, args),
        &log,
        "node (cargo xtask setup installs it with npm)",
    )
}

/// A program run to its end in `ns`; its output, trimmed.
fn run(mut c: Command) -> String {
    let out = c.output().expect("a client");
    assert!(
        out.status.success(),
        "client: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn chunked_getwork_between_real_http_programs_counts_exactly() {
    let t = Line::new(
        "ck",
        ["ckm0", "198.18.26.2/24", "ckv0", "198.18.26.1/24"],
        ["ckp0", "198.18.27.2/24", "ckv1", "198.18.27.1/24"],
    );
    let dir = std::env::temp_dir().join(format!("ck-chunked-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("sensor.toml");
    std::fs::write(
        &config,
        format!(
            "drain_interval = \"200ms\"\n[[ranges]]\nname = \"{RANGE}\"\ncidrs = [\"198.18.26.0/24\"]\n"
        ),
    )
    .unwrap();
    let log = dir.join("sensor.log");
    let sensor = common::sensor_on_line(&t, ["ckv0", "ckv1"], SENSOR_PORT, &config, &log);
    let pcap = dir.join("session.pcap");
    let dump = start_capture(&t.vantage, "ckv0", &pcap);

    let port = POOL_PORT.to_string();
    let pool = serve(
        &t.pool,
        &["server", POOL, &port, BOUNDARY],
        dir.join("pool.log"),
    );
    let port = REST_PORT.to_string();
    let api = serve(&t.pool, &["rest-server", POOL, &port], dir.join("rest.log"));

    let url = format!("http://{POOL}:{POOL_PORT}/0x52bc44d5378309ee2abf1539bf71de1b7d7be3b5/rig1");
    let shares = NODE_SHARES.to_string();
    // Nonces ending 0..5: 0, 2, 4 accepted; 1, 3, 5 rejected.
    assert_eq!(
        run(script(&t.miner, &["client", &url, &shares])),
        "accepted 3 rejected 3"
    );
    // curl: getWork, then two submits (nonces ending 6 and 7) over one connection (`--next`),
    // each body chunked.
    let body = |id: u32, method: &str, params: &str| {
        format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":[{params}]}}"#)
    };
    let mut curl = Command::new("ip");
    curl.args(["netns", "exec", &t.miner, "timeout", "30", "curl", "-sS"]);
    for (i, (method, params)) in [
        ("eth_getWork", String::new()),
        (
            "eth_submitWork",
            format!(r#""0x63d8903c474b6706","{HEADER}","{HEADER}""#),
        ),
        (
            "eth_submitWork",
            format!(r#""0x63d8903c474b6707","{HEADER}","{HEADER}""#),
        ),
    ]
    .iter()
    .enumerate()
    {
        if i > 0 {
            curl.arg("--next");
        }
        curl.args([
            "-H",
            "Transfer-Encoding: chunked",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &body(i as u32 + 1, method, params),
            &url,
        ]);
    }
    let answers = run(curl);
    // The three answers, one after the other: the work, then true (…6), false (…7).
    assert!(
        answers.contains(BOUNDARY)
            && answers.contains(r#""id":2,"jsonrpc":"2.0","result":true"#)
            && answers.contains(r#""id":3,"jsonrpc":"2.0","result":false"#),
        "{answers}"
    );
    let rest_url = format!("http://{POOL}:{REST_PORT}/api/cart");
    let n = REST.to_string();
    assert_eq!(
        run(script(&t.miner, &["rest", &rest_url, &n])),
        format!("rest {REST}")
    );
    drop(pool);
    drop(api);

    let settle = Duration::from_secs(10);
    let eth = [("coin", "ethereum"), ("range", RANGE)];
    let accepted = [&eth[..], &[("result", "accepted")]].concat();
    let rejected = [&eth[..], &[("result", "rejected")]].concat();
    // 8 shares x 2^32 = 34,359,738,368 hashes.
    let hashes = (ACCEPTED + REJECTED) * SHARE_HASHES;
    for (name, labels, want) in [
        // Node's keep-alive connection and curl's: two ethereum flows from the range.
        (
            "mining_sensor_stratum_flows_total",
            &[
                ("range", RANGE),
                ("direction", "from"),
                ("dialect", "ethereum"),
            ][..],
            2.0,
        ),
        ("mining_sensor_shares_total", &accepted[..], ACCEPTED as f64),
        ("mining_sensor_shares_total", &rejected[..], REJECTED as f64),
        ("mining_sensor_share_hashes_total", &eth[..], hashes as f64),
    ] {
        assert_eq!(
            wait_for(&t.vantage, SENSOR_PORT, name, labels, want, settle),
            want,
            "{name} {labels:?}: {}",
            http_get(&t.vantage, SENSOR_PORT, "/metrics")
        );
    }
    // Nothing else in the range: the REST exchange (6 requests, 6 answers) counts no flow and
    // no share.
    std::thread::sleep(Duration::from_secs(2));
    let m = common::samples(&http_get(&t.vantage, SENSOR_PORT, "/metrics"));
    let sum = |name: &str| common::range_sum(&m, name, RANGE);
    assert_eq!(sum("mining_sensor_stratum_flows_total"), 2.0);
    assert_eq!(
        sum("mining_sensor_shares_total"),
        (ACCEPTED + REJECTED) as f64
    );
    assert_eq!(sum("mining_sensor_miner_logins_total"), 0.0);
    stop_capture(dump);
    drop(sensor);

    // The capture through `replay`, with the same range: the same counts.
    let (_, r) = replay(&["--config", config.to_str().unwrap()], &[pcap.as_path()]);
    let total = |metric: &str, labels: &[(&str, &str)]| sample_sum(&r["totals"], metric, labels);
    assert_eq!(
        total(
            "mining_sensor_stratum_flows_total",
            &[("range", RANGE), ("dialect", "ethereum")]
        ),
        2
    );
    assert_eq!(
        total("mining_sensor_stratum_flows_total", &[("range", RANGE)]),
        2
    );
    assert_eq!(total("mining_sensor_shares_total", &accepted), ACCEPTED);
    assert_eq!(total("mining_sensor_shares_total", &rejected), REJECTED);
    assert_eq!(
        total("mining_sensor_shares_total", &[("range", RANGE)]),
        ACCEPTED + REJECTED
    );
    assert_eq!(total("mining_sensor_share_hashes_total", &eth), hashes);
    let _ = std::fs::remove_dir_all(&dir);
}
