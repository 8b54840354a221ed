//! Periodic emission of a component's own metrics as v2 envelopes to the local agent
//! (upstream behaviour: doppler, reference §9.1; traffic controller, §12.7).
//!
//! A [`Description`] says what to emit: the `source_id`, the `origin` tag, tags common to
//! every envelope (e.g. `metric_version=2.0`), counters (name, extra tags, a
//! [`metrics::Counter`](crate::metrics::Counter) handle) and gauges (name, unit, a
//! [`metrics::Gauge`](crate::metrics::Gauge) handle). [`run`] sends, every interval, one
//! `EnvelopeBatch` with `loggregator.v2.Ingress/Send`:
//!
//! - one Counter envelope per counter, in the order given: `total` is the handle's value and
//!   `delta` the increase since the previous emission (the first emission's delta is the
//!   total);
//! - then one Gauge envelope per gauge, each holding its one metric with its unit.
//!
//! The first batch goes out at once, then one per interval. A send that fails or takes longer
//! than the interval (at least 1 s) is logged at debug; the next tick sends fresh values.
//! Nothing is queued, so the deltas of a batch that did not arrive are lost (the totals stay
//! right). An interval of zero means "never emit": [`run`] returns at once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use envelope_proto::loggregator_v2::{
    Counter as CounterMessage, Envelope, EnvelopeBatch, Gauge as GaugeMessage, GaugeValue,
    envelope::Message, ingress_client::IngressClient,
};
use rustls::ClientConfig;
use tokio_util::sync::CancellationToken;

use crate::metrics::{Counter, Gauge};

/// TLS server name of the local agent (upstream's `metron`).
pub const AGENT_SERVER_NAME: &str = "metron";

/// One counter to emit.
#[derive(Debug, Clone)]
struct CounterSpec {
    name: String,
    tags: Vec<(String, String)>,
    handle: Counter,
}

/// One gauge to emit.
#[derive(Debug, Clone)]
struct GaugeSpec {
    name: String,
    unit: String,
    handle: Gauge,
}

/// What a component emits: identity, common tags, counters and gauges. Build it with
/// [`Description::new`] and the chained [`Description::tag`], [`Description::counter`] and
/// [`Description::gauge`].
#[derive(Debug, Clone)]
pub struct Description {
    source_id: String,
    tags: BTreeMap<String, String>,
    counters: Vec<CounterSpec>,
    gauges: Vec<GaugeSpec>,
}

impl Description {
    /// Envelopes with `source_id` and the tag `origin=<origin>`, no metrics yet.
    pub fn new(source_id: &str, origin: &str) -> Self {
        Description {
            source_id: source_id.to_owned(),
            tags: BTreeMap::from([("origin".to_owned(), origin.to_owned())]),
            counters: Vec::new(),
            gauges: Vec::new(),
        }
    }

    /// Adds a tag to every envelope (e.g. `metric_version=2.0`).
    pub fn tag(mut self, key: &str, value: &str) -> Self {
        self.tags.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Adds a counter `name` with extra `tags` (on top of the common ones) read from `handle`.
    pub fn counter(mut self, name: &str, tags: &[(&str, &str)], handle: Counter) -> Self {
        self.counters.push(CounterSpec {
            name: name.to_owned(),
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            handle,
        });
        self
    }

    /// Adds a gauge metric `name` with `unit` read from `handle`.
    pub fn gauge(mut self, name: &str, unit: &str, handle: Gauge) -> Self {
        self.gauges.push(GaugeSpec {
            name: name.to_owned(),
            unit: unit.to_owned(),
            handle,
        });
        self
    }

    /// The `source_id` of the envelopes.
    pub fn source_id(&self) -> &str {
        &self.source_id
    }
}

/// Builds successive batches from a [`Description`], remembering the counter totals of the
/// previous batch to compute deltas.
#[derive(Debug, Clone)]
pub struct Snapshots {
    description: Description,
    previous: Vec<u64>,
}

impl Snapshots {
    /// Starts with every previous total at zero.
    pub fn new(description: Description) -> Self {
        let previous = vec![0; description.counters.len()];
        Snapshots {
            description,
            previous,
        }
    }

    /// The next batch, stamped `timestamp` (nanoseconds since the Unix epoch).
    ///
    /// A counter whose value went down (a handle that was reset) reports delta 0.
    pub fn next_batch(&mut self, timestamp: i64) -> EnvelopeBatch {
        let d = &self.description;
        let mut batch = Vec::with_capacity(d.counters.len() + d.gauges.len());
        for (spec, previous) in d.counters.iter().zip(self.previous.iter_mut()) {
            let total = spec.handle.get();
            let delta = total.saturating_sub(*previous);
            *previous = total;
            let mut tags = d.tags.clone();
            tags.extend(spec.tags.iter().cloned());
            batch.push(Envelope {
                timestamp,
                source_id: d.source_id.clone(),
                tags,
                message: Some(Message::Counter(CounterMessage {
                    name: spec.name.clone(),
                    delta,
                    total,
                })),
                ..Default::default()
            });
        }
        for spec in &d.gauges {
            batch.push(Envelope {
                timestamp,
                source_id: d.source_id.clone(),
                tags: d.tags.clone(),
                message: Some(Message::Gauge(GaugeMessage {
                    metrics: BTreeMap::from([(
                        spec.name.clone(),
                        GaugeValue {
                            unit: spec.unit.clone(),
                            value: spec.handle.get() as f64,
                        },
                    )]),
                })),
                ..Default::default()
            });
        }
        EnvelopeBatch { batch }
    }
}

/// Sends `description`'s metrics to the agent at `addr` (`host:port`) every `interval` until
/// `cancel` fires; over TLS when `tls` is given (`(config, server name)`, normally
/// [`AGENT_SERVER_NAME`]). Returns at once when `interval` is zero, and after a warning when
/// `addr` or the server name is invalid.
pub async fn run(
    addr: String,
    tls: Option<(Arc<ClientConfig>, &'static str)>,
    interval: Duration,
    description: Description,
    cancel: CancellationToken,
) {
    if interval.is_zero() {
        tracing::debug!(
            source_id = description.source_id(),
            "own-metric emission disabled (interval 0)"
        );
        return;
    }
    let channel = match crate::tls::grpc::channel(&addr, tls) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, addr = %addr, "own-metric emission disabled");
            return;
        }
    };
    let mut client = IngressClient::new(channel);
    let mut snapshots = Snapshots::new(description);
    let limit = interval.max(Duration::from_secs(1));
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let batch = snapshots.next_batch(envelope_proto::timestamp::now());
        tokio::select! {
            _ = cancel.cancelled() => return,
            r = tokio::time::timeout(limit, client.send(batch)) => match r {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::debug!(error = %e, "own-metric emission failed"),
                Err(_) => tracing::debug!("own-metric emission timed out"),
            },
        }
    }
}

#[cfg(test)]
mod tests;
