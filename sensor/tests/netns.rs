//! The live path end to end, in network namespaces this test creates:
//!
//! ```text
//!  miner ns                 vantage ns (mining-sensor, XDP native on v0 and v1)        pool ns
//!  m0 198.18.0.2/24  <--->  v0 198.18.0.1/24   [forwarding]   v1 198.51.100.1/24  <--->  p0 198.51.100.2/24
//!     2001:db8:1::2/64         2001:db8:1::1/64                  2001:db8:2::1/64          2001:db8:2::2/64
//! ```
//!
//! A Stratum pool (Monero and Bitcoin styles) and clients written for the harness from the
//! protocol facts talk across the vantage namespace, next to benign traffic. Expected packet and
//! byte counts come from an independent observer: AF_PACKET sockets on the miner's and pool's
//! links record every IP packet they send towards the vantage namespace. A real Prometheus in the
//! vantage namespace scrapes the sensor, and a PromQL query over its HTTP API must see the flow.
//!
//! Needs root, iproute2 and Debian's `prometheus` (`cargo xtask setup` installs them). Addresses
//! are from 198.18.0.0/15, 198.51.100.0/24 and 2001:db8::/32 only; every loop is bounded.

mod common;

use common::{
    IO_TIMEOUT, Namespaces, Proc, get, http_get, in_ns, output, read_line, samples, sh,
    spawn_sensor, wait_for,
};
use test_support::dns_query;

use std::{
    io::{BufReader, Read, Write},
    net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket},
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

const POOL_V4: &str = "198.51.100.2";
const POOL_V6: &str = "2001:db8:2::2";
const SENSOR_PORT: u16 = 19820;
const PROM_PORT: u16 = 19090;

/// The three namespaces; deleted (with everything in them) on drop.
struct Topology {
    miner: String,
    vantage: String,
    pool: String,
    _namespaces: Namespaces,
}

impl Topology {
    fn new() -> Self {
        let id = std::process::id();
        let (miner, vantage, pool) = (
            format!("msh-miner-{id}"),
            format!("msh-vantage-{id}"),
            format!("msh-pool-{id}"),
        );
        let t = Self {
            _namespaces: Namespaces::new(&[&miner, &vantage, &pool]),
            miner,
            vantage,
            pool,
        };
        let link = |a: &str, ns_a: &str, b: &str, ns_b: &str| {
            sh(&[
                "ip", "link", "add", a, "netns", ns_a, "type", "veth", "peer", "name", b, "netns",
                ns_b,
            ]);
        };
        link("m0", &t.miner, "v0", &t.vantage);
        link("v1", &t.vantage, "p0", &t.pool);
        let addr = |ns: &str, dev: &str, a: &str| {
            let mut args = vec!["ip", "-n", ns, "addr", "add", a, "dev", dev];
            if a.contains(':') {
                // No duplicate address detection: the address is usable at once.
                args.push("nodad");
            }
            sh(&args);
        };
        addr(&t.miner, "m0", "198.18.0.2/24");
        addr(&t.miner, "m0", "2001:db8:1::2/64");
        addr(&t.vantage, "v0", "198.18.0.1/24");
        addr(&t.vantage, "v0", "2001:db8:1::1/64");
        addr(&t.vantage, "v1", "198.51.100.1/24");
        addr(&t.vantage, "v1", "2001:db8:2::1/64");
        addr(&t.pool, "p0", "198.51.100.2/24");
        addr(&t.pool, "p0", "2001:db8:2::2/64");
        for (ns, dev) in [
            (&t.miner, "m0"),
            (&t.vantage, "v0"),
            (&t.vantage, "v1"),
            (&t.pool, "p0"),
        ] {
            sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        sh(&[
            "ip",
            "-n",
            &t.miner,
            "route",
            "add",
            "default",
            "via",
            "198.18.0.1",
        ]);
        sh(&[
            "ip",
            "-n",
            &t.miner,
            "-6",
            "route",
            "add",
            "default",
            "via",
            "2001:db8:1::1",
        ]);
        sh(&[
            "ip",
            "-n",
            &t.pool,
            "route",
            "add",
            "default",
            "via",
            "198.51.100.1",
        ]);
        sh(&[
            "ip",
            "-n",
            &t.pool,
            "-6",
            "route",
            "add",
            "default",
            "via",
            "2001:db8:2::1",
        ]);
        sh(&[
            "ip",
            "netns",
            "exec",
            &t.vantage,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ]);
        sh(&[
            "ip",
            "netns",
            "exec",
            &t.vantage,
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.forwarding=1",
        ]);
        t
    }
}

/// What an observer saw leave an interface: IP packets and IP bytes whose source (or destination)
/// is in the watched prefixes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Seen {
    from_packets: u64,
    from_bytes: u64,
    to_packets: u64,
    to_bytes: u64,
}

fn watched(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v) => v.octets()[..3] == [198, 18, 0],
        IpAddr::V6(v) => v.segments()[..4] == [0x2001, 0xdb8, 1, 0],
    }
}

/// Counts, with an AF_PACKET socket, the IP packets `dev` sends until `stop` is set.
fn observe(
    ns: &str,
    dev: &'static str,
    stop: Arc<AtomicBool>,
    ready: Arc<AtomicBool>,
) -> thread::JoinHandle<Seen> {
    in_ns(ns, move || {
        // SAFETY: plain socket calls with valid arguments and buffers.
        unsafe {
            let fd = libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW,
                (libc::ETH_P_ALL as u16).to_be() as i32,
            );
            assert!(fd >= 0);
            let ifindex = libc::if_nametoindex(format!("{dev}\0").as_ptr().cast());
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
            sll.sll_ifindex = ifindex as i32;
            assert_eq!(
                libc::bind(
                    fd,
                    (&sll as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32
                ),
                0
            );
            let size: libc::c_int = 8 << 20;
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&size as *const libc::c_int).cast(),
                4,
            );
            let tv = libc::timeval {
                tv_sec: 0,
                tv_usec: 100_000,
            };
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            );
            ready.store(true, Ordering::SeqCst);
            let mut seen = Seen::default();
            let mut buf = vec![0u8; 65536];
            while !stop.load(Ordering::SeqCst) {
                let mut from: libc::sockaddr_ll = std::mem::zeroed();
                let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
                let n = libc::recvfrom(
                    fd,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                    (&mut from as *mut libc::sockaddr_ll).cast(),
                    &mut len,
                );
                if n <= 0 || from.sll_pkttype != libc::PACKET_OUTGOING {
                    continue;
                }
                let f = &buf[..n as usize];
                let ethertype = u16::from_be_bytes([f[12], f[13]]);
                let (src, dst, ip_len): (IpAddr, IpAddr, u64) = match ethertype {
                    0x0800 => (
                        IpAddr::from([f[26], f[27], f[28], f[29]]),
                        IpAddr::from([f[30], f[31], f[32], f[33]]),
                        u16::from_be_bytes([f[16], f[17]]) as u64,
                    ),
                    0x86dd => (
                        IpAddr::from(<[u8; 16]>::try_from(&f[22..38]).unwrap()),
                        IpAddr::from(<[u8; 16]>::try_from(&f[38..54]).unwrap()),
                        40 + u16::from_be_bytes([f[18], f[19]]) as u64,
                    ),
                    _ => continue,
                };
                if watched(src) {
                    seen.from_packets += 1;
                    seen.from_bytes += ip_len;
                }
                if watched(dst) {
                    seen.to_packets += 1;
                    seen.to_bytes += ip_len;
                }
            }
            libc::close(fd);
            seen
        }
    })
}

/// The harness's pool: answers Monero (XMRig-family) and Bitcoin (Stratum V1) requests line by
/// line, one write per answer, on `listeners` until `conns` connections have closed.
fn pool(listeners: Vec<TcpListener>, conns: usize) -> impl FnOnce() + Send {
    move || {
        let mut handles = Vec::new();
        let mut served = 0;
        let deadline = Instant::now() + Duration::from_secs(30);
        for l in &listeners {
            l.set_nonblocking(true).unwrap();
        }
        while served < conns && Instant::now() < deadline {
            for l in &listeners {
                let Ok((s, _)) = l.accept() else { continue };
                served += 1;
                handles.push(thread::spawn(move || serve_miner(s)));
            }
            thread::sleep(Duration::from_millis(5));
        }
        for h in handles {
            h.join().unwrap();
        }
    }
}

fn serve_miner(s: TcpStream) {
    common::answer_lines(s, 32, |v| {
        let id = &v["id"];
        match v["method"].as_str().unwrap_or("") {
            "login" => format!(
                "{{\"id\":{id},\"jsonrpc\":\"2.0\",\"error\":null,\"result\":{{\"id\":\"5f3a\",\"job\":{{\"blob\":\"0e0ea8c2a8f405\",\"job_id\":\"311\",\"target\":\"f3220000\",\"algo\":\"rx/0\",\"height\":2540000,\"seed_hash\":\"7b4d\"}},\"extensions\":[\"algo\",\"keepalive\"],\"status\":\"OK\"}}}}\n"
            ),
            "submit" => format!(
                "{{\"id\":{id},\"jsonrpc\":\"2.0\",\"error\":null,\"result\":{{\"status\":\"OK\"}}}}\n"
            ),
            "keepalived" => format!(
                "{{\"id\":{id},\"jsonrpc\":\"2.0\",\"error\":null,\"result\":{{\"status\":\"KEEPALIVED\"}}}}\n"
            ),
            "mining.subscribe" => format!(
                "{{\"id\":{id},\"result\":[[[\"mining.set_difficulty\",\"b4b6\"],[\"mining.notify\",\"ae68\"]],\"08000002\",4],\"error\":null}}\n"
            ),
            // The authorize answer and the first job in one write: two messages, one segment.
            "mining.authorize" => format!(
                "{{\"id\":{id},\"result\":true,\"error\":null}}\n{{\"id\":null,\"method\":\"mining.notify\",\"params\":[\"bf\",\"4d16\",\"0100\",\"0000\",[],\"20000000\",\"1d00ffff\",\"5f5e1000\",true]}}\n"
            ),
            "mining.submit" => format!("{{\"id\":{id},\"result\":true,\"error\":null}}\n"),
            "eth_submitLogin" => format!("{{\"id\":{id},\"jsonrpc\":\"2.0\",\"result\":true}}\n"),
            "eth_getWork" => format!(
                "{{\"id\":{id},\"jsonrpc\":\"2.0\",\"result\":[\"0x1a2b\",\"0x3c4d\",\"0x0000000112e0be826d694b2e62d01511f12a6061fbaec8bc02357593e70e52ba\"]}}\n"
            ),
            other => panic!("pool: unexpected method {other:?}"),
        }
    });
}

const WALLET: &str = "48edfHu7V9Z84YzzMa6fUueoELZ9ZRXq9VetWzYGzKt52XU5xvqgzYnDK9URnRoJMk1j8nLwEVsaSWJ4fhdUyZijBGUicoD";

/// An XMRig-style session: compact JSON, `id` first.
fn xmrig(pool: SocketAddr) -> impl FnOnce() + Send {
    move || {
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
            "{{\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"login\",\"params\":{{\"login\":\"{WALLET}\",\"pass\":\"x\",\"agent\":\"XMRig/6.21.0 (Linux x86_64) libuv/1.44.2 gcc/12.2.0\",\"algo\":[\"rx/0\",\"cn/2\",\"cn/r\",\"cn-lite/1\",\"cn-heavy/0\",\"rx/wow\",\"argon2/chukwa\"]}}}}\n"
        ));
        assert!(login.contains("\"job\""));
        for n in 0..3 {
            let ok = ask(format!(
                "{{\"id\":{},\"jsonrpc\":\"2.0\",\"method\":\"submit\",\"params\":{{\"id\":\"5f3a\",\"job_id\":\"311\",\"nonce\":\"0{n}000000\",\"result\":\"f1e2d3c4b5a6978800112233445566778899aabbccddeeff0011223344556677\",\"algo\":\"rx/0\"}}}}\n",
                n + 2
            ));
            assert!(ok.contains("OK"));
        }
        let ka = ask("{\"id\":5,\"jsonrpc\":\"2.0\",\"method\":\"keepalived\",\"params\":{\"id\":\"5f3a\"}}\n".into());
        assert!(ka.contains("KEEPALIVED"));
    }
}

/// A cpuminer-style Stratum V1 session: spaces after `:` and `,`.
fn cpuminer(pool: SocketAddr) -> impl FnOnce() + Send {
    move || {
        let s = TcpStream::connect_timeout(&pool, IO_TIMEOUT).unwrap();
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        w.write_all(
            b"{\"id\": 1, \"method\": \"mining.subscribe\", \"params\": [\"cpuminer-opt/23.5\"]}\n",
        )
        .unwrap();
        assert!(read_line(&mut r).contains("mining.notify"));
        w.write_all(
            b"{\"id\": 2, \"method\": \"mining.authorize\", \"params\": [\"worker1\", \"x\"]}\n",
        )
        .unwrap();
        assert!(read_line(&mut r).contains("true"));
        assert!(read_line(&mut r).contains("mining.notify"));
        w.write_all(b"{\"id\": 3, \"method\": \"mining.submit\", \"params\": [\"worker1\", \"bf\", \"00000001\", \"5f5e1000\", \"a1b2c3d4\"]}\n").unwrap();
        assert!(read_line(&mut r).contains("true"));
    }
}

/// An ethproxy session (Ethereum): login then a work request, `id` and `method` last.
fn ethproxy(pool: SocketAddr) -> impl FnOnce() + Send {
    move || {
        let s = TcpStream::connect_timeout(&pool, IO_TIMEOUT).unwrap();
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        w.write_all(b"{\"worker\": \"eth1.0\", \"jsonrpc\": \"2.0\", \"params\": [\"0x52bc44d5378309ee2abf1539bf71de1b7d7be3b5\", \"x\"], \"id\": 2, \"method\": \"eth_submitLogin\"}\n").unwrap();
        assert!(read_line(&mut r).contains("true"));
        w.write_all(b"{\"worker\": \"\", \"jsonrpc\": \"2.0\", \"params\": [], \"id\": 3, \"method\": \"eth_getWork\"}\n").unwrap();
        assert!(read_line(&mut r).contains("0x"));
    }
}

/// A pool on `l` that speaks no readable protocol: reads what comes, answers `reply` bytes,
/// `conns` times.
fn opaque_pool(l: TcpListener, reply: usize, conns: usize) -> impl FnOnce() + Send {
    move || {
        for _ in 0..conns {
            let mut s = common::accept(&l);
            s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf).unwrap();
            if reply > 0 {
                s.write_all(&vec![0x5a; reply]).unwrap();
            }
        }
    }
}

/// Sends `payload` in one segment and, if `reply` > 0, reads that many bytes back.
fn opaque_client(addr: SocketAddr, payload: Vec<u8>, reply: usize) -> impl FnOnce() + Send {
    move || {
        let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap();
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.write_all(&payload).unwrap();
        let mut got = vec![0u8; reply];
        s.read_exact(&mut got).unwrap();
    }
}

/// Benign traffic on `l`: a web page quoting a login object, Ethereum node JSON-RPC, and UDP.
fn benign_server(l: TcpListener) -> impl FnOnce() + Send {
    move || {
        for _ in 0..2 {
            let mut s = common::accept(&l);
            s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            let mut buf = [0u8; 2048];
            let n = s.read(&mut buf).unwrap();
            let req = String::from_utf8_lossy(&buf[..n]);
            let body = if req.starts_with("GET") {
                "<html><title>pool stats</title><script>var example = {\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"login\",\"params\":{\"login\":\"4...\",\"pass\":\"x\",\"agent\":\"XMRig/6\"}};</script></html>".to_string()
            } else {
                "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"0x10d4f\"}\n".to_string()
            };
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            s.write_all(resp.as_bytes()).unwrap();
        }
    }
}

fn benign_client(addr: SocketAddr, udp_to: SocketAddr, datagrams: usize) -> impl FnOnce() + Send {
    move || {
        for req in [
            "GET /stats HTTP/1.1\r\nHost: pool.test\r\n\r\n".to_string(),
            "POST / HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 64\r\n\r\n{\"jsonrpc\":\"2.0\",\"method\":\"eth_blockNumber\",\"params\":[],\"id\":1}".to_string(),
        ] {
            let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap();
            s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            s.write_all(req.as_bytes()).unwrap();
            let mut v = Vec::new();
            s.read_to_end(&mut v).unwrap();
            assert!(v.starts_with(b"HTTP/1.1 200"));
        }
        let u = UdpSocket::bind("0.0.0.0:0").unwrap();
        for i in 0..datagrams {
            u.send_to(&vec![b'u'; 100 + i], udp_to).unwrap();
            // Pacing, part of the traffic.
            thread::sleep(Duration::from_millis(1));
        }
    }
}

/// `openssl s_server` in namespace `ns` for one TLS session at `addr`, with a fresh self-signed
/// certificate; killed when the returned guard drops.
fn tls_pool(ns: &str, dir: &std::path::Path, addr: SocketAddr) -> Proc {
    let (cert, key) = (dir.join("pool.crt"), dir.join("pool.key"));
    common::self_signed(&cert, &key, "/CN=pool.example", &[]);
    let child = Command::new("ip")
        .args([
            "netns", "exec", ns, "timeout", "30", "openssl", "s_server", "-quiet",
        ])
        .args(["-naccept", "1", "-accept", &addr.to_string()])
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl");
    Proc(child)
}

#[test]
fn live_path_end_to_end() {
    let t = Topology::new();
    let dir = std::env::temp_dir().join(format!("msh-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("sensor.toml");
    std::fs::write(
        &config,
        format!(
            "drain_interval = \"200ms\"\n[events]\nsink = \"file\"\npath = \"{}\"\n[[ranges]]\nname = \"harness\"\ncidrs = [\"198.18.0.0/24\", \"2001:db8:1::/64\"]\n",
            dir.join("events.jsonl").display()
        ),
    )
    .unwrap();

    let listen = format!("127.0.0.1:{SENSOR_PORT}");
    let mut sensor = spawn_sensor(
        &t.vantage,
        &config,
        &[
            "--iface",
            "v0",
            "--iface",
            "v1",
            "--listen",
            &listen,
            "--xdp-mode",
            "native",
        ],
        &dir.join("sensor.log"),
        // The kernel's aya-log records ("new stratum flow") come at debug.
        "debug",
    );
    common::wait_exported(
        &t.vantage,
        SENSOR_PORT,
        &mut sensor,
        &dir.join("sensor.log"),
        "mining_sensor_xdp_attached{iface=\"v1\",mode=\"native\"} 1",
    );

    // A real Prometheus scraping the sensor every second.
    let prom_cfg = dir.join("prometheus.yml");
    std::fs::write(
        &prom_cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: mining-sensor\n    static_configs:\n      - targets: ['127.0.0.1:{SENSOR_PORT}']\n        labels:\n          sensor: harness\n",
            // The rules shipped in deploy/, exactly as operators load them.
            concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/prometheus/mining-sensor.rules.yml")
        ),
    )
    .unwrap();
    let prom = Command::new("ip")
        .args(["netns", "exec", &t.vantage, "prometheus"])
        .arg(format!("--config.file={}", prom_cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{PROM_PORT}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
        .spawn()
        .expect("prometheus (cargo xtask setup installs it)");
    let _prom = Proc(prom);

    // Prometheus has loaded the shipped rules and scraped the sensor once (every counter at 0)
    // before any traffic, as in a running deployment: a counter first seen already non-zero shows
    // no increase to the alert.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let up = http_get(
            &t.vantage,
            PROM_PORT,
            "/api/v1/query?query=up%7Bjob%3D%22mining-sensor%22%7D",
        );
        let rules = http_get(&t.vantage, PROM_PORT, "/api/v1/rules");
        let scraped = serde_json::from_str::<serde_json::Value>(&up)
            .ok()
            .is_some_and(|v| v["data"]["result"][0]["value"][1].as_str() == Some("1"));
        if scraped && rules.contains("MiningFromWatchedRange") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus not ready: {up} {rules} {}",
            std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
        );
        thread::sleep(Duration::from_millis(200));
    }

    // Observers first, then traffic.
    let stop = Arc::new(AtomicBool::new(false));
    let ready: Vec<Arc<AtomicBool>> = (0..2).map(|_| Arc::new(AtomicBool::new(false))).collect();
    let miner_seen = observe(&t.miner, "m0", stop.clone(), ready[0].clone());
    let pool_seen = observe(&t.pool, "p0", stop.clone(), ready[1].clone());
    while !ready.iter().all(|r| r.load(Ordering::SeqCst)) {
        thread::sleep(Duration::from_millis(10));
    }

    let pool_v4: SocketAddr = format!("{POOL_V4}:3333").parse().unwrap();
    let pool_v4_btc: SocketAddr = format!("{POOL_V4}:4444").parse().unwrap();
    let pool_v6: SocketAddr = format!("[{POOL_V6}]:3333").parse().unwrap();
    let web: SocketAddr = format!("{POOL_V4}:8080").parse().unwrap();
    let udp: SocketAddr = format!("{POOL_V4}:9999").parse().unwrap();
    let pool_v4_eth: SocketAddr = format!("{POOL_V4}:8008").parse().unwrap();
    // 14433 and 34254 are among the default pool ports (TLS, Stratum V2).
    let pool_tls: SocketAddr = format!("{POOL_V4}:14433").parse().unwrap();
    let pool_v2: SocketAddr = format!("{POOL_V4}:34254").parse().unwrap();
    // Every server's socket is made (listening, or bound for UDP) before its thread starts, so
    // the clients below can connect at once.
    let listeners =
        [pool_v4, pool_v4_btc, pool_v6, pool_v4_eth].map(|a| common::listen(&t.pool, a));
    let pool_thread = thread::spawn(pool(listeners.into(), 4));
    // A real TLS pool (OpenSSL) for a client that sends no server name, as XMRig does.
    let tls_server = tls_pool(&t.pool, &dir, pool_tls);
    // A resolver for the miner's DNS query of a pool name.
    let resolver: SocketAddr = format!("{POOL_V4}:53").parse().unwrap();
    let dns_socket = in_ns(&t.pool, move || UdpSocket::bind(resolver).unwrap())
        .join()
        .unwrap();
    let dns_thread = thread::spawn(move || {
        let s = dns_socket;
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut buf = [0u8; 512];
        let (n, _) = s.recv_from(&mut buf).unwrap();
        n
    });
    let v2_thread = thread::spawn(opaque_pool(common::listen(&t.pool, pool_v2), 234, 1));
    let web_thread = thread::spawn(benign_server(common::listen(&t.pool, web)));
    in_ns(&t.miner, xmrig(pool_v4)).join().unwrap();
    in_ns(&t.miner, xmrig(pool_v6)).join().unwrap();
    in_ns(&t.miner, cpuminer(pool_v4_btc)).join().unwrap();
    in_ns(&t.miner, ethproxy(pool_v4_eth)).join().unwrap();
    // openssl listening first (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !output(&[
        "ip", "netns", "exec", &t.pool, "ss", "-ltnH", "sport", "=", ":14433",
    ])
    .contains("14433")
    {
        assert!(Instant::now() < deadline, "openssl s_server did not listen");
        thread::sleep(Duration::from_millis(50));
    }
    let tls = output(&[
        "ip",
        "netns",
        "exec",
        &t.miner,
        "sh",
        "-c",
        &format!(
            "echo | timeout 10 openssl s_client -connect {pool_tls} -noservername -brief 2>&1"
        ),
    ]);
    assert!(tls.contains("CONNECTION ESTABLISHED"), "TLS session: {tls}");
    let _ = tls_server;
    in_ns(&t.miner, move || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        s.send_to(&dns_query(0x4d53, "pool.supportxmr.com", false), resolver)
            .unwrap();
    })
    .join()
    .unwrap();
    // A Noise hello's 64 bytes: a public key, uniform bytes (text of that size is no hello,
    // `sensor_common::sv2::is_text16`).
    let hello: Vec<u8> = (0..64u32).map(|i| (i * 37 + 167) as u8).collect();
    in_ns(&t.miner, opaque_client(pool_v2, hello, 234))
        .join()
        .unwrap();
    in_ns(&t.miner, benign_client(web, udp, 50)).join().unwrap();
    pool_thread.join().unwrap();
    assert!(dns_thread.join().unwrap() > 12);
    v2_thread.join().unwrap();
    web_thread.join().unwrap();
    // Connection teardown, then stop observing. Time passes on purpose: the closes' last
    // segments leave within it, and nothing else marks the end of the traffic for the observers.
    thread::sleep(Duration::from_millis(700));
    stop.store(true, Ordering::SeqCst);
    let miner_seen = miner_seen.join().unwrap();
    let pool_seen = pool_seen.join().unwrap();
    // The sensor counts what the observers saw at its next drain (every 200 ms), and writes its
    // JSON lines (7 events, 4 logins) as it reads them: wait for those, bounded; the assertions
    // below then check them and the rest.
    let h = "harness";
    let settle = Duration::from_secs(10);
    let from_v0 = [("direction", "from"), ("iface", "v0"), ("range", h)];
    let to_v1 = [("direction", "to"), ("iface", "v1"), ("range", h)];
    let xmrig_logins = [("agent", "xmrig"), ("coin", "monero"), ("range", h)];
    for (name, labels, want) in [
        (
            "mining_sensor_packets_total",
            &from_v0[..],
            miner_seen.from_packets as f64,
        ),
        (
            "mining_sensor_bytes_total",
            &from_v0[..],
            miner_seen.from_bytes as f64,
        ),
        (
            "mining_sensor_packets_total",
            &to_v1[..],
            pool_seen.to_packets as f64,
        ),
        (
            "mining_sensor_bytes_total",
            &to_v1[..],
            pool_seen.to_bytes as f64,
        ),
        ("mining_sensor_events_total", &[][..], 7.0),
        ("mining_sensor_miner_logins_total", &xmrig_logins[..], 2.0),
    ] {
        wait_for(&t.vantage, SENSOR_PORT, name, labels, want, settle);
    }
    let lines =
        || std::fs::read_to_string(dir.join("events.jsonl")).map_or(0, |t| t.matches('\n').count());
    let deadline = Instant::now() + settle;
    while lines() < 7 + 4 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
    }

    let m = samples(&http_get(&t.vantage, SENSOR_PORT, "/metrics"));
    // Everything the miner sent arrived on v0 (from the watched range); everything the pool sent
    // to the miner arrived on v1.
    assert!(miner_seen.from_packets > 20, "{miner_seen:?}");
    assert_eq!(
        get(
            &m,
            "mining_sensor_packets_total",
            &[("direction", "from"), ("iface", "v0"), ("range", h)]
        ) as u64,
        miner_seen.from_packets
    );
    assert_eq!(
        get(
            &m,
            "mining_sensor_bytes_total",
            &[("direction", "from"), ("iface", "v0"), ("range", h)]
        ) as u64,
        miner_seen.from_bytes
    );
    assert_eq!(
        get(
            &m,
            "mining_sensor_packets_total",
            &[("direction", "to"), ("iface", "v1"), ("range", h)]
        ) as u64,
        pool_seen.to_packets
    );
    assert_eq!(
        get(
            &m,
            "mining_sensor_bytes_total",
            &[("direction", "to"), ("iface", "v1"), ("range", h)]
        ) as u64,
        pool_seen.to_bytes
    );
    assert_eq!(
        get(
            &m,
            "mining_sensor_packets_total",
            &[("direction", "to"), ("iface", "v0"), ("range", h)]
        ),
        0.0
    );
    assert_eq!(
        get(
            &m,
            "mining_sensor_packets_total",
            &[("direction", "from"), ("iface", "v1"), ("range", h)]
        ),
        0.0
    );

    // Stratum: two Monero sessions (IPv4, IPv6), one Bitcoin session; each message its own
    // segment except the pool's authorize answer, which carries a job in the same segment.
    let st = |name: &str, dir: &str, dialect: &str| {
        get(
            &m,
            name,
            &[("dialect", dialect), ("direction", dir), ("range", h)],
        )
    };
    assert_eq!(
        st("mining_sensor_stratum_flows_total", "from", "monero"),
        2.0
    );
    assert_eq!(
        st("mining_sensor_stratum_flows_total", "from", "bitcoin"),
        1.0
    );
    // login, 3 submits, keepalived per session; login reply and keepalive reply per session.
    assert_eq!(
        st("mining_sensor_stratum_packets_total", "from", "monero"),
        10.0
    );
    assert_eq!(
        st("mining_sensor_stratum_packets_total", "to", "monero"),
        4.0
    );
    // subscribe, authorize, submit; subscribe result and authorize+notify.
    assert_eq!(
        st("mining_sensor_stratum_packets_total", "from", "bitcoin"),
        3.0
    );
    assert_eq!(
        st("mining_sensor_stratum_packets_total", "to", "bitcoin"),
        2.0
    );
    assert_eq!(st("mining_sensor_stratum_flows_total", "to", "monero"), 0.0);
    // The benign mix (web page quoting a login, node JSON-RPC, UDP) added no Stratum.
    let unwatched: f64 = m
        .iter()
        .filter(|((n, l), _)| {
            n == "mining_sensor_stratum_packets_total"
                && l.get("range").map(String::as_str) == Some("unwatched")
        })
        .map(|(_, v)| v)
        .sum();
    assert_eq!(unwatched, 0.0);
    // The ethproxy session: its two requests; the pool's plain JSON-RPC answers carry no marker.
    assert_eq!(
        st("mining_sensor_stratum_flows_total", "from", "ethereum"),
        1.0
    );
    assert_eq!(
        st("mining_sensor_stratum_packets_total", "from", "ethereum"),
        2.0
    );
    assert_eq!(
        st("mining_sensor_stratum_packets_total", "to", "ethereum"),
        0.0
    );
    // Mining without readable Stratum: one flow each.
    let sus = |reason: &str| {
        get(
            &m,
            "mining_sensor_suspect_flows_total",
            &[("direction", "from"), ("range", h), ("reason", reason)],
        )
    };
    assert_eq!(sus("tls_no_sni"), 1.0);
    assert_eq!(sus("pool_dns"), 1.0);
    assert_eq!(sus("stratum_v2"), 1.0);
    assert_eq!(sus("pool_endpoint"), 0.0);
    assert_eq!(
        get(
            &m,
            "mining_sensor_mining_flows",
            &[("dialect", "monero"), ("range", h)]
        ),
        2.0
    );
    assert_eq!(
        get(&m, "mining_sensor_interface_up", &[("iface", "v0")]),
        1.0
    );

    // One event per Stratum flow, as JSON lines: who, with what, where.
    let (logins, events): (Vec<serde_json::Value>, Vec<serde_json::Value>) =
        std::fs::read_to_string(dir.join("events.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .partition(|e| e["event"] == "miner_login");
    assert_eq!(events.len(), 7, "{events:?}");
    // Deep inspection (inline, the default) read each client's login: who mines what, with what.
    let mut who: Vec<(String, String, String)> = logins
        .iter()
        .map(|e| {
            (
                e["dialect"].as_str().unwrap().to_string(),
                e["coin"].as_str().unwrap().to_string(),
                e["agent"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    who.sort();
    assert_eq!(
        who,
        [
            ("bitcoin".into(), "unknown".into(), "cpuminer".into()),
            ("ethereum".into(), "ethereum".into(), "unknown".into()),
            ("monero".into(), "monero".into(), "xmrig".into()),
            ("monero".into(), "monero".into(), "xmrig".into()),
        ],
        "{logins:?}"
    );
    assert_eq!(
        get(
            &m,
            "mining_sensor_miner_logins_total",
            &[("agent", "xmrig"), ("coin", "monero"), ("range", h)]
        ),
        2.0
    );
    // Shares (contract.md: shares_total, share_hashes_total). Each xmrig session submits 3 shares
    // for job 311 of its login reply, whose target f3220000 (t = 0x22f3 = 8,947) is 480,045 hashes
    // a share: (2^32-1) / 8,947 = 480,045, T = (2^64-1) / 480,045, (2^64-1) / T = 480,045. The pool
    // answers each OK: 6 accepted, 6 x 480,045 = 2,880,270 hashes. cpuminer submits one share for
    // job bf, answered true; no mining.set_difficulty came (its subscribe reply only names the
    // subscription), so it counts without hashes, its coin unknown (login "worker1").
    let monero = [("coin", "monero"), ("range", h)];
    let unknown = [("coin", "unknown"), ("range", h)];
    for (name, labels, want) in [
        (
            "mining_sensor_shares_total",
            [&monero[..], &[("result", "accepted")]].concat(),
            6.0,
        ),
        (
            "mining_sensor_share_hashes_total",
            monero.to_vec(),
            2_880_270.0,
        ),
        (
            "mining_sensor_shares_total",
            [&unknown[..], &[("result", "accepted")]].concat(),
            1.0,
        ),
        (
            "mining_sensor_shares_unknown_difficulty_total",
            unknown.to_vec(),
            1.0,
        ),
    ] {
        assert_eq!(
            wait_for(&t.vantage, SENSOR_PORT, name, &labels, want, settle),
            want,
            "{name} {labels:?}"
        );
    }
    // Every monero share was answered: none rejected, none unknown.
    let m = samples(&http_get(&t.vantage, SENSOR_PORT, "/metrics"));
    let unanswered: f64 = m
        .iter()
        .filter(|((n, l), _)| {
            n == "mining_sensor_shares_total"
                && l.get("coin").map(String::as_str) == Some("monero")
                && l.get("result").map(String::as_str) != Some("accepted")
        })
        .map(|(_, v)| v)
        .sum();
    assert_eq!(unanswered, 0.0);
    let metrics_text = http_get(&t.vantage, SENSOR_PORT, "/metrics");
    assert!(!metrics_text.contains(WALLET), "a wallet in /metrics");
    let mut suspects: Vec<(String, u64)> = events
        .iter()
        .filter(|e| e["event"] == "suspect_flow")
        .map(|e| {
            (
                e["reason"].as_str().unwrap().to_string(),
                e["dport"].as_u64().unwrap(),
            )
        })
        .collect();
    suspects.sort();
    assert_eq!(
        suspects,
        [
            ("pool_dns".into(), 53),
            ("stratum_v2".into(), 34254),
            ("tls_no_sni".into(), 14433)
        ]
    );
    let mut seen: Vec<(String, String, u64, String)> = events
        .iter()
        .filter(|e| e["event"] == "stratum_flow")
        .map(|e| {
            assert_eq!(e["event"], "stratum_flow");
            assert_eq!(e["range"], "harness");
            assert_eq!(e["direction"], "from");
            assert_eq!(e["iface"], "v0");
            assert_eq!(e["proto"], "tcp");
            (
                e["dialect"].as_str().unwrap().to_string(),
                e["src"].as_str().unwrap().to_string(),
                e["dport"].as_u64().unwrap(),
                e["dst"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("bitcoin".into(), "198.18.0.2".into(), 4444, POOL_V4.into()),
            ("ethereum".into(), "198.18.0.2".into(), 8008, POOL_V4.into()),
            ("monero".into(), "198.18.0.2".into(), 3333, POOL_V4.into()),
            (
                "monero".into(),
                "2001:db8:1::2".into(),
                3333,
                POOL_V6.into()
            ),
        ]
    );
    assert_eq!(get(&m, "mining_sensor_events_total", &[]), 7.0);
    assert_eq!(get(&m, "mining_sensor_events_lost_total", &[]), 0.0);

    // Prometheus sees the flow through PromQL.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body = http_get(
            &t.vantage,
            PROM_PORT,
            "/api/v1/query?query=sum%20by%20(dialect)(mining_sensor_stratum_flows_total%7Brange%3D%22harness%22%2Cdialect%3D%22monero%22%7D)",
        );
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&body)
            && v["data"]["result"][0]["value"][1].as_str() == Some("2")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never saw the flows: {body}"
        );
        thread::sleep(Duration::from_millis(500));
    }

    // The shipped alert fires for the harness's miner.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body = http_get(&t.vantage, PROM_PORT, "/api/v1/alerts");
        let firing = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["data"]["alerts"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .any(|a| {
                a["labels"]["alertname"] == "MiningFromWatchedRange"
                    && a["labels"]["range"] == "harness"
                    && a["labels"]["dialect"] == "monero"
                    && a["state"] == "firing"
            });
        if firing {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "MiningFromWatchedRange never fired: {body}"
        );
        thread::sleep(Duration::from_millis(500));
    }

    // SIGTERM: exit 0, nothing left attached.
    // SAFETY: signalling our own child.
    unsafe { libc::kill(sensor.0.id() as i32, libc::SIGTERM) };
    let status = sensor.0.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "{}",
        std::fs::read_to_string(dir.join("sensor.log")).unwrap()
    );
    for dev in ["v0", "v1"] {
        let link = output(&["ip", "-n", &t.vantage, "link", "show", dev]);
        assert!(
            !link.contains("xdp"),
            "{dev} still has an XDP program: {link}"
        );
    }
    let log = std::fs::read_to_string(dir.join("sensor.log")).unwrap();
    assert!(
        log.contains("new stratum flow"),
        "kernel log records reach the agent's log: {log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
