//! Shared by the view/batch/robustness tests: proptest strategies for v2
//! envelopes, an independent varint writer, and the "view agrees with a full
//! decode" check. Fixture loading is in `fixtures.rs` next to this file.
#![allow(dead_code)]

use std::collections::BTreeSet;

use bytes::Bytes;
use envelope_proto::loggregator_v2::{
    self as v2, Envelope, Event, Gauge, GaugeValue, Log, Timer, Value, envelope::Message,
    value::Data,
};
use envelope_proto::view::{EnvelopeView, Kind, crc64};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;

/// Short ASCII names most of the time, arbitrary Unicode sometimes.
pub(crate) fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z_./-]{0,10}",
        1 => "\\PC{0,8}",
    ]
}

fn value() -> impl Strategy<Value = Value> {
    let data = prop_oneof![
        text().prop_map(Data::Text),
        any::<i64>().prop_map(Data::Integer),
        // finite, so decoded messages compare equal
        any::<i32>().prop_map(|i| Data::Decimal(f64::from(i) / 8.0)),
    ];
    proptest::option::of(data).prop_map(|data| Value { data })
}

pub(crate) fn gauge(max_metrics: usize) -> impl Strategy<Value = Gauge> {
    btree_map(
        text(),
        (text(), any::<i32>()).prop_map(|(unit, v)| GaugeValue {
            unit,
            value: f64::from(v) / 4.0,
        }),
        0..max_metrics,
    )
    .prop_map(|metrics| Gauge { metrics })
}

pub(crate) fn message() -> impl Strategy<Value = Option<Message>> {
    proptest::option::of(prop_oneof![
        (vec(any::<u8>(), 0..64), any::<i32>()).prop_map(|(p, t)| Message::Log(Log {
            payload: Bytes::from(p),
            r#type: t,
        })),
        (text(), any::<u64>(), any::<u64>()).prop_map(|(name, delta, total)| {
            Message::Counter(v2::Counter { name, delta, total })
        }),
        gauge(6).prop_map(Message::Gauge),
        (text(), any::<i64>(), any::<i64>())
            .prop_map(|(name, start, stop)| Message::Timer(Timer { name, start, stop })),
        (text(), text()).prop_map(|(title, body)| Message::Event(Event { title, body })),
    ])
}

pub(crate) fn envelope() -> impl Strategy<Value = Envelope> {
    (
        any::<i64>(),
        text(),
        text(),
        btree_map(text(), value(), 0..3),
        btree_map(text(), text(), 0..5),
        message(),
    )
        .prop_map(
            |(timestamp, source_id, instance_id, deprecated_tags, tags, message)| Envelope {
                timestamp,
                source_id,
                instance_id,
                deprecated_tags,
                tags,
                message,
            },
        )
}

/// Bytes of one unknown field (numbers 11..=40 are unused by `Envelope`,
/// its nested messages and `EnvelopeBatch`... except 1..=10 which are
/// avoided), with any valid wire type including a group.
pub(crate) fn unknown_field() -> impl Strategy<Value = Vec<u8>> {
    (11u64..=40, 0u8..5, any::<u64>(), vec(any::<u8>(), 0..6)).prop_map(|(f, kind, n, b)| {
        let mut out = Vec::new();
        match kind {
            0 => {
                put_varint(f << 3, &mut out);
                put_varint(n, &mut out);
            }
            1 => {
                put_varint(f << 3 | 1, &mut out);
                out.extend_from_slice(&n.to_le_bytes());
            }
            2 => {
                put_varint(f << 3 | 2, &mut out);
                put_varint(b.len() as u64, &mut out);
                out.extend_from_slice(&b);
            }
            3 => {
                // group { field 1 varint n } with a nested empty group
                put_varint(f << 3 | 3, &mut out);
                put_varint(1 << 3, &mut out);
                put_varint(n, &mut out);
                put_varint(2 << 3 | 3, &mut out);
                put_varint(2 << 3 | 4, &mut out);
                put_varint(f << 3 | 4, &mut out);
            }
            _ => {
                put_varint(f << 3 | 5, &mut out);
                out.extend_from_slice(&(n as u32).to_le_bytes());
            }
        }
        out
    })
}

pub(crate) fn put_varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Asserts that `view` shows exactly what the decoded `env` holds.
pub(crate) fn assert_view_matches(view: &EnvelopeView<'_>, env: &Envelope) {
    assert_eq!(view.timestamp(), env.timestamp, "timestamp");
    assert_eq!(view.source_id(), env.source_id, "source_id");
    assert_eq!(view.instance_id(), env.instance_id, "instance_id");
    let kind = match &env.message {
        None => Kind::None,
        Some(Message::Log(_)) => Kind::Log,
        Some(Message::Counter(_)) => Kind::Counter,
        Some(Message::Gauge(_)) => Kind::Gauge,
        Some(Message::Timer(_)) => Kind::Timer,
        Some(Message::Event(_)) => Kind::Event,
    };
    assert_eq!(view.kind(), kind, "kind");
    let (log_type, payload) = match &env.message {
        Some(Message::Log(l)) => (l.r#type, &l.payload[..]),
        _ => (0, &b""[..]),
    };
    assert_eq!(view.log_type(), log_type, "log type");
    assert_eq!(view.log_payload(), payload, "log payload");
    let (name, delta, total) = match &env.message {
        Some(Message::Counter(c)) => (c.name.as_str(), c.delta, c.total),
        _ => ("", 0, 0),
    };
    assert_eq!(view.counter_name(), name, "counter name");
    assert_eq!(view.counter_delta(), delta, "counter delta");
    assert_eq!(view.counter_total(), total, "counter total");
    let (tname, span) = match &env.message {
        Some(Message::Timer(t)) => (t.name.as_str(), (t.start, t.stop)),
        _ => ("", (0, 0)),
    };
    assert_eq!(view.timer_name(), tname, "timer name");
    assert_eq!(view.timer_span(), span, "timer span");
    let event = match &env.message {
        Some(Message::Event(e)) => (e.title.as_str(), e.body.as_str()),
        _ => ("", ""),
    };
    assert_eq!(view.event(), event, "event");
    let names: BTreeSet<&str> = match &env.message {
        Some(Message::Gauge(g)) => g.metrics.keys().map(String::as_str).collect(),
        _ => BTreeSet::new(),
    };
    assert_eq!(
        view.gauge_names().collect::<BTreeSet<_>>(),
        names,
        "gauge names"
    );
    let hash = names
        .iter()
        .fold(0u64, |s, n| s.wrapping_add(crc64(n.as_bytes())));
    assert_eq!(view.gauge_names_hash(), hash, "gauge names hash");
    for (k, v) in &env.tags {
        assert_eq!(view.tag(k), Some(v.as_str()), "tag {k:?}");
    }
    assert_eq!(view.has_tags(), !env.tags.is_empty(), "has tags");
    assert_eq!(
        view.has_deprecated_tags(),
        !env.deprecated_tags.is_empty(),
        "has deprecated tags"
    );
    let absent = "\u{0}absent";
    assert_eq!(view.tag(absent), env.tags.get(absent).map(String::as_str));
}
