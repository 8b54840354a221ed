//! Field-by-field v1 (`events`, proto2) decoder with Go's acceptance rules.
//!
//! Every field of every message is listed here with its wire type; a field
//! that arrives with another wire type falls through to [`Reader::skip`], the
//! way Go treats it as unknown. Repeated occurrences of a singular message
//! field are merged into the message decoded so far; repeated scalars: the
//! last one wins.

use crate::events::{
    ContainerMetric, CounterEvent, Envelope, Error, HttpStartStop, LogMessage, Uuid, ValueMetric,
};
use crate::wire::{Reader, Source, WireError, WireType};

/// proto2 strings are not UTF-8 checked by Go; a Rust `String` cannot hold
/// invalid UTF-8, so invalid sequences are replaced with U+FFFD.
fn lossy(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(b).into_owned(),
    }
}

use WireType::{Fixed64, Len, Varint};

pub(crate) fn merge_envelope(
    env: &mut Envelope,
    buf: &[u8],
    src: Source<'_>,
) -> Result<(), WireError> {
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (num, wt) = r.tag()?;
        match (num, wt) {
            (1, Len) => env.origin = Some(lossy(r.bytes()?)),
            (2, Varint) => env.event_type = Some(r.varint()? as i32),
            (6, Varint) => env.timestamp = Some(r.varint()? as i64),
            (13, Len) => env.deployment = Some(lossy(r.bytes()?)),
            (14, Len) => env.job = Some(lossy(r.bytes()?)),
            (15, Len) => env.index = Some(lossy(r.bytes()?)),
            (16, Len) => env.ip = Some(lossy(r.bytes()?)),
            (17, Len) => {
                let (k, v) = string_entry(r.bytes()?)?;
                env.tags.insert(k, v);
            }
            (7, Len) => merge_http(
                env.http_start_stop.get_or_insert_with(Default::default),
                r.bytes()?,
            )?,
            (8, Len) => merge_log(
                env.log_message.get_or_insert_with(Default::default),
                r.bytes()?,
                src,
            )?,
            (9, Len) => merge_value_metric(
                env.value_metric.get_or_insert_with(Default::default),
                r.bytes()?,
            )?,
            (10, Len) => merge_counter(
                env.counter_event.get_or_insert_with(Default::default),
                r.bytes()?,
            )?,
            (11, Len) => merge_error(env.error.get_or_insert_with(Default::default), r.bytes()?)?,
            (12, Len) => merge_container(
                env.container_metric.get_or_insert_with(Default::default),
                r.bytes()?,
            )?,
            _ => r.skip(num, wt)?,
        }
    }
    Ok(())
}

fn string_entry(buf: &[u8]) -> Result<(String, String), WireError> {
    let mut key: &[u8] = &[];
    let mut value: &[u8] = &[];
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (num, wt) = r.tag()?;
        match (num, wt) {
            (1, Len) => key = r.bytes()?,
            (2, Len) => value = r.bytes()?,
            _ => r.skip(num, wt)?,
        }
    }
    Ok((lossy(key), lossy(value)))
}

fn merge_log(m: &mut LogMessage, buf: &[u8], src: Source<'_>) -> Result<(), WireError> {
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (num, wt) = r.tag()?;
        match (num, wt) {
            (1, Len) => m.message = Some(src.bytes(r.bytes()?)),
            (2, Varint) => m.message_type = Some(r.varint()? as i32),
            (3, Varint) => m.timestamp = Some(r.varint()? as i64),
            (4, Len) => m.app_id = Some(lossy(r.bytes()?)),
            (5, Len) => m.source_type = Some(lossy(r.bytes()?)),
            (6, Len) => m.source_instance = Some(lossy(r.bytes()?)),
            _ => r.skip(num, wt)?,
        }
    }
    Ok(())
}

fn merge_value_metric(m: &mut ValueMetric, buf: &[u8]) -> Result<(), WireError> {
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (num, wt) = r.tag()?;
        match (num, wt) {
            (1, Len) => m.name = Some(lossy(r.bytes()?)),
            (2, Fixed64) => m.value = Some(f64::from_bits(r.fixed64()?)),
            (3, Len) => m.unit = Some(lossy(r.bytes()?)),
            _ => r.skip(num, wt)?,
        }
    }
    Ok(())
}

fn merge_counter(m: &mut CounterEvent, buf: &[u8]) -> Result<(), WireError> {
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (num, wt) = r.tag()?;
        match (num, wt) {
            (1, Len) => m.name = Some(lossy(r.bytes()?)),
            (2, Varint) => m.delta = Some(r.varint()?),
            (3, Varint) => m.total = Some(r.varint()?),
            _ => r.skip(num, wt)?,
        }
    }
    Ok(())
}

fn merge_error(m: &mut Error, buf: &[u8]) -> Result<(), WireError> {
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (num, wt) = r.tag()?;
        match (num, wt) {
            (1, Len) => m.source = Some(lossy(r.bytes()?)),
            (2, Varint) => m.code = Some(r.varint()? as i32),
            (3, Len) => m.message = Some(lossy(r.bytes()?)),
            _ => r.skip(num, wt)?,
        }
    }
    Ok(())
}

fn merge_container(m: &mut ContainerMetric, buf: &[u8]) -> Result<(), WireError> {
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (num, wt) = r.tag()?;
        match (num, wt) {
            (1, Len) => m.application_id = Some(lossy(r.bytes()?)),
            (2, Varint) => m.instance_index = Some(r.varint()? as i32),
            (3, Fixed64) => m.cpu_percentage = Some(f64::from_bits(r.fixed64()?)),
            (4, Varint) => m.memory_bytes = Some(r.varint()?),
            (5, Varint) => m.disk_bytes = Some(r.varint()?),
            (6, Varint) => m.memory_bytes_quota = Some(r.varint()?),
            (7, Varint) => m.disk_bytes_quota = Some(r.varint()?),
            _ => r.skip(num, wt)?,
        }
    }
    Ok(())
}

fn merge_http(m: &mut HttpStartStop, buf: &[u8]) -> Result<(), WireError> {
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (num, wt) = r.tag()?;
        match (num, wt) {
            (1, Varint) => m.start_timestamp = Some(r.varint()? as i64),
            (2, Varint) => m.stop_timestamp = Some(r.varint()? as i64),
            (3, Len) => merge_uuid(
                m.request_id.get_or_insert_with(Default::default),
                r.bytes()?,
            )?,
            (4, Varint) => m.peer_type = Some(r.varint()? as i32),
            (5, Varint) => m.method = Some(r.varint()? as i32),
            (6, Len) => m.uri = Some(lossy(r.bytes()?)),
            (7, Len) => m.remote_address = Some(lossy(r.bytes()?)),
            (8, Len) => m.user_agent = Some(lossy(r.bytes()?)),
            (9, Varint) => m.status_code = Some(r.varint()? as i32),
            (10, Varint) => m.content_length = Some(r.varint()? as i64),
            (12, Len) => merge_uuid(
                m.application_id.get_or_insert_with(Default::default),
                r.bytes()?,
            )?,
            (13, Varint) => m.instance_index = Some(r.varint()? as i32),
            (14, Len) => m.instance_id = Some(lossy(r.bytes()?)),
            (15, Len) => m.forwarded.push(lossy(r.bytes()?)),
            _ => r.skip(num, wt)?,
        }
    }
    Ok(())
}

fn merge_uuid(m: &mut Uuid, buf: &[u8]) -> Result<(), WireError> {
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (num, wt) = r.tag()?;
        match (num, wt) {
            (1, Varint) => m.low = Some(r.varint()?),
            (2, Varint) => m.high = Some(r.varint()?),
            _ => r.skip(num, wt)?,
        }
    }
    Ok(())
}
