//! In-stream rate-control warnings for subscriptions that lose envelopes
//! (issue 3; the historical TruncatingBuffer notices of reference §14.3).
//!
//! When a subscription's ring overwrites envelopes, the subscriber receives,
//! ahead of its next envelopes:
//! - a LogMessage (ERR, source_type `LGR`, origin `DopplerServer`) with the
//!   text `Log message output is too high. N messages dropped (Total M messages
//!   dropped) from DopplerServer to <peer>.`, and
//! - a CounterEvent `TruncatingBuffer.DroppedMessages` with `delta` = N and
//!   `total` = M,
//!
//! following the subscription's filter: a v1 logs-only subscription gets the
//! log, a metrics-only one the counter, an unfiltered one both; v2 subscribers
//! get `to_v2` of the same envelopes (tags in the form they asked for) and only
//! what one of their selectors admits. The app id (v2 `source_id`) is the
//! subscription's app (v1 filter app id, v2 selector source ids), or `system`
//! for subscriptions not scoped to an app. At most one warning per
//! subscription per second; drops in between accumulate into the next one.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use envelope_proto::convert;
use envelope_proto::events::{self, envelope::EventType, log_message::MessageType};
use prost::Message;

use crate::router::key::V1Class;
use crate::router::table::{Selector, SelectorKind, TagForm};

/// Doppler's own v1 origin (reference §9.5).
pub const ORIGIN: &str = "DopplerServer";
/// Name of the dropped-messages counter.
pub const COUNTER_NAME: &str = "TruncatingBuffer.DroppedMessages";
/// App id used for subscriptions not scoped to one app.
pub const SYSTEM_APP: &str = "system";
/// Minimum time between two warnings of one subscription.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// Which filter the warnings follow.
#[derive(Debug, Clone)]
pub enum WarnTarget {
    /// v1 subscription.
    V1 {
        /// Filter app id (empty: firehose).
        app_id: String,
        /// Type filter.
        class: Option<V1Class>,
    },
    /// v2 subscription.
    V2 {
        /// The request's usable selectors.
        selectors: Vec<Selector>,
        /// Requested tag form.
        form: TagForm,
    },
}

/// Per-subscription warning state.
#[derive(Debug)]
pub struct Warnings {
    target: WarnTarget,
    destination: String,
    total: u64,
    pending: u64,
    last: Option<Instant>,
}

impl Warnings {
    /// New state; `destination` is the subscriber's peer address.
    pub fn new(target: WarnTarget, destination: String) -> Self {
        Self {
            target,
            destination,
            total: 0,
            pending: 0,
            last: None,
        }
    }

    /// Records `n` more lost envelopes.
    pub fn record(&mut self, n: u64) {
        self.pending += n;
        self.total += n;
    }

    /// When the pending warning may be sent (`None` if nothing is pending).
    pub fn due_at(&self) -> Option<Instant> {
        if self.pending == 0 {
            return None;
        }
        Some(match self.last {
            None => Instant::now(),
            Some(l) => l + INTERVAL,
        })
    }

    /// If a warning is due at `now`, returns (delta, total, encoded envelopes)
    /// and resets the pending count.
    pub fn take(&mut self, now: Instant) -> Option<(u64, u64, Vec<Bytes>)> {
        if self.pending == 0 || self.last.is_some_and(|l| now < l + INTERVAL) {
            return None;
        }
        let delta = std::mem::take(&mut self.pending);
        self.last = Some(now);
        Some((delta, self.total, self.build(delta, self.total)))
    }

    /// The encoded warning envelopes for `delta`/`total` under this target.
    pub fn build(&self, delta: u64, total: u64) -> Vec<Bytes> {
        let now_ns = envelope_proto::timestamp::now();
        let text = format!(
            "Log message output is too high. {delta} messages dropped (Total {total} messages dropped) from {ORIGIN} to {}.",
            self.destination
        );
        match &self.target {
            WarnTarget::V1 { app_id, class } => {
                let app = if app_id.is_empty() {
                    SYSTEM_APP
                } else {
                    app_id
                };
                let mut out = Vec::new();
                if *class != Some(V1Class::Metric) {
                    out.push(log_v1(app, &text, now_ns));
                }
                if *class != Some(V1Class::Log) {
                    out.push(counter_v1(app, delta, total, now_ns));
                }
                out.iter()
                    .filter_map(|e| envelope_proto::v1::encode(e).ok())
                    .map(Bytes::from)
                    .collect()
            }
            WarnTarget::V2 { selectors, form } => {
                let ids = selectors.iter().map(|s| s.source_id.as_str());
                let mut out = Vec::new();
                for app in envelope_proto::v2::warned_source_ids(ids, SYSTEM_APP) {
                    for v1 in [
                        log_v1(app, &text, now_ns),
                        counter_v1(app, delta, total, now_ns),
                    ] {
                        let mut v2 = convert::to_v2(&v1, true);
                        if !selectors.iter().any(|s| admits(s, &v2)) {
                            continue;
                        }
                        if *form == TagForm::Deprecated {
                            convert::converge_tags(&mut v2, false);
                        }
                        out.push(Bytes::from(v2.encode_to_vec()));
                    }
                }
                out
            }
        }
    }
}

fn log_v1(app: &str, text: &str, now_ns: i64) -> events::Envelope {
    events::Envelope {
        origin: Some(ORIGIN.to_owned()),
        event_type: Some(EventType::LogMessage as i32),
        timestamp: Some(now_ns),
        log_message: Some(events::LogMessage {
            message: Some(Bytes::copy_from_slice(text.as_bytes())),
            message_type: Some(MessageType::Err as i32),
            timestamp: Some(now_ns),
            app_id: Some(app.to_owned()),
            source_type: Some("LGR".to_owned()),
            source_instance: None,
        }),
        ..Default::default()
    }
}

fn counter_v1(app: &str, delta: u64, total: u64, now_ns: i64) -> events::Envelope {
    events::Envelope {
        origin: Some(ORIGIN.to_owned()),
        event_type: Some(EventType::CounterEvent as i32),
        timestamp: Some(now_ns),
        counter_event: Some(events::CounterEvent {
            name: Some(COUNTER_NAME.to_owned()),
            delta: Some(delta),
            total: Some(total),
        }),
        // Carries the app id into the v2 `source_id` (ToV2 moves the tag there).
        tags: BTreeMap::from([("source_id".to_owned(), app.to_owned())]),
        ..Default::default()
    }
}

/// Whether `sel` admits the (log or counter) warning envelope `env`.
fn admits(sel: &Selector, env: &envelope_proto::loggregator_v2::Envelope) -> bool {
    use envelope_proto::loggregator_v2::envelope::Message as M;
    if !sel.source_id.is_empty() && sel.source_id != env.source_id {
        return false;
    }
    match (&sel.kind, &env.message) {
        (SelectorKind::Log, Some(M::Log(_))) => true,
        (SelectorKind::Counter(name), Some(M::Counter(c))) => name.is_empty() || *name == c.name,
        _ => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use envelope_proto::loggregator_v2::envelope::Message as M;

    fn decode_v1(b: &Bytes) -> events::Envelope {
        envelope_proto::v1::decode(b).unwrap()
    }

    #[test]
    fn v1_filters_choose_log_counter_or_both() {
        let w = |class| {
            Warnings::new(
                WarnTarget::V1 {
                    app_id: "app-1".into(),
                    class,
                },
                "10.0.0.1:5000".into(),
            )
        };
        let both = w(None).build(3, 7);
        assert_eq!(both.len(), 2);
        let log = decode_v1(&both[0]);
        let lm = log.log_message.unwrap();
        assert_eq!(log.origin.as_deref(), Some("DopplerServer"));
        assert_eq!(lm.message_type, Some(MessageType::Err as i32));
        assert_eq!(lm.source_type.as_deref(), Some("LGR"));
        assert_eq!(lm.app_id.as_deref(), Some("app-1"));
        assert_eq!(
            lm.message.unwrap(),
            Bytes::from_static(b"Log message output is too high. 3 messages dropped (Total 7 messages dropped) from DopplerServer to 10.0.0.1:5000.")
        );
        let c = decode_v1(&both[1]).counter_event.unwrap();
        assert_eq!(c.name.as_deref(), Some(COUNTER_NAME));
        assert_eq!((c.delta, c.total), (Some(3), Some(7)));
        assert_eq!(w(Some(V1Class::Log)).build(1, 1).len(), 1);
        let m = w(Some(V1Class::Metric)).build(1, 1);
        assert_eq!(m.len(), 1);
        assert!(decode_v1(&m[0]).counter_event.is_some());
    }

    #[test]
    fn v2_follows_selectors() {
        let w = |selectors: Vec<Selector>| {
            Warnings::new(
                WarnTarget::V2 {
                    selectors,
                    form: TagForm::Preferred,
                },
                "peer".into(),
            )
        };
        let sel = |s: &str, kind| Selector {
            source_id: s.into(),
            kind,
        };
        let decode = |b: &Bytes| envelope_proto::v2::decode(b).unwrap();
        let out = w(vec![sel("app", SelectorKind::Log)]).build(1, 1);
        assert_eq!(out.len(), 1);
        let e = decode(&out[0]);
        assert_eq!(e.source_id, "app");
        assert!(matches!(e.message, Some(M::Log(_))));
        let out = w(vec![sel("", SelectorKind::Counter(COUNTER_NAME.into()))]).build(2, 5);
        assert_eq!(out.len(), 1);
        let e = decode(&out[0]);
        assert_eq!(e.source_id, "system");
        assert!(matches!(e.message, Some(M::Counter(ref c)) if c.delta == 2 && c.total == 5));
        assert!(
            w(vec![sel("", SelectorKind::Counter("other".into()))])
                .build(1, 1)
                .is_empty()
        );
        assert!(
            w(vec![sel("", SelectorKind::Gauge(None))])
                .build(1, 1)
                .is_empty()
        );
        let out = w(vec![
            sel("a", SelectorKind::Log),
            sel("a", SelectorKind::Counter(String::new())),
        ])
        .build(1, 1);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn rate_limited_to_one_per_second_with_totals() {
        let mut w = Warnings::new(
            WarnTarget::V1 {
                app_id: String::new(),
                class: Some(V1Class::Metric),
            },
            "p".into(),
        );
        let t0 = Instant::now();
        assert!(w.take(t0).is_none());
        w.record(5);
        let (d, t, _) = w.take(t0).unwrap();
        assert_eq!((d, t), (5, 5));
        w.record(3);
        assert!(w.take(t0 + Duration::from_millis(500)).is_none());
        w.record(2);
        let (d, t, _) = w.take(t0 + Duration::from_millis(1000)).unwrap();
        assert_eq!((d, t), (5, 10));
        assert!(w.due_at().is_none());
    }
}
