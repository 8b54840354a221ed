//! The v2 firehose straight from the dopplers' gRPC egress
//! (`BatchedReceiver`, mutual TLS via `plumbing::tls`): one stream per
//! doppler with the same request (shard id = subscription id), all feeding
//! one [`Feed`]; each stream reconnects on its own with backoff.

use envelope_proto::loggregator_v2::{EgressBatchRequest, Envelope, egress_client::EgressClient};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use super::{Ended, Feed, Reconnect, note_v2_warning, reconnect_loop};

/// Largest batch accepted from a doppler.
const MAX_DECODE: usize = 10 * 1024 * 1024;

/// Reads one doppler's egress into `feed` until `cancel` fires.
pub async fn run(
    channel: Channel,
    doppler: String,
    request: EgressBatchRequest,
    feed: Feed<Envelope>,
    cancel: CancellationToken,
) {
    let client = EgressClient::new(channel).max_decoding_message_size(MAX_DECODE);
    let m = &feed.metrics().clone();
    let (doppler, request, feed) = (&doppler, &request, &feed);
    reconnect_loop(m, &cancel, move || {
        // Clones share the channel: every session uses the same connection.
        let mut client = client.clone();
        async move {
            let mut received = false;
            match client.batched_receiver(request.clone()).await {
                Ok(resp) => {
                    let mut stream = resp.into_inner();
                    tracing::info!(%doppler, "connected to doppler egress");
                    loop {
                        match stream.message().await {
                            Ok(Some(batch)) => {
                                received = true;
                                m.received.add(batch.batch.len() as u64);
                                for env in batch.batch {
                                    note_v2_warning(&env, m);
                                    feed.push(env);
                                }
                            }
                            Ok(None) => break,
                            Err(e) => {
                                tracing::warn!(%doppler, error = %e, "doppler egress stream failed");
                                break;
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(%doppler, error = %e, "doppler egress subscribe failed"),
            }
            Ended {
                received,
                next: Reconnect::AfterDelay,
            }
        }
    })
    .await;
}
