//! Configuration in two stages: [`RawConfig`] (every field optional, filled
//! from a TOML file, then the upstream `ROUTER_*` environment variables, then
//! command-line flags, later sources winning) and the validated [`Config`] with
//! real types.
//!
//! The environment follows upstream's rules (upstream-config.md §1, §3): an
//! empty variable means unset, booleans are true only for `true` and `1`,
//! integers that do not parse are errors, and without plaintext mode the CA,
//! certificate and key must be given (checked in that order).

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use plumbing::env::EnvReader;
use serde::Deserialize;

use crate::cache::CacheConfig;

/// Default gRPC port (upstream BOSH default `doppler.grpc_port`).
pub const DEFAULT_GRPC_PORT: u16 = 8082;
/// Default admin (metrics/health) address.
pub const DEFAULT_ADMIN_ADDR: &str = "127.0.0.1:14825";
/// Default max gRPC message size: 10 MiB (reference §5.5).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 10 * 1024 * 1024;
/// Largest message doppler's peers (traffic controller, RLP, nozzles) accept:
/// their max receive message size, 10 MiB (reference §5.5, §12.3). Egress
/// never sends a larger one, whatever `max_message_size` says.
pub const PEER_MAX_RECEIVE_MESSAGE_SIZE: usize = 10 * 1024 * 1024;

/// Paths of the PEM files for mutual TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPaths {
    /// CA that client certificates must chain to.
    pub ca: PathBuf,
    /// Server certificate (also the client certificate for own-metric emission).
    pub cert: PathBuf,
    /// Private key of `cert`.
    pub key: PathBuf,
}

/// Where and how doppler emits its own metrics as v2 envelopes (upstream
/// behaviour: to the local agent every 5 s, source id `doppler`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentMetrics {
    /// Agent v2 Ingress address (`host:port`), server name `metron`.
    pub addr: String,
    /// Emission interval.
    pub interval: Duration,
    /// `source_id` of the metric envelopes.
    pub source_id: String,
}

/// Validated doppler configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// gRPC listen address (the binary binds it; `run` receives the listener).
    pub grpc_addr: SocketAddr,
    /// Admin listener (`/metrics`, `/health`); `None` disables it.
    pub admin_addr: Option<SocketAddr>,
    /// Localhost "pprof" listener announced as `pprof bound to:` (serves 404s).
    pub pprof_addr: SocketAddr,
    /// mTLS files; `None` only in explicit plaintext mode.
    pub tls: Option<TlsPaths>,
    /// TLS 1.2 suites restriction (`ROUTER_CIPHER_SUITES`); `None` = defaults.
    pub cipher_suites: Option<Vec<String>>,
    /// Capacity of the ingress ring (drop-oldest).
    pub ingress_buffer_size: NonZeroUsize,
    /// Capacity of each subscription's ring (drop-oldest), v1 and v2.
    pub egress_buffer_size: NonZeroUsize,
    /// Largest accepted gRPC message; larger messages fail with a gRPC error.
    pub max_message_size: usize,
    /// Recent-logs / container-metrics caches.
    pub cache: CacheConfig,
    /// Own-metric emission to an agent; `None` disables it.
    pub agent_metrics: Option<AgentMetrics>,
    /// Time given to subscribers to take what is queued at shutdown.
    pub grace_period: Duration,
    /// Log timestamps in RFC 3339 (`USE_RFC339`).
    pub use_rfc3339: bool,
}

impl Config {
    /// Largest message egress sends, in encoded bytes (protobuf framing
    /// included, gRPC's 5-byte prefix not): `max_message_size`, but never
    /// more than the peers accept ([`PEER_MAX_RECEIVE_MESSAGE_SIZE`]).
    pub fn egress_message_limit(&self) -> usize {
        self.max_message_size.min(PEER_MAX_RECEIVE_MESSAGE_SIZE)
    }

    /// A configuration for in-process tests: ephemeral addresses, default sizes,
    /// mTLS with `tls` (or plaintext when `None`), no own-metric emission.
    pub fn for_tests(tls: Option<TlsPaths>) -> Self {
        Self {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_addr: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            pprof_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls,
            cipher_suites: None,
            ingress_buffer_size: NonZeroUsize::new(10_000).unwrap_or(NonZeroUsize::MIN),
            egress_buffer_size: NonZeroUsize::new(1_000).unwrap_or(NonZeroUsize::MIN),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            cache: CacheConfig::default(),
            agent_metrics: None,
            grace_period: Duration::from_secs(2),
            use_rfc3339: false,
        }
    }
}

/// Configuration as read from one source; `None` = not given there.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// gRPC listen address, e.g. `0.0.0.0:8082`.
    pub grpc_addr: Option<SocketAddr>,
    /// gRPC port on all interfaces (`ROUTER_PORT`); overrides the port of `grpc_addr`.
    pub port: Option<u16>,
    /// Admin listener address; `"off"` disables.
    pub admin_addr: Option<String>,
    /// pprof port on localhost (`ROUTER_PPROF_PORT`).
    pub pprof_port: Option<u16>,
    /// CA file (`ROUTER_CA_FILE`).
    pub ca_file: Option<PathBuf>,
    /// Certificate file (`ROUTER_CERT_FILE`).
    pub cert_file: Option<PathBuf>,
    /// Key file (`ROUTER_KEY_FILE`).
    pub key_file: Option<PathBuf>,
    /// TLS 1.2 cipher suites (`ROUTER_CIPHER_SUITES`).
    pub cipher_suites: Option<Vec<String>>,
    /// Serve plaintext gRPC (development only).
    pub insecure_plaintext: Option<bool>,
    /// `INGRESS_BUFFER_SIZE`.
    pub ingress_buffer_size: Option<u64>,
    /// `EGRESS_BUFFER_SIZE`.
    pub egress_buffer_size: Option<u64>,
    /// Max gRPC message size in bytes.
    pub max_message_size: Option<u64>,
    /// Logs kept per app for RecentLogs.
    pub max_retained_logs: Option<u64>,
    /// Bytes of logs kept per app for RecentLogs.
    pub max_retained_log_bytes: Option<u64>,
    /// Bytes kept by the recent-logs / container-metrics caches in total.
    pub max_cache_bytes: Option<u64>,
    /// Container-metric TTL in seconds.
    pub container_metric_ttl_seconds: Option<u64>,
    /// App inactivity timeout in seconds.
    pub sink_inactivity_timeout_seconds: Option<u64>,
    /// Max cached apps.
    pub max_cached_apps: Option<u64>,
    /// `AGENT_GRPC_ADDRESS`.
    pub agent_grpc_address: Option<String>,
    /// `ROUTER_METRIC_BATCH_INTERVAL_MILLISECONDS`.
    pub metric_batch_interval_milliseconds: Option<u64>,
    /// `ROUTER_METRIC_SOURCE_ID`.
    pub metric_source_id: Option<String>,
    /// Shutdown grace period in milliseconds.
    pub grace_period_milliseconds: Option<u64>,
    /// `USE_RFC339`.
    pub use_rfc3339: Option<bool>,
}

/// A configuration error; the text names the field and what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required TLS file is missing (upstream wording).
    #[error("invalid router config, no GRPC.{0} provided")]
    MissingTls(&'static str),
    /// An environment variable did not parse (upstream wording).
    #[error("{0}")]
    Env(String),
    /// A value out of its accepted range.
    #[error("{field} must be {accepted}, got {value}")]
    OutOfRange {
        /// Field name.
        field: &'static str,
        /// Accepted values.
        accepted: &'static str,
        /// Offending value.
        value: String,
    },
    /// No recognised cipher suite (upstream wording).
    #[error("no valid ciphers provided for TLS configuration")]
    NoValidCiphers,
    /// Config file could not be read or parsed.
    #[error("config file {path}: {reason}")]
    File {
        /// File path.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// An address did not parse.
    #[error("{field} must be a socket address like 127.0.0.1:8082, got {value:?}")]
    BadAddress {
        /// Field name.
        field: &'static str,
        /// Offending value.
        value: String,
    },
}

impl RawConfig {
    /// Reads a TOML config file.
    pub fn from_file(path: &std::path::Path) -> Result<Self, ConfigError> {
        let file_err = |reason: String| ConfigError::File {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| file_err(e.to_string()))?;
        toml::from_str(&text).map_err(|e| file_err(e.to_string()))
    }

    /// Reads the upstream environment variables with upstream's parsing rules
    /// (empty means unset, only `true`/`1` are true, Go integer errors).
    pub fn from_env(env: EnvReader) -> Result<Self, ConfigError> {
        let mut env = env;
        let raw = Self {
            // Upstream truncates too-large ports silently (70000 -> 4464).
            port: env.u16("ROUTER_PORT"),
            pprof_port: env.u16("ROUTER_PPROF_PORT"),
            ca_file: env.string("ROUTER_CA_FILE").map(PathBuf::from),
            cert_file: env.string("ROUTER_CERT_FILE").map(PathBuf::from),
            key_file: env.string("ROUTER_KEY_FILE").map(PathBuf::from),
            cipher_suites: env.list("ROUTER_CIPHER_SUITES"),
            ingress_buffer_size: env.u64("INGRESS_BUFFER_SIZE"),
            egress_buffer_size: env.u64("EGRESS_BUFFER_SIZE"),
            agent_grpc_address: env.string("AGENT_GRPC_ADDRESS"),
            metric_batch_interval_milliseconds: env
                .u64("ROUTER_METRIC_BATCH_INTERVAL_MILLISECONDS"),
            metric_source_id: env.string("ROUTER_METRIC_SOURCE_ID"),
            use_rfc3339: env.bool("USE_RFC339"),
            ..Self::default()
        };
        env.finish().map_err(|e| ConfigError::Env(e.to_string()))?;
        Ok(raw)
    }

    /// Overlays `other` on `self`: fields set in `other` win.
    pub fn merge(self, other: RawConfig) -> RawConfig {
        macro_rules! pick {
            ($($f:ident),*) => { RawConfig { $($f: other.$f.or(self.$f)),* } };
        }
        pick!(
            grpc_addr,
            port,
            admin_addr,
            pprof_port,
            ca_file,
            cert_file,
            key_file,
            cipher_suites,
            insecure_plaintext,
            ingress_buffer_size,
            egress_buffer_size,
            max_message_size,
            max_retained_logs,
            max_retained_log_bytes,
            max_cache_bytes,
            container_metric_ttl_seconds,
            sink_inactivity_timeout_seconds,
            max_cached_apps,
            agent_grpc_address,
            metric_batch_interval_milliseconds,
            metric_source_id,
            grace_period_milliseconds,
            use_rfc3339
        )
    }

    /// Validates into a [`Config`].
    pub fn validate(self) -> Result<Config, ConfigError> {
        let plaintext = self.insecure_plaintext.unwrap_or(false);
        let tls = if plaintext {
            None
        } else {
            let ca = self.ca_file.ok_or(ConfigError::MissingTls("CAFile"))?;
            let cert = self.cert_file.ok_or(ConfigError::MissingTls("CertFile"))?;
            let key = self.key_file.ok_or(ConfigError::MissingTls("KeyFile"))?;
            Some(TlsPaths { ca, cert, key })
        };
        plumbing::tls::parse_cipher_suite_names(self.cipher_suites.as_deref())
            .map_err(|_| ConfigError::NoValidCiphers)?;
        let cipher_suites = self.cipher_suites;
        let nonzero = |field: &'static str, v: Option<u64>, default: usize| {
            let v = v.map_or(Ok(default), |v| {
                usize::try_from(v).map_err(|_| ConfigError::OutOfRange {
                    field,
                    accepted: "a positive integer",
                    value: v.to_string(),
                })
            })?;
            NonZeroUsize::new(v).ok_or(ConfigError::OutOfRange {
                field,
                accepted: "greater than 0",
                value: v.to_string(),
            })
        };
        let ingress_buffer_size = nonzero("INGRESS_BUFFER_SIZE", self.ingress_buffer_size, 10_000)?;
        let egress_buffer_size = nonzero("EGRESS_BUFFER_SIZE", self.egress_buffer_size, 1_000)?;
        let max_message_size = nonzero(
            "max_message_size",
            self.max_message_size,
            DEFAULT_MAX_MESSAGE_SIZE,
        )?
        .get();
        let max_cached_apps = nonzero("max_cached_apps", self.max_cached_apps, 100_000)?.get();
        let max_log_bytes_per_app = nonzero(
            "max_retained_log_bytes",
            self.max_retained_log_bytes,
            crate::cache::DEFAULT_MAX_LOG_BYTES_PER_APP,
        )?
        .get();
        let max_total_bytes = nonzero(
            "max_cache_bytes",
            self.max_cache_bytes,
            crate::cache::DEFAULT_MAX_TOTAL_BYTES,
        )?
        .get();

        let mut grpc_addr = self
            .grpc_addr
            .unwrap_or_else(|| SocketAddr::from(([0u16; 8], DEFAULT_GRPC_PORT)));
        if let Some(p) = self.port {
            grpc_addr.set_port(p);
        }
        let admin_addr = match self.admin_addr.as_deref() {
            None => Some(default_admin_addr()),
            Some("off") | Some("") => None,
            Some(a) => Some(a.parse().map_err(|_| ConfigError::BadAddress {
                field: "admin_addr",
                value: a.to_owned(),
            })?),
        };
        let pprof_addr = SocketAddr::from(([127, 0, 0, 1], self.pprof_port.unwrap_or(0)));

        let agent_metrics = self.agent_grpc_address.map(|addr| AgentMetrics {
            addr,
            interval: Duration::from_millis(
                self.metric_batch_interval_milliseconds
                    .unwrap_or(5000)
                    .max(1),
            ),
            source_id: self
                .metric_source_id
                .unwrap_or_else(|| "doppler".to_owned()),
        });

        Ok(Config {
            grpc_addr,
            admin_addr,
            pprof_addr,
            tls,
            cipher_suites,
            ingress_buffer_size,
            egress_buffer_size,
            max_message_size,
            cache: CacheConfig {
                max_logs_per_app: self.max_retained_logs.unwrap_or(100) as usize,
                max_log_bytes_per_app,
                max_total_bytes,
                container_metric_ttl: Duration::from_secs(
                    self.container_metric_ttl_seconds.unwrap_or(120),
                ),
                inactivity_timeout: Duration::from_secs(
                    self.sink_inactivity_timeout_seconds.unwrap_or(3600),
                ),
                max_apps: max_cached_apps,
            },
            agent_metrics,
            grace_period: Duration::from_millis(self.grace_period_milliseconds.unwrap_or(5000)),
            use_rfc3339: self.use_rfc3339.unwrap_or(false),
        })
    }
}

fn default_admin_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 14825))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Result<RawConfig, ConfigError> {
        RawConfig::from_env(EnvReader::from_pairs(pairs.iter().copied()))
    }

    const TLS: [(&str, &str); 3] = [
        ("ROUTER_CA_FILE", "/ca"),
        ("ROUTER_CERT_FILE", "/cert"),
        ("ROUTER_KEY_FILE", "/key"),
    ];

    #[test]
    fn tls_files_checked_in_upstream_order() {
        let err = env(&[]).and_then(RawConfig::validate).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid router config, no GRPC.CAFile provided"
        );
        let err = env(&[("ROUTER_CA_FILE", "/ca")])
            .and_then(RawConfig::validate)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid router config, no GRPC.CertFile provided"
        );
        let err = env(&[
            ("ROUTER_CA_FILE", "/ca"),
            ("ROUTER_CERT_FILE", "/c"),
            ("ROUTER_KEY_FILE", ""),
        ])
        .and_then(RawConfig::validate)
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid router config, no GRPC.KeyFile provided"
        );
    }

    #[test]
    fn upstream_env_defaults_and_values() {
        let mut pairs = TLS.to_vec();
        pairs.extend([
            ("ROUTER_PORT", "0"),
            ("USE_RFC339", "TRUE"),
            ("ROUTER_METRIC_SOURCE_ID", ""),
            ("AGENT_GRPC_ADDRESS", "127.0.0.1:0"),
            ("ROUTER_METRIC_BATCH_INTERVAL_MILLISECONDS", "10"),
            ("EGRESS_BUFFER_SIZE", "5"),
        ]);
        let c = env(&pairs).unwrap().validate().unwrap();
        assert_eq!(c.grpc_addr.port(), 0);
        assert!(c.grpc_addr.ip().is_unspecified());
        assert!(!c.use_rfc3339, "only true/1 are true");
        assert_eq!(c.ingress_buffer_size.get(), 10_000);
        assert_eq!(c.egress_buffer_size.get(), 5);
        let a = c.agent_metrics.unwrap();
        assert_eq!(a.source_id, "doppler");
        assert_eq!(a.interval, Duration::from_millis(10));
        assert_eq!(c.tls.unwrap().ca, PathBuf::from("/ca"));
    }

    #[test]
    fn zero_buffer_sizes_and_bad_integers_are_errors() {
        let mut pairs = TLS.to_vec();
        pairs.push(("INGRESS_BUFFER_SIZE", "0"));
        let err = env(&pairs).unwrap().validate().unwrap_err();
        assert!(
            err.to_string()
                .contains("INGRESS_BUFFER_SIZE must be greater than 0")
        );
        let err = env(&[("ROUTER_PORT", "abc")]).unwrap_err();
        assert!(
            err.to_string()
                .contains("strconv.ParseUint: parsing \"abc\": invalid syntax"),
            "{err}"
        );
        let err = env(&[("EGRESS_BUFFER_SIZE", "-1")]).unwrap_err();
        assert!(matches!(err, ConfigError::Env(_)));
    }

    #[test]
    fn port_truncates_like_upstream() {
        let mut pairs = TLS.to_vec();
        pairs.push(("ROUTER_PORT", "70000"));
        assert_eq!(
            env(&pairs).unwrap().validate().unwrap().grpc_addr.port(),
            4464
        );
    }

    #[test]
    fn cipher_suites() {
        let mut pairs = TLS.to_vec();
        pairs.push((
            "ROUTER_CIPHER_SUITES",
            "BOGUS, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        ));
        let c = env(&pairs).unwrap().validate().unwrap();
        assert_eq!(c.cipher_suites.unwrap().len(), 2);
        let mut pairs = TLS.to_vec();
        pairs.push(("ROUTER_CIPHER_SUITES", "BOGUS"));
        assert_eq!(
            env(&pairs).unwrap().validate().unwrap_err(),
            ConfigError::NoValidCiphers
        );
    }

    #[test]
    fn later_sources_win_and_plaintext_needs_no_tls() {
        let file: RawConfig = toml::from_str(
            "ingress_buffer_size = 7\nmax_retained_logs = 3\ninsecure_plaintext = true\n",
        )
        .unwrap();
        let envs = env(&[("INGRESS_BUFFER_SIZE", "9")]).unwrap();
        let c = file.merge(envs).validate().unwrap();
        assert_eq!(c.ingress_buffer_size.get(), 9);
        assert_eq!(c.cache.max_logs_per_app, 3);
        assert_eq!(
            c.cache.max_log_bytes_per_app,
            crate::cache::DEFAULT_MAX_LOG_BYTES_PER_APP
        );
        let c: Config = toml::from_str::<RawConfig>(
            "insecure_plaintext = true\nmax_retained_log_bytes = 1000\nmax_cache_bytes = 5000\nmax_message_size = 20971520\n",
        )
        .unwrap()
        .validate()
        .unwrap();
        assert_eq!(c.cache.max_log_bytes_per_app, 1000);
        assert_eq!(c.cache.max_total_bytes, 5000);
        assert_eq!(c.egress_message_limit(), PEER_MAX_RECEIVE_MESSAGE_SIZE);
        let err = toml::from_str::<RawConfig>("insecure_plaintext = true\nmax_cache_bytes = 0\n")
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("max_cache_bytes must be greater than 0")
        );
        assert!(c.tls.is_none());
        assert!(toml::from_str::<RawConfig>("bogus = 1").is_err());
    }
}
