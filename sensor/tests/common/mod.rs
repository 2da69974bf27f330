//! Helpers shared by the integration tests: commands, entering namespaces, HTTP, metric parsing,
//! captures and the TCP sessions written into them (`Wire`).
#![allow(dead_code)]

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

pub fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn output(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Network namespaces made for one test (a stale one of the same name removed first, loopback up),
/// removed again when the value is dropped, however the test ends.
pub struct Namespaces(Vec<String>);

impl Namespaces {
    pub fn new(names: &[&str]) -> Self {
        let guard = Self(names.iter().map(|n| n.to_string()).collect());
        for ns in names {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
            sh(&["ip", "netns", "add", ns]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        guard
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// Three namespaces in a line, miner -- vantage -- pool, the vantage forwarding IPv4 between its
/// two links and both ends routing through it; deleted (with everything in them) on drop. Each
/// link is given as (the end's device, its `address/length`, the vantage's device, its
/// `address/length`).
pub struct Line {
    pub miner: String,
    pub vantage: String,
    pub pool: String,
    _namespaces: Namespaces,
}

impl Line {
    pub fn new(prefix: &str, to_miner: [&str; 4], to_pool: [&str; 4]) -> Self {
        let id = std::process::id();
        let (miner, vantage, pool) = (
            format!("{prefix}-m-{id}"),
            format!("{prefix}-v-{id}"),
            format!("{prefix}-p-{id}"),
        );
        let line = Self {
            _namespaces: Namespaces::new(&[&miner, &vantage, &pool]),
            miner,
            vantage,
            pool,
        };
        for (end, link) in [(&line.miner, to_miner), (&line.pool, to_pool)] {
            veth((end, link[0], link[1]), (&line.vantage, link[2], link[3]));
            let via = link[3].split('/').next().unwrap_or_default();
            sh(&["ip", "-n", end, "route", "add", "default", "via", via]);
        }
        sh(&[
            "ip",
            "netns",
            "exec",
            &line.vantage,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ]);
        line
    }
}

/// A veth pair between two namespaces, each end given as (namespace, device, `address/length`),
/// both ends up.
pub fn veth(a: (&str, &str, &str), b: (&str, &str, &str)) {
    sh(&[
        "ip", "link", "add", a.1, "netns", a.0, "type", "veth", "peer", "name", b.1, "netns", b.0,
    ]);
    for (ns, dev, addr) in [a, b] {
        sh(&["ip", "-n", ns, "addr", "add", addr, "dev", dev]);
        sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
    }
}

/// A scripted client of a line protocol (a miner's side of a Stratum session): Nagle off, so
/// that each message leaves in a segment of its own, and every read bounded by `IO_TIMEOUT`.
pub struct LineClient {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl LineClient {
    pub fn connect(addr: SocketAddr) -> Self {
        let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
        s.set_nodelay(true).expect("nodelay");
        s.set_read_timeout(Some(IO_TIMEOUT)).expect("read timeout");
        let w = s.try_clone().expect("clone");
        Self {
            w,
            r: BufReader::new(s),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).expect("send");
    }

    /// Reads the next line and checks that it holds `what`.
    pub fn expect(&mut self, what: &str) {
        let mut l = String::new();
        self.r.read_line(&mut l).expect("read a line");
        assert!(l.contains(what), "expected {what}, got {l:?}");
    }
}

/// The next connection on `l`, waiting at most `IO_TIMEOUT` (a blocking `accept` waits forever
/// when the other side never connects, and the test would then hang instead of failing).
pub fn accept(l: &std::net::TcpListener) -> TcpStream {
    l.set_nonblocking(true).expect("listener non-blocking");
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        match l.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).expect("connection blocking");
                return s;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(
                    Instant::now() < deadline,
                    "no connection on {:?} within {IO_TIMEOUT:?}",
                    l.local_addr()
                );
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// One line from `r` (empty when the other side closed), within the socket's read timeout.
pub fn read_line(r: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    r.read_line(&mut line).expect("read a line");
    line
}

/// A harness pool's side of one connection: each JSON line the client sends, up to `max`, is
/// answered with what `answer` makes of it, in one write; stops when the client closes first.
pub fn answer_lines(
    s: TcpStream,
    max: usize,
    mut answer: impl FnMut(&serde_json::Value) -> String,
) {
    s.set_nonblocking(false).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    for _ in 0..max {
        let line = read_line(&mut r);
        if line.is_empty() {
            return;
        }
        let v: serde_json::Value = serde_json::from_str(&line).expect("client JSON");
        w.write_all(answer(&v).as_bytes()).unwrap();
    }
}

/// A TCP listener at `addr`, made in namespace `ns` (a socket stays in the namespace it was made
/// in, whichever thread uses it later): listening on return, so clients can connect at once.
pub fn listen(ns: &str, addr: SocketAddr) -> std::net::TcpListener {
    in_ns(ns, move || std::net::TcpListener::bind(addr))
        .join()
        .unwrap()
        .unwrap_or_else(|e| panic!("listen on {addr} in {ns}: {e}"))
}

/// Moves the calling thread into network namespace `ns`; sockets it creates afterwards live there.
pub fn enter(ns: &str) {
    let f = std::fs::File::open(format!("/var/run/netns/{ns}")).expect("netns file");
    // SAFETY: valid fd; setns affects only this thread.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {ns}: {}", std::io::Error::last_os_error());
}

pub fn in_ns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> thread::JoinHandle<T> {
    let ns = ns.to_string();
    thread::spawn(move || {
        enter(&ns);
        f()
    })
}

/// GET over HTTP/1.0 from inside namespace `ns`.
pub fn http_get(ns: &str, port: u16, path: &str) -> String {
    let path = path.to_string();
    in_ns(ns, move || {
        let mut s =
            TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), IO_TIMEOUT)?;
        s.set_read_timeout(Some(IO_TIMEOUT))?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok::<_, std::io::Error>(
            out.split_once("\r\n\r\n")
                .map(|x| x.1.to_string())
                .unwrap_or_default(),
        )
    })
    .join()
    .unwrap()
    .unwrap_or_default()
}

/// Metric samples by name and label set.
pub fn samples(text: &str) -> BTreeMap<(String, BTreeMap<String, String>), f64> {
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let labels = labels
            .split("\",")
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_string(), v.trim_matches('"').to_string())
            })
            .collect();
        out.insert((name.to_string(), labels), value.parse().unwrap());
    }
    out
}

/// The key of `name{labels}` in `samples`' map.
fn sample_key(name: &str, labels: &[(&str, &str)]) -> (String, BTreeMap<String, String>) {
    (
        name.to_string(),
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// The sum of every `name` sample of `range`, whatever its other labels.
pub fn range_sum(s: &Samples, name: &str, range: &str) -> f64 {
    s.iter()
        .filter(|((n, l), _)| n == name && l.get("range").map(String::as_str) == Some(range))
        .map(|(_, v)| v)
        .sum()
}

pub fn get(s: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    *s.get(&sample_key(name, labels))
        .unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
}

/// A self-signed ECDSA certificate and its key for `subject` (e.g. `/CN=pool.example`), written to
/// `cert` and `key`, with `extra` arguments for `openssl req` (e.g. a subjectAltName).
pub fn self_signed(cert: &Path, key: &Path, subject: &str, extra: &[&str]) {
    let mut args = vec![
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        subject,
        "-keyout",
        key.to_str().expect("UTF-8 path"),
        "-out",
        cert.to_str().expect("UTF-8 path"),
    ];
    args.extend_from_slice(extra);
    sh(&args);
}

pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A server started by `c`, its stderr to `log`, once it printed its `ready` line (it listens);
/// `what` names it in the panic when it cannot start.
pub fn spawn_ready(mut c: Command, log: &Path, what: &str) -> Proc {
    let mut server = Proc(
        c.stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: {e}")),
    );
    let mut out = server.0.stdout.take().unwrap();
    let mut ready = [0u8; 6];
    std::io::Read::read_exact(&mut out, &mut ready)
        .unwrap_or_else(|e| panic!("{what}'s ready line: {e} (its log: {})", log.display()));
    assert_eq!(&ready, b"ready\n", "{what}");
    server
}

/// tcpdump on `dev` in `ns`, writing `file`; running (its file begun) on return.
pub fn start_capture(ns: &str, dev: &str, file: &Path) -> Proc {
    let child = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "tcpdump",
            "-i",
            dev,
            "-n",
            "-U",
            "--immediate-mode",
            "-w",
        ])
        .arg(file)
        .stderr(Stdio::null())
        .spawn()
        .expect("tcpdump (cargo xtask setup installs it)");
    let started = Instant::now();
    while std::fs::metadata(file).map_or(0, |m| m.len()) < 24 {
        assert!(started.elapsed() < IO_TIMEOUT, "tcpdump did not start");
        thread::sleep(Duration::from_millis(20));
    }
    Proc(child)
}

/// Stops tcpdump with SIGINT (it writes each packet as it comes, so nothing is held back).
pub fn stop_capture(mut dump: Proc) {
    sh(&["kill", "-INT", &dump.0.id().to_string()]);
    let started = Instant::now();
    while dump.0.try_wait().unwrap().is_none() {
        assert!(started.elapsed() < IO_TIMEOUT, "tcpdump did not stop");
        thread::sleep(Duration::from_millis(20));
    }
}

/// Starts `mining-sensor run --config CONFIG ARGS...` inside namespace `ns`, its log (at
/// `log_level`, `MINING_SENSOR_LOG`) in `log`; killed when the returned guard drops.
pub fn spawn_sensor(ns: &str, config: &Path, args: &[&str], log: &Path, log_level: &str) -> Proc {
    let child = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            env!("CARGO_BIN_EXE_mining-sensor"),
            "run",
            "--config",
        ])
        .arg(config)
        .args(args)
        .env("MINING_SENSOR_LOG", log_level)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("sensor log file"))
        .spawn()
        .expect("ip netns exec mining-sensor");
    Proc(child)
}

/// Waits, at most 30 s, until the sensor in `ns` shows `line` on `/metrics` (its XDP program
/// attached to an interface, say); fails with the sensor's log when it exits first or the time
/// passes.
#[allow(dead_code)]
/// The sensor in the line's vantage namespace, attached in native mode to `ifaces` (the
/// interface towards the miner, then towards the pool), serving metrics on 127.0.0.1:`port`;
/// returns once the second interface's attachment is exported (the first's came before it).
pub fn sensor_on_line(
    line: &Line,
    ifaces: [&str; 2],
    port: u16,
    config: &Path,
    log: &Path,
) -> Proc {
    let listen = format!("127.0.0.1:{port}");
    let mut sensor = spawn_sensor(
        &line.vantage,
        config,
        &[
            "--iface",
            ifaces[0],
            "--iface",
            ifaces[1],
            "--listen",
            &listen,
            "--xdp-mode",
            "native",
        ],
        log,
        "info",
    );
    wait_exported(
        &line.vantage,
        port,
        &mut sensor,
        log,
        &format!(
            "mining_sensor_xdp_attached{{iface=\"{}\",mode=\"native\"}} 1",
            ifaces[1]
        ),
    );
    sensor
}

/// A capability set of process `pid` (`set`: "CapEff", "CapPrm", "CapBnd"), as a bit mask, and
/// the process's status text (for messages).
pub fn capabilities(pid: u32, set: &str) -> (u64, String) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix(set)?.strip_prefix(':'))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap_or_else(|| panic!("no {set} in {status}"));
    (mask, status)
}

/// Scrapes `/metrics` every 10 ms until it shows `line` (at most 30 s, or until the sensor exits):
/// the text of that scrape, which tests read other samples of as they were at that moment.
pub fn wait_exported(ns: &str, port: u16, sensor: &mut Proc, log: &Path, line: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = http_get(ns, port, "/metrics");
        if text.contains(line) {
            return text;
        }
        let log = || std::fs::read_to_string(log).unwrap_or_default();
        assert!(
            Instant::now() < deadline,
            "sensor did not show {line:?}: {}",
            log()
        );
        assert!(
            sensor.0.try_wait().unwrap().is_none(),
            "sensor exited: {}",
            log()
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// The Python of the virtual environment `cargo xtask setup` makes with `websockets` (the TLS
/// corpus's peers and the WebSocket test's endpoints).
#[allow(dead_code)]
pub fn corpus_python() -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the sensor crate is in the workspace")
        .join(test_support::tools::TLS_CORPUS_VENV)
        .join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: `cargo xtask setup` installs websockets {} there",
        python.display(),
        test_support::tools::WEBSOCKETS_VERSION
    );
    python
}

pub type Samples = BTreeMap<(String, BTreeMap<String, String>), f64>;

/// Scrapes `/metrics` in `ns` until `name{labels}` equals `want` or `timeout` passes; returns the
/// last value seen (so the caller's assertion shows it).
pub fn wait_for(
    ns: &str,
    port: u16,
    name: &str,
    labels: &[(&str, &str)],
    want: f64,
    timeout: Duration,
) -> f64 {
    let deadline = Instant::now() + timeout;
    loop {
        let s = samples(&http_get(ns, port, "/metrics"));
        let v = s
            .get(&sample_key(name, labels))
            .copied()
            .unwrap_or(f64::NAN);
        if v == want || Instant::now() > deadline {
            return v;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Sends `frames` as they are (Ethernet header and any VLAN tags in the bytes) out of `dev` in
/// namespace `ns`, through an AF_PACKET socket, `pause` after each.
pub fn send_frames(ns: &str, dev: &str, frames: Vec<Vec<u8>>, pause: Duration) {
    let dev = format!("{dev}\0");
    in_ns(ns, move || {
        // SAFETY: plain socket calls with valid arguments and buffers.
        unsafe {
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
            assert!(fd >= 0, "{}", std::io::Error::last_os_error());
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_ifindex = libc::if_nametoindex(dev.as_ptr().cast()) as i32;
            sll.sll_halen = 6;
            for f in &frames {
                sll.sll_addr[..6].copy_from_slice(&f[..6]);
                let n = libc::sendto(
                    fd,
                    f.as_ptr().cast(),
                    f.len(),
                    0,
                    (&sll as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                );
                assert_eq!(n, f.len() as isize, "{}", std::io::Error::last_os_error());
                if !pause.is_zero() {
                    thread::sleep(pause);
                }
            }
            libc::close(fd);
        }
    })
    .join()
    .unwrap();
}

// Replay of captures built by a test.

/// The sum of `metric` over the samples (a replay report's `totals` or a bucket's `samples`)
/// whose labels include `labels`.
pub fn sample_sum(samples: &serde_json::Value, metric: &str, labels: &[(&str, &str)]) -> u64 {
    samples
        .as_array()
        .expect("samples")
        .iter()
        .filter(|s| s["metric"] == metric && labels.iter().all(|(k, v)| s["labels"][*k] == *v))
        .map(|s| s["value"].as_u64().unwrap())
        .sum()
}

/// Writes `packets` (capture time, frame) as a pcap file.
pub fn write_pcap(path: &Path, link: pcap_file::DataLink, packets: &[(Duration, Vec<u8>)]) {
    let f = std::fs::File::create(path).unwrap();
    test_support::write_pcap(f, link, packets.iter().map(|(t, d)| (*t, d))).unwrap();
}

/// A fresh directory for one test's files.
pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ms-replay-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `mining-sensor replay --json` with `args` over `files`: its output and its JSON report.
pub fn replay(args: &[&str], files: &[&Path]) -> (std::process::Output, serde_json::Value) {
    // One directory per call: the tests run in parallel, and a shared one let one test read
    // (or delete) another's report.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = tmp(&format!("out-{n}"));
    let json = dir.join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_mining-sensor"))
        .arg("replay")
        .arg("--json")
        .arg(&json)
        .args(args)
        .args(files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    (out, v)
}

// A real Prometheus (Debian's `prometheus`, installed by `cargo xtask setup`).

/// Starts `prometheus` inside namespace `ns` with `config`, its data and log in `dir`, listening
/// on `listen`, with `extra` flags; killed when the returned guard drops.
pub fn spawn_prometheus(ns: &str, config: &Path, dir: &Path, listen: &str, extra: &[&str]) -> Proc {
    let child = Command::new("ip")
        .args(["netns", "exec", ns, "prometheus"])
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address={listen}"))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("prometheus.log")).expect("prometheus log file"))
        .spawn()
        .expect("prometheus (cargo xtask setup installs it)");
    Proc(child)
}

/// The PromQL `query` asked of the Prometheus on `port` in `ns` (instant query, at `time` in Unix
/// seconds if given): the `data.result` array of its answer, empty if there was no answer.
pub fn prom_query(ns: &str, port: u16, query: &str, time: Option<f64>) -> Vec<serde_json::Value> {
    // Everything but unreserved characters percent-encoded (RFC 3986, section 2.3).
    let encoded: String = query
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let at = time.map(|t| format!("&time={t:.3}")).unwrap_or_default();
    let body = http_get(ns, port, &format!("/api/v1/query?query={encoded}{at}"));
    serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["data"]["result"].as_array().cloned())
        .unwrap_or_default()
}

/// A TCP session between a miner and a pool as the segments each sends, each side's sequence
/// numbers running on (the miner's from 1,000, the pool's from 5,000): what the replay and
/// evasive tests write as captures.
pub struct Wire {
    pub miner: std::net::Ipv4Addr,
    pub pool: std::net::Ipv4Addr,
    /// The miner's port.
    pub port: u16,
    pub pool_port: u16,
    pub seq: [u32; 2],
    pub packets: Vec<test_support::Packet>,
}

impl Wire {
    pub fn new(
        miner: std::net::Ipv4Addr,
        pool: std::net::Ipv4Addr,
        port: u16,
        pool_port: u16,
    ) -> Self {
        Self {
            miner,
            pool,
            port,
            pool_port,
            seq: [1000, 5000],
            packets: Vec::new(),
        }
    }

    /// `seg` from the miner (`true`) or the pool, at its side's next sequence number.
    pub fn send(&mut self, from_miner: bool, seg: &[u8]) {
        let (side, pkt) = if from_miner {
            (
                0,
                test_support::Packet::tcp4(self.miner, self.pool, self.port, self.pool_port, seg),
            )
        } else {
            (
                1,
                test_support::Packet::tcp4(self.pool, self.miner, self.pool_port, self.port, seg),
            )
        };
        self.packets.push(pkt.tcp_seq(self.seq[side]));
        self.seq[side] += seg.len() as u32;
    }
}
