//! Routing rules end to end: selectors, shard groups, v1 filters, tag forms.
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "support/doppler_harness.rs"]
mod harness;

use std::collections::BTreeMap;

use envelope_proto::loggregator_v2::{self as v2, EgressBatchRequest, value::Data};
use envelope_proto::plumbing_v1::filter::Message as FilterMsg;
use envelope_proto::plumbing_v1::{LogFilter, MetricFilter};
use harness::*;

fn kind(e: &v2::Envelope) -> &'static str {
    match e.message {
        Some(v2::envelope::Message::Log(_)) => "log",
        Some(v2::envelope::Message::Counter(_)) => "counter",
        Some(v2::envelope::Message::Gauge(_)) => "gauge",
        Some(v2::envelope::Message::Timer(_)) => "timer",
        Some(v2::envelope::Message::Event(_)) => "event",
        None => "none",
    }
}

#[tokio::test]
async fn selectors_by_type_source_counter_name_and_gauge_set() {
    let d = start().await;
    let mut logs_a = d.subscribe(req(vec![sel_log("a")])).await;
    let mut counters_c1 = d.subscribe(req(vec![sel_counter("", "c1")])).await;
    let mut gauges_xy = d.subscribe(req(vec![sel_gauge("", &["x", "y"])])).await;
    let mut timers = d.subscribe(req(vec![sel_timer("")])).await;
    let mut events = d.subscribe(req(vec![sel_event("b")])).await;
    d.wait_subscriptions(5).await;
    d.send(vec![vec![
        log("a", "1"),
        log("b", "2"),
        counter("a", "c1", 1),
        counter("a", "c2", 1),
        gauge("a", &["x"]),
        gauge("a", &["x", "y"]),
        gauge("a", &["x", "y", "z"]),
        timer("a", None),
        event("a"),
        event("b"),
    ]])
    .await;
    let got = recv_for(&mut logs_a, 300).await;
    assert_eq!(got.iter().map(payload_text).collect::<Vec<_>>(), vec!["1"]);
    let got = recv_for(&mut counters_c1, 300).await;
    assert_eq!(got.len(), 1);
    assert!(matches!(&got[0].message, Some(v2::envelope::Message::Counter(c)) if c.name == "c1"));
    let got = recv_for(&mut gauges_xy, 300).await;
    assert_eq!(got.len(), 1, "exact name set only, not subset or superset");
    match &got[0].message {
        Some(v2::envelope::Message::Gauge(g)) => {
            assert_eq!(g.metrics.keys().collect::<Vec<_>>(), vec!["x", "y"])
        }
        other => panic!("{other:?}"),
    }
    let got = recv_for(&mut timers, 300).await;
    assert_eq!(got.iter().map(kind).collect::<Vec<_>>(), vec!["timer"]);
    let got = recv_for(&mut events, 300).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].source_id, "b");
    d.stop().await;
}

#[tokio::test]
async fn two_matching_selectors_deliver_twice() {
    let d = start().await;
    let mut sub = d.subscribe(req(vec![sel_log(""), sel_log("a")])).await;
    d.wait_subscriptions(1).await;
    d.send(vec![vec![log("a", "dup"), log("b", "once")]]).await;
    let mut got: Vec<_> = recv_for(&mut sub, 300)
        .await
        .iter()
        .map(payload_text)
        .collect();
    got.sort();
    assert_eq!(got, vec!["dup", "dup", "once"]);
    d.stop().await;
}

#[tokio::test]
async fn shard_group_splits_evenly_and_other_groups_get_everything() {
    let d = start().await;
    let shard = |id: &str| EgressBatchRequest {
        shard_id: id.into(),
        ..req(vec![sel_log("")])
    };
    let mut members = Vec::new();
    for _ in 0..3 {
        members.push(d.subscribe(shard("group")).await);
    }
    let mut other = d.subscribe(shard("other")).await;
    let mut unsharded = d.subscribe(req(vec![sel_log("")])).await;
    d.wait_subscriptions(5).await;
    let n = 3000;
    // One call per batch so subscriber streams drain between bursts (each
    // subscriber ring holds 1000).
    for b in 0..n / 100 {
        d.send(vec![
            (0..100)
                .map(|i| log("s", &format!("{}", b * 100 + i)))
                .collect(),
        ])
        .await;
    }
    assert_eq!(recv_n(&mut other, n, 10).await.len(), n);
    assert_eq!(recv_n(&mut unsharded, n, 10).await.len(), n);
    let mut total = 0;
    let mut seen = std::collections::BTreeSet::new();
    for m in &mut members {
        let got = recv_for(m, 500).await;
        // 1000 expected each; binomial sd ~26, so 850..1150 is > 5 sd.
        assert!((850..1150).contains(&got.len()), "uneven: {}", got.len());
        total += got.len();
        for e in got {
            assert!(seen.insert(payload_text(&e)), "delivered to two members");
        }
    }
    assert_eq!(total, n, "exactly one member per envelope");
    d.stop().await;
}

#[tokio::test]
async fn deterministic_names_pin_counters_to_members() {
    let d = start().await;
    let member = |name: &str| EgressBatchRequest {
        shard_id: "g".into(),
        deterministic_name: name.into(),
        ..req(vec![sel_counter("", "")])
    };
    let mut subs = vec![
        d.subscribe(member("b-name")).await,
        d.subscribe(member("a-name")).await,
    ];
    d.wait_subscriptions(2).await;
    let names: Vec<String> = (0..20).map(|i| format!("metric-{i}")).collect();
    for _round in 0..3 {
        d.send(vec![names.iter().map(|n| counter("s", n, 1)).collect()])
            .await;
    }
    // sorted by deterministic name: index 0 = "a-name" (subs[1]), 1 = "b-name" (subs[0])
    let mut by_member: Vec<BTreeMap<String, usize>> = Vec::new();
    for s in &mut subs {
        let mut m = BTreeMap::new();
        for e in recv_for(s, 500).await {
            if let Some(v2::envelope::Message::Counter(c)) = e.message {
                *m.entry(c.name).or_insert(0) += 1;
            }
        }
        by_member.push(m);
    }
    for n in &names {
        let idx = (envelope_proto::view::crc64(n.as_bytes()) % 2) as usize;
        let owner = if idx == 0 { 1 } else { 0 };
        assert_eq!(
            by_member[owner].get(n),
            Some(&3),
            "{n} pinned to member {owner}"
        );
        assert_eq!(by_member[1 - owner].get(n), None);
    }
    d.stop().await;
}

#[tokio::test]
async fn v1_filters_by_app_and_type() {
    let d = start().await;
    let mut firehose = d.subscribe_v1("", "", None).await;
    let mut logs = d
        .subscribe_v1("", "", Some(FilterMsg::Log(LogFilter {})))
        .await;
    let mut metrics = d
        .subscribe_v1("", "", Some(FilterMsg::Metric(MetricFilter {})))
        .await;
    let mut app = d.subscribe_v1("", "app-x", None).await;
    let mut app_logs = d
        .subscribe_v1("", "app-x", Some(FilterMsg::Log(LogFilter {})))
        .await;
    d.wait_subscriptions(5).await;
    d.push_v1(vec![
        v1_log("app-x", "1"),
        v1_log("app-y", "2"),
        v1_counter("c"),
    ])
    .await;
    assert_eq!(recv_v1_for(&mut firehose, 300).await.len(), 3);
    assert_eq!(recv_v1_for(&mut logs, 300).await.len(), 2);
    let m = recv_v1_for(&mut metrics, 300).await;
    assert_eq!(m.len(), 1);
    assert!(m[0].counter_event.is_some());
    let a = recv_v1_for(&mut app, 300).await;
    assert_eq!(a.len(), 1);
    assert_eq!(
        a[0].log_message.as_ref().unwrap().app_id.as_deref(),
        Some("app-x")
    );
    assert_eq!(recv_v1_for(&mut app_logs, 300).await.len(), 1);
    d.stop().await;
}

#[tokio::test]
async fn v1_shard_group_splits() {
    let d = start().await;
    let mut a = d.subscribe_v1("fh", "", None).await;
    let mut b = d.subscribe_v1("fh", "", None).await;
    d.wait_subscriptions(2).await;
    d.push_v1((0..400).map(|i| v1_log("app", &i.to_string())).collect())
        .await;
    let na = recv_v1_for(&mut a, 500).await.len();
    let nb = recv_v1_for(&mut b, 500).await.len();
    assert_eq!(na + nb, 400);
    assert!(na > 100 && nb > 100, "{na} / {nb}");
    d.stop().await;
}

#[tokio::test]
async fn tag_forms_follow_use_preferred_tags() {
    let d = start().await;
    let mut preferred = d.subscribe(req(vec![sel_log("")])).await;
    let mut deprecated = d
        .subscribe(EgressBatchRequest {
            use_preferred_tags: false,
            ..req(vec![sel_log("")])
        })
        .await;
    d.wait_subscriptions(2).await;
    let mut e = log("a", "t");
    e.deprecated_tags.insert(
        "legacy".into(),
        v2::Value {
            data: Some(Data::Integer(7)),
        },
    );
    d.send(vec![vec![e.clone(), log("a", "plain")]]).await;
    let p = recv_n(&mut preferred, 2, 5).await;
    assert_eq!(p[0].tags.get("legacy").map(String::as_str), Some("7"));
    assert_eq!(
        p[0].tags.get("source_type").map(String::as_str),
        Some("APP/PROC/WEB")
    );
    assert!(p[0].deprecated_tags.is_empty());
    assert_eq!(
        p[1],
        log("a", "plain"),
        "untouched when nothing to converge"
    );
    let q = recv_n(&mut deprecated, 2, 5).await;
    assert!(q[0].tags.is_empty());
    assert_eq!(
        q[0].deprecated_tags.get("source_type"),
        Some(&v2::Value {
            data: Some(Data::Text("APP/PROC/WEB".into()))
        })
    );
    assert_eq!(
        q[0].deprecated_tags.get("legacy"),
        Some(&v2::Value {
            data: Some(Data::Integer(7))
        })
    );
    assert!(q[1].tags.is_empty());
    d.stop().await;
}
