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
//! - [`store`]: the store (per source, ordered, bounded by bytes, evictions counted).
//! - [`read`]: request checking as upstream does it, the [`read::Reader`] every API uses.
//! - [`ingest`]: the [`ingest::Sink`] every ingest path ends in; doppler subscription, gRPC `Send`.
//! - [`metrics`]: metric handles (upstream names for the store's).
//! - [`syslog`]: the RFC 5424 syslog ingest server (octet counting or LF framing, TLS).
//!
//! # Dependency rule
//!
//! Depends on `envelope-proto` and `plumbing` only, never on other components.

pub mod ingest;
pub mod metrics;
pub mod read;
pub mod store;
pub mod syslog;
