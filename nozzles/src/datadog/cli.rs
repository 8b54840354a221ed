//! `nozzle datadog` command line.

use std::path::PathBuf;
use std::time::Duration;

use plumbing::metrics::Registry;

use super::{Config, run};
use crate::firehose::websocket::{FilterType, WsConfig};
use crate::tlsutil::{TrustOptions, client_config};

fn duration(s: &str) -> Result<Duration, String> {
    plumbing::env::parse_go_duration(s).map_err(|e| e.to_string())
}

/// Flags of `nozzle datadog`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Traffic controller WebSocket URL (ws:// or wss://).
    #[arg(
        long,
        env = "NOZZLE_TRAFFICCONTROLLERURL",
        default_value = "ws://127.0.0.1:8081"
    )]
    pub traffic_controller_url: String,
    /// Subscription id (nozzles with the same id share the firehose).
    #[arg(
        long,
        env = "NOZZLE_FIREHOSESUBSCRIPTIONID",
        default_value = "datadog-nozzle"
    )]
    pub subscription_id: String,
    /// Authorization header sent to the traffic controller (e.g. `bearer <token>`).
    #[arg(long, env = "NOZZLE_AUTHORIZATION", default_value = "")]
    pub authorization: String,
    /// CA verifying the traffic controller and Datadog (added to the system roots).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Skip TLS verification (traffic controller and Datadog).
    #[arg(long, env = "NOZZLE_INSECURESSLSKIPVERIFY", default_value_t = false)]
    pub insecure_skip_verify: bool,
    /// Datadog base URL or full series URL.
    #[arg(
        long,
        env = "NOZZLE_DATADOGURL",
        default_value = "https://app.datadoghq.com"
    )]
    pub datadog_url: String,
    /// Datadog API key.
    #[arg(long, env = "NOZZLE_DATADOGAPIKEY", default_value = "")]
    pub api_key: String,
    /// Also send the API key as `?api_key=`.
    #[arg(long, default_value_t = false)]
    pub api_key_in_query: bool,
    /// Metric name prefix.
    #[arg(
        long,
        env = "NOZZLE_METRICPREFIX",
        default_value = "cloudfoundry.nozzle."
    )]
    pub metric_prefix: String,
    /// Flush interval (Go duration).
    #[arg(long, env = "NOZZLE_FLUSHDURATION", default_value = "15s", value_parser = duration)]
    pub flush_interval: Duration,
    /// Maximum request body in bytes.
    #[arg(long, env = "NOZZLE_FLUSHMAXBYTES", default_value_t = 3 * 1024 * 1024)]
    pub flush_max_bytes: usize,
    /// Attempts per request.
    #[arg(long, default_value_t = 3)]
    pub max_attempts: u32,
    /// Series kept between flushes.
    #[arg(long, default_value_t = 100_000)]
    pub max_series: usize,
    /// Buffer between firehose and aggregator (envelopes).
    #[arg(long, default_value_t = 10_000)]
    pub buffer_size: usize,
    /// Host for the nozzle's own metrics.
    #[arg(long, default_value = "datadog-nozzle")]
    pub hostname: String,
    /// Admin listener (`/metrics`, `/health`).
    #[arg(long, default_value = "127.0.0.1:14833")]
    pub admin_addr: String,
    /// Log level (`RUST_LOG` overrides).
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}

impl Args {
    /// Validates the flags.
    pub fn into_config(self) -> anyhow::Result<Config> {
        if self.api_key.is_empty() {
            anyhow::bail!("missing Datadog API key (--api-key or NOZZLE_DATADOGAPIKEY)");
        }
        let trust = TrustOptions {
            system_roots: true,
            extra_ca_pem: match &self.ca {
                Some(p) => Some(
                    std::fs::read(p)
                        .map_err(|e| anyhow::anyhow!("reading {}: {e}", p.display()))?,
                ),
                None => None,
            },
            skip_verify: self.insecure_skip_verify,
        };
        let tls = client_config(&trust, None, None, &[b"http/1.1"])?;
        Ok(Config {
            firehose: WsConfig {
                url: self.traffic_controller_url,
                subscription_id: self.subscription_id,
                filter: FilterType::Metrics,
                authorization: self.authorization,
                tls: Some(tls.clone()),
            },
            datadog_url: self.datadog_url,
            datadog_tls: Some(tls),
            api_key: self.api_key,
            api_key_in_query: self.api_key_in_query,
            prefix: self.metric_prefix,
            flush_interval: if self.flush_interval.is_zero() {
                Duration::from_secs(15)
            } else {
                self.flush_interval
            },
            flush_max_bytes: self.flush_max_bytes,
            max_attempts: self.max_attempts,
            max_series: self.max_series,
            max_points: 60,
            buffer_size: self.buffer_size.max(1),
            hostname: self.hostname,
            registry: Registry::new(),
            grace: Duration::from_secs(5),
        })
    }
}

/// Runs `nozzle datadog` until SIGTERM / Ctrl-C.
pub async fn main(args: Args) -> anyhow::Result<()> {
    let log_level = args.log_level.clone();
    let admin_addr = args.admin_addr.clone();
    crate::cli_support::main(&log_level, &admin_addr, || args.into_config(), run).await
}
