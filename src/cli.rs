//! The subcommands of the `loggregator` binary.
//!
//! # Layout
//!
//! - `dev`: the embedded pipeline (agent, two dopplers, traffic controller) on loopback, with
//!   `demo` (a realistic emitter) and `stats` (per-hop rates read from the metrics registries).
//! - `emit`: logs and metrics into an agent (gRPC v2 over mTLS, or v1 over UDP).
//! - `logs`: `cf logs` for one app: recent logs, then the live stream, no gap, no duplicates.
//! - `firehose`: the traffic controller's firehose, one line or JSON object per envelope.
//! - `components`: thin delegations to each component crate's `cli::main`.
//! - `cflog`: the `cf logs` line formatter; `describe`: one-line and JSON renderings of v1
//!   envelopes; `tc`: traffic controller client (WebSocket, recent logs multipart).
//! - `out`: stdout/stderr writing (flush per line, quiet end on a closed pipe).
//! - `devdir`: where `dev` writes its certificates and where the client commands find them.
//! - `errors`: how errors are printed and which exit code they give.

pub(crate) mod cflog;
pub(crate) mod components;
pub(crate) mod describe;
pub(crate) mod dev;
pub(crate) mod devdir;
pub(crate) mod emit;
pub(crate) mod errors;
pub(crate) mod firehose;
pub(crate) mod logcache;
pub(crate) mod logs;
pub(crate) mod out;
pub(crate) mod tc;

use anyhow::Context as _;

/// Options every user-facing subcommand accepts.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct Common {
    /// Log level or filter for diagnostics on stderr (`RUST_LOG` wins when set) [default: info].
    #[arg(long, value_name = "LEVEL")]
    pub(crate) log_level: Option<String>,
}

/// The multi-threaded Tokio runtime every subcommand runs on.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Installs the tracing subscriber: the subcommand's `--log-level`, else the top-level one,
/// else `info`.
pub(crate) fn init_tracing(top_level: Option<&str>, common: &Common) -> anyhow::Result<()> {
    let level = common.log_level.as_deref().or(top_level).unwrap_or("info");
    plumbing::logline::init_tracing(level).map_err(|e| anyhow::anyhow!("--log-level: {e}"))
}
