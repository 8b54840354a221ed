//! WebSocket endpoints: `/firehose/{sub}` and `/apps/{guid}/stream`
//! (reference §12.2–§12.6).
//!
//! Order of checks: access (401/404/500), WebSocket upgrade request (400),
//! connection limit (503 `at connection limit: N`), dopplers known (503).
//! Then the fan-in starts (so nothing is lost while the upgrade completes),
//! the 101 goes out, and [`session::run`] serves the consumer on the socket
//! [`socket::take`] got back from hyper (with its unsent bytes limited, so a
//! slow consumer's farewell fits).

pub(crate) mod session;
pub(crate) mod socket;
pub(crate) mod warning;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use envelope_proto::plumbing_v1::{Filter, LogFilter, MetricFilter, SubscriptionRequest, filter};
use http::header::{
    CONNECTION, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION,
    UPGRADE,
};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use plumbing::metrics::{Counter, Gauge};
use plumbing::ring::Ring;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tracing::Instrument as _;

use crate::auth::Denial;
use crate::respond::{self, Body};
use crate::routes::{self, FilterType};
use crate::server::{self, Peer, Shared};
use crate::upstream::{self, fanin};
use session::{End, SessionConfig, SessionStats};
use warning::{Admits, Warning};

/// Envelopes taken from the ring per write round.
const MAX_BATCH: usize = 256;

/// `/firehose/{sub}`.
pub(crate) async fn firehose(
    req: Request<Incoming>,
    peer: Peer,
    sub: String,
    shared: Arc<Shared>,
) -> Response<Body> {
    if let Err(d) = shared.auth.firehose(req.headers()).await {
        return denial_response(&d);
    }
    let filter_type = routes::filter_type(req.uri().query());
    let (message, admits) = match filter_type {
        FilterType::All => (None, Admits::Everything),
        FilterType::Logs => (Some(filter::Message::Log(LogFilter {})), Admits::Logs),
        FilterType::Metrics => (
            Some(filter::Message::Metric(MetricFilter {})),
            Admits::Metrics,
        ),
    };
    let request = SubscriptionRequest {
        shard_id: sub,
        filter: message.map(|m| Filter {
            app_id: String::new(),
            message: Some(m),
        }),
    };
    let kind = Kind {
        admits,
        gauge: shared.metrics.firehoses.clone(),
        egress: shared.metrics.egress_firehose.clone(),
        dropped: shared.metrics.dropped_firehose.clone(),
    };
    upgrade(req, peer, request, kind, shared)
}

/// `/apps/{guid}/stream`.
pub(crate) async fn app_stream(
    req: Request<Incoming>,
    peer: Peer,
    app: String,
    shared: Arc<Shared>,
) -> Response<Body> {
    if let Err(d) = shared.auth.app(req.headers(), &app).await {
        return denial_response(&d);
    }
    let request = SubscriptionRequest {
        shard_id: String::new(),
        filter: Some(Filter {
            app_id: app.clone(),
            message: None,
        }),
    };
    let kind = Kind {
        admits: Admits::App(app),
        gauge: shared.metrics.app_streams.clone(),
        egress: shared.metrics.egress_stream.clone(),
        dropped: shared.metrics.dropped_stream.clone(),
    };
    upgrade(req, peer, request, kind, shared)
}

/// Maps an access decision to the TC's answer (§13.6).
pub(crate) fn denial_response(d: &Denial) -> Response<Body> {
    match d {
        Denial::NoToken => respond::unauthorized("authorization not provided"),
        Denial::InvalidToken => respond::unauthorized("invalid authorization"),
        Denial::InvalidAppId => respond::full(
            StatusCode::UNAUTHORIZED,
            "text/plain; charset=utf-8",
            "You are not authorized. invalid app id",
        ),
        Denial::NotFound => respond::go_error(StatusCode::NOT_FOUND, "Not Found"),
        Denial::Upstream(_) => {
            respond::go_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
    }
}

struct Kind {
    admits: Admits,
    gauge: Gauge,
    egress: Counter,
    dropped: Counter,
}

struct Stats {
    egress: Counter,
    dropped: Counter,
    warnings: Counter,
    /// Envelopes abandoned when a consumer was cut (also in `dropped`).
    abandoned: Counter,
}

impl SessionStats for Stats {
    fn egress(&self, n: u64) {
        self.egress.add(n);
    }
    fn dropped(&self, n: u64) {
        self.dropped.add(n);
    }
    fn warned(&self) {
        self.warnings.inc();
    }
    fn abandoned(&self, n: u64) {
        self.dropped.add(n);
        self.abandoned.add(n);
    }
}

/// After a cut: envelopes the doppler readers still pushed into the ring
/// until they saw the cancellation are lost too. Waits (briefly, bounded)
/// for the readers to let go of the ring so the count is complete.
async fn count_residue(ring: &Arc<Ring<Bytes>>, stats: &Stats) {
    for _ in 0..100 {
        if Arc::strong_count(ring) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let residue = ring.len() as u64 + ring.take_dropped();
    if residue > 0 {
        stats.abandoned(residue);
    }
}

fn header_has_token(req: &Request<Incoming>, name: http::header::HeaderName, token: &str) -> bool {
    req.headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn upgrade(
    mut req: Request<Incoming>,
    peer: Peer,
    request: SubscriptionRequest,
    kind: Kind,
    shared: Arc<Shared>,
) -> Response<Body> {
    let key = req.headers().get(SEC_WEBSOCKET_KEY).cloned();
    let is_upgrade = req.method() == http::Method::GET
        && header_has_token(&req, CONNECTION, "upgrade")
        && header_has_token(&req, UPGRADE, "websocket")
        && req
            .headers()
            .get(SEC_WEBSOCKET_VERSION)
            .is_some_and(|v| v == "13");
    let Some(key) = key.filter(|_| is_upgrade) else {
        return respond::go_error(StatusCode::BAD_REQUEST, "Bad Request");
    };
    let Some(permit) = server::consumer_slot(&req, &shared) else {
        shared.metrics.rejected.inc();
        return respond::go_error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("at connection limit: {}", shared.config.connection_limit),
        );
    };
    if shared.pool.current().is_empty() {
        return respond::go_error(StatusCode::SERVICE_UNAVAILABLE, "no dopplers available");
    }

    let ring = Arc::new(Ring::<Bytes>::new(shared.config.buffer_size));
    let fanin = fanin::start(
        &shared.pool,
        upstream::v1_batch_subscribe(request),
        ring.clone(),
        shared.metrics.upstream(),
        &shared.cancel,
    );
    let destination = server::client_address(req.headers(), peer.addr);
    let forwarded_for = server::forwarded_for(req.headers()).to_owned();
    let url = req.uri().to_string();
    let path = req.uri().path().to_owned();
    let on_upgrade = hyper::upgrade::on(&mut req);
    let config = SessionConfig {
        keepalive: shared.config.keepalive,
        slow_consumer_timeout: shared.config.slow_consumer_timeout,
        max_batch: MAX_BATCH,
    };
    let task_shared = shared.clone();
    let span = tracing::debug_span!("consumer", peer = %peer.addr, url = %url);
    shared.tracker.spawn(
        async move {
            let shared = task_shared;
            let _permit = permit;
            let upgraded = match tokio::time::timeout(Duration::from_secs(10), on_upgrade).await {
                Ok(Ok(u)) => u,
                Ok(Err(e)) => {
                    tracing::debug!(peer = %peer.addr, error = %e, "websocket upgrade failed");
                    return;
                }
                Err(_) => return,
            };
            // Consumers send only control frames: a small read buffer (it grows up to the
            // message limit when needed) instead of tungstenite's 128 KiB per connection.
            let ws_config = WebSocketConfig::default()
                .read_buffer_size(4 * 1024)
                .write_buffer_size(64 * 1024)
                .max_message_size(Some(64 * 1024))
                .max_frame_size(Some(64 * 1024));
            let conn = socket::take(upgraded);
            let ws = WebSocketStream::from_partially_read(
                conn.io,
                conn.read_buf,
                Role::Server,
                Some(ws_config),
            )
            .await;
            kind.gauge.add(1);
            let stats = Stats {
                egress: kind.egress,
                dropped: kind.dropped,
                warnings: shared.metrics.rate_control_warnings.clone(),
                abandoned: shared.metrics.slow_consumer_dropped.clone(),
            };
            let mut warning = Warning::new(kind.admits, destination.clone());
            let end = session::run(
                ws,
                &ring,
                &mut warning,
                config,
                &shared.cancel,
                &stats,
                &conn.socket,
            )
            .await;
            // The socket closes here (FIN behind the farewell), then the
            // doppler subscriptions end.
            drop(conn.socket);
            drop(fanin);
            kind.gauge.add(-1);
            if end == End::SlowConsumer {
                count_residue(&ring, &stats).await;
                shared.metrics.slow_consumer.inc();
                tracing::warn!(
                    "Doppler Proxy: Slow Consumer from {} using {}",
                    peer.addr,
                    url
                );
                if let Some(agent) = &shared.agent {
                    agent.slow_consumer(&peer.addr.to_string(), &forwarded_for, &path);
                }
            }
            tracing::debug!(?end, "consumer ended");
        }
        .instrument(span),
    );

    let mut resp = respond::empty(StatusCode::SWITCHING_PROTOCOLS);
    let h = resp.headers_mut();
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert(SEC_WEBSOCKET_ACCEPT, v);
    }
    resp
}
