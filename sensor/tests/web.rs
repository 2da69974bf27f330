//! The metrics endpoint behind TLS and basic authentication, configured with an exporter-toolkit
//! style web configuration file. The sensor runs in a namespace of its own, attached to its
//! loopback in generic mode; curl is the client. Needs root, iproute2, openssl and curl.

mod common;

use std::{path::Path, process::Command, thread, time::Duration};

use common::{Namespaces, spawn_sensor};

const PORT: u16 = 19822;

fn curl(ns: &str, dir: &Path, args: &[&str]) -> (String, String) {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "curl",
            "-s",
            "--max-time",
            "5",
            "-w",
            "\n%{http_code}",
        ])
        .arg("--cacert")
        .arg(dir.join("tls.crt"))
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (body.to_string(), code.to_string())
}

#[test]
fn metrics_over_tls_with_basic_auth() {
    let id = std::process::id();
    let dir = std::env::temp_dir().join(format!("msw-{id}"));
    std::fs::create_dir_all(&dir).unwrap();
    common::self_signed(
        &dir.join("tls.crt"),
        &dir.join("tls.key"),
        "/CN=mining-sensor-test",
        &["-addext", "subjectAltName=IP:127.0.0.1"],
    );
    // Cost 4 keeps the test fast; deployments use 10 or more.
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    std::fs::write(
        dir.join("web.yml"),
        format!("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\nbasic_auth_users:\n  prometheus: {hash}\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("sensor.toml"),
        format!("listen = \"127.0.0.1:{PORT}\"\nweb_config = \"web.yml\"\n[[ranges]]\nname = \"x\"\ncidrs = [\"192.0.2.0/24\"]\n"),
    )
    .unwrap();

    let bin = env!("CARGO_BIN_EXE_mining-sensor");
    let ok = Command::new(bin)
        .arg("check-config")
        .arg(dir.join("sensor.toml"))
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let ns = format!("msw-{id}");
    let namespaces = Namespaces::new(&[&ns]);
    let log = dir.join("sensor.log");
    let mut sensor = spawn_sensor(
        &ns,
        &dir.join("sensor.toml"),
        &["--iface", "lo", "--xdp-mode", "generic"],
        &log,
        "info",
    );
    let url = format!("https://127.0.0.1:{PORT}/metrics");
    let mut up = false;
    for _ in 0..100 {
        if curl(&ns, &dir, &["-u", "prometheus:s3cret", &url]).1 == "200" {
            up = true;
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    assert!(up, "{}", std::fs::read_to_string(&log).unwrap());

    let (body, code) = curl(&ns, &dir, &["-u", "prometheus:s3cret", &url]);
    assert_eq!(code, "200");
    assert!(body.contains("mining_sensor_build_info"), "{body}");
    assert!(
        body.contains("mining_sensor_xdp_attached{iface=\"lo\",mode=\"generic\"} 1"),
        "{body}"
    );
    assert_eq!(curl(&ns, &dir, &["-u", "prometheus:wrong", &url]).1, "401");
    assert_eq!(curl(&ns, &dir, &["-u", "nobody:s3cret", &url]).1, "401");
    assert_eq!(curl(&ns, &dir, &[&url]).1, "401");
    // Plain HTTP gets no answer from a TLS endpoint.
    assert_ne!(
        curl(
            &ns,
            &dir,
            &[
                "-u",
                "prometheus:s3cret",
                &format!("http://127.0.0.1:{PORT}/metrics")
            ]
        )
        .1,
        "200"
    );

    // SAFETY: signalling our own child.
    unsafe { libc::kill(sensor.0.id() as i32, libc::SIGTERM) };
    assert_eq!(sensor.0.wait().unwrap().code(), Some(0));
    drop(namespaces);

    // Web configurations the sensor refuses, each with the field named.
    for (yaml, expect) in [
        (
            "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n  client_auth_type: RequireAndVerifyClientCert\n",
            "client_auth_type",
        ),
        (
            "basic_auth_users:\n  prometheus: plaintext\n",
            "basic_auth_users.prometheus: not a bcrypt hash",
        ),
        (
            "tls_server_config:\n  cert_file: missing.crt\n  key_file: tls.key\n",
            "cert_file",
        ),
    ] {
        std::fs::write(dir.join("web.yml"), yaml).unwrap();
        let out = Command::new(bin)
            .arg("check-config")
            .arg(dir.join("sensor.toml"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("web_config") && err.contains(expect),
            "{expect}: {err}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
