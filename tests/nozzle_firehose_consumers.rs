//! The nozzle library's consumers against a real cluster: the TC WebSocket
//! firehose (keepalive answered, "missed N" counted instead of stalling),
//! doppler v2 gRPC egress over mTLS (load shared by subscription id), and
//! the RLP gateway's `/v2/read` SSE stream.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/tc_cluster.rs"]
mod tc_cluster;

use std::time::Duration;

use envelope_proto::loggregator_v2::{
    EgressBatchRequest, Envelope, EnvelopeBatch, Log, LogSelector, Selector, envelope::Message,
    ingress_client::IngressClient, selector,
};
use nozzles::firehose::websocket::{FilterType, WsConfig};
use nozzles::firehose::{Feed, FirehoseMetrics, grpc, sse, websocket};
use plumbing::metrics::Registry;
use plumbing::shutdown::Shutdown;
use tc_cluster::{Cluster, log_env};

const APP: &str = "f47ac10b-58cc-4372-a567-0e02b2c3d479";

fn v2_log(payload: &str) -> Envelope {
    Envelope {
        timestamp: tc_cluster::now_nanos(),
        source_id: APP.into(),
        instance_id: "0".into(),
        deprecated_tags: Default::default(),
        tags: [("source_type".to_owned(), "APP/PROC/WEB".to_owned())]
            .into_iter()
            .collect(),
        message: Some(Message::Log(Log {
            payload: payload.as_bytes().to_vec().into(),
            r#type: 0,
        })),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn websocket_consumer_survives_keepalive_and_reports_missed() {
    let cluster = Cluster::start(|c| c.keepalive = Duration::from_secs(1)).await;
    let registry = Registry::new();
    let feed = Feed::new(5, FirehoseMetrics::new(&registry, "test"));
    let stop = Shutdown::new();
    tokio::spawn(websocket::run(
        WsConfig {
            url: format!("ws://{}", cluster.tc_addr),
            subscription_id: "lib-test".into(),
            filter: FilterType::Logs,
            authorization: "bearer ignored".into(),
            tls: None,
        },
        feed.clone(),
        stop.token().clone(),
    ));
    cluster.wait_subscriptions(1).await;
    // Several keepalive periods pass with the reader idle: pongs keep the socket open.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(
        registry.counter_value("firehose_closes", &[("consumer", "test"), ("code", "1008")]),
        Some(0)
    );
    assert_eq!(
        registry.counter_value("firehose_reconnects", &[("consumer", "test")]),
        Some(0)
    );

    // 50 logs into a feed of 5 while nobody processes: the socket keeps being read.
    let envs: Vec<_> = (0..50).map(|i| log_env(APP, &format!("m{i}"))).collect();
    cluster.push(0, &envs).await;
    tc_cluster::eventually(
        || registry.counter_value("firehose_received", &[("consumer", "test")]) == Some(50),
        "50 received",
    )
    .await;
    let mut out = Vec::new();
    let n = feed.next_batch(&mut out, 100).await;
    assert_eq!(n, 5);
    assert_eq!(
        registry.counter_value("firehose_missed", &[("consumer", "test")]),
        Some(45)
    );
    let texts: Vec<String> = out
        .iter()
        .map(|e| {
            String::from_utf8(
                e.log_message
                    .as_ref()
                    .unwrap()
                    .message
                    .clone()
                    .unwrap()
                    .to_vec(),
            )
            .unwrap()
        })
        .collect();
    assert_eq!(texts, ["m45", "m46", "m47", "m48", "m49"]);
    stop.trigger();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grpc_consumers_share_load_by_subscription_id() {
    let cluster = Cluster::start_n(1, |_| {}).await;
    let registry = Registry::new();
    let stop = Shutdown::new();
    let request = EgressBatchRequest {
        shard_id: "shared-nozzle".into(),
        legacy_selector: None,
        use_preferred_tags: true,
        selectors: vec![Selector {
            source_id: APP.into(),
            message: Some(selector::Message::Log(LogSelector {})),
        }],
        deterministic_name: String::new(),
    };
    let feeds: Vec<Feed<Envelope>> = (0..2)
        .map(|i| Feed::new(10_000, FirehoseMetrics::new(&registry, &format!("grpc{i}"))))
        .collect();
    for f in &feeds {
        let tls = plumbing::tls::client_config(&cluster.pki.files("client")).unwrap();
        let ch = plumbing::tls::grpc::channel(
            &cluster.dopplers[0].addr.to_string(),
            Some((tls, "doppler")),
        )
        .unwrap();
        tokio::spawn(grpc::run(
            ch,
            "doppler-0".into(),
            request.clone(),
            f.clone(),
            stop.token().clone(),
        ));
    }
    tc_cluster::eventually(
        || cluster.doppler_subscriptions(0) >= 2,
        "two subscriptions",
    )
    .await;
    let envs: Vec<_> = (0..200).map(|i| v2_log(&format!("g{i}"))).collect();
    IngressClient::new(cluster.doppler_channel(0))
        .batch_sender(futures::stream::iter([EnvelopeBatch { batch: envs }]))
        .await
        .unwrap();
    let count = |i: usize| {
        registry
            .counter_value("firehose_received", &[("consumer", &format!("grpc{i}"))])
            .unwrap_or(0)
    };
    tc_cluster::eventually(|| count(0) + count(1) == 200, "200 received in total").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        count(0) + count(1),
        200,
        "each envelope goes to exactly one member of the shard group"
    );
    assert!(
        count(0) > 0 && count(1) > 0,
        "both members got a share: {} / {}",
        count(0),
        count(1)
    );
    stop.trigger();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sse_consumer_reads_the_gateway_stream() {
    let cluster = Cluster::start(|_| {}).await;
    let registry = Registry::new();
    let feed: Feed<Envelope> = Feed::new(1000, FirehoseMetrics::new(&registry, "sse"));
    let stop = Shutdown::new();
    tokio::spawn(sse::run(
        sse::SseConfig {
            url: format!("http://{}", cluster.tc_gateway),
            query: format!("shard_id=sse-nozzle&source_id={APP}&log"),
            authorization: "bearer ignored".into(),
            tls: None,
        },
        feed.clone(),
        stop.token().clone(),
    ));
    cluster.wait_subscriptions(1).await;
    cluster.push(0, &[log_env(APP, "over sse 1")]).await;
    cluster.push(1, &[log_env(APP, "over sse 2")]).await;
    let mut got = Vec::new();
    while got.len() < 2 {
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), feed.next_batch(&mut out, 10))
            .await
            .expect("sse data");
        for e in out {
            assert_eq!(e.source_id, APP);
            let Some(Message::Log(l)) = e.message else {
                panic!("not a log")
            };
            got.push(String::from_utf8(l.payload.to_vec()).unwrap());
        }
    }
    got.sort();
    assert_eq!(got, ["over sse 1", "over sse 2"]);
    stop.trigger();
}
