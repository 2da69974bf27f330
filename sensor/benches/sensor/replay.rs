//! Replay against ndpiReader: the captures both read, and wall-clock timing.

use std::{
    net::Ipv4Addr,
    process::Command,
    time::{Duration, Instant},
};

use test_support::Packet;

use crate::{Opts, median, packets::*};

/// A capture of one long Monero session from `kp` with its ACKs, `n` packets.
pub(crate) fn capture(path: &std::path::Path, n: usize) {
    let f = std::fs::File::create(path).unwrap();
    let (m, p) = (kp(77), Ipv4Addr::new(198, 51, 100, 5));
    let t0 = Duration::from_secs(1_559_347_200);
    let ok = b"{\"id\":2,\"jsonrpc\":\"2.0\",\"error\":null,\"result\":{\"status\":\"OK\"}}\n";
    let mut frames = vec![
        Packet::tcp4(m, p, 50000, 3333, &login()).build(),
        Packet::tcp4(p, m, 3333, 50000, b"").build(),
    ];
    let cycle = [
        Packet::tcp4(m, p, 50000, 3333, SUBMIT).build(),
        Packet::tcp4(p, m, 3333, 50000, ok).build(),
        Packet::tcp4(m, p, 50000, 3333, b"").build(),
        Packet::tcp4(p, m, 3333, 50000, JOB).build(),
        Packet::tcp4(m, p, 50000, 3333, b"").build(),
    ];
    while frames.len() < n {
        frames.extend(cycle.iter().cloned());
    }
    frames.truncate(n);
    let timed = frames
        .iter()
        .enumerate()
        .map(|(i, frame)| (t0 + Duration::from_millis(i as u64 * 10), frame));
    test_support::write_pcap(f, pcap_file::DataLink::ETHERNET, timed).unwrap();
}

pub(crate) fn wall(cmd: &mut Command) -> f64 {
    let start = Instant::now();
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    start.elapsed().as_secs_f64()
}

/// A transit link's mix, `n` packets over 5,000 client hosts (one in ten in `kp`) and 50 servers:
/// 55% TLS records of 1,400 bytes, 30% ACKs, 10% UDP datagrams to port 443, and 5% the Stratum
/// traffic (submits and job pushes) of 100 miners in `kp`. Drawn from a fixed xorshift sequence.
pub(crate) fn transit_capture(path: &std::path::Path, n: usize) {
    let f = std::fs::File::create(path).unwrap();
    let tls: Vec<u8> = [&[0x17u8, 3, 3, 0x05, 0x75][..], &[0xaa; 1395][..]].concat();
    let pool = Ipv4Addr::new(203, 0, 113, 7);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let t0 = Duration::from_secs(1_559_347_200);
    let frames = (0..n).map(|i| {
        let r = next() % 100;
        let c = (next() % 5000) as u32;
        let client = if c.is_multiple_of(10) {
            kp(c)
        } else {
            Ipv4Addr::from(0x0a01_0000 + c)
        };
        let server = Ipv4Addr::new(198, 51, 100, 5 + (c % 50) as u8);
        let port = 20_000 + c as u16;
        let frame = match r {
            0..55 => Packet::tcp4(server, client, 443, port, &tls).build(),
            55..85 => Packet::tcp4(client, server, port, 443, b"").build(),
            85..95 => Packet::udp4(client, server, port, 443, &[0x40; 100]).build(),
            _ => {
                let (miner, mport) = (kp(c % 100), 40_000 + (c % 100) as u16);
                if next() % 2 == 0 {
                    Packet::tcp4(miner, pool, mport, 3333, SUBMIT).build()
                } else {
                    Packet::tcp4(pool, miner, 3333, mport, JOB).build()
                }
            }
        };
        (t0 + Duration::from_micros(i as u64 * 10), frame)
    });
    let out = std::io::BufWriter::new(f);
    test_support::write_pcap(out, pcap_file::DataLink::ETHERNET, frames).unwrap();
}

/// `mining-sensor replay` and `ndpiReader -q` on `path` (`n` packets), interleaved: packets per
/// second of each, medians.
pub(crate) fn replay_vs_ndpi(o: &Opts, path: &std::path::Path, n: usize) -> (f64, f64) {
    let runs = if o.quick { 3 } else { 5 };
    let mut replay = Vec::new();
    let mut ndpi = Vec::new();
    for _ in 0..runs {
        replay.push(
            n as f64
                / wall(
                    Command::new(env!("CARGO_BIN_EXE_mining-sensor"))
                        .args(["replay", "--json", "/dev/null"])
                        .arg(path),
                ),
        );
        ndpi.push(n as f64 / wall(Command::new("ndpiReader").arg("-q").arg("-i").arg(path)));
    }
    (median(replay), median(ndpi))
}
