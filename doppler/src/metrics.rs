//! Doppler's metric handles, created from a passed-in registry (so several
//! dopplers in one process keep separate counters). Names follow upstream
//! (reference §9, §21): `ingress`, `egress`, `dropped{direction}`,
//! `subscriptions`; plus `invalid_envelopes` (envelopes that failed to parse,
//! skipped) and `v1_conversion_failures` (v2 envelopes whose v1 form cannot be
//! marshalled, e.g. timers without `request_id`, dropped for v1 subscribers as
//! upstream does).

use plumbing::metrics::{Counter, Gauge, Registry};

/// All doppler metric handles.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Envelopes accepted at ingress (v1 and v2).
    pub ingress: Counter,
    /// Envelopes sent to subscribers.
    pub egress: Counter,
    /// Envelopes lost in the ingress ring.
    pub dropped_ingress: Counter,
    /// Envelopes lost in subscription rings.
    pub dropped_egress: Counter,
    /// Live subscriptions (v1 and v2).
    pub subscriptions: Gauge,
    /// Envelopes (or batches) that failed to parse and were skipped.
    pub invalid: Counter,
    /// v1 conversions that could not be marshalled (dropped for v1 subscribers).
    pub v1_encode_failures: Counter,
    /// Cached apps evicted (inactivity, app capacity or byte capacity).
    pub cache_evictions: Counter,
    /// Logs removed from or refused by the recent-logs cache by its byte bounds.
    pub cache_size_dropped: Counter,
    /// Accounted bytes held by the recent-logs / container-metrics caches.
    pub cache_bytes: Gauge,
}

impl Metrics {
    /// Registers the handles in `registry`.
    pub fn new(registry: &Registry) -> Self {
        Self {
            ingress: registry.counter("ingress", "Envelopes received", &[]),
            egress: registry.counter("egress", "Envelopes sent to subscribers", &[]),
            dropped_ingress: registry.counter(
                "dropped",
                "Envelopes dropped",
                &[("direction", "ingress")],
            ),
            dropped_egress: registry.counter(
                "dropped",
                "Envelopes dropped",
                &[("direction", "egress")],
            ),
            subscriptions: registry.gauge("subscriptions", "Live egress subscriptions", &[]),
            invalid: registry.counter(
                "invalid_envelopes",
                "Envelopes or batches that failed to parse and were skipped",
                &[],
            ),
            v1_encode_failures: registry.counter(
                "v1_conversion_failures",
                "v2 envelopes whose v1 form cannot be marshalled (not delivered to v1 subscribers)",
                &[],
            ),
            cache_evictions: registry.counter(
                "recent_logs_apps_evicted",
                "Apps evicted from the recent-logs/container-metrics cache",
                &[],
            ),
            cache_size_dropped: registry.counter(
                "recent_logs_dropped_by_size",
                "Logs removed from or refused by the recent-logs cache because of its byte bounds",
                &[],
            ),
            cache_bytes: registry.gauge(
                "recent_logs_cache_bytes",
                "Bytes held by the recent-logs/container-metrics cache (entries plus overhead)",
                &[],
            ),
        }
    }
}
