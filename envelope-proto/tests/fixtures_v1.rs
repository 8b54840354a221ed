//! Every case of `shared/fixtures/v1/envelopes.json` and `v1/invalid.json`.
//!
//! Documented deviation (the only one): Go keeps invalid UTF-8 in proto2
//! strings; `v1::decode` accepts the same input but repairs the strings with
//! U+FFFD because the generated Rust type is `String`. The case
//! `invalid_utf8_in_proto2_strings` therefore asserts the repaired values
//! instead of a byte-identical re-encoding.

#[path = "common/fixtures.rs"]
mod fixtures;

use bytes::Bytes;
use envelope_proto::{events, v1};
use fixtures::{
    Failures, blob, cases, json_eq, name, prost_v1, proto_bytes, required_field, same, v1_json_view,
};

#[test]
fn v1_envelopes_decode_like_prost_and_encode_like_go() {
    let mut f = Failures::default();
    for case in cases("v1/envelopes.json") {
        let n = name(&case);
        let bytes = proto_bytes(&case["envelope"]).expect("envelope bytes");
        let reference = prost_v1(&bytes).expect("reference decode");
        let ours = v1::decode(&bytes);
        f.check(&n, ours.as_ref().is_ok_and(|e| same(e, &reference)), || {
            format!("decode: {ours:?}\nwant {reference:?}")
        });
        let shared = Bytes::from(bytes.clone());
        let zero_copy = v1::decode_bytes(&shared);
        f.check(
            &n,
            zero_copy.as_ref().is_ok_and(|e| same(e, &reference)),
            || format!("decode_bytes: {zero_copy:?}"),
        );
        let view = ours.as_ref().map(v1_json_view).unwrap_or_default();
        f.check(&n, json_eq(&view, &case["envelope"]["json"]), || {
            format!("json view {view}\nwant {}", case["envelope"]["json"])
        });
        f.check(&n, v1::check_event(&reference).is_ok(), || {
            "agent check rejects a valid envelope".into()
        });
        let encoded = v1::encode(&reference);
        // Go's deterministic encoding: ascending field numbers, map keys sorted.
        f.check(&n, encoded.as_ref().is_ok_and(|b| *b == bytes), || {
            format!("encode: {encoded:?}\nwant {bytes:?}")
        });
    }
    f.finish("v1/envelopes", 16 * 5);
}

#[test]
fn v1_invalid_inputs_are_accepted_and_rejected_like_go() {
    let mut f = Failures::default();
    for case in cases("v1/invalid.json") {
        let n = name(&case);
        let input = blob(&case["input"]);
        let ours = v1::decode(&input);
        let go_ok = case["go_unmarshal"]["ok"]
            .as_bool()
            .expect("go_unmarshal.ok");
        f.check(&n, ours.is_ok() == go_ok, || {
            format!("go ok={go_ok}, ours {ours:?}")
        });

        // A missing required field is reported with Go's field name.
        if let Some(field) = case["go_unmarshal"]["error"]
            .as_str()
            .and_then(required_field)
        {
            f.check(
                &n,
                matches!(ours, Err(v1::DecodeError::Missing(v1::MissingField(got))) if got == field),
                || format!("want missing {field}, got {ours:?}"),
            );
        }

        // The decoded message equals Go's: compared with prost's decode of
        // Go's re-encoding, or, where that keeps an unknown field prost cannot
        // skip (a wire-type mismatch) or holds invalid UTF-8, with the JSON view.
        if let (Ok(env), Some(bytes)) = (&ours, proto_bytes(&case["decoded"])) {
            match prost_v1(&bytes) {
                Some(reference) => f.check(&n, same(env, &reference), || {
                    format!("decoded {env:?}\nwant {reference:?}")
                }),
                None if !case["decoded"]["json"].is_null() => {
                    let view = v1_json_view(env);
                    f.check(&n, json_eq(&view, &case["decoded"]["json"]), || {
                        format!("decoded {view}\nwant {}", case["decoded"]["json"])
                    });
                }
                None => {
                    // invalid_utf8_in_proto2_strings: the documented deviation.
                    f.check(&n, n == "invalid_utf8_in_proto2_strings", || {
                        "unexpected non-UTF-8 fixture".into()
                    });
                    f.check(&n, repaired_utf8_case(env), || format!("{env:?}"));
                }
            }
        }

        // The agent's ingress: decode, then the event-field check.
        let agent_ok = case["agent_ingress"]["ok"]
            .as_bool()
            .expect("agent_ingress.ok");
        let ours_agent = ours
            .as_ref()
            .map_err(|e| e.to_string())
            .and_then(|e| v1::check_event(e).map_err(|e| e.to_string()));
        f.check(&n, ours_agent.is_ok() == agent_ok, || {
            format!("agent: go ok={agent_ok}, ours {ours_agent:?}")
        });

        // Encoding the in-memory message: refused exactly when Go refuses.
        if case.get("message").is_some() {
            let message = &case["message"];
            let bytes = proto_bytes(message).expect("message bytes");
            let env = prost_v1(&bytes).or_else(|| v1::decode(&bytes).ok());
            let Some(env) = env else {
                f.check(&n, false, || "message does not decode".into());
                continue;
            };
            let encoded = v1::encode(&env);
            match message["marshal_error"].as_str().and_then(required_field) {
                Some(field) => f.check(
                    &n,
                    matches!(encoded, Err(v1::EncodeError::Missing(v1::MissingField(got))) if got == field),
                    || format!("encode must fail on {field}: {encoded:?}"),
                ),
                None => f.check(&n, encoded.is_ok(), || format!("encode: {encoded:?}")),
            }
        }
    }
    f.finish("v1/invalid", 32 * 2);
}

/// `invalid_utf8_in_proto2_strings`: origin `bad\xffutf8` and tag `k` =
/// `v\xfe` come out repaired; everything else is intact.
fn repaired_utf8_case(env: &events::Envelope) -> bool {
    env.origin.as_deref() == Some("bad\u{FFFD}utf8")
        && env.tags.get("k").map(String::as_str) == Some("v\u{FFFD}")
        && env.tags.get("az").map(String::as_str) == Some("z1")
        && env.log_message.is_some()
        && v1::check_required(env).is_ok()
}
