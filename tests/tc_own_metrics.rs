//! The traffic controller's own metrics reach the agent as v2 envelopes
//! (reference §12.7): two real dopplers and an in-process traffic controller
//! (mutual TLS), a fake agent (`loggregator.v2.Ingress/Send`, server name
//! `metron`), a real firehose WebSocket consumer and a short emitter interval.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/fake_agent.rs"]
mod fake_agent;
#[path = "support/tc_cluster.rs"]
mod tc_cluster;

use std::collections::BTreeMap;
use std::time::Duration;

use envelope_proto::loggregator_v2::{EnvelopeBatch, envelope};
use fake_agent::FakeAgent;
use tc_cluster::*;
use tokio::net::TcpListener;

const APP: &str = "11111111-2222-3333-4444-555555555555";

/// A metric of one batch: `(delta, total)` of a counter or `(unit, value)` of a gauge.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Counter(u64, u64),
    Gauge(String, f64),
}

type Metrics = BTreeMap<(String, String), Value>;

/// One batch as `(name, tags other than origin/metric_version) -> value`,
/// after checking the identity every envelope must carry.
fn metrics_of(batch: &EnvelopeBatch) -> Metrics {
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

fn counter(m: &Metrics, name: &str, tags: &str) -> (u64, u64) {
    match m.get(&key(name, tags)) {
        Some(Value::Counter(d, t)) => (*d, *t),
        other => panic!("counter {name}{{{tags}}}: {other:?}"),
    }
}

fn gauge(m: &Metrics, name: &str) -> f64 {
    match m.get(&key(name, "")) {
        Some(Value::Gauge(unit, v)) => {
            assert_eq!(unit, "connections", "{name}");
            *v
        }
        other => panic!("gauge {name}: {other:?}"),
    }
}

/// Waits for a batch (after the first `skip`) satisfying `cond`; returns its index.
async fn wait_batch(
    agent: &FakeAgent,
    skip: usize,
    cond: impl Fn(&Metrics) -> bool,
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

/// A cluster whose traffic controller reports to a fake agent every `interval`.
async fn cluster_with_agent(interval: Duration) -> (Cluster, FakeAgent) {
    // The agent needs the cluster's PKI, and the cluster the agent's address:
    // bind first, serve once the PKI exists.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let c = Cluster::start(move |config| {
        config.agent_addr = Some(addr.to_string());
        config.metric_emitter_interval = interval;
    })
    .await;
    let agent = FakeAgent::serve(listener, &c.pki);
    (c, agent)
}

/// Pushes `n` logs (into alternating dopplers) and reads them from `ws`.
async fn deliver(c: &Cluster, ws: &mut Ws, tag: &str, n: usize) {
    for i in 0..n {
        c.push(i % 2, &[log_env(APP, &format!("{tag}{i}"))]).await;
    }
    for _ in 0..n {
        next_envelope(ws, Duration::from_secs(10))
            .await
            .expect("envelope on the firehose");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_metrics_reach_the_agent_with_deltas_since_the_last_emission() {
    let (c, agent) = cluster_with_agent(Duration::from_millis(200)).await;

    // The first batch goes out at start-up, before any traffic: counters in
    // the order given, then the gauges, one envelope per metric.
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
    let Some(envelope::Message::Counter(first_counter)) = &batches[first].batch[0].message else {
        panic!("counters come first");
    };
    assert_eq!(first_counter.name, "egress");

    // A firehose consumer and three envelopes.
    let mut ws = c.ws("/firehose/sub-1", &[]).await;
    c.wait_subscriptions(1).await;
    deliver(&c, &mut ws, "a", 3).await;
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

    // Two more: the batch that reaches total 5 carries only the increase.
    deliver(&c, &mut ws, "b", 2).await;
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
    assert!((3..5).contains(&prev_total), "{prev:?}");
    assert_eq!(
        counter(&m, "egress", "endpoint=firehose"),
        (5 - prev_total, 5),
        "delta is the increase since the previous batch"
    );
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
    drop(ws);
    c.wait_subscriptions(0).await;
    wait_batch(
        &agent,
        after + 1,
        |m| gauge(m, "doppler_proxy.firehoses") == 0.0,
        "the firehose gauge back at 0",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_interval_emits_nothing() {
    let (c, agent) = cluster_with_agent(Duration::ZERO).await;
    // Five times the other test's interval, with a consumer connected and
    // envelopes flowing.
    let mut ws = c.ws("/firehose/sub-0", &[]).await;
    c.wait_subscriptions(1).await;
    deliver(&c, &mut ws, "z", 2).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(agent.batches().is_empty(), "{:?}", agent.batches());
}
