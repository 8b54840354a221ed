//! The agent's metric handles (upstream names, each with a `metric_version`
//! label), created from a registry passed in so that several agents in one
//! process keep separate counters.

use plumbing::metrics::{Counter, Gauge, Registry};

/// Every metric the agent updates.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// Datagrams read on UDP (`ingress{metric_version="1.0"}`).
    pub ingress_v1: Counter,
    /// Envelopes received over gRPC (`ingress{metric_version="2.0"}`).
    pub ingress_v2: Counter,
    /// v1 envelopes handed to a Pusher stream.
    pub egress_v1: Counter,
    /// v2 envelopes handed to a BatchSender stream.
    pub egress_v2: Counter,
    /// Datagrams lost in the v1 ring (`dropped{direction="all",metric_version="1.0"}`, upstream label).
    pub dropped_ring_v1: Counter,
    /// Envelopes lost in the v2 ring (`dropped{direction="ingress",metric_version="2.0"}`).
    pub dropped_ingress_v2: Counter,
    /// v1 envelopes no stream accepted.
    pub dropped_egress_v1: Counter,
    /// v2 envelopes no stream accepted.
    pub dropped_egress_v2: Counter,
    /// Datagrams that failed to decode or validate (`invalid_envelopes{metric_version="1.0"}`).
    pub invalid_v1: Counter,
    /// v2 envelopes that failed to decode (`invalid_envelopes{metric_version="2.0"}`).
    pub invalid_v2: Counter,
    /// v2 logs dropped because logs are disabled.
    pub logs_disabled: Counter,
    /// `source_id` taken from an `origin` tag.
    pub origin_mappings: Counter,
    /// Established doppler connections (one per stream).
    pub doppler_connections: Gauge,
    /// Established Pusher streams.
    pub doppler_v1_streams: Gauge,
    /// Established BatchSender streams.
    pub doppler_v2_streams: Gauge,
    /// Average size in bytes of v1 envelopes sent (60 s window).
    pub average_envelopes_v1: Gauge,
    /// Average size in bytes of v2 envelopes sent (60 s window).
    pub average_envelopes_v2: Gauge,
}

impl Metrics {
    /// Registers the agent's metrics in `registry`.
    pub fn new(registry: &Registry) -> Self {
        let v1 = ("metric_version", "1.0");
        let v2 = ("metric_version", "2.0");
        let c =
            |name: &str, help: &str, labels: &[(&str, &str)]| registry.counter(name, help, labels);
        let g =
            |name: &str, help: &str, labels: &[(&str, &str)]| registry.gauge(name, help, labels);
        let dropped = "Envelopes lost, by direction";
        Self {
            ingress_v1: c("ingress", "Envelopes received", &[v1]),
            ingress_v2: c("ingress", "Envelopes received", &[v2]),
            egress_v1: c("egress", "Envelopes sent to dopplers", &[v1]),
            egress_v2: c("egress", "Envelopes sent to dopplers", &[v2]),
            dropped_ring_v1: c("dropped", dropped, &[("direction", "all"), v1]),
            dropped_ingress_v2: c("dropped", dropped, &[("direction", "ingress"), v2]),
            dropped_egress_v1: c("dropped", dropped, &[("direction", "egress"), v1]),
            dropped_egress_v2: c("dropped", dropped, &[("direction", "egress"), v2]),
            invalid_v1: c(
                "invalid_envelopes",
                "Malformed or invalid envelopes discarded",
                &[v1],
            ),
            invalid_v2: c(
                "invalid_envelopes",
                "Malformed or invalid envelopes discarded",
                &[v2],
            ),
            logs_disabled: c(
                "logs_disabled_dropped",
                "v2 logs discarded because logs are disabled",
                &[v2],
            ),
            origin_mappings: c(
                "origin_mappings",
                "source_id taken from the origin tag",
                &[v2],
            ),
            doppler_connections: g(
                "doppler_connections",
                "Established doppler connections",
                &[],
            ),
            doppler_v1_streams: g("doppler_v1_streams", "Established Pusher streams", &[]),
            doppler_v2_streams: g("doppler_v2_streams", "Established BatchSender streams", &[]),
            average_envelopes_v1: g(
                "average_envelopes",
                "Average envelope size in bytes over 60 s",
                &[("loggregator", "v1"), ("unit", "bytes/minute")],
            ),
            average_envelopes_v2: g(
                "average_envelopes",
                "Average envelope size in bytes over 60 s",
                &[("loggregator", "v2"), ("unit", "bytes/minute")],
            ),
        }
    }
}
