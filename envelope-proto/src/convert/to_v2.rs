//! v1 → v2 (`ToV2`, reference §7.1).

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::events::{self, envelope::EventType};
use crate::loggregator_v2::{self as v2, envelope::Message, value::Data};
use crate::{uuid, v1};

/// Where tags go: `tags` (preferred) or `deprecated_tags` as text values.
struct TagSink<'a> {
    env: &'a mut v2::Envelope,
    preferred: bool,
}

impl TagSink<'_> {
    fn set(&mut self, key: &str, value: String) {
        if self.preferred {
            self.env.tags.insert(key.to_owned(), value);
        } else {
            self.env.deprecated_tags.insert(
                key.to_owned(),
                v2::Value {
                    data: Some(Data::Text(value)),
                },
            );
        }
    }

    fn unset(&mut self, key: &str) {
        self.env.tags.remove(key);
        self.env.deprecated_tags.remove(key);
    }
}

fn s(v: &Option<String>) -> String {
    v.clone().unwrap_or_default()
}

/// Converts a v1 envelope to v2 the way go-loggregator's
/// `conversion.ToV2(env, use_preferred_tags)` does:
/// - `timestamp` is the envelope's (never the LogMessage's), absent → 0;
/// - v1 tags are copied to `tags` (`use_preferred_tags`) or to
///   `deprecated_tags` as text; then `origin`, `deployment`, `job`, `index`,
///   `ip` and `__v1_type` are always written (possibly `""`);
/// - `source_id` is the `source_id` tag when the key exists (the tag is
///   removed), else `deployment + "/" + job`; a non-empty LogMessage
///   `app_id` / ContainerMetric `applicationId` or a non-zero HttpStartStop
///   `applicationId` overrides it;
/// - the event becomes a Log, Timer, Gauge or Counter per the reference table;
///   an `eventType` with no name yields no message at all.
///
/// Absent v1 fields read as Go's proto2 getters return them (the declared
/// default: `HttpStartStop` for `eventType`, `Client`/`GET` for the HTTP
/// enums, 0 / `""` otherwise).
pub fn to_v2(e: &events::Envelope, use_preferred_tags: bool) -> v2::Envelope {
    let mut out = v2::Envelope {
        timestamp: e.timestamp.unwrap_or(0),
        ..Default::default()
    };
    {
        let mut tags = TagSink {
            env: &mut out,
            preferred: use_preferred_tags,
        };
        for (k, v) in &e.tags {
            tags.set(k, v.clone());
        }
        tags.set("origin", s(&e.origin));
        tags.set("deployment", s(&e.deployment));
        tags.set("job", s(&e.job));
        tags.set("index", s(&e.index));
        tags.set("ip", s(&e.ip));
        tags.set("__v1_type", v1::event_type_name(e).into_owned());
        tags.unset("source_id");
    }
    out.source_id = match e.tags.get("source_id") {
        Some(id) => id.clone(),
        None => format!(
            "{}/{}",
            e.deployment.as_deref().unwrap_or(""),
            e.job.as_deref().unwrap_or("")
        ),
    };

    let event_type = e.event_type.unwrap_or(EventType::HttpStartStop as i32);
    match EventType::try_from(event_type) {
        Ok(EventType::LogMessage) => log_message(&mut out, e, use_preferred_tags),
        Ok(EventType::HttpStartStop) => http(&mut out, e, use_preferred_tags),
        Ok(EventType::ValueMetric) => value_metric(&mut out, e),
        Ok(EventType::CounterEvent) => counter(&mut out, e, use_preferred_tags),
        Ok(EventType::Error) => error(&mut out, e, use_preferred_tags),
        Ok(EventType::ContainerMetric) => container(&mut out, e),
        Err(_) => {}
    }
    out
}

fn log_message(out: &mut v2::Envelope, e: &events::Envelope, preferred: bool) {
    let default = events::LogMessage::default();
    let m = e.log_message.as_ref().unwrap_or(&default);
    TagSink {
        env: out,
        preferred,
    }
    .set("source_type", s(&m.source_type));
    out.instance_id = s(&m.source_instance);
    if let Some(app) = m.app_id.as_deref().filter(|a| !a.is_empty()) {
        out.source_id = app.to_owned();
    }
    let r#type = if m.message_type == Some(events::log_message::MessageType::Err as i32) {
        v2::log::Type::Err
    } else {
        v2::log::Type::Out
    };
    out.message = Some(Message::Log(v2::Log {
        payload: m.message.clone().unwrap_or_default(),
        r#type: r#type as i32,
    }));
}

fn http(out: &mut v2::Envelope, e: &events::Envelope, preferred: bool) {
    let default = events::HttpStartStop::default();
    let m = e.http_start_stop.as_ref().unwrap_or(&default);
    if let Some(id) = m.application_id.as_ref().filter(|id| !uuid::is_zero(id)) {
        out.source_id = uuid::format(id);
    }
    out.instance_id = m.instance_index.unwrap_or(0).to_string();
    out.message = Some(Message::Timer(v2::Timer {
        name: "http".to_owned(),
        start: m.start_timestamp.unwrap_or(0),
        stop: m.stop_timestamp.unwrap_or(0),
    }));
    let peer_type = m.peer_type.unwrap_or(events::PeerType::Client as i32);
    let method = m.method.unwrap_or(events::Method::Get as i32);
    let mut tags = TagSink {
        env: out,
        preferred,
    };
    tags.set(
        "request_id",
        uuid::format(&m.request_id.unwrap_or_default()),
    );
    tags.set(
        "peer_type",
        events::PeerType::try_from(peer_type)
            .map(|p| p.as_str_name().to_owned())
            .unwrap_or_else(|_| peer_type.to_string()),
    );
    tags.set(
        "method",
        events::Method::try_from(method)
            .map(|p| p.as_str_name().to_owned())
            .unwrap_or_else(|_| method.to_string()),
    );
    tags.set("uri", s(&m.uri));
    tags.set("remote_address", s(&m.remote_address));
    tags.set("user_agent", s(&m.user_agent));
    tags.set("status_code", m.status_code.unwrap_or(0).to_string());
    tags.set("content_length", m.content_length.unwrap_or(0).to_string());
    tags.set("routing_instance_id", s(&m.instance_id));
    tags.set("forwarded", m.forwarded.join("\n"));
}

fn value_metric(out: &mut v2::Envelope, e: &events::Envelope) {
    let default = events::ValueMetric::default();
    let m = e.value_metric.as_ref().unwrap_or(&default);
    out.instance_id = e.tags.get("instance_id").cloned().unwrap_or_default();
    let mut metrics = BTreeMap::new();
    metrics.insert(
        s(&m.name),
        v2::GaugeValue {
            unit: s(&m.unit),
            value: m.value.unwrap_or(0.0),
        },
    );
    out.message = Some(Message::Gauge(v2::Gauge { metrics }));
}

fn counter(out: &mut v2::Envelope, e: &events::Envelope, preferred: bool) {
    let default = events::CounterEvent::default();
    let m = e.counter_event.as_ref().unwrap_or(&default);
    out.instance_id = e.tags.get("instance_id").cloned().unwrap_or_default();
    TagSink {
        env: out,
        preferred,
    }
    .unset("instance_id");
    out.message = Some(Message::Counter(v2::Counter {
        name: s(&m.name),
        delta: m.delta.unwrap_or(0),
        total: m.total.unwrap_or(0),
    }));
}

fn error(out: &mut v2::Envelope, e: &events::Envelope, preferred: bool) {
    let default = events::Error::default();
    let m = e.error.as_ref().unwrap_or(&default);
    let mut tags = TagSink {
        env: out,
        preferred,
    };
    tags.set("source", s(&m.source));
    tags.set("code", m.code.unwrap_or(0).to_string());
    out.message = Some(Message::Log(v2::Log {
        payload: Bytes::copy_from_slice(m.message.as_deref().unwrap_or("").as_bytes()),
        r#type: v2::log::Type::Out as i32,
    }));
}

fn container(out: &mut v2::Envelope, e: &events::Envelope) {
    let default = events::ContainerMetric::default();
    let m = e.container_metric.as_ref().unwrap_or(&default);
    if let Some(app) = m.application_id.as_deref().filter(|a| !a.is_empty()) {
        out.source_id = app.to_owned();
    }
    out.instance_id = m.instance_index.unwrap_or(0).to_string();
    let values = [
        ("cpu", "percentage", m.cpu_percentage.unwrap_or(0.0)),
        ("memory", "bytes", m.memory_bytes.unwrap_or(0) as f64),
        ("disk", "bytes", m.disk_bytes.unwrap_or(0) as f64),
        (
            "memory_quota",
            "bytes",
            m.memory_bytes_quota.unwrap_or(0) as f64,
        ),
        (
            "disk_quota",
            "bytes",
            m.disk_bytes_quota.unwrap_or(0) as f64,
        ),
    ];
    let metrics = values
        .into_iter()
        .map(|(name, unit, value)| {
            let unit = unit.to_owned();
            (name.to_owned(), v2::GaugeValue { unit, value })
        })
        .collect();
    out.message = Some(Message::Gauge(v2::Gauge { metrics }));
}
