//! The router: one task drains the ingress ring in batches and offers every
//! envelope to the matching subscriptions (reference §9.3, §9.4).
//!
//! Per envelope the router only looks up the subscription [`table`] by the
//! routing [`key`] prepared at ingress and pushes a refcounted clone of the
//! right encoded bytes into each chosen subscription's ring (never a copy,
//! never a re-encode). It also feeds the recent-logs / container-metrics
//! [`crate::cache`]. Pushing never waits: a full subscription ring overwrites
//! its oldest entry (drop-oldest), so one slow subscriber never slows ingress
//! or the other subscribers.
//!
//! Layout: [`key`] (routing keys), [`table`] (the subscription index).

pub mod key;
pub mod table;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use plumbing::ring::Ring;
use plumbing::shutdown::Shutdown;

use crate::cache::{AppCache, Stored};
use crate::envelope::Ingested;
use crate::metrics::Metrics;
use crate::subscriptions::Registry;
use key::MessageKind;
use table::{FastRng, TagForm};

/// Most envelopes taken from the ingress ring per routing pass.
const ROUTE_BATCH: usize = 1024;
/// How often idle apps are evicted from the cache.
const EVICT_EVERY: Duration = Duration::from_secs(1);
/// Minimum time between two ingress drop log lines.
const DROP_LOG_EVERY: Duration = Duration::from_secs(1);

/// Gauge metric names of a container metric (ToV2 of a v1 ContainerMetric).
const CONTAINER_METRIC_NAMES: [&str; 5] = ["cpu", "memory", "disk", "memory_quota", "disk_quota"];

/// Name-set hashes of gauges that are container metrics: the five names, and
/// the five plus `instance_index`.
fn container_metric_hashes() -> [u64; 2] {
    let five = CONTAINER_METRIC_NAMES.iter().fold(0u64, |s, n| {
        s.wrapping_add(envelope_proto::view::crc64(n.as_bytes()))
    });
    [
        five,
        five.wrapping_add(envelope_proto::view::crc64(b"instance_index")),
    ]
}

/// The router task's inputs.
#[derive(Debug)]
pub struct Router {
    /// Ingress ring (many producers: the ingress streams).
    pub ingress: Arc<Ring<Ingested>>,
    /// Live subscriptions.
    pub registry: Arc<Registry>,
    /// Recent logs / container metrics.
    pub cache: Arc<Mutex<AppCache>>,
    /// Metric handles.
    pub metrics: Metrics,
}

impl Router {
    /// Routes until shutdown, then routes what is left in the ingress ring
    /// and closes every subscription ring (streams flush and end).
    pub async fn run(self, shutdown: Shutdown) {
        let mut table = self.registry.table();
        let mut version = self.registry.version();
        let mut batch = Vec::with_capacity(ROUTE_BATCH);
        let mut rng = FastRng::from_entropy();
        let cm_hashes = container_metric_hashes();
        let mut last_evict = Instant::now();
        let mut last_drop_log: Option<Instant> = None;
        let mut unlogged_drops = 0u64;
        loop {
            if self.ingress.is_empty() {
                tokio::select! {
                    _ = self.ingress.ready() => {}
                    _ = shutdown.cancelled(), if !self.ingress.is_closed() => {
                        self.ingress.close();
                    }
                    _ = tokio::time::sleep(EVICT_EVERY) => {}
                }
            }
            let now = Instant::now();
            let lost = self.ingress.take_dropped();
            if lost > 0 {
                self.metrics.dropped_ingress.add(lost);
                unlogged_drops += lost;
            }
            if unlogged_drops > 0 && last_drop_log.is_none_or(|t| now - t >= DROP_LOG_EVERY) {
                tracing::warn!("Dropped {unlogged_drops} envelopes (v2 buffer)");
                unlogged_drops = 0;
                last_drop_log = Some(now);
            }
            self.ingress.drain_into(&mut batch, ROUTE_BATCH);
            let v = self.registry.version();
            if v != version {
                version = v;
                table = self.registry.table();
            }
            {
                let mut cache = self.cache.lock();
                cache.begin(now);
                // Overwrites in subscription rings, counted here (in real time,
                // even for a subscriber that never reads again); the
                // subscription's stream learns its own losses from the ring.
                let mut overwritten = 0u64;
                for item in batch.drain(..) {
                    table.route_v2(&item.key, &mut rng, |m| {
                        let bytes = match m.form {
                            TagForm::Preferred => item.v2_preferred.as_ref(),
                            TagForm::Deprecated => item.v2_deprecated.as_ref(),
                        };
                        overwritten += u64::from(m.sink.push(bytes.unwrap_or(&item.v2).clone()));
                    });
                    for v1 in &item.v1 {
                        table.route_v1(&v1.app_id, v1.class, &mut rng, |m| {
                            overwritten += u64::from(m.sink.push(v1.bytes.clone()));
                        });
                    }
                    cache_envelope(&mut cache, &item, &cm_hashes);
                }
                if overwritten > 0 {
                    self.metrics.dropped_egress.add(overwritten);
                }
                if now - last_evict >= EVICT_EVERY {
                    last_evict = now;
                    let n = cache.evict_idle(now);
                    self.metrics.cache_evictions.add(n as u64);
                }
            }
            if self.ingress.is_closed() && self.ingress.is_empty() {
                break;
            }
            // Let subscription streams (and everything else on this worker)
            // run between routing passes.
            tokio::task::yield_now().await;
        }
        self.registry.close_all();
    }
}

/// Feeds the recent-logs / container-metrics cache. Entries are copies, so a
/// cached envelope does not keep a received batch buffer alive.
fn cache_envelope(cache: &mut AppCache, item: &Ingested, cm_hashes: &[u64; 2]) {
    let stored = || match &item.v1_original {
        Some(v1) => Stored::V1(Bytes::copy_from_slice(v1)),
        None => Stored::V2(Bytes::copy_from_slice(&item.v2)),
    };
    match item.key.kind {
        MessageKind::Log if cache.logs_enabled() => {
            if let Ok(app) = std::str::from_utf8(&item.key.source_id) {
                cache.push_log(app, stored());
            }
        }
        MessageKind::Gauge if cm_hashes.contains(&item.key.name_hash) => {
            let Ok(view) = envelope_proto::view::EnvelopeView::parse(&item.v2) else {
                return;
            };
            cache.put_container_metric(
                view.source_id(),
                view.instance_id(),
                view.timestamp(),
                stored(),
            );
        }
        _ => {}
    }
}
