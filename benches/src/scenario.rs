//! The W1–W9 scenarios of docs/benchmarks.md (the Log Cache ones are in [`crate::logcache`]) and the rate sweep that finds, for each, the highest
//! offered rate with < 0.1 % and < 1 % loss at the subscribers that should keep up.

use crate::cluster::{Cluster, ClusterSpec, Pki};
use crate::load::{self, LoadSpec, Target};
use crate::procstat;
use crate::profile::{Profile, Templates, source_id};
use crate::report::{
    DropAccount, Latency, ProcessUse, RunResult, ScenarioResult, SubscriberResult,
};
use crate::scrape;
use crate::subscribe::{self, Pace, Subscriber};
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Options shared by every scenario.
#[derive(Debug, Clone)]
pub struct SuiteOptions {
    /// The `loggregator` binary whose subcommands start the components.
    pub binary: PathBuf,
    /// Quick mode: every scenario briefly, to prove the harness works.
    pub quick: bool,
    /// Measured seconds per rate.
    pub seconds: f64,
    /// Rates to sweep, ascending.
    pub rates: Vec<u64>,
    /// Only these scenario ids (empty = all).
    pub only: Vec<String>,
}

/// Which envelopes a consumer should receive, to compute its expected count exactly.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Everything sent.
    All,
    /// Everything sent into doppler number `n`.
    Doppler(usize),
    /// Everything sent with source number `n`.
    Source(usize),
}

/// A consumer to attach for a run.
#[derive(Debug, Clone)]
enum Consumer {
    /// v2 gRPC on doppler `doppler`, with an optional `source` filter.
    V2 {
        name: String,
        doppler: usize,
        source: String,
        pace: Pace,
        expect: Expect,
    },
    /// WebSocket firehose with subscription id.
    Firehose {
        name: String,
        sub: String,
        pace: Pace,
        expect: Expect,
    },
    /// WebSocket app stream.
    AppStream {
        name: String,
        app: String,
        pace: Pace,
        expect: Expect,
    },
    /// SSE `/v2/read` firehose.
    Sse {
        name: String,
        shard: String,
        pace: Pace,
        expect: Expect,
    },
}

impl Consumer {
    fn name(&self) -> &str {
        match self {
            Self::V2 { name, .. }
            | Self::Firehose { name, .. }
            | Self::AppStream { name, .. }
            | Self::Sse { name, .. } => name,
        }
    }
    fn expect(&self) -> Expect {
        match self {
            Self::V2 { expect, .. }
            | Self::Firehose { expect, .. }
            | Self::AppStream { expect, .. }
            | Self::Sse { expect, .. } => *expect,
        }
    }
}

/// What one generator sent, to compute expectations.
struct Sent {
    entry: usize,
    templates: Templates,
    sent: u64,
}

fn expected(expect: Expect, sent: &[Sent]) -> u64 {
    sent.iter()
        .map(|g| match expect {
            Expect::All => g.sent,
            Expect::Doppler(d) => {
                if g.entry == d {
                    g.sent
                } else {
                    0
                }
            }
            Expect::Source(src) => g.templates.sent_to(src, g.sent),
        })
        .sum()
}

/// How load enters the system.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Entry {
    /// v2 BatchSender straight into the dopplers (spread over all of them).
    Doppler,
    /// v2 BatchSender into the agent.
    Agent,
}

#[derive(Debug, Clone)]
struct Scenario {
    id: &'static str,
    title: &'static str,
    dopplers: usize,
    agent: bool,
    tc: bool,
    entry: Entry,
    profile: Profile,
    sources: usize,
    /// Share of traffic for source 0 (noisy neighbour); 0 = uniform.
    noisy_share: f64,
    /// 10× bursts for 1 s every 10 s.
    bursts: bool,
    consumers: Vec<Consumer>,
    /// Consumers whose loss does not count for the sweep (deliberately slow ones).
    exempt: Vec<&'static str>,
    /// Idle v2 subscriptions and extra ingress streams (W8).
    idle_subscribers: usize,
    ingress_streams: usize,
    /// Fixed rate instead of a sweep (W8).
    fixed_rate: Option<u64>,
}

fn fast(name: &str, sub: &str) -> Consumer {
    Consumer::Firehose {
        name: name.to_owned(),
        sub: sub.to_owned(),
        pace: Pace::Fast,
        expect: Expect::All,
    }
}

fn scenarios(quick: bool) -> Vec<Scenario> {
    let base = Scenario {
        id: "",
        title: "",
        dopplers: 1,
        agent: false,
        tc: false,
        entry: Entry::Doppler,
        profile: Profile::Logs,
        sources: 1,
        noisy_share: 0.0,
        bursts: false,
        consumers: Vec::new(),
        exempt: Vec::new(),
        idle_subscribers: 0,
        ingress_streams: 1,
        fixed_rate: None,
    };
    let v2 = |name: &str| Consumer::V2 {
        name: name.to_owned(),
        doppler: 0,
        source: String::new(),
        pace: Pace::Fast,
        expect: Expect::All,
    };
    let mut out = vec![
        Scenario {
            id: "W1",
            title: "agent ingress only (v2 gRPC into the agent, on to one doppler; no subscribers)",
            agent: true,
            entry: Entry::Agent,
            ..base.clone()
        },
        Scenario {
            id: "W2",
            title: "doppler with one v2 gRPC subscriber",
            consumers: vec![v2("v2")],
            ..base.clone()
        },
        Scenario {
            id: "W2a",
            title: "W2 entered through an agent (agent → doppler → one v2 subscriber): the agent's added latency is W2a − W2",
            agent: true,
            entry: Entry::Agent,
            consumers: vec![v2("v2")],
            ..base.clone()
        },
    ];
    for n in if quick {
        vec![1, 4]
    } else {
        vec![1, 4, 16, 64]
    } {
        let id: &'static str = match n {
            1 => "W3-1",
            4 => "W3-4",
            16 => "W3-16",
            _ => "W3-64",
        };
        out.push(Scenario {
            id,
            title: "firehose through the traffic controller, N WebSocket subscribers with distinct subscription ids",
            tc: true,
            consumers: (0..n).map(|i| fast(&format!("ws-{i}"), &format!("bench-{i}"))).collect(),
            ..base.clone()
        });
    }
    out.push(Scenario {
        id: "W3-1a",
        title: "the whole pipeline: agent → doppler → traffic controller → one WebSocket firehose subscriber",
        agent: true,
        entry: Entry::Agent,
        tc: true,
        consumers: vec![fast("ws-0", "bench-0")],
        ..base.clone()
    });
    out.push(Scenario {
        id: "W4",
        title: "mixed envelope types (logs, counters, container gauges, timers): v2 subscriber, firehose and SSE",
        tc: true,
        profile: Profile::Mixed,
        sources: 20,
        consumers: vec![v2("v2"), fast("ws", "bench-mixed"), Consumer::Sse { name: "sse".into(), shard: "bench-sse".into(), pace: Pace::Fast, expect: Expect::All }],
        ..base.clone()
    });
    let apps = if quick { 10 } else { 100 };
    let mut w5 = vec![fast("firehose", "bench-w5")];
    for i in 0..apps {
        w5.push(Consumer::AppStream {
            name: format!("app-{i}"),
            app: source_id(i),
            pace: Pace::Fast,
            expect: Expect::Source(i),
        });
    }
    out.push(Scenario {
        id: "W5",
        title: "1,000 apps, app-stream subscribers plus a firehose",
        tc: true,
        sources: 1000,
        consumers: w5,
        ..base.clone()
    });
    out.push(Scenario {
        id: "W6",
        title: "slow consumers: one stalled, one slow, two fast firehose subscribers (fast ones must lose nothing)",
        tc: true,
        consumers: vec![
            Consumer::Firehose { name: "stalled".into(), sub: "bench-stalled".into(), pace: Pace::Stalled, expect: Expect::All },
            Consumer::Firehose { name: "slow".into(), sub: "bench-slow".into(), pace: Pace::Slow(Duration::from_millis(1)), expect: Expect::All },
            fast("fast-a", "bench-fast-a"),
            fast("fast-b", "bench-fast-b"),
        ],
        exempt: vec!["stalled", "slow"],
        ..base.clone()
    });
    let mut w7 = vec![fast("firehose", "bench-w7")];
    for i in 1..=10 {
        // Quiet apps: each gets (1 - 0.9) / 999 of the traffic.
        w7.push(Consumer::AppStream {
            name: format!("quiet-{i}"),
            app: source_id(i),
            pace: Pace::Fast,
            expect: Expect::Source(i),
        });
    }
    out.push(Scenario {
        id: "W7",
        title: "noisy neighbour: one app is 90 % of traffic, 10× bursts for 1 s every 10 s",
        tc: true,
        sources: 1000,
        noisy_share: 0.9,
        bursts: !quick,
        consumers: w7,
        ..base.clone()
    });
    let n8 = if quick { 50 } else { 1000 };
    out.push(Scenario {
        id: "W8",
        title: "1,000 ingress streams at 10 env/s each and 1,000 idle subscribers (memory)",
        consumers: vec![v2("v2")],
        idle_subscribers: n8,
        ingress_streams: n8,
        fixed_rate: Some(10 * n8 as u64),
        ..base.clone()
    });
    out.push(Scenario {
        id: "W9",
        title: "two dopplers, load spread over both, traffic controller joined to both",
        dopplers: 2,
        tc: true,
        consumers: vec![
            fast("ws", "bench-w9"),
            Consumer::V2 {
                name: "v2-d0".into(),
                doppler: 0,
                source: String::new(),
                pace: Pace::Fast,
                expect: Expect::Doppler(0),
            },
            Consumer::V2 {
                name: "v2-d1".into(),
                doppler: 1,
                source: String::new(),
                pace: Pace::Fast,
                expect: Expect::Doppler(1),
            },
        ],
        ..base
    });
    out
}

/// Runs the suite.
pub async fn run_suite(opts: &SuiteOptions) -> anyhow::Result<Vec<ScenarioResult>> {
    let pki = Pki::generate()?;
    let mut results = Vec::new();
    for sc in scenarios(opts.quick) {
        if !opts.only.is_empty() && !opts.only.iter().any(|o| sc.id.starts_with(o.as_str())) {
            continue;
        }
        tracing::info!(scenario = sc.id, "starting");
        let r = run_scenario(&sc, opts, &pki).await;
        match r {
            Ok(r) => results.push(r),
            Err(e) => results.push(ScenarioResult {
                id: sc.id.into(),
                title: sc.title.into(),
                max_rate_0_1pct: None,
                max_rate_1pct: None,
                runs: Vec::new(),
                notes: vec![format!("scenario failed: {e:#}")],
            }),
        }
    }
    results.extend(crate::logcache::run_suite(opts, &pki).await);
    Ok(results)
}

async fn run_scenario(
    sc: &Scenario,
    opts: &SuiteOptions,
    pki: &Pki,
) -> anyhow::Result<ScenarioResult> {
    let spec = ClusterSpec {
        binary: opts.binary.clone(),
        dopplers: sc.dopplers,
        agent: sc.agent,
        tc: sc.tc,
    };
    let cluster = tokio::task::block_in_place(|| Cluster::start(&spec, pki))?;
    let mut result = ScenarioResult {
        id: sc.id.into(),
        title: sc.title.into(),
        max_rate_0_1pct: None,
        max_rate_1pct: None,
        runs: Vec::new(),
        notes: Vec::new(),
    };
    let rates: Vec<u64> = match sc.fixed_rate {
        Some(r) => vec![r],
        None => opts.rates.clone(),
    };
    for &rate in &rates {
        let run = run_once(sc, &cluster, pki, rate, opts.seconds).await?;
        let loss = if run.subscribers.is_empty() {
            // No subscribers: loss is what the generator could not hand over plus every drop the
            // components counted.
            let counted: f64 = run.drops.counters.iter().map(|(_, _, v)| v).sum();
            100.0 * (run.not_sent as f64 + counted) / (run.sent + run.not_sent).max(1) as f64
        } else {
            run.worst_loss_pct(&sc.exempt)
        };
        if loss < 0.1 {
            result.max_rate_0_1pct = Some(rate);
        }
        if loss < 1.0 {
            result.max_rate_1pct = Some(rate);
        }
        result.runs.push(run);
        if loss >= 1.0 {
            break;
        }
    }
    // Latency at 90 % of the highest loss-free rate, when the sweep found one above the first rate.
    if let Some(max) = result.max_rate_0_1pct
        && sc.fixed_rate.is_none()
        && !opts.quick
    {
        let r90 = max * 9 / 10;
        if !rates.contains(&r90) {
            let run = run_once(sc, &cluster, pki, r90, opts.seconds).await?;
            result.notes.push(format!(
                "run at {r90}/s is 90 % of the highest < 0.1 % loss rate"
            ));
            result.runs.push(run);
        }
    }
    Ok(result)
}

async fn run_once(
    sc: &Scenario,
    cluster: &Cluster,
    pki: &Pki,
    rate: u64,
    seconds: f64,
) -> anyhow::Result<RunResult> {
    quiesce(cluster).await;
    let stop = CancellationToken::new();
    // Subscribers first, so nothing is missed.
    let mut subs: Vec<(Consumer, Subscriber)> = Vec::new();
    for c in &sc.consumers {
        let s = match c {
            Consumer::V2 {
                doppler,
                source,
                pace,
                ..
            } => {
                let ch = Cluster::channel(pki, &cluster.dopplers[*doppler], "doppler")?;
                subscribe::grpc_v2(ch, "", source, *pace, stop.clone())
            }
            Consumer::Firehose { sub, pace, .. } => {
                let tc = cluster
                    .tc
                    .as_deref()
                    .ok_or_else(|| anyhow::anyhow!("no traffic controller"))?;
                subscribe::websocket(format!("ws://{tc}/firehose/{sub}"), *pace, stop.clone())
            }
            Consumer::AppStream { app, pace, .. } => {
                let tc = cluster
                    .tc
                    .as_deref()
                    .ok_or_else(|| anyhow::anyhow!("no traffic controller"))?;
                subscribe::websocket(format!("ws://{tc}/apps/{app}/stream"), *pace, stop.clone())
            }
            Consumer::Sse { shard, pace, .. } => {
                let tc = cluster
                    .tc
                    .as_deref()
                    .ok_or_else(|| anyhow::anyhow!("no traffic controller"))?;
                subscribe::sse(
                    format!("http://{tc}/v2/read?log&counter&gauge&timer&event&shard_id={shard}"),
                    *pace,
                    stop.clone(),
                )
            }
        };
        subs.push((c.clone(), s));
    }
    let mut idle = Vec::new();
    for i in 0..sc.idle_subscribers {
        let ch = Cluster::channel(
            pki,
            &cluster.dopplers[i % cluster.dopplers.len()],
            "doppler",
        )?;
        idle.push(subscribe::grpc_v2(
            ch,
            "",
            "idle-source-never-emits",
            Pace::Fast,
            stop.clone(),
        ));
    }
    tokio::time::sleep(Duration::from_millis(if sc.idle_subscribers > 0 {
        3000
    } else {
        700
    }))
    .await;

    let before_drops = scrape_all(cluster).await;
    let pids: Vec<(String, u32)> = cluster
        .procs
        .iter()
        .map(|p| (p.name.clone(), p.pid()))
        .chain(std::iter::once(("bench".to_owned(), std::process::id())))
        .collect();
    let before: Vec<_> = pids
        .iter()
        .map(|(_, pid)| procstat::sample(*pid).ok())
        .collect();

    let templates = Templates::with_noisy(sc.profile, sc.sources, sc.noisy_share);
    let duration = Duration::from_secs_f64(seconds);
    let spec = LoadSpec {
        rate,
        duration,
        batch: 100.min((rate / 100).max(1) as usize),
    };
    let mut loads = Vec::new();
    let entries: Vec<String> = match sc.entry {
        Entry::Agent => vec![
            cluster
                .agent
                .as_ref()
                .map(|a| a.0.clone())
                .ok_or_else(|| anyhow::anyhow!("no agent"))?,
        ],
        Entry::Doppler => cluster.dopplers.clone(),
    };
    let server_name = if sc.entry == Entry::Agent {
        "metron"
    } else {
        "doppler"
    };
    let per_entry_streams = sc.ingress_streams.max(1);
    let n_gen = entries.len();
    for (i, addr) in entries.iter().enumerate() {
        let target = if per_entry_streams > 1 {
            // Many independent connections (W8): one channel per stream.
            let mut targets = Vec::new();
            for _ in 0..per_entry_streams {
                targets.push(Cluster::channel(pki, addr, server_name)?);
            }
            targets
        } else {
            vec![Cluster::channel(pki, addr, server_name)?]
        };
        let n = target.len();
        for channel in target {
            let per_stream = (rate / (n_gen * n) as u64).max(1);
            let spec = LoadSpec {
                rate: per_stream,
                // A slow stream (W8: 10 env/s) sends small batches often rather than one
                // batch of 100 every 10 s: otherwise every stream's first batch is due at
                // t = 0 and 1,000 streams burst 100,000 envelopes at once.
                batch: spec.batch.min(
                    usize::try_from(per_stream / 10)
                        .unwrap_or(usize::MAX)
                        .max(1),
                ),
                ..spec.clone()
            };
            loads.push((
                i,
                tokio::spawn(load::run(
                    Target::GrpcV2 {
                        channel,
                        streams: 1,
                    },
                    templates.clone(),
                    spec,
                )),
            ));
        }
    }
    if sc.bursts {
        let burst_addr = entries[0].clone();
        let channel = Cluster::channel(pki, &burst_addr, server_name)?;
        let t = templates.clone();
        let total = duration;
        loads.push((
            0,
            tokio::spawn(async move {
                let mut report = load::LoadReport::default();
                let mut elapsed = Duration::ZERO;
                while elapsed + Duration::from_secs(10) <= total {
                    tokio::time::sleep(Duration::from_secs(9)).await;
                    let r = load::run(
                        Target::GrpcV2 {
                            channel: channel.clone(),
                            streams: 1,
                        },
                        t.clone(),
                        LoadSpec {
                            rate: rate * 9,
                            duration: Duration::from_secs(1),
                            batch: 100,
                        },
                    )
                    .await;
                    report.sent += r.sent;
                    report.not_sent += r.not_sent;
                    elapsed += Duration::from_secs(10);
                }
                report
            }),
        ));
    }
    let mut sent = 0;
    let mut not_sent = 0;
    let mut per_generator = Vec::new();
    for (entry, l) in loads {
        let r = l.await?;
        sent += r.sent;
        not_sent += r.not_sent;
        per_generator.push(Sent {
            entry,
            templates: templates.clone(),
            sent: r.sent,
        });
    }
    // Let in-flight envelopes arrive.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after: Vec<_> = pids
        .iter()
        .map(|(_, pid)| procstat::sample(*pid).ok())
        .collect();
    let after_drops = scrape_all(cluster).await;

    let million = sent.max(1) as f64 / 1e6;
    let window = seconds + 1.5;
    let processes = pids
        .iter()
        .zip(before.iter().zip(after.iter()))
        .filter_map(|((name, _), (b, a))| {
            let (b, a) = (b.as_ref()?, a.as_ref()?);
            let cpu = procstat::cpu_seconds(b, a);
            Some(ProcessUse {
                name: name.clone(),
                cpu_s_per_million: cpu / million,
                cores: cpu / window,
                peak_rss_mib: a.peak_rss_bytes as f64 / (1 << 20) as f64,
                rss_mib: a.rss_bytes as f64 / (1 << 20) as f64,
            })
        })
        .collect();

    let mut subscribers = Vec::new();
    for (c, s) in subs {
        let stats = s.finish(&stop).await;
        let expected = expected(c.expect(), &per_generator);
        let received = stats.received();
        let loss = if expected == 0 {
            0.0
        } else {
            100.0 * expected.saturating_sub(received) as f64 / expected as f64
        };
        let latency = Latency::from_hist(&stats.latency_us.lock());
        subscribers.push(SubscriberResult {
            name: c.name().to_owned(),
            expected,
            received,
            loss_pct: loss,
            warning_logs: stats
                .warning_logs
                .load(std::sync::atomic::Ordering::Relaxed),
            announced_drops: stats
                .announced_drops
                .load(std::sync::atomic::Ordering::Relaxed),
            disconnected: stats.closed.load(std::sync::atomic::Ordering::Relaxed),
            latency,
        });
    }
    for s in idle {
        s.finish(&stop).await;
    }
    stop.cancel();
    let mut drops = DropAccount::default();
    for (name, samples) in &after_drops {
        for s in scrape::drops(samples) {
            let prior = before_drops
                .iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, b)| b.iter().find(|x| x.series == s.series))
                .map_or(0.0, |x| x.value);
            if s.value - prior != 0.0 {
                drops
                    .counters
                    .push((name.clone(), s.series.clone(), s.value - prior));
            }
        }
    }
    Ok(RunResult {
        offered_rate: rate,
        sent,
        not_sent,
        subscribers,
        processes,
        drops,
    })
}

/// Waits (up to 20 s) until no component's `ingress`/`egress` counters move for 500 ms, so a
/// run never starts while the previous, possibly overloaded, run is still draining through the
/// same processes.
async fn quiesce(cluster: &Cluster) {
    let flow = |all: Vec<(String, Vec<scrape::Sample>)>| -> Vec<(String, String, f64)> {
        all.into_iter()
            .flat_map(|(name, samples)| {
                samples
                    .into_iter()
                    .filter(|s| s.series.starts_with("ingress") || s.series.starts_with("egress"))
                    .map(move |s| (name.clone(), s.series, s.value))
            })
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut last = flow(scrape_all(cluster).await);
    while std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = flow(scrape_all(cluster).await);
        if now == last {
            return;
        }
        last = now;
    }
    tracing::warn!("components still busy after 20 s; starting the next run anyway");
}

async fn scrape_all(cluster: &Cluster) -> Vec<(String, Vec<scrape::Sample>)> {
    let mut out = Vec::new();
    for (name, addr) in &cluster.admin {
        if let Ok(s) = scrape::fetch(addr).await {
            out.push((name.clone(), s));
        }
    }
    out
}
