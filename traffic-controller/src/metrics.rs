//! The traffic controller's metrics (reference §12.7), created from a
//! passed-in registry. Prometheus names cannot contain `.`, so upstream's
//! `doppler_proxy.x` names are exposed as `doppler_proxy_x`.
//!
//! | Prometheus name | Upstream name | Kind |
//! |---|---|---|
//! | `doppler_proxy_firehoses` | `doppler_proxy.firehoses` | gauge (live, not sampled every 15 s) |
//! | `doppler_proxy_app_streams` | `doppler_proxy.app_streams` | gauge |
//! | `egress{endpoint="firehose"\|"stream"\|"v2_read"}` | `egress{endpoint=...}` | counter (`v2_read` is ours) |
//! | `doppler_proxy_slow_consumer` | `doppler_proxy.slow_consumer` | counter |
//! | `ingress{protocol="grpc"}` | same | counter |
//! | `dropped{direction="egress",endpoint=...}` | ours | counter: envelopes lost in per-consumer rings (overwritten, or abandoned when a consumer is cut) |
//! | `doppler_proxy_slow_consumer_dropped` | ours | counter: envelopes abandoned with consumers cut as slow (also in `dropped`) |
//! | `doppler_proxy_rate_control_warnings` | ours | counter: warning rounds injected into streams |
//! | `doppler_proxy_v2_read_streams` | ours | gauge: open `/v2/read` streams |
//! | `doppler_proxy_doppler_streams` | ours | gauge: open upstream doppler streams |
//! | `doppler_proxy_rejected_connections` | ours | counter: consumers refused at the connection limit |
//! | `doppler_proxy_security_log_dropped` | ours | counter: CEF lines dropped (writer behind) |
//! | `doppler_proxy_agent_events_dropped` | ours | counter: slow-consumer Events not delivered to the agent |
//! | `doppler_proxy_recent_failures{endpoint="recentlogs"\|"containermetrics"}` | ours | counter: doppler RecentLogs / ContainerMetrics calls that failed or timed out |
//!
//! The upstream metrics are also sent to the agent as v2 envelopes
//! ([`Metrics::agent_description`], [`plumbing::emitter`]): source_id
//! `traffic_controller`, tags `origin=loggregator.trafficcontroller` and
//! `metric_version=2.0`; counters `egress{endpoint=firehose}`,
//! `egress{endpoint=stream}`, `doppler_proxy.slow_consumer`,
//! `ingress{protocol=grpc}` (delta since the last emission and total), then
//! gauges `doppler_proxy.firehoses` and `doppler_proxy.app_streams` (unit
//! `connections`).

use plumbing::emitter::Description;
use plumbing::metrics::{Counter, Gauge, Registry};

use crate::upstream::fanin::UpstreamStats;

/// Origin tag of the own-metric envelopes sent to the agent.
pub const ORIGIN: &str = "loggregator.trafficcontroller";

/// Handles to every metric of one traffic controller.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// Open firehose WebSockets.
    pub firehoses: Gauge,
    /// Open app-stream WebSockets.
    pub app_streams: Gauge,
    /// Open `/v2/read` streams.
    pub v2_read_streams: Gauge,
    /// Envelopes written to firehose consumers.
    pub egress_firehose: Counter,
    /// Envelopes written to app-stream consumers.
    pub egress_stream: Counter,
    /// Envelopes written to `/v2/read` consumers.
    pub egress_v2_read: Counter,
    /// Envelopes lost in firehose rings.
    pub dropped_firehose: Counter,
    /// Envelopes lost in app-stream rings.
    pub dropped_stream: Counter,
    /// Envelopes lost in `/v2/read` rings.
    pub dropped_v2_read: Counter,
    /// Consumers disconnected as slow.
    pub slow_consumer: Counter,
    /// Envelopes still queued for consumers cut as slow (also in `dropped_*`).
    pub slow_consumer_dropped: Counter,
    /// Warning rounds injected.
    pub rate_control_warnings: Counter,
    /// Envelopes received from dopplers.
    pub ingress: Counter,
    /// Upstream doppler streams open.
    pub doppler_streams: Gauge,
    /// Consumers refused at the connection limit.
    pub rejected: Counter,
    /// CEF lines dropped because the writer fell behind.
    pub security_log_dropped: Counter,
    /// Slow-consumer Events the agent did not get (queue full, send failed or timed out).
    pub agent_events_dropped: Counter,
    /// Doppler RecentLogs calls that failed or timed out.
    pub recent_failures_logs: Counter,
    /// Doppler ContainerMetrics calls that failed or timed out.
    pub recent_failures_metrics: Counter,
}

impl Metrics {
    /// Registers every metric in `registry`.
    pub fn new(registry: &Registry) -> Self {
        let egress = |endpoint| {
            registry.counter(
                "egress",
                "Envelopes written to consumers",
                &[("endpoint", endpoint)],
            )
        };
        let dropped = |endpoint| {
            registry.counter(
                "dropped",
                "Envelopes lost for consumers: overwritten in their drop-oldest rings or abandoned when they were cut",
                &[("direction", "egress"), ("endpoint", endpoint)],
            )
        };
        let recent_failures = |endpoint| {
            registry.counter(
                "doppler_proxy_recent_failures",
                "Doppler RecentLogs / ContainerMetrics calls that failed or timed out",
                &[("endpoint", endpoint)],
            )
        };
        Self {
            firehoses: registry.gauge(
                "doppler_proxy_firehoses",
                "Open firehose WebSocket connections",
                &[],
            ),
            app_streams: registry.gauge(
                "doppler_proxy_app_streams",
                "Open app stream WebSocket connections",
                &[],
            ),
            v2_read_streams: registry.gauge(
                "doppler_proxy_v2_read_streams",
                "Open /v2/read SSE streams",
                &[],
            ),
            egress_firehose: egress("firehose"),
            egress_stream: egress("stream"),
            egress_v2_read: egress("v2_read"),
            dropped_firehose: dropped("firehose"),
            dropped_stream: dropped("stream"),
            dropped_v2_read: dropped("v2_read"),
            slow_consumer: registry.counter(
                "doppler_proxy_slow_consumer",
                "Consumers disconnected because they made no progress",
                &[],
            ),
            slow_consumer_dropped: registry.counter(
                "doppler_proxy_slow_consumer_dropped",
                "Envelopes abandoned with consumers disconnected as slow (also counted in dropped)",
                &[],
            ),
            rate_control_warnings: registry.counter(
                "doppler_proxy_rate_control_warnings",
                "Rate-control warnings injected after ring overflows",
                &[],
            ),
            ingress: registry.counter(
                "ingress",
                "Envelopes received from dopplers",
                &[("protocol", "grpc")],
            ),
            doppler_streams: registry.gauge(
                "doppler_proxy_doppler_streams",
                "Open upstream doppler streams",
                &[],
            ),
            rejected: registry.counter(
                "doppler_proxy_rejected_connections",
                "Consumers refused at the connection limit",
                &[],
            ),
            security_log_dropped: registry.counter(
                "doppler_proxy_security_log_dropped",
                "Security event log lines dropped because the writer fell behind",
                &[],
            ),
            agent_events_dropped: registry.counter(
                "doppler_proxy_agent_events_dropped",
                "Slow-consumer Events not delivered to the agent (queue full, send failed or timed out)",
                &[],
            ),
            recent_failures_logs: recent_failures("recentlogs"),
            recent_failures_metrics: recent_failures("containermetrics"),
        }
    }

    /// What goes to the agent (upstream names and tags), in batch order.
    pub fn agent_description(&self) -> Description {
        Description::new(crate::agent_event::SOURCE_ID, ORIGIN)
            .tag("metric_version", "2.0")
            .counter(
                "egress",
                &[("endpoint", "firehose")],
                self.egress_firehose.clone(),
            )
            .counter(
                "egress",
                &[("endpoint", "stream")],
                self.egress_stream.clone(),
            )
            .counter(
                "doppler_proxy.slow_consumer",
                &[],
                self.slow_consumer.clone(),
            )
            .counter("ingress", &[("protocol", "grpc")], self.ingress.clone())
            .gauge(
                "doppler_proxy.firehoses",
                "connections",
                self.firehoses.clone(),
            )
            .gauge(
                "doppler_proxy.app_streams",
                "connections",
                self.app_streams.clone(),
            )
    }

    pub(crate) fn upstream(&self) -> UpstreamStats {
        UpstreamStats {
            ingress: self.ingress.clone(),
            streams: self.doppler_streams.clone(),
        }
    }
}
