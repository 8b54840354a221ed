//! The sending side of one subscription: drains its ring into batches.
//!
//! A batch (up to [`MAX_BATCH`]) is produced as soon as anything is queued —
//! there is no batching timer, so a lone envelope is not held back. The
//! response stream is pulled by the gRPC layer only when the HTTP/2 stream
//! has room, so a slow subscriber leaves envelopes in its ring, where the
//! router's pushes overwrite the oldest ones (drop-oldest, never blocking
//! ingress). The router counts each overwrite in `dropped{direction="egress"}`
//! as it happens; here (reader side) the losses are logged (rate-limited) and
//! announced to the subscriber with an in-stream warning (see
//! [`super::warning`]).
//!
//! The outlet owns the [`SubscriptionGuard`]: when the client goes away the
//! gRPC layer drops the stream, the guard is dropped and the subscription is
//! removed.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use plumbing::shutdown::Shutdown;

use super::warning::Warnings;
use crate::metrics::Metrics;
use crate::subscriptions::{Sink, SubscriptionGuard};

/// Largest egress batch (upstream: 100).
pub const MAX_BATCH: usize = 100;

/// One subscription's sender state.
#[derive(Debug)]
pub struct Outlet {
    sink: Arc<Sink>,
    guard: SubscriptionGuard,
    warnings: Warnings,
    metrics: Metrics,
    shutdown: Shutdown,
    /// Shard id, for the drop log line.
    shard_id: String,
    /// `v1` or `v2`, for the drop log line.
    proto: &'static str,
}

impl Outlet {
    /// Wraps a registered subscription.
    pub fn new(
        sink: Arc<Sink>,
        guard: SubscriptionGuard,
        warnings: Warnings,
        metrics: Metrics,
        shutdown: Shutdown,
        shard_id: String,
        proto: &'static str,
    ) -> Self {
        Self {
            sink,
            guard,
            warnings,
            metrics,
            shutdown,
            shard_id,
            proto,
        }
    }

    /// Subscription id.
    pub fn id(&self) -> u64 {
        self.guard.id()
    }

    /// Records `n` envelopes lost after they left the ring (too large to
    /// send, see [`super::Batcher`]); the subscriber is warned in-stream like
    /// for ring losses. The caller counts them in the metrics.
    pub fn record_lost(&mut self, n: u64) {
        self.warnings.record(n);
    }

    /// Waits for the next batch: pending warnings first, then up to
    /// [`MAX_BATCH`] queued envelopes. `None` when the subscription ends (the
    /// ring was closed at shutdown and is empty).
    pub async fn next_batch(&mut self) -> Option<Vec<Bytes>> {
        loop {
            if self.sink.is_empty() && !self.sink.is_closed() {
                let due = self.warnings.due_at();
                tokio::select! {
                    _ = self.sink.ready() => {}
                    _ = self.shutdown.cancelled(), if !self.shutdown.is_triggered() => {}
                    _ = sleep_until(due), if due.is_some() => {}
                }
            }
            // (The router already counted these in `dropped{direction="egress"}`.)
            let lost = self.sink.take_dropped();
            if lost > 0 {
                self.warnings.record(lost);
            }
            let mut items = Vec::with_capacity(MAX_BATCH.min(self.sink.len() + 2));
            if let Some((delta, total, envs)) = self.warnings.take(Instant::now()) {
                tracing::warn!(
                    subscription = self.guard.id(),
                    total,
                    "Dropped {delta} envelopes ({} buffer) ShardID: {}",
                    self.proto,
                    self.shard_id
                );
                items.extend(envs);
            }
            let n = self.sink.drain_into(&mut items, MAX_BATCH);
            if !items.is_empty() {
                self.metrics.egress.add(n as u64);
                return Some(items);
            }
            if self.sink.is_closed() {
                return None;
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at.into()).await;
    }
}
