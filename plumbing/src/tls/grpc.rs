//! TLS (or plain TCP) transport for tonic servers and clients.
//!
//! - [`serve_incoming`]: an accept loop over a bound [`TcpListener`] yielding [`ServerIo`]
//!   connections for `tonic::transport::Server::serve_with_incoming_shutdown`. TLS handshakes
//!   run in their own tasks with a timeout, so a slow or broken client never stalls other
//!   accepts; failures are logged at debug and counted.
//! - [`channel`]: a lazily connecting tonic [`Channel`] over TCP + rustls (ALPN `h2`), verifying
//!   a fixed server name (e.g. `doppler`), with the HTTP/2 windows and keepalive settings the
//!   pipeline needs (performance-anchors §5.2, reference §5.5).
//! - [`server_builder`]: a tonic server builder with the matching server-side settings.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};
use tonic::transport::{Channel, Endpoint, Server};
use tower::layer::util::{Identity, Stack};

use super::TlsError;
use crate::metrics::Counter;

/// Largest gRPC message accepted by servers and clients (reference §5.5): 10 MiB.
pub const MAX_MESSAGE_SIZE: usize = 10 * 1024 * 1024;
/// HTTP/2 initial stream window (performance-anchors §5.2): 8 MiB.
pub const STREAM_WINDOW: u32 = 8 * 1024 * 1024;
/// HTTP/2 initial connection window (performance-anchors §5.2): 16 MiB.
pub const CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;

/// One accepted server connection: TLS or plain TCP.
#[derive(Debug)]
pub enum ServerIo {
    /// Plain TCP (no TLS configured).
    Plain(TcpStream),
    /// TLS over TCP (handshake completed).
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl ServerIo {
    /// The TCP stream underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            ServerIo::Plain(s) => s,
            ServerIo::Tls(s) => s.get_ref().0,
        }
    }

    /// The negotiated ALPN protocol, if any.
    pub fn alpn(&self) -> Option<&[u8]> {
        match self {
            ServerIo::Plain(_) => None,
            ServerIo::Tls(s) => s.get_ref().1.alpn_protocol(),
        }
    }
}

impl Connected for ServerIo {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.tcp().connect_info()
    }
}

impl AsyncRead for ServerIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerIo::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ServerIo::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ServerIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ServerIo::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ServerIo::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerIo::Plain(s) => Pin::new(s).poll_flush(cx),
            ServerIo::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerIo::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ServerIo::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ServerIo::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            ServerIo::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ServerIo::Plain(s) => s.is_write_vectored(),
            ServerIo::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// Options for [`serve_incoming_with`].
#[derive(Debug, Clone)]
pub struct IncomingOptions {
    /// Longest time a TLS handshake may take before the connection is dropped.
    pub handshake_timeout: Duration,
    /// Counted once per failed or timed-out handshake.
    pub handshake_failures: Counter,
    /// Connections whose handshake finished but that the server has not yet taken.
    pub backlog: usize,
}

impl Default for IncomingOptions {
    fn default() -> Self {
        IncomingOptions {
            handshake_timeout: Duration::from_secs(10),
            handshake_failures: Counter::detached(),
            backlog: 128,
        }
    }
}

/// Accepts connections on `listener` (TLS when `tls` is given) with default options.
///
/// Use with `Server::builder()....serve_with_incoming_shutdown(serve_incoming(l, tls), signal)`.
pub fn serve_incoming(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
) -> impl Stream<Item = Result<ServerIo, io::Error>> + Send + 'static {
    serve_incoming_with(listener, tls, IncomingOptions::default())
}

/// Accepts connections on `listener` (TLS when `tls` is given).
///
/// A background task owns the listener; it ends (closing the listener) when the returned
/// stream is dropped. Accept errors such as `EMFILE` are logged and retried after a short
/// pause; they are never yielded, so the server keeps running.
pub fn serve_incoming_with(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    options: IncomingOptions,
) -> impl Stream<Item = Result<ServerIo, io::Error>> + Send + 'static {
    let (tx, rx) = mpsc::channel(options.backlog.max(1));
    tokio::spawn(accept_loop(
        listener,
        tls.map(TlsAcceptor::from),
        options,
        tx,
    ));
    ReceiverStream::new(rx)
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    options: IncomingOptions,
    tx: mpsc::Sender<Result<ServerIo, io::Error>>,
) {
    loop {
        let accepted = tokio::select! {
            _ = tx.closed() => return,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "grpc listener accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "set TCP_NODELAY failed");
        }
        match &acceptor {
            None => {
                if tx.send(Ok(ServerIo::Plain(stream))).await.is_err() {
                    return;
                }
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                let timeout = options.handshake_timeout;
                let failures = options.handshake_failures.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send(Ok(ServerIo::Tls(Box::new(tls)))).await;
                        }
                        Ok(Err(e)) => {
                            failures.inc();
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        }
                        Err(_) => {
                            failures.inc();
                            tracing::debug!(%peer, ?timeout, "TLS handshake timed out");
                        }
                    }
                });
            }
        }
    }
}

/// Client channel settings.
#[derive(Debug, Clone)]
pub struct ChannelOptions {
    /// HTTP/2 keepalive ping interval (`None` = no pings). Agent: 15 s (reference §5.5).
    pub keepalive_interval: Option<Duration>,
    /// How long to wait for a keepalive ping ack. Agent 15 s, TC/RLP 20 s.
    pub keepalive_timeout: Duration,
    /// Send keepalive pings even without active streams.
    pub keepalive_while_idle: bool,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// HTTP/2 initial stream window.
    pub stream_window: u32,
    /// HTTP/2 initial connection window.
    pub connection_window: u32,
}

impl Default for ChannelOptions {
    fn default() -> Self {
        ChannelOptions {
            keepalive_interval: Some(Duration::from_secs(15)),
            keepalive_timeout: Duration::from_secs(15),
            keepalive_while_idle: true,
            connect_timeout: Duration::from_secs(5),
            stream_window: STREAM_WINDOW,
            connection_window: CONNECTION_WINDOW,
        }
    }
}

impl ChannelOptions {
    /// Agent → doppler settings: keepalive 15 s / timeout 15 s.
    pub fn agent() -> Self {
        ChannelOptions::default()
    }

    /// Traffic controller / RLP → doppler settings: keepalive 15 s / timeout 20 s.
    pub fn traffic_controller() -> Self {
        ChannelOptions {
            keepalive_timeout: Duration::from_secs(20),
            ..ChannelOptions::default()
        }
    }
}

/// A lazily connecting channel to `addr` (`host:port`), over TLS when `tls` is given
/// (`(config, server name to verify)`), with default [`ChannelOptions`].
pub fn channel(addr: &str, tls: Option<(Arc<ClientConfig>, &str)>) -> Result<Channel, TlsError> {
    channel_with(addr, tls, &ChannelOptions::default())
}

/// A lazily connecting channel to `addr` (`host:port`, or a `http://host:port` URI).
///
/// With TLS, ALPN is forced to `h2` and the server certificate must be valid for
/// `server name` (e.g. `doppler`), whatever host `addr` names.
pub fn channel_with(
    addr: &str,
    tls: Option<(Arc<ClientConfig>, &str)>,
    options: &ChannelOptions,
) -> Result<Channel, TlsError> {
    let uri = if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    };
    let invalid = |message: String| TlsError::InvalidEndpoint {
        addr: addr.to_owned(),
        message,
    };
    let mut endpoint = Endpoint::from_shared(uri)
        .map_err(|e| invalid(e.to_string()))?
        .tcp_nodelay(true)
        .connect_timeout(options.connect_timeout)
        .initial_stream_window_size(options.stream_window)
        .initial_connection_window_size(options.connection_window)
        .keep_alive_timeout(options.keepalive_timeout)
        .keep_alive_while_idle(options.keepalive_while_idle);
    if let Some(interval) = options.keepalive_interval {
        endpoint = endpoint.http2_keep_alive_interval(interval);
    }
    let authority = endpoint
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .ok_or_else(|| invalid("missing host:port".to_owned()))?;
    if endpoint.uri().port_u16().is_none() {
        return Err(invalid("missing port".to_owned()));
    }
    let Some((config, server_name)) = tls else {
        return Ok(endpoint.connect_lazy());
    };
    let server_name = ServerName::try_from(server_name.to_owned())
        .map_err(|_| TlsError::InvalidServerName(server_name.to_owned()))?;
    let mut config = (*config).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = TlsConnector::from(Arc::new(config));
    let service = tower::service_fn(move |_uri: http::Uri| {
        let connector = connector.clone();
        let server_name = server_name.clone();
        let authority = authority.clone();
        async move {
            let tcp = crate::dial::tcp(authority.as_str()).await?;
            let tls = connector.connect(server_name, tcp).await?;
            Ok::<_, io::Error>(TokioIo::new(tls))
        }
    });
    Ok(endpoint.connect_with_connector_lazy(service))
}

/// A tonic server builder with the pipeline's server settings: TCP_NODELAY, 8/16 MiB HTTP/2
/// windows, HTTP/2 keepalive pings every 30 s (timeout 20 s), and requests without a gRPC
/// `content-type` refused as grpc-go refuses them ([`GrpcOnlyLayer`]).
///
/// Remember [`MAX_MESSAGE_SIZE`] on each service (`max_decoding_message_size`).
pub fn server_builder() -> Server<Stack<GrpcOnlyLayer, Identity>> {
    Server::builder()
        .tcp_nodelay(true)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .layer(GrpcOnlyLayer)
}

/// Refuses HTTP/2 requests whose `content-type` is not `application/grpc` (alone or followed
/// by `+` or `;`), as grpc-go does: HTTP **415**, `content-type: application/grpc`,
/// `grpc-status: 3` (InvalidArgument) and `grpc-message: invalid gRPC request content-type
/// "<value>"`, before any service sees the request. tonic alone would serve such a request
/// like a valid call.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcOnlyLayer;

impl<S> tower::Layer<S> for GrpcOnlyLayer {
    type Service = GrpcOnly<S>;

    fn layer(&self, inner: S) -> GrpcOnly<S> {
        GrpcOnly { inner }
    }
}

/// The service [`GrpcOnlyLayer`] wraps around a server's routes.
#[derive(Debug, Clone)]
pub struct GrpcOnly<S> {
    inner: S,
}

/// Whether `content-type` names gRPC (`application/grpc`, `application/grpc+proto`, ...).
pub fn is_grpc_content_type(value: &[u8]) -> bool {
    const GRPC: &[u8] = b"application/grpc";
    value.len() >= GRPC.len()
        && value[..GRPC.len()].eq_ignore_ascii_case(GRPC)
        && matches!(value.get(GRPC.len()), None | Some(b'+') | Some(b';'))
}

impl<S, B, R> tower::Service<http::Request<B>> for GrpcOnly<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    R: Default,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future =
        futures::future::Either<S::Future, std::future::Ready<Result<Self::Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let content_type = req.headers().get(http::header::CONTENT_TYPE);
        if content_type.is_some_and(|v| is_grpc_content_type(v.as_bytes())) {
            return futures::future::Either::Left(self.inner.call(req));
        }
        let shown = content_type
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        let message = format!("invalid gRPC request content-type {shown:?}");
        let mut resp = http::Response::new(R::default());
        *resp.status_mut() = http::StatusCode::UNSUPPORTED_MEDIA_TYPE;
        let h = resp.headers_mut();
        h.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/grpc"),
        );
        h.insert("grpc-status", http::HeaderValue::from_static("3"));
        if let Ok(v) = http::HeaderValue::from_str(&grpc_message_encode(&message)) {
            h.insert("grpc-message", v);
        }
        futures::future::Either::Right(std::future::ready(Ok(resp)))
    }
}

/// Percent-encodes a `grpc-message` value (gRPC over HTTP/2: bytes outside `0x20..=0x7e` and
/// `%` itself).
fn grpc_message_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
