//! Two log-cache nodes with mutual TLS between them: ingest that lands on
//! the wrong node is forwarded to the owner, reads on either node are
//! proxied to the owner, meta fans out; with one node killed, the other
//! answers its sources with empty batches, keeps serving its own, and drops
//! (counted, bounded) what it cannot forward.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use envelope_proto::logcache_v1::egress_client::EgressClient;
use envelope_proto::logcache_v1::ingress_client::IngressClient;
use envelope_proto::logcache_v1::{MetaRequest, SendRequest};
use envelope_proto::loggregator_v2::{Envelope, EnvelopeBatch, Log, envelope::Message};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use log_cache::cluster::owner;
use plumbing::metrics::Registry;
use plumbing::shutdown::Shutdown;
use plumbing::tls::dev::DevPki;
use serde_json::Value;
use tokio::net::TcpListener;
use tonic::transport::Channel;

struct Node {
    grpc: String,
    http: String,
    registry: Registry,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<Result<(), log_cache::Error>>,
}

async fn start_cluster(pki: &DevPki, n: usize) -> Vec<Node> {
    let mut grpcs = Vec::new();
    let mut https = Vec::new();
    for _ in 0..n {
        grpcs.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
        https.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    let addrs: Vec<String> = grpcs
        .iter()
        .map(|l| l.local_addr().unwrap().to_string())
        .collect();
    let mut nodes = Vec::new();
    for (i, (grpc, http)) in grpcs.into_iter().zip(https).enumerate() {
        let mut config = log_cache::Config::local(64 * 1024 * 1024);
        config.node_addrs = addrs.clone();
        config.node_index = i;
        config.tls = Some(pki.files("log-cache"));
        let registry = Registry::new();
        let shutdown = Shutdown::new();
        let http_url = format!("http://{}", http.local_addr().unwrap());
        let task = tokio::spawn(log_cache::run_with_registry(
            config,
            log_cache::Listeners {
                grpc,
                gateway: Some(http),
                admin: None,
                syslog: None,
            },
            shutdown.clone(),
            registry.clone(),
        ));
        nodes.push(Node {
            grpc: addrs[i].clone(),
            http: http_url,
            registry,
            shutdown,
            task,
        });
    }
    nodes
}

fn channel(pki: &DevPki, addr: &str) -> Channel {
    let tls = plumbing::tls::client_config(&pki.files("client")).unwrap();
    plumbing::tls::grpc::channel(addr, Some((tls, "log-cache"))).unwrap()
}

fn log(source: &str, ts: i64) -> Envelope {
    Envelope {
        timestamp: ts,
        source_id: source.into(),
        message: Some(Message::Log(Log {
            payload: format!("{source} {ts}").into_bytes().into(),
            r#type: 0,
        })),
        ..Envelope::default()
    }
}

async fn send(pki: &DevPki, node: &Node, envelopes: Vec<Envelope>) {
    let mut client = IngressClient::new(channel(pki, &node.grpc));
    client
        .send(SendRequest {
            envelopes: Some(EnvelopeBatch { batch: envelopes }),
            local_only: false,
        })
        .await
        .unwrap();
}

async fn local_sources(pki: &DevPki, node: &Node) -> BTreeSet<String> {
    let mut client = EgressClient::new(channel(pki, &node.grpc));
    let meta = client
        .meta(MetaRequest { local_only: true })
        .await
        .unwrap()
        .into_inner();
    meta.meta.keys().cloned().collect()
}

async fn http_get(url: &str) -> (u16, Value) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let resp = client.get(url.parse().unwrap()).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

async fn read_count(node: &Node, source: &str) -> usize {
    let (status, v) = http_get(&format!("{}/api/v1/read/{source}", node.http)).await;
    assert_eq!(status, 200, "{v}");
    v["envelopes"]["batch"].as_array().unwrap().len()
}

async fn eventually<F: std::future::Future<Output = bool>>(mut f: impl FnMut() -> F, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_proxying_meta_and_a_node_that_dies() {
    let dir = tempfile::tempdir().unwrap();
    let pki = DevPki::generate(dir.path()).unwrap();
    let nodes = start_cluster(&pki, 2).await;
    let sources: Vec<String> = (0..40).map(|i| format!("app-{i}")).collect();
    let now = envelope_proto::timestamp::now() - 1_000_000_000;
    let batch: Vec<Envelope> = sources
        .iter()
        .flat_map(|s| (0..5).map(move |i| log(s, now + i)))
        .collect();
    // Everything lands on node 0; half of it belongs to node 1.
    send(&pki, &nodes[0], batch).await;

    let want: [BTreeSet<String>; 2] = [0, 1].map(|n| {
        sources
            .iter()
            .filter(|s| owner(s, 2) == n)
            .cloned()
            .collect()
    });
    assert!(!want[0].is_empty() && !want[1].is_empty());
    eventually(
        || async { local_sources(&pki, &nodes[1]).await == want[1] },
        "node 1 holds exactly its sources",
    )
    .await;
    assert_eq!(local_sources(&pki, &nodes[0]).await, want[0]);

    // Reads through either node reach the owner.
    for s in &sources {
        for node in &nodes {
            assert_eq!(read_count(node, s).await, 5, "{s} via {}", node.http);
        }
    }
    // Meta fans out (camelCase through the HTTP API).
    let (_, meta) = http_get(&format!("{}/api/v1/meta", nodes[0].http)).await;
    assert_eq!(meta["meta"].as_object().unwrap().len(), 40);
    assert_eq!(meta["meta"]["app-0"]["count"], "5");

    // Kill node 1.
    let mut nodes = nodes;
    let dead = nodes.pop().unwrap();
    dead.shutdown.trigger();
    let _ = tokio::time::timeout(Duration::from_secs(10), dead.task).await;
    let node0 = &nodes[0];
    let theirs = want[1].iter().next().unwrap();
    let started = Instant::now();
    assert_eq!(read_count(node0, theirs).await, 0, "empty, not an error");
    assert!(started.elapsed() < Duration::from_secs(10));
    let ours = want[0].iter().next().unwrap();
    assert_eq!(read_count(node0, ours).await, 5);
    tokio::time::sleep(Duration::from_millis(1100)).await; // meta cache
    let (status, meta) = http_get(&format!("{}/api/v1/meta", node0.http)).await;
    assert_eq!(status, 200);
    assert_eq!(meta["meta"].as_object().unwrap().len(), want[0].len());

    // Ingest for the dead node's sources is dropped and counted; the queue
    // stays bounded whatever arrives.
    let big = "x".repeat(60 * 1024);
    for round in 0..12 {
        let batch: Vec<Envelope> = (0..50)
            .map(|i| Envelope {
                message: Some(Message::Log(Log {
                    payload: big.clone().into_bytes().into(),
                    r#type: 0,
                })),
                ..log(theirs, now + 10 + round * 50 + i)
            })
            .collect();
        send(&pki, node0, batch).await;
    }
    let peer = [("peer", dead.grpc.as_str())];
    eventually(
        || async {
            node0
                .registry
                .counter_value("log_cache_forward_dropped", &peer)
                .unwrap_or(0)
                > 0
        },
        "forwarding losses counted",
    )
    .await;
    let queued = node0
        .registry
        .gauge_value("log_cache_forward_queue_bytes", &peer)
        .unwrap_or(0);
    assert!(
        queued as usize <= log_cache::cluster::FORWARD_QUEUE_BYTES,
        "{queued}"
    );
    node0.shutdown.trigger();
}
