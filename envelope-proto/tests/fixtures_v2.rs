//! Every case of `shared/fixtures/v2/envelopes.json`, `v2/invalid.json` and
//! the binary side of `v2/batches.json` (the JSON side is in
//! `fixtures_json.rs`). No deviations.

#[path = "common/fixtures.rs"]
mod fixtures;

use bytes::Bytes;
use envelope_proto::v2;
use fixtures::{Failures, blob, cases, name, prost_batch, prost_v2, proto_bytes, same};
use prost::Message as _;

#[test]
fn v2_envelopes_decode_like_prost() {
    let mut f = Failures::default();
    for case in cases("v2/envelopes.json") {
        let n = name(&case);
        let bytes = proto_bytes(&case["envelope"]).expect("envelope bytes");
        let reference = prost_v2(&bytes).expect("reference decode");
        let ours = v2::decode(&bytes);
        f.check(&n, ours.as_ref().is_ok_and(|e| same(e, &reference)), || {
            format!("decode: {ours:?}\nwant {reference:?}")
        });
        let zero_copy = v2::decode_bytes(&Bytes::from(bytes.clone()));
        f.check(
            &n,
            zero_copy.as_ref().is_ok_and(|e| same(e, &reference)),
            || format!("decode_bytes: {zero_copy:?}"),
        );
        // Encoding (prost) and decoding again gives the same message. (Bytes
        // differ from Go's only in field order: Go writes the `message` oneof
        // after field 9; both orders are valid protobuf.)
        let again = v2::decode(&reference.encode_to_vec());
        f.check(
            &n,
            again.as_ref().is_ok_and(|e| same(e, &reference)),
            || format!("round trip: {again:?}"),
        );
    }
    f.finish("v2/envelopes", 13 * 3);
}

#[test]
fn v2_invalid_inputs_are_accepted_and_rejected_like_go() {
    let mut f = Failures::default();
    for case in cases("v2/invalid.json") {
        let n = name(&case);
        let input = blob(&case["input"]);
        let ours = v2::decode(&input);
        let go_ok = case["go_unmarshal"]["ok"]
            .as_bool()
            .expect("go_unmarshal.ok");
        f.check(&n, ours.is_ok() == go_ok, || {
            format!("go ok={go_ok}, ours {ours:?}")
        });
        let go_utf8 = case["go_unmarshal"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("invalid UTF-8"));
        if go_utf8 {
            f.check(
                &n,
                matches!(ours, Err(v2::DecodeError::InvalidUtf8(_))),
                || format!("want an invalid UTF-8 error, got {ours:?}"),
            );
        }
        if let Ok(env) = &ours {
            let bytes = proto_bytes(&case["decoded"]).expect("decoded bytes");
            match prost_v2(&bytes) {
                Some(reference) => f.check(&n, same(env, &reference), || {
                    format!("decoded {env:?}\nwant {reference:?}")
                }),
                // Go keeps unknown fields in its re-encoding; our decoder must
                // then read its own bytes to the same message.
                None => {
                    let again = v2::decode(&bytes);
                    f.check(&n, again.as_ref().is_ok_and(|a| same(a, env)), || {
                        format!("re-decoded {again:?}")
                    });
                }
            }
        }
    }
    f.finish("v2/invalid", 15);
}

#[test]
fn v2_batches_decode_like_prost() {
    let mut f = Failures::default();
    for case in cases("v2/batches.json") {
        let n = name(&case);
        let bytes = proto_bytes(&case["batch"]).expect("batch bytes");
        let reference = prost_batch(&bytes).expect("reference decode");
        let ours = v2::decode_batch(&bytes);
        f.check(&n, ours.as_ref().is_ok_and(|b| same(b, &reference)), || {
            format!("decode_batch: {ours:?}\nwant {reference:?}")
        });
        let zero_copy = v2::decode_batch_bytes(&Bytes::from(bytes));
        f.check(
            &n,
            zero_copy.as_ref().is_ok_and(|b| same(b, &reference)),
            || format!("decode_batch_bytes: {zero_copy:?}"),
        );
    }
    f.finish("v2/batches", 12 * 2);
}
