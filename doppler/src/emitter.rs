//! Optional emission of doppler's own metrics as v2 envelopes to a local agent
//! (upstream behaviour, reference §9.1), through [`plumbing::emitter`]: every
//! interval one `EnvelopeBatch` via `loggregator.v2.Ingress/Send` with
//! counters `ingress`, `egress`, `dropped` (tag `direction`) carrying the
//! delta since the last emission and the running total, and the gauge
//! `subscriptions` (unit `total`); `source_id` from the config (default
//! `doppler`), tags `origin=loggregator.doppler` and `metric_version=2.0`. The
//! agent's server name is `metron`. Failures are logged at debug and the next
//! tick sends fresh values; nothing is queued.

use plumbing::emitter::{AGENT_SERVER_NAME, Description};
use plumbing::shutdown::Shutdown;
use plumbing::tls::TlsFiles;

use crate::config::{AgentMetrics, TlsPaths};
use crate::metrics::Metrics;

/// Origin tag of doppler's own metrics.
pub const ORIGIN: &str = "loggregator.doppler";

/// Runs until shutdown.
pub async fn run(cfg: AgentMetrics, tls: Option<TlsPaths>, metrics: Metrics, shutdown: Shutdown) {
    let client_tls = match &tls {
        Some(p) => match plumbing::tls::client_config(&TlsFiles::new(&p.ca, &p.cert, &p.key)) {
            Ok(c) => Some((c, AGENT_SERVER_NAME)),
            Err(e) => {
                tracing::warn!(error = %e, "own-metric emission disabled: TLS config failed");
                return;
            }
        },
        None => None,
    };
    plumbing::emitter::run(
        cfg.addr,
        client_tls,
        cfg.interval,
        description(&cfg.source_id, &metrics),
        shutdown.token().clone(),
    )
    .await;
}

/// What doppler emits, in batch order: `ingress`, `egress`,
/// `dropped{direction=ingress}`, `dropped{direction=egress}`, then the gauge
/// `subscriptions`.
pub fn description(source_id: &str, m: &Metrics) -> Description {
    Description::new(source_id, ORIGIN)
        .tag("metric_version", "2.0")
        .counter("ingress", &[], m.ingress.clone())
        .counter("egress", &[], m.egress.clone())
        .counter(
            "dropped",
            &[("direction", "ingress")],
            m.dropped_ingress.clone(),
        )
        .counter(
            "dropped",
            &[("direction", "egress")],
            m.dropped_egress.clone(),
        )
        .gauge("subscriptions", "total", m.subscriptions.clone())
}

#[cfg(test)]
mod tests {
    use envelope_proto::loggregator_v2::envelope::Message;
    use plumbing::emitter::Snapshots;
    use plumbing::metrics::Registry;

    use super::*;

    #[test]
    fn envelopes_match_upstream_names_and_tags() {
        let metrics = Metrics::new(&Registry::new());
        metrics.ingress.add(7);
        metrics.dropped_egress.add(2);
        metrics.subscriptions.set(3);
        let batch = Snapshots::new(description("doppler", &metrics)).next_batch(1);
        let got: Vec<(String, Option<String>, u64, u64)> = batch
            .batch
            .iter()
            .filter_map(|e| match &e.message {
                Some(Message::Counter(c)) => Some((
                    c.name.clone(),
                    e.tags.get("direction").cloned(),
                    c.delta,
                    c.total,
                )),
                _ => None,
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("ingress".to_owned(), None, 7, 7),
                ("egress".to_owned(), None, 0, 0),
                ("dropped".to_owned(), Some("ingress".to_owned()), 0, 0),
                ("dropped".to_owned(), Some("egress".to_owned()), 2, 2),
            ]
        );
        let Some(Message::Gauge(g)) = &batch.batch[4].message else {
            panic!("last envelope is not the gauge: {:?}", batch.batch[4]);
        };
        let v = &g.metrics["subscriptions"];
        assert_eq!((v.unit.as_str(), v.value), ("total", 3.0));
        for e in &batch.batch {
            assert_eq!(e.source_id, "doppler");
            assert_eq!(e.tags.get("origin").map(String::as_str), Some(ORIGIN));
            assert_eq!(
                e.tags.get("metric_version").map(String::as_str),
                Some("2.0")
            );
        }
    }
}
