//! The XDP program itself, through BPF_PROG_TEST_RUN: packets built here, exact counter values
//! derived by hand. Needs root (or CAP_BPF + CAP_NET_ADMIN); run by `cargo xtask test`.
//!
//! BPF_PROG_TEST_RUN without a context runs the program as if the frame arrived on the loopback
//! device of the caller's network namespace (ifindex 1), which the tests register as slot 1.

use std::net::{Ipv4Addr, Ipv6Addr};

use mining_sensor::{
    bpf::{Kernel, Variant},
    config::Config,
};
use sensor_common::{
    DIR_FROM, DIR_TO, ParseEvent, UNWATCHED_SLOT,
    stratum::{ADDRESS, ADDRESS_MIN_LEN, Dialect, MARKERS, RULES},
};
use test_support::{Packet, tls_client_hello};

/// ClientHellos split over segments on any port.
#[path = "kernel/hello.rs"]
mod hello;

const XDP_PASS: u32 = 2;
const SLOT: usize = 1;
const A: usize = 0; // 198.18.0.0/15, 2001:db8:a::/48
const B: usize = 1; // 198.18.1.0/24 (inside A), 203.0.113.0/24
const C: usize = 2; // 192.0.2.0/24
const MONERO: usize = Dialect::Monero as usize;
const BITCOIN: usize = Dialect::Bitcoin as usize;
const ETHEREUM: usize = Dialect::Ethereum as usize;

const CONFIG: &str = r#"
[[ranges]]
name = "a"
cidrs = ["198.18.0.0/15", "2001:db8:a::/48"]
[[ranges]]
name = "b"
cidrs = ["198.18.1.0/24", "203.0.113.0/24"]
[[ranges]]
name = "c"
cidrs = ["192.0.2.0/24"]
"#;

const WALLET: &str = "44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A";

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn ip6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn xmrig_login() -> Vec<u8> {
    format!(
        "{{\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"login\",\"params\":{{\"login\":\"{WALLET}\",\"pass\":\"x\",\"agent\":\"XMRig/6.16.0 (Linux x86_64) libuv/1.42.0 gcc/5.4.0\",\"algo\":[\"rx/0\",\"cn/2\",\"cn/r\",\"cn/fast\",\"cn/half\",\"cn/xao\",\"cn/rto\",\"cn/rwz\",\"cn/zls\",\"cn/double\",\"cn-lite/1\",\"cn-heavy/0\",\"cn-pico\",\"rx/wow\",\"rx/arq\",\"argon2/chukwa\"]}}}}\n"
    )
    .into_bytes()
}

/// cpuminer 2.5.1's (pooler) first two messages to a Stratum V1 pool, one a segment.
fn cpuminer_subscribe_authorize() -> [Vec<u8>; 2] {
    [
        b"{\"id\": 1, \"method\": \"mining.subscribe\", \"params\": [\"cpuminer/2.5.1\"]}\n".to_vec(),
        b"{\"id\": 2, \"method\": \"mining.authorize\", \"params\": [\"1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2.w1\", \"x\"]}\n".to_vec(),
    ]
}

const LOGIN_REPLY: &[u8] = b"{\"id\":1,\"jsonrpc\":\"2.0\",\"error\":null,\"result\":{\"id\":\"a1b2\",\"job\":{\"blob\":\"0e0e9bb1\",\"job_id\":\"j1\",\"target\":\"f3220000\",\"algo\":\"rx/0\",\"height\":2000000,\"seed_hash\":\"aa\"},\"extensions\":[\"algo\"],\"status\":\"OK\"}}\n";
const SUBMIT: &[u8] = b"{\"id\":2,\"jsonrpc\":\"2.0\",\"method\":\"submit\",\"params\":{\"id\":\"a1b2\",\"job_id\":\"j1\",\"nonce\":\"0a0b0c0d\",\"result\":\"00ff\",\"algo\":\"rx/0\"}}\n";
const KEEPALIVE: &[u8] =
    b"{\"id\":3,\"jsonrpc\":\"2.0\",\"method\":\"keepalived\",\"params\":{\"id\":\"a1b2\"}}\n";

/// The build of the program under test: the one `Kernel::load` picks (`may_goto` loops on this
/// kernel), or the one `MINING_SENSOR_TEST_VARIANT` names. `cargo xtask test` runs this file a
/// second time with `bpf_loop`, the build for kernels before 6.9.
fn variant() -> Option<Variant> {
    match std::env::var("MINING_SENSOR_TEST_VARIANT").as_deref() {
        Err(_) | Ok("") => None,
        Ok("may_goto") => Some(Variant::MayGoto),
        Ok("bpf_loop") => Some(Variant::BpfLoop),
        Ok(other) => panic!("MINING_SENSOR_TEST_VARIANT={other}: use may_goto or bpf_loop"),
    }
}

fn load_with_ranges(cfg: &Config) -> Kernel {
    let mut k = match variant() {
        None => Kernel::load(cfg),
        Some(v) => Kernel::load_variant(cfg, v),
    }
    .expect("load (are the tests running as root?)");
    k.configure(cfg).unwrap();
    k
}

fn load_for_replay(cfg: &Config) -> Kernel {
    match variant() {
        None => Kernel::load_for_replay(cfg),
        Some(v) => Kernel::load_for_replay_variant(cfg, v),
    }
    .expect("load (are the tests running as root?)")
}

/// The program loaded for replay with `cfg`, its interface slot set as `Sensor`'s is: for tests
/// that run it a frame at a time through its batch entry (`run_at`), whose clock is the frames'
/// capture times.
fn replay_kernel(cfg: &Config) -> Kernel {
    let mut k = load_for_replay(cfg);
    k.configure(cfg).unwrap();
    k.set_iface_slot(1, SLOT as u32).unwrap();
    k
}

/// Runs `frame` through `k`'s batch entry (`replay_kernel`) at capture time `ts_ns`, checked to
/// have run whole.
fn run_at(k: &Kernel, ts_ns: u64, frame: &[u8]) {
    use mining_sensor::bpf::{BatchPacket, batch_input};
    let mut input = Vec::new();
    let packet = |_| BatchPacket {
        ts_ns,
        ifindex: 1,
        data: frame,
        wire_len: frame.len(),
    };
    batch_input((0..1).map(packet), &mut input);
    assert_eq!(
        k.batch_runner().unwrap().run_batch(&input).unwrap(),
        sensor_common::REPLAY_DONE + 1
    );
}

#[test]
fn this_kernel_runs_the_may_goto_build_and_the_other_loads_too() {
    // Linux 6.9 and later verify `may_goto`: a fallback here would hide a verifier regression of
    // the faster build. The `bpf_loop` build must load as well (every test of this file runs on
    // it in `cargo xtask test`'s second pass).
    let cfg = Config::parse(CONFIG, "test").unwrap();
    assert_eq!(Kernel::load(&cfg).unwrap().variant(), Variant::MayGoto);
    assert_eq!(
        Kernel::load_variant(&cfg, Variant::BpfLoop)
            .unwrap()
            .variant(),
        Variant::BpfLoop
    );
    assert_eq!(
        load_for_replay(&cfg).variant(),
        variant().unwrap_or(Variant::MayGoto)
    );
}

struct Sensor {
    k: Kernel,
}

/// A configuration watching one range, `c` (192.0.2.0/24, index 0), after `other` sections
/// (pools, events).
fn c_config(other: &str) -> String {
    format!("{other}[[ranges]]\nname = \"c\"\ncidrs = [\"192.0.2.0/24\"]\n")
}

impl Sensor {
    fn new() -> Self {
        Self::with(CONFIG)
    }

    fn with(config: &str) -> Self {
        let cfg = Config::parse(config, "test").unwrap();
        let mut k = load_with_ranges(&cfg);
        k.set_iface_slot(1, SLOT as u32).unwrap();
        Self { k }
    }

    /// A program watching one range, `c` (`c_config`).
    fn watching_c(other: &str) -> Self {
        Self::with(&c_config(other))
    }

    /// Runs the program and checks it passed the frame on unchanged.
    fn run(&mut self, frame: &[u8]) {
        let (action, out) = self.k.test_run(frame).unwrap();
        assert_eq!(action, XDP_PASS);
        assert_eq!(out, frame, "the program must never alter a packet");
    }

    fn traffic(&self, range: usize, dir: usize) -> (u64, u64) {
        let c = self.k.traffic_cell(SLOT, range, dir).unwrap();
        (c.packets, c.bytes)
    }

    fn stratum(&self, range: usize, dir: usize, dialect: usize) -> u64 {
        self.k.stratum_cell(false, range, dir, dialect).unwrap()
    }

    fn flows(&self, range: usize, dir: usize, dialect: usize) -> u64 {
        self.k.stratum_cell(true, range, dir, dialect).unwrap()
    }

    fn event(&self, e: ParseEvent) -> u64 {
        self.k.parse_event(e).unwrap()
    }

    /// Sum of every Stratum packet cell, every range, direction and dialect.
    fn all_stratum(&self) -> u64 {
        let mut n = 0;
        for r in 0..=UNWATCHED_SLOT {
            for d in [DIR_FROM, DIR_TO] {
                for dl in 0..3 {
                    n += self.stratum(r, d, dl);
                }
            }
        }
        n
    }

    fn all_traffic_packets(&self) -> u64 {
        [A, B, C]
            .iter()
            .flat_map(|&r| [DIR_FROM, DIR_TO].map(|d| self.traffic(r, d).0))
            .sum()
    }
}

#[test]
fn loopback_is_the_test_run_interface() {
    let mut s = Sensor::new();
    s.run(&Packet::udp4(ip("192.0.2.1"), ip("198.51.100.1"), 1, 2, b"x").build());
    assert_eq!(s.event(ParseEvent::Seen), 1);
    assert_eq!(s.event(ParseEvent::UnknownInterface), 0);
}

#[test]
fn source_and_destination_count_per_range_with_ip_bytes() {
    let mut s = Sensor::new();
    let out = Packet::tcp4(ip("192.0.2.10"), ip("198.51.100.7"), 40000, 443, &[7; 100]);
    let back = Packet::tcp4(ip("198.51.100.7"), ip("192.0.2.10"), 443, 40000, &[7; 30]);
    s.run(&out.build());
    s.run(&out.build());
    s.run(&back.build());
    assert_eq!(s.traffic(C, DIR_FROM), (2, 2 * 140));
    assert_eq!(s.traffic(C, DIR_TO), (1, 70));
    assert_eq!(s.traffic(A, DIR_FROM), (0, 0));
    // Unwatched plain traffic is not counted anywhere.
    s.run(&Packet::tcp4(ip("198.51.100.7"), ip("198.51.100.8"), 1, 2, b"").build());
    assert_eq!(s.all_traffic_packets(), 3);
}

#[test]
fn nested_ranges_count_each_range_once_and_both_endpoints() {
    let mut s = Sensor::new();
    // 198.18.1.5 is in a (the /15) and in b (its /24); 192.0.2.1 is in c.
    let p = Packet::udp4(ip("198.18.1.5"), ip("192.0.2.1"), 5000, 6000, &[0; 12]);
    s.run(&p.build());
    let len = p.ip_len();
    assert_eq!(len, 20 + 8 + 12);
    assert_eq!(s.traffic(A, DIR_FROM), (1, len));
    assert_eq!(s.traffic(B, DIR_FROM), (1, len));
    assert_eq!(s.traffic(C, DIR_TO), (1, len));
    assert_eq!(s.all_traffic_packets(), 3);
    // 198.18.2.1: only a. Both endpoints in a: from and to.
    s.run(&Packet::udp4(ip("198.18.2.1"), ip("198.19.255.255"), 1, 2, b"").build());
    assert_eq!(s.traffic(A, DIR_FROM), (2, len + 28));
    assert_eq!(s.traffic(A, DIR_TO), (1, 28));
    assert_eq!(s.traffic(B, DIR_FROM), (1, len));
}

#[test]
fn vlan_tags_do_not_change_ip_bytes() {
    let mut s = Sensor::new();
    let p = Packet::tcp4(ip("203.0.113.9"), ip("198.51.100.1"), 1000, 80, &[1; 64]);
    let len = p.ip_len();
    assert_eq!(len, 20 + 20 + 64);
    s.run(&p.clone().vlan(0x8100, 10).build());
    s.run(&p.clone().vlan(0x88a8, 100).vlan(0x8100, 10).build());
    s.run(
        &p.clone()
            .vlan(0x9100, 1)
            .vlan(0x8100, 2)
            .vlan(0x8100, 3)
            .build(),
    );
    s.run(
        &p.clone()
            .vlan(0x88a8, 1)
            .vlan(0x8100, 2)
            .vlan(0x8100, 3)
            .vlan(0x8100, 4)
            .build(),
    );
    assert_eq!(s.traffic(B, DIR_FROM), (4, 4 * len));
    // Five tags are more than the parser follows: passed, not counted, reason recorded.
    s.run(
        &p.clone()
            .vlan(0x88a8, 1)
            .vlan(0x8100, 2)
            .vlan(0x8100, 3)
            .vlan(0x8100, 4)
            .vlan(0x8100, 5)
            .build(),
    );
    assert_eq!(s.traffic(B, DIR_FROM), (4, 4 * len));
    assert_eq!(s.event(ParseEvent::TooManyVlanTags), 1);
}

#[test]
fn mpls_label_stacks_are_stepped_over_to_the_ip_packet() {
    let mut s = Sensor::new();
    // A login from range a under one label: counted as the plain frame would be, and scanned.
    let login = Packet::tcp4(
        ip("198.18.0.7"),
        ip("198.51.100.1"),
        40000,
        3333,
        &xmrig_login(),
    );
    let login_len = login.ip_len();
    s.run(&login.clone().mpls(16).build());
    assert_eq!(s.traffic(A, DIR_FROM), (1, login_len));
    assert_eq!(s.stratum(A, DIR_FROM, MONERO), 1);
    assert_eq!(s.flows(A, DIR_FROM, MONERO), 1);
    // The pool's reply under a VLAN tag and three labels (transport, service, entropy), to a.
    let reply = Packet::tcp4(
        ip("198.51.100.1"),
        ip("198.18.0.7"),
        3333,
        40000,
        LOGIN_REPLY,
    )
    .vlan(0x8100, 7)
    .mpls(16)
    .mpls(7)
    .mpls(30_000);
    s.run(&reply.build());
    assert_eq!(s.traffic(A, DIR_TO), (1, reply.ip_len()));
    assert_eq!(s.stratum(A, DIR_TO, MONERO), 1);
    // IPv6 under eight labels, the most followed, with four VLAN tags before them: 14 + 16 + 32
    // bytes of headers.
    let mut deep = Packet::udp6(ip6("2001:db8:a::1"), ip6("2001:db8:b::1"), 5353, 53, b"x")
        .vlan(0x88a8, 1)
        .vlan(0x8100, 2)
        .vlan(0x8100, 3)
        .vlan(0x8100, 4);
    for label in 100..108 {
        deep = deep.mpls(label);
    }
    let six = deep.ip_len();
    assert_eq!(six, 40 + 8 + 1);
    s.run(&deep.clone().build());
    assert_eq!(s.traffic(A, DIR_FROM), (2, login_len + six));
    // A ninth label: passed, not counted, reason recorded.
    s.run(&deep.mpls(108).build());
    assert_eq!(s.traffic(A, DIR_FROM), (2, login_len + six));
    assert_eq!(s.event(ParseEvent::TooManyMplsLabels), 1);
    // A pseudowire: one label (16, bottom of the stack, TTL 64) whose payload opens with a
    // control word (first nibble 0), then an Ethernet frame. Not read: counted as MPLS carrying
    // no IP.
    let plain = Packet::tcp4(ip("198.18.0.9"), ip("198.51.100.1"), 1, 2, b"{}").build();
    let mut pw = plain[..12].to_vec();
    pw.extend_from_slice(&[0x88, 0x47, 0x00, 0x01, 0x01, 0x40, 0, 0, 0, 0]);
    pw.extend_from_slice(&plain);
    s.run(&pw);
    assert_eq!(s.event(ParseEvent::MplsNotIp), 1);
    // Stacks cut short: the bottom entry whole and no byte after it; an entry that is not the
    // bottom, then the frame's end.
    s.run(&pw[..18]);
    let mut cut = pw[..14].to_vec();
    cut.extend_from_slice(&[0x00, 0x01, 0x00, 0x40]);
    s.run(&cut);
    assert_eq!(s.event(ParseEvent::TruncatedMpls), 2);
    assert_eq!(s.traffic(A, DIR_FROM), (2, login_len + six));
    assert_eq!(s.event(ParseEvent::NotIp), 0);
}

#[test]
fn ipv4_options_are_skipped_to_reach_the_payload() {
    let mut s = Sensor::new();
    for words in [1, 4, 10] {
        let p = Packet::tcp4(
            ip("198.18.0.1"),
            ip("198.51.100.1"),
            40000 + words as u16,
            3333,
            KEEPALIVE,
        )
        .ipv4_options(words);
        s.run(&p.build());
    }
    assert_eq!(s.stratum(A, DIR_FROM, MONERO), 3);
    assert_eq!(s.flows(A, DIR_FROM, MONERO), 3);
}

#[test]
fn ipv6_with_extension_headers() {
    let mut s = Sensor::new();
    let src = ip6("2001:db8:a::5");
    let dst = ip6("2001:db8:ffff::1");
    let plain = Packet::tcp6(src, dst, 50000, 3333, SUBMIT);
    let ext = Packet::tcp6(src, dst, 50001, 3333, SUBMIT)
        .ipv6_ext(0, 8)
        .ipv6_ext(43, 24)
        .ipv6_ext(60, 16);
    s.run(&plain.build());
    s.run(&ext.build());
    assert_eq!(s.traffic(A, DIR_FROM), (2, plain.ip_len() + ext.ip_len()));
    assert_eq!(ext.ip_len(), plain.ip_len() + 48);
    assert_eq!(s.stratum(A, DIR_FROM, MONERO), 2);
    assert_eq!(s.flows(A, DIR_FROM, MONERO), 2);
    // The reply direction of the first connection: same flow.
    s.run(&Packet::tcp6(dst, src, 3333, 50000, LOGIN_REPLY).build());
    assert_eq!(s.stratum(A, DIR_TO, MONERO), 1);
    assert_eq!(s.flows(A, DIR_TO, MONERO), 0);
    // A chain longer than the parser follows: the packet counts as IP traffic, no transport.
    let mut long = Packet::tcp6(src, dst, 50002, 3333, SUBMIT);
    for _ in 0..7 {
        long = long.ipv6_ext(60, 8);
    }
    s.run(&long.build());
    assert_eq!(s.event(ParseEvent::BadIpv6Extension), 1);
    assert_eq!(s.traffic(A, DIR_FROM).0, 3);
    assert_eq!(s.stratum(A, DIR_FROM, MONERO), 2);
}

#[test]
fn fragments_count_as_traffic_without_transport() {
    let mut s = Sensor::new();
    let p = Packet::tcp4(ip("192.0.2.3"), ip("198.51.100.1"), 4000, 3333, KEEPALIVE).fragment(185);
    s.run(&p.build());
    let p6 = Packet::tcp6(
        ip6("2001:db8:a::1"),
        ip6("2001:db8:b::1"),
        4000,
        3333,
        KEEPALIVE,
    )
    .fragment(10);
    s.run(&p6.build());
    assert_eq!(s.traffic(C, DIR_FROM), (1, p.ip_len()));
    assert_eq!(s.traffic(A, DIR_FROM), (1, p6.ip_len()));
    assert_eq!(s.event(ParseEvent::Fragment), 2);
    assert_eq!(s.all_stratum(), 0);
}

#[test]
fn every_truncation_passes_and_is_counted_by_reason() {
    let mut s = Sensor::new();
    let full = Packet::tcp4(
        ip("198.18.0.9"),
        ip("198.51.100.1"),
        40000,
        3333,
        &xmrig_login(),
    )
    .build();
    // BPF_PROG_TEST_RUN refuses frames shorter than an Ethernet header (EINVAL) before the program
    // runs (drivers never deliver them either); every longer cut reaches the program.
    for len in 0..14 {
        assert!(s.k.test_run(&full[..len]).is_err(), "{len}");
    }
    for len in 14..full.len() {
        s.run(&full[..len]);
    }
    assert_eq!(s.event(ParseEvent::Seen), full.len() as u64 - 14);
    // 14..34: the IPv4 header is cut.
    assert_eq!(s.event(ParseEvent::TruncatedIpv4), 20);
    // From a whole IPv4 header on, the total length field exceeds the frame.
    assert_eq!(s.event(ParseEvent::BadIpv4Length), full.len() as u64 - 34);
    assert_eq!(s.all_traffic_packets(), 0);
    assert_eq!(s.all_stratum(), 0);
    s.run(&full);
    assert_eq!(s.traffic(A, DIR_FROM).0, 1);
    assert_eq!(s.stratum(A, DIR_FROM, MONERO), 1);
}

#[test]
fn malformed_headers_pass_uncounted() {
    let mut s = Sensor::new();
    let good = Packet::tcp4(ip("198.18.0.9"), ip("198.51.100.1"), 40000, 3333, KEEPALIVE).build();
    // IHL below 5.
    let mut f = good.clone();
    f[14] = 0x44;
    s.run(&f);
    // Version 6 in an IPv4 frame.
    let mut f = good.clone();
    f[14] = 0x65;
    s.run(&f);
    assert_eq!(s.event(ParseEvent::BadIpv4Header), 2);
    // Total length below the header length.
    let mut f = good.clone();
    f[16..18].copy_from_slice(&10u16.to_be_bytes());
    s.run(&f);
    assert_eq!(s.event(ParseEvent::BadIpv4Length), 1);
    // TCP data offset (60 bytes) beyond the packet (20 + 10): counted as IP traffic, nothing
    // inspected.
    let mut f = Packet::tcp4(
        ip("198.18.0.9"),
        ip("198.51.100.1"),
        40000,
        3333,
        b"{\"id\":1}\n\n",
    )
    .build();
    f[14 + 20 + 12] = 0xf0;
    s.run(&f);
    // TCP data offset below 5 words.
    let mut f = good.clone();
    f[14 + 20 + 12] = 0x20;
    s.run(&f);
    assert_eq!(s.event(ParseEvent::BadTcpHeader), 2);
    assert_eq!(s.traffic(A, DIR_FROM).0, 2);
    assert_eq!(s.all_stratum(), 0);
    // Not IP at all (ARP).
    let mut f = good.clone();
    f[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    s.run(&f);
    assert_eq!(s.event(ParseEvent::NotIp), 1);
    // IPv6 payload length beyond the frame.
    let mut f6 = Packet::udp6(ip6("2001:db8:a::1"), ip6("2001:db8:b::2"), 1, 2, b"abc").build();
    f6[18..20].copy_from_slice(&1000u16.to_be_bytes());
    s.run(&f6);
    assert_eq!(s.event(ParseEvent::BadIpv6Length), 1);
    assert_eq!(s.traffic(A, DIR_FROM).0, 2);
}

#[test]
fn a_monero_session_is_one_flow_in_both_directions() {
    let mut s = Sensor::new();
    let miner = ip("198.18.1.20"); // in a and b
    let pool = ip("198.51.100.50");
    let up = |p: &[u8]| Packet::tcp4(miner, pool, 45000, 3333, p).build();
    let down = |p: &[u8]| Packet::tcp4(pool, miner, 3333, 45000, p).build();
    // Handshake and ACKs carry no payload: traffic only.
    s.run(
        &Packet::tcp4(miner, pool, 45000, 3333, b"")
            .tcp_flags(0x02)
            .build(),
    );
    s.run(&up(&xmrig_login()));
    s.run(&down(LOGIN_REPLY));
    s.run(&up(SUBMIT));
    s.run(&down(
        b"{\"id\":2,\"jsonrpc\":\"2.0\",\"error\":null,\"result\":{\"status\":\"OK\"}}\n",
    ));
    s.run(&up(KEEPALIVE));
    s.run(&down(
        b"{\"id\":3,\"jsonrpc\":\"2.0\",\"error\":null,\"result\":{\"status\":\"KEEPALIVED\"}}\n",
    ));
    s.run(&down(b"{\"jsonrpc\":\"2.0\",\"method\":\"job\",\"params\":{\"blob\":\"0707\",\"job_id\":\"j2\",\"target\":\"ff\",\"algo\":\"rx/0\"}}\n"));
    for r in [A, B] {
        assert_eq!(s.traffic(r, DIR_FROM).0, 4);
        assert_eq!(s.traffic(r, DIR_TO).0, 4);
        // Every message but the submit's plain "OK" reply is recognised.
        assert_eq!(s.stratum(r, DIR_FROM, MONERO), 3);
        assert_eq!(s.stratum(r, DIR_TO, MONERO), 3);
        assert_eq!(s.flows(r, DIR_FROM, MONERO), 1);
        assert_eq!(s.flows(r, DIR_TO, MONERO), 0);
    }
    assert_eq!(s.flows(C, DIR_FROM, MONERO), 0);
    let flows = s.k.flows().unwrap();
    assert_eq!(flows.len(), 1);
    assert_eq!(flows[0].1.stratum_packets, 6);
    assert_eq!(flows[0].1.ranges, 0b011);
}

#[test]
fn stratum_outside_every_range_is_unwatched() {
    let mut s = Sensor::new();
    let a = ip("198.51.100.1");
    let b = ip("198.51.100.2");
    s.run(
        &Packet::tcp4(
            a,
            b,
            40000,
            4444,
            b"{\"id\": 1, \"method\": \"mining.subscribe\", \"params\": [\"cpuminer-opt/3.x\"]}\n",
        )
        .build(),
    );
    s.run(
        &Packet::tcp4(
            a,
            b,
            40000,
            4444,
            b"{\"id\": 2, \"method\": \"mining.authorize\", \"params\": [\"u\", \"p\"]}\n",
        )
        .build(),
    );
    assert_eq!(s.stratum(UNWATCHED_SLOT, DIR_FROM, BITCOIN), 2);
    assert_eq!(s.flows(UNWATCHED_SLOT, DIR_FROM, BITCOIN), 1);
    assert_eq!(s.all_traffic_packets(), 0);
}

#[test]
fn dialects_and_a_flow_keeps_its_first_dialect() {
    let mut s = Sensor::new();
    let m = ip("192.0.2.44");
    let pool = ip("198.51.100.9");
    s.run(&Packet::tcp4(m, pool, 41000, 4444, b"{\"id\": 1, \"method\": \"mining.subscribe\", \"params\": [\"ethminer/0.19\", \"EthereumStratum/1.0.0\"]}\n").build());
    // The pool's notify alone looks like Bitcoin; on this flow it is Ethereum.
    s.run(
        &Packet::tcp4(
            pool,
            m,
            4444,
            41000,
            b"{\"id\":null,\"method\":\"mining.notify\",\"params\":[\"j\",\"s\",\"h\",true]}\n",
        )
        .build(),
    );
    s.run(&Packet::tcp4(m, pool, 41001, 8008, b"{\"worker\": \"eth1.0\", \"jsonrpc\": \"2.0\", \"params\": [\"0x52bc44d5378309ee2abf1539bf71de1b7d7be3b5\", \"x\"], \"id\": 2, \"method\": \"eth_submitLogin\"}\n").build());
    s.run(
        &Packet::tcp4(
            m,
            pool,
            41002,
            3333,
            b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[\"NiceHash/1.0.0\"]}\n",
        )
        .build(),
    );
    assert_eq!(s.stratum(C, DIR_FROM, ETHEREUM), 2);
    assert_eq!(s.stratum(C, DIR_TO, ETHEREUM), 1);
    assert_eq!(s.flows(C, DIR_FROM, ETHEREUM), 2);
    assert_eq!(s.stratum(C, DIR_FROM, BITCOIN), 1);
    assert_eq!(s.flows(C, DIR_FROM, BITCOIN), 1);
    assert_eq!(s.stratum(C, DIR_TO, BITCOIN), 0);
}

#[test]
fn signature_after_a_newline_and_in_split_segments() {
    let mut s = Sensor::new();
    let m = ip("192.0.2.50");
    let pool = ip("198.51.100.9");
    // Two messages in one segment: the first is no signature, the second is.
    let two = b"{\"id\":5,\"jsonrpc\":\"2.0\",\"error\":null,\"result\":{\"status\":\"OK\"}}\n{\"id\":6,\"jsonrpc\":\"2.0\",\"method\":\"keepalived\",\"params\":{\"id\":\"s\"}}\n";
    s.run(&Packet::tcp4(m, pool, 42000, 3333, two).build());
    assert_eq!(s.stratum(C, DIR_FROM, MONERO), 1);
    // A login split across two segments: the first carries the signature.
    let login = xmrig_login();
    let (head, tail) = login.split_at(200);
    s.run(&Packet::tcp4(m, pool, 42001, 3333, head).build());
    assert_eq!(s.stratum(C, DIR_FROM, MONERO), 2);
    assert_eq!(s.flows(C, DIR_FROM, MONERO), 2);
    // The continuation starts mid-string; a submit follows its newline in the same segment. The
    // flow is known, so the continuation is scanned and the submit found.
    let mut cont = tail.to_vec();
    cont.extend_from_slice(SUBMIT);
    s.run(&Packet::tcp4(m, pool, 42001, 3333, &cont).build());
    assert_eq!(s.stratum(C, DIR_FROM, MONERO), 3);
    // The same continuation on a flow never seen before is not scanned (and not counted).
    s.run(&Packet::tcp4(m, pool, 42002, 3333, &cont).build());
    assert_eq!(s.stratum(C, DIR_FROM, MONERO), 3);
    assert_eq!(s.flows(C, DIR_FROM, MONERO), 2);
}

/// A continuation is looked up only on a flow whose last Stratum packet is at most
/// `MAX_FLOW_IDLE_NS` old (the table of recent slots spares other segments the flow-table lookup).
/// Capture times make the clock: the program runs as replay runs it, one packet per batch.
#[test]
fn continuations_are_scanned_on_recent_stratum_flows_only() {
    use sensor_common::MAX_FLOW_IDLE_NS;
    let k = replay_kernel(&Config::parse(CONFIG, "test").unwrap());
    let (m, pool) = (ip("192.0.2.51"), ip("198.51.100.9"));
    let login = xmrig_login();
    let (head, tail) = login.split_at(200);
    let mut cont = tail.to_vec();
    cont.extend_from_slice(SUBMIT);
    let t0 = 1_559_347_200_000_000_000u64;
    let day = 24 * 3600 * 1_000_000_000u64;
    let run = |k: &Kernel, ts_ns: u64, payload: &[u8]| {
        run_at(
            k,
            ts_ns,
            &Packet::tcp4(m, pool, 42100, 3333, payload).build(),
        );
    };
    let stratum = |k: &Kernel| k.stratum_cell(false, C, DIR_FROM, MONERO).unwrap();
    run(&k, t0, head);
    assert_eq!(stratum(&k), 1);
    // A day later the flow is recent: its continuation is scanned, the submit after it counted.
    run(&k, t0 + day, &cont);
    assert_eq!(stratum(&k), 2);
    // Past the longest idle timeout since that submit, the flow is still in the table, but its
    // continuation is not looked up. The slot's mark is on a clock of 2^44 ns ticks (about 4.89
    // h, `sensor_common::recent`), recent for 35 ticks (at least 7 days, at most 7 days and 10
    // hours): 8 days (39.3 ticks) after, it is not.
    assert!(8 * day > MAX_FLOW_IDLE_NS + 2 * (1 << 44));
    let late = t0 + day + 8 * day;
    run(&k, late, &cont);
    assert_eq!(stratum(&k), 2);
    assert_eq!(k.flows().unwrap().len(), 1);
    // A message that starts the segment is scanned whatever the flow, and makes it recent again.
    run(&k, late, SUBMIT);
    assert_eq!(stratum(&k), 3);
    run(&k, late + 1, &cont);
    assert_eq!(stratum(&k), 4);
    // That submit found the flow by its insert's failure (no lookup before it on a flow whose
    // slot is not recent): still one flow, counted once, all four Stratum packets its own.
    assert_eq!(k.stratum_cell(true, C, DIR_FROM, MONERO).unwrap(), 1);
    let flows = k.flows().unwrap();
    assert_eq!(flows[0].1.stratum_packets, 4);
    assert_eq!(k.parse_event(ParseEvent::FlowInsertFailed).unwrap(), 0);
}

/// Pool endpoints (`sensor_common::pools`): the destination of a login that met its rule. For
/// an hour after, a new flow's login to that endpoint counts at its method, as on a known flow:
/// the login of a web API's shape, silent anywhere else, counts there. Only there (the same
/// address on another port, another address, the other direction), only a login, and only for
/// the hour after the last login with its evidence. Capture times make the clock, as in
/// `continuations_are_scanned_on_recent_stratum_flows_only`.
#[test]
fn a_login_to_a_pool_endpoint_counts_at_its_method_for_an_hour() {
    let k = replay_kernel(&Config::parse(CONFIG, "test").unwrap());
    let run = |k: &Kernel, ts_ns: u64, frame: Vec<u8>| run_at(k, ts_ns, &frame);
    let flows = |k: &Kernel| k.flows().unwrap().len();
    let (m, pool, other) = (ip("192.0.2.90"), ip("198.51.100.90"), ip("198.51.100.91"));
    // A login with a user name and a password only: what a web API's looks like.
    let bare: &[u8] =
        b"{\"id\":1,\"method\":\"login\",\"params\":{\"login\":\"rig02\",\"pass\":\"x\"}}\n";
    let to = |sport: u16, dst: Ipv4Addr, dport: u16, payload: &[u8]| {
        Packet::tcp4(m, dst, sport, dport, payload).build()
    };
    let (t0, sec) = (1_559_347_200_000_000_000u64, 1_000_000_000u64);
    let hour = 3600 * sec;
    // Before any miner's login to it: silent.
    run(&k, t0, to(50000, pool, 3333, bare));
    assert_eq!(flows(&k), 0);
    // XMRig's login (its `agent` is the evidence) teaches the endpoint.
    run(&k, t0 + sec, to(50001, pool, 3333, &xmrig_account_login()));
    assert_eq!(flows(&k), 1);
    // The bare login from a new port now counts; to the same address's port 8080, to another
    // address's 3333, or from the pool's endpoint to the miner, it does not.
    run(&k, t0 + 2 * sec, to(50002, pool, 3333, bare));
    assert_eq!(flows(&k), 2);
    run(&k, t0 + 2 * sec, to(50003, pool, 8080, bare));
    run(&k, t0 + 2 * sec, to(50004, other, 3333, bare));
    run(
        &k,
        t0 + 2 * sec,
        Packet::tcp4(pool, m, 3333, 50005, bare).build(),
    );
    assert_eq!(flows(&k), 2);
    // Only a login: a share before its job_id and nonce needs its rule on a new flow still.
    let share_head = &SUBMIT[..41];
    assert_eq!(&share_head[33..], b"\"submit\"");
    run(&k, t0 + 2 * sec, to(50006, pool, 3333, share_head));
    assert_eq!(flows(&k), 2);
    // An hour after the login with its evidence, still; a second later, no more: the bare
    // login counted at its method taught nothing.
    run(&k, t0 + sec + hour, to(50007, pool, 3333, bare));
    assert_eq!(flows(&k), 3);
    run(&k, t0 + 2 * sec + hour, to(50008, pool, 3333, bare));
    assert_eq!(flows(&k), 3);
    // A login with its evidence teaches it again.
    run(
        &k,
        t0 + 3 * sec + hour,
        to(50009, pool, 3333, &xmrig_login()),
    );
    run(&k, t0 + 4 * sec + hour, to(50010, pool, 3333, bare));
    assert_eq!(flows(&k), 5);
    // A flow the pool opens (its job push, the client hiding) teaches nothing: the endpoint it
    // comes from is not a login's destination.
    let job = b"{\"jsonrpc\":\"2.0\",\"method\":\"job\",\"params\":{\"blob\":\"0707\",\"job_id\":\"j2\",\"target\":\"ff\"}}\n";
    run(
        &k,
        t0 + 4 * sec + hour,
        Packet::tcp4(other, m, 3333, 50011, job).build(),
    );
    assert_eq!(flows(&k), 6);
    run(&k, t0 + 5 * sec + hour, to(50012, other, 3333, bare));
    assert_eq!(flows(&k), 6);
    // IPv6 alike: the whole address and the port are the endpoint.
    let (m6, pool6) = (ip6("2001:db8:c::90"), ip6("2001:db8:d::90"));
    let to6 = |sport: u16, dst: Ipv6Addr, payload: &[u8]| {
        Packet::tcp6(m6, dst, sport, 3333, payload).build()
    };
    run(&k, t0 + 5 * sec + hour, to6(50013, pool6, bare));
    assert_eq!(flows(&k), 6);
    run(&k, t0 + 5 * sec + hour, to6(50014, pool6, &xmrig_login()));
    run(&k, t0 + 5 * sec + hour, to6(50015, pool6, bare));
    assert_eq!(flows(&k), 8);
    run(
        &k,
        t0 + 5 * sec + hour,
        to6(50016, ip6("2001:db8:d::91"), bare),
    );
    assert_eq!(flows(&k), 8);
}

#[test]
fn false_positive_traps_count_no_stratum() {
    let mut s = Sensor::new();
    let m = ip("192.0.2.60");
    let srv = ip("198.51.100.9");
    let traps: [&[u8]; 11] = [
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html><script>var l = {\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"login\",\"params\":{\"login\":\"x\",\"pass\":\"x\",\"agent\":\"XMRig/6\"}};</script></html>",
        b"{\"jsonrpc\":\"2.0\",\"method\":\"eth_blockNumber\",\"params\":[],\"id\":1}\n",
        b"Content-Length: 120\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"processId\":7,\"rootUri\":null}}",
        // A web API's login method with `login` and `pass` keys, no agent, no wallet-long string.
        b"{\"jsonrpc\":\"2.0\",\"method\":\"login\",\"params\":{\"login\":\"bob\",\"pass\":\"hunter2\"},\"id\":1}\n",
        // OpenWrt LuCI's JSON-RPC (`/cgi-bin/luci/rpc/auth`): method `login`, positional params.
        b"{\"id\":1,\"method\":\"login\",\"params\":[\"root\",\"secret\"]}\n",
        // OpenWrt ubus over HTTP: `session login` inside a `call`.
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"call\",\"params\":[\"00000000000000000000000000000000\",\"session\",\"login\",{\"username\":\"root\",\"password\":\"secret\"}]}\n",
        // Odoo's external API (`/jsonrpc`): a nested method `login` and a `login` key elsewhere.
        b"{\"jsonrpc\":\"2.0\",\"method\":\"call\",\"params\":{\"service\":\"common\",\"method\":\"login\",\"args\":[\"db\",\"admin\",\"admin\"]},\"id\":1}\n",
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03{\"method\":\"login\"",
        // The web API's login reshaped as a miner would: in capitals, pretty-printed, escaped.
        b"{\"jsonrpc\":\"2.0\",\"method\":\"LOGIN\",\"params\":{\"login\":\"bob\",\"pass\":\"hunter2\"},\"id\":1}\n",
        b"{\n  \"jsonrpc\": \"2.0\",\n  \"method\": \"login\",\n  \"params\": {\n    \"login\": \"bob\",\n    \"pass\": \"hunter2\"\n  },\n  \"id\": 1\n}\n",
        b"{\"jsonrpc\":\"2.0\",\"method\":\"\\u006cogin\",\"params\":{\"\\u006cogin\":\"bob\",\"pass\":\"hunter2\"},\"id\":1}\n",
    ];
    for (i, t) in traps.iter().enumerate() {
        s.run(&Packet::tcp4(m, srv, 43000 + i as u16, 3333, t).build());
    }
    assert_eq!(s.all_stratum(), 0);
    assert!(s.k.flows().unwrap().is_empty());
    assert_eq!(s.traffic(C, DIR_FROM).0, 11);
}

#[test]
fn a_login_without_agent_opens_its_flow_by_its_wallet() {
    // coin-hive-stratum's login to the pool (its src/Miner.ts and src/Connection.ts): the wallet
    // with a worker and a difficulty, `pass`, no agent. The pool's reply follows on the flow.
    let mut s = Sensor::new();
    let (bridge, pool) = (ip("192.0.2.61"), ip("198.51.100.9"));
    let login = format!(
        "{{\"id\":1,\"method\":\"login\",\"params\":{{\"login\":\"{WALLET}.site1+50000\",\"pass\":\"x\"}}}}\n"
    );
    s.run(&Packet::tcp4(bridge, pool, 43100, 3333, login.as_bytes()).build());
    s.run(&Packet::tcp4(pool, bridge, 3333, 43100, LOGIN_REPLY).build());
    // One flow, opened by the login (from c); the reply is its second Stratum packet (to c).
    assert_eq!(s.flows(C, DIR_FROM, MONERO), 1);
    assert_eq!(s.stratum(C, DIR_FROM, MONERO), 1);
    assert_eq!(s.stratum(C, DIR_TO, MONERO), 1);
    assert_eq!(s.all_stratum(), 2);
    let flows = s.k.flows().unwrap();
    assert_eq!(flows.len(), 1);
    assert_eq!(flows[0].1.stratum_packets, 2);
    // The same login with a 94-character user name: no Stratum (the reply then opens the flow).
    let mut t = Sensor::new();
    let short = format!(
        "{{\"id\":1,\"method\":\"login\",\"params\":{{\"login\":\"{}\",\"pass\":\"x\"}}}}\n",
        &WALLET[..94]
    );
    t.run(&Packet::tcp4(bridge, pool, 43101, 3333, short.as_bytes()).build());
    assert_eq!(t.all_stratum(), 0);
}

#[test]
fn every_rule_of_the_table_is_reachable_in_the_kernel() {
    // One message per rule and alternative, built from the table itself, so a rule the kernel
    // cannot match fails.
    let mut s = Sensor::new();
    for (i, rule) in RULES.iter().enumerate() {
        let mut words = Vec::new();
        let mut method = None;
        for (bit, m) in MARKERS.iter().enumerate() {
            let m = std::str::from_utf8(m).unwrap();
            if rule.words_all & (1 << bit) != 0 {
                words.push(m);
            }
            if method.is_none() && rule.method_any & (1 << bit) != 0 {
                method = Some(m);
            }
        }
        // Each alternative of `words_any` (a marker, or a wallet-long string), before the
        // words every message of the rule has: the rules run when a marker closes.
        let mut alternatives: Vec<String> = (0..32)
            .filter(|bit| rule.words_any & (1u32 << bit) != 0)
            .map(|bit| match MARKERS.get(bit) {
                Some(m) => {
                    let m = std::str::from_utf8(m).unwrap();
                    format!(",\"{m}\":\"{m}\"")
                }
                None => {
                    assert_eq!(1u32 << bit, ADDRESS);
                    format!(",\"x\":\"{}\"", "4".repeat(ADDRESS_MIN_LEN as usize))
                }
            })
            .collect();
        if alternatives.is_empty() {
            alternatives.push(String::new());
        }
        for (j, any) in alternatives.iter().enumerate() {
            let mut msg = String::from("{\"id\":1");
            if let Some(m) = method {
                msg += &format!(",\"method\":\"{m}\"");
            }
            msg += any;
            for w in &words {
                msg += &format!(",\"{w}\":\"{w}\"");
            }
            msg += "}\n";
            let before = s.stratum(C, DIR_FROM, rule.dialect as usize);
            s.run(
                &Packet::tcp4(
                    ip("192.0.2.70"),
                    ip("198.51.100.9"),
                    44000 + 10 * i as u16 + j as u16,
                    3333,
                    msg.as_bytes(),
                )
                .build(),
            );
            assert_eq!(
                s.stratum(C, DIR_FROM, rule.dialect as usize),
                before + 1,
                "rule {:?} ({msg})",
                rule.what
            );
        }
    }
}

#[test]
fn the_embedded_default_watches_north_korea() {
    let cfg = Config::embedded_default();
    let mut k = load_with_ranges(&cfg);
    k.set_iface_slot(1, 1).unwrap();
    // BPF_PROG_TEST_RUN input only: a real-world range never crosses a live link in tests.
    let p = Packet::tcp4(
        ip("175.45.178.10"),
        ip("198.51.100.1"),
        40000,
        3333,
        &xmrig_login(),
    );
    let (action, _) = k.test_run(&p.build()).unwrap();
    assert_eq!(action, XDP_PASS);
    let (action, _) = k
        .test_run(&Packet::udp4(ip("198.51.100.1"), ip("77.94.35.200"), 1, 2, b"hello").build())
        .unwrap();
    assert_eq!(action, XDP_PASS);
    assert_eq!(k.traffic_cell(1, 0, DIR_FROM).unwrap().packets, 1);
    assert_eq!(k.traffic_cell(1, 0, DIR_FROM).unwrap().bytes, p.ip_len());
    assert_eq!(k.traffic_cell(1, 0, DIR_TO).unwrap().packets, 1);
    assert_eq!(k.traffic_cell(1, 0, DIR_TO).unwrap().bytes, 33);
    assert_eq!(k.stratum_cell(true, 0, DIR_FROM, MONERO).unwrap(), 1);
}

#[test]
fn prefixes_too_short_for_the_filter_still_count() {
    let mut s = Sensor::with(
        "[[ranges]]\nname = \"all4\"\ncidrs = [\"0.0.0.0/0\"]\n[[ranges]]\nname = \"all6\"\ncidrs = [\"2000::/3\"]\n[[ranges]]\nname = \"v6wide\"\ncidrs = [\"2001:db8::/29\"]\n",
    );
    s.run(&Packet::udp4(ip("203.0.113.1"), ip("198.51.100.1"), 1, 2, b"x").build());
    s.run(&Packet::udp6(ip6("2001:db8:7::1"), ip6("3fff::1"), 1, 2, b"x").build());
    assert_eq!(s.traffic(0, DIR_FROM).0, 1);
    assert_eq!(s.traffic(0, DIR_TO).0, 1);
    assert_eq!(s.traffic(1, DIR_FROM).0, 1);
    assert_eq!(s.traffic(1, DIR_TO).0, 1);
    // A /29 sets 8 filter bits, one per /32 inside it.
    assert_eq!(s.traffic(2, DIR_FROM).0, 1);
    // 2001:dc0::/32 is outside the /29 (2001:db8:: to 2001:dbf:ffff::).
    s.run(&Packet::udp6(ip6("2001:dc0::1"), ip6("3fff::1"), 1, 2, b"x").build());
    assert_eq!(s.traffic(2, DIR_FROM).0, 1);
    assert_eq!(s.traffic(1, DIR_FROM).0, 2);
}

#[test]
fn the_filter_follows_range_changes() {
    let first = Config::parse(
        "[[ranges]]\nname = \"x\"\ncidrs = [\"198.18.0.0/15\", \"2001:db8:5::/48\"]\n",
        "t",
    )
    .unwrap();
    let second = Config::parse(
        "[[ranges]]\nname = \"x\"\ncidrs = [\"192.0.2.128/25\"]\n",
        "t",
    )
    .unwrap();
    let mut k = load_with_ranges(&first);
    k.set_iface_slot(1, 1).unwrap();
    let v4 = Packet::udp4(ip("198.19.200.1"), ip("198.51.100.1"), 1, 2, b"x").build();
    let v6 = Packet::udp6(ip6("2001:db8:5:1::1"), ip6("2001:db8:6::1"), 1, 2, b"x").build();
    let other = Packet::udp4(ip("192.0.2.200"), ip("198.51.100.1"), 1, 2, b"x").build();
    for f in [&v4, &v6, &other] {
        k.test_run(f).unwrap();
    }
    assert_eq!(k.traffic_cell(1, 0, DIR_FROM).unwrap().packets, 2);
    k.set_ranges(mining_sensor::bpf::ranges::build([(
        0,
        second.ranges[0].cidrs.as_slice(),
    )]))
    .unwrap();
    for f in [&v4, &v6, &other] {
        k.test_run(f).unwrap();
    }
    assert_eq!(k.traffic_cell(1, 0, DIR_FROM).unwrap().packets, 3);
    // 192.0.2.1 shares the /24 filter bit with the /25 but is outside it: the trie decides.
    k.test_run(&Packet::udp4(ip("192.0.2.1"), ip("198.51.100.1"), 1, 2, b"x").build())
        .unwrap();
    assert_eq!(k.traffic_cell(1, 0, DIR_FROM).unwrap().packets, 3);
}

/// The counting rules from the outside, written independently of the kernel program: whether a
/// frame is countable IP and, if so, its source, destination and IP bytes.
fn reference(frame: &[u8]) -> Option<(std::net::IpAddr, std::net::IpAddr, u64)> {
    let mut off = 12;
    let mut ethertype = u16::from_be_bytes(frame.get(off..off + 2)?.try_into().ok()?);
    let mut tags = 0;
    while matches!(ethertype, 0x8100 | 0x88a8 | 0x9100) {
        if tags == 4 {
            return None;
        }
        off += 4;
        tags += 1;
        ethertype = u16::from_be_bytes(frame.get(off..off + 2)?.try_into().ok()?);
    }
    let l3 = off + 2;
    match ethertype {
        0x0800 => {
            let h = frame.get(l3..l3 + 20)?;
            let ihl = (h[0] & 0x0f) as usize * 4;
            let total = u16::from_be_bytes([h[2], h[3]]) as usize;
            if h[0] >> 4 != 4 || ihl < 20 || total < ihl || l3 + total > frame.len() {
                return None;
            }
            let src = std::net::IpAddr::from(<[u8; 4]>::try_from(&h[12..16]).unwrap());
            let dst = std::net::IpAddr::from(<[u8; 4]>::try_from(&h[16..20]).unwrap());
            Some((src, dst, total as u64))
        }
        0x86dd => {
            let h = frame.get(l3..l3 + 40)?;
            let payload = u16::from_be_bytes([h[4], h[5]]) as usize;
            if h[0] >> 4 != 6 || l3 + 40 + payload > frame.len() {
                return None;
            }
            let src = std::net::IpAddr::from(<[u8; 16]>::try_from(&h[8..24]).unwrap());
            let dst = std::net::IpAddr::from(<[u8; 16]>::try_from(&h[24..40]).unwrap());
            Some((src, dst, 40 + payload as u64))
        }
        _ => None,
    }
}

/// 3,000 frames made from a few templates by flipping header bits, cutting them anywhere past the
/// Ethernet header and overwriting header bytes; the same frames on every run.
fn hostile_frames() -> Vec<Vec<u8>> {
    let templates = [
        Packet::tcp4(
            ip("198.18.0.9"),
            ip("198.51.100.1"),
            40000,
            3333,
            &xmrig_login(),
        )
        .build(),
        Packet::tcp4(
            ip("198.51.100.1"),
            ip("198.19.1.1"),
            3333,
            40000,
            LOGIN_REPLY,
        )
        .ipv4_options(3)
        .vlan(0x8100, 5)
        .build(),
        Packet::udp4(
            ip("198.18.7.7"),
            ip("198.18.8.8"),
            53,
            53,
            b"\x12\x34\x01\x00\x00\x01",
        )
        .vlan(0x88a8, 1)
        .vlan(0x8100, 2)
        .build(),
        Packet::tcp6(
            ip6("2001:db8:a::1"),
            ip6("2001:db8:b::1"),
            40000,
            3333,
            SUBMIT,
        )
        .ipv6_ext(0, 8)
        .ipv6_ext(60, 16)
        .build(),
        Packet::udp6(ip6("2001:db8:b::1"), ip6("2001:db8:a::2"), 1, 2, b"x")
            .fragment(3)
            .build(),
    ];
    // A fixed xorshift sequence: the same hostile frames on every run.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut frames = Vec::new();
    for i in 0..3000 {
        let mut f = templates[i % templates.len()].clone();
        match next() % 4 {
            // Flip 1 to 8 bits in the first 80 bytes (the headers).
            0 | 1 => {
                for _ in 0..=next() % 8 {
                    let at = (next() as usize) % f.len().min(80);
                    f[at] ^= 1 << (next() % 8);
                }
            }
            // Cut anywhere past the Ethernet header.
            2 => f.truncate(14 + (next() as usize) % (f.len() - 14)),
            // Overwrite one header byte with anything (bogus IHL, lengths, versions, next headers).
            _ => {
                let at = 12 + (next() as usize) % 50;
                if at < f.len() {
                    f[at] = next() as u8;
                }
            }
        }
        frames.push(f);
    }
    frames
}

#[test]
fn hostile_frames_count_exactly_what_the_rules_say() {
    let mut s = Sensor::with(
        "[[ranges]]\nname = \"w\"\ncidrs = [\"198.18.0.0/15\", \"2001:db8:a::/48\"]\n",
    );
    let watched: Vec<ipnet::IpNet> = ["198.18.0.0/15", "2001:db8:a::/48"]
        .iter()
        .map(|n| n.parse().unwrap())
        .collect();
    let inside = |a: std::net::IpAddr| watched.iter().any(|n| n.contains(&a));
    let (mut from, mut to) = (s.traffic(0, DIR_FROM), s.traffic(0, DIR_TO));
    let mut countable = 0;
    for (i, f) in hostile_frames().into_iter().enumerate() {
        s.run(&f);
        let (now_from, now_to) = (s.traffic(0, DIR_FROM), s.traffic(0, DIR_TO));
        let want = reference(&f);
        let (mut df, mut dt) = ((0, 0), (0, 0));
        if let Some((src, dst, bytes)) = want {
            countable += 1;
            if inside(src) {
                df = (1, bytes);
            }
            if inside(dst) {
                dt = (1, bytes);
            }
        }
        assert_eq!(
            (now_from.0 - from.0, now_from.1 - from.1),
            df,
            "frame {i}: {f:02x?}"
        );
        assert_eq!(
            (now_to.0 - to.0, now_to.1 - to.1),
            dt,
            "frame {i}: {f:02x?}"
        );
        (from, to) = (now_from, now_to);
    }
    // Enough of the mutations stay countable for the comparison to mean something.
    assert!(countable > 500, "{countable}");
    assert_eq!(s.event(ParseEvent::Seen), 3000);
}

#[test]
fn each_new_flow_is_one_event_and_a_full_ring_counts_its_losses() {
    use sensor_common::Stat;
    // One page of ring buffer holds about 56 events of 72 bytes (with the kernel's headers).
    // Deep inspection off: no copy carries a new flow's event (see the next test), every event
    // takes the event ring.
    let mut s = Sensor::watching_c("[inspect]\nbudget = 0\n[events]\nring_bytes = 4096\n");
    let login = xmrig_login();
    for i in 0..100u16 {
        s.run(&Packet::tcp4(ip("192.0.2.9"), ip("198.51.100.7"), 30000 + i, 3333, &login).build());
        // A second packet of the same flow is no new event.
        s.run(
            &Packet::tcp4(
                ip("198.51.100.7"),
                ip("192.0.2.9"),
                3333,
                30000 + i,
                LOGIN_REPLY,
            )
            .build(),
        );
    }
    let sent = s.k.stat(Stat::EventsSent).unwrap();
    let lost = s.k.stat(Stat::EventsLost).unwrap();
    assert_eq!(s.k.stat(Stat::FlowsCreated).unwrap(), 100);
    assert_eq!(sent + lost, 100);
    assert!(lost > 0 && sent > 0, "sent {sent}, lost {lost}");
    let events = s.k.read_events().unwrap();
    assert_eq!(events.len() as u64, sent);
    let e = &events[0];
    assert_eq!(e.kind, sensor_common::EVENT_STRATUM_FLOW);
    assert_eq!(e.dialect, MONERO as u8);
    assert_eq!(e.src_ranges, 0b1);
    assert_eq!(e.dst_ranges, 0);
    assert_eq!(e.ifindex, 1);
    let line = mining_sensor::events::line(e, |id| (id == 0).then(|| "c".to_string()), "lo");
    assert_eq!(
        (line.flow.src.to_string().as_str(), line.flow.sport),
        ("192.0.2.9", 30000)
    );
    assert_eq!(
        (line.flow.dst.to_string().as_str(), line.flow.dport),
        ("198.51.100.7", 3333)
    );
    assert_eq!((line.range.as_str(), line.direction), ("c", "from"));
    // Read out, the ring takes events again.
    s.run(&Packet::tcp4(ip("192.0.2.9"), ip("198.51.100.7"), 40000, 3333, &login).build());
    assert_eq!(s.k.read_events().unwrap().len(), 1);
    assert_eq!(s.k.stat(Stat::EventsLost).unwrap(), lost);
}

/// A new Stratum flow's first packet is copied for deep inspection with its flow's event in the
/// same sample record (`SAMPLE_OPENED`), one ring record where there were two; when the sample
/// ring has no room for the copy, the event takes the event ring alone, as before.
#[test]
fn a_new_flows_copy_carries_its_event_and_the_event_ring_takes_what_it_cannot() {
    use sensor_common::Stat;
    // Worked out by hand: the login's frame is 14 + 20 + 20 + 398 = 452 bytes, so its record
    // holds 512 bytes of frame: 8 (the ring's header) + 24 (the sample's) + 72 (the event) + 512
    // = 616 bytes. The smallest sample ring, 65,536 bytes, admits a record while its used bytes
    // stay within it: 106 records (65,296; a 107th would make 65,912). The other 14 events take
    // the event ring, which holds them all (80 bytes each).
    let mut s = Sensor::watching_c(
        "[inspect]\ncapture_mode = \"inline\"\nsample_ring_bytes = 65536\n[events]\nring_bytes = 4096\n",
    );
    let login = xmrig_login();
    assert_eq!(login.len(), 398);
    for i in 0..120u16 {
        s.run(&Packet::tcp4(ip("192.0.2.9"), ip("198.51.100.7"), 30000 + i, 3333, &login).build());
    }
    assert_eq!(s.k.stat(Stat::FlowsCreated).unwrap(), 120);
    assert_eq!(s.k.stat(Stat::Candidates).unwrap(), 106);
    assert_eq!(s.k.stat(Stat::SamplesLost).unwrap(), 14);
    assert_eq!(s.k.stat(Stat::EventsSent).unwrap(), 120);
    assert_eq!(s.k.stat(Stat::EventsLost).unwrap(), 0);
    // The event ring's first (the flows whose copy found no room: the last 14), then those the
    // copies carried, each flow once.
    let events = s.k.read_events().unwrap();
    let sports: Vec<u16> = events
        .iter()
        .map(|e| {
            assert_eq!(e.kind, sensor_common::EVENT_STRATUM_FLOW);
            assert_eq!(e.dialect, MONERO as u8);
            assert_eq!((e.src_ranges, e.dst_ranges, e.ifindex), (0b1, 0, 1));
            let line = mining_sensor::events::line(e, |id| (id == 0).then(|| "c".into()), "lo");
            assert_eq!(line.flow.src.to_string(), "192.0.2.9");
            assert_eq!(line.flow.dport, 3333);
            line.flow.sport
        })
        .collect();
    let want: Vec<u16> = (30106..30120).chain(30000..30106).collect();
    assert_eq!(sports, want);
    // The copies themselves: the logins, whole.
    let samples = s.k.read_samples().unwrap();
    assert_eq!(samples.len(), 106);
    for x in &samples {
        assert_eq!((x.cap_len, x.frame_len), (452, 452));
        assert_eq!(&x.data[54..452], &login[..]);
    }
    // Read out, the sample ring takes a new flow's copy and event again; a known flow's packet
    // is a copy without one.
    s.run(&Packet::tcp4(ip("192.0.2.9"), ip("198.51.100.7"), 40000, 3333, &login).build());
    s.run(
        &Packet::tcp4(
            ip("198.51.100.7"),
            ip("192.0.2.9"),
            3333,
            40000,
            LOGIN_REPLY,
        )
        .build(),
    );
    let events = s.k.read_events().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(s.k.read_samples().unwrap().len(), 2);
    assert_eq!(s.k.stat(Stat::EventsSent).unwrap(), 121);
}

#[test]
fn pool_endpoints_count_once_per_flow_and_are_not_traffic() {
    use sensor_common::Reason;
    const R: usize = 0; // the only range of this configuration
    let mut s = Sensor::watching_c(
        "[pools]\nports = [3333, 34254]\nendpoints = [\"198.51.100.5\", \"2001:db8:ffff::/48\"]\n",
    );
    let pe = Reason::PoolEndpoint as usize;
    let (m, pool) = (ip("192.0.2.9"), ip("198.51.100.5"));
    // A TLS session to the pool: SYN, data both ways. One flow, one count.
    s.run(
        &Packet::tcp4(m, pool, 41000, 443, b"")
            .tcp_flags(0x02)
            .build(),
    );
    s.run(&Packet::tcp4(m, pool, 41000, 443, &[0x16, 3, 1, 0, 10]).build());
    s.run(&Packet::tcp4(pool, m, 443, 41000, &[0x16, 3, 3, 0, 10]).build());
    assert_eq!(s.k.suspect_cell(R, DIR_FROM, pe).unwrap(), 1);
    assert_eq!(s.k.suspect_cell(R, DIR_TO, pe).unwrap(), 0);
    // Another connection is another flow; UDP too.
    s.run(&Packet::tcp4(m, pool, 41001, 443, b"").build());
    s.run(&Packet::udp4(m, pool, 5000, 3478, b"x").build());
    assert_eq!(s.k.suspect_cell(R, DIR_FROM, pe).unwrap(), 3);
    // The pool is no range: its side of the traffic counts nowhere; the miner's side does.
    assert_eq!(s.traffic(R, DIR_FROM).0, 4);
    assert_eq!(s.traffic(R, DIR_TO).0, 1);
    // IPv6 pool block, miner outside every range.
    s.run(
        &Packet::tcp6(
            ip6("2001:db8:1::1"),
            ip6("2001:db8:ffff::7"),
            42000,
            3333,
            b"",
        )
        .build(),
    );
    assert_eq!(s.k.suspect_cell(UNWATCHED_SLOT, DIR_FROM, pe).unwrap(), 1);
    let events = s.k.read_events().unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == sensor_common::EVENT_SUSPECT_FLOW)
            .count(),
        4
    );
    let line = mining_sensor::events::line(&events[0], |id| (id == 0).then(|| "c".into()), "lo");
    let v = serde_json::to_value(&line).unwrap();
    assert_eq!(
        (v["event"].as_str(), v["reason"].as_str()),
        (Some("suspect_flow"), Some("pool_endpoint"))
    );
    assert!(v.get("dialect").is_none());
}

#[test]
fn the_stratum_v2_handshake_shape_on_a_pool_port() {
    use sensor_common::Reason;
    const R: usize = 0; // the only range of this configuration
    let mut s = Sensor::watching_c("[pools]\nports = [34254]\n");
    let v2 = Reason::StratumV2 as usize;
    let (m, pool) = (ip("192.0.2.9"), ip("203.0.113.50"));
    let noise = |n: usize| (0..n).map(|i| (i * 37 + 11) as u8).collect::<Vec<u8>>();
    s.run(&Packet::tcp4(m, pool, 43000, 34254, &noise(64)).build());
    s.run(&Packet::tcp4(pool, m, 34254, 43000, &noise(234)).build());
    assert_eq!(s.k.suspect_cell(R, DIR_FROM, v2).unwrap(), 1);
    assert_eq!(s.k.suspect_cell(R, DIR_TO, v2).unwrap(), 0);
    // The shape elsewhere, or other sizes on the port: nothing.
    s.run(&Packet::tcp4(m, pool, 43001, 443, &noise(64)).build());
    s.run(&Packet::tcp4(m, pool, 43002, 34254, &noise(65)).build());
    s.run(&Packet::tcp4(m, pool, 43003, 34254, &noise(234)).build());
    assert_eq!(s.k.suspect_cell(R, DIR_FROM, v2).unwrap(), 1);
    assert_eq!(s.k.suspect_cell(R, DIR_TO, v2).unwrap(), 0);
    // A server's 234-byte answer first (the client's 64 missed): the flow still counts, once.
    s.run(&Packet::tcp4(pool, m, 34254, 43004, &noise(234)).build());
    s.run(&Packet::tcp4(m, pool, 43004, 34254, &noise(64)).build());
    assert_eq!(s.k.suspect_cell(R, DIR_TO, v2).unwrap(), 1);
    assert_eq!(s.k.suspect_cell(R, DIR_FROM, v2).unwrap(), 1);
    assert_eq!(s.all_stratum(), 0);
}

/// Plaintext Stratum of a Noise message's size on a pool port is no Stratum V2 handshake, nor are
/// TLS records of those sizes: a cpuminer's `mining.authorize` of 64 bytes to the port and the
/// pool's 234-byte answer to its subscribe flagged a replayed session `stratum_v2`, and its
/// client's later segments of a share's encrypted size would have counted as shares.
#[test]
fn json_and_tls_of_the_handshakes_sizes_on_a_pool_port_are_no_stratum_v2() {
    use sensor_common::Reason;
    const R: usize = 0; // the only range of this configuration
    let mut s = Sensor::watching_c("[pools]\nports = [3333]\n");
    let v2 = Reason::StratumV2 as usize;
    let (m, pool) = (ip("192.0.2.9"), ip("203.0.113.50"));
    let up = |sport: u16, p: &[u8]| Packet::tcp4(m, pool, sport, 3333, p).build();
    let down = |sport: u16, p: &[u8]| Packet::tcp4(pool, m, 3333, sport, p).build();
    let authorize = "{\"id\": 2, \"method\": \"mining.authorize\", \"params\": [\"www\", \"x\"]}\n";
    let reply = format!(
        "{{\"id\":1,\"result\":[[[\"mining.set_difficulty\",\"1\"],[\"mining.notify\",\"1\"]],\"{}\",4],\"error\":null}}\n",
        "0".repeat(142)
    );
    // A submit of 62 bytes, an encrypted standard share's size.
    let submit = "{\"id\": 4, \"method\": \"mining.submit\", \"params\": [\"www\", \"1f\"]}\n";
    assert_eq!((authorize.len(), reply.len(), submit.len()), (64, 234, 62));
    s.run(&up(45000, authorize.as_bytes()));
    s.run(&down(45000, reply.as_bytes()));
    s.run(&up(45000, submit.as_bytes()));
    // TLS records of those sizes: application data (23, version 3.3) up, a handshake record
    // (22) down.
    let record = |n: usize, kind: u8| {
        let mut r = vec![0x5a; n];
        r[..3].copy_from_slice(&[kind, 3, 3]);
        r
    };
    s.run(&up(45001, &record(64, 23)));
    s.run(&down(45001, &record(234, 22)));
    // A session whose every client message is split after its `{` (pools join the segments): the
    // rest of a 65-byte subscribe is 64 bytes of text, then the rests of two 87-byte submits, 86
    // bytes each, an encrypted extended share's size (63 to 95) twice in a row. Before the text
    // test, the first made the flow Stratum V2 and the two others counted as 2 shares.
    let subscribe = "{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[\"cpuminer/2.5.1\"]}\n";
    let submit = |n: u8| {
        format!(
            "{{\"id\":{n},\"method\":\"mining.submit\",\"params\":[\"w\",\"bf\",\"00000000\",\"504e86b9\",\"0000000{n}\"]}}\n"
        )
    };
    assert_eq!((subscribe.len(), submit(3).len()), (65, 87));
    let mut seq = 1000;
    for msg in [subscribe.to_string(), submit(3), submit(4)] {
        for part in [&msg.as_bytes()[..1], &msg.as_bytes()[1..]] {
            s.run(
                &Packet::tcp4(m, pool, 45002, 3333, part)
                    .tcp_seq(seq)
                    .build(),
            );
            seq += part.len() as u32;
        }
    }
    assert_eq!(s.k.suspect_cell(R, DIR_FROM, v2).unwrap(), 0);
    assert_eq!(s.k.suspect_cell(R, DIR_TO, v2).unwrap(), 0);
    assert_eq!(sv2_shares(&s), 0);
    // Stratum packets: the authorize, the reply (the subscribe's, naming `mining.notify`), the
    // submit, and the split subscribe's rest (the new flow's held `{` joined to it, see
    // `opening`); the submits' rests open inside their message (a continuation on the known
    // flow: handed over, no Stratum packet).
    assert_eq!(s.all_stratum(), 4);
}

/// Stratum V2 off the pool ports (443 included): the 64-byte hello and, the other way on the same
/// flow, the 234-byte answer make the handshake, counted once at the answer; either alone, both
/// the same way, or TLS records and JSON of those sizes, count nothing.
#[test]
fn the_stratum_v2_handshake_on_any_port() {
    use sensor_common::Reason;
    const R: usize = 0; // the only range of this configuration
    let mut s = Sensor::watching_c("[pools]\nports = [34254]\n");
    let v2 = Reason::StratumV2 as usize;
    let (m, pool) = (ip("192.0.2.9"), ip("203.0.113.50"));
    // Pseudo-random bytes, first byte 0xa7 (not a TLS record type, not `{`).
    let noise = |n: usize| (0..n).map(|i| (i * 37 + 167) as u8).collect::<Vec<u8>>();
    let up = |sport: u16, dport: u16, p: &[u8]| Packet::tcp4(m, pool, sport, dport, p).build();
    let down = |sport: u16, dport: u16, p: &[u8]| Packet::tcp4(pool, m, dport, sport, p).build();
    // On 443: hello, answer (the miner is the answer's destination: direction "to").
    s.run(&up(47000, 443, &noise(64)));
    assert_eq!(s.k.suspect_cell(R, DIR_TO, v2).unwrap(), 0);
    s.run(&down(47000, 443, &noise(234)));
    assert_eq!(s.k.suspect_cell(R, DIR_TO, v2).unwrap(), 1);
    // The answer again: the flow counts once.
    s.run(&down(47000, 443, &noise(234)));
    assert_eq!(s.k.suspect_cell(R, DIR_TO, v2).unwrap(), 1);
    // On another port, 8443: counted too.
    s.run(&up(47001, 8443, &noise(64)));
    s.run(&down(47001, 8443, &noise(234)));
    assert_eq!(s.k.suspect_cell(R, DIR_TO, v2).unwrap(), 2);
    // Not the handshake: an answer without a hello; both sizes the same way; a TLS record of 64
    // bytes (application data, version 3.3) then 234; JSON of 64 bytes then 234; a hello then
    // a TLS handshake record of 234.
    s.run(&down(47002, 443, &noise(234)));
    s.run(&up(47003, 443, &noise(64)));
    s.run(&up(47003, 443, &noise(234)));
    let with = |n: usize, head: [u8; 2]| {
        let mut p = noise(n);
        p[..2].copy_from_slice(&head);
        p
    };
    s.run(&up(47004, 443, &with(64, [23, 3])));
    s.run(&down(47004, 443, &noise(234)));
    s.run(&up(47005, 443, &with(64, *b"{\"")));
    s.run(&down(47005, 443, &noise(234)));
    s.run(&up(47006, 443, &noise(64)));
    s.run(&down(47006, 443, &with(234, [22, 3])));
    assert_eq!(s.k.suspect_cell(R, DIR_TO, v2).unwrap(), 2);
    // Key bytes that open with a record type or a brace but not a header's second byte: a
    // handshake (the hello 0x17 0xcc, the answer 0x16 0x04; then `{` and 0xcc): 2 more.
    s.run(&up(47007, 443, &with(64, [23, 0xcc])));
    s.run(&down(47007, 443, &with(234, [22, 4])));
    s.run(&up(47008, 443, &with(64, [b'{', 0xcc])));
    s.run(&down(47008, 443, &noise(234)));
    assert_eq!(s.k.suspect_cell(R, DIR_TO, v2).unwrap(), 4);
    assert_eq!(s.k.suspect_cell(R, DIR_FROM, v2).unwrap(), 0);
    assert_eq!(s.all_stratum(), 0);
}

#[test]
fn tls_without_server_name_towards_a_pool() {
    use sensor_common::Reason;
    const R: usize = 0; // the only range of this configuration
    let mut s = Sensor::watching_c("[pools]\nports = [14433]\nendpoints = [\"198.51.100.5\"]\n");
    let (tls, pe) = (Reason::TlsNoSni as usize, Reason::PoolEndpoint as usize);
    let (m, other) = (ip("192.0.2.9"), ip("203.0.113.50"));
    // To a pool port: counted once per flow.
    s.run(&Packet::tcp4(m, other, 44000, 14433, &tls_client_hello(None)).build());
    s.run(&Packet::tcp4(m, other, 44000, 14433, &tls_client_hello(None)).build());
    assert_eq!(s.k.suspect_cell(R, DIR_FROM, tls).unwrap(), 1);
    // With server_name, or to an ordinary port and address: nothing.
    s.run(
        &Packet::tcp4(
            m,
            other,
            44001,
            14433,
            &tls_client_hello(Some("pool.example.org")),
        )
        .build(),
    );
    s.run(&Packet::tcp4(m, other, 44002, 443, &tls_client_hello(None)).build());
    assert_eq!(s.k.suspect_cell(R, DIR_FROM, tls).unwrap(), 1);
    // To a pool address on 443: both signals, each once.
    s.run(&Packet::tcp4(m, ip("198.51.100.5"), 44003, 443, &tls_client_hello(None)).build());
    assert_eq!(s.k.suspect_cell(R, DIR_FROM, tls).unwrap(), 2);
    assert_eq!(s.k.suspect_cell(R, DIR_FROM, pe).unwrap(), 1);
    assert_eq!(s.all_stratum(), 0);
}

/// `tls_pool_sni`: a ClientHello naming a server in a pool domain, on any port, counts once per
/// flow; names outside every pool domain, look-alikes and other handshake records count nothing.
#[test]
fn tls_naming_a_pool_domain_on_any_port() {
    use sensor_common::Reason;
    use test_support::tls_client_hello;
    const R: usize = 0; // the only range of this configuration
    let mut s = Sensor::watching_c("[pools]\nextra_domains = [\"pool.example\"]\n");
    let sni = Reason::TlsPoolSni as usize;
    let no_sni = Reason::TlsNoSni as usize;
    let (m, server) = (ip("192.0.2.9"), ip("203.0.113.50"));
    let hello = |sport: u16, dport: u16, name: Option<&str>| {
        Packet::tcp4(m, server, sport, dport, &tls_client_hello(name)).build()
    };
    // On 443, on a pool port, on anything: a default pool domain, any case, and a configured
    // one; the same flow twice counts once.
    s.run(&hello(46000, 443, Some("gulf.moneroocean.stream")));
    s.run(&hello(46000, 443, Some("gulf.moneroocean.stream")));
    s.run(&hello(46001, 14433, Some("XMR-EU1.NANOPOOL.ORG")));
    s.run(&hello(46002, 8443, Some("ws.pool.example")));
    s.run(&hello(46003, 443, Some("supportxmr.com.")));
    assert_eq!(s.k.suspect_cell(R, DIR_FROM, sni).unwrap(), 4);
    // Not a pool: a look-alike, a pool name as a prefix, an ordinary name; no name at all on
    // 443 is not `tls_no_sni` either (not a pool port).
    s.run(&hello(46004, 443, Some("notsupportxmr.com")));
    s.run(&hello(46005, 443, Some("supportxmr.com.example.org")));
    s.run(&hello(46006, 443, Some("www.example.org")));
    s.run(&hello(46007, 443, None));
    assert_eq!(s.k.suspect_cell(R, DIR_FROM, sni).unwrap(), 4);
    assert_eq!(s.k.suspect_cell(R, DIR_FROM, no_sni).unwrap(), 0);
    // A ServerHello (handshake type 2) naming nothing, and the ClientHello cut short: nothing.
    let mut server_hello = tls_client_hello(Some("pool.supportxmr.com"));
    server_hello[5] = 2;
    s.run(&Packet::tcp4(server, m, 443, 46008, &server_hello).build());
    let cut = tls_client_hello(Some("pool.supportxmr.com"));
    s.run(&Packet::tcp4(m, server, 46009, 443, &cut[..cut.len() - 6]).build());
    assert_eq!(s.k.suspect_cell(R, DIR_FROM, sni).unwrap(), 4);
    assert_eq!(s.k.suspect_cell(R, DIR_TO, sni).unwrap(), 0);
    assert_eq!(s.all_stratum(), 0);
}

/// `encrypted_stratum`'s records: from a ClientHello on a flow with a watched endpoint, a pool
/// address or a pool port, every segment that opens with an application-data record header is kept
/// (its length field, direction and time from the ClientHello, in 10 ms steps), the first 64 of a
/// flow, and summed; unwatched flows, flows without a ClientHello (SSH), other record types and
/// segments continuing a record are not. Run through replay's batch entry, whose clock is the
/// packets' capture time, so the times are exact.
#[test]
fn tls_shapes_are_recorded_from_the_client_hello_on_watched_and_pool_flows() {
    use sensor_common::{
        Stat,
        tls_shape::{Record, SHAPE_RECORDS},
    };
    use test_support::tls_app_data;
    let cfg = Config::parse(
        &format!("[pools]\nports = [14433]\nendpoints = [\"198.51.100.5\"]\n{CONFIG}"),
        "test",
    )
    .unwrap();
    let k = replay_kernel(&cfg);
    const T0: u64 = 1_700_000_000_000_000_000;
    let run = |k: &Kernel, ms: u64, frame: &[u8]| run_at(k, T0 + ms * 1_000_000, frame);
    // m is in range a; the server (198.51.100.20) in no range and no pool.
    let (m, server) = (ip("198.18.0.9"), ip("198.51.100.20"));
    let up = |sport: u16, dport: u16, p: &[u8]| Packet::tcp4(m, server, sport, dport, p).build();
    let down = |sport: u16, dport: u16, p: &[u8]| Packet::tcp4(server, m, sport, dport, p).build();
    // The mining-shaped flow to 443: the ClientHello (again at 100 ms: no reset), the server's
    // handshake record (type 22) and an alert (21), not application data; a submit (264) and its
    // reply (80), a job (393), the first segment of a 16,401-byte record and its continuation.
    run(&k, 0, &up(50000, 443, &tls_client_hello(None)));
    run(&k, 50, &down(443, 50000, &tls_client_hello(None)[..60]));
    run(&k, 100, &up(50000, 443, &tls_client_hello(None)));
    run(&k, 4_990, &up(50000, 443, &tls_app_data(53, true)));
    run(&k, 20_000, &up(50000, 443, &tls_app_data(264, true)));
    run(&k, 20_150, &down(443, 50000, &tls_app_data(80, true)));
    run(&k, 70_000, &down(443, 50000, &tls_app_data(393, true)));
    run(&k, 90_000, &down(443, 50000, &tls_app_data(16_401, false)));
    run(
        &k,
        90_010,
        &down(443, 50000, &tls_app_data(16_401, false)[5..]),
    );
    run(&k, 95_000, &up(50000, 443, &[21, 3, 3, 0, 2, 1, 0]));
    // Not recorded: an unwatched flow on 443, SSH from the watched address (no ClientHello), and
    // application data on a watched flow whose ClientHello was not seen.
    let other = ip("198.51.100.30");
    run(
        &k,
        0,
        &Packet::tcp4(other, server, 51000, 443, &tls_client_hello(None)).build(),
    );
    run(
        &k,
        1_000,
        &Packet::tcp4(other, server, 51000, 443, &tls_app_data(264, true)).build(),
    );
    run(&k, 0, &up(52000, 22, b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"));
    run(&k, 1_000, &up(52000, 22, &tls_app_data(264, true)[3..]));
    run(&k, 2_000, &up(53000, 443, &tls_app_data(264, true)));
    // Recorded although unwatched: towards a pool port, and towards a pool address, whose flow
    // sees 70 records of 100 bytes, 10 ms apart from 6 s on, alternating from the client.
    run(
        &k,
        0,
        &Packet::tcp4(other, server, 54000, 14433, &tls_client_hello(None)).build(),
    );
    let pool = ip("198.51.100.5");
    run(
        &k,
        0,
        &Packet::tcp4(other, pool, 55000, 443, &tls_client_hello(None)).build(),
    );
    for i in 0..70u64 {
        let r = tls_app_data(100, true);
        let f = if i % 2 == 0 {
            Packet::tcp4(other, pool, 55000, 443, &r)
        } else {
            Packet::tcp4(pool, other, 443, 55000, &r)
        };
        run(&k, 6_000 + i * 10, &f.build());
    }

    assert_eq!(k.stat(Stat::ShapesStarted).unwrap(), 3);
    let flows = k.shape_maps().unwrap().flows();
    assert_eq!(flows.len(), 3);
    let of = |port: u16| {
        flows
            .iter()
            .find(|(key, _)| key.port_lo == port || key.port_hi == port)
            .map(|(_, s)| *s)
            .unwrap()
    };
    let mining = of(50000);
    assert_eq!(mining.first_ns, T0);
    // The client (198.18.0.9) is in range a (bit 0); 198.18 orders before 198.51: the key's low
    // side.
    assert_eq!((mining.src_ranges, mining.dst_ranges), (1 << A, 0));
    assert_eq!((mining.client_is_lo, mining.ifindex), (1, 1));
    let rec = |ms, server, len| Record { ms, server, len };
    assert_eq!(
        mining.kept().collect::<Vec<_>>(),
        vec![
            rec(20_000, false, 264),
            rec(20_150, true, 80),
            rec(70_000, true, 393),
            rec(90_000, true, 16_401),
        ]
    );
    // The record at 4.99 s is the opening's: summed, not kept. 53 + 264 from the client; 80 + 393
    // + 16,401 = 16,874 from the server.
    assert_eq!((mining.records, mining.kept), (5, 4));
    // Its latest record: the 16,401-byte one at 90 s.
    assert_eq!(mining.last_tick, 9_000);
    assert_eq!(mining.bytes, [317, 16_874]);
    assert_eq!(of(14433).records, 0);
    // 70 records: the first 64 kept (32 each way, from 6 s in 10 ms steps), all 70 summed: 35 x
    // 100 each way. The client (198.51.100.30) orders after the pool (.5): the key's high side.
    let busy = of(55000);
    assert_eq!(busy.client_is_lo, 0);
    assert_eq!(busy.records, 70);
    assert_eq!(busy.last_ms(), 6_690);
    assert_eq!(busy.kept().count(), SHAPE_RECORDS);
    assert_eq!(busy.bytes, [3_500, 3_500]);
    let kept: Vec<Record> = busy.kept().collect();
    assert_eq!(kept[0], rec(6_000, false, 100));
    assert_eq!(kept[63], rec(6_630, true, 100));
    // Nothing of it is a suspect flow yet: the verdict is the agent's.
    let es = sensor_common::Reason::EncryptedStratum as usize;
    assert_eq!(k.suspect_cell(A, DIR_FROM, es).unwrap(), 0);
    // The agent's judge at 2 minutes: the busy flow's kept records are full, so it is judged now
    // (nothing proven: its 100-byte exchanges are no submits) and forgotten; the other two wait
    // for their 4 minutes. Memory: 2 flows of 344
    // bytes (a 40-byte key and a 304-byte value); nothing evicted.
    let metrics = mining_sensor::metrics::Metrics::new();
    let mut judge = mining_sensor::shape::Judge::new(k.shape_maps().unwrap());
    let started = k.stat(Stat::ShapesStarted).unwrap();
    let flagged = judge
        .run(T0 + 120_000_000_000, false, started, &metrics)
        .unwrap();
    assert!(flagged.is_empty());
    assert_eq!(k.shape_maps().unwrap().flows().len(), 2);
    assert_eq!(metrics.tls_shape_bytes.get(), 688);
    assert_eq!(metrics.tls_shape_evictions.get(), 0);
    assert_eq!(k.suspect_cell(A, DIR_FROM, es).unwrap(), 0);
}

#[test]
fn candidates_are_copied_every_stratum_packet_and_suspects_within_the_budget() {
    use sensor_common::Stat;
    let mut s = Sensor::with(&format!(
        "[inspect]\ncapture_mode = \"inline\"\nbudget = 2\n[pools]\nendpoints = [\"198.51.100.5\"]\n{CONFIG}"
    ));
    let (m, pool) = (ip("198.18.0.9"), ip("203.0.113.50"));
    let login = Packet::tcp4(m, pool, 45000, 3333, &xmrig_login()).build();
    // Three Stratum packets of one flow: all three are copied, whole, though the budget is 2 (it
    // bounds suspect flows only; before the activity measure this was 2).
    s.run(&login);
    s.run(&Packet::tcp4(pool, m, 3333, 45000, LOGIN_REPLY).build());
    s.run(&Packet::tcp4(m, pool, 45000, 3333, SUBMIT).build());
    let samples = s.k.read_samples().unwrap();
    assert_eq!(samples.len(), 3);
    assert_eq!(samples[0].frame_len as usize, login.len());
    assert_eq!(samples[0].cap_len as usize, login.len());
    assert_eq!(&samples[0].data[..login.len()], &login[..]);
    assert_eq!(samples[0].ifindex, 1);
    // Another flow's Stratum packet is copied too; ordinary data is never a candidate.
    s.run(&Packet::tcp4(m, pool, 45001, 3333, SUBMIT).build());
    s.run(&Packet::tcp4(m, pool, 45002, 80, b"GET / HTTP/1.1\r\n\r\n").build());
    assert_eq!(s.k.read_samples().unwrap().len(), 1);
    // A pool endpoint's flow: its data packets (not the SYN) within the budget.
    let ep = ip("198.51.100.5");
    s.run(&Packet::tcp4(m, ep, 45003, 443, b"").tcp_flags(0x02).build());
    for _ in 0..3 {
        s.run(&Packet::tcp4(m, ep, 45003, 443, &[0x17, 3, 3, 0, 1, 0]).build());
    }
    assert_eq!(s.k.read_samples().unwrap().len(), 2);
    // The same for JSON that is not Stratum on a pool endpoint's flow: 2 of 3.
    for _ in 0..3 {
        s.run(&Packet::tcp4(m, ep, 45005, 8080, b"{\"a\":1}\n").build());
    }
    assert_eq!(s.k.read_samples().unwrap().len(), 2);
    // 3 + 1 + 2 + 2 (7 when the budget also bounded Stratum flows).
    assert_eq!(s.k.stat(Stat::Candidates).unwrap(), 8);
    assert_eq!(s.k.stat(Stat::SamplesLost).unwrap(), 0);
    // A frame longer than a sample keeps its first SAMPLE_BYTES.
    let big = Packet::tcp4(
        m,
        pool,
        45004,
        3333,
        &[xmrig_login(), vec![b' '; 2000]].concat(),
    )
    .build();
    s.run(&big);
    let sample = s.k.read_samples().unwrap().remove(0);
    assert_eq!(sample.frame_len as usize, big.len());
    assert_eq!(sample.cap_len as usize, sensor_common::SAMPLE_BYTES);
    assert_eq!(&sample.data[..], &big[..sensor_common::SAMPLE_BYTES]);
}

/// The activity measure needs every share, job and reply of a Stratum flow: past the budget, and
/// also the segments the scan does not recognise (plain replies, continuations) once the flow is
/// in the flow table. They are copied without being counted as Stratum packets.
#[test]
fn every_json_packet_of_a_stratum_flow_is_a_candidate_past_the_budget() {
    use sensor_common::Stat;
    // The default budget, 8.
    let mut s = Sensor::with(&format!("[inspect]\ncapture_mode = \"inline\"\n{CONFIG}"));
    let (m, pool) = (ip("198.18.0.9"), ip("203.0.113.50"));
    let up = |p: &[u8]| Packet::tcp4(m, pool, 45100, 3333, p).build();
    let down = |p: &[u8]| Packet::tcp4(pool, m, 3333, 45100, p).build();
    const OK: &[u8] =
        b"{\"id\":2,\"jsonrpc\":\"2.0\",\"error\":null,\"result\":{\"status\":\"OK\"}}\n";
    s.run(&up(&xmrig_login()));
    s.run(&down(LOGIN_REPLY));
    // 12 submits, each answered by the pool's plain "OK", which the scan does not recognise.
    for _ in 0..12 {
        s.run(&up(SUBMIT));
        s.run(&down(OK));
    }
    // Stratum packets: login, its reply, 12 submits = 14, each in range a (m) from and range b
    // (pool) to, or the reverse for the reply: a/from 13, b/to 13, a/to 1, b/from 1.
    assert_eq!(s.stratum(A, DIR_FROM, MONERO), 13);
    assert_eq!(s.stratum(B, DIR_TO, MONERO), 13);
    assert_eq!(s.stratum(A, DIR_TO, MONERO), 1);
    assert_eq!(s.all_stratum(), 28);
    assert_eq!(s.k.flows().unwrap()[0].1.stratum_packets, 14);
    // Candidates: the 14 Stratum packets and the 12 replies = 26 (8 under the old budget).
    let samples = s.k.read_samples().unwrap();
    assert_eq!(samples.len(), 26);
    assert_eq!(s.k.stat(Stat::Candidates).unwrap(), 26);
    let ok = down(OK);
    assert_eq!(&samples[3].data[..ok.len()], &ok[..]);
    assert_eq!(&samples[25].data[..ok.len()], &ok[..]);

    // A segment continuing a message (printable, no `{`) on the known flow: a candidate, not a
    // Stratum packet.
    s.run(&down(b"\"status\":\"OK\"}}\n"));
    assert_eq!(s.k.stat(Stat::Candidates).unwrap(), 27);
    assert_eq!(s.all_stratum(), 28);

    // A Stratum V1 flow (ranges c and b): the subscribe opens it, the plain `result: true` reply
    // to a submit is a candidate and no Stratum packet.
    let (v1, p1) = (ip("192.0.2.70"), ip("203.0.113.60"));
    s.run(
        &Packet::tcp4(
            v1,
            p1,
            45200,
            3333,
            b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[\"cgminer/4.10.0\"]}\n",
        )
        .build(),
    );
    assert_eq!(s.stratum(C, DIR_FROM, BITCOIN), 1);
    assert_eq!(s.k.stat(Stat::Candidates).unwrap(), 28);
    const TRUE: &[u8] = b"{\"id\":4,\"result\":true,\"error\":null}\n";
    s.run(&Packet::tcp4(p1, v1, 3333, 45200, TRUE).build());
    assert_eq!(s.k.stat(Stat::Candidates).unwrap(), 29);
    assert_eq!(s.stratum(C, DIR_TO, BITCOIN), 0);
    assert_eq!(s.all_stratum(), 30);

    // The same reply, and the same continuation, on flows the table does not know: neither
    // candidates nor Stratum packets (other ports of the same hosts, and an unwatched pair).
    s.run(&Packet::tcp4(p1, v1, 3333, 45201, TRUE).build());
    s.run(&Packet::tcp4(pool, m, 3333, 45101, OK).build());
    s.run(&Packet::tcp4(pool, m, 3333, 45101, b"\"status\":\"OK\"}}\n").build());
    s.run(&Packet::tcp4(ip("198.51.100.7"), ip("198.51.100.8"), 3333, 45300, TRUE).build());
    assert_eq!(s.k.stat(Stat::Candidates).unwrap(), 29);
    assert_eq!(s.all_stratum(), 30);
    assert_eq!(s.k.read_samples().unwrap().len(), 3);
    assert_eq!(s.k.flows().unwrap().len(), 2);
}

/// A segment that opens a JSON message and runs past the 512-byte window with nothing recognised
/// in it (a login padded with an unknown key before its method) is a candidate, on a flow the
/// table does not know, so that deep inspection reads it whole; it is no Stratum packet and
/// opens no flow. Shorter JSON without a marker, and long text that opens no JSON, are neither.
#[test]
fn a_json_opening_longer_than_the_window_is_a_candidate() {
    use sensor_common::Stat;
    let mut s = Sensor::with(&format!("[inspect]\ncapture_mode = \"inline\"\n{CONFIG}"));
    let (m, pool) = (ip("198.18.0.9"), ip("203.0.113.50"));
    let up = |sport: u16, p: &[u8]| Packet::tcp4(m, pool, sport, 3333, p).build();
    // `{"pad":"` (8 bytes) and 600 x's: the method starts at byte 630, past the window.
    let padded = [
        b"{\"pad\":\"".as_slice(),
        &[b'x'; 600],
        b"\",\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"login\",\"params\":{}}\n",
    ]
    .concat();
    s.run(&up(45400, &padded));
    assert_eq!(s.k.stat(Stat::Candidates).unwrap(), 1);
    let samples = s.k.read_samples().unwrap();
    assert_eq!(samples.len(), 1);
    assert_eq!(s.all_stratum(), 0);
    assert!(s.k.flows().unwrap().is_empty());
    // A short JSON message with no marker (whole in the window), and 600 bytes of text that
    // open no message: no candidate.
    s.run(&up(45401, b"{\"a\":1,\"b\":[1,2,3]}\n"));
    s.run(&up(45402, &[b'x'; 600]));
    assert_eq!(s.k.stat(Stat::Candidates).unwrap(), 1);
    assert!(s.k.read_samples().unwrap().is_empty());
}

/// A login padded with an unknown key of kilobytes before its method, over several segments of
/// a new flow: the first (a JSON opening past the window, nothing recognised) and the next
/// `OPENING_FOLLOW_SEGMENTS` (3) in sequence from the same endpoint are candidates, handed over
/// as they are for deep inspection to join, while the flow is unknown; a gap or the flow's
/// opening ends that. Nothing of it is a Stratum packet.
#[test]
fn a_login_padded_over_several_segments_is_handed_over_whole() {
    use sensor_common::Stat;
    let mut s = Sensor::with(&format!("[inspect]\ncapture_mode = \"inline\"\n{CONFIG}"));
    let (m, pool) = (ip("198.18.0.9"), ip("203.0.113.50"));
    let padded = |pad: usize| {
        [
            format!("{{\"pad\":\"{}\",", "x".repeat(pad)).as_bytes(),
            &xmrig_login()[1..],
        ]
        .concat()
    };
    // Segments of 1,448 bytes (an MSS), from sequence number 1000.
    let segments = |sport: u16, msg: &[u8]| -> Vec<Vec<u8>> {
        msg.chunks(1448)
            .enumerate()
            .map(|(i, c)| {
                Packet::tcp4(m, pool, sport, 3333, c)
                    .tcp_seq(1000 + 1448 * i as u32)
                    .build()
            })
            .collect()
    };
    // XMRig's login is 398 bytes; padded with 3,000 x's: 8 + 3,000 + 2 + 397 = 3,407 bytes, 3
    // segments (1,448, 1,448, 511), all candidates.
    let login = padded(3000);
    assert_eq!(login.len(), 3407);
    let segs = segments(45500, &login);
    assert_eq!(segs.len(), 3);
    for seg in &segs {
        s.run(seg);
    }
    assert_eq!(s.k.stat(Stat::Candidates).unwrap(), 3);
    assert_eq!(s.all_stratum(), 0);
    // The pool's reply opens the flow (a Stratum packet, a candidate); the miner's next segment
    // (a submit, at 1000 + 3,407 = 4,407) is scanned as any segment of a Stratum flow: a Stratum
    // packet and a candidate, and the entry, with one segment left, is gone.
    s.run(&Packet::tcp4(pool, m, 3333, 45500, LOGIN_REPLY).build());
    s.run(
        &Packet::tcp4(m, pool, 45500, 3333, SUBMIT)
            .tcp_seq(4407)
            .build(),
    );
    assert_eq!(s.k.stat(Stat::Candidates).unwrap(), 5);
    assert_eq!(s.all_stratum(), 2 * 2);
    assert_eq!(s.k.openings().unwrap(), 0);
    // Padded with 6,000: 6,407 bytes, 5 segments (4 x 1,448 and 615): the first and the next 3
    // are candidates, the 5th is not.
    let segs = segments(45501, &padded(6000));
    assert_eq!(segs.len(), 5);
    for seg in &segs {
        s.run(seg);
    }
    assert_eq!(s.k.stat(Stat::Candidates).unwrap(), 5 + 4);
    // A gap: the first segment, then the third: only the first.
    let segs = segments(45502, &login);
    s.run(&segs[0]);
    s.run(&segs[2]);
    assert_eq!(s.k.stat(Stat::Candidates).unwrap(), 9 + 1);
    // Held 3 times, each removed (flow opened, last segment, gap): none left, none evicted.
    assert_eq!(s.k.stat(Stat::OpeningsHeld).unwrap(), 3);
    assert_eq!(s.k.stat(Stat::OpeningsRemoved).unwrap(), 3);
    assert_eq!(s.k.openings().unwrap(), 0);
    // Copied whole: 54 bytes of headers and the segment (the sample holds 1,536).
    let sizes: Vec<u32> =
        s.k.read_samples()
            .unwrap()
            .iter()
            .map(|x| x.cap_len)
            .collect();
    assert_eq!(sizes.len(), 10);
    assert_eq!(&sizes[..3], &[1502, 1502, 565]);
    assert_eq!(s.all_stratum(), 2 * 2);
    // The other endpoint's messages that match nothing (an ethproxy pool's `true`) are handed
    // over while the client is followed and until its segment after the last followed one
    // (`opening_answers`); on a flow nobody follows, and after that, not.
    let answer = |sport: u16| {
        Packet::tcp4(
            pool,
            m,
            3333,
            sport,
            b"{\"id\":1,\"jsonrpc\":\"2.0\",\"result\":true}\n",
        )
        .build()
    };
    let segs = segments(45503, &padded(6000));
    s.run(&segs[0]);
    s.run(&answer(45503));
    s.run(&answer(45504));
    assert_eq!(s.k.stat(Stat::Candidates).unwrap(), 10 + 2);
    for seg in &segs[1..4] {
        s.run(seg);
    }
    s.run(&answer(45503));
    assert_eq!(s.k.stat(Stat::Candidates).unwrap(), 12 + 3 + 1);
    s.run(&segs[4]);
    s.run(&answer(45503));
    assert_eq!(s.k.stat(Stat::Candidates).unwrap(), 16);
    assert_eq!(s.k.openings().unwrap(), 0);
    assert_eq!(s.all_stratum(), 2 * 2);
}

/// Budget 0 turns deep inspection off for Stratum flows too: nothing is handed over, and the
/// Stratum counting is what it is with inspection on.
#[test]
fn budget_zero_hands_over_nothing_of_a_stratum_flow() {
    use sensor_common::Stat;
    let mut s = Sensor::with(&format!(
        "[inspect]\ncapture_mode = \"inline\"\nbudget = 0\n{CONFIG}"
    ));
    let (m, pool) = (ip("198.18.0.9"), ip("203.0.113.50"));
    let up = |p: &[u8]| Packet::tcp4(m, pool, 45100, 3333, p).build();
    let down = |p: &[u8]| Packet::tcp4(pool, m, 3333, 45100, p).build();
    s.run(&up(&xmrig_login()));
    s.run(&down(LOGIN_REPLY));
    for _ in 0..3 {
        s.run(&up(SUBMIT));
        s.run(&down(
            b"{\"id\":2,\"jsonrpc\":\"2.0\",\"error\":null,\"result\":{\"status\":\"OK\"}}\n",
        ));
    }
    s.run(&down(b"\"status\":\"OK\"}}\n"));
    // Login, its reply and 3 submits: 5 Stratum packets; replies and continuation: none.
    assert_eq!(s.stratum(A, DIR_FROM, MONERO), 4);
    assert_eq!(s.stratum(A, DIR_TO, MONERO), 1);
    assert_eq!(s.k.flows().unwrap()[0].1.stratum_packets, 5);
    assert_eq!(s.k.stat(Stat::Candidates).unwrap(), 0);
    assert!(s.k.read_samples().unwrap().is_empty());
}

#[test]
fn tap_mode_without_a_socket_passes_the_candidate_and_says_so() {
    use sensor_common::Stat;
    let login = Packet::tcp4(
        ip("198.18.0.9"),
        ip("203.0.113.50"),
        45000,
        3333,
        &xmrig_login(),
    )
    .build();
    let mut s = Sensor::with(&format!("[inspect]\ncapture_mode = \"tap\"\n{CONFIG}"));
    s.run(&login);
    assert_eq!(s.k.stat(Stat::NoSocket).unwrap(), 1);
    assert_eq!(s.k.stat(Stat::Candidates).unwrap(), 0);
    assert!(s.k.read_samples().unwrap().is_empty());
    assert_eq!(s.flows(A, DIR_FROM, MONERO), 1);

    // Budget 0: deep inspection off, nothing handed over.
    let mut s = Sensor::with(&format!("[inspect]\nbudget = 0\n{CONFIG}"));
    s.run(&login);
    assert_eq!(s.k.stat(Stat::Candidates).unwrap(), 0);
    assert_eq!(s.k.stat(Stat::NoSocket).unwrap(), 0);
    assert!(s.k.read_samples().unwrap().is_empty());
}

#[test]
fn dns_queries_for_pool_domains_flag_their_flow() {
    use sensor_common::Reason;
    use test_support::dns_query;
    const R: usize = 0; // the only range of this configuration
    let dns = Reason::PoolDns as usize;
    let mut s = Sensor::with(
        "[pools]\nextra_domains = [\"pool.example\"]\n[[ranges]]\nname = \"c\"\ncidrs = [\"192.0.2.0/24\", \"2001:db8:c::/48\"]\n",
    );
    let (m, resolver) = (ip("192.0.2.9"), ip("198.51.100.53"));
    let q = |sport: u16, name: &str| {
        Packet::udp4(m, resolver, sport, 53, &dns_query(7, name, false)).build()
    };
    // A default pool domain and a name under it, in any case; each query its own flow.
    s.run(&q(50000, "pool.supportxmr.com"));
    s.run(&q(50000, "pool.supportxmr.com"));
    s.run(&q(50001, "SupportXMR.COM"));
    s.run(&q(50002, "xmr-eu1.nanopool.org"));
    s.run(&q(50003, "a.pool.example"));
    assert_eq!(s.k.suspect_cell(R, DIR_FROM, dns).unwrap(), 4);
    // Not a pool: a look-alike, a pool name as a prefix, a plain name; nor an answer, nor another
    // port, nor a name cut short.
    s.run(&q(50004, "notsupportxmr.com"));
    s.run(&q(50005, "supportxmr.com.example.org"));
    s.run(&q(50006, "example.org"));
    s.run(
        &Packet::udp4(
            resolver,
            m,
            53,
            50007,
            &dns_query(7, "pool.supportxmr.com", true),
        )
        .build(),
    );
    s.run(
        &Packet::udp4(
            m,
            resolver,
            50008,
            5353,
            &dns_query(7, "pool.supportxmr.com", false),
        )
        .build(),
    );
    let cut = dns_query(7, "pool.supportxmr.com", false);
    s.run(&Packet::udp4(m, resolver, 50009, 53, &cut[..cut.len() - 12]).build());
    assert_eq!(s.k.suspect_cell(R, DIR_FROM, dns).unwrap(), 4);
    assert_eq!(s.k.suspect_cell(R, DIR_TO, dns).unwrap(), 0);
    // IPv6, and from outside every range.
    s.run(
        &Packet::udp6(
            ip6("2001:db8:c::9"),
            ip6("2001:db8:53::1"),
            50010,
            53,
            &dns_query(9, "gulf.moneroocean.stream", false),
        )
        .vlan(0x8100, 12)
        .build(),
    );
    assert_eq!(s.k.suspect_cell(R, DIR_FROM, dns).unwrap(), 5);
    s.run(
        &Packet::udp4(
            ip("203.0.113.9"),
            resolver,
            50011,
            53,
            &dns_query(9, "supportxmr.com", false),
        )
        .build(),
    );
    assert_eq!(s.k.suspect_cell(UNWATCHED_SLOT, DIR_FROM, dns).unwrap(), 1);
    let events = s.k.read_events().unwrap();
    let line = mining_sensor::events::line(&events[0], |id| (id == 0).then(|| "c".into()), "lo");
    let v = serde_json::to_value(&line).unwrap();
    assert_eq!(
        (
            v["reason"].as_str(),
            v["proto"].as_str(),
            v["dport"].as_u64()
        ),
        (Some("pool_dns"), Some("udp"), Some(53))
    );
    assert_eq!(s.all_stratum(), 0);

    // `domains` replaces the defaults.
    let mut s = Sensor::watching_c("[pools]\ndomains = [\"pool.example\"]\n");
    s.run(
        &Packet::udp4(
            m,
            resolver,
            50000,
            53,
            &dns_query(7, "pool.supportxmr.com", false),
        )
        .build(),
    );
    s.run(
        &Packet::udp4(
            m,
            resolver,
            50001,
            53,
            &dns_query(7, "x.pool.example", false),
        )
        .build(),
    );
    assert_eq!(s.k.suspect_cell(R, DIR_FROM, dns).unwrap(), 1);
}

/// Replay runs the program over batches of packets (`Kernel::load_for_replay`), moving the
/// frame's bounds from packet to packet in the kernel. Whatever the packets, a batch must count,
/// report and copy exactly what running the program once per packet does, with the packets'
/// capture times as its clock.
#[test]
fn replay_batches_count_what_single_runs_count() {
    use mining_sensor::bpf::{BatchPacket, batch_input};
    use sensor_common::{
        DIRS, RANGE_SLOTS, REPLAY_BATCH_MAX, REPLAY_DONE, Reason, ReplayHeader, Stat,
    };
    use test_support::dns_query;
    let config = format!(
        "[inspect]\ncapture_mode = \"inline\"\nbudget = 3\n[pools]\nports = [14433]\nendpoints = [\"198.51.100.5\"]\n{CONFIG}{PEERS_TT}{PEERS_CU}"
    );
    let (m, pool, ep) = (ip("198.18.0.9"), ip("203.0.113.50"), ip("198.51.100.5"));
    let mut frames = hostile_frames();
    for port in 46000..46040u16 {
        frames.push(Packet::tcp4(m, pool, port, 3333, &xmrig_login()).build());
        frames.push(Packet::tcp4(pool, m, 3333, port, LOGIN_REPLY).build());
        frames.push(Packet::tcp4(m, pool, port, 3333, b"").build());
        frames.push(Packet::tcp4(m, pool, port, 3333, SUBMIT).build());
        frames.push(Packet::tcp4(m, pool, port, 3333, KEEPALIVE).build());
        frames.push(Packet::tcp4(m, ep, port, 14433, &tls_client_hello(None)).build());
        frames.push(
            Packet::udp4(
                ip("192.0.2.7"),
                ip("203.0.113.9"),
                port,
                53,
                &dns_query(7, "pool.supportxmr.com", false),
            )
            .build(),
        );
    }
    frames.push(Packet::tcp4(m, pool, 47001, 3333, &xmrig_login()).build());
    // Neighbours: by address each way, by VLAN, and nobody's.
    for (i, port) in (48000..48010u16).enumerate() {
        let p = Packet::udp4(m, pool, port, 9, &[0; 20]);
        let f = match i % 4 {
            0 => p.macs(TT, CU),
            1 => p.macs(CU, TT),
            2 => p.macs(STRANGER, HOST).vlan(0x8100, 100),
            _ => p.macs(STRANGER, HOST),
        };
        frames.push(f.build());
    }

    let mut one = Sensor::with(&config);
    for f in &frames {
        one.run(f);
    }

    let cfg = Config::parse(&config, "test").unwrap();
    let mut batched = load_for_replay(&cfg);
    batched.configure(&cfg).unwrap();
    batched.set_iface_slot(1, SLOT as u32).unwrap();
    let ts = |i: usize| 1_559_347_200_000_000_000u64 + i as u64 * 1_000;
    let mut batches = 0;
    {
        let runner = batched.batch_runner().unwrap();
        let mut input = Vec::new();
        let mut i = 0;
        while i < frames.len() {
            // As many as fit: up to REPLAY_BATCH_MAX, within a page's linear part.
            let mut size = 0;
            let mut n = 0;
            while i + n < frames.len()
                && n < REPLAY_BATCH_MAX
                && (n == 0 || size + ReplayHeader::SIZE + frames[i + n].len() <= 3_400)
            {
                size += ReplayHeader::SIZE + frames[i + n].len();
                n += 1;
            }
            batch_input(
                (i..i + n).map(|k| BatchPacket {
                    ts_ns: ts(k),
                    ifindex: 1,
                    data: &frames[k],
                    wire_len: frames[k].len(),
                }),
                &mut input,
            );
            assert_eq!(
                runner.run_batch(&input).unwrap(),
                REPLAY_DONE + n as u32,
                "batch at {i}"
            );
            i += n;
            batches += 1;
        }
    }
    assert!(
        batches * 10 < frames.len(),
        "{batches} batches for {} frames",
        frames.len()
    );

    for r in 0..RANGE_SLOTS {
        for d in 0..DIRS {
            let cell = |k: &Kernel| k.traffic_cell(SLOT, r, d).unwrap();
            let (a, b) = (cell(&one.k), cell(&batched));
            assert_eq!(
                (a.packets, a.bytes),
                (b.packets, b.bytes),
                "traffic {r}/{d}"
            );
            for dialect in 0..3 {
                for flows in [false, true] {
                    let cell = |k: &Kernel| k.stratum_cell(flows, r, d, dialect).unwrap();
                    assert_eq!(
                        cell(&one.k),
                        cell(&batched),
                        "stratum {flows} {r}/{d}/{dialect}"
                    );
                }
            }
            for reason in 0..Reason::COUNT {
                let cell = |k: &Kernel| k.suspect_cell(r, d, reason).unwrap();
                assert_eq!(cell(&one.k), cell(&batched), "suspect {r}/{d}/{reason}");
            }
            for p in 0..sensor_common::PEER_SLOTS {
                if r == UNWATCHED_SLOT {
                    break;
                }
                let cell = |k: &Kernel| k.peer_cell(r, d, p).unwrap();
                assert_eq!(cell(&one.k), cell(&batched), "peer {r}/{d}/{p}");
            }
        }
    }
    assert_eq!(
        one.k.parse_events().unwrap(),
        batched.parse_events().unwrap()
    );
    assert_eq!(
        batched.parse_event(ParseEvent::Seen).unwrap(),
        frames.len() as u64
    );
    for stat in [
        Stat::FlowsCreated,
        Stat::EventsSent,
        Stat::Candidates,
        Stat::SamplesLost,
    ] {
        assert_eq!(
            one.k.stat(stat).unwrap(),
            batched.stat(stat).unwrap(),
            "{stat:?}"
        );
    }
    assert!(batched.stratum_cell(true, A, DIR_FROM, MONERO).unwrap() >= 40);
    // The ten neighbour frames from 198.18.0.9 (a) to 203.0.113.50 (b), 48 IP bytes each: tt
    // delivered i = 0, 4, 8 and (VLAN 100) 2, 6; cu 1, 5, 9; nobody 3, 7. Handed to: cu 0, 4, 8
    // and (the VLAN decides both ways) tt 2, 6; tt 1, 5, 9; nobody 3, 7.
    let (tt, cu) = (1, 2);
    let peer = |r, d, p| {
        let c = batched.peer_cell(r, d, p).unwrap();
        (c.packets, c.bytes)
    };
    assert_eq!(peer(A, DIR_FROM, tt), (5, 240));
    assert_eq!(peer(A, DIR_FROM, cu), (3, 144));
    assert_eq!(peer(B, DIR_TO, tt), (5, 240));
    assert_eq!(peer(B, DIR_TO, cu), (3, 144));
    assert!(
        batched
            .suspect_cell(C, DIR_FROM, Reason::PoolDns as usize)
            .unwrap()
            >= 40
    );

    // The same events, each stamped with the capture time of a packet of the batch.
    let (e1, e2) = (one.k.read_events().unwrap(), batched.read_events().unwrap());
    assert_eq!(e1.len(), e2.len());
    assert!(e1.len() >= 120, "{}", e1.len());
    let times: std::collections::HashSet<u64> = (0..frames.len()).map(ts).collect();
    for (a, b) in e1.iter().zip(&e2) {
        assert!(times.contains(&b.ts_ns), "{}", b.ts_ns);
        let strip = |e: &sensor_common::Event| sensor_common::Event { ts_ns: 0, ..*e };
        assert_eq!(strip(a), strip(b));
    }
    // The same copies for deep inspection, with capture times too.
    let (s1, s2) = (
        one.k.read_samples().unwrap(),
        batched.read_samples().unwrap(),
    );
    assert_eq!(s1.len(), s2.len());
    assert!(s1.len() >= 120, "{}", s1.len());
    for (a, b) in s1.iter().zip(&s2) {
        assert!(times.contains(&b.ts_ns));
        assert_eq!(
            (a.ifindex, a.frame_len, a.cap_len),
            (b.ifindex, b.frame_len, b.cap_len)
        );
        assert_eq!(a.data[..a.cap_len as usize], b.data[..b.cap_len as usize]);
    }
}

/// Neighbours of the peer tests: two routers, each also reachable over a VLAN of its own.
const TT: [u8; 6] = [0x02, 0x00, 0x5e, 0x10, 0x00, 0x01];
const CU: [u8; 6] = [0x02, 0x00, 0x5e, 0x10, 0x00, 0x02];
/// Addresses no neighbour has: the vantage side's hosts and a third router.
const HOST: [u8; 6] = [0x02, 0x00, 0x5e, 0x20, 0x00, 0x09];
const STRANGER: [u8; 6] = [0x02, 0x00, 0x5e, 0x30, 0x00, 0x07];
const PEERS_TT: &str = "[[peers]]\nname = \"tt\"\nmacs = [\"02:00:5e:10:00:01\"]\nvlans = [100]\n";
const PEERS_CU: &str = "[[peers]]\nname = \"cu\"\nmacs = [\"02:00:5e:10:00:02\"]\nvlans = [200]\n";
/// Peer indexes as `Kernel::configure` numbers them: position in the file + 1; 0 is `other`.
const OTHER: usize = 0;

impl Sensor {
    fn peer(&self, range: usize, dir: usize, peer: usize) -> (u64, u64) {
        let c = self.k.peer_cell(range, dir, peer).unwrap();
        (c.packets, c.bytes)
    }

    /// Per range and direction, the neighbours' cells add up to the range's traffic cell.
    fn assert_peers_add_up(&self) {
        for r in [A, B, C] {
            for d in [DIR_FROM, DIR_TO] {
                let sum = (0..sensor_common::PEER_SLOTS)
                    .map(|p| self.peer(r, d, p))
                    .fold((0, 0), |a, c| (a.0 + c.0, a.1 + c.1));
                assert_eq!(sum, self.traffic(r, d), "range {r} direction {d}");
            }
        }
    }
}

#[test]
fn peers_split_a_ranges_traffic_by_address_and_outer_vlan() {
    let mut s = Sensor::with(&format!("{CONFIG}{PEERS_TT}{PEERS_CU}"));
    let (tt, cu) = (1, 2);
    let (c, out) = (ip("192.0.2.10"), ip("198.51.100.7"));
    // From c, delivered by tt's router: UDP, 20 + 8 + 100 = 128 IP bytes.
    s.run(
        &Packet::udp4(c, out, 5000, 53, &[1; 100])
            .macs(TT, HOST)
            .build(),
    );
    assert_eq!(s.peer(C, DIR_FROM, tt), (1, 128));
    // To c, handed to cu's router (the destination address decides): 20 + 8 + 50 = 78.
    s.run(
        &Packet::udp4(out, c, 53, 5000, &[1; 50])
            .macs(TT, CU)
            .build(),
    );
    assert_eq!(s.peer(C, DIR_TO, cu), (1, 78));
    // The outermost VLAN decides before the address: cu's router on tt's VLAN 100 is tt.
    // TCP, 20 + 20 + 10 = 50.
    let tcp = Packet::tcp4(c, out, 40000, 443, &[2; 10]);
    s.run(&tcp.clone().macs(CU, HOST).vlan(0x8100, 100).build());
    assert_eq!(s.peer(C, DIR_FROM, tt), (2, 178));
    // Nested tags: only the outermost counts. Outer 200 (cu) over inner 100 (tt): cu.
    s.run(
        &tcp.clone()
            .macs(TT, HOST)
            .vlan(0x88a8, 200)
            .vlan(0x8100, 100)
            .build(),
    );
    assert_eq!(s.peer(C, DIR_FROM, cu), (1, 50));
    // Outer 300 (no neighbour's) over inner 200 (cu's), from a stranger's address: the inner
    // tag is not looked at and the address is nobody's, so `other`.
    s.run(
        &tcp.clone()
            .macs(STRANGER, HOST)
            .vlan(0x88a8, 300)
            .vlan(0x8100, 200)
            .build(),
    );
    assert_eq!(s.peer(C, DIR_FROM, OTHER), (1, 50));
    // An unconfigured outer VLAN falls back to the address: 300 over tt's address is tt.
    s.run(&tcp.clone().macs(TT, HOST).vlan(0x8100, 300).build());
    assert_eq!(s.peer(C, DIR_FROM, tt), (3, 228));
    // A frame from a neighbour nobody configured: `other`.
    s.run(&tcp.clone().macs(STRANGER, HOST).build());
    assert_eq!(s.peer(C, DIR_FROM, OTHER), (2, 100));
    // Both directions in one packet: 198.18.1.5 is in a and b (from), 192.0.2.1 in c (to);
    // from tt's router to cu's: a and b count under tt, c under cu. 20 + 8 + 12 = 40.
    s.run(
        &Packet::udp4(ip("198.18.1.5"), ip("192.0.2.1"), 1, 2, &[0; 12])
            .macs(TT, CU)
            .build(),
    );
    assert_eq!(s.peer(A, DIR_FROM, tt), (1, 40));
    assert_eq!(s.peer(B, DIR_FROM, tt), (1, 40));
    assert_eq!(s.peer(C, DIR_TO, cu), (2, 118));
    // IPv6 (2001:db8:a::/48 is a) on cu's VLAN: 40 + 8 + 4 = 52 IP bytes, to a, VLAN 200.
    s.run(
        &Packet::udp6(ip6("2001:db8:ffff::1"), ip6("2001:db8:a::1"), 1, 2, &[0; 4])
            .macs(STRANGER, STRANGER)
            .vlan(0x8100, 200)
            .build(),
    );
    assert_eq!(s.peer(A, DIR_TO, cu), (1, 52));
    // Unwatched traffic from a neighbour counts nowhere.
    s.run(
        &Packet::udp4(out, ip("198.51.100.8"), 1, 2, b"x")
            .macs(TT, CU)
            .build(),
    );
    // By hand, c from: tt 3 packets (128 + 50 + 50 = 228 bytes), cu 1 (50), other 2 (100):
    // 6 packets, 378 bytes, which is c's traffic from.
    assert_eq!(s.traffic(C, DIR_FROM), (6, 378));
    assert_eq!(s.peer(C, DIR_FROM, cu), (1, 50));
    s.assert_peers_add_up();
    assert_eq!(s.peer(C, DIR_TO, OTHER), (0, 0));
    assert_eq!(s.peer(A, DIR_FROM, OTHER), (0, 0));
}

#[test]
fn without_peers_everything_is_other() {
    let mut s = Sensor::new();
    let p = Packet::udp4(ip("192.0.2.10"), ip("203.0.113.4"), 1, 2, &[0; 12]);
    s.run(&p.clone().macs(TT, CU).build());
    s.run(&p.clone().macs(TT, CU).vlan(0x8100, 100).build());
    // 192.0.2.10 is c (from), 203.0.113.4 is b (to); 40 IP bytes each.
    assert_eq!(s.peer(C, DIR_FROM, OTHER), (2, 80));
    assert_eq!(s.peer(B, DIR_TO, OTHER), (2, 80));
    s.assert_peers_add_up();
}

#[test]
fn a_reload_adds_a_neighbour_and_keeps_every_count() {
    let mut s = Sensor::with(&format!("{CONFIG}{PEERS_TT}"));
    let from_cu = Packet::udp4(ip("192.0.2.10"), ip("198.51.100.7"), 1, 2, &[0; 12])
        .macs(CU, HOST)
        .build();
    let from_tt = Packet::udp4(ip("192.0.2.10"), ip("198.51.100.7"), 1, 2, &[0; 12])
        .macs(TT, HOST)
        .build();
    s.run(&from_cu);
    s.run(&from_tt);
    // Only tt is configured: cu's frame is `other`. 40 IP bytes each.
    assert_eq!(s.peer(C, DIR_FROM, OTHER), (1, 40));
    assert_eq!(s.peer(C, DIR_FROM, 1), (1, 40));
    // The reload adds cu (peer index 2); tt keeps index 1.
    let cfg = Config::parse(&format!("{CONFIG}{PEERS_TT}{PEERS_CU}"), "test").unwrap();
    s.k.configure(&cfg).unwrap();
    s.run(&from_cu);
    s.run(&from_tt);
    assert_eq!(s.peer(C, DIR_FROM, OTHER), (1, 40));
    assert_eq!(s.peer(C, DIR_FROM, 1), (2, 80));
    assert_eq!(s.peer(C, DIR_FROM, 2), (1, 40));
    // A reload that leaves only cu, now at index 1 as `configure` numbers it (the agent keeps
    // indexes with names, see `PeerIds`): tt's address is nobody's, `other` goes on counting.
    let cfg = Config::parse(&format!("{CONFIG}{PEERS_CU}"), "test").unwrap();
    s.k.configure(&cfg).unwrap();
    s.run(&from_tt);
    s.run(&from_cu);
    assert_eq!(s.peer(C, DIR_FROM, OTHER), (2, 80));
    assert_eq!(s.peer(C, DIR_FROM, 1), (3, 120));
    assert_eq!(s.peer(C, DIR_FROM, 2), (1, 40));
    // A reload without neighbours: everything is `other` again.
    s.k.configure(&Config::parse(CONFIG, "test").unwrap())
        .unwrap();
    s.run(&from_cu);
    assert_eq!(s.peer(C, DIR_FROM, OTHER), (3, 120));
    s.assert_peers_add_up();
}

/// Stratum inside WebSocket frames (browser-miner bridges): the client's masked login and the
/// pool's unmasked job push are read as the messages they carry; other frames stay silent.
#[test]
fn stratum_inside_websocket_frames() {
    let mut s = Sensor::new();
    let (miner, pool) = (ip("198.18.1.20"), ip("198.51.100.50")); // miner in ranges a and b
    let up = |sport: u16, p: &[u8]| Packet::tcp4(miner, pool, sport, 443, p).build();
    let down = |sport: u16, p: &[u8]| Packet::tcp4(pool, miner, 443, sport, p).build();
    // The login (about 500 bytes: a 16-bit length) masked, a job push (under 126) unmasked.
    s.run(&up(
        48000,
        &test_support::websocket_frame(&xmrig_login(), Some([0x37, 0xfa, 0x21, 0x3d])),
    ));
    for r in [A, B] {
        assert_eq!(s.flows(r, DIR_FROM, MONERO), 1);
    }
    let job = b"{\"jsonrpc\":\"2.0\",\"method\":\"job\",\"params\":{\"blob\":\"0707\",\"job_id\":\"j2\",\"target\":\"ff\"}}";
    s.run(&down(48001, &test_support::websocket_frame(job, None)));
    for r in [A, B] {
        assert_eq!(s.stratum(r, DIR_TO, MONERO), 1);
    }
    // Not Stratum: JSON-RPC in a frame, a binary frame holding a login, a 0x81 byte opening
    // other data.
    let rpc = b"{\"jsonrpc\":\"2.0\",\"method\":\"eth_blockNumber\",\"params\":[],\"id\":1}";
    s.run(&up(
        48002,
        &test_support::websocket_frame(rpc, Some([1, 2, 3, 4])),
    ));
    let mut binary = test_support::websocket_frame(&xmrig_login(), None);
    binary[0] = 0x82;
    s.run(&up(48003, &binary));
    s.run(&up(48004, &[0x81, 0x7f, 0xff, 0x00, 0x01]));
    assert_eq!(s.all_stratum(), 2 * 2);
}

/// WebSocket frames compressed with permessage-deflate (RSV1: first byte c1) cannot be read by
/// the program: on a flow of a watched range, a pool address or a pool port each is a candidate,
/// so that deep inspection inflates the flow's messages in order, and none is a Stratum packet or
/// opens a flow (the agent opens it). Between two unwatched endpoints on another port: nothing.
#[test]
fn compressed_websocket_frames_go_to_deep_inspection() {
    use sensor_common::Stat;
    let mut s = Sensor::with(&format!("[inspect]\ncapture_mode = \"inline\"\n{CONFIG}"));
    // Any bytes stand for the DEFLATE payload: the program does not read it. The login's bytes,
    // so that a reader of the payload as text would find a marker.
    let deflated = |key: Option<[u8; 4]>| {
        let mut f = test_support::websocket_frame(&xmrig_login(), key);
        f[0] = 0xc1;
        f
    };
    let (miner, server) = (ip("198.18.1.20"), ip("198.51.100.50")); // miner in ranges a and b
    let (x, y) = (ip("198.51.100.7"), ip("198.51.100.8")); // in no range
    // The watched miner's masked frame to 443, and the server's unmasked answer: 2 candidates.
    s.run(&Packet::tcp4(miner, server, 48100, 443, &deflated(Some([9, 8, 7, 6]))).build());
    s.run(&Packet::tcp4(server, miner, 443, 48100, &deflated(None)).build());
    assert_eq!(s.k.stat(Stat::Candidates).unwrap(), 2);
    // Unwatched endpoints towards a pool port (3333) and from one: 2 more.
    s.run(&Packet::tcp4(x, y, 48101, 3333, &deflated(Some([1, 2, 3, 4]))).build());
    s.run(&Packet::tcp4(y, x, 3333, 48101, &deflated(None)).build());
    assert_eq!(s.k.stat(Stat::Candidates).unwrap(), 4);
    // Unwatched endpoints on 8080: none.
    s.run(&Packet::tcp4(x, y, 48102, 8080, &deflated(Some([1, 2, 3, 4]))).build());
    s.run(&Packet::tcp4(y, x, 8080, 48102, &deflated(None)).build());
    assert_eq!(s.k.stat(Stat::Candidates).unwrap(), 4);
    // Each candidate copied whole (a 16-bit length: 4 + 4 bytes of header with the mask, 4
    // without, and the login's bytes).
    let samples = s.k.read_samples().unwrap();
    assert_eq!(samples.len(), 4);
    let login = xmrig_login().len();
    let sizes: Vec<usize> = samples.iter().map(|s| s.cap_len as usize).collect();
    let frame = |masked: usize| 54 + 4 + masked * 4 + login;
    assert_eq!(sizes, vec![frame(1), frame(0), frame(1), frame(0)]);
    // No Stratum packet, no flow.
    assert_eq!(s.all_stratum(), 0);
    assert!(s.k.flows().unwrap().is_empty());
    // A masked pong (8a 84, the key, 4 bytes: 10 in all) and a compressed frame behind it in one
    // segment: a candidate on the pool port, not on 8080; a lone pong, or one before an
    // uncompressed text frame (81), is not.
    let pong = [0x8a, 0x84, 1, 2, 3, 4, 0x70, 0x6f, 0x6e, 0x67];
    let behind = [pong.as_slice(), &deflated(Some([1, 2, 3, 4]))].concat();
    let text = [
        pong.as_slice(),
        &test_support::websocket_frame(&xmrig_login(), Some([1, 2, 3, 4])),
    ]
    .concat();
    s.run(&Packet::tcp4(x, y, 48103, 3333, &behind).build());
    assert_eq!(s.k.stat(Stat::Candidates).unwrap(), 5);
    s.run(&Packet::tcp4(x, y, 48104, 3333, &pong).build());
    s.run(&Packet::tcp4(x, y, 48105, 3333, &text).build());
    s.run(&Packet::tcp4(x, y, 48106, 8080, &behind).build());
    assert_eq!(s.k.stat(Stat::Candidates).unwrap(), 5);
    assert_eq!(s.k.read_samples().unwrap().len(), 1);
    assert_eq!(s.all_stratum(), 0);
}

/// A WebSocket message sent in several frames (a text frame without FIN, continuations, the last
/// with FIN; `websocket::is_fragment`) cannot be scanned: no frame need hold a marker. A segment
/// that opens with such a frame, whole, or with a control frame before one, is a candidate on a
/// flow of a watched range, a pool address or a pool port, for deep inspection to join; it counts
/// no Stratum packet. Between two unwatched endpoints on another port, or cut by the segment's
/// end: nothing.
#[test]
fn fragmented_websocket_messages_go_to_deep_inspection() {
    use sensor_common::Stat;
    let mut s = Sensor::with(&format!("[inspect]\ncapture_mode = \"inline\"\n{CONFIG}"));
    let login = xmrig_login();
    let frame = |b0: u8, part: &[u8], key: Option<[u8; 4]>| {
        let mut f = test_support::websocket_frame(part, key);
        f[0] = b0;
        f
    };
    let key = Some([0x37, 0xfa, 0x21, 0x3d]);
    let (first, middle, last) = (
        frame(0x01, &login[..8], key),
        frame(0x00, &login[8..16], key),
        frame(0x80, b"", key),
    );
    let (miner, server) = (ip("198.18.1.20"), ip("198.51.100.50")); // miner in ranges a and b
    let (x, y) = (ip("198.51.100.7"), ip("198.51.100.8")); // in no range
    // The watched miner's three fragments to 443, one a segment: 3 candidates.
    for f in [&first, &middle, &last] {
        s.run(&Packet::tcp4(miner, server, 48200, 443, f).build());
    }
    assert_eq!(s.k.stat(Stat::Candidates).unwrap(), 3);
    // Unwatched endpoints from a pool port (3333), unmasked, and a pong before a fragment in
    // one segment towards it: 2 more.
    s.run(&Packet::tcp4(y, x, 3333, 48201, &frame(0x01, &login[..8], None)).build());
    let pong = [0x8a, 0x84, 1, 2, 3, 4, 0x70, 0x6f, 0x6e, 0x67];
    let behind = [pong.as_slice(), &middle].concat();
    s.run(&Packet::tcp4(x, y, 48201, 3333, &behind).build());
    assert_eq!(s.k.stat(Stat::Candidates).unwrap(), 5);
    // Not handed: the same on 8080 between unwatched endpoints; a fragment cut by the segment's
    // end (its last byte missing); a 00 byte opening other data (a 2-byte header saying 127
    // bytes more, 3 there).
    s.run(&Packet::tcp4(x, y, 48202, 8080, &first).build());
    s.run(&Packet::tcp4(x, y, 48202, 8080, &behind).build());
    s.run(&Packet::tcp4(miner, server, 48203, 443, &first[..first.len() - 1]).build());
    s.run(&Packet::tcp4(miner, server, 48204, 443, &[0x00, 0x7f, 1, 2, 3]).build());
    assert_eq!(s.k.stat(Stat::Candidates).unwrap(), 5);
    assert_eq!(s.k.read_samples().unwrap().len(), 5);
    assert_eq!(s.all_stratum(), 0);
    assert!(s.k.flows().unwrap().is_empty());
}

/// The first frame of a compressed message sent in several frames (`41`: RSV1, text, no FIN;
/// `websocket::DEFLATED_TEXT`) is a candidate as a fragment is, whole in its segment, or behind a
/// control frame, on a flow of a watched range, a pool address or a pool port that is not known
/// to be Stratum; it counts no Stratum packet. Between two unwatched endpoints on another port,
/// or cut by the segment's end: nothing. On a known plaintext Stratum flow a segment opening
/// with `A` is a continuation and is scanned as before: a message after its line end counts.
#[test]
fn a_compressed_message_in_several_frames_goes_to_deep_inspection() {
    use sensor_common::{Stat, websocket::DEFLATED_TEXT};
    let mut s = Sensor::with(&format!("[inspect]\ncapture_mode = \"inline\"\n{CONFIG}"));
    // Raw DEFLATE's start as Python's zlib writes it (`2a c9 28 ...`), masked.
    let mut first = test_support::websocket_frame(
        &[0x2a, 0xc9, 0x28, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff],
        Some([0x37, 0xfa, 0x21, 0x3d]),
    );
    first[0] = DEFLATED_TEXT;
    let (miner, server) = (ip("192.0.2.20"), ip("198.51.100.50")); // miner in range c only
    let (x, y) = (ip("198.51.100.7"), ip("198.51.100.8")); // in no range
    // The watched miner's to 443; a pong before one from a pool port between unwatched
    // endpoints: 2 candidates.
    s.run(&Packet::tcp4(miner, server, 48210, 443, &first).build());
    let pong = [0x8a, 0x84, 1, 2, 3, 4, 0x70, 0x6f, 0x6e, 0x67];
    let behind = [pong.as_slice(), &first].concat();
    s.run(&Packet::tcp4(y, x, 3333, 48211, &behind).build());
    assert_eq!(s.k.stat(Stat::Candidates).unwrap(), 2);
    // Not handed: on 8080 between unwatched endpoints, alone or behind the pong; cut by the
    // segment's end.
    s.run(&Packet::tcp4(x, y, 48212, 8080, &first).build());
    s.run(&Packet::tcp4(x, y, 48212, 8080, &behind).build());
    s.run(&Packet::tcp4(miner, server, 48213, 443, &first[..first.len() - 1]).build());
    assert_eq!(s.k.stat(Stat::Candidates).unwrap(), 2);
    assert_eq!(s.all_stratum(), 0);
    assert!(s.k.flows().unwrap().is_empty());
    // A known flow (the login: 1 Stratum packet, a candidate), then a segment opening with `A`
    // that ends a message and holds a whole submit after its line end: scanned, 1 Stratum
    // packet more, and a candidate as any continuation on a known flow.
    s.run(&Packet::tcp4(miner, server, 48214, 3333, &xmrig_login()).build());
    let rest = [b"AAAA\"}}\n".as_slice(), SUBMIT].concat();
    s.run(&Packet::tcp4(miner, server, 48214, 3333, &rest).build());
    assert_eq!(s.stratum(C, DIR_FROM, MONERO), 2);
    assert_eq!(s.all_stratum(), 2);
    assert_eq!(s.k.stat(Stat::Candidates).unwrap(), 4);
    assert_eq!(s.k.read_samples().unwrap().len(), 4);
}

/// A padded login in one masked WebSocket frame over three segments (a 16-bit length, 8 bytes of
/// header): the first segment's window holds no marker and the frame runs past the segment, so
/// the segment is a candidate and the flow's next segments in sequence are handed over too,
/// though they open with no frame header: the second with a masked byte that is not printable,
/// the third with one that is. A segment past the one awaited is not, nor anything after it; a
/// resent one (before it) is not handed over again, and the segments after it still are. Between
/// two unwatched endpoints on another port all three are too: a frame's rest followed on such a
/// flow is noted (`UNWATCHED_FOLLOW`), so that a segment there which opens with a byte that is
/// not printable pays its flow key and is looked for (before, the second was not read, and the
/// third was out of sequence for the flow's entry). A segment after the frame's end that opens
/// with such a byte is not handed over, nor is one of another unwatched flow.
#[test]
fn a_websocket_frame_over_segments_is_handed_over_whole() {
    use sensor_common::Stat;
    let mut s = Sensor::with(&format!("[inspect]\ncapture_mode = \"inline\"\n{CONFIG}"));
    let pad = "x".repeat(3000);
    let login = String::from_utf8(xmrig_login()).unwrap();
    let padded = format!("{{\"pad\":\"{pad}\",{}", &login[1..]);
    let frame = test_support::websocket_frame(padded.as_bytes(), Some([0x37, 0xfa, 0x21, 0x3d]));
    // Payload bytes 993 and 1,994: `x` masked with the key's second byte (0x82), and third (`Y`).
    assert_eq!((frame[1001], frame[2002]), (0x82, b'Y'));
    let seg = |src, dst, sport, dport, at: usize, to: usize| {
        Packet::tcp4(src, dst, sport, dport, &frame[at..to])
            .tcp_seq(100 + at as u32)
            .build()
    };
    let (miner, server) = (ip("198.18.1.20"), ip("198.51.100.50")); // miner in ranges a and b
    let end = frame.len();
    s.run(&seg(miner, server, 48300, 443, 0, 1001));
    assert_eq!(s.k.stat(Stat::Candidates).unwrap(), 1);
    // Out of sequence (a byte late): not handed, and the entry is gone.
    s.run(&seg(miner, server, 48300, 443, 1002, 2002));
    s.run(&seg(miner, server, 48300, 443, 2002, end));
    assert_eq!(s.k.stat(Stat::Candidates).unwrap(), 1);
    // Another flow, in sequence: all three.
    for (at, to) in [(0, 1001), (1001, 2002), (2002, end)] {
        s.run(&seg(miner, server, 48301, 443, at, to));
    }
    assert_eq!(s.k.stat(Stat::Candidates).unwrap(), 4);
    // Another, its second segment resent before the third: the resent copy is not handed over
    // again (deep inspection has it), and the third still is: 3 more.
    for (at, to) in [(0, 1001), (1001, 2002), (1001, 2002), (2002, end)] {
        s.run(&seg(miner, server, 48303, 443, at, to));
    }
    assert_eq!(s.k.stat(Stat::Candidates).unwrap(), 7);
    // Between unwatched endpoints on 8080: all three.
    let (x, y) = (ip("198.51.100.7"), ip("198.51.100.8"));
    for (at, to) in [(0, 1001), (1001, 2002), (2002, end)] {
        s.run(&seg(x, y, 48302, 8080, at, to));
    }
    assert_eq!(s.k.stat(Stat::Candidates).unwrap(), 10);
    // After the frame's end, a segment that opens with the second's byte (0x82): not handed
    // over; nor on another unwatched flow.
    let binary = [0x82u8, 0x01, 0x02, 0x03];
    let after = (100 + end) as u32;
    s.run(
        &Packet::tcp4(x, y, 48302, 8080, &binary)
            .tcp_seq(after)
            .build(),
    );
    s.run(
        &Packet::tcp4(x, y, 48304, 8080, &binary)
            .tcp_seq(100)
            .build(),
    );
    assert_eq!(s.k.stat(Stat::Candidates).unwrap(), 10);
    assert_eq!(s.k.read_samples().unwrap().len(), 10);
    assert_eq!(s.all_stratum(), 0);
    assert!(s.k.flows().unwrap().is_empty());
}

/// A pool's job push in one WebSocket frame (unmasked, a server's) padded after its blob with
/// 1,500 `é` (3,000 bytes of UTF-8, `c3 a9` each) over three segments, its method in the first
/// segment's window: the first is a Stratum packet (to the watched miner), and the program
/// follows the frame's rest, whose segments open with bytes beyond ASCII that nothing else
/// reads: both are candidates; a segment after the frame's end that opens with such a byte is
/// not.
#[test]
fn a_servers_frame_that_matched_is_followed_over_rests_beyond_ascii() {
    use sensor_common::Stat;
    let mut s = Sensor::with(&format!("[inspect]\ncapture_mode = \"inline\"\n{CONFIG}"));
    let job = format!(
        "{{\"jsonrpc\":\"2.0\",\"method\":\"job\",\"params\":{{\"blob\":\"0707\",\"pad\":\"{}\",\"job_id\":\"j2\",\"target\":\"dc460300\"}}}}\n",
        "é".repeat(1500)
    );
    let frame = test_support::websocket_frame(job.as_bytes(), None);
    // 4 bytes of header: frame bytes 1,000 and 2,001 are the pad's.
    assert_eq!((frame[1000], frame[2001]), (0xa9, 0xc3));
    let (miner, server) = (ip("198.18.1.20"), ip("198.51.100.50")); // miner in ranges a and b
    for w in [0, 1000, 2001, frame.len()].windows(2) {
        let seg = &frame[w[0]..w[1]];
        s.run(
            &Packet::tcp4(server, miner, 443, 48330, seg)
                .tcp_seq(100 + w[0] as u32)
                .build(),
        );
    }
    assert_eq!(s.stratum(A, DIR_TO, MONERO), 1);
    assert_eq!(s.all_stratum(), 2, "ranges a and b");
    assert_eq!(s.k.stat(Stat::Candidates).unwrap(), 3);
    let after = (100 + frame.len()) as u32;
    let text = "é, fin".as_bytes();
    s.run(
        &Packet::tcp4(server, miner, 443, 48330, text)
            .tcp_seq(after)
            .build(),
    );
    assert_eq!(s.k.stat(Stat::Candidates).unwrap(), 3);
    assert_eq!(s.k.read_samples().unwrap().len(), 3);
}

/// A compressed text frame (`c1`) longer than its segment (a message padded with bytes that do not
/// compress): 3,000 bytes of payload, 8 of header, over three segments. On a watched range's flow
/// to 443 the first segment is a candidate (a compressed frame) and the program follows the
/// frame's rest to its end: the next two segments, which open with no frame header, are too; a
/// segment after the frame's end that opens with a byte nothing reads is not. The pool's frame
/// the other way (unmasked) the same. Between unwatched endpoints on 8080, nothing. A frame whose
/// rest is over 16 KiB (`websocket::MESSAGE_MAX`) is not followed: its first segment only.
#[test]
fn a_compressed_frame_over_segments_is_followed_to_its_end() {
    use sensor_common::{Stat, websocket::DEFLATED_TEXT_FIN};
    let mut s = Sensor::with(&format!("[inspect]\ncapture_mode = \"inline\"\n{CONFIG}"));
    let data: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
    let framed = |key| {
        let mut f = test_support::websocket_frame(&data, key);
        f[0] = DEFLATED_TEXT_FIN;
        f
    };
    let (masked, plain) = (framed(Some([0x9d, 0x11, 0xe0, 0x42])), framed(None));
    let (miner, server) = (ip("198.18.1.20"), ip("198.51.100.50")); // miner in ranges a and b
    let (x, y) = (ip("198.51.100.7"), ip("198.51.100.8")); // in no range
    let candidates = |s: &Sensor| s.k.stat(Stat::Candidates).unwrap();
    // `f` from `src` to `dst` in segments cut at `cuts`, the first at sequence number `seq`.
    let send = |s: &mut Sensor, f: &[u8], cuts: &[usize], (src, dst, sport, dport), seq: u32| {
        for w in cuts.windows(2) {
            let seg = &f[w[0]..w[1].min(f.len())];
            let pkt = Packet::tcp4(src, dst, sport, dport, seg).tcp_seq(seq + w[0] as u32);
            s.run(&pkt.build());
        }
    };
    let three = [0, 1000, 2001, usize::MAX];
    send(&mut s, &masked, &three, (miner, server, 48320, 443), 100);
    assert_eq!(candidates(&s), 3);
    let binary = [0x02u8, 0x9c, 0x03, 0xff, 0x10, 0x00, 0x7f, 0x80];
    let after = (100 + masked.len()) as u32;
    send(&mut s, &binary, &[0, 8], (miner, server, 48320, 443), after);
    assert_eq!(candidates(&s), 3);
    send(&mut s, &plain, &three, (server, miner, 443, 48320), 7000);
    assert_eq!(candidates(&s), 6);
    send(&mut s, &masked, &three, (x, y, 48321, 8080), 100);
    assert_eq!(candidates(&s), 6);
    let mut huge = test_support::websocket_frame(&vec![0x9c; 20_000], None);
    huge[0] = DEFLATED_TEXT_FIN;
    send(
        &mut s,
        &huge,
        &[0, 1000, 2000],
        (server, miner, 443, 48322),
        100,
    );
    assert_eq!(candidates(&s), 7);
    assert_eq!(s.k.read_samples().unwrap().len(), 7);
    assert_eq!(s.all_stratum(), 0);
    assert!(s.k.flows().unwrap().is_empty());
}

/// Reshaped logins the kernel still recognises: blanks, blank lines and CRLFs before the `{`
/// (pools' parsers skip them), and an agent string holding HTML-looking text. A blank-led segment
/// that is not Stratum stays silent.
#[test]
fn blanks_before_a_login_and_markup_in_its_agent() {
    let mut s = Sensor::new();
    let (miner, pool) = (ip("198.18.1.20"), ip("198.51.100.50")); // miner in ranges a and b
    let login = String::from_utf8(xmrig_login()).unwrap();
    let reshaped = [
        format!("\r\n  {login}"),
        format!("\n\n\t{login}"),
        login.replace("XMRig/6.16.0", "XMRig/6.16.0 <script>alert(1)</script>"),
    ];
    for (i, v) in reshaped.iter().enumerate() {
        s.run(&Packet::tcp4(miner, pool, 46000 + i as u16, 3333, v.as_bytes()).build());
    }
    for r in [A, B] {
        assert_eq!(s.flows(r, DIR_FROM, MONERO), 3);
        assert_eq!(s.stratum(r, DIR_FROM, MONERO), 3);
    }
    s.run(
        &Packet::tcp4(
            miner,
            pool,
            46010,
            8080,
            b"\r\n  {\"jsonrpc\":\"2.0\",\"method\":\"eth_blockNumber\",\"params\":[],\"id\":1}\n",
        )
        .build(),
    );
    s.run(&Packet::tcp4(miner, pool, 46011, 8080, format!("  x {login}").as_bytes()).build());
    assert_eq!(s.all_stratum(), 6);
}

/// A flow whose client hides (its login reshaped past reading, or not seen) is still opened by
/// what the pool sends: a Monero login reply or job push, a Stratum V1 notify, difficulty or
/// subscription reply, each alone on a flow of its own.
#[test]
fn pool_side_messages_alone_open_the_flow() {
    let mut s = Sensor::new();
    let (miner, pool) = (ip("198.18.1.20"), ip("198.51.100.50")); // miner in ranges a and b
    let h = "a".repeat(64);
    let messages: Vec<Vec<u8>> = vec![
        LOGIN_REPLY.to_vec(),
        b"{\"jsonrpc\":\"2.0\",\"method\":\"job\",\"params\":{\"blob\":\"0707\",\"job_id\":\"j2\",\"target\":\"ff\",\"algo\":\"rx/0\"}}\n".to_vec(),
        format!("{{\"id\":null,\"method\":\"mining.notify\",\"params\":[\"j1\",\"{h}\",\"01\",\"02\",[],\"20000000\",\"1d00ffff\",\"5b0c2a6e\",true]}}\n").into_bytes(),
        b"{\"id\":null,\"method\":\"mining.set_difficulty\",\"params\":[2]}\n".to_vec(),
        b"{\"id\":1,\"result\":[[[\"mining.set_difficulty\",\"x\"],[\"mining.notify\",\"y\"]],\"08000002\",4],\"error\":null}\n".to_vec(),
    ];
    for (i, m) in messages.iter().enumerate() {
        s.run(&Packet::tcp4(pool, miner, 3333, 46100 + i as u16, m).build());
    }
    // Towards the miner's ranges: two Monero flows, three Stratum V1 ones.
    for r in [A, B] {
        assert_eq!(s.flows(r, DIR_TO, MONERO), 2);
        assert_eq!(s.flows(r, DIR_TO, BITCOIN), 3);
    }
    assert_eq!(s.k.flows().unwrap().len(), 5);
}

/// Method names in other letter cases (ckpool matches `mining.*` names ignoring case): XMRig's
/// login as `LOGIN` and `Login`, cpuminer's subscribe and authorize as `Mining.Subscribe` and
/// `MINING.AUTHORIZE`, each opens its flow; a web API's `LOGIN` stays silent.
#[test]
fn method_names_in_other_letter_cases() {
    let mut s = Sensor::new();
    let (miner, pool) = (ip("198.18.1.21"), ip("198.51.100.51")); // miner in ranges a and b
    let login = String::from_utf8(xmrig_login()).unwrap();
    for (i, method) in ["LOGIN", "Login"].iter().enumerate() {
        let v = login.replace("\"method\":\"login\"", &format!("\"method\":\"{method}\""));
        assert_ne!(v, login);
        s.run(&Packet::tcp4(miner, pool, 46100 + i as u16, 3333, v.as_bytes()).build());
    }
    let [sub, auth] = cpuminer_subscribe_authorize().map(|m| String::from_utf8(m).unwrap());
    let sub = sub.replace("mining.subscribe", "Mining.Subscribe");
    let auth = auth.replace("mining.authorize", "MINING.AUTHORIZE");
    for m in [sub, auth] {
        s.run(&Packet::tcp4(miner, pool, 46110, 3333, m.as_bytes()).build());
    }
    for r in [A, B] {
        // Two logins, two flows; the subscribe opens one flow, the authorize is its 2nd packet.
        assert_eq!(s.flows(r, DIR_FROM, MONERO), 2);
        assert_eq!(s.stratum(r, DIR_FROM, MONERO), 2);
        assert_eq!(s.flows(r, DIR_FROM, BITCOIN), 1);
        assert_eq!(s.stratum(r, DIR_FROM, BITCOIN), 2);
    }
    s.run(
        &Packet::tcp4(
            miner,
            pool,
            46120,
            8080,
            b"{\"jsonrpc\":\"2.0\",\"method\":\"LOGIN\",\"params\":{\"login\":\"bob\",\"pass\":\"hunter2\"},\"id\":1}\n",
        )
        .build(),
    );
    assert_eq!(s.all_stratum(), 8);
}

/// `msg` (one compact JSON message and its line end) pretty-printed the way
/// `JSON.stringify(msg, null, indent)` lays it out, key order kept: a line end and the nesting's
/// indent after `{`, `[` and `,`, and before `}` and `]`; a blank after `:`. `eol` is `\n` or
/// `\r\n`.
fn pretty_print(msg: &[u8], indent: usize, eol: &str) -> Vec<u8> {
    let (mut out, mut depth, mut in_str, mut escaped) = (Vec::new(), 0usize, false, false);
    let newline = |out: &mut Vec<u8>, depth: usize| {
        out.extend_from_slice(eol.as_bytes());
        out.extend(std::iter::repeat_n(b' ', depth * indent));
    };
    for &b in msg.strip_suffix(b"\n").unwrap_or(msg) {
        if in_str {
            out.push(b);
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => {
                in_str = true;
                out.push(b);
            }
            b'{' | b'[' => {
                depth += 1;
                out.push(b);
                newline(&mut out, depth);
            }
            b'}' | b']' => {
                depth -= 1;
                newline(&mut out, depth);
                out.push(b);
            }
            b',' => {
                out.push(b);
                newline(&mut out, depth);
            }
            b':' => out.extend_from_slice(b": "),
            _ => out.push(b),
        }
    }
    out.extend_from_slice(eol.as_bytes());
    out
}

/// Pretty-printed JSON over several lines: XMRig's login (2-space indent, LF and CRLF) and
/// cpuminer's subscribe and authorize (4 spaces) each open their flow and count; a pretty-printed
/// web API login stays silent.
#[test]
fn pretty_printed_messages_over_several_lines() {
    let mut s = Sensor::new();
    let (miner, pool) = (ip("198.18.1.22"), ip("198.51.100.52")); // miner in ranges a and b
    let login = xmrig_login();
    let pretty = pretty_print(&login, 2, "\n");
    // The layout, checked on the message's first lines.
    assert!(pretty.starts_with(b"{\n  \"id\": 1,\n  \"jsonrpc\": \"2.0\",\n  \"method\": \"login\",\n  \"params\": {\n    \"login\": \""));
    for (i, v) in [pretty, pretty_print(&login, 2, "\r\n")].iter().enumerate() {
        s.run(&Packet::tcp4(miner, pool, 46200 + i as u16, 3333, v).build());
    }
    for m in cpuminer_subscribe_authorize() {
        s.run(&Packet::tcp4(miner, pool, 46210, 3333, &pretty_print(&m, 4, "\n")).build());
    }
    for r in [A, B] {
        assert_eq!(s.flows(r, DIR_FROM, MONERO), 2);
        assert_eq!(s.stratum(r, DIR_FROM, MONERO), 2);
        assert_eq!(s.flows(r, DIR_FROM, BITCOIN), 1);
        assert_eq!(s.stratum(r, DIR_FROM, BITCOIN), 2);
    }
    let web = pretty_print(
        b"{\"jsonrpc\":\"2.0\",\"method\":\"login\",\"params\":{\"login\":\"bob\",\"pass\":\"hunter2\"},\"id\":1}\n",
        2,
        "\n",
    );
    s.run(&Packet::tcp4(miner, pool, 46220, 8080, &web).build());
    assert_eq!(s.all_stratum(), 8);
}

/// `\u` escapes in keys and method names (`\u006cogin` is `login`): XMRig's login with its
/// method and its `login`, `pass` and `agent` keys escaped, and cpuminer's subscribe and
/// authorize with escaped methods, each open their flow and count; an escape that stands for
/// another byte (`logi\n`) does not make a marker.
#[test]
fn escapes_in_keys_and_method_names() {
    let mut s = Sensor::new();
    let (miner, pool) = (ip("198.18.1.23"), ip("198.51.100.53")); // miner in ranges a and b
    let login = String::from_utf8(xmrig_login()).unwrap();
    let escaped = login
        .replace("\"method\":\"login\"", "\"method\":\"\\u006cogin\"")
        .replace("\"login\":\"", "\"\\u006Cogin\":\"")
        .replace("\"pass\"", "\"\\u0070ass\"")
        .replace("\"agent\"", "\"\\u0061\\u0067ent\"");
    // Five escapes, each 6 bytes for 1 letter: 25 bytes more.
    assert_eq!(escaped.len(), login.len() + 5 * 5);
    s.run(&Packet::tcp4(miner, pool, 46300, 3333, escaped.as_bytes()).build());
    let [sub, auth] = cpuminer_subscribe_authorize().map(|m| String::from_utf8(m).unwrap());
    let sub = sub.replace("mining.subscribe", "\\u006dining.subscribe");
    let auth = auth.replace("mining.authorize", "mining.\\u0061uthorize");
    for m in [sub, auth] {
        s.run(&Packet::tcp4(miner, pool, 46310, 3333, m.as_bytes()).build());
    }
    for r in [A, B] {
        assert_eq!(s.flows(r, DIR_FROM, MONERO), 1);
        assert_eq!(s.stratum(r, DIR_FROM, MONERO), 1);
        assert_eq!(s.flows(r, DIR_FROM, BITCOIN), 1);
        assert_eq!(s.stratum(r, DIR_FROM, BITCOIN), 2);
    }
    let not_login = login.replace("\"method\":\"login\"", "\"method\":\"logi\\n\"");
    s.run(&Packet::tcp4(miner, pool, 46320, 3333, not_login.as_bytes()).build());
    assert_eq!(s.all_stratum(), 6);
}

/// An HTTP/1.1 POST as Go's HTTP client writes one (the getwork clients of Ethereum-era pools;
/// ethminer's `http://` scheme posts the same JSON-RPC), to `path`, with `body`.
fn http_post(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: 198.51.100.70\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: {}\r\nAccept: application/json\r\nContent-Type: application/json\r\nAccept-Encoding: gzip\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A pool's (or node's) HTTP/1.1 answer with `body`.
fn http_reply(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nDate: Thu, 03 Dec 2026 12:00:00 GMT\r\nContent-Length: {}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Ethereum getwork over HTTP POST on port 80 (issue 21, "Reshaped plaintext"): each request's
/// body is scanned as the segment, so the first `eth_getWork` opens an ethereum flow and every
/// request counts; the pool's answers (getWork's three hashes, `true` for a share) match no rule
/// but are candidates on the known flow, for the deep parser. Ordinary HTTP on the same hosts
/// stays silent: a node's JSON-RPC (`eth_getBalance`), a form posting login and password, a page
/// quoting a miner's JSON, JSON quoting a method in a string, a JSON-RPC batch, a GET.
#[test]
fn getwork_over_http_post_opens_an_ethereum_flow() {
    let mut s = Sensor::with(&format!(
        "[inspect]\ncapture_mode = \"inline\"\nbudget = 2\n{CONFIG}"
    ));
    let (m, pool) = (ip("192.0.2.70"), ip("198.51.100.70"));
    let path = "/0x52bc44d5378309ee2abf1539bf71de1b7d7be3b5/rig1";
    let h = "0x416e293fb0bd38d28e5ff6bd43bc13a0252333f9985485cbd5ed49f3c79d2960";
    let session = [
        http_post(
            path,
            r#"{"jsonrpc":"2.0","id":1,"method":"eth_getWork","params":[]}"#,
        ),
        http_reply(&format!(
            r#"{{"id":1,"jsonrpc":"2.0","result":["{h}","{h}","0x0000000100000000000000000000000000000000000000000000000000000000"]}}"#
        )),
        http_post(
            path,
            &format!(
                r#"{{"jsonrpc":"2.0","id":2,"method":"eth_submitHashrate","params":["0x1e8480","{h}"]}}"#
            ),
        ),
        http_reply(r#"{"id":2,"jsonrpc":"2.0","result":true}"#),
        http_post(
            path,
            &format!(
                r#"{{"jsonrpc":"2.0","id":3,"method":"eth_submitWork","params":["0x63d8903c474b670f","{h}","{h}"]}}"#
            ),
        ),
        http_reply(r#"{"id":3,"jsonrpc":"2.0","result":true}"#),
    ];
    for (i, seg) in session.iter().enumerate() {
        let (a, b, sp, dp) = if i % 2 == 0 {
            (m, pool, 47000, 80)
        } else {
            (pool, m, 80, 47000)
        };
        s.run(&Packet::tcp4(a, b, sp, dp, seg).build());
    }
    // The three requests are Stratum packets of one ethereum flow, opened by the first; the
    // three answers are no Stratum packets; all six are candidates.
    assert_eq!(s.flows(C, DIR_FROM, ETHEREUM), 1);
    assert_eq!(s.stratum(C, DIR_FROM, ETHEREUM), 3);
    assert_eq!(s.all_stratum(), 3);
    assert_eq!(s.k.flows().unwrap().len(), 1);
    assert_eq!(s.k.read_samples().unwrap().len(), 6);
    // An XMRig login posted in a body is mining JSON-RPC too: a monero flow.
    let login = String::from_utf8(xmrig_login()).unwrap();
    s.run(&Packet::tcp4(m, pool, 47001, 80, &http_post("/", &login)).build());
    assert_eq!(s.flows(C, DIR_FROM, MONERO), 1);
    assert_eq!(s.all_stratum(), 4);
    assert_eq!(s.k.read_samples().unwrap().len(), 1);

    let traps: [Vec<u8>; 8] = [
        http_post(
            "/",
            r#"{"jsonrpc":"2.0","method":"eth_getBalance","params":["0x52bc44d5378309ee2abf1539bf71de1b7d7be3b5","latest"],"id":1}"#,
        ),
        http_reply(r#"{"jsonrpc":"2.0","id":1,"result":"0x10d4f"}"#),
        http_post("/login", "login=bob&pass=hunter2&agent=XMRig%2F6.16.0"),
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html><script>var w = {\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"eth_getWork\",\"params\":[]};</script></html>".to_vec(),
        http_post(
            "/notes",
            r#"{"note":"{\"jsonrpc\":\"2.0\",\"method\":\"eth_getWork\",\"params\":[]}"}"#,
        ),
        http_post(
            "/",
            r#"[{"jsonrpc":"2.0","id":1,"method":"eth_getWork","params":[]}]"#,
        ),
        format!("GET / HTTP/1.1\r\nHost: x\r\n\r\n{login}").into_bytes(),
        // A response whose head runs past the window: its body is not looked for.
        [
            b"HTTP/1.1 200 OK\r\nSet-Cookie: ".as_slice(),
            &[b'a'; 600],
            b"\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"eth_getWork\",\"params\":[]}",
        ]
        .concat(),
    ];
    for (i, t) in traps.iter().enumerate() {
        s.run(&Packet::tcp4(m, pool, 47100 + i as u16, 8545, t).build());
    }
    assert_eq!(s.all_stratum(), 4);
    assert_eq!(s.k.flows().unwrap().len(), 2);
    assert_eq!(s.k.read_samples().unwrap().len(), 0);
}

/// One chunk of a chunked body (`Transfer-Encoding: chunked`): the size of `body` in hex, `ext`
/// (a chunk extension, `;name=value`, or nothing), CRLF, the data, CRLF, then the last chunk.
fn one_chunk(ext: &str, body: &str) -> String {
    format!("{:x}{ext}\r\n{body}\r\n0\r\n\r\n", body.len())
}

/// An HTTP/1.1 POST's head as Node's HTTP client writes one without `Content-Length`.
const CHUNKED_POST: &str = "POST /0x52bc44d5378309ee2abf1539bf71de1b7d7be3b5/rig1 HTTP/1.1\r\nContent-Type: application/json\r\nHost: 198.51.100.72\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n";
/// A pool's HTTP/1.1 answer's head without `Content-Length`.
const CHUNKED_REPLY: &str = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nDate: Thu, 03 Dec 2026 12:00:00 GMT\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n";

/// Getwork over HTTP with chunked bodies (issue 21, "Reshaped plaintext"): a body whose first
/// chunk's size line stands where the JSON would is scanned from the chunk's data, in each shape.
/// Flow 1: getWork in one chunk after its head (opens the ethereum flow), the work in one chunk
/// with an extension (`;x=y`), submitHashrate in a chunk with an extension, a head alone then its
/// body in the next segment (the body opens with the size line: read on a flow of a watched
/// range), its verdict likewise: 3 Stratum packets, 1 flow, every segment a candidate (8).
/// Flow 2: getWork over three chunks (16 + 27 + 16 = 59 bytes, a boundary inside `eth_getWork`):
/// the scan of the first chunk finds nothing, so the segment goes to deep inspection (which
/// de-chunks it and opens the flow); no Stratum packet, no flow here. Flow 3: a new flow whose
/// head came alone, its body in the next segment: opened by the body. Flow 4: the same between
/// two unwatched addresses on port 80: not read (other traffic pays nothing new).
/// Traps on watched flows: chunked REST JSON in one chunk, request and answer (nothing, no
/// candidate); over two chunks (a candidate, for deep inspection, which counts nothing); lines
/// that look like a size line but are none (`0x3b`, a blank before the CRLF, 17 digits, a bare
/// LF) and a size line followed by no `{`: nothing.
#[test]
fn getwork_with_chunked_bodies_opens_an_ethereum_flow() {
    let mut s = Sensor::with(&format!(
        "[inspect]\ncapture_mode = \"inline\"\nbudget = 2\n{CONFIG}"
    ));
    let (m, pool) = (ip("192.0.2.72"), ip("198.51.100.72"));
    let h = "0x416e293fb0bd38d28e5ff6bd43bc13a0252333f9985485cbd5ed49f3c79d2960";
    let get_work = r#"{"jsonrpc":"2.0","id":1,"method":"eth_getWork","params":[]}"#;
    let work = format!(
        r#"{{"id":1,"jsonrpc":"2.0","result":["{h}","{h}","0x0000000100000000000000000000000000000000000000000000000000000000"]}}"#
    );
    let rate = format!(
        r#"{{"jsonrpc":"2.0","id":2,"method":"eth_submitHashrate","params":["0x1e8480","{h}"]}}"#
    );
    let submit = format!(
        r#"{{"jsonrpc":"2.0","id":3,"method":"eth_submitWork","params":["0x63d8903c474b670f","{h}","{h}"]}}"#
    );
    // The first chunk's size line: getWork's 59 bytes are 0x3b.
    assert!(one_chunk("", get_work).starts_with("3b\r\n{"));
    let session = [
        (true, format!("{CHUNKED_POST}{}", one_chunk("", get_work))),
        (
            false,
            format!("{CHUNKED_REPLY}{}", one_chunk(";x=y", &work)),
        ),
        (true, format!("{CHUNKED_POST}{}", one_chunk(";n=1", &rate))),
        (
            false,
            format!(
                "{CHUNKED_REPLY}{}",
                one_chunk("", r#"{"id":2,"jsonrpc":"2.0","result":true}"#)
            ),
        ),
        (true, CHUNKED_POST.to_string()),
        (true, one_chunk("", &submit)),
        (false, CHUNKED_REPLY.to_string()),
        (
            false,
            one_chunk("", r#"{"id":3,"jsonrpc":"2.0","result":true}"#),
        ),
    ];
    for (up, seg) in &session {
        let p = if *up {
            Packet::tcp4(m, pool, 47300, 80, seg.as_bytes())
        } else {
            Packet::tcp4(pool, m, 80, 47300, seg.as_bytes())
        };
        s.run(&p.build());
    }
    assert_eq!(s.flows(C, DIR_FROM, ETHEREUM), 1);
    assert_eq!(s.stratum(C, DIR_FROM, ETHEREUM), 3);
    assert_eq!(s.all_stratum(), 3);
    assert_eq!(s.k.flows().unwrap().len(), 1);
    assert_eq!(s.k.read_samples().unwrap().len(), 8);

    // Flow 2: `{"jsonrpc":"2.0"` (0x10), `,"id":1,"method":"eth_getWo` (0x1b), `rk","params":[]}`.
    assert_eq!(&get_work[38..43], "getWo");
    let three = format!(
        "{CHUNKED_POST}10\r\n{}\r\n1b\r\n{}\r\n10\r\n{}\r\n0\r\n\r\n",
        &get_work[..16],
        &get_work[16..43],
        &get_work[43..]
    );
    s.run(&Packet::tcp4(m, pool, 47301, 80, three.as_bytes()).build());
    assert_eq!(s.all_stratum(), 3);
    assert_eq!(s.k.flows().unwrap().len(), 1);
    assert_eq!(s.k.read_samples().unwrap().len(), 1);

    // Flow 3: the head alone (nothing), then the body: a new flow.
    s.run(&Packet::tcp4(m, pool, 47302, 80, CHUNKED_POST.as_bytes()).build());
    assert_eq!(s.all_stratum(), 3);
    s.run(&Packet::tcp4(m, pool, 47302, 80, one_chunk("", get_work).as_bytes()).build());
    assert_eq!(s.flows(C, DIR_FROM, ETHEREUM), 2);
    assert_eq!(s.stratum(C, DIR_FROM, ETHEREUM), 4);
    assert_eq!(s.k.flows().unwrap().len(), 2);
    assert_eq!(s.k.read_samples().unwrap().len(), 1);

    // Flow 4: a body after its head between unwatched addresses: not read.
    let (u, v) = (ip("198.51.100.80"), ip("198.51.100.81"));
    s.run(&Packet::tcp4(u, v, 47303, 80, one_chunk("", get_work).as_bytes()).build());
    assert_eq!(s.all_stratum(), 4);
    assert_eq!(s.k.read_samples().unwrap().len(), 0);

    let rest = r#"{"user":"ana","items":[1,2,3],"method":"update"}"#;
    let not_a_size = |line: &str| format!("{CHUNKED_POST}{line}{get_work}\r\n0\r\n\r\n");
    let traps: [String; 9] = [
        format!("{CHUNKED_POST}{}", one_chunk("", rest)),
        format!("{CHUNKED_REPLY}{}", one_chunk("", r#"{"ok":true,"id":7}"#)),
        not_a_size("0x3b\r\n"),
        not_a_size("3b \r\n"),
        not_a_size("0000000000000003b\r\n"),
        not_a_size("3b\n"),
        format!("0x3b\r\n{get_work}\r\n0\r\n\r\n"),
        format!("3b\r\nhello {get_work}\r\n0\r\n\r\n"),
        // Over two chunks: `{"user":` (8), the rest (40 = 0x28): a candidate.
        format!(
            "{CHUNKED_POST}8\r\n{}\r\n28\r\n{}\r\n0\r\n\r\n",
            &rest[..8],
            &rest[8..]
        ),
    ];
    assert_eq!(rest.len() - 8, 0x28);
    for (i, t) in traps.iter().enumerate() {
        s.run(&Packet::tcp4(m, pool, 47400 + i as u16, 8545, t.as_bytes()).build());
    }
    assert_eq!(s.all_stratum(), 4);
    assert_eq!(s.k.flows().unwrap().len(), 2);
    assert_eq!(s.k.read_samples().unwrap().len(), 1);
}

/// XMRig's login as it logs in with a pool account (no wallet-long string, so only its `agent`
/// key decides), one line.
fn xmrig_account_login() -> Vec<u8> {
    b"{\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"login\",\"params\":{\"login\":\"rig01\",\"pass\":\"x\",\"agent\":\"XMRig/6.16.0 (Linux x86_64) libuv/1.42.0 gcc/5.4.0\",\"algo\":[\"rx/0\",\"cn/2\",\"cn/r\"]}}\n".to_vec()
}

/// A login on a new flow split so that no segment alone is Stratum (issue 21: "a first segment
/// of one byte"): at byte 1 (`{`), before `"method"` (byte 24: `{"id":1,"jsonrpc":"2.0",` is
/// 24 bytes) and before `"agent"` (byte 78: 24 + `"method":"login",` 17 + `"params":{` 10 +
/// `"login":"rig01",` 16 + `"pass":"x",` 11). The first segment is held,
/// the next in sequence scanned after it: one flow, one Stratum packet each, both segments
/// candidates. Three splits on one flow extend the held bytes. Traps: a REST client's JSON split
/// in two stays silent (its opening is dropped at the line end), a segment after a gap is not
/// joined, nor one from the other endpoint.
#[test]
fn a_login_split_before_any_marker_opens_its_flow() {
    let mut s = Sensor::with(&format!(
        "[inspect]\ncapture_mode = \"inline\"\nbudget = 2\n{CONFIG}"
    ));
    let (m, pool) = (ip("192.0.2.80"), ip("198.51.100.80"));
    let login = xmrig_account_login();
    let text = String::from_utf8(login.clone()).unwrap();
    let (method, agent) = (
        text.find("\"method\"").unwrap(),
        text.find("\"agent\"").unwrap(),
    );
    assert_eq!((method, agent), (24, 24 + 17 + 10 + 16 + 11));
    // Each flow logs in to a pool port of its own: to an endpoint that took a login before, a
    // segment holding the `login` method is decided there (`sensor_common::pools`).
    let seg = |sport: u16, from: usize, to: usize| {
        Packet::tcp4(m, pool, sport, sport - 48000 + 3333, &login[from..to])
            .tcp_seq(1000 + from as u32)
            .build()
    };
    for (sport, cut) in [(48000, 1), (48001, method), (48002, agent)] {
        s.run(&seg(sport, 0, cut));
        // Held, undecided: no Stratum yet.
        assert_eq!(s.all_stratum(), (sport - 48000) as u64);
        s.run(&seg(sport, cut, login.len()));
    }
    assert_eq!(s.flows(C, DIR_FROM, MONERO), 3);
    assert_eq!(s.stratum(C, DIR_FROM, MONERO), 3);
    assert_eq!(s.k.read_samples().unwrap().len(), 6);
    // Split three times on one flow: held, extended twice, decided by the last segment.
    let cuts = [0, 1, method, agent, login.len()];
    for w in cuts.windows(2) {
        s.run(&seg(48003, w[0], w[1]));
    }
    assert_eq!(s.flows(C, DIR_FROM, MONERO), 4);
    assert_eq!(s.stratum(C, DIR_FROM, MONERO), 4);
    use sensor_common::Stat;
    assert_eq!(s.k.stat(Stat::OpeningsHeld).unwrap(), 4);
    assert_eq!(s.k.stat(Stat::OpeningsRemoved).unwrap(), 4);
    assert_eq!(s.k.openings().unwrap(), 0);
    assert_eq!(s.k.read_samples().unwrap().len(), 4);

    // A REST client's JSON in two segments: held, then dropped when the joined message ends.
    let rest = b"{\"user\":\"bob\",\"items\":[1,2,3],\"note\":\"a login and a pass\"}\n";
    s.run(
        &Packet::tcp4(m, pool, 48010, 8080, &rest[..20])
            .tcp_seq(7)
            .build(),
    );
    s.run(
        &Packet::tcp4(m, pool, 48010, 8080, &rest[20..])
            .tcp_seq(27)
            .build(),
    );
    // A split login whose second segment comes after a gap (one byte lost): not joined, and the
    // opening is dropped; one whose continuation comes from the pool's side: not joined.
    s.run(&seg(48011, 0, method));
    s.run(
        &Packet::tcp4(m, pool, 48011, 3344, &login[method..])
            .tcp_seq(1000 + method as u32 + 1)
            .build(),
    );
    s.run(&seg(48012, 0, method));
    s.run(
        &Packet::tcp4(pool, m, 3345, 48012, &login[method..])
            .tcp_seq(1000 + method as u32)
            .build(),
    );
    assert_eq!(s.all_stratum(), 4);
    assert_eq!(s.k.flows().unwrap().len(), 4);
    // Held: the REST opening, the gap's, the other side's (4 + 3); removed: the REST one at its
    // line end and the gap's (4 + 2); the other side's waits.
    assert_eq!(s.k.stat(Stat::OpeningsHeld).unwrap(), 7);
    assert_eq!(s.k.stat(Stat::OpeningsRemoved).unwrap(), 6);
    assert_eq!(s.k.openings().unwrap(), 1);
}

/// A flood of openings (a `{` alone from 4,100 new flows, more than `OPENING_ENTRIES`) is held
/// within the map's bound, the LRU evicting the oldest (held minus removed minus entries, the
/// agent's `opening_evictions_total`), and a login split after it still opens its flow.
#[test]
fn a_flood_of_openings_stays_bounded_and_a_split_login_still_counts() {
    use sensor_common::{OPENING_ENTRIES, Stat};
    let mut s = Sensor::new();
    let (m, pool) = (ip("192.0.2.81"), ip("198.51.100.81"));
    for i in 0..4100u32 {
        let (a, port) = (ip(&format!("198.18.{}.{}", 2 + i / 250, 1 + i % 250)), 3333);
        s.run(&Packet::tcp4(a, pool, 50000, port, b"{").tcp_seq(1).build());
    }
    let held = s.k.stat(Stat::OpeningsHeld).unwrap();
    let entries = s.k.openings().unwrap() as u64;
    assert_eq!(held, 4100);
    assert_eq!(s.k.stat(Stat::OpeningsRemoved).unwrap(), 0);
    assert!(entries <= OPENING_ENTRIES as u64, "{entries}");
    assert!(
        held - entries >= 4,
        "at least 4,100 - 4,096 evicted: {entries} left"
    );
    let login = xmrig_account_login();
    s.run(
        &Packet::tcp4(m, pool, 48100, 3333, &login[..1])
            .tcp_seq(9)
            .build(),
    );
    s.run(
        &Packet::tcp4(m, pool, 48100, 3333, &login[1..])
            .tcp_seq(10)
            .build(),
    );
    assert_eq!(s.flows(C, DIR_FROM, MONERO), 1);
    assert_eq!(s.all_stratum(), 1);
}

/// Stratum V2 shares counted by size, over every range.
fn sv2_shares(s: &Sensor) -> u64 {
    s.k.sv2_shares().unwrap().into_iter().map(|(_, n)| n).sum()
}

/// Stratum V2 shares by their encrypted size (`sensor_common::sv2`): after the handshake, each
/// client segment of 22 + 24 + 16 = 62 bytes (an encrypted `SubmitSharesStandard`) counts once
/// per range, a retransmission not again; once a share has been counted, a client segment of 2
/// to 32 times 62 bytes is that many shares (Nagle's algorithm joining shares written faster than
/// the pool acknowledges). The server's 62-byte frames, 63-byte ones (an extended share without
/// extranonce), a 124-byte segment before the flow's first share, and 62-byte segments on a flow
/// without the handshake count nothing.
#[test]
fn stratum_v2_shares_count_by_their_encrypted_size() {
    let mut s = Sensor::watching_c("[pools]\nports = [34254]\n");
    const R: u32 = 0; // range c
    let (m, pool) = (ip("192.0.2.90"), ip("203.0.113.90"));
    let noise = |n: usize| (0..n).map(|i| (i * 37 + 167) as u8).collect::<Vec<u8>>();
    let up = |sport: u16, dport: u16, seq: u32, n: usize| {
        Packet::tcp4(m, pool, sport, dport, &noise(n))
            .tcp_seq(seq)
            .build()
    };
    let down =
        |sport: u16, dport: u16, n: usize| Packet::tcp4(pool, m, dport, sport, &noise(n)).build();
    // On the pool port: hello 64 (seq 1..65), answer 234, then two shares in one 124-byte
    // segment before any share of the flow (nothing: its share size is not known yet, and no
    // flow's is), then three shares at 189, 251, 313, the second retransmitted.
    s.run(&up(44000, 34254, 1, 64));
    s.run(&down(44000, 34254, 234));
    s.run(&up(44000, 34254, 65, 124));
    assert_eq!(sv2_shares(&s), 0);
    for seq in [189, 251, 251, 313] {
        s.run(&up(44000, 34254, seq, 62));
    }
    assert_eq!(sv2_shares(&s), 3);
    // The server's 62-byte frames and a 63-byte client frame: no more.
    s.run(&down(44000, 34254, 62));
    s.run(&up(44000, 34254, 375, 63));
    assert_eq!(sv2_shares(&s), 3);
    // Several shares in one segment: 124 bytes at 438 are 2, 186 at 562 are 3 (5 more); the
    // 186 retransmitted, 125 bytes (no multiple of 62), the server's 124: none.
    s.run(&up(44000, 34254, 438, 124));
    s.run(&up(44000, 34254, 562, 186));
    assert_eq!(sv2_shares(&s), 8);
    s.run(&up(44000, 34254, 562, 186));
    s.run(&up(44000, 34254, 748, 125));
    s.run(&down(44000, 34254, 124));
    assert_eq!(sv2_shares(&s), 8);
    // On 443 (the handshake's pair decides there): one share.
    s.run(&up(44001, 443, 1, 64));
    s.run(&down(44001, 443, 234));
    s.run(&up(44001, 443, 65, 62));
    assert_eq!(sv2_shares(&s), 9);
    // 62- and 124-byte segments of a flow without the handshake (the answer never came):
    // nothing.
    s.run(&up(44002, 443, 1, 64));
    s.run(&up(44002, 443, 65, 62));
    s.run(&up(44002, 443, 127, 124));
    assert_eq!(sv2_shares(&s), 9);
    // All in range c (the miner's): its cell holds the nine.
    let cells = s.k.sv2_shares().unwrap();
    assert_eq!(cells.iter().find(|c| c.0 == R).unwrap().1, 9);
}

/// Stratum V2 extended shares, learned by size (`sensor_common::sv2::extended_share`): on a flow
/// after the handshake, client segments of 63 to 95 bytes; two in a row of one size are shares,
/// and from then on each of that size, and a segment of several times that size that many. Hand
/// count below: 9 shares of the 9 sent.
#[test]
fn stratum_v2_extended_shares_count_once_their_size_is_learned() {
    let mut s = Sensor::watching_c("[pools]\nports = [34254]\n");
    let (m, pool) = (ip("192.0.2.91"), ip("203.0.113.91"));
    let outside = ip("198.51.100.91");
    let noise = |n: usize| (0..n).map(|i| (i * 37 + 167) as u8).collect::<Vec<u8>>();
    let seg = |src, dst, sport, dport, seq: u32, n: usize| {
        Packet::tcp4(src, dst, sport, dport, &noise(n))
            .tcp_seq(seq)
            .build()
    };
    // Handshake on the pool port; `SetupConnection` 100 bytes at 65, `OpenExtendedMiningChannel`
    // 90 at 165; the pool's 234-byte answer and a 71-byte server frame between.
    s.run(&seg(m, pool, 45000, 34254, 1, 64));
    s.run(&seg(pool, m, 34254, 45000, 1, 234));
    s.run(&seg(m, pool, 45000, 34254, 65, 100));
    s.run(&seg(m, pool, 45000, 34254, 165, 90));
    s.run(&seg(pool, m, 34254, 45000, 235, 71));
    assert_eq!(sv2_shares(&s), 0);
    // Shares of 71 bytes (an 8-byte extranonce) at 255 and 326: the size learned, both counted.
    s.run(&seg(m, pool, 45000, 34254, 255, 71));
    assert_eq!(sv2_shares(&s), 0);
    s.run(&seg(m, pool, 45000, 34254, 326, 71));
    assert_eq!(sv2_shares(&s), 2);
    // The second retransmitted: nothing; an `UpdateChannel` (78): nothing; shares at 397 and
    // 475: 2 more.
    s.run(&seg(m, pool, 45000, 34254, 326, 71));
    s.run(&seg(m, pool, 45000, 34254, 397, 71));
    s.run(&seg(m, pool, 45000, 34254, 468, 78));
    s.run(&seg(m, pool, 45000, 34254, 546, 71));
    assert_eq!(sv2_shares(&s), 4);
    // The pool's segments of that size never count.
    s.run(&seg(pool, m, 34254, 45000, 306, 71));
    s.run(&seg(pool, m, 34254, 45000, 377, 71));
    assert_eq!(sv2_shares(&s), 4);
    // Several shares in one segment: 142 bytes at 617 are 2, 213 at 759 are 3; 124 (two
    // standard shares' size, no multiple of 71) at 972: none; the pool's 142: none.
    s.run(&seg(m, pool, 45000, 34254, 617, 142));
    s.run(&seg(m, pool, 45000, 34254, 759, 213));
    s.run(&seg(m, pool, 45000, 34254, 972, 124));
    s.run(&seg(pool, m, 34254, 45000, 448, 142));
    assert_eq!(sv2_shares(&s), 9);
    // Traps: the same segments on a flow without the handshake (the pool port, a range), and on
    // a Stratum V2 flow between two unwatched endpoints on 443 (flagged by the pair, but its
    // extended-size segments are not looked at: no range, no pool port): nothing.
    for seq in [1, 72, 143] {
        s.run(&seg(m, pool, 45001, 34254, seq, 71));
    }
    let far = ip("203.0.113.92");
    s.run(&seg(outside, far, 45002, 443, 1, 64));
    s.run(&seg(far, outside, 443, 45002, 1, 234));
    for seq in [65, 136, 207] {
        s.run(&seg(outside, far, 45002, 443, seq, 71));
    }
    s.run(&seg(outside, far, 45002, 443, 278, 142));
    assert_eq!(sv2_shares(&s), 9);
}

/// XMRig's login with its wallet (`xmrig_login`) split the same ways: at byte 1 and before
/// `"method"` the opening is held and the next segment decides; cut before `"agent"`, the first
/// segment is decided alone (its 95-character wallet before `"pass"`, the bridges' rule). Each
/// flow counts once, with one Stratum packet.
#[test]
fn a_wallet_login_split_anywhere_counts_once() {
    use sensor_common::Stat;
    let mut s = Sensor::new();
    let (m, pool) = (ip("192.0.2.82"), ip("198.51.100.82"));
    let login = xmrig_login();
    let text = String::from_utf8(login.clone()).unwrap();
    // 24 + `"method":"login",` 17 + `"params":{` 10 + `"login":"` 9 + 95 + `","pass":"x",` 13.
    let agent = text.find("\"agent\"").unwrap();
    assert_eq!(agent, 24 + 17 + 10 + 9 + 95 + 13);
    for (sport, cut) in [(48200, 1), (48201, 24), (48202, agent)] {
        s.run(
            &Packet::tcp4(m, pool, sport, 3333, &login[..cut])
                .tcp_seq(5)
                .build(),
        );
        s.run(
            &Packet::tcp4(m, pool, sport, 3333, &login[cut..])
                .tcp_seq(5 + cut as u32)
                .build(),
        );
    }
    assert_eq!(s.flows(C, DIR_FROM, MONERO), 3);
    assert_eq!(s.stratum(C, DIR_FROM, MONERO), 3);
    // Held: the first two openings; the third was decided at once.
    assert_eq!(s.k.stat(Stat::OpeningsHeld).unwrap(), 2);
    assert_eq!(s.k.stat(Stat::OpeningsRemoved).unwrap(), 2);
}

/// A ClientHello record with `extensions` (type, data), as `sensor_common::tls`'s tests build
/// one: 5 record + 4 handshake + 2 version + 32 random + 1 + 32 session id + 2 + 10 suites + 2
/// compression = 90 bytes, then the extensions' 2-byte length and the extensions.
fn client_hello_with(extensions: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut ext = Vec::new();
    for (t, d) in extensions {
        ext.extend_from_slice(&t.to_be_bytes());
        ext.extend_from_slice(&(d.len() as u16).to_be_bytes());
        ext.extend_from_slice(d);
    }
    let mut body = vec![3, 3];
    body.extend_from_slice(&[0x5a; 32]);
    body.push(32);
    body.extend_from_slice(&[0x11; 32]);
    let suites = [0x13u8, 1, 0x13, 2, 0x13, 3, 0xc0, 0x2b, 0xc0, 0x2f];
    body.extend_from_slice(&(suites.len() as u16).to_be_bytes());
    body.extend_from_slice(&suites);
    body.extend_from_slice(&[1, 0]);
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![1, 0, (body.len() >> 8) as u8, body.len() as u8];
    hs.extend_from_slice(&body);
    let mut rec = vec![22, 3, 1, (hs.len() >> 8) as u8, hs.len() as u8];
    rec.extend_from_slice(&hs);
    rec
}

/// A ClientHello split over two segments towards a pool port is decided as a whole one: cut
/// before its extensions (byte 20), inside its last extension's header, or inside a 1,220-byte
/// post-quantum key share with the server name after it (byte 1,000 of 1,357 + 25). Without a
/// name: `tls_no_sni`; naming a pool domain: `tls_pool_sni`; naming another server, or a second
/// segment out of sequence: nothing.
#[test]
fn a_client_hello_split_over_two_segments_is_decided() {
    use sensor_common::Reason;
    const R: usize = 0; // the only range of this configuration
    let mut s =
        Sensor::watching_c("[pools]\nports = [14433]\nextra_domains = [\"pool.example\"]\n");
    let (no_sni, sni) = (Reason::TlsNoSni as usize, Reason::TlsPoolSni as usize);
    let (m, pool) = (ip("192.0.2.9"), ip("203.0.113.50"));
    let split = |s: &mut Sensor, sport: u16, hello: &[u8], cut: usize, gap: u32| {
        s.run(
            &Packet::tcp4(m, pool, sport, 14433, &hello[..cut])
                .tcp_seq(7)
                .build(),
        );
        s.run(
            &Packet::tcp4(m, pool, sport, 14433, &hello[cut..])
                .tcp_seq(7 + cut as u32 + gap)
                .build(),
        );
    };
    let small = tls_client_hello(None);
    split(&mut s, 44100, &small, 20, 0);
    assert_eq!(s.k.suspect_cell(R, DIR_FROM, no_sni).unwrap(), 1);
    split(&mut s, 44101, &small, small.len() - 3, 0);
    assert_eq!(s.k.suspect_cell(R, DIR_FROM, no_sni).unwrap(), 2);
    let groups = (10u16, vec![0, 2, 0, 29]);
    let key_share = (51u16, vec![0x11; 1220]);
    let name = |n: &str| {
        let mut d = vec![0, (n.len() + 3) as u8, 0, 0, n.len() as u8];
        d.extend_from_slice(n.as_bytes());
        (0u16, d)
    };
    // 90 + 2 + 8 + 1,224 = 1,324 bytes to the name's extension: the cut at 1,000 is inside the
    // key share.
    let pq = client_hello_with(&[groups.clone(), key_share.clone(), name("xmr.pool.example")]);
    assert_eq!(pq.len(), 1324 + 4 + 5 + 16);
    split(&mut s, 44102, &pq, 1000, 0);
    assert_eq!(s.k.suspect_cell(R, DIR_FROM, sni).unwrap(), 1);
    // No name after the key share: decided from the first segment (the lengths say nothing
    // follows); the second changes nothing.
    let pq_plain = client_hello_with(&[groups.clone(), key_share.clone()]);
    split(&mut s, 44103, &pq_plain, 1000, 0);
    assert_eq!(s.k.suspect_cell(R, DIR_FROM, no_sni).unwrap(), 3);
    // Another server's name, or the second segment one byte late: nothing.
    let other = client_hello_with(&[groups.clone(), key_share.clone(), name("www.example.org")]);
    split(&mut s, 44104, &other, 1000, 0);
    split(&mut s, 44105, &small, 20, 1);
    assert_eq!(s.k.suspect_cell(R, DIR_FROM, no_sni).unwrap(), 3);
    assert_eq!(s.k.suspect_cell(R, DIR_FROM, sni).unwrap(), 1);
    assert_eq!(s.all_stratum(), 0);
}

/// Mirrored frames are read as the frame inside their tunnel when `decapsulate` names it: ERSPAN
/// types I, II and III (with its platform subheader), Ethernet in GRE with a key, VXLAN, over
/// IPv4 and IPv6, each frame passed on as it came. Without `decapsulate` (or for a tunnel it does
/// not name) the outer packet is what is read: the switch's traffic, unwatched, no Stratum.
#[test]
fn mirrored_frames_are_read_inside_their_tunnel() {
    use test_support::mirror::{ERSPAN2, mirrored, vxlan};
    let miner = ip("198.18.1.20"); // in a and b
    let pool = ip("198.51.100.50");
    let login = Packet::tcp4(miner, pool, 45100, 3333, &xmrig_login()).build();
    let submit = Packet::tcp4(miner, pool, 45100, 3333, SUBMIT).build();
    let erspan3: Vec<u8> = [
        &[0x10, 0x00, 0x22, 0xeb, 0, 0, 0, 8][..], // GRE: S, protocol 0x22eb
        &[0x20, 0x00, 0x00, 0x01, 1, 2, 3, 4, 0, 0, 0x00, 0x01], // ERSPAN III, O set
        &[0xee; 8],                                // its platform subheader
    ]
    .concat();
    let frames = [
        mirrored(false, 47, &ERSPAN2, &login),
        mirrored(false, 47, &ERSPAN2, &submit),
        mirrored(true, 47, &ERSPAN2, &submit),
        mirrored(false, 47, &erspan3, &submit),
        mirrored(false, 47, &[0x00, 0x00, 0x88, 0xbe], &submit), // ERSPAN type I
        mirrored(false, 47, &[0x20, 0x00, 0x65, 0x58, 0, 0, 0, 9], &submit), // TEB, key 9
        mirrored(false, 17, &vxlan(4789), &submit),
    ];

    // Not named: the outer packets, unwatched, nothing inside read.
    let mut s = Sensor::new();
    for f in &frames {
        s.run(f);
    }
    assert_eq!(s.traffic(A, DIR_FROM), (0, 0));
    assert_eq!(s.flows(A, DIR_FROM, MONERO), 0);
    assert_eq!(s.event(ParseEvent::Decapsulated), 0);

    // ERSPAN only: the six GRE frames are the miner's login and five shares, the VXLAN one the
    // switch's UDP.
    let mut s = Sensor::with(&format!("decapsulate = [\"erspan\"]\n{CONFIG}"));
    for f in &frames {
        s.run(f);
    }
    assert_eq!(s.event(ParseEvent::Decapsulated), 6);
    let ip_bytes = |f: &[u8]| f.len() as u64 - 14;
    let inner_bytes = ip_bytes(&login) + 5 * ip_bytes(&submit);
    for r in [A, B] {
        assert_eq!(s.traffic(r, DIR_FROM), (6, inner_bytes));
        assert_eq!(s.flows(r, DIR_FROM, MONERO), 1);
        assert_eq!(s.stratum(r, DIR_FROM, MONERO), 6);
    }
    assert_eq!(s.traffic(C, DIR_FROM), (0, 0));

    // Both: the VXLAN frame's share too; VXLAN to another port is the switch's own UDP.
    let mut s = Sensor::with(&format!("decapsulate = [\"erspan\", \"vxlan\"]\n{CONFIG}"));
    for f in &frames {
        s.run(f);
    }
    s.run(&mirrored(false, 17, &vxlan(4790), &submit));
    assert_eq!(s.event(ParseEvent::Decapsulated), 7);
    assert_eq!(s.stratum(A, DIR_FROM, MONERO), 7);
    assert_eq!(s.event(ParseEvent::BadTunnel), 0);
}

/// A named tunnel that cannot be read is read as its outer packet, and counted (`bad_tunnel`):
/// its GRE header cut short, GRE version 1, IP in GRE (no Ethernet frame), a VXLAN header without
/// its I flag, an inner frame shorter than an Ethernet header. An outer IPv4 fragment is read as
/// the outer packet too, uncounted (its inner frame is not whole).
#[test]
fn tunnels_that_cannot_be_read_are_read_as_the_outer_packet() {
    use test_support::mirror::{ERSPAN2, mirrored};
    let miner = ip("198.18.1.20");
    let pool = ip("198.51.100.50");
    let submit = Packet::tcp4(miner, pool, 45101, 3333, SUBMIT).build();
    let mut s = Sensor::with(&format!("decapsulate = [\"erspan\", \"vxlan\"]\n{CONFIG}"));
    let bad = [
        mirrored(false, 47, &[0x10, 0x00], &[]),
        mirrored(false, 47, &[0x00, 0x01, 0x88, 0xbe], &submit),
        mirrored(false, 47, &[0x00, 0x00, 0x08, 0x00], &submit[14..]),
        mirrored(
            false,
            17,
            &[
                0xc0, 0x01, 0x12, 0xb5, 0, 0, 0, 0, 0x00, 0, 0, 0, 0, 0, 0x2a, 0,
            ],
            &submit,
        ),
        mirrored(false, 47, &ERSPAN2, &submit[..13]),
    ];
    for f in &bad {
        s.run(f);
    }
    assert_eq!(s.event(ParseEvent::BadTunnel), 5);
    assert_eq!(s.event(ParseEvent::Decapsulated), 0);
    let mut fragment = mirrored(false, 47, &ERSPAN2, &submit);
    fragment[20] = 0x20; // more fragments
    s.run(&fragment);
    assert_eq!(s.event(ParseEvent::BadTunnel), 5);
    assert_eq!(s.event(ParseEvent::Decapsulated), 0);
    assert_eq!(s.traffic(A, DIR_FROM), (0, 0));
}
