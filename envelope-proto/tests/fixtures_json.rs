//! The RLP gateway JSON and tag convergence: every case of
//! `shared/fixtures/v2/batches.json` (`gateway_json.compact` and
//! `sse_event`) and `v2/rlp_tag_convergence.json` (both `use_preferred_tags`
//! outputs and the gateway JSON of the `true` one). No deviations.

#[path = "common/fixtures.rs"]
mod fixtures;

use envelope_proto::loggregator_v2::EnvelopeBatch;
use envelope_proto::{convert, json, v2};
use fixtures::{Failures, cases, name, prost_v2, proto_bytes, same};

#[test]
fn batch_json_is_byte_equal_to_go_compact() {
    let mut f = Failures::default();
    for case in cases("v2/batches.json") {
        let n = name(&case);
        let bytes = proto_bytes(&case["batch"]).expect("batch bytes");
        let batch = match v2::decode_batch(&bytes) {
            Ok(b) => b,
            Err(e) => {
                f.check(&n, false, || format!("batch does not decode: {e}"));
                continue;
            }
        };
        let got = json::batch_to_json(&batch);
        let compact = case["gateway_json"]["compact"].as_str().expect("compact");
        f.check(&n, got == compact, || {
            format!("\n got {got}\nwant {compact}")
        });
        let sse = case["gateway_json"]["sse_event"]
            .as_str()
            .expect("sse_event");
        f.check(&n, format!("data: {got}\n\n") == sse, || {
            "sse event differs".into()
        });
        // Go's own output parses to the same JSON value.
        let go: serde_json::Value = serde_json::from_str(
            case["gateway_json"]["go_output"]
                .as_str()
                .expect("go_output"),
        )
        .expect("go output is JSON");
        let ours: serde_json::Value = serde_json::from_str(&got).expect("our output is JSON");
        f.check(&n, go == ours, || {
            "parsed JSON differs from go_output".into()
        });
    }
    f.finish("v2/batches json", 12 * 3);
}

#[test]
fn rlp_tag_convergence_matches_go() {
    let mut f = Failures::default();
    for case in cases("v2/rlp_tag_convergence.json") {
        let n = name(&case);
        let input = proto_bytes(&case["input"]).expect("input bytes");
        let env = match v2::decode(&input) {
            Ok(e) => e,
            Err(e) => {
                f.check(&n, false, || format!("input does not decode: {e}"));
                continue;
            }
        };
        for (key, preferred) in [
            ("rlp_use_preferred_tags_true", true),
            ("rlp_use_preferred_tags_false", false),
        ] {
            let mut got = env.clone();
            convert::converge_tags(&mut got, preferred);
            let want = prost_v2(&proto_bytes(&case[key]).expect("output bytes")).expect("decode");
            f.check(&n, same(&got, &want), || {
                format!("{key}:\n got {got:?}\nwant {want:?}")
            });
        }
        let mut converged = env.clone();
        convert::converge_tags(&mut converged, true);
        let got = json::batch_to_json(&EnvelopeBatch {
            batch: vec![converged],
        });
        let compact = case["gateway_json"]["compact"].as_str().expect("compact");
        f.check(&n, got == compact, || {
            format!("json:\n got {got}\nwant {compact}")
        });
    }
    f.finish("v2/rlp_tag_convergence", 4 * 3);
}

#[test]
fn json_from_encoded_envelopes_equals_json_from_decoded_ones() {
    // Every envelope of every fixture batch, rendered from its bytes (the
    // store's fast path) and from its decoded form: byte-equal.
    let mut f = Failures::default();
    let mut n_envelopes = 0;
    for case in cases("v2/batches.json") {
        let n = name(&case);
        let bytes = proto_bytes(&case["batch"]).expect("batch bytes");
        let entries = envelope_proto::batch::entries(&bytes).expect("framing");
        for encoded in entries {
            n_envelopes += 1;
            let Ok(decoded) = v2::decode(encoded) else {
                continue;
            };
            let mut fast = String::new();
            json::write_encoded(&mut fast, encoded).expect("renders");
            let slow = json::envelope_to_json(&decoded);
            f.check(&n, fast == slow, || format!("\nfast {fast}\nslow {slow}"));
        }
    }
    assert!(n_envelopes > 12, "fixtures hold envelopes");
    f.finish("v2/batches encoded json", n_envelopes);
}
