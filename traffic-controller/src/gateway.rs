//! The RLP gateway's `/v2/read` (reference §17): Server-Sent Events of
//! protojson `EnvelopeBatch`es, fed by a `BatchedReceiver` subscription on
//! every doppler (the traffic controller plays RLP and gateway in one).
//!
//! Checks, in order: method (405 JSON), query (400 JSON), authorisation (404
//! JSON `not_found`), connection limit and dopplers (503 JSON
//! `streaming_unavailable`).

pub(crate) mod query;
pub(crate) mod sse;
pub(crate) mod warning;

use std::sync::Arc;

use envelope_proto::loggregator_v2::Envelope;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use plumbing::ring::Ring;

use crate::respond::{self, Body};
use crate::server::{self, Shared};
use crate::upstream::{self, fanin};
use query::QueryError;
use warning::SseWarning;

/// Handles `/v2/read`.
pub(crate) async fn read(
    req: Request<Incoming>,
    peer: server::Peer,
    shared: Arc<Shared>,
) -> Response<Body> {
    if req.method() != Method::GET {
        return respond::json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed",
        );
    }
    let parsed = match query::parse(req.uri().query()) {
        Ok(q) => q,
        Err(QueryError::Empty) => {
            return respond::json_error(
                StatusCode::BAD_REQUEST,
                "empty_query",
                "query cannot be empty",
            );
        }
        Err(QueryError::MissingEnvelopeType) => {
            return respond::json_error(
                StatusCode::BAD_REQUEST,
                "missing_envelope_type",
                "query must provide at least one envelope type",
            );
        }
    };
    if shared
        .auth
        .gateway(req.headers(), &parsed.source_ids)
        .await
        .is_err()
    {
        return respond::gateway_not_found();
    }
    let unavailable = || {
        respond::json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "streaming_unavailable",
            "streaming is temporarily unavailable",
        )
    };
    let Some(permit) = crate::server::consumer_slot(&req, &shared) else {
        shared.metrics.rejected.inc();
        return unavailable();
    };
    if shared.pool.current().is_empty() {
        return unavailable();
    }
    // The warning names the client: the first X-Forwarded-For entry, else the peer.
    let destination = server::client_address(req.headers(), peer.addr);
    let warning = SseWarning::new(&parsed.request.selectors, destination);
    let ring = Arc::new(Ring::<Envelope>::new(shared.config.buffer_size));
    let fanin = fanin::start(
        &shared.pool,
        upstream::v2_batched_receiver(parsed.request),
        ring.clone(),
        shared.metrics.upstream(),
        &shared.cancel,
    );
    sse::respond(ring, fanin, permit, warning, shared)
}
