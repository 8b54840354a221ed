//! v2 → v1 (`ToV1`, reference §7.2).

use std::collections::BTreeMap;

use super::go_num::{atoi, f64_to_i64, f64_to_u64};
use crate::events::{self, envelope::EventType, log_message::MessageType};
use crate::gofmt;
use crate::loggregator_v2::{self as v2, envelope::Message, value::Data};
use crate::uuid;

/// Renders a deprecated `Value` as ToV1 does: text as is, integer in
/// decimal, decimal with Go `%f`; `None` for a Value with no member.
fn render(value: &v2::Value) -> Option<String> {
    match &value.data {
        Some(Data::Text(t)) => Some(t.clone()),
        Some(Data::Integer(i)) => Some(i.to_string()),
        Some(Data::Decimal(d)) => Some(gofmt::format_f6(*d)),
        None => None,
    }
}

/// go-loggregator's `getV2Tag`: `tags` first, then `deprecated_tags`
/// rendered as a string, else `""`.
fn tag(e: &v2::Envelope, key: &str) -> String {
    if let Some(v) = e.tags.get(key) {
        return v.clone();
    }
    e.deprecated_tags
        .get(key)
        .and_then(render)
        .unwrap_or_default()
}

/// Converts a v2 envelope into zero or more v1 envelopes the way
/// go-loggregator's `conversion.ToV1` does (reference §7.2):
/// - Log → LogMessage (or Error when tag `__v1_type` is `Error`);
/// - Counter → CounterEvent (total always present);
/// - Gauge → one ContainerMetric when it has more than one metric and all
///   five container metrics are present with a non-empty unit or a non-zero
///   value, else one ValueMetric per metric (in key order; Go's order is map
///   iteration, so callers must treat it as a set);
/// - Timer → HttpStartStop;
/// - Event, or no message → nothing.
///
/// Every optional string of the output is set, even to `""`. Some outputs
/// cannot be encoded, exactly as in Go: a Log with an empty payload (the
/// LogMessage's required `message` is unset) and a Timer without a
/// `request_id` tag (`requestId` unset); [`crate::v1::encode`] refuses them,
/// which is how doppler drops them for v1 subscribers (reference §7.4).
pub fn to_v1(e: &v2::Envelope) -> Vec<events::Envelope> {
    let Some(message) = &e.message else {
        return Vec::new();
    };
    let mut base = base(e);
    match message {
        Message::Log(log) => {
            if tag(e, "__v1_type") == "Error" {
                error(&mut base, e, log);
            } else {
                log_message(&mut base, e, log);
            }
        }
        Message::Counter(c) => {
            base.event_type = Some(EventType::CounterEvent as i32);
            base.counter_event = Some(events::CounterEvent {
                name: Some(c.name.clone()),
                delta: Some(c.delta),
                total: Some(c.total),
            });
            if !e.instance_id.is_empty() {
                base.tags
                    .insert("instance_id".to_owned(), e.instance_id.clone());
            }
        }
        Message::Gauge(g) => return gauge(base, e, g),
        Message::Timer(t) => timer(&mut base, e, t),
        Message::Event(_) => return Vec::new(),
    }
    vec![base]
}

fn base(e: &v2::Envelope) -> events::Envelope {
    let mut tags: BTreeMap<String, String> = e.tags.clone();
    for (k, v) in &e.deprecated_tags {
        if let Some(rendered) = render(v) {
            tags.insert(k.clone(), rendered);
        }
    }
    for key in ["__v1_type", "origin", "deployment", "job", "index", "ip"] {
        tags.remove(key);
    }
    if !e.source_id.is_empty() {
        tags.insert("source_id".to_owned(), e.source_id.clone());
    }
    events::Envelope {
        origin: Some(tag(e, "origin")),
        deployment: Some(tag(e, "deployment")),
        job: Some(tag(e, "job")),
        index: Some(tag(e, "index")),
        ip: Some(tag(e, "ip")),
        timestamp: Some(e.timestamp),
        tags,
        ..Default::default()
    }
}

fn log_message(out: &mut events::Envelope, e: &v2::Envelope, log: &v2::Log) {
    out.tags.remove("source_type");
    out.event_type = Some(EventType::LogMessage as i32);
    let message_type = if log.r#type == v2::log::Type::Out as i32 {
        MessageType::Out
    } else {
        MessageType::Err
    };
    out.log_message = Some(events::LogMessage {
        // Go: an empty proto3 payload decodes as nil, leaving the required
        // field unset.
        message: (!log.payload.is_empty()).then(|| log.payload.clone()),
        message_type: Some(message_type as i32),
        timestamp: Some(e.timestamp),
        app_id: Some(e.source_id.clone()),
        source_type: Some(tag(e, "source_type")),
        source_instance: Some(e.instance_id.clone()),
    });
}

fn error(out: &mut events::Envelope, e: &v2::Envelope, log: &v2::Log) {
    out.event_type = Some(EventType::Error as i32);
    out.error = Some(events::Error {
        source: Some(tag(e, "source")),
        code: Some(atoi(&tag(e, "code")) as i32),
        message: Some(String::from_utf8_lossy(&log.payload).into_owned()),
    });
    out.tags.remove("source");
    out.tags.remove("code");
}

const CONTAINER_METRICS: [&str; 5] = ["cpu", "memory", "disk", "memory_quota", "disk_quota"];

fn gauge(base: events::Envelope, e: &v2::Envelope, g: &v2::Gauge) -> Vec<events::Envelope> {
    let metrics = &g.metrics;
    let is_container = metrics.len() != 1
        && CONTAINER_METRICS.iter().all(|name| {
            metrics
                .get(*name)
                .is_some_and(|v| !v.unit.is_empty() || v.value != 0.0)
        });
    if is_container {
        let value = |name: &str| metrics.get(name).map_or(0.0, |v| v.value);
        let mut instance_index = atoi(&e.instance_id);
        if let Some(idx) = metrics.get("instance_index") {
            instance_index = f64_to_i64(idx.value);
        }
        let mut out = base;
        out.event_type = Some(EventType::ContainerMetric as i32);
        out.container_metric = Some(events::ContainerMetric {
            application_id: Some(e.source_id.clone()),
            instance_index: Some(instance_index as i32),
            cpu_percentage: Some(value("cpu")),
            memory_bytes: Some(f64_to_u64(value("memory"))),
            disk_bytes: Some(f64_to_u64(value("disk"))),
            memory_bytes_quota: Some(f64_to_u64(value("memory_quota"))),
            disk_bytes_quota: Some(f64_to_u64(value("disk_quota"))),
        });
        return vec![out];
    }
    metrics
        .iter()
        .map(|(name, v)| {
            let mut out = base.clone();
            out.event_type = Some(EventType::ValueMetric as i32);
            out.value_metric = Some(events::ValueMetric {
                name: Some(name.clone()),
                value: Some(v.value),
                unit: Some(v.unit.clone()),
            });
            if !e.instance_id.is_empty() {
                out.tags
                    .insert("instance_id".to_owned(), e.instance_id.clone());
            }
            out
        })
        .collect()
}

const TIMER_TAGS: [&str; 10] = [
    "peer_type",
    "method",
    "request_id",
    "uri",
    "remote_address",
    "user_agent",
    "status_code",
    "content_length",
    "routing_instance_id",
    "forwarded",
];

fn timer(out: &mut events::Envelope, e: &v2::Envelope, t: &v2::Timer) {
    out.event_type = Some(EventType::HttpStartStop as i32);
    let peer_type = events::PeerType::from_str_name(&tag(e, "peer_type")).map_or(0, |p| p as i32);
    let method = events::Method::from_str_name(&tag(e, "method")).map_or(0, |m| m as i32);
    out.http_start_stop = Some(events::HttpStartStop {
        start_timestamp: Some(t.start),
        stop_timestamp: Some(t.stop),
        request_id: uuid::parse(&tag(e, "request_id")),
        peer_type: Some(peer_type),
        method: Some(method),
        uri: Some(tag(e, "uri")),
        remote_address: Some(tag(e, "remote_address")),
        user_agent: Some(tag(e, "user_agent")),
        status_code: Some(atoi(&tag(e, "status_code")) as i32),
        content_length: Some(atoi(&tag(e, "content_length"))),
        application_id: uuid::parse(&e.source_id),
        instance_index: Some(atoi(&e.instance_id) as i32),
        instance_id: Some(tag(e, "routing_instance_id")),
        forwarded: tag(e, "forwarded").split('\n').map(str::to_owned).collect(),
    });
    for key in TIMER_TAGS {
        out.tags.remove(key);
    }
}
