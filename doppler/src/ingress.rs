//! Ingress services: `loggregator.v2.Ingress` (Sender, BatchSender; Send is
//! Unimplemented as upstream) over the raw codec, and
//! `plumbing.DopplerIngestor/Pusher` (v1).
//!
//! Each stream prepares its envelopes ([`crate::envelope`]) on its own task
//! and pushes them into the shared ingress ring, which never blocks: when the
//! router falls behind, the oldest queued envelopes are overwritten and counted
//! by the router as `dropped{direction="ingress"}`. Envelopes (or batches) that
//! do not parse are counted in `invalid_envelopes` and skipped; the stream
//! stays up. Messages above the size limit fail the stream with the gRPC
//! error tonic produces (`OutOfRange`).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use envelope_proto::batch;
use envelope_proto::plumbing_v1::EnvelopeData;
use envelope_proto::raw::doppler_ingestor_server::DopplerIngestor;
use envelope_proto::raw::ingress_server::Ingress;
use parking_lot::Mutex;
use plumbing::ring::Ring;
use plumbing::shutdown::Shutdown;
use plumbing::turns::Turns;
use prost::Message;
use tonic::{Request, Response, Status, Streaming};

use crate::cache::AppCache;
use crate::envelope::{self, Ingested, PrepStats};
use crate::metrics::Metrics;
use crate::subscriptions::Needs;

/// Envelopes an ingress stream handles before it lets the router and the
/// subscription streams on its worker run ([`Turns`]): one routing pass,
/// [`crate::router::ROUTE_BATCH`].
const YIELD_EVERY: usize = crate::router::ROUTE_BATCH;

/// Shared state of the ingress services.
#[derive(Debug, Clone)]
pub struct IngressService {
    ring: Arc<Ring<Ingested>>,
    needs: Arc<Needs>,
    metrics: Metrics,
    /// Ingress streams stop reading when shutdown starts.
    shutdown: Shutdown,
    /// Recent-logs / container-metrics cache, fed here (in parallel across
    /// ingress streams, one lock per received message) to keep the single
    /// router task lean.
    cache: Arc<Mutex<AppCache>>,
    cm_hashes: [u64; 2],
}

impl IngressService {
    /// Ingress feeding `ring`.
    pub fn new(
        ring: Arc<Ring<Ingested>>,
        needs: Arc<Needs>,
        metrics: Metrics,
        shutdown: Shutdown,
        cache: Arc<Mutex<AppCache>>,
    ) -> Self {
        Self {
            ring,
            needs,
            metrics,
            shutdown,
            cache,
            cm_hashes: crate::cache::container_metric_hashes(),
        }
    }

    /// Caches and enqueues prepared envelopes (never blocks: the ring drops
    /// its oldest entries when full).
    fn enqueue(&self, items: &mut Vec<Ingested>) {
        if items.is_empty() {
            return;
        }
        {
            let mut cache = self.cache.lock();
            cache.begin(Instant::now());
            for item in items.iter() {
                cache.record(item, &self.cm_hashes);
            }
        }
        for item in items.drain(..) {
            self.ring.push(item);
        }
    }

    /// Accepts one encoded v2 batch; returns (accepted, invalid).
    pub fn accept_batch(&self, bytes: &Bytes) -> (u64, u64) {
        let mut stats = PrepStats::default();
        let mut bad = 0u64;
        let mut items = Vec::new();
        match batch::split(bytes) {
            Ok(envs) => {
                items.reserve(envs.len());
                for env in envs {
                    match envelope::from_v2(env, &self.needs, &mut stats) {
                        Ok(item) => items.push(item),
                        Err(_) => bad += 1,
                    }
                }
            }
            Err(_) => bad += 1,
        }
        let ok = items.len() as u64;
        self.enqueue(&mut items);
        self.count(ok, bad, stats);
        (ok, bad)
    }

    fn count(&self, ok: u64, bad: u64, stats: PrepStats) {
        if ok > 0 {
            self.metrics.ingress.add(ok);
        }
        if bad > 0 {
            self.metrics.invalid.add(bad);
            tracing::debug!(invalid = bad, "skipped invalid envelopes");
        }
        if stats.v1_encode_failures > 0 {
            self.metrics
                .v1_encode_failures
                .add(stats.v1_encode_failures);
        }
    }

    /// Reads `stream` until it ends or shutdown starts; `each` handles one
    /// message and returns how many envelopes it carried.
    async fn drain_stream(
        &self,
        mut stream: Streaming<Bytes>,
        mut each: impl FnMut(&Self, Bytes) -> usize,
    ) -> Result<(), Status> {
        let mut turns = Turns::new(YIELD_EVERY);
        loop {
            let msg = tokio::select! {
                m = stream.message() => m?,
                _ = self.shutdown.cancelled() => return Ok(()),
            };
            match msg {
                Some(msg) => {
                    let n = each(self, msg);
                    turns.handled(n, &self.ring).await;
                }
                None => return Ok(()),
            }
        }
    }
}

#[tonic::async_trait]
impl Ingress for IngressService {
    async fn sender(&self, request: Request<Streaming<Bytes>>) -> Result<Response<Bytes>, Status> {
        self.drain_stream(request.into_inner(), |s, env| {
            let mut stats = PrepStats::default();
            let mut items: Vec<Ingested> = envelope::from_v2(env, &s.needs, &mut stats)
                .into_iter()
                .collect();
            let ok = items.len() as u64;
            s.enqueue(&mut items);
            s.count(ok, 1 - ok, stats);
            1
        })
        .await?;
        Ok(Response::new(Bytes::new()))
    }

    async fn batch_sender(
        &self,
        request: Request<Streaming<Bytes>>,
    ) -> Result<Response<Bytes>, Status> {
        self.drain_stream(request.into_inner(), |s, b| {
            let (ok, bad) = s.accept_batch(&b);
            (ok + bad) as usize
        })
        .await?;
        Ok(Response::new(Bytes::new()))
    }

    async fn send(&self, _request: Request<Bytes>) -> Result<Response<Bytes>, Status> {
        Err(Status::unimplemented(
            "this endpoint is not yet implemented",
        ))
    }
}

#[tonic::async_trait]
impl DopplerIngestor for IngressService {
    async fn pusher(&self, request: Request<Streaming<Bytes>>) -> Result<Response<Bytes>, Status> {
        self.drain_stream(request.into_inner(), |s, msg| {
            let accepted = EnvelopeData::decode(msg)
                .ok()
                .and_then(|d| envelope::from_v1(d.payload, &s.needs).ok());
            let mut items: Vec<Ingested> = accepted.into_iter().collect();
            let ok = items.len() as u64;
            s.enqueue(&mut items);
            s.count(ok, 1 - ok, PrepStats::default());
            1
        })
        .await?;
        Ok(Response::new(Bytes::new()))
    }
}
