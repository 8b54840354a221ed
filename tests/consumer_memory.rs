//! Memory per idle consumer follows what is buffered, not the ring capacity (hardening issue 12,
//! item 2).
//!
//! The components run as child processes of the built `loggregator` binary (`LOGGREGATOR_BIN`
//! overrides it, e.g. with a release build for the figures in docs/backpressure.md), so their
//! resident set (`/proc/<pid>/status` `VmRSS`) is measured apart from the clients. The clients
//! hold raw sockets and read nothing after the response headers: an idle consumer.
//!
//! - 2000 idle WebSocket consumers, or 2000 idle `/v2/read` streams: the traffic controller
//!   stays under 100 MiB.
//! - 2000 idle v2 subscriptions on a doppler (100 per connection, as traffic controllers
//!   multiplex them): under 100 MiB, and a second round after they left reuses the memory of
//!   the first (nothing is kept per subscription).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use envelope_proto::loggregator_v2::{
    EgressBatchRequest, Selector, egress_client::EgressClient, selector::Message as Sel,
};
use futures::StreamExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const CONSUMERS: usize = 2000;
const MIB: u64 = 1024 * 1024;
/// The bound for 2000 idle consumers of one kind: 100 MiB of RSS, of which a release
/// build uses ~15 MiB before any consumer. Asserted on the growth, so a debug build (larger
/// code, ~27 MiB at start) is held to the same per-consumer budget (~44 kB).
const BOUND: u64 = 100 * MIB - 15 * MIB;

fn binary() -> PathBuf {
    std::env::var_os("LOGGREGATOR_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_loggregator")))
}

/// A component child process; killed when dropped.
struct Proc {
    name: &'static str,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    fn spawn(name: &'static str, args: &[&str], env: &[(&str, String)]) -> Proc {
        let mut cmd = Command::new(binary());
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn loggregator");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                if l.len() < 10_000 {
                    l.push(line);
                }
            }
        });
        Proc { name, child, lines }
    }

    /// Waits for `<what> bound to: <addr>` and returns `127.0.0.1:<port>`.
    fn bound(&mut self, what: &str) -> String {
        let needle = format!("{what} bound to: ");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let found = self.lines.lock().unwrap().iter().find_map(|l| {
                l.split_once(&needle)
                    .map(|(_, a)| a.trim().rsplit_once(':').unwrap().1.to_owned())
            });
            if let Some(port) = found {
                return format!("127.0.0.1:{port}");
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited ({status}): {:?}", self.name, self.lines);
            }
            assert!(
                Instant::now() < deadline,
                "{} never bound {what}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Resident set size in bytes.
    fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .expect("VmRSS")
            * 1024
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Pki {
    _dir: tempfile::TempDir,
    pki: plumbing::tls::dev::DevPki,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let pki = plumbing::tls::dev::DevPki::generate(dir.path()).unwrap();
        Pki { _dir: dir, pki }
    }

    fn env(&self, name: &str, prefix: &str) -> Vec<(String, String)> {
        let f = self.pki.files(name);
        let s = |p: &std::path::Path| p.display().to_string();
        vec![
            (format!("{prefix}_CA_FILE"), s(f.ca.as_deref().unwrap())),
            (format!("{prefix}_CERT_FILE"), s(&f.cert)),
            (format!("{prefix}_KEY_FILE"), s(&f.key)),
        ]
    }
}

fn env_refs(v: &[(String, String)]) -> Vec<(&str, String)> {
    v.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()
}

/// A doppler child with its gRPC and metrics addresses.
fn start_doppler(pki: &Pki) -> (Proc, String, String) {
    let tls = pki.env("doppler", "ROUTER");
    let mut env = env_refs(&tls);
    env.push(("ROUTER_PORT", "0".into()));
    env.push(("ROUTER_PPROF_PORT", "0".into()));
    let mut p = Proc::spawn("doppler", &["doppler", "--admin-addr", "127.0.0.1:0"], &env);
    let grpc = p.bound("grpc");
    let metrics = p.bound("metrics");
    (p, grpc, metrics)
}

/// The value of the first sample of `name` on a `/metrics` page.
async fn scrape(addr: &str, name: &str) -> Option<f64> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).await.ok()?;
    body.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?;
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            return None;
        }
        rest.rsplit(' ').next()?.parse().ok()
    })
}

/// Waits until gauge `name` on `addr` equals `want`.
async fn wait_gauge(addr: &str, name: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let got = scrape(addr, name).await;
        if got == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} on {addr} is {got:?}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends `request` and reads the response headers; returns the socket and the status line.
async fn open(addr: &str, request: String) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request.as_bytes())
        .await
        .expect("write request");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).await.expect("read headers");
        assert!(
            n > 0,
            "closed before headers: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let status = head.lines().next().unwrap_or_default().to_owned();
    (s, status)
}

/// Opens `n` idle consumers with `request(i)`, 32 at a time; each must get `status`.
async fn open_many(
    addr: &str,
    n: usize,
    status: &str,
    request: &dyn Fn(usize) -> String,
) -> Vec<TcpStream> {
    futures::stream::iter((0..n).map(|i| open(addr, request(i))))
        .buffer_unordered(32)
        .map(|(s, line)| {
            assert!(line.contains(status), "unexpected response: {line}");
            s
        })
        .collect()
        .await
}

fn raise_fd_limit() {
    // 2000 consumers × (client + server end) plus the components' own descriptors; the
    // children inherit the limit.
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let want = limit.maximum.map_or(65_536, |hard| hard.min(65_536));
    if limit.current.is_some_and(|soft| soft < want) {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(want),
                maximum: limit.maximum,
            },
        );
    }
}

fn report(what: &str, baseline: u64, loaded: u64) {
    eprintln!(
        "{what}: baseline {:.1} MiB, with {CONSUMERS} idle consumers {:.1} MiB ({:.1} kB each)",
        baseline as f64 / MIB as f64,
        loaded as f64 / MIB as f64,
        loaded.saturating_sub(baseline) as f64 / CONSUMERS as f64 / 1000.0
    );
}

/// Which consumers a traffic-controller test opens.
#[derive(Clone, Copy, PartialEq)]
enum Consumer {
    WebSocket,
    Sse,
}

/// Starts a doppler and a traffic controller, opens 2000 idle consumers of `kind`; returns the
/// controller's RSS before and with them.
async fn traffic_controller_with_idle(kind: Consumer) -> (u64, u64) {
    raise_fd_limit();
    let pki = Pki::new();
    let (_doppler, doppler_grpc, _) = start_doppler(&pki);
    let tls = pki.env("trafficcontroller", "ROUTER");
    let mut env = env_refs(&tls);
    env.extend([
        ("TRAFFIC_CONTROLLER_OUTGOING_DROPSONDE_PORT", "0".into()),
        ("TRAFFIC_CONTROLLER_PPROF_PORT", "0".into()),
        ("TRAFFIC_CONTROLLER_DISABLE_ACCESS_CONTROL", "true".into()),
        ("TRAFFIC_CONTROLLER_METRIC_EMITTER_INTERVAL", "0s".into()),
        ("GATEWAY_ADDR", "127.0.0.1:0".into()),
        ("ROUTER_ADDRS", doppler_grpc),
    ]);
    let limit = (CONSUMERS + 100).to_string();
    let mut tc = Proc::spawn(
        "traffic-controller",
        &["traffic-controller", "--connection-limit", &limit],
        &env,
    );
    let (addr, request, status, gauge): (String, Box<dyn Fn(usize) -> String>, _, _) = match kind {
        Consumer::WebSocket => (
            tc.bound("ws"),
            Box::new(|i| {
                format!(
                    "GET /apps/{i:08}-0000-0000-0000-000000000000/stream HTTP/1.1\r\n\
                     Host: tc\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                     Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
                )
            }),
            " 101 ",
            "doppler_proxy_app_streams",
        ),
        Consumer::Sse => (
            tc.bound("http"),
            Box::new(|i| {
                format!("GET /v2/read?log&source_id=idle-{i} HTTP/1.1\r\nHost: tc\r\n\r\n")
            }),
            " 200 ",
            "doppler_proxy_v2_read_streams",
        ),
    };
    let admin = tc.bound("pprof");

    // Warm up (the first connections size the runtime's and the allocator's caches).
    let warm = open_many(&addr, 40, status, &request).await;
    wait_gauge(&admin, "doppler_proxy_doppler_streams", 40.0).await;
    drop(warm);
    wait_gauge(&admin, "doppler_proxy_doppler_streams", 0.0).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline = tc.rss();

    let consumers = open_many(&addr, CONSUMERS, status, &request).await;
    wait_gauge(&admin, gauge, CONSUMERS as f64).await;
    wait_gauge(&admin, "doppler_proxy_doppler_streams", CONSUMERS as f64).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let loaded = tc.rss();
    drop(consumers);
    (baseline, loaded)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_websocket_consumers_cost_what_they_buffer() {
    let (baseline, loaded) = traffic_controller_with_idle(Consumer::WebSocket).await;
    report("traffic controller, WebSocket", baseline, loaded);
    assert!(
        loaded.saturating_sub(baseline) <= BOUND,
        "2000 idle WebSockets: traffic controller RSS grew {baseline} -> {loaded} (> {BOUND})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sse_streams_cost_what_they_buffer() {
    let (baseline, loaded) = traffic_controller_with_idle(Consumer::Sse).await;
    report("traffic controller, /v2/read", baseline, loaded);
    assert!(
        loaded.saturating_sub(baseline) <= BOUND,
        "2000 idle /v2/read streams: traffic controller RSS grew {baseline} -> {loaded} (> {BOUND})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_doppler_subscriptions_cost_what_they_buffer_and_memory_is_reused() {
    raise_fd_limit();
    let pki = Pki::new();
    let (doppler, grpc, metrics) = start_doppler(&pki);
    let tls = plumbing::tls::client_config(&pki.pki.files("trafficcontroller")).unwrap();
    // Subscriptions share connections as traffic controllers' do (one per controller and
    // doppler): 100 subscriptions on each of 20 connections.
    let channels: Vec<_> = (0..CONSUMERS / 100)
        .map(|_| plumbing::tls::grpc::channel(&grpc, Some((tls.clone(), "doppler"))).unwrap())
        .collect();
    let subscribe = |i: usize| {
        let channel = channels[i % channels.len()].clone();
        async move {
            let request = EgressBatchRequest {
                shard_id: format!("idle-{i}"),
                selectors: vec![Selector {
                    source_id: format!("idle-source-{i}"),
                    message: Some(Sel::Log(Default::default())),
                }],
                ..Default::default()
            };
            EgressClient::new(channel)
                .batched_receiver(request)
                .await
                .expect("subscribe")
                .into_inner()
        }
    };
    let open = |n: usize| {
        futures::stream::iter((0..n).map(subscribe))
            .buffer_unordered(32)
            .collect::<Vec<_>>()
    };

    let warm = open(40).await;
    wait_gauge(&metrics, "subscriptions", 40.0).await;
    drop(warm);
    wait_gauge(&metrics, "subscriptions", 0.0).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline = doppler.rss();

    let subs = open(CONSUMERS).await;
    wait_gauge(&metrics, "subscriptions", CONSUMERS as f64).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let loaded = doppler.rss();
    report("doppler, v2 subscriptions", baseline, loaded);
    drop(subs);
    wait_gauge(&metrics, "subscriptions", 0.0).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = doppler.rss();
    // A second round reuses what the first freed: nothing is kept per subscription.
    let subs = open(CONSUMERS).await;
    wait_gauge(&metrics, "subscriptions", CONSUMERS as f64).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = doppler.rss();
    drop(subs);
    eprintln!(
        "doppler: {:.1} MiB after they left, {:.1} MiB with 2000 new ones",
        after as f64 / MIB as f64,
        again as f64 / MIB as f64
    );
    assert!(
        loaded.saturating_sub(baseline) <= BOUND,
        "2000 idle subscriptions: doppler RSS grew {baseline} -> {loaded} (> {BOUND})"
    );
    assert!(
        again <= loaded + 5 * MIB,
        "a second round of 2000 subscriptions grew the doppler from {loaded} to {again}"
    );
}
