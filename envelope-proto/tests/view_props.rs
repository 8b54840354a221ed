//! Property tests: the zero-copy view agrees with a full prost decode for
//! arbitrary v2 envelopes, including protobuf merge semantics (concatenated
//! encodings), unknown fields, and UTF-8 rejection.

#[path = "common/envelopes.rs"]
mod support;

use envelope_proto::loggregator_v2::{Envelope, envelope::Message};
use envelope_proto::view::{EnvelopeView, Kind, ViewError};
use proptest::prelude::*;
use prost::Message as _;
use support::{assert_view_matches, envelope, gauge, put_varint, unknown_field};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn view_agrees_with_full_decode(env in envelope()) {
        let bytes = env.encode_to_vec();
        let view = EnvelopeView::parse(&bytes).expect("prost output parses");
        assert_view_matches(&view, &env);
        prop_assert_eq!(view.as_bytes(), &bytes[..]);
    }

    /// Concatenating two encodings is a protobuf merge: last scalar wins,
    /// maps merge with the last key winning, the oneof switches or merges.
    #[test]
    fn view_follows_merge_semantics(a in envelope(), b in envelope(), c in envelope()) {
        let mut bytes = a.encode_to_vec();
        bytes.extend(b.encode_to_vec());
        bytes.extend(c.encode_to_vec());
        let decoded = Envelope::decode(&bytes[..]).expect("prost decodes");
        let view = EnvelopeView::parse(&bytes).expect("parses");
        assert_view_matches(&view, &decoded);
    }

    /// Gauges large enough to take the allocating de-duplication path, split
    /// over several occurrences with duplicated names.
    #[test]
    fn gauge_hash_over_merged_gauges(g1 in gauge(40), g2 in gauge(40), keep in any::<bool>()) {
        let mut e1 = Envelope { message: Some(Message::Gauge(g1.clone())), ..Default::default() };
        let e2 = Envelope { message: Some(Message::Gauge(g2)), ..Default::default() };
        if keep {
            // repeat g1's names so duplicates across occurrences exist
            e1.message = Some(Message::Gauge(g1));
        }
        let mut bytes = e1.encode_to_vec();
        bytes.extend(e2.encode_to_vec());
        bytes.extend(e1.encode_to_vec());
        let decoded = Envelope::decode(&bytes[..]).expect("prost decodes");
        let view = EnvelopeView::parse(&bytes).expect("parses");
        prop_assert_eq!(view.kind(), Kind::Gauge);
        assert_view_matches(&view, &decoded);
    }

    #[test]
    fn unknown_fields_are_skipped(
        a in envelope(),
        b in envelope(),
        before in proptest::collection::vec(unknown_field(), 0..3),
        between in proptest::collection::vec(unknown_field(), 0..3),
        after in proptest::collection::vec(unknown_field(), 0..3),
    ) {
        let mut bytes = before.concat();
        bytes.extend(a.encode_to_vec());
        bytes.extend(between.concat());
        bytes.extend(b.encode_to_vec());
        bytes.extend(after.concat());
        let decoded = Envelope::decode(&bytes[..]).expect("prost decodes");
        let view = EnvelopeView::parse(&bytes).expect("parses");
        assert_view_matches(&view, &decoded);
    }

    /// `has_tags`/`has_deprecated_tags` agree with the decoded maps, also for
    /// bare (empty) map entries, which decode as a `""` key, and for maps
    /// that only appear in a later, merged encoding.
    #[test]
    fn tag_map_presence_agrees_with_full_decode(
        a in envelope(),
        b in envelope(),
        bare_dep in any::<bool>(),
        bare_tag in any::<bool>(),
        noise in proptest::collection::vec(unknown_field(), 0..3),
    ) {
        let mut bytes = a.encode_to_vec();
        bytes.extend(noise.concat());
        if bare_dep {
            bytes.extend([0x1a, 0x00]);
        }
        if bare_tag {
            bytes.extend([0x4a, 0x00]);
        }
        bytes.extend(b.encode_to_vec());
        let decoded = Envelope::decode(&bytes[..]).expect("prost decodes");
        let view = EnvelopeView::parse(&bytes).expect("parses");
        prop_assert_eq!(view.has_tags(), !decoded.tags.is_empty());
        prop_assert_eq!(view.has_deprecated_tags(), !decoded.deprecated_tags.is_empty());
        assert_view_matches(&view, &decoded);
    }

    /// Invalid UTF-8 in any proto3 string is rejected, like Go (and prost).
    #[test]
    fn invalid_utf8_anywhere_is_rejected(env in envelope(), which in 0usize..10, bad in prop_oneof![
        Just(vec![0xffu8]), Just(vec![b'a', 0xc3]), Just(vec![0xed, 0xa0, 0x80]), Just(vec![0xc0, 0x80]),
    ]) {
        let mut bytes = env.encode_to_vec();
        let ld = |f: u64, body: &[u8], out: &mut Vec<u8>| {
            put_varint(f << 3 | 2, out);
            put_varint(body.len() as u64, out);
            out.extend_from_slice(body);
        };
        let mut inner = Vec::new();
        match which {
            0 => ld(2, &bad, &mut bytes),                       // source_id
            1 => ld(8, &bad, &mut bytes),                       // instance_id
            2 => { ld(1, &bad, &mut inner); ld(9, &inner, &mut bytes) }   // tag key
            3 => { ld(2, &bad, &mut inner); ld(9, &inner, &mut bytes) }   // tag value
            4 => { ld(1, &bad, &mut inner); ld(3, &inner, &mut bytes) }   // deprecated key
            5 => {                                              // deprecated Value.text
                let mut v = Vec::new();
                ld(1, &bad, &mut v);
                ld(2, &v, &mut inner);
                ld(3, &inner, &mut bytes);
            }
            6 => { ld(1, &bad, &mut inner); ld(5, &inner, &mut bytes) }   // counter name
            7 => {                                              // gauge metric name
                let mut e = Vec::new();
                ld(1, &bad, &mut e);
                ld(1, &e, &mut inner);
                ld(6, &inner, &mut bytes);
            }
            8 => { ld(1, &bad, &mut inner); ld(7, &inner, &mut bytes) }   // timer name
            _ => { ld(2, &bad, &mut inner); ld(10, &inner, &mut bytes) }  // event body
        }
        prop_assert!(Envelope::decode(&bytes[..]).is_err());
        let err = EnvelopeView::parse(&bytes).expect_err("invalid UTF-8");
        prop_assert!(matches!(err, ViewError::InvalidUtf8 { .. }), "{err:?}");
    }

    /// Every strict prefix of a non-empty encoding either parses (the cut fell
    /// between fields) or fails as truncated, exactly when prost fails.
    #[test]
    fn truncation_agrees_with_prost(env in envelope(), cut in any::<prop::sample::Index>()) {
        let bytes = env.encode_to_vec();
        prop_assume!(!bytes.is_empty());
        let prefix = &bytes[..cut.index(bytes.len())];
        match (EnvelopeView::parse(prefix), Envelope::decode(prefix)) {
            (Ok(view), Ok(decoded)) => assert_view_matches(&view, &decoded),
            (Err(_), Err(_)) => {}
            (v, p) => prop_assert!(false, "view {:?} vs prost {:?}", v.map(|v| v.kind()), p.map(|_| ())),
        }
    }
}

#[test]
fn wrong_wire_types_on_known_fields_are_skipped_like_go() {
    // timestamp as fixed64, source_id as varint, log as varint, then a real source_id
    let bytes = [
        0x09, 1, 2, 3, 4, 5, 6, 7, 8, 0x10, 0x05, 0x20, 0x01, 0x12, 0x01, b's',
    ];
    let view = EnvelopeView::parse(&bytes).expect("accepted like Go");
    assert_eq!(view.timestamp(), 0);
    assert_eq!(view.source_id(), "s");
    assert_eq!(view.kind(), Kind::None);
}

#[test]
fn log_type_is_the_low_32_bits_of_the_varint() {
    // log { type = 2^32 + 5 }
    let mut log = vec![0x10];
    put_varint((1 << 32) + 5, &mut log);
    let mut bytes = vec![0x22, log.len() as u8];
    bytes.extend(log);
    let view = EnvelopeView::parse(&bytes).expect("valid");
    let decoded = Envelope::decode(&bytes[..]).expect("prost");
    assert_eq!(view.log_type(), 5);
    assert_view_matches(&view, &decoded);
}
