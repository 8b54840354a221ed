//! gRPC `logcache.v1.Egress` (`Read`, `Meta`) for Cloud Controller and
//! other platform clients, over the node's mutual TLS (fully trusted, as
//! upstream's port 8080 is). `Read` answers with the stored encodings
//! (no re-encoding, [`envelope_proto::logcache::encode_read_response`]).

use std::sync::Arc;

use bytes::Bytes;
use envelope_proto::logcache_v1::{MetaRequest, MetaResponse, ReadRequest};
use envelope_proto::raw::logcache::egress_server::Egress;
use prost::Message as _;

use crate::metrics::Metrics;
use crate::read::Reader;

/// The `Egress` service over a [`Reader`].
pub struct EgressService {
    /// Where reads go.
    pub reader: Arc<dyn Reader>,
    /// Metrics.
    pub metrics: Metrics,
}

impl std::fmt::Debug for EgressService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EgressService").finish_non_exhaustive()
    }
}

#[tonic::async_trait]
impl Egress for EgressService {
    async fn read(
        &self,
        request: tonic::Request<Bytes>,
    ) -> Result<tonic::Response<Bytes>, tonic::Status> {
        self.metrics.grpc_reads.inc();
        let req = ReadRequest::decode(request.into_inner()).map_err(|e| {
            self.metrics.grpc_read_errors.inc();
            tonic::Status::invalid_argument(format!("malformed ReadRequest: {e}"))
        })?;
        let stored = self.reader.read(req).await.map_err(|e| {
            self.metrics.grpc_read_errors.inc();
            tonic::Status::from(e)
        })?;
        Ok(tonic::Response::new(
            envelope_proto::logcache::encode_read_response(&stored),
        ))
    }

    async fn meta(
        &self,
        request: tonic::Request<Bytes>,
    ) -> Result<tonic::Response<Bytes>, tonic::Status> {
        let req = MetaRequest::decode(request.into_inner())
            .map_err(|e| tonic::Status::invalid_argument(format!("malformed MetaRequest: {e}")))?;
        let meta = self.reader.meta(req.local_only).await?;
        let resp = MetaResponse {
            meta: meta.into_iter().collect(),
        };
        Ok(tonic::Response::new(Bytes::from(resp.encode_to_vec())))
    }
}
