//! # traffic-controller
//!
//! The v1 consumer edge of the pipeline: subscribes to **every** doppler over
//! gRPC and serves consumers over HTTP/1.1 (optionally TLS):
//!
//! - `/firehose/{subscription_id}` and `/apps/{guid}/stream`: WebSocket, one
//!   binary message per v1 envelope (reference §12);
//! - `/apps/{guid}/recentlogs` and `/apps/{guid}/containermetrics`:
//!   `multipart/x-protobuf` gathered from every doppler (§15);
//! - `/set-cookie` (§12.2);
//! - `/v2/read`: the RLP gateway's Server-Sent Events of protojson batches
//!   (§17), on the main listener and on an optional gateway listener;
//! - `/metrics` and `/health` on the admin listener; the upstream metrics also
//!   go to the local agent as v2 envelopes (reference §12.7).
//!
//! ```text
//! dopplers --BatchSubscribe / BatchedReceiver--> per-consumer drop-oldest ring --> WebSocket / SSE writer
//! ```
//!
//! Slow consumers never slow anyone else: each consumer has a bounded
//! drop-oldest ring that every doppler reader pushes into without blocking;
//! a consumer that lost envelopes gets the rate-control warning ahead of the
//! next ones, and one whose writes make no progress for the slow-consumer
//! timeout is disconnected (docs/backpressure.md, "Traffic controller").
//!
//! ## Layout
//!
//! - [`config`]: raw flags / TOML / upstream env -> validated [`Config`].
//! - [`error`]: the crate's `Error`.
//! - [`metrics`]: metric handles (names and their upstream equivalents).
//! - [`cli`]: [`cli::Args`] and [`cli::main`] for the binaries.
//! - `server`: shared state, accept loops, dispatch; `routes`: path parsing;
//!   `respond`: upstream-exact responses.
//! - [`auth`]: token extraction, UAA `check_token`, Cloud Controller log access, cache
//!   (over [`plumbing::http_client`]).
//! - `upstream`: the doppler set (static / DNS) and the per-consumer fan-in.
//! - `websocket`: upgrade, the generic session (keepalive, coalesced writes,
//!   slow consumers) and the rate-control warning.
//! - `recent` + `multipart`: recent logs and container metrics.
//! - `gateway`: `/v2/read` query parsing and SSE.
//! - `cookie`: `/set-cookie`. `agent_event`: the slow-consumer Event envelope.
//!   `security_log`: the optional CEF request log.
//! - Own metrics go to the agent every `metric_emitter_interval` through
//!   [`plumbing::emitter`] ([`metrics::Metrics::agent_description`]).
//!
//! ## Dependency rule
//!
//! Depends only on `envelope-proto` and `plumbing` among this workspace's
//! crates, never on another component.

mod agent_event;
pub mod auth;
pub mod cli;
pub mod config;
mod cookie;
pub mod error;
mod gateway;
pub mod metrics;
mod multipart;
mod recent;
mod respond;
mod routes;
mod security_log;
mod server;
mod upstream;
mod websocket;

use std::sync::Arc;

use plumbing::shutdown::Shutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

pub use auth::AuthMode;
pub use config::Config;
pub use error::Error;

/// Already-bound listeners (tests bind `127.0.0.1:0`).
#[derive(Debug)]
pub struct Listeners {
    /// The traffic controller's HTTP/WebSocket listener (upstream 8081).
    pub ws: TcpListener,
    /// The RLP gateway's listener (`/v2/read` only), if any.
    pub gateway: Option<TcpListener>,
    /// Admin listener for `/metrics` and `/health`, if any.
    pub admin: Option<TcpListener>,
}

/// Runs the traffic controller until `shutdown` triggers, then closes every
/// consumer (1000) and returns after the grace period. Metrics go to
/// `config.registry`.
pub async fn run(config: Config, listeners: Listeners, shutdown: Shutdown) -> Result<(), Error> {
    let registry = config.registry.clone();
    let auth = auth::Authorizer::new(&config.auth)?;
    let listener_tls = match &config.listener_tls {
        None => None,
        Some((cert, key)) => {
            let options = plumbing::tls::TlsOptions {
                tls12_suites: None,
                alpn: Some(vec![b"http/1.1".to_vec()]),
            };
            let files = plumbing::tls::TlsFiles::server_only(cert, key);
            let cfg = plumbing::tls::server_config_with(&files, &options)
                .map_err(|e| Error::Tls(format!("failed to load keypair: {e}")))?;
            Some(tokio_rustls::TlsAcceptor::from(cfg))
        }
    };
    let doppler_tls = match &config.doppler_tls {
        None => None,
        Some(p) => Some(
            plumbing::tls::client_config(&plumbing::tls::TlsFiles::new(&p.ca, &p.cert, &p.key))
                .map_err(|e| Error::Tls(e.to_string()))?,
        ),
    };
    let cancel = shutdown.token().child_token();
    let pool = upstream::pool::Pool::start(
        config.doppler_addrs.clone(),
        doppler_tls.clone(),
        plumbing::tls::grpc::ChannelOptions::traffic_controller(),
        config.doppler_resolve_interval,
        cancel.clone(),
    )
    .await;
    let metrics = metrics::Metrics::new(&registry);
    let agent = config.agent_addr.as_deref().map(|addr| {
        agent_event::AgentEvents::start(
            addr,
            doppler_tls.clone(),
            metrics.agent_events_dropped.clone(),
            cancel.clone(),
        )
    });
    if let Some(addr) = &config.agent_addr {
        tokio::spawn(plumbing::emitter::run(
            addr.clone(),
            doppler_tls
                .clone()
                .map(|c| (c, plumbing::emitter::AGENT_SERVER_NAME)),
            config.metric_emitter_interval,
            metrics.agent_description(),
            cancel.clone(),
        ));
    }
    let security_log = match &config.security_event_log {
        None => None,
        Some(path) => Some(
            security_log::SecurityLog::open(
                path,
                config.ip.clone(),
                metrics.security_log_dropped.clone(),
            )
            .map_err(|e| {
                Error::Io(std::io::Error::new(
                    e.kind(),
                    format!("security event log {}: {e}", path.display()),
                ))
            })?,
        ),
    };
    let tracker = TaskTracker::new();
    let shared = Arc::new(server::Shared {
        limit: Arc::new(Semaphore::new(config.connection_limit)),
        metrics,
        security_log,
        config,
        pool,
        auth,
        cancel: cancel.clone(),
        agent,
        tracker: tracker.clone(),
    });

    let mut servers = Vec::new();
    let limits = shared.config.listen.clone();
    servers.push(tokio::spawn(server::serve(
        listeners.ws,
        listener_tls.clone(),
        server::Listener::Main,
        plumbing::listen::Gate::new("traffic_controller", limits.clone(), &registry),
        shared.clone(),
    )));
    if let Some(gw) = listeners.gateway {
        servers.push(tokio::spawn(server::serve(
            gw,
            listener_tls,
            server::Listener::Gateway,
            plumbing::listen::Gate::new("gateway", limits, &registry),
            shared.clone(),
        )));
    }
    if let Some(admin) = listeners.admin {
        servers.push(tokio::spawn(plumbing::admin::serve(
            admin,
            registry.clone(),
            shutdown.child(),
        )));
    }

    shutdown.cancelled().await;
    cancel.cancel();
    for s in servers {
        let _ = s.await;
    }
    tracker.close();
    let grace = shared.config.grace;
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!(?grace, "consumers still open after the grace period");
    }
    Ok(())
}
