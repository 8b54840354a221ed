//! Slow subscribers lose envelopes (and are told so in-stream) without
//! affecting fast subscribers; ingress overload drops oldest and counts.
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "support/doppler_harness.rs"]
mod harness;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use envelope_proto::loggregator_v2::{self as v2, EgressBatchRequest, egress_client::EgressClient};
use envelope_proto::plumbing_v1::filter::Message as FilterMsg;
use envelope_proto::plumbing_v1::{
    Filter, LogFilter, MetricFilter, SubscriptionRequest, doppler_client::DopplerClient,
};
use harness::*;

const WARNING_PREFIX: &str = "Log message output is too high. ";

fn is_warning_log(e: &v2::Envelope) -> bool {
    payload_text(e).starts_with(WARNING_PREFIX)
}

fn warning_counter(e: &v2::Envelope) -> Option<(u64, u64)> {
    match &e.message {
        Some(v2::envelope::Message::Counter(c)) if c.name == "TruncatingBuffer.DroppedMessages" => {
            Some((c.delta, c.total))
        }
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_subscriber_loses_and_is_warned_fast_one_loses_nothing() {
    // Default rings (1000 per subscription); bursts of 200 never overflow a
    // subscriber that keeps reading.
    let d = start().await;
    // Fast subscriber: reads continuously in its own task.
    let mut fast = d.subscribe(req(vec![sel_log("")])).await;
    let fast_count = Arc::new(AtomicUsize::new(0));
    let fc = Arc::clone(&fast_count);
    let fast_task = tokio::spawn(async move {
        let mut warnings = 0;
        loop {
            let b = match fast.message().await {
                Ok(Some(b)) => b,
                Ok(None) => break,
                Err(e) => panic!("fast subscriber stream failed: {e:?}"),
            };
            for e in &b.batch {
                if is_warning_log(e) {
                    warnings += 1;
                }
            }
            fc.fetch_add(b.batch.len(), Ordering::SeqCst);
        }
        warnings
    });
    // Stalled subscriber: tiny HTTP/2 windows, does not read for now.
    let mut stalled = EgressClient::new(d.small_window_channel())
        .batched_receiver(req(vec![
            sel_log(""),
            sel_counter("", "TruncatingBuffer.DroppedMessages"),
        ]))
        .await
        .unwrap()
        .into_inner();
    d.wait_subscriptions(2).await;

    let payload = "x".repeat(1000);
    let rounds = 25;
    let per_round = 200;
    for r in 0..rounds {
        d.send(vec![(0..per_round).map(|_| log("app", &payload)).collect()])
            .await;
        let want = (r + 1) * per_round;
        eventually(
            || fast_count.load(Ordering::SeqCst) >= want,
            &format!(
                "fast subscriber keeps up: {} of {want}, dropped {}",
                fast_count.load(Ordering::SeqCst),
                d.counter("dropped", &[("direction", "egress")])
            ),
        )
        .await;
    }
    let sent = rounds * per_round;
    let dropped = d.counter("dropped", &[("direction", "egress")]);
    assert!(dropped > 0, "stalled subscriber must lose envelopes");

    // Now the stalled subscriber reads: it gets what survived plus warnings.
    let got = recv_for(&mut stalled, 1500).await;
    let logs: Vec<_> = got.iter().filter(|e| payload_text(e) == payload).collect();
    let warn_logs: Vec<_> = got.iter().filter(|e| is_warning_log(e)).collect();
    let counters: Vec<_> = got.iter().filter_map(warning_counter).collect();
    assert!(!warn_logs.is_empty(), "warning log delivered");
    assert_eq!(
        warn_logs.len(),
        counters.len(),
        "log and counter per warning"
    );
    let delta_sum: u64 = counters.iter().map(|c| c.0).sum();
    assert_eq!(delta_sum, dropped, "warnings account for every drop");
    assert_eq!(counters.last().unwrap().1, dropped, "running total");
    assert_eq!(
        logs.len() as u64 + dropped,
        sent as u64,
        "received + dropped = sent"
    );
    let w = payload_text(warn_logs[0]);
    assert!(
        w.contains(" messages dropped (Total ")
            && w.contains(" messages dropped) from DopplerServer to 127.0.0.1:"),
        "{w}"
    );
    let l = warn_logs[0];
    assert_eq!(l.source_id, "system");
    assert_eq!(l.tags.get("source_type").map(String::as_str), Some("LGR"));
    assert_eq!(
        l.tags.get("origin").map(String::as_str),
        Some("DopplerServer")
    );
    assert!(
        matches!(&l.message, Some(v2::envelope::Message::Log(x)) if x.r#type == v2::log::Type::Err as i32)
    );

    assert_eq!(
        fast_count.load(Ordering::SeqCst),
        sent,
        "fast subscriber lost nothing"
    );
    drop(stalled);
    d.stop().await;
    assert_eq!(
        fast_task.await.unwrap(),
        0,
        "fast subscriber saw no warning"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_warnings_follow_filters_and_app_scope() {
    let d = start_with(|c| c.egress_buffer_size = std::num::NonZeroUsize::new(50).unwrap()).await;
    let v1 = |f: Option<FilterMsg>, app: &str| {
        let client = DopplerClient::new(d.small_window_channel());
        let req = SubscriptionRequest {
            shard_id: String::new(),
            filter: Some(Filter {
                app_id: app.into(),
                message: f,
            }),
        };
        async move {
            let mut c = client;
            c.batch_subscribe(req).await.unwrap().into_inner()
        }
    };
    let mut metrics_only = v1(Some(FilterMsg::Metric(MetricFilter {})), "").await;
    let mut logs_only = v1(Some(FilterMsg::Log(LogFilter {})), "app-w").await;
    // v2 app-scoped subscriber, logs only.
    let mut v2_app = EgressClient::new(d.small_window_channel())
        .batched_receiver(req(vec![sel_log("app-w")]))
        .await
        .unwrap()
        .into_inner();
    d.wait_subscriptions(3).await;
    let big = "y".repeat(2000);
    // Counters as big as the logs: 2,000 of them (4 MB) are far more than doppler's HTTP/2
    // send buffer and the client's window hold, so the metrics-only subscriber's 50-slot ring
    // overflows however promptly doppler drains it (small counters could all fit in flight).
    let busy = format!("busy-{big}");
    for _ in 0..20 {
        d.push_v1((0..100).map(|_| v1_counter(&busy)).collect())
            .await;
        d.send(vec![(0..50).map(|_| log("app-w", &big)).collect()])
            .await;
    }
    assert!(d.counter("dropped", &[("direction", "egress")]) > 0);

    let m = recv_v1_for(&mut metrics_only, 1500).await;
    let warn: Vec<_> = m
        .iter()
        .filter_map(|e| e.counter_event.as_ref())
        .filter(|c| c.name.as_deref() == Some("TruncatingBuffer.DroppedMessages"))
        .collect();
    assert!(
        !warn.is_empty(),
        "metrics-only v1 subscriber gets the counter"
    );
    assert!(m.iter().all(|e| e.log_message.is_none()), "and no log");

    let l = recv_v1_for(&mut logs_only, 1500).await;
    let warn: Vec<_> = l
        .iter()
        .filter_map(|e| e.log_message.as_ref())
        .filter(|lm| {
            String::from_utf8_lossy(lm.message.as_deref().unwrap_or_default())
                .starts_with(WARNING_PREFIX)
        })
        .collect();
    assert!(!warn.is_empty(), "logs-only v1 subscriber gets the log");
    assert_eq!(warn[0].app_id.as_deref(), Some("app-w"));
    assert_eq!(warn[0].source_type.as_deref(), Some("LGR"));
    assert_eq!(warn[0].message_type, Some(2), "ERR");
    assert!(
        l.iter().all(|e| e.counter_event.is_none()),
        "and no counter"
    );

    let v = recv_for(&mut v2_app, 1500).await;
    let warn: Vec<_> = v.iter().filter(|e| is_warning_log(e)).collect();
    assert!(!warn.is_empty());
    assert!(
        warn.iter().all(|e| e.source_id == "app-w"),
        "carries the app id"
    );
    assert!(
        v.iter().all(|e| warning_counter(e).is_none()),
        "log selector admits no counter"
    );
    d.stop().await;
}

#[tokio::test]
async fn ingress_overflow_drops_oldest_and_counts() {
    // current_thread runtime: the ingress handler pushes a whole batch before
    // the router runs, so a 10-slot ring keeps exactly the newest 10 of 100.
    let d = start_with(|c| c.ingress_buffer_size = std::num::NonZeroUsize::new(10).unwrap()).await;
    let mut sub = d
        .subscribe(EgressBatchRequest {
            ..req(vec![sel_log("")])
        })
        .await;
    d.wait_subscriptions(1).await;
    d.send(vec![(0..100).map(|i| log("a", &i.to_string())).collect()])
        .await;
    let got = recv_n(&mut sub, 10, 5).await;
    assert_eq!(
        got.iter().map(payload_text).collect::<Vec<_>>(),
        (90..100).map(|i| i.to_string()).collect::<Vec<_>>()
    );
    eventually(
        || d.counter("dropped", &[("direction", "ingress")]) == 90,
        "90 ingress drops",
    )
    .await;
    assert_eq!(d.counter("ingress", &[]), 100);
    d.stop().await;
}
