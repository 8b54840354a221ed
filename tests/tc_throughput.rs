//! Rough throughput of doppler -> traffic controller -> one WebSocket
//! subscriber. Ignored by default; run in release:
//! `cargo test --release -p loggregator --test tc_throughput -- --ignored --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

#[path = "support/tc_cluster.rs"]
mod tc_cluster;

use std::time::{Duration, Instant};

use bytes::Bytes;
use envelope_proto::plumbing_v1::{EnvelopeData, doppler_ingestor_client::DopplerIngestorClient};
use futures::StreamExt;
use prost::Message as _;
use tc_cluster::*;
use tokio_tungstenite::tungstenite::Message;

const APP: &str = "11111111-2222-3333-4444-555555555555";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark; run in release with --ignored"]
async fn one_websocket_subscriber_throughput() {
    let total: usize = std::env::var("TC_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rate: usize = std::env::var("TC_BENCH_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let streams = 4;
    let c = Cluster::start_n(1, |config| config.buffer_size = 100_000).await;
    let mut ws = c.ws("/firehose/bench", &[]).await;
    c.wait_subscriptions(1).await;
    let payload = Bytes::from(log_env(APP, &"z".repeat(150)).encode_to_vec());
    let start = Instant::now();
    let per = total / streams;
    for _ in 0..streams {
        let ch = c.doppler_channel(0);
        let payload = payload.clone();
        tokio::spawn(async move {
            // Paced: every 10 ms, rate / 100 / streams envelopes.
            let tick = (rate / 100 / streams).max(1);
            let paced = futures::stream::unfold(
                (0usize, tokio::time::interval(Duration::from_millis(10))),
                move |(sent, mut iv)| {
                    let payload = payload.clone();
                    async move {
                        if sent >= per {
                            return None;
                        }
                        iv.tick().await;
                        let n = tick.min(per - sent);
                        let batch: Vec<EnvelopeData> = (0..n)
                            .map(|_| EnvelopeData {
                                payload: payload.clone(),
                            })
                            .collect();
                        Some((futures::stream::iter(batch), (sent + n, iv)))
                    }
                },
            );
            let msgs = paced.flatten();
            DopplerIngestorClient::new(ch).pusher(msgs).await.unwrap();
        });
    }
    let mut got = 0usize;
    let mut last = Instant::now();
    while got < per * streams {
        match tokio::time::timeout(Duration::from_secs(3), ws.next()).await {
            Ok(Some(Ok(Message::Binary(_)))) => {
                got += 1;
                last = Instant::now();
            }
            Ok(Some(Ok(_))) => {}
            _ => break,
        }
    }
    let secs = (last - start).as_secs_f64();
    eprintln!(
        "tc_throughput: offered {rate}/s, sent {} received {} in {:.2}s = {:.0} envelopes/s; tc ring drops {}, doppler egress drops {}, doppler ingress drops {}",
        per * streams,
        got,
        secs,
        got as f64 / secs,
        c.tc_counter(
            "dropped",
            &[("direction", "egress"), ("endpoint", "firehose")]
        ),
        c.dopplers[0]
            .registry
            .counter_value("dropped", &[("direction", "egress")])
            .unwrap_or(0),
        c.dopplers[0]
            .registry
            .counter_value("dropped", &[("direction", "ingress")])
            .unwrap_or(0),
    );
}
