//! Neighbours on one port (`[[peers]]`), live and in replay.
//!
//! Live: three hosts with their own Ethernet addresses on one switch (a bridge in a namespace of
//! its own, learning no addresses, so that it floods every frame to every port) that hands every
//! frame to the vantage namespace's single interface, as a SPAN port does:
//!
//! ```text
//!  pe-a  router a  02:00:5e:10:00:01  198.18.9.1  ------------+
//!  pe-b  router b  02:00:5e:10:00:02  198.18.9.2  ------------+-- pe-sw (bridge,  --> pe-v (sensor
//!  pe-c  host c    02:00:5e:30:00:07  198.18.9.10, 198.18.9.3 -+   flooding)          on pev0)
//! ```
//!
//! The watched range is 198.18.9.0/30 (a, b, and c's second address) and 198.18.10.0/30 (an
//! address c uses on VLAN 100, in tagged frames it writes itself). a and b are configured
//! neighbours by address, v by VLAN 100, c is not until a reload adds it; a last reload gives a's
//! router a new name. Every frame enters the bridge once, so the vantage interface receives each
//! exactly once. The expected counts are worked out from the datagrams sent: UDP with 100 bytes
//! of payload, 20 + 8 + 100 = 128 IP bytes each.
//!
//! Replay: a capture written here with frames from two routers' addresses, a third unknown one and
//! a VLAN, replayed through `mining-sensor replay`, with the same exact counts in the JSON report
//! (totals and buckets) and the OpenMetrics output.
//!
//! Needs root, iproute2 and ethtool. Addresses from 198.18.0.0/15 only; namespaces and
//! interfaces start with `pe`; every loop is bounded.

mod common;

use std::{
    net::{Ipv4Addr, SocketAddr, UdpSocket},
    thread,
    time::{Duration, Instant},
};

use common::{Namespaces, http_get, in_ns, samples, sh, spawn_sensor, wait_for};
use pcap_file::DataLink;
use test_support::Packet;

const SENSOR_PORT: u16 = 19831;
const MAC_A: &str = "02:00:5e:10:00:01";
const MAC_B: &str = "02:00:5e:10:00:02";
const MAC_C: &str = "02:00:5e:30:00:07";
const PAYLOAD: usize = 100;
/// IP bytes of each datagram: 20 (IPv4) + 8 (UDP) + 100.
const IP_BYTES: u64 = 128;

const PEERS: &str = "[[peers]]\nname = \"a\"\nmacs = [\"02:00:5e:10:00:01\"]\n[[peers]]\nname = \"b\"\nmacs = [\"02:00:5e:10:00:02\"]\n";
const PEER_C: &str = "[[peers]]\nname = \"c\"\nmacs = [\"02:00:5e:30:00:07\"]\n";

struct Switch {
    a: String,
    b: String,
    c: String,
    v: String,
    _namespaces: Namespaces,
}

impl Switch {
    fn new() -> Self {
        let id = std::process::id();
        let name = |n: &str| format!("pe-{n}-{id}");
        let (a, b, c, sw, v) = (name("a"), name("b"), name("c"), name("sw"), name("v"));
        let t = Self {
            _namespaces: Namespaces::new(&[&a, &b, &c, &sw, &v]),
            a,
            b,
            c,
            v,
        };
        for ns in [&t.a, &t.b, &t.c, &sw, &t.v] {
            // No IPv6 neighbour discovery or MLD on the links: only the test's datagrams and ARP.
            sh(&[
                "ip",
                "netns",
                "exec",
                ns,
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ]);
        }
        sh(&["ip", "-n", &sw, "link", "add", "pebr", "type", "bridge"]);
        sh(&["ip", "-n", &sw, "link", "set", "pebr", "up"]);
        sh(&[
            "ip", "link", "add", "pev0", "netns", &t.v, "type", "veth", "peer", "name", "pesv",
            "netns", &sw,
        ]);
        sh(&["ip", "-n", &sw, "link", "set", "pesv", "up"]);
        sh(&["ip", "-n", &t.v, "link", "set", "pev0", "up"]);
        for (ns, host_if, sw_if, mac, addrs) in [
            (&t.a, "pea0", "pesa", MAC_A, &["198.18.9.1/24"][..]),
            (&t.b, "peb0", "pesb", MAC_B, &["198.18.9.2/24"][..]),
            (
                &t.c,
                "pec0",
                "pesc",
                MAC_C,
                &["198.18.9.10/24", "198.18.9.3/24"][..],
            ),
        ] {
            sh(&[
                "ip", "link", "add", host_if, "netns", ns, "type", "veth", "peer", "name", sw_if,
                "netns", &sw,
            ]);
            sh(&["ip", "-n", ns, "link", "set", host_if, "address", mac]);
            for a in addrs {
                sh(&["ip", "-n", ns, "addr", "add", a, "dev", host_if]);
            }
            sh(&["ip", "-n", ns, "link", "set", host_if, "up"]);
            sh(&["ip", "-n", &sw, "link", "set", sw_if, "master", "pebr"]);
            sh(&["ip", "-n", &sw, "link", "set", sw_if, "up"]);
        }
        // The SPAN: a bridge that learns no addresses floods every frame to every other port, the
        // vantage interface's included (a hub). Each frame enters the bridge once, so the vantage
        // interface receives each once. The port towards the vantage interface writes VLAN tags
        // into the frame, as they are on a wire (a veth would otherwise hand the tag over beside
        // the frame, where XDP does not see it).
        sh(&["ip", "-n", &sw, "link", "set", "pesv", "master", "pebr"]);
        sh(&[
            "ip", "netns", "exec", &sw, "ethtool", "-K", "pesv", "txvlan", "off",
        ]);
        for port in ["pesa", "pesb", "pesc", "pesv"] {
            sh(&[
                "ip",
                "-n",
                &sw,
                "link",
                "set",
                "dev",
                port,
                "type",
                "bridge_slave",
                "learning",
                "off",
            ]);
        }
        t
    }
}

/// Sends `n` datagrams of `PAYLOAD` bytes from `from` to `to` (port 9000) inside namespace `ns`.
fn send(ns: &str, from: &str, to: &str, n: usize) {
    let (from, to): (Ipv4Addr, Ipv4Addr) = (from.parse().unwrap(), to.parse().unwrap());
    in_ns(ns, move || {
        let s = UdpSocket::bind(SocketAddr::from((from, 0))).unwrap();
        for _ in 0..n {
            s.send_to(&[7u8; PAYLOAD], SocketAddr::from((to, 9000)))
                .unwrap();
            // Paced, so that no queue on the way drops a datagram.
            thread::sleep(Duration::from_millis(2));
        }
    })
    .join()
    .unwrap();
}

/// Sends `frames` as they are (VLAN tags in the bytes, as a trunk port carries them) out of `dev`
/// in namespace `ns`, paced like `send`.
fn send_frames(ns: &str, dev: &str, frames: Vec<Vec<u8>>) {
    common::send_frames(ns, dev, frames, Duration::from_millis(2));
}

fn mac(s: &str) -> [u8; 6] {
    let v: Vec<u8> = s
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    v.try_into().unwrap()
}

/// A socket on port 9000 in namespace `ns`, so that datagrams to it draw no ICMP error back (which
/// would be watched traffic too). Kept open while the value lives.
fn sink(ns: &str, addr: &str) -> UdpSocket {
    let addr: Ipv4Addr = addr.parse().unwrap();
    in_ns(ns, move || {
        UdpSocket::bind(SocketAddr::from((addr, 9000))).unwrap()
    })
    .join()
    .unwrap()
}

fn peer_series(ns: &str, metric: &str, dir: &str, peer: &str) -> f64 {
    let s = samples(&http_get(ns, SENSOR_PORT, "/metrics"));
    s.iter()
        .find(|((name, labels), _)| {
            name == metric
                && labels.get("range").map(String::as_str) == Some("w")
                && labels.get("direction").map(String::as_str) == Some(dir)
                && labels.get("peer").map(String::as_str) == Some(peer)
        })
        .map(|(_, v)| *v)
        .unwrap_or(0.0)
}

#[test]
fn pe_two_routers_on_one_mirror_port() {
    let t = Switch::new();
    let dir = std::env::temp_dir().join(format!("pe-live-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("sensor.toml");
    let base = "drain_interval = \"100ms\"\n[events]\nsink = \"none\"\n[inspect]\nbudget = 0\n[[ranges]]\nname = \"w\"\ncidrs = [\"198.18.9.0/30\", \"198.18.10.0/30\"]\n[[peers]]\nname = \"v\"\nvlans = [100]\n";
    std::fs::write(&config, format!("{base}{PEERS}")).unwrap();
    let log = dir.join("sensor.log");
    let listen = format!("127.0.0.1:{SENSOR_PORT}");
    let sensor = spawn_sensor(
        &t.v,
        &config,
        &["--iface", "pev0", "--listen", &listen],
        &log,
        "info",
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !http_get(&t.v, SENSOR_PORT, "/metrics")
        .contains("mining_sensor_interface_up{iface=\"pev0\"} 1")
    {
        assert!(
            Instant::now() < deadline,
            "sensor did not attach: {}",
            std::fs::read_to_string(&log).unwrap()
        );
        thread::sleep(Duration::from_millis(100));
    }
    let _sinks = [
        sink(&t.a, "198.18.9.1"),
        sink(&t.b, "198.18.9.2"),
        sink(&t.c, "198.18.9.10"),
    ];

    // a -> c: from w (a's address), delivered by a's router: 20 datagrams.
    send(&t.a, "198.18.9.1", "198.18.9.10", 20);
    // b -> c: from w, delivered by b: 30.
    send(&t.b, "198.18.9.2", "198.18.9.10", 30);
    // c's watched address -> a: from w, delivered by c (no neighbour: `other`), and to w,
    // handed to a: 10.
    send(&t.c, "198.18.9.3", "198.18.9.1", 10);
    // c's address on VLAN 100 -> b's there, tagged frames written by c: from w, the tag names
    // neighbour v (c's address is nobody's): 8. Nobody on VLAN 100 takes them in, so nothing
    // answers.
    let tagged = Packet::udp4(
        "198.18.10.3".parse().unwrap(),
        "198.18.10.10".parse().unwrap(),
        4000,
        9000,
        &[7; PAYLOAD],
    )
    .macs(mac(MAC_C), mac(MAC_B))
    .vlan(0x8100, 100)
    .build();
    send_frames(&t.c, "pec0", vec![tagged; 8]);

    let packets = "mining_sensor_peer_packets_total";
    let bytes = "mining_sensor_peer_bytes_total";
    let wait = |metric: &str, dir: &str, peer: &str, want: u64| {
        wait_for(
            &t.v,
            SENSOR_PORT,
            metric,
            &[("direction", dir), ("peer", peer), ("range", "w")],
            want as f64,
            Duration::from_secs(10),
        )
    };
    // By hand: from w, a 20, b 30, other 10, v 8 (68 = packets_total from); to w, a 10.
    assert_eq!(wait(packets, "from", "a", 20), 20.0);
    assert_eq!(wait(bytes, "from", "a", 20 * IP_BYTES), 2_560.0);
    assert_eq!(wait(packets, "from", "b", 30), 30.0);
    assert_eq!(wait(bytes, "from", "b", 30 * IP_BYTES), 3_840.0);
    assert_eq!(wait(packets, "from", "other", 10), 10.0);
    assert_eq!(wait(packets, "to", "a", 10), 10.0);
    assert_eq!(wait(bytes, "to", "a", 10 * IP_BYTES), 1_280.0);
    assert_eq!(wait(packets, "from", "v", 8), 8.0);
    assert_eq!(wait(bytes, "from", "v", 8 * IP_BYTES), 1_024.0);
    let s = samples(&http_get(&t.v, SENSOR_PORT, "/metrics"));
    let traffic = |metric: &str, dir: &str| {
        common::get(
            &s,
            metric,
            &[("direction", dir), ("iface", "pev0"), ("range", "w")],
        )
    };
    assert_eq!(traffic("mining_sensor_packets_total", "from"), 68.0);
    assert_eq!(traffic("mining_sensor_bytes_total", "from"), 68.0 * 128.0);
    assert_eq!(traffic("mining_sensor_packets_total", "to"), 10.0);
    assert_eq!(peer_series(&t.v, packets, "to", "b"), 0.0);
    assert_eq!(peer_series(&t.v, packets, "to", "other"), 0.0);

    // Reload with c as a neighbour: its next datagrams count under c, `other` keeps its 10, and
    // nothing is reset.
    std::fs::write(&config, format!("{base}{PEERS}{PEER_C}")).unwrap();
    sh(&["kill", "-HUP", &sensor.0.id().to_string()]);
    assert_eq!(
        wait_for(
            &t.v,
            SENSOR_PORT,
            "mining_sensor_config_reloads_total",
            &[("result", "success")],
            1.0,
            Duration::from_secs(10),
        ),
        1.0,
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    send(&t.c, "198.18.9.3", "198.18.9.1", 10);
    assert_eq!(wait(packets, "from", "c", 10), 10.0);
    assert_eq!(wait(packets, "to", "a", 20), 20.0);
    assert_eq!(peer_series(&t.v, packets, "from", "other"), 10.0);
    assert_eq!(peer_series(&t.v, packets, "from", "a"), 20.0);
    assert_eq!(peer_series(&t.v, packets, "from", "b"), 30.0);

    // Reload without a, and with d, a new name for a's router: d takes a's freed peer index, and
    // must start from zero (nothing of a's counts moves to it) while a's series stay as they were.
    std::fs::write(
        &config,
        format!(
            "{base}[[peers]]\nname = \"b\"\nmacs = [\"{MAC_B}\"]\n{PEER_C}[[peers]]\nname = \"d\"\nmacs = [\"{MAC_A}\"]\n"
        ),
    )
    .unwrap();
    sh(&["kill", "-HUP", &sensor.0.id().to_string()]);
    assert_eq!(
        wait_for(
            &t.v,
            SENSOR_PORT,
            "mining_sensor_config_reloads_total",
            &[("result", "success")],
            2.0,
            Duration::from_secs(10),
        ),
        2.0,
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    send(&t.a, "198.18.9.1", "198.18.9.10", 5);
    assert_eq!(wait(packets, "from", "d", 5), 5.0);
    assert_eq!(wait(bytes, "from", "d", 5 * IP_BYTES), 640.0);
    assert_eq!(peer_series(&t.v, packets, "from", "a"), 20.0);
    assert_eq!(peer_series(&t.v, packets, "to", "a"), 20.0);
    // 68 + 10 + 5 datagrams from w in all: a 20, b 30, other 10, v 8, c 10, d 5.
    let s = samples(&http_get(&t.v, SENSOR_PORT, "/metrics"));
    assert_eq!(
        common::get(
            &s,
            "mining_sensor_packets_total",
            &[("direction", "from"), ("iface", "pev0"), ("range", "w")]
        ),
        83.0
    );
    drop(sensor);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn pe_replay_of_a_capture_from_two_routers() {
    let dir = std::env::temp_dir().join(format!("pe-replay-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b, stranger) = (mac(MAC_A), mac(MAC_B), [0x02, 0, 0x5e, 0x30, 0, 0x09]);
    let host = [0x02, 0, 0x5e, 0x20, 0, 0x01];
    let watched: Ipv4Addr = "198.18.9.1".parse().unwrap();
    let outside: Ipv4Addr = "198.51.100.7".parse().unwrap();
    let out = Packet::udp4(watched, outside, 4000, 9000, &[7; PAYLOAD]);
    let back = Packet::udp4(outside, watched, 9000, 4000, &[7; PAYLOAD]);
    // 2019-06-01T00:00:00Z, one frame a second: minute 1 holds frames 0-59, minute 2 the rest.
    let t0 = 1_559_347_200u64;
    let mut frames = Vec::new();
    for i in 0..90u64 {
        // Replies (to w) handed to a's router; from w: a's router, b's VLAN 200 (from a stranger's
        // address: the tag decides), a stranger's address without a tag, and b's router.
        let f = if i % 10 == 9 {
            back.clone().macs(host, a).build()
        } else if i % 3 == 0 {
            out.clone().macs(a, host).build()
        } else if i % 5 == 0 {
            out.clone().macs(stranger, host).vlan(0x8100, 200).build()
        } else if i % 7 == 0 {
            out.clone().macs(stranger, host).build()
        } else {
            out.clone().macs(b, host).build()
        };
        frames.push((Duration::from_secs(t0 + i), f));
    }
    // By hand, over i = 0..89:
    // - replies (handed to a): i ending in 9: 9, 19, ..., 89: 9;
    // - from a: multiples of 3, 30 of them (0..87), less those ending in 9 (9, 39, 69): 27;
    // - from b by VLAN: multiples of 5 (18), less those of 15 (0, 15, 30, 45, 60, 75): 12;
    // - from the stranger (`other`): multiples of 7 (13) that are not of 3 (0, 21, 42, 63, 84),
    //   not of 5 (35, 70) and not replies (49): 7, 14, 28, 56, 77: 5;
    // - from b by address: the rest, 90 - 9 - 27 - 12 - 5 = 37; b in all 12 + 37 = 49.
    let pcap = dir.join("two-routers.pcap");
    test_support::write_pcap(
        std::fs::File::create(&pcap).unwrap(),
        DataLink::ETHERNET,
        frames.iter().map(|(t, f)| (*t, f)),
    )
    .unwrap();
    let config = dir.join("replay.toml");
    std::fs::write(
        &config,
        "[[ranges]]\nname = \"w\"\ncidrs = [\"198.18.9.0/30\"]\n[[peers]]\nname = \"a\"\nmacs = [\"02:00:5e:10:00:01\"]\n[[peers]]\nname = \"b\"\nmacs = [\"02:00:5e:10:00:02\"]\nvlans = [200]\n",
    )
    .unwrap();
    let om = dir.join("out.om");
    let page = dir.join("report.html");
    let (_, report) = common::replay(
        &[
            "--config",
            config.to_str().unwrap(),
            "--openmetrics",
            om.to_str().unwrap(),
            "--report",
            page.to_str().unwrap(),
            "--bucket",
            "1m",
        ],
        &[&pcap],
    );
    let totals = &report["totals"];
    let peer = |m: &str, dir: &str, p: &str| {
        common::sample_sum(
            totals,
            m,
            &[("range", "w"), ("direction", dir), ("peer", p)],
        )
    };
    let (pp, pb) = (
        "mining_sensor_peer_packets_total",
        "mining_sensor_peer_bytes_total",
    );
    assert_eq!(peer(pp, "from", "a"), 27);
    assert_eq!(peer(pb, "from", "a"), 27 * IP_BYTES);
    assert_eq!(peer(pp, "from", "b"), 49);
    assert_eq!(peer(pb, "from", "b"), 49 * IP_BYTES);
    assert_eq!(peer(pp, "from", "other"), 5);
    assert_eq!(peer(pb, "from", "other"), 5 * IP_BYTES);
    assert_eq!(peer(pp, "to", "a"), 9);
    assert_eq!(peer(pb, "to", "a"), 9 * IP_BYTES);
    // The shares add up to the range's totals: 27 + 49 + 5 = 81 from, 9 to.
    let total =
        |m: &str, dir: &str| common::sample_sum(totals, m, &[("range", "w"), ("direction", dir)]);
    assert_eq!(total("mining_sensor_packets_total", "from"), 81);
    assert_eq!(total("mining_sensor_bytes_total", "from"), 81 * IP_BYTES);
    assert_eq!(total("mining_sensor_packets_total", "to"), 9);
    // Every bucket carries the peer counters: after minute 1 (frames 0-59, t0 is a minute
    // boundary), a's from count is the multiples of 3 in 0..59 not ending in 9: 20 - 2 (9, 39) = 18.
    let buckets = report["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 2);
    assert_eq!(
        common::sample_sum(
            &buckets[0]["samples"],
            pp,
            &[("range", "w"), ("direction", "from"), ("peer", "a")]
        ),
        18
    );
    assert_eq!(
        common::sample_sum(
            &buckets[1]["samples"],
            pp,
            &[("range", "w"), ("direction", "from"), ("peer", "a")]
        ),
        27
    );
    let om = std::fs::read_to_string(&om).unwrap();
    assert!(
        om.contains(&format!(
            "mining_sensor_peer_packets_total{{direction=\"from\",peer=\"b\",range=\"w\"}} 49 {}.000",
            t0 + 120
        )),
        "{om}"
    );
    // The analyst report: each neighbour's share of the range's bytes over time, and in the
    // headline the neighbour that carried most: b, 49 of the 90 packets of equal size, 54.4%.
    let page = std::fs::read_to_string(&page).unwrap();
    // The chart's title, as SVG text (plotters writes the apostrophes as entities).
    assert!(
        page.contains("Each neighbour&apos;s share of the range&apos;s IP bytes"),
        "{page}"
    );
    assert!(
        page.contains("most bytes through neighbour b (54.4%)"),
        "{page}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
