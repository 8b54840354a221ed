//! Configuration: raw values from flags, a TOML file and the upstream
//! environment variables ([`RawConfig`]), validated into [`Config`].
//!
//! Precedence: flag, then environment variable, then file, then default.
//! Upstream variables (upstream-config §4 and the RLP-gateway ones of §6 that
//! apply) follow upstream parsing rules: empty means unset, booleans are only
//! `true`/`1`, durations use Go syntax.
//!
//! Deviations from upstream, all relaxations:
//! - `TRAFFIC_CONTROLLER_SYSTEM_DOMAIN` defaults to `localhost` and
//!   `TRAFFIC_CONTROLLER_IP` is optional (it only fills `dst=` of the CEF
//!   security event log; empty when unset).
//! - `TRAFFIC_CONTROLLER_UAA_CLIENT_SECRET` and the UAA CA are required only
//!   in `uaa` mode; the UAA CA is optional even there (plain `http://` UAA,
//!   or `TRAFFIC_CONTROLLER_SKIP_CERT_VERIFY=true`).
//! - `ROUTER_CA_FILE`/`ROUTER_CERT_FILE`/`ROUTER_KEY_FILE` are optional: all
//!   three give mutual TLS to dopplers (server name `doppler`) and to the
//!   agent (server name `metron`), none gives plaintext gRPC (local
//!   development only).
//!
//! Own metrics go both to the admin listener's `/metrics` (ours) and, as
//! upstream, to the agent at `AGENT_GRPC_ADDRESS` every
//! `TRAFFIC_CONTROLLER_METRIC_EMITTER_INTERVAL` (default `1m`, `0s` = never;
//! see [`crate::metrics`]).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::auth::AuthMode;

/// Mutual-TLS files (towards dopplers and the agent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPaths {
    /// CA that signs the peer.
    pub ca: PathBuf,
    /// Own certificate.
    pub cert: PathBuf,
    /// Own key.
    pub key: PathBuf,
}

/// UAA and Cloud Controller settings for `uaa` mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UaaAuth {
    /// UAA base URL (`TRAFFIC_CONTROLLER_UAA_HOST`), for `POST /check_token`.
    pub uaa_url: String,
    /// UAA client id (`TRAFFIC_CONTROLLER_UAA_CLIENT`, default `doppler`).
    pub client_id: String,
    /// UAA client secret.
    pub client_secret: String,
    /// CA for UAA (`TRAFFIC_CONTROLLER_UAA_CA_CERT`).
    pub uaa_ca: Option<PathBuf>,
    /// Skip verification of UAA and Cloud Controller certificates.
    pub skip_cert_verify: bool,
    /// Cloud Controller internal base URL (`TRAFFIC_CONTROLLER_API_HOST`) for
    /// `GET /internal/v4/log_access/{guid}`.
    pub cc_url: Option<String>,
    /// Cloud Controller external base URL (`LOG_ACCESS_ADDR_EXTERNAL`), for the
    /// RLP gateway's `/v3/service_instances/{id}` fallback.
    pub cc_external_url: Option<String>,
    /// Cloud Controller CA (`CC_CA_FILE`).
    pub cc_ca: Option<PathBuf>,
    /// Client certificate for Cloud Controller (`CC_CERT_FILE`).
    pub cc_cert: Option<PathBuf>,
    /// Its key (`CC_KEY_FILE`).
    pub cc_key: Option<PathBuf>,
    /// TLS server name of Cloud Controller (`CC_SERVER_NAME`).
    pub cc_server_name: Option<String>,
    /// How long positive answers are cached.
    pub cache_ttl: Duration,
}

impl UaaAuth {
    /// Plain-HTTP UAA and Cloud Controller at the given base URLs (tests).
    pub fn plain(uaa_url: &str, cc_url: &str) -> Self {
        Self {
            uaa_url: uaa_url.to_owned(),
            client_id: "doppler".to_owned(),
            client_secret: "secret".to_owned(),
            uaa_ca: None,
            skip_cert_verify: false,
            cc_url: Some(cc_url.to_owned()),
            cc_external_url: None,
            cc_ca: None,
            cc_cert: None,
            cc_key: None,
            cc_server_name: None,
            cache_ttl: Duration::from_secs(30),
        }
    }
}

/// Where the binary binds its listeners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindAddrs {
    /// WebSocket/HTTP listener (upstream port 8081).
    pub ws: String,
    /// Separate RLP-gateway listener (`/v2/read` only), if any.
    pub gateway: Option<String>,
    /// Admin listener (`/metrics`, `/health`; announced as `pprof bound to:`).
    pub admin: String,
}

/// Validated traffic-controller configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Dopplers (`ROUTER_ADDRS`), `host:port`; names are re-resolved.
    pub doppler_addrs: Vec<String>,
    /// Mutual TLS towards dopplers and the agent; `None` = plaintext.
    pub doppler_tls: Option<TlsPaths>,
    /// How often doppler names are re-resolved through DNS.
    pub doppler_resolve_interval: Duration,
    /// Server certificate and key of the external listeners; `None` = plain HTTP.
    pub listener_tls: Option<(PathBuf, PathBuf)>,
    /// Authorisation mode.
    pub auth: AuthMode,
    /// `/set-cookie` sets cookies for `doppler.<system_domain>`.
    pub system_domain: String,
    /// Per-consumer drop-oldest ring capacity (envelopes).
    pub buffer_size: usize,
    /// A consumer whose writes make no progress this long is disconnected.
    pub slow_consumer_timeout: Duration,
    /// Pong deadline after a ping (the next ping follows half of it after a pong).
    pub keepalive: Duration,
    /// Maximum concurrent consumers (WebSocket and `/v2/read`).
    pub connection_limit: usize,
    /// Limits and deadlines of each external listener: pending (not yet
    /// authenticated) connections, TLS handshake, header and body deadlines.
    /// A listener holds at most `listen.max_pending + connection_limit` client
    /// connections.
    pub listen: plumbing::listen::Limits,
    /// Maximum lifetime of one `/v2/read` stream (`STREAM_TIMEOUT`).
    pub stream_timeout: Duration,
    /// Idle time after which `/v2/read` sends a heartbeat event.
    pub heartbeat_interval: Duration,
    /// Deadline of the recent-logs / container-metrics calls to dopplers.
    pub recent_timeout: Duration,
    /// Agent that receives the slow-consumer Event envelope and the own
    /// metrics (`AGENT_GRPC_ADDRESS`); `None` sends nothing.
    pub agent_addr: Option<String>,
    /// Interval of the own metrics sent to the agent
    /// (`TRAFFIC_CONTROLLER_METRIC_EMITTER_INTERVAL`, default 1 min); zero
    /// means never.
    pub metric_emitter_interval: Duration,
    /// Grace period for open consumers at shutdown.
    pub grace: Duration,
    /// CEF security event log file (`TRAFFIC_CONTROLLER_SECURITY_EVENT_LOG`).
    pub security_event_log: Option<PathBuf>,
    /// This instance's IP (`TRAFFIC_CONTROLLER_IP`), for the CEF log.
    pub ip: String,
    /// Listener addresses (used by the binary, ignored by `run`).
    pub bind: BindAddrs,
    /// Registry the metrics are created in (passed in, never global, so tests
    /// can read one instance's counters).
    pub registry: plumbing::metrics::Registry,
}

impl Config {
    /// A configuration for tests: the given dopplers, no TLS, `none` auth,
    /// default timings, no own-metric emission (interval zero).
    pub fn for_tests(doppler_addrs: Vec<String>, doppler_tls: Option<TlsPaths>) -> Self {
        Self {
            doppler_addrs,
            doppler_tls,
            doppler_resolve_interval: Duration::from_secs(1),
            listener_tls: None,
            auth: AuthMode::None,
            system_domain: "localhost".to_owned(),
            buffer_size: DEFAULT_BUFFER_SIZE,
            slow_consumer_timeout: Duration::from_secs(5),
            keepalive: Duration::from_secs(30),
            connection_limit: DEFAULT_CONNECTION_LIMIT,
            listen: plumbing::listen::Limits {
                grace: Duration::from_secs(1),
                ..plumbing::listen::Limits::default()
            },
            stream_timeout: Duration::from_secs(14 * 60),
            heartbeat_interval: Duration::from_secs(15),
            recent_timeout: Duration::from_secs(5),
            agent_addr: None,
            metric_emitter_interval: Duration::ZERO,
            grace: Duration::from_secs(1),
            security_event_log: None,
            ip: String::new(),
            bind: BindAddrs {
                ws: "127.0.0.1:0".to_owned(),
                gateway: None,
                admin: "127.0.0.1:0".to_owned(),
            },
            registry: plumbing::metrics::Registry::new(),
        }
    }
}

/// Default per-consumer ring capacity.
pub const DEFAULT_BUFFER_SIZE: usize = 10_000;
/// Default connection limit (upstream: 2000).
pub const DEFAULT_CONNECTION_LIMIT: usize = 2000;
/// Default interval of own metrics sent to the agent (upstream: `1m`).
pub const DEFAULT_METRIC_EMITTER_INTERVAL: Duration = Duration::from_secs(60);

/// A configuration value that does not validate.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A field has an invalid value.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field (flag / TOML key / variable).
        field: String,
        /// What is accepted.
        reason: String,
    },
    /// Required values are missing (upstream wording).
    #[error("missing required environment variables: {0}")]
    Missing(String),
    /// The TOML file could not be read or parsed.
    #[error("config file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

fn invalid(field: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// Raw, unvalidated configuration: every field optional. Also the TOML file
/// format (keys are the field names).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// WebSocket/HTTP listen address.
    pub ws_addr: Option<String>,
    /// RLP-gateway listen address, or `off`.
    pub gateway_addr: Option<String>,
    /// Admin listen address.
    pub admin_addr: Option<String>,
    /// Listener certificate.
    pub cert_file: Option<PathBuf>,
    /// Listener key.
    pub key_file: Option<PathBuf>,
    /// `uaa` or `none`.
    pub auth: Option<String>,
    /// Cookie domain suffix.
    pub system_domain: Option<String>,
    /// Instance IP (CEF log `dst=`).
    pub ip: Option<String>,
    /// CEF security event log file.
    pub security_event_log: Option<PathBuf>,
    /// UAA base URL.
    pub uaa_url: Option<String>,
    /// UAA client id.
    pub uaa_client: Option<String>,
    /// UAA client secret.
    pub uaa_client_secret: Option<String>,
    /// UAA CA file.
    pub uaa_ca_file: Option<PathBuf>,
    /// Skip UAA/CC certificate verification (`true`/`1`).
    pub skip_cert_verify: Option<String>,
    /// Cloud Controller internal URL.
    pub cc_url: Option<String>,
    /// Cloud Controller external URL.
    pub cc_external_url: Option<String>,
    /// Cloud Controller CA file.
    pub cc_ca_file: Option<PathBuf>,
    /// Cloud Controller client certificate.
    pub cc_cert_file: Option<PathBuf>,
    /// Cloud Controller client key.
    pub cc_key_file: Option<PathBuf>,
    /// Cloud Controller TLS server name.
    pub cc_server_name: Option<String>,
    /// Auth cache TTL (Go duration).
    pub auth_cache_ttl: Option<String>,
    /// Dopplers, comma-separated `host:port`.
    pub doppler_addrs: Option<String>,
    /// Doppler CA.
    pub doppler_ca_file: Option<PathBuf>,
    /// Own certificate towards dopplers.
    pub doppler_cert_file: Option<PathBuf>,
    /// Own key towards dopplers.
    pub doppler_key_file: Option<PathBuf>,
    /// DNS re-resolve interval (Go duration).
    pub doppler_resolve_interval: Option<String>,
    /// Agent gRPC address.
    pub agent_addr: Option<String>,
    /// Ring capacity per consumer.
    pub buffer_size: Option<String>,
    /// Slow-consumer timeout (Go duration).
    pub slow_consumer_timeout: Option<String>,
    /// Keepalive (Go duration).
    pub keepalive: Option<String>,
    /// Connection limit.
    pub connection_limit: Option<String>,
    /// `/v2/read` stream lifetime (Go duration).
    pub stream_timeout: Option<String>,
    /// `/v2/read` heartbeat interval (Go duration).
    pub heartbeat_interval: Option<String>,
    /// Recent logs deadline (Go duration).
    pub recent_timeout: Option<String>,
    /// Interval of own metrics sent to the agent (Go duration; `0s` = never).
    pub metric_emitter_interval: Option<String>,
    /// Pending (not yet authenticated) connections per listener.
    pub max_pending_connections: Option<String>,
    /// Request-header deadline (Go duration).
    pub header_timeout: Option<String>,
    /// Request-body deadline (Go duration).
    pub body_timeout: Option<String>,
    /// Shutdown grace period (Go duration).
    pub grace: Option<String>,
}

impl RawConfig {
    /// Values set in `over` replace those in `self`.
    pub fn overlay(self, over: RawConfig) -> RawConfig {
        plumbing::overlay!(
            self,
            over,
            RawConfig {
                ws_addr,
                gateway_addr,
                admin_addr,
                cert_file,
                key_file,
                auth,
                system_domain,
                ip,
                uaa_url,
                uaa_client,
                uaa_client_secret,
                uaa_ca_file,
                skip_cert_verify,
                cc_url,
                cc_external_url,
                cc_ca_file,
                cc_cert_file,
                cc_key_file,
                cc_server_name,
                auth_cache_ttl,
                doppler_addrs,
                doppler_ca_file,
                doppler_cert_file,
                doppler_key_file,
                doppler_resolve_interval,
                agent_addr,
                buffer_size,
                slow_consumer_timeout,
                keepalive,
                connection_limit,
                stream_timeout,
                heartbeat_interval,
                recent_timeout,
                metric_emitter_interval,
                max_pending_connections,
                header_timeout,
                body_timeout,
                grace,
                security_event_log,
            }
        )
    }

    /// Reads a TOML file.
    pub fn from_file(path: &std::path::Path) -> Result<RawConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// Reads the upstream environment variables through `get` (empty values
    /// count as unset).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<RawConfig, ConfigError> {
        let var = |name: &str| get(name).filter(|v| !v.is_empty());
        let path = |name: &str| var(name).map(PathBuf::from);
        let port_addr = |name: &str, host: &str| -> Result<Option<String>, ConfigError> {
            match var(name) {
                None => Ok(None),
                Some(v) => {
                    let port: u64 = v.parse().map_err(|_| {
                        invalid(
                            name,
                            format!("strconv.ParseUint: parsing {v:?}: invalid syntax"),
                        )
                    })?;
                    // Upstream truncates oversized ports silently.
                    Ok(Some(format!("{host}:{}", port as u16)))
                }
            }
        };
        let disable = var("TRAFFIC_CONTROLLER_DISABLE_ACCESS_CONTROL").map(|v| is_true(&v));
        Ok(RawConfig {
            ws_addr: port_addr("TRAFFIC_CONTROLLER_OUTGOING_DROPSONDE_PORT", "[::]")?,
            gateway_addr: var("GATEWAY_ADDR"),
            admin_addr: port_addr("TRAFFIC_CONTROLLER_PPROF_PORT", "127.0.0.1")?,
            cert_file: path("TRAFFIC_CONTROLLER_OUTGOING_CERT_FILE"),
            key_file: path("TRAFFIC_CONTROLLER_OUTGOING_KEY_FILE"),
            auth: disable.map(|d| if d { "none" } else { "uaa" }.to_owned()),
            system_domain: var("TRAFFIC_CONTROLLER_SYSTEM_DOMAIN"),
            ip: var("TRAFFIC_CONTROLLER_IP"),
            security_event_log: path("TRAFFIC_CONTROLLER_SECURITY_EVENT_LOG"),
            uaa_url: var("TRAFFIC_CONTROLLER_UAA_HOST"),
            uaa_client: var("TRAFFIC_CONTROLLER_UAA_CLIENT"),
            uaa_client_secret: var("TRAFFIC_CONTROLLER_UAA_CLIENT_SECRET"),
            uaa_ca_file: path("TRAFFIC_CONTROLLER_UAA_CA_CERT"),
            skip_cert_verify: var("TRAFFIC_CONTROLLER_SKIP_CERT_VERIFY"),
            cc_url: var("TRAFFIC_CONTROLLER_API_HOST"),
            cc_external_url: var("LOG_ACCESS_ADDR_EXTERNAL"),
            cc_ca_file: path("CC_CA_FILE"),
            cc_cert_file: path("CC_CERT_FILE"),
            cc_key_file: path("CC_KEY_FILE"),
            cc_server_name: var("CC_SERVER_NAME"),
            doppler_addrs: var("ROUTER_ADDRS"),
            doppler_ca_file: path("ROUTER_CA_FILE"),
            doppler_cert_file: path("ROUTER_CERT_FILE"),
            doppler_key_file: path("ROUTER_KEY_FILE"),
            agent_addr: var("AGENT_GRPC_ADDRESS"),
            stream_timeout: var("STREAM_TIMEOUT"),
            metric_emitter_interval: var("TRAFFIC_CONTROLLER_METRIC_EMITTER_INTERVAL"),
            ..RawConfig::default()
        })
    }

    /// Validates into a [`Config`].
    pub fn validate(self) -> Result<Config, ConfigError> {
        let dur =
            |field: &str, v: &Option<String>, default: Duration| -> Result<Duration, ConfigError> {
                match v {
                    None => Ok(default),
                    Some(s) => parse_duration(s)
                        .map_err(|e| invalid(field, format!("{e} (Go duration such as 5s, 1m)"))),
                }
            };
        let num = |field: &str, v: &Option<String>, default: usize| -> Result<usize, ConfigError> {
            match v {
                None => Ok(default),
                Some(s) => s
                    .trim()
                    .parse::<usize>()
                    .map_err(|_| invalid(field, format!("{s:?} is not a non-negative integer"))),
            }
        };

        let doppler_addrs: Vec<String> = self
            .doppler_addrs
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        for a in &doppler_addrs {
            if a.rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok())
                .is_none()
            {
                return Err(invalid(
                    "doppler_addrs (ROUTER_ADDRS)",
                    format!("{a:?} is not host:port"),
                ));
            }
        }
        let doppler_tls = match (
            self.doppler_ca_file,
            self.doppler_cert_file,
            self.doppler_key_file,
        ) {
            (None, None, None) => None,
            (Some(ca), Some(cert), Some(key)) => Some(TlsPaths { ca, cert, key }),
            _ => {
                return Err(invalid(
                    "doppler_ca_file/doppler_cert_file/doppler_key_file (ROUTER_CA_FILE/ROUTER_CERT_FILE/ROUTER_KEY_FILE)",
                    "set all three for mutual TLS, or none for plaintext",
                ));
            }
        };
        let listener_tls = match (self.cert_file, self.key_file) {
            (None, None) => None,
            (Some(c), Some(k)) => Some((c, k)),
            _ => {
                return Err(invalid(
                    "cert_file/key_file",
                    "set both for TLS, or neither for plain HTTP",
                ));
            }
        };
        let auth_mode = self.auth.as_deref().unwrap_or("uaa");
        let auth = match auth_mode {
            "none" => AuthMode::None,
            "uaa" => {
                let mut missing = Vec::new();
                if self.uaa_url.is_none() {
                    missing.push("TRAFFIC_CONTROLLER_UAA_HOST");
                }
                if self.uaa_client_secret.is_none() {
                    missing.push("TRAFFIC_CONTROLLER_UAA_CLIENT_SECRET");
                }
                if !missing.is_empty() {
                    missing.sort_unstable();
                    return Err(ConfigError::Missing(missing.join(", ")));
                }
                AuthMode::Uaa(Box::new(UaaAuth {
                    uaa_url: self.uaa_url.unwrap_or_default(),
                    client_id: self.uaa_client.unwrap_or_else(|| "doppler".to_owned()),
                    client_secret: self.uaa_client_secret.unwrap_or_default(),
                    uaa_ca: self.uaa_ca_file,
                    skip_cert_verify: self.skip_cert_verify.as_deref().is_some_and(is_true),
                    cc_url: self.cc_url,
                    cc_external_url: self.cc_external_url,
                    cc_ca: self.cc_ca_file,
                    cc_cert: self.cc_cert_file,
                    cc_key: self.cc_key_file,
                    cc_server_name: self.cc_server_name,
                    cache_ttl: dur(
                        "auth_cache_ttl",
                        &self.auth_cache_ttl,
                        Duration::from_secs(30),
                    )?,
                }))
            }
            other => {
                return Err(invalid(
                    "auth",
                    format!("{other:?}; accepted values: uaa, none"),
                ));
            }
        };
        let metric_emitter_interval = dur(
            "metric_emitter_interval (TRAFFIC_CONTROLLER_METRIC_EMITTER_INTERVAL)",
            &self.metric_emitter_interval,
            DEFAULT_METRIC_EMITTER_INTERVAL,
        )?;
        let buffer_size = num("buffer_size", &self.buffer_size, DEFAULT_BUFFER_SIZE)?;
        if buffer_size < 2 {
            return Err(invalid("buffer_size", "must be at least 2"));
        }
        let connection_limit = num(
            "connection_limit",
            &self.connection_limit,
            DEFAULT_CONNECTION_LIMIT,
        )?;
        let grace = dur("grace", &self.grace, Duration::from_secs(5))?;
        let max_pending = num(
            "max_pending_connections",
            &self.max_pending_connections,
            plumbing::listen::DEFAULT_MAX_PENDING,
        )?;
        if max_pending == 0 {
            return Err(invalid(
                "max_pending_connections",
                "must be at least 1 (every connection is pending until it authenticates)",
            ));
        }
        let listen = plumbing::listen::Limits {
            max_pending,
            header_timeout: dur(
                "header_timeout",
                &self.header_timeout,
                plumbing::listen::DEFAULT_HEADER_TIMEOUT,
            )?,
            body_timeout: dur(
                "body_timeout",
                &self.body_timeout,
                plumbing::listen::DEFAULT_BODY_TIMEOUT,
            )?,
            tls_handshake_timeout: plumbing::listen::DEFAULT_TLS_HANDSHAKE_TIMEOUT,
            grace,
            // WebSocket and SSE consumers have their own slow-consumer policy.
            write_timeout: None,
        };
        for (field, d) in [
            ("header_timeout", listen.header_timeout),
            ("body_timeout", listen.body_timeout),
        ] {
            if d.is_zero() {
                return Err(invalid(field, "must be greater than 0s"));
            }
        }
        let gateway = match self.gateway_addr.as_deref() {
            None => Some("127.0.0.1:8088".to_owned()),
            Some("off") | Some("none") => None,
            Some(a) => Some(a.to_owned()),
        };
        Ok(Config {
            doppler_addrs,
            doppler_tls,
            doppler_resolve_interval: dur(
                "doppler_resolve_interval",
                &self.doppler_resolve_interval,
                Duration::from_secs(15),
            )?,
            listener_tls,
            auth,
            system_domain: self.system_domain.unwrap_or_else(|| "localhost".to_owned()),
            buffer_size,
            slow_consumer_timeout: dur(
                "slow_consumer_timeout",
                &self.slow_consumer_timeout,
                Duration::from_secs(5),
            )?,
            keepalive: dur("keepalive", &self.keepalive, Duration::from_secs(30))?,
            connection_limit,
            listen,
            stream_timeout: dur(
                "stream_timeout (STREAM_TIMEOUT)",
                &self.stream_timeout,
                Duration::from_secs(14 * 60),
            )?,
            heartbeat_interval: dur(
                "heartbeat_interval",
                &self.heartbeat_interval,
                Duration::from_secs(15),
            )?,
            recent_timeout: dur(
                "recent_timeout",
                &self.recent_timeout,
                Duration::from_secs(5),
            )?,
            agent_addr: self.agent_addr,
            metric_emitter_interval,
            grace,
            security_event_log: self.security_event_log,
            ip: self.ip.unwrap_or_default(),
            bind: BindAddrs {
                ws: self.ws_addr.unwrap_or_else(|| "127.0.0.1:8081".to_owned()),
                gateway,
                admin: self
                    .admin_addr
                    .unwrap_or_else(|| "127.0.0.1:14830".to_owned()),
            },
            registry: plumbing::metrics::Registry::new(),
        })
    }
}

/// Upstream boolean rule: only `true` and `1` are true.
fn is_true(v: &str) -> bool {
    v == "true" || v == "1"
}

/// Go duration syntax (`15s`, `1m30s`, `0s`).
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    plumbing::env::parse_go_duration(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn upstream_env_maps_to_config() {
        let raw = RawConfig::from_env(env(&[
            ("TRAFFIC_CONTROLLER_OUTGOING_DROPSONDE_PORT", "0"),
            ("TRAFFIC_CONTROLLER_PPROF_PORT", "70000"),
            ("TRAFFIC_CONTROLLER_DISABLE_ACCESS_CONTROL", "true"),
            ("TRAFFIC_CONTROLLER_UAA_HOST", "http://127.0.0.1:1"),
            ("TRAFFIC_CONTROLLER_METRIC_EMITTER_INTERVAL", "0s"),
            ("ROUTER_ADDRS", "10.0.0.1:8082, doppler.service:8082"),
            ("STREAM_TIMEOUT", "1m"),
            ("USE_RFC339", "false"),
            ("AGENT_GRPC_ADDRESS", "127.0.0.1:0"),
            ("TRAFFIC_CONTROLLER_SYSTEM_DOMAIN", ""),
        ]))
        .expect("env");
        let c = raw.validate().expect("valid");
        assert_eq!(c.bind.ws, "[::]:0");
        assert_eq!(c.bind.admin, "127.0.0.1:4464");
        assert!(matches!(c.auth, AuthMode::None));
        assert_eq!(
            c.doppler_addrs,
            vec!["10.0.0.1:8082", "doppler.service:8082"]
        );
        assert_eq!(c.stream_timeout, Duration::from_secs(60));
        assert_eq!(c.system_domain, "localhost");
        assert_eq!(c.agent_addr.as_deref(), Some("127.0.0.1:0"));
        assert_eq!(c.metric_emitter_interval, Duration::ZERO);
    }

    #[test]
    fn metric_emitter_interval_default_precedence_and_errors() {
        let none = RawConfig {
            auth: Some("none".into()),
            ..RawConfig::default()
        };
        let c = none.clone().validate().expect("valid");
        assert_eq!(c.metric_emitter_interval, Duration::from_secs(60));

        let file: RawConfig =
            toml::from_str("auth = \"none\"\nmetric_emitter_interval = \"30s\"").expect("toml");
        let from_env = RawConfig::from_env(env(&[(
            "TRAFFIC_CONTROLLER_METRIC_EMITTER_INTERVAL",
            "1m30s",
        )]))
        .expect("env");
        let flags = RawConfig {
            metric_emitter_interval: Some("5s".into()),
            ..RawConfig::default()
        };
        let from_file = file.clone().validate().expect("valid");
        assert_eq!(from_file.metric_emitter_interval, Duration::from_secs(30));
        let env_over_file = file
            .clone()
            .overlay(from_env.clone())
            .validate()
            .expect("valid");
        assert_eq!(
            env_over_file.metric_emitter_interval,
            Duration::from_secs(90)
        );
        let flag_over_env = file
            .overlay(from_env)
            .overlay(flags)
            .validate()
            .expect("valid");
        assert_eq!(
            flag_over_env.metric_emitter_interval,
            Duration::from_secs(5)
        );

        let empty_is_unset = none
            .clone()
            .overlay(
                RawConfig::from_env(env(&[("TRAFFIC_CONTROLLER_METRIC_EMITTER_INTERVAL", "")]))
                    .expect("env"),
            )
            .validate()
            .expect("valid");
        assert_eq!(
            empty_is_unset.metric_emitter_interval,
            Duration::from_secs(60)
        );

        let err = RawConfig {
            metric_emitter_interval: Some("60".into()),
            ..none
        }
        .validate()
        .expect_err("no unit")
        .to_string();
        assert!(
            err.starts_with(
                "invalid metric_emitter_interval (TRAFFIC_CONTROLLER_METRIC_EMITTER_INTERVAL):"
            ),
            "{err}"
        );
    }

    #[test]
    fn uaa_mode_requires_host_and_secret() {
        let err = RawConfig::default().validate().expect_err("missing");
        assert_eq!(
            err.to_string(),
            "missing required environment variables: TRAFFIC_CONTROLLER_UAA_CLIENT_SECRET, TRAFFIC_CONTROLLER_UAA_HOST"
        );
        let raw = RawConfig::from_env(env(&[(
            "TRAFFIC_CONTROLLER_DISABLE_ACCESS_CONTROL",
            "TRUE",
        )]))
        .expect("env");
        assert!(raw.validate().is_err(), "TRUE is not true upstream");
    }

    #[test]
    fn bad_values_name_the_field() {
        let raw = RawConfig {
            auth: Some("none".into()),
            slow_consumer_timeout: Some("60".into()),
            ..RawConfig::default()
        };
        let err = raw.validate().expect_err("bad duration").to_string();
        assert!(err.starts_with("invalid slow_consumer_timeout:"), "{err}");
        let raw = RawConfig {
            auth: Some("ldap".into()),
            ..RawConfig::default()
        };
        assert_eq!(
            raw.validate().expect_err("bad auth").to_string(),
            "invalid auth: \"ldap\"; accepted values: uaa, none"
        );
        let raw = RawConfig {
            auth: Some("none".into()),
            doppler_ca_file: Some("ca.pem".into()),
            ..RawConfig::default()
        };
        assert!(raw.validate().is_err());
        let err = RawConfig::from_env(env(&[(
            "TRAFFIC_CONTROLLER_OUTGOING_DROPSONDE_PORT",
            "abc",
        )]))
        .expect_err("port");
        assert!(err.to_string().contains("invalid syntax"));
    }

    #[test]
    fn overlay_and_toml() {
        let file: RawConfig =
            toml::from_str("auth = \"none\"\nbuffer_size = \"50\"\nws_addr = \"127.0.0.1:1\"")
                .expect("toml");
        let flags = RawConfig {
            buffer_size: Some("60".into()),
            ..RawConfig::default()
        };
        let c = file.overlay(flags).validate().expect("valid");
        assert_eq!(c.buffer_size, 60);
        assert_eq!(c.bind.ws, "127.0.0.1:1");
    }
}
