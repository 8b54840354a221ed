//! Doppler egress never sends a message larger than its peers accept
//! (10 MiB, reference §5.5/§12.3): batches are closed before they would
//! exceed it, and an envelope too large to be sent at all is dropped and
//! counted instead of killing the subscriber's stream (issue 12 item 3).
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "support/doppler_harness.rs"]
mod harness;

use std::time::Duration;

use envelope_proto::loggregator_v2::egress_client::EgressClient;
use envelope_proto::plumbing_v1::{Filter, SubscriptionRequest, doppler_client::DopplerClient};
use harness::*;
use prost::Message as _;

/// The receive limit of doppler's peers (traffic controller, RLP, nozzles).
const PEER_LIMIT: usize = 10 * 1024 * 1024;
const BIG: usize = 4_500_000;
const SMALLS: usize = 100;
const APP: &str = "big-app";

fn big(i: usize) -> String {
    format!("big-{i}-{}", "b".repeat(BIG))
}

fn is_big(text: &str) -> bool {
    text.len() > BIG
}

/// Makes doppler queue four 4.5 MB envelopes and 100 small ones for one
/// subscriber at once. The subscriber is not reading yet and has tiny HTTP/2
/// windows: 100 kB "blocker" envelopes are sent one at a time until the
/// subscription's sender stops taking them (it is stalled on the window),
/// then the rest is sent and stays queued in the subscription's ring.
/// Returns the texts of the non-blocker envelopes, in order.
async fn queue_bigs_and_smalls(d: &TestDoppler) -> Vec<String> {
    let mut k = 0;
    loop {
        k += 1;
        assert!(k < 100, "the subscription's sender never stalled");
        let blocker = format!("blocker-{k}-{}", "p".repeat(100_000));
        d.send(vec![vec![log(APP, &blocker)]]).await;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
        while d.counter("egress", &[]) < k && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if d.counter("egress", &[]) < k {
            break;
        }
    }
    let mut texts = Vec::new();
    for round in 1..=4 {
        let mut batch = Vec::new();
        for j in 0..SMALLS / 4 {
            // Big ones in the middle of the small ones.
            if j == SMALLS / 8 {
                texts.push(big(round));
                batch.push(log(APP, &big(round)));
            }
            let t = format!("small-{round}-{j}");
            batch.push(log(APP, &t));
            texts.push(t);
        }
        d.send(vec![batch]).await;
    }
    let sent = k + 4 + SMALLS as u64;
    eventually(
        || d.counter("ingress", &[]) == sent,
        "all envelopes accepted",
    )
    .await;
    // Let the router put them in the subscription's ring (not an assertion:
    // they get there whatever the timing is).
    tokio::time::sleep(Duration::from_millis(300)).await;
    texts
}

fn is_blocker(text: &str) -> bool {
    text.starts_with("blocker-")
}

/// Receives until every expected envelope arrived (blockers aside).
fn done(batches: &[Vec<String>], expected: &[String]) -> bool {
    batches.iter().flatten().filter(|t| !is_blocker(t)).count() >= expected.len()
}

fn check_batches(batches: &[Vec<String>], sizes: &[usize], expected: &[String]) {
    for (b, size) in batches.iter().zip(sizes) {
        assert!(*size <= PEER_LIMIT, "a {size}-byte message was sent");
        let bigs = b.iter().filter(|t| is_big(t)).count();
        assert!(bigs <= 2, "{bigs} big envelopes in one message");
    }
    let got: Vec<String> = batches
        .iter()
        .flatten()
        .filter(|t| !is_blocker(t))
        .cloned()
        .collect();
    assert_eq!(got.len(), expected.len(), "every envelope arrived");
    assert!(got == expected, "in order");
    let with_big = batches
        .iter()
        .filter(|b| b.iter().any(|t| is_big(t)))
        .count();
    assert!(with_big >= 2, "4 big envelopes need at least 2 messages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_batches_stay_under_the_peer_limit_and_the_stream_survives() {
    let d = start().await;
    let mut stream = EgressClient::new(d.small_window_channel())
        .max_decoding_message_size(PEER_LIMIT)
        .batched_receiver(req(vec![sel_log(APP)]))
        .await
        .unwrap()
        .into_inner();
    d.wait_subscriptions(1).await;
    let expected = queue_bigs_and_smalls(&d).await;

    let (mut batches, mut sizes) = (Vec::new(), Vec::new());
    let mut n = 0;
    while !done(&batches, &expected) {
        let msg = tokio::time::timeout(Duration::from_secs(30), stream.message())
            .await
            .expect("envelopes within 30 s")
            .unwrap_or_else(|e| panic!("stream failed after {n} envelopes: {e:?}"))
            .expect("stream ended early");
        sizes.push(msg.encoded_len());
        let texts: Vec<String> = msg.batch.iter().map(payload_text).collect();
        n += texts.len();
        batches.push(texts);
    }
    check_batches(&batches, &sizes, &expected);
    assert_eq!(d.counter("dropped", &[("direction", "egress")]), 0);

    // The stream is still up.
    d.send(vec![vec![log(APP, "after")]]).await;
    let more = recv_n(&mut stream, 1, 10).await;
    assert_eq!(payload_text(&more[0]), "after");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_batches_stay_under_the_peer_limit_and_the_stream_survives() {
    let d = start().await;
    let mut stream = DopplerClient::new(d.small_window_channel())
        .max_decoding_message_size(PEER_LIMIT)
        .batch_subscribe(SubscriptionRequest {
            shard_id: "s".into(),
            filter: Some(Filter {
                app_id: APP.into(),
                message: None,
            }),
        })
        .await
        .unwrap()
        .into_inner();
    d.wait_subscriptions(1).await;
    let expected = queue_bigs_and_smalls(&d).await;

    let text = |p: &bytes::Bytes| {
        let e = envelope_proto::v1::decode(p).unwrap();
        String::from_utf8(e.log_message.unwrap().message.unwrap().to_vec()).unwrap()
    };
    let (mut batches, mut sizes) = (Vec::new(), Vec::new());
    let mut n = 0;
    while !done(&batches, &expected) {
        let msg = tokio::time::timeout(Duration::from_secs(30), stream.message())
            .await
            .expect("envelopes within 30 s")
            .unwrap_or_else(|e| panic!("stream failed after {n} envelopes: {e:?}"))
            .expect("stream ended early");
        sizes.push(msg.encoded_len());
        let texts: Vec<String> = msg.payload.iter().map(text).collect();
        n += texts.len();
        batches.push(texts);
    }
    check_batches(&batches, &sizes, &expected);
    d.send(vec![vec![log(APP, "after")]]).await;
    let more = recv_v1_n(&mut stream, 1, 10).await;
    assert_eq!(
        more[0].log_message.as_ref().unwrap().message.as_deref(),
        Some(&b"after"[..])
    );
    d.stop().await;
}

/// Doppler accepts larger messages than its peers (`max_message_size` raised
/// to 16 MiB): an 11 MB envelope arrives but cannot be sent to a subscriber.
/// It is dropped and counted, the subscriber is warned in-stream, and the
/// envelopes around it still arrive on the same stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envelope_that_cannot_fit_is_dropped_counted_and_warned() {
    let d = start_with(|c| c.max_message_size = 16 * 1024 * 1024).await;
    let mut stream = EgressClient::new(d.channel())
        .max_decoding_message_size(PEER_LIMIT)
        .batched_receiver(req(vec![sel_log(APP)]))
        .await
        .unwrap()
        .into_inner();
    d.wait_subscriptions(1).await;
    let huge = "h".repeat(11_000_000);
    d.send(vec![vec![
        log(APP, "before"),
        log(APP, &huge),
        log(APP, "after"),
    ]])
    .await;
    let mut texts = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !texts
        .iter()
        .any(|t: &String| t.contains("messages dropped"))
        || texts.len() < 3
    {
        let msg = tokio::time::timeout_at(deadline, stream.message())
            .await
            .unwrap_or_else(|_| panic!("timed out; got {texts:?}"))
            .unwrap_or_else(|e| panic!("stream failed: {e:?}"))
            .expect("stream ended early");
        assert!(msg.encoded_len() <= PEER_LIMIT);
        texts.extend(msg.batch.iter().map(payload_text));
    }
    assert!(
        texts.iter().all(|t| t.len() < 1000),
        "the huge one was not sent"
    );
    assert!(texts.contains(&"before".to_owned()), "{texts:?}");
    assert!(texts.contains(&"after".to_owned()), "{texts:?}");
    let warning = texts
        .iter()
        .find(|t| t.contains("messages dropped"))
        .unwrap();
    assert!(
        warning.starts_with("Log message output is too high. 1 messages dropped"),
        "{warning}"
    );
    assert_eq!(d.counter("dropped", &[("direction", "egress")]), 1);
    d.stop().await;
}
