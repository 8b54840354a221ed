//! Command line: flags, an optional TOML file and the upstream agent
//! environment variables (precedence: flags > environment > file >
//! defaults), then the upstream startup lines and a run until SIGTERM /
//! Ctrl-C.

use std::path::PathBuf;

use anyhow::Context as _;
use plumbing::logline::startup;
use plumbing::shutdown::Shutdown;

use crate::config::{RawConfig, parse_tags};
use crate::{Config, Listeners};

/// `metron-agent` / `loggregator agent` options. Every option can also be set
/// in the config file (same name with `_`) or, where upstream has one, by the
/// upstream environment variable named in its help.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Args {
    /// TOML config file (keys as the long flags, with `_`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// v1 UDP listen address [default: 127.0.0.1:3457; env AGENT_INCOMING_UDP_PORT].
    #[arg(long, value_name = "ADDR")]
    pub udp_addr: Option<String>,
    /// Disable the UDP listener and v1 pipeline [env AGENT_DISABLE_UDP].
    #[arg(long)]
    pub disable_udp: bool,
    /// v2 gRPC (mTLS) listen address [default: 127.0.0.1:3458; env AGENT_PORT].
    #[arg(long, value_name = "ADDR")]
    pub grpc_addr: Option<String>,
    /// Admin `/metrics` + `/health` address [default: 127.0.0.1:14824; env METRICS_PORT].
    #[arg(long, value_name = "ADDR")]
    pub admin_addr: Option<String>,
    /// CA certificate PEM [required unless --insecure-plaintext; env AGENT_CA_FILE].
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Certificate PEM, SAN `metron` [required unless --insecure-plaintext; env AGENT_CERT_FILE].
    #[arg(long, value_name = "FILE")]
    pub cert_file: Option<PathBuf>,
    /// Private key PEM [required unless --insecure-plaintext; env AGENT_KEY_FILE].
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// TLS 1.2 cipher suites, comma-separated [default: both ECDHE-RSA AES-GCM; env AGENT_CIPHER_SUITES].
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub cipher_suites: Option<Vec<String>>,
    /// Serve and dial plaintext gRPC without TLS (local development only) [default: false].
    #[arg(long)]
    pub insecure_plaintext: bool,
    /// Doppler `host:port` (DNS names yield every record), repeatable or comma-separated [required; env ROUTER_ADDR].
    #[arg(long, value_name = "HOST:PORT", value_delimiter = ',')]
    pub router_addr: Option<Vec<String>>,
    /// Preferred same-AZ doppler `host:port` [env ROUTER_ADDR_WITH_AZ].
    #[arg(long, value_name = "HOST:PORT", value_delimiter = ',')]
    pub router_addr_with_az: Option<Vec<String>>,
    /// v1 deployment field default [env AGENT_DEPLOYMENT].
    #[arg(long)]
    pub deployment: Option<String>,
    /// v1 job field default [env AGENT_JOB].
    #[arg(long)]
    pub job: Option<String>,
    /// v1 index field default [env AGENT_INDEX].
    #[arg(long)]
    pub index: Option<String>,
    /// v1 ip field default [env AGENT_IP].
    #[arg(long)]
    pub ip: Option<String>,
    /// Default v2 tags `k:v,k:v` [default: deployment, job, index, ip when set; env AGENT_TAGS].
    #[arg(long, value_name = "K:V,...")]
    pub tags: Option<String>,
    /// Drop v2 logs at ingress [env LOGS_DISABLED].
    #[arg(long)]
    pub logs_disabled: bool,
    /// Ring capacity per path, drop-oldest [default: 10000].
    #[arg(long)]
    pub ingress_buffer_size: Option<usize>,
    /// Maximum envelopes per v2 batch [default: 100].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Pusher (v1) streams [default: 5].
    #[arg(long)]
    pub v1_streams: Option<usize>,
    /// BatchSender (v2) streams [default: 5].
    #[arg(long)]
    pub v2_streams: Option<usize>,
    /// Writes before a stream is recycled, plus rand[0,1000) [default: 100000].
    #[arg(long)]
    pub recycle_after_writes: Option<u64>,
    /// Own-metric envelope interval, Go duration, `0s` = never [default: 1m; env AGENT_METRIC_BATCH_INTERVAL_MILLISECONDS].
    #[arg(long)]
    pub metrics_interval: Option<String>,
    /// source_id of own-metric envelopes [default: metron; env AGENT_METRIC_SOURCE_ID].
    #[arg(long)]
    pub metric_source_id: Option<String>,
    /// Doppler name re-resolution interval, Go duration [default: 10s].
    #[arg(long)]
    pub resolve_interval: Option<String>,
    /// Log level or filter (RUST_LOG wins when set) [default: info].
    #[arg(long, default_value = "info")]
    pub log_level: String,
}

impl Args {
    fn raw(&self) -> anyhow::Result<RawConfig> {
        let tags = self
            .tags
            .as_deref()
            .map(parse_tags)
            .transpose()
            .map_err(|e| anyhow::anyhow!("invalid --tags: {e}"))?;
        Ok(RawConfig {
            udp_addr: self.udp_addr.clone(),
            disable_udp: self.disable_udp.then_some(true),
            grpc_addr: self.grpc_addr.clone(),
            admin_addr: self.admin_addr.clone(),
            ca_file: self.ca_file.clone(),
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
            cipher_suites: self.cipher_suites.clone(),
            insecure_plaintext: self.insecure_plaintext.then_some(true),
            router_addr: self.router_addr.clone(),
            router_addr_with_az: self.router_addr_with_az.clone(),
            deployment: self.deployment.clone(),
            job: self.job.clone(),
            index: self.index.clone(),
            ip: self.ip.clone(),
            tags,
            logs_disabled: self.logs_disabled.then_some(true),
            ingress_buffer_size: self.ingress_buffer_size,
            batch_size: self.batch_size,
            v1_streams: self.v1_streams,
            v2_streams: self.v2_streams,
            recycle_after_writes: self.recycle_after_writes,
            metrics_interval: self.metrics_interval.clone(),
            metric_source_id: self.metric_source_id.clone(),
            resolve_interval: self.resolve_interval.clone(),
            drop_log_interval: None,
            shutdown_grace: None,
        })
    }

    /// File, then environment, then flags → validated [`Config`].
    pub fn load(&self) -> anyhow::Result<Config> {
        let mut raw = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                RawConfig::from_toml(&text).with_context(|| format!("in {}", path.display()))?
            }
            None => RawConfig::default(),
        };
        raw.merge(RawConfig::from_env(|k| std::env::var(k).ok())?);
        raw.merge(self.raw()?);
        Ok(raw.validate()?)
    }
}

/// Loads the configuration, binds, prints the upstream startup lines and runs
/// until SIGTERM / Ctrl-C.
pub async fn main(args: Args) -> anyhow::Result<()> {
    let _ = plumbing::logline::init_tracing(&args.log_level);
    plumbing::rlimit::raise_nofile_for(1024);
    startup("starting loggregator-agent");
    let config = args.load()?;
    let listeners = Listeners::bind(&config).await?;
    if let Some(admin) = &listeners.admin {
        let addr = admin.local_addr()?;
        startup(&format!("Metrics endpoint is listening on {addr}"));
        startup(&format!("metrics bound to: {addr}"));
    }
    startup("Startup: Setting up the agent");
    if let Some(udp) = &listeners.udp {
        startup(&format!("udp bound to: {}", udp.local_addr()?));
        if let Some(addr) = config.udp_addr {
            startup(&format!("agent v1 API started on addr {addr}"));
        }
    }
    startup(&format!(
        "agent v2 API started on addr {}",
        config.grpc_addr
    ));
    startup(&format!("grpc bound to: {}", listeners.grpc.local_addr()?));
    let shutdown = Shutdown::new();
    tokio::spawn(shutdown.clone().wait_for_signal());
    crate::run(config, listeners, shutdown).await?;
    Ok(())
}
