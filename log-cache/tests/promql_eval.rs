//! PromQL evaluated against a real `Store` through `LocalReader`: series
//! built from counters, gauges and timers; rate, aggregations, range
//! queries; the HTTP bodies byte for byte; gRPC over a real server;
//! timeout and limits.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use envelope_proto::logcache_v1::prom_ql::{
    InstantQueryRequest, RangeQueryRequest, instant_query_result,
};
use envelope_proto::logcache_v1::prom_ql_querier_client::PromQlQuerierClient;
use envelope_proto::logcache_v1::{MetaInfo, ReadRequest};
use envelope_proto::loggregator_v2::{
    Counter, Envelope, Gauge, GaugeValue, Log, Timer, envelope::Message,
};
use futures::future::BoxFuture;
use log_cache::metrics::StoreMetrics;
use log_cache::promql::{Engine, Limits, PromQlService, http_instant, http_range};
use log_cache::read::{LocalReader, ReadError, Reader};
use log_cache::store::{Limits as StoreLimits, Store, Stored};
use prost::Message as _;

/// 2023-11-14T22:13:20Z, in seconds.
const T: i64 = 1_700_000_000;
const S: i64 = 1_000_000_000;

fn env(source: &str, instance: &str, ts: i64, tags: &[(&str, &str)], m: Message) -> Vec<u8> {
    Envelope {
        timestamp: ts,
        source_id: source.into(),
        instance_id: instance.into(),
        tags: tags
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        message: Some(m),
        ..Envelope::default()
    }
    .encode_to_vec()
}

fn counter(name: &str, total: u64) -> Message {
    Message::Counter(Counter {
        name: name.into(),
        delta: 1,
        total,
    })
}

fn gauge(metrics: &[(&str, f64)]) -> Message {
    Message::Gauge(Gauge {
        metrics: metrics
            .iter()
            .map(|(k, v)| {
                (
                    (*k).to_owned(),
                    GaugeValue {
                        unit: "u".into(),
                        value: *v,
                    },
                )
            })
            .collect(),
    })
}

fn store() -> Arc<Store> {
    Arc::new(Store::new(
        StoreLimits {
            memory_limit: u64::MAX,
            max_per_source: 100_000,
        },
        StoreMetrics::detached(),
    ))
}

fn engine(store: &Arc<Store>) -> Engine {
    Engine::new(
        Arc::new(LocalReader::new(store.clone())),
        Duration::from_secs(10),
    )
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn instant(e: &Engine, query: &str, time: i64) -> (u16, String) {
    let (status, body) = http_instant(e, &format!("query={}&time={time}.000", enc(query))).await;
    (status.as_u16(), body)
}

async fn range(e: &Engine, query: &str, start: i64, end: i64, step: &str) -> (u16, String) {
    let qs = format!(
        "end={end}.000&query={}&start={start}.000&step={step}",
        enc(query)
    );
    let (status, body) = http_range(e, &qs).await;
    (status.as_u16(), body)
}

fn mixed_store() -> Arc<Store> {
    let s = store();
    let tags = [("app_name", "my-app"), ("origin", "rep")];
    s.put(&env(
        "app",
        "0",
        T * S + 123,
        &tags,
        counter("requests", 42),
    ))
    .unwrap();
    s.put(&env(
        "app",
        "1",
        T * S + 5,
        &tags,
        gauge(&[("http.latency", 5.5), ("cpu", 0.25)]),
    ))
    .unwrap();
    s.put(&env(
        "app",
        "",
        T * S + 7,
        &[],
        Message::Timer(Timer {
            name: "http".into(),
            start: 100,
            stop: 350,
        }),
    ))
    .unwrap();
    // Logs are never read as metrics.
    s.put(&env(
        "app",
        "0",
        T * S + 8,
        &tags,
        Message::Log(Log {
            payload: b"requests".to_vec().into(),
            r#type: 0,
        }),
    ))
    .unwrap();
    s
}

#[tokio::test]
async fn counters_gauges_and_timers_become_series() {
    let s = mixed_store();
    let e = engine(&s);
    assert_eq!(
        instant(&e, r#"requests{source_id="app"}"#, T + 10).await,
        (
            200,
            format!(
                "{{\"status\":\"success\",\"data\":{{\"resultType\":\"vector\",\"result\":[{{\"metric\":{{\"app_name\":\"my-app\",\"instance_id\":\"0\",\"origin\":\"rep\",\"source_id\":\"app\"}},\"value\":[{}.000,\"42\"]}}]}}}}\n",
                T + 10
            )
        )
    );
    // Gauge keys are sanitised names; timers are stop - start.
    let (_, body) = instant(&e, r#"http_latency{source_id="app"}"#, T + 10).await;
    assert!(body.contains(r#""instance_id":"1""#), "{body}");
    assert!(
        body.ends_with(&format!("\"value\":[{}.000,\"5.5\"]}}]}}}}\n", T + 10)),
        "{body}"
    );
    assert_eq!(
        instant(&e, r#"http{source_id="app"}"#, T + 10).await.1,
        format!(
            "{{\"status\":\"success\",\"data\":{{\"resultType\":\"vector\",\"result\":[{{\"metric\":{{\"source_id\":\"app\"}},\"value\":[{}.000,\"250\"]}}]}}}}\n",
            T + 10
        )
    );
    // Label matchers apply to the whole label set.
    let (_, body) = instant(&e, r#"requests{source_id="app",instance_id!="0"}"#, T + 10).await;
    assert!(body.contains(r#""result":[]"#), "{body}");
    let (_, body) = instant(&e, r#"cpu{source_id="app",app_name=~"my-.*"}"#, T + 10).await;
    assert!(body.contains(r#""value":["#), "{body}");
    // Outside the 5-minute lookback: nothing. Before the sample: nothing.
    let (_, body) = instant(&e, r#"requests{source_id="app"}"#, T + 301).await;
    assert!(body.contains(r#""result":[]"#), "{body}");
    let (_, body) = instant(&e, r#"requests{source_id="app"}"#, T - 1).await;
    assert!(body.contains(r#""result":[]"#), "{body}");
    // A bare range selector is a matrix of the raw points (truncated to the second).
    assert_eq!(
        instant(&e, r#"requests{source_id="app"}[1m]"#, T + 10)
            .await
            .1,
        format!(
            "{{\"status\":\"success\",\"data\":{{\"resultType\":\"matrix\",\"result\":[{{\"metric\":{{\"app_name\":\"my-app\",\"instance_id\":\"0\",\"origin\":\"rep\",\"source_id\":\"app\"}},\"values\":[[{T}.000,\"42\"]]}}]}}}}\n"
        )
    );
}

#[tokio::test]
async fn rate_increase_and_irate_of_a_counter() {
    let s = store();
    for i in 0..=6 {
        s.put(&env(
            "app",
            "0",
            (T + i * 10) * S,
            &[],
            counter("requests", (i * 10) as u64),
        ))
        .unwrap();
    }
    let e = engine(&s);
    let q = |f: &str| format!(r#"{f}(requests{{source_id="app"}}[1m])"#);
    let value = |body: String| -> String {
        let tail = body.rsplit_once(".000,\"").unwrap().1;
        tail.split('"').next().unwrap().to_owned()
    };
    assert_eq!(value(instant(&e, &q("rate"), T + 60).await.1), "1");
    assert_eq!(value(instant(&e, &q("increase"), T + 60).await.1), "60");
    assert_eq!(value(instant(&e, &q("irate"), T + 60).await.1), "1");
    assert_eq!(
        value(instant(&e, &q("count_over_time"), T + 60).await.1),
        "7"
    );
    assert_eq!(
        value(instant(&e, &q("max_over_time"), T + 60).await.1),
        "60"
    );
    // rate(...) * 60 keeps the labels (no __name__ exists to drop).
    let (_, body) = instant(&e, &format!("{} * 60", q("rate")), T + 60).await;
    assert_eq!(
        body,
        format!(
            "{{\"status\":\"success\",\"data\":{{\"resultType\":\"vector\",\"result\":[{{\"metric\":{{\"instance_id\":\"0\",\"source_id\":\"app\"}},\"value\":[{}.000,\"60\"]}}]}}}}\n",
            T + 60
        )
    );
}

#[tokio::test]
async fn aggregations_by_and_without() {
    let s = store();
    for (i, v) in [(0, 1.0), (1, 2.0), (2, 6.0)] {
        s.put(&env(
            "app",
            &i.to_string(),
            T * S,
            &[("app_name", "my-app")],
            gauge(&[("cpu", v)]),
        ))
        .unwrap();
    }
    s.put(&env(
        "other",
        "0",
        T * S,
        &[("app_name", "x")],
        gauge(&[("cpu", 100.0)]),
    ))
    .unwrap();
    let e = engine(&s);
    let one = |op: &str, v: &str| {
        format!(
            "{{\"status\":\"success\",\"data\":{{\"resultType\":\"vector\",\"result\":[{{\"metric\":{{\"app_name\":\"my-app\"}},\"value\":[{}.000,\"{v}\"]}}]}}}}\n",
            T + 1
        )
        .replace("OP", op)
    };
    for (op, v) in [
        ("sum", "9"),
        ("avg", "3"),
        ("max", "6"),
        ("min", "1"),
        ("count", "3"),
    ] {
        let q = format!(r#"{op} by (app_name) (cpu{{source_id="app"}})"#);
        assert_eq!(instant(&e, &q, T + 1).await, (200, one(op, v)), "{op}");
    }
    let (_, body) = instant(
        &e,
        r#"sum(cpu{source_id="app"}) without (instance_id)"#,
        T + 1,
    )
    .await;
    assert!(
        body.contains(r#"{"metric":{"app_name":"my-app","source_id":"app"},"value":["#),
        "{body}"
    );
    // Several source ids through `=~`, results sorted by labels.
    let (_, body) = instant(
        &e,
        r#"sum by (source_id) (cpu{source_id=~"other|app"})"#,
        T + 1,
    )
    .await;
    assert_eq!(
        body,
        format!(
            "{{\"status\":\"success\",\"data\":{{\"resultType\":\"vector\",\"result\":[{{\"metric\":{{\"source_id\":\"app\"}},\"value\":[{t}.000,\"9\"]}},{{\"metric\":{{\"source_id\":\"other\"}},\"value\":[{t}.000,\"100\"]}}]}}}}\n",
            t = T + 1
        )
    );
    // Vector/vector with ignoring (upstream's own example shape).
    let (_, body) = instant(
        &e,
        r#"sum by (source_id) (cpu{source_id="app"}) + ignoring (source_id) sum by (source_id) (cpu{source_id="other"})"#,
        T + 1,
    )
    .await;
    assert!(
        body.contains(r#"{"metric":{},"value":["#) && body.contains("\"109\""),
        "{body}"
    );
    // Scalars.
    assert_eq!(
        http_instant(&e, "query=7*9&time=99").await.1,
        "{\"status\":\"success\",\"data\":{\"resultType\":\"scalar\",\"result\":[99.000,\"63\"]}}\n"
    );
}

#[tokio::test]
async fn range_queries_step_through_time() {
    let s = store();
    for (dt, v) in [(0, 97.0), (30, 101.0), (60, 103.0), (120, 105.5)] {
        s.put(&env(
            "app",
            "",
            (T + dt) * S + 17,
            &[("a", "x")],
            gauge(&[("cpu", v)]),
        ))
        .unwrap();
    }
    let e = engine(&s);
    assert_eq!(
        range(&e, r#"cpu{source_id="app"}"#, T, T + 120, "30s").await,
        (
            200,
            format!(
                "{{\"status\":\"success\",\"data\":{{\"resultType\":\"matrix\",\"result\":[{{\"metric\":{{\"a\":\"x\",\"source_id\":\"app\"}},\"values\":[[{}.000,\"97\"],[{}.000,\"101\"],[{}.000,\"103\"],[{}.000,\"103\"],[{}.000,\"105.5\"]]}}]}}}}\n",
                T,
                T + 30,
                T + 60,
                T + 90,
                T + 120
            )
        )
    );
    // Step in seconds; avg_over_time with inclusive windows.
    let (_, body) = range(
        &e,
        r#"avg_over_time(cpu{source_id="app"}[30s])"#,
        T + 30,
        T + 60,
        "30",
    )
    .await;
    assert!(
        body.contains(&format!(
            "\"values\":[[{}.000,\"99\"],[{}.000,\"102\"]]",
            T + 30,
            T + 60
        )),
        "{body}"
    );
    // A scalar range query is one series without labels; empty matrices are [].
    let (_, body) = range(&e, "1+1", T, T + 60, "1m").await;
    assert_eq!(
        body,
        format!(
            "{{\"status\":\"success\",\"data\":{{\"resultType\":\"matrix\",\"result\":[{{\"metric\":{{}},\"values\":[[{T}.000,\"2\"],[{}.000,\"2\"]]}}]}}}}\n",
            T + 60
        )
    );
    let (_, body) = range(&e, r#"cpu{source_id="nothing"}"#, T, T + 60, "1m").await;
    assert_eq!(
        body,
        "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[]}}\n"
    );
    // RFC 3339 times are accepted too.
    let (status, body) = http_range(
        &e,
        "query=cpu%7Bsource_id%3D%22app%22%7D&start=2023-11-14T22:13:20Z&end=2023-11-14T22:13:20Z&step=1",
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.contains(&format!("[[{T}.000,\"97\"]]")), "{body}");
}

#[tokio::test]
async fn errors_are_upstreams_bodies() {
    let s = mixed_store();
    let e = engine(&s);
    let error = |msg: &str| {
        format!("{{\"status\":\"error\",\"errorType\":\"internal\",\"error\":\"{msg}\"}}\n")
    };
    assert_eq!(
        instant(&e, r#"requests{source_id="app"} + requests"#, T).await,
        (
            500,
            error("Metric 'requests' does not have a 'source_id' label.")
        )
    );
    assert_eq!(
        instant(&e, r#"requests{source_id!="app"}"#, T).await,
        (
            500,
            error("Metric 'requests' does not have a 'source_id' label.")
        )
    );
    assert_eq!(
        http_instant(&e, "query=requests%7Bsource_id%3D%22app%22%7D&time=409l").await,
        (
            http::StatusCode::INTERNAL_SERVER_ERROR,
            error(r#"cannot parse \"409l\" to a valid Unix or RFC3339 timestamp"#)
        )
    );
    let (status, body) = http_range(&e, "query=1&start=1&end=2&step=0").await;
    assert_eq!(status, 500);
    assert!(
        body.contains("zero or negative query resolution step"),
        "{body}"
    );
    let (status, body) = http_range(&e, "query=1&start=1&end=2&step=x").await;
    assert_eq!(
        (status.as_u16(), body),
        (
            500,
            error(r#"couldn't parse step: cannot parse \"x\" to a valid step"#)
        )
    );
    let (status, body) = range(&e, r#"requests{source_id="app"}[5m]"#, T, T + 1, "1").await;
    assert_eq!(status, 500);
    assert!(
        body.contains(r#"invalid expression type \"range vector\" for range query"#),
        "{body}"
    );
    let (status, body) = http_instant(&e, "query=%zz").await;
    assert_eq!(
        (status.as_u16(), body),
        (400, error(r#"invalid URL escape \"%zz\""#))
    );
    let (status, _) = http_instant(&e, "query=1&query=2").await;
    assert_eq!(status.as_u16(), 400);
    let (status, body) = instant(&e, "invalid.query", T).await;
    assert_eq!(status, 500);
    assert!(
        body.starts_with(r#"{"status":"error","errorType":"internal","error":"parse error"#),
        "{body}"
    );
}

#[tokio::test]
async fn reads_page_past_the_store_limit_of_1000() {
    let s = store();
    for i in 0..2500 {
        s.put(&env(
            "app",
            "0",
            T * S + i * 1_000_000,
            &[],
            counter("requests", i as u64),
        ))
        .unwrap();
    }
    let e = engine(&s);
    let (_, body) = instant(
        &e,
        r#"count_over_time(requests{source_id="app"}[1m])"#,
        T + 10,
    )
    .await;
    assert!(body.contains("\"2500\""), "{body}");

    // The sample budget turns the same query into an error.
    let small = engine(&s).with_limits(Limits {
        max_samples: 1000,
        ..Limits::default()
    });
    let (status, body) = instant(
        &small,
        r#"count_over_time(requests{source_id="app"}[1m])"#,
        T + 10,
    )
    .await;
    assert_eq!(status, 500);
    assert!(body.contains("too many samples"), "{body}");
    // So does a range query of too many steps, before anything is read.
    let (status, body) = range(&e, "1", 0, 20_000, "1").await;
    assert_eq!(status, 500);
    assert!(
        body.contains("exceeded maximum resolution of 11000 points"),
        "{body}"
    );
    // And too many output points.
    let (status, body) = range(&small, "1", 0, 5000, "1").await;
    assert_eq!((status, body.contains("too many samples")), (500, true));
}

/// A reader that never answers in time.
struct Stuck;

impl Reader for Stuck {
    fn read(&self, _req: ReadRequest) -> BoxFuture<'_, Result<Vec<Stored>, ReadError>> {
        Box::pin(async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(Vec::new())
        })
    }

    fn meta(&self, _: bool) -> BoxFuture<'_, Result<BTreeMap<String, MetaInfo>, ReadError>> {
        Box::pin(async { Ok(BTreeMap::new()) })
    }
}

/// A reader that fails like an unavailable peer.
struct Failing;

impl Reader for Failing {
    fn read(&self, _req: ReadRequest) -> BoxFuture<'_, Result<Vec<Stored>, ReadError>> {
        Box::pin(async {
            Err(ReadError {
                code: tonic::Code::Unavailable,
                message: "peer down".into(),
            })
        })
    }

    fn meta(&self, _: bool) -> BoxFuture<'_, Result<BTreeMap<String, MetaInfo>, ReadError>> {
        Box::pin(async { Ok(BTreeMap::new()) })
    }
}

#[tokio::test]
async fn the_timeout_bounds_a_query() {
    let e = Engine::new(Arc::new(Stuck), Duration::from_millis(200));
    let started = std::time::Instant::now();
    let (status, body) = instant(&e, r#"m{source_id="app"}"#, T).await;
    assert_eq!(status, 500);
    assert_eq!(
        body,
        "{\"status\":\"error\",\"errorType\":\"internal\",\"error\":\"query timed out in query execution\"}\n"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    let err = e
        .range(&RangeQueryRequest {
            query: r#"m{source_id="app"}"#.into(),
            start: "1".into(),
            end: "2".into(),
            step: "1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.message, "query timed out in query execution");

    // A reader's gRPC code is kept (503 over HTTP).
    let e = Engine::new(Arc::new(Failing), Duration::from_secs(5));
    let (status, body) = instant(&e, r#"m{source_id="app"}"#, T).await;
    assert_eq!((status, body.contains("peer down")), (503, true));
}

#[tokio::test]
async fn grpc_promql_querier_over_a_real_server() {
    let s = mixed_store();
    let svc = PromQlService::new(Arc::new(engine(&s)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(svc.into_server())
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let mut client = PromQlQuerierClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let r = client
        .instant_query(InstantQueryRequest {
            query: r#"requests{source_id="app"}"#.into(),
            time: format!("{}.000", T + 10),
        })
        .await
        .unwrap()
        .into_inner();
    let Some(instant_query_result::Result::Vector(v)) = r.result else {
        panic!("{r:?}")
    };
    assert_eq!(v.samples.len(), 1);
    let p = v.samples[0].point.clone().unwrap();
    assert_eq!(
        (p.time.as_str(), p.value),
        (format!("{}.000", T + 10).as_str(), 42.0)
    );
    assert_eq!(v.samples[0].metric["instance_id"], "0");

    let r = client
        .range_query(RangeQueryRequest {
            query: r#"requests{source_id="app"}"#.into(),
            start: T.to_string(),
            end: (T + 60).to_string(),
            step: "1m".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(format!("{r:?}").contains("42.0"), "{r:?}");

    let e = client
        .instant_query(InstantQueryRequest {
            query: "requests".into(),
            time: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unknown);
    assert_eq!(
        e.message(),
        "Metric 'requests' does not have a 'source_id' label."
    );
}
