//! Robustness: every decoder of the crate, fed random bytes and mutated
//! fixture bytes, returns a value or a typed error and never panics. The
//! routing view is also cross-checked against the Go-compatible decoder
//! (`v2::decode`): they accept the same inputs and agree on every field.

#[path = "common/fixtures.rs"]
mod fixtures;
#[path = "common/envelopes.rs"]
mod support;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use envelope_proto::loggregator_v2::{EgressBatchRequest, EgressRequest, Envelope, EnvelopeBatch};
use envelope_proto::plumbing_v1::{EnvelopeData, SubscriptionRequest};
use envelope_proto::view::EnvelopeView;
use envelope_proto::{batch, events, v1, v2};
use fixtures::fixture_blobs;
use proptest::prelude::*;
use prost::Message as _;
use support::{assert_view_matches, put_varint};

/// Runs every decoder on `input`; panics only if a decoder panics or the
/// view and `v2::decode` disagree.
fn exercise(input: &[u8]) {
    let view = EnvelopeView::parse(input);
    let go = v2::decode(input);
    match (&view, &go) {
        (Ok(view), Ok(env)) => {
            assert_view_matches(view, env);
            // accessors never panic either
            let _ = view.gauge_names_hash();
            let _ = view.tag("source_type");
        }
        (Err(_), Err(_)) => {}
        (v, g) => panic!("view {v:?} disagrees with v2::decode {g:?} on {input:02x?}"),
    }
    let owned = Bytes::copy_from_slice(input);
    let _ = v2::decode_bytes(&owned);
    let split = batch::split(&owned);
    let go_batch = v2::decode_batch(input);
    if let (Ok(parts), Ok(decoded)) = (split.clone(), &go_batch) {
        assert_eq!(parts.len(), decoded.batch.len(), "split vs decode_batch");
    }
    if go_batch.is_ok() {
        // Go accepts the batch only if its framing is fine.
        assert!(split.is_ok(), "split refused a batch Go accepts");
    }
    if let Ok(parts) = split {
        for p in parts {
            let _ = EnvelopeView::parse(&p);
        }
    }
    let _ = batch::entries(input).map(|e| e.count());
    let _ = v2::decode_batch_bytes(&owned);
    let _ = v1::decode(input);
    let _ = Envelope::decode(input);
    let _ = EnvelopeBatch::decode(input);
    let _ = events::Envelope::decode(input);
    let _ = EgressRequest::decode(input);
    let _ = EgressBatchRequest::decode(input);
    let _ = EnvelopeData::decode(input);
    let _ = SubscriptionRequest::decode(input);
}

fn blobs() -> &'static [(String, Vec<u8>)] {
    static BLOBS: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    BLOBS.get_or_init(|| {
        let mut all = fixture_blobs("v2");
        all.extend(fixture_blobs("v1"));
        assert!(all.len() > 50, "fixture blobs found: {}", all.len());
        all
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(prop::sample::Index, u8),
    Truncate(prop::sample::Index),
    Insert(prop::sample::Index, u8),
    Remove(prop::sample::Index),
    Overwrite(prop::sample::Index, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<prop::sample::Index>(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<prop::sample::Index>().prop_map(Mutation::Remove),
        (
            any::<prop::sample::Index>(),
            prop_oneof![
                Just(0x00u8),
                Just(0x7f),
                Just(0x80),
                Just(0xff),
                any::<u8>()
            ]
        )
            .prop_map(|(i, b)| Mutation::Overwrite(i, b)),
    ]
}

fn apply(buf: &mut Vec<u8>, m: &Mutation) {
    if buf.is_empty() {
        if let Mutation::Insert(_, b) = m {
            buf.push(*b);
        }
        return;
    }
    match m {
        Mutation::Flip(i, bit) => {
            let i = i.index(buf.len());
            buf[i] ^= 1 << bit;
        }
        Mutation::Truncate(i) => buf.truncate(i.index(buf.len())),
        Mutation::Insert(i, b) => buf.insert(i.index(buf.len() + 1), *b),
        Mutation::Remove(i) => {
            buf.remove(i.index(buf.len()));
        }
        Mutation::Overwrite(i, b) => {
            let i = i.index(buf.len());
            buf[i] = *b;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn random_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..300)) {
        exercise(&input);
    }

    #[test]
    fn mutated_fixtures_never_panic(
        which in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..5),
    ) {
        let (_, original) = &blobs()[which.index(blobs().len())];
        let mut input = original.clone();
        for m in &mutations {
            apply(&mut input, m);
        }
        exercise(&input);
    }

    /// Fixture envelopes embedded into a batch, then mutated.
    #[test]
    fn mutated_fixture_batches_never_panic(
        picks in prop::collection::vec(any::<prop::sample::Index>(), 1..4),
        mutations in prop::collection::vec(mutation(), 0..3),
    ) {
        let items: Vec<&[u8]> = picks.iter().map(|i| &blobs()[i.index(blobs().len())].1[..]).collect();
        let mut out = bytes::BytesMut::new();
        batch::encode(&items, &mut out);
        let mut input = out.to_vec();
        for m in &mutations {
            apply(&mut input, m);
        }
        exercise(&input);
    }
}

#[test]
fn every_fixture_blob_unmutated() {
    for (at, blob) in blobs() {
        let r = std::panic::catch_unwind(|| exercise(blob));
        assert!(r.is_ok(), "{at}");
    }
}

/// A length prefix claiming 2^60 bytes, at the top level and nested, is an
/// error returned at once (nothing is reserved for the claimed length).
#[test]
fn huge_length_prefix_fails_fast() {
    let mut inputs = Vec::new();
    for field in [1u64, 2, 3, 4, 6, 9] {
        let mut b = Vec::new();
        put_varint(field << 3 | 2, &mut b);
        put_varint(1 << 60, &mut b);
        b.extend_from_slice(b"xyz");
        inputs.push(b);
    }
    // log { payload: len 2^60 }
    let mut inner = vec![0x0a];
    put_varint(1 << 60, &mut inner);
    let mut b = vec![0x22];
    put_varint(inner.len() as u64, &mut b);
    b.extend(inner);
    inputs.push(b);
    for input in &inputs {
        let started = Instant::now();
        assert!(EnvelopeView::parse(input).is_err(), "{input:02x?}");
        assert!(v2::decode(input).is_err(), "{input:02x?}");
        assert!(batch::entries(input).is_err() || input[0] != 0x0a);
        assert!(Envelope::decode(&input[..]).is_err());
        let _ = v1::decode(input);
        let _ = events::Envelope::decode(&input[..]);
        assert!(started.elapsed() < Duration::from_millis(100));
    }
}
