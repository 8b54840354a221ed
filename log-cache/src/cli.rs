//! Command line of the standalone `log-cache` binary and of
//! `loggregator log-cache`.
//!
//! Sources, later ones winning: built-in defaults, the TOML file given with
//! `--config`, the upstream environment variables (see [`crate::config`]),
//! then flags. Everything is checked, certificates included, before the
//! first listener is bound.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use plumbing::env::EnvReader;
use plumbing::logline;
use plumbing::shutdown::Shutdown;
use tokio::net::TcpListener;

use crate::config::RawConfig;
use crate::{Config, Listeners};

/// Log Cache options. Each may also come from the config file (same name
/// with `_`) and the variables named.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Args {
    /// TOML config file with any of the options below (snake_case keys).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// gRPC listen address (Egress, Ingress, PromQLQuerier) [default: :8080; env: ADDR].
    #[arg(long, value_name = "ADDR")]
    pub addr: Option<String>,
    /// HTTP API listen address (`/api/v1/...`, what the cf CLI reads); served only when given [env: GATEWAY_ADDR].
    #[arg(long, value_name = "ADDR")]
    pub gateway_addr: Option<String>,
    /// TLS certificate of the HTTP API (with --gateway-key-file) [env: EXTERNAL_CERT].
    #[arg(long, value_name = "FILE")]
    pub gateway_cert_file: Option<PathBuf>,
    /// TLS key of the HTTP API [env: EXTERNAL_KEY].
    #[arg(long, value_name = "FILE")]
    pub gateway_key_file: Option<PathBuf>,
    /// Admin listener for /metrics and /health, or `off` [default: 127.0.0.1:6060; env: METRICS_PORT sets the port].
    #[arg(long, value_name = "ADDR")]
    pub admin_addr: Option<String>,
    /// CA that peers' certificates must chain to (gRPC mutual TLS, server name `log-cache`) [env: CA_PATH].
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Certificate of the gRPC port [env: CERT_PATH].
    #[arg(long, value_name = "FILE")]
    pub cert_file: Option<PathBuf>,
    /// Key of the gRPC port [env: KEY_PATH].
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Dopplers to subscribe to, host:port, comma separated; names are re-resolved [env: DOPPLER_ADDRS].
    #[arg(long, value_delimiter = ',', value_name = "HOST:PORT")]
    pub doppler_addrs: Option<Vec<String>>,
    /// CA of the dopplers (mutual TLS, server name `doppler`) [env: DOPPLER_CA_PATH].
    #[arg(long, value_name = "FILE")]
    pub doppler_ca_file: Option<PathBuf>,
    /// Client certificate towards dopplers [env: DOPPLER_CERT_PATH].
    #[arg(long, value_name = "FILE")]
    pub doppler_cert_file: Option<PathBuf>,
    /// Client key towards dopplers [env: DOPPLER_KEY_PATH].
    #[arg(long, value_name = "FILE")]
    pub doppler_key_file: Option<PathBuf>,
    /// How often doppler names are re-resolved [default: 1m].
    #[arg(long, value_name = "DURATION")]
    pub doppler_resolve_interval: Option<String>,
    /// Shard id of the doppler subscription, the same on every node [default: log-cache].
    #[arg(long)]
    pub shard_id: Option<String>,
    /// Envelopes buffered between the doppler streams and the store, drop-oldest [default: 100000].
    #[arg(long)]
    pub ingest_buffer_size: Option<usize>,
    /// Store budget as a percentage of system memory [default: 50; env: MEMORY_LIMIT_PERCENT].
    #[arg(long)]
    pub memory_limit_percent: Option<u64>,
    /// Store budget in bytes, wins over the percentage [env: MEMORY_LIMIT_BYTES].
    #[arg(long)]
    pub memory_limit_bytes: Option<u64>,
    /// Envelopes kept per source id, oldest evicted first [default: 100000; env: MAX_PER_SOURCE].
    #[arg(long)]
    pub max_per_source: Option<usize>,
    /// How often the store is checked against its budget [default: 1s; env: TRUNCATION_INTERVAL].
    #[arg(long, value_name = "DURATION")]
    pub truncation_interval: Option<String>,
    /// Longest a PromQL query may run [default: 10s; env: QUERY_TIMEOUT].
    #[arg(long, value_name = "DURATION")]
    pub query_timeout: Option<String>,
    /// This node's index in --node-addrs [default: 0; env: NODE_INDEX].
    #[arg(long)]
    pub node_index: Option<usize>,
    /// Every node's gRPC address in index order, comma separated [env: NODE_ADDRS].
    #[arg(long, value_delimiter = ',', value_name = "HOST:PORT")]
    pub node_addrs: Option<Vec<String>>,
    /// Authorisation of the HTTP API: `uaa` (as upstream's cf-auth-proxy: UAA JWTs, Cloud Controller checks) or `none` (development) [default: uaa].
    #[arg(long)]
    pub auth: Option<String>,
    /// UAA base URL, for `--auth uaa` [env: UAA_ADDR].
    #[arg(long, value_name = "URL")]
    pub uaa_addr: Option<String>,
    /// CA of UAA [env: UAA_CA_PATH].
    #[arg(long, value_name = "FILE")]
    pub uaa_ca_file: Option<PathBuf>,
    /// UAA client id, for basic auth on /token_keys [env: UAA_CLIENT_ID].
    #[arg(long)]
    pub uaa_client_id: Option<String>,
    /// UAA client secret [env: UAA_CLIENT_SECRET].
    #[arg(long)]
    pub uaa_client_secret: Option<String>,
    /// Cloud Controller base URL, for `--auth uaa` [env: CAPI_ADDR].
    #[arg(long, value_name = "URL")]
    pub capi_addr: Option<String>,
    /// CA of Cloud Controller [env: CAPI_CA_PATH].
    #[arg(long, value_name = "FILE")]
    pub capi_ca_file: Option<PathBuf>,
    /// TLS server name of Cloud Controller [env: CAPI_COMMON_NAME].
    #[arg(long)]
    pub capi_common_name: Option<String>,
    /// Skip verification of UAA and Cloud Controller certificates [env: SKIP_CERT_VERIFY].
    #[arg(long)]
    pub skip_cert_verify: bool,
    /// How long positive authorisation answers are cached, never past the token's expiry [default: 1m; env: CACHE_EXPIRATION_INTERVAL].
    #[arg(long, value_name = "DURATION")]
    pub cache_expiration_interval: Option<String>,
    /// How often expired authorisation answers are swept [default: 1m; env: TOKEN_PRUNING_INTERVAL].
    #[arg(long, value_name = "DURATION")]
    pub token_pruning_interval: Option<String>,
    /// RFC 5424 syslog ingest address (an upstream syslog agent's aggregate drain can point here), or `off` [default: off; env: SYSLOG_PORT listens on all interfaces].
    #[arg(long, value_name = "ADDR")]
    pub syslog_addr: Option<String>,
    /// Syslog TLS certificate (with --syslog-key-file) [env: SYSLOG_TLS_CERT_PATH].
    #[arg(long, value_name = "FILE")]
    pub syslog_cert_file: Option<PathBuf>,
    /// Syslog TLS key [env: SYSLOG_TLS_KEY_PATH].
    #[arg(long, value_name = "FILE")]
    pub syslog_key_file: Option<PathBuf>,
    /// CA that syslog clients' certificates must chain to (mutual TLS; needs --syslog-cert-file).
    #[arg(long, value_name = "FILE")]
    pub syslog_ca_file: Option<PathBuf>,
    /// Close a syslog connection idle this long [default: 2m; env: SYSLOG_IDLE_TIMEOUT].
    #[arg(long, value_name = "DURATION")]
    pub syslog_idle_timeout: Option<String>,
    /// Largest syslog message accepted, bytes; a longer frame closes its connection [default: 66560; env: SYSLOG_MAX_MESSAGE_LENGTH].
    #[arg(long)]
    pub syslog_max_message_length: Option<usize>,
    /// LF-terminated syslog framing instead of octet counting [env: SYSLOG_NON_TRANSPARENT_FRAMING].
    #[arg(long)]
    pub syslog_non_transparent_framing: bool,
    /// Syslog connections held at once; more are refused and counted [default: 1024].
    #[arg(long)]
    pub syslog_max_connections: Option<usize>,
    /// RFC 3339 log timestamps [default: false; env: USE_RFC339].
    #[arg(long)]
    pub use_rfc3339: bool,
    /// Log filter (`RUST_LOG` wins when set).
    #[arg(long, default_value = "info")]
    pub log_level: String,
}

impl Args {
    fn raw(&self) -> RawConfig {
        RawConfig {
            addr: self.addr.clone(),
            gateway_addr: self.gateway_addr.clone(),
            admin_addr: self.admin_addr.clone(),
            metrics_port: None,
            ca_file: self.ca_file.clone(),
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
            gateway_cert_file: self.gateway_cert_file.clone(),
            gateway_key_file: self.gateway_key_file.clone(),
            doppler_addrs: self.doppler_addrs.clone(),
            doppler_ca_file: self.doppler_ca_file.clone(),
            doppler_cert_file: self.doppler_cert_file.clone(),
            doppler_key_file: self.doppler_key_file.clone(),
            doppler_resolve_interval: self.doppler_resolve_interval.clone(),
            shard_id: self.shard_id.clone(),
            ingest_buffer_size: self.ingest_buffer_size,
            memory_limit_percent: self.memory_limit_percent,
            memory_limit_bytes: self.memory_limit_bytes,
            max_per_source: self.max_per_source,
            truncation_interval: self.truncation_interval.clone(),
            query_timeout: self.query_timeout.clone(),
            node_index: self.node_index,
            node_addrs: self.node_addrs.clone(),
            use_rfc3339: self.use_rfc3339.then_some(true),
            auth: self.auth.clone(),
            uaa_addr: self.uaa_addr.clone(),
            uaa_ca_file: self.uaa_ca_file.clone(),
            uaa_client_id: self.uaa_client_id.clone(),
            uaa_client_secret: self.uaa_client_secret.clone(),
            capi_addr: self.capi_addr.clone(),
            capi_ca_file: self.capi_ca_file.clone(),
            capi_common_name: self.capi_common_name.clone(),
            skip_cert_verify: self.skip_cert_verify.then_some(true),
            cache_expiration_interval: self.cache_expiration_interval.clone(),
            token_pruning_interval: self.token_pruning_interval.clone(),
            syslog_addr: self.syslog_addr.clone(),
            syslog_port: None,
            syslog_cert_file: self.syslog_cert_file.clone(),
            syslog_key_file: self.syslog_key_file.clone(),
            syslog_ca_file: self.syslog_ca_file.clone(),
            syslog_idle_timeout: self.syslog_idle_timeout.clone(),
            syslog_max_message_length: self.syslog_max_message_length,
            syslog_non_transparent_framing: self.syslog_non_transparent_framing.then_some(true),
            syslog_max_connections: self.syslog_max_connections,
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
                .with_context(|| format!("cannot listen on port {} ({what})", addr.port()))
        }
        Err(e) => Err(e).with_context(|| format!("cannot listen on {addr} ({what})")),
    }
}

/// Runs a node: load and check the configuration, bind, announce, serve
/// until SIGTERM/Ctrl-C.
pub async fn main(args: Args) -> anyhow::Result<()> {
    if let Err(e) = logline::init_tracing(&args.log_level) {
        tracing::debug!(error = %e, "tracing subscriber not installed");
    }
    let config = args.load()?;
    if config.use_rfc3339 {
        logline::set_format(logline::Format::Rfc3339Nanos);
    }
    plumbing::rlimit::raise_nofile_for(4096);
    crate::server::check_tls(&config)?;

    logline::startup("Starting Log Cache...");
    let grpc = bind(config.grpc_addr, "--addr / ADDR").await?;
    logline::startup(&format!("gRPC bound to: {}", grpc.local_addr()?));
    let gateway = match config.gateway_addr {
        Some(a) => {
            let l = bind(a, "--gateway-addr").await?;
            logline::startup(&format!("HTTP API bound to: {}", l.local_addr()?));
            Some(l)
        }
        None => {
            logline::startup("HTTP API off (give --gateway-addr to serve /api/v1 to cf CLIs)");
            None
        }
    };
    let admin = match config.admin_addr {
        Some(a) => match bind(a, "--admin-addr").await {
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
    let syslog = match &config.syslog {
        Some(s) => {
            let l = bind(s.addr, "--syslog-addr / SYSLOG_PORT").await?;
            logline::startup(&format!("syslog bound to: {}", l.local_addr()?));
            Some(l)
        }
        None => None,
    };
    if config.doppler_addrs.is_empty() {
        logline::startup("doppler ingest off (no --doppler-addrs / DOPPLER_ADDRS)");
    } else {
        logline::startup(&format!(
            "subscribing to dopplers: {}",
            config.doppler_addrs.join(",")
        ));
    }
    let shutdown = Shutdown::new();
    tokio::spawn(shutdown.clone().wait_for_signal());
    crate::run(
        config,
        Listeners {
            grpc,
            gateway,
            admin,
            syslog,
        },
        shutdown,
    )
    .await?;
    logline::startup("Closing Log Cache.");
    Ok(())
}
