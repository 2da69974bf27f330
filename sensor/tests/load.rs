//! The metrics endpoint under load: wrk hammers `/metrics` for a bounded three seconds inside a
//! namespace this test creates, while the sensor must answer every request and keep draining on
//! its interval. Needs root, iproute2 and wrk.

mod common;

use std::{process::Command, thread, time::Duration};

use common::{Namespaces, get, http_get, samples, spawn_sensor};

const PORT: u16 = 19823;

#[test]
fn metrics_endpoint_under_load_keeps_answering_and_draining() {
    let id = std::process::id();
    let ns = format!("msl-{id}");
    let dir = std::env::temp_dir().join(format!("msl-{id}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("sensor.toml"),
        "drain_interval = \"200ms\"\n[[ranges]]\nname = \"x\"\ncidrs = [\"192.0.2.0/24\"]\n",
    )
    .unwrap();
    let namespaces = Namespaces::new(&[&ns]);
    let log = dir.join("sensor.log");
    let listen = format!("127.0.0.1:{PORT}");
    let mut sensor = spawn_sensor(
        &ns,
        &dir.join("sensor.toml"),
        &[
            "--iface",
            "lo",
            "--xdp-mode",
            "generic",
            "--listen",
            &listen,
        ],
        &log,
        "info",
    );
    let drains = || {
        let s = samples(&http_get(&ns, PORT, "/metrics"));
        get(&s, "mining_sensor_drain_duration_seconds_count", &[])
    };
    let mut ready = false;
    for _ in 0..100 {
        if http_get(&ns, PORT, "/metrics").contains("mining_sensor_drain_duration_seconds_count") {
            ready = true;
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    assert!(ready, "{}", std::fs::read_to_string(&log).unwrap());

    let before = drains();
    let secs = 3;
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns,
            "wrk",
            "-t2",
            "-c16",
            &format!("-d{secs}s"),
            "--timeout",
            "2s",
        ])
        .arg(format!("http://127.0.0.1:{PORT}/metrics"))
        .output()
        .expect("wrk (cargo xtask setup installs it)");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = drains();

    let requests: u64 = report
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(requests > 300, "{report}");
    assert!(!report.contains("Non-2xx"), "{report}");
    assert!(!report.contains("Socket errors"), "{report}");
    // A drain every 200 ms: at least 70% of the 15 a 3-second window holds, under full load.
    let expected = secs as f64 / 0.2;
    assert!(
        after - before >= 0.7 * expected,
        "{} drains in {secs}s under load; {report}",
        after - before
    );
    assert!(
        sensor.0.try_wait().unwrap().is_none(),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );

    // SAFETY: signalling our own child.
    unsafe { libc::kill(sensor.0.id() as i32, libc::SIGTERM) };
    assert_eq!(sensor.0.wait().unwrap().code(), Some(0));
    drop(namespaces);
    let _ = std::fs::remove_dir_all(&dir);
}
