//! HTTP/1.1 serving for every listener strangers can reach: admission control and deadlines.
//!
//! The traffic controller's and the RLP gateway's listeners and every component's admin
//! endpoint are served by [`serve`], which gives each connection:
//!
//! - a **pending slot** from the listener's [`Gate`], held from accept until the handler calls
//!   [`Ticket::authenticated`] (the traffic controller does when a request becomes a consumer,
//!   which then holds a consumer slot of its own) or the connection ends. At most
//!   [`Limits::max_pending`] connections are pending at once. One beyond that is answered
//!   `503 Service Unavailable` at once on a plain listener (closed on a TLS one) and counted in
//!   `http_connections_refused`, so a flood of idle, slow or unauthenticated clients can never
//!   use up the file descriptors that consumers, doppler streams and the admin endpoint need:
//!   a listener holds at most `max_pending` + (its consumer limit) client connections;
//! - a **TLS handshake deadline** and a **request-header deadline** (which also ends a
//!   keep-alive connection that stays idle that long), both counted in
//!   `http_deadlines_exceeded{phase}`;
//! - a **body deadline and size limit** for handlers that read a request body
//!   ([`Conn::read_body`]): a body that does not arrive in time is refused, however slowly its
//!   bytes trickle in;
//! - optionally a **write deadline** ([`Limits::write_timeout`]): a client that stops reading
//!   its response is cut once the writes make no progress for that long (`phase="write"`).
//!
//! At shutdown the accept loop stops, in-flight connections are asked to finish and are dropped
//! after [`Limits::grace`].

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::limited_log::Limiter;
use crate::metrics::{Counter, Gauge, Registry};

/// Default cap on pending (not yet authenticated) connections per listener.
pub const DEFAULT_MAX_PENDING: usize = 256;
/// Default request-header deadline (the upstream traffic controller's `ReadHeaderTimeout`).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// Default request-body deadline.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(5);
/// Default TLS handshake deadline.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The limits and deadlines of one listener.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections that may be pending (accepted, not yet authenticated) at once.
    pub max_pending: usize,
    /// Deadline for a request's headers, counted from the first read of the request (or from
    /// the end of the previous response on a keep-alive connection).
    pub header_timeout: Duration,
    /// Deadline for a whole request body read with [`Conn::read_body`].
    pub body_timeout: Duration,
    /// Deadline for the TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// How long in-flight connections may take to finish at shutdown.
    pub grace: Duration,
    /// How long a write to the client may make no progress before the connection is closed
    /// (`None`: no limit). For listeners whose answers are plain responses: a client that never
    /// reads holds its connection and one response for at most this long. Listeners that
    /// upgrade connections (the traffic controller's WebSockets) leave it `None`: their
    /// consumers have a slow-consumer policy of their own.
    pub write_timeout: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_pending: DEFAULT_MAX_PENDING,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            tls_handshake_timeout: DEFAULT_TLS_HANDSHAKE_TIMEOUT,
            grace: Duration::from_secs(5),
            write_timeout: None,
        }
    }
}

/// Admission control of one listener: the pending slots and the listener's counters
/// (`http_connections_refused`, `http_connections_pending`, `http_deadlines_exceeded`, each
/// labelled `listener`). Clones share the same state.
#[derive(Debug, Clone)]
pub struct Gate {
    inner: Arc<GateInner>,
}

#[derive(Debug)]
struct GateInner {
    name: String,
    pending: Arc<Semaphore>,
    limits: Limits,
    refused: Counter,
    pending_gauge: Gauge,
    header_deadline: Counter,
    body_deadline: Counter,
    tls_deadline: Counter,
    write_deadline: Counter,
    log: Limiter,
}

impl Gate {
    /// A gate for the listener called `name` (the `listener` label), counting in `registry`.
    pub fn new(name: &str, limits: Limits, registry: &Registry) -> Gate {
        let labels = [("listener", name)];
        let deadline = |phase: &str| {
            registry.counter(
                "http_deadlines_exceeded",
                "Client connections closed because a TLS handshake, request header or request body was not complete in time, or a response write made no progress.",
                &[("listener", name), ("phase", phase)],
            )
        };
        Gate {
            inner: Arc::new(GateInner {
                name: name.to_owned(),
                pending: Arc::new(Semaphore::new(limits.max_pending.max(1))),
                refused: registry.counter(
                    "http_connections_refused",
                    "Client connections refused because the listener's pending (not yet authenticated) connections were at their limit.",
                    &labels,
                ),
                pending_gauge: registry.gauge(
                    "http_connections_pending",
                    "Client connections accepted and not yet authenticated.",
                    &labels,
                ),
                header_deadline: deadline("header"),
                body_deadline: deadline("body"),
                tls_deadline: deadline("tls"),
                write_deadline: deadline("write"),
                log: Limiter::new(Duration::from_secs(10)),
                limits,
            }),
        }
    }

    /// The listener's limits.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Connections pending right now.
    pub fn pending(&self) -> usize {
        self.inner.limits.max_pending.max(1) - self.inner.pending.available_permits()
    }

    fn admit(&self) -> Option<Ticket> {
        let permit = self.inner.pending.clone().try_acquire_owned().ok()?;
        self.inner.pending_gauge.add(1);
        Some(Ticket {
            slot: Arc::new(Mutex::new(Some(PendingSlot {
                _permit: permit,
                gauge: self.inner.pending_gauge.clone(),
            }))),
        })
    }
}

/// A held pending slot; gives it back (and lowers the gauge) when dropped.
#[derive(Debug)]
struct PendingSlot {
    _permit: OwnedSemaphorePermit,
    gauge: Gauge,
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        self.gauge.add(-1);
    }
}

/// A connection's pending slot. Clones share it; it is given back when the handler calls
/// [`Ticket::authenticated`] or when the connection (every clone) is gone.
#[derive(Debug, Clone)]
pub struct Ticket {
    slot: Arc<Mutex<Option<PendingSlot>>>,
}

impl Ticket {
    /// The connection proved who it is and holds a slot of its own (e.g. a consumer slot): it
    /// no longer counts as pending. Idempotent.
    pub fn authenticated(&self) {
        drop(self.slot.lock().take());
    }

    /// Whether the connection still holds its pending slot.
    pub fn is_pending(&self) -> bool {
        self.slot.lock().is_some()
    }
}

/// What a handler learns about the connection a request came in on.
#[derive(Debug, Clone)]
pub struct Conn {
    /// The client's socket address.
    pub peer: SocketAddr,
    /// The port of the listener the request came in on.
    pub local_port: u16,
    /// The connection's pending slot.
    pub ticket: Ticket,
    gate: Gate,
}

/// Why [`Conn::read_body`] refused a request body.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The body is larger than the handler's limit.
    #[error("request body larger than {0} bytes")]
    TooLarge(usize),
    /// The body was not complete within the listener's body deadline.
    #[error("request body not complete within {0:?}")]
    TimedOut(Duration),
    /// The connection failed while the body was read.
    #[error("request body: {0}")]
    Io(String),
}

impl Conn {
    /// Reads a whole request body of at most `limit` bytes within the listener's body deadline.
    pub async fn read_body(&self, body: Incoming, limit: usize) -> Result<Bytes, BodyError> {
        let deadline = self.gate.inner.limits.body_timeout;
        match tokio::time::timeout(deadline, Limited::new(body, limit).collect()).await {
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                Err(BodyError::TooLarge(limit))
            }
            Ok(Err(e)) => Err(BodyError::Io(e.to_string())),
            Err(_) => {
                self.gate.inner.body_deadline.inc();
                self.gate.inner.log.warn("body-deadline", |suppressed| {
                    tracing::warn!(
                        listener = %self.gate.inner.name,
                        peer = %self.peer,
                        suppressed,
                        "request body not complete within {deadline:?}: refused"
                    )
                });
                Err(BodyError::TimedOut(deadline))
            }
        }
    }
}

/// The answer to a connection beyond the pending limit on a plain listener.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Length: 29\r\n\
Connection: close\r\n\r\n\
too many pending connections\n";

/// Accepts connections on `listener` until `cancel` fires and serves each with `handler`
/// (HTTP/1.1 with upgrades, optional server-side TLS), under `gate`'s limits. Connection tasks
/// are spawned on `tracker`. Accept errors (e.g. out of file descriptors) are logged
/// (rate-limited) and retried after a short pause; they never end the server.
pub async fn serve<H, F, B>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    gate: Gate,
    cancel: CancellationToken,
    tracker: TaskTracker,
    handler: H,
) where
    H: Fn(Request<Incoming>, Conn) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let local_port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let log = Limiter::new(Duration::from_secs(10));
    loop {
        let (tcp, peer) = tokio::select! {
            _ = cancel.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    log.warn("accept", |suppressed| {
                        tracing::warn!(listener = %gate.inner.name, error = %e, suppressed, "accept failed")
                    });
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(ticket) = gate.admit() else {
            refuse(&tcp, tls.is_some());
            gate.inner.refused.inc();
            log.warn("refused", |suppressed| {
                tracing::warn!(
                    listener = %gate.inner.name,
                    %peer,
                    max_pending = gate.inner.limits.max_pending,
                    suppressed,
                    "connection refused: too many pending (not yet authenticated) connections"
                )
            });
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let conn = Conn {
            peer,
            local_port,
            ticket,
            gate: gate.clone(),
        };
        let tls = tls.clone();
        let handler = handler.clone();
        let cancel = cancel.clone();
        tracker.spawn(async move {
            let limits = conn.gate.inner.limits.clone();
            match (tls, limits.write_timeout) {
                (None, None) => serve_conn(TokioIo::new(tcp), conn, handler, cancel).await,
                (None, Some(t)) => {
                    let counter = conn.gate.inner.write_deadline.clone();
                    let io = WriteDeadline::new(tcp, t, counter);
                    serve_conn(TokioIo::new(io), conn, handler, cancel).await
                }
                (Some(acceptor), write_timeout) => {
                    match tokio::time::timeout(limits.tls_handshake_timeout, acceptor.accept(tcp))
                        .await
                    {
                        Ok(Ok(stream)) => match write_timeout {
                            None => serve_conn(TokioIo::new(stream), conn, handler, cancel).await,
                            Some(t) => {
                                let counter = conn.gate.inner.write_deadline.clone();
                                let io = WriteDeadline::new(stream, t, counter);
                                serve_conn(TokioIo::new(io), conn, handler, cancel).await
                            }
                        },
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "tls handshake failed"),
                        Err(_) => {
                            conn.gate.inner.tls_deadline.inc();
                            tracing::debug!(%peer, "tls handshake timed out");
                        }
                    }
                }
            }
        });
    }
}

/// A stream whose writes fail with `TimedOut` once they have made no progress for `timeout`.
struct WriteDeadline<S> {
    inner: S,
    timeout: Duration,
    /// Armed while a write is pending.
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
    exceeded: Counter,
}

impl<S> WriteDeadline<S> {
    fn new(inner: S, timeout: Duration, exceeded: Counter) -> Self {
        WriteDeadline {
            inner,
            timeout,
            stall: None,
            exceeded,
        }
    }

    /// After a write returned `Pending`: arms the stall timer, or fails when it fired.
    fn pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let timeout = self.timeout;
        let stall = self
            .stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match stall.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.exceeded.inc();
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("client read nothing for {timeout:?}"),
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Pending => self.pending(cx),
            ready => {
                self.stall = None;
                ready
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Pending => self.pending(cx),
            ready => {
                self.stall = None;
                ready
            }
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Best effort, without waiting: a plain client reads why it was refused; a TLS client sees
/// the connection close.
fn refuse(tcp: &TcpStream, tls: bool) {
    if !tls {
        let _ = tcp.try_write(REFUSAL);
    }
}

async fn serve_conn<I, H, F, B>(io: I, conn: Conn, handler: H, cancel: CancellationToken)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    H: Fn(Request<Incoming>, Conn) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let limits = conn.gate.inner.limits.clone();
    let gate = conn.gate.clone();
    let peer = conn.peer;
    let service = service_fn(move |req| {
        let handler = handler.clone();
        let conn = conn.clone();
        async move { Ok::<_, Infallible>(handler(req, conn).await) }
    });
    let http = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(io, service)
        .with_upgrades();
    let mut http = std::pin::pin!(http);
    tokio::select! {
        r = http.as_mut() => if let Err(e) = r {
            if e.is_timeout() {
                gate.inner.header_deadline.inc();
            }
            tracing::debug!(%peer, error = %e, "http connection ended with error");
        },
        _ = cancel.cancelled() => {
            http.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(limits.grace, http).await;
        }
    }
}

#[cfg(test)]
mod tests;
