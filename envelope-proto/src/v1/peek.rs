//! A few fields of a v1 envelope read straight from the wire, without
//! decoding it: for consumers that only classify envelopes (the benchmark's
//! WebSocket subscribers count load envelopes and rate-control warnings with
//! it).
//!
//! [`peek`] walks the envelope's top-level fields once, and the `LogMessage`
//! or `CounterEvent` body only for the two fields it reports. It allocates
//! nothing and does not check proto2 required fields; bytes that are not
//! valid protobuf (by the crate's Go-compatible [`Reader`] rules) are an
//! error. Where a field occurs more than once the last occurrence wins, which
//! is what [`super::decode`] gives for the scalars reported here.

use crate::wire::{Reader, WireError, WireType};

/// The fields [`peek`] reads; `None` where the envelope does not carry them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Peek<'a> {
    /// `origin` (field 1), raw bytes.
    pub origin: Option<&'a [u8]>,
    /// `eventType` (field 2).
    pub event_type: Option<i32>,
    /// `timestamp` (field 6), Unix nanoseconds.
    pub timestamp: Option<i64>,
    /// `logMessage.source_type` (field 8, then 5), raw bytes.
    pub log_source_type: Option<&'a [u8]>,
    /// `counterEvent.name` (field 10, then 1), raw bytes.
    pub counter_name: Option<&'a [u8]>,
    /// `counterEvent.delta` (field 10, then 2).
    pub counter_delta: Option<u64>,
}

/// Reads the [`Peek`] fields of the v1 envelope in `buf`.
pub fn peek(buf: &[u8]) -> Result<Peek<'_>, WireError> {
    use WireType::{Len, Varint};
    let mut out = Peek::default();
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (num, wt) = r.tag()?;
        match (num, wt) {
            (1, Len) => out.origin = Some(r.bytes()?),
            (2, Varint) => out.event_type = Some(r.varint()? as i32),
            (6, Varint) => out.timestamp = Some(r.varint()? as i64),
            (8, Len) => {
                let mut m = Reader::new(r.bytes()?);
                while !m.is_empty() {
                    match m.tag()? {
                        (5, Len) => out.log_source_type = Some(m.bytes()?),
                        (n, w) => m.skip(n, w)?,
                    }
                }
            }
            (10, Len) => {
                let mut m = Reader::new(r.bytes()?);
                while !m.is_empty() {
                    match m.tag()? {
                        (1, Len) => out.counter_name = Some(m.bytes()?),
                        (2, Varint) => out.counter_delta = Some(m.varint()?),
                        (n, w) => m.skip(n, w)?,
                    }
                }
            }
            _ => r.skip(num, wt)?,
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::events::{CounterEvent, Envelope, LogMessage, envelope::EventType};

    fn log(source_type: &str) -> Envelope {
        Envelope {
            origin: Some("o".into()),
            event_type: Some(EventType::LogMessage as i32),
            timestamp: Some(1_700_000_000_123_456_789),
            log_message: Some(LogMessage {
                message: Some(b"hi".to_vec().into()),
                message_type: Some(1),
                timestamp: Some(4),
                source_type: Some(source_type.into()),
                app_id: Some("app".into()),
                ..Default::default()
            }),
            tags: [("k".to_owned(), "v".to_owned())].into(),
            ..Default::default()
        }
    }

    #[test]
    fn reads_what_the_decoder_reads() {
        let counter = Envelope {
            origin: Some("o".into()),
            event_type: Some(EventType::CounterEvent as i32),
            counter_event: Some(CounterEvent {
                name: Some("TruncatingBuffer.DroppedMessages".into()),
                delta: Some(17),
                total: Some(40),
            }),
            ..Default::default()
        };
        for env in [log("LGR"), log("APP/PROC/WEB"), counter] {
            let bytes = crate::v1::encode(&env).unwrap();
            let p = peek(&bytes).unwrap();
            let decoded = crate::v1::decode(&bytes).unwrap();
            assert_eq!(p.origin, decoded.origin.as_deref().map(str::as_bytes));
            assert_eq!(p.event_type, decoded.event_type);
            assert_eq!(p.timestamp, decoded.timestamp);
            let lm = decoded.log_message.as_ref();
            assert_eq!(
                p.log_source_type,
                lm.and_then(|l| l.source_type.as_deref()).map(str::as_bytes)
            );
            let ce = decoded.counter_event.as_ref();
            assert_eq!(
                p.counter_name,
                ce.and_then(|c| c.name.as_deref()).map(str::as_bytes)
            );
            assert_eq!(p.counter_delta, ce.and_then(|c| c.delta));
        }
    }

    #[test]
    fn garbage_and_truncation_are_errors_not_panics() {
        let bytes = crate::v1::encode(&log("LGR")).unwrap();
        for cut in 1..bytes.len() {
            // Every prefix either peeks (cut between fields) or fails cleanly.
            let _ = peek(&bytes[..cut]);
        }
        assert!(peek(&bytes[..bytes.len() - 1]).is_err());
        assert!(peek(&[0xff; 12]).is_err());
        assert_eq!(peek(&[]).unwrap(), Peek::default());
    }
}
