//! # nozzles
//!
//! The consumers at the end of the pipeline: a firehose client library and
//! three programs built on it.
//!
//! - `nozzle syslog`: firehose (traffic controller WebSocket, v1) to a syslog
//!   server as RFC 5424 over TCP/TLS with octet counting, or JSON lines.
//! - `nozzle datadog`: firehose metrics to Datadog's `/api/v1/series`.
//! - `syslog-drain`: app syslog drains. Bindings come from a file or a Cloud
//!   Controller-shaped endpoint; envelopes come from the dopplers' v2 egress
//!   and are written to `syslog://`, `syslog-tls://`, `https://` and
//!   `https-batch://` drains exactly as the syslog agent formats them.
//!
//! Where it sits: doppler (v2 gRPC egress) and traffic controller (v1
//! WebSocket firehose, `/v2/read` SSE) feed these consumers; their outputs
//! leave the system.
//!
//! # Layout
//!
//! - [`syslog`]: RFC 5424 encoder ([`syslog::rfc5424`]) and octet-counting framer ([`syslog::framing`]).
//! - [`drain`]: drain URLs, bindings, writers, retry schedule, per-drain forwarders, the drain manager and its CLI.
//! - [`firehose`]: firehose consumers (WebSocket v1, gRPC v2, SSE v2) with reconnect and a drop-oldest ring.
//! - [`syslog_nozzle`]: the firehose-to-syslog nozzle.
//! - [`datadog`]: the Datadog nozzle (series formatter, flusher, CLI).
//! - [`tlsutil`]: rustls client configs built from in-memory PEM (drain credentials).
//! - [`http`]: a small keep-alive HTTP/1.1 client (HTTPS drains, Datadog, binding polls).
//! - [`error`]: the crate's error type.
//! - [`admin`]: the [`admin::Listeners`] every program's `run` takes, serving `/metrics` and `/health`.
//!
//! Each program exposes `cli::{Args, main}` (`drain::cli`, `syslog_nozzle::cli`,
//! `datadog::cli`) and a `run(config, listeners, shutdown)`; standalone binaries
//! are `syslog-drain`, `nozzle-syslog` and `datadog-nozzle`.
//!
//! # Dependency rule
//!
//! Depends on `envelope-proto` and `plumbing` only; never on doppler, agent or
//! traffic controller. Tests that combine them live in the root package.

pub mod admin;
mod cli_support;
pub mod datadog;
pub mod drain;
pub mod error;
pub mod firehose;
pub mod http;
pub mod syslog;
pub mod syslog_nozzle;
pub mod tlsutil;

pub use error::Error;
