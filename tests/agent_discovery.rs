//! The agent's doppler pool against real dopplers: a doppler added to the
//! static list later gets streams (rebalancing), a doppler killed mid-stream
//! costs no crash and delivery resumes on the survivor, with nothing alive
//! the batches are dropped and counted; DNS names yield their records.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/agent_cluster.rs"]
mod agent_cluster;

use std::time::Duration;

use agent_cluster::{Doppler, collect_until, eventually, pki, start_agent};
use envelope_proto::loggregator_v2::{Envelope, Log, envelope::Message};

fn log(n: usize) -> Envelope {
    Envelope {
        timestamp: n as i64,
        source_id: "app".into(),
        message: Some(Message::Log(Log {
            payload: format!("line {n}").into_bytes().into(),
            r#type: 0,
        })),
        ..Default::default()
    }
}

fn free_addr() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doppler_added_then_killed_mid_stream() {
    let pki = pki();
    let mut d1 = Doppler::start(&pki, "127.0.0.1:0".parse().unwrap());
    let d2_addr = free_addr();
    let agent = start_agent(&pki, vec![d1.addr.to_string(), d2_addr.to_string()], |c| {
        c.v1_streams = std::num::NonZeroUsize::new(2).unwrap();
        c.v2_streams = std::num::NonZeroUsize::new(4).unwrap();
    })
    .await;
    // d2 is not up: every stream lands on d1.
    agent.wait_streams(2, 4).await;
    let mut sub1 = d1.subscribe_all(&pki).await;
    agent
        .send_batches(&pki, vec![(0..10).map(log).collect()])
        .await;
    assert_eq!(
        collect_until(&mut sub1, Duration::from_secs(10), |g| g.len() >= 10)
            .await
            .len(),
        10
    );

    // d2 appears: the rebalancer moves streams onto it.
    let d2 = Doppler::start(&pki, d2_addr);
    let mut sub2 = d2.subscribe_all(&pki).await;
    let mut n = 100;
    let mut on_d2 = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while on_d2 == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no envelope reached the added doppler"
        );
        agent
            .send_batches(&pki, vec![(n..n + 20).map(log).collect()])
            .await;
        n += 20;
        on_d2 += collect_until(&mut sub2, Duration::from_millis(300), |_| false)
            .await
            .len();
    }

    // Kill d1 mid-stream while sending; delivery resumes on d2 alone.
    d1.kill();
    let mut resumed = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !resumed {
        assert!(
            tokio::time::Instant::now() < deadline,
            "delivery did not resume on the survivor"
        );
        agent
            .send_batches(&pki, vec![(n..n + 50).map(log).collect()])
            .await;
        n += 50;
        // Everything from a batch arriving means every live stream is on d2.
        let got = collect_until(&mut sub2, Duration::from_millis(500), |_| false).await;
        resumed = got.len() == 50 && agent.gauge("doppler_v2_streams") == 4;
    }
    assert!(!agent.handle.is_finished(), "agent survived the kill");

    // Nothing alive: batches are dropped and counted.
    drop(sub2);
    drop(d2);
    agent.wait_streams(0, 0).await;
    let before = agent.counter(
        "dropped",
        &[("direction", "egress"), ("metric_version", "2.0")],
    );
    agent
        .send_batches(&pki, vec![(0..7).map(log).collect()])
        .await;
    eventually(
        || {
            agent.counter(
                "dropped",
                &[("direction", "egress"), ("metric_version", "2.0")],
            ) == before + 7
        },
        "7 envelopes dropped at egress",
    )
    .await;
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_name_is_resolved_to_every_record() {
    let pki = pki();
    let d = Doppler::start(&pki, "127.0.0.1:0".parse().unwrap());
    // `localhost` may also resolve to ::1, where nothing listens: those dials
    // fail and are avoided; every stream ends up on 127.0.0.1.
    let agent = start_agent(&pki, vec![format!("localhost:{}", d.addr.port())], |_| {}).await;
    agent.wait_streams(5, 5).await;
    let mut sub = d.subscribe_all(&pki).await;
    agent
        .send_batches(&pki, vec![(0..5).map(log).collect()])
        .await;
    assert_eq!(
        collect_until(&mut sub, Duration::from_secs(10), |g| g.len() >= 5)
            .await
            .len(),
        5
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unresolvable_az_name_falls_back_and_ingress_keeps_accepting_without_dopplers() {
    let pki = pki();
    let dead = free_addr();
    let agent = start_agent(&pki, vec![dead.to_string()], |c| {
        c.dopplers_with_az = vec!["does-not-resolve.invalid:8082".into()];
    })
    .await;
    // No doppler at all: ingress still accepts, egress drops and counts.
    agent
        .send_batches(&pki, vec![(0..3).map(log).collect()])
        .await;
    assert_eq!(agent.counter("ingress", &[("metric_version", "2.0")]), 3);
    eventually(
        || {
            agent.counter(
                "dropped",
                &[("direction", "egress"), ("metric_version", "2.0")],
            ) == 3
        },
        "dropped at egress",
    )
    .await;
    // The doppler comes up on the configured address: streams connect.
    let _d = Doppler::start(&pki, dead);
    agent.wait_streams(5, 5).await;
    agent.stop().await;
}
