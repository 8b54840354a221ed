//! Traffic controller end to end: two in-process dopplers (mTLS), our TC, and
//! real WebSocket clients. Firehose sharding, filters, app streams, gauges,
//! bad requests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/tc_cluster.rs"]
mod tc_cluster;

use std::collections::BTreeSet;
use std::time::Duration;

use envelope_proto::events::envelope::EventType;
use futures::{SinkExt, StreamExt};
use tc_cluster::*;
use tokio_tungstenite::tungstenite::Message;

const APP: &str = "11111111-2222-3333-4444-555555555555";
const OTHER_APP: &str = "99999999-2222-3333-4444-555555555555";

/// Collects log texts until `n` arrived or nothing comes for 2 s.
async fn collect_logs<S>(ws: &mut S, n: usize) -> Vec<String>
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let mut out = Vec::new();
    while out.len() < n {
        match next_envelope(ws, Duration::from_secs(2)).await {
            Some(e) => {
                if let Some(t) = log_text(&e) {
                    out.push(t);
                }
            }
            None => break,
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn firehose_shares_split_and_distinct_ids_each_get_everything() {
    let c = Cluster::start(|_| {}).await;
    let mut a1 = c.ws("/firehose/shared?", &[]).await;
    let mut a2 = c.ws("/firehose/shared?", &[]).await;
    let mut b = c.ws("/firehose/solo", &[]).await;
    c.wait_subscriptions(3).await;
    // The gauge counts consumers whose upgrade finished on the TC's side,
    // which can come a moment after the client saw its 101.
    eventually(
        || c.tc_gauge("doppler_proxy_firehoses") == 3,
        "firehose gauge at 3",
    )
    .await;

    let mut sent = BTreeSet::new();
    for d in 0..2 {
        let envs: Vec<_> = (0..100)
            .map(|i| {
                let text = format!("d{d}-{i}");
                sent.insert(text.clone());
                log_env(APP, &text)
            })
            .collect();
        c.push(d, &envs).await;
    }

    let got_b: BTreeSet<String> = collect_logs(&mut b, 200).await.into_iter().collect();
    assert_eq!(
        got_b, sent,
        "a distinct subscription id gets everything from both dopplers"
    );

    let (r1, r2) = tokio::join!(collect_logs(&mut a1, 200), collect_logs(&mut a2, 200));
    assert!(
        !r1.is_empty() && !r2.is_empty(),
        "both shard members get a share: {} / {}",
        r1.len(),
        r2.len()
    );
    assert_eq!(
        r1.len() + r2.len(),
        200,
        "no duplicates across the shard group"
    );
    let union: BTreeSet<String> = r1.into_iter().chain(r2).collect();
    assert_eq!(union, sent);
    assert!(c.tc_counter("egress", &[("endpoint", "firehose")]) >= 400);
    assert!(c.tc_counter("ingress", &[("protocol", "grpc")]) >= 400);

    // Leaving releases every upstream subscription.
    drop(a1);
    a2.close(None).await.unwrap();
    b.send(Message::Close(None)).await.unwrap();
    drop(b);
    c.wait_subscriptions(0).await;
    eventually(
        || c.tc_gauge("doppler_proxy_firehoses") == 0,
        "firehose gauge back to 0",
    )
    .await;
    eventually(
        || c.tc_gauge("doppler_proxy_doppler_streams") == 0,
        "upstream streams closed",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn firehose_filter_types() {
    let c = Cluster::start(|_| {}).await;
    let mut logs = c.ws("/firehose/l?filter-type=logs", &[]).await;
    let mut metrics = c.ws("/firehose/m?filter-type=metrics", &[]).await;
    c.wait_subscriptions(2).await;
    c.push(0, &[log_env(APP, "hello"), counter_env("requests", 3)])
        .await;
    c.push(1, &[counter_env("requests", 4), log_env(APP, "world")])
        .await;

    let mut log_types = Vec::new();
    while let Some(e) = next_envelope(&mut logs, Duration::from_secs(1)).await {
        log_types.push(e.event_type);
    }
    assert_eq!(log_types, vec![Some(EventType::LogMessage as i32); 2]);
    let mut metric_types = Vec::new();
    while let Some(e) = next_envelope(&mut metrics, Duration::from_secs(1)).await {
        metric_types.push(e.event_type);
    }
    assert_eq!(metric_types, vec![Some(EventType::CounterEvent as i32); 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn app_stream_gets_only_its_app() {
    let c = Cluster::start(|_| {}).await;
    let mut ws = c.ws(&format!("/apps/{APP}/stream"), &[]).await;
    c.wait_subscriptions(1).await;
    eventually(
        || c.tc_gauge("doppler_proxy_app_streams") == 1,
        "app stream gauge at 1",
    )
    .await;
    c.push(
        0,
        &[
            log_env(OTHER_APP, "not mine"),
            log_env(APP, "mine-0"),
            counter_env("c", 1),
        ],
    )
    .await;
    c.push(
        1,
        &[
            container_env(APP, 0, 12.5),
            log_env(APP, "mine-1"),
            container_env(OTHER_APP, 0, 1.0),
        ],
    )
    .await;
    let mut logs = BTreeSet::new();
    let mut containers = 0;
    while let Some(e) = next_envelope(&mut ws, Duration::from_secs(1)).await {
        if let Some(t) = log_text(&e) {
            assert_eq!(
                e.log_message.as_ref().and_then(|l| l.app_id.as_deref()),
                Some(APP)
            );
            logs.insert(t);
        } else if let Some(cm) = &e.container_metric {
            assert_eq!(cm.application_id.as_deref(), Some(APP));
            containers += 1;
        } else {
            panic!("unexpected envelope on app stream: {e:?}");
        }
    }
    assert_eq!(
        logs,
        BTreeSet::from(["mine-0".to_owned(), "mine-1".to_owned()])
    );
    assert_eq!(containers, 1);
    assert!(c.tc_counter("egress", &[("endpoint", "stream")]) >= 3);
    drop(ws);
    c.wait_subscriptions(0).await;
    eventually(
        || c.tc_gauge("doppler_proxy_app_streams") == 0,
        "app stream gauge back to 0",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_pings_and_ignores_text_frames() {
    let c = Cluster::start(|_| {}).await;
    let (ws, _) = tokio_tungstenite::connect_async(c.url("/firehose/p"))
        .await
        .unwrap();
    let (mut tx, mut rx) = ws.split();
    // The first frame from the server is a ping.
    let first = tokio::time::timeout(Duration::from_secs(2), rx.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(first, Message::Ping(_)), "{first:?}");
    tx.send(Message::text("please ignore")).await.unwrap();
    c.wait_subscriptions(1).await;
    c.push(0, &[log_env(APP, "after text")]).await;
    let e = next_envelope(&mut rx, Duration::from_secs(3))
        .await
        .expect("envelope");
    assert_eq!(log_text(&e).as_deref(), Some("after text"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_requests() {
    let c = Cluster::start(|config| config.connection_limit = 1).await;
    let r = c.http("GET", "/nope", &[], "").await;
    assert_eq!(
        (r.status, r.text()),
        (404, "404 page not found\n".to_owned())
    );
    let r = c.http("GET", "/firehose/x", &[], "").await;
    assert_eq!(r.status, 400, "not an upgrade");
    let r = c.http("GET", "/apps/not-a-guid/stream", &[], "").await;
    assert_eq!(r.status, 401);
    // Connection limit of 1: the second consumer is refused with 503.
    let _first = c.ws("/firehose/one", &[]).await;
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        c.url("/firehose/two"),
    )
    .unwrap();
    req.headers_mut()
        .insert("origin", http::HeaderValue::from_static("http://x"));
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 503);
            let body = resp.body().clone().unwrap_or_default();
            assert_eq!(String::from_utf8_lossy(&body), "at connection limit: 1\n");
        }
        other => panic!("expected 503, got {other:?}"),
    }
    assert_eq!(c.tc_counter("doppler_proxy_rejected_connections", &[]), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_closes_consumers_with_1000() {
    let c = Cluster::start(|_| {}).await;
    let mut ws = c.ws("/firehose/s", &[]).await;
    c.wait_subscriptions(1).await;
    c.tc_shutdown.trigger();
    let mut code = None;
    while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_secs(3), ws.next()).await {
        if let Ok(Message::Close(Some(f))) = msg {
            code = Some(u16::from(f.code));
            break;
        }
    }
    assert_eq!(code, Some(1000));
    tokio::time::timeout(Duration::from_secs(5), c.tc_handle)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
