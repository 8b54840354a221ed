//! Every doppler RPC over mTLS with real tonic clients.
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "support/fake_agent.rs"]
mod fake_agent;
#[path = "support/doppler_harness.rs"]
mod harness;

use bytes::Bytes;
use envelope_proto::events::envelope::EventType;
use envelope_proto::loggregator_v2::{EgressRequest, EnvelopeBatch};
use envelope_proto::plumbing_v1::{
    ContainerMetricsRequest, RecentLogsRequest, SubscriptionRequest,
};
use fake_agent::FakeAgent;
use harness::*;
use prost::Message;

#[tokio::test]
async fn batch_sender_to_batched_receiver() {
    let d = start().await;
    let mut sub = d.subscribe(req(vec![sel_log("")])).await;
    d.wait_subscriptions(1).await;
    d.send(vec![
        vec![log("a", "one"), log("b", "two")],
        vec![log("a", "three")],
    ])
    .await;
    let got = recv_n(&mut sub, 3, 5).await;
    let texts: Vec<_> = got.iter().map(payload_text).collect();
    assert_eq!(texts, vec!["one", "two", "three"]);
    // Delivered bytes are the original envelope (no re-encode).
    assert_eq!(got[0].encode_to_vec(), log("a", "one").encode_to_vec());
    assert_eq!(d.counter("ingress", &[]), 3);
    assert_eq!(d.counter("egress", &[]), 3);
    d.stop().await;
}

#[tokio::test]
async fn sender_single_envelopes() {
    let d = start().await;
    let mut sub = d.subscribe(req(vec![sel_log("app")])).await;
    d.wait_subscriptions(1).await;
    let envs = vec![log("app", "x"), log("other", "no"), log("app", "y")];
    d.ingress()
        .sender(futures::stream::iter(envs))
        .await
        .unwrap();
    let got = recv_n(&mut sub, 2, 5).await;
    assert_eq!(
        got.iter().map(payload_text).collect::<Vec<_>>(),
        vec!["x", "y"]
    );
    d.stop().await;
}

#[tokio::test]
async fn send_and_receiver_are_unimplemented() {
    let d = start().await;
    let err = d
        .ingress()
        .send(EnvelopeBatch::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);
    assert_eq!(err.message(), "this endpoint is not yet implemented");
    let err = d
        .egress()
        .receiver(EgressRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);
    assert_eq!(err.message(), "use BatchedReceiver instead");
    d.stop().await;
}

#[tokio::test]
async fn selector_less_request_receives_nothing() {
    let d = start().await;
    // No selectors (a legacy selector alone is ignored by doppler as upstream).
    let mut r = req(vec![]);
    r.legacy_selector = Some(sel_log(""));
    let mut sub = d.subscribe(r).await;
    d.wait_subscriptions(1).await;
    d.send(vec![vec![log("a", "x")]]).await;
    assert!(recv_for(&mut sub, 300).await.is_empty());
    drop(sub);
    d.wait_subscriptions(0).await;
    d.stop().await;
}

#[tokio::test]
async fn pusher_v1_reaches_v1_and_v2_subscribers() {
    let d = start().await;
    let mut v2sub = d.subscribe(req(vec![sel_log("app-1")])).await;
    let mut v1sub = d.subscribe_v1("", "app-1", None).await;
    d.wait_subscriptions(2).await;
    let env = v1_log("app-1", "hello");
    d.push_v1(vec![env.clone()]).await;
    let v1 = recv_v1_n(&mut v1sub, 1, 5).await;
    assert_eq!(v1[0], env, "v1 subscribers get the original v1 envelope");
    let v2 = recv_n(&mut v2sub, 1, 5).await;
    assert_eq!(v2[0], envelope_proto::convert::to_v2(&env, true));
    d.stop().await;
}

#[tokio::test]
async fn v2_ingress_reaches_v1_subscribe_converted() {
    let d = start().await;
    let mut stream = d
        .v1()
        .subscribe(SubscriptionRequest::default())
        .await
        .unwrap()
        .into_inner();
    d.wait_subscriptions(1).await;
    let e = log("app-2", "converted");
    d.send(vec![vec![e.clone()]]).await;
    let msg = tokio::time::timeout(std::time::Duration::from_secs(5), stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let got = envelope_proto::v1::decode(&msg.payload).unwrap();
    let want = envelope_proto::convert::to_v1(&e);
    assert_eq!(vec![got], want);
    d.stop().await;
}

#[tokio::test]
async fn timers_without_request_id_are_not_delivered_to_v1() {
    let d = start().await;
    let mut v1sub = d.subscribe_v1("", "", None).await;
    let mut v2sub = d.subscribe(req(vec![sel_timer("")])).await;
    d.wait_subscriptions(2).await;
    d.send(vec![vec![
        timer("t", None),
        timer("t", Some("f47ac10b-58cc-4372-a567-0e02b2c3d479")),
    ]])
    .await;
    assert_eq!(recv_n(&mut v2sub, 2, 5).await.len(), 2);
    let v1 = recv_v1_for(&mut v1sub, 300).await;
    assert_eq!(v1.len(), 1);
    assert_eq!(v1[0].event_type, Some(EventType::HttpStartStop as i32));
    assert_eq!(d.counter("v1_conversion_failures", &[]), 1);
    d.stop().await;
}

#[tokio::test]
async fn recent_logs_keeps_last_n_oldest_first() {
    let d = start_with(|c| c.cache.max_logs_per_app = 3).await;
    // v2 and v1 ingress both feed the cache.
    d.send(vec![
        (0..4).map(|i| log("app-r", &format!("v2-{i}"))).collect(),
    ])
    .await;
    d.push_v1(vec![v1_log("app-r", "v1-last")]).await;
    d.send(vec![vec![log("other", "x")]]).await;
    let texts = poll_until(
        || {
            let mut c = d.v1();
            async move {
                let resp = c
                    .recent_logs(RecentLogsRequest {
                        app_id: "app-r".into(),
                    })
                    .await
                    .unwrap()
                    .into_inner();
                resp.payload
                    .iter()
                    .map(|p| {
                        let e = envelope_proto::v1::decode(p).unwrap();
                        String::from_utf8(e.log_message.unwrap().message.unwrap().to_vec()).unwrap()
                    })
                    .collect::<Vec<_>>()
            }
        },
        |t| t.len() == 3 && t[2] == "v1-last",
    )
    .await;
    assert_eq!(texts, vec!["v2-2", "v2-3", "v1-last"]);
    let none = d
        .v1()
        .recent_logs(RecentLogsRequest {
            app_id: "nobody".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(none.payload.is_empty());
    d.stop().await;
}

#[tokio::test]
async fn container_metrics_newest_per_instance_within_ttl() {
    let d = start_with(|c| c.cache.container_metric_ttl = std::time::Duration::from_secs(60)).await;
    let now = now_ns();
    let old = now - 120 * 1_000_000_000;
    d.push_v1(vec![
        v1_container_metric("app-c", 0, now - 2, 1.0),
        v1_container_metric("app-c", 0, now - 1, 2.0),
        v1_container_metric("app-c", 1, old, 3.0),
    ])
    .await;
    let cpus = poll_until(
        || {
            let mut c = d.v1();
            async move {
                let resp = c
                    .container_metrics(ContainerMetricsRequest {
                        app_id: "app-c".into(),
                    })
                    .await
                    .unwrap()
                    .into_inner();
                resp.payload
                    .iter()
                    .map(|p| {
                        let e = envelope_proto::v1::decode(p).unwrap();
                        let cm = e.container_metric.unwrap();
                        (cm.instance_index.unwrap(), cm.cpu_percentage.unwrap())
                    })
                    .collect::<Vec<_>>()
            }
        },
        |c| c.first().is_some_and(|x| x.1 == 2.0),
    )
    .await;
    // instance 1 is older than the TTL; instance 0 keeps the newest.
    assert_eq!(cpus, vec![(0, 2.0)]);
    d.stop().await;
}

#[tokio::test]
async fn v1_subscribe_sends_one_envelope_per_response() {
    let d = start().await;
    let mut stream = d
        .v1()
        .subscribe(SubscriptionRequest::default())
        .await
        .unwrap()
        .into_inner();
    d.wait_subscriptions(1).await;
    d.push_v1(vec![v1_log("a", "1"), v1_log("a", "2")]).await;
    for want in ["1", "2"] {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(5), stream.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let e = envelope_proto::v1::decode(&msg.payload).unwrap();
        assert_eq!(e.log_message.unwrap().message.unwrap(), Bytes::from(want));
    }
    d.stop().await;
}

#[tokio::test]
async fn recent_logs_cache_evicts_least_recently_used_app() {
    let d = start_with(|c| c.cache.max_apps = 2).await;
    for app in ["app-1", "app-2", "app-3"] {
        d.send(vec![vec![log(app, app)]]).await;
        // let the router cache it before the next app arrives
        poll_until(
            || {
                let mut c = d.v1();
                async move {
                    c.recent_logs(RecentLogsRequest { app_id: app.into() })
                        .await
                        .unwrap()
                        .into_inner()
                        .payload
                        .len()
                }
            },
            |n| *n == 1,
        )
        .await;
    }
    let count = |app: &'static str| {
        let mut c = d.v1();
        async move {
            c.recent_logs(RecentLogsRequest { app_id: app.into() })
                .await
                .unwrap()
                .into_inner()
                .payload
                .len()
        }
    };
    assert_eq!(count("app-1").await, 0, "least recently used app evicted");
    assert_eq!(count("app-2").await, 1);
    assert_eq!(count("app-3").await, 1);
    assert_eq!(d.counter("recent_logs_apps_evicted", &[]), 1);
    d.stop().await;
}

#[tokio::test]
async fn own_metrics_are_sent_to_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let pki = plumbing::tls::dev::DevPki::generate(dir.path()).unwrap();
    let (agent, agent_addr) = FakeAgent::start(&pki).await;
    let files = pki.files("doppler");
    let d = start_with(|c| {
        // doppler's own identity from the same CA as the fake agent
        c.tls = Some(doppler::config::TlsPaths {
            ca: files.ca.clone().unwrap(),
            cert: files.cert.clone(),
            key: files.key.clone(),
        });
        c.agent_metrics = Some(doppler::config::AgentMetrics {
            addr: agent_addr.to_string(),
            interval: std::time::Duration::from_millis(50),
            source_id: "doppler".into(),
        });
    })
    .await;
    eventually(
        || {
            agent.envelopes().iter().any(|e| {
                matches!(&e.message,
                    Some(envelope_proto::loggregator_v2::envelope::Message::Counter(c)) if c.name == "dropped")
            })
        },
        "own metrics at the agent",
    )
    .await;
    let got = agent.envelopes();
    let names: std::collections::BTreeSet<String> = got
        .iter()
        .filter_map(|e| match &e.message {
            Some(envelope_proto::loggregator_v2::envelope::Message::Counter(c)) => {
                Some(c.name.clone())
            }
            Some(envelope_proto::loggregator_v2::envelope::Message::Gauge(g)) => {
                g.metrics.keys().next().cloned()
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        vec!["dropped", "egress", "ingress", "subscriptions"]
    );
    let e = &got[0];
    assert_eq!(e.source_id, "doppler");
    assert_eq!(
        e.tags.get("origin").map(String::as_str),
        Some("loggregator.doppler")
    );
    assert_eq!(
        e.tags.get("metric_version").map(String::as_str),
        Some("2.0")
    );
    d.stop().await;
}
