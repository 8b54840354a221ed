//! The syslog ingest server against real sockets and a real store: both
//! framings, every hostile-input rule of `log_cache::syslog`, TLS and mutual
//! TLS, the syslog agent's golden output (`fixtures/syslog/cases.json`)
//! parsed back into its envelopes, and a real rsyslog relaying it.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use envelope_proto::loggregator_v2::{Envelope, Gauge, envelope::Message};
use log_cache::ingest::LocalSink;
use log_cache::metrics::StoreMetrics;
use log_cache::read::decode_all;
use log_cache::store::{Limits, Query, Store, TypeSet};
use log_cache::syslog::{ParseError, SyslogConfig, SyslogMetrics, parse, serve};
use plumbing::metrics::Registry;
use plumbing::tls::dev::DevPki;
use prost::Message as _;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Generous: the machine is small and shared.
const DEADLINE: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------
// A server on loopback with a real store.

struct Server {
    addr: SocketAddr,
    store: Arc<Store>,
    registry: Registry,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

async fn start(config: SyslogConfig, tls: Option<Arc<rustls::ServerConfig>>) -> Server {
    let registry = Registry::new();
    let store = Arc::new(Store::new(
        Limits {
            memory_limit: 1 << 30,
            max_per_source: 100_000,
        },
        StoreMetrics::new(&registry),
    ));
    let sink = Arc::new(LocalSink::new(
        store.clone(),
        registry.counter("log_cache_ingress_dropped", "", &[("source", "invalid")]),
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cancel = CancellationToken::new();
    let metrics = SyslogMetrics::new(&registry);
    let task = tokio::spawn(serve(listener, tls, config, sink, metrics, cancel.clone()));
    Server {
        addr,
        store,
        registry,
        cancel,
        task,
    }
}

impl Server {
    fn counter(&self, name: &str) -> u64 {
        self.registry.counter_value(name, &[]).unwrap_or(0)
    }

    fn closed(&self, reason: &str) -> u64 {
        self.registry
            .counter_value("log_cache_syslog_connections_closed", &[("reason", reason)])
            .unwrap_or(0)
    }

    fn read(&self, source_id: &str) -> Vec<Envelope> {
        decode_all(&self.store.read(&Query {
            source_id,
            start: i64::MIN,
            end: i64::MAX,
            limit: 100_000,
            types: TypeSet::ALL,
            descending: false,
            name_filter: None,
        }))
    }

    /// Every stored envelope, of every source.
    fn read_everything(&self) -> Vec<Envelope> {
        self.store
            .meta()
            .keys()
            .flat_map(|source| self.read(source))
            .collect()
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.addr).await.unwrap()
    }

    async fn stop(self) {
        self.cancel.cancel();
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("serve returns after cancel")
            .unwrap();
    }
}

fn config() -> SyslogConfig {
    SyslogConfig::default()
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the server closes `io` (EOF or a reset); returns how long it took.
async fn closed_by_server<S: AsyncRead + Unpin>(io: &mut S) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout(DEADLINE, io.read(&mut buf)).await {
            Err(_) => panic!("the server did not close the connection within {DEADLINE:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => {}
        }
    }
}

/// Whether the connection is still open (no EOF within `wait`).
async fn still_open(io: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 1];
    tokio::time::timeout(wait, io.read(&mut buf)).await.is_err()
}

fn msg(app: &str, text: &str) -> String {
    format!("<14>1 2023-11-14T22:13:20.123456+00:00 host {app} [APP/PROC/WEB/0] - - {text}")
}

fn frame(m: &str) -> Vec<u8> {
    let mut f = format!("{} ", m.len()).into_bytes();
    f.extend(m.as_bytes());
    f
}

fn payloads(envs: &[Envelope]) -> Vec<String> {
    let mut out: Vec<String> = envs
        .iter()
        .map(|e| match &e.message {
            Some(Message::Log(l)) => String::from_utf8_lossy(&l.payload).into_owned(),
            other => format!("{other:?}"),
        })
        .collect();
    out.sort();
    out
}

// ---------------------------------------------------------------------------
// Framing.

#[tokio::test]
async fn octet_counted_frames_split_anywhere_are_stored() {
    let server = start(config(), None).await;
    let mut wire = Vec::new();
    for i in 0..3 {
        wire.extend(frame(&msg("app-a", &format!("line {i}\n"))));
    }
    let mut c = server.connect().await;
    // Odd-sized writes with pauses so frames and length prefixes straddle reads.
    for piece in wire.chunks(7) {
        c.write_all(piece).await.unwrap();
        c.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    eventually("3 envelopes", || server.read("app-a").len() == 3).await;
    let envs = server.read("app-a");
    assert_eq!(payloads(&envs), ["line 0", "line 1", "line 2"]);
    assert_eq!(envs[0].instance_id, "0");
    assert_eq!(envs[0].timestamp, 1_700_000_000_123_456_000);
    assert_eq!(server.counter("log_cache_syslog_ingress"), 3);
    assert_eq!(server.counter("log_cache_syslog_invalid_ingress"), 0);
    assert!(still_open(&mut c, Duration::from_millis(200)).await);
    server.stop().await;
}

#[tokio::test]
async fn non_transparent_framing_stores_each_line() {
    let server = start(
        SyslogConfig {
            non_transparent_framing: true,
            ..config()
        },
        None,
    )
    .await;
    let mut c = server.connect().await;
    let wire = format!(
        "{}\n{}\r\n\n{}\n",
        msg("app-n", "one"),
        msg("app-n", "two"),
        msg("app-n", "three")
    );
    for piece in wire.as_bytes().chunks(11) {
        c.write_all(piece).await.unwrap();
    }
    eventually("3 envelopes", || server.read("app-n").len() == 3).await;
    assert_eq!(payloads(&server.read("app-n")), ["one", "three", "two"]);
    // An octet-counted frame on a non-transparent listener is one bad line, skipped.
    c.write_all(&frame(&msg("app-n", "counted"))).await.unwrap();
    c.write_all(b"\n").await.unwrap();
    eventually("invalid counted", || {
        server.counter("log_cache_syslog_invalid_ingress") == 1
    })
    .await;
    c.write_all(format!("{}\n", msg("app-n", "four")).as_bytes())
        .await
        .unwrap();
    eventually("4 envelopes", || server.read("app-n").len() == 4).await;
    server.stop().await;
}

#[tokio::test]
async fn an_invalid_message_inside_a_frame_is_counted_and_the_connection_goes_on() {
    let server = start(config(), None).await;
    let mut c = server.connect().await;
    let mut wire = frame(&msg("app-i", "before"));
    wire.extend(frame("this is not syslog"));
    wire.extend(frame("<14>1 - - - [0] - - no app name"));
    wire.extend(frame("<14>1 - - app-i [0] - [origin x=\"y\"] unknown SD"));
    wire.extend(frame(&msg("app-i", "after")));
    c.write_all(&wire).await.unwrap();
    eventually("2 envelopes", || server.read("app-i").len() == 2).await;
    assert_eq!(payloads(&server.read("app-i")), ["after", "before"]);
    assert_eq!(server.counter("log_cache_syslog_invalid_ingress"), 3);
    assert_eq!(server.counter("log_cache_syslog_ingress"), 2);
    assert!(still_open(&mut c, Duration::from_millis(200)).await);
    server.stop().await;
}

// ---------------------------------------------------------------------------
// Hostile input: each is cut and counted.

#[tokio::test]
async fn a_garbage_length_prefix_closes_the_connection() {
    let server = start(config(), None).await;
    for (i, garbage) in [
        &b"abc <14>1 x"[..],
        b"0 ",
        b"12x",
        b"\n12 ",
        b"GET / HTTP/1.1\r\n",
    ]
    .into_iter()
    .enumerate()
    {
        let mut c = server.connect().await;
        c.write_all(garbage).await.unwrap();
        closed_by_server(&mut c).await;
        eventually("framing counted", || {
            server.closed("framing") == i as u64 + 1
        })
        .await;
    }
    assert_eq!(server.counter("log_cache_syslog_ingress"), 0);
    server.stop().await;
}

#[tokio::test]
async fn a_frame_longer_than_the_maximum_is_refused_before_its_body_arrives() {
    // A long idle timeout shows the cut comes from the length alone.
    let server = start(
        SyslogConfig {
            max_message_length: 1024,
            idle_timeout: Duration::from_secs(600),
            ..config()
        },
        None,
    )
    .await;
    let mut c = server.connect().await;
    c.write_all(b"1025 ").await.unwrap();
    closed_by_server(&mut c).await;
    assert_eq!(server.closed("too_long"), 1);
    // Endless digits are cut too.
    let mut c = server.connect().await;
    let _ = c.write_all(&[b'7'; 4096]).await;
    closed_by_server(&mut c).await;
    eventually("second cut", || server.closed("too_long") == 2).await;
    // Exactly the maximum is accepted.
    let body = msg("app-max", "");
    let padded = format!("{body}{}", "x".repeat(1024 - body.len()));
    let mut c = server.connect().await;
    c.write_all(&frame(&padded)).await.unwrap();
    eventually("maximal message", || server.read("app-max").len() == 1).await;
    server.stop().await;
}

#[tokio::test]
async fn a_non_transparent_line_that_never_ends_is_cut_at_the_maximum() {
    let server = start(
        SyslogConfig {
            max_message_length: 1024,
            idle_timeout: Duration::from_secs(600),
            non_transparent_framing: true,
            ..config()
        },
        None,
    )
    .await;
    let mut c = server.connect().await;
    let mut line = msg("app-long", "");
    line.push_str(&"y".repeat(3000));
    let _ = c.write_all(line.as_bytes()).await;
    closed_by_server(&mut c).await;
    eventually("too_long counted", || server.closed("too_long") == 1).await;
    assert!(server.read("app-long").is_empty());
    server.stop().await;
}

#[tokio::test]
async fn a_length_that_lies_is_cut_at_the_idle_timeout() {
    let server = start(
        SyslogConfig {
            idle_timeout: Duration::from_millis(500),
            ..config()
        },
        None,
    )
    .await;
    let mut c = server.connect().await;
    let m = msg("app-lie", "short");
    c.write_all(format!("{} {m}", m.len() + 100).as_bytes())
        .await
        .unwrap();
    let took = closed_by_server(&mut c).await;
    assert!(took >= Duration::from_millis(400), "cut after {took:?}");
    assert_eq!(server.closed("idle"), 1);
    assert!(server.read("app-lie").is_empty());
    server.stop().await;
}

#[tokio::test]
async fn a_trickle_that_never_completes_a_message_is_cut_at_the_idle_timeout() {
    // The deadline restarts per message, not per read, as upstream's does.
    let server = start(
        SyslogConfig {
            idle_timeout: Duration::from_millis(600),
            ..config()
        },
        None,
    )
    .await;
    let mut c = server.connect().await;
    let wire = frame(&msg("app-slow", &"z".repeat(200)));
    let started = Instant::now();
    let mut cut = false;
    for b in &wire {
        if c.write_all(&[*b]).await.is_err() {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        if server.closed("idle") == 1 {
            cut = true;
            break;
        }
    }
    assert!(cut, "a trickle of {} bytes was never cut", wire.len());
    assert!(started.elapsed() < Duration::from_secs(10));
    eventually("idle counted", || server.closed("idle") == 1).await;
    assert!(server.read("app-slow").is_empty());
    server.stop().await;
}

#[tokio::test]
async fn idle_timeout_closes_a_silent_connection_but_not_a_steady_one() {
    let server = start(
        SyslogConfig {
            idle_timeout: Duration::from_millis(600),
            ..config()
        },
        None,
    )
    .await;
    let mut silent = server.connect().await;
    let mut steady = server.connect().await;
    let started = Instant::now();
    let mut sent = 0;
    while started.elapsed() < Duration::from_millis(1800) {
        steady
            .write_all(&frame(&msg("app-steady", &format!("tick {sent}"))))
            .await
            .unwrap();
        sent += 1;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    closed_by_server(&mut silent).await;
    assert_eq!(server.closed("idle"), 1);
    eventually("every tick", || server.read("app-steady").len() == sent).await;
    assert!(still_open(&mut steady, Duration::from_millis(100)).await);
    server.stop().await;
}

#[tokio::test]
async fn a_truncated_frame_at_eof_is_counted() {
    let server = start(config(), None).await;
    let mut c = server.connect().await;
    c.write_all(b"50 <14>1 - - a").await.unwrap();
    c.shutdown().await.unwrap();
    closed_by_server(&mut c).await;
    eventually("truncated counted", || server.closed("truncated") == 1).await;
    server.stop().await;
}

#[tokio::test]
async fn a_good_connection_keeps_working_while_bad_ones_are_cut() {
    let server = start(
        SyslogConfig {
            max_message_length: 2048,
            ..config()
        },
        None,
    )
    .await;
    let mut good = server.connect().await;
    good.write_all(&frame(&msg("app-good", "first")))
        .await
        .unwrap();
    eventually("first", || server.read("app-good").len() == 1).await;

    let mut garbage = server.connect().await;
    garbage.write_all(b"hello world\n").await.unwrap();
    let mut oversize = server.connect().await;
    oversize.write_all(b"999999 ").await.unwrap();
    // Half a frame, then the good connection goes on in the meantime.
    let mut half = server.connect().await;
    half.write_all(b"40 <14>1").await.unwrap();
    closed_by_server(&mut garbage).await;
    closed_by_server(&mut oversize).await;

    good.write_all(&frame(&msg("app-good", "second")))
        .await
        .unwrap();
    eventually("second", || server.read("app-good").len() == 2).await;
    drop(half);
    eventually("truncated", || server.closed("truncated") == 1).await;
    good.write_all(&frame(&msg("app-good", "third")))
        .await
        .unwrap();
    eventually("third", || server.read("app-good").len() == 3).await;
    assert_eq!(server.closed("framing"), 1);
    assert_eq!(server.closed("too_long"), 1);
    assert!(still_open(&mut good, Duration::from_millis(100)).await);
    server.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_cap_are_refused_and_counted() {
    let server = start(
        SyslogConfig {
            max_connections: 2,
            ..config()
        },
        None,
    )
    .await;
    let mut a = server.connect().await;
    let b = server.connect().await;
    a.write_all(&frame(&msg("app-cap", "a"))).await.unwrap();
    eventually("a stored", || server.read("app-cap").len() == 1).await;
    eventually("2 open", || {
        server
            .registry
            .gauge_value("log_cache_syslog_connections", &[])
            == Some(2)
    })
    .await;
    let mut third = server.connect().await;
    closed_by_server(&mut third).await;
    assert_eq!(server.counter("log_cache_syslog_connections_refused"), 1);
    // A slot comes back when a connection ends.
    drop(b);
    eventually("1 open", || {
        server
            .registry
            .gauge_value("log_cache_syslog_connections", &[])
            == Some(1)
    })
    .await;
    let mut c = server.connect().await;
    c.write_all(&frame(&msg("app-cap", "c"))).await.unwrap();
    eventually("c stored", || server.read("app-cap").len() == 2).await;
    server.stop().await;
}

#[tokio::test]
async fn cancel_ends_open_connections_and_serve_returns() {
    let server = start(config(), None).await;
    let mut c = server.connect().await;
    c.write_all(&frame(&msg("app-c", "x"))).await.unwrap();
    eventually("stored", || server.read("app-c").len() == 1).await;
    server.cancel.cancel();
    closed_by_server(&mut c).await;
    tokio::time::timeout(DEADLINE, server.task)
        .await
        .expect("serve returned")
        .unwrap();
}

// ---------------------------------------------------------------------------
// TLS.

fn client_tls(pki: &DevPki, with_cert: bool) -> tokio_rustls::TlsConnector {
    let config = if with_cert {
        pki.client_config("client").unwrap()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        for cert in
            plumbing::tls::parse_certs(pki.ca_cert_pem().as_bytes(), Path::new("ca")).unwrap()
        {
            roots.add(cert).unwrap();
        }
        Arc::new(
            rustls::ClientConfig::builder_with_provider(plumbing::tls::provider(None))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    };
    tokio_rustls::TlsConnector::from(config)
}

async fn tls_connect(
    server: &Server,
    connector: &tokio_rustls::TlsConnector,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = server.connect().await;
    connector
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
}

async fn send_tls<S: AsyncWrite + Unpin>(io: &mut S, m: &str) -> std::io::Result<()> {
    io.write_all(&frame(m)).await?;
    io.flush().await
}

#[tokio::test]
async fn mutual_tls_accepts_a_client_certificate_and_cuts_a_client_without_one() {
    let pki = DevPki::in_memory().unwrap();
    let server = start(config(), Some(pki.server_config("localhost").unwrap())).await;

    let mut good = tls_connect(&server, &client_tls(&pki, true)).await.unwrap();
    send_tls(&mut good, &msg("app-tls", "over mtls"))
        .await
        .unwrap();
    eventually("stored over mTLS", || server.read("app-tls").len() == 1).await;

    // Without a certificate: the handshake (or the first read after it, in
    // TLS 1.3) fails and nothing is stored.
    if let Ok(mut anon) = tls_connect(&server, &client_tls(&pki, false)).await {
        let _ = send_tls(&mut anon, &msg("app-tls", "anonymous")).await;
        closed_by_server(&mut anon).await;
    }
    eventually("tls failure counted", || server.closed("tls") == 1).await;
    // Plain TCP on a TLS listener is cut too.
    let mut plain = server.connect().await;
    plain
        .write_all(&frame(&msg("app-tls", "plain")))
        .await
        .unwrap();
    closed_by_server(&mut plain).await;
    eventually("plain counted", || server.closed("tls") == 2).await;

    send_tls(&mut good, &msg("app-tls", "still here"))
        .await
        .unwrap();
    eventually("second over mTLS", || server.read("app-tls").len() == 2).await;
    assert_eq!(
        payloads(&server.read("app-tls")),
        ["over mtls", "still here"]
    );
    server.stop().await;
}

#[tokio::test]
async fn server_only_tls_accepts_clients_without_certificates() {
    let pki = DevPki::in_memory().unwrap();
    let labels = pki.files("localhost");
    let id = pki.identity("localhost").unwrap();
    let tls = plumbing::tls::server_config_from_pem(
        &plumbing::tls::PemIdentity {
            ca: None,
            cert: (id.cert_pem.as_bytes(), &labels.cert),
            key: (id.key_pem.as_bytes(), &labels.key),
        },
        &plumbing::tls::TlsOptions::default(),
    )
    .unwrap();
    let server = start(config(), Some(tls)).await;
    let mut c = tls_connect(&server, &client_tls(&pki, false))
        .await
        .unwrap();
    send_tls(&mut c, &msg("app-stls", "hi")).await.unwrap();
    eventually("stored over TLS", || server.read("app-stls").len() == 1).await;
    server.stop().await;
}

#[tokio::test]
async fn a_stalled_tls_handshake_is_cut() {
    let pki = DevPki::in_memory().unwrap();
    let server = start(
        SyslogConfig {
            idle_timeout: Duration::from_millis(500),
            ..config()
        },
        Some(pki.server_config("localhost").unwrap()),
    )
    .await;
    let mut c = server.connect().await;
    c.write_all(&[0x16, 0x03, 0x01]).await.unwrap(); // the start of a ClientHello, then nothing
    closed_by_server(&mut c).await;
    eventually("tls counted", || server.closed("tls") == 1).await;
    server.stop().await;
}

// ---------------------------------------------------------------------------
// The syslog agent's golden output parses back into its envelopes.

struct Case {
    name: String,
    /// Each message as the agent wrote it.
    messages: Vec<Vec<u8>>,
    /// The same, octet-counted as its TCP writer sent them.
    frames: Vec<Vec<u8>>,
    /// What log-cache must store for them (upstream's mapping), or the
    /// error every message must give.
    expect: Result<Vec<Envelope>, fn(&ParseError) -> bool>,
}

fn b64(v: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(v["b64"].as_str().unwrap())
        .unwrap()
}

fn fixture_cases() -> Vec<Case> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/fixtures/syslog/cases.json"
    );
    let text = std::fs::read_to_string(path).expect("fixtures/syslog/cases.json readable");
    let doc: Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    for case in doc["cases"].as_array().unwrap() {
        let messages: Vec<Vec<u8>> = case["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(b64)
            .collect();
        if messages.is_empty() {
            continue; // the agent sent nothing (or failed): nothing to parse
        }
        let frames = case["octet_counted_frames"]
            .as_array()
            .unwrap()
            .iter()
            .map(b64)
            .collect();
        let v2 = Envelope::decode(&b64(&case["v2"])[..]).unwrap();
        let omit = case["omit_metadata"].as_bool().unwrap();
        out.push(Case {
            name: case["name"].as_str().unwrap().to_owned(),
            expect: expected(&v2, omit, &messages),
            messages,
            frames,
        });
    }
    out
}

/// Upstream's mapping applied to what the agent put on the wire.
fn expected(
    v2: &Envelope,
    omit_metadata: bool,
    messages: &[Vec<u8>],
) -> Result<Vec<Envelope>, fn(&ParseError) -> bool> {
    if v2.source_id.is_empty() {
        // APP-NAME `-`: upstream's "missing app name".
        return Err(|e| *e == ParseError::MissingAppName);
    }
    if let Some(Message::Log(l)) = &v2.message
        && l.r#type > 1
    {
        // The agent writes PRI -1 for an unknown log type: not RFC 5424.
        return Err(|e| {
            matches!(
                e,
                ParseError::Syntax {
                    field: "priority",
                    ..
                }
            )
        });
    }
    let mut base = Envelope {
        // The agent writes microseconds.
        timestamp: v2.timestamp / 1000 * 1000,
        // APP-NAME holds at most 48 characters.
        source_id: v2.source_id.chars().take(48).collect(),
        instance_id: v2.instance_id.clone(),
        tags: if omit_metadata {
            Default::default()
        } else {
            v2.tags.clone()
        },
        ..Default::default()
    };
    if v2.instance_id.is_empty() {
        // PROCID `[SOURCE_TYPE]`: upstream takes its last token as the instance.
        let text = String::from_utf8_lossy(&messages[0]).into_owned();
        let procid = text.split(' ').nth(4).unwrap();
        let inner = procid.trim_matches(['[', ']']);
        base.instance_id = inner.rsplit('/').next().unwrap().to_owned();
    }
    Ok(match &v2.message {
        Some(Message::Log(l)) => {
            let mut log = l.clone();
            let no_nuls: Vec<u8> = l.payload.iter().copied().filter(|&b| b != 0).collect();
            let text = String::from_utf8(no_nuls).unwrap();
            log.payload = bytes::Bytes::from(text.trim().to_owned());
            vec![Envelope {
                message: Some(Message::Log(log)),
                ..base
            }]
        }
        // One message per metric.
        Some(Message::Gauge(g)) => g
            .metrics
            .iter()
            .map(|(name, value)| Envelope {
                message: Some(Message::Gauge(Gauge {
                    metrics: [(name.clone(), value.clone())].into(),
                })),
                ..base.clone()
            })
            .collect(),
        other => vec![Envelope {
            message: other.clone(),
            ..base
        }],
    })
}

/// Order-free comparison (NaN-safe: by the debug text of each envelope;
/// every map in these types is a BTreeMap, so the text is canonical).
fn canonical(envs: &[Envelope]) -> Vec<String> {
    let mut out: Vec<String> = envs.iter().map(|e| format!("{e:?}")).collect();
    out.sort();
    out
}

/// What the store hands back for `envs`: prost omits a proto3 double equal
/// to 0.0, so a gauge of -0.0 is stored as 0.0 (Go would keep the sign).
fn stored_form(envs: &[Envelope]) -> Vec<Envelope> {
    envs.iter()
        .map(|e| Envelope::decode(&e.encode_to_vec()[..]).unwrap())
        .collect()
}

/// `got` and `want` hold the same envelopes; on failure, shows only the difference.
fn assert_same(got: &[Envelope], want: &[Envelope], what: &str) {
    let (mut got, mut want) = (canonical(got), canonical(want));
    if got == want {
        return;
    }
    let both: Vec<String> = got.iter().filter(|g| want.contains(g)).cloned().collect();
    for b in &both {
        if let (Some(i), Some(j)) = (
            got.iter().position(|g| g == b),
            want.iter().position(|w| w == b),
        ) {
            got.remove(i);
            want.remove(j);
        }
    }
    panic!("{what}: unexpected {got:#?}\nmissing {want:#?}");
}

#[test]
fn the_syslog_agents_fixture_messages_parse_back_into_their_envelopes() {
    let cases = fixture_cases();
    assert!(cases.len() > 30, "only {} fixture cases", cases.len());
    for case in &cases {
        let parsed: Vec<Result<Envelope, ParseError>> =
            case.messages.iter().map(|m| parse(m, 0)).collect();
        match &case.expect {
            Ok(want) => {
                let got: Vec<Envelope> = parsed
                    .into_iter()
                    .map(|r| r.unwrap_or_else(|e| panic!("{}: {e}", case.name)))
                    .collect();
                assert_same(&got, want, &case.name);
            }
            Err(is_expected) => {
                for r in parsed {
                    let e = r.expect_err(&case.name);
                    assert!(is_expected(&e), "{}: {e}", case.name);
                }
            }
        }
    }
}

#[tokio::test]
async fn the_agents_octet_counted_frames_over_one_connection_fill_the_store() {
    let server = start(config(), None).await;
    let cases = fixture_cases();
    let mut want = Vec::new();
    let mut invalid = 0;
    let mut c = server.connect().await;
    for case in &cases {
        for f in &case.frames {
            c.write_all(f).await.unwrap();
        }
        match &case.expect {
            Ok(envs) => want.extend(envs.iter().cloned()),
            Err(_) => invalid += case.frames.len() as u64,
        }
    }
    assert!(
        invalid >= 2,
        "the fixtures include messages upstream rejects"
    );
    eventually("every envelope", || {
        server.counter("log_cache_syslog_ingress") == want.len() as u64
    })
    .await;
    assert_eq!(server.counter("log_cache_syslog_invalid_ingress"), invalid);
    assert_same(&server.read_everything(), &stored_form(&want), "stored");
    assert!(still_open(&mut c, Duration::from_millis(100)).await);
    server.stop().await;
}

// ---------------------------------------------------------------------------
// End to end: a real rsyslog relays the agent's drain to log-cache.

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn find_rsyslogd() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("rsyslogd"))
            .find(|p| p.exists())
    });
    on_path
        .or_else(|| Some(PathBuf::from("/usr/sbin/rsyslogd")).filter(|p| p.exists()))
        .unwrap_or_else(|| {
            panic!(
                "rsyslogd not found: install the Debian package rsyslog \
                 (apt-get install rsyslog; .ci/test does this)"
            )
        })
}

/// rsyslogd started with its own configuration in a temp dir; killed (only
/// this child) on drop.
struct Rsyslog {
    child: Child,
    dir: PathBuf,
    in_port: u16,
}

impl Rsyslog {
    /// imtcp on a loopback port → omfwd, octet-counted, RFC 5424 template, to `target`.
    fn relay(dir: &Path, target: SocketAddr) -> Rsyslog {
        let bin = find_rsyslogd();
        let state = dir.join("state");
        std::fs::create_dir_all(&state).unwrap();
        let in_port = free_port();
        let conf = format!(
            r#"global(workDirectory="{state}"
       parser.escapeControlCharactersOnReceive="off")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{in_port}" ruleset="relay")
ruleset(name="relay") {{
  action(type="omfwd" target="127.0.0.1" port="{out_port}" protocol="tcp"
         TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format"
         action.resumeRetryCount="-1" action.resumeInterval="1")
  action(type="omfile" file="{copy}" template="RSYSLOG_SyslogProtocol23Format")
}}
"#,
            state = state.display(),
            copy = dir.join("relayed.5424").display(),
            out_port = target.port(),
        );
        let conf_path = dir.join("rsyslog.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(bin)
            .arg("-n")
            .arg("-f")
            .arg(&conf_path)
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdout(Stdio::from(
                std::fs::File::create(dir.join("rsyslogd.out")).unwrap(),
            ))
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("rsyslogd.err")).unwrap(),
            ))
            .spawn()
            .expect("spawn rsyslogd");
        let r = Rsyslog {
            child,
            dir: dir.to_owned(),
            in_port,
        };
        let deadline = Instant::now() + DEADLINE;
        while std::net::TcpStream::connect(("127.0.0.1", in_port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "rsyslogd did not listen on {in_port}: {}",
                r.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }

    fn output(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
        format!("{}{}", read("rsyslogd.out"), read("rsyslogd.err"))
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn rsyslog_relays_an_agent_drain_into_the_store() {
    let server = start(config(), None).await;
    let tmp = tempfile::tempdir().unwrap();
    let rsyslog = Rsyslog::relay(tmp.path(), server.addr);

    // The agent's octet-counted frames, as its syslog:// writer sent them,
    // into rsyslog; rsyslog re-renders each and forwards it octet-counted.
    let mut want = Vec::new();
    let mut wire = Vec::new();
    for case in fixture_cases() {
        if let Ok(envs) = &case.expect {
            want.extend(envs.iter().cloned());
            for f in &case.frames {
                wire.extend(f);
            }
        }
    }
    let mut c = TcpStream::connect(("127.0.0.1", rsyslog.in_port))
        .await
        .unwrap();
    c.write_all(&wire).await.unwrap();
    c.flush().await.unwrap();

    let deadline = Instant::now() + DEADLINE * 2;
    while server.counter("log_cache_syslog_ingress")
        + server.counter("log_cache_syslog_invalid_ingress")
        < want.len() as u64
    {
        assert!(
            Instant::now() < deadline,
            "log-cache got {} of {} envelopes ({} invalid) from rsyslog; rsyslog says:\n{}",
            server.counter("log_cache_syslog_ingress"),
            want.len(),
            server.counter("log_cache_syslog_invalid_ingress"),
            rsyslog.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server.counter("log_cache_syslog_invalid_ingress"), 0);
    assert_same(&server.read_everything(), &stored_form(&want), "stored");
    assert!(
        server
            .registry
            .gauge_value("log_cache_syslog_connections", &[])
            .unwrap_or(0)
            >= 1,
        "rsyslog keeps its connection open"
    );
    // rsyslog parsed and re-rendered every message (its own copy of what it sent).
    let copy = std::fs::read_to_string(tmp.path().join("relayed.5424")).unwrap_or_default();
    assert!(
        copy.matches("<1").count() >= want.len(),
        "rsyslog's copy: {copy}"
    );
    if std::env::var_os("SYSLOG_E2E_SHOW").is_some() {
        eprintln!("{copy}");
    }
    drop(rsyslog);
    server.stop().await;
}
