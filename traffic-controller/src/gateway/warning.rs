//! The in-stream sign of loss on `/v2/read` (issue 12 item 9): after a
//! stream's ring overflowed, the writer sends, ahead of its next data (or
//! within [`WARNING_INTERVAL`] when no data follows), one ordinary data
//! event whose batch holds the v2 form of the rate-control warning the
//! WebSocket endpoints inject (reference §14.3, origin
//! `loggregator.trafficcontroller`):
//!
//! - the LGR log `Log message output is too high. N messages dropped (Total M
//!   messages dropped) from loggregator.trafficcontroller to <client>.`, for
//!   requests with a log selector;
//! - the counter `TruncatingBuffer.DroppedMessages`, `delta` N, `total` M, for
//!   requests with a counter selector whose name is empty or that name.
//!
//! `source_id` is each distinct `source_id` of the selectors, or `system`.
//! A request whose selectors admit neither (gauge, timer or event only) gets
//! no warning; its losses are still counted.
//!
//! Why a data event and not a named SSE event (`event: dropped`): the clients
//! in use cannot take one. The PyPI `cloudfoundry-client` only consumes
//! events that start with `data:` (or are heartbeats/closings); any other
//! event stays at the head of its buffer, so every later event reaches the
//! application as raw chunks. go-loggregator ignores the `event:` line and
//! decodes the `data:` as an `EnvelopeBatch`, logging an error for anything
//! else. A batch of warning envelopes is what doppler already sends its v2
//! subscribers, and every client decodes it; nozzles match the counter by
//! name.

use std::collections::BTreeMap;
use std::time::Duration;

use envelope_proto::convert;
use envelope_proto::loggregator_v2::{Envelope, Selector, selector::Message as Sel};

use crate::websocket::warning::{COUNTER_NAME, counter_envelope, log_envelope, text};

/// At most one warning per stream per this interval (as the WebSocket endpoints).
pub(crate) const WARNING_INTERVAL: Duration = Duration::from_secs(1);

/// Per-stream warning state.
#[derive(Debug)]
pub(crate) struct SseWarning {
    /// `(source_id, log admitted, counter admitted)` per warned app.
    targets: Vec<(String, bool, bool)>,
    destination: String,
    total: u64,
}

impl SseWarning {
    /// Warnings for a stream with `selectors`, read by `destination`.
    pub(crate) fn new(selectors: &[Selector], destination: String) -> Self {
        let ids = selectors.iter().map(|s| s.source_id.as_str());
        let apps = envelope_proto::v2::warned_source_ids(ids, "system");
        let admits = |app: &str, want_log: bool| {
            selectors.iter().any(|s| {
                (s.source_id.is_empty() || s.source_id == app)
                    && match &s.message {
                        Some(Sel::Log(_)) => want_log,
                        Some(Sel::Counter(c)) => {
                            !want_log && (c.name.is_empty() || c.name == COUNTER_NAME)
                        }
                        _ => false,
                    }
            })
        };
        let targets = apps
            .into_iter()
            .map(|app| (app.to_owned(), admits(app, true), admits(app, false)))
            .filter(|(_, log, counter)| *log || *counter)
            .collect();
        Self {
            targets,
            destination,
            total: 0,
        }
    }

    /// Total envelopes this stream lost so far.
    #[cfg(test)]
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// Records `delta` lost envelopes; returns the warning envelopes (none
    /// when the selectors admit neither notice).
    pub(crate) fn envelopes(&mut self, delta: u64) -> Vec<Envelope> {
        self.total = self.total.saturating_add(delta);
        let now = envelope_proto::timestamp::now();
        let mut out = Vec::new();
        for (app, log, counter) in &self.targets {
            if *log {
                let t = text(delta, self.total, &self.destination);
                out.push(convert::to_v2(&log_envelope(app, t, now), true));
            }
            if *counter {
                let mut v1 = counter_envelope(delta, self.total, now);
                // ToV2 takes the `source_id` tag as the envelope's source id.
                v1.tags = BTreeMap::from([("source_id".to_owned(), app.clone())]);
                out.push(convert::to_v2(&v1, true));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envelope_proto::loggregator_v2::envelope::Message as M;
    use envelope_proto::loggregator_v2::{CounterSelector, GaugeSelector, LogSelector};

    fn sel(source_id: &str, message: Sel) -> Selector {
        Selector {
            source_id: source_id.into(),
            message: Some(message),
        }
    }

    #[test]
    fn selectors_choose_notices_and_source_ids() {
        let mut w = SseWarning::new(
            &[
                sel("", Sel::Log(LogSelector {})),
                sel(
                    "",
                    Sel::Counter(CounterSelector {
                        name: String::new(),
                    }),
                ),
            ],
            "10.0.0.1:5".into(),
        );
        let out = w.envelopes(7);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].source_id, "system");
        let Some(M::Log(l)) = &out[0].message else {
            panic!("log first")
        };
        assert_eq!(
            &l.payload[..],
            b"Log message output is too high. 7 messages dropped (Total 7 messages dropped) from loggregator.trafficcontroller to 10.0.0.1:5."
        );
        assert_eq!(l.r#type, 1, "ERR");
        assert_eq!(
            out[0].tags.get("source_type").map(String::as_str),
            Some("LGR")
        );
        assert_eq!(
            out[0].tags.get("origin").map(String::as_str),
            Some("loggregator.trafficcontroller")
        );
        let Some(M::Counter(c)) = &out[1].message else {
            panic!("counter second")
        };
        assert_eq!(out[1].source_id, "system");
        assert_eq!((c.name.as_str(), c.delta, c.total), (COUNTER_NAME, 7, 7));
        let out = w.envelopes(3);
        let Some(M::Counter(c)) = &out[1].message else {
            panic!("counter")
        };
        assert_eq!((c.delta, c.total), (3, 10));
        assert_eq!(w.total(), 10);

        // An app's log stream: the log only, with the app's id.
        let mut w = SseWarning::new(&[sel("app-1", Sel::Log(LogSelector {}))], "a".into());
        let out = w.envelopes(1);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].source_id, "app-1");
        // A counter selector for another name, or gauges only: nothing.
        let other = CounterSelector {
            name: "other".into(),
        };
        assert!(
            SseWarning::new(&[sel("", Sel::Counter(other))], "a".into())
                .envelopes(1)
                .is_empty()
        );
        let gauge = GaugeSelector { names: Vec::new() };
        assert!(
            SseWarning::new(&[sel("", Sel::Gauge(gauge))], "a".into())
                .envelopes(1)
                .is_empty()
        );
    }
}
