//! `nozzle datadog` end to end: metrics pushed into the dopplers reach the
//! nozzle through the traffic controller firehose and are POSTed to a local
//! HTTP receiver shaped like Datadog's `/api/v1/series`, which checks the
//! schema, names, tags and values (counters as running totals, container
//! metrics per app instance); a failed request is retried.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/tc_cluster.rs"]
mod tc_cluster;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use envelope_proto::events::{self, envelope::EventType};
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use plumbing::shutdown::Shutdown;
use serde_json::Value;
use std::sync::Mutex;
use tc_cluster::{Cluster, container_env, counter_env, now_nanos};

const APP: &str = "f47ac10b-58cc-4372-a567-0e02b2c3d479";

/// One recorded POST: URI, `DD-API-KEY`, `Content-Type`, parsed body.
type Post = (String, String, String, Value);

#[derive(Clone, Default)]
struct Receiver {
    posts: Arc<Mutex<Vec<Post>>>,
    fail_next: Arc<AtomicUsize>,
}

async fn start_receiver() -> (Receiver, u16) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let rx = Receiver::default();
    let state = rx.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let state = state.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let state = state.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await.unwrap().to_bytes();
                        let fail = state
                            .fail_next
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                            .is_ok();
                        let status = if fail {
                            500
                        } else {
                            let key = parts
                                .headers
                                .get("dd-api-key")
                                .map(|v| v.to_str().unwrap().to_owned());
                            let ct = parts
                                .headers
                                .get("content-type")
                                .map(|v| v.to_str().unwrap().to_owned());
                            let json: Value =
                                serde_json::from_slice(&body).expect("series body is JSON");
                            state.posts.lock().unwrap().push((
                                parts.uri.to_string(),
                                key.unwrap_or_default(),
                                ct.unwrap_or_default(),
                                json,
                            ));
                            202
                        };
                        let mut resp = http::Response::new(Full::new(Bytes::from_static(
                            b"{\"status\":\"ok\"}",
                        )));
                        *resp.status_mut() = http::StatusCode::from_u16(status).unwrap();
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (rx, port)
}

fn value_metric(name: &str, v: f64) -> events::Envelope {
    events::Envelope {
        origin: Some("gorouter".into()),
        event_type: Some(EventType::ValueMetric as i32),
        timestamp: Some(now_nanos()),
        deployment: Some("cf".into()),
        job: Some("router".into()),
        index: Some("7".into()),
        ip: Some("10.0.0.9".into()),
        tags: [("zone".to_owned(), "z1".to_owned())].into_iter().collect(),
        value_metric: Some(events::ValueMetric {
            name: Some(name.into()),
            value: Some(v),
            unit: Some("ms".into()),
        }),
        ..Default::default()
    }
}

/// All series seen so far, by metric name (the last one wins).
fn series(rx: &Receiver) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for (_, _, _, body) in rx.posts.lock().unwrap().iter() {
        for s in body["series"].as_array().expect("series array") {
            out.insert(s["metric"].as_str().unwrap().to_owned(), s.clone());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_reach_a_datadog_shaped_receiver() {
    let cluster = Cluster::start(|_| {}).await;
    let (rx, port) = start_receiver().await;
    rx.fail_next.store(1, Ordering::SeqCst);
    let mut config = nozzles::datadog::Config::for_tests(
        &format!("ws://{}", cluster.tc_addr),
        &format!("http://127.0.0.1:{port}"),
        "test-api-key",
    );
    config.api_key_in_query = true;
    let registry = config.registry.clone();
    let shutdown = Shutdown::new();
    tokio::spawn(nozzles::datadog::run(
        config,
        nozzles::datadog::Listeners::default(),
        shutdown.clone(),
    ));
    cluster.wait_subscriptions(1).await;

    let mut counter = counter_env("requests", 5);
    counter.counter_event.as_mut().unwrap().total = Some(42);
    cluster
        .push(
            0,
            &[
                value_metric("latency", 12.5),
                counter,
                tc_cluster::log_env(APP, "logs are not metrics"),
            ],
        )
        .await;
    cluster.push(1, &[container_env(APP, 1, 37.5)]).await;

    let want = [
        "cloudfoundry.nozzle.gorouter.latency",
        "cloudfoundry.nozzle.test-origin.requests",
        "cloudfoundry.nozzle.app.cpu.pct",
        "cloudfoundry.nozzle.app.memory.used",
        "cloudfoundry.nozzle.app.disk.used",
        "cloudfoundry.nozzle.app.memory.quota",
        "cloudfoundry.nozzle.app.disk.quota",
    ];
    tc_cluster::eventually(
        || want.iter().all(|m| series(&rx).contains_key(*m)),
        "all series posted",
    )
    .await;
    let s = series(&rx);

    for (uri, key, ct, body) in rx.posts.lock().unwrap().iter() {
        assert_eq!(uri, "/api/v1/series?api_key=test-api-key");
        assert_eq!(key, "test-api-key");
        assert_eq!(ct, "application/json");
        for one in body["series"].as_array().unwrap() {
            let obj = one.as_object().unwrap();
            let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
            assert_eq!(keys.len(), 5, "{one}");
            for k in ["metric", "points", "type", "host", "tags"] {
                assert!(obj.contains_key(k), "{k} missing in {one}");
            }
            assert_eq!(one["type"], "gauge");
            for p in one["points"].as_array().unwrap() {
                let p = p.as_array().unwrap();
                assert_eq!(p.len(), 2);
                assert!(p[0].as_i64().unwrap() > 1_700_000_000);
                assert!(p[1].is_number());
            }
        }
    }

    let latency = &s["cloudfoundry.nozzle.gorouter.latency"];
    assert_eq!(latency["points"][0][1], 12.5);
    assert_eq!(latency["host"], "7");
    let tags: Vec<&str> = latency["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(
        tags,
        [
            "deployment:cf",
            "index:7",
            "ip:10.0.0.9",
            "job:router",
            "origin:gorouter",
            "zone:z1"
        ]
    );

    let requests = &s["cloudfoundry.nozzle.test-origin.requests"];
    assert_eq!(
        requests["points"][0][1], 42.0,
        "counters are sent as their running total"
    );

    let cpu = &s["cloudfoundry.nozzle.app.cpu.pct"];
    assert_eq!(cpu["points"][0][1], 37.5);
    let tags: Vec<&str> = cpu["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(tags.contains(&format!("app_id:{APP}").as_str()), "{tags:?}");
    assert!(tags.contains(&"instance_index:1"), "{tags:?}");
    assert_eq!(
        s["cloudfoundry.nozzle.app.memory.used"]["points"][0][1],
        1024.0
    );
    assert_eq!(
        s["cloudfoundry.nozzle.app.disk.used"]["points"][0][1],
        2048.0
    );
    assert_eq!(
        s["cloudfoundry.nozzle.app.memory.quota"]["points"][0][1],
        4096.0
    );
    assert_eq!(
        s["cloudfoundry.nozzle.app.disk.quota"]["points"][0][1],
        8192.0
    );
    assert!(!s.keys().any(|k| k.contains("logs")));

    tc_cluster::eventually(
        || series(&rx).contains_key("cloudfoundry.nozzle.totalMessagesReceived"),
        "internal metrics",
    )
    .await;
    assert!(
        registry
            .counter_value("datadog_request_errors", &[])
            .unwrap()
            >= 1,
        "the 500 was retried"
    );
    assert_eq!(
        registry.counter_value("datadog_series_dropped", &[]),
        Some(0)
    );
    shutdown.trigger();
}
