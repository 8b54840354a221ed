//! `dev --stats`: envelopes/s and drops per hop, read from each component's metrics registry.
//!
//! The registries are read through their Prometheus rendering, summing every series of a
//! metric name (so it does not depend on how a component labels its counters).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use plumbing::metrics::Registry;
use plumbing::shutdown::Shutdown;

use crate::cli::out;

/// The registries of one `dev` pipeline.
pub(crate) struct Hops {
    /// The agent's.
    pub(crate) agent: Registry,
    /// One per doppler.
    pub(crate) dopplers: Vec<Registry>,
    /// The traffic controller's.
    pub(crate) tc: Registry,
}

/// Sum per metric name of every series in a Prometheus text rendering.
pub(crate) fn totals(rendered: &str) -> BTreeMap<String, f64> {
    let mut sums = BTreeMap::new();
    for line in rendered.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let Some(value) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        *sums.entry(line[..name_end].to_owned()).or_insert(0.0) += value;
    }
    sums
}

#[derive(Default, Clone)]
struct Snapshot {
    agent: BTreeMap<String, f64>,
    dopplers: BTreeMap<String, f64>,
    tc: BTreeMap<String, f64>,
}

impl Hops {
    fn snapshot(&self) -> Snapshot {
        let mut dopplers = BTreeMap::new();
        for r in &self.dopplers {
            for (k, v) in totals(&r.render()) {
                *dopplers.entry(k).or_insert(0.0) += v;
            }
        }
        Snapshot {
            agent: totals(&self.agent.render()),
            dopplers,
            tc: totals(&self.tc.render()),
        }
    }
}

fn delta(now: &BTreeMap<String, f64>, before: &BTreeMap<String, f64>, name: &str) -> f64 {
    now.get(name).copied().unwrap_or(0.0) - before.get(name).copied().unwrap_or(0.0)
}

/// One stats line for the interval between two snapshots.
fn line(now: &Snapshot, before: &Snapshot, secs: f64) -> String {
    let rate =
        |m: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>, n: &str| delta(m, b, n) / secs;
    format!(
        "stats: agent in {:.0}/s out {:.0}/s dropped {:.0} | dopplers in {:.0}/s out {:.0}/s dropped {:.0} | traffic controller in {:.0}/s out {:.0}/s dropped {:.0}, slow consumers {:.0}\n",
        rate(&now.agent, &before.agent, "ingress"),
        rate(&now.agent, &before.agent, "egress"),
        delta(&now.agent, &before.agent, "dropped"),
        rate(&now.dopplers, &before.dopplers, "ingress"),
        rate(&now.dopplers, &before.dopplers, "egress"),
        delta(&now.dopplers, &before.dopplers, "dropped"),
        rate(&now.tc, &before.tc, "ingress"),
        rate(&now.tc, &before.tc, "egress"),
        delta(&now.tc, &before.tc, "dropped"),
        delta(&now.tc, &before.tc, "doppler_proxy_slow_consumer"),
    )
}

/// Prints a stats line every `interval` until shutdown.
pub(crate) async fn run(hops: Hops, interval: Duration, shutdown: Shutdown) {
    let mut before = hops.snapshot();
    let mut at = Instant::now();
    let mut ticker = tokio::time::interval(interval);
    ticker.tick().await;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let now = hops.snapshot();
        let secs = at.elapsed().as_secs_f64().max(1e-3);
        at = Instant::now();
        let _ = out::stdout(&line(&now, &before, secs));
        before = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_sum_series_by_name() {
        let text = "# HELP dropped x\n# TYPE dropped counter\ndropped{direction=\"egress\"} 3\ndropped{direction=\"ingress\"} 4\ningress 10\n";
        let t = totals(text);
        assert_eq!(t.get("dropped"), Some(&7.0));
        assert_eq!(t.get("ingress"), Some(&10.0));
    }

    #[test]
    fn line_reports_rates_and_drops() {
        let registry = Registry::new();
        let hops = Hops {
            agent: registry.clone(),
            dopplers: vec![Registry::new()],
            tc: Registry::new(),
        };
        let before = hops.snapshot();
        registry.counter("ingress", "h", &[]).add(50);
        registry
            .counter("dropped", "h", &[("direction", "egress")])
            .add(2);
        let now = hops.snapshot();
        let l = line(&now, &before, 5.0);
        assert!(
            l.starts_with("stats: agent in 10/s out 0/s dropped 2 |"),
            "{l}"
        );
    }
}
