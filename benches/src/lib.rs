//! # benches
//!
//! The benchmark harness: an open-loop load generator, subscribers for every consumer protocol,
//! per-process CPU and memory accounting, drop-counter reconciliation and the scenario runner that
//! writes `docs/benchmarks.md`-style reports. Criterion micro-benchmarks of hot functions live in
//! the crates they measure (`envelope-proto/benches`, `plumbing/benches`).
//!
//! It speaks only the public protocols (addresses and TLS files are arguments), so the same
//! harness can measure any Loggregator-compatible implementation on the same machine.
//!
//! Where it sits: outside the pipeline, driving it. Dependency rule: it may use any crate of the
//! workspace, but only `envelope-proto` and `plumbing` are linked into the generator and
//! subscribers; components under test run as separate processes.
//!
//! ## Layout
//! - [`profile`]: envelope mixes, pre-encoded with a patchable timestamp.
//! - [`load`]: the constant-rate generator (v2 gRPC BatchSender, v1 UDP).
//! - [`subscribe`]: v2 gRPC, WebSocket firehose and SSE subscribers with latency histograms.
//! - [`procstat`]: CPU time and RSS from `/proc`.
//! - [`scrape`]: Prometheus `/metrics` scraping for drop reconciliation.
//! - [`cluster`]: spawns components as processes and discovers their ports.
//! - [`scenario`]: W1–W9 (plus W2a and W3-1a, the agent-entered variants) and the rate sweep.
//! - [`logcache`]: LC1–LC2, Log Cache ingest, reads and the cf CLI walk.
//! - [`report`]: JSON and Markdown output.

pub mod cluster;
pub mod load;
pub mod logcache;
pub mod procstat;
pub mod profile;
pub mod report;
pub mod scenario;
pub mod scrape;
pub mod subscribe;

/// Name of the in-stream counter that announces drops to a subscriber (reference §14.3).
pub const WARNING_COUNTER: &str = "TruncatingBuffer.DroppedMessages";

/// `origin` tag of every envelope the load generator sends: subscribers count only these as
/// load (component self-metrics also flow through the firehose).
pub const LOAD_ORIGIN: &str = "bench";
