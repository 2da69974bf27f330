//! `encrypted_stratum` through `mining-sensor replay`: a capture written here, minutes long, of
//! three XMRig sessions over TLS (TLS 1.3 to 443 from the watched range, one of them to a pool
//! that pushes no job; TLS 1.2 to a pool port from outside it) among the benign TLS shapes
//! (WebSocket keepalives, a download, a long-poll, a chat, a short HTTPS exchange) and SSH; the
//! three sessions, and only they, must come out flagged,
//! in the bucket their verdict falls in, with their events. And live: real TLS between two
//! namespaces made here (`sh-*`, addresses in 198.18.0.0/15). Needs root (BPF_PROG_TEST_RUN,
//! namespaces), python3 and openssl.
//!
//! Real-world ranges appear only inside the capture file, as the project's rules allow.

mod common;

use std::{net::Ipv4Addr, time::Duration};

use common::{replay, tmp, write_pcap};
use pcap_file::DataLink;
use serde_json::Value;
use test_support::{Packet, tls_app_data, tls_client_hello};

/// 2019-06-01T00:00:00Z, on a minute.
const T0: u64 = 1_559_347_200;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// One TLS flow's segments: (ms from T0, from the server, record length), each a whole record
/// in one segment, after a ClientHello at `start_ms`.
struct Flow {
    client: (Ipv4Addr, u16),
    server: (Ipv4Addr, u16),
    start_ms: u64,
    records: Vec<(u64, bool, u16)>,
}

impl Flow {
    fn frames(&self, out: &mut Vec<(Duration, Vec<u8>)>) {
        let (c, cp) = self.client;
        let (s, sp) = self.server;
        let at = |ms: u64| Duration::from_secs(T0) + Duration::from_millis(ms);
        out.push((
            at(self.start_ms),
            Packet::tcp4(c, s, cp, sp, &tls_client_hello(None)).build(),
        ));
        for &(ms, server, len) in &self.records {
            let rec = tls_app_data(len, true);
            let p = if server {
                Packet::tcp4(s, c, sp, cp, &rec)
            } else {
                Packet::tcp4(c, s, cp, sp, &rec)
            };
            out.push((at(self.start_ms + ms), p.build()));
        }
    }
}

/// XMRig's session after its ClientHello, `overhead` bytes of TLS on every message (17 for TLS
/// 1.3, 24 for TLS 1.2 AES-GCM): the opening (Finished 36 + overhead, a 450-byte login, two
/// session tickets of 250 and the 700-byte login reply) within half a second; then a 247-byte
/// submit every `every` ms from 20 s, answered after 150 ms by the pool's 63-byte reply, and a
/// 376-byte job at each of `jobs`; until `until` ms. (The message sizes are those of
/// `sensor/src/shape/tests.rs`.)
fn xmrig(overhead: u16, every: u64, jobs: &[u64], until: u64) -> Vec<(u64, bool, u16)> {
    let submits: Vec<u64> = (0..)
        .map(|k| 20_000 + k * every)
        .take_while(|&t| t < until)
        .collect();
    xmrig_at(overhead, &submits, jobs)
}

/// The same session with its submits at `submits` (ms).
fn xmrig_at(overhead: u16, submits: &[u64], jobs: &[u64]) -> Vec<(u64, bool, u16)> {
    let mut r = vec![
        (50, false, 36 + overhead),
        (60, false, 450 + overhead),
        (300, true, 250),
        (310, true, 250),
        (420, true, 700 + overhead),
    ];
    for &t in submits {
        r.push((t, false, 247 + overhead));
        r.push((t + 150, true, 63 + overhead));
    }
    r.extend(jobs.iter().map(|&j| (j, true, 376 + overhead)));
    r.sort();
    r
}

fn sample(samples: &Value, reason: &str, range: &str) -> u64 {
    common::sample_sum(
        samples,
        "mining_sensor_suspect_flows_total",
        &[("reason", reason), ("range", range)],
    )
}

#[test]
fn replay_flags_encrypted_stratum_by_its_shape_and_nothing_benign() {
    let kp = |h: &str| ip(&format!("175.45.178.{h}"));
    let pool = ip("198.51.100.5");
    let web = ip("198.51.100.7");
    let flows = [
        // 1. XMRig over TLS 1.3 to 443 from kp, no SNI: submits every 30 s from 20 s on, jobs
        //    at 70 s and 190 s, for 5 minutes.
        Flow {
            client: (kp("10"), 40000),
            server: (pool, 443),
            start_ms: 0,
            records: xmrig(17, 30_000, &[70_000, 190_000], 300_000),
        },
        // 2. XMRig over TLS 1.2 to pool port 14433 from outside every range (198.18.3.4),
        //    starting 5 s in: submits every 12 s, jobs at 100 s and 220 s.
        Flow {
            client: (ip("198.18.3.4"), 40001),
            server: (pool, 14433),
            start_ms: 5_000,
            records: xmrig(24, 12_000, &[100_000, 220_000], 290_000),
        },
        // 9. XMRig over TLS 1.3 to 443 from kp to a pool that pushes no job in the 5 minutes
        //    (one that pushes only at blocks): a share every 30 s on average, at chance's gaps
        //    (`sensor/src/shape/tests.rs`, `JOBLESS`: 21, 3, 46, 7, 89, 13, 31 s, then 42 and 20).
        Flow {
            client: (kp("11"), 40002),
            server: (pool, 443),
            start_ms: 0,
            records: xmrig_at(
                17,
                &[
                    10_000, 31_000, 34_000, 80_000, 87_000, 176_000, 189_000, 220_000, 262_000,
                    282_000,
                ],
                &[],
            ),
        },
        // 3. WebSocket over TLS from kp: the server pings every 20 s (23), the client pongs (27).
        Flow {
            client: (kp("20"), 41000),
            server: (web, 443),
            start_ms: 0,
            records: (1..15)
                .flat_map(|k| [(k * 20_000, true, 23), (k * 20_000 + 40, false, 27)])
                .collect(),
        },
        // 4. A download: a 350-byte request and 80 records of 16,401 bytes, 5 ms apart.
        Flow {
            client: (kp("21"), 41001),
            server: (web, 443),
            start_ms: 1_000,
            records: std::iter::once((6_000, false, 350))
                .chain((0..80).map(|k| (6_100 + k * 5, true, 16_401)))
                .collect(),
        },
        // 5. A long-poll: a 250-byte request answered 29.99 s later by a constant 420 bytes,
        //    and again at once.
        Flow {
            client: (kp("22"), 41002),
            server: (web, 443),
            start_ms: 0,
            records: (0..10)
                .flat_map(|k| {
                    let t = 6_000 + k * 30_000;
                    [(t, false, 250), (t + 29_990, true, 420)]
                })
                .collect(),
        },
        // 6. A chat: the client's messages of a conversation's sizes acknowledged in 80 bytes,
        //    the other side's pushed unasked.
        Flow {
            client: (kp("23"), 41003),
            server: (web, 443),
            start_ms: 0,
            records: [180u16, 240, 205, 290, 170, 260, 230, 199, 275]
                .iter()
                .zip([120u16, 330, 95, 480, 210, 400, 150, 350, 88])
                .enumerate()
                .flat_map(|(k, (&c, s))| {
                    let t = 10_000 + k as u64 * 30_000;
                    [(t, false, c), (t + 120, true, 80), (t + 9_000, true, s)]
                })
                .collect(),
        },
        // 7. HTTPS: a request and its 5,000-byte answer, over in 2 s.
        Flow {
            client: (kp("24"), 41004),
            server: (web, 443),
            start_ms: 30_000,
            records: vec![(100, false, 400), (300, true, 5_000)],
        },
    ];
    let mut frames = Vec::new();
    for f in &flows {
        f.frames(&mut frames);
    }
    // 8. SSH from kp: its version line, then binary packets of submit and reply sizes every 30 s
    //    (no ClientHello: never recorded).
    let (ssh_c, ssh_s) = (kp("25"), ip("198.51.100.9"));
    frames.push((
        Duration::from_secs(T0),
        Packet::tcp4(ssh_c, ssh_s, 41005, 22, b"SSH-2.0-OpenSSH_9.2p1\r\n").build(),
    ));
    for k in 1..10u64 {
        let at = Duration::from_secs(T0 + k * 30);
        frames.push((
            at,
            Packet::tcp4(ssh_c, ssh_s, 41005, 22, &[0, 0, 1, 4, 6][..]).build(),
        ));
        frames.push((
            at + Duration::from_millis(150),
            Packet::tcp4(ssh_s, ssh_c, 22, 41005, &[0, 0, 0, 0x4c, 6][..]).build(),
        ));
    }
    frames.sort_by_key(|(t, _)| *t);
    let dir = tmp("shape");
    let file = dir.join("tls.pcap");
    write_pcap(&file, DataLink::ETHERNET, &frames);

    let (out, report) = replay(&["--bucket", "1m"], &[&file]);
    assert!(out.status.success(), "{out:?}");
    let es = "encrypted_stratum";
    // The three sessions are flagged at the 240 s bucket end: session 1 there being 4 minutes
    // old, session 2 (started at 5 s, 235 s old) having shown twice the evidence asked for (its
    // second job came at 225 s), session 9 (no job) 4 minutes old with its 8 submits at chance's
    // cadence; at 180 s each of the first two had shown one job only, and session 9 was not yet
    // due. Each once, under the range of its client (kp, `from`) or as unwatched.
    assert_eq!(sample(&report["totals"], es, "kp"), 2);
    assert_eq!(sample(&report["totals"], es, "unwatched"), 1);
    assert_eq!(
        common::sample_sum(
            &report["totals"],
            "mining_sensor_suspect_flows_total",
            &[("reason", es)]
        ),
        3
    );
    let buckets = report["buckets"].as_array().unwrap();
    let bucket = |end: u64| {
        buckets
            .iter()
            .find(|b| b["end"].as_f64().unwrap() == (T0 + end) as f64)
            .unwrap_or_else(|| panic!("a bucket ending at {end} s"))
    };
    assert_eq!(sample(&bucket(180)["samples"], es, "kp"), 0);
    assert_eq!(sample(&bucket(180)["samples"], es, "unwatched"), 0);
    assert_eq!(sample(&bucket(240)["samples"], es, "kp"), 2);
    assert_eq!(sample(&bucket(240)["samples"], es, "unwatched"), 1);
    // The three events, in time order, each at its session's last record before the verdict:
    // session 9's reply to its submit of 220 s, at 220.15 s; session 2's last submit before
    // 240 s is 20 + 17 x 12 = 224 s after its start, its reply 150 ms later: 5 + 224.15 =
    // 229.15 s; session 1's reply at 230.15 s.
    let events: Vec<&Value> = report["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["reason"] == es)
        .collect();
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(events[0]["event"], "suspect_flow");
    assert_eq!(events[0]["ts"], "2019-06-01T00:03:40.150Z");
    assert_eq!(events[0]["range"], "kp");
    assert_eq!(events[0]["src"], "175.45.178.11");
    assert_eq!(events[0]["dport"], 443);
    assert_eq!(events[1]["event"], "suspect_flow");
    assert_eq!(events[1]["ts"], "2019-06-01T00:03:49.150Z");
    assert_eq!(events[1]["range"], "unwatched");
    assert_eq!(events[1]["src"], "198.18.3.4");
    assert_eq!(events[1]["dport"], 14433);
    assert_eq!(events[2]["ts"], "2019-06-01T00:03:50.150Z");
    assert_eq!(events[2]["range"], "kp");
    assert_eq!(events[2]["src"], "175.45.178.10");
    assert_eq!(events[2]["dst"], "198.51.100.5");
    assert_eq!(events[2]["dport"], 443);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The pool side of the live test (Python's `ssl`, i.e. OpenSSL): on port 443 a Stratum pool by
/// sizes (the login answered at once with 700 bytes, each submit 150 ms later with 63, jobs of
/// 376 at 70 s and 190 s into the session); on port 8443 a WebSocket-like server pinging every
/// 20 s with 6 bytes. Each line written is one TLS record. Every loop ends by itself: at the
/// client's close or after 300 s.
const POOL_PY: &str = r#"
import socket, ssl, sys, threading, time
cert, key, addr = sys.argv[1], sys.argv[2], sys.argv[3]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
def line(n, head):
    return (head + "x" * (n - len(head) - 3) + '"}\n').encode()
def pool(conn):
    t0, jobs, buf = time.monotonic(), [70, 190], b""
    conn.settimeout(0.05)
    while time.monotonic() - t0 < 300:
        if jobs and time.monotonic() - t0 >= jobs[0]:
            jobs.pop(0)
            conn.sendall(line(376, '{"jsonrpc":"2.0","method":"job","params":{"blob":"'))
        try:
            d = conn.recv(4096)
        except socket.timeout:
            continue
        if not d:
            return
        buf += d
        while b"\n" in buf:
            msg, buf = buf.split(b"\n", 1)
            if b'"login"' in msg:
                conn.sendall(line(700, '{"id":1,"jsonrpc":"2.0","error":null,"result":{"job":"'))
            elif b'"submit"' in msg:
                time.sleep(0.15)
                conn.sendall(line(63, '{"id":2,"jsonrpc":"2.0","result":"'))
def pinger(conn):
    conn.settimeout(20)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 300:
        try:
            if not conn.recv(4096):
                return
        except socket.timeout:
            conn.sendall(b"\x89\x04ping")
def listener(port):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, port))
    ls.listen()
    ls.settimeout(60)
    return ls
def serve(ls, handler):
    conn, _ = ls.accept()
    with ctx.wrap_socket(conn, server_side=True) as s:
        handler(s)
ts = [threading.Thread(target=serve, args=(listener(p), h)) for p, h in [(443, pool), (8443, pinger)]]
for t in ts: t.start()
print("ready", flush=True)
for t in ts: t.join()
"#;

/// The miner side: to 443 without SNI, a 450-byte login, then a 247-byte submit every 30 s from
/// 20 s, for 250 s; to 8443, a 10-byte pong to every ping. Both close at 250 s.
const MINER_PY: &str = r#"
import socket, ssl, sys, threading, time
host = sys.argv[1]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
def line(n, head):
    return (head + "x" * (n - len(head) - 3) + '"}\n').encode()
def connect(port):
    return ctx.wrap_socket(socket.create_connection((host, port), timeout=30))
def drain(s):
    try:
        while s.recv(4096):
            pass
    except OSError:
        pass
def pong(s):
    s.settimeout(30)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 250:
        try:
            if not s.recv(4096):
                return
            s.sendall(b"\x8a\x84abcdpong")
        except socket.timeout:
            pass
m = connect(443)
w = connect(8443)
t0 = time.monotonic()
threading.Thread(target=drain, args=(m,), daemon=True).start()
p = threading.Thread(target=pong, args=(w,))
p.start()
m.sendall(line(450, '{"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"'))
k = 0
while 20 + 30 * k < 250:
    time.sleep(max(0, t0 + 20 + 30 * k - time.monotonic()))
    m.sendall(line(247, '{"id":2,"jsonrpc":"2.0","method":"submit","params":{"id":"'))
    k += 1
time.sleep(max(0, t0 + 250 - time.monotonic()))
m.close()
p.join()
w.close()
"#;

/// A live session: real TLS (Python's `ssl`, OpenSSL 3) between two namespaces, the sensor on
/// the vantage namespace's links in between. The Stratum-shaped session is counted once, in the
/// miner's range (at its second job, 190 s in), with its event; the WebSocket-like pinger beside
/// it, from the same address, is not; both are forgotten, none evicted. About 4.5 minutes.
#[test]
fn live_tls_session_is_flagged_by_its_shape() {
    use common::{Line, Proc, self_signed, spawn_sensor, wait_for};
    use std::process::{Command, Stdio};
    let line = Line::new(
        "sh",
        ["shm0", "198.18.9.2/24", "shv0", "198.18.9.1/24"],
        ["shp0", "198.18.10.2/24", "shv1", "198.18.10.1/24"],
    );
    let dir = tmp("shape-live");
    let (cert, key) = (dir.join("pool.crt"), dir.join("pool.key"));
    self_signed(&cert, &key, "/CN=pool.example", &[]);
    let cfg = dir.join("sensor.toml");
    let events = dir.join("events.jsonl");
    std::fs::write(
        &cfg,
        format!(
            "drain_interval = \"1s\"\nlisten = \"127.0.0.1:9871\"\n\
             [[ranges]]\nname = \"m\"\ncidrs = [\"198.18.9.0/24\"]\n\
             [events]\nsink = \"file\"\npath = \"{}\"\n",
            events.display()
        ),
    )
    .unwrap();
    let log = dir.join("sensor.log");
    let _sensor = spawn_sensor(
        &line.vantage,
        &cfg,
        &["--iface", "shv0", "--iface", "shv1", "--xdp-mode", "native"],
        &log,
        "info",
    );
    let labels = [
        ("range", "m"),
        ("direction", "from"),
        ("reason", "encrypted_stratum"),
    ];
    let metric = "mining_sensor_suspect_flows_total";
    let wait = Duration::from_secs(20);
    assert_eq!(
        wait_for(&line.vantage, 9871, metric, &labels, 0.0, wait),
        0.0
    );
    let netns = |ns: &str| {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]);
        c
    };
    let mut pool = netns(&line.pool);
    pool.args(["python3", "-c", POOL_PY])
        .arg(&cert)
        .arg(&key)
        .arg("198.18.10.2")
        .stdout(Stdio::piped());
    let mut pool = Proc(pool.spawn().unwrap());
    let mut ready = [0u8; 6];
    std::io::Read::read_exact(pool.0.stdout.as_mut().unwrap(), &mut ready).unwrap();
    assert_eq!(&ready, b"ready\n");
    let started = std::time::Instant::now();
    let miner = netns(&line.miner)
        .args(["python3", "-c", MINER_PY, "198.18.10.2"])
        .status()
        .unwrap();
    assert!(miner.success());
    // The miner ran its 250 s; the session was judged at 190 s, the pinger (not Stratum) at 240 s.
    assert!(started.elapsed() >= Duration::from_secs(250));
    assert_eq!(
        wait_for(&line.vantage, 9871, metric, &labels, 1.0, wait),
        1.0
    );
    let m = common::samples(&common::http_get(&line.vantage, 9871, "/metrics"));
    let total: f64 = m
        .iter()
        .filter(|((n, l), _)| n == metric && l["reason"] == "encrypted_stratum")
        .map(|(_, v)| v)
        .sum();
    assert_eq!(total, 1.0);
    assert_eq!(
        common::get(&m, "mining_sensor_tls_shape_bytes", &[]),
        0.0,
        "both flows judged and forgotten"
    );
    assert_eq!(
        common::get(&m, "mining_sensor_tls_shape_evictions_total", &[]),
        0.0
    );
    let text = std::fs::read_to_string(&events).unwrap();
    let flagged: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["reason"] == "encrypted_stratum")
        .collect();
    assert_eq!(flagged.len(), 1, "{text}");
    assert_eq!(flagged[0]["event"], "suspect_flow");
    assert_eq!(flagged[0]["src"], "198.18.9.2");
    assert_eq!(flagged[0]["dst"], "198.18.10.2");
    assert_eq!(flagged[0]["dport"], 443);
    let _ = std::fs::remove_dir_all(&dir);
}
