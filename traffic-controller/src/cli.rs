//! Command line of the `traffic-controller` binary and of
//! `loggregator traffic-controller`.
//!
//! Values come from flags, then the upstream environment variables
//! (`TRAFFIC_CONTROLLER_*`, `ROUTER_*`, `CC_*`, `AGENT_GRPC_ADDRESS`,
//! `STREAM_TIMEOUT`, `GATEWAY_ADDR`), then the `--config` TOML file (keys are
//! the flag names with `_`), then defaults. Durations use Go syntax (`5s`).

use std::path::PathBuf;

use plumbing::shutdown::Shutdown;
use tokio::net::TcpListener;

use crate::config::RawConfig;
use crate::{Listeners, run};

/// Traffic controller options. Every option can also be set in the TOML file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Args {
    /// TOML configuration file.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// WebSocket/HTTP listen address [default: 127.0.0.1:8081; env TRAFFIC_CONTROLLER_OUTGOING_DROPSONDE_PORT gives [::]:PORT].
    #[arg(long)]
    pub ws_addr: Option<String>,
    /// RLP-gateway (`/v2/read` only) listen address, or `off` [default: 127.0.0.1:8088; env GATEWAY_ADDR].
    #[arg(long)]
    pub gateway_addr: Option<String>,
    /// Admin (`/metrics`, `/health`) listen address, announced as `pprof bound to:` [default: 127.0.0.1:14830; env TRAFFIC_CONTROLLER_PPROF_PORT gives 127.0.0.1:PORT].
    #[arg(long)]
    pub admin_addr: Option<String>,
    /// Server certificate of the external listeners; with --key-file enables TLS [env TRAFFIC_CONTROLLER_OUTGOING_CERT_FILE].
    #[arg(long)]
    pub cert_file: Option<PathBuf>,
    /// Server key of the external listeners [env TRAFFIC_CONTROLLER_OUTGOING_KEY_FILE].
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// Authorisation: `uaa` or `none` [default: uaa; env TRAFFIC_CONTROLLER_DISABLE_ACCESS_CONTROL=true gives none].
    #[arg(long)]
    pub auth: Option<String>,
    /// System domain; `/set-cookie` uses `doppler.<domain>` [default: localhost; env TRAFFIC_CONTROLLER_SYSTEM_DOMAIN].
    #[arg(long)]
    pub system_domain: Option<String>,
    /// UAA base URL, required in uaa mode [env TRAFFIC_CONTROLLER_UAA_HOST].
    #[arg(long)]
    pub uaa_url: Option<String>,
    /// UAA client id [default: doppler; env TRAFFIC_CONTROLLER_UAA_CLIENT].
    #[arg(long)]
    pub uaa_client: Option<String>,
    /// UAA client secret, required in uaa mode [env TRAFFIC_CONTROLLER_UAA_CLIENT_SECRET].
    #[arg(long)]
    pub uaa_client_secret: Option<String>,
    /// CA for UAA [env TRAFFIC_CONTROLLER_UAA_CA_CERT].
    #[arg(long)]
    pub uaa_ca_file: Option<PathBuf>,
    /// Skip verification of UAA and Cloud Controller certificates [default: false; env TRAFFIC_CONTROLLER_SKIP_CERT_VERIFY].
    #[arg(long)]
    pub skip_cert_verify: bool,
    /// Cloud Controller internal base URL for log access checks [env TRAFFIC_CONTROLLER_API_HOST].
    #[arg(long)]
    pub cc_url: Option<String>,
    /// Cloud Controller external base URL (service-instance fallback on /v2/read) [env LOG_ACCESS_ADDR_EXTERNAL].
    #[arg(long)]
    pub cc_external_url: Option<String>,
    /// Cloud Controller CA [env CC_CA_FILE].
    #[arg(long)]
    pub cc_ca_file: Option<PathBuf>,
    /// Client certificate for Cloud Controller [env CC_CERT_FILE].
    #[arg(long)]
    pub cc_cert_file: Option<PathBuf>,
    /// Client key for Cloud Controller [env CC_KEY_FILE].
    #[arg(long)]
    pub cc_key_file: Option<PathBuf>,
    /// TLS server name of Cloud Controller [env CC_SERVER_NAME].
    #[arg(long)]
    pub cc_server_name: Option<String>,
    /// How long positive auth answers are cached [default: 30s].
    #[arg(long)]
    pub auth_cache_ttl: Option<String>,
    /// Dopplers, comma-separated host:port; names are re-resolved [env ROUTER_ADDRS].
    #[arg(long)]
    pub doppler_addrs: Option<String>,
    /// CA of the dopplers (mTLS, server name `doppler`) [env ROUTER_CA_FILE].
    #[arg(long)]
    pub doppler_ca_file: Option<PathBuf>,
    /// Own certificate towards dopplers and the agent [env ROUTER_CERT_FILE].
    #[arg(long)]
    pub doppler_cert_file: Option<PathBuf>,
    /// Own key towards dopplers and the agent [env ROUTER_KEY_FILE].
    #[arg(long)]
    pub doppler_key_file: Option<PathBuf>,
    /// DNS re-resolve interval of doppler names [default: 15s].
    #[arg(long)]
    pub doppler_resolve_interval: Option<String>,
    /// Agent gRPC address for the slow-consumer Event and own metrics [env AGENT_GRPC_ADDRESS].
    #[arg(long)]
    pub agent_addr: Option<String>,
    /// Interval of own metrics sent to the agent; 0s never sends [default: 1m; env TRAFFIC_CONTROLLER_METRIC_EMITTER_INTERVAL].
    #[arg(long)]
    pub metric_emitter_interval: Option<String>,
    /// Per-consumer drop-oldest ring capacity in envelopes [default: 10000].
    #[arg(long)]
    pub buffer_size: Option<String>,
    /// Disconnect a consumer whose writes make no progress this long [default: 5s].
    #[arg(long)]
    pub slow_consumer_timeout: Option<String>,
    /// Pong deadline after a ping [default: 30s].
    #[arg(long)]
    pub keepalive: Option<String>,
    /// Maximum concurrent consumers [default: 2000].
    #[arg(long)]
    pub connection_limit: Option<String>,
    /// Connections per listener that may be accepted and not yet authenticated (reading headers or a body, waiting for auth, idle keep-alive); beyond it a connection gets 503 at once [default: 256].
    #[arg(long)]
    pub max_pending_connections: Option<String>,
    /// Deadline for a request's headers, also ending idle keep-alive connections [default: 2s].
    #[arg(long)]
    pub header_timeout: Option<String>,
    /// Deadline for a whole request body (/set-cookie) [default: 5s].
    #[arg(long)]
    pub body_timeout: Option<String>,
    /// Lifetime of one /v2/read stream [default: 14m; env STREAM_TIMEOUT].
    #[arg(long)]
    pub stream_timeout: Option<String>,
    /// /v2/read heartbeat after this much idle time [default: 15s].
    #[arg(long)]
    pub heartbeat_interval: Option<String>,
    /// Deadline of recent logs / container metrics calls to dopplers [default: 5s].
    #[arg(long)]
    pub recent_timeout: Option<String>,
    /// Append a CEF line per request to this file [env TRAFFIC_CONTROLLER_SECURITY_EVENT_LOG].
    #[arg(long)]
    pub security_event_log: Option<PathBuf>,
    /// Shutdown grace period [default: 5s].
    #[arg(long)]
    pub grace: Option<String>,
    /// Log level (or RUST_LOG) [default: info].
    #[arg(long, default_value = "info")]
    pub log_level: String,
}

impl Args {
    fn raw(&self) -> RawConfig {
        RawConfig {
            ws_addr: self.ws_addr.clone(),
            gateway_addr: self.gateway_addr.clone(),
            admin_addr: self.admin_addr.clone(),
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
            auth: self.auth.clone(),
            system_domain: self.system_domain.clone(),
            ip: None,
            security_event_log: self.security_event_log.clone(),
            uaa_url: self.uaa_url.clone(),
            uaa_client: self.uaa_client.clone(),
            uaa_client_secret: self.uaa_client_secret.clone(),
            uaa_ca_file: self.uaa_ca_file.clone(),
            skip_cert_verify: self.skip_cert_verify.then(|| "true".to_owned()),
            cc_url: self.cc_url.clone(),
            cc_external_url: self.cc_external_url.clone(),
            cc_ca_file: self.cc_ca_file.clone(),
            cc_cert_file: self.cc_cert_file.clone(),
            cc_key_file: self.cc_key_file.clone(),
            cc_server_name: self.cc_server_name.clone(),
            auth_cache_ttl: self.auth_cache_ttl.clone(),
            doppler_addrs: self.doppler_addrs.clone(),
            doppler_ca_file: self.doppler_ca_file.clone(),
            doppler_cert_file: self.doppler_cert_file.clone(),
            doppler_key_file: self.doppler_key_file.clone(),
            doppler_resolve_interval: self.doppler_resolve_interval.clone(),
            agent_addr: self.agent_addr.clone(),
            buffer_size: self.buffer_size.clone(),
            slow_consumer_timeout: self.slow_consumer_timeout.clone(),
            keepalive: self.keepalive.clone(),
            connection_limit: self.connection_limit.clone(),
            stream_timeout: self.stream_timeout.clone(),
            heartbeat_interval: self.heartbeat_interval.clone(),
            recent_timeout: self.recent_timeout.clone(),
            metric_emitter_interval: self.metric_emitter_interval.clone(),
            max_pending_connections: self.max_pending_connections.clone(),
            header_timeout: self.header_timeout.clone(),
            body_timeout: self.body_timeout.clone(),
            grace: self.grace.clone(),
        }
    }
}

/// Loads the configuration, binds the listeners, prints the upstream startup
/// lines and runs until SIGTERM / Ctrl-C.
pub async fn main(args: Args) -> anyhow::Result<()> {
    match plumbing::logline::init_tracing(&args.log_level) {
        // `loggregator traffic-controller` may have installed it already.
        Ok(()) | Err(plumbing::logline::TracingInitError::AlreadyInstalled(_)) => {}
        Err(e) => anyhow::bail!("logging: {e}"),
    }
    let file = match &args.config {
        Some(p) => RawConfig::from_file(p)?,
        None => RawConfig::default(),
    };
    let env = RawConfig::from_env(|k| std::env::var(k).ok())?;
    let config = file
        .overlay(env)
        .overlay(args.raw())
        .validate()
        .map_err(|e| anyhow::anyhow!("Unable to load config: {e}"))?;
    plumbing::logline::startup("Startup: Setting up the loggregator traffic controller");
    // Consumers plus pending connections on each of the two external listeners, plus the
    // doppler connections and the admin endpoint.
    let pending = config.listen.max_pending as u64;
    plumbing::rlimit::raise_nofile_for(
        config.connection_limit as u64 + 2 * pending + plumbing::admin::MAX_CONNECTIONS as u64 + 64,
    );

    let ws = TcpListener::bind(&config.bind.ws)
        .await
        .map_err(|e| anyhow::anyhow!("listen tcp {}: {e}", config.bind.ws))?;
    plumbing::logline::startup(&format!("ws bound to: {}", ws.local_addr()?));
    let gateway = match &config.bind.gateway {
        None => None,
        Some(addr) => {
            let l = TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("failed to start listener: listen tcp {addr}: {e}"))?;
            plumbing::logline::startup(&format!("http bound to: {}", l.local_addr()?));
            Some(l)
        }
    };
    let admin = TcpListener::bind(&config.bind.admin)
        .await
        .map_err(|e| anyhow::anyhow!("listen tcp {}: {e}", config.bind.admin))?;
    plumbing::logline::startup(&format!("pprof bound to: {}", admin.local_addr()?));

    let shutdown = Shutdown::new();
    let signals = tokio::spawn(shutdown.clone().wait_for_signal());
    let listeners = Listeners {
        ws,
        gateway,
        admin: Some(admin),
    };
    let result = run(config, listeners, shutdown.clone()).await;
    signals.abort();
    plumbing::logline::startup("Shutting down");
    result.map_err(Into::into)
}
