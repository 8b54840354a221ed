use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::*;

/// `/body` reads a body of at most 4 KiB; `/auth` marks the connection authenticated; anything
/// else answers 200 at once.
async fn handler(req: Request<Incoming>, conn: Conn) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let (status, body) = match path.as_str() {
        "/body" => match conn.read_body(req.into_body(), 4096).await {
            Ok(b) => (StatusCode::OK, format!("got {}", b.len())),
            Err(BodyError::TimedOut(_)) => (StatusCode::REQUEST_TIMEOUT, "slow".to_owned()),
            Err(BodyError::TooLarge(_)) => (StatusCode::PAYLOAD_TOO_LARGE, "big".to_owned()),
            Err(e) => (StatusCode::BAD_REQUEST, e.to_string()),
        },
        "/auth" => {
            conn.ticket.authenticated();
            (StatusCode::OK, "authenticated".to_owned())
        }
        // Far more than the socket buffers hold.
        "/big" => (StatusCode::OK, "x".repeat(32 << 20)),
        _ => (StatusCode::OK, "ok".to_owned()),
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r
}

struct Server {
    addr: std::net::SocketAddr,
    gate: Gate,
    registry: Registry,
    cancel: CancellationToken,
}

async fn start(limits: Limits) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let registry = Registry::new();
    let gate = Gate::new("test", limits, &registry);
    let cancel = CancellationToken::new();
    tokio::spawn(serve(
        listener,
        None,
        gate.clone(),
        cancel.clone(),
        TaskTracker::new(),
        handler,
    ));
    Server {
        addr,
        gate,
        registry,
        cancel,
    }
}

fn limits(max_pending: usize) -> Limits {
    Limits {
        max_pending,
        header_timeout: Duration::from_millis(400),
        body_timeout: Duration::from_millis(600),
        ..Limits::default()
    }
}

async fn read_all(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("server closes in time")
        .ok();
    String::from_utf8_lossy(&buf).into_owned()
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_trickling_body_is_refused_at_the_body_deadline() {
    let srv = start(limits(8)).await;
    let mut s = TcpStream::connect(srv.addr).await.expect("connect");
    s.write_all(b"POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 4000\r\n\r\n")
        .await
        .expect("headers");
    // One byte every 50 ms would take 200 s; the deadline is 600 ms.
    let started = std::time::Instant::now();
    let writer = async {
        for _ in 0..4000 {
            if s.write_all(b"a").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut probe = [0u8; 512];
            if let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_millis(1), s.read(&mut probe)).await
            {
                return String::from_utf8_lossy(&probe[..n]).into_owned();
            }
        }
        String::new()
    };
    let answer = tokio::time::timeout(Duration::from_secs(10), writer)
        .await
        .expect("answered within the deadline");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(started.elapsed() < Duration::from_secs(8));
    assert_eq!(
        srv.registry.counter_value(
            "http_deadlines_exceeded",
            &[("listener", "test"), ("phase", "body")]
        ),
        Some(1)
    );
    // A body that arrives in time is read.
    let mut s = TcpStream::connect(srv.addr).await.expect("connect");
    s.write_all(
        b"POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    )
    .await
    .expect("write");
    let resp = read_all(&mut s).await;
    assert!(
        resp.starts_with("HTTP/1.1 200") && resp.ends_with("got 5"),
        "{resp}"
    );
    srv.cancel.cancel();
}

#[tokio::test]
async fn idle_and_slow_headers_are_closed_at_the_header_deadline() {
    let srv = start(limits(8)).await;
    // Never sends a byte.
    let mut idle = TcpStream::connect(srv.addr).await.expect("connect");
    // Sends half a request line, then nothing.
    let mut partial = TcpStream::connect(srv.addr).await.expect("connect");
    partial.write_all(b"GET /x HT").await.expect("write");
    wait_for("two pending", || srv.gate.pending() == 2).await;
    assert_eq!(read_all(&mut idle).await, "");
    let _ = read_all(&mut partial).await;
    wait_for("slots returned", || srv.gate.pending() == 0).await;
    assert_eq!(
        srv.registry.counter_value(
            "http_deadlines_exceeded",
            &[("listener", "test"), ("phase", "header")]
        ),
        Some(2)
    );
    // A keep-alive connection that goes idle after a response is closed too.
    let mut ka = TcpStream::connect(srv.addr).await.expect("connect");
    ka.write_all(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let resp = read_all(&mut ka).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    srv.cancel.cancel();
}

#[tokio::test]
async fn connections_beyond_the_pending_cap_are_refused_and_authenticated_ones_do_not_count() {
    let srv = start(Limits {
        header_timeout: Duration::from_secs(30),
        ..limits(3)
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(srv.addr).await.expect("connect"));
    }
    wait_for("three pending", || srv.gate.pending() == 3).await;
    let mut fourth = TcpStream::connect(srv.addr).await.expect("connect");
    let resp = read_all(&mut fourth).await;
    assert!(
        resp.starts_with("HTTP/1.1 503 Service Unavailable\r\n")
            && resp.ends_with("\r\n\r\ntoo many pending connections\n"),
        "{resp:?}"
    );
    assert_eq!(
        srv.registry
            .counter_value("http_connections_refused", &[("listener", "test")]),
        Some(1)
    );
    assert_eq!(
        srv.registry
            .gauge_value("http_connections_pending", &[("listener", "test")]),
        Some(3)
    );
    // One of them authenticates: it stays open but no longer holds a pending slot.
    held[0]
        .write_all(b"GET /auth HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 256];
    let n = held[0].read(&mut buf).await.expect("read");
    assert!(buf[..n].ends_with(b"authenticated"));
    wait_for("two pending", || srv.gate.pending() == 2).await;
    let mut admitted = TcpStream::connect(srv.addr).await.expect("connect");
    admitted
        .write_all(b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let resp = read_all(&mut admitted).await;
    assert!(
        resp.starts_with("HTTP/1.1 200") && resp.ends_with("ok"),
        "{resp}"
    );
    // Closing pending connections gives their slots back.
    held.truncate(1);
    wait_for("one left", || srv.gate.pending() == 0).await;
    srv.cancel.cancel();
}

#[tokio::test]
async fn a_client_that_never_reads_its_response_is_cut_at_the_write_deadline() {
    let srv = start(Limits {
        write_timeout: Some(Duration::from_millis(300)),
        ..limits(8)
    })
    .await;
    let mut s = TcpStream::connect(srv.addr).await.expect("connect");
    s.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("request");
    wait_for("the connection is pending", || srv.gate.pending() == 1).await;
    // Never read: the server's writes stall, then it gives up and frees the slot.
    wait_for("the stalled connection is cut", || srv.gate.pending() == 0).await;
    assert_eq!(
        srv.registry.counter_value(
            "http_deadlines_exceeded",
            &[("listener", "test"), ("phase", "write")]
        ),
        Some(1)
    );
    drop(s);
    // A reading client still gets its whole answer.
    let mut ok = TcpStream::connect(srv.addr).await.expect("connect");
    ok.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let answer = read_all(&mut ok).await;
    assert!(answer.starts_with("HTTP/1.1 200"));
    assert!(answer.len() > 32 << 20);
    srv.cancel.cancel();
}
