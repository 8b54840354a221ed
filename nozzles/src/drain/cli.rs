//! `syslog-drain` command line: flags (with environment fallbacks) ->
//! [`Config`], bind the admin listener, run until SIGTERM / Ctrl-C.

use std::path::PathBuf;
use std::time::Duration;

use plumbing::metrics::Registry;
use plumbing::tls::TlsFiles;

use super::config::{BindingsConfig, Config};
use super::forwarder::{BUFFER_SIZE, IDLE_TIMEOUT};
use super::manager::DrainSettings;
use super::server::run;
use crate::tlsutil::TrustOptions;

fn duration(s: &str) -> Result<Duration, String> {
    plumbing::env::parse_go_duration(s).map_err(|e| e.to_string())
}

/// Flags of `syslog-drain`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Bindings file: a JSON list of `{url, credentials:[{cert,key,ca,apps:[{hostname,app_id}]}]}`
    /// or one `/internal/v5/syslog_drain_urls` page. Exclusive with --bindings-url.
    #[arg(long, env = "BINDINGS_FILE")]
    pub bindings_file: Option<PathBuf>,
    /// Cloud Controller-shaped base URL polled at `/internal/v5/syslog_drain_urls` (http:// or https://).
    #[arg(long, env = "API_URL")]
    pub bindings_url: Option<String>,
    /// CA for the bindings endpoint (https).
    #[arg(long, env = "API_CA_FILE_PATH")]
    pub bindings_ca: Option<PathBuf>,
    /// Client certificate for the bindings endpoint.
    #[arg(long, env = "API_CERT_FILE_PATH")]
    pub bindings_cert: Option<PathBuf>,
    /// Client key for the bindings endpoint.
    #[arg(long, env = "API_KEY_FILE_PATH")]
    pub bindings_key: Option<PathBuf>,
    /// Server name verified for the bindings endpoint (default: the URL host).
    #[arg(long, env = "API_COMMON_NAME")]
    pub bindings_server_name: Option<String>,
    /// Bindings per page.
    #[arg(long, env = "API_BATCH_SIZE", default_value_t = 1000)]
    pub bindings_batch_size: usize,
    /// How often bindings are re-read (Go duration).
    #[arg(long, env = "API_POLLING_INTERVAL", default_value = "15s", value_parser = duration)]
    pub poll_interval: Duration,
    /// Drains per app (the first in URL order).
    #[arg(long, env = "BINDING_PER_APP_LIMIT", default_value_t = 5)]
    pub per_app_limit: usize,
    /// Drain URLs that receive every envelope (comma separated).
    #[arg(long, env = "AGGREGATE_DRAIN_URLS", value_delimiter = ',')]
    pub aggregate_drain_urls: Vec<String>,
    /// Doppler gRPC addresses (comma separated).
    #[arg(
        long,
        env = "ROUTER_ADDRS",
        value_delimiter = ',',
        default_value = "127.0.0.1:8082"
    )]
    pub doppler_addrs: Vec<String>,
    /// Internal CA (dopplers, ingress). Without --ca/--cert/--key internal gRPC is plaintext.
    #[arg(long, env = "CA_CERT_PATH")]
    pub ca: Option<PathBuf>,
    /// Internal client certificate.
    #[arg(long, env = "CLIENT_CERT_PATH")]
    pub cert: Option<PathBuf>,
    /// Internal client key.
    #[arg(long, env = "CLIENT_KEY_PATH")]
    pub key: Option<PathBuf>,
    /// Name verified in doppler certificates.
    #[arg(long, default_value = "doppler")]
    pub doppler_server_name: String,
    /// v2 Ingress (agent) receiving app-visible notices; empty = notices are only logged.
    #[arg(long, env = "INGRESS_ADDR", default_value = "127.0.0.1:3458")]
    pub ingress_addr: String,
    /// Name verified in the ingress certificate.
    #[arg(long, default_value = "metron")]
    pub ingress_server_name: String,
    /// Shard id of the doppler subscription (instances with the same id share load).
    #[arg(long, env = "SHARD_ID", default_value = "syslog-drain")]
    pub shard_id: String,
    /// Extra CA trusted for drains (besides the system roots).
    #[arg(long, env = "DRAIN_CA_CERT")]
    pub drain_ca: Option<PathBuf>,
    /// Do not verify drain server certificates.
    #[arg(long, env = "DRAIN_SKIP_CERT_VERIFY", default_value_t = false)]
    pub drain_skip_cert_verify: bool,
    /// Write `tags@47450` metadata unless a drain says otherwise.
    #[arg(long, env = "DEFAULT_DRAIN_METADATA", default_value_t = true, action = clap::ArgAction::Set)]
    pub default_drain_metadata: bool,
    /// Per-drain buffer (envelopes; oldest dropped when full).
    #[arg(long, default_value_t = BUFFER_SIZE)]
    pub drain_buffer_size: usize,
    /// Close drain connections idle this long (Go duration).
    #[arg(long, env = "IDLE_DRAIN_TIMEOUT", default_value = "10m", value_parser = duration)]
    pub idle_drain_timeout: Duration,
    /// Admin listener (`/metrics`, `/health`).
    #[arg(long, env = "METRICS_ADDR", default_value = "127.0.0.1:14831")]
    pub admin_addr: String,
    /// Log level (`RUST_LOG` overrides).
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}

fn tls_files(
    ca: &Option<PathBuf>,
    cert: &Option<PathBuf>,
    key: &Option<PathBuf>,
) -> anyhow::Result<Option<TlsFiles>> {
    match (ca, cert, key) {
        (None, None, None) => Ok(None),
        (Some(ca), Some(cert), Some(key)) => Ok(Some(TlsFiles::new(ca, cert, key))),
        _ => anyhow::bail!("TLS needs all three of CA, certificate and key"),
    }
}

impl Args {
    /// Validates the flags into a [`Config`].
    pub fn into_config(self) -> anyhow::Result<Config> {
        let bindings = match (&self.bindings_file, &self.bindings_url) {
            (Some(f), None) => BindingsConfig::File(f.clone()),
            (None, Some(u)) => BindingsConfig::Http {
                url: u.clone(),
                tls: tls_files(&self.bindings_ca, &self.bindings_cert, &self.bindings_key)?,
                server_name: self.bindings_server_name.clone(),
                batch_size: self.bindings_batch_size.max(1),
            },
            (Some(_), Some(_)) => {
                anyhow::bail!("--bindings-file and --bindings-url are mutually exclusive")
            }
            (None, None) if !self.aggregate_drain_urls.is_empty() => {
                BindingsConfig::File(PathBuf::from("/dev/null"))
            }
            (None, None) => anyhow::bail!("one of --bindings-file or --bindings-url is required"),
        };
        let extra_ca_pem = match &self.drain_ca {
            Some(p) => Some(
                std::fs::read(p)
                    .map_err(|e| anyhow::anyhow!("reading --drain-ca {}: {e}", p.display()))?,
            ),
            None => None,
        };
        Ok(Config {
            bindings,
            poll_interval: self.poll_interval,
            per_app_limit: self.per_app_limit.max(1),
            aggregate_drains: self
                .aggregate_drain_urls
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect(),
            dopplers: self
                .doppler_addrs
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect(),
            internal_tls: tls_files(&self.ca, &self.cert, &self.key)?,
            doppler_server_name: self.doppler_server_name,
            ingress_addr: (!self.ingress_addr.is_empty()).then_some(self.ingress_addr),
            ingress_server_name: self.ingress_server_name,
            shard_id: self.shard_id,
            drains: DrainSettings {
                trust: TrustOptions {
                    system_roots: true,
                    extra_ca_pem,
                    skip_verify: self.drain_skip_cert_verify,
                },
                default_metadata: self.default_drain_metadata,
                buffer_size: self.drain_buffer_size.max(1),
                idle_timeout: if self.idle_drain_timeout.is_zero() {
                    IDLE_TIMEOUT
                } else {
                    self.idle_drain_timeout
                },
            },
            registry: Registry::new(),
            grace: Duration::from_secs(5),
        })
    }
}

/// Runs `syslog-drain` until SIGTERM / Ctrl-C.
pub async fn main(args: Args) -> anyhow::Result<()> {
    let log_level = args.log_level.clone();
    let admin_addr = args.admin_addr.clone();
    crate::cli_support::main(&log_level, &admin_addr, || args.into_config(), run).await
}
