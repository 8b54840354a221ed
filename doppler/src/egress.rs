//! Egress services: `loggregator.v2.Egress` (BatchedReceiver; Receiver is
//! Unimplemented as upstream) over the raw codec, and `plumbing.Doppler`
//! (v1 Subscribe, BatchSubscribe, and the historical RecentLogs and
//! ContainerMetrics served from the caches).
//!
//! Every request becomes one subscription with its own drop-oldest ring of
//! `egress_buffer_size` entries ([`crate::subscriptions`]); its response
//! stream is an [`outlet::Outlet`]. v2 batches are built with
//! [`envelope_proto::batch::encode`] from the shared encoded envelopes (no
//! re-encode).
//!
//! Message size: every message doppler sends (v2 `EnvelopeBatch`, v1
//! `BatchResponse` and `Response`, `RecentLogsResponse`,
//! `ContainerMetricsResponse`) stays within the egress message limit
//! ([`crate::Config::egress_message_limit`]: the smaller of doppler's own
//! `max_message_size` and the peers' 10 MiB receive limit), protobuf framing
//! included. A [`Batcher`] closes a batch before the next envelope would
//! exceed it; an envelope that cannot fit even alone is dropped, counted in
//! `dropped{direction="egress"}`, logged (rate-limited) and announced
//! in-stream. RecentLogs answers with as many of the newest logs as fit.
//!
//! Selector handling follows doppler (reference §5.2): only `selectors` are
//! used; `legacy_selector` is ignored (the RLP converts it before calling
//! doppler); selectors without a message are ignored; a request with no
//! usable selector is accepted and receives nothing.
//!
//! Layout: [`outlet`] (the sending side of a subscription), [`warning`]
//! (in-stream drop warnings).

pub mod outlet;
pub mod warning;

use std::pin::Pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use envelope_proto::events::envelope::EventType;
use envelope_proto::loggregator_v2::{EgressBatchRequest, selector::Message as SelMsg};
use envelope_proto::plumbing_v1::{
    BatchResponse, ContainerMetricsRequest, ContainerMetricsResponse, RecentLogsRequest,
    RecentLogsResponse, Response as V1Response, SubscriptionRequest, doppler_server::Doppler,
    filter::Message as FilterMsg,
};
use envelope_proto::raw::egress_server::Egress;
use envelope_proto::{batch, convert};
use futures::Stream;
use parking_lot::Mutex;
use plumbing::limited_log::Limiter;
use plumbing::metrics::Counter;
use plumbing::shutdown::Shutdown;
use prost::Message;
use tonic::{Request, Response, Status};

use crate::cache::{AppCache, Stored};
use crate::metrics::Metrics;
use crate::router::key::V1Class;
use crate::router::table::{Selector, SelectorKind, SubscriptionKind, TagForm};
use crate::subscriptions::{Registry, Sink};
use outlet::Outlet;
use warning::{WarnTarget, Warnings};

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Shared state of the egress services.
#[derive(Debug, Clone)]
pub struct EgressService {
    registry: Arc<Registry>,
    cache: Arc<Mutex<AppCache>>,
    metrics: Metrics,
    shutdown: Shutdown,
    egress_buffer_size: usize,
    /// Largest message sent, in encoded bytes.
    message_limit: usize,
}

impl EgressService {
    /// Egress over `registry` and `cache`; no message sent is larger than
    /// `message_limit` bytes.
    pub fn new(
        registry: Arc<Registry>,
        cache: Arc<Mutex<AppCache>>,
        metrics: Metrics,
        shutdown: Shutdown,
        egress_buffer_size: usize,
        message_limit: usize,
    ) -> Self {
        Self {
            registry,
            cache,
            metrics,
            shutdown,
            egress_buffer_size,
            message_limit,
        }
    }

    fn subscribe(
        &self,
        shard_id: String,
        kind: SubscriptionKind,
        target: WarnTarget,
        peer: String,
        proto: &'static str,
    ) -> Batcher {
        let sink = Arc::new(Sink::new(self.egress_buffer_size));
        let guard = self.registry.add(shard_id.clone(), kind, Arc::clone(&sink));
        tracing::debug!(subscription = guard.id(), %peer, shard_id, proto, "subscribed");
        let outlet = Outlet::new(
            sink,
            guard,
            Warnings::new(target, peer),
            self.metrics.clone(),
            self.shutdown.clone(),
            shard_id.clone(),
            proto,
        );
        Batcher {
            outlet,
            items: Vec::new(),
            limit: self.message_limit,
            dropped: self.metrics.dropped_egress.clone(),
            shard_id,
            proto,
            log: Limiter::new(warning::INTERVAL),
        }
    }
}

/// Cuts an [`Outlet`]'s batches into messages of at most `limit` encoded
/// bytes (framing per [`batch::entry_len`]), keeping their order. An
/// envelope that does not fit alone is dropped: counted in
/// `dropped{direction="egress"}`, announced in-stream
/// ([`Outlet::record_lost`]) and logged at most once per
/// [`warning::INTERVAL`] per subscription.
#[derive(Debug)]
pub struct Batcher {
    outlet: Outlet,
    /// What is left of the outlet's last batch.
    items: Vec<Bytes>,
    limit: usize,
    dropped: Counter,
    shard_id: String,
    proto: &'static str,
    /// Oversized drops: one log line per interval.
    log: Limiter,
}

impl Batcher {
    /// The next message's envelopes (never empty); `None` when the
    /// subscription ends.
    pub async fn next(&mut self) -> Option<Vec<Bytes>> {
        loop {
            if self.items.is_empty() {
                self.items = self.outlet.next_batch().await?;
            }
            let n = batch::fitting(&self.items, self.limit);
            if n == 0 {
                let too_large = self.items.remove(0);
                self.drop_oversized(too_large.len());
                continue;
            }
            return Some(if n == self.items.len() {
                std::mem::take(&mut self.items)
            } else {
                self.items.drain(..n).collect()
            });
        }
    }

    fn drop_oversized(&mut self, len: usize) {
        self.dropped.inc();
        self.outlet.record_lost(1);
        let (outlet, limit, proto, shard_id) =
            (&self.outlet, self.limit, self.proto, &self.shard_id);
        self.log.warn("oversized", |suppressed| {
            tracing::warn!(
                subscription = outlet.id(),
                last_size = len,
                limit,
                "Dropped {} envelopes too large for one message ({proto} subscription) ShardID: {shard_id}",
                suppressed + 1,
            )
        });
    }
}

fn peer_of<T>(req: &Request<T>) -> String {
    req.remote_addr()
        .map_or_else(|| "unknown".to_owned(), |a| a.to_string())
}

/// Converts the request's `selectors` into routing selectors, dropping those
/// without a message.
pub fn selectors_of(req: &EgressBatchRequest) -> Vec<Selector> {
    req.selectors
        .iter()
        .filter_map(|s| {
            let kind = match s.message.as_ref()? {
                SelMsg::Log(_) => SelectorKind::Log,
                SelMsg::Counter(c) => SelectorKind::Counter(c.name.clone()),
                SelMsg::Gauge(g) if g.names.is_empty() => SelectorKind::Gauge(None),
                SelMsg::Gauge(g) => {
                    let mut names: Vec<&str> = g.names.iter().map(String::as_str).collect();
                    names.sort_unstable();
                    names.dedup();
                    SelectorKind::Gauge(Some(names.iter().fold(0u64, |h, n| {
                        h.wrapping_add(envelope_proto::view::crc64(n.as_bytes()))
                    })))
                }
                SelMsg::Timer(_) => SelectorKind::Timer,
                SelMsg::Event(_) => SelectorKind::Event,
            };
            Some(Selector {
                source_id: s.source_id.clone(),
                kind,
            })
        })
        .collect()
}

#[tonic::async_trait]
impl Egress for EgressService {
    type ReceiverStream = BoxStream<Bytes>;
    type BatchedReceiverStream = BoxStream<Bytes>;

    async fn receiver(
        &self,
        _request: Request<Bytes>,
    ) -> Result<Response<Self::ReceiverStream>, Status> {
        Err(Status::unimplemented("use BatchedReceiver instead"))
    }

    async fn batched_receiver(
        &self,
        request: Request<Bytes>,
    ) -> Result<Response<Self::BatchedReceiverStream>, Status> {
        let peer = peer_of(&request);
        let req = EgressBatchRequest::decode(request.into_inner())
            .map_err(|e| Status::invalid_argument(format!("invalid EgressBatchRequest: {e}")))?;
        let selectors = selectors_of(&req);
        let form = if req.use_preferred_tags {
            TagForm::Preferred
        } else {
            TagForm::Deprecated
        };
        let outlet = self.subscribe(
            req.shard_id.clone(),
            SubscriptionKind::V2 {
                selectors: selectors.clone(),
                deterministic_name: req.deterministic_name.clone(),
                form,
            },
            WarnTarget::V2 { selectors, form },
            peer,
            "v2",
        );
        let stream = futures::stream::unfold(outlet, |mut o| async move {
            let items = o.next().await?;
            let mut out = BytesMut::with_capacity(batch::encoded_len(&items));
            batch::encode(&items, &mut out);
            Some((Ok(out.freeze()), o))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

fn v1_target(req: &SubscriptionRequest) -> (String, Option<V1Class>) {
    let filter = req.filter.as_ref();
    let app = filter.map(|f| f.app_id.clone()).unwrap_or_default();
    let class = filter.and_then(|f| f.message.as_ref()).map(|m| match m {
        FilterMsg::Log(_) => V1Class::Log,
        FilterMsg::Metric(_) => V1Class::Metric,
    });
    (app, class)
}

impl EgressService {
    fn v1_outlet(&self, request: Request<SubscriptionRequest>) -> Batcher {
        let peer = peer_of(&request);
        let req = request.into_inner();
        let (app_id, class) = v1_target(&req);
        self.subscribe(
            req.shard_id,
            SubscriptionKind::V1 {
                app_id: app_id.clone(),
                class,
            },
            WarnTarget::V1 { app_id, class },
            peer,
            "v1",
        )
    }
}

/// Cached entries as marshalled v1 envelopes of `want` type (v2 entries are
/// converted here, at read time), as many of the newest as fit in one
/// response of at most `limit` bytes, oldest first.
///
/// Walks from the newest entry back, so entries that cannot be sent are
/// never converted. The walk stops at the first envelope that no longer
/// fits; an envelope that would not fit even alone is skipped. Returns the
/// payloads and how many envelopes were left out.
fn newest_v1_fitting(entries: &[Stored], want: EventType, limit: usize) -> (Vec<Bytes>, usize) {
    let want = want as i32;
    let mut out = Vec::new();
    let mut size = 0usize;
    let mut left_out = 0usize;
    let mut full = false;
    let mut take = |b: Bytes, out: &mut Vec<Bytes>| {
        let len = batch::entry_len(b.len());
        if full || len > limit {
            left_out += 1;
        } else if size + len > limit {
            full = true;
            left_out += 1;
        } else {
            size += len;
            out.push(b);
        }
    };
    for s in entries.iter().rev() {
        match s {
            Stored::V1(b) => {
                if envelope_proto::v1::decode(b).is_ok_and(|e| e.event_type == Some(want)) {
                    take(b.clone(), &mut out);
                }
            }
            Stored::V2(b) => {
                let Ok(env) = envelope_proto::v2::decode(b) else {
                    continue;
                };
                for v1 in convert::to_v1(&env).iter().rev() {
                    if v1.event_type == Some(want)
                        && let Ok(bytes) = envelope_proto::v1::encode(v1)
                    {
                        take(Bytes::from(bytes), &mut out);
                    }
                }
            }
        }
    }
    out.reverse();
    (out, left_out)
}

fn log_left_out(rpc: &'static str, app: &str, sent: usize, left_out: usize, limit: usize) {
    if left_out > 0 {
        tracing::debug!(
            rpc,
            app,
            sent,
            left_out,
            limit,
            "answer limited to the newest envelopes that fit in one message"
        );
    }
}

#[tonic::async_trait]
impl Doppler for EgressService {
    type SubscribeStream = BoxStream<V1Response>;
    type BatchSubscribeStream = BoxStream<BatchResponse>;

    async fn subscribe(
        &self,
        request: Request<SubscriptionRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let outlet = self.v1_outlet(request);
        let stream = futures::stream::unfold(
            (outlet, std::collections::VecDeque::<Bytes>::new()),
            |(mut o, mut pending)| async move {
                if pending.is_empty() {
                    pending.extend(o.next().await?);
                }
                let payload = pending.pop_front()?;
                Some((Ok(V1Response { payload }), (o, pending)))
            },
        );
        Ok(Response::new(Box::pin(stream)))
    }

    async fn batch_subscribe(
        &self,
        request: Request<SubscriptionRequest>,
    ) -> Result<Response<Self::BatchSubscribeStream>, Status> {
        let outlet = self.v1_outlet(request);
        let stream = futures::stream::unfold(outlet, |mut o| async move {
            let payload = o.next().await?;
            Some((Ok(BatchResponse { payload }), o))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn container_metrics(
        &self,
        request: Request<ContainerMetricsRequest>,
    ) -> Result<Response<ContainerMetricsResponse>, Status> {
        let app = request.into_inner().app_id;
        let entries = self
            .cache
            .lock()
            .container_metrics(&app, envelope_proto::timestamp::now());
        let (payload, left_out) =
            newest_v1_fitting(&entries, EventType::ContainerMetric, self.message_limit);
        log_left_out(
            "ContainerMetrics",
            &app,
            payload.len(),
            left_out,
            self.message_limit,
        );
        Ok(Response::new(ContainerMetricsResponse { payload }))
    }

    async fn recent_logs(
        &self,
        request: Request<RecentLogsRequest>,
    ) -> Result<Response<RecentLogsResponse>, Status> {
        let app = request.into_inner().app_id;
        let entries = self.cache.lock().recent_logs(&app);
        let (payload, left_out) =
            newest_v1_fitting(&entries, EventType::LogMessage, self.message_limit);
        log_left_out(
            "RecentLogs",
            &app,
            payload.len(),
            left_out,
            self.message_limit,
        );
        Ok(Response::new(RecentLogsResponse { payload }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use envelope_proto::events;

    fn v1_log(text: &str) -> Stored {
        let env = events::Envelope {
            origin: Some("o".into()),
            event_type: Some(EventType::LogMessage as i32),
            timestamp: Some(1),
            log_message: Some(events::LogMessage {
                message: Some(Bytes::copy_from_slice(text.as_bytes())),
                message_type: Some(1),
                timestamp: Some(1),
                app_id: Some("app".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        Stored::V1(Bytes::from(envelope_proto::v1::encode(&env).unwrap()))
    }

    fn text(b: &Bytes) -> String {
        let e = envelope_proto::v1::decode(b).unwrap();
        String::from_utf8(e.log_message.unwrap().message.unwrap().to_vec()).unwrap()
    }

    #[test]
    fn recent_logs_answer_keeps_the_newest_that_fit_oldest_first() {
        let entries: Vec<Stored> = (0..10)
            .map(|i| v1_log(&format!("{i}{}", "x".repeat(99))))
            .collect();
        let one = batch::entry_len(entries[0].len());
        let (all, left) = newest_v1_fitting(&entries, EventType::LogMessage, 10 * one);
        assert_eq!((all.len(), left), (10, 0));
        let (got, left) = newest_v1_fitting(&entries, EventType::LogMessage, 4 * one + one / 2);
        assert_eq!(left, 6);
        let first: Vec<char> = got
            .iter()
            .map(|b| text(b).chars().next().unwrap())
            .collect();
        assert_eq!(first, ['6', '7', '8', '9']);
        assert!(batch::encoded_len(&got) <= 4 * one + one / 2);
        // The newest is too large to be sent at all: skipped, older ones fit.
        let mut with_huge = entries.clone();
        with_huge.push(v1_log(&"h".repeat(10 * one)));
        let (got, left) = newest_v1_fitting(&with_huge, EventType::LogMessage, 2 * one);
        assert_eq!(left, 9);
        assert_eq!(got.len(), 2);
        assert!(text(&got[1]).starts_with('9'));
        // Other event types are not answered.
        let (got, _) = newest_v1_fitting(&entries, EventType::ContainerMetric, 10 * one);
        assert!(got.is_empty());
    }
}
