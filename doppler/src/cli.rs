//! Command line of the standalone `doppler` binary and of `loggregator doppler`.
//!
//! Sources, later ones winning: built-in defaults, the TOML file given with
//! `--config`, the upstream environment variables (`ROUTER_PORT`,
//! `ROUTER_CA_FILE`, ... see `docs/` and upstream-config §3), then flags. With
//! the upstream variables alone the binary is a drop-in replacement for
//! upstream's `doppler` (same startup lines, non-zero exit on bad config).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use plumbing::env::EnvReader;
use plumbing::logline;
use plumbing::shutdown::Shutdown;
use tokio::net::TcpListener;

use crate::config::RawConfig;
use crate::{Config, Listeners};

/// Doppler options. Every option may also come from the config file (same
/// name with `_`), and the upstream variables named below.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Args {
    /// TOML config file with any of the options below (snake_case keys).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// gRPC listen address [default: [::]:8082].
    #[arg(long, value_name = "ADDR")]
    pub grpc_addr: Option<SocketAddr>,
    /// gRPC port on all interfaces; overrides the port of --grpc-addr [env: ROUTER_PORT].
    #[arg(long)]
    pub port: Option<u16>,
    /// Admin listener for /metrics and /health, or `off` [default: 127.0.0.1:14825].
    #[arg(long, value_name = "ADDR")]
    pub admin_addr: Option<String>,
    /// Localhost "pprof" port, announced as `pprof bound to:` [default: 0 = ephemeral; env: ROUTER_PPROF_PORT].
    #[arg(long)]
    pub pprof_port: Option<u16>,
    /// CA certificate that client certificates must chain to [env: ROUTER_CA_FILE].
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Server certificate [env: ROUTER_CERT_FILE].
    #[arg(long, value_name = "FILE")]
    pub cert_file: Option<PathBuf>,
    /// Server private key [env: ROUTER_KEY_FILE].
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// TLS 1.2 cipher suites, comma separated [default: the two ECDHE-RSA AES-GCM suites; env: ROUTER_CIPHER_SUITES].
    #[arg(long, value_delimiter = ',')]
    pub cipher_suites: Option<Vec<String>>,
    /// Serve plaintext gRPC without TLS (local development only) [default: false].
    #[arg(long)]
    pub insecure_plaintext: bool,
    /// Ingress ring capacity, drop-oldest, > 0 [default: 10000; env: INGRESS_BUFFER_SIZE].
    #[arg(long)]
    pub ingress_buffer_size: Option<u64>,
    /// Per-subscription ring capacity (v1 and v2), drop-oldest, > 0 [default: 1000; env: EGRESS_BUFFER_SIZE].
    #[arg(long)]
    pub egress_buffer_size: Option<u64>,
    /// Largest accepted gRPC message in bytes [default: 10485760].
    #[arg(long)]
    pub max_message_size: Option<u64>,
    /// Logs kept per app for RecentLogs; 0 disables [default: 100].
    #[arg(long)]
    pub max_retained_logs: Option<u64>,
    /// Bytes of logs kept per app for RecentLogs, oldest dropped first [default: 10485760].
    #[arg(long)]
    pub max_retained_log_bytes: Option<u64>,
    /// Bytes held by the recent-logs and container-metrics caches in total; least recently used apps evicted [default: 536870912].
    #[arg(long)]
    pub max_cache_bytes: Option<u64>,
    /// Container metrics older than this are not served [default: 120].
    #[arg(long)]
    pub container_metric_ttl_seconds: Option<u64>,
    /// Apps idle this long leave the caches [default: 3600].
    #[arg(long)]
    pub sink_inactivity_timeout_seconds: Option<u64>,
    /// Most apps kept in the caches (least recently used evicted) [default: 100000].
    #[arg(long)]
    pub max_cached_apps: Option<u64>,
    /// Agent v2 Ingress address for doppler's own metrics [default: none = off; env: AGENT_GRPC_ADDRESS].
    #[arg(long, value_name = "HOST:PORT")]
    pub agent_grpc_address: Option<String>,
    /// Own-metric emission interval in ms [default: 5000; env: ROUTER_METRIC_BATCH_INTERVAL_MILLISECONDS].
    #[arg(long)]
    pub metric_batch_interval_milliseconds: Option<u64>,
    /// source_id of own metrics [default: doppler; env: ROUTER_METRIC_SOURCE_ID].
    #[arg(long)]
    pub metric_source_id: Option<String>,
    /// Time subscribers get to take queued envelopes at shutdown, in ms [default: 5000].
    #[arg(long)]
    pub grace_period_milliseconds: Option<u64>,
    /// RFC 3339 log timestamps [default: false; env: USE_RFC339].
    #[arg(long)]
    pub use_rfc3339: bool,
    /// Log filter (`RUST_LOG` wins when set) [default: info].
    #[arg(long, default_value = "info")]
    pub log_level: String,
}

impl Args {
    fn raw(&self) -> RawConfig {
        RawConfig {
            grpc_addr: self.grpc_addr,
            port: self.port,
            admin_addr: self.admin_addr.clone(),
            pprof_port: self.pprof_port,
            ca_file: self.ca_file.clone(),
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
            cipher_suites: self.cipher_suites.clone(),
            insecure_plaintext: self.insecure_plaintext.then_some(true),
            ingress_buffer_size: self.ingress_buffer_size,
            egress_buffer_size: self.egress_buffer_size,
            max_message_size: self.max_message_size,
            max_retained_logs: self.max_retained_logs,
            max_retained_log_bytes: self.max_retained_log_bytes,
            max_cache_bytes: self.max_cache_bytes,
            container_metric_ttl_seconds: self.container_metric_ttl_seconds,
            sink_inactivity_timeout_seconds: self.sink_inactivity_timeout_seconds,
            max_cached_apps: self.max_cached_apps,
            agent_grpc_address: self.agent_grpc_address.clone(),
            metric_batch_interval_milliseconds: self.metric_batch_interval_milliseconds,
            metric_source_id: self.metric_source_id.clone(),
            grace_period_milliseconds: self.grace_period_milliseconds,
            use_rfc3339: self.use_rfc3339.then_some(true),
        }
    }

    /// Loads file, environment and flags into a validated [`Config`].
    pub fn load(&self) -> Result<Config, crate::Error> {
        let file = match &self.config {
            Some(p) => RawConfig::from_file(p)?,
            None => RawConfig::default(),
        };
        let env = RawConfig::from_env(EnvReader::from_env())?;
        Ok(file.merge(env).merge(self.raw()).validate()?)
    }
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    match TcpListener::bind(addr).await {
        Ok(l) => Ok(l),
        // Hosts without IPv6: fall back from [::] to 0.0.0.0.
        Err(_) if addr.ip().is_unspecified() && addr.is_ipv6() => {
            TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], addr.port())))
                .await
                .with_context(|| {
                    format!("Failed to start listener (port={}) for {what}", addr.port())
                })
        }
        Err(e) => Err(e)
            .with_context(|| format!("Failed to start listener (port={}) for {what}", addr.port())),
    }
}

/// Runs doppler: load configuration, bind, print the upstream startup lines,
/// serve until SIGTERM/Ctrl-C, then shut down gracefully.
pub async fn main(args: Args) -> anyhow::Result<()> {
    let config = args.load()?;
    if config.use_rfc3339 {
        logline::set_format(logline::Format::Rfc3339Nanos);
    }
    // The root binary may already have installed a subscriber: keep it.
    if let Err(e) = logline::init_tracing(&args.log_level) {
        tracing::debug!(error = %e, "tracing subscriber not installed");
    }
    plumbing::rlimit::raise_nofile_for(1024);
    if config.use_rfc3339 {
        logline::set_format(logline::Format::Rfc3339Nanos);
    }
    // Fail on unusable certificates before announcing anything.
    crate::server::tls_config(&config)?;

    logline::startup("Startup: Setting up the router server");
    let grpc = bind(config.grpc_addr, "gRPC").await?;
    let grpc_addr = grpc.local_addr()?;
    logline::startup(&format!("grpc bound to: {grpc_addr}"));
    // The admin listener is our addition (upstream has none): if its port is
    // taken, doppler still serves (drop-in replacement), without /metrics.
    let admin = match config.admin_addr {
        Some(a) => match bind(a, "admin").await {
            Ok(l) => {
                logline::startup(&format!("metrics bound to: {}", l.local_addr()?));
                Some(l)
            }
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), "admin listener disabled");
                None
            }
        },
        None => None,
    };
    let pprof = bind(config.pprof_addr, "pprof")
        .await
        .context("Error creating pprof listener")?;
    logline::startup("Startup: router server started.");
    logline::startup("MessageRouter:Starting");
    logline::startup(&format!("Starting gRPC server on {grpc_addr}"));
    logline::startup(&format!("pprof bound to: {}", pprof.local_addr()?));

    let shutdown = Shutdown::new();
    tokio::spawn(shutdown.clone().wait_for_signal());
    crate::run(
        config,
        Listeners {
            grpc,
            admin,
            pprof: Some(pprof),
        },
        shutdown,
    )
    .await?;
    Ok(())
}
