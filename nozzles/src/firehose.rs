//! Firehose consumers: the traffic controller's v1 WebSocket firehose
//! ([`websocket`]), the dopplers' v2 gRPC egress ([`grpc`]) and the RLP
//! gateway's `/v2/read` SSE stream ([`sse`]).
//!
//! Every consumer reads in its own task and pushes into a bounded
//! drop-oldest [`Ring`] (a [`Feed`]), so a slow processor never stalls the
//! socket (which would get the nozzle disconnected as a slow consumer);
//! the processor learns about losses as "missed N" (log + metric). Load is
//! shared by subscription id (shard id): every nozzle instance with the same
//! id gets a share of the stream. Connections are re-established with capped
//! exponential backoff and full jitter. In-stream rate-control warnings
//! (LGR "messages dropped" logs, `TruncatingBuffer.DroppedMessages`
//! counters) and close codes 1000 / 1008 are counted.

pub mod grpc;
pub mod sse;
pub mod websocket;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use envelope_proto::events;
use envelope_proto::loggregator_v2 as v2;
use plumbing::backoff::Backoff;
use plumbing::metrics::{Counter, Registry};
use plumbing::ring::Ring;
use tokio_util::sync::CancellationToken;

/// Default feed capacity (envelopes).
pub const DEFAULT_BUFFER: usize = 10_000;

/// Reconnect backoff: 500 ms doubling to 1 min (noaa's range), full jitter.
pub fn reconnect_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(500), Duration::from_secs(60))
}

/// What [`reconnect_loop`] does once a session has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reconnect {
    /// Wait the next backoff delay first.
    AfterDelay,
    /// Reconnect at once (the server ended the stream on purpose).
    Now,
}

/// How one session (connecting, then reading until the stream ends) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ended {
    /// Envelopes arrived during the session: the backoff starts over.
    pub(crate) received: bool,
    /// What to do next.
    pub(crate) next: Reconnect,
}

/// Runs `session` again and again until `cancel` fires: every attempt after
/// the first is counted in `metrics.reconnects`, and sessions are separated by
/// [`reconnect_backoff`] delays unless one asks for [`Reconnect::Now`].
pub(crate) async fn reconnect_loop<F, Fut>(
    metrics: &FirehoseMetrics,
    cancel: &CancellationToken,
    mut session: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Ended>,
{
    let mut backoff = reconnect_backoff();
    let mut first = true;
    loop {
        if !first {
            metrics.reconnects.inc();
        }
        first = false;
        let ended = tokio::select! {
            _ = cancel.cancelled() => return,
            e = session() => e,
        };
        if ended.received {
            backoff.reset();
        }
        if ended.next == Reconnect::Now {
            continue;
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

/// Counters every consumer reports.
#[derive(Debug, Clone)]
pub struct FirehoseMetrics {
    /// Envelopes received from the stream.
    pub received: Counter,
    /// Envelopes overwritten in the feed before processing ("missed").
    pub missed: Counter,
    /// Frames / events that could not be decoded.
    pub decode_errors: Counter,
    /// Connection attempts after the first.
    pub reconnects: Counter,
    /// In-stream rate-control warnings (LGR drop logs, TruncatingBuffer counters).
    pub rate_warnings: Counter,
    /// Messages dropped upstream as announced by TruncatingBuffer counters (sum of deltas).
    pub upstream_dropped: Counter,
    /// WebSocket closes with 1008 (keepalive lost).
    pub close_policy: Counter,
    /// WebSocket closes with 1000 mid-stream (slow consumer).
    pub close_normal: Counter,
}

impl FirehoseMetrics {
    /// Registers the handles with label `consumer` = the nozzle's name.
    pub fn new(registry: &Registry, consumer: &str) -> Self {
        let l = [("consumer", consumer)];
        let c = |n: &str, h: &str| registry.counter(n, h, &l);
        Self {
            received: c("firehose_received", "Envelopes received from the firehose"),
            missed: c(
                "firehose_missed",
                "Envelopes dropped by the nozzle's own buffer",
            ),
            decode_errors: c("firehose_decode_errors", "Undecodable frames"),
            reconnects: c("firehose_reconnects", "Firehose reconnects"),
            rate_warnings: c(
                "firehose_rate_warnings",
                "In-stream rate-control warnings received",
            ),
            upstream_dropped: c(
                "firehose_upstream_dropped",
                "Messages dropped upstream as announced in-stream",
            ),
            close_policy: registry.counter(
                "firehose_closes",
                "WebSocket closes by code",
                &[("consumer", consumer), ("code", "1008")],
            ),
            close_normal: registry.counter(
                "firehose_closes",
                "WebSocket closes by code",
                &[("consumer", consumer), ("code", "1000")],
            ),
        }
    }
}

/// The read side of a consumer: a bounded drop-oldest ring.
#[derive(Debug)]
pub struct Feed<T> {
    ring: Arc<Ring<T>>,
    metrics: FirehoseMetrics,
}

impl<T> Clone for Feed<T> {
    fn clone(&self) -> Self {
        Self {
            ring: self.ring.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

impl<T> Feed<T> {
    /// A feed holding at most `capacity` envelopes.
    pub fn new(capacity: usize, metrics: FirehoseMetrics) -> Self {
        Self {
            ring: Arc::new(Ring::new(capacity)),
            metrics,
        }
    }

    /// Producer side: adds an envelope, overwriting the oldest when full.
    pub fn push(&self, item: T) {
        self.ring.push(item);
    }

    /// Waits for at least one envelope (or close), then takes up to `max`.
    /// Losses since the previous call are logged as "missed N" and counted.
    /// Returns 0 only when the feed is closed and empty.
    pub async fn next_batch(&self, out: &mut Vec<T>, max: usize) -> usize {
        loop {
            let missed = self.ring.take_dropped();
            if missed > 0 {
                self.metrics.missed.add(missed);
                tracing::warn!(
                    "missed {missed} envelopes: nozzle processing is slower than the firehose"
                );
            }
            let n = self.ring.drain_into(out, max);
            if n > 0 {
                return n;
            }
            if self.ring.is_closed() {
                return 0;
            }
            self.ring.ready().await;
        }
    }

    /// Closes the feed (the reader gets 0 once it is empty).
    pub fn close(&self) {
        self.ring.close();
    }

    /// The metrics.
    pub fn metrics(&self) -> &FirehoseMetrics {
        &self.metrics
    }
}

/// Text prefix of the historical TruncatingBuffer LGR notice.
const LGR_DROP_PREFIXES: [&str; 2] = [
    "Log message output is too high.",
    "Log message output too high.",
];

/// Counts a v1 rate-control warning if `env` is one.
pub fn note_v1_warning(env: &events::Envelope, m: &FirehoseMetrics) {
    if let Some(c) = &env.counter_event
        && c.name.as_deref() == Some("TruncatingBuffer.DroppedMessages")
    {
        m.rate_warnings.inc();
        m.upstream_dropped.add(c.delta.unwrap_or(0));
        tracing::warn!(
            origin = env.origin.as_deref().unwrap_or(""),
            delta = c.delta.unwrap_or(0),
            total = c.total.unwrap_or(0),
            "upstream dropped messages for this subscription (TruncatingBuffer)"
        );
    }
    if let Some(l) = &env.log_message
        && l.source_type.as_deref() == Some("LGR")
        && l.message.as_ref().is_some_and(|msg| {
            let text = String::from_utf8_lossy(msg);
            LGR_DROP_PREFIXES.iter().any(|p| text.starts_with(p)) || text.contains("messages lost")
        })
    {
        m.rate_warnings.inc();
        tracing::warn!(
            "upstream rate-control warning: {}",
            String::from_utf8_lossy(l.message.as_deref().unwrap_or(&[]))
        );
    }
}

/// Counts a v2 rate-control warning if `env` is one.
pub fn note_v2_warning(env: &v2::Envelope, m: &FirehoseMetrics) {
    match &env.message {
        Some(v2::envelope::Message::Counter(c)) if c.name == "TruncatingBuffer.DroppedMessages" => {
            m.rate_warnings.inc();
            m.upstream_dropped.add(c.delta);
        }
        Some(v2::envelope::Message::Log(l))
            if env.tags.get("source_type").map(String::as_str) == Some("LGR") =>
        {
            let text = String::from_utf8_lossy(&l.payload);
            if LGR_DROP_PREFIXES.iter().any(|p| text.starts_with(p))
                || text.contains("messages lost")
            {
                m.rate_warnings.inc();
            }
        }
        _ => {}
    }
}
