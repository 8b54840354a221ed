//! The `metron-agent` binary: upstream environment variables, startup lines
//! on stderr, admin endpoint, and configuration errors that name the
//! variable and exit non-zero.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use plumbing::logline::LineWatcher;
use plumbing::tls::dev::DevPki;

const BIN: &str = env!("CARGO_BIN_EXE_metron-agent");

fn base_env(pki: &DevPki) -> Vec<(&'static str, String)> {
    let f = pki.files("metron");
    vec![
        ("AGENT_CA_FILE", f.ca.clone().unwrap().display().to_string()),
        ("AGENT_CERT_FILE", f.cert.display().to_string()),
        ("AGENT_KEY_FILE", f.key.display().to_string()),
        ("ROUTER_ADDR", "127.0.0.1:1".to_owned()),
        ("AGENT_PORT", "0".to_owned()),
        ("AGENT_INCOMING_UDP_PORT", "0".to_owned()),
        ("METRICS_PORT", "0".to_owned()),
        (
            "AGENT_TAGS",
            "auto-tag-1:auto-tag-value-1,auto-tag-2:auto-tag-value-2".to_owned(),
        ),
        ("ROUTER_ADDR_WITH_AZ", ":8082".to_owned()),
        ("AGENT_METRIC_SOURCE_ID", String::new()),
    ]
}

fn run_to_exit(env: &[(&str, String)]) -> (i32, String) {
    let out = Command::new(BIN)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn missing_required_variables_exit_non_zero_naming_them() {
    let (code, stderr) = run_to_exit(&[]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("missing required environment variables: AGENT_CA_FILE, AGENT_CERT_FILE, AGENT_KEY_FILE, ROUTER_ADDR"),
        "{stderr}"
    );
}

#[test]
fn bad_values_exit_non_zero_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let pki = DevPki::generate(dir.path()).unwrap();
    for (var, value) in [
        ("AGENT_PORT", "abc"),
        ("AGENT_TAGS", "nocolon"),
        ("AGENT_CIPHER_SUITES", "RC4"),
    ] {
        let mut env = base_env(&pki);
        env.push((var, value.to_owned()));
        let (code, stderr) = run_to_exit(&env);
        assert_ne!(code, 0, "{var}");
        assert!(
            stderr.contains(var) || stderr.contains("no valid ciphers"),
            "{var}: {stderr}"
        );
    }
    let mut env = base_env(&pki);
    env.retain(|(k, _)| *k != "AGENT_CERT_FILE");
    env.push(("AGENT_CERT_FILE", "/does/not/exist.crt".to_owned()));
    let (code, stderr) = run_to_exit(&env);
    assert_ne!(code, 0);
    assert!(stderr.contains("/does/not/exist.crt"), "{stderr}");
}

#[test]
fn startup_lines_and_admin_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let pki = DevPki::generate(dir.path()).unwrap();
    let mut child = Command::new(BIN)
        .env_clear()
        .envs(base_env(&pki).iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = LineWatcher::spawn(child.stderr.take().unwrap());
    let wanted = [
        "starting loggregator-agent",
        "metrics bound to: ",
        "udp bound to: ",
        "grpc bound to: ",
        "agent v2 API started on addr 127.0.0.1:0",
        "failed to connect: ",
    ];
    if let Err(e) = lines.wait_for(&wanted, Duration::from_secs(20)) {
        panic!("startup lines: {e}");
    }
    let find = |prefix: &str| -> String {
        let l = lines.find(prefix).unwrap();
        l.split(prefix).nth(1).unwrap().trim().to_owned()
    };
    let grpc = find("grpc bound to: ");
    assert!(
        grpc.starts_with("127.0.0.1:") && !grpc.ends_with(":0"),
        "{grpc}"
    );
    let metrics = find("metrics bound to: ");
    let mut s = std::net::TcpStream::connect(&metrics).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    for m in [
        "doppler_v1_streams",
        "doppler_v2_streams",
        "doppler_connections",
        "ingress{metric_version=\"2.0\"}",
    ] {
        assert!(body.contains(m), "{m} missing from {body}");
    }
    child.kill().unwrap();
    let _ = child.wait();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(out, "", "stdout stays empty");
}
