//! Property tests for the v2 fast path (it reads network bytes): it never
//! panics on arbitrary input, and on arbitrary valid envelopes it produces
//! exactly what the slow path (decode, tag, encode) produces.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use envelope_proto::loggregator_v2::{
    Counter, Envelope, Event, Gauge, GaugeValue, Log, Timer, Value, envelope::Message, value::Data,
};
use metron_agent::process::scan;
use metron_agent::process::v2::{Outcome, V2Processor};
use proptest::prelude::*;
use prost::Message as _;

fn defaults() -> BTreeMap<String, String> {
    [
        ("deployment", "cf"),
        ("job", "diego-cell"),
        ("ip", "10.0.0.1"),
        ("k", ""),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("deployment".to_owned()),
        Just("job".to_owned()),
        Just("k".to_owned()),
        Just("origin".to_owned()),
        "[a-z]{0,6}",
    ]
}

fn message() -> impl Strategy<Value = Option<Message>> {
    prop_oneof![
        Just(None),
        ("[ -~]{0,20}", 0..2i32).prop_map(|(p, t)| Some(Message::Log(Log {
            payload: p.into_bytes().into(),
            r#type: t
        }))),
        (
            "[a-z]{0,5}",
            any::<u64>(),
            prop_oneof![Just(0u64), any::<u64>()]
        )
            .prop_map(|(n, d, t)| Some(Message::Counter(Counter {
                name: n,
                delta: d,
                total: t
            }))),
        prop::collection::btree_map("[a-z]{1,4}", any::<f64>(), 0..3).prop_map(|m| Some(
            Message::Gauge(Gauge {
                metrics: m
                    .into_iter()
                    .map(|(k, v)| (
                        k,
                        GaugeValue {
                            unit: "u".into(),
                            value: v
                        }
                    ))
                    .collect()
            })
        )),
        (any::<i64>(), any::<i64>()).prop_map(|(a, b)| Some(Message::Timer(Timer {
            name: "http".into(),
            start: a,
            stop: b
        }))),
        ("[a-z]{0,4}", "[a-z]{0,4}")
            .prop_map(|(t, b)| Some(Message::Event(Event { title: t, body: b }))),
    ]
}

fn envelope() -> impl Strategy<Value = Envelope> {
    (
        any::<i64>(),
        prop_oneof![Just(String::new()), "[a-z0-9-]{1,12}"],
        "[0-9]{0,2}",
        prop::collection::btree_map(key(), "[ -~]{0,8}", 0..5),
        prop::collection::btree_map(
            key(),
            prop_oneof![Just(0u8), Just(1), Just(2), Just(3)],
            0..3,
        ),
        message(),
    )
        .prop_map(
            |(timestamp, source_id, instance_id, tags, dep, message)| Envelope {
                timestamp,
                source_id,
                instance_id,
                tags,
                deprecated_tags: dep
                    .into_iter()
                    .map(|(k, kind)| {
                        let data = match kind {
                            0 => None,
                            1 => Some(Data::Text("t".into())),
                            2 => Some(Data::Integer(-3)),
                            _ => Some(Data::Decimal(1.5e-3)),
                        };
                        (k, Value { data })
                    })
                    .collect(),
                message,
            },
        )
}

proptest! {
    #[test]
    fn scan_and_process_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = scan::scan(&bytes, &["deployment", "job"]);
        let p = V2Processor::new(defaults(), false);
        let _ = p.process(Bytes::from(bytes), &mut BytesMut::new());
    }

    #[test]
    fn fast_path_matches_slow_path(env in envelope()) {
        let fast = V2Processor::new(defaults(), false);
        let slow = V2Processor::new(defaults(), false);
        let Outcome::Forward { bytes, origin_mapped } =
            fast.process(Bytes::from(env.encode_to_vec()), &mut BytesMut::new())
        else {
            panic!("valid envelope not forwarded");
        };
        let mut want = env.clone();
        let mapped = metron_agent::process::v2::map_origin(&mut want);
        slow.tag_and_total(&mut want);
        prop_assert_eq!(origin_mapped, mapped);
        let got = Envelope::decode(bytes.as_ref()).unwrap();
        // NaN-safe comparison: compare encodings of both decoded messages.
        prop_assert_eq!(got.encode_to_vec(), want.encode_to_vec());
    }
}
