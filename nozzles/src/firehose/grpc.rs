//! The v2 firehose straight from the dopplers' gRPC egress
//! (`BatchedReceiver`, mutual TLS via `plumbing::tls`): one stream per
//! doppler with the same request (shard id = subscription id), all feeding
//! one [`Feed`]; each stream reconnects on its own with backoff.

use envelope_proto::loggregator_v2::{EgressBatchRequest, Envelope, egress_client::EgressClient};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use super::{Feed, note_v2_warning, reconnect_backoff};

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
    let mut client = EgressClient::new(channel).max_decoding_message_size(MAX_DECODE);
    let mut backoff = reconnect_backoff();
    let m = feed.metrics().clone();
    let mut first = true;
    loop {
        if !first {
            m.reconnects.inc();
        }
        first = false;
        let opened = tokio::select! {
            _ = cancel.cancelled() => return,
            r = client.batched_receiver(request.clone()) => r,
        };
        match opened {
            Ok(resp) => {
                let mut stream = resp.into_inner();
                tracing::info!(%doppler, "connected to doppler egress");
                loop {
                    let next = tokio::select! {
                        _ = cancel.cancelled() => return,
                        n = stream.message() => n,
                    };
                    match next {
                        Ok(Some(batch)) => {
                            backoff.reset();
                            m.received.add(batch.batch.len() as u64);
                            for env in batch.batch {
                                note_v2_warning(&env, &m);
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
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}
