//! Real TLS sessions through the sensor (issue 21, "TLS"): mining over TLS with a real miner and a
//! real tunnel, and a benign TLS corpus of real servers and clients, all running at once across a
//! vantage namespace, with the sensor's suspect flows counted per session.
//!
//! ```text
//!  miner ns                  vantage ns                                  pool ns
//!  XMRig x5, stunnel         mining-sensor (XDP native on shtv0, shtv1), stunnel (server), pools,
//!  (client), aiostratum-     tcpdump on shtv0                            nginx, sshd, Python
//!  proxy, curl, ssh, Python                                              servers
//!  shtm0 198.18.0.2/24 <-> shtv0 198.18.0.1/24 [fwd] shtv1 198.18.1.1/24 <-> shtp0 198.18.1.2/24
//!                                                                        and 198.18.1.X/32, one a
//!                                                                        session
//! ```
//!
//! Every session (the table `SESSIONS`) has a server address of its own, and the sensor watches
//! each as a range named after the session, so `suspect_flows_total{range=SESSION}` and the
//! `suspect_flow` events of that range are the session's. Host names resolve through the miner
//! namespace's own hosts file (`/etc/netns/NS/hosts`, which `ip netns exec` mounts over
//! `/etc/hosts`): pool names from the sensor's default pool domains, and `*.example.net` for the
//! benign servers.
//!
//! Mining (XMRig 6.16.0, one CPU thread at idle priority, to a test pool that hands out
//! `argon2/chukwa` jobs at a share every few seconds, retargeted every job):
//! - XMRig with `"tls": true` (its `--tls`) to a pool's TLS front (stunnel in server mode) on 443
//!   and on MoneroOcean's TLS port 20128 (a pool port). XMRig 6.16.0 sends no server_name: its
//!   `Client::Tls::handshake()` calls no `SSL_set_tlsext_host_name` (SNI came in 6.21.0, and
//!   only with the pool option `"sni": true`), whatever the URL's host, name or IP literal;
//! - plaintext XMRig through stunnel in client mode (a generic TLS tunnel, on the miner's own
//!   loopback) with SNI: a pool's name on 443 and on nanopool's TLS port 14433, and a name in no
//!   pool domain on 443;
//! - a proxy's TLS upstream: aiostratum-proxy 1.1 (PyPI), whose pool settings take `ssl: true`
//!   (its `aiojsonrpc2` client wraps the connection in Python's `ssl`, OpenSSL, naming the pool's
//!   host as server_name), to 443 under a name in no pool domain, carrying the shares of three
//!   scripted Equihash miners (the proxy speaks Equihash Stratum, ZIP 301, not XMRig's dialect)
//!   to a test Equihash pool behind the same stunnel front, a job every 15 s.
//!
//! Benign, each as long as the mining sessions where it is long-lived: HTTPS pages (nginx and
//! curl, HTTP/1.1 and HTTP/2, by name and by IP literal, which sends no SNI), a large download,
//! WebSocket over TLS with pings every 4 s and a ticker every 5 s (Python `websockets`), HTTPS
//! long-poll (each request held 8 s), a chat-like stream (random lines both ways) and SSH on 443
//! (OpenSSH, a typed-looking session with keepalives).
//!
//! What must hold, per session: the ClientHellos in the capture carry the server names the table
//! says (the premise), and the sensor's suspect flows by reason are exactly the table's, one per
//! flow (metrics and events); every reason the table does not name is zero, and no session is a
//! readable Stratum flow; and each session's capture, replayed alone (`mining-sensor replay`, where
//! every flow is judged at the capture's end), gives the same suspects by reason. Each session's
//! packets are written to `target/tmp/tls/SESSION.pcap`,
//! its TLS records (or, for SSH, TCP segments) with direction, time and size to
//! `SESSION.records.txt`, and a summary is printed.
//!
//! Needs root, iproute2, tcpdump and the tools `cargo xtask setup` installs (XMRig, stunnel4,
//! nginx, openssh-server, curl, openssl, and `websockets` in `target/tools/tls-corpus`). Addresses
//! from 198.18.0.0/15 only; every process runs under `timeout` and every loop is bounded: the
//! whole test takes about 140 s (the replays of the captures included).

mod common;

use common::{Line, http_get, samples, sh, spawn_sensor};

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    io::{BufRead, BufReader, ErrorKind, Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

/// How long each long-lived session runs, mining and benign alike.
const SESSION: Duration = Duration::from_secs(120);
/// The most any process of the test may live (`timeout`), whatever happens to the test.
const LIFETIME_S: u64 = 200;
const SENSOR_PORT: u16 = 19841;
/// The miner's address; every server is 198.18.1.X, X from the session table.
const MINER: &str = "198.18.0.2";
const WALLET: &str = "48edfHu7V9Z84YzzMa6fUueoELZ9ZRXq9VetWzYGzKt52XU5xvqgzYnDK9URnRoJMk1j8nLwEVsaSWJ4fhdUyZijBGUicoD";

/// Who the client is and how it reaches its server.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Client {
    /// XMRig with `"tls": true` (`--tls`), straight to the pool's TLS front.
    XmrigTls,
    /// Plaintext XMRig through stunnel in client mode, which sends `sni` as server_name.
    XmrigTunnel { sni: &'static str },
    /// A connection every 3 s, in turn: curl fetching two pages over HTTP/1.1 by name, over
    /// HTTP/2 by name, over HTTP/1.1 by IP literal (no SNI), and `openssl s_client` one page.
    Https,
    /// curl downloading `DOWNLOAD_BYTES` once, nginx limiting the rate to 2 MiB/s
    /// (`limit_rate 2m`).
    Download,
    /// `corpus.py ws-client`.
    WebSocket,
    /// curl sending `SESSION / POLL_HOLD` requests on one connection, each held by the server.
    LongPoll,
    /// `corpus.py chat-client`.
    Chat,
    /// ssh running `cat`, a line typed every 0.5 to 2 s, keepalives every 5 s.
    Ssh,
    /// aiostratum-proxy on the miner's loopback with its pool over TLS (`ssl: true`), and
    /// `PROXY_WORKERS` scripted Equihash miners connected to it.
    ProxyTls,
}

/// One session: a server of its own, its client, and what the sensor must say of it.
struct Session {
    /// The session's range name (and file names).
    name: &'static str,
    /// The server's address is 198.18.1.`host`.
    host: u8,
    /// The server's name in the miner's hosts file.
    server: &'static str,
    port: u16,
    client: Client,
    /// The server names of the session's ClientHellos as the capture shows them (`None`: no
    /// server_name), each at least once: the premise of `expect`. Empty for SSH (no TLS).
    hellos: &'static [Option<&'static str>],
    /// Suspect flows by reason, exactly; every reason not listed must be zero. A mining session
    /// is one TCP connection, so a count of 1 is once for that flow.
    expect: &'static [(&'static str, u64)],
}

impl Session {
    fn addr(&self) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, 1, self.host)
    }
    fn mining(&self) -> bool {
        matches!(
            self.client,
            Client::XmrigTls | Client::XmrigTunnel { .. } | Client::ProxyTls
        )
    }
    /// The test pool's plaintext port (in the pool namespace, behind stunnel).
    fn pool_port(&self) -> u16 {
        13300 + u16::from(self.host)
    }
    /// The tunnel's port on the miner's loopback, where plaintext XMRig connects (and where the
    /// proxy listens for its miners).
    fn tunnel_port(&self) -> u16 {
        13400 + u16::from(self.host)
    }
}

/// The sessions. Ports: 20128 (MoneroOcean's TLS port) and 14433 (nanopool's) are in the
/// sensor's default pool ports, 443 is not. Server names: supportxmr.com, moneroocean.stream,
/// hashvault.pro and nanopool.org are default pool domains, example.net is not.
const SESSIONS: &[Session] = &[
    // XMRig's own TLS on 443: no SNI and no pool port; only its records' shape (the server is a
    // watched range, so the flow is recorded from its ClientHello on).
    Session {
        name: "xmrig-tls-443",
        host: 10,
        server: "pool.hashvault.pro",
        port: 443,
        client: Client::XmrigTls,
        hellos: &[None],
        expect: &[("encrypted_stratum", 1)],
    },
    // XMRig's own TLS to a pool port: a ClientHello without SNI there.
    Session {
        name: "xmrig-tls-pool-port",
        host: 11,
        server: "gulf.moneroocean.stream",
        port: 20128,
        client: Client::XmrigTls,
        hellos: &[None],
        expect: &[("tls_no_sni", 1), ("encrypted_stratum", 1)],
    },
    // A tunnel naming the pool, on 443 and on a pool port: the pool's SNI, and no
    // `tls_no_sni` (there is a server_name).
    Session {
        name: "tunnel-pool-sni-443",
        host: 12,
        server: "pool.supportxmr.com",
        port: 443,
        client: Client::XmrigTunnel {
            sni: "pool.supportxmr.com",
        },
        hellos: &[Some("pool.supportxmr.com")],
        expect: &[("tls_pool_sni", 1), ("encrypted_stratum", 1)],
    },
    Session {
        name: "tunnel-pool-sni-pool-port",
        host: 13,
        server: "xmr-eu1.nanopool.org",
        port: 14433,
        client: Client::XmrigTunnel {
            sni: "xmr-eu1.nanopool.org",
        },
        hellos: &[Some("xmr-eu1.nanopool.org")],
        expect: &[("tls_pool_sni", 1), ("encrypted_stratum", 1)],
    },
    // A tunnel to 443 under a name in no pool domain: only its records' shape.
    Session {
        name: "tunnel-other-sni-443",
        host: 14,
        server: "cdn.example.net",
        port: 443,
        client: Client::XmrigTunnel {
            sni: "cdn.example.net",
        },
        hellos: &[Some("cdn.example.net")],
        expect: &[("encrypted_stratum", 1)],
    },
    // A proxy's TLS upstream on 443, named in no pool domain: the shares of three miners and the
    // pool's jobs on one flow, found by its records' shape alone.
    Session {
        name: "proxy-tls-443",
        host: 15,
        server: "zec.example.net",
        port: 443,
        client: Client::ProxyTls,
        hellos: &[Some("zec.example.net")],
        expect: &[("encrypted_stratum", 1)],
    },
    // The benign corpus: nothing, ever.
    Session {
        name: "https-pages",
        host: 20,
        server: "www.example.net",
        port: 443,
        client: Client::Https,
        hellos: &[None, Some("www.example.net")],
        expect: &[],
    },
    Session {
        name: "https-download",
        host: 21,
        server: "files.example.net",
        port: 443,
        client: Client::Download,
        hellos: &[Some("files.example.net")],
        expect: &[],
    },
    Session {
        name: "websocket-tls",
        host: 22,
        server: "ws.example.net",
        port: 443,
        client: Client::WebSocket,
        hellos: &[Some("ws.example.net")],
        expect: &[],
    },
    Session {
        name: "https-long-poll",
        host: 23,
        server: "poll.example.net",
        port: 443,
        client: Client::LongPoll,
        hellos: &[Some("poll.example.net")],
        expect: &[],
    },
    Session {
        name: "tls-chat",
        host: 24,
        server: "chat.example.net",
        port: 443,
        client: Client::Chat,
        hellos: &[Some("chat.example.net")],
        expect: &[],
    },
    Session {
        name: "ssh-443",
        host: 25,
        server: "ssh.example.net",
        port: 443,
        client: Client::Ssh,
        hellos: &[],
        expect: &[],
    },
];

/// The download's size, 16 MiB.
const DOWNLOAD_BYTES: usize = 16 << 20;
/// How long the long-poll server holds each request.
const POLL_HOLD: Duration = Duration::from_secs(8);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the sensor crate is in the workspace")
        .to_path_buf()
}

/// A small seeded generator (xorshift64*), so sizes and pauses are the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// A number from `lo` to `hi`, both included.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// The miner namespace's hosts file, removed on drop.
struct HostsFile(PathBuf);

impl HostsFile {
    fn new(ns: &str, text: &str) -> Self {
        let dir = PathBuf::from(format!("/etc/netns/{ns}"));
        std::fs::create_dir_all(&dir).expect("/etc/netns/NS");
        std::fs::write(dir.join("hosts"), text).expect("hosts file");
        Self(dir)
    }
}

impl Drop for HostsFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A program started as `ip netns exec NS timeout LIFETIME_S PROGRAM...` (so it ends whatever
/// happens to the test), stopped when dropped with SIGTERM, which `timeout` hands on to it (a
/// SIGKILL would end only `timeout` and leave the program running), then killed if it has not
/// exited within 10 s.
struct Timed(Child);

impl Drop for Timed {
    fn drop(&mut self) {
        // SAFETY: a signal to our own child's pid.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.0.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `program args...` in namespace `ns` under `timeout`, stdout and stderr into `DIR/LOG.out` and
/// `DIR/LOG.err`.
fn spawn_in(ns: &str, dir: &Path, log: &str, program: &str, args: &[&str]) -> Timed {
    let child = Command::new("ip")
        .args(["netns", "exec", ns, "timeout", &LIFETIME_S.to_string()])
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join(format!("{log}.out"))).unwrap())
        .stderr(std::fs::File::create(dir.join(format!("{log}.err"))).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e} (cargo xtask setup installs it)"));
    Timed(child)
}

/// Runs `program args...` in `ns` to its end (bounded by `timeout`): its stdout, or an error
/// with its stderr.
fn run_in(ns: &str, limit: Duration, program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "timeout", &limit.as_secs().to_string()])
        .arg(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{program} {args:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Waits until every `addr:port` is a listening TCP socket in `ns`.
fn wait_listening(ns: &str, what: &[String], dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ss = common::output(&["ip", "netns", "exec", ns, "ss", "-Hltn"]);
        let missing: Vec<&String> = what
            .iter()
            .filter(|w| !ss.split_whitespace().any(|f| f == w.as_str()))
            .collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "nothing listens on {missing:?} in {ns}; logs in {}",
            dir.display()
        );
        thread::sleep(Duration::from_millis(100));
    }
}

// The test pool: XMRig's dialect, one connection, a job every `JOB_EVERY` at a difficulty that
// aims at a share every `SHARE_EVERY` (a pool's vardiff).

const ALGO: &str = "argon2/chukwa";
const JOB_EVERY: Duration = Duration::from_secs(15);
const SHARE_EVERY: u64 = 4;
const FIRST_DIFFICULTY: u64 = 2_000;

#[derive(Default, Debug)]
struct Tally {
    /// XMRig's logins; the Equihash pool's subscriptions (one a connection).
    logins: u64,
    /// The Equihash pool's authorizations (one a worker behind the proxy).
    authorizes: u64,
    submits: u64,
    jobs: u64,
    keepalives: u64,
    unexpected: Vec<String>,
}

struct Pool {
    tally: Arc<Mutex<Tally>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Pool {
    fn start(listener: TcpListener, serve: fn(TcpListener, &Mutex<Tally>, &AtomicBool)) -> Self {
        let tally = Arc::new(Mutex::new(Tally::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (tally, stop) = (tally.clone(), stop.clone());
            thread::spawn(move || serve(listener, &tally, &stop))
        };
        Self {
            tally,
            stop,
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        std::mem::take(&mut *self.tally.lock().unwrap())
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A job: a 76-byte blob different for each job (XMRig drops a pool that repeats one), nonce
/// zero, and the 4-byte target of `difficulty` (t = (2^32-1) / difficulty, little endian).
fn job_json(n: u64, difficulty: u64) -> String {
    let blob: String = (0..76u8)
        .map(|i| match i {
            0 | 1 => 0x0e,
            39..=42 => 0,
            _ => n as u8,
        })
        .map(|b| format!("{b:02x}"))
        .collect();
    let t = (u64::from(u32::MAX) / difficulty.max(1)) as u32;
    let target: String = t.to_le_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{{\"blob\":\"{blob}\",\"job_id\":\"{n}\",\"target\":\"{target}\",\"algo\":\"{ALGO}\",\"height\":{}}}",
        1000 + n
    )
}

/// What a test pool's read of its connection gave.
enum Got {
    /// A whole line, as JSON (`Null` when it is not).
    Message(Value),
    /// Nothing whole yet (the read timed out, or the line is not finished).
    Again,
    /// The peer closed or the read failed.
    Closed,
}

/// Reads on towards the next line end into `line`: a whole line is parsed and `line` cleared.
fn read_message(r: &mut BufReader<std::net::TcpStream>, line: &mut Vec<u8>) -> Got {
    match r.read_until(b'\n', line) {
        Ok(0) => Got::Closed,
        Ok(_) if line.ends_with(b"\n") => {
            let v = serde_json::from_slice(line).unwrap_or(Value::Null);
            line.clear();
            Got::Message(v)
        }
        Ok(_) => Got::Again,
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Got::Again,
        Err(_) => Got::Closed,
    }
}

/// The pool's one connection: accepted before `deadline` unless `stop` comes first, then
/// blocking, without Nagle's delay, reads bounded by 200 ms.
fn accept_one(
    listener: TcpListener,
    stop: &AtomicBool,
    deadline: Instant,
) -> Option<std::net::TcpStream> {
    listener.set_nonblocking(true).unwrap();
    let stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                    return None;
                }
                thread::sleep(Duration::from_millis(20));
            }
            Err(_) => return None,
        }
    };
    stream.set_nonblocking(false).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    Some(stream)
}

fn serve(listener: TcpListener, tally: &Mutex<Tally>, stop: &AtomicBool) {
    let deadline = Instant::now() + Duration::from_secs(LIFETIME_S);
    let Some(stream) = accept_one(listener, stop, deadline) else {
        return;
    };
    let mut out = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    let (mut difficulty, mut window_hashes) = (FIRST_DIFFICULTY, 0u64);
    let mut next_job: Option<Instant> = None;
    let mut line = Vec::new();
    // At most this many messages: far more than a minute of shares at any rate here.
    for _ in 0..100_000 {
        if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
            return;
        }
        if next_job.is_some_and(|t| Instant::now() >= t) {
            // Vardiff: the hashes of the last window over its length, times the wanted pause.
            let rate = window_hashes / JOB_EVERY.as_secs();
            difficulty = if window_hashes == 0 {
                (difficulty / 2).max(50)
            } else {
                (rate * SHARE_EVERY).clamp(50, 10_000_000)
            };
            window_hashes = 0;
            let n = {
                let mut t = tally.lock().unwrap();
                t.jobs += 1;
                t.jobs
            };
            let push = format!(
                "{{\"jsonrpc\":\"2.0\",\"method\":\"job\",\"params\":{}}}\n",
                job_json(n, difficulty)
            );
            if out.write_all(push.as_bytes()).is_err() {
                return;
            }
            next_job = Some(Instant::now() + JOB_EVERY);
        }
        let v = match read_message(&mut r, &mut line) {
            Got::Message(v) => v,
            Got::Again => continue,
            Got::Closed => return,
        };
        let id = v["id"].clone();
        let mut t = tally.lock().unwrap();
        let reply = match v["method"].as_str().unwrap_or("") {
            "login" => {
                t.logins += 1;
                t.jobs += 1;
                next_job = Some(Instant::now() + JOB_EVERY);
                format!(
                    "{{\"id\":{id},\"jsonrpc\":\"2.0\",\"error\":null,\"result\":{{\"id\":\"1\",\"job\":{},\"extensions\":[\"algo\"],\"status\":\"OK\"}}}}\n",
                    job_json(t.jobs, difficulty)
                )
            }
            "submit" => {
                t.submits += 1;
                window_hashes += difficulty;
                format!(
                    "{{\"id\":{id},\"jsonrpc\":\"2.0\",\"error\":null,\"result\":{{\"status\":\"OK\"}}}}\n"
                )
            }
            "keepalived" => {
                t.keepalives += 1;
                format!(
                    "{{\"id\":{id},\"jsonrpc\":\"2.0\",\"error\":null,\"result\":{{\"status\":\"KEEPALIVED\"}}}}\n"
                )
            }
            other => {
                t.unexpected.push(format!("method {other:?}"));
                continue;
            }
        };
        drop(t);
        if out.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

// The proxy's side: an Equihash pool (ZIP 301, as `sensor/tests/proxy.rs`'s) for the proxy's one
// connection, and the miners behind the proxy.

/// Workers behind the proxy, and each one's mean pause between shares (exponential, as a share's).
const PROXY_WORKERS: u64 = 3;
const PROXY_SHARE_EVERY_S: f64 = 9.0;

/// Accepts the proxy's connection (through the stunnel front) and answers it as an Equihash pool:
/// the subscription, `true` for each authorize (the first followed by the target and a job) and
/// each share, and a new job every `JOB_EVERY`.
fn serve_equihash(listener: TcpListener, tally: &Mutex<Tally>, stop: &AtomicBool) {
    let deadline = Instant::now() + Duration::from_secs(LIFETIME_S);
    let Some(stream) = accept_one(listener, stop, deadline) else {
        return;
    };
    let mut out = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    // A job: version 04000000 (Zcash), three 64-hex hashes that change with each job, the time,
    // the bits, and clean_jobs false (the proxy keeps its last three jobs).
    let notify = |n: u64| {
        let h = |k: u64| format!("{:016x}", n * 3 + k).repeat(4);
        format!(
            "{{\"id\":null,\"method\":\"mining.notify\",\"params\":[\"{n}\",\"04000000\",\"{}\",\"{}\",\"{}\",\"5b0c2a6e\",\"1d0f2c4b\",false]}}\n",
            h(0),
            h(1),
            h(2)
        )
    };
    let mut next_job: Option<Instant> = None;
    let mut line = Vec::new();
    for _ in 0..100_000 {
        if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
            return;
        }
        if next_job.is_some_and(|t| Instant::now() >= t) {
            let n = {
                let mut t = tally.lock().unwrap();
                t.jobs += 1;
                t.jobs
            };
            if out.write_all(notify(n).as_bytes()).is_err() {
                return;
            }
            next_job = Some(Instant::now() + JOB_EVERY);
        }
        let v = match read_message(&mut r, &mut line) {
            Got::Message(v) => v,
            Got::Again => continue,
            Got::Closed => return,
        };
        let id = v["id"].clone();
        let mut t = tally.lock().unwrap();
        let reply = match v["method"].as_str().unwrap_or("") {
            "mining.subscribe" => {
                t.logins += 1;
                format!("{{\"id\":{id},\"result\":[null,\"e1e1e1e1\"],\"error\":null}}\n")
            }
            "mining.authorize" => {
                t.authorizes += 1;
                let mut reply = format!("{{\"id\":{id},\"result\":true,\"error\":null}}\n");
                if next_job.is_none() {
                    t.jobs += 1;
                    // The target 2^240, as `sensor/tests/proxy.rs`'s pool sets it.
                    let target = format!("0001{}", "0".repeat(60));
                    let _ = write!(
                        reply,
                        "{{\"id\":null,\"method\":\"mining.set_target\",\"params\":[\"{target}\"]}}\n{}",
                        notify(t.jobs)
                    );
                    next_job = Some(Instant::now() + JOB_EVERY);
                }
                reply
            }
            "mining.submit" => {
                t.submits += 1;
                format!("{{\"id\":{id},\"result\":true,\"error\":null}}\n")
            }
            other => {
                t.unexpected.push(format!("method {other:?}"));
                continue;
            }
        };
        drop(t);
        if out.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// aiostratum-proxy in `ns`, listening on the session's tunnel port for its miners, its pool the
/// session's server over TLS (`ssl: true`, not verifying the pool's certificate).
fn spawn_proxy(ns: &str, dir: &Path, s: &Session) -> Timed {
    let bin = workspace()
        .join(test_support::tools::AIOSTRATUM_PROXY_VENV)
        .join("bin/aiostratum-proxy");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo xtask setup`",
        bin.display()
    );
    let conf = dir.join("proxy.yaml");
    std::fs::write(
        &conf,
        format!(
            "proxies:\n- name: {}\n  worker_class: aiostratum_proxy.protocols.equihash.EquihashWorkerProtocol\n  \
             pool_class: aiostratum_proxy.protocols.equihash.EquihashPoolProtocol\n  listen:\n  - host: '127.0.0.1'\n    \
             port: {}\n  pools:\n  - name: pool\n    host: {}\n    port: {}\n    account_name: kvetak\n    \
             account_password: x\n    ssl: true\n    ssl_verify: false\n",
            s.name,
            s.tunnel_port(),
            s.server,
            s.port
        ),
    )
    .unwrap();
    spawn_in(
        ns,
        dir,
        "aiostratum-proxy",
        bin.to_str().unwrap(),
        &["-c", conf.to_str().unwrap(), "-l"],
    )
}

/// One Equihash miner behind the proxy (in the thread's namespace): subscribe, authorize as
/// `kvetak.rigN`, then a share after each exponential pause (mean `PROXY_SHARE_EVERY_S`, seeded)
/// on the latest job, until `until`. Returns the shares the proxy answered `true`.
fn equihash_miner(port: u16, worker: u64, until: Instant) -> Result<u64, String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(20);
    let s = loop {
        // The proxy listens once its interpreter has started.
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(s) => break s,
            Err(e) if Instant::now() >= deadline => {
                return Err(format!("no proxy at {addr}: {e}"));
            }
            Err(_) => thread::sleep(Duration::from_millis(100)),
        }
    };
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(|e| e.to_string())?;
    let mut w = s.try_clone().map_err(|e| e.to_string())?;
    let mut r = BufReader::new(s);
    let send = |w: &mut std::net::TcpStream, m: String| {
        w.write_all(m.as_bytes())
            .map_err(|e| format!("to the proxy: {e}"))
    };
    send(
        &mut w,
        format!(
            "{{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[\"nheqminer/0.5c\",null,\"127.0.0.1\",\"{port}\"]}}\n"
        ),
    )?;
    send(
        &mut w,
        format!(
            "{{\"id\":2,\"method\":\"mining.authorize\",\"params\":[\"kvetak.rig{worker}\",\"x\"]}}\n"
        ),
    )?;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ worker);
    let mut pause = || {
        // u in (0, 1]: -ln(u) is exponential of mean 1.
        let u = ((rng.next() >> 11) + 1) as f64 / (1u64 << 53) as f64;
        Duration::from_secs_f64(-u.ln() * PROXY_SHARE_EVERY_S)
    };
    let solution = format!("fd4005{}", "00".repeat(1344));
    let (mut job, mut id, mut accepted) = (None::<String>, 2u64, 0u64);
    let mut next = Instant::now() + pause();
    let mut line = Vec::new();
    for _ in 0..100_000 {
        if Instant::now() >= until {
            return Ok(accepted);
        }
        if let Some(j) = job.as_ref().filter(|_| Instant::now() >= next) {
            id += 1;
            send(
                &mut w,
                format!(
                    "{{\"id\":{id},\"method\":\"mining.submit\",\"params\":[\"kvetak.rig{worker}\",\"{j}\",\"5b0c2a6e\",\"{id:054x}\",\"{solution}\"]}}\n"
                ),
            )?;
            next = Instant::now() + pause();
        }
        match r.read_until(b'\n', &mut line) {
            Ok(0) => return Err("the proxy closed the connection".into()),
            Ok(_) if line.ends_with(b"\n") => {}
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) => return Err(format!("from the proxy: {e}")),
        }
        let v: Value = serde_json::from_slice(&line).map_err(|e| format!("{line:?}: {e}"))?;
        line.clear();
        if v["method"] == "mining.notify" {
            job = v["params"][0].as_str().map(str::to_string);
        } else if v["id"].as_u64().is_some_and(|i| i > 2) {
            if v["result"] != true {
                return Err(format!("a share refused: {v}"));
            }
            accepted += 1;
        }
    }
    Ok(accepted)
}

fn spawn_xmrig(ns: &str, url: &str, tls: bool, log: &Path) -> Timed {
    let bin = test_support::tools::xmrig::binary(&workspace());
    assert!(
        bin.exists(),
        "{} is missing: `cargo xtask setup` fetches XMRig {}",
        bin.display(),
        test_support::tools::xmrig::VERSION
    );
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, "timeout", &LIFETIME_S.to_string()])
        .arg(&bin)
        .arg(format!("--url={url}"))
        .arg(format!("--user={WALLET}"))
        .args([
            "--pass=x",
            "--cpu-priority=0",
            "--no-huge-pages",
            "--threads=1",
            "--no-color",
        ])
        .arg(format!("--log-file={}", log.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if tls {
        cmd.arg("--tls");
    }
    Timed(cmd.spawn().expect("ip netns exec timeout xmrig"))
}

// The benign clients: each runs for its session and says what it did, or what went wrong.

fn curl(ns: &str, dir: &Path, args: &[&str], limit: Duration) -> Result<String, String> {
    let ca = dir.join("benign.crt");
    let mut all = vec!["--cacert", ca.to_str().unwrap(), "-sS", "--fail"];
    all.extend_from_slice(args);
    run_in(ns, limit, "curl", &all)
}

/// What a benign client did (for the log), and how many TCP connections it made.
type Outcome = Result<(String, usize), String>;

fn https_pages(ns: &str, dir: &Path, s: &Session) -> Outcome {
    let started = Instant::now();
    let (mut connections, mut n) = (0, 0u32);
    let ip = s.addr().to_string();
    while started.elapsed() + Duration::from_secs(3) < SESSION && n < 100 {
        n += 1;
        if n % 4 == 0 {
            // OpenSSL's own client: one page over HTTP/1.0, the server closing.
            openssl_get(ns, dir, s)?;
            connections += 1;
            thread::sleep(Duration::from_secs(3));
            continue;
        }
        let (version, host) = match n % 4 {
            1 => ("--http1.1", s.server),
            2 => ("--http2", s.server),
            _ => ("--http1.1", ip.as_str()),
        };
        let urls = [
            format!("https://{host}/"),
            format!("https://{host}/page2.html"),
        ];
        let out = curl(
            ns,
            dir,
            &[
                version,
                "-o",
                "/dev/null",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} ",
                &urls[0],
                &urls[1],
            ],
            Duration::from_secs(10),
        )?;
        if out.trim() != "200 200" {
            return Err(format!("{urls:?}: {out}"));
        }
        connections += 1;
        thread::sleep(Duration::from_secs(3));
    }
    Ok((
        format!("{connections} connections (curl: 2 pages each; openssl s_client: 1)"),
        connections,
    ))
}

/// `GET /` over HTTP/1.0 with `openssl s_client`, which verifies the server as curl does.
fn openssl_get(ns: &str, dir: &Path, s: &Session) -> Result<(), String> {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "timeout", "10", "openssl", "s_client"])
        .args(["-quiet", "-verify_return_error", "-CAfile"])
        .arg(dir.join("benign.crt"))
        .args([
            "-connect",
            &format!("{}:{}", s.server, s.port),
            "-servername",
            s.server,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("openssl: {e}"))?;
    let request = format!("GET / HTTP/1.0\r\nHost: {}\r\n\r\n", s.server);
    let written = child.stdin.take().unwrap().write_all(request.as_bytes());
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    if written.is_err() || !text.starts_with("HTTP/1.1 200 OK") {
        return Err(format!(
            "openssl s_client: {}: {text:.80} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

fn download(ns: &str, dir: &Path, s: &Session) -> Outcome {
    let file = dir.join("download.bin");
    curl(
        ns,
        dir,
        &[
            "-o",
            file.to_str().unwrap(),
            &format!("https://{}/big.bin", s.server),
        ],
        Duration::from_secs(60),
    )?;
    let got = std::fs::metadata(&file).map_or(0, |m| m.len());
    let _ = std::fs::remove_file(&file);
    if got != DOWNLOAD_BYTES as u64 {
        return Err(format!("downloaded {got} bytes of {DOWNLOAD_BYTES}"));
    }
    Ok((format!("{got} bytes"), 1))
}

fn long_poll(ns: &str, dir: &Path, s: &Session) -> Outcome {
    let n = SESSION.as_secs() / POLL_HOLD.as_secs();
    let urls: Vec<String> = (1..=n)
        .map(|i| format!("https://{}/poll?n={i}", s.server))
        .collect();
    let mut args: Vec<&str> = vec!["--http1.1", "-w", "%{http_code} "];
    for u in &urls {
        args.extend_from_slice(&["-o", "/dev/null", u]);
    }
    let out = curl(ns, dir, &args, SESSION + Duration::from_secs(30))?;
    let want = vec!["200"; n as usize].join(" ");
    if out.trim() != want {
        return Err(format!("long-poll answers {out:?}"));
    }
    Ok((format!("{n} requests held {POLL_HOLD:?} each"), 1))
}

fn corpus_script() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/tls/corpus.py")
        .to_str()
        .unwrap()
        .to_string()
}

fn python_client(ns: &str, args: &[&str]) -> Result<String, String> {
    let python = common::corpus_python();
    let script = corpus_script();
    let mut all = vec![script.as_str()];
    all.extend_from_slice(args);
    let out = run_in(
        ns,
        SESSION + Duration::from_secs(30),
        python.to_str().unwrap(),
        &all,
    )?;
    let v: Value = serde_json::from_str(out.trim()).map_err(|e| format!("{out:?}: {e}"))?;
    Ok(v.to_string())
}

fn websocket(ns: &str, dir: &Path, s: &Session) -> Outcome {
    let ca = dir.join("benign.crt");
    let out = python_client(
        ns,
        &[
            "ws-client",
            &format!("wss://{}/", s.server),
            ca.to_str().unwrap(),
            &SESSION.as_secs().to_string(),
        ],
    )?;
    let v: Value = serde_json::from_str(&out).unwrap();
    // A message after each pause of 6 to 9 s that ends within the session: at most
    // SESSION / 6 (20 for 120 s), at least SESSION / 9 - 1 (12: 120 / 9 = 13 in integers); each
    // acknowledged, and a tick every 5 s besides (SESSION / 5 = 24, less the last one, which the
    // close may cut, and one for the start-up: 22).
    let secs = SESSION.as_secs();
    let (sent, received) = (v["sent"].as_u64().unwrap(), v["received"].as_u64().unwrap());
    if !(secs / 9 - 1..=secs / 6).contains(&sent) || received < sent + secs / 5 - 2 {
        return Err(format!("websocket client: {out}"));
    }
    Ok((out, 1))
}

fn chat(ns: &str, dir: &Path, s: &Session) -> Outcome {
    let ca = dir.join("benign.crt");
    let out = python_client(
        ns,
        &[
            "chat-client",
            s.server,
            &s.port.to_string(),
            ca.to_str().unwrap(),
            &SESSION.as_secs().to_string(),
        ],
    )?;
    let v: Value = serde_json::from_str(&out).unwrap();
    // A line after each pause of 0.3 to 4 s that ends within the session: at least
    // SESSION / 4 - 1 (29 for 120 s); the server's lines besides an acknowledgement of each.
    let (sent, received) = (v["sent"].as_u64().unwrap(), v["received"].as_u64().unwrap());
    if sent < SESSION.as_secs() / 4 - 1 || received < sent {
        return Err(format!("chat client: {out}"));
    }
    Ok((out, 1))
}

fn ssh(ns: &str, dir: &Path, s: &Session) -> Outcome {
    let key = dir.join("id_ssh");
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "timeout", &LIFETIME_S.to_string()])
        .args(["ssh", "-F", "/dev/null", "-i"])
        .arg(&key)
        .args([
            "-p",
            &s.port.to_string(),
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "ServerAliveInterval=5",
            "-o",
            "LogLevel=ERROR",
            &format!("root@{}", s.server),
            "cat",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("ssh: {e}"))?;
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stdout.read_to_end(&mut s);
        s
    });
    let mut rng = Rng(0x55aa_1234_9876_0001);
    let started = Instant::now();
    let mut typed = Vec::new();
    for _ in 0..1000 {
        let pause = Duration::from_millis(rng.range(500, 2000));
        if started.elapsed() + pause >= SESSION {
            break;
        }
        thread::sleep(pause);
        let line: Vec<u8> = (0..rng.range(1, 80))
            .map(|_| b'a' + rng.range(0, 25) as u8)
            .chain([b'\n'])
            .collect();
        if stdin.write_all(&line).is_err() {
            break;
        }
        typed.extend_from_slice(&line);
    }
    drop(stdin);
    let echoed = reader.join().unwrap();
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if echoed != typed {
        return Err(format!(
            "ssh echoed {} of {} bytes: {}",
            echoed.len(),
            typed.len(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok((
        format!(
            "{} lines typed and echoed",
            typed.iter().filter(|&&b| b == b'\n').count()
        ),
        1,
    ))
}

// The servers.

fn write_files(dir: &Path) {
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let mut page = String::from("<!doctype html><title>example</title>\n");
    for i in 0..120 {
        let _ = writeln!(
            page,
            "<p>Paragraph {i} of an ordinary page, nothing to see.</p>"
        );
    }
    std::fs::write(www.join("index.html"), &page).unwrap();
    std::fs::write(www.join("page2.html"), page.repeat(5)).unwrap();
    // Incompressible bytes, as a real download's.
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let big: Vec<u8> = (0..DOWNLOAD_BYTES / 8)
        .flat_map(|_| rng.next().to_le_bytes())
        .collect();
    std::fs::write(www.join("big.bin"), big).unwrap();
}

fn nginx_config(dir: &Path, pages: &Session, files: &Session) -> PathBuf {
    let d = dir.display();
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/nginx-error.log;\nevents {{ worker_connections 64; }}\nhttp {{\n\
         access_log {d}/nginx-access.log;\nclient_body_temp_path {d}/nginx-body;\n\
         proxy_temp_path {d}/nginx-proxy;\nfastcgi_temp_path {d}/nginx-fastcgi;\n\
         uwsgi_temp_path {d}/nginx-uwsgi;\nscgi_temp_path {d}/nginx-scgi;\n\
         types {{ text/html html; application/octet-stream bin; }}\n\
         ssl_certificate {d}/benign.crt;\nssl_certificate_key {d}/benign.key;\n\
         server {{ listen {}:{} ssl http2; server_name {}; root {d}/www; }}\n\
         server {{ listen {}:{} ssl; server_name {}; root {d}/www; limit_rate 2m; }}\n}}\n",
        pages.addr(),
        pages.port,
        pages.server,
        files.addr(),
        files.port,
        files.server,
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    path
}

fn sshd_config(dir: &Path, s: &Session) -> PathBuf {
    let d = dir.display();
    sh(&[
        "ssh-keygen",
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-f",
        &format!("{d}/ssh_host"),
    ]);
    sh(&[
        "ssh-keygen",
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-f",
        &format!("{d}/id_ssh"),
    ]);
    std::fs::copy(dir.join("id_ssh.pub"), dir.join("authorized_keys")).unwrap();
    // sshd's privilege separation directory, which a fresh install creates only at boot.
    std::fs::create_dir_all("/run/sshd").unwrap();
    let conf = format!(
        "Port {}\nListenAddress {}\nHostKey {d}/ssh_host\nPidFile {d}/sshd.pid\n\
         AuthorizedKeysFile {d}/authorized_keys\nPermitRootLogin prohibit-password\n\
         PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n",
        s.port,
        s.addr()
    );
    let path = dir.join("sshd_config");
    std::fs::write(&path, conf).unwrap();
    path
}

/// stunnel's configuration: one service per mining session, in server mode (the pool's TLS front,
/// in the pool namespace) or in client mode (the miner's tunnel).
fn stunnel_config(dir: &Path, client: bool) -> PathBuf {
    let d = dir.display();
    let side = if client { "client" } else { "server" };
    let mut conf = format!("foreground = yes\npid =\noutput = {d}/stunnel-{side}.log\n");
    for s in SESSIONS.iter().filter(|s| s.mining()) {
        if client {
            let Client::XmrigTunnel { sni } = s.client else {
                continue;
            };
            let _ = write!(
                conf,
                "[{}]\nclient = yes\naccept = 127.0.0.1:{}\nconnect = {}:{}\nsni = {sni}\n",
                s.name,
                s.tunnel_port(),
                s.server,
                s.port
            );
        } else {
            let _ = write!(
                conf,
                "[{}]\naccept = {}:{}\nconnect = 127.0.0.1:{}\ncert = {d}/pool.crt\nkey = {d}/pool.key\n",
                s.name,
                s.addr(),
                s.port,
                s.pool_port()
            );
        }
    }
    let path = dir.join(format!("stunnel-{side}.conf"));
    std::fs::write(&path, conf).unwrap();
    path
}

// The capture: each session's packets, TCP streams and TLS records.

/// One packet of a session's flow.
struct Packet {
    t: Duration,
    frame: Vec<u8>,
    /// Client port, and whether the packet goes from client to server.
    cport: u16,
    to_server: bool,
    seq: u32,
    syn: bool,
    payload: std::ops::Range<usize>,
}

/// One direction of a TCP stream, in order (a retransmission adds only what is new; a gap ends
/// it), with the capture time at which each piece began.
#[derive(Default)]
struct Stream {
    next: Option<u32>,
    bytes: Vec<u8>,
    starts: Vec<(usize, Duration)>,
    gap: bool,
}

impl Stream {
    fn add(&mut self, p: &Packet) {
        if p.syn {
            self.next = Some(p.seq.wrapping_add(1));
        }
        let data = &p.frame[p.payload.clone()];
        if data.is_empty() || self.gap {
            return;
        }
        let next = *self.next.get_or_insert(p.seq);
        let ahead = p.seq.wrapping_sub(next) as i32;
        if ahead > 0 {
            self.gap = true;
            return;
        }
        let skip = (-ahead) as usize;
        if skip < data.len() {
            self.starts.push((self.bytes.len(), p.t));
            self.bytes.extend_from_slice(&data[skip..]);
            self.next = Some(next.wrapping_add((data.len() - skip) as u32));
        }
    }

    fn time_at(&self, offset: usize) -> Duration {
        let i = self.starts.partition_point(|(o, _)| *o <= offset);
        self.starts[i.saturating_sub(1)].1
    }

    /// The TLS records (time, content type, length), or `None` if the stream is not TLS.
    fn records(&self) -> Option<Vec<(Duration, u8, usize)>> {
        let b = &self.bytes;
        if b.is_empty() || !(20..=23).contains(&b[0]) || b.get(1) != Some(&3) {
            return None;
        }
        let mut out = Vec::new();
        let mut o = 0;
        while o + 5 <= b.len() {
            let len = usize::from(u16::from_be_bytes([b[o + 3], b[o + 4]]));
            out.push((self.time_at(o), b[o], len));
            o += 5 + len;
        }
        Some(out)
    }
}

/// The server_name of the ClientHello that opens `stream` (`Some(None)`: none), `None` if the
/// stream does not open with a ClientHello. The layout is RFC 8446's (section 4.1.2) and RFC
/// 6066's (section 3): record header 5, handshake header 4, version 2, random 32, then the
/// session id, cipher suites and compression methods, each behind its length, then extensions.
fn client_hello_sni(stream: &[u8]) -> Option<Option<String>> {
    if stream.len() < 9 || stream[0] != 22 || stream[5] != 1 {
        return None;
    }
    let b = &stream[9..];
    let mut o = 2 + 32;
    let u16_at = |o: usize| {
        Some(usize::from(u16::from_be_bytes([
            *b.get(o)?,
            *b.get(o + 1)?,
        ])))
    };
    o += 1 + usize::from(*b.get(o)?);
    o += 2 + u16_at(o)?;
    o += 1 + usize::from(*b.get(o)?);
    let end = o + 2 + u16_at(o)?;
    o += 2;
    while o + 4 <= end {
        let (kind, len) = (u16_at(o)?, u16_at(o + 2)?);
        if kind == 0 {
            // server_name_list length 2, name type 1, name length 2, name.
            let n = u16_at(o + 4 + 3)?;
            let name = b.get(o + 4 + 5..o + 4 + 5 + n)?;
            return Some(Some(String::from_utf8_lossy(name).into_owned()));
        }
        o += 4 + len;
    }
    Some(None)
}

/// Every IPv4 TCP packet of the capture, by server address (198.18.1.X, the session's).
fn read_capture(pcap: &Path) -> BTreeMap<Ipv4Addr, Vec<Packet>> {
    let mut r = pcap_file::pcap::PcapReader::new(std::fs::File::open(pcap).unwrap()).unwrap();
    let mut out: BTreeMap<Ipv4Addr, Vec<Packet>> = BTreeMap::new();
    while let Some(p) = r.next_packet() {
        let p = p.unwrap();
        let f = p.data.to_vec();
        if f.len() < 34 || f[12..14] != [8, 0] || f[23] != 6 {
            continue;
        }
        let ihl = usize::from(f[14] & 15) * 4;
        let total = usize::from(u16::from_be_bytes([f[16], f[17]]));
        let t = 14 + ihl;
        if f.len() < t + 20 {
            continue;
        }
        let src = Ipv4Addr::new(f[26], f[27], f[28], f[29]);
        let dst = Ipv4Addr::new(f[30], f[31], f[32], f[33]);
        let (sport, dport) = (
            u16::from_be_bytes([f[t], f[t + 1]]),
            u16::from_be_bytes([f[t + 2], f[t + 3]]),
        );
        let seq = u32::from_be_bytes([f[t + 4], f[t + 5], f[t + 6], f[t + 7]]);
        let data = t + usize::from(f[t + 12] >> 4) * 4;
        let to_server = src.to_string() == MINER;
        let (server, cport) = if to_server {
            (dst, sport)
        } else {
            (src, dport)
        };
        out.entry(server).or_default().push(Packet {
            t: p.timestamp,
            cport,
            to_server,
            seq,
            syn: f[t + 13] & 0x02 != 0,
            payload: data.min(f.len())..(14 + total).min(f.len()),
            frame: f,
        });
    }
    out
}

/// What the capture shows of one session: its flows' ClientHello server names, and a summary;
/// the session's packets and its records listing are written beside.
struct Observed {
    flows: Vec<u16>,
    hellos: BTreeSet<Option<String>>,
    summary: String,
}

fn observe(s: &Session, packets: &[Packet], out: &Path) -> Observed {
    common::write_pcap(
        &out.join(format!("{}.pcap", s.name)),
        pcap_file::DataLink::ETHERNET,
        &packets
            .iter()
            .map(|p| (p.t, p.frame.clone()))
            .collect::<Vec<_>>(),
    );
    let mut flows: BTreeMap<u16, [Stream; 2]> = BTreeMap::new();
    for p in packets {
        flows.entry(p.cport).or_default()[usize::from(!p.to_server)].add(p);
    }
    let t0 = packets.first().map_or(Duration::ZERO, |p| p.t);
    let mut listing = String::from(
        "# seconds from the session's first packet, direction (c>s client to server), then each TLS\n\
         # record's content type and length (the 5-byte header not counted), or for a stream that\n\
         # is not TLS each TCP segment's payload length\n",
    );
    let mut summary = String::new();
    let mut hellos = BTreeSet::new();
    // Per direction: (records or segments, bytes, application-data sizes, their times).
    let mut sizes: [Vec<(Duration, usize)>; 2] = Default::default();
    let mut tls = false;
    for (port, [up, down]) in &flows {
        if let Some(sni) = client_hello_sni(&up.bytes) {
            hellos.insert(sni);
        }
        let _ = writeln!(
            listing,
            "# flow {MINER}:{port} -> {}:{}{}",
            s.addr(),
            s.port,
            if up.gap || down.gap {
                " (a gap in the capture: cut there)"
            } else {
                ""
            }
        );
        // Both directions in time order (a direction's own order kept at equal times).
        let mut lines: Vec<(Duration, String)> = Vec::new();
        for (dir, stream, arrow) in [(0, up, "c>s"), (1, down, "s>c")] {
            match stream.records() {
                Some(records) => {
                    tls = true;
                    for (t, kind, len) in records {
                        lines.push((t, format!("{arrow} tls type={kind} len={len}")));
                        if kind == 23 {
                            sizes[dir].push((t, len));
                        }
                    }
                }
                None => {
                    for (i, (o, t)) in stream.starts.iter().enumerate() {
                        let end = stream.starts.get(i + 1).map_or(stream.bytes.len(), |n| n.0);
                        lines.push((*t, format!("{arrow} tcp len={}", end - o)));
                        sizes[dir].push((*t, end - o));
                    }
                }
            }
        }
        lines.sort_by_key(|l| l.0);
        for (t, line) in lines {
            let _ = writeln!(listing, "{:10.3} {line}", (t - t0).as_secs_f64());
        }
    }
    std::fs::write(out.join(format!("{}.records.txt", s.name)), &listing).unwrap();
    let unit = if tls {
        "application-data records"
    } else {
        "TCP segments"
    };
    let _ = writeln!(
        summary,
        "{}: {} flow(s), {} packets over {:.1} s, ClientHello SNI {:?}",
        s.name,
        flows.len(),
        packets.len(),
        packets.last().map_or(0.0, |p| (p.t - t0).as_secs_f64()),
        hellos
    );
    for (dir, arrow) in [(0, "c>s"), (1, "s>c")] {
        let v = &mut sizes[dir];
        v.sort_by_key(|x| x.0);
        if v.is_empty() {
            continue;
        }
        let mut lens: Vec<usize> = v.iter().map(|x| x.1).collect();
        lens.sort_unstable();
        let mut by_size: BTreeMap<usize, usize> = BTreeMap::new();
        for l in &lens {
            *by_size.entry(*l).or_default() += 1;
        }
        let mut common_sizes: Vec<(usize, usize)> = by_size.into_iter().collect();
        common_sizes.sort_by_key(|(l, n)| (std::cmp::Reverse(*n), *l));
        common_sizes.truncate(6);
        let mut gaps: Vec<f64> = v
            .windows(2)
            .map(|w| (w[1].0 - w[0].0).as_secs_f64())
            .collect();
        gaps.sort_by(f64::total_cmp);
        let median = |x: &[f64]| x.get(x.len() / 2).copied().unwrap_or(0.0);
        let _ = writeln!(
            summary,
            "  {arrow} {} {unit}, {} bytes; sizes min/median/max {}/{}/{}; most common (size x count) {:?}; \
             pause between them min/median/max {:.2}/{:.2}/{:.2} s",
            v.len(),
            lens.iter().sum::<usize>(),
            lens[0],
            lens[lens.len() / 2],
            lens[lens.len() - 1],
            common_sizes,
            gaps.first().copied().unwrap_or(0.0),
            median(&gaps),
            gaps.last().copied().unwrap_or(0.0),
        );
    }
    Observed {
        flows: flows.keys().copied().collect(),
        hellos,
        summary,
    }
}

/// tcpdump on `dev` in `ns`, writing `file`; running (its file begun) on return. It writes each
/// packet as it comes (`-U`), so its SIGTERM loses none.
fn start_capture(ns: &str, dev: &str, file: &Path) -> Timed {
    let child = Command::new("ip")
        .args(["netns", "exec", ns, "timeout", &LIFETIME_S.to_string()])
        .args(["tcpdump", "-i", dev, "-n", "-U", "-B", "16384", "-w"])
        .arg(file)
        .stderr(Stdio::null())
        .spawn()
        .expect("tcpdump (cargo xtask setup installs it)");
    let started = Instant::now();
    while std::fs::metadata(file).map_or(0, |m| m.len()) < 24 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "tcpdump did not start"
        );
        thread::sleep(Duration::from_millis(20));
    }
    Timed(child)
}

#[test]
fn tls_mining_sessions_and_the_benign_tls_corpus() {
    let t = Line::new(
        "sht",
        ["shtm0", &format!("{MINER}/24"), "shtv0", "198.18.0.1/24"],
        ["shtp0", "198.18.1.2/24", "shtv1", "198.18.1.1/24"],
    );
    for s in SESSIONS {
        sh(&[
            "ip",
            "-n",
            &t.pool,
            "addr",
            "add",
            &format!("{}/32", s.addr()),
            "dev",
            "shtp0",
        ]);
    }
    let mut hosts = String::from("127.0.0.1 localhost\n");
    for s in SESSIONS {
        let _ = writeln!(hosts, "{} {}", s.addr(), s.server);
    }
    let _hosts = HostsFile::new(&t.miner, &hosts);

    let dir = std::env::temp_dir().join(format!("sht-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tls");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();

    // The sensor: every session's server address a range of its own.
    let mut config = format!(
        "drain_interval = \"200ms\"\n[events]\nsink = \"file\"\npath = \"{}\"\n",
        dir.join("events.jsonl").display()
    );
    for s in SESSIONS {
        let _ = write!(
            config,
            "[[ranges]]\nname = \"{}\"\ncidrs = [\"{}/32\"]\n",
            s.name,
            s.addr()
        );
    }
    std::fs::write(dir.join("sensor.toml"), config).unwrap();
    let sensor_log = dir.join("sensor.log");
    let listen = format!("127.0.0.1:{SENSOR_PORT}");
    let mut sensor = spawn_sensor(
        &t.vantage,
        &dir.join("sensor.toml"),
        &[
            "--iface",
            "shtv0",
            "--iface",
            "shtv1",
            "--listen",
            &listen,
            "--xdp-mode",
            "native",
        ],
        &sensor_log,
        "info",
    );
    common::wait_exported(
        &t.vantage,
        SENSOR_PORT,
        &mut sensor,
        &sensor_log,
        "mining_sensor_xdp_attached{iface=\"shtv1\",mode=\"native\"} 1",
    );
    let pcap = dir.join("vantage.pcap");
    let dump = start_capture(&t.vantage, "shtv0", &pcap);

    // Certificates: the pools' (XMRig and stunnel verify nothing unless told to), and one naming
    // every benign server, which its clients verify.
    common::self_signed(
        &dir.join("pool.crt"),
        &dir.join("pool.key"),
        "/CN=pool",
        &[],
    );
    let benign: Vec<&Session> = SESSIONS.iter().filter(|s| !s.mining()).collect();
    let san: Vec<String> = benign
        .iter()
        .map(|s| format!("DNS:{}", s.server))
        .chain(benign.iter().map(|s| format!("IP:{}", s.addr())))
        .collect();
    common::self_signed(
        &dir.join("benign.crt"),
        &dir.join("benign.key"),
        "/CN=www.example.net",
        &["-addext", &format!("subjectAltName={}", san.join(","))],
    );
    write_files(&dir);
    let session = |c: Client| {
        SESSIONS
            .iter()
            .find(|s| s.client == c)
            .expect("a session of each benign kind")
    };

    // The servers, in the pool namespace.
    let mut pools = Vec::new();
    for s in SESSIONS.iter().filter(|s| s.mining()) {
        let addr = SocketAddr::from(([127, 0, 0, 1], s.pool_port()));
        let serve = if s.client == Client::ProxyTls {
            serve_equihash
        } else {
            serve
        };
        pools.push((s, Pool::start(common::listen(&t.pool, addr), serve)));
    }
    let d = dir.display().to_string();
    let cert = format!("{d}/benign.crt");
    let key = format!("{d}/benign.key");
    let life = (LIFETIME_S - 10).to_string();
    let python = common::corpus_python();
    let python = python.to_str().unwrap();
    let script = corpus_script();
    let (ws, poll, chat_s, ssh_s) = (
        session(Client::WebSocket),
        session(Client::LongPoll),
        session(Client::Chat),
        session(Client::Ssh),
    );
    let nginx_conf = nginx_config(&dir, session(Client::Https), session(Client::Download));
    let sshd_conf = sshd_config(&dir, ssh_s);
    let stunnel_server = stunnel_config(&dir, false);
    let stunnel_client = stunnel_config(&dir, true);
    let _servers = [
        spawn_in(
            &t.pool,
            &dir,
            "stunnel-server",
            "stunnel4",
            &[stunnel_server.to_str().unwrap()],
        ),
        spawn_in(
            &t.pool,
            &dir,
            "nginx",
            "nginx",
            &["-p", &d, "-c", nginx_conf.to_str().unwrap()],
        ),
        spawn_in(
            &t.pool,
            &dir,
            "sshd",
            "/usr/sbin/sshd",
            &["-D", "-e", "-f", sshd_conf.to_str().unwrap()],
        ),
        spawn_in(
            &t.pool,
            &dir,
            "ws-server",
            python,
            &[
                &script,
                "ws-server",
                &ws.addr().to_string(),
                &ws.port.to_string(),
                &cert,
                &key,
                &life,
            ],
        ),
        spawn_in(
            &t.pool,
            &dir,
            "poll-server",
            python,
            &[
                &script,
                "poll-server",
                &poll.addr().to_string(),
                &poll.port.to_string(),
                &cert,
                &key,
                &life,
                &POLL_HOLD.as_secs().to_string(),
            ],
        ),
        spawn_in(
            &t.pool,
            &dir,
            "chat-server",
            python,
            &[
                &script,
                "chat-server",
                &chat_s.addr().to_string(),
                &chat_s.port.to_string(),
                &cert,
                &key,
                &life,
            ],
        ),
        spawn_in(
            &t.miner,
            &dir,
            "stunnel-client",
            "stunnel4",
            &[stunnel_client.to_str().unwrap()],
        ),
    ];
    let listening: Vec<String> = SESSIONS
        .iter()
        .map(|s| format!("{}:{}", s.addr(), s.port))
        .collect();
    wait_listening(&t.pool, &listening, &dir);
    let tunnels: Vec<String> = SESSIONS
        .iter()
        .filter(|s| matches!(s.client, Client::XmrigTunnel { .. }))
        .map(|s| format!("127.0.0.1:{}", s.tunnel_port()))
        .collect();
    wait_listening(&t.miner, &tunnels, &dir);

    // Every session at once.
    let started = Instant::now();
    let mut workers = Vec::new();
    let miners: Vec<Timed> = SESSIONS
        .iter()
        .filter(|s| s.mining())
        .map(|s| {
            let log = dir.join(format!("xmrig-{}.log", s.name));
            match s.client {
                Client::XmrigTls => {
                    spawn_xmrig(&t.miner, &format!("{}:{}", s.server, s.port), true, &log)
                }
                Client::ProxyTls => {
                    let until = started + SESSION;
                    for k in 1..=PROXY_WORKERS {
                        let port = s.tunnel_port();
                        workers.push(common::in_ns(&t.miner, move || {
                            equihash_miner(port, k, until)
                        }));
                    }
                    spawn_proxy(&t.miner, &dir, s)
                }
                _ => spawn_xmrig(
                    &t.miner,
                    &format!("127.0.0.1:{}", s.tunnel_port()),
                    false,
                    &log,
                ),
            }
        })
        .collect();
    let clients: Vec<(&Session, thread::JoinHandle<Outcome>)> = benign
        .iter()
        .map(|&s| {
            let (ns, dir) = (t.miner.clone(), dir.clone());
            let run = move || match s.client {
                Client::Https => https_pages(&ns, &dir, s),
                Client::Download => download(&ns, &dir, s),
                Client::WebSocket => websocket(&ns, &dir, s),
                Client::LongPoll => long_poll(&ns, &dir, s),
                Client::Chat => chat(&ns, &dir, s),
                Client::Ssh => ssh(&ns, &dir, s),
                _ => unreachable!("mining sessions run XMRig"),
            };
            (s, thread::spawn(run))
        })
        .collect();
    thread::sleep(SESSION.saturating_sub(started.elapsed()));
    let mut problems = Vec::new();
    // The proxy's miners end at the session's end by themselves.
    let mut proxied = 0;
    for (k, w) in workers.into_iter().enumerate() {
        match w.join() {
            Ok(Ok(n)) => proxied += n,
            Ok(Err(e)) => problems.push(format!("proxy worker {}: {e}", k + 1)),
            Err(_) => problems.push(format!("proxy worker {}: panicked", k + 1)),
        }
    }
    drop(miners);
    // TCP connections per session: one for each miner, as many as each benign client made.
    let mut connections: BTreeMap<&str, usize> = SESSIONS
        .iter()
        .filter(|s| s.mining())
        .map(|s| (s.name, 1))
        .collect();
    for (s, c) in clients {
        match c.join() {
            Ok(Ok((what, n))) => {
                eprintln!("{}: {what}", s.name);
                connections.insert(s.name, n);
            }
            Ok(Err(e)) => problems.push(format!("{}: {e}", s.name)),
            Err(_) => problems.push(format!("{}: the client panicked", s.name)),
        }
    }
    let tallies: Vec<(&Session, Tally)> = pools.into_iter().map(|(s, p)| (s, p.stop())).collect();
    // The last segments drained, then the sensor's counts are read and the capture ends.
    thread::sleep(Duration::from_secs(1));
    let m = samples(&http_get(&t.vantage, SENSOR_PORT, "/metrics"));
    thread::sleep(Duration::from_millis(300));
    drop(dump);
    drop(_servers);
    eprintln!("the sessions ran {:.1} s", started.elapsed().as_secs_f64());
    assert!(problems.is_empty(), "benign clients: {problems:#?}");

    // The capture, per session: flows, ClientHellos, records.
    let mut captured = read_capture(&pcap);
    let mut observed = BTreeMap::new();
    for s in SESSIONS {
        let packets = captured.remove(&s.addr()).unwrap_or_default();
        let o = observe(s, &packets, &out);
        eprint!("{}", o.summary);
        observed.insert(s.name, o);
    }
    eprintln!(
        "each session's packets and records: {}/SESSION.pcap, SESSION.records.txt",
        out.display()
    );

    // The miners mined through TLS: one login each (the proxy's subscription, and an authorize
    // for each of its workers), shares answered (all the proxy's workers' shares reached the
    // pool).
    for (s, tally) in &tallies {
        let log = if s.client == Client::ProxyTls {
            assert_eq!(tally.authorizes, PROXY_WORKERS, "{}: {tally:?}", s.name);
            assert_eq!(tally.submits, proxied, "{}: the workers' shares", s.name);
            std::fs::read_to_string(dir.join("aiostratum-proxy.err")).unwrap_or_default()
        } else {
            std::fs::read_to_string(dir.join(format!("xmrig-{}.log", s.name))).unwrap_or_default()
        };
        eprintln!("{}: pool saw {tally:?}", s.name);
        assert_eq!(
            tally.logins, 1,
            "{}: one login; the client's log:\n{log}",
            s.name
        );
        assert!(
            tally.submits >= 1,
            "{}: no share in {SESSION:?}; the client's log:\n{log}",
            s.name
        );
        assert!(tally.unexpected.is_empty(), "{}: {tally:?}", s.name);
    }

    // The suspects, per session: the metrics (summed over direction) and the events.
    let events: Vec<Value> = std::fs::read_to_string(dir.join("events.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &Value| e["event"] == "suspect_flow")
        .collect();
    for s in SESSIONS {
        let o = &observed[s.name];
        let want_hellos: BTreeSet<Option<String>> =
            s.hellos.iter().map(|h| h.map(str::to_string)).collect();
        assert_eq!(o.hellos, want_hellos, "{}: the ClientHellos' SNI", s.name);
        assert_eq!(
            o.flows.len(),
            connections[s.name],
            "{}: TCP connections in the capture",
            s.name
        );
        let mut by_reason: BTreeMap<String, u64> = BTreeMap::new();
        for ((name, labels), v) in &m {
            if name == "mining_sensor_suspect_flows_total"
                && labels.get("range").map(String::as_str) == Some(s.name)
                && *v > 0.0
            {
                *by_reason.entry(labels["reason"].clone()).or_default() += *v as u64;
            }
        }
        let want: BTreeMap<String, u64> =
            s.expect.iter().map(|(r, n)| (r.to_string(), *n)).collect();
        assert_eq!(by_reason, want, "{}: suspect flows by reason", s.name);
        // The events: one per flow and reason, for the session's own flows.
        let mut seen: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
        for e in events.iter().filter(|e| e["range"] == s.name) {
            let reason = e["reason"].as_str().unwrap().to_string();
            let (sport, dport) = (e["sport"].as_u64().unwrap(), e["dport"].as_u64().unwrap());
            let (cport, server_port) = if e["src"] == MINER {
                (sport, dport)
            } else {
                (dport, sport)
            };
            assert_eq!(server_port, u64::from(s.port), "{}: {e}", s.name);
            assert!(
                o.flows.contains(&(cport as u16)),
                "{}: an event for a flow not in the capture: {e}",
                s.name
            );
            assert!(
                seen.entry(reason).or_default().insert(cport),
                "{}: two events for one flow and reason: {e}",
                s.name
            );
        }
        let seen: BTreeMap<String, u64> =
            seen.into_iter().map(|(r, f)| (r, f.len() as u64)).collect();
        assert_eq!(seen, want, "{}: suspect_flow events by reason", s.name);
    }
    // Each session's capture replayed alone: the same suspects by reason. At a capture's end
    // every recorded flow is judged, so the benign sessions face every rule here, the job-less
    // one included (the live counts are read at 120 s, before the 4 minutes at which a flow
    // without a job is judged on its submits alone).
    let replay_config = dir.join("replay.toml");
    std::fs::write(
        &replay_config,
        "[[ranges]]\nname = \"servers\"\ncidrs = [\"198.18.1.0/24\"]\n",
    )
    .unwrap();
    for s in SESSIONS {
        let pcap = out.join(format!("{}.pcap", s.name));
        let (_, report) = common::replay(&["--config", replay_config.to_str().unwrap()], &[&pcap]);
        let mut by_reason: BTreeMap<String, u64> = BTreeMap::new();
        for e in report["totals"].as_array().unwrap() {
            let n = e["value"].as_u64().unwrap_or(0);
            if e["metric"] == "mining_sensor_suspect_flows_total" && n > 0 {
                *by_reason
                    .entry(e["labels"]["reason"].as_str().unwrap().to_string())
                    .or_default() += n;
            }
        }
        let want: BTreeMap<String, u64> =
            s.expect.iter().map(|(r, n)| (r.to_string(), *n)).collect();
        assert_eq!(
            by_reason, want,
            "{}: replayed, suspect flows by reason",
            s.name
        );
    }
    // TLS hides the Stratum: no session is a readable Stratum flow.
    let stratum: f64 = m
        .iter()
        .filter(|((n, l), _)| {
            n == "mining_sensor_stratum_flows_total"
                && SESSIONS
                    .iter()
                    .any(|s| l.get("range").map(String::as_str) == Some(s.name))
        })
        .map(|(_, v)| v)
        .sum();
    assert_eq!(stratum, 0.0, "a Stratum flow read through TLS");
    drop(sensor);
    let _ = std::fs::remove_dir_all(&dir);
}
