//! A fleet (issue 22, deploy/README.md "Fleet"): two sensor hosts, each with its own Prometheus
//! that scrapes its sensor, evaluates the shipped rules and remote-writes to one central
//! Prometheus started as a receiver (`--web.enable-remote-write-receiver`); each host's Prometheus
//! runs the configuration shipped in `deploy/prometheus/fleet-host.yml`:
//!
//! ```text
//!  host edge-a:  miner fl-a-m    vantage fl-a-v (sensor on flav0, flav1; local Prometheus)    pool fl-a-p
//!                flam0 198.18.1.2 <-> flav0 198.18.1.1  [fwd]  flav1 198.19.1.1 <-> flap0 198.19.1.2
//!                                     flavc 198.19.101.1 <-> flca 198.19.101.2 ---+
//!                                                                                 central fl-c
//!                                     flbvc 198.19.102.1 <-> flcb 198.19.102.2 ---+ (receiver)
//!  host edge-b:  flbm0 198.18.2.2 <-> flbv0 198.18.2.1  [fwd]  flbv1 198.19.2.1 <-> flbp0 198.19.2.2
//! ```
//!
//! (Namespace names end in the test's process id.) A scripted Monero miner logs in to a scripted pool through each host and submits a known number
//! of shares at a known target; the central Prometheus must then hold each host's share hashes
//! under its own `sensor` label (from the host's `external_labels`), their fleet-wide sum, and the
//! hash rate that deploy/README's fleet expression and the shipped recording rule give.
//!
//! Needs root, iproute2 and Debian's `prometheus` (`cargo xtask setup` installs them). Addresses
//! are from 198.18.0.0/15 only; every wait is bounded, every process killed at the end.

mod common;

use common::{
    IO_TIMEOUT, Namespaces, Proc, accept, http_get, in_ns, listen, prom_query, sh,
    spawn_prometheus, spawn_sensor, veth,
};

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::Path,
    thread,
    time::{Duration, Instant},
};

const SENSOR_PORT: u16 = 19820;
const LOCAL_PROM_PORT: u16 = 19090;
const CENTRAL_PORT: u16 = 19091;
/// The range both sensors watch (their miners' side), so the fleet sums one range over two hosts.
const RANGE: &str = "miners";
/// How long a miner's session may stay open: it waits, between login and shares, for the hash
/// counter's zero to reach the central Prometheus (bounded by `WAIT`).
const SESSION_TIMEOUT: Duration = Duration::from_secs(90);
/// The longest any one wait on a Prometheus may take. Samples reach the central one within a
/// scrape (1 s) and a remote-write batch (at most 5 s, `batch_send_deadline`'s default).
const WAIT: Duration = Duration::from_secs(40);
/// Samples of each host's hash counter, all at 0, before its first share: every later rate()
/// then extrapolates by at most 1.1 / (12 - 1) = 10% (see `rate_bounds`).
const ZERO_SAMPLES: u64 = 11;

const WALLET: &str = "48edfHu7V9Z84YzzMa6fUueoELZ9ZRXq9VetWzYGzKt52XU5xvqgzYnDK9URnRoJMk1j8nLwEVsaSWJ4fhdUyZijBGUicoD";

/// One sensor host: its namespaces, addresses, and the work its miner does.
struct Host {
    /// The `sensor` label (`external_labels` of its Prometheus).
    sensor: &'static str,
    /// `a` or `b`: in namespace and interface names.
    letter: char,
    /// Third octet of the miner's (198.18.x.0/24) and pool's (198.19.x.0/24) subnets.
    net: u8,
    /// The pool's Monero target (hex, little endian) and the hashes it makes a share, by hand.
    target: &'static str,
    hashes_per_share: f64,
    shares: u32,
}

const HOSTS: [Host; 2] = [
    // b88d0600: t = 0x00068db8 = 429,496 (4 bytes); (2^32-1) / 429,496 = 10,000 (remainder
    // 7,295); T = (2^64-1) / 10,000 = 1,844,674,407,370,955; (2^64-1) / T = 10,000 hashes a
    // share. 3 shares: 30,000 hashes.
    Host {
        sensor: "edge-a",
        letter: 'a',
        net: 1,
        target: "b88d0600",
        hashes_per_share: 10_000.0,
        shares: 3,
    },
    // 1e6d1cb1169f0200 (8 bytes): T = 0x00029f16b11c6d1e = 737,869,762,948,382 =
    // floor((2^64-1) / 25,000); T x 25,000 = 18,446,744,073,709,550,000 <= 2^64-1 and
    // T x 25,001 is over it, so (2^64-1) / T = 25,000 hashes a share. 4 shares: 100,000 hashes.
    Host {
        sensor: "edge-b",
        letter: 'b',
        net: 2,
        target: "1e6d1cb1169f0200",
        hashes_per_share: 25_000.0,
        shares: 4,
    },
];

impl Host {
    fn hashes(&self) -> f64 {
        f64::from(self.shares) * self.hashes_per_share
    }
    fn ns(&self, role: &str) -> String {
        format!("fl-{}-{role}-{}", self.letter, std::process::id())
    }
    fn dev(&self, name: &str) -> String {
        format!("fl{}{name}", self.letter)
    }
    fn pool(&self) -> SocketAddr {
        format!("198.19.{}.2:3333", self.net).parse().unwrap()
    }
    /// The central Prometheus' address on this host's link to it.
    fn central(&self) -> String {
        format!("198.19.{}.2", 100 + self.net)
    }
}

fn central_ns() -> String {
    format!("fl-c-{}", std::process::id())
}

/// The seven namespaces and their links; deleted on drop.
fn topology() -> Namespaces {
    let central = central_ns();
    let mut names = vec![central.clone()];
    for h in &HOSTS {
        names.extend(["m", "v", "p"].map(|r| h.ns(r)));
    }
    let guard = Namespaces::new(&names.iter().map(String::as_str).collect::<Vec<_>>());
    for h in &HOSTS {
        let (m, v, p) = (h.ns("m"), h.ns("v"), h.ns("p"));
        let n = h.net;
        veth(
            (&m, &h.dev("m0"), &format!("198.18.{n}.2/24")),
            (&v, &h.dev("v0"), &format!("198.18.{n}.1/24")),
        );
        veth(
            (&v, &h.dev("v1"), &format!("198.19.{n}.1/24")),
            (&p, &h.dev("p0"), &format!("198.19.{n}.2/24")),
        );
        veth(
            (&v, &h.dev("vc"), &format!("198.19.{}.1/24", 100 + n)),
            (
                &central,
                &format!("flc{}", h.letter),
                &format!("{}/24", h.central()),
            ),
        );
        let via_m = format!("198.18.{n}.1");
        let via_p = format!("198.19.{n}.1");
        sh(&["ip", "-n", &m, "route", "add", "default", "via", &via_m]);
        sh(&["ip", "-n", &p, "route", "add", "default", "via", &via_p]);
        sh(&[
            "ip",
            "netns",
            "exec",
            &v,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ]);
    }
    guard
}

/// The pool of one host: one connection, a login answered with `target` (job 1), every submit
/// answered OK. Returns the submits it answered.
fn pool(l: TcpListener, target: &'static str) -> impl FnOnce() -> u32 + Send {
    move || {
        let s = accept(&l);
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(SESSION_TIMEOUT)).unwrap();
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        let mut answered = 0;
        for _ in 0..16 {
            let mut line = String::new();
            if r.read_line(&mut line).expect("pool: read a line") == 0 {
                break;
            }
            let v: serde_json::Value = serde_json::from_str(&line).expect("miner JSON");
            let id = &v["id"];
            let reply = match v["method"].as_str() {
                Some("login") => format!(
                    "{{\"id\":{id},\"jsonrpc\":\"2.0\",\"error\":null,\"result\":{{\"id\":\"f1\",\"job\":{{\"blob\":\"0707\",\"job_id\":\"1\",\"target\":\"{target}\",\"algo\":\"rx/0\"}},\"status\":\"OK\"}}}}\n"
                ),
                Some("submit") => {
                    answered += 1;
                    format!(
                        "{{\"id\":{id},\"jsonrpc\":\"2.0\",\"error\":null,\"result\":{{\"status\":\"OK\"}}}}\n"
                    )
                }
                other => panic!("pool: unexpected method {other:?}"),
            };
            w.write_all(reply.as_bytes()).unwrap();
        }
        answered
    }
}

/// An XMRig-style miner's connection: one request, one answer.
struct Miner {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Miner {
    fn connect(ns: &str, pool: SocketAddr) -> Self {
        let s = in_ns(ns, move || TcpStream::connect_timeout(&pool, IO_TIMEOUT))
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("connect to {pool}: {e}"));
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(SESSION_TIMEOUT)).unwrap();
        Self {
            w: s.try_clone().unwrap(),
            r: BufReader::new(s),
        }
    }
    fn ask(&mut self, msg: String) -> String {
        self.w.write_all(msg.as_bytes()).unwrap();
        let mut line = String::new();
        self.r.read_line(&mut line).expect("miner: read a line");
        line
    }
}

/// `f` until it gives a value, at most `WAIT`; `what` and `diag()` in the failure.
fn wait<T>(what: &str, diag: impl Fn() -> String, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: {}", diag());
        thread::sleep(Duration::from_millis(250));
    }
}

/// The central Prometheus' answer to `query` (at `time`) as sensor label -> value.
fn by_sensor(query: &str, time: Option<f64>) -> BTreeMap<String, f64> {
    prom_query(&central_ns(), CENTRAL_PORT, query, time)
        .iter()
        .map(|r| {
            (
                r["metric"]["sensor"].as_str().unwrap_or("").to_string(),
                r["value"][1].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

/// The hand-derived value per host of `f`, keyed by sensor label.
fn expected(f: impl Fn(&Host) -> f64) -> BTreeMap<String, f64> {
    HOSTS.iter().map(|h| (h.sensor.to_string(), f(h))).collect()
}

fn logs(dir: &Path) -> String {
    let mut out = String::new();
    for f in [
        "central/prometheus.log",
        "edge-a/prometheus.log",
        "edge-b/prometheus.log",
        "edge-a/sensor.log",
        "edge-b/sensor.log",
    ] {
        let text = std::fs::read_to_string(dir.join(f)).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        out += &format!("\n--- {f} (last lines, newest first)\n{}", tail.join("\n"));
    }
    out
}

/// Bounds of `rate(c[1h])` over a counter that started at 0 within the window, never reset, and
/// whose `hashes` all came before the evaluation time: Prometheus extrapolates the increase seen
/// between the first and last sample (S seconds apart, n samples) to the window's ends. Not at the
/// start, where a counter whose first sample is 0 has nothing before it (its "duration to zero" is
/// 0), and at the end by at most 1.1 average sample intervals, 1.1 x S / (n - 1). So
/// hashes / 3600 <= rate <= hashes / 3600 x (1 + 1.1 / (n - 1)); with n >= 12 (`ZERO_SAMPLES`
/// zeros and the shares' samples) the upper bound is 1.1 x hashes / 3600. The lower bound is
/// reached when the evaluation time is the last sample's.
fn rate_bounds(hashes: f64) -> (f64, f64) {
    let n = (ZERO_SAMPLES + 1) as f64;
    (hashes / 3600.0, hashes / 3600.0 * (1.0 + 1.1 / (n - 1.0)))
}

/// The host Prometheus configuration shipped in deploy/ (`fleet-host.yml`), as an operator adapts
/// it for host `h`: its sensor label, the central receiver's address, and here also the test's
/// ports, 1 s intervals and the rules' absolute path. Each value must be in the file exactly once,
/// so a change there fails here instead of going unused.
fn host_config(h: &Host) -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/prometheus");
    let mut text = std::fs::read_to_string(format!("{dir}/fleet-host.yml")).unwrap();
    for (from, to) in [
        ("sensor: edge-1", format!("sensor: {}", h.sensor)),
        (
            "http://central.example.net:9090/api/v1/write",
            format!("http://{}:{CENTRAL_PORT}/api/v1/write", h.central()),
        ),
        ("127.0.0.1:9820", format!("127.0.0.1:{SENSOR_PORT}")),
        ("scrape_interval: 15s", "scrape_interval: 1s".into()),
        ("evaluation_interval: 15s", "evaluation_interval: 1s".into()),
        // The rules shipped in deploy/, as operators load them (a relative path is taken from the
        // configuration file's directory).
        (
            "- mining-sensor.rules.yml",
            format!("- {dir}/mining-sensor.rules.yml"),
        ),
    ] {
        assert_eq!(text.matches(from).count(), 1, "{from:?} in fleet-host.yml");
        text = text.replace(from, &to);
    }
    text
}

#[test]
fn a_fleet_remote_writes_to_a_central_prometheus() {
    let started = Instant::now();
    let _namespaces = topology();
    let dir = std::env::temp_dir().join(format!("fl-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let diag = || logs(&dir);
    let central = central_ns();

    // The central Prometheus: scrapes nothing, receives remote writes.
    let central_dir = dir.join("central");
    std::fs::create_dir_all(&central_dir).unwrap();
    std::fs::write(
        central_dir.join("prometheus.yml"),
        "global:\n  evaluation_interval: 1s\n",
    )
    .unwrap();
    let _central_prom = spawn_prometheus(
        &central,
        &central_dir.join("prometheus.yml"),
        &central_dir,
        &format!("0.0.0.0:{CENTRAL_PORT}"),
        &["--web.enable-remote-write-receiver"],
    );

    // Each host: its sensor on both vantage links, its Prometheus from deploy/'s fleet-host.yml
    // (external `sensor` label, the shipped rules, remote_write with its filter).
    let mut procs: Vec<Proc> = Vec::new();
    for h in &HOSTS {
        let hd = dir.join(h.sensor);
        std::fs::create_dir_all(&hd).unwrap();
        let config = hd.join("sensor.toml");
        std::fs::write(
            &config,
            format!(
                "drain_interval = \"200ms\"\n[events]\nsink = \"none\"\n[[ranges]]\nname = \"{RANGE}\"\ncidrs = [\"198.18.0.0/16\"]\n"
            ),
        )
        .unwrap();
        let (v0, v1) = (h.dev("v0"), h.dev("v1"));
        let listen_at = format!("127.0.0.1:{SENSOR_PORT}");
        let mut sensor = spawn_sensor(
            &h.ns("v"),
            &config,
            &[
                "--iface",
                &v0,
                "--iface",
                &v1,
                "--listen",
                &listen_at,
                "--xdp-mode",
                "native",
            ],
            &hd.join("sensor.log"),
            "info",
        );
        let attached = format!("mining_sensor_xdp_attached{{iface=\"{v1}\",mode=\"native\"}} 1");
        wait(&format!("{} attached", h.sensor), diag, || {
            assert!(
                sensor.0.try_wait().unwrap().is_none(),
                "{} exited: {}",
                h.sensor,
                diag()
            );
            http_get(&h.ns("v"), SENSOR_PORT, "/metrics")
                .contains(&attached)
                .then_some(())
        });
        procs.push(sensor);

        let prom_cfg = hd.join("prometheus.yml");
        std::fs::write(&prom_cfg, host_config(h)).unwrap();
        procs.push(spawn_prometheus(
            &h.ns("v"),
            &prom_cfg,
            &hd,
            &format!("127.0.0.1:{LOCAL_PROM_PORT}"),
            &[],
        ));
    }

    // Both hosts' scrapes arrive centrally, each under its own sensor label.
    let up = expected(|_| 1.0);
    wait("both hosts' up on the central Prometheus", diag, || {
        (by_sensor("up{job=\"mining-sensor\"}", None) == up).then_some(())
    });

    // Each miner logs in; the login reply's target sets its flow's difficulty, and the sensor
    // creates the host's hash counter at 0.
    let mut sessions = Vec::new();
    for h in &HOSTS {
        let l = listen(&h.ns("p"), h.pool());
        let pool_thread = thread::spawn(pool(l, h.target));
        let mut miner = Miner::connect(&h.ns("m"), h.pool());
        let reply = miner.ask(format!(
            "{{\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"login\",\"params\":{{\"login\":\"{WALLET}\",\"pass\":\"x\",\"agent\":\"XMRig/6.21.0 (Linux x86_64) libuv/1.44.2 gcc/12.2.0\",\"algo\":[\"rx/0\"]}}}}\n"
        ));
        assert!(reply.contains(h.target), "{reply}");
        sessions.push((miner, pool_thread));
    }
    let hashes = format!("mining_sensor_share_hashes_total{{range=\"{RANGE}\",coin=\"monero\"}}");
    // ZERO_SAMPLES samples at 0 of each host's counter have arrived before any share.
    wait("each host's hash counter at 0, centrally", diag, || {
        let n = by_sensor(&format!("count_over_time({hashes}[1h])"), None);
        let max = by_sensor(&format!("max_over_time({hashes}[1h])"), None);
        (max == expected(|_| 0.0) && n.values().all(|&c| c >= ZERO_SAMPLES as f64) && n.len() == 2)
            .then_some(())
    });

    // The shares: each answered OK before the next is sent.
    for (h, (miner, _)) in HOSTS.iter().zip(&mut sessions) {
        for n in 0..h.shares {
            let ok = miner.ask(format!(
                "{{\"id\":{},\"jsonrpc\":\"2.0\",\"method\":\"submit\",\"params\":{{\"id\":\"f1\",\"job_id\":\"1\",\"nonce\":\"0{n}000000\",\"result\":\"f1e2d3c4b5a6978800112233445566778899aabbccddeeff0011223344556677\",\"algo\":\"rx/0\"}}}}\n",
                n + 2
            ));
            assert!(ok.contains("OK"), "{ok}");
        }
    }
    for (h, (miner, pool_thread)) in HOSTS.iter().zip(sessions) {
        drop(miner);
        assert_eq!(pool_thread.join().unwrap(), h.shares, "{}", h.sensor);
    }

    // Centrally: each host's share hashes and accepted shares under its own sensor label, exact.
    let want_hashes = expected(Host::hashes);
    let want_shares = expected(|h| f64::from(h.shares));
    let accepted = format!(
        "sum by (sensor) (mining_sensor_shares_total{{range=\"{RANGE}\",coin=\"monero\",result=\"accepted\"}})"
    );
    wait("the hosts' shares on the central Prometheus", diag, || {
        (by_sensor(&format!("sum by (sensor) ({hashes})"), None) == want_hashes
            && by_sensor(&accepted, None) == want_shares)
            .then_some(())
    });
    // 30,000 + 100,000 = 130,000 hashes fleet-wide.
    let total: f64 = 130_000.0;
    assert_eq!(
        by_sensor(&format!("sum({hashes})"), None),
        BTreeMap::from([(String::new(), total)])
    );
    // One series a host, and every series on the central store carries one of the two sensor
    // labels (it scrapes nothing itself: all it holds came by remote write).
    assert_eq!(prom_query(&central, CENTRAL_PORT, &hashes, None).len(), 2);
    let sensors: Vec<String> = by_sensor("count by (sensor) ({__name__=~\".+\"})", None)
        .into_keys()
        .collect();
    assert_eq!(sensors, ["edge-a", "edge-b"]);
    // The remote_write filter keeps only the sensor's series, the rules' and up: a scrape's own
    // series (scrape_duration_seconds) and ALERTS stay on the host.
    for name in ["scrape_duration_seconds", "ALERTS"] {
        assert!(
            prom_query(&central, CENTRAL_PORT, &format!("count({name})"), None).is_empty(),
            "{name} reached the central Prometheus"
        );
    }

    // The per-host hash rate deploy/README gives, evaluated at the time of the host's last sample:
    // the counter's first sample is 0 and its last is at the evaluation time, so nothing is
    // extrapolated and the rate is exactly hashes / 3600: 30,000 / 3600 = 8.333 H/s and
    // 100,000 / 3600 = 27.778 H/s.
    let per_host = "sum by (sensor, range, coin) (rate(mining_sensor_share_hashes_total[1h]))";
    for h in &HOSTS {
        let last = by_sensor(
            &format!(
                "timestamp(mining_sensor_share_hashes_total{{sensor=\"{}\"}})",
                h.sensor
            ),
            None,
        )[h.sensor];
        let rate = by_sensor(per_host, Some(last))[h.sensor];
        let want = h.hashes() / 3600.0;
        assert!(
            (rate - want).abs() <= want * 1e-12,
            "{}: rate {rate} at {last}, want {want}",
            h.sensor
        );
    }

    // The fleet-wide hash rate deploy/README gives, now: within rate_bounds of 130,000 / 3600 =
    // 36.111 H/s (each host's part within its own bounds, so the sum within the sum's).
    let fleet = prom_query(
        &central,
        CENTRAL_PORT,
        "sum by (range, coin) (rate(mining_sensor_share_hashes_total[1h]))",
        None,
    );
    assert_eq!(fleet.len(), 1, "{fleet:?}");
    assert_eq!(fleet[0]["metric"]["range"], RANGE);
    assert_eq!(fleet[0]["metric"]["coin"], "monero");
    let rate: f64 = fleet[0]["value"][1].as_str().unwrap().parse().unwrap();
    eprintln!("fleet-wide hash rate: {rate} H/s");
    let (low, high) = rate_bounds(total);
    assert!(
        low * (1.0 - 1e-12) <= rate && rate <= high,
        "fleet rate {rate} outside [{low}, {high}]"
    );

    // The shipped recording rule, evaluated on each host and remote-written with its sensor label:
    // once an evaluation after the last share has arrived, each host's value is within its bounds.
    let recorded = format!(
        "range_coin:mining_sensor_share_hashes:rate1h{{range=\"{RANGE}\",coin=\"monero\"}}"
    );
    let got = wait("the hosts' recorded hash rates", diag, || {
        let got = by_sensor(&recorded, None);
        (got.len() == 2
            && HOSTS
                .iter()
                .all(|h| got[h.sensor] >= rate_bounds(h.hashes()).0 * (1.0 - 1e-12)))
        .then_some(got)
    });
    for h in &HOSTS {
        let (low, high) = rate_bounds(h.hashes());
        let v = got[h.sensor];
        eprintln!("{}: recorded hash rate {v} H/s", h.sensor);
        assert!(
            v <= high,
            "{}: recorded rate {v} outside [{low}, {high}]",
            h.sensor
        );
    }

    drop(procs);
    eprintln!("fleet test took {:?}", started.elapsed());
    let _ = std::fs::remove_dir_all(&dir);
}
