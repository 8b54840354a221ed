//! Bad input and bad clients: malformed envelopes, oversized messages,
//! clients without a CA-signed certificate, disconnects.
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "support/doppler_harness.rs"]
mod harness;

use bytes::{Bytes, BytesMut};
use envelope_proto::loggregator_v2::{
    EnvelopeBatch, egress_client::EgressClient, ingress_client::IngressClient,
};
use harness::*;
use prost::Message;
use tokio_stream::wrappers::ReceiverStream;

#[tokio::test]
async fn malformed_envelopes_are_counted_and_the_stream_stays_up() {
    let d = start().await;
    let mut sub = d.subscribe(req(vec![sel_log("")])).await;
    d.wait_subscriptions(1).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let mut client = d.raw_ingress();
    let call = tokio::spawn(async move { client.batch_sender(ReceiverStream::new(rx)).await });

    let good = |t: &str| Bytes::from(log("a", t).encode_to_vec());
    // a truncated envelope inside a well-framed batch
    let bad = Bytes::from_static(&[0x12, 0x05, b'a']);
    let mut batch = BytesMut::new();
    envelope_proto::batch::encode(&[good("1"), bad, good("2")], &mut batch);
    tx.send(batch.freeze()).await.unwrap();
    // a batch whose framing is broken
    tx.send(Bytes::from_static(&[0x0a, 0xff, 0xff, 0xff]))
        .await
        .unwrap();
    // the same stream still works
    let mut batch = BytesMut::new();
    envelope_proto::batch::encode(&[good("3")], &mut batch);
    tx.send(batch.freeze()).await.unwrap();

    let got = recv_n(&mut sub, 3, 5).await;
    assert_eq!(
        got.iter().map(payload_text).collect::<Vec<_>>(),
        vec!["1", "2", "3"]
    );
    assert_eq!(d.counter("invalid_envelopes", &[]), 2);
    drop(tx);
    call.await.unwrap().unwrap();
    d.stop().await;
}

#[tokio::test]
async fn oversized_message_is_rejected_with_a_grpc_error() {
    let d = start_with(|c| c.max_message_size = 1024 * 1024).await;
    let mut sub = d.subscribe(req(vec![sel_log("")])).await;
    d.wait_subscriptions(1).await;
    let big = log("a", &"z".repeat(2 * 1024 * 1024));
    let err = d
        .ingress()
        .batch_sender(futures::stream::iter(vec![EnvelopeBatch {
            batch: vec![big],
        }]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::OutOfRange, "{err}");
    // the server keeps serving
    d.send(vec![vec![log("a", "small")]]).await;
    let got = recv_n(&mut sub, 1, 5).await;
    assert_eq!(payload_text(&got[0]), "small");
    d.stop().await;
}

/// The TLS layer refused the connection (no RPC reached the server).
fn assert_transport_refused(err: &tonic::Status) {
    let text = format!("{err:?}");
    assert!(
        matches!(err.code(), tonic::Code::Unavailable | tonic::Code::Unknown)
            && (text.contains("alert")
                || text.contains("certificate")
                || text.contains("Certificate")),
        "{text}"
    );
}

#[tokio::test]
async fn client_without_ca_signed_certificate_cannot_connect() {
    let d = start().await;
    // No client certificate at all.
    let files = d.pki.files("client");
    let no_cert = plumbing::tls::client_config_without_cert(
        files.ca.as_deref().unwrap(),
        &Default::default(),
    )
    .unwrap();
    let ch = plumbing::tls::grpc::channel(&d.addr.to_string(), Some((no_cert, "doppler"))).unwrap();
    let err = IngressClient::new(ch)
        .batch_sender(futures::stream::iter(vec![EnvelopeBatch::default()]))
        .await
        .unwrap_err();
    assert_transport_refused(&err);

    // A certificate from another CA (server still verified against doppler's CA).
    let dir = tempfile::tempdir().unwrap();
    let other = plumbing::tls::dev::DevPki::generate(dir.path()).unwrap();
    let theirs = other.files("client");
    let ours = d.pki.files("client");
    let ca = std::fs::read(ours.ca.as_ref().unwrap()).unwrap();
    let cert = std::fs::read(&theirs.cert).unwrap();
    let key = std::fs::read(&theirs.key).unwrap();
    let cfg = plumbing::tls::client_config_from_pem(
        &plumbing::tls::PemIdentity {
            ca: Some((&ca, ours.ca.as_deref().unwrap())),
            cert: (&cert, &theirs.cert),
            key: (&key, &theirs.key),
        },
        &Default::default(),
    )
    .unwrap();
    let ch = plumbing::tls::grpc::channel(&d.addr.to_string(), Some((cfg, "doppler"))).unwrap();
    let err = EgressClient::new(ch)
        .batched_receiver(req(vec![sel_log("")]))
        .await
        .unwrap_err();
    assert_transport_refused(&err);
    assert_eq!(d.subscriptions(), 0);
    d.stop().await;
}

#[tokio::test]
async fn subscriptions_gauge_returns_to_zero_after_disconnect() {
    let d = start().await;
    let a = d.subscribe(req(vec![sel_log("")])).await;
    let b = d.subscribe_v1("s", "", None).await;
    let c = d
        .subscribe(req(vec![sel_counter("", "x"), sel_log("y")]))
        .await;
    d.wait_subscriptions(3).await;
    assert!(d.metrics_text().await.contains("subscriptions 3"));
    drop(a);
    drop(b);
    drop(c);
    d.wait_subscriptions(0).await;
    let text = d.metrics_text().await;
    assert!(text.contains("subscriptions 0"), "{text}");
    assert!(text.contains("dropped{direction=\"egress\"} 0"), "{text}");
    assert_eq!(http_get(d.admin, "/health").await, "ok");
    d.stop().await;
}

#[tokio::test]
async fn shutdown_flushes_queued_envelopes_and_ends_streams() {
    let d = start().await;
    let mut sub = d.subscribe(req(vec![sel_log("")])).await;
    d.wait_subscriptions(1).await;
    d.send(vec![(0..50).map(|i| log("a", &i.to_string())).collect()])
        .await;
    let shutdown = d.shutdown.clone();
    shutdown.trigger();
    let mut got = Vec::new();
    while let Ok(Some(b)) = sub.message().await {
        got.extend(b.batch);
    }
    assert_eq!(
        got.len(),
        50,
        "everything queued was delivered before the stream ended"
    );
    d.stop().await;
}

#[tokio::test]
async fn malformed_v1_payloads_are_counted_and_the_pusher_stream_stays_up() {
    use envelope_proto::plumbing_v1::EnvelopeData;
    let d = start().await;
    let mut sub = d.subscribe_v1("", "", None).await;
    d.wait_subscriptions(1).await;
    let good = |t: &str| EnvelopeData {
        payload: Bytes::from(envelope_proto::v1::encode(&v1_log("app", t)).unwrap()),
    };
    let msgs = vec![
        good("1"),
        // truncated protobuf
        EnvelopeData {
            payload: Bytes::from_static(&[0x0a, 0x09, b'x']),
        },
        // well-formed but missing required fields (no origin, no event type)
        EnvelopeData {
            payload: Bytes::from_static(&[0x30, 0x01]),
        },
        good("2"),
    ];
    d.pusher()
        .pusher(futures::stream::iter(msgs))
        .await
        .unwrap();
    let got = recv_v1_n(&mut sub, 2, 5).await;
    let texts: Vec<_> = got
        .iter()
        .map(|e| e.log_message.as_ref().unwrap().message.clone().unwrap())
        .collect();
    assert_eq!(texts, vec![Bytes::from("1"), Bytes::from("2")]);
    assert_eq!(d.counter("invalid_envelopes", &[]), 2);
    assert_eq!(d.counter("ingress", &[]), 2);
    d.stop().await;
}
