//! Ingest: every way envelopes come in ends in a [`Sink`].
//!
//! - [`doppler`]: a v2 egress subscription to every doppler.
//! - [`grpc`]: the `logcache.v1.Ingress/Send` service.
//! - [`crate::syslog`]: the RFC 5424 syslog server.
//!
//! A sink never blocks its caller beyond a shard lock: the store evicts the
//! oldest to make room, and an envelope it cannot decode is dropped and
//! counted (`log_cache_ingress_dropped{source="invalid"}`).

use std::sync::Arc;

use plumbing::metrics::Counter;

use crate::store::Store;

pub mod doppler;
pub mod grpc;

/// Where ingested envelopes go: this node's store or, in a cluster, the
/// node that owns the envelope's source id.
pub trait Sink: Send + Sync + 'static {
    /// Takes one encoded v2 `Envelope`.
    fn put(&self, encoded: &[u8]);
}

/// Stores into the local store.
#[derive(Debug, Clone)]
pub struct LocalSink {
    store: Arc<Store>,
    invalid: Counter,
}

impl LocalSink {
    /// A sink over `store`; undecodable envelopes are counted in `invalid`.
    pub fn new(store: Arc<Store>, invalid: Counter) -> Self {
        Self { store, invalid }
    }
}

impl Sink for LocalSink {
    fn put(&self, encoded: &[u8]) {
        if self.store.put(encoded).is_err() {
            self.invalid.inc();
        }
    }
}
