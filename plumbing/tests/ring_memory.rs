//! Memory of a [`Ring`] follows what it holds, not its capacity, measured with a counting
//! global allocator (this file holds one test so nothing else allocates meanwhile): a new ring
//! allocates nothing for its entries, a full one holds `capacity` entries (the oldest dropped
//! and counted) in about `capacity` slots, and a drained one gives its blocks back.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use plumbing::ring::{BLOCK_ENTRIES, Ring};

struct Counting;

/// Bytes currently allocated through the global allocator.
static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// A 64-byte entry (the size class of a `Bytes` plus change).
type Entry = [u64; 8];
/// Bytes one slot takes: the entry and a state word.
const SLOT: isize = (size_of::<Entry>() + size_of::<usize>()) as isize;
/// Bytes of one block.
const BLOCK: isize = BLOCK_ENTRIES as isize * SLOT + 8;

fn entry(i: u64) -> Entry {
    [i; 8]
}

#[test]
fn ring_memory_follows_contents() {
    const CAP: usize = 10_000;
    let before = live();
    let ring: Ring<Entry> = Ring::new(CAP);
    let idle = live() - before;
    assert!(
        idle < 1024,
        "an idle ring of {CAP} allocated {idle} bytes (full capacity would be {})",
        CAP as isize * SLOT
    );
    assert_eq!(ring.capacity(), CAP);

    // A few entries take a block, not the capacity.
    for i in 0..10 {
        ring.push(entry(i));
    }
    let few = live() - before;
    assert!(few <= 2 * BLOCK, "10 entries took {few} bytes");

    // Busy: the ring still holds `capacity` entries, drops (and counts) the oldest.
    let extra = 5_000u64;
    let mut lost = 0;
    for i in 10..CAP as u64 + extra {
        lost += u64::from(ring.push(entry(i)));
    }
    assert_eq!(lost, extra);
    assert_eq!(ring.len(), CAP);
    assert_eq!(ring.take_dropped(), extra);
    let full = live() - before;
    let need = CAP as isize * SLOT;
    assert!(
        full >= need && full <= need + 3 * BLOCK,
        "a full ring took {full} bytes for {need} bytes of slots"
    );

    // Half drained: the blocks behind the reader are gone.
    let mut out = Vec::with_capacity(CAP);
    assert_eq!(ring.drain_into(&mut out, CAP / 2), CAP / 2);
    assert_eq!(out[0], entry(extra), "oldest surviving entry first");
    let half = live() - before - (out.capacity() * size_of::<Entry>()) as isize;
    assert!(
        half <= need / 2 + 3 * BLOCK,
        "half drained: {half} bytes for {} bytes of slots",
        need / 2
    );

    // Emptied: at most the block the reader stands in.
    out.clear();
    assert_eq!(ring.drain_into(&mut out, CAP), CAP / 2);
    assert!(ring.is_empty());
    let empty = live() - before - (out.capacity() * size_of::<Entry>()) as isize;
    assert!(empty <= BLOCK, "an emptied ring kept {empty} bytes");
    drop(out);

    // Steady trickle through an otherwise idle ring: memory stays at a block or two.
    let mut peak = 0;
    for i in 0..100_000 {
        ring.push(entry(i));
        peak = peak.max(live() - before);
        assert_eq!(ring.pop(), Some(entry(i)));
    }
    assert!(peak <= 2 * BLOCK, "a trickle peaked at {peak} bytes");
    assert_eq!(ring.take_dropped(), 0);

    drop(ring);
    assert_eq!(live() - before, 0, "dropping the ring frees everything");
}
