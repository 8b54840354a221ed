//! The router: one task drains the ingress ring in batches and offers every
//! envelope to the matching subscriptions (reference §9.3, §9.4).
//!
//! Per envelope the router only looks up the subscription [`table`] by the
//! routing [`key`] prepared at ingress and pushes a refcounted clone of the
//! right encoded bytes into each chosen subscription's ring (never a copy,
//! never a re-encode). (The recent-logs / container-metrics
//! [`crate::cache`] is fed by the ingress streams, in parallel.) Pushing never waits: a full subscription ring overwrites
//! its oldest entry (drop-oldest), so one slow subscriber never slows ingress
//! or the other subscribers.
//!
//! Layout: [`key`] (routing keys), [`table`] (the subscription index).

pub mod key;
pub mod table;

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use plumbing::ring::Ring;
use plumbing::shutdown::Shutdown;

use crate::cache::AppCache;
use crate::envelope::Ingested;
use crate::metrics::Metrics;
use crate::subscriptions::Registry;
use table::{FastRng, TagForm};

/// Most envelopes taken from the ingress ring per routing pass.
pub const ROUTE_BATCH: usize = 256;
/// Routing passes per turn while the ingress ring is at least half full:
/// 768 envelopes, still less than a subscription ring (1000 by default) holds,
/// so a subscriber that had drained its ring before the turn loses nothing.
const BURST_PASSES: usize = 3;
/// How often idle apps are evicted from the cache.
const EVICT_EVERY: Duration = Duration::from_secs(1);
/// Minimum time between two ingress drop log lines.
const DROP_LOG_EVERY: Duration = Duration::from_secs(1);

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
        let mut last_evict = Instant::now();
        let mut last_drop_log: Option<Instant> = None;
        let mut unlogged_drops = 0u64;
        let mut passes = 0usize;
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
                }
                if overwritten > 0 {
                    self.metrics.dropped_egress.add(overwritten);
                }
                if now - last_evict >= EVICT_EVERY {
                    last_evict = now;
                    self.cache.lock().evict_idle(now);
                }
            }
            if self.ingress.is_closed() && self.ingress.is_empty() {
                break;
            }
            // Let subscription streams (and everything else on this worker)
            // run between routing passes; while the ingress ring is at least
            // half full, route up to BURST_PASSES passes per turn first (the
            // ingress streams each take a turn of their own between ours).
            passes += 1;
            if passes >= BURST_PASSES || !self.ingress.is_half_full() {
                passes = 0;
                tokio::task::yield_now().await;
            }
        }
        self.registry.close_all();
    }
}
