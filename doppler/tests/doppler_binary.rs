//! The standalone `doppler` binary as an operator runs it: upstream
//! environment only, startup lines on stderr, non-zero exit on bad config,
//! graceful exit on SIGTERM.
#![allow(clippy::unwrap_used, missing_docs)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use envelope_proto::loggregator_v2::{EnvelopeBatch, ingress_client::IngressClient};
use plumbing::logline::LineWatcher;
use plumbing::tls::dev::DevPki;

fn doppler() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_doppler"));
    c.env_clear()
        .arg("--admin-addr")
        .arg("127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn tls_env(c: &mut Command, pki: &DevPki) {
    let f = pki.files("doppler");
    c.env("ROUTER_CA_FILE", f.ca.unwrap())
        .env("ROUTER_CERT_FILE", f.cert)
        .env("ROUTER_KEY_FILE", f.key);
}

fn run_to_end(mut c: Command) -> (i32, String, String) {
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn missing_tls_files_fail_with_upstream_messages() {
    let (code, stdout, stderr) = run_to_end(doppler());
    assert_ne!(code, 0);
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("Unable to parse config: invalid router config, no GRPC.CAFile provided"),
        "{stderr}"
    );
    let mut c = doppler();
    c.env("ROUTER_CA_FILE", "/ca").env("ROUTER_CERT_FILE", "");
    let (code, _, stderr) = run_to_end(c);
    assert_ne!(code, 0);
    assert!(stderr.contains("no GRPC.CertFile provided"), "{stderr}");
}

#[test]
fn bad_numbers_and_sizes_fail() {
    let dir = tempfile::tempdir().unwrap();
    let pki = DevPki::generate(dir.path()).unwrap();
    for (var, val, want) in [
        (
            "ROUTER_PORT",
            "abc",
            "strconv.ParseUint: parsing \"abc\": invalid syntax",
        ),
        (
            "INGRESS_BUFFER_SIZE",
            "0",
            "INGRESS_BUFFER_SIZE must be greater than 0",
        ),
        (
            "EGRESS_BUFFER_SIZE",
            "0",
            "EGRESS_BUFFER_SIZE must be greater than 0",
        ),
        (
            "ROUTER_CIPHER_SUITES",
            "BOGUS",
            "no valid ciphers provided for TLS configuration",
        ),
    ] {
        let mut c = doppler();
        tls_env(&mut c, &pki);
        c.env(var, val);
        let (code, _, stderr) = run_to_end(c);
        assert_ne!(code, 0, "{var}={val}");
        assert!(stderr.contains(want), "{var}={val}: {stderr}");
    }
    let mut c = doppler();
    c.env("ROUTER_CA_FILE", "/nonexistent/ca.crt")
        .env("ROUTER_CERT_FILE", "/nonexistent/c.crt")
        .env("ROUTER_KEY_FILE", "/nonexistent/c.key");
    let (code, _, stderr) = run_to_end(c);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("Could not use GRPC creds for server"),
        "{stderr}"
    );
}

#[tokio::test]
async fn starts_with_upstream_env_prints_lines_serves_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let pki = DevPki::generate(dir.path()).unwrap();
    let mut c = doppler();
    tls_env(&mut c, &pki);
    // Every upstream variable, including zero and empty values.
    c.env("ROUTER_PORT", "0")
        .env("ROUTER_PPROF_PORT", "0")
        .env(
            "ROUTER_CIPHER_SUITES",
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        )
        .env("INGRESS_BUFFER_SIZE", "10000")
        .env("EGRESS_BUFFER_SIZE", "1000")
        .env("USE_RFC339", "false")
        .env("AGENT_GRPC_ADDRESS", "127.0.0.1:0")
        .env("ROUTER_METRIC_BATCH_INTERVAL_MILLISECONDS", "10")
        .env("ROUTER_METRIC_SOURCE_ID", "");
    let mut child = c.spawn().unwrap();
    let mut lines = LineWatcher::spawn(child.stderr.take().unwrap());
    let wanted = [
        "Startup: Setting up the router server",
        "grpc bound to: [::]:",
        "Startup: router server started.",
        "MessageRouter:Starting",
        "Starting gRPC server on [::]:",
        "pprof bound to: 127.0.0.1:",
    ];
    if let Err(e) = lines.wait_for(&wanted, Duration::from_secs(20)) {
        panic!("startup lines: {e}");
    }
    // Go log prefix: `2006/01/02 15:04:05.000000 `
    let first = lines.find("Startup: Setting up").unwrap();
    assert_eq!(&first[4..5], "/", "{first}");
    let grpc_line = lines.find("grpc bound to: ").unwrap();
    let port: u16 = grpc_line
        .rsplit(':')
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();

    // The announced port serves mTLS gRPC.
    let cfg = plumbing::tls::client_config(&pki.files("client")).unwrap();
    let ch =
        plumbing::tls::grpc::channel(&format!("127.0.0.1:{port}"), Some((cfg, "doppler"))).unwrap();
    IngressClient::new(ch)
        .batch_sender(futures::stream::iter(vec![EnvelopeBatch::default()]))
        .await
        .unwrap();

    // pprof port is a localhost listener answering 404.
    let pprof = lines.find("pprof bound to: ").unwrap();
    let pport: u16 = pprof.rsplit(':').next().unwrap().trim().parse().unwrap();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", pport)).unwrap();
    use std::io::{Read, Write};
    s.write_all(b"GET /debug/pprof/ HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    assert!(resp.starts_with("HTTP/1.1 404"), "{resp}");

    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success(), "graceful exit: {st:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "doppler did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(out.is_empty(), "stdout stays empty: {out}");
}
