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
}

impl EgressService {
    /// Egress over `registry` and `cache`.
    pub fn new(
        registry: Arc<Registry>,
        cache: Arc<Mutex<AppCache>>,
        metrics: Metrics,
        shutdown: Shutdown,
        egress_buffer_size: usize,
    ) -> Self {
        Self {
            registry,
            cache,
            metrics,
            shutdown,
            egress_buffer_size,
        }
    }

    fn subscribe(
        &self,
        shard_id: String,
        kind: SubscriptionKind,
        target: WarnTarget,
        peer: String,
        proto: &'static str,
    ) -> Outlet {
        let sink = Arc::new(Sink::new(self.egress_buffer_size));
        let guard = self.registry.add(shard_id.clone(), kind, Arc::clone(&sink));
        tracing::debug!(subscription = guard.id(), %peer, shard_id, proto, "subscribed");
        Outlet::new(
            sink,
            guard,
            Warnings::new(target, peer),
            self.metrics.clone(),
            self.shutdown.clone(),
            shard_id,
            proto,
        )
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
            let items = o.next_batch().await?;
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
    fn v1_outlet(&self, request: Request<SubscriptionRequest>) -> Outlet {
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
/// converted here, at read time).
fn to_v1_payloads(entries: Vec<Stored>, want: EventType) -> Vec<Bytes> {
    let want = want as i32;
    let mut out = Vec::with_capacity(entries.len());
    for s in entries {
        match s {
            Stored::V1(b) => {
                if envelope_proto::v1::decode(&b).is_ok_and(|e| e.event_type == Some(want)) {
                    out.push(b);
                }
            }
            Stored::V2(b) => {
                let Ok(env) = envelope_proto::v2::decode(&b) else {
                    continue;
                };
                for v1 in convert::to_v1(&env) {
                    if v1.event_type == Some(want)
                        && let Ok(bytes) = envelope_proto::v1::encode(&v1)
                    {
                        out.push(Bytes::from(bytes));
                    }
                }
            }
        }
    }
    out
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
                    pending.extend(o.next_batch().await?);
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
            let payload = o.next_batch().await?;
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
        Ok(Response::new(ContainerMetricsResponse {
            payload: to_v1_payloads(entries, EventType::ContainerMetric),
        }))
    }

    async fn recent_logs(
        &self,
        request: Request<RecentLogsRequest>,
    ) -> Result<Response<RecentLogsResponse>, Status> {
        let app = request.into_inner().app_id;
        let entries = self.cache.lock().recent_logs(&app);
        Ok(Response::new(RecentLogsResponse {
            payload: to_v1_payloads(entries, EventType::LogMessage),
        }))
    }
}
