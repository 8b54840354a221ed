//! App-visible notices (reference §19.7): v2 Log envelopes of type ERR with
//! `source_id` = app GUID, tag `source_type=LGR`, `instance_id` `0`, sent to
//! an agent's (or doppler's) v2 Ingress so they show up in the app's own
//! stream. Queued in a bounded drop-newest queue; a sender task batches them.

use std::collections::BTreeMap;
use std::time::Duration;

use envelope_proto::loggregator_v2::{
    Envelope, EnvelopeBatch, Log, envelope, ingress_client::IngressClient, log,
};
use plumbing::metrics::Counter;
use plumbing::queue::{FullPolicy, QueueRx, QueueTx, TrySend, bounded};
use plumbing::shutdown::Shutdown;
use tonic::transport::Channel;

/// Capacity of the notice queue.
pub const QUEUE_CAPACITY: usize = 1000;

/// Builds the notice envelope for `app_id` with `text`.
pub fn notice_envelope(app_id: &str, text: &str) -> Envelope {
    let ts = envelope_proto::timestamp::now();
    let mut tags = BTreeMap::new();
    tags.insert("source_type".to_owned(), "LGR".to_owned());
    Envelope {
        timestamp: ts,
        source_id: app_id.to_owned(),
        instance_id: "0".to_owned(),
        deprecated_tags: BTreeMap::new(),
        tags,
        message: Some(envelope::Message::Log(Log {
            payload: text.as_bytes().to_vec().into(),
            r#type: log::Type::Err as i32,
        })),
    }
}

/// The text of a buffer-overflow notice.
pub fn lost_text(n: u64, app_id: &str, url: &str) -> String {
    format!(
        "{n} messages lost for application {app_id} in user provided syslog drain with url {url}"
    )
}

/// The text of a dial-failure notice.
pub fn connect_failed_text(url: &str) -> String {
    format!("Failed to connect to {url}")
}

/// Producer side: cheap to clone, never blocks.
#[derive(Debug, Clone)]
pub struct Notices {
    tx: Option<QueueTx<Envelope>>,
    dropped: Counter,
}

impl Notices {
    /// A sink that only counts (no ingress configured).
    pub fn disabled(dropped: Counter) -> Self {
        Self { tx: None, dropped }
    }

    /// Queues a notice for `app_id`.
    pub fn send(&self, app_id: &str, text: &str) {
        tracing::warn!(app_id, notice = text, "app-visible drain notice");
        let Some(tx) = &self.tx else {
            self.dropped.inc();
            return;
        };
        match tx.try_send(notice_envelope(app_id, text)) {
            TrySend::Sent | TrySend::SentDroppedOldest => {}
            _ => self.dropped.inc(),
        }
    }
}

/// Starts the sender task writing to `channel`'s v2 Ingress; returns the producer.
pub fn start(channel: Channel, sent: Counter, dropped: Counter, shutdown: &Shutdown) -> Notices {
    let (tx, rx) = bounded(QUEUE_CAPACITY, FullPolicy::DropNewest);
    let task_dropped = dropped.clone();
    let sd = shutdown.clone();
    shutdown.spawn(run(IngressClient::new(channel), rx, sent, task_dropped, sd));
    Notices {
        tx: Some(tx),
        dropped,
    }
}

async fn run(
    mut client: IngressClient<Channel>,
    mut rx: QueueRx<Envelope>,
    sent: Counter,
    dropped: Counter,
    shutdown: Shutdown,
) {
    let mut batch = Vec::new();
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => return,
            e = rx.recv() => e,
        };
        let Some(first) = first else { return };
        batch.clear();
        batch.push(first);
        rx.drain_into(&mut batch, 99);
        let n = batch.len() as u64;
        let req = EnvelopeBatch {
            batch: std::mem::take(&mut batch),
        };
        let mut ok = false;
        for attempt in 0..3u32 {
            // BatchSender: doppler does not implement the unary Send.
            let call = client.batch_sender(futures::stream::iter([req.clone()]));
            match tokio::time::timeout(Duration::from_secs(5), call).await {
                Ok(Ok(_)) => {
                    ok = true;
                    break;
                }
                Ok(Err(e)) => tracing::debug!(error = %e, attempt, "notice send failed"),
                Err(_) => tracing::debug!(attempt, "notice send timed out"),
            }
            tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
        }
        if ok {
            sent.add(n);
        } else {
            dropped.add(n);
            tracing::error!(
                count = n,
                "dropped app-visible drain notices: ingress unreachable"
            );
        }
    }
}
