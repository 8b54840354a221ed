//! Property and fixture tests for `batch::split` / `batch::encode`.

#[path = "common/fixtures.rs"]
mod fixtures;
#[path = "common/envelopes.rs"]
mod support;

use bytes::{Bytes, BytesMut};
use envelope_proto::batch;
use envelope_proto::loggregator_v2::{Envelope, EnvelopeBatch};
use envelope_proto::view::EnvelopeView;
use fixtures::{b64, fixture};
use proptest::prelude::*;
use prost::Message as _;
use support::{envelope, unknown_field};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn split_yields_each_envelope_encoding(envs in prop::collection::vec(envelope(), 0..8)) {
        let encoded = Bytes::from(EnvelopeBatch { batch: envs.clone() }.encode_to_vec());
        let parts: Vec<Bytes> = batch::split(&encoded).expect("valid batch").collect();
        let expected: Vec<Bytes> = envs.iter().map(|e| Bytes::from(e.encode_to_vec())).collect();
        prop_assert_eq!(&parts, &expected);
        // zero-copy: every part points into the batch buffer
        let range = encoded.as_ptr_range();
        for p in &parts {
            prop_assert!(p.is_empty() || range.contains(&p.as_ptr()));
        }
        let borrowed: Vec<&[u8]> = batch::entries(&encoded).expect("valid").collect();
        prop_assert_eq!(borrowed, expected.iter().map(|b| &b[..]).collect::<Vec<_>>());
        for p in &parts {
            prop_assert!(EnvelopeView::parse(p).is_ok());
        }
    }

    #[test]
    fn encode_of_split_round_trips(
        envs in prop::collection::vec(envelope(), 0..8),
        noise in prop::collection::vec(unknown_field(), 0..4),
    ) {
        let clean = EnvelopeBatch { batch: envs.clone() }.encode_to_vec();
        // unknown fields at the front and back of the batch are skipped
        let mut noisy = noise.concat();
        noisy.extend_from_slice(&clean);
        noisy.extend(noise.concat());
        let noisy = Bytes::from(noisy);
        let parts: Vec<Bytes> = batch::split(&noisy).expect("valid").collect();
        prop_assert_eq!(parts.len(), envs.len());
        let mut out = BytesMut::new();
        batch::encode(&parts, &mut out);
        prop_assert_eq!(out.len(), batch::encoded_len(&parts));
        // same bytes prost writes, and it decodes to the same batch
        prop_assert_eq!(&out[..], &clean[..]);
        let back = EnvelopeBatch::decode(out.freeze()).expect("decodes");
        prop_assert_eq!(back.batch, envs);
    }

    #[test]
    fn push_appends_like_encode(envs in prop::collection::vec(envelope(), 0..5)) {
        let parts: Vec<Vec<u8>> = envs.iter().map(|e| e.encode_to_vec()).collect();
        let mut a = BytesMut::new();
        for p in &parts {
            batch::push(p, &mut a);
        }
        let mut b = BytesMut::new();
        batch::encode(&parts, &mut b);
        prop_assert_eq!(a, b);
    }
}

#[test]
fn fixture_batches_split_into_their_envelopes() {
    let file = fixture("v2/batches.json");
    let cases = file["cases"].as_array().expect("cases");
    assert!(!cases.is_empty());
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let raw = Bytes::from(b64(case["batch"]["b64"].as_str().expect("b64")));
        let decoded = EnvelopeBatch::decode(raw.clone()).expect("fixture decodes");
        let parts: Vec<Bytes> = batch::split(&raw).expect(name).collect();
        assert_eq!(parts.len(), decoded.batch.len(), "{name}");
        for (p, env) in parts.iter().zip(&decoded.batch) {
            // compared re-encoded: NaN gauges make the messages unequal to themselves
            let part = Envelope::decode(p.clone()).expect(name);
            assert_eq!(part.encode_to_vec(), env.encode_to_vec(), "{name}");
            let view = EnvelopeView::parse(p).expect(name);
            support::assert_view_matches(&view, env);
        }
        let mut out = BytesMut::new();
        batch::encode(&parts, &mut out);
        assert_eq!(
            &out[..],
            &raw[..],
            "{name}: Go's deterministic bytes rebuilt exactly"
        );
    }
}

#[test]
fn length_prefix_of_two_to_the_sixty_is_an_error() {
    let mut bytes = vec![0x0a];
    support::put_varint(1 << 60, &mut bytes);
    bytes.extend_from_slice(b"short");
    let started = std::time::Instant::now();
    assert!(batch::split(&Bytes::from(bytes.clone())).is_err());
    assert!(batch::entries(&bytes).is_err());
    assert!(started.elapsed() < std::time::Duration::from_millis(50));
}
