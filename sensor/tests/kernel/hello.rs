//! ClientHellos split over segments on any port (issue 21, "A ClientHello split over two
//! segments is decided too"): post-quantum key shares make them 1.5-2 KB, two segments at a
//! 1,448-byte MSS, and Chrome's shuffled extensions often put server_name in the second.

use sensor_common::{OPENING_ENTRIES, Reason, Stat};

use super::*;

/// A pool port and one pool domain, beside range `c` (`Sensor::watching_c`).
const HELLO_POOLS: &str = "[pools]\nports = [14433]\nextra_domains = [\"pool.example\"]\n";
/// The only range of the configuration.
const R: usize = 0;

/// A post-quantum-sized ClientHello: supported_groups (4 + 4 bytes), a 1,220-byte key share of
/// `fill` bytes (4 + 1,220), then server_name with `name` (4 + 5 + its length) if any. The
/// extensions start at 92 (`client_hello_with`), so the key share spans 100..1,324 and the name's
/// extension starts at 1,324.
fn pq_hello(fill: u8, name: Option<&str>) -> Vec<u8> {
    let mut ext = vec![(10u16, vec![0, 2, 0, 29]), (51u16, vec![fill; 1220])];
    if let Some(n) = name {
        let mut d = vec![0, (n.len() + 3) as u8, 0, 0, n.len() as u8];
        d.extend_from_slice(n.as_bytes());
        ext.push((0, d));
    }
    client_hello_with(&ext)
}

/// A name in the configured pool domain, 16 bytes.
const POOL_NAME_BYTES: &[u8] = b"xmr.pool.example";

/// Where the name's extension starts in a `pq_hello`.
const NAME_EXT: usize = 92 + 8 + 1224;

/// The hello's segments from `m` to `server` on `sport` -> `dport`, cut at `cuts`, with their
/// sequence numbers (the first at 7).
fn segments(
    (m, server): (Ipv4Addr, Ipv4Addr),
    (sport, dport): (u16, u16),
    hello: &[u8],
    cuts: &[usize],
) -> Vec<Vec<u8>> {
    let mut bounds = vec![0];
    bounds.extend_from_slice(cuts);
    bounds.push(hello.len());
    bounds
        .windows(2)
        .map(|w| {
            Packet::tcp4(m, server, sport, dport, &hello[w[0]..w[1]])
                .tcp_seq(7 + w[0] as u32)
                .build()
        })
        .collect()
}

fn held(s: &Sensor) -> (u64, u64, usize) {
    (
        s.k.stat(Stat::OpeningsHeld).unwrap(),
        s.k.stat(Stat::OpeningsRemoved).unwrap(),
        s.k.openings().unwrap(),
    )
}

/// Towards 443 (no pool port, no pool address): a 1,349-byte ClientHello cut at 1,000 bytes, as
/// a smaller MSS cuts it, inside its key share; its server_name extension (1,324 + 25: 4 + 5 +
/// "xmr.pool.example", 16) comes whole in the second segment. A pool domain's name counts once
/// (`tls_pool_sni`), the continuation sent again changes nothing; another name, or no name (on
/// 443 no `tls_no_sni`), counts nothing. Each split hello is held once, and its entry goes when
/// its second segment joins it.
#[test]
fn a_client_hello_split_towards_443_is_decided_by_its_second_segment() {
    let mut s = Sensor::watching_c(HELLO_POOLS);
    let (sni, no_sni) = (Reason::TlsPoolSni as usize, Reason::TlsNoSni as usize);
    let ends = (ip("192.0.2.9"), ip("203.0.113.50"));
    let pool = pq_hello(0x11, Some("xmr.pool.example"));
    assert_eq!(pool.len(), NAME_EXT + 25);
    let segs = segments(ends, (45000, 443), &pool, &[1000]);
    s.run(&segs[0]);
    // Held, undecided.
    assert_eq!(s.k.suspect_cell(R, DIR_FROM, sni).unwrap(), 0);
    assert_eq!(held(&s), (1, 0, 1));
    s.run(&segs[1]);
    assert_eq!(s.k.suspect_cell(R, DIR_FROM, sni).unwrap(), 1);
    assert_eq!(held(&s), (1, 1, 0));
    // The second segment again (a retransmission): its hello is decided already, nothing held.
    s.run(&segs[1]);
    assert_eq!(s.k.suspect_cell(R, DIR_FROM, sni).unwrap(), 1);
    // Another server's name; no name at all (decided from the first segment: the key share is
    // the last extension, nothing held).
    for (sport, h) in [
        (45001, pq_hello(0x11, Some("www.example.org"))),
        (45002, pq_hello(0x11, None)),
    ] {
        for seg in segments(ends, (sport, 443), &h, &[1000]) {
            s.run(&seg);
        }
    }
    assert_eq!(s.k.suspect_cell(R, DIR_FROM, sni).unwrap(), 1);
    assert_eq!(s.k.suspect_cell(R, DIR_FROM, no_sni).unwrap(), 0);
    // Held: the pool-named hello and the other name's (2); both joined and removed.
    assert_eq!(held(&s), (2, 2, 0));
    // An unwatched flow (neither end in a range): held and decided the same, counted under the
    // unwatched slot.
    let transit = (ip("198.51.100.7"), ip("203.0.113.51"));
    for seg in segments(transit, (45003, 443), &pool, &[1000]) {
        s.run(&seg);
    }
    assert_eq!(
        s.k.suspect_cell(UNWATCHED_SLOT, DIR_FROM, sni).unwrap()
            + s.k.suspect_cell(UNWATCHED_SLOT, DIR_TO, sni).unwrap(),
        1
    );
    assert_eq!(held(&s), (3, 3, 0));
    assert_eq!(s.all_stratum(), 0);
}

/// Off the pool ports a segment whose first byte is a TLS record's type (20-23) is not looked
/// at as a continuation (HTTPS application data pays nothing for it): a hello cut inside a key
/// share of 0x17 bytes (the continuation opens with 0x17, as 4 random bytes in 256 do) is not
/// decided on 443, and its entry waits; towards the pool port it is.
#[test]
fn a_continuation_opening_like_a_tls_record_is_joined_only_towards_a_pool() {
    let mut s = Sensor::watching_c(HELLO_POOLS);
    let sni = Reason::TlsPoolSni as usize;
    let ends = (ip("192.0.2.9"), ip("203.0.113.50"));
    let h = pq_hello(0x17, Some("xmr.pool.example"));
    for seg in segments(ends, (45100, 443), &h, &[1000]) {
        s.run(&seg);
    }
    assert_eq!(s.k.suspect_cell(R, DIR_FROM, sni).unwrap(), 0);
    assert_eq!(held(&s), (1, 0, 1));
    for seg in segments(ends, (45101, 14433), &h, &[1000]) {
        s.run(&seg);
    }
    assert_eq!(s.k.suspect_cell(R, DIR_FROM, sni).unwrap(), 1);
    assert_eq!(held(&s), (2, 1, 1));
}

/// Out of sequence: a segment after a gap (one after the continuation, come first) leaves the
/// held hello waiting, and so does a segment from the server's side; a retransmission of the
/// first segment holds it again over the same entry; the continuation, when it comes, joins it,
/// and once more (retransmitted) changes nothing.
#[test]
fn a_continuation_out_of_sequence_still_joins_its_hello() {
    let mut s = Sensor::watching_c(HELLO_POOLS);
    let sni = Reason::TlsPoolSni as usize;
    let (m, server) = (ip("192.0.2.9"), ip("203.0.113.50"));
    let h = pq_hello(0x11, Some("xmr.pool.example"));
    let segs = segments((m, server), (45200, 443), &h, &[1000]);
    s.run(&segs[0]);
    // 40 bytes after the hello's end (sequence 7 + 1,349): not joined, the entry stays.
    s.run(
        &Packet::tcp4(m, server, 45200, 443, &[0x42; 40])
            .tcp_seq(7 + h.len() as u32)
            .build(),
    );
    assert_eq!(held(&s), (1, 0, 1));
    // The server's bytes on the same flow (its side): nothing.
    s.run(
        &Packet::tcp4(server, m, 443, 45200, &[0x42; 40])
            .tcp_seq(7 + 1000)
            .build(),
    );
    assert_eq!(held(&s), (1, 0, 1));
    // The first again: held again over the same entry.
    s.run(&segs[0]);
    assert_eq!(held(&s), (2, 0, 1));
    assert_eq!(s.k.suspect_cell(R, DIR_FROM, sni).unwrap(), 0);
    s.run(&segs[1]);
    assert_eq!(s.k.suspect_cell(R, DIR_FROM, sni).unwrap(), 1);
    assert_eq!(held(&s), (2, 1, 0));
    s.run(&segs[1]);
    assert_eq!(s.k.suspect_cell(R, DIR_FROM, sni).unwrap(), 1);
    assert_eq!(held(&s), (2, 1, 0));
}

/// A continuation that never comes: the held hello is stale after `OPENING_MAX_AGE_NS` (10 s;
/// replay's clock is the packets' capture time, so exact). Its slot's mark is on a clock of 2^30
/// ns ticks (`sensor_common::recent`), recent for 10 ticks (10 to 11.8 s): a second segment 12 s
/// and 1 ms after the first (11 or 12 ticks on) does not even read the map, and the entry waits
/// for the LRU to evict it (next test); one 10 s and 1 ms after (9 or 10 ticks) reads the entry,
/// finds it stale by its own time and removes it, unjoined; 10 s after, it still joins.
#[test]
fn a_held_client_hello_expires_after_ten_seconds() {
    use mining_sensor::bpf::{BatchPacket, batch_input};
    use sensor_common::REPLAY_DONE;
    let cfg = Config::parse(&c_config(HELLO_POOLS), "test").unwrap();
    let mut k = load_for_replay(&cfg);
    k.configure(&cfg).unwrap();
    k.set_iface_slot(1, SLOT as u32).unwrap();
    const T0: u64 = 1_700_000_000_000_000_000;
    let mut input = Vec::new();
    let mut run = |k: &Kernel, ms: u64, frame: &[u8]| {
        batch_input(
            (0..1).map(|_| BatchPacket {
                ts_ns: T0 + ms * 1_000_000,
                ifindex: 1,
                data: frame,
                wire_len: frame.len(),
            }),
            &mut input,
        );
        assert_eq!(
            k.batch_runner().unwrap().run_batch(&input).unwrap(),
            REPLAY_DONE + 1
        );
    };
    let sni = Reason::TlsPoolSni as usize;
    let ends = (ip("192.0.2.9"), ip("203.0.113.50"));
    let h = pq_hello(0x11, Some("xmr.pool.example"));
    let late = segments(ends, (45300, 443), &h, &[1000]);
    run(&k, 0, &late[0]);
    run(&k, 12_001, &late[1]);
    assert_eq!(k.suspect_cell(R, DIR_FROM, sni).unwrap(), 0);
    let stats = |k: &Kernel| {
        (
            k.stat(Stat::OpeningsHeld).unwrap(),
            k.stat(Stat::OpeningsRemoved).unwrap(),
            k.openings().unwrap(),
        )
    };
    assert_eq!(stats(&k), (1, 0, 1));
    let stale = segments(ends, (45302, 443), &h, &[1000]);
    run(&k, 20_000, &stale[0]);
    run(&k, 30_001, &stale[1]);
    assert_eq!(k.suspect_cell(R, DIR_FROM, sni).unwrap(), 0);
    assert_eq!(stats(&k), (2, 1, 1));
    let in_time = segments(ends, (45301, 443), &h, &[1000]);
    run(&k, 40_000, &in_time[0]);
    run(&k, 50_000, &in_time[1]);
    assert_eq!(k.suspect_cell(R, DIR_FROM, sni).unwrap(), 1);
    assert_eq!(stats(&k), (3, 2, 1));
}

/// First segments whose continuations never come, from 4,100 flows (more than
/// `OPENING_ENTRIES`, 4,096): held within the map's bound, the LRU evicting the oldest (held
/// minus removed minus entries, the agent's `opening_evictions_total`, at least 4); a split
/// hello after them is still decided.
#[test]
fn split_client_hellos_that_never_go_on_stay_bounded() {
    let mut s = Sensor::watching_c(HELLO_POOLS);
    let sni = Reason::TlsPoolSni as usize;
    let server = ip("203.0.113.50");
    let h = pq_hello(0x11, Some("xmr.pool.example"));
    for i in 0..4100u32 {
        let a = ip(&format!("198.18.{}.{}", 2 + i / 250, 1 + i % 250));
        s.run(&segments((a, server), (45400, 443), &h, &[1000])[0]);
    }
    let (held, removed, entries) = held(&s);
    assert_eq!((held, removed), (4100, 0));
    assert!(entries <= OPENING_ENTRIES as usize, "{entries}");
    assert!(held - removed - entries as u64 >= 4, "{entries} left");
    for seg in segments((ip("192.0.2.9"), server), (45401, 443), &h, &[1000]) {
        s.run(&seg);
    }
    assert_eq!(s.k.suspect_cell(R, DIR_FROM, sni).unwrap(), 1);
}

/// Over three segments, as a 536-byte MSS (or a tunnel's) cuts a post-quantum hello: the walk
/// cut again by the second segment is held once more, for the third; never for a fourth. The
/// 1,349-byte hello (name's extension at 1,324..1,349):
/// - 0..536, 536..1,072, 1,072..1,349: the second ends 252 bytes short of the name's extension,
///   the third holds it whole;
/// - 0..536, 536..1,340, 1,340..1,349: the extension's first 16 bytes carried to the third;
/// - 0..20, 20..556, 556..1,349: a first segment held whole (cut before the extensions), the
///   second cut in the key share;
/// - 0..400, 400..800, 800..1,200, 1,200..1,349: the name in a fourth: not decided;
/// - another server's name over three: nothing; towards the pool port, no name, 0..20, 20..60,
///   60..1,324 (each of the first two before the extensions' length, held whole): `tls_no_sni`;
/// - the name first (92..117), 0..20, 20..60, 60..200, 200..: held whole twice, the name whole in
///   the third long before the extensions' end: decided by the third.
///
/// Each of the seven flows is held twice and joined twice (the four-segment one: its third
/// segment joins, is cut again and is not held).
#[test]
fn a_client_hello_over_three_segments_is_decided() {
    let mut s = Sensor::watching_c(HELLO_POOLS);
    let (sni, no_sni) = (Reason::TlsPoolSni as usize, Reason::TlsNoSni as usize);
    let ends = (ip("192.0.2.9"), ip("203.0.113.50"));
    let pool = pq_hello(0x11, Some("xmr.pool.example"));
    let run_all = |s: &mut Sensor, port: (u16, u16), h: &[u8], cuts: &[usize]| {
        for seg in segments(ends, port, h, cuts) {
            s.run(&seg);
        }
    };
    let segs = segments(ends, (45500, 443), &pool, &[536, 1072]);
    s.run(&segs[0]);
    assert_eq!(held(&s), (1, 0, 1));
    s.run(&segs[1]);
    // Joined, cut again, held again.
    assert_eq!(held(&s), (2, 1, 1));
    assert_eq!(s.k.suspect_cell(R, DIR_FROM, sni).unwrap(), 0);
    s.run(&segs[2]);
    assert_eq!(s.k.suspect_cell(R, DIR_FROM, sni).unwrap(), 1);
    assert_eq!(held(&s), (2, 2, 0));
    run_all(&mut s, (45501, 443), &pool, &[536, 1340]);
    assert_eq!(s.k.suspect_cell(R, DIR_FROM, sni).unwrap(), 2);
    run_all(&mut s, (45502, 443), &pool, &[20, 556]);
    assert_eq!(s.k.suspect_cell(R, DIR_FROM, sni).unwrap(), 3);
    run_all(&mut s, (45503, 443), &pool, &[400, 800, 1200]);
    assert_eq!(s.k.suspect_cell(R, DIR_FROM, sni).unwrap(), 3);
    let other = pq_hello(0x11, Some("www.example.org"));
    run_all(&mut s, (45504, 443), &other, &[536, 1072]);
    assert_eq!(s.k.suspect_cell(R, DIR_FROM, sni).unwrap(), 3);
    let plain = pq_hello(0x11, None);
    assert_eq!(plain.len(), NAME_EXT);
    run_all(&mut s, (45505, 14433), &plain, &[20, 60]);
    assert_eq!(s.k.suspect_cell(R, DIR_FROM, no_sni).unwrap(), 1);
    assert_eq!(held(&s), (12, 12, 0));
    // The name first (its extension at 92..117), then the key share: 0..20 and 20..60 held
    // whole, the third (60..200) completes the name long before the extensions end (1,349):
    // decided there, the fourth not looked at.
    let name_first = client_hello_with(&[
        (0, {
            let mut d = vec![0, 19, 0, 0, 16];
            d.extend_from_slice(POOL_NAME_BYTES);
            d
        }),
        (10, vec![0, 2, 0, 29]),
        (51, vec![0x11; 1220]),
    ]);
    run_all(&mut s, (45506, 443), &name_first, &[20, 60, 200]);
    assert_eq!(s.k.suspect_cell(R, DIR_FROM, sni).unwrap(), 4);
    assert_eq!(held(&s), (14, 14, 0));
    assert_eq!(s.all_stratum(), 0);
}

/// Over three segments, out of sequence: the third before the second waits; the second joins
/// and is held again; the second once more (retransmitted) waits; the third, sent again,
/// decides.
#[test]
fn a_three_segment_client_hello_out_of_sequence() {
    let mut s = Sensor::watching_c(HELLO_POOLS);
    let sni = Reason::TlsPoolSni as usize;
    let ends = (ip("192.0.2.9"), ip("203.0.113.50"));
    let pool = pq_hello(0x11, Some("xmr.pool.example"));
    let segs = segments(ends, (45600, 443), &pool, &[536, 1072]);
    for (i, want) in [
        (0, (1, 0, 1)),
        (2, (1, 0, 1)),
        (1, (2, 1, 1)),
        (1, (2, 1, 1)),
    ] {
        s.run(&segs[i]);
        assert_eq!(held(&s), want, "segment {i}");
        assert_eq!(s.k.suspect_cell(R, DIR_FROM, sni).unwrap(), 0);
    }
    s.run(&segs[2]);
    assert_eq!(s.k.suspect_cell(R, DIR_FROM, sni).unwrap(), 1);
    assert_eq!(held(&s), (2, 2, 0));
}
