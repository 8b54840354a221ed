//! The real cf CLI's request sequences against a running log-cache node
//! (log-cache-reference §1): `/api/v1/info`, `cf logs --recent` (with the
//! 429 halving path) and `cf logs` (the peek, then the walk with its 2 s
//! delay and `+1` cursor). The client below sends exactly the CLI's URLs
//! (query keys sorted, `Authorization` and `User-Agent` set) and behaves as
//! its walk does; it shares no code with the server. JSON answers are
//! checked against upstream's field rules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use base64::Engine as _;
use envelope_proto::logcache_v1::SendRequest;
use envelope_proto::logcache_v1::ingress_client::IngressClient;
use envelope_proto::loggregator_v2::{Counter, Envelope, EnvelopeBatch, Log, envelope::Message};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use plumbing::metrics::Registry;
use plumbing::shutdown::Shutdown;
use serde_json::Value;
use tokio::net::TcpListener;

const APP: &str = "6579464f-c802-494a-82a9-e5da6c93d119";
/// Go's zero `time.Time` in ns, as the CLI sends it.
const GO_ZERO: &str = "-6795364578871345152";

struct Node {
    http: String,
    grpc: String,
    registry: Registry,
    shutdown: Shutdown,
}

impl Node {
    async fn start() -> Node {
        let config = log_cache::Config::local(256 * 1024 * 1024);
        let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gateway = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let node = Node {
            http: format!("http://{}", gateway.local_addr().unwrap()),
            grpc: format!("http://{}", grpc.local_addr().unwrap()),
            registry: Registry::new(),
            shutdown: Shutdown::new(),
        };
        tokio::spawn(log_cache::run_with_registry(
            config,
            log_cache::Listeners {
                grpc,
                gateway: Some(gateway),
                admin: None,
                syslog: None,
            },
            node.shutdown.clone(),
            node.registry.clone(),
        ));
        node
    }

    async fn send(&self, envelopes: Vec<Envelope>) {
        let mut client = IngressClient::connect(self.grpc.clone())
            .await
            .unwrap()
            .max_encoding_message_size(64 << 20);
        for chunk in envelopes.chunks(500) {
            client
                .send(SendRequest {
                    envelopes: Some(EnvelopeBatch {
                        batch: chunk.to_vec(),
                    }),
                    local_only: false,
                })
                .await
                .unwrap();
        }
    }
}

/// What the cf CLI sends with every Log Cache request.
async fn cli_get(url: &str) -> (u16, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let req = http::Request::get(url)
        .header("Authorization", "bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln")
        .header(
            "User-Agent",
            "cf/8.7.10+5b7ce3c.2024-04-04 (go1.21.5; amd64 linux)",
        )
        .body(Empty::new())
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(ct.as_deref(), Some("application/json"), "{url}");
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn now_ns() -> i64 {
    envelope_proto::timestamp::now()
}

fn log(ts: i64, text: &str, err: bool) -> Envelope {
    Envelope {
        timestamp: ts,
        source_id: APP.into(),
        instance_id: "0".into(),
        tags: [("source_type".to_owned(), "APP/PROC/WEB".to_owned())].into(),
        message: Some(Message::Log(Log {
            payload: text.as_bytes().to_vec().into(),
            r#type: i32::from(err),
        })),
        ..Envelope::default()
    }
}

fn counter(ts: i64) -> Envelope {
    Envelope {
        timestamp: ts,
        source_id: APP.into(),
        message: Some(Message::Counter(Counter {
            name: "requests".into(),
            delta: 1,
            total: 42,
        })),
        ..Envelope::default()
    }
}

/// A `ReadResponse` body as protojson with upstream's rules.
fn batch(body: &str) -> Vec<Value> {
    assert!(body.ends_with('\n'), "every JSON body ends with a newline");
    let v: Value = serde_json::from_str(body).unwrap();
    v["envelopes"]["batch"].as_array().unwrap().clone()
}

fn text(e: &Value) -> String {
    let b64 = e["log"]["payload"].as_str().unwrap();
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap()
}

fn ts(e: &Value) -> i64 {
    e["timestamp"].as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_then_recent_logs_as_the_cli_reads_them() {
    let node = Node::start().await;
    let (status, body) = cli_get(&format!("{}/api/v1/info", node.http)).await;
    assert_eq!(status, 200);
    let info: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(info.as_object().unwrap().len(), 2, "{body}");
    let version = info["version"].as_str().unwrap();
    let major: u32 = version.split('.').next().unwrap().parse().unwrap();
    assert!(major >= 2 && version.split('.').count() == 3, "{version}");
    assert!(info["vm_uptime"].as_str().unwrap().parse::<u64>().is_ok());

    let base = now_ns() - 60_000_000_000;
    let mut envs: Vec<Envelope> = (0..1200)
        .map(|i| log(base + i * 1000, &format!("line {i}"), i % 7 == 0))
        .collect();
    envs.push(counter(base + 5));
    node.send(envs).await;

    let url = format!(
        "{}/api/v1/read/{APP}?descending=true&envelope_types=LOG&limit=1000&start_time={GO_ZERO}",
        node.http
    );
    let (status, body) = cli_get(&url).await;
    assert_eq!(status, 200, "{body}");
    let got = batch(&body);
    assert_eq!(got.len(), 1000);
    assert_eq!(text(&got[0]), "line 1199", "newest first");
    assert_eq!(text(&got[999]), "line 200");
    // Field rules: int64 as strings, base64 payload, enum names, unpopulated
    // fields present, no other oneof member.
    let first = got[0].as_object().unwrap();
    let keys: Vec<&str> = first.keys().map(String::as_str).collect();
    assert_eq!(
        keys.iter().copied().collect::<BTreeSet<_>>(),
        [
            "timestamp",
            "source_id",
            "instance_id",
            "deprecated_tags",
            "tags",
            "log"
        ]
        .into_iter()
        .collect()
    );
    assert!(first["timestamp"].is_string());
    assert_eq!(first["deprecated_tags"], serde_json::json!({}));
    assert_eq!(first["tags"]["source_type"], "APP/PROC/WEB");
    let types: BTreeSet<&str> = got
        .iter()
        .map(|e| e["log"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["ERR", "OUT"].into_iter().collect());

    // An unknown source is an empty batch with 200.
    let (status, body) = cli_get(&format!(
        "{}/api/v1/read/nobody?descending=true&envelope_types=LOG&limit=1000&start_time={GO_ZERO}",
        node.http
    ))
    .await;
    assert_eq!(
        (status, body.as_str()),
        (200, "{\"envelopes\":{\"batch\":[]}}\n")
    );
    node.shutdown.trigger();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recent_halves_its_limit_on_429_as_the_cli_does() {
    let node = Node::start().await;
    let base = now_ns() - 60_000_000_000;
    let big = "x".repeat(10 * 1024);
    node.send(
        (0..1000)
            .map(|i| log(base + i, &format!("{i} {big}"), false))
            .collect(),
    )
    .await;
    // The CLI: on "unexpected status code 429" halve the limit and retry.
    let mut limit = 1000;
    let mut asked = Vec::new();
    let got = loop {
        asked.push(limit);
        let (status, body) = cli_get(&format!(
            "{}/api/v1/read/{APP}?descending=true&envelope_types=LOG&limit={limit}&start_time={GO_ZERO}",
            node.http
        ))
        .await;
        match status {
            200 => break batch(&body),
            429 => {
                let err: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(err["code"], 8, "ResourceExhausted: {body}");
                limit /= 2;
                assert!(limit > 0, "never succeeded: {asked:?}");
            }
            other => panic!("unexpected status code {other}: {body}"),
        }
    };
    assert_eq!(asked, vec![1000, 500, 250]);
    assert_eq!(got.len(), 250);
    assert!(text(&got[0]).starts_with("999 "));
    node.shutdown.trigger();
}

/// The cf CLI's `cf logs` walk: peek for the newest envelope, start one
/// second before it, then page forward with `start_time = last + 1`,
/// showing only envelopes at least 2 s old, sleeping 250 ms on an empty page.
struct Walker {
    base: String,
    cursor: i64,
    asked: Vec<String>,
}

impl Walker {
    async fn peek(base: &str) -> Walker {
        let url = format!("{base}/api/v1/read/{APP}?descending=true&limit=1&start_time={GO_ZERO}");
        let newest = loop {
            let (status, body) = cli_get(&url).await;
            assert_eq!(status, 200, "{body}");
            if let Some(e) = batch(&body).first() {
                break ts(e);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        Walker {
            base: base.to_owned(),
            cursor: newest - 1_000_000_000,
            asked: vec![url],
        }
    }

    /// One walk round: the lines it would print (empty after a 250 ms sleep).
    async fn step(&mut self) -> Vec<String> {
        let url = format!(
            "{}/api/v1/read/{APP}?envelope_types=LOG&start_time={}",
            self.base, self.cursor
        );
        let (status, body) = cli_get(&url).await;
        self.asked.push(url);
        assert_eq!(status, 200, "{body}");
        let delay_cutoff = now_ns() - 2_000_000_000;
        let shown: Vec<Value> = batch(&body)
            .into_iter()
            .filter(|e| ts(e) <= delay_cutoff)
            .collect();
        if shown.is_empty() {
            tokio::time::sleep(Duration::from_millis(250)).await;
            return Vec::new();
        }
        self.cursor = ts(shown.last().unwrap()) + 1;
        shown.iter().map(text).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_walk_misses_nothing_across_pages_with_equal_timestamps() {
    let node = Node::start().await;
    // 300 lines, 0.5 s old at most 30 s: runs of equal timestamps where the
    // server's page of 100 ends (lines 95..110 and 190..210 share one).
    let base = now_ns() - 30_000_000_000;
    let stamp = |i: i64| match i {
        95..=110 => base + 95,
        190..=210 => base + 190,
        _ => base + i,
    };
    let sent: Vec<String> = (0..300).map(|i| format!("walk {i}")).collect();
    node.send(
        (0..300)
            .map(|i| log(stamp(i), &sent[i as usize], false))
            .collect(),
    )
    .await;
    // The peek is for any type: a counter newer than the logs does not
    // make the walk skip them (it starts 1 s before the newest).
    node.send(vec![counter(base + 500)]).await;

    let mut walker = Walker::peek(&node.http).await;
    assert_eq!(walker.cursor, base + 500 - 1_000_000_000);
    // Move the cursor back to the first log as a reader started earlier
    // would have, then walk.
    walker.cursor = base;
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < 300 && Instant::now() < deadline {
        seen.extend(walker.step().await);
    }
    assert_eq!(seen, sent, "every line once, in order");
    assert!(walker.asked[1].ends_with(&format!("?envelope_types=LOG&start_time={base}")));

    // Live lines show up once they are 2 s old, and not before.
    let live_at = now_ns();
    node.send(vec![log(live_at, "live", false)]).await;
    let mut live = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while live.is_empty() && Instant::now() < deadline {
        live = walker.step().await;
    }
    assert_eq!(live, vec!["live".to_owned()]);
    assert!(now_ns() - live_at >= 2_000_000_000);
    assert!(
        node.registry
            .counter_value("log_cache_egress", &[])
            .unwrap_or(0)
            >= 301
    );
    node.shutdown.trigger();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_parameters_get_grpc_gateway_errors() {
    let node = Node::start().await;
    let get = |q: &str| {
        let url = format!("{}/api/v1/read/{APP}?{q}", node.http);
        async move { cli_get(&url).await }
    };
    let (status, body) = get("limit=1001").await;
    assert_eq!(status, 500);
    assert_eq!(
        body,
        "{\"code\":2,\"message\":\"Limit (1001) must be 1000 or less\",\"details\":[]}\n"
    );
    let (status, body) = get("limit=ten").await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = get("start_time=10&end_time=5").await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("StartTime (10) must be before EndTime (5)"));
    let started = Instant::now();
    let (status, body) = get("name_filter=((a%7B100%7D)%7B100%7D)%7B100%7D").await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("Name filter must be a valid regular expression"));
    assert!(started.elapsed() < Duration::from_secs(5));
    // Slashes in the source id, raw or escaped.
    node.send(vec![Envelope {
        source_id: "a/b".into(),
        timestamp: 1,
        ..log(1, "slash", false)
    }])
    .await;
    for path in ["a/b", "a%2Fb"] {
        let (status, body) = cli_get(&format!("{}/api/v1/read/{path}", node.http)).await;
        assert_eq!(status, 200);
        assert_eq!(batch(&body).len(), 1, "{path}: {body}");
    }
    let (status, _) = cli_get(&format!("{}/nope", node.http)).await;
    assert_eq!(status, 404);
    node.shutdown.trigger();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cf_query_reads_promql_through_the_http_api() {
    let node = Node::start().await;
    let now = now_ns();
    node.send(vec![counter(now - 2_000_000_000)]).await;
    let t = format!("{:.3}", now as f64 / 1e9);
    let url = format!(
        "{}/api/v1/query?query=requests%7Bsource_id%3D%22{APP}%22%7D&time={t}",
        node.http
    );
    let (status, body) = cli_get(&url).await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "success");
    assert_eq!(v["data"]["resultType"], "vector");
    assert_eq!(v["data"]["result"][0]["metric"]["source_id"], APP);
    assert_eq!(v["data"]["result"][0]["value"][1], "42");
    // Without a source_id matcher: upstream's error.
    let (status, body) = cli_get(&format!("{}/api/v1/query?query=requests", node.http)).await;
    assert_ne!(status, 200, "{body}");
    node.shutdown.trigger();
}
