//! Configuration in two stages: [`RawConfig`] (every setting optional, filled
//! from a TOML file, the upstream environment variables and flags, in that
//! order of increasing precedence) and the validated [`Config`].
//!
//! Environment variables follow the upstream parsing rules
//! (upstream-config.md §1): an empty value means unset, booleans are true only
//! for `true` and `1`, numbers are base 10, `AGENT_TAGS` is `k:v,k:v` split at
//! the first `:`. Unlike upstream (which panics), every error names the
//! variable.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::{NonZeroU64, NonZeroUsize};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::process::Identity;

/// Every setting, optional; merged from file, environment and flags.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// v1 UDP listen address (default `127.0.0.1:3457`).
    pub udp_addr: Option<String>,
    /// Disable the UDP listener and the v1 pipeline.
    pub disable_udp: Option<bool>,
    /// v2 gRPC listen address (default `127.0.0.1:3458`).
    pub grpc_addr: Option<String>,
    /// Admin (`/metrics`, `/health`) listen address (default `127.0.0.1:14824`).
    pub admin_addr: Option<String>,
    /// CA certificate (PEM): verifies clients and dopplers.
    pub ca_file: Option<PathBuf>,
    /// Certificate (PEM): server identity `metron` and client identity.
    pub cert_file: Option<PathBuf>,
    /// Private key (PEM) of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// TLS 1.2 cipher suites for the gRPC server.
    pub cipher_suites: Option<Vec<String>>,
    /// Serve and dial plaintext gRPC, no TLS (local development only; ours).
    pub insecure_plaintext: Option<bool>,
    /// Doppler addresses (`host:port`; a DNS name yields every A/AAAA record).
    pub router_addr: Option<Vec<String>>,
    /// Preferred (same-AZ) doppler addresses; used when they resolve.
    pub router_addr_with_az: Option<Vec<String>>,
    /// v1 `deployment` default.
    pub deployment: Option<String>,
    /// v1 `job` default.
    pub job: Option<String>,
    /// v1 `index` default.
    pub index: Option<String>,
    /// v1 `ip` default.
    pub ip: Option<String>,
    /// Default v2 tags, added where the key is absent.
    pub tags: Option<BTreeMap<String, String>>,
    /// Drop v2 logs at ingress.
    pub logs_disabled: Option<bool>,
    /// Ring capacity between ingress and egress (per path).
    pub ingress_buffer_size: Option<usize>,
    /// Maximum envelopes per v2 batch.
    pub batch_size: Option<usize>,
    /// Pusher streams (v1) in the doppler pool.
    pub v1_streams: Option<usize>,
    /// BatchSender streams (v2) in the doppler pool.
    pub v2_streams: Option<usize>,
    /// Writes after which a stream is recycled (plus up to 1000 random).
    pub recycle_after_writes: Option<u64>,
    /// Interval of the agent's own metric envelopes (Go duration; `0s` = never).
    pub metrics_interval: Option<String>,
    /// source_id of the agent's own metric envelopes.
    pub metric_source_id: Option<String>,
    /// How often doppler names are re-resolved (Go duration).
    pub resolve_interval: Option<String>,
    /// Minimum interval between two drop log lines (Go duration).
    pub drop_log_interval: Option<String>,
    /// Shutdown grace period (Go duration).
    pub shutdown_grace: Option<String>,
}

impl RawConfig {
    /// Overlays every setting present in `other`.
    pub fn merge(&mut self, other: RawConfig) {
        *self = plumbing::overlay!(
            std::mem::take(self),
            other,
            RawConfig {
                udp_addr,
                disable_udp,
                grpc_addr,
                admin_addr,
                ca_file,
                cert_file,
                key_file,
                cipher_suites,
                insecure_plaintext,
                router_addr,
                router_addr_with_az,
                deployment,
                job,
                index,
                ip,
                tags,
                logs_disabled,
                ingress_buffer_size,
                batch_size,
                v1_streams,
                v2_streams,
                recycle_after_writes,
                metrics_interval,
                metric_source_id,
                resolve_interval,
                drop_log_interval,
                shutdown_grace
            }
        );
    }

    /// Parses a TOML file's text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::File(e.to_string()))
    }

    /// Reads the upstream agent environment variables through `get`.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| get(name).filter(|v| !v.is_empty());
        let port = |name: &'static str| -> Result<Option<String>, ConfigError> {
            get(name)
                .map(|v| {
                    v.trim()
                        .parse::<u16>()
                        .map(|p| format!("127.0.0.1:{p}"))
                        .map_err(|e| ConfigError::invalid(name, &v, e))
                })
                .transpose()
        };
        let list = |name: &str| {
            get(name).map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
            })
        };
        let bool_ = |name: &str| get(name).map(|v| v == "true" || v == "1");
        let tags = get("AGENT_TAGS")
            .map(|v| parse_tags(&v).map_err(|r| ConfigError::invalid("AGENT_TAGS", &v, r)))
            .transpose()?;
        let metrics_interval = get("AGENT_METRIC_BATCH_INTERVAL_MILLISECONDS")
            .map(|v| {
                v.trim()
                    .parse::<u64>()
                    .map(|ms| format!("{ms}ms"))
                    .map_err(|e| {
                        ConfigError::invalid("AGENT_METRIC_BATCH_INTERVAL_MILLISECONDS", &v, e)
                    })
            })
            .transpose()?;
        Ok(Self {
            udp_addr: port("AGENT_INCOMING_UDP_PORT")?,
            disable_udp: bool_("AGENT_DISABLE_UDP"),
            grpc_addr: port("AGENT_PORT")?,
            admin_addr: port("METRICS_PORT")?,
            ca_file: get("AGENT_CA_FILE").map(PathBuf::from),
            cert_file: get("AGENT_CERT_FILE").map(PathBuf::from),
            key_file: get("AGENT_KEY_FILE").map(PathBuf::from),
            cipher_suites: list("AGENT_CIPHER_SUITES"),
            router_addr: list("ROUTER_ADDR"),
            router_addr_with_az: list("ROUTER_ADDR_WITH_AZ"),
            deployment: get("AGENT_DEPLOYMENT"),
            job: get("AGENT_JOB"),
            index: get("AGENT_INDEX"),
            ip: get("AGENT_IP"),
            tags,
            logs_disabled: bool_("LOGS_DISABLED"),
            metrics_interval,
            metric_source_id: get("AGENT_METRIC_SOURCE_ID"),
            ..Self::default()
        })
    }

    /// Validates into a [`Config`].
    pub fn validate(self) -> Result<Config, ConfigError> {
        let mut missing = Vec::new();
        let dopplers = self.router_addr.clone().unwrap_or_default();
        if dopplers.is_empty() {
            missing.push("ROUTER_ADDR");
        }
        let plaintext = self.insecure_plaintext.unwrap_or(false);
        if !plaintext {
            if self.ca_file.is_none() {
                missing.push("AGENT_CA_FILE");
            }
            if self.cert_file.is_none() {
                missing.push("AGENT_CERT_FILE");
            }
            if self.key_file.is_none() {
                missing.push("AGENT_KEY_FILE");
            }
        }
        if !missing.is_empty() {
            missing.sort_unstable();
            return Err(ConfigError::Missing(missing.join(", ")));
        }
        // BOSH renders "no AZ address" as `:8082` (empty host): treat as unset.
        let with_az: Vec<String> = self
            .router_addr_with_az
            .unwrap_or_default()
            .into_iter()
            .filter(|a| !a.starts_with(':'))
            .collect();
        for d in dopplers.iter().chain(with_az.iter()) {
            check_host_port(d)?;
        }
        let addr = |field: &'static str,
                    v: Option<String>,
                    default: &str|
         -> Result<SocketAddr, ConfigError> {
            let v = v.unwrap_or_else(|| default.to_owned());
            v.parse().map_err(|e| ConfigError::invalid(field, &v, e))
        };
        let udp_addr = if self.disable_udp.unwrap_or(false) {
            None
        } else {
            Some(addr(
                "udp_addr (AGENT_INCOMING_UDP_PORT)",
                self.udp_addr,
                "127.0.0.1:3457",
            )?)
        };
        let cipher_suites = self
            .cipher_suites
            .map(|names| {
                let known: Vec<String> = names
                    .iter()
                    .filter(|n| CIPHER_SUITES.contains(&n.as_str()))
                    .cloned()
                    .collect();
                if known.is_empty() {
                    Err(ConfigError::invalid(
                        "cipher_suites (AGENT_CIPHER_SUITES)",
                        &names.join(","),
                        format!(
                            "no valid ciphers provided for TLS configuration; accepted: {}",
                            CIPHER_SUITES.join(", ")
                        ),
                    ))
                } else {
                    Ok(known)
                }
            })
            .transpose()?;
        let identity = Identity {
            deployment: self.deployment.unwrap_or_default(),
            job: self.job.unwrap_or_default(),
            index: self.index.unwrap_or_default(),
            ip: self.ip.unwrap_or_default(),
        };
        let default_tags = match self.tags {
            Some(t) if !t.is_empty() => t,
            _ => [
                ("deployment", &identity.deployment),
                ("job", &identity.job),
                ("index", &identity.index),
                ("ip", &identity.ip),
            ]
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.to_owned(), v.clone()))
            .collect(),
        };
        let nonzero = |field: &'static str, v: Option<usize>, default: usize| {
            let v = v.unwrap_or(default);
            NonZeroUsize::new(v)
                .ok_or_else(|| ConfigError::invalid(field, &v.to_string(), "must be at least 1"))
        };
        let duration = |field: &'static str, v: Option<String>, default: Duration| {
            v.map(|s| {
                plumbing::env::parse_go_duration(&s).map_err(|e| ConfigError::invalid(field, &s, e))
            })
            .transpose()
            .map(|d| d.unwrap_or(default))
        };
        let recycle = self.recycle_after_writes.unwrap_or(100_000);
        Ok(Config {
            udp_addr,
            grpc_addr: addr("grpc_addr (AGENT_PORT)", self.grpc_addr, "127.0.0.1:3458")?,
            admin_addr: addr(
                "admin_addr (METRICS_PORT)",
                self.admin_addr,
                "127.0.0.1:14824",
            )?,
            tls: (!plaintext).then(|| TlsPaths {
                ca: self.ca_file.unwrap_or_default(),
                cert: self.cert_file.unwrap_or_default(),
                key: self.key_file.unwrap_or_default(),
            }),
            cipher_suites,
            dopplers,
            dopplers_with_az: with_az,
            identity,
            default_tags,
            logs_disabled: self.logs_disabled.unwrap_or(false),
            ingress_buffer_size: nonzero("ingress_buffer_size", self.ingress_buffer_size, 10_000)?,
            batch_size: nonzero("batch_size", self.batch_size, 100)?,
            v1_streams: nonzero("v1_streams", self.v1_streams, 5)?,
            v2_streams: nonzero("v2_streams", self.v2_streams, 5)?,
            recycle_after_writes: NonZeroU64::new(recycle).ok_or_else(|| {
                ConfigError::invalid("recycle_after_writes", "0", "must be at least 1")
            })?,
            metrics_interval: duration(
                "metrics_interval (AGENT_METRIC_BATCH_INTERVAL_MILLISECONDS)",
                self.metrics_interval,
                Duration::from_secs(60),
            )?,
            metric_source_id: self.metric_source_id.unwrap_or_else(|| "metron".to_owned()),
            resolve_interval: duration(
                "resolve_interval",
                self.resolve_interval,
                Duration::from_secs(10),
            )?,
            drop_log_interval: duration(
                "drop_log_interval",
                self.drop_log_interval,
                Duration::from_secs(1),
            )?,
            shutdown_grace: duration(
                "shutdown_grace",
                self.shutdown_grace,
                Duration::from_secs(5),
            )?,
        })
    }
}

/// The TLS 1.2 suites upstream recognises in `AGENT_CIPHER_SUITES`.
pub const CIPHER_SUITES: &[&str] = &[
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
];

/// PEM files of the agent's mTLS identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsPaths {
    /// CA certificate.
    pub ca: PathBuf,
    /// Certificate (SAN `metron`).
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

/// Validated agent configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// v1 UDP listen address; `None` when UDP is disabled.
    pub udp_addr: Option<SocketAddr>,
    /// v2 gRPC listen address.
    pub grpc_addr: SocketAddr,
    /// Admin listen address.
    pub admin_addr: SocketAddr,
    /// mTLS files (server `metron`, client towards `doppler`); `None` only in
    /// explicit plaintext mode (`insecure_plaintext`).
    pub tls: Option<TlsPaths>,
    /// TLS 1.2 cipher suites for the server (`None` = defaults).
    pub cipher_suites: Option<Vec<String>>,
    /// Doppler addresses, `host:port`.
    pub dopplers: Vec<String>,
    /// Preferred doppler addresses, used when they resolve.
    pub dopplers_with_az: Vec<String>,
    /// v1 identity fields.
    pub identity: Identity,
    /// v2 default tags (`AGENT_TAGS`; when unset, the non-empty identity
    /// fields, which is what BOSH renders into `AGENT_TAGS`).
    pub default_tags: BTreeMap<String, String>,
    /// Drop v2 logs at ingress.
    pub logs_disabled: bool,
    /// Ring capacity per path (drop-oldest).
    pub ingress_buffer_size: NonZeroUsize,
    /// Maximum envelopes per v2 batch.
    pub batch_size: NonZeroUsize,
    /// Pusher streams.
    pub v1_streams: NonZeroUsize,
    /// BatchSender streams.
    pub v2_streams: NonZeroUsize,
    /// Writes before a stream is recycled (plus rand[0,1000)).
    pub recycle_after_writes: NonZeroU64,
    /// Interval of the agent's own metric envelopes; zero disables them.
    pub metrics_interval: Duration,
    /// source_id of the agent's own metric envelopes.
    pub metric_source_id: String,
    /// Doppler name re-resolution interval.
    pub resolve_interval: Duration,
    /// Minimum interval between drop log lines.
    pub drop_log_interval: Duration,
    /// Grace period on shutdown.
    pub shutdown_grace: Duration,
}

impl Config {
    /// A configuration for tests: everything on `127.0.0.1:0`, the given TLS
    /// files and dopplers, short intervals, own metrics disabled.
    pub fn for_tests(tls: TlsPaths, dopplers: Vec<String>) -> Self {
        let any: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
        Self {
            udp_addr: Some(any),
            grpc_addr: any,
            admin_addr: any,
            tls: Some(tls),
            cipher_suites: None,
            dopplers,
            dopplers_with_az: Vec::new(),
            identity: Identity::default(),
            default_tags: BTreeMap::new(),
            logs_disabled: false,
            ingress_buffer_size: NonZeroUsize::new(10_000).unwrap_or(NonZeroUsize::MIN),
            batch_size: NonZeroUsize::new(100).unwrap_or(NonZeroUsize::MIN),
            v1_streams: NonZeroUsize::new(5).unwrap_or(NonZeroUsize::MIN),
            v2_streams: NonZeroUsize::new(5).unwrap_or(NonZeroUsize::MIN),
            recycle_after_writes: NonZeroU64::new(100_000).unwrap_or(NonZeroU64::MIN),
            metrics_interval: Duration::ZERO,
            metric_source_id: "metron".to_owned(),
            resolve_interval: Duration::from_millis(200),
            drop_log_interval: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(1),
        }
    }
}

/// A configuration problem; the message names the setting.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// Required settings are missing (upstream wording, sorted).
    #[error(
        "missing required environment variables: {0} (or the matching flags / config file settings)"
    )]
    Missing(String),
    /// A setting has a value that does not parse or is out of range.
    #[error("invalid {field}={value:?}: {reason}")]
    Invalid {
        /// Setting name (environment variable and/or file key).
        field: &'static str,
        /// The offending value.
        value: String,
        /// Why it is rejected, with accepted values.
        reason: String,
    },
    /// The config file does not parse.
    #[error("config file: {0}")]
    File(String),
}

impl ConfigError {
    fn invalid(field: &'static str, value: &str, reason: impl std::fmt::Display) -> Self {
        Self::Invalid {
            field,
            value: value.to_owned(),
            reason: reason.to_string(),
        }
    }
}

/// Parses `AGENT_TAGS`: `k:v,k:v`, split at the first `:`, items trimmed.
pub fn parse_tags(v: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for item in v.split(',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let Some((k, val)) = item.split_once(':') else {
            return Err(format!("item {item:?} is not key:value"));
        };
        out.insert(k.to_owned(), val.to_owned());
    }
    Ok(out)
}

fn check_host_port(v: &str) -> Result<(), ConfigError> {
    let ok = v
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if ok {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            "router_addr (ROUTER_ADDR / ROUTER_ADDR_WITH_AZ)",
            v,
            "expected host:port",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const BASE: &[(&str, &str)] = &[
        ("ROUTER_ADDR", "doppler.service:8082"),
        ("AGENT_CA_FILE", "/ca.pem"),
        ("AGENT_CERT_FILE", "/c.pem"),
        ("AGENT_KEY_FILE", "/k.pem"),
    ];

    fn with(extra: &[(&str, &str)]) -> Vec<(&'static str, String)> {
        BASE.iter()
            .map(|(k, v)| (*k, (*v).to_owned()))
            .chain(extra.iter().map(|(k, v)| {
                let k: &'static str = Box::leak((*k).to_owned().into_boxed_str());
                (k, (*v).to_owned())
            }))
            .collect()
    }

    fn load(extra: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let pairs = with(extra);
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        RawConfig::from_env(env(&pairs))?.validate()
    }

    #[test]
    fn defaults_match_upstream() {
        let c = load(&[]).expect("valid");
        assert_eq!(c.udp_addr, Some("127.0.0.1:3457".parse().expect("addr")));
        assert_eq!(c.grpc_addr, "127.0.0.1:3458".parse().expect("addr"));
        assert_eq!(c.admin_addr, "127.0.0.1:14824".parse().expect("addr"));
        assert_eq!(c.batch_size.get(), 100);
        assert_eq!(c.ingress_buffer_size.get(), 10_000);
        assert_eq!((c.v1_streams.get(), c.v2_streams.get()), (5, 5));
        assert_eq!(c.metrics_interval, Duration::from_secs(60));
        assert_eq!(c.metric_source_id, "metron");
        assert_eq!(c.dopplers, vec!["doppler.service:8082".to_owned()]);
        assert!(!c.logs_disabled);
    }

    #[test]
    fn plaintext_needs_no_tls_files() {
        let raw = RawConfig {
            router_addr: Some(vec!["127.0.0.1:8082".to_owned()]),
            insecure_plaintext: Some(true),
            ..RawConfig::default()
        };
        let c = raw
            .clone()
            .validate()
            .expect("plaintext is valid without TLS files");
        assert_eq!(c.tls, None);
        let err = RawConfig {
            insecure_plaintext: None,
            ..raw
        }
        .validate()
        .expect_err("TLS files are required otherwise");
        assert_eq!(
            err,
            ConfigError::Missing("AGENT_CA_FILE, AGENT_CERT_FILE, AGENT_KEY_FILE".to_owned())
        );
    }

    #[test]
    fn missing_required_variables_are_listed_sorted() {
        let err = RawConfig::from_env(env(&[]))
            .expect("parses")
            .validate()
            .expect_err("missing");
        assert_eq!(
            err,
            ConfigError::Missing(
                "AGENT_CA_FILE, AGENT_CERT_FILE, AGENT_KEY_FILE, ROUTER_ADDR".into()
            )
        );
        assert!(err.to_string().starts_with(
            "missing required environment variables: AGENT_CA_FILE, AGENT_CERT_FILE, AGENT_KEY_FILE, ROUTER_ADDR"
        ));
    }

    #[test]
    fn empty_values_mean_unset_and_bools_are_strict() {
        let c = load(&[
            ("AGENT_PORT", ""),
            ("LOGS_DISABLED", "TRUE"),
            ("AGENT_DISABLE_UDP", "yes"),
        ])
        .expect("valid");
        assert_eq!(c.grpc_addr.port(), 3458);
        assert!(!c.logs_disabled);
        assert!(c.udp_addr.is_some());
        let c = load(&[("LOGS_DISABLED", "1"), ("AGENT_DISABLE_UDP", "true")]).expect("valid");
        assert!(c.logs_disabled);
        assert!(c.udp_addr.is_none());
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = load(&[("AGENT_PORT", "abc")]).expect_err("invalid");
        assert!(err.to_string().contains("AGENT_PORT"), "{err}");
        let err = load(&[("AGENT_TAGS", "a:b,nocolon")]).expect_err("invalid");
        assert!(err.to_string().contains("AGENT_TAGS"), "{err}");
        let err = load(&[("AGENT_CIPHER_SUITES", "TLS_RSA_WITH_RC4")]).expect_err("invalid");
        assert!(err.to_string().contains("no valid ciphers"), "{err}");
        let err = load(&[("ROUTER_ADDR", "nohostport")]).expect_err("invalid");
        assert!(err.to_string().contains("ROUTER_ADDR"), "{err}");
        let err = load(&[("AGENT_METRIC_BATCH_INTERVAL_MILLISECONDS", "-1")]).expect_err("invalid");
        assert!(
            err.to_string()
                .contains("AGENT_METRIC_BATCH_INTERVAL_MILLISECONDS"),
            "{err}"
        );
    }

    #[test]
    fn tags_split_at_first_colon_and_override_identity_defaults() {
        let c = load(&[
            ("AGENT_TAGS", "auto-tag-1:auto-tag-value-1, url:http://x:1"),
            ("AGENT_DEPLOYMENT", "cf"),
        ])
        .expect("valid");
        assert_eq!(c.default_tags.len(), 2);
        assert_eq!(c.default_tags["url"], "http://x:1");
        assert_eq!(c.identity.deployment, "cf");
        let c = load(&[("AGENT_DEPLOYMENT", "cf"), ("AGENT_JOB", "j")]).expect("valid");
        assert_eq!(c.default_tags.len(), 2);
        assert_eq!(c.default_tags["deployment"], "cf");
    }

    #[test]
    fn file_then_env_then_flags() {
        let mut raw = RawConfig::from_toml(
            "router_addr = [\"a:1\", \"b:2\"]\nbatch_size = 7\nca_file = \"/f\"\ncert_file = \"/f\"\nkey_file = \"/f\"\n",
        )
        .expect("toml");
        raw.merge(RawConfig::from_env(env(&[("ROUTER_ADDR", "c:3")])).expect("env"));
        let c = raw.validate().expect("valid");
        assert_eq!(c.dopplers, vec!["c:3".to_owned()]);
        assert_eq!(c.batch_size.get(), 7);
        let err = RawConfig::from_toml("bogus = 1").expect_err("unknown key");
        assert!(err.to_string().contains("bogus"), "{err}");
    }

    #[test]
    fn az_address_without_host_means_none() {
        let c = load(&[("ROUTER_ADDR_WITH_AZ", ":8082")]).expect("valid");
        assert!(c.dopplers_with_az.is_empty());
        let c = load(&[("ROUTER_ADDR_WITH_AZ", "z1.doppler:8082")]).expect("valid");
        assert_eq!(c.dopplers_with_az, vec!["z1.doppler:8082".to_owned()]);
    }

    #[test]
    fn durations_use_go_syntax() {
        let raw = RawConfig {
            metrics_interval: Some("60".into()),
            ..RawConfig::from_env(env(BASE)).expect("env")
        };
        let err = raw.validate().expect_err("unitless");
        assert!(err.to_string().contains("metrics_interval"), "{err}");
        let raw = RawConfig {
            metrics_interval: Some("1m30s".into()),
            ..RawConfig::from_env(env(BASE)).expect("env")
        };
        assert_eq!(
            raw.validate().expect("valid").metrics_interval,
            Duration::from_secs(90)
        );
    }
}
