//! SSE framing and the per-stream writer (reference §17.3).
//!
//! - data: `data: <protojson EnvelopeBatch>\n\n`, one event per write (the
//!   PyPI client handles one event per read);
//! - heartbeat after `heartbeat_interval` without data:
//!   `event: heartbeat\ndata: <unix seconds>\n\n`;
//! - at `stream_timeout`: `event: closing\ndata: closing due to stream timeout\n\n`,
//!   then the response ends;
//! - after envelopes were lost in the stream's ring: a data event whose batch
//!   is the rate-control warning ([`super::warning`]), ahead of the next data
//!   event and at most one per second; losses in between accumulate, and a
//!   loss with no data after it is reported when the second is up.
//!
//! Every envelope is tag-converged for `use_preferred_tags = true` here, so a
//! doppler that did not converge still yields the gateway's JSON.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use envelope_proto::loggregator_v2::Envelope;
use http::header::{CACHE_CONTROL, CONNECTION, CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use plumbing::ring::Ring;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio::time::Instant;

use crate::respond::Body;
use crate::server::Shared;
use crate::upstream::fanin::FanIn;

use super::warning::{SseWarning, WARNING_INTERVAL};

/// Envelopes per data event (the RLP's batch size).
const BATCH: usize = 100;

/// The bytes of a data event (the writer builds the same bytes in place).
#[cfg(test)]
pub(crate) fn data_event(json: &str) -> Bytes {
    let mut s = String::with_capacity(json.len() + 8);
    s.push_str("data: ");
    s.push_str(json);
    s.push_str("\n\n");
    Bytes::from(s)
}

/// The bytes of a heartbeat event at `unix_secs`.
pub(crate) fn heartbeat_event(unix_secs: u64) -> Bytes {
    Bytes::from(format!("event: heartbeat\ndata: {unix_secs}\n\n"))
}

/// The closing event.
pub(crate) const CLOSING_EVENT: &[u8] = b"event: closing\ndata: closing due to stream timeout\n\n";

/// Starts the writer and returns the streaming response.
pub(crate) fn respond(
    ring: Arc<Ring<Envelope>>,
    fanin: FanIn,
    permit: OwnedSemaphorePermit,
    mut warning: SseWarning,
    shared: Arc<Shared>,
) -> Response<Body> {
    let (tx, rx) = mpsc::channel::<Bytes>(1);
    let task_shared = shared.clone();
    shared.tracker.spawn(async move {
        let shared = task_shared;
        let _permit = permit;
        let _fanin = fanin;
        shared.metrics.v2_read_streams.add(1);
        write_loop(&ring, &tx, &mut warning, &shared).await;
        shared.metrics.v2_read_streams.add(-1);
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        let b = rx.recv().await?;
        Some((Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    let mut resp = Response::new(StreamBody::new(stream).boxed());
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(CONNECTION, HeaderValue::from_static("keep-alive"));
    resp
}

async fn write_loop(
    ring: &Ring<Envelope>,
    tx: &mpsc::Sender<Bytes>,
    warning: &mut SseWarning,
    shared: &Shared,
) {
    let cfg = &shared.config;
    let end_at = Instant::now() + cfg.stream_timeout;
    let mut heartbeat_at = Instant::now() + cfg.heartbeat_interval;
    let mut batch: Vec<Envelope> = Vec::with_capacity(BATCH);
    // Losses not yet reported, and when the next warning may go out.
    let mut pending_lost: u64 = 0;
    let mut warn_at = Instant::now();
    loop {
        tokio::select! {
            biased;
            _ = shared.cancel.cancelled() => return,
            _ = tx.closed() => return,
            _ = tokio::time::sleep_until(end_at) => {
                let _ = send(tx, Bytes::from_static(CLOSING_EVENT), cfg.slow_consumer_timeout).await;
                return;
            }
            _ = ring.ready() => {
                if ring.is_closed() && ring.is_empty() {
                    return;
                }
                batch.clear();
                ring.drain_into(&mut batch, BATCH);
                let lost = ring.take_dropped();
                if lost > 0 {
                    shared.metrics.dropped_v2_read.add(lost);
                    pending_lost += lost;
                }
                if pending_lost > 0 && Instant::now() >= warn_at {
                    if !warn(tx, warning, std::mem::take(&mut pending_lost), shared).await {
                        return;
                    }
                    warn_at = Instant::now() + WARNING_INTERVAL;
                }
                if batch.is_empty() {
                    continue;
                }
                let n = batch.len() as u64;
                for env in &mut batch {
                    envelope_proto::convert::converge_tags(env, true);
                }
                if !send(tx, data_event_of(&batch), cfg.slow_consumer_timeout).await {
                    return;
                }
                shared.metrics.egress_v2_read.add(n);
                heartbeat_at = Instant::now() + cfg.heartbeat_interval;
            }
            // A loss with no data after it is still reported.
            _ = tokio::time::sleep_until(warn_at), if pending_lost > 0 => {
                if !warn(tx, warning, std::mem::take(&mut pending_lost), shared).await {
                    return;
                }
                warn_at = Instant::now() + WARNING_INTERVAL;
                heartbeat_at = Instant::now() + cfg.heartbeat_interval;
            }
            _ = tokio::time::sleep_until(heartbeat_at) => {
                let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
                if !send(tx, heartbeat_event(secs), cfg.slow_consumer_timeout).await {
                    return;
                }
                heartbeat_at = Instant::now() + cfg.heartbeat_interval;
            }
        }
    }
}

/// `data: <EnvelopeBatch JSON>\n\n` of `envelopes` (tags already converged).
fn data_event_of(envelopes: &[Envelope]) -> Bytes {
    let mut event = String::with_capacity(256 * envelopes.len() + 16);
    event.push_str("data: ");
    envelope_proto::json::write_batch_of(&mut event, envelopes.iter());
    event.push_str("\n\n");
    Bytes::from(event)
}

/// Sends the warning for `delta` lost envelopes (nothing when the request's
/// selectors admit neither notice); false when the stream must end.
async fn warn(
    tx: &mpsc::Sender<Bytes>,
    warning: &mut SseWarning,
    delta: u64,
    shared: &Shared,
) -> bool {
    let envelopes = warning.envelopes(delta);
    if envelopes.is_empty() {
        return true;
    }
    shared.metrics.rate_control_warnings.inc();
    send(
        tx,
        data_event_of(&envelopes),
        shared.config.slow_consumer_timeout,
    )
    .await
}

/// Sends one event; false when the client left or made no progress in time.
async fn send(tx: &mpsc::Sender<Bytes>, event: Bytes, limit: Duration) -> bool {
    match tokio::time::timeout(limit, tx.send(event)).await {
        Ok(Ok(())) => true,
        Ok(Err(_)) => false,
        Err(_) => {
            tracing::info!("closing /v2/read stream of a consumer that made no progress");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_event_matches_gateway_fixture() {
        use envelope_proto::loggregator_v2::EnvelopeBatch;
        let raw = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/fixtures/v2/batches.json"
        ));
        let Ok(raw) = raw else {
            panic!("fixtures missing: /work/shared/fixtures/v2/batches.json")
        };
        let doc: serde_json::Value = serde_json::from_str(&raw).expect("fixture json");
        let cases = doc["cases"].as_array().expect("cases");
        assert!(!cases.is_empty());
        for case in cases {
            let Some(b64) = case["batch"]["b64"].as_str() else {
                continue;
            };
            use base64::Engine as _;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .expect("b64");
            let batch: EnvelopeBatch = envelope_proto::v2::decode_batch(&bytes).expect("batch");
            let mut event = String::from("data: ");
            envelope_proto::json::write_batch_of(&mut event, batch.batch.iter());
            event.push_str("\n\n");
            let want = case["gateway_json"]["sse_event"]
                .as_str()
                .expect("sse_event");
            assert_eq!(event, want, "case {}", case["name"]);
        }
    }

    #[test]
    fn framing() {
        assert_eq!(
            &data_event("{\"batch\":[]}")[..],
            b"data: {\"batch\":[]}\n\n"
        );
        assert_eq!(
            &heartbeat_event(1700000000)[..],
            b"event: heartbeat\ndata: 1700000000\n\n"
        );
        assert_eq!(
            CLOSING_EVENT,
            b"event: closing\ndata: closing due to stream timeout\n\n"
        );
    }
}
