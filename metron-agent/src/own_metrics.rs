//! The agent's own metrics as v2 envelopes (source_id `metron` by default),
//! injected into the v2 ring every `metrics_interval` so they flow through
//! the pipeline like any emitter's: counters carry the cumulative value as
//! `total` (and the increase since the last emission as `delta`), gauges the
//! current value. They are tagged like every other v2 envelope.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use envelope_proto::loggregator_v2::{Counter, Envelope, Gauge, GaugeValue, envelope::Message};
use plumbing::metrics::Counter as MetricCounter;
use plumbing::ring::Ring;
use plumbing::shutdown::Shutdown;
use prost::Message as _;

use crate::metrics::Metrics;
use crate::process::v2::V2Processor;

/// A counter emitted as an envelope: name, tags, handle.
type Emitted<'a> = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'a MetricCounter,
);

/// Emits until shutdown; does nothing when `interval` is zero.
pub async fn run(
    interval: Duration,
    source_id: String,
    metrics: Metrics,
    processor: Arc<V2Processor>,
    ring: Arc<Ring<Bytes>>,
    shutdown: Shutdown,
) {
    if interval.is_zero() {
        return;
    }
    let m = &metrics;
    let counters: Vec<Emitted<'_>> = vec![
        ("ingress", &[("metric_version", "1.0")], &m.ingress_v1),
        ("ingress", &[("metric_version", "2.0")], &m.ingress_v2),
        ("egress", &[("metric_version", "1.0")], &m.egress_v1),
        ("egress", &[("metric_version", "2.0")], &m.egress_v2),
        (
            "dropped",
            &[("direction", "all"), ("metric_version", "1.0")],
            &m.dropped_ring_v1,
        ),
        (
            "dropped",
            &[("direction", "ingress"), ("metric_version", "2.0")],
            &m.dropped_ingress_v2,
        ),
        (
            "dropped",
            &[("direction", "egress"), ("metric_version", "1.0")],
            &m.dropped_egress_v1,
        ),
        (
            "dropped",
            &[("direction", "egress"), ("metric_version", "2.0")],
            &m.dropped_egress_v2,
        ),
        (
            "origin_mappings",
            &[("metric_version", "2.0")],
            &m.origin_mappings,
        ),
    ];
    let mut last = vec![0u64; counters.len()];
    let mut ticker = tokio::time::interval(interval);
    ticker.tick().await;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let now = envelope_proto::timestamp::now();
        let base = |tags: &[(&str, &str)]| Envelope {
            timestamp: now,
            source_id: source_id.clone(),
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..Default::default()
        };
        for (i, (name, tags, counter)) in counters.iter().enumerate() {
            let value = counter.get();
            let mut env = base(tags);
            env.message = Some(Message::Counter(Counter {
                name: (*name).to_owned(),
                delta: value.saturating_sub(last[i]),
                total: value,
            }));
            last[i] = value;
            push(&processor, &ring, env);
        }
        let mut gauge = Gauge::default();
        for (name, unit, v) in [
            (
                "doppler_connections",
                "connections",
                m.doppler_connections.get(),
            ),
            ("doppler_v1_streams", "streams", m.doppler_v1_streams.get()),
            ("doppler_v2_streams", "streams", m.doppler_v2_streams.get()),
        ] {
            gauge.metrics.insert(
                name.to_owned(),
                GaugeValue {
                    unit: unit.to_owned(),
                    value: v as f64,
                },
            );
        }
        let mut env = base(&[]);
        env.message = Some(Message::Gauge(gauge));
        push(&processor, &ring, env);
    }
}

fn push(processor: &V2Processor, ring: &Ring<Bytes>, mut env: Envelope) {
    processor.tag_and_total(&mut env);
    ring.push(Bytes::from(env.encode_to_vec()));
}
