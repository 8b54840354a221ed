//! The CEF security event log is written however it is configured: flag
//! (`--security-event-log`), upstream environment variable
//! (`TRAFFIC_CONTROLLER_SECURITY_EVENT_LOG`) or TOML key (hardening issue,
//! item 6). Runs the real binary, makes one request, reads the file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use plumbing::logline::LineWatcher;

const BIN: &str = env!("CARGO_BIN_EXE_loggregator");

enum Way {
    Flag,
    Env,
    Toml,
}

fn written_by(way: Way) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("security.log");
    let mut cmd = Command::new(BIN);
    cmd.args([
        "traffic-controller",
        "--auth",
        "none",
        "--ws-addr",
        "127.0.0.1:0",
        "--gateway-addr",
        "off",
        "--admin-addr",
        "127.0.0.1:0",
    ])
    .env_remove("TRAFFIC_CONTROLLER_SECURITY_EVENT_LOG")
    .env_remove("RUST_LOG")
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    match way {
        Way::Flag => {
            cmd.arg("--security-event-log").arg(&log);
        }
        Way::Env => {
            cmd.env("TRAFFIC_CONTROLLER_SECURITY_EVENT_LOG", &log);
        }
        Way::Toml => {
            let toml = dir.path().join("tc.toml");
            std::fs::write(
                &toml,
                format!("security_event_log = {:?}\n", log.display().to_string()),
            )
            .unwrap();
            cmd.arg("--config").arg(&toml);
        }
    }
    let mut child = cmd.spawn().expect("spawn loggregator traffic-controller");
    let mut lines = LineWatcher::spawn(child.stderr.take().unwrap());
    let started = lines.wait_for(&["ws bound to: "], Duration::from_secs(20));
    let addr = lines
        .find("ws bound to: ")
        .and_then(|l| l.rsplit("ws bound to: ").next())
        .map(|a| a.trim().to_owned());
    let outcome = started.map_err(|e| format!("{e:?}")).and_then(|()| {
        let addr = addr.ok_or("no address")?;
        let mut s = std::net::TcpStream::connect(&addr).map_err(|e| e.to_string())?;
        s.write_all(b"GET /nope?probe=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .map_err(|e| e.to_string())?;
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        Ok(wait_for_line(&log))
    });
    let _ = child.kill();
    let _ = child.wait();
    let line = outcome.expect("traffic controller started and answered");
    let line = line.unwrap_or_else(|| panic!("no CEF line in {}", log.display()));
    assert!(
        line.starts_with(
            "CEF:0|cloud_foundry|loggregator_trafficcontroller|1.0|GET /nope|GET /nope|0|"
        ),
        "{line}"
    );
    assert!(line.contains(r"request=/nope?probe\=1"), "{line}");
}

fn wait_for_line(path: &Path) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Some(line) = text.lines().find(|l| l.starts_with("CEF:0|"))
        {
            return Some(line.to_owned());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[test]
fn written_when_set_by_flag() {
    written_by(Way::Flag);
}

#[test]
fn written_when_set_by_environment() {
    written_by(Way::Env);
}

#[test]
fn written_when_set_in_the_toml_file() {
    written_by(Way::Toml);
}
