//! `plumbing::emitter::run` against a stand-in agent over mutual TLS (server
//! name `metron`): one batch per tick with deltas since the previous batch, an
//! end on cancel, and nothing at all for interval zero.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/fake_agent.rs"]
mod fake_agent;

use std::time::Duration;

use envelope_proto::loggregator_v2::envelope::Message;
use fake_agent::FakeAgent;
use plumbing::emitter::{AGENT_SERVER_NAME, Description, run};
use plumbing::metrics::Counter;
use plumbing::tls::dev::DevPki;
use tokio_util::sync::CancellationToken;

async fn agent_and_client_tls() -> (
    tempfile::TempDir,
    FakeAgent,
    String,
    Option<(std::sync::Arc<rustls::ClientConfig>, &'static str)>,
) {
    let dir = tempfile::tempdir().unwrap();
    let pki = DevPki::generate(dir.path()).unwrap();
    let (agent, addr) = FakeAgent::start(&pki).await;
    let tls = plumbing::tls::client_config(&pki.files("doppler")).unwrap();
    (dir, agent, addr.to_string(), Some((tls, AGENT_SERVER_NAME)))
}

#[tokio::test]
async fn run_sends_one_batch_per_tick_and_stops_on_cancel() {
    let (_dir, agent, addr, tls) = agent_and_client_tls().await;
    let sent = Counter::detached();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(run(
        addr,
        tls,
        Duration::from_millis(50),
        Description::new("s", "o").counter("sent", &[], sent.clone()),
        cancel.clone(),
    ));
    sent.add(4);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while agent.batches().len() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "no batches");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("run ends on cancel")
        .expect("no panic");
    let mut previous = 0;
    for b in agent.batches() {
        assert_eq!(b.batch.len(), 1);
        let Some(Message::Counter(c)) = &b.batch[0].message else {
            panic!("not a counter: {b:?}")
        };
        assert_eq!(c.name, "sent");
        assert_eq!(c.delta, c.total - previous);
        previous = c.total;
    }
    assert_eq!(previous, 4);
}

#[tokio::test]
async fn zero_interval_returns_at_once_without_sending() {
    let (_dir, agent, addr, tls) = agent_and_client_tls().await;
    tokio::time::timeout(
        Duration::from_secs(1),
        run(
            addr,
            tls,
            Duration::ZERO,
            Description::new("s", "o").counter("c", &[], Counter::detached()),
            CancellationToken::new(),
        ),
    )
    .await
    .expect("returns at once");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(agent.batches().is_empty());
}
