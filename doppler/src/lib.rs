//! # doppler
//!
//! Loggregator's router ("doppler", `src/router` upstream). It sits in the
//! middle of the pipeline: agents push envelopes in (v2 `Ingress`, v1
//! `DopplerIngestor/Pusher`); consumers (traffic controller, RLP, nozzles)
//! subscribe (v2 `Egress/BatchedReceiver`, v1 `Doppler/Subscribe` and
//! `BatchSubscribe`) and each receives the envelopes its selectors or filter
//! and shard group select. All on one mutual-TLS gRPC port.
//!
//! Data path: ingress stream → [`envelope`] preparation (parse once, routing
//! key, v1 form / tag re-encode only when a subscriber needs them) → bounded
//! drop-oldest ingress ring → one [`router`] task → per-subscription
//! drop-oldest rings → [`egress`] response streams (batches of up to 100 built
//! from the original bytes). Nothing on this path waits for a subscriber; every
//! loss is counted (`dropped{direction}`) and announced in-stream to the
//! subscriber that lost envelopes.
//!
//! # Layout
//!
//! - [`config`]: raw (file / env / flags) → validated [`Config`].
//! - [`cli`]: `Args` and `main` for the `doppler` binary and `loggregator doppler`.
//! - [`server`]: assembly; [`run`] / [`run_with_registry`].
//! - [`ingress`]: v2 Ingress and v1 Pusher services.
//! - [`envelope`]: the ingested-envelope type and its preparation.
//! - [`router`]: the routing task, [`router::key`], [`router::table`] (subscription index).
//! - [`subscriptions`]: live subscriptions, table snapshots, what ingress must prepare.
//! - [`egress`]: v2 Egress and v1 Doppler services, [`egress::outlet`], [`egress::warning`].
//! - [`cache`]: recent logs and container metrics.
//! - [`metrics`]: metric handles; [`emitter`]: own metrics to an agent.
//! - [`error`]: the crate's [`Error`] type.
//!
//! # Dependency rule
//!
//! Depends on `envelope-proto` and `plumbing` only, never on other components.

pub mod cache;
pub mod cli;
pub mod config;
pub mod egress;
pub mod emitter;
pub mod envelope;
pub mod error;
pub mod ingress;
pub mod metrics;
pub mod router;
pub mod server;
pub mod subscriptions;

pub use config::Config;
pub use error::Error;

use plumbing::metrics::Registry;
use plumbing::shutdown::Shutdown;
use tokio::net::TcpListener;

/// Already-bound listeners (tests bind `127.0.0.1:0`).
#[derive(Debug)]
pub struct Listeners {
    /// The gRPC port (ingress and egress).
    pub grpc: TcpListener,
    /// Admin port (`/metrics`, `/health`); `None` disables it.
    pub admin: Option<TcpListener>,
    /// Localhost "pprof" port (404 for every request); `None` disables it.
    pub pprof: Option<TcpListener>,
}

/// Runs doppler with a fresh metrics registry until `shutdown` triggers and
/// the grace period ends.
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
