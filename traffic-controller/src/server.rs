//! Assembly: shared state, the accept loops (optional server-only TLS,
//! HTTP/1.1 with upgrades, limits and deadlines from [`plumbing::listen`]) and
//! request dispatch.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use plumbing::listen::{self, BodyError, Conn, Gate};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
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

/// Accepts connections on `listener` until `shared.cancel` fires, under `gate`'s limits
/// (pending-connection cap, TLS handshake, header and body deadlines: [`plumbing::listen`]).
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    kind: Listener,
    gate: Gate,
    shared: Arc<Shared>,
) {
    let cancel = shared.cancel.clone();
    let tracker = shared.tracker.clone();
    let handler = move |mut req: Request<Incoming>, conn: Conn| {
        let shared = shared.clone();
        let peer = Peer {
            addr: conn.peer,
            local_port: conn.local_port,
        };
        req.extensions_mut().insert(conn);
        async move { dispatch(req, peer, kind, shared).await }
    };
    listen::serve(listener, tls, gate, cancel, tracker, handler).await;
}

/// Takes a consumer slot for the request (WebSocket or `/v2/read`): `None` at the connection
/// limit. The connection then no longer counts as pending ([`plumbing::listen::Ticket`]).
pub(crate) fn consumer_slot(
    req: &Request<Incoming>,
    shared: &Shared,
) -> Option<OwnedSemaphorePermit> {
    let permit = shared.limit.clone().try_acquire_owned().ok()?;
    if let Some(conn) = req.extensions().get::<Conn>() {
        conn.ticket.authenticated();
    }
    Some(permit)
}

/// Reads a request body of at most `limit` bytes within the listener's body deadline.
pub(crate) async fn read_body(
    req: Request<Incoming>,
    limit: usize,
) -> Result<(http::request::Parts, Bytes), BodyError> {
    let (parts, body) = req.into_parts();
    let Some(conn) = parts.extensions.get::<Conn>().cloned() else {
        return Err(BodyError::Io("no connection state".to_owned()));
    };
    let bytes = conn.read_body(body, limit).await?;
    Ok((parts, bytes))
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
        Route::V2Read => crate::gateway::read(req, peer, shared).await,
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
