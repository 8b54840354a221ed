//! A slow consumer's disconnect is reported to the local agent as the v2
//! Event envelope of reference §12.6, over mutual TLS (server name `metron`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/fake_agent.rs"]
mod fake_agent;
#[path = "support/tc_cluster.rs"]
mod tc_cluster;

use std::time::Duration;

use envelope_proto::loggregator_v2::envelope;
use fake_agent::FakeAgent;
use tc_cluster::*;
use tokio::net::TcpListener;

const APP: &str = "11111111-2222-3333-4444-555555555555";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_consumer_event_reaches_the_agent() {
    // The agent needs the cluster's PKI, and the cluster the agent's address:
    // bind first, serve once the PKI exists.
    let agent_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let agent_addr = agent_listener.local_addr().unwrap();
    let c = Cluster::start(move |config| {
        config.buffer_size = 100;
        config.slow_consumer_timeout = Duration::from_secs(1);
        config.agent_addr = Some(agent_addr.to_string());
    })
    .await;
    let agent = FakeAgent::serve(agent_listener, &c.pki);

    let stalled = c.ws_small_buffer("/firehose/stalled").await;
    c.wait_subscriptions(1).await;
    let padding = "y".repeat(2000);
    for round in 0..200 {
        if c.tc_counter("doppler_proxy_slow_consumer", &[]) == 1 {
            break;
        }
        let batch: Vec<_> = (0..100)
            .map(|i| log_env(APP, &format!("{round}-{i}-{padding}")))
            .collect();
        c.push(round % 2, &batch).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(c.tc_counter("doppler_proxy_slow_consumer", &[]), 1);
    let local = stalled.get_ref().local_addr().unwrap();
    eventually(|| !agent.envelopes().is_empty(), "event at the agent").await;
    let env = agent.envelopes()[0].clone();
    assert_eq!(env.source_id, "traffic_controller");
    let Some(envelope::Message::Event(ev)) = env.message else {
        panic!("not an event: {env:?}")
    };
    assert_eq!(
        ev.title,
        "Traffic Controller has disconnected slow consumer"
    );
    assert_eq!(
        ev.body,
        format!(
            "Remote Address: {local}\nX-Forwarded-For: \nPath: /firehose/stalled\n\nWhen Loggregator detects a slow connection, that connection is disconnected to prevent back pressure on the system. This may be due to improperly scaled nozzles, or slow user connections to Loggregator"
        )
    );
    drop(stalled);
    c.wait_subscriptions(0).await;
}
