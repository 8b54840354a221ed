//! Traffic controller listeners under hostile clients (hardening issue, item 1):
//! a flood of slow request bodies and idle connections is cut at the header and
//! body deadlines and capped by the pending-connection limit, while the admin
//! endpoint and the consumers already connected carry on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/tc_cluster.rs"]
mod tc_cluster;

use std::net::SocketAddr;
use std::time::Duration;

use tc_cluster::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const APP: &str = "11111111-2222-3333-4444-555555555555";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Refused at accept: beyond the pending cap.
    Refused,
    /// Cut at the body deadline with 408.
    TimedOut,
    /// Any other answer.
    Other,
    /// No answer within 20 s: the connection was held.
    Held,
}

/// `POST /set-cookie` announcing 4000 body bytes, then one byte every 200 ms.
async fn slow_body(addr: SocketAddr) -> Outcome {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return Outcome::Other;
    };
    let _ = s
        .write_all(
            b"POST /set-cookie HTTP/1.1\r\nHost: x\r\n\
              Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 4000\r\n\r\n",
        )
        .await;
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < deadline {
        let _ = s.write_all(b"a").await;
        let mut buf = [0u8; 1024];
        match tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                got.extend_from_slice(&buf[..n]);
                if got.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Err(_) => {}
        }
    }
    let text = String::from_utf8_lossy(&got);
    if text.starts_with("HTTP/1.1 503") && text.contains("too many pending connections") {
        Outcome::Refused
    } else if text.starts_with("HTTP/1.1 408") {
        Outcome::TimedOut
    } else if tokio::time::Instant::now() >= deadline {
        Outcome::Held
    } else {
        Outcome::Other
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_body_flood_is_cut_and_capped_while_admin_and_consumers_carry_on() {
    let c = Cluster::start(|config| {
        config.listen.max_pending = 40;
        config.listen.header_timeout = Duration::from_secs(1);
        config.listen.body_timeout = Duration::from_secs(1);
    })
    .await;
    // A consumer connected before the flood.
    let mut consumer = c.ws(&format!("/apps/{APP}/stream"), &[]).await;
    c.wait_subscriptions(1).await;
    eventually(
        || pending(&c) == 0,
        "the consumer no longer counts as pending",
    )
    .await;

    let attackers: Vec<_> = (0..300)
        .map(|_| tokio::spawn(slow_body(c.tc_addr)))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // During the flood: the admin endpoint answers, pending stays capped, and
    // the consumer still gets its logs.
    let health = raw_get(c.tc_admin, "/health").await;
    assert!(
        health.starts_with("HTTP/1.1 200") && health.ends_with("\r\n\r\nok"),
        "admin /health answers during the flood: {health:?}"
    );
    assert!(pending(&c) <= 40);
    c.push(0, &[log_env(APP, "during the flood")]).await;
    let env = next_envelope(&mut consumer, Duration::from_secs(5))
        .await
        .expect("the consumer is served during the flood");
    assert_eq!(log_text(&env).as_deref(), Some("during the flood"));

    let mut outcomes = Vec::new();
    for a in attackers {
        outcomes.push(a.await.unwrap());
    }
    let count = |o: Outcome| outcomes.iter().filter(|x| **x == o).count();
    assert_eq!(
        count(Outcome::Held),
        0,
        "no slow body holds its connection: {outcomes:?}"
    );
    assert_eq!(count(Outcome::Other), 0, "{outcomes:?}");
    assert!(
        count(Outcome::Refused) > 0,
        "the cap refused some: {outcomes:?}"
    );
    assert!(
        count(Outcome::TimedOut) > 0,
        "the deadline cut some: {outcomes:?}"
    );
    assert_eq!(
        c.tc_counter(
            "http_connections_refused",
            &[("listener", "traffic_controller")]
        ),
        count(Outcome::Refused) as u64
    );
    assert!(
        c.tc_counter(
            "http_deadlines_exceeded",
            &[("listener", "traffic_controller"), ("phase", "body")]
        ) >= count(Outcome::TimedOut) as u64
    );
    eventually(|| pending(&c) == 0, "every pending slot given back").await;
    // After the flood a new consumer connects as usual.
    let _second = c.ws("/firehose/after", &[]).await;
    c.wait_subscriptions(2).await;
}

fn pending(c: &Cluster) -> i64 {
    c.tc_registry
        .gauge_value(
            "http_connections_pending",
            &[("listener", "traffic_controller")],
        )
        .unwrap_or(-1)
}

/// `GET path` on a fresh connection; the whole answer ("" if none).
async fn raw_get(addr: SocketAddr, path: &str) -> String {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return String::new();
    };
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let _ = s.write_all(req.as_bytes()).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

/// Opens `n` connections that send nothing and checks the next one is refused.
async fn fill_and_probe(addr: SocketAddr, n: usize) -> (Vec<TcpStream>, String) {
    let mut held = Vec::new();
    for _ in 0..n {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    // Give the accept loop time to admit them all before the probe.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut probe = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), probe.read_to_end(&mut buf)).await;
    (held, String::from_utf8_lossy(&buf).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gateway_and_admin_listeners_are_capped_too() {
    let c = Cluster::start(|config| {
        config.listen.max_pending = 10;
        config.listen.header_timeout = Duration::from_secs(30);
    })
    .await;
    let (held, answer) = fill_and_probe(c.tc_gateway, 10).await;
    assert!(
        answer.starts_with("HTTP/1.1 503") && answer.ends_with("too many pending connections\n"),
        "{answer:?}"
    );
    assert_eq!(
        c.tc_counter("http_connections_refused", &[("listener", "gateway")]),
        1
    );
    drop(held);
    let (held, answer) = fill_and_probe(c.tc_admin, plumbing::admin::MAX_CONNECTIONS).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    drop(held);
    // Once the idle ones are gone, /health answers again.
    let mut ok = false;
    for _ in 0..50 {
        if raw_get(c.tc_admin, "/health")
            .await
            .starts_with("HTTP/1.1 200")
        {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "/health answers once the idle connections are gone");
}
