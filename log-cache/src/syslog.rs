//! The RFC 5424 syslog ingest server: log-cache-release's `syslog-server`
//! (`src/internal/syslog/server.go`, `src/cmd/syslog-server/config.go`),
//! built into the node. An upstream syslog agent's aggregate drain (or any
//! RFC 5424 sender, e.g. rsyslog `omfwd`) feeds it unchanged.
//!
//! - TCP, optionally TLS ([`serve`] takes a rustls server config; it asks
//!   for client certificates when the config does, i.e. mutual TLS when
//!   built by `plumbing::tls` with a CA).
//! - Framing: octet counting (`LEN SP MSG`) by default, non-transparent
//!   (LF-terminated) when [`SyslogConfig::non_transparent_framing`]
//!   (upstream `SYSLOG_NON_TRANSPARENT_FRAMING=true`); see `syslog/framing.rs`.
//! - Each message becomes one envelope ([`parse`], mapping in [`rfc5424`]),
//!   encoded once into a per-connection scratch buffer and handed to the
//!   [`Sink`].
//!
//! # Limits and hostile input
//!
//! | Input | Outcome |
//! |---|---|
//! | a message that is not RFC 5424 or does not map to an envelope, inside a well-formed frame | counted in `invalid_ingress`, skipped; the connection goes on (upstream's octet-counting parser closes the connection on an RFC 5424 syntax error; the frame boundary is intact, so we keep reading) |
//! | a length prefix that is not `NONZERO-DIGIT *DIGIT SP` | connection closed, `closed{reason="framing"}` |
//! | a frame (or, non-transparent, a line) longer than [`SyslogConfig::max_message_length`] (default 65 KiB, `SYSLOG_MAX_MESSAGE_LENGTH`) | closed as soon as the length (or the line) exceeds it, before its body is buffered, `closed{reason="too_long"}` |
//! | no complete message for [`SyslogConfig::idle_timeout`] (default 2 min, `SYSLOG_IDLE_TIMEOUT`): an idle client, a length that claims more than is sent, a trickle | closed, `closed{reason="idle"}`; the deadline restarts after each message, as upstream's read deadline does |
//! | the peer closes inside a frame | `closed{reason="truncated"}` |
//! | more than [`SyslogConfig::max_connections`] open connections | the new one is closed at once, `connections_refused` |
//! | a TLS handshake that fails or takes longer than 10 s (or the idle timeout if shorter) | closed, `closed{reason="tls"}` |
//!
//! A connection's read buffer starts at 8 KiB, grows only as far as the
//! frame being read needs (at most the maximum message length plus its
//! length prefix) and shrinks back when it empties, so memory is bounded by
//! `max_connections` × `max_message_length`, not by what clients send.
//! Connections are independent tasks: one cut never affects another. The
//! sink never blocks (the store evicts), so there is no queue here.
//! Warnings are rate-limited per cause (`plumbing::limited_log`).
//!
//! # Metrics
//!
//! Upstream's syslog-server counters are `ingress` and `invalid_ingress`;
//! here they carry the `log_cache_syslog_` prefix of the node's registry.
//!
//! | Name | Kind | Meaning |
//! |---|---|---|
//! | `log_cache_syslog_ingress` | counter | messages turned into envelopes and stored (upstream `ingress`) |
//! | `log_cache_syslog_invalid_ingress` | counter | messages that could not be converted (upstream `invalid_ingress`) |
//! | `log_cache_syslog_connections` | gauge | open syslog connections (ours) |
//! | `log_cache_syslog_connections_refused` | counter | connections closed at accept: over `max_connections` (ours) |
//! | `log_cache_syslog_connections_closed{reason=framing\|too_long\|idle\|truncated\|tls\|io}` | counter | connections the server cut, by cause (ours) |

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use envelope_proto::loggregator_v2::Envelope;
use plumbing::limited_log::Limiter;
use plumbing::metrics::{Counter, Gauge, Registry};
use prost::Message as _;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use crate::ingest::Sink;

mod framing;
pub mod rfc5424;

pub use rfc5424::ParseError;

use framing::{FrameBuf, FrameError, Framing};

/// Upstream's default maximum message length (65 KiB: "Diego should never
/// send logs bigger than 64Kib").
pub const DEFAULT_MAX_MESSAGE_LENGTH: usize = 65 * 1024;
/// Upstream's default idle timeout.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Default cap on open connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Longest a TLS handshake may take.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = plumbing::listen::DEFAULT_TLS_HANDSHAKE_TIMEOUT;

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop
/// does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);
/// One warning per cause per this interval.
const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// Settings of the syslog server; [`Default`] is upstream's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogConfig {
    /// Longest message (frame body) accepted; a longer frame closes the
    /// connection (`SYSLOG_MAX_MESSAGE_LENGTH`, default 65 KiB).
    pub max_message_length: usize,
    /// A connection with no complete message for this long is closed
    /// (`SYSLOG_IDLE_TIMEOUT`, default 2 min).
    pub idle_timeout: Duration,
    /// LF-terminated messages instead of octet counting
    /// (`SYSLOG_NON_TRANSPARENT_FRAMING`, default false).
    pub non_transparent_framing: bool,
    /// Open connections at most; one more is closed at accept (default 1024).
    pub max_connections: usize,
}

impl Default for SyslogConfig {
    fn default() -> Self {
        Self {
            max_message_length: DEFAULT_MAX_MESSAGE_LENGTH,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            non_transparent_framing: false,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// The syslog server's metrics (names in the module doc).
#[derive(Debug, Clone)]
pub struct SyslogMetrics {
    /// `log_cache_syslog_ingress`.
    pub ingress: Counter,
    /// `log_cache_syslog_invalid_ingress`.
    pub invalid_ingress: Counter,
    /// `log_cache_syslog_connections`.
    pub connections: Gauge,
    /// `log_cache_syslog_connections_refused`.
    pub refused: Counter,
    closed_framing: Counter,
    closed_too_long: Counter,
    closed_idle: Counter,
    closed_truncated: Counter,
    closed_tls: Counter,
    closed_io: Counter,
}

impl SyslogMetrics {
    /// Registers the metrics in `registry`.
    pub fn new(registry: &Registry) -> Self {
        let closed = |reason: &str| {
            registry.counter(
                "log_cache_syslog_connections_closed",
                "Syslog connections closed by the server, by cause.",
                &[("reason", reason)],
            )
        };
        Self {
            ingress: registry.counter(
                "log_cache_syslog_ingress",
                "Total syslog messages ingressed successfully.",
                &[],
            ),
            invalid_ingress: registry.counter(
                "log_cache_syslog_invalid_ingress",
                "Total number of syslog messages unable to be converted to valid envelopes.",
                &[],
            ),
            connections: registry.gauge(
                "log_cache_syslog_connections",
                "Open syslog connections.",
                &[],
            ),
            refused: registry.counter(
                "log_cache_syslog_connections_refused",
                "Syslog connections closed at accept because max_connections were open.",
                &[],
            ),
            closed_framing: closed("framing"),
            closed_too_long: closed("too_long"),
            closed_idle: closed("idle"),
            closed_truncated: closed("truncated"),
            closed_tls: closed("tls"),
            closed_io: closed("io"),
        }
    }
}

/// Parses one RFC 5424 message (the frame body, without its length prefix
/// or LF) into an envelope, as upstream maps it (see [`rfc5424`]).
/// `received_at` (ns since the epoch) is used when TIMESTAMP is `-`.
pub fn parse(message: &[u8], received_at: i64) -> Result<Envelope, ParseError> {
    rfc5424::parse(message, received_at)
}

/// What every connection task shares.
struct Shared {
    config: SyslogConfig,
    framing: Framing,
    sink: Arc<dyn Sink>,
    metrics: SyslogMetrics,
    warn: Limiter,
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The peer closed between messages.
    Eof,
    /// Shutdown.
    Cancelled,
    Framing,
    TooLong,
    Idle,
    Truncated,
    Io,
}

/// Accepts syslog connections on `listener` until `cancel`, then closes
/// every open connection and returns once they are gone.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    config: SyslogConfig,
    sink: Arc<dyn Sink>,
    metrics: SyslogMetrics,
    cancel: CancellationToken,
) {
    let framing = if config.non_transparent_framing {
        Framing::NonTransparent
    } else {
        Framing::OctetCounting
    };
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let shared = Arc::new(Shared {
        config,
        framing,
        sink,
        metrics,
        warn: Limiter::new(WARN_INTERVAL),
    });
    let acceptor = tls.map(TlsAcceptor::from);
    let tracker = TaskTracker::new();
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, tls = acceptor.is_some(), ?framing, "syslog server listening");
    }
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => break,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                shared.warn.warn("syslog-accept", |suppressed| {
                    tracing::warn!(error = %e, suppressed, "syslog accept failed");
                });
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => continue,
                }
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            shared.metrics.refused.inc();
            shared.warn.warn("syslog-refused", |suppressed| {
                tracing::warn!(
                    %peer,
                    max = shared.config.max_connections,
                    suppressed,
                    "syslog connection refused: too many open connections"
                );
            });
            drop(stream);
            continue;
        };
        let shared = shared.clone();
        let acceptor = acceptor.clone();
        let cancel = cancel.clone();
        let span = tracing::debug_span!("syslog_connection", %peer);
        tracker.spawn(
            async move {
                let _slot = slot;
                shared.metrics.connections.add(1);
                connection(stream, peer, acceptor, &shared, &cancel).await;
                shared.metrics.connections.add(-1);
            }
            .instrument(span),
        );
    }
    tracker.close();
    tracker.wait().await;
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: Option<TlsAcceptor>,
    shared: &Shared,
    cancel: &CancellationToken,
) {
    let end = match acceptor {
        None => read_messages(stream, shared, cancel).await,
        Some(acceptor) => {
            let limit = TLS_HANDSHAKE_TIMEOUT.min(shared.config.idle_timeout);
            let handshake = tokio::select! {
                () = cancel.cancelled() => return,
                r = tokio::time::timeout(limit, acceptor.accept(stream)) => r,
            };
            match handshake {
                Ok(Ok(tls)) => read_messages(tls, shared, cancel).await,
                Ok(Err(e)) => {
                    shared.metrics.closed_tls.inc();
                    shared.warn.warn("syslog-tls", |suppressed| {
                        tracing::warn!(%peer, error = %e, suppressed, "syslog TLS handshake failed");
                    });
                    return;
                }
                Err(_) => {
                    shared.metrics.closed_tls.inc();
                    shared.warn.warn("syslog-tls", |suppressed| {
                        tracing::warn!(%peer, suppressed, "syslog TLS handshake timed out");
                    });
                    return;
                }
            }
        }
    };
    let m = &shared.metrics;
    let (counter, cause) = match end {
        End::Eof | End::Cancelled => {
            tracing::debug!(?end, "syslog connection ended");
            return;
        }
        End::Framing => (&m.closed_framing, "syslog-framing"),
        End::TooLong => (&m.closed_too_long, "syslog-too-long"),
        End::Idle => (&m.closed_idle, "syslog-idle"),
        End::Truncated => (&m.closed_truncated, "syslog-truncated"),
        End::Io => (&m.closed_io, "syslog-io"),
    };
    counter.inc();
    shared.warn.warn(cause, |suppressed| {
        tracing::warn!(%peer, ?end, suppressed, "syslog connection closed");
    });
}

/// Reads frames until the stream ends or breaks a rule.
async fn read_messages<S: AsyncRead + Unpin>(
    mut io: S,
    shared: &Shared,
    cancel: &CancellationToken,
) -> End {
    let mut frames = FrameBuf::new(shared.framing, shared.config.max_message_length);
    let mut scratch = Vec::new();
    let mut deadline = Instant::now() + shared.config.idle_timeout;
    loop {
        let read = tokio::select! {
            () = cancel.cancelled() => return End::Cancelled,
            r = tokio::time::timeout_at(deadline, io.read(frames.space())) => r,
        };
        let n = match read {
            Err(_) => return End::Idle,
            Ok(Err(_)) => return End::Io,
            Ok(Ok(0)) if frames.pending() == 0 => return End::Eof,
            Ok(Ok(0)) => return End::Truncated,
            Ok(Ok(n)) => n,
        };
        frames.filled(n);
        let received_at = envelope_proto::timestamp::now();
        let mut any = false;
        loop {
            match frames.next_frame() {
                Ok(Some(frame)) => {
                    any = true;
                    ingest(frame, received_at, shared, &mut scratch);
                }
                Ok(None) => break,
                Err(FrameError::BadLength) => return End::Framing,
                Err(FrameError::TooLong) => return End::TooLong,
            }
        }
        if any {
            deadline = Instant::now() + shared.config.idle_timeout;
            if scratch.capacity() > framing::INITIAL_CAPACITY * 4 {
                scratch = Vec::new();
            }
        }
    }
}

fn ingest(frame: &[u8], received_at: i64, shared: &Shared, scratch: &mut Vec<u8>) {
    if shared.framing == Framing::NonTransparent && frame.is_empty() {
        return;
    }
    match rfc5424::parse(frame, received_at) {
        Ok(env) => {
            scratch.clear();
            // Encoding into a Vec cannot run out of room.
            if env.encode(scratch).is_ok() {
                shared.sink.put(scratch);
                shared.metrics.ingress.inc();
            }
        }
        Err(e) => {
            shared.metrics.invalid_ingress.inc();
            shared.warn.warn("syslog-invalid", |suppressed| {
                tracing::warn!(error = %e, suppressed, "unable to convert syslog message to envelope");
            });
        }
    }
}
