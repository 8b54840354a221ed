//! Property tests: the wire-level v2 → v1 fast path (`convert::log_to_v1`)
//! produces exactly what the general conversion plus marshalling produces
//! (compared decoded), declines what it does not handle, and never touches
//! its output buffer when it declines.

#[path = "common/envelopes.rs"]
mod support;

use bytes::Bytes;
use envelope_proto::loggregator_v2::{Envelope, Log, envelope::Message};
use envelope_proto::view::EnvelopeView;
use envelope_proto::{convert, v1};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use prost::Message as _;
use support::envelope;

/// Tag keys the conversion treats specially, mixed with ordinary ones.
fn tag_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => support::text(),
        1 => prop::sample::select(vec![
            "__v1_type", "origin", "deployment", "job", "index", "ip", "source_type",
            "source_id", "instance_id",
        ])
        .prop_map(str::to_owned),
    ]
}

fn tag_value() -> impl Strategy<Value = String> {
    prop_oneof![4 => support::text(), 1 => Just("Error".to_owned())]
}

/// Mostly plain logs, with special tags and sometimes deprecated tags.
fn log_envelope() -> impl Strategy<Value = Envelope> {
    (
        envelope(),
        vec(any::<u8>(), 0..48),
        prop_oneof![Just(0), Just(1), any::<i32>()],
        // Up to 24: beyond the fast path's 16 remembered tags too.
        btree_map(tag_key(), tag_value(), 0..24),
        any::<bool>(),
    )
        .prop_map(|(mut env, payload, ty, tags, keep_deprecated)| {
            env.message = Some(Message::Log(Log {
                payload: Bytes::from(payload),
                r#type: ty,
            }));
            env.tags = tags;
            if !keep_deprecated {
                env.deprecated_tags.clear();
            }
            env
        })
}

fn check(bytes: &[u8], env: &Envelope) -> Result<bool, TestCaseError> {
    let view = EnvelopeView::parse(bytes).expect("prost output parses");
    let mut fast = vec![0xAA];
    let accepted = convert::log_to_v1(&view, &mut fast);
    if !accepted {
        prop_assert_eq!(fast, vec![0xAA], "declined but wrote");
        return Ok(false);
    }
    let slow = convert::to_v1(env);
    prop_assert_eq!(slow.len(), 1);
    let encoded = v1::encode(&slow[0]).expect("the general path encodes what the fast path takes");
    let want = v1::decode(&encoded).expect("decodes");
    let got = v1::decode(&fast[1..]).expect("fast output decodes");
    prop_assert_eq!(got, want);
    Ok(true)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn fast_path_equals_general_conversion(env in log_envelope()) {
        let bytes = env.encode_to_vec();
        let accepted = check(&bytes, &env)?;
        let plain = env.deprecated_tags.is_empty()
            && env.tags.get("__v1_type").map(String::as_str) != Some("Error")
            && matches!(&env.message, Some(Message::Log(l)) if !l.payload.is_empty());
        prop_assert_eq!(accepted, plain, "accepts exactly the plain logs");
    }

    /// Arbitrary envelopes of every kind: non-logs are declined.
    #[test]
    fn other_kinds_are_declined_or_agree(env in envelope()) {
        let bytes = env.encode_to_vec();
        check(&bytes, &env)?;
    }

    /// Concatenated encodings (protobuf merge): duplicate tag keys, merged logs.
    #[test]
    fn merged_encodings_agree(a in log_envelope(), b in log_envelope()) {
        let mut bytes = a.encode_to_vec();
        bytes.extend(b.encode_to_vec());
        let merged = Envelope::decode(&bytes[..]).expect("prost decodes");
        check(&bytes, &merged)?;
    }
}
