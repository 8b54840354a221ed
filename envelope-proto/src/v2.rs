//! v2 (`loggregator.v2`, proto3) envelopes: a Go-compatible decoder.
//!
//! [`decode`] accepts and rejects exactly what Go's `proto.Unmarshal` does
//! (every case of `shared/fixtures/v2/invalid.json`):
//! - strings (including map keys and values) must be valid UTF-8, or decoding
//!   fails; `bytes` (the log payload) are not checked;
//! - a field whose wire type does not match its declaration is skipped as an
//!   unknown field; unknown fields are skipped (and not kept);
//! - enums are open (`Log.type` may be 7 or -1);
//! - of the `message` oneof the last member on the wire wins; the same member
//!   twice is merged; a map entry without key or value gets the default (an
//!   empty `GaugeValue`, not none); a duplicate map key: the last entry wins;
//! - truncation, varints over 10 bytes, field number 0, wire types 6/7 and an
//!   unmatched END_GROUP are errors.
//!
//! Decoding never panics and allocates only for what the input contains.
//!
//! Encoding is left to prost (`Message::encode`). Two differences from Go's
//! deterministic encoder matter to anyone who re-encodes instead of
//! forwarding the original bytes: prost writes the `message` oneof before
//! `instance_id`/`tags` (Go writes it last; both are valid protobuf), and
//! prost drops a `GaugeValue.value` of `-0.0` (proto3 default check by value;
//! Go checks the bits and keeps it, so syslog/JSON would show `-0`).

use bytes::Bytes;

use crate::loggregator_v2::{
    Counter, Envelope, EnvelopeBatch, Event, Gauge, GaugeValue, Log, Timer, Value, envelope, value,
};
use crate::wire::{Reader, Source, WireError, WireType};

/// Why bytes are not a valid v2 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not valid protobuf.
    #[error("cannot parse invalid wire-format data: {0}")]
    Wire(#[from] WireError),
    /// A proto3 string field holds invalid UTF-8.
    #[error("string field {0} contains invalid UTF-8")]
    InvalidUtf8(&'static str),
}

/// The distinct non-empty ids of `source_ids` (a v2 request's selector source ids), sorted, or
/// just `otherwise` when there are none: the sources a loss warning on a v2 stream is addressed
/// to (doppler's subscriber warnings and the RLP gateway's, reference §14.3).
pub fn warned_source_ids<'a>(
    source_ids: impl IntoIterator<Item = &'a str>,
    otherwise: &'a str,
) -> Vec<&'a str> {
    let mut ids: Vec<&str> = source_ids.into_iter().filter(|s| !s.is_empty()).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        ids.push(otherwise);
    }
    ids
}

/// Decodes one v2 envelope the way Go's `proto.Unmarshal` does. The log
/// payload is copied out of `buf`.
pub fn decode(buf: &[u8]) -> Result<Envelope, DecodeError> {
    let mut env = Envelope::default();
    merge_envelope(&mut env, buf, Source { whole: None })?;
    Ok(env)
}

/// Like [`decode`], but the log payload is a zero-copy slice of `buf`.
pub fn decode_bytes(buf: &Bytes) -> Result<Envelope, DecodeError> {
    let mut env = Envelope::default();
    merge_envelope(&mut env, buf, Source { whole: Some(buf) })?;
    Ok(env)
}

/// Decodes an `EnvelopeBatch` with the same rules as [`decode`].
pub fn decode_batch(buf: &[u8]) -> Result<EnvelopeBatch, DecodeError> {
    decode_batch_with(buf, Source { whole: None })
}

/// Like [`decode_batch`], with zero-copy log payloads.
pub fn decode_batch_bytes(buf: &Bytes) -> Result<EnvelopeBatch, DecodeError> {
    decode_batch_with(buf, Source { whole: Some(buf) })
}

fn decode_batch_with(buf: &[u8], src: Source<'_>) -> Result<EnvelopeBatch, DecodeError> {
    let mut batch = EnvelopeBatch::default();
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (num, wt) = r.tag()?;
        match (num, wt) {
            (1, Len) => {
                let mut env = Envelope::default();
                merge_envelope(&mut env, r.bytes()?, src)?;
                batch.batch.push(env);
            }
            _ => r.skip(num, wt)?,
        }
    }
    Ok(batch)
}

use WireType::{Fixed64, Len, Varint};

fn utf8(b: &[u8], field: &'static str) -> Result<String, DecodeError> {
    match std::str::from_utf8(b) {
        Ok(s) => Ok(s.to_owned()),
        Err(_) => Err(DecodeError::InvalidUtf8(field)),
    }
}

fn merge_envelope(env: &mut Envelope, buf: &[u8], src: Source<'_>) -> Result<(), DecodeError> {
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (num, wt) = r.tag()?;
        match (num, wt) {
            (1, Varint) => env.timestamp = r.varint()? as i64,
            (2, Len) => env.source_id = utf8(r.bytes()?, "loggregator.v2.Envelope.source_id")?,
            (8, Len) => {
                env.instance_id = utf8(r.bytes()?, "loggregator.v2.Envelope.instance_id")?;
            }
            (3, Len) => {
                let (k, v) = deprecated_tag_entry(r.bytes()?)?;
                env.deprecated_tags.insert(k, v);
            }
            (9, Len) => {
                let (k, v) = tag_entry(r.bytes()?)?;
                env.tags.insert(k, v);
            }
            (4, Len) => {
                let body = r.bytes()?;
                if !matches!(env.message, Some(envelope::Message::Log(_))) {
                    env.message = Some(envelope::Message::Log(Log::default()));
                }
                if let Some(envelope::Message::Log(m)) = &mut env.message {
                    merge_log(m, body, src)?;
                }
            }
            (5, Len) => {
                let body = r.bytes()?;
                if !matches!(env.message, Some(envelope::Message::Counter(_))) {
                    env.message = Some(envelope::Message::Counter(Counter::default()));
                }
                if let Some(envelope::Message::Counter(m)) = &mut env.message {
                    merge_counter(m, body)?;
                }
            }
            (6, Len) => {
                let body = r.bytes()?;
                if !matches!(env.message, Some(envelope::Message::Gauge(_))) {
                    env.message = Some(envelope::Message::Gauge(Gauge::default()));
                }
                if let Some(envelope::Message::Gauge(m)) = &mut env.message {
                    merge_gauge(m, body)?;
                }
            }
            (7, Len) => {
                let body = r.bytes()?;
                if !matches!(env.message, Some(envelope::Message::Timer(_))) {
                    env.message = Some(envelope::Message::Timer(Timer::default()));
                }
                if let Some(envelope::Message::Timer(m)) = &mut env.message {
                    merge_timer(m, body)?;
                }
            }
            (10, Len) => {
                let body = r.bytes()?;
                if !matches!(env.message, Some(envelope::Message::Event(_))) {
                    env.message = Some(envelope::Message::Event(Event::default()));
                }
                if let Some(envelope::Message::Event(m)) = &mut env.message {
                    merge_event(m, body)?;
                }
            }
            _ => r.skip(num, wt)?,
        }
    }
    Ok(())
}

fn tag_entry(buf: &[u8]) -> Result<(String, String), DecodeError> {
    let mut key = String::new();
    let mut value = String::new();
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (num, wt) = r.tag()?;
        match (num, wt) {
            (1, Len) => key = utf8(r.bytes()?, "loggregator.v2.Envelope.TagsEntry.key")?,
            (2, Len) => value = utf8(r.bytes()?, "loggregator.v2.Envelope.TagsEntry.value")?,
            _ => r.skip(num, wt)?,
        }
    }
    Ok((key, value))
}

fn deprecated_tag_entry(buf: &[u8]) -> Result<(String, Value), DecodeError> {
    let mut key = String::new();
    let mut value = Value::default();
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (num, wt) = r.tag()?;
        match (num, wt) {
            (1, Len) => {
                key = utf8(
                    r.bytes()?,
                    "loggregator.v2.Envelope.DeprecatedTagsEntry.key",
                )?;
            }
            (2, Len) => merge_value(&mut value, r.bytes()?)?,
            _ => r.skip(num, wt)?,
        }
    }
    Ok((key, value))
}

fn merge_value(v: &mut Value, buf: &[u8]) -> Result<(), DecodeError> {
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (num, wt) = r.tag()?;
        match (num, wt) {
            (1, Len) => {
                v.data = Some(value::Data::Text(utf8(
                    r.bytes()?,
                    "loggregator.v2.Value.text",
                )?));
            }
            (2, Varint) => v.data = Some(value::Data::Integer(r.varint()? as i64)),
            (3, Fixed64) => v.data = Some(value::Data::Decimal(f64::from_bits(r.fixed64()?))),
            _ => r.skip(num, wt)?,
        }
    }
    Ok(())
}

fn merge_log(m: &mut Log, buf: &[u8], src: Source<'_>) -> Result<(), DecodeError> {
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (num, wt) = r.tag()?;
        match (num, wt) {
            (1, Len) => m.payload = src.bytes(r.bytes()?),
            (2, Varint) => m.r#type = r.varint()? as i32,
            _ => r.skip(num, wt)?,
        }
    }
    Ok(())
}

fn merge_counter(m: &mut Counter, buf: &[u8]) -> Result<(), DecodeError> {
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (num, wt) = r.tag()?;
        match (num, wt) {
            (1, Len) => m.name = utf8(r.bytes()?, "loggregator.v2.Counter.name")?,
            (2, Varint) => m.delta = r.varint()?,
            (3, Varint) => m.total = r.varint()?,
            _ => r.skip(num, wt)?,
        }
    }
    Ok(())
}

fn merge_gauge(m: &mut Gauge, buf: &[u8]) -> Result<(), DecodeError> {
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (num, wt) = r.tag()?;
        match (num, wt) {
            (1, Len) => {
                let entry = r.bytes()?;
                let mut key = String::new();
                let mut value = GaugeValue::default();
                let mut er = Reader::new(entry);
                while !er.is_empty() {
                    let (n, w) = er.tag()?;
                    match (n, w) {
                        (1, Len) => {
                            key = utf8(er.bytes()?, "loggregator.v2.Gauge.MetricsEntry.key")?;
                        }
                        (2, Len) => merge_gauge_value(&mut value, er.bytes()?)?,
                        _ => er.skip(n, w)?,
                    }
                }
                m.metrics.insert(key, value);
            }
            _ => r.skip(num, wt)?,
        }
    }
    Ok(())
}

fn merge_gauge_value(m: &mut GaugeValue, buf: &[u8]) -> Result<(), DecodeError> {
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (num, wt) = r.tag()?;
        match (num, wt) {
            (1, Len) => m.unit = utf8(r.bytes()?, "loggregator.v2.GaugeValue.unit")?,
            (2, Fixed64) => m.value = f64::from_bits(r.fixed64()?),
            _ => r.skip(num, wt)?,
        }
    }
    Ok(())
}

fn merge_timer(m: &mut Timer, buf: &[u8]) -> Result<(), DecodeError> {
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (num, wt) = r.tag()?;
        match (num, wt) {
            (1, Len) => m.name = utf8(r.bytes()?, "loggregator.v2.Timer.name")?,
            (2, Varint) => m.start = r.varint()? as i64,
            (3, Varint) => m.stop = r.varint()? as i64,
            _ => r.skip(num, wt)?,
        }
    }
    Ok(())
}

fn merge_event(m: &mut Event, buf: &[u8]) -> Result<(), DecodeError> {
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (num, wt) = r.tag()?;
        match (num, wt) {
            (1, Len) => m.title = utf8(r.bytes()?, "loggregator.v2.Event.title")?,
            (2, Len) => m.body = utf8(r.bytes()?, "loggregator.v2.Event.body")?,
            _ => r.skip(num, wt)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    #[test]
    fn agrees_with_prost_on_a_valid_envelope() {
        let env = Envelope {
            timestamp: 7,
            source_id: "s".into(),
            instance_id: "1".into(),
            tags: [("k".to_owned(), "v".to_owned())].into(),
            deprecated_tags: [(
                "d".to_owned(),
                Value {
                    data: Some(value::Data::Decimal(2.5)),
                },
            )]
            .into(),
            message: Some(envelope::Message::Log(Log {
                payload: Bytes::from_static(b"hello"),
                r#type: 1,
            })),
        };
        let bytes = env.encode_to_vec();
        assert_eq!(decode(&bytes), Ok(env.clone()));
        assert_eq!(decode_bytes(&Bytes::from(bytes)), Ok(env));
    }

    #[test]
    fn oneof_last_member_wins_and_same_member_merges() {
        // log{payload} then counter{name:"c"}
        let two = [0x22, 0x03, 0x0a, 0x01, b'p', 0x2a, 0x03, 0x0a, 0x01, b'c'];
        let env = decode(&two).expect("decodes");
        assert!(matches!(env.message, Some(envelope::Message::Counter(ref c)) if c.name == "c"));
        // log{payload} then log{type: ERR}
        let merged = [0x22, 0x03, 0x0a, 0x01, b'p', 0x22, 0x02, 0x10, 0x01];
        let env = decode(&merged).expect("decodes");
        assert!(
            matches!(env.message, Some(envelope::Message::Log(ref l)) if &l.payload[..] == b"p" && l.r#type == 1)
        );
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let buf = [0x12, 0x02, b'a', 0xff];
        assert_eq!(
            decode(&buf),
            Err(DecodeError::InvalidUtf8(
                "loggregator.v2.Envelope.source_id"
            ))
        );
    }
}
