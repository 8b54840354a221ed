//! HTTPS drains against a local HTTPS receiver (one POST per message,
//! batches, mutual TLS from binding credentials, retries on 5xx), a TCP
//! receiver that is down and comes back (delivery resumes; drops counted
//! and announced), and a failing drain that does not delay another.

#![allow(clippy::unwrap_used)]

#[path = "support/drain_harness.rs"]
mod drain_harness;
#[path = "support/https_receiver.rs"]
mod https_receiver;
#[path = "support/receivers.rs"]
mod receivers;

use std::time::Duration;

use drain_harness::*;
use envelope_proto::loggregator_v2::envelope::Message;
use https_receiver::{HttpsReceiver, server_only};
use nozzles::drain::bindings::DrainSpec;
use nozzles::syslog::{Encoded, Rfc5424Encoder};
use tokio::io::AsyncReadExt;

const APP: &str = "f47ac10b-58cc-4372-a567-0e02b2c3d479";
const APP2: &str = "6c8f7a02-9a1d-4d8b-8e36-2f6f7d6c0b55";

fn expected(envs: &[envelope_proto::loggregator_v2::Envelope]) -> Vec<Vec<u8>> {
    let enc = Rfc5424Encoder::new("org.space.app", false);
    let mut out = Encoded::new();
    for e in envs {
        enc.encode(e, &mut out).unwrap();
    }
    out.iter().map(<[u8]>::to_vec).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_drain_posts_one_message_per_request() {
    let dir = tempfile::tempdir().unwrap();
    let pki = receivers::pki(dir.path());
    let (rx, port) = HttpsReceiver::start(server_only(&pki)).await;
    rx.fail_next.store(2, std::sync::atomic::Ordering::SeqCst);
    let mut h = harness(settings(None, 10_000), None);
    h.manager.apply(
        &[spec(
            APP,
            &format!("https://user:secret@localhost:{port}/drain/in?token=abc"),
            pki.ca_cert_pem(),
        )],
        &[],
    );
    let envs: Vec<_> = (0..5)
        .map(|i| {
            log(
                APP,
                "0",
                false,
                &format!("message {i}"),
                &[("source_type", "APP/PROC/WEB")],
            )
        })
        .collect();
    h.dispatcher.dispatch(envs.clone());
    let got = eventually(Duration::from_secs(10), || {
        let r = rx.requests.lock().clone();
        (r.len() >= 5).then_some(r)
    })
    .await
    .expect("5 POSTs");
    let want = expected(&envs);
    assert_eq!(got.len(), 5);
    for (r, w) in got.iter().zip(&want) {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/drain/in?token=abc");
        assert_eq!(r.content_type, "text/plain");
        assert_eq!(r.authorization, "Basic dXNlcjpzZWNyZXQ=");
        assert_eq!(&r.body[..], &w[..], "body is the bare RFC 5424 message");
    }
    // Two 500s were retried.
    assert_eq!(
        h.registry
            .counter_value("syslog_drain_write_errors", &[("scheme", "https")]),
        Some(2)
    );
    assert_eq!(
        h.registry
            .counter_value("syslog_drain_egress", &[("scheme", "https")]),
        Some(5)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_batch_drain_concatenates_messages() {
    let dir = tempfile::tempdir().unwrap();
    let pki = receivers::pki(dir.path());
    let (rx, port) = HttpsReceiver::start(server_only(&pki)).await;
    let mut h = harness(settings(Some(pki.ca_cert_pem()), 10_000), None);
    h.manager.apply(
        &[spec(
            APP,
            &format!("https-batch://localhost:{port}/batch"),
            "",
        )],
        &[],
    );
    let envs: Vec<_> = (0..300)
        .map(|i| {
            log(
                APP,
                "1",
                i % 2 == 1,
                &format!("batched {i}"),
                &[("source_type", "RTR")],
            )
        })
        .collect();
    h.dispatcher.dispatch(envs.clone());
    let want: Vec<u8> = expected(&envs).concat();
    let got = eventually(Duration::from_secs(10), || {
        let body: Vec<u8> = rx
            .requests
            .lock()
            .iter()
            .flat_map(|r| r.body.to_vec())
            .collect();
        (body.len() >= want.len()).then_some(body)
    })
    .await
    .expect("batched body");
    assert_eq!(got, want);
    let reqs = rx.requests.lock().clone();
    assert!(
        reqs.len() < 10,
        "300 messages in a few POSTs, got {}",
        reqs.len()
    );
    assert!(
        reqs.iter()
            .all(|r| r.path == "/batch" && r.content_type == "text/plain")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_tls_drain_with_client_certificate_from_binding() {
    let dir = tempfile::tempdir().unwrap();
    let pki = receivers::pki(dir.path());
    // The receiver requires a client certificate signed by the dev CA.
    let (rx, port) = HttpsReceiver::start(pki.server_config("localhost").unwrap()).await;
    let client = pki.identity("client").unwrap().clone();
    let mut h = harness(settings(None, 10_000), None);
    let with_cert = DrainSpec {
        cert: client.cert_pem.clone(),
        key: client.key_pem.clone(),
        ..spec(
            APP,
            &format!("https://localhost:{port}/mtls"),
            pki.ca_cert_pem(),
        )
    };
    let without_cert = spec(
        APP2,
        &format!("https://localhost:{port}/no-cert"),
        pki.ca_cert_pem(),
    );
    h.manager.apply(&[with_cert, without_cert], &[]);
    h.dispatcher.dispatch(vec![
        log(APP, "0", false, "mtls", &[]),
        log(APP2, "0", false, "nope", &[]),
    ]);
    let got = eventually(Duration::from_secs(10), || {
        let r = rx.requests.lock().clone();
        (!r.is_empty()).then_some(r)
    })
    .await
    .expect("mTLS POST");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got_all = rx.requests.lock().clone();
    assert_eq!(
        got_all.len(),
        1,
        "only the drain with a client certificate gets through: {got_all:?}"
    );
    assert_eq!(got[0].path, "/mtls");
    assert!(
        h.registry
            .counter_value("syslog_drain_write_errors", &[("scheme", "https")])
            .unwrap()
            >= 1
    );
}

/// Reads octet-counted frames from every connection accepted on `listener`.
async fn frame_sink(
    listener: tokio::net::TcpListener,
    tx: tokio::sync::mpsc::UnboundedSender<Vec<u8>>,
) {
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            loop {
                let n = match s.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                while let Some(sp) = buf.iter().position(|&b| b == b' ') {
                    let len: usize = std::str::from_utf8(&buf[..sp]).unwrap().parse().unwrap();
                    if buf.len() < sp + 1 + len {
                        break;
                    }
                    let msg = buf[sp + 1..sp + 1 + len].to_vec();
                    buf.drain(..sp + 1 + len);
                    let _ = tx.send(msg);
                }
            }
        });
    }
}

fn payload_of(msg: &[u8]) -> String {
    let s = String::from_utf8_lossy(msg);
    s.rsplit("] ").next().unwrap().trim_end().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_down_then_up_resumes_counts_drops_and_notifies_app() {
    let (ingress, ingress_addr) = capture_ingress().await;
    let reserved = receivers::ReservedPort::new();
    let port = reserved.port();
    let mut h = harness(settings(None, 10), Some(ingress_addr));
    let url = format!("syslog://127.0.0.1:{port}?drain-type=logs");
    h.manager.apply(&[spec(APP, &url, "")], &[]);
    let seq = |from: usize, to: usize| -> Vec<_> {
        (from..to)
            .map(|i| {
                log(
                    APP,
                    "0",
                    false,
                    &format!("seq {i}"),
                    &[("source_type", "APP/PROC/WEB")],
                )
            })
            .collect()
    };
    // Receiver down: the first batch is taken and retried.
    h.dispatcher.dispatch(seq(0, 5));
    tokio::time::sleep(Duration::from_millis(300)).await;
    // 100 more while retrying: the 10-slot ring keeps the newest 10.
    h.dispatcher.dispatch(seq(5, 105));
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Receiver comes back on the same port.
    let listener = reserved.listen();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(frame_sink(listener, tx));
    // The writer may have taken only the first few of 0..5 before it failed (it drains what is
    // queued when it wakes); the rest shared the ring with the later 100. So: read until the
    // newest envelope arrives, then check order, the survivors and the count of the lost.
    let mut got: Vec<u32> = Vec::new();
    while got.last() != Some(&104) {
        let m = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("delivery resumes: got {got:?}"))
            .unwrap();
        let p = payload_of(&m);
        got.push(
            p.strip_prefix("seq ")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("unexpected payload {p:?}")),
        );
    }
    assert!(got.windows(2).all(|w| w[0] < w[1]), "{got:?}");
    assert_eq!(
        got[0], 0,
        "the first batch is retried until delivered: {got:?}"
    );
    assert_eq!(
        &got[got.len() - 10..],
        &(95..105).collect::<Vec<_>>()[..],
        "the ring keeps the newest 10: {got:?}"
    );
    let lost = 105 - got.len() as u64;
    assert!((90..=94).contains(&lost), "{got:?}");
    assert_eq!(
        h.registry.counter_value(
            "syslog_drain_dropped",
            &[("scheme", "syslog"), ("reason", "buffer")]
        ),
        Some(lost)
    );

    let notices = eventually(Duration::from_secs(5), || {
        let r = ingress.received.lock().clone();
        (r.len() >= 2).then_some(r)
    })
    .await
    .expect("notices in the app stream");
    let texts: Vec<String> = notices
        .iter()
        .map(|e| {
            assert_eq!(e.source_id, APP);
            assert_eq!(e.instance_id, "0");
            assert_eq!(e.tags.get("source_type").map(String::as_str), Some("LGR"));
            match &e.message {
                Some(Message::Log(l)) => {
                    assert_eq!(l.r#type, 1, "ERR");
                    String::from_utf8(l.payload.to_vec()).unwrap()
                }
                other => panic!("not a log: {other:?}"),
            }
        })
        .collect();
    let anon = format!("syslog://127.0.0.1:{port}");
    assert!(
        texts.contains(&format!("Failed to connect to {anon}")),
        "{texts:?}"
    );
    assert!(
        texts.contains(&format!(
            "{lost} messages lost for application {APP} in user provided syslog drain with url {anon}"
        )),
        "{texts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_drain_does_not_delay_others_and_removal_takes_effect() {
    let reserved = receivers::ReservedPort::new();
    let dead = reserved.port();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let live = listener.local_addr().unwrap().port();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(frame_sink(listener, tx));
    let mut h = harness(settings(None, 10_000), None);
    let dead_spec = spec(APP, &format!("syslog://127.0.0.1:{dead}"), "");
    let live_spec = spec(APP, &format!("syslog://127.0.0.1:{live}"), "");
    h.manager.apply(&[dead_spec, live_spec.clone()], &[]);
    for i in 0..50 {
        h.dispatcher.dispatch(vec![log(
            APP,
            "0",
            false,
            &format!("m{i}"),
            &[("source_type", "APP")],
        )]);
        let m = tokio::time::timeout(Duration::from_secs(2), rx.recv())
            .await
            .expect("live drain keeps flowing")
            .unwrap();
        assert_eq!(payload_of(&m), format!("m{i}"));
    }
    assert!(
        h.registry
            .counter_value("syslog_drain_write_errors", &[("scheme", "syslog")])
            .unwrap()
            >= 1
    );
    // Remove the live drain: nothing more arrives there.
    h.manager
        .apply(&[spec(APP, &format!("syslog://127.0.0.1:{dead}"), "")], &[]);
    assert_eq!(h.manager.len(), 1);
    h.dispatcher.dispatch(vec![log(
        APP,
        "0",
        false,
        "after removal",
        &[("source_type", "APP")],
    )]);
    assert!(
        tokio::time::timeout(Duration::from_millis(500), rx.recv())
            .await
            .is_err()
    );
    // Added back: flows again without restart.
    h.manager.apply(&[live_spec], &[]);
    h.dispatcher.dispatch(vec![log(
        APP,
        "0",
        false,
        "re-added",
        &[("source_type", "APP")],
    )]);
    let m = tokio::time::timeout(Duration::from_secs(2), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(payload_of(&m), "re-added");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_binding_is_announced_to_the_app_and_counted() {
    let (ingress, addr) = capture_ingress().await;
    let mut h = harness(settings(None, 10), Some(addr));
    h.manager.apply(
        &[spec(APP, "http://user:pw@logs.example.com/in?token=1", "")],
        &[],
    );
    assert_eq!(h.manager.len(), 0);
    assert_eq!(h.registry.counter_value("invalid_drains", &[]), Some(1));
    let texts = eventually(Duration::from_secs(5), || {
        let r = ingress.received.lock().clone();
        (!r.is_empty()).then_some(r)
    })
    .await
    .expect("notice");
    let Some(Message::Log(l)) = &texts[0].message else {
        panic!("not a log")
    };
    assert_eq!(texts[0].source_id, APP);
    assert_eq!(
        String::from_utf8(l.payload.to_vec()).unwrap(),
        "Invalid Scheme http for syslog drain url http://logs.example.com/in"
    );
}
