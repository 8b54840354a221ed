//! The v1 firehose over the traffic controller's WebSocket
//! (`/firehose/{subscription}?filter-type=logs|metrics`, reference §12):
//! binary frames carry one dropsonde envelope each; pings are answered by
//! tungstenite while the loop keeps reading; closes 1000 / 1008 are counted;
//! the connection is re-established with capped backoff and jitter.

use std::sync::Arc;

use envelope_proto::events;
use futures::StreamExt as _;
use plumbing::shutdown::Shutdown;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;

use super::{Ended, Feed, FirehoseMetrics, Reconnect, note_v1_warning, reconnect_loop};

/// Which envelopes the traffic controller sends (`filter-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterType {
    /// Everything.
    All,
    /// `filter-type=logs`.
    Logs,
    /// `filter-type=metrics`.
    Metrics,
}

/// Where and how to connect.
#[derive(Clone)]
pub struct WsConfig {
    /// `ws://host:port` or `wss://host:port` of the traffic controller.
    pub url: String,
    /// Subscription (shard) id: instances with the same id share the firehose.
    pub subscription_id: String,
    /// Type filter.
    pub filter: FilterType,
    /// `Authorization` header value, sent as given (e.g. `bearer <token>`).
    pub authorization: String,
    /// TLS for `wss://` (verifying the traffic controller).
    pub tls: Option<Arc<ClientConfig>>,
}

impl std::fmt::Debug for WsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsConfig")
            .field("url", &self.url)
            .field("subscription_id", &self.subscription_id)
            .field("filter", &self.filter)
            .finish()
    }
}

impl WsConfig {
    /// A connection to `url` without authorization or TLS.
    pub fn new(url: &str, subscription_id: &str, filter: FilterType) -> Self {
        Self {
            url: url.into(),
            subscription_id: subscription_id.into(),
            filter,
            authorization: String::new(),
            tls: None,
        }
    }

    /// The firehose URL (noaa always sends a query separator).
    pub fn firehose_url(&self) -> String {
        let q = match self.filter {
            FilterType::All => "",
            FilterType::Logs => "filter-type=logs",
            FilterType::Metrics => "filter-type=metrics",
        };
        format!(
            "{}/firehose/{}?{q}",
            self.url.trim_end_matches('/'),
            self.subscription_id
        )
    }
}

/// Starts [`run`] as a `shutdown` task reading into a new feed of
/// `capacity` envelopes; returns the feed and the token that stops the reader.
pub fn spawn(
    config: WsConfig,
    capacity: usize,
    metrics: FirehoseMetrics,
    shutdown: &Shutdown,
) -> (Feed<events::Envelope>, CancellationToken) {
    let feed = Feed::new(capacity, metrics);
    let cancel = shutdown.token().child_token();
    shutdown.spawn(run(config, feed.clone(), cancel.clone()));
    (feed, cancel)
}

/// How a session ended.
#[derive(Debug)]
enum End {
    Closed(Option<u16>),
    Error(String),
}

/// Reads the firehose into `feed` until `cancel` fires, reconnecting forever.
pub async fn run(config: WsConfig, feed: Feed<events::Envelope>, cancel: CancellationToken) {
    reconnect_loop(feed.metrics(), &cancel, || async {
        let mut received = false;
        match connect_and_read(&config, &feed, &mut received).await {
            End::Closed(Some(1008)) => {
                feed.metrics().close_policy.inc();
                tracing::warn!("firehose closed with 1008: keepalive lost");
            }
            End::Closed(Some(1000)) => {
                feed.metrics().close_normal.inc();
                tracing::warn!(
                    "firehose closed with 1000: disconnected as a slow consumer or upstream ended"
                );
            }
            End::Closed(code) => tracing::warn!(?code, "firehose closed"),
            End::Error(e) => tracing::warn!(error = %e, "firehose connection failed"),
        }
        Ended {
            received,
            next: Reconnect::AfterDelay,
        }
    })
    .await;
    feed.close();
}

async fn connect_and_read(
    config: &WsConfig,
    feed: &Feed<events::Envelope>,
    received: &mut bool,
) -> End {
    let url = config.firehose_url();
    let mut request = match url.as_str().into_client_request() {
        Ok(r) => r,
        Err(e) => return End::Error(format!("invalid firehose url {url}: {e}")),
    };
    if !config.authorization.is_empty()
        && let Ok(v) = config.authorization.parse()
    {
        request.headers_mut().insert(http::header::AUTHORIZATION, v);
    }
    let origin = config.url.replacen("ws", "http", 1);
    if let Ok(v) = origin.parse() {
        request.headers_mut().insert(http::header::ORIGIN, v);
    }
    let Some(host) = request
        .uri()
        .host()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned())
    else {
        return End::Error(format!("no host in {url}"));
    };
    let secure = request.uri().scheme_str() == Some("wss");
    let port = request
        .uri()
        .port_u16()
        .unwrap_or(if secure { 443 } else { 80 });
    let tcp = match plumbing::dial::tcp((host.as_str(), port)).await {
        Ok(t) => t,
        Err(e) => return End::Error(format!("connect {host}:{port}: {e}")),
    };
    if secure {
        let Some(tls) = config.tls.clone() else {
            return End::Error("wss:// needs a TLS configuration".into());
        };
        let stream = match crate::tlsutil::connect(tls, &host, tcp).await {
            Ok(s) => s,
            Err(e) => return End::Error(e),
        };
        match tokio_tungstenite::client_async(request, stream).await {
            Ok((ws, _)) => read(ws, feed, received).await,
            Err(e) => End::Error(format!("websocket handshake: {e}")),
        }
    } else {
        match tokio_tungstenite::client_async(request, tcp).await {
            Ok((ws, _)) => read(ws, feed, received).await,
            Err(e) => End::Error(format!("websocket handshake: {e}")),
        }
    }
}

async fn read<S: AsyncRead + AsyncWrite + Unpin>(
    mut ws: WebSocketStream<S>,
    feed: &Feed<events::Envelope>,
    received: &mut bool,
) -> End {
    tracing::info!("connected to the firehose");
    let m = feed.metrics().clone();
    while let Some(msg) = ws.next().await {
        match msg {
            Ok(Message::Binary(b)) => match envelope_proto::v1::decode(&b) {
                Ok(env) => {
                    *received = true;
                    m.received.inc();
                    note_v1_warning(&env, &m);
                    feed.push(env);
                }
                Err(e) => {
                    m.decode_errors.inc();
                    tracing::debug!(error = %e, "undecodable firehose frame");
                }
            },
            // Pongs are queued by tungstenite and flushed on the next read.
            Ok(Message::Ping(_))
            | Ok(Message::Pong(_))
            | Ok(Message::Text(_))
            | Ok(Message::Frame(_)) => {}
            Ok(Message::Close(frame)) => {
                return End::Closed(
                    frame
                        .map(|f| u16::from(f.code))
                        .or(Some(u16::from(CloseCode::Status))),
                );
            }
            Err(e) => return End::Error(e.to_string()),
        }
    }
    End::Closed(None)
}
