//! v2 → v1 for plain logs straight from the wire: the doppler's hot path when
//! v1 subscribers (the traffic controller's firehose) are connected.
//!
//! [`log_to_v1`] writes the encoded `events.Envelope` that
//! [`to_v1`](super::to_v1) followed by [`crate::v1::encode`] would produce for
//! the same envelope (equal once decoded; field order and map-entry order on
//! the wire may differ, which protobuf does not observe), reading the fields
//! from an [`EnvelopeView`] instead of decoding into owned strings and maps.
//! It handles the common case only and declines the rest (the caller falls
//! back to the general conversion):
//! - the message is a `Log` with a non-empty payload;
//! - there are no `deprecated_tags` (their values would need rendering);
//! - tag `__v1_type` is not `Error` (that becomes an `Error` event).

use crate::view::{EnvelopeView, Kind};
use crate::wire::{put_varint, varint_len};

/// Tags that become envelope fields or are dropped by the conversion, in the
/// order of the `specials` array below.
const SPECIAL: [&[u8]; 7] = [
    b"__v1_type",
    b"origin",
    b"deployment",
    b"job",
    b"index",
    b"ip",
    b"source_type",
];

/// Tags remembered from the first walk over them.
const HELD_TAGS: usize = 16;

/// v1 `EventType.LogMessage`.
const LOG_MESSAGE: u64 = 5;

/// Appends the v1 form of `view` to `out` and returns `true`, or returns
/// `false` (leaving `out` untouched) when the envelope is not a case this
/// fast path handles (see the module doc).
pub fn log_to_v1(view: &EnvelopeView<'_>, out: &mut Vec<u8>) -> bool {
    let payload = view.log_payload();
    if view.kind() != Kind::Log || view.has_deprecated_tags() || payload.is_empty() {
        return false;
    }
    // One walk over the tags: the entries go into a small stack buffer the two later passes
    // read (an envelope with more tags than it holds walks the wire again instead).
    let mut held: [(&[u8], &[u8]); HELD_TAGS] = [(b"", b""); HELD_TAGS];
    let mut count = 0;
    // Last occurrence wins, as in the decoded map.
    let mut specials: [&[u8]; 7] = [b""; 7];
    for (k, v) in view.tags() {
        if let Some(slot) = held.get_mut(count) {
            *slot = (k, v);
        }
        count += 1;
        if let Some(i) = SPECIAL.iter().position(|s| *s == k) {
            specials[i] = v;
        }
    }
    let [v1_type, origin, deployment, job, index, ip, source_type] = specials;
    if v1_type == b"Error" {
        return false;
    }
    let source_id = view.source_id().as_bytes();
    let instance_id = view.instance_id().as_bytes();
    let timestamp = view.timestamp() as u64;
    // v2 OUT = 0, anything else is ERR; v1 OUT = 1, ERR = 2.
    let message_type: u64 = if view.log_type() == 0 { 1 } else { 2 };
    // A non-empty `source_id` replaces any tag of that name.
    let kept = |k: &[u8]| !SPECIAL.contains(&k) && (k != b"source_id" || source_id.is_empty());
    let each_kept = |f: &mut dyn FnMut(&[u8], &[u8])| {
        if count <= HELD_TAGS {
            for &(k, v) in &held[..count] {
                if kept(k) {
                    f(k, v);
                }
            }
        } else {
            for (k, v) in view.tags() {
                if kept(k) {
                    f(k, v);
                }
            }
        }
    };

    let log_len = field_len(1, payload.len())
        + 1
        + varint_len(message_type)
        + 1
        + varint_len(timestamp)
        + field_len(4, source_id.len())
        + field_len(5, source_type.len())
        + field_len(6, instance_id.len());
    let mut total = field_len(1, origin.len())
        + 1
        + varint_len(LOG_MESSAGE)
        + 1
        + varint_len(timestamp)
        + field_len(8, log_len)
        + field_len(13, deployment.len())
        + field_len(14, job.len())
        + field_len(15, index.len())
        + field_len(16, ip.len());
    each_kept(&mut |k, v| total += field_len(17, entry_len(k, v)));
    if !source_id.is_empty() {
        total += field_len(17, entry_len(b"source_id", source_id));
    }
    out.reserve(total);

    put_bytes(out, 1, origin);
    put_varint_field(out, 2, LOG_MESSAGE);
    put_varint_field(out, 6, timestamp);
    put_key(out, 8, 2);
    put_varint(log_len as u64, out);
    put_bytes(out, 1, payload);
    put_varint_field(out, 2, message_type);
    put_varint_field(out, 3, timestamp);
    put_bytes(out, 4, source_id);
    put_bytes(out, 5, source_type);
    put_bytes(out, 6, instance_id);
    put_bytes(out, 13, deployment);
    put_bytes(out, 14, job);
    put_bytes(out, 15, index);
    put_bytes(out, 16, ip);
    each_kept(&mut |k, v| put_entry(out, k, v));
    if !source_id.is_empty() {
        put_entry(out, b"source_id", source_id);
    }
    true
}

/// Encoded size of a length-delimited field `field` with `len` bytes of body.
fn field_len(field: u32, len: usize) -> usize {
    varint_len(u64::from(field) << 3) + varint_len(len as u64) + len
}

/// Encoded size of a `map<string, string>` entry's body.
fn entry_len(k: &[u8], v: &[u8]) -> usize {
    field_len(1, k.len()) + field_len(2, v.len())
}

fn put_key(out: &mut Vec<u8>, field: u32, wire_type: u8) {
    put_varint((u64::from(field) << 3) | u64::from(wire_type), out);
}

fn put_varint_field(out: &mut Vec<u8>, field: u32, value: u64) {
    put_key(out, field, 0);
    put_varint(value, out);
}

fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_key(out, field, 2);
    put_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

fn put_entry(out: &mut Vec<u8>, k: &[u8], v: &[u8]) {
    put_key(out, 17, 2);
    put_varint(entry_len(k, v) as u64, out);
    put_bytes(out, 1, k);
    put_bytes(out, 2, v);
}
