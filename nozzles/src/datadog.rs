//! `nozzle datadog`: firehose metrics (traffic controller WebSocket,
//! `filter-type=metrics`) to Datadog's `/api/v1/series`.
//!
//! Pipeline: [`crate::firehose::websocket`] -> [`Feed`](crate::firehose::Feed) (bounded
//! drop-oldest) -> [`series::Aggregator`] (bounded) -> every flush interval,
//! request bodies of at most `flush_max_bytes` POSTed with the API key
//! (`DD-API-KEY` header, optionally `?api_key=`), each retried with
//! exponential backoff and dropped (counted) after the last attempt.

pub mod cli;
pub mod series;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::Full;
use plumbing::backoff::{Backoff, Jitter};
use plumbing::metrics::{Counter, Registry};
use plumbing::shutdown::Shutdown;
use rustls::ClientConfig;

use crate::Error;
pub use crate::admin::Listeners;
use crate::firehose::websocket::{self, FilterType, WsConfig};
use crate::firehose::{DEFAULT_BUFFER, FirehoseMetrics};
use crate::http::{HttpClient, split_url};
use series::{Aggregator, bodies};

/// Validated configuration.
#[derive(Clone)]
pub struct Config {
    /// Firehose connection (the filter is forced to metrics).
    pub firehose: WsConfig,
    /// Datadog base URL (`https://app.datadoghq.com`) or the full series URL.
    pub datadog_url: String,
    /// TLS for an `https` Datadog URL.
    pub datadog_tls: Option<Arc<ClientConfig>>,
    /// API key.
    pub api_key: String,
    /// Also send the key as `?api_key=` (the archived nozzle's way).
    pub api_key_in_query: bool,
    /// Metric name prefix.
    pub prefix: String,
    /// Flush interval.
    pub flush_interval: Duration,
    /// Maximum request body size.
    pub flush_max_bytes: usize,
    /// Attempts per request.
    pub max_attempts: u32,
    /// Series kept between flushes.
    pub max_series: usize,
    /// Points kept per series between flushes.
    pub max_points: usize,
    /// Feed capacity.
    pub buffer_size: usize,
    /// Host for the nozzle's own metrics.
    pub hostname: String,
    /// Metrics registry.
    pub registry: Registry,
    /// Shutdown grace.
    pub grace: Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("firehose", &self.firehose)
            .field("datadog_url", &self.datadog_url)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl Config {
    /// A test configuration: firehose at `tc_url`, Datadog at `datadog_url`, 200 ms flushes.
    pub fn for_tests(tc_url: &str, datadog_url: &str, api_key: &str) -> Self {
        Self {
            firehose: WsConfig::new(tc_url, "datadog-nozzle", FilterType::Metrics),
            datadog_url: datadog_url.into(),
            datadog_tls: None,
            api_key: api_key.into(),
            api_key_in_query: false,
            prefix: "cloudfoundry.nozzle.".into(),
            flush_interval: Duration::from_millis(200),
            flush_max_bytes: 1024 * 1024,
            max_attempts: 3,
            max_series: 100_000,
            max_points: 60,
            buffer_size: DEFAULT_BUFFER,
            hostname: "datadog-nozzle".into(),
            registry: Registry::new(),
            grace: Duration::from_secs(1),
        }
    }
}

/// Counters of the flusher.
#[derive(Debug, Clone)]
struct FlushMetrics {
    posted: Counter,
    series_sent: Counter,
    series_dropped: Counter,
    points_dropped: Counter,
    request_errors: Counter,
}

/// POSTs series to Datadog.
pub struct Flusher {
    client: HttpClient,
    path: String,
    api_key: String,
    max_attempts: u32,
    max_bytes: usize,
    metrics: FlushMetrics,
}

impl std::fmt::Debug for Flusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flusher").field("path", &self.path).finish()
    }
}

impl Flusher {
    fn new(config: &Config, metrics: FlushMetrics) -> Result<Self, Error> {
        let (secure, authority, path) = split_url(&config.datadog_url, "datadog")?;
        let host = authority
            .rsplit_once(':')
            .filter(|(h, _)| !h.ends_with(']') || h.starts_with('['))
            .map_or(authority, |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']');
        let addr = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority.to_owned()
        } else {
            format!("{authority}:{}", if secure { 443 } else { 80 })
        };
        let tls = if secure {
            let cfg = config.datadog_tls.clone().ok_or_else(|| {
                Error::Config("https datadog url needs a TLS configuration".into())
            })?;
            Some((
                cfg,
                crate::tlsutil::server_name(host).map_err(|e| Error::Tls(e.to_string()))?,
            ))
        } else {
            None
        };
        let base = path.trim_end_matches('/');
        let mut path = if base.ends_with("/api/v1/series") {
            base.to_owned()
        } else {
            format!("{base}/api/v1/series")
        };
        if config.api_key_in_query {
            path.push_str(if path.contains('?') { "&" } else { "?" });
            path.push_str("api_key=");
            path.push_str(&config.api_key);
        }
        Ok(Self {
            client: HttpClient::new(addr, authority.to_owned(), tls, Duration::from_secs(60)),
            path,
            api_key: config.api_key.clone(),
            max_attempts: config.max_attempts.max(1),
            max_bytes: config.flush_max_bytes.max(1024),
            metrics,
        })
    }

    /// Sends `series` in bounded bodies with retries; returns the series delivered.
    pub async fn flush(&mut self, series: &[series::Series]) -> usize {
        let mut delivered = 0;
        for (body, count) in bodies(series, self.max_bytes) {
            let body = Bytes::from(body);
            let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5))
                .with_jitter(Jitter::Proportional(0.1));
            let mut ok = false;
            for attempt in 0..self.max_attempts {
                let req = Request::builder()
                    .method(Method::POST)
                    .uri(&self.path)
                    .header(header::CONTENT_TYPE, "application/json")
                    .header("DD-API-KEY", &self.api_key)
                    .body(Full::new(body.clone()));
                let Ok(req) = req else { break };
                match self.client.send_ok(req).await {
                    Ok(_) => {
                        ok = true;
                        break;
                    }
                    Err(e) => {
                        self.metrics.request_errors.inc();
                        tracing::warn!(attempt, error = %e, "datadog series POST failed");
                        if attempt + 1 < self.max_attempts {
                            tokio::time::sleep(backoff.next_delay()).await;
                        }
                    }
                }
            }
            if ok {
                self.metrics.posted.inc();
                self.metrics.series_sent.add(count as u64);
                delivered += count;
            } else {
                self.metrics.series_dropped.add(count as u64);
                tracing::error!(
                    series = count,
                    "dropped datadog series after {} attempts",
                    self.max_attempts
                );
            }
        }
        delivered
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Runs the nozzle until `shutdown` triggers (flushing once more at the end).
pub async fn run(
    mut config: Config,
    listeners: Listeners,
    shutdown: Shutdown,
) -> Result<(), Error> {
    config.firehose.filter = FilterType::Metrics;
    let fm = FirehoseMetrics::new(&config.registry, "datadog");
    let metrics = FlushMetrics {
        posted: config.registry.counter(
            "datadog_requests",
            "Series requests accepted by Datadog",
            &[],
        ),
        series_sent: config
            .registry
            .counter("datadog_series_sent", "Series delivered", &[]),
        series_dropped: config.registry.counter(
            "datadog_series_dropped",
            "Series dropped after retries",
            &[],
        ),
        points_dropped: config.registry.counter(
            "datadog_points_dropped",
            "Points over the aggregation limits",
            &[],
        ),
        request_errors: config.registry.counter(
            "datadog_request_errors",
            "Failed series requests",
            &[],
        ),
    };
    let mut flusher = Flusher::new(&config, metrics.clone())?;
    listeners.serve_admin(&config.registry, &shutdown);
    let (feed, cancel) = websocket::spawn(
        config.firehose.clone(),
        config.buffer_size,
        fm.clone(),
        &shutdown,
    );

    let mut agg = Aggregator::new(&config.prefix, config.max_series, config.max_points);
    let mut batch = Vec::with_capacity(1000);
    let mut ticker = tokio::time::interval(config.flush_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let mut total_received: u64 = 0;
    // slowConsumerAlert is 1 for a flush interval in which a 1008 close or a
    // missed envelope happened, and back to 0 once the nozzle keeps up again.
    let mut slow_seen = fm.close_policy.get() + fm.missed.get();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {
                let slow_now = fm.close_policy.get() + fm.missed.get();
                let slow = slow_now > slow_seen;
                slow_seen = slow_now;
                let ts = now_secs();
                agg.add_internal("totalMessagesReceived", &config.hostname, ts, total_received as f64);
                agg.add_internal("slowConsumerAlert", &config.hostname, ts, if slow { 1.0 } else { 0.0 });
                metrics.points_dropped.add(std::mem::take(&mut agg.dropped));
                let series = agg.take();
                flusher.flush(&series).await;
            }
            n = feed.next_batch(&mut batch, 1000) => {
                if n == 0 {
                    break;
                }
                total_received += n as u64;
                for env in batch.drain(..) {
                    agg.add_envelope(&env);
                }
            }
        }
    }
    cancel.cancel();
    let series = agg.take();
    if !series.is_empty() {
        flusher.flush(&series).await;
    }
    shutdown.drain(config.grace).await;
    Ok(())
}
