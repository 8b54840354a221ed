//! Every case of `fixtures/syslog/cases.json`: exact RFC 5424 bytes (as a
//! multiset where Go's order came from map iteration), exact octet-counted
//! frames, and errors where Go's converter failed.

use base64::Engine as _;
use envelope_proto::loggregator_v2::Envelope;
use nozzles::syslog::{Encoded, Rfc5424Encoder, frame_octet_counted};
use prost::Message as _;
use serde_json::Value;

fn b64(v: &Value) -> Vec<u8> {
    let s = v["b64"].as_str().expect("b64 field");
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("valid base64")
}

fn cases() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/fixtures/syslog/cases.json"
    );
    let text = std::fs::read_to_string(path).expect("fixtures/syslog/cases.json readable");
    let doc: Value = serde_json::from_str(&text).expect("fixture JSON");
    doc["cases"].as_array().expect("cases array").clone()
}

#[test]
fn every_syslog_fixture_case() {
    let cases = cases();
    assert_eq!(cases.len(), 43, "fixture count changed");
    let mut failures = Vec::new();
    for case in &cases {
        let name = case["name"].as_str().expect("name");
        let env = Envelope::decode(b64(&case["v2"]).as_slice()).expect("fixture envelope decodes");
        let enc = Rfc5424Encoder::new(
            case["hostname"].as_str().expect("hostname"),
            case["omit_metadata"].as_bool().expect("omit_metadata"),
        );
        let mut out = Encoded::new();
        let r = enc.encode(&env, &mut out);
        let ok = case["result"]["ok"].as_bool().expect("result.ok");
        if !ok {
            match r {
                Err(e) => {
                    let want = case["result"]["error"].as_str().expect("error text");
                    if e.to_string() != want {
                        failures.push(format!("{name}: error {e:?}, want {want:?}"));
                    }
                    if !out.is_empty() {
                        failures.push(format!("{name}: output left after error"));
                    }
                }
                Ok(n) => failures.push(format!("{name}: expected an error, got {n} messages")),
            }
            continue;
        }
        if let Err(e) = r {
            failures.push(format!("{name}: unexpected error {e}"));
            continue;
        }
        let want: Vec<Vec<u8>> = case["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(b64)
            .collect();
        let want_frames: Vec<Vec<u8>> = case["octet_counted_frames"]
            .as_array()
            .expect("frames")
            .iter()
            .map(b64)
            .collect();
        let mut got: Vec<Vec<u8>> = out.iter().map(<[u8]>::to_vec).collect();
        let mut got_frames: Vec<Vec<u8>> = got
            .iter()
            .map(|m| {
                let mut f = Vec::new();
                frame_octet_counted(m, &mut f);
                f
            })
            .collect();
        let (mut want, mut want_frames) = (want, want_frames);
        if !case["ordered"].as_bool().expect("ordered") {
            got.sort();
            want.sort();
            got_frames.sort();
            want_frames.sort();
        }
        if got != want {
            failures.push(format!(
                "{name}:\n got  {:?}\n want {:?}",
                got.iter()
                    .map(|m| String::from_utf8_lossy(m).into_owned())
                    .collect::<Vec<_>>(),
                want.iter()
                    .map(|m| String::from_utf8_lossy(m).into_owned())
                    .collect::<Vec<_>>()
            ));
        }
        if got_frames != want_frames {
            failures.push(format!("{name}: frames differ"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn encoder_reuses_buffer_across_envelopes() {
    let cases = cases();
    let enc = Rfc5424Encoder::new("org.space.app", false);
    let mut out = Encoded::new();
    let mut expected = 0;
    for case in cases.iter().filter(|c| {
        c["result"]["ok"].as_bool() == Some(true)
            && c["omit_metadata"] == false
            && c["hostname"] == "org.space.app"
    }) {
        let env = Envelope::decode(b64(&case["v2"]).as_slice()).expect("decodes");
        expected += enc.encode(&env, &mut out).expect("encodes");
    }
    assert_eq!(out.len(), expected);
    assert!(expected > 30);
}
