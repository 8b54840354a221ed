//! Drain forwarder benchmark: one drain's throughput to a plain TCP sink
//! (octet-counted frames counted by a Rust receiver), and RSS with 1,000
//! drains. Run: `cargo run --release -p nozzles --example drain_bench`.
//!
//! The producer pushes into the drain's ring as fast as it can (drop-oldest,
//! as in production); throughput is what the sink receives per second.

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use envelope_proto::loggregator_v2::{Envelope, Log, envelope::Message};
use nozzles::drain::bindings::DrainSpec;
use nozzles::drain::manager::{DrainSettings, Manager};
use nozzles::drain::metrics::DrainMetrics;
use nozzles::drain::notice::Notices;
use nozzles::tlsutil::TrustOptions;
use plumbing::metrics::Registry;
use plumbing::shutdown::Shutdown;
use tokio::io::AsyncReadExt;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Counts octet-counted frames on every accepted connection.
async fn sink(frames: Arc<AtomicU64>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let frames = frames.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 256 * 1024];
                let mut carry: Vec<u8> = Vec::new();
                loop {
                    let n = match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    carry.extend_from_slice(&buf[..n]);
                    let mut pos = 0;
                    let mut count = 0;
                    while let Some(sp) = carry[pos..].iter().position(|&b| b == b' ') {
                        let len: usize = std::str::from_utf8(&carry[pos..pos + sp])
                            .unwrap()
                            .parse()
                            .unwrap();
                        if carry.len() < pos + sp + 1 + len {
                            break;
                        }
                        pos += sp + 1 + len;
                        count += 1;
                    }
                    carry.drain(..pos);
                    frames.fetch_add(count, Ordering::Relaxed);
                }
            });
        }
    });
    port
}

fn envelope(app: &str, i: u64) -> Envelope {
    let mut tags = BTreeMap::new();
    tags.insert("source_type".to_owned(), "APP/PROC/WEB".to_owned());
    tags.insert("app_name".to_owned(), "bench".to_owned());
    tags.insert("organization_name".to_owned(), "org".to_owned());
    tags.insert("space_name".to_owned(), "space".to_owned());
    Envelope {
        timestamp: 1_700_000_000_123_456_789 + i as i64,
        source_id: app.to_owned(),
        instance_id: "0".into(),
        deprecated_tags: BTreeMap::new(),
        tags,
        message: Some(Message::Log(Log {
            payload: format!("benchmark log line number {i} with some typical application text")
                .into_bytes()
                .into(),
            r#type: 0,
        })),
    }
}

fn manager(registry: &Registry, shutdown: &Shutdown) -> Manager {
    let metrics = DrainMetrics::new(registry);
    let settings = DrainSettings {
        trust: TrustOptions::default(),
        default_metadata: true,
        buffer_size: 10_000,
        idle_timeout: Duration::from_secs(600),
    };
    Manager::new(
        settings,
        metrics.clone(),
        Notices::disabled(metrics.notices_dropped.clone()),
        shutdown.token().child_token(),
        shutdown.tracker().clone(),
    )
}

fn spec(app: &str, port: u16) -> DrainSpec {
    DrainSpec {
        app_id: app.into(),
        url: format!("syslog://127.0.0.1:{port}"),
        hostname: "org.space.app".into(),
        cert: String::new(),
        key: String::new(),
        ca: String::new(),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // One drain, saturated.
    let frames = Arc::new(AtomicU64::new(0));
    let port = sink(frames.clone()).await;
    let registry = Registry::new();
    let shutdown = Shutdown::new();
    let mut m = manager(&registry, &shutdown);
    let app = "f47ac10b-58cc-4372-a567-0e02b2c3d479";
    m.apply(&[spec(app, port)], &[]);
    let d = m.dispatcher();
    // Pre-built envelopes so the producer's cost is only the push.
    let pool: Vec<Envelope> = (0..1000).map(|i| envelope(app, i)).collect();
    let secs = 5.0;
    let start = Instant::now();
    let producer = tokio::spawn(async move {
        let mut sent = 0u64;
        while start.elapsed().as_secs_f64() < secs {
            d.dispatch(pool.clone());
            sent += pool.len() as u64;
            tokio::task::yield_now().await;
        }
        sent
    });
    let warm = frames.load(Ordering::Relaxed);
    let sent = producer.await.unwrap();
    let got = frames.load(Ordering::Relaxed) - warm;
    let elapsed = start.elapsed().as_secs_f64();
    let dropped = registry
        .counter_value(
            "syslog_drain_dropped",
            &[("scheme", "syslog"), ("reason", "buffer")],
        )
        .unwrap_or(0);
    println!(
        "one drain: {:.0} msg/s delivered to a TCP sink ({got} in {elapsed:.2} s; offered {sent}, dropped oldest {dropped})",
        got as f64 / elapsed
    );
    m.stop_all();

    // 1,000 drains.
    let before = rss_kib();
    let frames2 = Arc::new(AtomicU64::new(0));
    let port2 = sink(frames2.clone()).await;
    let mut many = manager(&Registry::new(), &shutdown);
    let apps: Vec<String> = (0..1000)
        .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
        .collect();
    let specs: Vec<DrainSpec> = apps.iter().map(|a| spec(a, port2)).collect();
    many.apply(&specs, &[]);
    let d = many.dispatcher();
    for round in 0..10u64 {
        d.dispatch(apps.iter().map(|a| envelope(a, round)).collect());
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while frames2.load(Ordering::Relaxed) < 10_000 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = rss_kib();
    println!(
        "1000 drains: {} messages delivered; RSS {} KiB -> {} KiB, {:.1} KiB per drain (rings of 10,000 slots preallocated)",
        frames2.load(Ordering::Relaxed),
        before,
        after,
        (after.saturating_sub(before)) as f64 / 1000.0
    );
    many.stop_all();
    shutdown.trigger();
}
