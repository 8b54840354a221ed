//! Agent → doppler → doppler v2 egress, both ingress paths, over real mTLS
//! gRPC and UDP sockets.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/agent_cluster.rs"]
mod agent_cluster;

use std::collections::BTreeMap;
use std::time::Duration;

use agent_cluster::{Doppler, collect_until, eventually, pki, start_agent};
use base64::Engine as _;
use envelope_proto::events;
use envelope_proto::loggregator_v2::{Counter, Envelope, Log, envelope::Message};
use prost::Message as _;
use serde_json::Value;

fn any() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn log(source: &str, text: &str) -> Envelope {
    Envelope {
        timestamp: 1,
        source_id: source.into(),
        message: Some(Message::Log(Log {
            payload: text.as_bytes().to_vec().into(),
            r#type: 0,
        })),
        ..Default::default()
    }
}

fn counter(source: &str, name: &str, delta: u64) -> Envelope {
    Envelope {
        timestamp: 1,
        source_id: source.into(),
        message: Some(Message::Counter(Counter {
            name: name.into(),
            delta,
            total: 0,
        })),
        ..Default::default()
    }
}

fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_envelopes_are_tagged_totalled_and_delivered() {
    let pki = pki();
    let doppler = Doppler::start(&pki, any());
    let agent = start_agent(&pki, vec![doppler.addr.to_string()], |c| {
        c.default_tags = tags(&[("deployment", "cf"), ("job", "agent-job")]);
    })
    .await;
    agent.wait_streams(5, 5).await;
    let mut sub = doppler.subscribe_all(&pki).await;

    let mut mine = log("app", "hello");
    mine.tags.insert("job".into(), "mine".into());
    let mut no_source = counter("", "c", 2);
    no_source.tags.insert("origin".into(), "emitter".into());
    agent
        .send_batches(
            &pki,
            vec![
                vec![mine, counter("app", "c", 1)],
                vec![counter("app", "c", 4), no_source],
            ],
        )
        .await;

    let got = collect_until(&mut sub, Duration::from_secs(10), |g| g.len() >= 4).await;
    assert_eq!(got.len(), 4, "{got:?}");
    let logs: Vec<&Envelope> = got
        .iter()
        .filter(|e| matches!(e.message, Some(Message::Log(_))))
        .collect();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].tags, tags(&[("deployment", "cf"), ("job", "mine")]));
    let mut totals: Vec<(String, u64, u64)> = got
        .iter()
        .filter_map(|e| match &e.message {
            Some(Message::Counter(c)) => Some((e.source_id.clone(), c.delta, c.total)),
            _ => None,
        })
        .collect();
    totals.sort();
    assert_eq!(
        totals,
        vec![
            ("app".into(), 1, 1),
            ("app".into(), 4, 5),
            ("emitter".into(), 2, 2)
        ]
    );
    assert!(
        got.iter()
            .all(|e| e.tags.get("deployment").map(String::as_str) == Some("cf"))
    );
    assert_eq!(agent.counter("ingress", &[("metric_version", "2.0")]), 4);
    eventually(
        || agent.counter("egress", &[("metric_version", "2.0")]) == 4,
        "egress counted",
    )
    .await;
    assert_eq!(
        agent.counter("origin_mappings", &[("metric_version", "2.0")]),
        1
    );
    assert_eq!(agent.gauge("doppler_connections"), 10);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counter_totals_survive_sender_restarts() {
    let pki = pki();
    let doppler = Doppler::start(&pki, any());
    let agent = start_agent(&pki, vec![doppler.addr.to_string()], |_| {}).await;
    agent.wait_streams(5, 5).await;
    let mut sub = doppler.subscribe_all(&pki).await;
    // Three separate client connections (the emitter restarts in between).
    for delta in [1, 2, 3] {
        agent
            .send_batches(&pki, vec![vec![counter("app", "restarts", delta)]])
            .await;
        let got = collect_until(&mut sub, Duration::from_secs(10), |g| !g.is_empty()).await;
        let Some(Message::Counter(c)) = &got[0].message else {
            panic!("not a counter")
        };
        assert_eq!(c.total, [0, 1, 3, 6][delta as usize]);
    }
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_disabled_drops_only_logs() {
    let pki = pki();
    let doppler = Doppler::start(&pki, any());
    let agent = start_agent(&pki, vec![doppler.addr.to_string()], |c| {
        c.logs_disabled = true
    })
    .await;
    agent.wait_streams(5, 5).await;
    let mut sub = doppler.subscribe_all(&pki).await;
    agent
        .send_batches(
            &pki,
            vec![vec![
                log("app", "x"),
                counter("app", "c", 1),
                log("app", "y"),
            ]],
        )
        .await;
    let got = collect_until(&mut sub, Duration::from_millis(1500), |_| false).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(matches!(got[0].message, Some(Message::Counter(_))));
    assert_eq!(
        agent.counter("logs_disabled_dropped", &[("metric_version", "2.0")]),
        2
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_without_valid_certificate_is_refused() {
    let pki = pki();
    let other = agent_cluster::pki();
    let doppler = Doppler::start(&pki, any());
    let agent = start_agent(&pki, vec![doppler.addr.to_string()], |_| {}).await;
    // No client certificate at all.
    let ca = pki.pki.files("client").ca.clone().unwrap();
    let cfg = plumbing::tls::client_config_without_cert(&ca, &Default::default()).unwrap();
    let ch = plumbing::tls::grpc::channel(&agent.grpc.to_string(), Some((cfg, "metron"))).unwrap();
    let mut client = envelope_proto::loggregator_v2::ingress_client::IngressClient::new(ch);
    let r = client
        .send(envelope_proto::loggregator_v2::EnvelopeBatch {
            batch: vec![log("a", "b")],
        })
        .await;
    assert!(r.is_err(), "no certificate must be refused");
    // A certificate from another CA.
    let r = agent
        .ingress_as(&other, "client")
        .send(envelope_proto::loggregator_v2::EnvelopeBatch {
            batch: vec![log("a", "b")],
        })
        .await;
    assert!(r.is_err(), "foreign CA must be refused");
    // A valid one works.
    agent
        .ingress_as(&pki, "client")
        .send(envelope_proto::loggregator_v2::EnvelopeBatch {
            batch: vec![log("a", "b")],
        })
        .await
        .unwrap();
    assert_eq!(agent.counter("ingress", &[("metric_version", "2.0")]), 1);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_metrics_flow_as_metron_envelopes() {
    let pki = pki();
    let doppler = Doppler::start(&pki, any());
    let agent = start_agent(&pki, vec![doppler.addr.to_string()], |c| {
        c.metrics_interval = Duration::from_millis(200);
        c.default_tags = tags(&[("deployment", "cf")]);
    })
    .await;
    agent.wait_streams(5, 5).await;
    let mut sub = doppler.subscribe_all(&pki).await;
    let got = collect_until(&mut sub, Duration::from_secs(10), |g| {
        g.iter()
            .any(|e| matches!(&e.message, Some(Message::Gauge(_))))
            && g.iter()
                .any(|e| matches!(&e.message, Some(Message::Counter(c)) if c.name == "ingress"))
    })
    .await;
    assert!(got.iter().all(|e| e.source_id == "metron"), "{got:?}");
    assert!(
        got.iter()
            .all(|e| e.tags.get("deployment").map(String::as_str) == Some("cf"))
    );
    let gauge = got
        .iter()
        .find_map(|e| match &e.message {
            Some(Message::Gauge(g)) => Some(g.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(gauge.metrics["doppler_v2_streams"].value, 5.0);
    agent.stop().await;
}

fn b64(v: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(v["b64"].as_str().unwrap())
        .unwrap()
}

fn fixture(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(format!("/work/shared/fixtures/{path}")).unwrap();
    serde_json::from_str::<Value>(&text).unwrap()["cases"]
        .as_array()
        .unwrap()
        .clone()
}

/// The agent's v1 changes, modelled independently of the agent's code
/// (reference §8.2): `source_id` tag from origin when empty, identity
/// fields when absent, counter total (each fixture counter has its own key).
fn agent_model(mut env: events::Envelope) -> events::Envelope {
    if env.tags.get("source_id").is_none_or(|s| s.is_empty()) {
        env.tags
            .insert("source_id".into(), env.origin.clone().unwrap());
    }
    env.deployment.get_or_insert_with(|| "agent-dep".into());
    env.job.get_or_insert_with(|| "agent-job".into());
    env.index.get_or_insert_with(|| "agent-idx".into());
    env.ip.get_or_insert_with(|| "10.9.8.7".into());
    if let Some(c) = env.counter_event.as_mut() {
        let total = c.total.unwrap_or(0);
        c.total = Some(if total != 0 {
            total
        } else {
            c.delta.unwrap_or(0)
        });
    }
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_v1_fixture_over_udp_comes_out_as_the_expected_v2() {
    let pki = pki();
    let doppler = Doppler::start(&pki, any());
    let agent = start_agent(&pki, vec![doppler.addr.to_string()], |c| {
        c.identity = metron_agent::process::Identity {
            deployment: "agent-dep".into(),
            job: "agent-job".into(),
            index: "agent-idx".into(),
            ip: "10.9.8.7".into(),
        };
    })
    .await;
    agent.wait_streams(5, 5).await;
    let mut sub = doppler.subscribe_all(&pki).await;

    let to_v2: BTreeMap<String, Value> = fixture("to_v2/cases.json")
        .into_iter()
        .map(|c| (c["name"].as_str().unwrap().to_owned(), c))
        .collect();
    let cases = fixture("v1/envelopes.json");
    assert_eq!(cases.len(), 16);
    let mut datagrams = Vec::new();
    let mut expected = Vec::new();
    let mut unchanged = 0;
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let bytes = b64(&case["envelope"]);
        let v1 = envelope_proto::v1::decode(&bytes).unwrap();
        let modelled = agent_model(v1.clone());
        let want = envelope_proto::convert::to_v2(&modelled, true);
        if modelled == v1 {
            // The agent changes nothing: the doppler's output must be what Go produced.
            let go = Envelope::decode(b64(&to_v2[name]["v2_use_preferred_tags_true"]).as_slice())
                .unwrap();
            assert_eq!(want, go, "{name}: conversion differs from the Go fixture");
            unchanged += 1;
        }
        datagrams.push(bytes);
        expected.push((name.to_owned(), want));
    }
    assert!(unchanged >= 5, "only {unchanged} fixtures pass unchanged");

    agent.send_udp(&datagrams).await;
    let mut got = collect_until(&mut sub, Duration::from_secs(10), |g| {
        g.len() >= expected.len()
    })
    .await;
    assert_eq!(got.len(), expected.len());
    for (name, want) in expected {
        let pos = got
            .iter()
            .position(|g| *g == want)
            .unwrap_or_else(|| panic!("{name}: expected {want:?} not among {got:?}"));
        got.remove(pos);
    }
    assert_eq!(agent.counter("ingress", &[("metric_version", "1.0")]), 16);
    eventually(
        || agent.counter("egress", &[("metric_version", "1.0")]) == 16,
        "v1 egress",
    )
    .await;
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_datagrams_are_counted_and_skipped() {
    let pki = pki();
    let doppler = Doppler::start(&pki, any());
    let agent = start_agent(&pki, vec![doppler.addr.to_string()], |_| {}).await;
    agent.wait_streams(5, 5).await;
    let mut sub = doppler.subscribe_all(&pki).await;
    let invalid: Vec<Vec<u8>> = fixture("v1/invalid.json")
        .iter()
        .filter(|c| c["agent_ingress"]["ok"] == Value::Bool(false))
        .map(|c| b64(&c["input"]))
        .collect();
    assert!(invalid.len() >= 10, "{}", invalid.len());
    let good = events::Envelope {
        origin: Some("o".into()),
        event_type: Some(events::envelope::EventType::LogMessage as i32),
        log_message: Some(events::LogMessage {
            message: Some(bytes::Bytes::from_static(b"ok")),
            message_type: Some(1),
            timestamp: Some(5),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut datagrams = invalid.clone();
    datagrams.push(envelope_proto::v1::encode(&good).unwrap());
    agent.send_udp(&datagrams).await;
    let got = collect_until(&mut sub, Duration::from_secs(10), |g| !g.is_empty()).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].source_id, "o");
    let n = invalid.len() as u64;
    eventually(
        || agent.counter("invalid_envelopes", &[("metric_version", "1.0")]) == n,
        "invalid counted",
    )
    .await;
    assert_eq!(
        agent.counter("ingress", &[("metric_version", "1.0")]),
        n + 1
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_are_rejected() {
    let pki = pki();
    let doppler = Doppler::start(&pki, any());
    let agent = start_agent(&pki, vec![doppler.addr.to_string()], |_| {}).await;
    let mut big = log("app", "");
    big.message = Some(Message::Log(Log {
        payload: vec![b'x'; 11 << 20].into(),
        r#type: 0,
    }));
    let err = agent
        .ingress_as(&pki, "client")
        .send(envelope_proto::loggregator_v2::EnvelopeBatch { batch: vec![big] })
        .await
        .expect_err("over 10 MiB");
    assert_eq!(err.code(), tonic::Code::OutOfRange, "{err:?}");
    assert_eq!(agent.counter("ingress", &[("metric_version", "2.0")]), 0);
    agent.stop().await;
}

/// A UDP flood (valid and garbage datagrams) does not hold up the gRPC path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_flood_does_not_block_grpc_ingress() {
    let pki = pki();
    let doppler = Doppler::start(&pki, any());
    let agent = start_agent(&pki, vec![doppler.addr.to_string()], |_| {}).await;
    agent.wait_streams(5, 5).await;
    let mut sub = doppler.subscribe_all(&pki).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = {
        let stop = stop.clone();
        let target = agent.udp;
        std::thread::spawn(move || {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = s.send_to(&[0xff; 512], target);
                n += 1;
            }
            n
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    for i in 0..10 {
        agent
            .send_batches(
                &pki,
                vec![(0..100).map(|j| log("grpc", &format!("{i}-{j}"))).collect()],
            )
            .await;
    }
    let got = collect_until(&mut sub, Duration::from_secs(10), |g| {
        g.iter().filter(|e| e.source_id == "grpc").count() >= 1000
    })
    .await;
    let elapsed = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let flooded = flood.join().unwrap();
    assert_eq!(got.iter().filter(|e| e.source_id == "grpc").count(), 1000);
    assert!(flooded > 1000, "the flood ran ({flooded} datagrams)");
    assert!(
        elapsed < Duration::from_secs(5),
        "gRPC path took {elapsed:?} under a UDP flood"
    );
    assert_eq!(
        agent.counter(
            "dropped",
            &[("direction", "ingress"), ("metric_version", "2.0")]
        ),
        0
    );
    agent.stop().await;
}

/// A lone envelope is not held back by batching: it reaches a doppler
/// subscriber in well under upstream's 100 ms agent flush interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lone_envelope_is_forwarded_immediately() {
    let pki = pki();
    let doppler = Doppler::start(&pki, any());
    let agent = start_agent(&pki, vec![doppler.addr.to_string()], |_| {}).await;
    agent.wait_streams(5, 5).await;
    let mut sub = doppler.subscribe_all(&pki).await;
    let mut client = agent.ingress_as(&pki, "client");
    // Warm the connection up.
    client
        .send(envelope_proto::loggregator_v2::EnvelopeBatch {
            batch: vec![log("warm", "x")],
        })
        .await
        .unwrap();
    collect_until(&mut sub, Duration::from_secs(10), |g| !g.is_empty()).await;
    let mut times = Vec::new();
    for i in 0..5 {
        let t = std::time::Instant::now();
        client
            .send(envelope_proto::loggregator_v2::EnvelopeBatch {
                batch: vec![log("lone", &i.to_string())],
            })
            .await
            .unwrap();
        let got = collect_until(&mut sub, Duration::from_secs(10), |g| !g.is_empty()).await;
        assert_eq!(got.len(), 1);
        times.push(t.elapsed());
    }
    times.sort();
    assert!(
        times[2] < Duration::from_millis(100),
        "median latency {:?} ({times:?})",
        times[2]
    );
    agent.stop().await;
}
