//! Per-packet figures: the frames measured and how a figure is taken (BPF_PROG_TEST_RUN against
//! the trivial program in the same run).

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use mining_sensor::bpf::Kernel;
use test_support::Packet;

use crate::{Opts, median};

pub(crate) fn kp(i: u32) -> Ipv4Addr {
    // 175.45.176.0/22.
    Ipv4Addr::from(u32::from(Ipv4Addr::new(175, 45, 176, 0)) + (i % 1024))
}

pub(crate) const WALLET: &str = "44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A";

pub(crate) fn login() -> Vec<u8> {
    format!("{{\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"login\",\"params\":{{\"login\":\"{WALLET}\",\"pass\":\"x\",\"agent\":\"XMRig/6.16.0 (Linux x86_64) libuv/1.42.0 gcc/5.4.0\",\"algo\":[\"rx/0\",\"cn/2\",\"cn/r\",\"cn/fast\",\"cn/half\",\"cn/xao\",\"cn/rto\",\"cn/rwz\",\"cn/zls\",\"cn/double\",\"cn-lite/1\",\"cn-heavy/0\",\"cn-pico\",\"rx/wow\",\"rx/arq\",\"argon2/chukwa\"]}}}}\n").into_bytes()
}

/// A frame of the login row's length that is not IP (the local experimental EtherType 0x88b5):
/// the program reads its EtherType and passes it, the baseline of the batched new-flow login.
pub(crate) fn login_notip() -> Vec<u8> {
    let mut f = Packet::tcp4(kp(6), Ipv4Addr::new(203, 0, 113, 20), 44322, 3333, &login()).build();
    f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
    f
}

/// The share's row (`frames`), which is also measured copied into the sample ring.
pub(crate) const SUBMIT_ROW: &str = "stratum_submit";
/// The share copied into the sample ring each run (`per_packet_copied`).
pub(crate) const SUBMIT_COPIED_ROW: &str = "stratum_submit_copied";
/// A new flow's login each run, warm (`per_packet_first_batched`), every one to the same pool
/// endpoint: after the first, each is decided at its method (`sensor_common::pools`).
pub(crate) const LOGIN_NEW_FLOW_BATCHED_ROW: &str = "stratum_login_new_flow_batched";
/// The same, every login to a pool endpoint never seen (`Pools::Unseen`): each reads its
/// evidence and teaches its endpoint.
pub(crate) const LOGIN_NEW_POOL_BATCHED_ROW: &str = "stratum_login_new_pool_batched";

/// The batched new-flow rows and where each one's logins go: what `main`, `against` and
/// `profile` run.
pub(crate) const BATCHED_LOGIN_ROWS: [(&str, Pools); 2] = [
    (LOGIN_NEW_FLOW_BATCHED_ROW, Pools::One),
    (LOGIN_NEW_POOL_BATCHED_ROW, Pools::Unseen),
];

/// Where `BatchedLogins`' logins go.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pools {
    /// All to one pool endpoint (203.0.113.20:3333), as a proxy's or a range's miners go.
    One,
    /// Each to an endpoint no login went to lately: port 3333 of an address of 198.18.0.0/15
    /// by the login's number, in the order the samples run.
    Unseen,
}

/// An XMRig share.
pub(crate) const SUBMIT: &[u8] = b"{\"id\":2,\"jsonrpc\":\"2.0\",\"method\":\"submit\",\"params\":{\"id\":\"7d\",\"job_id\":\"1\",\"nonce\":\"b8000000\",\"result\":\"abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789\"}}\n";

/// A pool's job push.
pub(crate) const JOB: &[u8] = b"{\"jsonrpc\":\"2.0\",\"method\":\"job\",\"params\":{\"blob\":\"0e0e9bb1a7f2c8e1d4b3a6978877665544332211000000000000000000000000000000000000000000\",\"job_id\":\"44\",\"target\":\"f3220000\",\"algo\":\"rx/0\",\"height\":1000000}}\n";

/// A TLS application-data record: what most TCP payload on a transit link looks like.
pub(crate) fn tls_record() -> Vec<u8> {
    let mut v = vec![0x17, 0x03, 0x03, 0x00, 0xc8];
    v.extend((0..200u32).map(|i| (i * 7 + 3) as u8));
    v
}

pub(crate) fn dns_query() -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["pool", "example", "org"] {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// Median ns of a packet that opens its flow, and of the baseline: one run per sample, since with
/// `repeat` every run after the first finds the flow the first made. The flow table is emptied and
/// the rings read between samples, so each run takes the whole new-flow path (scan, flow insert,
/// flow event, deep-inspection copy), with caches as a single packet finds them. A login always
/// opens its connection: `stratum_login_ns` (with `repeat`) is its scan and counting, hot; this is
/// the rest of what it costs once.
pub(crate) fn per_packet_first(
    k: &mut Kernel,
    rings: &mut [aya::maps::RingBuf<aya::maps::MapData>],
    frame: &[u8],
    o: &Opts,
) -> (f64, f64) {
    let samples = if o.quick { 3_000 } else { 20_000 };
    let mut sensor = Vec::new();
    let mut base = Vec::new();
    k.clear_flows().unwrap();
    for i in 0..samples {
        sensor.push(k.test_run_repeat(frame, 1, false).unwrap().as_nanos() as f64);
        base.push(k.test_run_repeat(frame, 1, true).unwrap().as_nanos() as f64);
        // Each run made its flow: the next one is new again.
        assert_eq!(k.clear_flows().unwrap(), 1, "sample {i} made no flow");
        drain(rings);
    }
    (median(sensor), median(base))
}

/// Median ns of a login opening its flow, warm, over a frame the program passes at once: replay's
/// batch entry (`Kernel::load_for_replay`, the same per-packet code) runs a batch of logins, each
/// opening its own flow, interleaved with the same batch in which every login but the first is a
/// frame of the same length that is not IP (the program reads its EtherType and passes it). The
/// first login of both batches takes the new-flow path once after the flows were emptied and the
/// rings read, so the rest find the program, its maps and rings as a busy link keeps them; the
/// difference between the batches, over the logins after the first, is the cost of one more
/// login opening its flow. `k` is loaded for replay; `notip` is the frame of the baseline batch;
/// `pools` where the logins go.
pub(crate) fn per_packet_first_batched(
    k: &mut Kernel,
    rings: &mut [aya::maps::RingBuf<aya::maps::MapData>],
    notip: &[u8],
    pools: Pools,
    o: &Opts,
) -> f64 {
    let b = BatchedLogins::new(notip, pools);
    let (mut sensor, mut base) = (Vec::new(), Vec::new());
    k.clear_flows().unwrap();
    drain(rings);
    let mut records = None;
    for i in 0..b.samples(o) {
        let (with, without, one) = b.sample(k, rings, i);
        sensor.push(with);
        base.push(without);
        records.get_or_insert(one);
    }
    eprintln!(
        "bench: {} logins of {} bytes a batch, {} records each",
        b.n,
        b.len,
        records.unwrap()
    );
    (median(sensor) - median(base)) / (b.n - 1) as f64
}

/// The two batches of `per_packet_first_batched`: `n` logins opening their flows, and the first
/// of them followed by `n - 1` frames that are not IP.
pub(crate) struct BatchedLogins {
    pub(crate) n: usize,
    len: usize,
    login: Vec<u8>,
    pools: Pools,
    notip: Vec<u8>,
}

impl BatchedLogins {
    pub(crate) fn new(notip: &[u8], pools: Pools) -> Self {
        use sensor_common::{REPLAY_BATCH_MAX, ReplayHeader};
        let login = login();
        let len = Self::frame(&login, pools, 0, 0).len();
        assert_eq!(
            notip.len(),
            len,
            "the baseline's frames are the logins' length"
        );
        let n = (mining_sensor::bpf::batch_linear_max() / (len + ReplayHeader::SIZE))
            .min(REPLAY_BATCH_MAX);
        assert!(
            n >= 3,
            "{n} logins of {len} bytes to a batch: too few to measure"
        );
        Self {
            n,
            len,
            login,
            pools,
            notip: notip.to_vec(),
        }
    }

    /// Login `j` of the batch of sample `i`, the run's `k`-th (`k = i * REPLAY_BATCH_MAX + j`):
    /// from a miner's port and address of its own, as a link's new flows come (the same 7 flow
    /// keys in every sample found the flow table's buckets and the tables by slot in the cache:
    /// 737 to 744 ns a login against 968 to 1,022 with keys never used, README, "Benchmarks"),
    /// to the pool endpoint of `pools`.
    fn frame(login: &[u8], pools: Pools, i: u64, j: usize) -> Vec<u8> {
        let k = i as usize * sensor_common::REPLAY_BATCH_MAX + j;
        let (src, sport) = (kp((k / 64_000) as u32), 1024 + (k % 64_000) as u16);
        let dst = match pools {
            Pools::One => Ipv4Addr::new(203, 0, 113, 20),
            // 131,072 addresses: one comes round again after 4,096 batches, its slot of
            // `sensor_common::pools::SLOTS` (4,096) rewritten many times since.
            Pools::Unseen => Ipv4Addr::from(0xc612_0000 + (k % (1 << 17)) as u32),
        };
        Packet::tcp4(src, dst, sport, 3333, login).build()
    }

    pub(crate) fn samples(&self, o: &Opts) -> u64 {
        if o.quick { 3_000 } else { 20_000 }
    }

    /// Sample `i` on `k` (loaded for replay, its flows emptied and `rings` read): the ns of the
    /// batch of logins and of the baseline batch, each checked to have run whole and made its
    /// flows, and the ring records one login writes (every login wrote as many: none skipped its
    /// event or copy).
    pub(crate) fn sample(
        &self,
        k: &mut Kernel,
        rings: &mut [aya::maps::RingBuf<aya::maps::MapData>],
        i: u64,
    ) -> (f64, f64, u32) {
        use sensor_common::REPLAY_DONE;
        let n = self.n;
        let layout = |frames: &[&[u8]], sample: u64| {
            let mut out = Vec::new();
            mining_sensor::bpf::batch_input(
                frames
                    .iter()
                    .enumerate()
                    .map(|(j, f)| mining_sensor::bpf::BatchPacket {
                        ts_ns: 1_559_347_200_000_000_000 + sample * 1_000_000 + j as u64 * 1_000,
                        ifindex: 1,
                        data: f,
                        wire_len: f.len(),
                    }),
                &mut out,
            );
            out
        };
        // Each batch's own flow keys (and endpoints, `Pools::Unseen`): the batch of logins is
        // sample `2i`'s, the baseline's first login `2i + 1`'s.
        let logins: Vec<Vec<u8>> = (0..n)
            .map(|j| Self::frame(&self.login, self.pools, 2 * i, j))
            .collect();
        let first = Self::frame(&self.login, self.pools, 2 * i + 1, 0);
        let all: Vec<&[u8]> = logins.iter().map(|f| f.as_slice()).collect();
        let mut first_only: Vec<&[u8]> = vec![&first];
        first_only.extend(std::iter::repeat_n(self.notip.as_slice(), n - 1));
        let (with, without) = (layout(&all, 2 * i), layout(&first_only, 2 * i + 1));
        // One timed batch: its ns, checked to have run whole and made `flows` flows, and the
        // ring records it wrote.
        let mut timed = |input: &[u8], flows: usize, what: &str| {
            let (code, t) = k.batch_runner().unwrap().time_batch(input).unwrap();
            assert_eq!(
                code,
                REPLAY_DONE + n as u32,
                "sample {i}: {what} did not run whole"
            );
            assert_eq!(
                k.clear_flows().unwrap(),
                flows,
                "sample {i}: a login of {what} made no flow"
            );
            (t.as_nanos() as f64, drain(rings))
        };
        let (ns, made) = timed(&with, n, "the batch");
        let (base, one) = timed(&without, 1, "the baseline");
        assert_eq!(
            made,
            one * n as u32,
            "sample {i}: {made} records for {n} logins, {one} for one"
        );
        (ns, base, one)
    }
}

/// Reads every record waiting in `rings`; returns how many there were.
pub(crate) fn drain(rings: &mut [aya::maps::RingBuf<aya::maps::MapData>]) -> u32 {
    let mut n = 0;
    for r in rings.iter_mut() {
        while r.next().is_some() {
            n += 1;
        }
    }
    n
}

/// Median ns/packet of the sensor and of the baseline over `frame` when every run hands the packet
/// over, as a live Stratum flow's shares are (inline mode: a copy into the sample ring). The flow
/// exists already; runs go in batches of `COPIED_BATCH`, the rings drained after each so that no
/// copy finds the ring full (with nobody reading it, `per_packet` mostly measures that path).
/// A batch fills over half the ring, so that the copies go through ring memory as a live flow's
/// do between the agent's reads (it is woken once a ring is a quarter full). Batches of 100, as
/// this figure was first measured, each paid the program's cold start after the drain, about
/// 100 ns a packet; a reader thread draining beside the runs made the ring's cache lines move
/// between the CPUs at every record, which a reader woken at a quarter does not (README,
/// "Benchmarks").
pub(crate) fn per_packet_copied(
    k: &mut Kernel,
    rings: &mut [aya::maps::RingBuf<aya::maps::MapData>],
    frame: &[u8],
    o: &Opts,
) -> (f64, f64) {
    let batches = copied_batches(o);
    drain(rings);
    let mut sensor = Vec::new();
    let mut base = Vec::new();
    for i in 0..batches {
        sensor.push(copied_batch(k, rings, frame, i));
        base.push(
            k.test_run_repeat(frame, COPIED_BATCH, true)
                .unwrap()
                .as_nanos() as f64,
        );
    }
    (median(sensor), median(base))
}

/// Runs per batch of `per_packet_copied`. A share's record is 288 bytes with the ring's own header
/// (its frame of at most 256 bytes in the smallest record size): 2,000 of them are 576,000 bytes of
/// the 1 MiB sample ring.
pub(crate) const COPIED_BATCH: u32 = 2_000;

pub(crate) fn copied_batches(o: &Opts) -> usize {
    if o.quick { 150 } else { 1_000 }
}

/// One batch of `per_packet_copied` on `k`: ns per packet, every run checked to have been copied
/// (its rings read after).
pub(crate) fn copied_batch(
    k: &mut Kernel,
    rings: &mut [aya::maps::RingBuf<aya::maps::MapData>],
    frame: &[u8],
    i: usize,
) -> f64 {
    assert!(
        frame.len() <= 256,
        "a batch of larger records may not fit the ring"
    );
    let ns = k
        .test_run_repeat(frame, COPIED_BATCH, false)
        .unwrap()
        .as_nanos() as f64;
    assert_eq!(
        drain(rings),
        COPIED_BATCH,
        "batch {i}: a run was not copied"
    );
    ns
}

/// Median ns/packet of the sensor and of the baseline over `frame`, interleaved run by run; the
/// runs go to the loads of the program in `ks` in turn (see `PER_PACKET_LOADS`).
pub(crate) fn per_packet(ks: &mut [Kernel], frame: &[u8], o: &Opts) -> (f64, f64) {
    let mut sensor = Vec::new();
    let mut base = Vec::new();
    for r in 0..o.runs {
        let k = &mut ks[r % ks.len()];
        sensor.push(
            k.test_run_repeat(frame, o.repeat, false)
                .unwrap()
                .as_nanos() as f64,
        );
        base.push(k.test_run_repeat(frame, o.repeat, true).unwrap().as_nanos() as f64);
    }
    (median(sensor), median(base))
}

pub(crate) fn frames() -> Vec<(&'static str, Vec<u8>)> {
    let other = Ipv4Addr::new(198, 51, 100, 10);
    let other2 = Ipv4Addr::new(203, 0, 113, 20);
    vec![
        (
            "unwatched_tcp",
            Packet::tcp4(other, other2, 44321, 443, &tls_record()).build(),
        ),
        (
            "watched_tcp",
            Packet::tcp4(kp(5), other2, 44321, 443, &tls_record()).build(),
        ),
        (
            "stratum_login",
            Packet::tcp4(kp(6), other2, 44322, 3333, &login()).build(),
        ),
        (
            // A share: what most of a mining session's client messages are.
            SUBMIT_ROW,
            Packet::tcp4(kp(6), other2, 44326, 3333, SUBMIT).build(),
        ),
        (
            "unwatched_http",
            Packet::tcp4(
                other,
                other2,
                44323,
                80,
                b"GET /index.html HTTP/1.1\r\nHost: example.org\r\nUser-Agent: curl/8\r\n\r\n",
            )
            .build(),
        ),
        (
            "unwatched_ipv6_tcp",
            Packet::tcp6(
                Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
                Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2),
                44324,
                443,
                &tls_record(),
            )
            .build(),
        ),
        (
            "unwatched_vlan_tcp",
            Packet::tcp4(other, other2, 44325, 443, &tls_record())
                .vlan(0x88a8, 100)
                .vlan(0x8100, 200)
                .build(),
        ),
        (
            "unwatched_udp_dns",
            Packet::udp4(other, other2, 53000, 53, &dns_query()).build(),
        ),
    ]
}

/// 1,000,000 distinct IPv4 prefixes, scattered like a blocklist: /32s (70%), /24s (25%) and /20s
/// (5%) drawn from a fixed pseudo-random sequence (so runs compare), none inside the benchmark's
/// unwatched addresses (198.51.100.0/24, 203.0.113.0/24, 198.18.0.0/15), plus 198.18.201.99/32,
/// which shares its /24 with the `unwatched_tcp_filter_miss` packet's destination.
pub(crate) fn million_prefixes() -> Vec<IpNet> {
    let mut out = std::collections::BTreeSet::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while out.len() < 1_000_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let addr = (x >> 16) as u32;
        let first = addr >> 24;
        if first == 0
            || first >= 224
            || first == 127
            || (addr >> 8) == 0xc63364
            || (addr >> 8) == 0xcb0071
            || (addr >> 17) == (0xc612_0000u32 >> 17)
        {
            continue;
        }
        let len = match x % 20 {
            0 => 20,
            1..=5 => 24,
            _ => 32,
        };
        let net = IpNet::new(Ipv4Addr::from(addr).into(), len)
            .unwrap()
            .trunc();
        out.insert(net);
    }
    let mut v: Vec<IpNet> = out.into_iter().collect();
    v.pop();
    v.push("198.18.201.99/32".parse().unwrap());
    v
}

/// The share (`SUBMIT_ROW`) and the unwatched TLS record (`unwatched_tcp`) as a remote mirror
/// session delivers them, for a program loaded with `decapsulate` (`test_support::mirror`): in
/// VXLAN, and the share in ERSPAN type II, over IPv4. Over the rows of the same frames bare, what
/// the tunnel walk costs a mirrored frame.
pub(crate) fn tunneled() -> Vec<(&'static str, Vec<u8>)> {
    use test_support::mirror;
    let bare = frames();
    let frame = |row: &str| {
        bare.iter()
            .find(|(name, _)| *name == row)
            .map(|(_, f)| f.clone())
            .expect("a row of frames()")
    };
    let vxlan = |inner: &[u8]| {
        mirror::mirrored(
            false,
            mirror::UDP,
            &mirror::vxlan(sensor_common::tunnel::VXLAN_PORT),
            inner,
        )
    };
    let (share, tls) = (frame(SUBMIT_ROW), frame("unwatched_tcp"));
    vec![
        (TUNNELED_ROWS[0], vxlan(&share)),
        (TUNNELED_ROWS[1], mirror::erspan2(&share)),
        (TUNNELED_ROWS[2], vxlan(&tls)),
    ]
}

/// `cfg` with both tunnels named in `decapsulate`: the program the `tunneled` rows run on.
pub(crate) fn decapsulating(cfg: &mining_sensor::config::Config) -> mining_sensor::config::Config {
    let mut decap = cfg.clone();
    decap.decapsulate = mining_sensor::config::Tunnel::ALL.to_vec();
    decap
}

/// The rows of `tunneled`.
pub(crate) const TUNNELED_ROWS: [&str; 3] = [
    "stratum_submit_vxlan",
    "stratum_submit_erspan",
    "unwatched_tcp_vxlan",
];

/// The crafted packets' frames (`test_support::crafted`, one per family), to a pool address from
/// a watched one, so that every counter is paid for too.
pub(crate) fn crafted() -> Vec<(&'static str, Vec<u8>)> {
    let pool = Ipv4Addr::new(203, 0, 113, 20);
    test_support::crafted::crafted()
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let sport = 40001 + i as u16;
            let p = if c.udp {
                Packet::udp4(kp(7), pool, sport, c.dport, &c.payload)
            } else {
                Packet::tcp4(kp(7), pool, sport, c.dport, &c.payload)
            };
            (c.family, p.build())
        })
        .collect()
}
