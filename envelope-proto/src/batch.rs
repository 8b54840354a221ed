//! Split and build encoded `EnvelopeBatch` messages without decoding or
//! re-encoding the envelopes inside.
//!
//! An `EnvelopeBatch` is `repeated Envelope batch = 1`: on the wire, a run of
//! length-delimited field-1 records. [`split`] checks the batch's own framing
//! once (unknown fields and field 1 with another wire type are skipped, as Go
//! does) and then yields each envelope as a zero-copy [`Bytes`] slice of the
//! input. The envelopes themselves are not validated here: parse each with
//! [`crate::view::EnvelopeView::parse`] before routing it. [`encode`] writes
//! such slices back as a batch.

use bytes::{Bytes, BytesMut};

use crate::view::ViewError;
use crate::wire::WireType::Len;
use crate::wire::{Reader, WireError, put_varint, varint_len};

/// Tag byte of field 1, wire type 2 (`batch`).
const BATCH_TAG: u8 = 0x0a;

/// Why bytes are not a well-framed `EnvelopeBatch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// The batch's wire framing is malformed.
    #[error("malformed envelope batch: {0}")]
    Malformed(#[from] ViewError),
}

impl From<WireError> for BatchError {
    fn from(e: WireError) -> Self {
        BatchError::Malformed(e.into())
    }
}

/// Checks the framing of `batch` and counts its envelopes.
pub fn count(batch: &[u8]) -> Result<usize, BatchError> {
    let mut n = 0;
    let mut r = Reader::new(batch);
    while !r.is_empty() {
        match r.tag()? {
            (1, Len) => {
                r.bytes()?;
                n += 1;
            }
            (f, wt) => r.skip(f, wt)?,
        }
    }
    Ok(n)
}

/// Borrowing split: the encoded envelopes of `batch` as sub-slices.
pub fn entries(batch: &[u8]) -> Result<Entries<'_>, BatchError> {
    let remaining = count(batch)?;
    Ok(Entries {
        reader: Reader::new(batch),
        remaining,
    })
}

/// Zero-copy split: the encoded envelopes of `batch` as [`Bytes`] slices
/// sharing its buffer. Fails if the batch framing is malformed; then no
/// envelope is yielded (Go rejects the whole batch too).
pub fn split(batch: &Bytes) -> Result<Split, BatchError> {
    let remaining = count(batch)?;
    Ok(Split {
        batch: batch.clone(),
        pos: 0,
        remaining,
    })
}

/// Iterator over the encoded envelopes of a batch, see [`entries`].
#[derive(Debug, Clone)]
pub struct Entries<'a> {
    reader: Reader<'a>,
    remaining: usize,
}

impl<'a> Iterator for Entries<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.remaining == 0 {
            return None;
        }
        // Framing was validated by `entries`; an error cannot occur, and
        // would only end the iteration.
        while !self.reader.is_empty() {
            match self.reader.tag().ok()? {
                (1, Len) => {
                    self.remaining -= 1;
                    return self.reader.bytes().ok();
                }
                (f, wt) => self.reader.skip(f, wt).ok()?,
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Entries<'_> {}

/// Iterator over the encoded envelopes of a batch as [`Bytes`], see [`split`].
#[derive(Debug, Clone)]
pub struct Split {
    batch: Bytes,
    pos: usize,
    remaining: usize,
}

impl Iterator for Split {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        if self.remaining == 0 {
            return None;
        }
        let mut r = Reader::at(&self.batch, self.pos);
        while !r.is_empty() {
            match r.tag().ok()? {
                (1, Len) => {
                    let len = r.bytes().ok()?.len();
                    let end = r.pos();
                    self.pos = end;
                    self.remaining -= 1;
                    return Some(self.batch.slice(end - len..end));
                }
                (f, wt) => r.skip(f, wt).ok()?,
            }
        }
        self.pos = self.batch.len();
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Split {}

/// Appends one encoded envelope to an encoded batch being built in `out`.
#[inline]
pub fn push(envelope: &[u8], out: &mut BytesMut) {
    out.reserve(1 + varint_len(envelope.len() as u64) + envelope.len());
    out.extend_from_slice(&[BATCH_TAG]);
    put_varint(envelope.len() as u64, out);
    out.extend_from_slice(envelope);
}

/// Appends an encoded `EnvelopeBatch` holding `items` (already-encoded
/// envelopes, copied as they are) to `out`.
pub fn encode<B: AsRef<[u8]>>(items: &[B], out: &mut BytesMut) {
    out.reserve(encoded_len(items));
    for item in items {
        push(item.as_ref(), out);
    }
}

/// Size of the batch [`encode`] writes for `items`.
pub fn encoded_len<B: AsRef<[u8]>>(items: &[B]) -> usize {
    items.iter().map(|i| entry_len(i.as_ref().len())).sum()
}

/// Bytes one entry of `len` bytes takes in a batch: its tag, its length
/// varint and itself.
///
/// The same framing holds for every message made of `repeated bytes` or
/// `repeated Envelope` field 1: `EnvelopeBatch`, v1 `BatchResponse`,
/// `RecentLogsResponse`, `ContainerMetricsResponse`, and (for one entry)
/// `Response` and `EnvelopeData`. gRPC's own 5-byte message prefix is not
/// part of the message size that receivers limit.
#[inline]
pub fn entry_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

/// Whether an entry of `len` bytes fits, alone, in a message of at most
/// `limit` bytes.
#[inline]
pub fn fits_alone(len: usize, limit: usize) -> bool {
    entry_len(len) <= limit
}

/// How many leading `items` fit in one batch of at most `limit` encoded
/// bytes: the batch to send next when the receiver accepts messages up to
/// `limit` bytes. At least one item is taken whenever the first fits alone;
/// `0` for a non-empty slice means the first item cannot be sent in any
/// batch (check with [`fits_alone`] and drop it).
pub fn fitting<B: AsRef<[u8]>>(items: &[B], limit: usize) -> usize {
    let mut total = 0usize;
    for (n, item) in items.iter().enumerate() {
        total += entry_len(item.as_ref().len());
        if total > limit {
            return n;
        }
    }
    items.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_skips_unknown_fields_and_wrong_wire_types() {
        // env "ab", field 2 varint, field 1 as varint (unknown), env "", env "c"
        let raw = Bytes::from_static(&[
            0x0a, 0x02, b'a', b'b', 0x10, 0x05, 0x08, 0x01, 0x0a, 0x00, 0x0a, 0x01, b'c',
        ]);
        let parts: Vec<Bytes> = split(&raw).expect("valid").collect();
        assert_eq!(parts, [&b"ab"[..], b"", b"c"]);
        let borrowed: Vec<&[u8]> = entries(&raw).expect("valid").collect();
        assert_eq!(borrowed, [&b"ab"[..], b"", b"c"]);
        assert_eq!(split(&raw).expect("valid").len(), 3);
    }

    #[test]
    fn malformed_framing_is_an_error() {
        for bad in [&[0x0a, 0x05, b'a'][..], &[0x0a], &[0x00], &[0x0f], &[0x0c]] {
            let b = Bytes::copy_from_slice(bad);
            assert!(split(&b).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn encode_writes_field_one_records() {
        let items = [Bytes::from_static(b"xy"), Bytes::from(vec![7u8; 200])];
        let mut out = BytesMut::new();
        encode(&items, &mut out);
        assert_eq!(out.len(), encoded_len(&items));
        assert_eq!(&out[..4], &[0x0a, 0x02, b'x', b'y']);
        assert_eq!(&out[4..7], &[0x0a, 0xc8, 0x01]);
        let back: Vec<Bytes> = split(&out.freeze()).expect("valid").collect();
        assert_eq!(back, items);
    }

    #[test]
    fn fitting_closes_a_batch_before_it_exceeds_the_limit() {
        // Entries of 100 bytes take 102 (tag, 1-byte length, body);
        // 200 bytes take 203 (2-byte length).
        let small = Bytes::from(vec![1u8; 100]);
        let big = Bytes::from(vec![2u8; 200]);
        assert_eq!(entry_len(100), 102);
        assert_eq!(entry_len(200), 203);
        let items = [small.clone(), small.clone(), big.clone(), small.clone()];
        assert_eq!(fitting(&items, 204), 2, "third would make 407");
        assert_eq!(fitting(&items, 203), 1);
        assert_eq!(fitting(&items, 101), 0, "first does not fit alone");
        assert_eq!(fitting(&items[2..], 203), 1, "exactly the limit fits");
        assert_eq!(fitting(&items[2..], 202), 0);
        assert_eq!(fitting(&items, 10_000), 4);
        assert_eq!(fitting::<Bytes>(&[], 0), 0);
        // The limit is on the encoded size.
        let n = fitting(&items, 305);
        let mut out = BytesMut::new();
        encode(&items[..n], &mut out);
        assert!(out.len() <= 305);
        assert_eq!(out.len(), encoded_len(&items[..n]));
        assert!(fits_alone(200, 203));
        assert!(!fits_alone(200, 202));
    }
}
