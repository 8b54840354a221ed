//! The agent against a frozen doppler (hardening issue, items 10 and 11): a
//! doppler whose only runtime worker is blocked, as SIGSTOP would stop it, so
//! its TCP connections stay open and the kernel keeps acknowledging data, but
//! nothing reads. The agent must fail its stream over to the healthy doppler within its
//! write deadline, count what was queued for the frozen one, and still exit
//! within its shutdown grace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/agent_cluster.rs"]
mod agent_cluster;

use std::time::{Duration, Instant};

use agent_cluster::*;
use envelope_proto::loggregator_v2::{Envelope, Log, envelope::Message};

fn log(source: &str, text: &str) -> Envelope {
    Envelope {
        source_id: source.to_owned(),
        message: Some(Message::Log(Log {
            payload: bytes::Bytes::copy_from_slice(text.as_bytes()),
            r#type: 0,
        })),
        ..Envelope::default()
    }
}

fn dropped(agent: &Agent) -> u64 {
    agent.counter(
        "dropped",
        &[("direction", "egress"), ("metric_version", "2.0")],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_frozen_doppler_is_failed_over_and_what_was_queued_for_it_is_counted() {
    let pki = pki();
    let healthy = Doppler::start(&pki, "127.0.0.1:0".parse().unwrap());
    let frozen = Doppler::start(&pki, "127.0.0.1:0".parse().unwrap());
    let agent = start_agent(
        &pki,
        vec![healthy.addr.to_string(), frozen.addr.to_string()],
        |c| {
            c.v1_streams = std::num::NonZeroUsize::new(1).unwrap();
            c.v2_streams = std::num::NonZeroUsize::new(2).unwrap();
        },
    )
    .await;
    agent.wait_streams(1, 2).await;
    let mut received = healthy.subscribe_all(&pki).await;

    let _frozen = frozen.freeze();
    let frozen_at = Instant::now();
    // 4 KiB logs, fast enough to fill the frozen doppler's HTTP/2 window
    // (8 MiB) and the stream's queue within a second or two.
    let big = "x".repeat(4096);
    let client = agent.ingress_as(&pki, "client");
    let mut sent = 0u64;
    while dropped(&agent) == 0 && frozen_at.elapsed() < Duration::from_secs(15) {
        let batch: Vec<Envelope> = (0..50).map(|_| log("load", &big)).collect();
        client
            .clone()
            .send(envelope_proto::loggregator_v2::EnvelopeBatch { batch })
            .await
            .unwrap();
        sent += 50;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let failed_over = frozen_at.elapsed();
    assert!(
        dropped(&agent) > 0,
        "what was queued for the frozen doppler is counted (after {failed_over:?}, {sent} sent)"
    );
    assert!(
        failed_over < Duration::from_secs(10),
        "failed over after {failed_over:?}"
    );

    // From now on everything reaches the healthy doppler, promptly.
    let markers: Vec<Envelope> = (0..200).map(|i| log("marker", &i.to_string())).collect();
    let before = Instant::now();
    for chunk in markers.chunks(20) {
        client
            .clone()
            .send(envelope_proto::loggregator_v2::EnvelopeBatch {
                batch: chunk.to_vec(),
            })
            .await
            .unwrap();
    }
    let got = collect_until(&mut received, Duration::from_secs(10), |envs| {
        envs.iter().filter(|e| e.source_id == "marker").count() >= 200
    })
    .await;
    let markers_seen = got.iter().filter(|e| e.source_id == "marker").count();
    assert_eq!(
        markers_seen, 200,
        "every marker reached the healthy doppler"
    );
    assert!(
        before.elapsed() < Duration::from_secs(5),
        "markers arrived within {:?}",
        before.elapsed()
    );

    // Shutdown within the grace period (1 s in tests) although a doppler is frozen.
    let stop = Instant::now();
    agent.shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(5), agent.handle)
        .await
        .expect("agent exits")
        .unwrap()
        .unwrap();
    assert!(
        stop.elapsed() < Duration::from_millis(2500),
        "exit took {:?} with a 1 s grace",
        stop.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_agent_exits_within_its_grace_while_its_only_doppler_is_frozen() {
    let pki = pki();
    let frozen = Doppler::start(&pki, "127.0.0.1:0".parse().unwrap());
    let agent = start_agent(&pki, vec![frozen.addr.to_string()], |c| {
        c.shutdown_grace = Duration::from_secs(2);
        c.v1_streams = std::num::NonZeroUsize::new(1).unwrap();
        c.v2_streams = std::num::NonZeroUsize::new(1).unwrap();
    })
    .await;
    agent.wait_streams(1, 1).await;
    let _frozen = frozen.freeze();
    let big = "y".repeat(4096);
    let client = agent.ingress_as(&pki, "client");
    // Fill what the frozen doppler can absorb, so the streams have work queued.
    for _ in 0..60 {
        let batch: Vec<Envelope> = (0..50).map(|_| log("load", &big)).collect();
        client
            .clone()
            .send(envelope_proto::loggregator_v2::EnvelopeBatch { batch })
            .await
            .unwrap();
    }
    let stop = Instant::now();
    agent.shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(10), agent.handle)
        .await
        .expect("agent exits")
        .unwrap()
        .unwrap();
    let took = stop.elapsed();
    assert!(
        took < Duration::from_millis(3000),
        "exit took {took:?} with a 2 s grace"
    );
}
