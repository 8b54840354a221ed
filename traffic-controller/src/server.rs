//! Assembly: shared state, the accept loops (optional server-only TLS,
//! HTTP/1.1 with upgrades) and request dispatch.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::agent_event::AgentEvents;
use crate::auth::Authorizer;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::respond::{self, Body};
use crate::routes::{self, Route};
use crate::security_log::{RequestFacts, SecurityLog};
use crate::upstream::pool::Pool;

/// Read-header timeout of the external listeners (reference §12.1).
const READ_HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// TLS handshake deadline.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// State every handler shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) pool: Pool,
    pub(crate) auth: Authorizer,
    pub(crate) metrics: Metrics,
    /// Consumer slots (WebSocket and `/v2/read`).
    pub(crate) limit: Arc<Semaphore>,
    /// Cancelled at shutdown: every consumer closes.
    pub(crate) cancel: CancellationToken,
    pub(crate) agent: Option<AgentEvents>,
    pub(crate) security_log: Option<SecurityLog>,
    pub(crate) tracker: TaskTracker,
}

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listener {
    /// The traffic controller's port: every route.
    Main,
    /// The RLP gateway's port: `/v2/read` only.
    Gateway,
}

/// Per-request connection facts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer {
    pub(crate) addr: SocketAddr,
    /// Port of the listener the request came in on.
    pub(crate) local_port: u16,
}

/// Accepts connections on `listener` until `shared.cancel` fires.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    kind: Listener,
    shared: Arc<Shared>,
) {
    let local_port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    loop {
        let (tcp, addr) = tokio::select! {
            _ = shared.cancel.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let shared = shared.clone();
        let tls = tls.clone();
        let peer = Peer { addr, local_port };
        shared.tracker.clone().spawn(async move {
            match tls {
                None => serve_conn(TokioIo::new(tcp), peer, kind, shared).await,
                Some(acceptor) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            serve_conn(TokioIo::new(stream), peer, kind, shared).await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(peer = %addr, error = %e, "tls handshake failed")
                        }
                        Err(_) => tracing::debug!(peer = %addr, "tls handshake timed out"),
                    }
                }
            }
        });
    }
}

async fn serve_conn<I>(io: I, peer: Peer, kind: Listener, shared: Arc<Shared>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let addr = peer.addr;
    let svc_shared = shared.clone();
    let service = service_fn(move |req| {
        let shared = svc_shared.clone();
        async move { Ok::<_, std::convert::Infallible>(dispatch(req, peer, kind, shared).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(READ_HEADER_TIMEOUT)
        .serve_connection(io, service)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => if let Err(e) = r {
            tracing::debug!(peer = %addr, error = %e, "http connection ended with error");
        },
        _ = shared.cancel.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(shared.config.grace, conn).await;
        }
    }
}

/// Routes one request.
pub(crate) async fn dispatch(
    req: Request<Incoming>,
    peer: Peer,
    kind: Listener,
    shared: Arc<Shared>,
) -> Response<Body> {
    let path = req.uri().path().to_owned();
    if let Some(log) = &shared.security_log {
        log.record(&RequestFacts {
            method: req.method().as_str(),
            path: &path,
            query: req.uri().query(),
            headers: req.headers(),
            peer: peer.addr,
            local_port: peer.local_port,
        });
    }
    let route = routes::parse(&path);
    if kind == Listener::Gateway && route != Route::V2Read {
        return respond::not_found();
    }
    match route {
        Route::Firehose(sub) => crate::websocket::firehose(req, peer, sub.to_owned(), shared).await,
        Route::AppStream(app) => {
            crate::websocket::app_stream(req, peer, app.to_owned(), shared).await
        }
        Route::RecentLogs(app) => crate::recent::recent_logs(req, app.to_owned(), shared).await,
        Route::ContainerMetrics(app) => {
            crate::recent::container_metrics(req, app.to_owned(), shared).await
        }
        Route::SetCookie => crate::cookie::set_cookie(req, &shared).await,
        Route::V2Read => crate::gateway::read(req, shared).await,
        Route::NotFound => respond::not_found(),
    }
}

/// The client address used in warnings and logs: the first
/// `X-Forwarded-For` entry, else the socket peer.
pub(crate) fn client_address(headers: &http::HeaderMap, peer: SocketAddr) -> String {
    forwarded_for(headers)
        .split(',')
        .map(str::trim)
        .find(|s| !s.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| peer.to_string())
}

/// The raw `X-Forwarded-For` header ("" when absent).
pub(crate) fn forwarded_for(headers: &http::HeaderMap) -> &str {
    headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}
