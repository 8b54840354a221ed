//! Log Cache's metrics, created from a passed-in registry. Store metrics
//! carry upstream's names (`src/internal/cache/store/store.go`); the rest
//! are ours.
//!
//! | Name | Kind | Meaning |
//! |---|---|---|
//! | `log_cache_ingress` | counter | envelopes stored |
//! | `log_cache_egress` | counter | envelopes returned by reads |
//! | `log_cache_expired` | counter | envelopes evicted (per-source cap or memory limit) |
//! | `log_cache_store_size` | gauge (`unit=entries`) | envelopes held |
//! | `log_cache_cache_period` | gauge (`unit=milliseconds`) | now minus the oldest stored timestamp |
//! | `log_cache_memory_utilization` | gauge (`unit=percentage`) | accounted store bytes / system memory |
//! | `log_cache_truncation_duration` | gauge (`unit=milliseconds`) | last truncation run |
//! | `log_cache_uptime` | gauge (`unit=seconds`) | time since start |
//! | `log_cache_store_bytes` | gauge | accounted store bytes (ours) |
//! | `log_cache_ingress_dropped{source=...}` | counter | envelopes not stored: ingest ring overwritten or invalid (ours) |
//! | `log_cache_doppler_streams` | gauge | open doppler subscriptions (ours) |
//! | `log_cache_doppler_ingress` | counter | envelopes received from dopplers (ours) |
//! | `log_cache_read_requests{api=...}` | counter | read requests served, by API (ours) |
//! | `log_cache_read_errors{api=...}` | counter | read requests refused (bad parameters, auth) (ours) |

use plumbing::metrics::{Counter, Gauge, Registry};

/// Metrics the [`crate::store::Store`] updates.
#[derive(Debug, Clone)]
pub struct StoreMetrics {
    /// `log_cache_ingress`.
    pub ingress: Counter,
    /// `log_cache_egress`.
    pub egress: Counter,
    /// `log_cache_expired`.
    pub expired: Counter,
    /// `log_cache_store_size`.
    pub store_size: Gauge,
    /// `log_cache_cache_period`.
    pub cache_period: Gauge,
    /// `log_cache_memory_utilization`.
    pub memory_utilization: Gauge,
    /// `log_cache_truncation_duration`.
    pub truncation_duration: Gauge,
}

impl StoreMetrics {
    /// Registers the store metrics.
    pub fn new(registry: &Registry) -> Self {
        Self {
            ingress: registry.counter("log_cache_ingress", "Total envelopes ingressed.", &[]),
            egress: registry.counter(
                "log_cache_egress",
                "Total envelopes retrieved from the store.",
                &[],
            ),
            expired: registry.counter("log_cache_expired", "total_expired_envelopes", &[]),
            store_size: registry.gauge(
                "log_cache_store_size",
                "Current number of envelopes in the store.",
                &[("unit", "entries")],
            ),
            cache_period: registry.gauge(
                "log_cache_cache_period",
                "Cache period in milliseconds: now minus the oldest envelope timestamp.",
                &[("unit", "milliseconds")],
            ),
            memory_utilization: registry.gauge(
                "log_cache_memory_utilization",
                "Percentage of system memory held by the store.",
                &[("unit", "percentage")],
            ),
            truncation_duration: registry.gauge(
                "log_cache_truncation_duration",
                "Duration of last truncation in milliseconds.",
                &[("unit", "milliseconds")],
            ),
        }
    }

    /// Metrics attached to no registry (unit tests).
    pub fn detached() -> Self {
        Self::new(&Registry::new())
    }
}

/// Every metric of one log-cache node.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// The store's.
    pub store: StoreMetrics,
    /// `log_cache_uptime`.
    pub uptime: Gauge,
    /// `log_cache_store_bytes`.
    pub store_bytes: Gauge,
    /// `log_cache_ingress_dropped{source="doppler"}`: ingest ring overwrote.
    pub dropped_doppler: Counter,
    /// `log_cache_ingress_dropped{source="invalid"}`: undecodable envelopes.
    pub dropped_invalid: Counter,
    /// `log_cache_doppler_streams`.
    pub doppler_streams: Gauge,
    /// `log_cache_doppler_ingress`.
    pub doppler_ingress: Counter,
    /// `log_cache_read_requests{api="http"}`.
    pub http_reads: Counter,
    /// `log_cache_read_requests{api="grpc"}`.
    pub grpc_reads: Counter,
    /// `log_cache_read_errors{api="http"}`.
    pub http_read_errors: Counter,
    /// `log_cache_read_errors{api="grpc"}`.
    pub grpc_read_errors: Counter,
}

impl Metrics {
    /// Registers every metric.
    pub fn new(registry: &Registry) -> Self {
        let dropped = |source: &str| {
            registry.counter(
                "log_cache_ingress_dropped",
                "Envelopes not stored, by cause.",
                &[("source", source)],
            )
        };
        let reads = |api: &str| {
            registry.counter(
                "log_cache_read_requests",
                "Read requests served.",
                &[("api", api)],
            )
        };
        let errors = |api: &str| {
            registry.counter(
                "log_cache_read_errors",
                "Read requests refused (bad parameters or not authorised).",
                &[("api", api)],
            )
        };
        Self {
            store: StoreMetrics::new(registry),
            uptime: registry.gauge(
                "log_cache_uptime",
                "Time since log cache started.",
                &[("unit", "seconds")],
            ),
            store_bytes: registry.gauge(
                "log_cache_store_bytes",
                "Bytes accounted to stored envelopes.",
                &[],
            ),
            dropped_doppler: dropped("doppler"),
            dropped_invalid: dropped("invalid"),
            doppler_streams: registry.gauge(
                "log_cache_doppler_streams",
                "Open doppler subscriptions.",
                &[],
            ),
            doppler_ingress: registry.counter(
                "log_cache_doppler_ingress",
                "Envelopes received from dopplers.",
                &[],
            ),
            http_reads: reads("http"),
            grpc_reads: reads("grpc"),
            http_read_errors: errors("http"),
            grpc_read_errors: errors("grpc"),
        }
    }
}
