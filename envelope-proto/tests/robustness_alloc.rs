//! Allocation behaviour of the decoders, measured with a counting global
//! allocator (this file holds one test so nothing else allocates meanwhile):
//! the routing view never allocates, `batch::split` does not allocate per
//! envelope, and no decoder makes an allocation larger than the input
//! justifies (a length prefix is never trusted).
#![allow(unsafe_code)]

#[path = "common/fixtures.rs"]
mod fixtures;
#[path = "common/envelopes.rs"]
mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};
use envelope_proto::loggregator_v2::{Envelope, EnvelopeBatch};
use envelope_proto::view::EnvelopeView;
use envelope_proto::{batch, events, v1, v2};
use prost::Message as _;

struct Counting;

static COUNT: AtomicUsize = AtomicUsize::new(0);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        COUNT.fetch_add(1, Ordering::Relaxed);
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        COUNT.fetch_add(1, Ordering::Relaxed);
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// (allocations, largest allocation) made by `f`.
fn measure<T>(f: impl FnOnce() -> T) -> (usize, usize, T) {
    let before = COUNT.load(Ordering::Relaxed);
    LARGEST.store(0, Ordering::Relaxed);
    let out = std::hint::black_box(f());
    (
        COUNT.load(Ordering::Relaxed) - before,
        LARGEST.load(Ordering::Relaxed),
        out,
    )
}

fn view_fixture_envelopes() {
    let mut envelopes = Vec::new();
    for (at, blob) in fixtures::fixture_blobs("v2") {
        if EnvelopeView::parse(&blob).is_ok() {
            envelopes.push((at, blob));
        }
    }
    assert!(envelopes.len() > 20);
    for (at, blob) in &envelopes {
        let (count, _, ()) = measure(|| {
            let v = EnvelopeView::parse(blob).expect("parsed before");
            std::hint::black_box((
                v.timestamp(),
                v.source_id(),
                v.instance_id(),
                v.kind(),
                v.log_type(),
                v.log_payload(),
                v.counter_name(),
                v.gauge_names_hash(),
                v.tag("source_type"),
                v.tag("absent"),
                v.event(),
                v.timer_span(),
            ));
        });
        assert_eq!(count, 0, "view allocated for {at}");
    }
}

fn split_does_not_allocate_per_envelope() {
    let env = Envelope {
        source_id: "app".into(),
        ..Default::default()
    };
    for n in [1usize, 10, 1000] {
        let raw = EnvelopeBatch {
            batch: vec![env.clone(); n],
        }
        .encode_to_vec();
        // shaped like tonic's receive buffer
        let frozen = BytesMut::from(&raw[..]).freeze();
        let (count, _, parts) =
            measure(|| batch::split(&frozen).map(|s| s.map(|b| b.len()).sum::<usize>()));
        assert_eq!(parts, Ok(n * 5));
        assert!(count <= 1, "split of {n} envelopes allocated {count} times");
    }
}

type Check<'a> = (&'static str, Box<dyn Fn() + 'a>);

fn largest_allocation_is_bounded_by_the_input() {
    // Hostile inputs: huge length prefixes, many tiny envelopes, deep groups.
    let mut inputs: Vec<Vec<u8>> = Vec::new();
    for field in 1u64..=10 {
        let mut b = Vec::new();
        support::put_varint(field << 3 | 2, &mut b);
        support::put_varint(1 << 60, &mut b);
        b.extend_from_slice(&[0x0a; 64]);
        inputs.push(b);
    }
    inputs.push([0x0a, 0x00].repeat(2000));
    inputs.push(vec![0x0b; 5000]);
    inputs.push([0x4a, 0x00].repeat(2000));
    for (_, blob) in fixtures::fixture_blobs("v1")
        .into_iter()
        .chain(fixtures::fixture_blobs("v2"))
    {
        inputs.push(blob);
    }
    // Pseudo-random bytes (xorshift, fixed seed).
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for len in (0..2000).step_by(7) {
        let mut b = Vec::with_capacity(len);
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b.push(x as u8);
        }
        inputs.push(b);
    }
    let element = std::mem::size_of::<Envelope>().max(std::mem::size_of::<events::Envelope>());
    for input in &inputs {
        // The input can justify one decoded element per byte, Vec doubling
        // included, plus a small constant.
        let bound = 2 * element * input.len() + 4096;
        let owned = Bytes::copy_from_slice(input);
        let checks: [Check<'_>; 8] = [
            (
                "view",
                Box::new(|| {
                    let _ = std::hint::black_box(EnvelopeView::parse(input));
                }),
            ),
            ("split", Box::new(|| drop(batch::split(&owned)))),
            ("v2::decode", Box::new(|| drop(v2::decode(input)))),
            (
                "v2::decode_batch",
                Box::new(|| drop(v2::decode_batch(input))),
            ),
            ("v1::decode", Box::new(|| drop(v1::decode(input)))),
            (
                "prost Envelope",
                Box::new(|| drop(Envelope::decode(&input[..]))),
            ),
            (
                "prost EnvelopeBatch",
                Box::new(|| drop(EnvelopeBatch::decode(&input[..]))),
            ),
            (
                "prost v1 Envelope",
                Box::new(|| drop(events::Envelope::decode(&input[..]))),
            ),
        ];
        for (name, f) in &checks {
            let (_, largest, ()) = measure(f);
            assert!(
                largest <= bound,
                "{name} allocated {largest} bytes for a {}-byte input",
                input.len()
            );
        }
    }
}

#[test]
fn decoder_allocations() {
    view_fixture_envelopes();
    split_does_not_allocate_per_envelope();
    largest_allocation_is_bounded_by_the_input();
}
