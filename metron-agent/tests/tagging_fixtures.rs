//! The agent fixtures (`fixtures/agent/v2_tagging_and_counters.json`): every
//! step of every case, through one processor per case, must produce exactly
//! the expected envelope (compared decoded, maps as maps).

use std::collections::BTreeMap;

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use envelope_proto::loggregator_v2::Envelope;
use metron_agent::process::v2::{Outcome, V2Processor};
use prost::Message as _;
use serde_json::Value;

const FIXTURE: &str = "/work/shared/fixtures/agent/v2_tagging_and_counters.json";

fn b64(v: &Value) -> Vec<u8> {
    let s = v["b64"].as_str().expect("b64 field");
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("valid base64")
}

fn cases() -> Vec<Value> {
    let text = std::fs::read_to_string(FIXTURE).expect("fixture readable");
    let json: Value = serde_json::from_str(&text).expect("fixture json");
    json["cases"].as_array().expect("cases").clone()
}

fn defaults(case: &Value) -> BTreeMap<String, String> {
    case["default_tags"]
        .as_object()
        .expect("default_tags")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("string tag").to_owned()))
        .collect()
}

#[test]
fn every_fixture_step_reproduces_exactly() {
    let cases = cases();
    assert_eq!(cases.len(), 4);
    let mut steps = 0;
    for case in &cases {
        let name = case["name"].as_str().expect("name");
        let processor = V2Processor::new(defaults(case), false);
        let mut arena = BytesMut::new();
        for (i, step) in case["steps"].as_array().expect("steps").iter().enumerate() {
            let input = Bytes::from(b64(&step["input"]));
            let expected =
                Envelope::decode(b64(&step["output"]).as_slice()).expect("expected decodes");
            let Outcome::Forward {
                bytes,
                origin_mapped,
            } = processor.process(input, &mut arena)
            else {
                panic!("{name} step {i}: not forwarded");
            };
            assert!(!origin_mapped);
            let got = Envelope::decode(bytes.as_ref()).expect("output decodes");
            assert_eq!(got, expected, "{name} step {i}");
            steps += 1;
        }
    }
    assert_eq!(steps, 1 + 7 + 5 + 2);
}

/// The fast path (original bytes plus appended tag entries) and the slow path
/// (decode, tag, encode) agree on every fixture input that is fast-path
/// eligible, and on a few hand-made ones.
#[test]
fn fast_path_equals_slow_path() {
    for case in cases() {
        let fast = V2Processor::new(defaults(&case), false);
        let slow = V2Processor::new(defaults(&case), false);
        let mut arena = BytesMut::new();
        for step in case["steps"].as_array().expect("steps") {
            let input = b64(&step["input"]);
            let Outcome::Forward { bytes, .. } =
                fast.process(Bytes::from(input.clone()), &mut arena)
            else {
                panic!("not forwarded");
            };
            let mut env = Envelope::decode(input.as_slice()).expect("decodes");
            slow.tag_and_total(&mut env);
            assert_eq!(Envelope::decode(bytes.as_ref()).expect("decodes"), env);
        }
    }
}

#[test]
fn untouched_envelope_is_forwarded_byte_for_byte() {
    let mut defaults = BTreeMap::new();
    defaults.insert("job".to_owned(), "j".to_owned());
    let p = V2Processor::new(defaults, false);
    let mut env = Envelope {
        source_id: "s".into(),
        ..Default::default()
    };
    env.tags.insert("job".into(), "mine".into());
    let bytes = Bytes::from(env.encode_to_vec());
    let out = p.process(bytes.clone(), &mut BytesMut::new());
    assert_eq!(
        out,
        Outcome::Forward {
            bytes,
            origin_mapped: false
        }
    );
}

#[test]
fn origin_mapping_and_logs_disabled() {
    use envelope_proto::loggregator_v2::{Log, Value as V, envelope::Message, value::Data};
    let p = V2Processor::new(BTreeMap::new(), true);
    let mut arena = BytesMut::new();
    let mut env = Envelope::default();
    env.tags.insert("origin".into(), "from-tag".into());
    env.deprecated_tags.insert(
        "origin".into(),
        V {
            data: Some(Data::Text("from-deprecated".into())),
        },
    );
    let Outcome::Forward {
        bytes,
        origin_mapped,
    } = p.process(Bytes::from(env.encode_to_vec()), &mut arena)
    else {
        panic!("not forwarded");
    };
    assert!(origin_mapped);
    assert_eq!(
        Envelope::decode(bytes.as_ref()).expect("decodes").source_id,
        "from-tag"
    );

    env.tags.clear();
    let Outcome::Forward {
        bytes,
        origin_mapped,
    } = p.process(Bytes::from(env.encode_to_vec()), &mut arena)
    else {
        panic!("not forwarded");
    };
    assert!(origin_mapped);
    assert_eq!(
        Envelope::decode(bytes.as_ref()).expect("decodes").source_id,
        "from-deprecated"
    );

    let log = Envelope {
        source_id: "app".into(),
        message: Some(Message::Log(Log::default())),
        ..Default::default()
    };
    assert_eq!(
        p.process(Bytes::from(log.encode_to_vec()), &mut arena),
        Outcome::LogDisabled
    );
    let unmapped = Envelope {
        message: Some(Message::Log(Log::default())),
        ..Default::default()
    };
    assert_eq!(
        p.process(Bytes::from(unmapped.encode_to_vec()), &mut arena),
        Outcome::LogDisabled
    );
    assert_eq!(
        p.process(Bytes::from_static(&[0x12, 0x05]), &mut arena),
        Outcome::Invalid
    );
}
