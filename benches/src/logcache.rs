//! Log Cache scenarios (docs/benchmarks.md "Log Cache"):
//!
//! - **LC1** ingest sweep: the open-loop generator sends into one doppler, a
//!   `loggregator log-cache` process subscribes to it (mutual TLS, its own
//!   `log-cache` identity) and stores everything. What the store got is read
//!   from its `/metrics` (`log_cache_ingress`, `log_cache_doppler_ingress`,
//!   `log_cache_ingress_dropped`, `log_cache_expired`) against what was sent;
//!   cf-CLI walkers on two of the 1000 sources measure how soon a line is
//!   readable. Memory: log-cache RSS against the encoded bytes it holds.
//! - **LC2** reads while ingesting (100k/s over 100 sources): a `cf logs
//!   --recent` reader (1000 newest logs, descending, 20 requests/s) on one
//!   source and walkers on two others.
//!
//! The walker does what the cf CLI's `cf logs` does (go-log-cache `Walk`):
//! `GET /api/v1/read/<id>?envelope_types=LOG&start_time=<cursor>`, cursor =
//! last timestamp + 1, a 250 ms pause only after an empty page, but without
//! the CLI's deliberate 2 s display delay (`end_time = now - 2s`). Its latency
//! is the time it first sees an envelope minus the envelope's timestamp,
//! which the generator set to the envelope's scheduled send time: so it
//! covers doppler, the subscription, the store and the HTTP read, plus up to
//! 250 ms of the walker's own pause after an empty page. A second, tight
//! walker (5 ms pause) on another source shows how soon a line is readable
//! without that polling interval.
//!
//! Each offered rate gets a fresh doppler and log-cache, so one run's store
//! contents and allocator state never carry into the next.

use crate::cluster::{Cluster, ClusterSpec, Pki, Proc};
use crate::load::{self, LoadSpec, Target};
use crate::procstat;
use crate::profile::{Profile, Templates, source_id};
use crate::report::{
    DropAccount, Latency, ProcessUse, RunResult, ScenarioResult, SubscriberResult,
};
use crate::scenario::SuiteOptions;
use crate::scrape::{self, Sample};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::BodyExt;
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// `start_time` the cf CLI sends for `cf logs --recent` (a time long before any envelope).
const RECENT_START: i64 = -6_795_364_578_871_345_152;

/// Pause of the walker after an empty page (go-log-cache's `Walk` backoff in the cf CLI).
const WALK_EMPTY_PAUSE: Duration = Duration::from_millis(250);

/// Recent reads per second in LC2.
const RECENT_READS_PER_S: u64 = 20;

/// One Log Cache scenario.
#[derive(Debug, Clone)]
struct LcScenario {
    id: &'static str,
    title: &'static str,
    rates: Vec<u64>,
    sources: usize,
    /// Run the `--recent` reader (on source 1).
    recent: bool,
    /// Store budget (`MEMORY_LIMIT_BYTES`).
    memory_limit: u64,
}

fn scenarios(quick: bool) -> Vec<LcScenario> {
    vec![
        LcScenario {
            id: "LC1",
            title: "Log Cache ingest from one doppler subscription, 1000 sources, cf-CLI walkers (250 ms and 5 ms empty-page pause) on two of them",
            rates: if quick {
                vec![2_000]
            } else {
                vec![100_000, 300_000, 500_000, 750_000]
            },
            sources: 1000,
            recent: false,
            memory_limit: 4 << 30,
        },
        LcScenario {
            id: "LC2",
            title: "Log Cache reads while ingesting: `cf logs --recent` (1000 newest, 20/s) and cf-CLI walkers, 100 sources",
            rates: if quick { vec![2_000] } else { vec![100_000] },
            sources: 100,
            recent: true,
            memory_limit: 4 << 30,
        },
    ]
}

/// Runs the Log Cache scenarios selected by `opts.only` (all when empty).
pub async fn run_suite(opts: &SuiteOptions, pki: &Pki) -> Vec<ScenarioResult> {
    let mut out = Vec::new();
    for sc in scenarios(opts.quick) {
        if !opts.only.is_empty() && !opts.only.iter().any(|o| sc.id.starts_with(o.as_str())) {
            continue;
        }
        tracing::info!(scenario = sc.id, "starting");
        let mut result = ScenarioResult {
            id: sc.id.into(),
            title: sc.title.into(),
            max_rate_0_1pct: None,
            max_rate_1pct: None,
            runs: Vec::new(),
            notes: Vec::new(),
        };
        for &rate in &sc.rates {
            match run_once(&sc, opts, pki, rate).await {
                Ok((run, notes)) => {
                    let loss = run.subscribers.first().map_or(100.0, |s| s.loss_pct);
                    if loss < 0.1 {
                        result.max_rate_0_1pct = Some(rate);
                    }
                    if loss < 1.0 {
                        result.max_rate_1pct = Some(rate);
                    }
                    result.runs.push(run);
                    result.notes.extend(notes);
                    if loss >= 1.0 {
                        break;
                    }
                }
                Err(e) => {
                    result.notes.push(format!("run at {rate}/s failed: {e:#}"));
                    break;
                }
            }
        }
        out.push(result);
    }
    out
}

/// A running log-cache process.
struct Node {
    proc: Proc,
    http: String,
    metrics: String,
}

fn start_log_cache(
    opts: &SuiteOptions,
    pki: &Pki,
    dopplers: &[String],
    memory_limit: u64,
) -> anyhow::Result<Node> {
    let t = Duration::from_secs(20);
    let files = pki.files("log-cache")?;
    let s = |p: &std::path::Path| p.display().to_string();
    let mut proc = Proc::spawn(
        "log-cache",
        &opts.binary,
        // The readers are the harness's own: no UAA in the benchmark.
        &["log-cache", "--auth", "none"],
        &[
            ("ADDR", "127.0.0.1:0".into()),
            ("GATEWAY_ADDR", "127.0.0.1:0".into()),
            ("METRICS_PORT", "0".into()),
            ("DOPPLER_ADDRS", dopplers.join(",")),
            (
                "DOPPLER_CA_PATH",
                files.ca.as_deref().map(s).unwrap_or_default(),
            ),
            ("DOPPLER_CERT_PATH", s(&files.cert)),
            ("DOPPLER_KEY_PATH", s(&files.key)),
            ("MEMORY_LIMIT_BYTES", memory_limit.to_string()),
        ],
    )?;
    proc.bound("gRPC", t)?;
    let http = proc.bound("HTTP API", t)?;
    let metrics = proc.bound("metrics", t)?;
    Ok(Node {
        proc,
        http,
        metrics,
    })
}

fn value(samples: &[Sample], series: &str) -> f64 {
    samples
        .iter()
        .filter(|s| s.series == series || s.series.starts_with(&format!("{series}{{")))
        .map(|s| s.value)
        .sum()
}

/// Waits until `log_cache_ingress` and `log_cache_doppler_streams` say the node is subscribed
/// and idle: streams ≥ 1 and ingress unchanged for 500 ms (up to 20 s).
async fn quiesce(node: &Node) -> anyhow::Result<Vec<Sample>> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last: Option<f64> = None;
    loop {
        let s = scrape::fetch(&node.metrics).await?;
        let ingress = value(&s, "log_cache_ingress");
        let streams = value(&s, "log_cache_doppler_streams");
        if streams >= 1.0 && last == Some(ingress) {
            return Ok(s);
        }
        if Instant::now() > deadline {
            tracing::warn!("log-cache still busy or unsubscribed after 20 s; starting anyway");
            return Ok(s);
        }
        last = (streams >= 1.0).then_some(ingress);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

type HttpClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Empty<Bytes>,
>;

fn http_client() -> HttpClient {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<Bytes>>()
}

async fn get(client: &HttpClient, url: &str) -> anyhow::Result<Bytes> {
    let resp = client.get(url.parse()?).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    anyhow::ensure!(
        status.is_success(),
        "GET {url}: {status}: {}",
        String::from_utf8_lossy(&body[..body.len().min(200)])
    );
    Ok(body)
}

/// `(timestamp, is load)` of every envelope of a read response.
fn envelopes(body: &[u8]) -> anyhow::Result<Vec<(i64, bool)>> {
    let v: serde_json::Value = serde_json::from_slice(body)?;
    let batch = v
        .pointer("/envelopes/batch")
        .and_then(|b| b.as_array())
        .map(Vec::as_slice)
        .unwrap_or_default();
    Ok(batch
        .iter()
        .filter_map(|e| {
            let ts = e.get("timestamp")?.as_str()?.parse::<i64>().ok()?;
            let load =
                e.pointer("/tags/origin").and_then(|o| o.as_str()) == Some(crate::LOAD_ORIGIN);
            Some((ts, load))
        })
        .collect())
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("static histogram bounds are valid")
}

/// What a walker or reader recorded.
#[derive(Debug)]
struct ReaderStats {
    /// Walker: load envelopes seen. Reader: requests answered.
    count: AtomicU64,
    /// Reader: answers with at least 1000 envelopes.
    full: AtomicU64,
    /// Requests that failed.
    errors: AtomicU64,
    /// Requests made.
    requests: AtomicU64,
    /// Microseconds: walker, line latency; reader, request latency.
    latency_us: Mutex<Histogram<u64>>,
}

impl ReaderStats {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            count: AtomicU64::new(0),
            full: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            latency_us: Mutex::new(hist()),
        })
    }
}

/// Pause of the tight walker after an empty page: its latency is how soon a line is readable
/// at all, without the CLI's polling interval.
const TIGHT_EMPTY_PAUSE: Duration = Duration::from_millis(5);

/// The cf CLI walk (without its 2 s display delay) from `cursor` until `stop`, pausing `pause`
/// after an empty page.
async fn walker(
    http: String,
    source: String,
    mut cursor: i64,
    pause: Duration,
    st: Arc<ReaderStats>,
    stop: CancellationToken,
) {
    let client = http_client();
    while !stop.is_cancelled() {
        let url =
            format!("http://{http}/api/v1/read/{source}?envelope_types=LOG&start_time={cursor}");
        st.requests.fetch_add(1, Ordering::Relaxed);
        let page = match get(&client, &url).await.and_then(|b| envelopes(&b)) {
            Ok(p) => p,
            Err(e) => {
                st.errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "walker read failed");
                Vec::new()
            }
        };
        let now = envelope_proto::timestamp::now();
        {
            let mut h = st.latency_us.lock();
            for &(ts, load) in &page {
                cursor = cursor.max(ts.saturating_add(1));
                if load {
                    st.count.fetch_add(1, Ordering::Relaxed);
                    let _ = h.record(((now - ts) / 1000).max(1) as u64);
                }
            }
        }
        if page.is_empty() {
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = stop.cancelled() => return,
            }
        }
    }
}

/// `cf logs --recent` reads of `source` at a fixed rate until `stop`; latency per request.
async fn recent_reader(
    http: String,
    source: String,
    st: Arc<ReaderStats>,
    stop: CancellationToken,
) {
    let client = http_client();
    let url = format!(
        "http://{http}/api/v1/read/{source}?descending=true&envelope_types=LOG&limit=1000&start_time={RECENT_START}"
    );
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / RECENT_READS_PER_S));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let t0 = Instant::now();
        st.requests.fetch_add(1, Ordering::Relaxed);
        match get(&client, &url).await {
            Ok(body) => {
                let us = t0.elapsed().as_micros() as u64;
                let _ = st.latency_us.lock().record(us.max(1));
                st.count.fetch_add(1, Ordering::Relaxed);
                if envelopes(&body).map_or(0, |e| e.len()) >= 1000 {
                    st.full.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(e) => {
                st.errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "recent read failed");
            }
        }
    }
}

/// Mean encoded length of the templates the generator cycles through.
fn mean_size(t: &Templates) -> f64 {
    (0..t.len()).map(|i| t.get(i).len()).sum::<usize>() as f64 / t.len().max(1) as f64
}

async fn run_once(
    sc: &LcScenario,
    opts: &SuiteOptions,
    pki: &Pki,
    rate: u64,
) -> anyhow::Result<(RunResult, Vec<String>)> {
    let spec = ClusterSpec {
        binary: opts.binary.clone(),
        dopplers: 1,
        agent: false,
        tc: false,
    };
    let cluster = tokio::task::block_in_place(|| Cluster::start(&spec, pki))?;
    let node = tokio::task::block_in_place(|| {
        start_log_cache(opts, pki, &cluster.dopplers, sc.memory_limit)
    })?;
    let before_metrics = quiesce(&node).await?;
    let mut admin = cluster.admin.clone();
    admin.push(("log-cache".into(), node.metrics.clone()));
    let before_drops = scrape_all(&admin).await;

    let stop = CancellationToken::new();
    let start_ts = envelope_proto::timestamp::now();
    let walk = ReaderStats::new();
    let walk_task = tokio::spawn(walker(
        node.http.clone(),
        source_id(0),
        start_ts,
        WALK_EMPTY_PAUSE,
        walk.clone(),
        stop.clone(),
    ));
    let tight = ReaderStats::new();
    let tight_task = tokio::spawn(walker(
        node.http.clone(),
        source_id(2),
        start_ts,
        TIGHT_EMPTY_PAUSE,
        tight.clone(),
        stop.clone(),
    ));
    let recent = ReaderStats::new();
    let recent_task = sc.recent.then(|| {
        tokio::spawn(recent_reader(
            node.http.clone(),
            source_id(1),
            recent.clone(),
            stop.clone(),
        ))
    });

    let pids: Vec<(String, u32)> = cluster
        .procs
        .iter()
        .map(|p| (p.name.clone(), p.pid()))
        .chain([
            ("log-cache".to_owned(), node.proc.pid()),
            ("bench".to_owned(), std::process::id()),
        ])
        .collect();
    let before: Vec<_> = pids
        .iter()
        .map(|(_, p)| procstat::sample(*p).ok())
        .collect();

    let templates = Templates::new(Profile::Logs, sc.sources);
    let channel = Cluster::channel(pki, &cluster.dopplers[0], "doppler")?;
    let report = load::run(
        Target::GrpcV2 {
            channel,
            streams: 1,
        },
        templates.clone(),
        LoadSpec {
            rate,
            duration: Duration::from_secs_f64(opts.seconds),
            batch: 100.min((rate / 100).max(1) as usize),
        },
    )
    .await;
    // Let in-flight envelopes arrive and the walker catch up; the gauges refresh every second.
    let settle = Duration::from_millis(1500);
    tokio::time::sleep(settle).await;
    let after: Vec<_> = pids
        .iter()
        .map(|(_, p)| procstat::sample(*p).ok())
        .collect();
    stop.cancel();
    let _ = walk_task.await;
    let _ = tight_task.await;
    if let Some(t) = recent_task {
        let _ = t.await;
    }
    let after_metrics = scrape::fetch(&node.metrics).await?;
    let after_drops = scrape_all(&admin).await;

    let delta = |name: &str| value(&after_metrics, name) - value(&before_metrics, name);
    let stored = delta("log_cache_ingress");
    let from_doppler = delta("log_cache_doppler_ingress");
    let dropped = delta("log_cache_ingress_dropped");
    let expired = delta("log_cache_expired");
    let sent = report.sent;
    let loss_pct = |got: f64, want: u64| {
        if want == 0 {
            0.0
        } else {
            (100.0 * (want as f64 - got).max(0.0) / want as f64).max(0.0)
        }
    };

    let million = sent.max(1) as f64 / 1e6;
    let window = opts.seconds + settle.as_secs_f64();
    let processes: Vec<ProcessUse> = pids
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

    let walk_expected = templates.sent_to(0, sent);
    let walk_seen = walk.count.load(Ordering::Relaxed);
    let tight_expected = templates.sent_to(2, sent);
    let tight_seen = tight.count.load(Ordering::Relaxed);
    let mut subscribers = vec![
        SubscriberResult {
            name: "store".into(),
            expected: sent,
            received: stored as u64,
            loss_pct: loss_pct(stored, sent),
            warning_logs: 0,
            announced_drops: dropped as u64,
            disconnected: false,
            latency: Latency::default(),
        },
        SubscriberResult {
            name: "walker-cli-250ms".into(),
            expected: walk_expected,
            received: walk_seen,
            loss_pct: loss_pct(walk_seen as f64, walk_expected),
            warning_logs: 0,
            announced_drops: 0,
            disconnected: false,
            latency: Latency::from_hist(&walk.latency_us.lock()),
        },
        SubscriberResult {
            name: "walker-5ms".into(),
            expected: tight_expected,
            received: tight_seen,
            loss_pct: loss_pct(tight_seen as f64, tight_expected),
            warning_logs: 0,
            announced_drops: 0,
            disconnected: false,
            latency: Latency::from_hist(&tight.latency_us.lock()),
        },
    ];
    if sc.recent {
        let requests = recent.requests.load(Ordering::Relaxed);
        let full = recent.full.load(Ordering::Relaxed);
        subscribers.push(SubscriberResult {
            name: "recent-1000".into(),
            expected: requests,
            received: full,
            loss_pct: 0.0,
            warning_logs: 0,
            announced_drops: recent.errors.load(Ordering::Relaxed),
            disconnected: false,
            latency: Latency::from_hist(&recent.latency_us.lock()),
        });
    }

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

    // Memory: RSS against what the store holds.
    let count = value(&after_metrics, "log_cache_store_size");
    let accounted = value(&after_metrics, "log_cache_store_bytes");
    let raw = count * mean_size(&templates);
    let rss = processes
        .iter()
        .find(|p| p.name == "log-cache")
        .map_or(0.0, |p| p.rss_mib * (1 << 20) as f64);
    let mib = |b: f64| b / (1 << 20) as f64;
    let mut notes = vec![format!(
        "{id} at {rate}/s: sent {sent} (not sent {ns}), doppler→log-cache {from_doppler}, stored {stored}, \
         log_cache_ingress_dropped +{dropped}, expired +{expired}; walkers {walk_seen}/{walk_expected} \
         in {wr} requests, {tight_seen}/{tight_expected} in {tr} ({we} errors); store holds {count} envelopes = {raw:.1} MiB encoded \
         ({size:.0} B each), {acc:.1} MiB accounted; log-cache RSS {rss:.1} MiB = {r_raw:.2}× encoded, \
         {r_acc:.2}× accounted",
        id = sc.id,
        ns = report.not_sent,
        wr = walk.requests.load(Ordering::Relaxed),
        tr = tight.requests.load(Ordering::Relaxed),
        we = walk.errors.load(Ordering::Relaxed) + tight.errors.load(Ordering::Relaxed),
        raw = mib(raw),
        size = mean_size(&templates),
        acc = mib(accounted),
        rss = mib(rss),
        r_raw = if raw > 0.0 { rss / raw } else { 0.0 },
        r_acc = if accounted > 0.0 {
            rss / accounted
        } else {
            0.0
        },
    )];
    if sc.recent {
        notes.push(format!(
            "{id} at {rate}/s: recent reads {req} ({full} returned ≥ 1000 envelopes, {err} failed)",
            id = sc.id,
            req = recent.requests.load(Ordering::Relaxed),
            full = recent.full.load(Ordering::Relaxed),
            err = recent.errors.load(Ordering::Relaxed),
        ));
    }
    drop(node);
    drop(cluster);
    Ok((
        RunResult {
            offered_rate: rate,
            sent,
            not_sent: report.not_sent,
            subscribers,
            processes,
            drops,
        },
        notes,
    ))
}

async fn scrape_all(admin: &[(String, String)]) -> Vec<(String, Vec<Sample>)> {
    let mut out = Vec::new();
    for (name, addr) in admin {
        if let Ok(s) = scrape::fetch(addr).await {
            out.push((name.clone(), s));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_responses_give_timestamps_and_load_origin() {
        let body = br#"{"envelopes":{"batch":[
            {"timestamp":"1765000000000000001","sourceId":"a","tags":{"origin":"bench"},"log":{"payload":"eA=="}},
            {"timestamp":"1765000000000000002","sourceId":"a","tags":{"origin":"rep"},"log":{"payload":"eA=="}},
            {"sourceId":"a"}
        ]}}"#;
        let e = envelopes(body).expect("valid JSON");
        assert_eq!(
            e,
            vec![
                (1_765_000_000_000_000_001, true),
                (1_765_000_000_000_000_002, false)
            ]
        );
        // An empty page is `{}` in protojson (no batch field).
        assert!(envelopes(br#"{"envelopes":{}}"#).expect("valid").is_empty());
        assert!(envelopes(b"not json").is_err());
    }

    #[test]
    fn metric_values_sum_every_label_set() {
        let s = scrape::parse(
            "log_cache_ingress 10\nlog_cache_ingress_dropped{source=\"doppler\"} 3\n\
             log_cache_ingress_dropped{source=\"invalid\"} 4\n",
        );
        assert_eq!(value(&s, "log_cache_ingress"), 10.0);
        assert_eq!(value(&s, "log_cache_ingress_dropped"), 7.0);
        assert_eq!(value(&s, "log_cache_expired"), 0.0);
    }
}
