//! # envelope-proto
//!
//! The wire layer of the pipeline: Loggregator's v1 (dropsonde, package
//! `events`) and v2 (package `loggregator.v2`) envelopes, the `plumbing`
//! doppler services, their tonic clients and servers, and everything that reads
//! or rewrites envelopes without needing a runtime.
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

pub mod batch;
pub mod codec;
pub mod raw;
pub mod view;

pub mod convert;
pub mod gofmt;
pub mod json;
pub mod uuid;
pub mod v1;
pub mod v2;
pub mod wire;
