//! The doppler pool against real (plaintext) gRPC sinks: spreading, write
//! coalescing into streams, recycling after N writes, retry on another stream
//! when one breaks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use envelope_proto::raw::doppler_ingestor_server::{DopplerIngestor, DopplerIngestorServer};
use envelope_proto::raw::ingress_server::{Ingress, IngressServer};
use metron_agent::pool::{Discovery, Pool, PoolConfig, PoolMetrics, Protocol};
use plumbing::metrics::{Counter, Gauge};
use plumbing::shutdown::Shutdown;
use tokio::net::TcpListener;
use tonic::{Request, Response, Status, Streaming};

#[derive(Clone, Default)]
struct Sink {
    messages: Arc<AtomicU64>,
    streams: Arc<AtomicU64>,
}

impl Sink {
    async fn drain(&self, r: Request<Streaming<Bytes>>) -> Result<Response<Bytes>, Status> {
        self.streams.fetch_add(1, Ordering::Relaxed);
        let mut s = r.into_inner();
        while s.message().await?.is_some() {
            self.messages.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Response::new(Bytes::new()))
    }
}

#[tonic::async_trait]
impl Ingress for Sink {
    async fn sender(&self, r: Request<Streaming<Bytes>>) -> Result<Response<Bytes>, Status> {
        self.drain(r).await
    }
    async fn batch_sender(&self, r: Request<Streaming<Bytes>>) -> Result<Response<Bytes>, Status> {
        self.drain(r).await
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
        self.drain(r).await
    }
}

/// A sink on its own runtime thread; dropping the returned guard kills it
/// (every socket closes at once, like a crashed doppler).
struct Kill(Option<std::sync::mpsc::Sender<()>>);

impl Drop for Kill {
    fn drop(&mut self) {
        if let Some(k) = self.0.take() {
            let _ = k.send(());
        }
    }
}

async fn start_sink() -> (Sink, std::net::SocketAddr, Kill) {
    let sink = Sink::default();
    let s = sink.clone();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (kill_tx, kill_rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.spawn(async move {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(l.local_addr().unwrap()).unwrap();
            plumbing::tls::grpc::server_builder()
                .add_service(IngressServer::new(s.clone()))
                .add_service(DopplerIngestorServer::new(s))
                .serve_with_incoming(plumbing::tls::grpc::serve_incoming(l, None))
                .await
                .unwrap();
        });
        rt.block_on(async {
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            std::thread::spawn(move || {
                let _ = kill_rx.recv();
                let _ = tx.send(());
            });
            let _ = rx.await;
        });
        rt.shutdown_background();
    });
    let addr = tokio::task::spawn_blocking(move || addr_rx.recv().unwrap())
        .await
        .unwrap();
    (sink, addr, Kill(Some(kill_tx)))
}

fn pool(
    protocol: Protocol,
    streams: usize,
    addrs: Vec<String>,
    recycle: u64,
    shutdown: &Shutdown,
) -> (Pool, Gauge) {
    let gauge = Gauge::detached();
    let p = Pool::start(
        PoolConfig {
            protocol,
            streams,
            discovery: Discovery::new(vec![], addrs),
            tls: None,
            recycle_after: recycle,
            resolve_interval: Duration::from_millis(100),
            write_deadline: Duration::from_millis(500),
        },
        PoolMetrics {
            connections: Gauge::detached(),
            streams: gauge.clone(),
            stranded: Counter::detached(),
        },
        shutdown,
    );
    (p, gauge)
}

async fn eventually(mut cond: impl FnMut() -> bool, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_reach_the_sink_and_streams_are_recycled() {
    let (sink, addr, _stop) = start_sink().await;
    let shutdown = Shutdown::new();
    // Recycle after 10 + rand[0,1000) writes: 3000 writes force several recycles.
    let (p, gauge) = pool(Protocol::V1Pusher, 2, vec![addr.to_string()], 10, &shutdown);
    eventually(|| gauge.get() == 2, "2 streams").await;
    eventually(
        || sink.streams.load(Ordering::Relaxed) == 2,
        "sink sees 2 streams",
    )
    .await;
    let mut ok = 0;
    for i in 0..300u64 {
        let msgs: Vec<Bytes> = (0..10).map(|j| Bytes::from(format!("{i}-{j}"))).collect();
        if p.write(msgs).await.is_ok() {
            ok += 10;
        }
        if i % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    eventually(
        || sink.messages.load(Ordering::Relaxed) == ok,
        "every accepted write arrives",
    )
    .await;
    assert!(
        ok >= 2900,
        "most writes accepted while streams recycle: {ok}"
    );
    assert!(
        sink.streams.load(Ordering::Relaxed) >= 3,
        "streams were recycled"
    );
    shutdown.trigger();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_stream_is_skipped_and_replaced() {
    let (sink_a, addr_a, stop_a) = start_sink().await;
    let (sink_b, addr_b, _stop_b) = start_sink().await;
    let shutdown = Shutdown::new();
    let (p, gauge) = pool(
        Protocol::V2BatchSender,
        4,
        vec![addr_a.to_string(), addr_b.to_string()],
        100_000,
        &shutdown,
    );
    eventually(|| gauge.get() == 4, "4 streams").await;
    // Least-used choice spreads the streams evenly.
    eventually(
        || sink_a.streams.load(Ordering::Relaxed) + sink_b.streams.load(Ordering::Relaxed) == 4,
        "sinks see 4 streams",
    )
    .await;
    assert_eq!(sink_a.streams.load(Ordering::Relaxed), 2);
    assert_eq!(sink_b.streams.load(Ordering::Relaxed), 2);
    for _ in 0..20 {
        p.write(vec![Bytes::from_static(b"x")]).await.unwrap();
    }
    eventually(
        || sink_a.messages.load(Ordering::Relaxed) + sink_b.messages.load(Ordering::Relaxed) == 20,
        "20 delivered",
    )
    .await;
    assert!(
        sink_a.messages.load(Ordering::Relaxed) > 0 && sink_b.messages.load(Ordering::Relaxed) > 0
    );
    // Sink A goes away: its streams end; writes keep succeeding on B.
    drop(stop_a);
    // A's two streams break and are re-dialled onto B (A refuses).
    eventually(
        || sink_b.streams.load(Ordering::Relaxed) >= 4 && p.live_streams() == 4,
        "all 4 streams on B",
    )
    .await;
    let before_b = sink_b.messages.load(Ordering::Relaxed);
    for _ in 0..20 {
        p.write(vec![Bytes::from_static(b"y")]).await.unwrap();
    }
    eventually(
        || sink_b.messages.load(Ordering::Relaxed) >= before_b + 20,
        "B gets the rest",
    )
    .await;
    shutdown.trigger();
}
