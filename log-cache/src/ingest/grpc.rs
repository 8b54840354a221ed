//! `logcache.v1.Ingress/Send`: feeders (and, in a cluster, peer nodes) send
//! encoded batches. The batch is split without decoding; each envelope goes
//! to the [`Sink`] (`local_only` requests straight to the local store, so a
//! forwarded batch is never forwarded again). A malformed batch is refused
//! with `InvalidArgument` and stores nothing.

use std::sync::Arc;

use bytes::Bytes;
use envelope_proto::raw::logcache::ingress_server::Ingress;

use super::Sink;

/// The `Ingress` service.
pub struct IngressService {
    /// Where `Send` puts envelopes unless `local_only`.
    pub routed: Arc<dyn Sink>,
    /// Where `local_only` envelopes go.
    pub local: Arc<dyn Sink>,
}

impl std::fmt::Debug for IngressService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngressService").finish_non_exhaustive()
    }
}

#[tonic::async_trait]
impl Ingress for IngressService {
    async fn send(
        &self,
        request: tonic::Request<Bytes>,
    ) -> Result<tonic::Response<Bytes>, tonic::Status> {
        let body = request.into_inner();
        let parsed = envelope_proto::logcache::send_request(&body)
            .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
        let sink = if parsed.local_only {
            &self.local
        } else {
            &self.routed
        };
        // Framing was checked by `send_request`.
        if let Ok(entries) = envelope_proto::batch::entries(parsed.batch) {
            for envelope in entries {
                sink.put(envelope);
            }
        }
        Ok(tonic::Response::new(Bytes::new()))
    }
}
