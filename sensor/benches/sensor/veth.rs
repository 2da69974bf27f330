//! veth throughput with and without the sensor, the traffic from a BPF_F_TEST_XDP_LIVE_FRAMES
//! generator in a namespace of its own.

use std::{
    net::Ipv4Addr,
    os::fd::AsRawFd,
    process::Command,
    time::{Duration, Instant},
};

use mining_sensor::{bpf::Kernel, config::Config};
use test_support::Packet;

use crate::{Opts, median};

pub(crate) fn sh(args: &[&str]) {
    let s = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        s.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&s.stderr)
    );
}

pub(crate) fn enter(ns: &str) {
    let f = std::fs::File::open(format!("/var/run/netns/{ns}")).unwrap();
    // SAFETY: valid fd; affects this thread only.
    assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
}

pub(crate) fn rx_packets(ns: &str, dev: &str) -> u64 {
    let out = Command::new("ip")
        .args(["-n", ns, "-s", "link", "show", "dev", dev])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if l.trim_start().starts_with("RX:") {
            let v = lines.next().unwrap();
            return v.split_whitespace().nth(1).unwrap().parse().unwrap();
        }
    }
    panic!("no RX statistics for {dev}: {text}");
}

/// Received packets per second on `vr` while a generator in `tx` sends for `secs`: the object's
/// `bench_tx` program run with BPF_F_TEST_XDP_LIVE_FRAMES on `vt`, which hands each frame to `vr`
/// as an XDP frame (100,000 per call, calls until the time is up).
pub(crate) fn veth_pps(tx: &str, rx: &str, frame: Vec<u8>, secs: f64) -> f64 {
    let before = rx_packets(rx, "vr");
    let tx = tx.to_string();
    let start = Instant::now();
    std::thread::spawn(move || {
        enter(&tx);
        let mut k = Kernel::load(&Config::embedded_default()).unwrap();
        let ifindex = mining_sensor::bpf::ifindex("vt").unwrap();
        // Bounded by time: the loop stops itself.
        let end = Instant::now() + Duration::from_secs_f64(secs);
        while Instant::now() < end {
            k.transmit_live(&frame, 100_000, ifindex).unwrap();
        }
    })
    .join()
    .unwrap();
    // Let the receiver drain its queue.
    std::thread::sleep(Duration::from_millis(200));
    let elapsed = start.elapsed().as_secs_f64() - 0.2;
    (rx_packets(rx, "vr") - before) as f64 / elapsed
}

/// What the receiving namespace runs on its veth during a measurement.
#[derive(Clone, Copy)]
pub(crate) enum Rx {
    Nothing,
    Sensor,
    XdpPass,
}

pub(crate) fn veth_ratio(o: &Opts) -> (f64, f64, f64, f64) {
    let id = std::process::id();
    let (tx, rx) = (format!("msb-tx-{id}"), format!("msb-rx-{id}"));
    for ns in [&tx, &rx] {
        let _ = Command::new("ip").args(["netns", "del", ns]).output();
        sh(&["ip", "netns", "add", ns]);
    }
    sh(&[
        "ip", "link", "add", "vt", "netns", &tx, "type", "veth", "peer", "name", "vr", "netns", &rx,
    ]);
    sh(&["ip", "-n", &tx, "addr", "add", "198.18.9.1/24", "dev", "vt"]);
    sh(&["ip", "-n", &rx, "addr", "add", "198.18.9.2/24", "dev", "vr"]);
    sh(&["ip", "-n", &tx, "link", "set", "vt", "up"]);
    sh(&["ip", "-n", &rx, "link", "set", "vr", "up"]);
    // XDP frames sent to a veth are taken by its NAPI ring, which exists while an XDP program is
    // attached or GRO is on: without GRO, the no-program case would drop them all. On in every
    // mode, so that the three differ only by the program.
    sh(&[
        "ip", "netns", "exec", &rx, "ethtool", "-K", "vr", "gro", "on",
    ]);
    let rx_mac_text = String::from_utf8_lossy(
        &Command::new("ip")
            .args(["-n", &rx, "-br", "link", "show", "vr"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    let rx_mac: Vec<u8> = rx_mac_text
        .split_whitespace()
        .nth(2)
        .unwrap()
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect();
    let mut frame = Packet::udp4(
        Ipv4Addr::new(198, 18, 9, 1),
        Ipv4Addr::new(198, 18, 9, 2),
        40000,
        9,
        &[0u8; 18],
    )
    .build();
    frame[..6].copy_from_slice(&rx_mac);
    let secs = if o.quick { 1.0 } else { 3.0 };
    let runs = if o.quick { 3 } else { 5 };
    let mut without = Vec::new();
    let mut with = Vec::new();
    let rx2 = rx.clone();
    // The sensor lives in a thread inside the receiving namespace (attach resolves names there).
    let (cmd_tx, cmd_rx) = std::sync::mpsc::channel::<Rx>();
    let (ack_tx, ack_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        enter(&rx2);
        let cfg = Config::embedded_default();
        let mut k = Kernel::load_with_ranges(&cfg).unwrap();
        let ifindex = mining_sensor::bpf::ifindex("vr").unwrap();
        k.set_iface_slot(ifindex, 1).unwrap();
        let mut sensor = None;
        let mut pass = None;
        while let Ok(rx) = cmd_rx.recv() {
            if let Some(l) = sensor.take() {
                k.detach(l).unwrap();
            }
            if let Some(l) = pass.take() {
                k.detach_baseline(l).unwrap();
            }
            match rx {
                Rx::Nothing => {}
                Rx::Sensor => {
                    sensor = Some(
                        k.attach("vr", mining_sensor::config::XdpModeChoice::Native)
                            .unwrap()
                            .0,
                    )
                }
                Rx::XdpPass => pass = Some(k.attach_baseline("vr").unwrap()),
            }
            ack_tx.send(()).unwrap();
        }
    });
    let mut pass = Vec::new();
    for _ in 0..runs {
        for (mode, out) in [
            (Rx::Nothing, &mut without),
            (Rx::Sensor, &mut with),
            (Rx::XdpPass, &mut pass),
        ] {
            cmd_tx.send(mode).unwrap();
            ack_rx.recv().unwrap();
            out.push(veth_pps(&tx, &rx, frame.clone(), secs));
        }
    }
    cmd_tx.send(Rx::Nothing).unwrap();
    ack_rx.recv().unwrap();
    drop(cmd_tx);
    holder.join().unwrap();
    for ns in [&tx, &rx] {
        let _ = Command::new("ip").args(["netns", "del", ns]).output();
    }
    let (w, wo) = (median(with), median(without));
    (w / wo, w, wo, median(pass))
}
