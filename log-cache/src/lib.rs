//! # log-cache
//!
//! Log Cache: the in-memory store of recent envelopes and the read API that
//! every current cf CLI reads `cf logs` (and Cloud Controller reads `cf app`
//! statistics) from. It sits beside the traffic controller at the end of the
//! pipeline: it subscribes to every doppler like a nozzle, also accepts
//! RFC 5424 syslog and `logcache.v1.Ingress/Send`, keeps envelopes per
//! source id ordered by timestamp within a byte budget, and serves them over
//! HTTP (the grpc-gateway JSON API at `/api/v1/...`) and gRPC
//! (`logcache.v1.Egress`, `logcache.v1.PromQLQuerier`) with mutual TLS.
//! Contract: `log-cache-reference.md`.
//!
//! # Layout
//!
//! - [`config`]: file / environment / flags into a validated [`Config`].
//! - [`cli`]: `Args` and `main` of the `log-cache` binary and `loggregator log-cache`.
//! - [`server`]: assembly; [`run`] / [`run_with_registry`].
//! - [`store`]: the store (per source, ordered, bounded by bytes, evictions counted).
//! - [`read`]: request checking as upstream does it, the [`read::Reader`] every API uses.
//! - [`ingest`]: the [`ingest::Sink`] every ingest path ends in; doppler subscription, gRPC `Send`.
//! - [`cluster`]: several nodes: owner by source id (upstream's hash), forwarding, proxied reads.
//! - [`api`]: the HTTP JSON API and gRPC `Egress`.
//! - [`auth`]: UAA JWTs and Cloud Controller checks, as upstream's cf-auth-proxy (reads, meta, PromQL), or `none`.
//! - [`promql`]: the PromQL subset (`/api/v1/query`, `/api/v1/query_range`, `PromQLQuerier`).
//! - [`metrics`]: metric handles (upstream names for the store's).
//! - [`syslog`]: the RFC 5424 syslog ingest server (octet counting or LF framing, TLS).
//! - [`error`]: the crate's [`Error`].
//!
//! # Dependency rule
//!
//! Depends on `envelope-proto` and `plumbing` only, never on other components.

pub mod api;
pub mod auth;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod error;
pub mod ingest;
pub mod metrics;
pub mod promql;
pub mod read;
pub mod server;
pub mod store;
pub mod syslog;

pub use config::Config;
pub use error::Error;

use plumbing::metrics::Registry;
use plumbing::shutdown::Shutdown;
use tokio::net::TcpListener;

/// Already-bound listeners (tests bind `127.0.0.1:0`).
#[derive(Debug)]
pub struct Listeners {
    /// The gRPC port (`Egress`, `Ingress`, `PromQLQuerier`).
    pub grpc: TcpListener,
    /// The HTTP API; `None` serves none.
    pub gateway: Option<TcpListener>,
    /// Admin port (`/metrics`, `/health`); `None` disables it.
    pub admin: Option<TcpListener>,
    /// RFC 5424 syslog ingest; `None` serves none (also when the config has none).
    pub syslog: Option<TcpListener>,
}

/// Runs a node with a fresh metrics registry until `shutdown`.
pub async fn run(config: Config, listeners: Listeners, shutdown: Shutdown) -> Result<(), Error> {
    server::run(config, listeners, shutdown, Registry::new()).await
}

/// Like [`run`], with the caller's metrics registry (tests assert on it).
pub async fn run_with_registry(
    config: Config,
    listeners: Listeners,
    shutdown: Shutdown,
    registry: Registry,
) -> Result<(), Error> {
    server::run(config, listeners, shutdown, registry).await
}
