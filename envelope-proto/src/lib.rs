//! # envelope-proto
//!
//! The wire layer of the pipeline: Loggregator's v1 (dropsonde, package
//! `events`) and v2 (package `loggregator.v2`) envelopes, the `plumbing`
//! doppler services, their tonic clients and servers, and everything that reads
//! or rewrites envelopes without needing a runtime.
//!
//! ## Layout
//!
//! - [`events`], [`loggregator_v2`], [`plumbing_v1`]: generated from `proto/`
//!   by `build.rs` (v1 messages, v2 messages and services, v1 doppler services).
//! - [`logcache_v1`]: Log Cache's `Egress`, `Ingress` and `PromQLQuerier`
//!   messages and services, also generated.
//! - [`wire`]: the one protobuf wire reader, with Go's exact acceptance rules.
//! - [`v1`]: Go-compatible v1 decode/encode, required fields, agent check, app id.
//! - [`v2`]: Go-compatible v2 decode.
//! - [`uuid`]: v1 `UUID` messages to and from their string form.
//! - [`convert`]: v2 to v1 (`ToV1`), v1 to v2 (`ToV2`), RLP tag convergence.
//! - [`gofmt`]: Go's float formatting (`strconv.FormatFloat`).
//! - [`json`]: the RLP gateway's protojson rendering of v2 envelopes.
//! - [`timestamp`]: envelope timestamps (Unix nanoseconds) from the clock.
//! - [`view`]: zero-copy routing view of an encoded v2 envelope, and `crc64`.
//! - [`batch`]: split and build encoded `EnvelopeBatch`es without re-encoding.
//! - [`logcache`]: `logcache.v1` `SendRequest` / `ReadResponse` framing over
//!   encoded envelopes.
//! - [`codec`]: `RawCodec`, a tonic codec carrying messages as raw bytes.
//! - [`raw`]: raw-bytes versions of the gRPC services, built on `RawCodec`.
//!
//! Dependency rule: this crate depends on nothing else in the workspace and
//! has no tokio, no servers and no I/O. Every other crate builds on it.

/// Generated v1 dropsonde messages (package `events`). Required fields are
/// generated as `Option` so presence is kept; see [`crate::v1`] for checks.
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod events {
    include!(concat!(env!("OUT_DIR"), "/events.rs"));
}

/// Generated v2 messages and services (package `loggregator.v2`).
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod loggregator_v2 {
    include!(concat!(env!("OUT_DIR"), "/loggregator.v2.rs"));
}

/// Generated v1 doppler services (package `plumbing`).
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod plumbing_v1 {
    include!(concat!(env!("OUT_DIR"), "/plumbing.rs"));
}

/// Generated Log Cache messages and services (package `logcache.v1`).
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod logcache_v1 {
    include!(concat!(env!("OUT_DIR"), "/logcache.v1.rs"));
}

pub mod batch;
pub mod codec;
pub mod raw;
pub mod view;

pub mod convert;
pub mod gofmt;
pub mod json;
pub mod logcache;
pub mod timestamp;
pub mod uuid;
pub mod v1;
pub mod v2;
pub mod wire;
