//! Every case of `shared/fixtures/to_v1/cases.json`: v2 input → the list of
//! v1 envelopes from `ToV1`, compared as a list (or a multiset when Go's order
//! came from map iteration); outputs Go refuses to marshal must fail
//! `v1::encode`, the others must encode to Go's exact bytes. No deviations.

#[path = "common/fixtures.rs"]
mod fixtures;

use envelope_proto::{convert, v1, v2};
use fixtures::{
    Failures, cases, expected_v1_list, name, prost_v2, proto_bytes, required_field, same,
    same_multiset,
};

#[test]
fn to_v1_matches_go_for_every_case() {
    let mut f = Failures::default();
    for case in cases("to_v1/cases.json") {
        let n = name(&case);
        let input = proto_bytes(&case["v2"]).expect("v2 bytes");
        let env = match v2::decode(&input) {
            Ok(e) => e,
            Err(e) => {
                f.check(&n, false, || format!("v2 input does not decode: {e}"));
                continue;
            }
        };
        let reference = prost_v2(&input).expect("v2 reference decode");
        f.check(&n, same(&env, &reference), || format!("v2 decode {env:?}"));

        let got = convert::to_v1(&env);
        let want = expected_v1_list(&case["v1"]);
        let want_msgs: Vec<_> = want.envelopes.iter().map(|w| w.message.clone()).collect();
        let equal = if want.ordered {
            got.len() == want_msgs.len() && got.iter().zip(&want_msgs).all(|(a, b)| same(a, b))
        } else {
            same_multiset(&got, &want_msgs)
        };
        f.check(&n, equal, || format!("\n got {got:?}\nwant {want_msgs:?}"));

        // Encoding outcome per output envelope (as a multiset when unordered).
        let mut got_bytes: Vec<Result<Vec<u8>, String>> = got
            .iter()
            .map(|g| v1::encode(g).map_err(|e| e.to_string()))
            .collect();
        let mut want_bytes: Vec<Result<Vec<u8>, String>> = want
            .envelopes
            .iter()
            .map(|w| match (&w.bytes, &w.marshal_error) {
                (Some(b), None) => Ok(b.clone()),
                (_, Some(err)) => Err(format!(
                    "required field {} not set",
                    required_field(err).unwrap_or("?")
                )),
                (None, None) => Err("no bytes".to_owned()),
            })
            .collect();
        if !want.ordered {
            got_bytes.sort();
            want_bytes.sort();
        }
        f.check(&n, got_bytes == want_bytes, || {
            format!("encode outcomes:\n got {got_bytes:?}\nwant {want_bytes:?}")
        });
        f.check(&n, want.envelopes.iter().all(|w| !w.lossy), || {
            "lossy fixture".into()
        });
    }
    f.finish("to_v1", 37 * 4);
}

/// The wire-level fast path (`convert::log_to_v1`) agrees with Go on every
/// case it accepts, and accepts every plain log case.
#[test]
fn wire_fast_path_matches_go_where_it_applies() {
    let mut f = Failures::default();
    let mut accepted = 0;
    for case in cases("to_v1/cases.json") {
        let n = name(&case);
        let input = proto_bytes(&case["v2"]).expect("v2 bytes");
        let Ok(view) = envelope_proto::view::EnvelopeView::parse(&input) else {
            continue;
        };
        let mut fast = Vec::new();
        if !convert::log_to_v1(&view, &mut fast) {
            continue;
        }
        accepted += 1;
        let want = expected_v1_list(&case["v1"]);
        let got = v1::decode(&fast).map_err(|e| e.to_string());
        f.check(&n, want.envelopes.len() == 1, || {
            format!(
                "fast path accepted a case with {} outputs",
                want.envelopes.len()
            )
        });
        if let (Ok(got), Some(w)) = (&got, want.envelopes.first()) {
            f.check(&n, same(got, &w.message), || {
                format!("\n got {got:?}\nwant {:?}", w.message)
            });
        } else {
            f.check(&n, false, || {
                format!("fast output does not decode: {got:?}")
            });
        }
    }
    assert!(accepted >= 3, "the fixtures include plain logs: {accepted}");
    f.finish("to_v1 fast path", accepted * 2);
}
