//! # metron-agent
//!
//! The Loggregator agent (upstream `loggregator-agent`, historically
//! "metron"): the first hop of the pipeline. Emitters on the same VM send v1
//! dropsonde envelopes over UDP and v2 envelopes over mutual-TLS gRPC; the
//! agent validates, tags and totals them and forwards them to a pool of
//! dopplers.
//!
//! ```text
//! UDP v1 ──► decode/validate/tag ──► ring (drop-oldest) ──► Pusher streams ───┐
//! gRPC v2 ─► scan/tag/total ───────► ring (drop-oldest) ──► BatchSender ──────┴─► dopplers
//! ```
//!
//! Layout:
//! - [`config`]: raw settings (file, upstream env vars, flags), validated into [`Config`].
//! - [`error`]: the crate's [`Error`] type.
//! - [`metrics`]: metric handles (upstream names) from a passed-in registry.
//! - [`ingress`]: UDP v1 reader and the v2 `Ingress` gRPC service.
//! - [`process`]: per-envelope processing: v1 validation and identity fields,
//!   v2 origin mapping, tagging and counter totals, and the fast-path scanner.
//! - [`egress`]: ring → batch → doppler pool loops, drop accounting.
//! - [`pool`]: the doppler pool (discovery, stream managers, rebalancing).
//! - [`own_metrics`]: the agent's metrics as v2 envelopes (source_id `metron`).
//! - [`server`]: assembly and shutdown order, behind [`run`] and [`run_with_registry`].
//! - [`cli`]: flags, file and environment into a [`Config`], startup lines.
//!
//! ## v2 hot path
//!
//! Envelopes stay bytes from the socket to the doppler. The gRPC service uses
//! the raw codec; each envelope of a batch is a zero-copy slice of the
//! received message. A single allocation-free pass ([`process::scan`]) reads
//! the top-level fields: when `source_id` is set, there are no
//! `deprecated_tags` and the envelope is not a counter, the original bytes are
//! forwarded, with pre-encoded `tags` map entries appended for every default
//! tag whose key is absent (a protobuf map is a repeated field, so appended
//! entries add keys). Rewritten envelopes are carved from a per-connection
//! arena. Only envelopes needing origin mapping, deprecated-tag copying or a
//! counter total are decoded, modified and re-encoded (the slow path), and
//! anything the scan finds unusual goes there too, where the full
//! Go-compatible decode decides. The egress loop concatenates the envelopes'
//! bytes into one `EnvelopeBatch` per write.
//!
//! Processing runs on the ingress connection's task (so it scales with
//! connections), before the ring; counter totals are behind one lock.
//!
//! ## Configuration and deviations from upstream
//!
//! Settings come from a TOML file, the upstream environment variables
//! (upstream-config.md §7, upstream parsing rules) and flags, in increasing
//! precedence; errors name the variable and exit 1 (upstream panics).
//! Deliberate differences, all documented where they live:
//! - v2 default tags are exactly `AGENT_TAGS`; when it is unset, the non-empty
//!   `AGENT_DEPLOYMENT/JOB/INDEX/IP` (what BOSH renders into `AGENT_TAGS`).
//! - Counter totals and tagging happen before the ring (on the ingress task),
//!   not after it; totals therefore include counters later lost in the ring.
//! - v1 datagrams are decoded on the egress side of the v1 ring (as upstream),
//!   and the UDP socket asks for an 8 MiB receive buffer.
//! - The pool dials the least-used resolved address (upstream: random),
//!   avoids addresses whose dial just failed, and a resolver task recycles a
//!   stream when a new doppler address appears or one disappears; upstream
//!   only rebalances by recycling after ~100,000 writes (also done here).
//! - When every stream is full the writer waits up to 1 s, then drops the
//!   batch (`dropped{direction="egress"}`); upstream blocks in `Send`.
//! - The admin endpoint is plain HTTP on localhost (upstream: Prometheus over
//!   mTLS with `METRICS_*_FILE_PATH`, which are accepted and ignored);
//!   `ROUTER_ADDR_WITH_AZ` gets `@` → `-` but no IDNA conversion.
//! - Own metrics (`AGENT_METRIC_BATCH_INTERVAL_MILLISECONDS`,
//!   `AGENT_METRIC_SOURCE_ID`, read but unused upstream) are emitted.
//!
//! Dependency rule: depends only on `envelope-proto` and `plumbing`; never on
//! another component.

pub mod cli;
pub mod config;
pub mod egress;
pub mod error;
pub mod ingress;
pub mod metrics;
pub mod own_metrics;
pub mod pool;
pub mod process;
pub mod server;

pub use config::Config;
pub use error::Error;

use plumbing::metrics::Registry;
use plumbing::shutdown::Shutdown;
use tokio::net::{TcpListener, UdpSocket};

/// Already-bound sockets (tests bind `127.0.0.1:0`).
#[derive(Debug)]
pub struct Listeners {
    /// v1 UDP socket; `None` disables the v1 path.
    pub udp: Option<UdpSocket>,
    /// v2 gRPC listener (mTLS).
    pub grpc: TcpListener,
    /// Admin listener (`/metrics`, `/health`); `None` disables it.
    pub admin: Option<TcpListener>,
}

impl Listeners {
    /// Binds the addresses of `config`.
    pub async fn bind(config: &Config) -> Result<Self, Error> {
        let bind_err = |addr| move |source| Error::Bind { addr, source };
        let udp = match config.udp_addr {
            Some(addr) => Some(UdpSocket::bind(addr).await.map_err(bind_err(addr))?),
            None => None,
        };
        let grpc = TcpListener::bind(config.grpc_addr)
            .await
            .map_err(bind_err(config.grpc_addr))?;
        let admin = TcpListener::bind(config.admin_addr)
            .await
            .map_err(bind_err(config.admin_addr))?;
        Ok(Self {
            udp,
            grpc,
            admin: Some(admin),
        })
    }
}

/// Runs the agent with a fresh metrics registry until `shutdown` triggers
/// and the grace period ends.
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
