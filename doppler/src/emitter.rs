//! Optional emission of doppler's own metrics as v2 envelopes to a local agent
//! (upstream behaviour, reference §9.1): every interval one `EnvelopeBatch`
//! via `loggregator.v2.Ingress/Send` with counters `ingress`, `egress`,
//! `dropped` (tag `direction`) carrying the delta since the last emission and
//! the running total, and the gauge `subscriptions`; `source_id` from the
//! config (default `doppler`), tags `origin=loggregator.doppler` and
//! `metric_version=2.0`. The agent's server name is `metron`. Failures are
//! logged at debug and retried at the next tick; nothing is queued.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use envelope_proto::loggregator_v2::{
    Counter, Envelope, EnvelopeBatch, Gauge, GaugeValue, envelope::Message,
    ingress_client::IngressClient,
};
use plumbing::metrics::Counter as MetricCounter;
use plumbing::shutdown::Shutdown;
use plumbing::tls::TlsFiles;

use crate::config::{AgentMetrics, TlsPaths};
use crate::metrics::Metrics;

/// Runs until shutdown.
pub async fn run(cfg: AgentMetrics, tls: Option<TlsPaths>, metrics: Metrics, shutdown: Shutdown) {
    let client_tls = match &tls {
        Some(p) => match plumbing::tls::client_config(&TlsFiles::new(&p.ca, &p.cert, &p.key)) {
            Ok(c) => Some((c, "metron")),
            Err(e) => {
                tracing::warn!(error = %e, "own-metric emission disabled: TLS config failed");
                return;
            }
        },
        None => None,
    };
    let channel = match plumbing::tls::grpc::channel(&cfg.addr, client_tls) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, addr = cfg.addr, "own-metric emission disabled");
            return;
        }
    };
    let mut client = IngressClient::new(channel);
    let mut last: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut tick = tokio::time::interval(cfg.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let batch = snapshot(&cfg.source_id, &metrics, &mut last);
        let send = client.send(batch);
        let limit = cfg.interval.max(std::time::Duration::from_secs(1));
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = tokio::time::timeout(limit, send) => match r {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::debug!(error = %e, "own-metric emission failed"),
                Err(_) => tracing::debug!("own-metric emission timed out"),
            },
        }
    }
}

fn snapshot(source_id: &str, m: &Metrics, last: &mut BTreeMap<&'static str, u64>) -> EnvelopeBatch {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let base_tags = || {
        BTreeMap::from([
            ("origin".to_owned(), "loggregator.doppler".to_owned()),
            ("metric_version".to_owned(), "2.0".to_owned()),
        ])
    };
    let counters: [(&'static str, &str, Option<&str>, &MetricCounter); 4] = [
        ("ingress", "ingress", None, &m.ingress),
        ("egress", "egress", None, &m.egress),
        (
            "dropped_ingress",
            "dropped",
            Some("ingress"),
            &m.dropped_ingress,
        ),
        (
            "dropped_egress",
            "dropped",
            Some("egress"),
            &m.dropped_egress,
        ),
    ];
    let mut batch = Vec::with_capacity(5);
    for (key, name, direction, c) in counters {
        let total = c.get();
        let prev = last.insert(key, total).unwrap_or(0);
        let mut tags = base_tags();
        if let Some(d) = direction {
            tags.insert("direction".to_owned(), d.to_owned());
        }
        batch.push(Envelope {
            timestamp: now,
            source_id: source_id.to_owned(),
            tags,
            message: Some(Message::Counter(Counter {
                name: name.to_owned(),
                delta: total.saturating_sub(prev),
                total,
            })),
            ..Default::default()
        });
    }
    batch.push(Envelope {
        timestamp: now,
        source_id: source_id.to_owned(),
        tags: base_tags(),
        message: Some(Message::Gauge(Gauge {
            metrics: BTreeMap::from([(
                "subscriptions".to_owned(),
                GaugeValue {
                    unit: "total".to_owned(),
                    value: m.subscriptions.get() as f64,
                },
            )]),
        })),
        ..Default::default()
    });
    EnvelopeBatch { batch }
}
