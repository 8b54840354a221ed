//! proto2 required-field check, in Go's order: fields in field-number order,
//! descending into each present message field as it is reached.

use super::MissingField;
use crate::events::{
    ContainerMetric, CounterEvent, Envelope, Error, HttpStartStop, LogMessage, Uuid, ValueMetric,
};

fn need<T>(v: &Option<T>, name: &'static str) -> Result<(), MissingField> {
    if v.is_some() {
        Ok(())
    } else {
        Err(MissingField(name))
    }
}

pub(crate) fn envelope(e: &Envelope) -> Result<(), MissingField> {
    need(&e.origin, "events.Envelope.origin")?;
    need(&e.event_type, "events.Envelope.eventType")?;
    // Message fields in field-number order: 7..=12.
    if let Some(m) = &e.http_start_stop {
        http(m)?;
    }
    if let Some(m) = &e.log_message {
        log(m)?;
    }
    if let Some(m) = &e.value_metric {
        value_metric(m)?;
    }
    if let Some(m) = &e.counter_event {
        counter(m)?;
    }
    if let Some(m) = &e.error {
        error(m)?;
    }
    if let Some(m) = &e.container_metric {
        container(m)?;
    }
    Ok(())
}

fn log(m: &LogMessage) -> Result<(), MissingField> {
    need(&m.message, "events.LogMessage.message")?;
    need(&m.message_type, "events.LogMessage.message_type")?;
    need(&m.timestamp, "events.LogMessage.timestamp")
}

fn value_metric(m: &ValueMetric) -> Result<(), MissingField> {
    need(&m.name, "events.ValueMetric.name")?;
    need(&m.value, "events.ValueMetric.value")?;
    need(&m.unit, "events.ValueMetric.unit")
}

fn counter(m: &CounterEvent) -> Result<(), MissingField> {
    need(&m.name, "events.CounterEvent.name")?;
    need(&m.delta, "events.CounterEvent.delta")
}

fn error(m: &Error) -> Result<(), MissingField> {
    need(&m.source, "events.Error.source")?;
    need(&m.code, "events.Error.code")?;
    need(&m.message, "events.Error.message")
}

fn container(m: &ContainerMetric) -> Result<(), MissingField> {
    need(&m.application_id, "events.ContainerMetric.applicationId")?;
    need(&m.instance_index, "events.ContainerMetric.instanceIndex")?;
    need(&m.cpu_percentage, "events.ContainerMetric.cpuPercentage")?;
    need(&m.memory_bytes, "events.ContainerMetric.memoryBytes")?;
    need(&m.disk_bytes, "events.ContainerMetric.diskBytes")
}

fn http(m: &HttpStartStop) -> Result<(), MissingField> {
    need(&m.start_timestamp, "events.HttpStartStop.startTimestamp")?;
    need(&m.stop_timestamp, "events.HttpStartStop.stopTimestamp")?;
    match &m.request_id {
        Some(id) => uuid(id)?,
        None => return Err(MissingField("events.HttpStartStop.requestId")),
    }
    need(&m.peer_type, "events.HttpStartStop.peerType")?;
    need(&m.method, "events.HttpStartStop.method")?;
    need(&m.uri, "events.HttpStartStop.uri")?;
    need(&m.remote_address, "events.HttpStartStop.remoteAddress")?;
    need(&m.user_agent, "events.HttpStartStop.userAgent")?;
    need(&m.status_code, "events.HttpStartStop.statusCode")?;
    need(&m.content_length, "events.HttpStartStop.contentLength")?;
    if let Some(id) = &m.application_id {
        uuid(id)?;
    }
    Ok(())
}

fn uuid(m: &Uuid) -> Result<(), MissingField> {
    need(&m.low, "events.UUID.low")?;
    need(&m.high, "events.UUID.high")
}
