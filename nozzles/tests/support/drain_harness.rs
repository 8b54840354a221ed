//! Drives a drain [`Manager`] directly (no doppler): envelopes go through
//! its dispatcher, drains write to real receivers. Also a capturing v2
//! Ingress server (for app-visible notices) and envelope builders.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use envelope_proto::loggregator_v2::{
    BatchSenderResponse, Counter, Envelope, EnvelopeBatch, Event, Gauge, GaugeValue,
    IngressResponse, Log, SendResponse, Timer, envelope::Message, ingress_server,
};
use nozzles::drain::bindings::DrainSpec;
use nozzles::drain::manager::{Dispatcher, DrainSettings, Manager};
use nozzles::drain::metrics::DrainMetrics;
use nozzles::drain::notice::{self, Notices};
use nozzles::tlsutil::TrustOptions;
use parking_lot::Mutex;
use plumbing::metrics::Registry;
use plumbing::shutdown::Shutdown;
use tokio_util::sync::CancellationToken;

/// A manager plus what the test needs to drive and observe it.
pub struct Harness {
    pub manager: Manager,
    pub dispatcher: Dispatcher,
    pub registry: Registry,
    pub metrics: DrainMetrics,
    pub shutdown: Shutdown,
    root: CancellationToken,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.manager.stop_all();
        self.root.cancel();
        self.shutdown.trigger();
    }
}

/// Settings trusting `ca_pem` (besides binding CAs), with `buffer` slots per drain.
pub fn settings(ca_pem: Option<&str>, buffer: usize) -> DrainSettings {
    DrainSettings {
        trust: TrustOptions {
            system_roots: false,
            extra_ca_pem: ca_pem.map(|p| p.as_bytes().to_vec()),
            skip_verify: false,
        },
        default_metadata: true,
        buffer_size: buffer,
        idle_timeout: Duration::from_secs(600),
    }
}

/// A harness; notices go to `ingress` (a `host:port` of a plaintext v2 Ingress) when given.
pub fn harness(settings: DrainSettings, ingress: Option<String>) -> Harness {
    let registry = Registry::new();
    let metrics = DrainMetrics::new(&registry);
    let shutdown = Shutdown::new();
    let notices = match ingress {
        Some(addr) => {
            let ch = plumbing::tls::grpc::channel(&addr, None).unwrap();
            notice::start(
                ch,
                metrics.notices_sent.clone(),
                metrics.notices_dropped.clone(),
                &shutdown,
            )
        }
        None => Notices::disabled(metrics.notices_dropped.clone()),
    };
    let root = shutdown.token().child_token();
    let manager = Manager::new(
        settings,
        metrics.clone(),
        notices,
        root.clone(),
        shutdown.tracker().clone(),
    );
    let dispatcher = manager.dispatcher();
    Harness {
        manager,
        dispatcher,
        registry,
        metrics,
        shutdown,
        root,
    }
}

/// A drain binding for `app` with default hostname `org.space.app`.
pub fn spec(app: &str, url: &str, ca: &str) -> DrainSpec {
    DrainSpec {
        app_id: app.into(),
        url: url.into(),
        hostname: "org.space.app".into(),
        cert: String::new(),
        key: String::new(),
        ca: ca.into(),
    }
}

pub const TS: i64 = 1_700_000_000_123_456_789;

fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A v2 log.
pub fn log(app: &str, instance: &str, err: bool, payload: &str, t: &[(&str, &str)]) -> Envelope {
    Envelope {
        timestamp: TS,
        source_id: app.into(),
        instance_id: instance.into(),
        deprecated_tags: BTreeMap::new(),
        tags: tags(t),
        message: Some(Message::Log(Log {
            payload: payload.as_bytes().to_vec().into(),
            r#type: i32::from(err),
        })),
    }
}

/// A v2 gauge with one metric.
pub fn gauge(app: &str, name: &str, value: f64, unit: &str) -> Envelope {
    let mut metrics = BTreeMap::new();
    metrics.insert(
        name.to_owned(),
        GaugeValue {
            unit: unit.into(),
            value,
        },
    );
    Envelope {
        timestamp: TS,
        source_id: app.into(),
        instance_id: "3".into(),
        deprecated_tags: BTreeMap::new(),
        tags: BTreeMap::new(),
        message: Some(Message::Gauge(Gauge { metrics })),
    }
}

/// A v2 counter.
pub fn counter(app: &str, name: &str, delta: u64, total: u64, t: &[(&str, &str)]) -> Envelope {
    Envelope {
        timestamp: TS,
        source_id: app.into(),
        instance_id: "1".into(),
        deprecated_tags: BTreeMap::new(),
        tags: tags(t),
        message: Some(Message::Counter(Counter {
            name: name.into(),
            delta,
            total,
        })),
    }
}

/// A v2 timer.
pub fn timer(app: &str) -> Envelope {
    Envelope {
        timestamp: TS,
        source_id: app.into(),
        instance_id: "0".into(),
        deprecated_tags: BTreeMap::new(),
        tags: BTreeMap::new(),
        message: Some(Message::Timer(Timer {
            name: "http".into(),
            start: 1,
            stop: 2,
        })),
    }
}

/// A v2 event.
pub fn event(app: &str, title: &str, body: &str) -> Envelope {
    Envelope {
        timestamp: TS,
        source_id: app.into(),
        instance_id: String::new(),
        deprecated_tags: BTreeMap::new(),
        tags: BTreeMap::new(),
        message: Some(Message::Event(Event {
            title: title.into(),
            body: body.into(),
        })),
    }
}

/// A plaintext v2 Ingress server recording everything it receives.
#[derive(Clone, Default)]
pub struct CaptureIngress {
    pub received: Arc<Mutex<Vec<Envelope>>>,
}

#[tonic::async_trait]
impl ingress_server::Ingress for CaptureIngress {
    async fn sender(
        &self,
        request: tonic::Request<tonic::Streaming<Envelope>>,
    ) -> Result<tonic::Response<IngressResponse>, tonic::Status> {
        let mut s = request.into_inner();
        while let Some(e) = s.message().await? {
            self.received.lock().push(e);
        }
        Ok(tonic::Response::new(IngressResponse {}))
    }

    async fn batch_sender(
        &self,
        request: tonic::Request<tonic::Streaming<EnvelopeBatch>>,
    ) -> Result<tonic::Response<BatchSenderResponse>, tonic::Status> {
        let mut s = request.into_inner();
        while let Some(b) = s.message().await? {
            self.received.lock().extend(b.batch);
        }
        Ok(tonic::Response::new(BatchSenderResponse {}))
    }

    async fn send(
        &self,
        request: tonic::Request<EnvelopeBatch>,
    ) -> Result<tonic::Response<SendResponse>, tonic::Status> {
        self.received.lock().extend(request.into_inner().batch);
        Ok(tonic::Response::new(SendResponse {}))
    }
}

/// Starts a [`CaptureIngress`] on a loopback port; returns it and its address.
pub async fn capture_ingress() -> (CaptureIngress, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let svc = CaptureIngress::default();
    let server = ingress_server::IngressServer::new(svc.clone());
    tokio::spawn(async move {
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let _ = tonic::transport::Server::builder()
            .add_service(server)
            .serve_with_incoming(incoming)
            .await;
    });
    (svc, addr)
}

/// Polls `f` until it returns `Some` or `timeout` passes.
pub async fn eventually<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if tokio::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
