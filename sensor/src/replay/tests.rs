//! Replay's unit tests: capture formats, merging in timestamp order, and the options it refuses.

use std::{io::Write as _, net::Ipv4Addr};

use flate2::{Compression, write::GzEncoder};
use pcap_file::{
    DataLink,
    pcapng::{
        PcapNgWriter,
        blocks::{
            enhanced_packet::EnhancedPacketBlock,
            interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption},
        },
    },
};

use super::*;
use test_support::Packet;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ms-replay-unit-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A distinct frame per (file, packet), so the merged order can be read back from the data.
fn packet(file: u16, n: u16) -> Packet {
    Packet::udp4(
        Ipv4Addr::new(192, 0, 2, 1),
        Ipv4Addr::new(198, 51, 100, 1),
        file,
        n,
        b"payload",
    )
}

fn pcap(link: DataLink, packets: &[(Duration, Vec<u8>)]) -> Vec<u8> {
    test_support::write_pcap(Vec::new(), link, packets.iter().map(|(t, d)| (*t, d))).unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(1_559_347_200.0 + s)
}

/// (file index, packet number in the file, seconds since the base time, UDP ports naming the
/// frame).
type Replayed = (usize, u64, f64, (u16, u16));

/// Replays `files` through `Merge` as `replay` does.
fn merged(files: &[PathBuf]) -> (Vec<Replayed>, Vec<FileReport>) {
    let consumed = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    let mut reports = Vec::new();
    let mut total = 0;
    for f in files {
        let (r, size) = open_capture(f, false, &consumed).unwrap();
        readers.push(ReadAhead::spawn(r).unwrap());
        total += size;
        reports.push(FileReport {
            file: f.display().to_string(),
            ..FileReport::default()
        });
    }
    let mut merge = Merge::new(readers, &mut reports).unwrap();
    let mut out = Vec::new();
    while let Some((f, n, frame)) = merge.next(&mut reports).unwrap() {
        let d = &frame.data;
        // Ethernet 14 + IPv4 20: the UDP ports.
        let ports = (
            u16::from_be_bytes([d[34], d[35]]),
            u16::from_be_bytes([d[36], d[37]]),
        );
        let t = (frame.ts - secs(0.0)).as_secs_f64();
        out.push((f, n, (t * 1000.0).round() / 1000.0, ports));
    }
    drop(merge);
    assert_eq!(
        consumed.load(Ordering::Relaxed),
        total,
        "every byte of every file was read"
    );
    (out, reports)
}

#[test]
fn files_merge_in_timestamp_order_streaming_every_format() {
    let dir = tmp("merge");
    // a.pcap: Ethernet, two packets with the same timestamp.
    let a = dir.join("a.pcap");
    let a_times = [1.0, 4.0, 4.0, 8.0];
    let frames: Vec<_> = a_times
        .iter()
        .enumerate()
        .map(|(i, t)| (secs(*t), packet(1, i as u16 + 1).build()))
        .collect();
    std::fs::write(&a, pcap(DataLink::ETHERNET, &frames)).unwrap();

    // b.pcap.gz: raw IP records, compressed as two gzip members split inside a record.
    let b = dir.join("b.pcap.gz");
    let frames: Vec<_> = [2.0, 4.0, 9.0]
        .iter()
        .enumerate()
        .map(|(i, t)| (secs(*t), packet(2, i as u16 + 1).ip_bytes()))
        .collect();
    let raw = pcap(DataLink::RAW, &frames);
    let (head, tail) = raw.split_at(raw.len() / 2 + 3);
    std::fs::write(&b, [gzip(head), gzip(tail)].concat()).unwrap();

    // c.pcapng: interface 0 Ethernet in nanoseconds, interface 1 Linux cooked v1 in the
    // default microseconds.
    let c = dir.join("c.pcapng");
    let mut w = PcapNgWriter::new(Vec::new()).unwrap();
    let mut idb = InterfaceDescriptionBlock::new(DataLink::ETHERNET, 0xffff);
    idb.options.push(InterfaceDescriptionOption::IfTsResol(9));
    w.write_pcapng_block(idb).unwrap();
    w.write_pcapng_block(InterfaceDescriptionBlock::new(DataLink::LINUX_SLL, 0xffff))
        .unwrap();
    // (interface, seconds, data): the writer takes the raw timestamp as "nanoseconds".
    let epbs = [
        (0u32, 3.0, packet(3, 1).build()),
        (0, 4.0, packet(3, 2).build()),
        (0, 4.5, packet(3, 3).build()),
        (1, 6.0, {
            let eth = packet(3, 4).build();
            let mut sll = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0];
            sll.extend_from_slice(&eth[12..]);
            sll
        }),
    ];
    for (iface, t, data) in &epbs {
        let units = (secs(*t).as_nanos() / if *iface == 0 { 1 } else { 1000 }) as u64;
        w.write_pcapng_block(EnhancedPacketBlock {
            interface_id: *iface,
            timestamp: Duration::from_nanos(units),
            original_len: data.len() as u32,
            data: data.as_slice().into(),
            options: vec![],
        })
        .unwrap();
    }
    std::fs::write(&c, w.into_inner()).unwrap();

    // d.pcap: its last record cut short.
    let d = dir.join("d.pcap");
    let frames: Vec<_> = [5.0, 6.0, 7.0]
        .iter()
        .enumerate()
        .map(|(i, t)| (secs(*t), packet(4, i as u16 + 1).build()))
        .collect();
    let raw = pcap(DataLink::ETHERNET, &frames);
    std::fs::write(&d, &raw[..raw.len() - 10]).unwrap();

    let (order, reports) = merged(&[a, b, c, d]);
    assert_eq!(
        order,
        [
            (0, 1, 1.0, (1, 1)),
            (1, 1, 2.0, (2, 1)),
            (2, 1, 3.0, (3, 1)),
            // Equal timestamps: file order, then record order.
            (0, 2, 4.0, (1, 2)),
            (0, 3, 4.0, (1, 3)),
            (1, 2, 4.0, (2, 2)),
            (2, 2, 4.0, (3, 2)),
            (2, 3, 4.5, (3, 3)),
            (3, 1, 5.0, (4, 1)),
            (2, 4, 6.0, (3, 4)),
            (3, 2, 6.0, (4, 2)),
            (0, 4, 8.0, (1, 4)),
            (1, 3, 9.0, (2, 3)),
        ]
    );
    let packets: Vec<u64> = reports.iter().map(|r| r.packets).collect();
    assert_eq!(packets, [4, 3, 4, 2]);
    assert!(reports[..3].iter().all(|r| r.problems.is_empty()));
    assert_eq!(reports[3].problems.len(), 1);
    assert!(
        reports[3].problems[0].starts_with("record 3: ")
            && reports[3].problems[0].ends_with("the rest of the file is unreadable"),
        "{:?}",
        reports[3].problems
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_file_out_of_order_replays_in_its_own_order() {
    let dir = tmp("unordered");
    let x = dir.join("x.pcap");
    let y = dir.join("y.pcap");
    let frame = |f, n, t| (secs(t), packet(f, n).build());
    std::fs::write(
        &x,
        pcap(DataLink::ETHERNET, &[frame(1, 1, 5.0), frame(1, 2, 1.0)]),
    )
    .unwrap();
    std::fs::write(&y, pcap(DataLink::ETHERNET, &[frame(2, 1, 3.0)])).unwrap();
    let (order, _) = merged(&[x, y]);
    assert_eq!(
        order,
        [
            (1, 1, 3.0, (2, 1)),
            (0, 1, 5.0, (1, 1)),
            (0, 2, 1.0, (1, 2))
        ]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cut_files_are_problems_and_strict_makes_them_errors() {
    let frames: Vec<_> = (1..=3)
        .map(|n| (secs(n as f64), packet(1, n).build()))
        .collect();
    let raw = pcap(DataLink::ETHERNET, &frames);
    let cut = raw[..raw.len() - 10].to_vec();

    let mut report = FileReport::default();
    let got = parse_capture("cut.pcap", cut.clone(), false, &mut report).unwrap();
    assert_eq!((got.len(), report.packets), (2, 2));
    assert!(report.problems[0].starts_with("record 3: "), "{report:?}");
    let err = parse_capture("cut.pcap", cut, true, &mut FileReport::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.starts_with("cut.pcap: record 3: ") && err.ends_with("(--strict)"),
        "{err}"
    );

    // Cut inside the compressed stream: what was decompressed is kept, gzip is named.
    let gz = gzip(&raw);
    let mut report = FileReport::default();
    let got = parse_capture(
        "cut.pcap.gz",
        gz[..gz.len() - 30].to_vec(),
        false,
        &mut report,
    )
    .unwrap();
    assert_eq!(got.len() as u64, report.packets);
    assert!(report.packets < 3);
    assert!(report.problems[0].contains("gzip"), "{report:?}");

    // Whole files still parse as before, gzip or not.
    for data in [raw.clone(), gzip(&raw)] {
        let mut report = FileReport::default();
        let got = parse_capture("ok.pcap", data, true, &mut report).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[2].data, frames[2].1);
        assert_eq!(got[2].ts, frames[2].0);
    }
    let err = parse_capture(
        "junk",
        b"\x1f\x8bjunk".to_vec(),
        false,
        &mut FileReport::default(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.starts_with("junk: gzip data is corrupt"), "{err}");
}

#[test]
fn a_zero_bucket_is_refused_naming_the_option() {
    let e = replay(ReplayOptions {
        config: None,
        files: vec![PathBuf::from("capture.pcap")],
        openmetrics: None,
        json: None,
        report: None,
        bucket: Duration::ZERO,
        strict: false,
        decapsulate: Vec::new(),
        utc_offset: Default::default(),
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("--bucket 0s") && e.contains("1h"), "{e}");
}

#[test]
fn shares_and_their_hashes_are_reported_in_every_output() {
    let metrics = Metrics::new();
    metrics
        .shares
        .with_label_values(&["kp", "monero", "accepted"])
        .inc_by(4);
    metrics
        .shares
        .with_label_values(&["kp", "monero", "rejected"])
        .inc();
    // A float counter: 50,000.75 hashes are reported as 50,000 (rounded down).
    metrics
        .share_hashes
        .with_label_values(&["kp", "monero"])
        .inc_by(50_000.75);
    metrics
        .shares_unknown_difficulty
        .with_label_values(&["kp", "monero"])
        .inc_by(2);
    // The one gauge replay reports: the rate miners report of themselves.
    metrics
        .reported_hashrate
        .with_label_values(&["kp", "ethereum"])
        .set(5.0);
    let totals = samples(&metrics.registry.gather());
    let value = |metric: &str, result: Option<&str>| {
        totals
            .iter()
            .find(|s| s.metric == metric && s.labels.get("result").map(String::as_str) == result)
            .map(|s| s.value)
    };
    assert_eq!(
        value(crate::metrics::names::SHARES, Some("accepted")),
        Some(4)
    );
    assert_eq!(
        value(crate::metrics::names::SHARES, Some("rejected")),
        Some(1)
    );
    assert_eq!(
        value(crate::metrics::names::SHARE_HASHES, None),
        Some(50_000)
    );
    assert_eq!(
        value(crate::metrics::names::SHARES_UNKNOWN_DIFFICULTY, None),
        Some(2)
    );
    assert_eq!(
        value(crate::metrics::names::REPORTED_HASHRATE, None),
        Some(5)
    );
    let report = Report {
        files: Vec::new(),
        bucket_seconds: 60.0,
        first_packet: Some(0.0),
        last_packet: Some(59.0),
        buckets: vec![Bucket {
            end: 60.0,
            samples: samples(&metrics.registry.gather()),
        }],
        totals,
        events: Vec::new(),
        activity: Vec::new(),
    };
    let text = summary(&report, Default::default());
    // The headline: 50,000 hashes over the 59 s from the first packet to the last are 847 H/s;
    // the one bucket spreads evenly over the period, a third in each third: ratio 1.0.
    assert!(
        text.starts_with(
            "kp: 1970-01-01 00:00 to 1970-01-01 00:00 UTC: mean hash rate 847 H/s (5 shares, 50.0 k hashes); hash rate 1.0×, new flows none in either"
        ),
        "{text}"
    );
    let rows: Vec<Vec<String>> = text
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect();
    for row in [
        "kp shares coin=monero result=accepted 4",
        "kp shares coin=monero result=rejected 1",
        "kp share hashes coin=monero 50000",
        "kp shares unknown difficulty coin=monero 2",
    ] {
        let row: Vec<String> = row.split(' ').map(str::to_string).collect();
        assert!(rows.contains(&row), "{row:?} not in {rows:?}");
    }
    let om = openmetrics(&report);
    assert!(om.contains(
        "mining_sensor_shares_total{coin=\"monero\",range=\"kp\",result=\"accepted\"} 4 60.000"
    ));
    assert!(
        om.contains("mining_sensor_share_hashes_total{coin=\"monero\",range=\"kp\"} 50000 60.000")
    );
    assert!(om.contains(
        "# TYPE mining_sensor_reported_hashrate gauge\nmining_sensor_reported_hashrate{coin=\"ethereum\",range=\"kp\"} 5 60.000"
    ));
}

#[test]
fn neighbour_counters_are_in_the_summary_and_openmetrics() {
    let metrics = Metrics::new();
    metrics
        .peer_packets
        .with_label_values(&["kp", "from", "transtelecom"])
        .inc_by(45);
    metrics
        .peer_bytes
        .with_label_values(&["kp", "from", "transtelecom"])
        .inc_by(4_500);
    metrics
        .peer_packets
        .with_label_values(&["kp", "from", "other"])
        .inc_by(55);
    let totals = samples(&metrics.registry.gather());
    let report = Report {
        files: Vec::new(),
        bucket_seconds: 60.0,
        first_packet: Some(0.0),
        last_packet: Some(59.0),
        buckets: vec![Bucket {
            end: 60.0,
            samples: samples(&metrics.registry.gather()),
        }],
        totals,
        events: Vec::new(),
        activity: Vec::new(),
    };
    let rows: Vec<Vec<String>> = summary(&report, Default::default())
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect();
    for row in [
        "kp peer packets from transtelecom 45",
        "kp peer bytes from transtelecom 4500",
        "kp peer packets from other 55",
    ] {
        let row: Vec<String> = row.split(' ').map(str::to_string).collect();
        assert!(rows.contains(&row), "{row:?} not in {rows:?}");
    }
    let om = openmetrics(&report);
    assert!(
        om.contains("# TYPE mining_sensor_peer_packets counter"),
        "{om}"
    );
    assert!(
        om.contains(
            "mining_sensor_peer_bytes_total{direction=\"from\",peer=\"transtelecom\",range=\"kp\"} 4500 60.000"
        ),
        "{om}"
    );
}

/// The sample ring holds a sample record per packet of the jobs in flight at its largest: a
/// whole copy (1,536 bytes) after the header (24) and the event of the flow its packet opened
/// (72), and 16 more, 1,648 bytes. Worked out by hand for 5 jobs of 256 packets: 2,109,440
/// bytes, so 4 MiB (2 MiB, sized for copies without an event, 1,576 bytes a record, holds 1,330
/// of the 1,280 copies but only 1,272 with their events). The event ring: at most one Stratum
/// flow event and one suspect event for each of the 6 reasons a packet, 88 bytes each: 788,480
/// bytes, so 1 MiB.
#[test]
fn the_rings_hold_what_the_jobs_in_flight_can_write() {
    assert_eq!(sensor_common::SAMPLE_OPENED_HEADER, 96);
    assert_eq!(sensor_common::Reason::COUNT, 6);
    assert_eq!(dispatch::ring_room(5), (4 << 20, 1 << 20));
}
