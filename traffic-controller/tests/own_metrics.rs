//! The traffic controller's own metrics reach the agent as v2 envelopes
//! (reference §12.7): an in-process TC with mutual TLS towards a fake doppler
//! (`plumbing.Doppler/BatchSubscribe`) and a fake agent
//! (`loggregator.v2.Ingress/Send`, server name `metron`), a real firehose
//! WebSocket consumer, and a short emitter interval.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use envelope_proto::events::{self, envelope::EventType, log_message::MessageType};
use envelope_proto::loggregator_v2::ingress_server::{Ingress, IngressServer};
use envelope_proto::loggregator_v2::{
    BatchSenderResponse, Envelope, EnvelopeBatch, IngressResponse, SendResponse, envelope,
};
use envelope_proto::plumbing_v1::doppler_server::{Doppler, DopplerServer};
use envelope_proto::plumbing_v1::{
    BatchResponse, ContainerMetricsRequest, ContainerMetricsResponse, RecentLogsRequest,
    RecentLogsResponse, Response as V1Response, SubscriptionRequest,
};
use futures::{Stream, StreamExt};
use plumbing::shutdown::Shutdown;
use plumbing::tls::dev::DevPki;
use prost::Message as _;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::protocol::Message;

// ---------------------------------------------------------------- fake agent

#[derive(Clone, Default)]
struct FakeAgent {
    batches: Arc<Mutex<Vec<EnvelopeBatch>>>,
}

impl FakeAgent {
    fn batches(&self) -> Vec<EnvelopeBatch> {
        self.batches.lock().unwrap().clone()
    }
}

#[tonic::async_trait]
impl Ingress for FakeAgent {
    async fn sender(
        &self,
        _r: tonic::Request<tonic::Streaming<Envelope>>,
    ) -> Result<tonic::Response<IngressResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("test agent"))
    }
    async fn batch_sender(
        &self,
        _r: tonic::Request<tonic::Streaming<EnvelopeBatch>>,
    ) -> Result<tonic::Response<BatchSenderResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("test agent"))
    }
    async fn send(
        &self,
        r: tonic::Request<EnvelopeBatch>,
    ) -> Result<tonic::Response<SendResponse>, tonic::Status> {
        self.batches.lock().unwrap().push(r.into_inner());
        Ok(tonic::Response::new(SendResponse {}))
    }
}

async fn start_agent(pki: &DevPki) -> (FakeAgent, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let agent = FakeAgent::default();
    let tls = plumbing::tls::server_config(&pki.files("metron")).unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(IngressServer::new(agent.clone()))
            .serve_with_incoming(plumbing::tls::grpc::serve_incoming(listener, Some(tls))),
    );
    (agent, addr)
}

// -------------------------------------------------------------- fake doppler

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, tonic::Status>> + Send>>;

/// Serves `BatchSubscribe`: every subscriber gets each batch broadcast by
/// the test.
#[derive(Clone)]
struct FakeDoppler {
    tx: broadcast::Sender<Vec<Bytes>>,
    subscriptions: Arc<AtomicUsize>,
}

#[tonic::async_trait]
impl Doppler for FakeDoppler {
    type SubscribeStream = BoxStream<V1Response>;
    type BatchSubscribeStream = BoxStream<BatchResponse>;

    async fn subscribe(
        &self,
        _r: tonic::Request<SubscriptionRequest>,
    ) -> Result<tonic::Response<Self::SubscribeStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("test doppler"))
    }

    async fn batch_subscribe(
        &self,
        _r: tonic::Request<SubscriptionRequest>,
    ) -> Result<tonic::Response<Self::BatchSubscribeStream>, tonic::Status> {
        let rx = self.tx.subscribe();
        self.subscriptions.fetch_add(1, Ordering::SeqCst);
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(payload) => return Some((Ok(BatchResponse { payload }), rx)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        Ok(tonic::Response::new(Box::pin(stream)))
    }

    async fn container_metrics(
        &self,
        _r: tonic::Request<ContainerMetricsRequest>,
    ) -> Result<tonic::Response<ContainerMetricsResponse>, tonic::Status> {
        Ok(tonic::Response::new(ContainerMetricsResponse::default()))
    }

    async fn recent_logs(
        &self,
        _r: tonic::Request<RecentLogsRequest>,
    ) -> Result<tonic::Response<RecentLogsResponse>, tonic::Status> {
        Ok(tonic::Response::new(RecentLogsResponse::default()))
    }
}

async fn start_doppler(pki: &DevPki) -> (FakeDoppler, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let doppler = FakeDoppler {
        tx: broadcast::channel(64).0,
        subscriptions: Arc::default(),
    };
    let tls = plumbing::tls::server_config(&pki.files("doppler")).unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(DopplerServer::new(doppler.clone()))
            .serve_with_incoming(plumbing::tls::grpc::serve_incoming(listener, Some(tls))),
    );
    (doppler, addr)
}

fn log_payload(msg: &str) -> Bytes {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let env = events::Envelope {
        origin: Some("test-origin".into()),
        event_type: Some(EventType::LogMessage as i32),
        timestamp: Some(ts),
        log_message: Some(events::LogMessage {
            message: Some(Bytes::from(msg.to_owned())),
            message_type: Some(MessageType::Out as i32),
            timestamp: Some(ts),
            app_id: Some("11111111-2222-3333-4444-555555555555".into()),
            source_type: Some("APP/PROC/WEB".into()),
            source_instance: Some("0".into()),
        }),
        ..Default::default()
    };
    Bytes::from(env.encode_to_vec())
}

// ------------------------------------------------------------ traffic controller

struct Tc {
    ws: SocketAddr,
    shutdown: Shutdown,
    handle: tokio::task::JoinHandle<Result<(), traffic_controller::Error>>,
}

async fn start_tc(
    pki: &DevPki,
    dopplers: Vec<String>,
    agent: SocketAddr,
    interval: Duration,
) -> Tc {
    let files = pki.files("trafficcontroller");
    let mut config = traffic_controller::Config::for_tests(
        dopplers,
        Some(traffic_controller::config::TlsPaths {
            ca: files.ca.clone().unwrap(),
            cert: files.cert.clone(),
            key: files.key.clone(),
        }),
    );
    config.agent_addr = Some(agent.to_string());
    config.metric_emitter_interval = interval;
    let ws = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = ws.local_addr().unwrap();
    let shutdown = Shutdown::new();
    let handle = tokio::spawn(traffic_controller::run(
        config,
        traffic_controller::Listeners {
            ws,
            gateway: None,
            admin: None,
        },
        shutdown.clone(),
    ));
    Tc {
        ws: addr,
        shutdown,
        handle,
    }
}

impl Tc {
    async fn stop(self) {
        self.shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(10), self.handle)
            .await
            .expect("TC stops")
            .expect("no panic")
            .expect("TC ran");
    }
}

// ---------------------------------------------------------------- envelopes

/// A metric of one batch: counter `(delta, total)` or gauge `(unit, value)`.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Counter(u64, u64),
    Gauge(String, f64),
}

/// One batch as `(name, tags other than origin/metric_version) -> value`,
/// after checking the identity every envelope must carry.
fn metrics_of(batch: &EnvelopeBatch) -> BTreeMap<(String, String), Value> {
    let mut out = BTreeMap::new();
    for e in &batch.batch {
        assert_eq!(e.source_id, "traffic_controller", "{e:?}");
        assert!(e.timestamp > 0, "{e:?}");
        assert_eq!(
            e.tags.get("origin").map(String::as_str),
            Some("loggregator.trafficcontroller"),
            "{e:?}"
        );
        assert_eq!(
            e.tags.get("metric_version").map(String::as_str),
            Some("2.0"),
            "{e:?}"
        );
        let extra: Vec<String> = e
            .tags
            .iter()
            .filter(|(k, _)| *k != "origin" && *k != "metric_version")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let extra = extra.join(",");
        match &e.message {
            Some(envelope::Message::Counter(c)) => {
                out.insert((c.name.clone(), extra), Value::Counter(c.delta, c.total));
            }
            Some(envelope::Message::Gauge(g)) => {
                assert_eq!(g.metrics.len(), 1, "{e:?}");
                for (name, v) in &g.metrics {
                    out.insert(
                        (name.clone(), extra.clone()),
                        Value::Gauge(v.unit.clone(), v.value),
                    );
                }
            }
            other => panic!("unexpected envelope at the agent: {other:?}"),
        }
    }
    out
}

fn key(name: &str, tags: &str) -> (String, String) {
    (name.to_owned(), tags.to_owned())
}

fn counter(m: &BTreeMap<(String, String), Value>, name: &str, tags: &str) -> (u64, u64) {
    match m.get(&key(name, tags)) {
        Some(Value::Counter(d, t)) => (*d, *t),
        other => panic!("counter {name}{{{tags}}}: {other:?}"),
    }
}

fn gauge(m: &BTreeMap<(String, String), Value>, name: &str) -> f64 {
    match m.get(&key(name, "")) {
        Some(Value::Gauge(unit, v)) => {
            assert_eq!(unit, "connections", "{name}");
            *v
        }
        other => panic!("gauge {name}: {other:?}"),
    }
}

/// Polls `cond` every 20 ms for up to 10 s.
async fn eventually(mut cond: impl FnMut() -> bool, what: &str) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Waits for a batch (after the first `skip`) satisfying `cond`; returns its index.
async fn wait_batch(
    agent: &FakeAgent,
    skip: usize,
    cond: impl Fn(&BTreeMap<(String, String), Value>) -> bool,
    what: &str,
) -> usize {
    let mut found = None;
    eventually(
        || {
            found = agent
                .batches()
                .iter()
                .enumerate()
                .skip(skip)
                .find(|(_, b)| cond(&metrics_of(b)))
                .map(|(i, _)| i);
            found.is_some()
        },
        what,
    )
    .await;
    found.unwrap()
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Reads `n` binary messages (envelopes) from `ws`.
async fn read_binary(ws: &mut Ws, n: usize) {
    let mut got = 0;
    while got < n {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("envelope in time")
            .expect("stream open")
            .expect("websocket frame");
        if matches!(msg, Message::Binary(_)) {
            got += 1;
        }
    }
}

// --------------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_metrics_reach_the_agent_with_deltas_since_the_last_emission() {
    let dir = tempfile::tempdir().unwrap();
    let pki = DevPki::generate(dir.path()).unwrap();
    let (agent, agent_addr) = start_agent(&pki).await;
    let (doppler, doppler_addr) = start_doppler(&pki).await;
    let tc = start_tc(
        &pki,
        vec![doppler_addr.to_string()],
        agent_addr,
        Duration::from_millis(200),
    )
    .await;

    // The first batch goes out at startup, before any traffic.
    let first = wait_batch(&agent, 0, |_| true, "a first batch").await;
    let batches = agent.batches();
    let m = metrics_of(&batches[first]);
    assert_eq!(
        m.keys().cloned().collect::<Vec<_>>(),
        vec![
            key("doppler_proxy.app_streams", ""),
            key("doppler_proxy.firehoses", ""),
            key("doppler_proxy.slow_consumer", ""),
            key("egress", "endpoint=firehose"),
            key("egress", "endpoint=stream"),
            key("ingress", "protocol=grpc"),
        ]
    );
    assert_eq!(batches[first].batch.len(), 6, "one envelope per metric");
    let Some(envelope::Message::Counter(c)) = &batches[first].batch[0].message else {
        panic!("counters come first");
    };
    assert_eq!(c.name, "egress");

    // A firehose consumer and three envelopes.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/firehose/sub-1", tc.ws))
        .await
        .expect("websocket connect");
    eventually(
        || doppler.subscriptions.load(Ordering::SeqCst) >= 1,
        "the TC subscribed to the doppler",
    )
    .await;
    doppler
        .tx
        .send((0..3).map(|i| log_payload(&format!("a{i}"))).collect())
        .unwrap();
    read_binary(&mut ws, 3).await;
    let before = wait_batch(
        &agent,
        first + 1,
        |m| {
            counter(m, "egress", "endpoint=firehose").1 == 3
                && gauge(m, "doppler_proxy.firehoses") == 1.0
        },
        "a batch with 3 envelopes written and one firehose",
    )
    .await;
    let m = metrics_of(&agent.batches()[before]);
    assert_eq!(counter(&m, "ingress", "protocol=grpc").1, 3);

    // Two more: the next batch with total 5 carries only the increase.
    doppler
        .tx
        .send((0..2).map(|i| log_payload(&format!("b{i}"))).collect())
        .unwrap();
    read_binary(&mut ws, 2).await;
    let after = wait_batch(
        &agent,
        before + 1,
        |m| counter(m, "egress", "endpoint=firehose").1 == 5,
        "a batch with 5 envelopes written",
    )
    .await;
    let batches = agent.batches();
    let prev = metrics_of(&batches[after - 1]);
    let m = metrics_of(&batches[after]);
    let prev_total = counter(&prev, "egress", "endpoint=firehose").1;
    assert!(prev_total >= 3, "{prev:?}");
    assert_eq!(
        counter(&m, "egress", "endpoint=firehose"),
        (5 - prev_total, 5),
        "delta is the increase since the previous batch"
    );
    assert!(counter(&m, "egress", "endpoint=firehose").0 <= 2);
    assert_eq!(counter(&m, "ingress", "protocol=grpc").1, 5);
    assert_eq!(counter(&m, "egress", "endpoint=stream"), (0, 0));
    assert_eq!(counter(&m, "doppler_proxy.slow_consumer", ""), (0, 0));
    assert_eq!(gauge(&m, "doppler_proxy.app_streams"), 0.0);

    // Every counter of every batch: delta = total - previous total.
    let mut previous: BTreeMap<(String, String), u64> = BTreeMap::new();
    for b in &batches {
        for (k, v) in metrics_of(b) {
            if let Value::Counter(delta, total) = v {
                let p = previous.insert(k.clone(), total).unwrap_or(0);
                assert_eq!(delta, total - p, "{k:?}");
            }
        }
    }

    // The consumer leaves: the firehose gauge goes back to 0.
    let _ = ws.close(None).await;
    drop(ws);
    wait_batch(
        &agent,
        after + 1,
        |m| gauge(m, "doppler_proxy.firehoses") == 0.0,
        "the firehose gauge back at 0",
    )
    .await;
    tc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_interval_emits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pki = DevPki::generate(dir.path()).unwrap();
    let (agent, agent_addr) = start_agent(&pki).await;
    let (_doppler, doppler_addr) = start_doppler(&pki).await;
    let tc = start_tc(
        &pki,
        vec![doppler_addr.to_string()],
        agent_addr,
        Duration::ZERO,
    )
    .await;
    // Five times the other test's interval, with a consumer connected.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/firehose/sub-0", tc.ws))
        .await
        .expect("websocket connect");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(agent.batches().is_empty(), "{:?}", agent.batches());
    let _ = ws.close(None).await;
    tc.stop().await;
}
