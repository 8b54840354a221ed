//! Admin HTTP listener: `GET /metrics` (Prometheus text 0.0.4) and `GET /health` (`ok`).
//!
//! Plain HTTP/1.1 ([`crate::listen`]: connection cap, header deadline) on a listener the caller
//! bound (tests bind `127.0.0.1:0`). Any other path is
//! 404, any other method on those paths 405. Stops accepting when the [`Shutdown`] triggers and
//! lets in-flight requests finish.

#[cfg(test)]
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::net::TcpListener;

use crate::listen::{self, Gate, Limits};
use crate::metrics::Registry;
use crate::shutdown::Shutdown;

/// Content type of the Prometheus text exposition format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Concurrent admin connections (every one counts as pending: the endpoint has no auth).
pub const MAX_CONNECTIONS: usize = 64;

/// Serves `/metrics` and `/health` on `listener` until `shutdown` triggers.
///
/// Served by [`crate::listen::serve`] under the listener name `admin`: at most
/// [`MAX_CONNECTIONS`] connections, the default header deadline, a 10 s write deadline. Connection tasks are tracked
/// by `shutdown`'s tracker. Accept errors (e.g. out of file descriptors) are logged and retried
/// after a short pause; they never end the server.
pub async fn serve(listener: TcpListener, registry: Registry, shutdown: Shutdown) {
    let limits = Limits {
        max_pending: MAX_CONNECTIONS,
        write_timeout: Some(std::time::Duration::from_secs(10)),
        ..Limits::default()
    };
    let gate = Gate::new("admin", limits, &registry);
    let handler = move |req: Request<Incoming>, _conn| {
        let registry = registry.clone();
        async move { handle(&req, &registry) }
    };
    listen::serve(
        listener,
        None,
        gate,
        shutdown.token().clone(),
        shutdown.tracker().clone(),
        handler,
    )
    .await;
}

fn handle(req: &Request<Incoming>, registry: &Registry) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let (status, content_type, body) = match (req.method(), path) {
        (&Method::GET | &Method::HEAD, "/metrics") => (
            StatusCode::OK,
            METRICS_CONTENT_TYPE,
            Bytes::from(registry.render()),
        ),
        (&Method::GET | &Method::HEAD, "/health") => {
            (StatusCode::OK, "text/plain", Bytes::from_static(b"ok"))
        }
        (_, "/metrics" | "/health") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            Bytes::from_static(b"method not allowed\n"),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            Bytes::from_static(b"404 page not found\n"),
        ),
    };
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: std::net::SocketAddr, req: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(req.as_bytes()).await.expect("write");
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
            .await
            .expect("response in time")
            .expect("read");
        String::from_utf8(buf).expect("utf8")
    }

    #[tokio::test]
    async fn serves_metrics_health_and_404() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let reg = Registry::new();
        reg.counter("ingress", "Received.", &[("protocol", "grpc")])
            .add(12);
        let sd = Shutdown::new();
        let server = tokio::spawn(serve(listener, reg.clone(), sd.clone()));

        let resp = get(
            addr,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
        assert!(
            resp.contains("content-type: text/plain; version=0.0.4; charset=utf-8\r\n"),
            "{resp}"
        );
        assert!(resp.contains("\n# HELP ingress Received.\n# TYPE ingress counter\ningress{protocol=\"grpc\"} 12\n"), "{resp}");
        // The admin listener counts its own connections: this one is pending while it is served.
        assert!(
            resp.contains("\nhttp_connections_pending{listener=\"admin\"} 1\n"),
            "{resp}"
        );

        let resp = get(
            addr,
            "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
        assert!(resp.ends_with("\r\n\r\nok"), "{resp}");

        let resp = get(
            addr,
            "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(resp.starts_with("HTTP/1.1 404 Not Found\r\n"), "{resp}");

        let resp = get(
            addr,
            "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(resp.starts_with("HTTP/1.1 405"), "{resp}");

        sd.trigger();
        tokio::time::timeout(Duration::from_secs(2), server)
            .await
            .expect("server stops")
            .expect("join");
        assert!(sd.drain(Duration::from_secs(2)).await);
        // Listener dropped: new connections are refused.
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }

    #[tokio::test]
    async fn idle_keepalive_connection_does_not_block_shutdown() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let sd = Shutdown::new();
        let server = tokio::spawn(serve(listener, Registry::new(), sd.clone()));
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).await.expect("read");
        assert!(buf[..n].starts_with(b"HTTP/1.1 200 OK"));
        sd.trigger();
        server.await.expect("join");
        assert!(sd.drain(Duration::from_secs(2)).await);
    }
}
