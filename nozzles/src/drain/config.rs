//! Validated configuration of the drain forwarder.

use std::path::PathBuf;
use std::time::Duration;

use plumbing::metrics::Registry;
use plumbing::tls::TlsFiles;

use super::bindings::DEFAULT_POLL_INTERVAL;
use super::forwarder::{BUFFER_SIZE, IDLE_TIMEOUT};
use super::manager::DrainSettings;
use crate::tlsutil::TrustOptions;

/// Where bindings come from.
#[derive(Debug, Clone)]
pub enum BindingsConfig {
    /// A JSON file (list of bindings or one v5 page), re-read every poll.
    File(PathBuf),
    /// A Cloud Controller-shaped base URL (`http://` or `https://`).
    Http {
        /// Base URL, e.g. `https://cc.internal:9023`.
        url: String,
        /// mTLS material for `https://` (CA required).
        tls: Option<TlsFiles>,
        /// Name to verify in the server certificate (default: the URL's host).
        server_name: Option<String>,
        /// `batch_size` per page.
        batch_size: usize,
    },
}

/// The forwarder's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Binding source.
    pub bindings: BindingsConfig,
    /// How often bindings are re-read.
    pub poll_interval: Duration,
    /// At most this many drains per app (first in URL order).
    pub per_app_limit: usize,
    /// Drains that receive every envelope.
    pub aggregate_drains: Vec<String>,
    /// Doppler gRPC addresses (`host:port`).
    pub dopplers: Vec<String>,
    /// Internal mTLS material for dopplers and the ingress; `None` = plaintext (tests).
    pub internal_tls: Option<TlsFiles>,
    /// Name verified in doppler certificates.
    pub doppler_server_name: String,
    /// v2 Ingress (agent or doppler) for app-visible notices; `None` = log only.
    pub ingress_addr: Option<String>,
    /// Name verified in the ingress certificate.
    pub ingress_server_name: String,
    /// Shard id of the egress subscription (forwarder instances with the same id share load).
    pub shard_id: String,
    /// Per-drain settings.
    pub drains: DrainSettings,
    /// Metrics registry (served on the admin listener).
    pub registry: Registry,
    /// Shutdown grace period.
    pub grace: Duration,
}

impl Config {
    /// A configuration for tests: bindings from `bindings_file`, plaintext or
    /// mTLS to `dopplers`, defaults elsewhere, a 1 s poll interval.
    pub fn for_tests(
        bindings_file: PathBuf,
        dopplers: Vec<String>,
        internal_tls: Option<TlsFiles>,
    ) -> Self {
        Self {
            bindings: BindingsConfig::File(bindings_file),
            poll_interval: Duration::from_secs(1),
            per_app_limit: 5,
            aggregate_drains: Vec::new(),
            dopplers,
            internal_tls,
            doppler_server_name: "doppler".into(),
            ingress_addr: None,
            ingress_server_name: "doppler".into(),
            shard_id: "syslog-drain".into(),
            drains: DrainSettings {
                trust: TrustOptions {
                    system_roots: false,
                    extra_ca_pem: None,
                    skip_verify: false,
                },
                default_metadata: true,
                buffer_size: BUFFER_SIZE,
                idle_timeout: IDLE_TIMEOUT,
            },
            registry: Registry::new(),
            grace: Duration::from_secs(2),
        }
    }
}

/// Default poll interval.
pub const DEFAULT_POLL: Duration = DEFAULT_POLL_INTERVAL;
