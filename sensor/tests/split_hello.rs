//! A real TLS client's ClientHello split over two and over three TCP segments, towards 443
//! (issue 21, "A ClientHello split over two segments is decided too"), through the sensor live
//! and through `replay` of the capture.
//!
//! ```text
//!  client ns                  vantage ns                               server ns
//!  openssl s_client           mining-sensor (XDP native on hlv0, hlv1)  openssl s_server :443
//!  hlm0 198.18.0.2/24 <-> hlv0 198.18.0.1/24 [fwd] hlv1 198.18.1.1/24 <-> hlp0 198.18.1.2/24
//!                                                                       and 198.18.1.3-5/32
//! ```
//!
//! The client is this machine's OpenSSL 3.0 (`openssl s_client -servername NAME`). Its
//! ClientHello has no post-quantum key share (OpenSSL 3.5 and later, Chrome and Firefox send
//! one, and so 1.5-2 KB hellos split at a 1,448-byte MSS) and carries server_name as its second
//! extension, so a hello of this client is split with its name past the first segment only at
//! a small MSS: the test first reads one of its hellos whole (a plain listener in the server
//! namespace), finds where the server_name extension begins (`o`, 144 bytes into the record
//! with this OpenSSL) and ends, and makes the server advertise an MSS (`ip route ... advmss`)
//! for segments of `o + 2` bytes, the first ending inside the extension's header and the second
//! completing it, or `(o + 2) / 2`, the first ending before the extensions and the second inside
//! the extension's header, the third completing it. The capture checks the first segment's size
//! and that the name really was completed by the second, or the third, segment.
//!
//! Four sessions, each to a server address of its own watched as a range named after it: a name
//! in a configured pool domain over two and over three segments (`tls_pool_sni`, exactly 1
//! each), a name in none over two and three (nothing). The same counts from `mining-sensor
//! replay` of the capture.
//!
//! Needs root, iproute2, ethtool, tcpdump and openssl. Namespaces and interfaces start with `hl`;
//! addresses from 198.18.0.0/15 only; every process runs under `timeout`, every wait is bounded:
//! about 10 s.

mod common;

use common::{Line, http_get, samples, sensor_on_line, sh, start_capture, stop_capture};

use std::{
    io::Read,
    net::{Ipv4Addr, SocketAddr},
    path::Path,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

/// A name in the configured pool domain `pool.example`, and one in none (both 16 bytes).
const POOL_NAME: &str = "xmr.pool.example";
const OTHER_NAME: &str = "www.example.test";
const METRICS_PORT: u16 = 9471;
/// Bytes of TCP's timestamps option in each segment (Linux's default): an advertised MSS counts
/// them.
const TIMESTAMPS: usize = 12;
/// The shortest segment payload Linux sends: an MSS of 88 (`TCP_MIN_MSS`) less `TIMESTAMPS`.
const MIN_PAYLOAD: usize = 88 - TIMESTAMPS;

struct Session {
    name: &'static str,
    server: &'static str,
    sni: &'static str,
    /// The segment (1-based) that completes the server_name extension.
    segments: usize,
    /// `suspect_flows_total{range=name, reason="tls_pool_sni"}`.
    pool_sni: u64,
}

const SESSIONS: [Session; 4] = [
    Session {
        name: "two_pool",
        server: "198.18.1.2",
        sni: POOL_NAME,
        segments: 2,
        pool_sni: 1,
    },
    Session {
        name: "three_pool",
        server: "198.18.1.3",
        sni: POOL_NAME,
        segments: 3,
        pool_sni: 1,
    },
    Session {
        name: "two_other",
        server: "198.18.1.4",
        sni: OTHER_NAME,
        segments: 2,
        pool_sni: 0,
    },
    Session {
        name: "three_other",
        server: "198.18.1.5",
        sni: OTHER_NAME,
        segments: 3,
        pool_sni: 0,
    },
];

/// Where a ClientHello record's server_name extension begins and ends (offsets from the
/// record's start), and its name; `None` when `rec` is not a whole ClientHello with one.
fn server_name(rec: &[u8]) -> Option<(usize, usize, String)> {
    if rec.len() < 9 || rec[0] != 22 || rec[5] != 1 {
        return None;
    }
    let u16_at = |o: usize| {
        Some(usize::from(u16::from_be_bytes([
            *rec.get(o)?,
            *rec.get(o + 1)?,
        ])))
    };
    // 5 record + 4 handshake + 2 version + 32 random: the session id.
    let mut o = 43;
    o += 1 + usize::from(*rec.get(o)?);
    o += 2 + u16_at(o)?;
    o += 1 + usize::from(*rec.get(o)?);
    let end = o + 2 + u16_at(o)?;
    o += 2;
    while o + 4 <= end {
        let (kind, len) = (u16_at(o)?, u16_at(o + 2)?);
        if kind == 0 {
            let n = u16_at(o + 7)?;
            let name = rec.get(o + 9..o + 9 + n)?;
            return Some((o, o + 4 + len, String::from_utf8_lossy(name).into_owned()));
        }
        o += 4 + len;
    }
    None
}

/// `openssl s_client` from the client namespace to `server:port` naming `sni`: connects,
/// completes the handshake (when a server answers) and quits at its stdin's end.
fn s_client(ns: &str, server: &str, port: u16, sni: &str) -> std::process::Child {
    Command::new("ip")
        .args(["netns", "exec", ns, "timeout", "10", "openssl", "s_client"])
        .args(["-brief", "-connect", &format!("{server}:{port}")])
        .args(["-servername", sni])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl (cargo xtask setup installs it)")
}

/// One ClientHello of the client, read whole by a plain listener at `server:4433`.
fn probe_hello(client_ns: &str, server_ns: &str, server: &str) -> Vec<u8> {
    let addr: SocketAddr = format!("{server}:4433").parse().unwrap();
    let listener = common::listen(server_ns, addr);
    let mut client = s_client(client_ns, server, 4433, POOL_NAME);
    let mut conn = common::accept(&listener);
    conn.set_read_timeout(Some(common::IO_TIMEOUT)).unwrap();
    let mut rec = Vec::new();
    let mut buf = [0u8; 4096];
    while rec.len() < 5 || rec.len() < 5 + usize::from(u16::from_be_bytes([rec[3], rec[4]])) {
        let n = conn.read(&mut buf).expect("the client's ClientHello");
        assert!(n > 0, "the client closed before its ClientHello ended");
        rec.extend_from_slice(&buf[..n]);
    }
    drop(conn);
    let _ = client.kill();
    let _ = client.wait();
    rec
}

/// The client's payload segments towards `server`:443 in the capture, in sequence order, each
/// once (a retransmission dropped).
fn client_segments(pcap: &Path, server: Ipv4Addr) -> Vec<Vec<u8>> {
    let mut r = pcap_file::pcap::PcapReader::new(std::fs::File::open(pcap).unwrap()).unwrap();
    let mut out: Vec<(u32, Vec<u8>)> = Vec::new();
    while let Some(p) = r.next_packet() {
        let f = p.unwrap().data.to_vec();
        if f.len() < 34 || f[12..14] != [8, 0] || f[23] != 6 {
            continue;
        }
        let ihl = usize::from(f[14] & 15) * 4;
        let total = usize::from(u16::from_be_bytes([f[16], f[17]]));
        let t = 14 + ihl;
        let dst = Ipv4Addr::new(f[30], f[31], f[32], f[33]);
        if dst != server || f.len() < t + 20 || u16::from_be_bytes([f[t + 2], f[t + 3]]) != 443 {
            continue;
        }
        let seq = u32::from_be_bytes([f[t + 4], f[t + 5], f[t + 6], f[t + 7]]);
        let data = t + usize::from(f[t + 12] >> 4) * 4;
        let payload = f[data.min(f.len())..(14 + total).min(f.len())].to_vec();
        if !payload.is_empty() && !out.iter().any(|(s, _)| *s == seq) {
            out.push((seq, payload));
        }
    }
    out.sort_by_key(|(s, _)| *s);
    out.into_iter().map(|(_, p)| p).collect()
}

/// Sum of `suspect_flows_total` samples of `range` for `reason` (every reason when `None`).
fn suspects(m: &common::Samples, range: &str, reason: Option<&str>) -> f64 {
    m.iter()
        .filter(|((n, l), _)| {
            n == "mining_sensor_suspect_flows_total"
                && l.get("range").map(String::as_str) == Some(range)
                && reason.is_none_or(|r| l.get("reason").map(String::as_str) == Some(r))
        })
        .map(|(_, v)| v)
        .sum()
}

#[test]
fn hello_of_a_real_tls_client_split_over_two_and_three_segments() {
    let line = Line::new(
        "hl",
        ["hlm0", "198.18.0.2/24", "hlv0", "198.18.0.1/24"],
        ["hlp0", "198.18.1.2/24", "hlv1", "198.18.1.1/24"],
    );
    let (client_ns, vantage_ns, server_ns) = (
        line.miner.as_str(),
        line.vantage.as_str(),
        line.pool.as_str(),
    );
    for s in &SESSIONS[1..] {
        sh(&[
            "ip",
            "-n",
            server_ns,
            "addr",
            "add",
            &format!("{}/32", s.server),
            "dev",
            "hlp0",
        ]);
    }
    // Segments as a wire carries them: without segmentation offload the client's TCP cuts the
    // hello into MSS-sized segments itself (with it, veth hands one frame over).
    sh(&[
        "ip", "netns", "exec", client_ns, "ethtool", "-K", "hlm0", "tso", "off", "gso", "off",
    ]);

    // The client's hello: where its server_name extension is.
    let hello = probe_hello(client_ns, server_ns, SESSIONS[0].server);
    let (o, ext_end, name) = server_name(&hello).expect("a ClientHello naming a server");
    assert_eq!(name, POOL_NAME);
    // 4 + 2 + 1 + 2 + 16 bytes of extension.
    assert_eq!(ext_end - o, 25);
    // Payload bytes per segment. Two: the first ends in the extension's header, the second
    // completes it. Three: the first ends before the extensions, the second in the extension
    // (in its header at half of two, 73 bytes; 8 bytes into it at 76), the third completes it.
    // No segment under `MIN_PAYLOAD`: on Linux 6.18.44 a route's `advmss` of 85 (a 73-byte third)
    // gave segments of 76 bytes, the MSS raised to 88, `TCP_MIN_MSS` (earlier kernels here sent
    // 73; `tcp_min_snd_mss` is 48).
    let (two, three) = (o + 2, ((o + 2) / 2).max(MIN_PAYLOAD));
    assert!(two < ext_end && 2 * two >= ext_end, "{o} {ext_end}");
    assert!(2 * three < ext_end && 3 * three >= ext_end, "{o} {ext_end}");

    let id = std::process::id();
    let dir = std::env::temp_dir().join(format!("hl-split-hello-{id}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("sensor.toml");
    let mut text =
        String::from("drain_interval = \"200ms\"\n[pools]\nextra_domains = [\"pool.example\"]\n");
    for s in &SESSIONS {
        text += &format!(
            "[[ranges]]\nname = \"{}\"\ncidrs = [\"{}/32\"]\n",
            s.name, s.server
        );
    }
    std::fs::write(&config, text).unwrap();
    let _sensor = sensor_on_line(
        &line,
        ["hlv0", "hlv1"],
        METRICS_PORT,
        &config,
        &dir.join("sensor.log"),
    );
    let pcap = dir.join("hello.pcap");
    let capture = start_capture(vantage_ns, "hlv0", &pcap);
    let (cert, key) = (dir.join("server.crt"), dir.join("server.key"));
    common::self_signed(&cert, &key, "/CN=server.example.test", &[]);
    let _server = common::Proc(
        Command::new("ip")
            .args([
                "netns", "exec", server_ns, "timeout", "60", "openssl", "s_server",
            ])
            .args(["-quiet", "-accept", "443", "-naccept", "4"])
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server"),
    );
    let deadline = Instant::now() + common::IO_TIMEOUT;
    while !common::output(&["ip", "netns", "exec", server_ns, "ss", "-ltn"]).contains(":443 ") {
        assert!(Instant::now() < deadline, "s_server did not listen");
        thread::sleep(Duration::from_millis(50));
    }

    for s in &SESSIONS {
        let payload = if s.segments == 2 { two } else { three };
        // The server's SYN-ACK advertises `mss`: the client's segments are no longer, TCP's
        // timestamps option (12 bytes, on by default) included.
        let mss = payload + TIMESTAMPS;
        sh(&[
            "ip",
            "-n",
            server_ns,
            "route",
            "change",
            "default",
            "via",
            "198.18.1.1",
            "advmss",
            &mss.to_string(),
        ]);
        let out = s_client(client_ns, s.server, 443, s.sni)
            .wait_with_output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: s_client: {}",
            s.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    thread::sleep(Duration::from_millis(300));
    stop_capture(capture);

    // The premise: each session's hello named its server and was completed by the segment the
    // table says, not before.
    for s in &SESSIONS {
        let segs = client_segments(&pcap, s.server.parse().unwrap());
        let mut joined = Vec::new();
        let mut completing = None;
        for (i, seg) in segs.iter().enumerate() {
            joined.extend_from_slice(seg);
            if completing.is_none() && joined.len() >= ext_end {
                completing = Some(i + 1);
            }
        }
        let (_, _, named) = server_name(&joined).expect("a whole ClientHello in the capture");
        assert_eq!(named, s.sni, "{}", s.name);
        let payload = if s.segments == 2 { two } else { three };
        assert_eq!(segs[0].len(), payload, "{}: the first segment", s.name);
        assert_eq!(
            completing,
            Some(s.segments),
            "{}: {:?}",
            s.name,
            segs.iter().map(Vec::len).collect::<Vec<_>>()
        );
    }

    // Live: exactly the table's counts (the drain every 200 ms; waited for at most 10 s).
    let deadline = Instant::now() + Duration::from_secs(10);
    let m = loop {
        let m = samples(&http_get(vantage_ns, METRICS_PORT, "/metrics"));
        let done = SESSIONS
            .iter()
            .all(|s| suspects(&m, s.name, Some("tls_pool_sni")) >= s.pool_sni as f64);
        if done || Instant::now() > deadline {
            break m;
        }
        thread::sleep(Duration::from_millis(100));
    };
    for s in &SESSIONS {
        assert_eq!(
            suspects(&m, s.name, Some("tls_pool_sni")),
            s.pool_sni as f64,
            "{}: live tls_pool_sni",
            s.name
        );
        assert_eq!(
            suspects(&m, s.name, None),
            s.pool_sni as f64,
            "{}: live, every reason",
            s.name
        );
    }

    // Replayed: the same.
    let (_, report) = common::replay(&["--config", config.to_str().unwrap()], &[&pcap]);
    for s in &SESSIONS {
        let count = |reason: Option<&str>| -> u64 {
            report["totals"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| {
                    e["metric"] == "mining_sensor_suspect_flows_total"
                        && e["labels"]["range"] == s.name
                        && reason.is_none_or(|r| e["labels"]["reason"] == r)
                })
                .map(|e| e["value"].as_u64().unwrap_or(0))
                .sum()
        };
        assert_eq!(
            count(Some("tls_pool_sni")),
            s.pool_sni,
            "{}: replayed",
            s.name
        );
        assert_eq!(
            count(None),
            s.pool_sni,
            "{}: replayed, every reason",
            s.name
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
