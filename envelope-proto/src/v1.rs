//! v1 (dropsonde, package `events`, proto2) envelopes: Go-compatible decode,
//! encode with the required-field check, the agent's event check, and the
//! routing app id (reference §3).
//!
//! # Compatibility with the reference Go decoder (`proto.Unmarshal`)
//!
//! [`decode`] accepts and rejects exactly what Go does (every case of
//! `shared/fixtures/v1/invalid.json`):
//! - a field whose wire type does not match its declaration is skipped as an
//!   unknown field; unknown fields are skipped (and not kept);
//! - enums are open: `eventType: 99` decodes;
//! - a singular message field that occurs twice is merged, and the proto2
//!   required-field check runs on the merged result, recursively (including
//!   the `UUID`s inside `HttpStartStop`);
//! - truncation, varints over 10 bytes, field number 0, wire types 6/7 and an
//!   unmatched END_GROUP are errors.
//!
//! **One documented deviation:** Go does not UTF-8-check proto2 `string`
//! fields, so it accepts invalid UTF-8 there and keeps the raw bytes. The
//! generated Rust type is `String`, which cannot hold them, so [`decode`]
//! accepts such input too but replaces each invalid sequence with U+FFFD.
//! Consequences: re-encoding such an envelope gives different bytes than the
//! input, and converting it to v2 gives valid (repaired) strings where Go's v2
//! envelope would fail to marshal (`to_v2/invalid_utf8_origin`). Code that
//! must forward v1 bytes unchanged should forward the original bytes, not a
//! re-encoding.
//!
//! Decoding never panics, and allocates only for the strings, bytes and
//! messages actually present in the input.

use std::borrow::Cow;

use bytes::Bytes;
use prost::Message as _;

use crate::events::{Envelope, envelope::EventType};
use crate::wire::{Source, WireError};

mod decode;
mod peek;
mod required;

pub use peek::{Peek, peek};

/// A proto2 required field is not set; names the field by its full proto name
/// (e.g. `events.Envelope.origin`), as the reference marshaller does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("required field {0} not set")]
pub struct MissingField(pub &'static str);

/// Why bytes are not a valid v1 envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not valid protobuf.
    #[error("cannot parse invalid wire-format data: {0}")]
    Wire(#[from] WireError),
    /// The message (after merging) lacks a proto2 required field.
    #[error(transparent)]
    Missing(#[from] MissingField),
}

/// Why an envelope cannot be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A proto2 required field is not set; the reference marshaller refuses
    /// such messages, and doppler drops them (reference §7.4).
    #[error(transparent)]
    Missing(#[from] MissingField),
}

/// The agent's v1 check failed: the event field matching `eventType` is
/// absent, or `eventType` names no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid envelope: eventType {event_type} has no matching event field set")]
pub struct InvalidEnvelope {
    /// The envelope's `eventType` number (0 when absent).
    pub event_type: i32,
}

/// Decodes one v1 envelope the way Go's `proto.Unmarshal` does (see the
/// module docs, including the invalid-UTF-8 deviation). `bytes` fields are
/// copied out of `buf`.
pub fn decode(buf: &[u8]) -> Result<Envelope, DecodeError> {
    decode_with(buf, Source { whole: None })
}

/// Like [`decode`], but `LogMessage.message` is a zero-copy slice of `buf`.
pub fn decode_bytes(buf: &Bytes) -> Result<Envelope, DecodeError> {
    decode_with(buf, Source { whole: Some(buf) })
}

fn decode_with(buf: &[u8], src: Source<'_>) -> Result<Envelope, DecodeError> {
    let mut env = Envelope::default();
    decode::merge_envelope(&mut env, buf, src)?;
    check_required(&env)?;
    Ok(env)
}

/// Checks every proto2 required field, recursively, in Go's order; the error
/// names the first missing field.
pub fn check_required(env: &Envelope) -> Result<(), MissingField> {
    required::envelope(env)
}

/// Encodes an envelope, refusing one with a missing required field (as Go's
/// `proto.Marshal` does). Fields are written in field-number order and map
/// entries sorted by key, so the bytes equal Go's deterministic encoding
/// (checked against every encodable fixture). Unknown fields seen on decode
/// are not kept, unlike Go.
pub fn encode(env: &Envelope) -> Result<Vec<u8>, EncodeError> {
    check_required(env)?;
    Ok(env.encode_to_vec())
}

/// Like [`encode`], appending to `out`.
pub fn encode_into(env: &Envelope, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    check_required(env)?;
    out.reserve(env.encoded_len());
    // Encoding into a Vec only fails for lack of capacity, and Vec grows.
    env.encode_raw(out);
    Ok(())
}

/// The loggregator agent's v1 ingress check: the event field that matches
/// `eventType` must be present; an `eventType` with no event name (e.g. 3 or
/// 99) is invalid. Extra event fields are allowed.
pub fn check_event(env: &Envelope) -> Result<(), InvalidEnvelope> {
    let event_type = env.event_type.unwrap_or(0);
    let present = match EventType::try_from(event_type) {
        Ok(EventType::HttpStartStop) => env.http_start_stop.is_some(),
        Ok(EventType::LogMessage) => env.log_message.is_some(),
        Ok(EventType::ValueMetric) => env.value_metric.is_some(),
        Ok(EventType::CounterEvent) => env.counter_event.is_some(),
        Ok(EventType::Error) => env.error.is_some(),
        Ok(EventType::ContainerMetric) => env.container_metric.is_some(),
        Err(_) => false,
    };
    if present {
        Ok(())
    } else {
        Err(InvalidEnvelope { event_type })
    }
}

/// The literal app id of envelopes that belong to no application.
pub const SYSTEM_APP_ID: &str = "system";

/// The app id used to route a v1 envelope (reference §3.7): `app_id` of a
/// LogMessage, `applicationId` of a ContainerMetric, the formatted
/// `applicationId` UUID of an HttpStartStop, otherwise `"system"`.
pub fn app_id(env: &Envelope) -> Cow<'_, str> {
    match env.event_type.and_then(|t| EventType::try_from(t).ok()) {
        Some(EventType::LogMessage) => Cow::Borrowed(
            env.log_message
                .as_ref()
                .and_then(|m| m.app_id.as_deref())
                .unwrap_or(""),
        ),
        Some(EventType::ContainerMetric) => Cow::Borrowed(
            env.container_metric
                .as_ref()
                .and_then(|m| m.application_id.as_deref())
                .unwrap_or(""),
        ),
        Some(EventType::HttpStartStop) => {
            match env
                .http_start_stop
                .as_ref()
                .and_then(|m| m.application_id.as_ref())
            {
                Some(id) => Cow::Owned(crate::uuid::format(id)),
                None => Cow::Borrowed(SYSTEM_APP_ID),
            }
        }
        _ => Cow::Borrowed(SYSTEM_APP_ID),
    }
}

/// True for a LogMessage envelope (`eventType == LogMessage`).
pub fn is_log(env: &Envelope) -> bool {
    env.event_type == Some(EventType::LogMessage as i32)
}

/// Go's `EventType.String()`: the name, or the decimal number when the value
/// has no name (`"3"`). An absent `eventType` reads as the proto2 default,
/// `HttpStartStop`.
pub fn event_type_name(env: &Envelope) -> Cow<'static, str> {
    let t = env.event_type.unwrap_or(EventType::HttpStartStop as i32);
    match EventType::try_from(t) {
        Ok(e) => Cow::Borrowed(e.as_str_name()),
        Err(_) => Cow::Owned(t.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{LogMessage, Uuid};

    fn log_envelope() -> Envelope {
        Envelope {
            origin: Some("o".into()),
            event_type: Some(EventType::LogMessage as i32),
            log_message: Some(LogMessage {
                message: Some(Bytes::from_static(b"m")),
                message_type: Some(1),
                timestamp: Some(5),
                app_id: Some("app".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn encode_then_decode_round_trips() {
        let env = log_envelope();
        let bytes = encode(&env).expect("encodes");
        assert_eq!(decode(&bytes), Ok(env.clone()));
        let shared = Bytes::from(bytes);
        assert_eq!(decode_bytes(&shared), Ok(env));
    }

    #[test]
    fn missing_required_fields_are_named() {
        let mut env = log_envelope();
        env.origin = None;
        assert_eq!(
            encode(&env).map_err(|e| e.to_string()),
            Err("required field events.Envelope.origin not set".to_owned())
        );
        let mut env = log_envelope();
        if let Some(m) = env.log_message.as_mut() {
            m.timestamp = None;
        }
        assert_eq!(
            check_required(&env),
            Err(MissingField("events.LogMessage.timestamp"))
        );
    }

    #[test]
    fn app_id_follows_reference_table() {
        let env = log_envelope();
        assert_eq!(app_id(&env), "app");
        let mut http = Envelope {
            event_type: Some(EventType::HttpStartStop as i32),
            ..Default::default()
        };
        assert_eq!(app_id(&http), "system");
        http.http_start_stop = Some(crate::events::HttpStartStop {
            application_id: Some(Uuid {
                low: Some(0x7243cc580bc17af4),
                high: Some(0x79d4c3b2020e67a5),
            }),
            ..Default::default()
        });
        assert_eq!(app_id(&http), "f47ac10b-58cc-4372-a567-0e02b2c3d479");
        let metric = Envelope {
            event_type: Some(EventType::ValueMetric as i32),
            ..Default::default()
        };
        assert_eq!(app_id(&metric), "system");
        assert!(is_log(&env));
        assert!(!is_log(&metric));
    }

    #[test]
    fn check_event_requires_the_matching_field() {
        let mut env = log_envelope();
        assert_eq!(check_event(&env), Ok(()));
        env.event_type = Some(EventType::ValueMetric as i32);
        assert_eq!(check_event(&env), Err(InvalidEnvelope { event_type: 6 }));
        env.event_type = Some(99);
        assert!(check_event(&env).is_err());
    }

    #[test]
    fn invalid_utf8_is_repaired_not_rejected() {
        // origin = "a\xffb", eventType = 5, logMessage{message, type, timestamp}
        let buf = [
            0x0a, 0x03, b'a', 0xff, b'b', 0x10, 0x05, 0x42, 0x07, 0x0a, 0x01, b'm', 0x10, 0x01,
            0x18, 0x01,
        ];
        let env = decode(&buf).expect("accepted like Go");
        assert_eq!(env.origin.as_deref(), Some("a\u{FFFD}b"));
    }
}
