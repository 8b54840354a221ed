//! `/v2/read` (RLP gateway SSE) end to end: data events with the gateway's
//! protojson, heartbeats, the closing event, and the JSON errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/tc_cluster.rs"]
mod tc_cluster;

use std::net::SocketAddr;
use std::time::Duration;

use envelope_proto::loggregator_v2::EnvelopeBatch;
use tc_cluster::*;

const APP: &str = "11111111-2222-3333-4444-555555555555";

async fn open(addr: SocketAddr, path: &str, auth: Option<&str>) -> Sse {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
    open_sse(tcp, addr, path, &headers).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn data_events_carry_gateway_json_of_converted_envelopes() {
    let c = Cluster::start(|_| {}).await;
    let mut sse = open(c.tc_gateway, &format!("/v2/read?log&source_id={APP}"), None).await;
    assert_eq!(sse.status, 200);
    assert_eq!(sse.headers["content-type"], "text/event-stream");
    assert_eq!(sse.headers["cache-control"], "no-cache");
    assert_eq!(sse.headers["connection"], "keep-alive");
    c.wait_subscriptions(1).await;

    let env = log_env(APP, "over sse");
    c.push(
        1,
        &[
            env.clone(),
            log_env("other-app", "not selected"),
            counter_env("c", 1),
        ],
    )
    .await;
    let ev = sse.event(Duration::from_secs(5)).await.expect("data event");
    let json = ev
        .strip_prefix("data: ")
        .and_then(|s| s.strip_suffix("\n\n"))
        .expect("data framing");
    // What the gateway would write for the doppler's v2 form of our envelope.
    let v2 = envelope_proto::convert::to_v2(&env, true);
    let want = envelope_proto::json::batch_to_json(&EnvelopeBatch { batch: vec![v2] });
    assert_eq!(json, want);
    assert!(c.tc_counter("egress", &[("endpoint", "v2_read")]) >= 1);
    drop(sse);
    c.wait_subscriptions(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn heartbeat_when_idle_then_closing_at_stream_timeout() {
    let c = Cluster::start(|config| {
        config.heartbeat_interval = Duration::from_millis(300);
        config.stream_timeout = Duration::from_millis(1100);
    })
    .await;
    let mut sse = open(c.tc_addr, "/v2/read?counter", None).await;
    assert_eq!(sse.status, 200);
    let mut events = Vec::new();
    while let Some(ev) = sse.event(Duration::from_secs(5)).await {
        events.push(ev);
    }
    let last = events.pop().expect("closing event");
    assert_eq!(
        last,
        "event: closing\ndata: closing due to stream timeout\n\n"
    );
    assert!(events.len() >= 2, "{events:?}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for ev in events {
        let secs: u64 = ev
            .strip_prefix("event: heartbeat\ndata: ")
            .and_then(|s| s.strip_suffix("\n\n"))
            .expect("heartbeat framing")
            .parse()
            .expect("unix seconds");
        assert!(now.abs_diff(secs) <= 5);
    }
    c.wait_subscriptions(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn errors_are_the_gateways_json() {
    let c = Cluster::start(|_| {}).await;
    let check = |r: &HttpReply, status: u16, body: &str| {
        assert_eq!(r.status, status);
        assert_eq!(r.text(), format!("{body}\n"));
        assert_eq!(r.header("content-type"), "text/plain; charset=utf-8");
        assert_eq!(r.header("x-content-type-options"), "nosniff");
    };
    let r = http_request(c.tc_gateway, "GET", "/v2/read", &[], "").await;
    check(
        &r,
        400,
        r#"{"message":"query cannot be empty","error":"empty_query"}"#,
    );
    let r = http_request(c.tc_gateway, "GET", "/v2/read?source_id=x", &[], "").await;
    check(
        &r,
        400,
        r#"{"message":"query must provide at least one envelope type","error":"missing_envelope_type"}"#,
    );
    let r = http_request(c.tc_gateway, "POST", "/v2/read?log", &[], "").await;
    check(
        &r,
        405,
        r#"{"message":"method not allowed","error":"method_not_allowed"}"#,
    );
    let r = http_request(c.tc_gateway, "GET", "/firehose/x", &[], "").await;
    assert_eq!(r.status, 404, "the gateway listener serves only /v2/read");
}
