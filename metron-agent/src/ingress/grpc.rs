//! v2 gRPC ingress: `Sender`, `BatchSender` and `Send` of
//! `loggregator.v2.Ingress`, served with the raw codec so envelopes stay
//! bytes. Each envelope is processed ([`crate::process::v2`]) on the
//! connection's task and pushed into the v2 ring.
//!
//! Fairness, not backpressure: once the ring is half full a connection's task
//! lets the egress task run before it reads the next message
//! ([`Turns::on_pressure`]); it never waits for room. It does not also yield
//! every N envelopes as the doppler's ingress does: the egress task batches
//! whatever is queued, so extra turns only shrink the batches sent to doppler
//! (measured in the W3-1a benchmark: more doppler CPU per envelope and loss at
//! 300,000/s).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use envelope_proto::raw::ingress_server::Ingress;
use plumbing::ring::Ring;
use plumbing::turns::Turns;
use tonic::{Request, Response, Status, Streaming};

use crate::metrics::Metrics;
use crate::process::v2::{Outcome, V2Processor};

/// The `loggregator.v2.Ingress` implementation.
#[derive(Debug, Clone)]
pub struct IngressService {
    processor: Arc<V2Processor>,
    ring: Arc<Ring<Bytes>>,
    metrics: Metrics,
}

/// Counts for one message, added to the metrics once.
#[derive(Default)]
struct Tally {
    received: u64,
    invalid: u64,
    mapped: u64,
    logs_disabled: u64,
}

impl IngressService {
    /// Ingress feeding `ring` through `processor`.
    pub fn new(processor: Arc<V2Processor>, ring: Arc<Ring<Bytes>>, metrics: Metrics) -> Self {
        Self {
            processor,
            ring,
            metrics,
        }
    }

    fn one(&self, env: Bytes, arena: &mut BytesMut, tally: &mut Tally) {
        tally.received += 1;
        match self.processor.process(env, arena) {
            Outcome::Forward {
                bytes,
                origin_mapped,
            } => {
                tally.mapped += u64::from(origin_mapped);
                self.ring.push(bytes);
            }
            Outcome::LogDisabled => tally.logs_disabled += 1,
            Outcome::Invalid => tally.invalid += 1,
        }
    }

    /// A batch that does not parse is counted and skipped; the stream stays
    /// up (as doppler does).
    fn batch(&self, batch: &Bytes, arena: &mut BytesMut, tally: &mut Tally) {
        match envelope_proto::batch::split(batch) {
            Ok(split) => {
                for env in split {
                    self.one(env, arena, tally);
                }
            }
            Err(e) => {
                tally.invalid += 1;
                tracing::debug!(error = %e, "skipping malformed EnvelopeBatch");
            }
        }
    }

    fn account(&self, t: &Tally) {
        let m = &self.metrics;
        m.ingress_v2.add(t.received);
        if t.invalid > 0 {
            m.invalid_v2.add(t.invalid);
        }
        if t.mapped > 0 {
            m.origin_mappings.add(t.mapped);
        }
        if t.logs_disabled > 0 {
            m.logs_disabled.add(t.logs_disabled);
        }
    }
}

#[tonic::async_trait]
impl Ingress for IngressService {
    async fn sender(&self, request: Request<Streaming<Bytes>>) -> Result<Response<Bytes>, Status> {
        let mut stream = request.into_inner();
        let mut arena = BytesMut::new();
        let mut turns = Turns::on_pressure();
        while let Some(env) = stream.message().await? {
            let mut tally = Tally::default();
            self.one(env, &mut arena, &mut tally);
            self.account(&tally);
            turns.handled(1, &self.ring).await;
        }
        Ok(Response::new(Bytes::new()))
    }

    async fn batch_sender(
        &self,
        request: Request<Streaming<Bytes>>,
    ) -> Result<Response<Bytes>, Status> {
        let mut stream = request.into_inner();
        let mut arena = BytesMut::new();
        let mut turns = Turns::on_pressure();
        while let Some(batch) = stream.message().await? {
            let mut tally = Tally::default();
            self.batch(&batch, &mut arena, &mut tally);
            self.account(&tally);
            turns.handled(1, &self.ring).await;
        }
        Ok(Response::new(Bytes::new()))
    }

    async fn send(&self, request: Request<Bytes>) -> Result<Response<Bytes>, Status> {
        let mut arena = BytesMut::new();
        let mut tally = Tally::default();
        self.batch(request.get_ref(), &mut arena, &mut tally);
        self.account(&tally);
        Ok(Response::new(Bytes::new()))
    }
}
