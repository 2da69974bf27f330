//! Stratum V2 between a device and a pool built on the reference implementation's protocol crates
//! (`test_support::sv2`: SRI's `noise_sv2`, `codec_sv2` and message crates, pinned): a standard
//! channel once on the Stratum V2 pool port 34254 and once on 443 (issue "Encrypted and evasive
//! mining": "Stratum V2 on a pool port and on 443"), and an extended channel, as SRI's translator
//! opens towards its pool, on 34254. The handshake, the frames and their encryption are the
//! library's. The sensor must flag each flow `stratum_v2` once and count every
//! `SubmitSharesStandard` and every `SubmitSharesExtended` (learned by its size: README,
//! `stratum_v2`) as a share of coin and result `unknown`, and nothing else; the segments on the wire must have the
//! sizes worked out by hand from the spec; and a capture of the same sessions, replayed through
//! `replay`, must count the same.
//!
//! ```text
//!  miner ns                     vantage ns (mining-sensor, XDP native on s2v0, s2v1; tcpdump on s2v0)   pool ns
//!  s2m0 198.18.52.2/24  <--->  s2v0 198.18.52.1/24   [forwarding]   s2v1 198.18.53.1/24  <--->  s2p0 198.18.53.2/24
//! ```
//!
//! Needs root, iproute2 and tcpdump (`cargo xtask setup`). Addresses are from 198.18.0.0/15 only;
//! each session is `SHARES + STALE` request-reply exchanges, every read bounded by a timeout.

mod common;

use common::{IO_TIMEOUT, Line, http_get, in_ns, wait_for};

use std::{
    net::{SocketAddr, TcpStream},
    path::Path,
    time::Duration,
};

use test_support::sv2;

const SENSOR_PORT: u16 = 19852;
const RANGE: &str = "s2miner";
const POOL: [u8; 4] = [198, 18, 53, 2];
const POOL_HOST: &str = "198.18.53.2";
/// Shares the device mines on the pool's job (accepted), then shares on a job the pool never
/// sent (refused with `SubmitShares.Error`): every one a `SubmitSharesStandard` frame.
const SHARES: u32 = 5;
const STALE: u32 = 1;
/// The last of the `SHARES` written together in one segment, as Nagle's algorithm joins the
/// shares of a device that finds them faster than its pool answers (`sv2::Plan::joined`).
const JOINED: u32 = 3;
/// The extranonce an extended channel's device rolls, in bytes.
const EXTRANONCE: u16 = 8;
/// The sessions: the destination port, the channel and the seeds of the device's and the pool's
/// keys: a standard channel on 34254 and on 443, and an extended one (as SRI's translator opens
/// towards its pool) on 34254. On 443 the signal is the 64/234 pair, which a payload opening with
/// a TLS record's header or a JSON message's start does not make (README, `stratum_v2`; 10 of
/// the 65,536 first-two-byte pairs); the seeds are fixed and the test checks that neither
/// message even opens with a record type (20-23) or `{`.
const SESSIONS: [(u16, sv2::Channel, u64, u64); 3] = [
    (34254, sv2::Channel::Standard, 1, 2),
    (443, sv2::Channel::Standard, 3, 4),
    (
        34254,
        sv2::Channel::Extended {
            extranonce: EXTRANONCE,
        },
        5,
        6,
    ),
];

/// One session to the pool on `port` (its shares as the constants say): (the device's report,
/// the pool's).
fn session(
    t: &Line,
    port: u16,
    channel: sv2::Channel,
    seeds: (u64, u64),
) -> (sv2::Report, sv2::Report) {
    let addr = SocketAddr::from((POOL, port));
    let listener = common::listen(&t.pool, addr);
    let pool = std::thread::spawn(move || sv2::pool(common::accept(&listener), seeds.1));
    let device = in_ns(&t.miner, move || {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        let plan = sv2::Plan {
            channel,
            shares: SHARES,
            stale: STALE,
            joined: JOINED,
            seed: seeds.0,
        };
        sv2::device(stream, POOL_HOST, port, plan)
    })
    .join()
    .unwrap()
    .unwrap_or_else(|e| panic!("device to port {port}: {e}"));
    let pool = pool
        .join()
        .unwrap()
        .unwrap_or_else(|e| panic!("pool on port {port}: {e}"));
    (device, pool)
}

/// The TCP payload sizes in `pcap` (Ethernet, IPv4) sent to port `port` (from the client) and
/// from it (from the server), empty segments left out.
fn payload_sizes(pcap: &Path, port: u16) -> (Vec<usize>, Vec<usize>) {
    let mut r = pcap_file::pcap::PcapReader::new(std::fs::File::open(pcap).unwrap()).unwrap();
    let (mut to, mut from) = (Vec::new(), Vec::new());
    while let Some(p) = r.next_packet() {
        let d = p.unwrap().data;
        // Ethernet (14 bytes), IPv4 of protocol 6 (TCP).
        if d.len() < 34 || d[12..14] != [0x08, 0x00] || d[23] != 6 {
            continue;
        }
        let ihl = usize::from(d[14] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([d[16], d[17]]));
        let tcp = &d[14 + ihl..];
        let doff = usize::from(tcp[12] >> 4) * 4;
        let len = total - ihl - doff;
        let (sport, dport) = (
            u16::from_be_bytes([tcp[0], tcp[1]]),
            u16::from_be_bytes([tcp[2], tcp[3]]),
        );
        if len > 0 && dport == port {
            to.push(len);
        } else if len > 0 && sport == port {
            from.push(len);
        }
    }
    (to, from)
}

#[test]
fn s2_stratum_v2_from_the_reference_crates_on_a_pool_port_and_on_443() {
    let t = Line::new(
        "s2",
        ["s2m0", "198.18.52.2/24", "s2v0", "198.18.52.1/24"],
        ["s2p0", "198.18.53.2/24", "s2v1", "198.18.53.1/24"],
    );
    let dir = std::env::temp_dir().join(format!("s2-stratum-v2-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("sensor.toml");
    // The default pool ports (34254 among them, 443 not).
    std::fs::write(
        &config,
        format!(
            "drain_interval = \"200ms\"\n[[ranges]]\nname = \"{RANGE}\"\ncidrs = [\"198.18.52.0/24\"]\n"
        ),
    )
    .unwrap();
    let log = dir.join("sensor.log");
    let sensor = common::sensor_on_line(&t, ["s2v0", "s2v1"], SENSOR_PORT, &config, &log);
    let pcap = dir.join("sv2.pcap");
    let dump = common::start_capture(&t.vantage, "s2v0", &pcap);

    let mut reports = Vec::new();
    for (port, channel, device_seed, pool_seed) in SESSIONS {
        let (device, pool) = session(&t, port, channel, (device_seed, pool_seed));
        // The device mined SHARES shares on the pool's job, each accepted after the pool hashed
        // the header again, and STALE on a job the pool never sent, refused.
        assert_eq!((device.accepted, device.rejected), (SHARES, STALE));
        assert_eq!((pool.accepted, pool.rejected), (SHARES, STALE));
        // Neither handshake message opens with a TLS record's type or `{`.
        for first in [device.handshake_first_byte(), pool.handshake_first_byte()] {
            let first = first.expect("a handshake message");
            assert!(
                !(20..=23).contains(&first) && first != b'{',
                "port {port}: a handshake message opens with {first}: pick other seeds"
            );
        }
        reports.push((channel, device, pool));
    }
    let sessions = SESSIONS.len() as f64;
    // Every session's shares, 3 sessions x (5 + 1) = 18: the standard channels' 62-byte frames
    // (two alone, three in one 186-byte segment, the stale one alone: 1 + 1 + 3 + 1), and the
    // extended channel's 71-byte ones once two in a row taught the flow their size (its client
    // segments 64, 100, 90, then 71: the 90 is a candidate, replaced by the first 71, which the
    // second confirms: both counted; then three in one 213-byte segment, and the stale one: 2 +
    // 3 + 1).
    let shares = 3.0 * f64::from(SHARES + STALE);

    // Live: each flow flagged once, every SubmitSharesStandard counted, coin and result unknown
    // (the verdict is sealed).
    let settle = Duration::from_secs(10);
    let unknown = [("coin", "unknown"), ("range", RANGE), ("result", "unknown")];
    // A suspect flow is counted at the packet that shows the sign, with that packet's direction
    // (contract.md, as for `stratum_flows_total`): on 34254 the device's 64-byte hello, from the
    // range (twice); on 443 the pair, counted at the pool's 234-byte answer, to the range.
    let sv2_from = [
        ("direction", "from"),
        ("range", RANGE),
        ("reason", "stratum_v2"),
    ];
    let sv2_to = [
        ("direction", "to"),
        ("range", RANGE),
        ("reason", "stratum_v2"),
    ];
    for (name, labels, want) in [
        ("mining_sensor_shares_total", &unknown[..], shares),
        ("mining_sensor_suspect_flows_total", &sv2_from[..], 2.0),
        ("mining_sensor_suspect_flows_total", &sv2_to[..], 1.0),
    ] {
        assert_eq!(
            wait_for(&t.vantage, SENSOR_PORT, name, labels, want, settle),
            want,
            "{name} {labels:?}: {}",
            http_get(&t.vantage, SENSOR_PORT, "/metrics")
        );
    }
    common::stop_capture(dump);
    // Nothing else: no other share, no other reason, no Stratum V1 flow.
    let m = common::samples(&http_get(&t.vantage, SENSOR_PORT, "/metrics"));
    let sum = |name: &str| common::range_sum(&m, name, RANGE);
    assert_eq!(sum("mining_sensor_shares_total"), shares);
    assert_eq!(sum("mining_sensor_suspect_flows_total"), sessions);
    assert_eq!(sum("mining_sensor_stratum_flows_total"), 0.0);
    drop(sensor);

    // On the wire, per session, the client's segments (by hand, sv2-spec's encodings, each
    // frame its header sealed, 6 + 16 = 22, and its payload sealed, + 16):
    // - the Noise hello, ElligatorSwift-encoded key: 64;
    // - SetupConnection: protocol 1, versions 2 + 2, flags 4, port 2 = 11, and five strings
    //   with their length bytes: "198.18.53.2" 12, "mining-sensor-test" 19, "cpu" 4, "0.1.0" 6,
    //   "s2-device" 10 = 51: 62 bytes, 22 + 78 = 100;
    // - OpenStandardMiningChannel: request id 4, "s2-worker" 10, hash rate 4, max target 32 =
    //   50 bytes, 22 + 66 = 88;
    // - SubmitSharesStandard: six u32, 24 bytes, 22 + 40 = 62, SHARES + STALE times;
    // - on the extended channel, OpenExtendedMiningChannel: 50 + the extranonce size's 2 = 52
    //   bytes, 22 + 68 = 90; SubmitSharesExtended: 24 + the extranonce with its length byte, 1 +
    //   8 = 33 bytes, 22 + 49 = 71.
    // Each is written after the pool's answer to the one before, so none shares a segment, but
    // for the JOINED shares, written at once: one segment of 3 x 62 = 186 (3 x 71 = 213).
    // The pool's first segment is its answer, 64 + (64 + 16) + (74 + 16) = 234.
    let standard = [64, 100, 88, 62, 62, 186, 62];
    let extended = [64, 100, 90, 71, 71, 213, 71];
    assert_eq!(
        (SHARES, STALE, JOINED),
        (5, 1, 3),
        "the segments above are for these"
    );
    // The capture's segments to 34254 are its two sessions' one after the other.
    let (to, from) = payload_sizes(&pcap, 34254);
    assert_eq!(to, [&standard[..], &extended[..]].concat(), "to 34254");
    assert_eq!(
        (from[0], from.iter().filter(|&&n| n == 234).count()),
        (234, 2)
    );
    let (to, from) = payload_sizes(&pcap, 443);
    assert_eq!(to, standard, "to 443");
    assert_eq!(from[0], 234, "from 443");
    for (channel, device, pool) in &reports {
        // The library's writes, as each side recorded them, are those segments.
        let written: Vec<usize> = device.writes.iter().map(|w| w.bytes).collect();
        let want = match channel {
            sv2::Channel::Standard => &standard,
            sv2::Channel::Extended { .. } => &extended,
        };
        assert_eq!(&written, want, "device writes, {channel:?}");
        assert_eq!(pool.sizes("handshake"), [234]);
    }

    // The same sessions replayed: the same counts.
    let (_, report) = common::replay(&["--config", config.to_str().unwrap()], &[&pcap]);
    let total = |metric: &str, labels: &[(&str, &str)]| {
        common::sample_sum(&report["totals"], metric, labels) as f64
    };
    assert_eq!(total("mining_sensor_shares_total", &unknown), shares);
    assert_eq!(
        total("mining_sensor_shares_total", &[("range", RANGE)]),
        shares
    );
    assert_eq!(total("mining_sensor_suspect_flows_total", &sv2_from), 2.0);
    assert_eq!(total("mining_sensor_suspect_flows_total", &sv2_to), 1.0);
    assert_eq!(
        total("mining_sensor_suspect_flows_total", &[("range", RANGE)]),
        sessions
    );
    assert_eq!(
        total("mining_sensor_stratum_flows_total", &[("range", RANGE)]),
        0.0
    );
    let _ = std::fs::remove_dir_all(&dir);
}
