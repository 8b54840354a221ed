//! Doppler v2 egress subscription for the bound apps: one `BatchedReceiver`
//! stream per doppler with the manager's current selectors. When the
//! selectors change, the new stream is opened before the old one is dropped;
//! both are in the same shard group, so the overlap neither loses nor
//! duplicates. Stream errors reconnect with capped exponential backoff.

use std::sync::Arc;
use std::time::Duration;

use envelope_proto::loggregator_v2::{
    EgressBatchRequest, EnvelopeBatch, Selector, egress_client::EgressClient,
};
use plumbing::backoff::Backoff;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::Streaming;
use tonic::transport::Channel;

use super::manager::Dispatcher;
use plumbing::metrics::Counter;

/// Maximum decoded message size accepted from a doppler.
const MAX_DECODE: usize = 10 * 1024 * 1024;

fn request(shard_id: &str, selectors: &[Selector]) -> EgressBatchRequest {
    EgressBatchRequest {
        shard_id: shard_id.to_owned(),
        legacy_selector: None,
        use_preferred_tags: true,
        selectors: selectors.to_vec(),
        deterministic_name: String::new(),
    }
}

async fn open(
    client: &mut EgressClient<Channel>,
    shard_id: &str,
    selectors: &[Selector],
) -> Result<Streaming<EnvelopeBatch>, tonic::Status> {
    Ok(client
        .batched_receiver(request(shard_id, selectors))
        .await?
        .into_inner())
}

/// Runs one doppler's subscription until `cancel` fires.
pub async fn run(
    channel: Channel,
    doppler: String,
    shard_id: String,
    mut selectors: watch::Receiver<Arc<Vec<Selector>>>,
    dispatcher: Dispatcher,
    opens: Counter,
    cancel: CancellationToken,
) {
    let mut client = EgressClient::new(channel).max_decoding_message_size(MAX_DECODE);
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
    'outer: loop {
        let current = selectors.borrow_and_update().clone();
        if current.is_empty() {
            tokio::select! {
                _ = cancel.cancelled() => return,
                r = selectors.changed() => if r.is_err() { return },
            }
            continue;
        }
        let mut stream = match open(&mut client, &shard_id, &current).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(%doppler, error = %e, "egress subscribe failed");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                }
                continue;
            }
        };
        opens.inc();
        tracing::info!(%doppler, selectors = current.len(), "subscribed to doppler egress");
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                r = selectors.changed() => {
                    if r.is_err() { return; }
                    let next = selectors.borrow_and_update().clone();
                    if next.is_empty() {
                        continue 'outer;
                    }
                    match open(&mut client, &shard_id, &next).await {
                        Ok(s) => {
                            opens.inc();
                            tracing::info!(%doppler, selectors = next.len(), "re-subscribed to doppler egress");
                            stream = s;
                        }
                        Err(e) => {
                            tracing::warn!(%doppler, error = %e, "egress re-subscribe failed");
                            continue 'outer;
                        }
                    }
                }
                m = stream.message() => match m {
                    Ok(Some(batch)) => {
                        backoff.reset();
                        dispatcher.dispatch(batch.batch);
                    }
                    Ok(None) => {
                        tracing::info!(%doppler, "egress stream ended");
                        continue 'outer;
                    }
                    Err(e) => {
                        tracing::warn!(%doppler, error = %e, "egress stream failed");
                        tokio::select! {
                            _ = cancel.cancelled() => return,
                            _ = tokio::time::sleep(backoff.next_delay()) => {}
                        }
                        continue 'outer;
                    }
                }
            }
        }
    }
}
