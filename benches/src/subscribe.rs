//! Subscribers that consume what the system under test delivers and record, per subscriber, how
//! many load envelopes arrived, their latency (from the scheduled send time carried in the
//! envelope timestamp) and the rate-control warnings received in-stream.
//!
//! Three consumer protocols: v2 gRPC `Egress/BatchedReceiver`, the v1 WebSocket firehose
//! (`/firehose/{id}` on a traffic controller) and the RLP gateway's `/v2/read` SSE stream.

use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use prost::Message as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Most WebSocket messages classified before they are recorded.
const WS_RECORD_BATCH: usize = 256;

/// How a subscriber reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Pace {
    /// Reads as fast as it can.
    Fast,
    /// Connects, then stops reading (a stalled consumer).
    Stalled,
    /// Sleeps this long after every received message (a slow consumer).
    Slow(Duration),
}

/// Counters and the latency histogram of one subscriber.
#[derive(Debug)]
pub struct SubStats {
    /// Load envelopes received (warnings excluded).
    pub received: AtomicU64,
    /// Rate-control warning log messages received (`LGR`).
    pub warning_logs: AtomicU64,
    /// `TruncatingBuffer.DroppedMessages` counters received.
    pub warning_counters: AtomicU64,
    /// Sum of the `delta` of received `TruncatingBuffer.DroppedMessages` counters.
    pub announced_drops: AtomicU64,
    /// Whether the server closed the stream.
    pub closed: AtomicBool,
    /// Latency in microseconds.
    pub latency_us: Mutex<Histogram<u64>>,
}

impl SubStats {
    fn new() -> Arc<Self> {
        let hist = Histogram::new_with_bounds(1, 60_000_000, 3)
            .expect("static histogram bounds are valid");
        Arc::new(Self {
            received: AtomicU64::new(0),
            warning_logs: AtomicU64::new(0),
            warning_counters: AtomicU64::new(0),
            announced_drops: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            latency_us: Mutex::new(hist),
        })
    }

    /// Envelopes received so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}

/// What one received envelope was, as far as the benchmark cares.
enum Seen {
    Load(i64),
    WarningLog,
    WarningCounter(u64),
    Other,
}

/// Records a batch of observations with one lock and one clock read.
fn record(stats: &SubStats, seen: impl Iterator<Item = Seen>) {
    let now = envelope_proto::timestamp::now();
    let mut hist = stats.latency_us.lock();
    for s in seen {
        match s {
            Seen::Load(ts) => {
                stats.received.fetch_add(1, Ordering::Relaxed);
                let us = ((now - ts).max(1) / 1000).max(1) as u64;
                hist.saturating_record(us);
            }
            Seen::WarningLog => {
                stats.warning_logs.fetch_add(1, Ordering::Relaxed);
            }
            Seen::WarningCounter(delta) => {
                stats.warning_counters.fetch_add(1, Ordering::Relaxed);
                stats.announced_drops.fetch_add(delta, Ordering::Relaxed);
            }
            Seen::Other => {}
        }
    }
}

fn classify_v2(bytes: &[u8]) -> Seen {
    use envelope_proto::view::{EnvelopeView, Kind};
    let Ok(view) = EnvelopeView::parse(bytes) else {
        return Seen::Other;
    };
    match view.kind() {
        Kind::Log if view.tag("source_type") == Some("LGR") => Seen::WarningLog,
        Kind::Counter if view.counter_name() == crate::WARNING_COUNTER => {
            // The delta is not exposed by the view; decode the (rare) warning fully.
            let delta = envelope_proto::loggregator_v2::Envelope::decode(bytes)
                .ok()
                .and_then(|e| match e.message {
                    Some(envelope_proto::loggregator_v2::envelope::Message::Counter(c)) => {
                        Some(c.delta)
                    }
                    _ => None,
                })
                .unwrap_or(0);
            Seen::WarningCounter(delta)
        }
        Kind::None => Seen::Other,
        _ if view.tag("origin") == Some(crate::LOAD_ORIGIN) => Seen::Load(view.timestamp()),
        _ => Seen::Other,
    }
}

fn classify_v1(bytes: &[u8]) -> Seen {
    // A wire peek, not a decode: the harness shares the machine with the system under test.
    let Ok(env) = envelope_proto::v1::peek(bytes) else {
        return Seen::Other;
    };
    if env.log_source_type == Some(b"LGR") {
        return Seen::WarningLog;
    }
    if env.counter_name == Some(crate::WARNING_COUNTER.as_bytes()) {
        return Seen::WarningCounter(env.counter_delta.unwrap_or(0));
    }
    match env.timestamp {
        Some(ts) if env.origin == Some(crate::LOAD_ORIGIN.as_bytes()) => Seen::Load(ts),
        _ => Seen::Other,
    }
}

async fn pace(p: Pace, stop: &tokio_util::sync::CancellationToken) {
    match p {
        Pace::Fast => {}
        Pace::Slow(d) => tokio::time::sleep(d).await,
        Pace::Stalled => stop.cancelled().await,
    }
}

/// A running subscriber.
#[derive(Debug)]
pub struct Subscriber {
    /// Shared statistics.
    pub stats: Arc<SubStats>,
    task: tokio::task::JoinHandle<()>,
}

impl Subscriber {
    /// Stops the subscriber and returns its statistics.
    pub async fn finish(self, stop: &tokio_util::sync::CancellationToken) -> Arc<SubStats> {
        stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(2), self.task).await;
        self.stats
    }
}

/// Subscribes to v2 `BatchedReceiver` on `channel` with every envelope type selected.
pub fn grpc_v2(
    channel: tonic::transport::Channel,
    shard_id: &str,
    source_id: &str,
    pace_mode: Pace,
    stop: tokio_util::sync::CancellationToken,
) -> Subscriber {
    use envelope_proto::loggregator_v2::{
        CounterSelector, EgressBatchRequest, EventSelector, GaugeSelector, LogSelector, Selector,
        TimerSelector, selector::Message as Sel,
    };
    let stats = SubStats::new();
    let st = stats.clone();
    let mk = |m: Sel| Selector {
        source_id: source_id.to_owned(),
        message: Some(m),
    };
    let request = EgressBatchRequest {
        shard_id: shard_id.to_owned(),
        legacy_selector: None,
        use_preferred_tags: true,
        selectors: vec![
            mk(Sel::Log(LogSelector {})),
            mk(Sel::Counter(CounterSelector {
                name: String::new(),
            })),
            mk(Sel::Gauge(GaugeSelector { names: Vec::new() })),
            mk(Sel::Timer(TimerSelector {})),
            mk(Sel::Event(EventSelector {})),
        ],
        deterministic_name: String::new(),
    };
    let task = tokio::spawn(async move {
        let mut client = envelope_proto::raw::egress_client::EgressClient::new(channel)
            .max_decoding_message_size(16 << 20);
        let response = tokio::select! {
            r = client.batched_receiver(Bytes::from(request.encode_to_vec())) => r,
            () = stop.cancelled() => return,
        };
        let mut stream = match response {
            Ok(r) => r.into_inner(),
            Err(status) => {
                tracing::warn!(%status, "v2 subscription refused");
                st.closed.store(true, Ordering::Relaxed);
                return;
            }
        };
        loop {
            let next = tokio::select! {
                n = stream.message() => n,
                () = stop.cancelled() => return,
            };
            match next {
                Ok(Some(batch)) => {
                    if let Ok(split) = envelope_proto::batch::split(&batch) {
                        record(&st, split.map(|e| classify_v2(&e)));
                    }
                    pace(pace_mode, &stop).await;
                }
                Ok(None) | Err(_) => {
                    st.closed.store(true, Ordering::Relaxed);
                    return;
                }
            }
        }
    });
    Subscriber { stats, task }
}

/// Subscribes to a traffic controller's WebSocket endpoint (`ws://host:port/firehose/<id>` or an
/// app stream URL).
pub fn websocket(
    url: String,
    pace_mode: Pace,
    stop: tokio_util::sync::CancellationToken,
) -> Subscriber {
    use tokio_tungstenite::tungstenite::Message as Ws;
    let stats = SubStats::new();
    let st = stats.clone();
    let task = tokio::spawn(async move {
        let connected = tokio::select! {
            c = tokio_tungstenite::connect_async(url.as_str()) => c,
            () = stop.cancelled() => return,
        };
        let (mut ws, _) = match connected {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, %url, "websocket subscription failed");
                st.closed.store(true, Ordering::Relaxed);
                return;
            }
        };
        // Messages already received are classified into `seen` and recorded together (one lock,
        // one clock read) when the socket has nothing more ready, or every WS_RECORD_BATCH.
        let mut seen = Vec::with_capacity(WS_RECORD_BATCH);
        loop {
            let ready = match ws.next().now_or_never() {
                Some(n) if seen.len() < WS_RECORD_BATCH => Some(n),
                early => {
                    record(&st, seen.drain(..));
                    early
                }
            };
            let next = match ready {
                Some(n) => n,
                None => tokio::select! {
                    n = ws.next() => n,
                    () = stop.cancelled() => return,
                },
            };
            if stop.is_cancelled() {
                record(&st, seen.drain(..));
                return;
            }
            match next {
                Some(Ok(Ws::Binary(b))) => {
                    seen.push(classify_v1(&b));
                    if pace_mode != Pace::Fast {
                        record(&st, seen.drain(..));
                        pace(pace_mode, &stop).await;
                    }
                }
                Some(Ok(Ws::Close(_))) | None | Some(Err(_)) => {
                    record(&st, seen.drain(..));
                    st.closed.store(true, Ordering::Relaxed);
                    return;
                }
                Some(Ok(_)) => {}
            }
        }
    });
    Subscriber { stats, task }
}

/// Subscribes to an RLP-gateway-compatible `/v2/read` SSE endpoint (`http://host:port/v2/read?...`).
pub fn sse(url: String, pace_mode: Pace, stop: tokio_util::sync::CancellationToken) -> Subscriber {
    let stats = SubStats::new();
    let st = stats.clone();
    let task = tokio::spawn(async move {
        if let Err(e) = sse_loop(&url, &st, pace_mode, &stop).await {
            tracing::warn!(error = %e, %url, "sse subscription ended");
        }
        st.closed.store(true, Ordering::Relaxed);
    });
    Subscriber { stats, task }
}

async fn sse_loop(
    url: &str,
    st: &SubStats,
    pace_mode: Pace,
    stop: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    use http_body_util::BodyExt;
    let uri: hyper::Uri = url.parse()?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<Bytes>>();
    let req = hyper::Request::get(uri)
        .header("accept", "text/event-stream")
        .body(http_body_util::Empty::new())?;
    let resp = client.request(req).await?;
    anyhow::ensure!(resp.status().is_success(), "status {}", resp.status());
    let mut body = resp.into_body();
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let frame = tokio::select! {
            f = body.frame() => f,
            () = stop.cancelled() => return Ok(()),
        };
        let Some(frame) = frame else { return Ok(()) };
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        pending.extend_from_slice(&data);
        while let Some(end) = find_event_end(&pending) {
            let event: Vec<u8> = pending.drain(..end + 2).collect();
            for line in event.split(|&b| b == b'\n') {
                if let Some(json) = line.strip_prefix(b"data: ") {
                    record_json_batch(st, json);
                }
            }
            pace(pace_mode, stop).await;
        }
    }
}

fn find_event_end(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\n\n")
}

fn record_json_batch(st: &SubStats, json: &[u8]) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(json) else {
        return; // heartbeat data lines are plain numbers and closing is text: not batches
    };
    let Some(batch) = value.get("batch").and_then(|b| b.as_array()) else {
        return;
    };
    record(
        st,
        batch.iter().map(|e| {
            let lgr = e
                .pointer("/tags/source_type")
                .and_then(|v| v.as_str())
                .is_some_and(|s| s == "LGR");
            if e.get("log").is_some() && lgr {
                return Seen::WarningLog;
            }
            if let Some(c) = e.get("counter")
                && c.get("name").and_then(|n| n.as_str()) == Some(crate::WARNING_COUNTER)
            {
                let delta = c
                    .get("delta")
                    .and_then(|d| d.as_str())
                    .and_then(|d| d.parse().ok())
                    .unwrap_or(0);
                return Seen::WarningCounter(delta);
            }
            if e.pointer("/tags/origin").and_then(|v| v.as_str()) != Some(crate::LOAD_ORIGIN) {
                return Seen::Other;
            }
            e.get("timestamp")
                .and_then(|t| t.as_str())
                .and_then(|t| t.parse::<i64>().ok())
                .map_or(Seen::Other, Seen::Load)
        }),
    );
}
