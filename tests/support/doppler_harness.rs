//! In-process doppler for tests: mTLS with a generated dev PKI, ephemeral
//! ports, real tonic clients, helpers to build envelopes and to wait for
//! conditions.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use doppler::Config;
use doppler::config::TlsPaths;
use envelope_proto::events;
use envelope_proto::loggregator_v2::{
    self as v2, EgressBatchRequest, Envelope, EnvelopeBatch, Selector, egress_client::EgressClient,
    ingress_client::IngressClient, selector::Message as SelMsg,
};
use envelope_proto::plumbing_v1::{
    EnvelopeData, Filter, SubscriptionRequest, doppler_client::DopplerClient,
    doppler_ingestor_client::DopplerIngestorClient, filter::Message as FilterMsg,
};
use plumbing::metrics::Registry;
use plumbing::shutdown::Shutdown;
use plumbing::tls::dev::DevPki;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

pub const MAX_MSG: usize = 64 * 1024 * 1024;

/// A running doppler.
pub struct TestDoppler {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub registry: Registry,
    pub shutdown: Shutdown,
    pub pki: DevPki,
    pub handle: Option<JoinHandle<Result<(), doppler::Error>>>,
    _dir: tempfile::TempDir,
}

pub async fn start() -> TestDoppler {
    start_with(|_| {}).await
}

pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestDoppler {
    let dir = tempfile::tempdir().unwrap();
    let pki = DevPki::generate(dir.path()).unwrap();
    let files = pki.files("doppler");
    let mut config = Config::for_tests(Some(TlsPaths {
        ca: files.ca.clone().unwrap(),
        cert: files.cert.clone(),
        key: files.key.clone(),
    }));
    tweak(&mut config);
    let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = grpc.local_addr().unwrap();
    let admin_addr = admin.local_addr().unwrap();
    let registry = Registry::new();
    let shutdown = Shutdown::new();
    let handle = tokio::spawn(doppler::run_with_registry(
        config,
        doppler::Listeners {
            grpc,
            admin: Some(admin),
            pprof: None,
        },
        shutdown.clone(),
        registry.clone(),
    ));
    TestDoppler {
        addr,
        admin: admin_addr,
        registry,
        shutdown,
        pki,
        handle: Some(handle),
        _dir: dir,
    }
}

impl TestDoppler {
    /// mTLS channel presenting identity `name` (server name `doppler`).
    pub fn channel_as(&self, name: &str) -> Channel {
        let cfg = plumbing::tls::client_config(&self.pki.files(name)).unwrap();
        plumbing::tls::grpc::channel(&self.addr.to_string(), Some((cfg, "doppler"))).unwrap()
    }

    pub fn channel(&self) -> Channel {
        self.channel_as("client")
    }

    pub fn ingress(&self) -> IngressClient<Channel> {
        IngressClient::new(self.channel())
            .max_decoding_message_size(MAX_MSG)
            .max_encoding_message_size(MAX_MSG)
    }

    pub fn egress(&self) -> EgressClient<Channel> {
        EgressClient::new(self.channel()).max_decoding_message_size(MAX_MSG)
    }

    pub fn v1(&self) -> DopplerClient<Channel> {
        DopplerClient::new(self.channel()).max_decoding_message_size(MAX_MSG)
    }

    pub fn pusher(&self) -> DopplerIngestorClient<Channel> {
        DopplerIngestorClient::new(self.channel())
    }

    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.registry.counter_value(name, labels).unwrap_or(0)
    }

    pub fn subscriptions(&self) -> i64 {
        self.registry.gauge_value("subscriptions", &[]).unwrap_or(0)
    }

    /// Waits until `n` subscriptions are registered.
    pub async fn wait_subscriptions(&self, n: i64) {
        eventually(|| self.subscriptions() == n, &format!("{n} subscriptions")).await;
    }

    /// Sends batches on one BatchSender stream and waits for the response.
    pub async fn send(&self, batches: Vec<Vec<Envelope>>) {
        let stream = futures::stream::iter(
            batches
                .into_iter()
                .map(|batch| EnvelopeBatch { batch })
                .collect::<Vec<_>>(),
        );
        self.ingress().batch_sender(stream).await.unwrap();
    }

    /// Pushes v1 envelopes on one Pusher stream.
    pub async fn push_v1(&self, envs: Vec<events::Envelope>) {
        let msgs: Vec<EnvelopeData> = envs
            .iter()
            .map(|e| EnvelopeData {
                payload: Bytes::from(envelope_proto::v1::encode(e).unwrap()),
            })
            .collect();
        self.pusher()
            .pusher(futures::stream::iter(msgs))
            .await
            .unwrap();
    }

    /// Opens a v2 BatchedReceiver subscription.
    pub async fn subscribe(&self, req: EgressBatchRequest) -> tonic::Streaming<EnvelopeBatch> {
        self.egress()
            .batched_receiver(req)
            .await
            .unwrap()
            .into_inner()
    }

    /// Opens a v1 BatchSubscribe subscription.
    pub async fn subscribe_v1(
        &self,
        shard: &str,
        app: &str,
        filter: Option<FilterMsg>,
    ) -> tonic::Streaming<envelope_proto::plumbing_v1::BatchResponse> {
        let req = SubscriptionRequest {
            shard_id: shard.into(),
            filter: if app.is_empty() && filter.is_none() {
                None
            } else {
                Some(Filter {
                    app_id: app.into(),
                    message: filter,
                })
            },
        };
        self.v1().batch_subscribe(req).await.unwrap().into_inner()
    }

    pub async fn metrics_text(&self) -> String {
        http_get(self.admin, "/metrics").await
    }

    pub async fn stop(mut self) {
        self.shutdown.trigger();
        if let Some(h) = self.handle.take() {
            tokio::time::timeout(Duration::from_secs(10), h)
                .await
                .expect("doppler stops within 10 s")
                .unwrap()
                .unwrap();
        }
    }
}

/// Minimal HTTP/1.1 GET returning the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or(out)
}

pub async fn eventually(mut cond: impl FnMut() -> bool, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Receives envelopes until `n` arrived (or panics after `secs`).
pub async fn recv_n(
    stream: &mut tonic::Streaming<EnvelopeBatch>,
    n: usize,
    secs: u64,
) -> Vec<Envelope> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while out.len() < n {
        let msg = tokio::time::timeout_at(deadline, stream.message())
            .await
            .unwrap_or_else(|_| panic!("timed out with {} of {n} envelopes", out.len()))
            .unwrap()
            .expect("stream ended early");
        out.extend(msg.batch);
    }
    out
}

/// Receives whatever arrives within `ms` milliseconds.
pub async fn recv_for(stream: &mut tonic::Streaming<EnvelopeBatch>, ms: u64) -> Vec<Envelope> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(ms);
    while let Ok(Ok(Some(msg))) = tokio::time::timeout_at(deadline, stream.message()).await {
        out.extend(msg.batch);
    }
    out
}

/// v1 variant of [`recv_n`].
pub async fn recv_v1_n(
    stream: &mut tonic::Streaming<envelope_proto::plumbing_v1::BatchResponse>,
    n: usize,
    secs: u64,
) -> Vec<events::Envelope> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while out.len() < n {
        let msg = tokio::time::timeout_at(deadline, stream.message())
            .await
            .unwrap_or_else(|_| panic!("timed out with {} of {n} envelopes", out.len()))
            .unwrap()
            .expect("stream ended early");
        for p in msg.payload {
            out.push(envelope_proto::v1::decode(&p).unwrap());
        }
    }
    out
}

/// v1 variant of [`recv_for`].
pub async fn recv_v1_for(
    stream: &mut tonic::Streaming<envelope_proto::plumbing_v1::BatchResponse>,
    ms: u64,
) -> Vec<events::Envelope> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(ms);
    while let Ok(Ok(Some(msg))) = tokio::time::timeout_at(deadline, stream.message()).await {
        for p in msg.payload {
            out.push(envelope_proto::v1::decode(&p).unwrap());
        }
    }
    out
}

// ---- envelope builders ----

pub fn log(source: &str, text: &str) -> Envelope {
    Envelope {
        timestamp: 1_700_000_000_000_000_000,
        source_id: source.into(),
        instance_id: "0".into(),
        tags: BTreeMap::from([("source_type".into(), "APP/PROC/WEB".into())]),
        message: Some(v2::envelope::Message::Log(v2::Log {
            payload: Bytes::copy_from_slice(text.as_bytes()),
            r#type: v2::log::Type::Out as i32,
        })),
        ..Default::default()
    }
}

pub fn counter(source: &str, name: &str, delta: u64) -> Envelope {
    Envelope {
        timestamp: 1,
        source_id: source.into(),
        message: Some(v2::envelope::Message::Counter(v2::Counter {
            name: name.into(),
            delta,
            total: 0,
        })),
        ..Default::default()
    }
}

pub fn gauge(source: &str, names: &[&str]) -> Envelope {
    Envelope {
        timestamp: 1,
        source_id: source.into(),
        message: Some(v2::envelope::Message::Gauge(v2::Gauge {
            metrics: names
                .iter()
                .map(|n| {
                    (
                        (*n).to_owned(),
                        v2::GaugeValue {
                            unit: "u".into(),
                            value: 1.0,
                        },
                    )
                })
                .collect(),
        })),
        ..Default::default()
    }
}

pub fn timer(source: &str, request_id: Option<&str>) -> Envelope {
    let mut tags = BTreeMap::new();
    if let Some(r) = request_id {
        tags.insert("request_id".into(), r.into());
    }
    Envelope {
        timestamp: 1,
        source_id: source.into(),
        tags,
        message: Some(v2::envelope::Message::Timer(v2::Timer {
            name: "http".into(),
            start: 1,
            stop: 2,
        })),
        ..Default::default()
    }
}

pub fn event(source: &str) -> Envelope {
    Envelope {
        timestamp: 1,
        source_id: source.into(),
        message: Some(v2::envelope::Message::Event(v2::Event {
            title: "t".into(),
            body: "b".into(),
        })),
        ..Default::default()
    }
}

pub fn payload_text(e: &Envelope) -> String {
    match &e.message {
        Some(v2::envelope::Message::Log(l)) => String::from_utf8_lossy(&l.payload).into_owned(),
        _ => String::new(),
    }
}

// ---- selector builders ----

pub fn sel_log(source: &str) -> Selector {
    Selector {
        source_id: source.into(),
        message: Some(SelMsg::Log(v2::LogSelector {})),
    }
}

pub fn sel_counter(source: &str, name: &str) -> Selector {
    Selector {
        source_id: source.into(),
        message: Some(SelMsg::Counter(v2::CounterSelector { name: name.into() })),
    }
}

pub fn sel_gauge(source: &str, names: &[&str]) -> Selector {
    Selector {
        source_id: source.into(),
        message: Some(SelMsg::Gauge(v2::GaugeSelector {
            names: names.iter().map(|s| (*s).to_owned()).collect(),
        })),
    }
}

pub fn sel_timer(source: &str) -> Selector {
    Selector {
        source_id: source.into(),
        message: Some(SelMsg::Timer(v2::TimerSelector {})),
    }
}

pub fn sel_event(source: &str) -> Selector {
    Selector {
        source_id: source.into(),
        message: Some(SelMsg::Event(v2::EventSelector {})),
    }
}

pub fn req(selectors: Vec<Selector>) -> EgressBatchRequest {
    EgressBatchRequest {
        selectors,
        use_preferred_tags: true,
        ..Default::default()
    }
}

// ---- v1 builders ----

pub fn v1_log(app: &str, text: &str) -> events::Envelope {
    use events::envelope::EventType;
    events::Envelope {
        origin: Some("test-origin".into()),
        event_type: Some(EventType::LogMessage as i32),
        timestamp: Some(1_700_000_000_000_000_000),
        log_message: Some(events::LogMessage {
            message: Some(Bytes::copy_from_slice(text.as_bytes())),
            message_type: Some(events::log_message::MessageType::Out as i32),
            timestamp: Some(1_700_000_000_000_000_000),
            app_id: Some(app.into()),
            source_type: Some("APP".into()),
            source_instance: Some("0".into()),
        }),
        ..Default::default()
    }
}

pub fn v1_container_metric(app: &str, index: i32, ts: i64, cpu: f64) -> events::Envelope {
    use events::envelope::EventType;
    events::Envelope {
        origin: Some("rep".into()),
        event_type: Some(EventType::ContainerMetric as i32),
        timestamp: Some(ts),
        container_metric: Some(events::ContainerMetric {
            application_id: Some(app.into()),
            instance_index: Some(index),
            cpu_percentage: Some(cpu),
            memory_bytes: Some(1),
            disk_bytes: Some(2),
            memory_bytes_quota: Some(3),
            disk_bytes_quota: Some(4),
        }),
        ..Default::default()
    }
}

pub fn v1_counter(name: &str) -> events::Envelope {
    use events::envelope::EventType;
    events::Envelope {
        origin: Some("test-origin".into()),
        event_type: Some(EventType::CounterEvent as i32),
        timestamp: Some(1),
        counter_event: Some(events::CounterEvent {
            name: Some(name.into()),
            delta: Some(1),
            total: Some(1),
        }),
        ..Default::default()
    }
}

pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// Calls `f` until `done` accepts its result (or panics after 10 s).
pub async fn poll_until<T, F, Fut>(mut f: F, done: impl Fn(&T) -> bool) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let v = f().await;
        if done(&v) {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out polling");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

impl TestDoppler {
    /// mTLS channel with tiny HTTP/2 windows, so a subscriber that stops
    /// reading backs up into doppler's ring quickly.
    pub fn small_window_channel(&self) -> Channel {
        let cfg = plumbing::tls::client_config(&self.pki.files("client")).unwrap();
        let opts = plumbing::tls::grpc::ChannelOptions {
            stream_window: 65_535,
            connection_window: 65_535,
            ..Default::default()
        };
        plumbing::tls::grpc::channel_with(&self.addr.to_string(), Some((cfg, "doppler")), &opts)
            .unwrap()
    }

    /// Raw (bytes) ingress client.
    pub fn raw_ingress(&self) -> envelope_proto::raw::ingress_client::IngressClient<Channel> {
        envelope_proto::raw::ingress_client::IngressClient::new(self.channel())
            .max_encoding_message_size(MAX_MSG)
    }
}
