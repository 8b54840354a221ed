//! Configuration: raw values from a TOML file, the upstream environment
//! variables and flags ([`RawConfig`], later sources winning), validated
//! into [`Config`].
//!
//! Upstream variables (log-cache-release `src/cmd/log-cache/config.go`,
//! `src/internal/tls/tls.go`; parsing rules of `plumbing::env`: empty means
//! unset, Go durations, strict booleans):
//!
//! | Variable | Option | Default |
//! |---|---|---|
//! | `ADDR` | `--addr` (gRPC: `Egress`, `Ingress`, `PromQLQuerier`) | `:8080` |
//! | `CA_PATH`, `CERT_PATH`, `KEY_PATH` | `--ca-file`, `--cert-file`, `--key-file`: mutual TLS of the gRPC port (server name `log-cache`) and towards peer nodes | none = plaintext |
//! | `MEMORY_LIMIT_PERCENT` | `--memory-limit-percent` (of system memory) | 50 |
//! | `MEMORY_LIMIT_BYTES` | `--memory-limit-bytes` (wins over the percentage) | unset |
//! | `MAX_PER_SOURCE` | `--max-per-source` | 100000 |
//! | `TRUNCATION_INTERVAL` | `--truncation-interval` | `1s` |
//! | `QUERY_TIMEOUT` | `--query-timeout` | `10s` |
//! | `NODE_INDEX`, `NODE_ADDRS` | `--node-index`, `--node-addrs` | 0, none (single node) |
//! | `METRICS_PORT` | port of `--admin-addr` (`/metrics`, `/health`) | 6060 on 127.0.0.1 |
//! | `USE_RFC339` | `--use-rfc3339` | false |
//! | `PRUNES_PER_GC` | accepted and ignored (no garbage collector) | |
//!
//! The HTTP API's authorisation takes the variables of upstream's
//! `log-cache-cf-auth-proxy` job: `UAA_ADDR`, `UAA_CA_PATH`, `UAA_CLIENT_ID`,
//! `UAA_CLIENT_SECRET`, `CAPI_ADDR`, `CAPI_CA_PATH`, `CAPI_COMMON_NAME`,
//! `SKIP_CERT_VERIFY`, `CACHE_EXPIRATION_INTERVAL`, `TOKEN_PRUNING_INTERVAL`,
//! and `EXTERNAL_CERT` / `EXTERNAL_KEY` for its TLS (`--auth uaa`, the
//! default, needs the UAA and Cloud Controller addresses once the API is
//! served; `--auth none` is for development). Its listen address is
//! `--gateway-addr` (upstream's `ADDR` of that job is this job's gRPC port).
//!
//! Syslog ingest takes the variables of upstream's `log-cache-syslog-server`
//! job: `SYSLOG_PORT` (listen on all interfaces; or `--syslog-addr`),
//! `SYSLOG_TLS_CERT_PATH` / `SYSLOG_TLS_KEY_PATH`, `SYSLOG_IDLE_TIMEOUT`
//! (2m), `SYSLOG_MAX_MESSAGE_LENGTH` (65 KiB) and
//! `SYSLOG_NON_TRANSPARENT_FRAMING`; `--syslog-ca-file` (ours) requires
//! client certificates. Its `LOG_CACHE_ADDR` is not needed: it stores here.
//!
//! Ours (no upstream equivalent in the `log-cache` job): `--gateway-addr` /
//! `GATEWAY_ADDR` (the HTTP API, served only when given), `--doppler-addrs` /
//! `DOPPLER_ADDRS` with `--doppler-ca-file`, `--doppler-cert-file`,
//! `--doppler-key-file` (`DOPPLER_CA_PATH`, `DOPPLER_CERT_PATH`,
//! `DOPPLER_KEY_PATH`; server name `doppler`), `--shard-id`,
//! `--ingest-buffer-size`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use plumbing::env::{EnvReader, parse_go_duration};
use plumbing::tls::TlsFiles;
use serde::Deserialize;

use crate::auth::{AuthMode, UaaConfig};
use crate::syslog::SyslogConfig;

/// Default gRPC address (upstream `:8080`).
pub const DEFAULT_GRPC_ADDR: &str = "[::]:8080";
/// Default admin address (upstream's metrics port 6060, on loopback).
pub const DEFAULT_ADMIN_ADDR: &str = "127.0.0.1:6060";
/// Default shard id of the doppler subscription, shared by all nodes.
pub const DEFAULT_SHARD_ID: &str = "log-cache";
/// Default capacity of the doppler ingest ring, in envelopes.
pub const DEFAULT_INGEST_BUFFER: usize = 100_000;

/// A configuration error, naming the option and its variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The `--config` file could not be read or parsed.
    #[error("config file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// Environment variables were missing or malformed.
    #[error("{0}")]
    Env(String),
    /// A value is unusable.
    #[error("{option}: {reason}")]
    Invalid {
        /// The option (and variable) at fault.
        option: &'static str,
        /// What is wrong and how to fix it.
        reason: String,
    },
}

fn invalid(option: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        option,
        reason: reason.into(),
    }
}

/// Raw settings; `None` means "not given here".
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// gRPC listen address (`host:port`, `:port`).
    pub addr: Option<String>,
    /// HTTP API listen address, or `off`.
    pub gateway_addr: Option<String>,
    /// Admin listen address, or `off`.
    pub admin_addr: Option<String>,
    /// Port of the admin listener (upstream `METRICS_PORT`).
    pub metrics_port: Option<u16>,
    /// gRPC mutual TLS: CA.
    pub ca_file: Option<PathBuf>,
    /// gRPC mutual TLS: certificate.
    pub cert_file: Option<PathBuf>,
    /// gRPC mutual TLS: key.
    pub key_file: Option<PathBuf>,
    /// HTTP API TLS certificate.
    pub gateway_cert_file: Option<PathBuf>,
    /// HTTP API TLS key.
    pub gateway_key_file: Option<PathBuf>,
    /// Dopplers to subscribe to.
    pub doppler_addrs: Option<Vec<String>>,
    /// Doppler mutual TLS: CA.
    pub doppler_ca_file: Option<PathBuf>,
    /// Doppler mutual TLS: certificate.
    pub doppler_cert_file: Option<PathBuf>,
    /// Doppler mutual TLS: key.
    pub doppler_key_file: Option<PathBuf>,
    /// DNS re-resolve interval of doppler names (Go duration).
    pub doppler_resolve_interval: Option<String>,
    /// Shard id of the doppler subscription.
    pub shard_id: Option<String>,
    /// Doppler ingest ring capacity (envelopes).
    pub ingest_buffer_size: Option<usize>,
    /// Store budget as a percentage of system memory.
    pub memory_limit_percent: Option<u64>,
    /// Store budget in bytes (wins over the percentage).
    pub memory_limit_bytes: Option<u64>,
    /// Envelopes per source.
    pub max_per_source: Option<usize>,
    /// Truncation interval (Go duration).
    pub truncation_interval: Option<String>,
    /// PromQL query timeout (Go duration).
    pub query_timeout: Option<String>,
    /// This node's index in `node_addrs`.
    pub node_index: Option<usize>,
    /// Every node's gRPC address, in index order.
    pub node_addrs: Option<Vec<String>>,
    /// RFC 3339 log timestamps.
    pub use_rfc3339: Option<bool>,
    /// HTTP API authorisation: `uaa` or `none`.
    pub auth: Option<String>,
    /// Syslog ingest listen address, or `off`.
    pub syslog_addr: Option<String>,
    /// Syslog ingest port on all interfaces (upstream `SYSLOG_PORT`).
    pub syslog_port: Option<u16>,
    /// Syslog TLS certificate.
    pub syslog_cert_file: Option<PathBuf>,
    /// Syslog TLS key.
    pub syslog_key_file: Option<PathBuf>,
    /// CA that syslog clients' certificates must chain to (mutual TLS).
    pub syslog_ca_file: Option<PathBuf>,
    /// Idle timeout of a syslog connection (Go duration).
    pub syslog_idle_timeout: Option<String>,
    /// Largest syslog message accepted, in bytes.
    pub syslog_max_message_length: Option<usize>,
    /// LF-terminated framing instead of octet counting.
    pub syslog_non_transparent_framing: Option<bool>,
    /// Syslog connections held at once.
    pub syslog_max_connections: Option<usize>,
    /// UAA base URL (`uaa` mode).
    pub uaa_addr: Option<String>,
    /// CA of UAA.
    pub uaa_ca_file: Option<PathBuf>,
    /// UAA client id (basic auth on `/token_keys`).
    pub uaa_client_id: Option<String>,
    /// UAA client secret.
    pub uaa_client_secret: Option<String>,
    /// Cloud Controller base URL (`uaa` mode).
    pub capi_addr: Option<String>,
    /// CA of Cloud Controller.
    pub capi_ca_file: Option<PathBuf>,
    /// TLS server name of Cloud Controller.
    pub capi_common_name: Option<String>,
    /// Skip verification of UAA and Cloud Controller certificates.
    pub skip_cert_verify: Option<bool>,
    /// How long positive authorisation answers are cached (Go duration).
    pub cache_expiration_interval: Option<String>,
    /// How often expired cache entries are swept (Go duration).
    pub token_pruning_interval: Option<String>,
}

impl RawConfig {
    /// Reads a TOML file (keys as the fields above).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// Reads the upstream (and our) environment variables.
    pub fn from_env(mut env: EnvReader) -> Result<Self, ConfigError> {
        let path = |env: &mut EnvReader, name: &str| env.string(name).map(PathBuf::from);
        let raw = Self {
            addr: env.string("ADDR"),
            gateway_addr: env.string("GATEWAY_ADDR"),
            metrics_port: env.u16("METRICS_PORT"),
            ca_file: path(&mut env, "CA_PATH"),
            cert_file: path(&mut env, "CERT_PATH"),
            key_file: path(&mut env, "KEY_PATH"),
            doppler_addrs: env.list("DOPPLER_ADDRS"),
            doppler_ca_file: path(&mut env, "DOPPLER_CA_PATH"),
            doppler_cert_file: path(&mut env, "DOPPLER_CERT_PATH"),
            doppler_key_file: path(&mut env, "DOPPLER_KEY_PATH"),
            memory_limit_percent: env.u64("MEMORY_LIMIT_PERCENT"),
            memory_limit_bytes: env.u64("MEMORY_LIMIT_BYTES"),
            max_per_source: env.usize("MAX_PER_SOURCE"),
            truncation_interval: env
                .duration("TRUNCATION_INTERVAL")
                .map(plumbing::env::format_go_duration),
            query_timeout: env
                .duration("QUERY_TIMEOUT")
                .map(plumbing::env::format_go_duration),
            node_index: env.usize("NODE_INDEX"),
            node_addrs: env.list("NODE_ADDRS"),
            use_rfc3339: env.bool("USE_RFC339"),
            // log-cache-syslog-server's variables.
            syslog_port: env.u16("SYSLOG_PORT"),
            syslog_cert_file: path(&mut env, "SYSLOG_TLS_CERT_PATH"),
            syslog_key_file: path(&mut env, "SYSLOG_TLS_KEY_PATH"),
            syslog_idle_timeout: env
                .duration("SYSLOG_IDLE_TIMEOUT")
                .map(plumbing::env::format_go_duration),
            syslog_max_message_length: env.usize("SYSLOG_MAX_MESSAGE_LENGTH"),
            syslog_non_transparent_framing: env.bool("SYSLOG_NON_TRANSPARENT_FRAMING"),
            // log-cache-cf-auth-proxy's variables.
            gateway_cert_file: path(&mut env, "EXTERNAL_CERT"),
            gateway_key_file: path(&mut env, "EXTERNAL_KEY"),
            uaa_addr: env.string("UAA_ADDR"),
            uaa_ca_file: path(&mut env, "UAA_CA_PATH"),
            uaa_client_id: env.string("UAA_CLIENT_ID"),
            uaa_client_secret: env.string("UAA_CLIENT_SECRET"),
            capi_addr: env.string("CAPI_ADDR"),
            capi_ca_file: path(&mut env, "CAPI_CA_PATH"),
            capi_common_name: env.string("CAPI_COMMON_NAME"),
            skip_cert_verify: env.bool("SKIP_CERT_VERIFY"),
            cache_expiration_interval: env
                .duration("CACHE_EXPIRATION_INTERVAL")
                .map(plumbing::env::format_go_duration),
            token_pruning_interval: env
                .duration("TOKEN_PRUNING_INTERVAL")
                .map(plumbing::env::format_go_duration),
            ..Self::default()
        };
        // Read (and checked) so a bad value is reported, though unused.
        let _ = env.u64("PRUNES_PER_GC");
        env.finish().map_err(|e| ConfigError::Env(e.to_string()))?;
        Ok(raw)
    }

    /// Fields set in `over` win.
    pub fn merge(self, over: RawConfig) -> RawConfig {
        plumbing::overlay!(
            self,
            over,
            RawConfig {
                addr,
                gateway_addr,
                admin_addr,
                metrics_port,
                ca_file,
                cert_file,
                key_file,
                gateway_cert_file,
                gateway_key_file,
                doppler_addrs,
                doppler_ca_file,
                doppler_cert_file,
                doppler_key_file,
                doppler_resolve_interval,
                shard_id,
                ingest_buffer_size,
                memory_limit_percent,
                memory_limit_bytes,
                max_per_source,
                truncation_interval,
                query_timeout,
                node_index,
                node_addrs,
                use_rfc3339,
                auth,
                uaa_addr,
                uaa_ca_file,
                uaa_client_id,
                uaa_client_secret,
                capi_addr,
                capi_ca_file,
                capi_common_name,
                skip_cert_verify,
                cache_expiration_interval,
                token_pruning_interval,
                syslog_addr,
                syslog_port,
                syslog_cert_file,
                syslog_key_file,
                syslog_ca_file,
                syslog_idle_timeout,
                syslog_max_message_length,
                syslog_non_transparent_framing,
                syslog_max_connections,
            }
        )
    }

    /// Checks every value and applies defaults.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let syslog = self.syslog()?;
        let auth = self.auth_mode(!matches!(
            self.gateway_addr.as_deref(),
            None | Some("off") | Some("")
        ))?;
        let grpc_addr = listen_addr(
            "--addr / ADDR",
            self.addr.as_deref().unwrap_or(DEFAULT_GRPC_ADDR),
        )?;
        let gateway_addr = optional_addr("--gateway-addr / GATEWAY_ADDR", &self.gateway_addr)?;
        let mut admin_addr = match &self.admin_addr {
            None => Some(listen_addr("--admin-addr", DEFAULT_ADMIN_ADDR)?),
            Some(_) => optional_addr("--admin-addr", &self.admin_addr)?,
        };
        if let (Some(port), Some(a)) = (self.metrics_port, admin_addr.as_mut()) {
            a.set_port(port);
        }
        let tls = tls_files(
            "--ca-file / CA_PATH, --cert-file / CERT_PATH, --key-file / KEY_PATH",
            &self.ca_file,
            &self.cert_file,
            &self.key_file,
        )?;
        let doppler_tls = tls_files(
            "--doppler-ca-file / DOPPLER_CA_PATH, --doppler-cert-file / DOPPLER_CERT_PATH, --doppler-key-file / DOPPLER_KEY_PATH",
            &self.doppler_ca_file,
            &self.doppler_cert_file,
            &self.doppler_key_file,
        )?;
        let gateway_tls = match (&self.gateway_cert_file, &self.gateway_key_file) {
            (None, None) => None,
            (Some(c), Some(k)) => Some(TlsFiles::server_only(c, k)),
            _ => {
                return Err(invalid(
                    "--gateway-cert-file, --gateway-key-file",
                    "give both (TLS on the HTTP API) or neither (plain HTTP)",
                ));
            }
        };
        let doppler_addrs = self.doppler_addrs.unwrap_or_default();
        for a in &doppler_addrs {
            host_port("--doppler-addrs / DOPPLER_ADDRS", a)?;
        }
        let node_addrs = self.node_addrs.unwrap_or_default();
        let node_index = self.node_index.unwrap_or(0);
        if !node_addrs.is_empty() && node_index >= node_addrs.len() {
            return Err(invalid(
                "--node-index / NODE_INDEX",
                format!(
                    "{node_index} is not an index into --node-addrs / NODE_ADDRS ({} addresses)",
                    node_addrs.len()
                ),
            ));
        }
        for a in &node_addrs {
            host_port("--node-addrs / NODE_ADDRS", a)?;
        }
        let percent = self.memory_limit_percent.unwrap_or(50);
        if self.memory_limit_bytes.is_none() && !(1..=100).contains(&percent) {
            return Err(invalid(
                "--memory-limit-percent / MEMORY_LIMIT_PERCENT",
                format!("{percent} is not a percentage between 1 and 100"),
            ));
        }
        let system_memory = system_memory_bytes();
        let memory_limit = match self.memory_limit_bytes {
            Some(0) => {
                return Err(invalid(
                    "--memory-limit-bytes / MEMORY_LIMIT_BYTES",
                    "must be above 0",
                ));
            }
            Some(b) => b,
            None => system_memory / 100 * percent,
        };
        let max_per_source = self.max_per_source.unwrap_or(100_000);
        if max_per_source == 0 {
            return Err(invalid(
                "--max-per-source / MAX_PER_SOURCE",
                "must be at least 1",
            ));
        }
        let ingest_buffer_size = self.ingest_buffer_size.unwrap_or(DEFAULT_INGEST_BUFFER);
        if ingest_buffer_size == 0 {
            return Err(invalid("--ingest-buffer-size", "must be at least 1"));
        }
        Ok(Config {
            grpc_addr,
            gateway_addr,
            admin_addr,
            tls,
            gateway_tls,
            doppler_addrs,
            doppler_tls,
            doppler_resolve_interval: duration(
                "--doppler-resolve-interval",
                &self.doppler_resolve_interval,
                crate::ingest::doppler::DEFAULT_RESOLVE_INTERVAL,
            )?,
            shard_id: self.shard_id.unwrap_or_else(|| DEFAULT_SHARD_ID.to_owned()),
            ingest_buffer_size,
            memory_limit,
            system_memory,
            max_per_source,
            truncation_interval: duration(
                "--truncation-interval / TRUNCATION_INTERVAL",
                &self.truncation_interval,
                Duration::from_secs(1),
            )?,
            query_timeout: duration(
                "--query-timeout / QUERY_TIMEOUT",
                &self.query_timeout,
                Duration::from_secs(10),
            )?,
            node_index,
            node_addrs,
            use_rfc3339: self.use_rfc3339.unwrap_or(false),
            auth,
            syslog,
        })
    }

    /// The syslog ingest listener, if any: `--syslog-addr`, else `SYSLOG_PORT`
    /// on all interfaces (as upstream's syslog server listens).
    fn syslog(&self) -> Result<Option<SyslogListen>, ConfigError> {
        let addr = match (&self.syslog_addr, self.syslog_port) {
            (Some(_), _) => optional_addr("--syslog-addr", &self.syslog_addr)?,
            (None, Some(port)) => Some(listen_addr("SYSLOG_PORT", &format!(":{port}"))?),
            (None, None) => None,
        };
        let Some(addr) = addr else {
            return Ok(None);
        };
        let tls = match (&self.syslog_cert_file, &self.syslog_key_file) {
            (None, None) => {
                if self.syslog_ca_file.is_some() {
                    return Err(invalid(
                        "--syslog-ca-file",
                        "mutual TLS needs --syslog-cert-file / SYSLOG_TLS_CERT_PATH and --syslog-key-file / SYSLOG_TLS_KEY_PATH too",
                    ));
                }
                None
            }
            (Some(cert), Some(key)) => Some(TlsFiles {
                ca: self.syslog_ca_file.clone(),
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => {
                return Err(invalid(
                    "--syslog-cert-file / SYSLOG_TLS_CERT_PATH, --syslog-key-file / SYSLOG_TLS_KEY_PATH",
                    "give both (TLS) or neither (plain TCP)",
                ));
            }
        };
        let defaults = SyslogConfig::default();
        let max_message_length = self
            .syslog_max_message_length
            .unwrap_or(defaults.max_message_length);
        if max_message_length == 0 {
            return Err(invalid(
                "--syslog-max-message-length / SYSLOG_MAX_MESSAGE_LENGTH",
                "must be at least 1",
            ));
        }
        let idle_timeout = duration(
            "--syslog-idle-timeout / SYSLOG_IDLE_TIMEOUT",
            &self.syslog_idle_timeout,
            defaults.idle_timeout,
        )?;
        if idle_timeout.is_zero() {
            return Err(invalid(
                "--syslog-idle-timeout / SYSLOG_IDLE_TIMEOUT",
                "must be greater than 0s",
            ));
        }
        Ok(Some(SyslogListen {
            addr,
            tls,
            config: SyslogConfig {
                max_message_length,
                idle_timeout,
                non_transparent_framing: self.syslog_non_transparent_framing.unwrap_or(false),
                max_connections: self
                    .syslog_max_connections
                    .unwrap_or(defaults.max_connections)
                    .max(1),
            },
        }))
    }

    /// The HTTP API's authorisation (checked only when the API is served).
    fn auth_mode(&self, served: bool) -> Result<AuthMode, ConfigError> {
        match self.auth.as_deref().unwrap_or("uaa") {
            "none" => Ok(AuthMode::None),
            "uaa" if !served => Ok(AuthMode::None),
            "uaa" => {
                let (Some(uaa), Some(capi)) = (&self.uaa_addr, &self.capi_addr) else {
                    return Err(invalid(
                        "--auth uaa",
                        "needs --uaa-addr / UAA_ADDR and --capi-addr / CAPI_ADDR (Cloud Controller); for local development use --auth none",
                    ));
                };
                let mut cfg = UaaConfig::new(uaa, capi);
                cfg.uaa_ca = self.uaa_ca_file.clone();
                cfg.client_id = self.uaa_client_id.clone().unwrap_or_default();
                cfg.client_secret = self.uaa_client_secret.clone().unwrap_or_default();
                cfg.capi_ca = self.capi_ca_file.clone();
                cfg.capi_common_name = self.capi_common_name.clone();
                cfg.skip_cert_verify = self.skip_cert_verify.unwrap_or(false);
                cfg.cache_expiration = duration(
                    "--cache-expiration-interval / CACHE_EXPIRATION_INTERVAL",
                    &self.cache_expiration_interval,
                    cfg.cache_expiration,
                )?;
                cfg.token_pruning_interval = duration(
                    "--token-pruning-interval / TOKEN_PRUNING_INTERVAL",
                    &self.token_pruning_interval,
                    cfg.token_pruning_interval,
                )?;
                Ok(AuthMode::Uaa(cfg))
            }
            other => Err(invalid(
                "--auth",
                format!("{other:?}: accepted values: uaa, none"),
            )),
        }
    }
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// gRPC listen address.
    pub grpc_addr: SocketAddr,
    /// HTTP API listen address (`None`: not served).
    pub gateway_addr: Option<SocketAddr>,
    /// Admin listen address (`None`: off).
    pub admin_addr: Option<SocketAddr>,
    /// gRPC mutual TLS (`None`: plaintext, development only).
    pub tls: Option<TlsFiles>,
    /// HTTP API TLS (`None`: plain HTTP).
    pub gateway_tls: Option<TlsFiles>,
    /// Dopplers to subscribe to (empty: no doppler ingest).
    pub doppler_addrs: Vec<String>,
    /// Doppler mutual TLS (`None`: plaintext).
    pub doppler_tls: Option<TlsFiles>,
    /// Doppler DNS re-resolve interval.
    pub doppler_resolve_interval: Duration,
    /// Shard id of the doppler subscription.
    pub shard_id: String,
    /// Doppler ingest ring capacity.
    pub ingest_buffer_size: usize,
    /// Store budget in accounted bytes.
    pub memory_limit: u64,
    /// System memory (for `log_cache_memory_utilization`).
    pub system_memory: u64,
    /// Envelopes per source.
    pub max_per_source: usize,
    /// Truncation interval.
    pub truncation_interval: Duration,
    /// PromQL query timeout.
    pub query_timeout: Duration,
    /// This node's index.
    pub node_index: usize,
    /// Every node's gRPC address (empty or one: single node).
    pub node_addrs: Vec<String>,
    /// RFC 3339 log timestamps.
    pub use_rfc3339: bool,
    /// Authorisation of the HTTP API.
    pub auth: AuthMode,
    /// Syslog ingest (`None`: off).
    pub syslog: Option<SyslogListen>,
}

/// The syslog ingest listener.
#[derive(Debug, Clone, PartialEq)]
pub struct SyslogListen {
    /// Listen address.
    pub addr: SocketAddr,
    /// TLS (with `ca`: clients must present a certificate).
    pub tls: Option<TlsFiles>,
    /// Framing and bounds.
    pub config: SyslogConfig,
}

impl Config {
    /// A single-node, plaintext configuration on the given addresses with a
    /// small store (tests and `loggregator dev`).
    pub fn local(memory_limit: u64) -> Config {
        RawConfig {
            addr: Some("127.0.0.1:0".into()),
            gateway_addr: Some("127.0.0.1:0".into()),
            admin_addr: Some("off".into()),
            auth: Some("none".into()),
            memory_limit_bytes: Some(memory_limit),
            ..RawConfig::default()
        }
        .validate()
        .unwrap_or_else(|e| unreachable!("built-in local configuration is valid: {e}"))
    }
}

fn duration(
    option: &'static str,
    v: &Option<String>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match v {
        None => Ok(default),
        Some(s) => parse_go_duration(s)
            .map_err(|e| invalid(option, format!("{e} (a Go duration such as 1s or 2m)"))),
    }
}

/// `host:port`, `:port` (all interfaces, as Go) or `[v6]:port`.
fn listen_addr(option: &'static str, v: &str) -> Result<SocketAddr, ConfigError> {
    let v = v.trim();
    let full = if v.starts_with(':') {
        format!("[::]{v}")
    } else {
        v.to_owned()
    };
    if let Ok(a) = full.parse::<SocketAddr>() {
        return Ok(a);
    }
    full.to_socket_addrs()
        .ok()
        .and_then(|mut it| it.next())
        .ok_or_else(|| {
            invalid(
                option,
                format!("{v:?} is not a listen address (host:port or :port)"),
            )
        })
}

fn optional_addr(
    option: &'static str,
    v: &Option<String>,
) -> Result<Option<SocketAddr>, ConfigError> {
    match v.as_deref() {
        None | Some("off") | Some("") => Ok(None),
        Some(a) => listen_addr(option, a).map(Some),
    }
}

fn host_port(option: &'static str, v: &str) -> Result<(), ConfigError> {
    match v.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(()),
        _ => Err(invalid(option, format!("{v:?} is not host:port"))),
    }
}

fn tls_files(
    options: &'static str,
    ca: &Option<PathBuf>,
    cert: &Option<PathBuf>,
    key: &Option<PathBuf>,
) -> Result<Option<TlsFiles>, ConfigError> {
    match (ca, cert, key) {
        (None, None, None) => Ok(None),
        (Some(ca), Some(cert), Some(key)) => Ok(Some(TlsFiles::new(ca, cert, key))),
        _ => Err(invalid(
            options,
            "give all three (mutual TLS) or none (plaintext, development only)",
        )),
    }
}

/// Total system memory from `/proc/meminfo` (`MemTotal`), 0 when unknown.
pub fn system_memory_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        RawConfig::from_env(EnvReader::from_pairs(pairs.iter().copied()))?.validate()
    }

    #[test]
    fn defaults_match_upstream() {
        let c = env(&[]).unwrap();
        assert_eq!(c.grpc_addr, "[::]:8080".parse().unwrap());
        assert_eq!(c.admin_addr, Some("127.0.0.1:6060".parse().unwrap()));
        assert_eq!(
            c.gateway_addr, None,
            "the HTTP API is served only when asked"
        );
        assert_eq!(c.max_per_source, 100_000);
        assert_eq!(c.truncation_interval, Duration::from_secs(1));
        assert_eq!(c.query_timeout, Duration::from_secs(10));
        assert_eq!(c.memory_limit, c.system_memory / 100 * 50);
        assert!(c.tls.is_none());
    }

    #[test]
    fn upstream_variables() {
        let c = env(&[
            ("ADDR", ":9090"),
            ("MEMORY_LIMIT_BYTES", "1000000"),
            ("MAX_PER_SOURCE", "7"),
            ("TRUNCATION_INTERVAL", "250ms"),
            ("QUERY_TIMEOUT", "3s"),
            ("NODE_INDEX", "1"),
            ("NODE_ADDRS", "10.0.0.1:8080,10.0.0.2:8080"),
            ("METRICS_PORT", "6061"),
            ("CA_PATH", "/ca"),
            ("CERT_PATH", "/cert"),
            ("KEY_PATH", "/key"),
            ("PRUNES_PER_GC", "3"),
        ])
        .unwrap();
        assert_eq!(c.grpc_addr, "[::]:9090".parse().unwrap());
        assert_eq!(c.memory_limit, 1_000_000);
        assert_eq!(c.max_per_source, 7);
        assert_eq!(c.truncation_interval, Duration::from_millis(250));
        assert_eq!(c.query_timeout, Duration::from_secs(3));
        assert_eq!(c.node_index, 1);
        assert_eq!(c.node_addrs.len(), 2);
        assert_eq!(c.admin_addr, Some("127.0.0.1:6061".parse().unwrap()));
        assert_eq!(c.tls, Some(TlsFiles::new("/ca", "/cert", "/key")));
    }

    #[test]
    fn errors_name_the_option_and_the_way_out() {
        let e = env(&[("CA_PATH", "/ca")]).unwrap_err().to_string();
        assert!(e.contains("CA_PATH") && e.contains("all three"), "{e}");
        let e = env(&[("NODE_INDEX", "2"), ("NODE_ADDRS", "a:1,b:2")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("NODE_INDEX") && e.contains("2 addresses"), "{e}");
        let e = env(&[("TRUNCATION_INTERVAL", "5")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("TRUNCATION_INTERVAL"), "{e}");
        let e = env(&[("MEMORY_LIMIT_PERCENT", "0")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("MEMORY_LIMIT_PERCENT"), "{e}");
        let e = env(&[("DOPPLER_ADDRS", "nohost")]).unwrap_err().to_string();
        assert!(e.contains("DOPPLER_ADDRS"), "{e}");
    }

    #[test]
    fn auth_follows_the_cf_auth_proxy_variables() {
        // No HTTP API: nothing to authorise, nothing required.
        assert!(matches!(env(&[]).unwrap().auth, AuthMode::None));
        let e = env(&[("GATEWAY_ADDR", "127.0.0.1:0")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("UAA_ADDR") && e.contains("CAPI_ADDR") && e.contains("--auth none"),
            "{e}"
        );
        let c = env(&[
            ("GATEWAY_ADDR", "127.0.0.1:0"),
            ("UAA_ADDR", "https://uaa.example"),
            ("UAA_CA_PATH", "/uaa-ca"),
            ("CAPI_ADDR", "https://api.example"),
            ("CAPI_COMMON_NAME", "cc"),
            ("CACHE_EXPIRATION_INTERVAL", "30s"),
            ("SKIP_CERT_VERIFY", "true"),
        ])
        .unwrap();
        let AuthMode::Uaa(u) = c.auth else {
            panic!("uaa mode expected")
        };
        assert_eq!(u.uaa_addr, "https://uaa.example");
        assert_eq!(u.uaa_ca, Some(PathBuf::from("/uaa-ca")));
        assert_eq!(u.capi_common_name.as_deref(), Some("cc"));
        assert_eq!(u.cache_expiration, Duration::from_secs(30));
        assert!(u.skip_cert_verify);
        let flags = RawConfig {
            gateway_addr: Some("127.0.0.1:0".into()),
            auth: Some("nope".into()),
            ..RawConfig::default()
        };
        assert!(
            flags
                .validate()
                .unwrap_err()
                .to_string()
                .contains("uaa, none")
        );
    }

    #[test]
    fn syslog_follows_the_syslog_server_variables() {
        assert_eq!(env(&[]).unwrap().syslog, None);
        let c = env(&[
            ("SYSLOG_PORT", "6067"),
            ("SYSLOG_TLS_CERT_PATH", "/c"),
            ("SYSLOG_TLS_KEY_PATH", "/k"),
            ("SYSLOG_IDLE_TIMEOUT", "30s"),
            ("SYSLOG_MAX_MESSAGE_LENGTH", "1000"),
            ("SYSLOG_NON_TRANSPARENT_FRAMING", "true"),
        ])
        .unwrap();
        let s = c.syslog.unwrap();
        assert_eq!(s.addr, "[::]:6067".parse().unwrap());
        assert_eq!(s.tls, Some(TlsFiles::server_only("/c", "/k")));
        assert_eq!(s.config.idle_timeout, Duration::from_secs(30));
        assert_eq!(s.config.max_message_length, 1000);
        assert!(s.config.non_transparent_framing);
        let e = env(&[("SYSLOG_PORT", "1"), ("SYSLOG_TLS_CERT_PATH", "/c")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("SYSLOG_TLS_KEY_PATH"), "{e}");
    }

    #[test]
    fn file_then_env_then_flags() {
        let file: RawConfig = toml::from_str(
            r#"
            addr = "127.0.0.1:1"
            max_per_source = 5
            doppler_addrs = ["d1:8082", "d2:8082"]
            memory_limit_bytes = 4096
            "#,
        )
        .unwrap();
        let env = RawConfig::from_env(EnvReader::from_pairs([("MAX_PER_SOURCE", "6")])).unwrap();
        let flags = RawConfig {
            addr: Some("127.0.0.1:2".into()),
            ..RawConfig::default()
        };
        let c = file.merge(env).merge(flags).validate().unwrap();
        assert_eq!(c.grpc_addr, "127.0.0.1:2".parse().unwrap());
        assert_eq!(c.max_per_source, 6);
        assert_eq!(c.doppler_addrs, vec!["d1:8082", "d2:8082"]);
        assert_eq!(c.memory_limit, 4096);
        assert!(toml::from_str::<RawConfig>("bogus = 1").is_err());
    }
}
