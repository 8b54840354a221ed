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
use crate::view::{EnvelopeView, Kind};

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

/// Most tags rendered from the encoded bytes without decoding (more, and
/// the envelope is decoded first).
const VIEW_TAGS: usize = 16;

/// Appends the JSON of one *encoded* envelope, byte-equal to
/// [`write_envelope`] of its decoded form. Logs, counters, timers and events
/// with at most [`VIEW_TAGS`] distinct tags and no deprecated tags are
/// written straight from [`EnvelopeView`] (no allocation); anything else is
/// decoded with Go's rules ([`crate::v2::decode`]) first.
pub fn write_encoded(out: &mut String, encoded: &[u8]) -> Result<(), crate::v2::DecodeError> {
    if let Ok(view) = EnvelopeView::parse(encoded)
        && write_view(out, &view)
    {
        return Ok(());
    }
    let env = crate::v2::decode(encoded)?;
    write_envelope(out, &env);
    Ok(())
}

/// The view fast path; `false` (nothing written) when it does not apply.
fn write_view(out: &mut String, v: &EnvelopeView<'_>) -> bool {
    if v.has_deprecated_tags() || matches!(v.kind(), Kind::Gauge) {
        return false;
    }
    // Tags sorted by key, as a decoded map iterates; duplicates (the last
    // wins when decoding) and many tags take the decoding path.
    let mut tags: [(&[u8], &[u8]); VIEW_TAGS] = [(&[], &[]); VIEW_TAGS];
    let mut n = 0;
    for (k, val) in v.tags() {
        if n == VIEW_TAGS {
            return false;
        }
        tags[n] = (k, val);
        n += 1;
    }
    let tags = &mut tags[..n];
    tags.sort_unstable_by(|a, b| a.0.cmp(b.0));
    if tags.windows(2).any(|w| w[0].0 == w[1].0) {
        return false;
    }
    let start = out.len();
    out.push_str("{\"timestamp\":");
    write_i64(out, v.timestamp());
    out.push_str(",\"source_id\":");
    write_str(out, v.source_id());
    out.push_str(",\"instance_id\":");
    write_str(out, v.instance_id());
    out.push_str(",\"deprecated_tags\":{},\"tags\":{");
    for (i, (k, val)) in tags.iter().enumerate() {
        let (Ok(k), Ok(val)) = (std::str::from_utf8(k), std::str::from_utf8(val)) else {
            out.truncate(start);
            return false;
        };
        if i > 0 {
            out.push(',');
        }
        write_str(out, k);
        out.push(':');
        write_str(out, val);
    }
    out.push('}');
    match v.kind() {
        Kind::None => {}
        Kind::Log => {
            out.push_str(",\"log\":{\"payload\":\"");
            write_base64(out, v.log_payload());
            out.push_str("\",\"type\":");
            match log::Type::try_from(v.log_type()) {
                Ok(t) => {
                    out.push('"');
                    out.push_str(t.as_str_name());
                    out.push('"');
                }
                Err(_) => {
                    let _ = write!(out, "{}", v.log_type());
                }
            }
            out.push('}');
        }
        Kind::Counter => {
            out.push_str(",\"counter\":{\"name\":");
            write_str(out, v.counter_name());
            out.push_str(",\"delta\":");
            write_u64(out, v.counter_delta());
            out.push_str(",\"total\":");
            write_u64(out, v.counter_total());
            out.push('}');
        }
        Kind::Timer => {
            let (start_ns, stop_ns) = v.timer_span();
            out.push_str(",\"timer\":{\"name\":");
            write_str(out, v.timer_name());
            out.push_str(",\"start\":");
            write_i64(out, start_ns);
            out.push_str(",\"stop\":");
            write_i64(out, stop_ns);
            out.push('}');
        }
        Kind::Event => {
            let (title, body) = v.event();
            out.push_str(",\"event\":{\"title\":");
            write_str(out, title);
            out.push_str(",\"body\":");
            write_str(out, body);
            out.push('}');
        }
        // Refused above; kept total without a panic path.
        Kind::Gauge => {
            out.truncate(start);
            return false;
        }
    }
    out.push('}');
    true
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

    fn encoded_json(bytes: &[u8]) -> (String, String) {
        let mut fast = String::new();
        write_encoded(&mut fast, bytes).expect("renders");
        let slow = envelope_to_json(&crate::v2::decode(bytes).expect("decodes"));
        (fast, slow)
    }

    #[test]
    fn encoded_envelopes_render_as_their_decoded_form() {
        use crate::loggregator_v2::{Counter, Event, Gauge, GaugeValue, Log, Timer};
        use prost::Message as _;
        let with = |tags: &[(&str, &str)], message| Envelope {
            timestamp: 1_700_000_000_123_456_789,
            source_id: "app \"x\"".into(),
            instance_id: "3".into(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            message,
            ..Envelope::default()
        };
        let kinds = [
            None,
            Some(Message::Log(Log {
                payload: b"hi\n\x00\xff".to_vec().into(),
                r#type: 1,
            })),
            Some(Message::Log(Log {
                payload: Default::default(),
                r#type: 7,
            })),
            Some(Message::Counter(Counter {
                name: "req".into(),
                delta: 1,
                total: u64::MAX,
            })),
            Some(Message::Timer(Timer {
                name: "http".into(),
                start: -5,
                stop: 9,
            })),
            Some(Message::Event(Event {
                title: "t".into(),
                body: "b\u{2028}".into(),
            })),
            Some(Message::Gauge(Gauge {
                metrics: [(
                    "cpu".to_owned(),
                    GaugeValue {
                        unit: "%".into(),
                        value: 0.5,
                    },
                )]
                .into(),
            })),
        ];
        for message in kinds {
            let env = with(&[("source_type", "APP"), ("a", "1")], message);
            let (fast, slow) = encoded_json(&env.encode_to_vec());
            assert_eq!(fast, slow);
        }
        // Tags out of key order on the wire (two concatenated messages merge),
        // and a duplicate key (the last wins): still the decoded form.
        let mut unsorted = with(&[("zeta", "1")], None).encode_to_vec();
        unsorted.extend(with(&[("alpha", "2")], None).encode_to_vec());
        let (fast, slow) = encoded_json(&unsorted);
        assert_eq!(fast, slow);
        assert!(fast.contains("{\"alpha\":\"2\",\"zeta\":\"1\"}"), "{fast}");
        let mut dup = with(&[("k", "first")], None).encode_to_vec();
        dup.extend(with(&[("k", "last")], None).encode_to_vec());
        let (fast, slow) = encoded_json(&dup);
        assert_eq!(fast, slow);
        assert!(fast.contains("\"k\":\"last\""), "{fast}");
        let many: Vec<(String, String)> =
            (0..20).map(|i| (format!("k{i:02}"), "v".into())).collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (fast, slow) = encoded_json(&with(&many, None).encode_to_vec());
        assert_eq!(fast, slow);
        assert!(write_encoded(&mut String::new(), &[0x0a, 0x05]).is_err());
    }

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
