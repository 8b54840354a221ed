//! The doppler side: the pool and fan-in live in [`plumbing::upstream`];
//! here are the traffic controller's two stream openers (v1 for WebSocket
//! consumers, v2 for the RLP gateway).

use std::sync::Arc;

use futures::StreamExt;
use plumbing::upstream::fanin::Opener;
pub(crate) use plumbing::upstream::{fanin, pool};
use tonic::transport::Channel;

/// Opener for the v1 `plumbing.Doppler/BatchSubscribe` stream: payloads are
/// the marshalled v1 envelopes, passed through untouched.
pub(crate) fn v1_batch_subscribe(
    request: envelope_proto::plumbing_v1::SubscriptionRequest,
) -> Opener<bytes::Bytes> {
    use envelope_proto::plumbing_v1::doppler_client::DopplerClient;
    Arc::new(move |channel: Channel| {
        let request = request.clone();
        Box::pin(async move {
            let mut client = DopplerClient::new(channel).max_decoding_message_size(MAX_MESSAGE);
            let stream = client.batch_subscribe(request).await?.into_inner();
            Ok(stream.map(|r| r.map(|b| b.payload)).boxed())
        })
    })
}

/// Opener for the v2 `loggregator.v2.Egress/BatchedReceiver` stream.
pub(crate) fn v2_batched_receiver(
    request: envelope_proto::loggregator_v2::EgressBatchRequest,
) -> Opener<envelope_proto::loggregator_v2::Envelope> {
    use envelope_proto::loggregator_v2::egress_client::EgressClient;
    Arc::new(move |channel: Channel| {
        let request = request.clone();
        Box::pin(async move {
            let mut client = EgressClient::new(channel).max_decoding_message_size(MAX_MESSAGE);
            let stream = client.batched_receiver(request).await?.into_inner();
            Ok(stream.map(|r| r.map(|b| b.batch)).boxed())
        })
    })
}

/// Max receive message size on doppler streams (reference §5.5).
pub(crate) const MAX_MESSAGE: usize = 10 * 1024 * 1024;
