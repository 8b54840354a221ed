//! Metric handles of the drain forwarder. Labels are bounded: the scheme
//! only, never app GUIDs or drain URLs.

use plumbing::metrics::{Counter, Gauge, Registry};

use super::url::Scheme;

/// HELP text of `syslog_drain_dropped` (one text for both `reason` series).
const DROPPED_HELP: &str = "Drain losses: reason=buffer counts envelopes overwritten in the per-drain buffer, reason=retries_exhausted counts messages abandoned after the retry schedule";

/// Counters for one scheme.
#[derive(Debug, Clone)]
pub struct SchemeMetrics {
    /// Messages written to drains.
    pub egress: Counter,
    /// Envelopes overwritten in per-drain buffers.
    pub dropped: Counter,
    /// Messages dropped after the last retry.
    pub retry_dropped: Counter,
    /// Failed write attempts (each retry counts).
    pub write_errors: Counter,
}

/// All drain forwarder metrics.
#[derive(Debug, Clone)]
pub struct DrainMetrics {
    /// Envelopes received from the dopplers.
    pub ingress: Counter,
    /// Envelopes that could not be formatted (invalid for RFC 5424).
    pub format_errors: Counter,
    /// Drains currently running.
    pub drains: Gauge,
    /// Bindings whose URL was rejected.
    pub invalid_drains: Counter,
    /// Binding fetches that failed (the previous set stays in force).
    pub binding_refresh_failures: Counter,
    /// App-visible notices sent to the ingress.
    pub notices_sent: Counter,
    /// Notices lost (queue full or ingress unreachable).
    pub notices_dropped: Counter,
    /// Egress stream (re)connects.
    pub subscriptions: Counter,
    syslog: SchemeMetrics,
    syslog_tls: SchemeMetrics,
    https: SchemeMetrics,
    https_batch: SchemeMetrics,
}

impl DrainMetrics {
    /// Registers the handles in `registry`.
    pub fn new(registry: &Registry) -> Self {
        let scheme = |s: &str| SchemeMetrics {
            egress: registry.counter(
                "syslog_drain_egress",
                "Messages written to drains",
                &[("scheme", s)],
            ),
            dropped: registry.counter(
                "syslog_drain_dropped",
                DROPPED_HELP,
                &[("scheme", s), ("reason", "buffer")],
            ),
            retry_dropped: registry.counter(
                "syslog_drain_dropped",
                DROPPED_HELP,
                &[("scheme", s), ("reason", "retries_exhausted")],
            ),
            write_errors: registry.counter(
                "syslog_drain_write_errors",
                "Failed write attempts",
                &[("scheme", s)],
            ),
        };
        Self {
            ingress: registry.counter(
                "syslog_drain_ingress",
                "Envelopes received from dopplers",
                &[],
            ),
            format_errors: registry.counter(
                "syslog_drain_format_errors",
                "Envelopes that could not be formatted as RFC 5424",
                &[],
            ),
            drains: registry.gauge("syslog_drain_drains", "Drains running", &[]),
            invalid_drains: registry.counter(
                "invalid_drains",
                "Bindings with an invalid drain URL",
                &[],
            ),
            binding_refresh_failures: registry.counter(
                "syslog_drain_binding_refresh_failures",
                "Failed binding fetches",
                &[],
            ),
            notices_sent: registry.counter(
                "syslog_drain_notices_sent",
                "App-visible notices sent",
                &[],
            ),
            notices_dropped: registry.counter(
                "syslog_drain_notices_dropped",
                "App-visible notices lost",
                &[],
            ),
            subscriptions: registry.counter(
                "syslog_drain_subscriptions",
                "Doppler egress stream opens",
                &[],
            ),
            syslog: scheme("syslog"),
            syslog_tls: scheme("syslog-tls"),
            https: scheme("https"),
            https_batch: scheme("https-batch"),
        }
    }

    /// The counters of `scheme`.
    pub fn scheme(&self, scheme: Scheme) -> &SchemeMetrics {
        match scheme {
            Scheme::Syslog => &self.syslog,
            Scheme::SyslogTls => &self.syslog_tls,
            Scheme::Https => &self.https,
            Scheme::HttpsBatch => &self.https_batch,
        }
    }
}
