//! The rate-control warning injected ahead of the next envelopes after a
//! consumer's ring overflowed (issue 5; the historical doppler
//! `TruncatingBuffer` notice of reference §14.3).
//!
//! Two envelopes, each sent only where the connection's filter admits it:
//! - a LogMessage, type ERR, source type `LGR`, text `Log message output is
//!   too high. <delta> messages dropped (Total <total> messages dropped) from
//!   loggregator.trafficcontroller to <destination>.` (app id `system` on the firehose, the
//!   app's GUID on an app stream);
//! - a CounterEvent `TruncatingBuffer.DroppedMessages` with `delta` and
//!   `total` (app id `system`, so never on app streams).
//!
//! Both carry origin [`WARNING_ORIGIN`], `loggregator.trafficcontroller`
//! (the TC's own origin): doppler injects the same notices with origin
//! `DopplerServer` for losses in its own buffers, so the origin (and the
//! `from <origin>` in the text) tells which hop dropped. Nozzles that watch
//! the counter by name see both.

use bytes::Bytes;
use envelope_proto::events::{
    CounterEvent, Envelope, LogMessage, envelope::EventType, log_message::MessageType,
};
use prost::Message as _;

/// Origin stamped on both warning envelopes (the traffic controller's origin).
pub(crate) const WARNING_ORIGIN: &str = "loggregator.trafficcontroller";
/// Name of the warning counter.
pub(crate) const COUNTER_NAME: &str = "TruncatingBuffer.DroppedMessages";
/// Source type of the warning log line.
pub(crate) const SOURCE_TYPE: &str = "LGR";

/// Which envelope types a connection admits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Admits {
    /// Unfiltered firehose: both notices, log with app id `system`.
    Everything,
    /// `filter-type=logs`: the log only.
    Logs,
    /// `filter-type=metrics`: the counter only.
    Metrics,
    /// App stream: the log only, with the app's id.
    App(String),
}

/// Per-connection warning state (the running total).
#[derive(Debug)]
pub(crate) struct Warning {
    admits: Admits,
    destination: String,
    total: u64,
}

impl Warning {
    /// Warnings for a connection from `destination` (client address).
    pub(crate) fn new(admits: Admits, destination: String) -> Self {
        Self {
            admits,
            destination,
            total: 0,
        }
    }

    /// Total envelopes this connection lost so far.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// Takes back `delta` recorded by [`Warning::notices`] whose notices were
    /// never sent (so the next notice reports them again, once).
    pub(crate) fn retract(&mut self, delta: u64) {
        self.total = self.total.saturating_sub(delta);
    }

    /// Records `delta` lost envelopes and returns the encoded notices to send.
    pub(crate) fn notices(&mut self, delta: u64) -> Vec<Bytes> {
        self.total = self.total.saturating_add(delta);
        let now = envelope_proto::timestamp::now();
        let mut out = Vec::with_capacity(2);
        let log_app = match &self.admits {
            Admits::Everything | Admits::Logs => Some("system"),
            Admits::App(id) => Some(id.as_str()),
            Admits::Metrics => None,
        };
        if let Some(app_id) = log_app {
            let text = text(delta, self.total, &self.destination);
            out.push(Bytes::from(log_envelope(app_id, text, now).encode_to_vec()));
        }
        if matches!(self.admits, Admits::Everything | Admits::Metrics) {
            let env = counter_envelope(delta, self.total, now);
            out.push(Bytes::from(env.encode_to_vec()));
        }
        out
    }
}

/// The warning text for `delta` (running `total`) lost on the way to `destination`.
pub(crate) fn text(delta: u64, total: u64, destination: &str) -> String {
    format!(
        "Log message output is too high. {delta} messages dropped (Total {total} messages dropped) from {WARNING_ORIGIN} to {destination}."
    )
}

/// The warning log (v1) for `app_id`.
pub(crate) fn log_envelope(app_id: &str, text: String, now: i64) -> Envelope {
    Envelope {
        origin: Some(WARNING_ORIGIN.to_owned()),
        event_type: Some(EventType::LogMessage as i32),
        timestamp: Some(now),
        log_message: Some(LogMessage {
            message: Some(Bytes::from(text)),
            message_type: Some(MessageType::Err as i32),
            timestamp: Some(now),
            app_id: Some(app_id.to_owned()),
            source_type: Some(SOURCE_TYPE.to_owned()),
            source_instance: None,
        }),
        ..Default::default()
    }
}

/// The warning counter (v1), `delta` and running `total`.
pub(crate) fn counter_envelope(delta: u64, total: u64, now: i64) -> Envelope {
    Envelope {
        origin: Some(WARNING_ORIGIN.to_owned()),
        event_type: Some(EventType::CounterEvent as i32),
        timestamp: Some(now),
        counter_event: Some(CounterEvent {
            name: Some(COUNTER_NAME.to_owned()),
            delta: Some(delta),
            total: Some(total),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(b: &Bytes) -> Envelope {
        Envelope::decode(b.as_ref()).expect("valid envelope")
    }

    #[test]
    fn everything_gets_log_then_counter_with_running_total() {
        let mut w = Warning::new(Admits::Everything, "10.0.0.1:5000".into());
        let n = w.notices(7);
        assert_eq!(n.len(), 2);
        let log = decode(&n[0]);
        assert_eq!(log.origin.as_deref(), Some("loggregator.trafficcontroller"));
        assert_eq!(log.event_type, Some(EventType::LogMessage as i32));
        let lm = log.log_message.expect("log");
        assert_eq!(lm.message_type, Some(MessageType::Err as i32));
        assert_eq!(lm.source_type.as_deref(), Some("LGR"));
        assert_eq!(lm.app_id.as_deref(), Some("system"));
        assert_eq!(
            lm.message.as_deref(),
            Some(&b"Log message output is too high. 7 messages dropped (Total 7 messages dropped) from loggregator.trafficcontroller to 10.0.0.1:5000."[..])
        );
        let c = decode(&n[1]).counter_event.expect("counter");
        assert_eq!(c.name.as_deref(), Some("TruncatingBuffer.DroppedMessages"));
        assert_eq!((c.delta, c.total), (Some(7), Some(7)));
        let n = w.notices(3);
        let c = decode(&n[1]).counter_event.expect("counter");
        assert_eq!((c.delta, c.total), (Some(3), Some(10)));
        assert_eq!(w.total(), 10);
    }

    #[test]
    fn filters_decide_which_notices() {
        let mut m = Warning::new(Admits::Metrics, "a".into());
        let n = m.notices(1);
        assert_eq!(n.len(), 1);
        assert!(decode(&n[0]).counter_event.is_some());
        let mut l = Warning::new(Admits::Logs, "a".into());
        let n = l.notices(1);
        assert_eq!(n.len(), 1);
        assert!(decode(&n[0]).log_message.is_some());
        let mut a = Warning::new(Admits::App("guid".into()), "a".into());
        let n = a.notices(1);
        assert_eq!(n.len(), 1);
        let lm = decode(&n[0]).log_message.expect("log");
        assert_eq!(lm.app_id.as_deref(), Some("guid"));
    }
}
