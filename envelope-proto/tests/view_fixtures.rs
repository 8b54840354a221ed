//! The routing view against the Go fixtures: valid envelopes, and the
//! malformed or unusual inputs of `v2/invalid.json` (accepted exactly when
//! Go's `proto.Unmarshal` accepts them, with the same field values).

#[path = "common/fixtures.rs"]
mod fixtures;
#[path = "common/envelopes.rs"]
mod support;

use envelope_proto::loggregator_v2::Envelope;
use envelope_proto::view::{EnvelopeView, Kind, ViewError, crc64};
use fixtures::{b64, fixture};
use prost::Message as _;
use support::assert_view_matches;

#[test]
fn every_valid_fixture_envelope_matches_its_decode() {
    let file = fixture("v2/envelopes.json");
    let cases = file["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 13);
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let bytes = b64(case["envelope"]["b64"].as_str().expect("b64"));
        let decoded = Envelope::decode(&bytes[..]).expect(name);
        let view = EnvelopeView::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_view_matches(&view, &decoded);
        let json = &case["envelope"]["json"];
        assert_eq!(
            view.source_id(),
            json["source_id"].as_str().unwrap_or(""),
            "{name}"
        );
        let ts: i64 = json["timestamp"]
            .as_str()
            .map_or(0, |s| s.parse().expect("timestamp"));
        assert_eq!(view.timestamp(), ts, "{name}");
    }
}

#[test]
fn invalid_fixtures_are_accepted_exactly_when_go_accepts_them() {
    let file = fixture("v2/invalid.json");
    let cases = file["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 15);
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let input = b64(case["input"]["b64"].as_str().expect("input"));
        let go_ok = case["go_unmarshal"]["ok"].as_bool().expect("ok");
        let result = EnvelopeView::parse(&input);
        assert_eq!(result.is_ok(), go_ok, "{name}: {result:?}");
        let go_error = case["go_unmarshal"]["error"].as_str().unwrap_or("");
        match result {
            Ok(view) => {
                // Go's decoded result, re-encoded deterministically by Go.
                // Go's decoded result as Go re-encodes it. Go keeps unknown
                // fields (a wrong-wire-type field stays as one), which prost
                // refuses; then the JSON view must show an empty envelope.
                let decoded = match case["decoded"]["b64"].as_str() {
                    Some(b) => Envelope::decode(&b64(b)[..]).unwrap_or_else(|_| {
                        assert_eq!(case["decoded"]["json"], serde_json::json!({}), "{name}");
                        Envelope::default()
                    }),
                    None => Envelope::default(),
                };
                assert_view_matches(&view, &decoded);
            }
            Err(ViewError::InvalidUtf8 { .. }) => {
                assert_eq!(go_error, "string field contains invalid UTF-8", "{name}")
            }
            Err(e) => {
                assert_eq!(
                    go_error, "proto: cannot parse invalid wire-format data",
                    "{name}: {e}"
                )
            }
        }
    }
}

fn case_input(name: &str) -> Vec<u8> {
    let file = fixture("v2/invalid.json");
    let case = file["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no case {name}"))
        .clone();
    b64(case["input"]["b64"].as_str().expect("input"))
}

#[test]
fn two_oneof_members_last_wins() {
    let input = case_input("two_oneof_members");
    let view = EnvelopeView::parse(&input).expect("accepted");
    assert_eq!(view.kind(), Kind::Counter);
    assert_eq!(view.counter_name(), "c");
    assert_eq!(view.log_payload(), b"");
}

#[test]
fn log_twice_merged_keeps_payload_and_type() {
    let view_input = case_input("log_twice_merged");
    let view = EnvelopeView::parse(&view_input).expect("accepted");
    assert_eq!(view.kind(), Kind::Log);
    assert_eq!(view.log_payload(), b"payload");
    assert_eq!(view.log_type(), 1);
}

#[test]
fn map_quirks() {
    let view_input = case_input("tags_duplicate_key");
    let view = EnvelopeView::parse(&view_input).expect("accepted");
    assert_eq!(view.tag("k"), Some("second"));
    let input = case_input("tags_entry_without_key");
    let view = EnvelopeView::parse(&input).expect("accepted");
    assert_eq!(view.tag(""), Some("v"));
    let input = case_input("gauge_entry_without_value");
    let view = EnvelopeView::parse(&input).expect("accepted");
    assert_eq!(view.kind(), Kind::Gauge);
    assert_eq!(view.gauge_names_hash(), crc64(b"cpu"));
}

#[test]
fn negative_log_type_and_wrong_wire_type() {
    let input = case_input("log_type_negative");
    assert_eq!(EnvelopeView::parse(&input).expect("ok").log_type(), -1);
    let input = case_input("wrong_wire_type");
    let view = EnvelopeView::parse(&input).expect("ok");
    assert_eq!(view.source_id(), "");
    assert_eq!(view.timestamp(), 0);
}

#[test]
fn utf8_errors_name_the_field() {
    let err = EnvelopeView::parse(&case_input("source_id_invalid_utf8")).expect_err("invalid");
    assert_eq!(
        err,
        ViewError::InvalidUtf8 {
            field: "Envelope.source_id"
        }
    );
    assert_eq!(
        err.to_string(),
        "string field Envelope.source_id contains invalid UTF-8"
    );
    let err = EnvelopeView::parse(&case_input("event_title_invalid_utf8")).expect_err("invalid");
    assert_eq!(
        err,
        ViewError::InvalidUtf8 {
            field: "Event.title"
        }
    );
    assert_eq!(
        EnvelopeView::parse(&case_input("truncated")).expect_err("bad"),
        ViewError::Truncated
    );
}
