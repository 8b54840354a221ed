//! The Event envelope sent to the local agent when a slow consumer is
//! disconnected (reference §12.6): source id `traffic_controller`, title
//! `Traffic Controller has disconnected slow consumer`.
//!
//! Queue: bounded channel of [`QUEUE`] events, drop newest when full; one task
//! sends them with `loggregator.v2.Ingress/Send` over mutual TLS (server name
//! `metron`). Every Event the agent does not get (queue full, send failed or
//! timed out) is counted in `doppler_proxy_agent_events_dropped`.

use std::sync::Arc;
use std::time::Duration;

use envelope_proto::loggregator_v2::ingress_client::IngressClient;
use envelope_proto::loggregator_v2::{Envelope, EnvelopeBatch, Event, envelope};
use plumbing::metrics::Counter;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Title of the Event.
pub(crate) const TITLE: &str = "Traffic Controller has disconnected slow consumer";
/// Source id of the Event.
pub(crate) const SOURCE_ID: &str = "traffic_controller";
const QUEUE: usize = 64;
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// Sender of slow-consumer Events.
#[derive(Clone, Debug)]
pub(crate) struct AgentEvents {
    tx: mpsc::Sender<Envelope>,
    dropped: Counter,
}

impl AgentEvents {
    /// Starts the sender task towards the agent at `addr`.
    pub(crate) fn start(
        addr: &str,
        tls: Option<Arc<rustls::ClientConfig>>,
        dropped: Counter,
        cancel: CancellationToken,
    ) -> Self {
        let (tx, mut rx) = mpsc::channel::<Envelope>(QUEUE);
        let channel = match plumbing::tls::grpc::channel(addr, tls.map(|c| (c, "metron"))) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(agent = %addr, error = %e, "cannot create agent channel; slow-consumer events disabled");
                drop(rx);
                return Self { tx, dropped };
            }
        };
        let addr = addr.to_owned();
        let lost = dropped.clone();
        tokio::spawn(async move {
            let mut client = IngressClient::new(channel);
            loop {
                let env = tokio::select! {
                    _ = cancel.cancelled() => return,
                    e = rx.recv() => match e { Some(e) => e, None => return },
                };
                let batch = EnvelopeBatch { batch: vec![env] };
                match tokio::time::timeout(SEND_TIMEOUT, client.send(batch)).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(status)) => {
                        lost.inc();
                        tracing::warn!(agent = %addr, %status, "failed to send event to agent")
                    }
                    Err(_) => {
                        lost.inc();
                        tracing::warn!(agent = %addr, "timed out sending event to agent")
                    }
                }
            }
        });
        Self { tx, dropped }
    }

    /// Queues the slow-consumer Event (dropped if the queue is full).
    pub(crate) fn slow_consumer(&self, remote: &str, forwarded_for: &str, path: &str) {
        if self
            .tx
            .try_send(slow_consumer_event(remote, forwarded_for, path))
            .is_err()
        {
            self.dropped.inc();
            tracing::debug!("agent event queue full; slow-consumer event dropped");
        }
    }
}

/// Builds the Event envelope.
pub(crate) fn slow_consumer_event(remote: &str, forwarded_for: &str, path: &str) -> Envelope {
    let body = format!(
        "Remote Address: {remote}\nX-Forwarded-For: {forwarded_for}\nPath: {path}\n\n\
         When Loggregator detects a slow connection, that connection is disconnected to prevent back pressure on the system. \
         This may be due to improperly scaled nozzles, or slow user connections to Loggregator"
    );
    let timestamp = envelope_proto::timestamp::now();
    Envelope {
        timestamp,
        source_id: SOURCE_ID.to_owned(),
        message: Some(envelope::Message::Event(Event {
            title: TITLE.to_owned(),
            body,
        })),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_body_matches_reference() {
        let e = slow_consumer_event("10.0.0.1:4000", "1.1.1.1", "/firehose/sub");
        assert_eq!(e.source_id, "traffic_controller");
        let Some(envelope::Message::Event(ev)) = e.message else {
            panic!("not an event")
        };
        assert_eq!(
            ev.title,
            "Traffic Controller has disconnected slow consumer"
        );
        assert_eq!(
            ev.body,
            "Remote Address: 10.0.0.1:4000\nX-Forwarded-For: 1.1.1.1\nPath: /firehose/sub\n\nWhen Loggregator detects a slow connection, that connection is disconnected to prevent back pressure on the system. This may be due to improperly scaled nozzles, or slow user connections to Loggregator"
        );
    }
}
