//! `/v2/read` tells a consumer that lost envelopes (issue 12 item 9): a
//! reader that pauses while load flows finds, ahead of its next data, a data
//! event whose batch is the TC's rate-control warning (LGR log and
//! `TruncatingBuffer.DroppedMessages` counter), and the counts add up to the
//! TC's `dropped{endpoint="v2_read"}`; a reader that keeps up never sees one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/tc_cluster.rs"]
mod tc_cluster;

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;
use tc_cluster::*;

const APP: &str = "11111111-2222-3333-4444-555555555555";
const TC_ORIGIN: &str = "loggregator.trafficcontroller";

/// Opens `path` on `addr` with a client socket whose receive buffer is
/// `rcvbuf` bytes (small: pausing fills it fast).
async fn open(addr: SocketAddr, path: &str, rcvbuf: u32) -> Sse {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(rcvbuf).unwrap();
    let tcp = sock.connect(addr).await.unwrap();
    let sse = open_sse(tcp, addr, path, &[("x-forwarded-for", "203.0.113.7")]).await;
    assert_eq!(sse.status, 200);
    sse
}

/// What a reader saw.
#[derive(Default, Debug)]
struct Seen {
    /// Envelopes that are not TC warnings.
    data: u64,
    /// TC warning counters: (delta, total).
    counters: Vec<(u64, u64)>,
    /// TC warning log texts.
    logs: Vec<String>,
    /// Events that were not plain data or heartbeats.
    other_events: Vec<String>,
}

impl Seen {
    fn take(&mut self, event: &str) {
        if event.starts_with("event: heartbeat") {
            return;
        }
        let Some(json) = event.strip_prefix("data: ") else {
            self.other_events.push(event.to_owned());
            return;
        };
        assert!(!json.trim_end().contains('\n'), "one data line: {event}");
        let doc: Value = serde_json::from_str(json.trim_end()).unwrap();
        for env in doc["batch"].as_array().expect("batch") {
            if env["tags"]["origin"] != TC_ORIGIN {
                self.data += 1;
                continue;
            }
            assert_eq!(env["source_id"], "system", "{env}");
            if let Some(c) = env.get("counter") {
                assert_eq!(c["name"], "TruncatingBuffer.DroppedMessages");
                let n = |v: &Value| v.as_str().unwrap().parse::<u64>().unwrap();
                self.counters.push((n(&c["delta"]), n(&c["total"])));
            } else {
                assert_eq!(env["tags"]["source_type"], "LGR", "{env}");
                let payload = env["log"]["payload"].as_str().unwrap();
                let text = base64::engine::general_purpose::STANDARD
                    .decode(payload)
                    .unwrap();
                self.logs.push(String::from_utf8(text).unwrap());
            }
        }
    }
}

/// Pushes `rounds` × 200 ~1 KiB logs through doppler 0, 50 ms apart.
async fn produce(c: &Cluster, rounds: u64) -> u64 {
    let padding = "x".repeat(1000);
    for round in 0..rounds {
        let batch: Vec<_> = (0..200)
            .map(|i| log_env(APP, &format!("{round}-{i}-{padding}")))
            .collect();
        c.push(0, &batch).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rounds * 200
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paused_reader_is_told_how_many_it_lost() {
    let c = Cluster::start(|config| {
        config.buffer_size = 100;
        // Pausing must not get the reader cut.
        config.slow_consumer_timeout = Duration::from_secs(120);
    })
    .await;
    let mut sse = open(c.tc_gateway, "/v2/read?log&counter&shard_id=paused", 4096).await;
    c.wait_subscriptions(1).await;

    // Load flows while the reader does not read.
    produce(&c, 15).await;
    let mut seen = Seen::default();
    // Then it reads until the stream is quiet.
    while let Some(ev) = sse.event(Duration::from_secs(5)).await {
        seen.take(&ev);
    }

    let dropped = c.tc_counter(
        "dropped",
        &[("direction", "egress"), ("endpoint", "v2_read")],
    );
    assert!(dropped > 0, "the pause lost envelopes");
    assert!(!seen.counters.is_empty(), "no in-stream warning: {seen:?}");
    assert!(seen.other_events.is_empty(), "{:?}", seen.other_events);
    let sum: u64 = seen.counters.iter().map(|(d, _)| d).sum();
    assert_eq!(sum, dropped, "the warnings count every loss");
    assert_eq!(seen.counters.last().unwrap().1, dropped, "running total");
    assert_eq!(
        seen.logs.len(),
        seen.counters.len(),
        "a log with each counter"
    );
    let (d, t) = seen.counters[0];
    assert_eq!(
        seen.logs[0],
        format!(
            "Log message output is too high. {d} messages dropped (Total {t} messages dropped) from loggregator.trafficcontroller to 203.0.113.7."
        )
    );
    // Everything the TC took for the stream was delivered or reported.
    let ingress = c.tc_counter("ingress", &[("protocol", "grpc")]);
    assert_eq!(
        seen.data,
        c.tc_counter("egress", &[("endpoint", "v2_read")])
    );
    assert_eq!(ingress, seen.data + dropped);
    assert_eq!(
        c.tc_counter("doppler_proxy_rate_control_warnings", &[]),
        seen.counters.len() as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reader_that_keeps_up_sees_no_warning() {
    let c = Cluster::start(|_| {}).await;
    let mut sse = open(c.tc_gateway, "/v2/read?log&counter&shard_id=fast", 1 << 20).await;
    c.wait_subscriptions(1).await;
    let reader = async {
        let mut seen = Seen::default();
        while let Some(ev) = sse.event(Duration::from_secs(5)).await {
            seen.take(&ev);
        }
        seen
    };
    let (sent, seen) = tokio::join!(produce(&c, 10), reader);
    assert_eq!(seen.data, sent, "nothing lost");
    assert!(seen.counters.is_empty() && seen.logs.is_empty(), "{seen:?}");
    assert_eq!(
        c.tc_counter(
            "dropped",
            &[("direction", "egress"), ("endpoint", "v2_read")]
        ),
        0
    );
}
