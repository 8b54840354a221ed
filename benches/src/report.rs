//! Results of a benchmark run, written as JSON (for tools) and Markdown (for docs/benchmarks.md).

use serde::Serialize;
use std::fmt::Write as _;

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Maximum.
    pub max_ms: f64,
}

impl Latency {
    /// Percentiles of a histogram recorded in microseconds.
    pub fn from_hist(h: &hdrhistogram::Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        if h.is_empty() {
            return Self::default();
        }
        Self {
            p50_ms: ms(h.value_at_quantile(0.50)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

/// CPU and memory of one process over a measured window.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessUse {
    /// Component name (e.g. `doppler`, `agent`, `bench`).
    pub name: String,
    /// Core-seconds per million envelopes offered.
    pub cpu_s_per_million: f64,
    /// Average cores busy over the window.
    pub cores: f64,
    /// Peak RSS in MiB.
    pub peak_rss_mib: f64,
    /// RSS at the end of the window in MiB.
    pub rss_mib: f64,
}

/// What one subscriber saw.
#[derive(Debug, Clone, Serialize)]
pub struct SubscriberResult {
    /// Label (e.g. `ws-3`, `v2-0`, `stalled`).
    pub name: String,
    /// Envelopes expected at this subscriber.
    pub expected: u64,
    /// Envelopes received.
    pub received: u64,
    /// Loss in percent of expected.
    pub loss_pct: f64,
    /// Rate-control warnings (log messages) received.
    pub warning_logs: u64,
    /// Drops announced by `TruncatingBuffer.DroppedMessages` counters received.
    pub announced_drops: u64,
    /// Whether the server closed the stream.
    pub disconnected: bool,
    /// Latency percentiles.
    pub latency: Latency,
}

/// Drop counters read from the components' `/metrics` after the run.
#[derive(Debug, Clone, Serialize, Default)]
pub struct DropAccount {
    /// `(component, metric line, value)` for every non-zero drop counter.
    pub counters: Vec<(String, String, f64)>,
}

/// One measured run at one offered rate.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// Offered envelopes per second.
    pub offered_rate: u64,
    /// Envelopes the generator handed to the transport.
    pub sent: u64,
    /// Envelopes due that the generator could not hand over.
    pub not_sent: u64,
    /// Subscribers.
    pub subscribers: Vec<SubscriberResult>,
    /// Per-process resource use.
    pub processes: Vec<ProcessUse>,
    /// Where drops were counted.
    pub drops: DropAccount,
}

impl RunResult {
    /// Worst loss over the subscribers that are expected to keep up (excluding deliberately slow ones).
    pub fn worst_loss_pct(&self, skip: &[&str]) -> f64 {
        self.subscribers
            .iter()
            .filter(|s| !skip.iter().any(|k| s.name.starts_with(k)))
            .map(|s| s.loss_pct)
            .fold(0.0, f64::max)
    }
}

/// A scenario with its rate sweep and summary.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    /// Scenario id (W1 …).
    pub id: String,
    /// What it measures.
    pub title: String,
    /// Highest offered rate with < 0.1 % loss (None if none qualified).
    pub max_rate_0_1pct: Option<u64>,
    /// Highest offered rate with < 1 % loss.
    pub max_rate_1pct: Option<u64>,
    /// Every run, in sweep order.
    pub runs: Vec<RunResult>,
    /// Free-form notes (e.g. why a run was skipped).
    pub notes: Vec<String>,
}

/// A whole suite run.
#[derive(Debug, Clone, Serialize)]
pub struct SuiteReport {
    /// Whether this was a `--quick` run (harness check, numbers not meaningful).
    pub quick: bool,
    /// Machine description.
    pub machine: String,
    /// Scenario results.
    pub scenarios: Vec<ScenarioResult>,
}

impl SuiteReport {
    /// Markdown rendering: one table per scenario.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Machine: {}{}\n",
            self.machine,
            if self.quick {
                " (quick mode: harness check only)"
            } else {
                ""
            }
        );
        for s in &self.scenarios {
            let _ = writeln!(out, "### {} — {}\n", s.id, s.title);
            let fmt_rate = |r: Option<u64>| r.map_or("–".to_owned(), |r| r.to_string());
            let _ = writeln!(
                out,
                "Max rate with < 0.1 % loss: **{}** env/s; with < 1 % loss: **{}** env/s\n",
                fmt_rate(s.max_rate_0_1pct),
                fmt_rate(s.max_rate_1pct)
            );
            let _ = writeln!(
                out,
                "| offered/s | subscriber | received | loss % | p50 ms | p99 ms | p999 ms | max ms | warnings | CPU s per M env (per process) | peak RSS MiB |"
            );
            let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
            for r in &s.runs {
                let cpu = r
                    .processes
                    .iter()
                    .map(|p| format!("{} {:.2}", p.name, p.cpu_s_per_million))
                    .collect::<Vec<_>>()
                    .join(", ");
                let rss = r
                    .processes
                    .iter()
                    .map(|p| format!("{} {:.0}", p.name, p.peak_rss_mib))
                    .collect::<Vec<_>>()
                    .join(", ");
                if r.subscribers.is_empty() {
                    let _ = writeln!(
                        out,
                        "| {} | – | – | – | – | – | – | – | – | {} | {} |",
                        r.offered_rate, cpu, rss
                    );
                }
                for (i, sub) in r.subscribers.iter().enumerate() {
                    let (c, m) = if i == 0 {
                        (cpu.as_str(), rss.as_str())
                    } else {
                        ("", "")
                    };
                    let _ = writeln!(
                        out,
                        "| {} | {} | {} | {:.3} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {} |",
                        r.offered_rate,
                        sub.name,
                        sub.received,
                        sub.loss_pct,
                        sub.latency.p50_ms,
                        sub.latency.p99_ms,
                        sub.latency.p999_ms,
                        sub.latency.max_ms,
                        sub.warning_logs,
                        c,
                        m
                    );
                }
                if !r.drops.counters.is_empty() {
                    let drops = r
                        .drops
                        .counters
                        .iter()
                        .map(|(c, m, v)| format!("{c} `{m}` = {v}"))
                        .collect::<Vec<_>>()
                        .join("; ");
                    let _ = writeln!(out, "| | drops counted | {drops} | | | | | | | | |");
                }
            }
            for n in &s.notes {
                let _ = writeln!(out, "\n_{n}_");
            }
            out.push('\n');
        }
        out
    }
}
