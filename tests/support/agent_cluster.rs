//! In-process agent + dopplers for the agent's root tests: one dev PKI, mTLS
//! everywhere, dopplers that can be killed for real (each runs on its own
//! Tokio runtime, dropped on kill, so its sockets close at once), real tonic
//! clients for agent ingress and doppler egress, and `eventually`.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::net::SocketAddr;
use std::time::Duration;

use envelope_proto::loggregator_v2::{
    CounterSelector, EventSelector, GaugeSelector, LogSelector, TimerSelector,
};
use envelope_proto::loggregator_v2::{
    EgressBatchRequest, Envelope, EnvelopeBatch, Selector, egress_client::EgressClient,
    ingress_client::IngressClient, selector::Message as Sel,
};
use plumbing::metrics::Registry;
use plumbing::shutdown::Shutdown;
use plumbing::tls::dev::DevPki;
use tokio::net::{TcpListener, UdpSocket};
use tonic::transport::Channel;

pub struct Pki {
    pub dir: tempfile::TempDir,
    pub pki: DevPki,
}

pub fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let pki = DevPki::generate(dir.path()).unwrap();
    Pki { dir, pki }
}

/// A doppler on its own runtime thread.
pub struct Doppler {
    pub addr: SocketAddr,
    pub registry: Registry,
    runtime: tokio::runtime::Handle,
    kill: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Doppler {
    /// Starts a doppler on `addr` (`127.0.0.1:0` for any port).
    pub fn start(pki: &Pki, addr: SocketAddr) -> Doppler {
        let files = pki.pki.files("doppler");
        let config = doppler::Config::for_tests(Some(doppler::config::TlsPaths {
            ca: files.ca.clone().unwrap(),
            cert: files.cert.clone(),
            key: files.key.clone(),
        }));
        let registry = Registry::new();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (kill_tx, kill_rx) = std::sync::mpsc::channel::<()>();
        let reg = registry.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let handle = rt.handle().clone();
            rt.block_on(async {
                let grpc = TcpListener::bind(addr).await.unwrap();
                addr_tx.send((grpc.local_addr().unwrap(), handle)).unwrap();
                let shutdown = Shutdown::new();
                tokio::spawn(doppler::run_with_registry(
                    config,
                    doppler::Listeners {
                        grpc,
                        admin: None,
                        pprof: None,
                    },
                    shutdown,
                    reg,
                ));
            });
            let _ = kill_rx.recv();
            rt.shutdown_background();
        });
        let (addr, runtime) = addr_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        Doppler {
            addr,
            registry,
            runtime,
            kill: Some(kill_tx),
            thread: Some(thread),
        }
    }

    /// Freezes the doppler as SIGSTOP would: its only runtime worker blocks, so
    /// nothing reads its sockets while the kernel keeps them open (and keeps
    /// acknowledging data until the buffers fill). Thaws when the guard drops.
    pub fn freeze(&self) -> Frozen {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
        self.runtime.spawn(async move {
            let _ = started_tx.send(());
            let _ = rx.recv();
        });
        started_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the freezing task runs");
        Frozen(Some(tx))
    }

    /// Kills the doppler: its runtime is dropped, every socket closes.
    pub fn kill(&mut self) {
        if let Some(k) = self.kill.take() {
            let _ = k.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    pub fn channel(&self, pki: &Pki) -> Channel {
        let cfg = plumbing::tls::client_config(&pki.pki.files("client")).unwrap();
        plumbing::tls::grpc::channel(&self.addr.to_string(), Some((cfg, "doppler"))).unwrap()
    }

    /// A BatchedReceiver subscription to every envelope type (all source ids).
    pub async fn subscribe_all(&self, pki: &Pki) -> tonic::Streaming<EnvelopeBatch> {
        let sel = |m| Selector {
            source_id: String::new(),
            message: Some(m),
        };
        let req = EgressBatchRequest {
            shard_id: String::new(),
            use_preferred_tags: true,
            selectors: vec![
                sel(Sel::Log(LogSelector {})),
                sel(Sel::Counter(CounterSelector::default())),
                sel(Sel::Gauge(GaugeSelector::default())),
                sel(Sel::Timer(TimerSelector {})),
                sel(Sel::Event(EventSelector {})),
            ],
            ..Default::default()
        };
        let mut client = EgressClient::new(self.channel(pki)).max_decoding_message_size(64 << 20);
        let stream = client.batched_receiver(req).await.unwrap().into_inner();
        eventually(
            || self.registry.gauge_value("subscriptions", &[]).unwrap_or(0) >= 1,
            "doppler subscription registered",
        )
        .await;
        stream
    }
}

/// A frozen doppler; dropping it thaws the doppler.
pub struct Frozen(Option<std::sync::mpsc::Sender<()>>);

impl Drop for Frozen {
    fn drop(&mut self) {
        self.0.take();
    }
}

impl Drop for Doppler {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running agent.
pub struct Agent {
    pub grpc: SocketAddr,
    pub udp: SocketAddr,
    pub registry: Registry,
    pub shutdown: Shutdown,
    pub handle: tokio::task::JoinHandle<Result<(), metron_agent::Error>>,
}

pub async fn start_agent(
    pki: &Pki,
    dopplers: Vec<String>,
    tweak: impl FnOnce(&mut metron_agent::Config),
) -> Agent {
    let files = pki.pki.files("metron");
    let mut config = metron_agent::Config::for_tests(
        metron_agent::config::TlsPaths {
            ca: files.ca.clone().unwrap(),
            cert: files.cert.clone(),
            key: files.key.clone(),
        },
        dopplers,
    );
    tweak(&mut config);
    let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let grpc_addr = grpc.local_addr().unwrap();
    let udp_addr = udp.local_addr().unwrap();
    let registry = Registry::new();
    let shutdown = Shutdown::new();
    let handle = tokio::spawn(metron_agent::run_with_registry(
        config,
        metron_agent::Listeners {
            udp: Some(udp),
            grpc,
            admin: None,
        },
        shutdown.clone(),
        registry.clone(),
    ));
    Agent {
        grpc: grpc_addr,
        udp: udp_addr,
        registry,
        shutdown,
        handle,
    }
}

impl Agent {
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.registry.counter_value(name, labels).unwrap_or(0)
    }

    pub fn gauge(&self, name: &str) -> i64 {
        self.registry.gauge_value(name, &[]).unwrap_or(0)
    }

    /// Waits until both pools have all their streams.
    pub async fn wait_streams(&self, v1: i64, v2: i64) {
        eventually(
            || self.gauge("doppler_v1_streams") == v1 && self.gauge("doppler_v2_streams") == v2,
            &format!("{v1} v1 and {v2} v2 streams"),
        )
        .await;
    }

    /// v2 ingress client presenting identity `name` (server name `metron`).
    pub fn ingress_as(&self, pki: &Pki, name: &str) -> IngressClient<Channel> {
        let cfg = plumbing::tls::client_config(&pki.pki.files(name)).unwrap();
        let ch =
            plumbing::tls::grpc::channel(&self.grpc.to_string(), Some((cfg, "metron"))).unwrap();
        IngressClient::new(ch)
    }

    pub async fn send_batches(&self, pki: &Pki, batches: Vec<Vec<Envelope>>) {
        let stream = futures::stream::iter(
            batches
                .into_iter()
                .map(|batch| EnvelopeBatch { batch })
                .collect::<Vec<_>>(),
        );
        self.ingress_as(pki, "client")
            .batch_sender(stream)
            .await
            .unwrap();
    }

    pub async fn send_udp(&self, datagrams: &[Vec<u8>]) {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for d in datagrams {
            sock.send_to(d, self.udp).await.unwrap();
        }
    }

    pub async fn stop(self) {
        self.shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(15), self.handle)
            .await
            .expect("agent stops in time")
            .unwrap()
            .unwrap();
    }
}

/// Collects envelopes from `stream` until `done(&collected)` or the timeout.
pub async fn collect_until(
    stream: &mut tonic::Streaming<EnvelopeBatch>,
    timeout: Duration,
    mut done: impl FnMut(&[Envelope]) -> bool,
) -> Vec<Envelope> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while !done(&got) {
        match tokio::time::timeout_at(deadline, stream.message()).await {
            Ok(Ok(Some(batch))) => got.extend(batch.batch),
            Ok(other) => panic!("egress stream ended: {other:?}"),
            Err(_) => break,
        }
    }
    got
}

/// Polls `cond` every 20 ms for up to 15 s.
pub async fn eventually(mut cond: impl FnMut() -> bool, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
