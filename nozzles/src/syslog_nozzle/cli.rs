//! `nozzle syslog` command line.

use std::path::PathBuf;
use std::time::Duration;

use plumbing::metrics::Registry;

use super::{Config, Format, filter_for, parse_events, run};
use crate::firehose::websocket::WsConfig;
use crate::tlsutil::{TrustOptions, client_config};

/// Syslog transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// Plain TCP.
    Tcp,
    /// TLS (`tcp+tls`).
    #[value(name = "tcp+tls")]
    TcpTls,
}

/// Flags of `nozzle syslog`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Traffic controller WebSocket URL (ws:// or wss://).
    #[arg(
        long,
        env = "TRAFFIC_CONTROLLER_URL",
        default_value = "ws://127.0.0.1:8081"
    )]
    pub traffic_controller_url: String,
    /// Subscription id: nozzles with the same id share the firehose.
    #[arg(long, env = "SUBSCRIPTION_ID", default_value = "firehose")]
    pub subscription_id: String,
    /// Authorization header sent to the traffic controller (e.g. `bearer <token>`).
    #[arg(long, env = "FIREHOSE_AUTHORIZATION", default_value = "")]
    pub authorization: String,
    /// CA verifying the traffic controller (wss://); system roots are also trusted.
    #[arg(long)]
    pub traffic_controller_ca: Option<PathBuf>,
    /// Skip verification of the traffic controller's certificate.
    #[arg(long, default_value_t = false)]
    pub skip_ssl_validation: bool,
    /// Event types to forward: LogMessage, ValueMetric, CounterEvent, ContainerMetric, HttpStartStop, Error.
    #[arg(long, env = "EVENTS", default_value = "LogMessage")]
    pub events: String,
    /// Syslog server host:port.
    #[arg(long, env = "SYSLOG_ENDPOINT", default_value = "127.0.0.1:514")]
    pub syslog_server: String,
    /// Syslog transport.
    #[arg(long, value_enum, default_value = "tcp")]
    pub syslog_protocol: Protocol,
    /// CA verifying the syslog server (tcp+tls); system roots are also trusted.
    #[arg(long)]
    pub syslog_ca: Option<PathBuf>,
    /// Skip verification of the syslog server's certificate.
    #[arg(long, default_value_t = false)]
    pub skip_ssl_validation_syslog: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "rfc5424")]
    pub format: Format,
    /// HOSTNAME for envelopes without CF name tags.
    #[arg(long, default_value = "loggregator")]
    pub hostname: String,
    /// Buffer between firehose and syslog writer (envelopes; oldest dropped when full).
    #[arg(long, env = "LOGS_BUFFER_SIZE", default_value_t = 10_000)]
    pub logs_buffer_size: usize,
    /// Admin listener (`/metrics`, `/health`).
    #[arg(long, default_value = "127.0.0.1:14832")]
    pub admin_addr: String,
    /// Log level (`RUST_LOG` overrides).
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}

fn trust(ca: &Option<PathBuf>, skip: bool) -> anyhow::Result<TrustOptions> {
    Ok(TrustOptions {
        system_roots: true,
        extra_ca_pem: match ca {
            Some(p) => Some(
                std::fs::read(p).map_err(|e| anyhow::anyhow!("reading {}: {e}", p.display()))?,
            ),
            None => None,
        },
        skip_verify: skip,
    })
}

impl Args {
    /// Validates the flags.
    pub fn into_config(self) -> anyhow::Result<Config> {
        let events = parse_events(&self.events)?;
        let tc_tls = if self.traffic_controller_url.starts_with("wss://") {
            Some(client_config(
                &trust(&self.traffic_controller_ca, self.skip_ssl_validation)?,
                None,
                None,
                &[b"http/1.1"],
            )?)
        } else {
            None
        };
        let syslog_tls = match self.syslog_protocol {
            Protocol::Tcp => None,
            Protocol::TcpTls => {
                let host = self
                    .syslog_server
                    .rsplit_once(':')
                    .map_or(self.syslog_server.as_str(), |(h, _)| h)
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned();
                let cfg = client_config(
                    &trust(&self.syslog_ca, self.skip_ssl_validation_syslog)?,
                    None,
                    None,
                    &[],
                )?;
                Some((cfg, host))
            }
        };
        Ok(Config {
            firehose: WsConfig {
                url: self.traffic_controller_url,
                subscription_id: self.subscription_id,
                filter: filter_for(&events),
                authorization: self.authorization,
                tls: tc_tls,
            },
            events,
            syslog_addr: self.syslog_server,
            syslog_tls,
            format: self.format,
            hostname: self.hostname,
            buffer_size: self.logs_buffer_size.max(1),
            registry: Registry::new(),
            grace: Duration::from_secs(5),
        })
    }
}

/// Runs `nozzle syslog` until SIGTERM / Ctrl-C.
pub async fn main(args: Args) -> anyhow::Result<()> {
    let log_level = args.log_level.clone();
    let admin_addr = args.admin_addr.clone();
    crate::cli_support::main(&log_level, &admin_addr, || args.into_config(), run).await
}
