//! Rough throughput / CPU measurement of the agent (run in release):
//!
//! ```text
//! cargo run --release -p metron-agent --example agent_bench -- [seconds] [connections]
//! ```
//!
//! An in-process agent runs on its own Tokio runtime (threads named
//! `agent-*`); load generators and a sink that stands in for doppler (raw
//! `BatchSender` and `Pusher` servers that count envelopes) run on another
//! runtime. Everything talks over real mTLS gRPC / UDP on loopback. CPU is
//! read per thread from `/proc/self/task`, so the agent's CPU per million
//! envelopes excludes the generators and the sink.

#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use envelope_proto::loggregator_v2::{Envelope, Log, envelope::Message};
use envelope_proto::raw::doppler_ingestor_server::{DopplerIngestor, DopplerIngestorServer};
use envelope_proto::raw::ingress_client::IngressClient;
use envelope_proto::raw::ingress_server::{Ingress, IngressServer};
use plumbing::metrics::Registry;
use plumbing::shutdown::Shutdown;
use plumbing::tls::dev::DevPki;
use prost::Message as _;
use tokio::net::{TcpListener, UdpSocket};
use tonic::{Request, Response, Status, Streaming};

#[derive(Clone, Default)]
struct Sink {
    v2: Arc<AtomicU64>,
    v1: Arc<AtomicU64>,
}

#[tonic::async_trait]
impl Ingress for Sink {
    async fn sender(&self, r: Request<Streaming<Bytes>>) -> Result<Response<Bytes>, Status> {
        let mut s = r.into_inner();
        while s.message().await?.is_some() {
            self.v2.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Response::new(Bytes::new()))
    }
    async fn batch_sender(&self, r: Request<Streaming<Bytes>>) -> Result<Response<Bytes>, Status> {
        let mut s = r.into_inner();
        while let Some(b) = s.message().await? {
            let n = envelope_proto::batch::split(&b)
                .map(|s| s.len())
                .unwrap_or(0);
            self.v2.fetch_add(n as u64, Ordering::Relaxed);
        }
        Ok(Response::new(Bytes::new()))
    }
    async fn send(&self, _r: Request<Bytes>) -> Result<Response<Bytes>, Status> {
        Err(Status::unimplemented(
            "this endpoint is not yet implemented",
        ))
    }
}

#[tonic::async_trait]
impl DopplerIngestor for Sink {
    async fn pusher(&self, r: Request<Streaming<Bytes>>) -> Result<Response<Bytes>, Status> {
        let mut s = r.into_inner();
        while s.message().await?.is_some() {
            self.v1.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Response::new(Bytes::new()))
    }
}

/// (utime + stime) in seconds of this process's threads whose name starts with `prefix`.
fn thread_cpu(prefix: &str) -> f64 {
    let mut ticks = 0u64;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.trim().starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = after.split_whitespace().collect();
        // Fields after the comm: state is index 0, utime = 11, stime = 12.
        ticks += f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        ticks += f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    }
    ticks as f64 / 100.0
}

/// Write-type syscalls (`syscw` of `/proc/self/task/*/io`) of threads whose
/// name starts with `prefix`.
fn thread_syscw(prefix: &str) -> u64 {
    let mut n = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.trim().starts_with(prefix) {
            continue;
        }
        let io = std::fs::read_to_string(task.path().join("io")).unwrap_or_default();
        n += io
            .lines()
            .find_map(|l| l.strip_prefix("syscw: "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    n
}

fn sample_envelope(i: usize) -> Bytes {
    let mut e = Envelope {
        timestamp: 1_700_000_000_000_000_000 + i as i64,
        source_id: "f47ac10b-58cc-4372-a567-0e02b2c3d479".into(),
        instance_id: "0".into(),
        message: Some(Message::Log(Log {
            payload: vec![b'x'; 100].into(),
            r#type: 0,
        })),
        ..Default::default()
    };
    e.tags.insert("source_type".into(), "APP/PROC/WEB".into());
    Bytes::from(e.encode_to_vec())
}

fn sample_v1() -> Vec<u8> {
    use envelope_proto::events;
    let e = events::Envelope {
        origin: Some("rep".into()),
        event_type: Some(events::envelope::EventType::LogMessage as i32),
        timestamp: Some(1),
        log_message: Some(events::LogMessage {
            message: Some(Bytes::from(vec![b'x'; 100])),
            message_type: Some(1),
            timestamp: Some(1),
            app_id: Some("f47ac10b-58cc-4372-a567-0e02b2c3d479".into()),
            source_type: Some("APP/PROC/WEB".into()),
            source_instance: Some("0".into()),
        }),
        ..Default::default()
    };
    envelope_proto::v1::encode(&e).unwrap()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let secs: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(5);
    let conns: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2);
    let dir = tempfile::tempdir().unwrap();
    let pki = DevPki::generate(dir.path()).unwrap();

    let load_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("load")
        .enable_all()
        .build()
        .unwrap();
    let agent_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("agent")
        .enable_all()
        .build()
        .unwrap();

    // Sink standing in for doppler.
    let sink = Sink::default();
    let sink_addr = load_rt.block_on(async {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let tls = plumbing::tls::server_config(&pki.files("doppler")).unwrap();
        let s = sink.clone();
        tokio::spawn(async move {
            plumbing::tls::grpc::server_builder()
                .add_service(IngressServer::new(s.clone()).max_decoding_message_size(10 << 20))
                .add_service(DopplerIngestorServer::new(s).max_decoding_message_size(10 << 20))
                .serve_with_incoming(plumbing::tls::grpc::serve_incoming(l, Some(tls)))
                .await
                .unwrap();
        });
        addr
    });

    // Agent.
    let f = pki.files("metron");
    let config = metron_agent::Config::for_tests(
        metron_agent::config::TlsPaths {
            ca: f.ca.clone().unwrap(),
            cert: f.cert.clone(),
            key: f.key.clone(),
        },
        vec![sink_addr.to_string()],
    );
    let registry = Registry::new();
    let shutdown = Shutdown::new();
    let (grpc_addr, udp_addr) = agent_rt.block_on(async {
        let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addrs = (grpc.local_addr().unwrap(), udp.local_addr().unwrap());
        tokio::spawn(metron_agent::run_with_registry(
            config,
            metron_agent::Listeners {
                udp: Some(udp),
                grpc,
                admin: None,
            },
            shutdown.clone(),
            registry.clone(),
        ));
        addrs
    });
    let streams = || registry.gauge_value("doppler_v2_streams", &[]).unwrap_or(0);
    while streams() < 5 {
        std::thread::sleep(Duration::from_millis(20));
    }

    // ---- v2 gRPC ingress ----
    let batch: Vec<Bytes> = (0..100).map(sample_envelope).collect();
    let mut encoded = bytes::BytesMut::new();
    envelope_proto::batch::encode(&batch, &mut encoded);
    let encoded = encoded.freeze();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cfg = plumbing::tls::client_config(&pki.files("client")).unwrap();
    let mut gens = Vec::new();
    let guard = load_rt.enter();
    for _ in 0..conns {
        let ch =
            plumbing::tls::grpc::channel(&grpc_addr.to_string(), Some((cfg.clone(), "metron")))
                .unwrap();
        let encoded = encoded.clone();
        let stop = stop.clone();
        gens.push(load_rt.spawn(async move {
            let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
            let call = tokio::spawn(async move {
                IngressClient::new(ch)
                    .batch_sender(tokio_stream::wrappers::ReceiverStream::new(rx))
                    .await
            });
            while !stop.load(Ordering::Relaxed) {
                if tx.send(encoded.clone()).await.is_err() {
                    break;
                }
            }
            drop(tx);
            let _ = call.await;
        }));
    }
    drop(guard);
    let l0 = thread_cpu("load");
    let c0 = thread_cpu("agent");
    let s0 = sink.v2.load(Ordering::Relaxed);
    let i0 = registry
        .counter_value("ingress", &[("metric_version", "2.0")])
        .unwrap_or(0);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let elapsed = t0.elapsed().as_secs_f64();
    let l1 = thread_cpu("load");
    let c1 = thread_cpu("agent");
    let s1 = sink.v2.load(Ordering::Relaxed);
    let i1 = registry
        .counter_value("ingress", &[("metric_version", "2.0")])
        .unwrap_or(0);
    stop.store(true, Ordering::Relaxed);
    for g in gens {
        let _ = load_rt.block_on(g);
    }
    let delivered = (s1 - s0) as f64;
    let ingress = (i1 - i0) as f64;
    let cpu = c1 - c0;
    let dropped = registry
        .counter_value(
            "dropped",
            &[("direction", "ingress"), ("metric_version", "2.0")],
        )
        .unwrap_or(0);
    println!(
        "load generator + doppler sink CPU: {:.0}% (2 threads); egress drops {}",
        (l1 - l0) / elapsed * 100.0,
        registry
            .counter_value(
                "dropped",
                &[("direction", "egress"), ("metric_version", "2.0")]
            )
            .unwrap_or(0)
    );
    println!(
        "v2 gRPC: ingress {:.0} env/s, delivered to doppler stream {:.0} env/s, agent CPU {:.2} s over {:.1} s ({:.0}% of a core), {:.3} CPU-s per million delivered, ~{:.0} env/s per agent core; ring drops {}",
        ingress / elapsed,
        delivered / elapsed,
        cpu,
        elapsed,
        cpu / elapsed * 100.0,
        cpu / (delivered / 1e6),
        delivered / cpu,
        dropped
    );

    // ---- v1 UDP ingress ----
    let datagram = sample_v1();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let sender = {
        let stop = stop.clone();
        let sent = sent.clone();
        std::thread::Builder::new()
            .name("load-udp".into())
            .spawn(move || {
                let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                while !stop.load(Ordering::Relaxed) {
                    if s.send_to(&datagram, udp_addr).is_ok() {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
            .unwrap()
    };
    let c0 = thread_cpu("agent");
    let w0 = thread_syscw("agent");
    let s0 = sink.v1.load(Ordering::Relaxed);
    let i0 = registry
        .counter_value("ingress", &[("metric_version", "1.0")])
        .unwrap_or(0);
    let n0 = sent.load(Ordering::Relaxed);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let elapsed = t0.elapsed().as_secs_f64();
    let c1 = thread_cpu("agent");
    let w1 = thread_syscw("agent");
    let s1 = sink.v1.load(Ordering::Relaxed);
    let i1 = registry
        .counter_value("ingress", &[("metric_version", "1.0")])
        .unwrap_or(0);
    let n1 = sent.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let _ = sender.join();
    let ring = registry
        .counter_value(
            "dropped",
            &[("direction", "all"), ("metric_version", "1.0")],
        )
        .unwrap_or(0);
    println!(
        "v1 UDP: sent {:.0} dgram/s, read {:.0} dgram/s, delivered {:.0} env/s, agent CPU {:.0}% of a core, {:.3} CPU-s per million read; {:.1} Pusher messages per agent write syscall; ring drops {}",
        (n1 - n0) as f64 / elapsed,
        (i1 - i0) as f64 / elapsed,
        (s1 - s0) as f64 / elapsed,
        (c1 - c0) / elapsed * 100.0,
        (c1 - c0) / ((i1 - i0) as f64 / 1e6),
        (s1 - s0) as f64 / (w1 - w0).max(1) as f64,
        ring
    );
    shutdown.trigger();
}
