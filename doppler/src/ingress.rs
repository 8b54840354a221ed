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
use prost::Message;
use tonic::{Request, Response, Status, Streaming};

use crate::cache::AppCache;
use crate::envelope::{self, Ingested, PrepStats};
use crate::metrics::Metrics;
use crate::subscriptions::Needs;

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

    async fn drain_stream(
        &self,
        mut stream: Streaming<Bytes>,
        mut each: impl FnMut(&Self, Bytes),
    ) -> Result<(), Status> {
        loop {
            let msg = tokio::select! {
                m = stream.message() => m?,
                _ = self.shutdown.cancelled() => return Ok(()),
            };
            match msg {
                Some(msg) => each(self, msg),
                None => return Ok(()),
            }
            // A stream with buffered messages never has to wait, so it could
            // fill the ingress ring before the router (and the subscription
            // streams) get a turn on this worker. Hand the worker over once the
            // ring is half full; this is cooperative scheduling, not waiting
            // for anyone: the ring still drops oldest if the router is slower.
            if self.ring.len() * 2 >= self.ring.capacity() {
                tokio::task::yield_now().await;
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
        })
        .await?;
        Ok(Response::new(Bytes::new()))
    }

    async fn batch_sender(
        &self,
        request: Request<Streaming<Bytes>>,
    ) -> Result<Response<Bytes>, Status> {
        self.drain_stream(request.into_inner(), |s, b| {
            s.accept_batch(&b);
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
        })
        .await?;
        Ok(Response::new(Bytes::new()))
    }
}
