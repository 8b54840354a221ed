//! Property tests over arbitrary messages for the decoders, the encoder and
//! the conversions (the fixture tests pin exact values; these pin
//! invariants for inputs nobody wrote down).

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;
use prost::Message as _;

use crate::events;
use crate::loggregator_v2::{self as lv2, envelope::Message, value::Data};
use crate::{convert, json, v1, v2};

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z_]{1,8}",
        any::<String>().prop_map(|s| s.chars().take(12).collect()),
        Just("f47ac10b-58cc-4372-a567-0e02b2c3d479".to_owned()),
        Just("Error".to_owned()),
    ]
}

fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(0.0),
        Just(-0.0),
        Just(f64::NAN),
        Just(f64::INFINITY),
        -1e6..1e6f64,
    ]
}

/// prost skips a proto3 double equal to 0.0, which drops `-0.0` (Go keeps it:
/// it compares bits) in `GaugeValue.value` (a oneof member such as
/// `Value.decimal` is always written). The decoder keeps `-0.0`; round trips
/// through prost's encoder therefore compare with gauge `-0.0` folded to `0.0`.
fn fold_neg_zero(env: &lv2::Envelope) -> lv2::Envelope {
    let fold = |v: f64| if v == 0.0 { 0.0 } else { v };
    let mut out = env.clone();
    if let Some(Message::Gauge(g)) = &mut out.message {
        for v in g.metrics.values_mut() {
            v.value = fold(v.value);
        }
    }
    out
}

fn tag_key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_]{1,6}",
        prop::sample::select(vec![
            "origin",
            "deployment",
            "job",
            "index",
            "ip",
            "__v1_type",
            "source_id",
            "instance_id",
            "source_type",
            "request_id",
            "method",
            "peer_type",
            "forwarded",
            "code",
            "source",
        ])
        .prop_map(str::to_owned),
    ]
}

fn v2_value() -> impl Strategy<Value = lv2::Value> {
    prop_oneof![
        Just(None),
        text().prop_map(|t| Some(Data::Text(t))),
        any::<i64>().prop_map(|i| Some(Data::Integer(i))),
        float().prop_map(|d| Some(Data::Decimal(d))),
    ]
    .prop_map(|data| lv2::Value { data })
}

fn gauge_metrics() -> impl Strategy<Value = BTreeMap<String, lv2::GaugeValue>> {
    let name = prop_oneof![
        prop::sample::select(vec![
            "cpu",
            "memory",
            "disk",
            "memory_quota",
            "disk_quota",
            "instance_index",
        ])
        .prop_map(str::to_owned),
        "[a-z]{1,5}",
    ];
    prop::collection::btree_map(
        name,
        (text(), float()).prop_map(|(unit, value)| lv2::GaugeValue { unit, value }),
        0..8,
    )
}

fn v2_message() -> impl Strategy<Value = Option<Message>> {
    prop_oneof![
        Just(None),
        (prop::collection::vec(any::<u8>(), 0..16), -2..4i32).prop_map(|(p, t)| Some(
            Message::Log(lv2::Log {
                payload: Bytes::from(p),
                r#type: t,
            })
        )),
        (text(), any::<u64>(), any::<u64>()).prop_map(|(name, delta, total)| Some(
            Message::Counter(lv2::Counter { name, delta, total })
        )),
        gauge_metrics().prop_map(|metrics| Some(Message::Gauge(lv2::Gauge { metrics }))),
        (text(), any::<i64>(), any::<i64>())
            .prop_map(|(name, start, stop)| Some(Message::Timer(lv2::Timer { name, start, stop }))),
        (text(), text()).prop_map(|(title, body)| Some(Message::Event(lv2::Event { title, body }))),
    ]
}

fn v2_envelope() -> BoxedStrategy<lv2::Envelope> {
    (
        any::<i64>(),
        text(),
        prop_oneof![text(), Just("3".to_owned()), Just("-1".to_owned())],
        prop::collection::btree_map(tag_key(), v2_value(), 0..5),
        prop::collection::btree_map(tag_key(), text(), 0..6),
        v2_message(),
    )
        .prop_map(
            |(timestamp, source_id, instance_id, deprecated_tags, tags, message)| lv2::Envelope {
                timestamp,
                source_id,
                instance_id,
                deprecated_tags,
                tags,
                message,
            },
        )
        .boxed()
}

fn opt<T: std::fmt::Debug + Clone + 'static>(
    s: impl Strategy<Value = T> + 'static,
) -> impl Strategy<Value = Option<T>> {
    prop::option::weighted(0.85, s)
}

fn v1_uuid() -> impl Strategy<Value = events::Uuid> {
    (opt(any::<u64>()), opt(any::<u64>())).prop_map(|(low, high)| events::Uuid { low, high })
}

fn v1_envelope() -> BoxedStrategy<events::Envelope> {
    let log = (
        opt(prop::collection::vec(any::<u8>(), 0..8).prop_map(Bytes::from)),
        opt(0..4i32),
        opt(any::<i64>()),
        opt(text()),
        opt(text()),
        opt(text()),
    )
        .prop_map(
            |(message, message_type, timestamp, app_id, source_type, source_instance)| {
                events::LogMessage {
                    message,
                    message_type,
                    timestamp,
                    app_id,
                    source_type,
                    source_instance,
                }
            },
        )
        .boxed();
    let http = (
        (
            opt(any::<i64>()),
            opt(any::<i64>()),
            opt(v1_uuid()),
            opt(0..3i32),
            opt(0..50i32),
        ),
        (
            opt(text()),
            opt(any::<i32>()),
            opt(any::<i64>()),
            opt(v1_uuid()),
        ),
        (
            opt(any::<i32>()),
            opt(text()),
            prop::collection::vec(text(), 0..3),
        ),
    )
        .prop_map(
            |((start, stop, req, peer, method), (uri, status, len, app), (idx, iid, fwd))| {
                events::HttpStartStop {
                    start_timestamp: start,
                    stop_timestamp: stop,
                    request_id: req,
                    peer_type: peer,
                    method,
                    uri: uri.clone(),
                    remote_address: uri.clone(),
                    user_agent: uri,
                    status_code: status,
                    content_length: len,
                    application_id: app,
                    instance_index: idx,
                    instance_id: iid,
                    forwarded: fwd,
                }
            },
        )
        .boxed();
    let metric = (opt(text()), opt(float()), opt(text()))
        .prop_map(|(name, value, unit)| events::ValueMetric { name, value, unit })
        .boxed();
    let counter = (opt(text()), opt(any::<u64>()), opt(any::<u64>()))
        .prop_map(|(name, delta, total)| events::CounterEvent { name, delta, total })
        .boxed();
    let error = (opt(text()), opt(any::<i32>()), opt(text()))
        .prop_map(|(source, code, message)| events::Error {
            source,
            code,
            message,
        })
        .boxed();
    let container = (
        opt(text()),
        opt(any::<i32>()),
        opt(float()),
        opt(any::<u64>()),
        opt(any::<u64>()),
        opt(any::<u64>()),
        opt(any::<u64>()),
    )
        .prop_map(|(a, i, c, m, d, mq, dq)| events::ContainerMetric {
            application_id: a,
            instance_index: i,
            cpu_percentage: c,
            memory_bytes: m,
            disk_bytes: d,
            memory_bytes_quota: mq,
            disk_bytes_quota: dq,
        })
        .boxed();
    (
        (
            opt(text()),
            opt(2..11i32),
            opt(any::<i64>()),
            opt(text()),
            opt(text()),
        ),
        prop::collection::btree_map(tag_key(), text(), 0..5),
        (
            prop::option::weighted(0.3, http),
            prop::option::weighted(0.3, log),
            prop::option::weighted(0.3, metric),
            prop::option::weighted(0.3, counter),
            prop::option::weighted(0.3, error),
            prop::option::weighted(0.3, container),
        ),
    )
        .prop_map(
            |((origin, event_type, timestamp, deployment, job), tags, events)| {
                let (http, log, metric, counter, error, container) = events;
                events::Envelope {
                    origin,
                    event_type,
                    timestamp,
                    deployment: deployment.clone(),
                    job,
                    index: deployment.clone(),
                    ip: deployment,
                    tags,
                    http_start_stop: http,
                    log_message: log,
                    value_metric: metric,
                    counter_event: counter,
                    error,
                    container_metric: container,
                }
            },
        )
        .boxed()
}

fn same<T: std::fmt::Debug>(a: &T, b: &T) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn v2_decode_inverts_encode(env in v2_envelope()) {
        let bytes = env.encode_to_vec();
        let env = fold_neg_zero(&env);
        let decoded = v2::decode(&bytes).expect("valid encoding decodes");
        prop_assert!(same(&decoded, &env), "{decoded:?} != {env:?}");
        let zero_copy = v2::decode_bytes(&Bytes::from(bytes)).expect("decodes");
        prop_assert!(same(&zero_copy, &env));
    }

    #[test]
    fn v1_encode_refuses_exactly_what_check_required_refuses(env in v1_envelope()) {
        match v1::check_required(&env) {
            Ok(()) => {
                let bytes = v1::encode(&env).expect("complete envelope encodes");
                let decoded = v1::decode(&bytes).expect("decodes");
                prop_assert!(same(&decoded, &env), "{decoded:?} != {env:?}");
            }
            Err(missing) => {
                prop_assert_eq!(v1::encode(&env), Err(v1::EncodeError::Missing(missing)));
                // Its partial encoding is refused on decode with the same field.
                let partial = env.encode_to_vec();
                prop_assert_eq!(v1::decode(&partial), Err(v1::DecodeError::Missing(missing)));
            }
        }
    }

    #[test]
    fn to_v2_output_is_valid_v2(env in v1_envelope(), preferred in any::<bool>()) {
        let out = convert::to_v2(&env, preferred);
        // Always-set tags land in the chosen map, never in the other one.
        let (tags_len, deprecated_len) = (out.tags.len(), out.deprecated_tags.len());
        let other_empty = if preferred { deprecated_len == 0 } else { tags_len == 0 };
        prop_assert!(other_empty);
        prop_assert!(!out.tags.contains_key("source_id"));
        prop_assert!(!out.deprecated_tags.contains_key("source_id"));
        let again = v2::decode(&out.encode_to_vec()).expect("strings are UTF-8");
        prop_assert!(same(&again, &fold_neg_zero(&out)));
        let _ = json::envelope_to_json(&out);
    }

    #[test]
    fn to_v1_outputs_encode_unless_go_would_refuse(env in v2_envelope()) {
        for out in convert::to_v1(&env) {
            for key in ["__v1_type", "origin", "deployment", "job", "index", "ip"] {
                prop_assert!(!out.tags.contains_key(key), "tag {key} left in {out:?}");
            }
            prop_assert!(out.origin.is_some());
            match v1::encode(&out) {
                Ok(bytes) => prop_assert!(same(&v1::decode(&bytes).expect("decodes"), &out)),
                // Only the two documented refusals (reference §7.4).
                Err(v1::EncodeError::Missing(v1::MissingField(field))) => prop_assert!(
                    field == "events.HttpStartStop.requestId"
                        || field == "events.LogMessage.message",
                    "unexpected refusal {field}"
                ),
            }
        }
    }

    #[test]
    fn converge_tags_empties_the_other_map(env in v2_envelope(), preferred in any::<bool>()) {
        let mut out = env.clone();
        convert::converge_tags(&mut out, preferred);
        if preferred {
            prop_assert!(out.deprecated_tags.is_empty());
            for k in env.tags.keys() {
                prop_assert!(out.tags.contains_key(k));
            }
        } else {
            prop_assert!(out.tags.is_empty());
            for k in env.tags.keys().chain(env.deprecated_tags.keys()) {
                prop_assert!(out.deprecated_tags.contains_key(k));
            }
        }
    }

    #[test]
    fn json_is_valid_json(env in v2_envelope()) {
        let text = json::envelope_to_json(&env);
        let parsed: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        prop_assert_eq!(parsed["source_id"].as_str(), Some(env.source_id.as_str()));
        let ts = env.timestamp.to_string();
        prop_assert_eq!(parsed["timestamp"].as_str(), Some(ts.as_str()));
        for (k, v) in &env.tags {
            prop_assert_eq!(parsed["tags"][k].as_str(), Some(v.as_str()));
        }
    }
}
