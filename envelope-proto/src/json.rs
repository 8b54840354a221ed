//! The v2 JSON form of the RLP gateway and log cache (reference §4.3):
//! protojson with `EmitUnpopulated`, written compactly.
//!
//! The output is byte-equal to the `compact` form of Go's output in
//! `shared/fixtures/v2/batches.json` and `rlp_tag_convergence.json`:
//! - keys in declaration order (`timestamp`, `source_id`, `instance_id`,
//!   `deprecated_tags`, `tags`, then the one set member of `message`), proto
//!   field names, map keys sorted;
//! - unset scalars and maps still appear (`"instance_id":""`, `"tags":{}`),
//!   an unset oneof does not;
//! - 64-bit integers are JSON strings, doubles are numbers
//!   ([`crate::gofmt::write_json_number`]: `1e-7`, `1e+21`, `-0`, and the
//!   strings `"NaN"`, `"Infinity"`, `"-Infinity"`);
//! - `payload` is standard base64 with padding; `Log.type` is the enum name
//!   (`"OUT"`, `"ERR"`) or the bare number when it has no name;
//! - strings escape only `"`, `\` and control characters below U+0020
//!   (`\b \f \n \r \t`, else `\u00xx`); HTML characters, DEL, U+2028/U+2029
//!   and non-ASCII are written as is.
//!
//! Go's encoder randomly inserts a space after some commas; this one never
//! does (clients must parse JSON, not match bytes).

use std::fmt::Write as _;

use crate::gofmt::write_json_number;
use crate::loggregator_v2::{Envelope, EnvelopeBatch, Value, envelope::Message, log, value::Data};

/// `{"batch":[...]}` for an `EnvelopeBatch`.
pub fn batch_to_json(batch: &EnvelopeBatch) -> String {
    let mut out = String::with_capacity(64 + batch.batch.len() * 256);
    write_batch(&mut out, batch);
    out
}

/// Appends `{"batch":[...]}` for the given envelopes to `out` (the batch
/// need not be built as an `EnvelopeBatch`).
pub fn write_batch_of<'a>(out: &mut String, envelopes: impl IntoIterator<Item = &'a Envelope>) {
    out.push_str("{\"batch\":[");
    for (i, env) in envelopes.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_envelope(out, env);
    }
    out.push_str("]}");
}

/// Appends the JSON of an `EnvelopeBatch` to `out`.
pub fn write_batch(out: &mut String, batch: &EnvelopeBatch) {
    write_batch_of(out, &batch.batch);
}

/// The JSON of one envelope.
pub fn envelope_to_json(env: &Envelope) -> String {
    let mut out = String::with_capacity(256);
    write_envelope(&mut out, env);
    out
}

/// Appends the JSON of one envelope to `out`.
pub fn write_envelope(out: &mut String, env: &Envelope) {
    out.push_str("{\"timestamp\":");
    write_i64(out, env.timestamp);
    out.push_str(",\"source_id\":");
    write_str(out, &env.source_id);
    out.push_str(",\"instance_id\":");
    write_str(out, &env.instance_id);
    out.push_str(",\"deprecated_tags\":{");
    for (i, (k, v)) in env.deprecated_tags.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, k);
        out.push(':');
        write_value(out, v);
    }
    out.push_str("},\"tags\":{");
    for (i, (k, v)) in env.tags.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, k);
        out.push(':');
        write_str(out, v);
    }
    out.push('}');
    match &env.message {
        None => {}
        Some(Message::Log(l)) => {
            out.push_str(",\"log\":{\"payload\":\"");
            write_base64(out, &l.payload);
            out.push_str("\",\"type\":");
            match log::Type::try_from(l.r#type) {
                Ok(t) => {
                    out.push('"');
                    out.push_str(t.as_str_name());
                    out.push('"');
                }
                Err(_) => {
                    let _ = write!(out, "{}", l.r#type);
                }
            }
            out.push('}');
        }
        Some(Message::Counter(c)) => {
            out.push_str(",\"counter\":{\"name\":");
            write_str(out, &c.name);
            out.push_str(",\"delta\":");
            write_u64(out, c.delta);
            out.push_str(",\"total\":");
            write_u64(out, c.total);
            out.push('}');
        }
        Some(Message::Gauge(g)) => {
            out.push_str(",\"gauge\":{\"metrics\":{");
            for (i, (k, v)) in g.metrics.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(out, k);
                out.push_str(":{\"unit\":");
                write_str(out, &v.unit);
                out.push_str(",\"value\":");
                write_json_number(out, v.value);
                out.push('}');
            }
            out.push_str("}}");
        }
        Some(Message::Timer(t)) => {
            out.push_str(",\"timer\":{\"name\":");
            write_str(out, &t.name);
            out.push_str(",\"start\":");
            write_i64(out, t.start);
            out.push_str(",\"stop\":");
            write_i64(out, t.stop);
            out.push('}');
        }
        Some(Message::Event(e)) => {
            out.push_str(",\"event\":{\"title\":");
            write_str(out, &e.title);
            out.push_str(",\"body\":");
            write_str(out, &e.body);
            out.push('}');
        }
    }
    out.push('}');
}

fn write_value(out: &mut String, v: &Value) {
    match &v.data {
        None => out.push_str("{}"),
        Some(Data::Text(t)) => {
            out.push_str("{\"text\":");
            write_str(out, t);
            out.push('}');
        }
        Some(Data::Integer(i)) => {
            out.push_str("{\"integer\":");
            write_i64(out, *i);
            out.push('}');
        }
        Some(Data::Decimal(d)) => {
            out.push_str("{\"decimal\":");
            write_json_number(out, *d);
            out.push('}');
        }
    }
}

fn write_i64(out: &mut String, v: i64) {
    let _ = write!(out, "\"{v}\"");
}

fn write_u64(out: &mut String, v: u64) {
    let _ = write!(out, "\"{v}\"");
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends a JSON string literal with protojson's escaping.
pub fn write_str(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: Option<&str> = match b {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            0x08 => Some("\\b"),
            0x0c => Some("\\f"),
            0x00..=0x1f => None,
            _ => continue,
        };
        // Only ASCII bytes reach here, so `i` is a char boundary.
        out.push_str(&s[start..i]);
        match esc {
            Some(e) => out.push_str(e),
            None => {
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0x0f)]));
            }
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Appends standard base64 (with `=` padding).
pub fn write_base64(out: &mut String, data: &[u8]) {
    out.reserve(data.len().div_ceil(3) * 4);
    let mut chunks = data.chunks_exact(3);
    for c in &mut chunks {
        let n = (u32::from(c[0]) << 16) | (u32::from(c[1]) << 8) | u32::from(c[2]);
        for shift in [18, 12, 6, 0] {
            out.push(char::from(B64[((n >> shift) & 63) as usize]));
        }
    }
    match *chunks.remainder() {
        [a] => {
            let n = u32::from(a) << 16;
            out.push(char::from(B64[((n >> 18) & 63) as usize]));
            out.push(char::from(B64[((n >> 12) & 63) as usize]));
            out.push_str("==");
        }
        [a, b] => {
            let n = (u32::from(a) << 16) | (u32::from(b) << 8);
            out.push(char::from(B64[((n >> 18) & 63) as usize]));
            out.push(char::from(B64[((n >> 12) & 63) as usize]));
            out.push(char::from(B64[((n >> 6) & 63) as usize]));
            out.push('=');
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            let mut s = String::new();
            write_base64(&mut s, input.as_bytes());
            assert_eq!(s, want);
        }
    }

    #[test]
    fn strings_escape_like_protojson() {
        let mut s = String::new();
        write_str(&mut s, "a\"b\\c\n\u{1}\u{1b}\u{7f}<&>\u{2028}é");
        assert_eq!(s, "\"a\\\"b\\\\c\\n\\u0001\\u001b\u{7f}<&>\u{2028}é\"");
    }

    #[test]
    fn empty_envelope_emits_unpopulated_fields() {
        assert_eq!(
            envelope_to_json(&Envelope::default()),
            r#"{"timestamp":"0","source_id":"","instance_id":"","deprecated_tags":{},"tags":{}}"#
        );
        assert_eq!(batch_to_json(&EnvelopeBatch::default()), r#"{"batch":[]}"#);
    }
}
