//! Renderings of v1 envelopes for the terminal: a readable one-line form (`firehose`) and one
//! JSON object per envelope (`logs --json`, `firehose --json`: the v2 protojson form the RLP
//! gateway's `/v2/read` uses, after the standard v1 → v2 conversion).

use std::fmt::Write as _;

use envelope_proto::events::envelope::EventType;
use envelope_proto::events::{Envelope, log_message};
use envelope_proto::gofmt::write_g;
use envelope_proto::{convert, json, uuid};

use super::cflog;

/// The one JSON object (v2 protojson, no trailing newline) for a v1 envelope. A v1 envelope
/// that converts to nothing is written as `{}`.
pub(crate) fn json_line(out: &mut String, env: &Envelope) {
    let v2 = convert::to_v2(env, true);
    json::write_envelope(out, &v2);
}

/// Appends the readable one-line form of `env` (no trailing newline):
/// `<timestamp> <origin> <EventType> <details>`, with the timestamp in the `cf logs` layout and
/// local time zone, e.g. `2026-11-22T06:42:23.12+0000 demo LogMessage app=… [APP/PROC/WEB/0] OUT hello`.
/// Newlines inside log messages are written as `\n`.
pub(crate) fn one_line(out: &mut String, env: &Envelope) {
    cflog::write_timestamp(out, env.timestamp.unwrap_or_default(), &chrono::Local);
    out.push(' ');
    match env.origin.as_deref() {
        Some(origin) if !origin.is_empty() => out.push_str(origin),
        _ => out.push('-'),
    }
    out.push(' ');
    out.push_str(&envelope_proto::v1::event_type_name(env));
    let kind = env.event_type.and_then(|t| EventType::try_from(t).ok());
    match kind {
        Some(EventType::LogMessage) => {
            if let Some(m) = &env.log_message {
                let is_err = m.message_type == Some(log_message::MessageType::Err as i32);
                let _ = write!(
                    out,
                    " app={} [{}/{}] {} ",
                    m.app_id.as_deref().unwrap_or_default(),
                    m.source_type.as_deref().unwrap_or_default(),
                    m.source_instance.as_deref().unwrap_or_default(),
                    if is_err { "ERR" } else { "OUT" },
                );
                let text = String::from_utf8_lossy(m.message.as_deref().unwrap_or_default());
                for (i, line) in text.split('\n').enumerate() {
                    if i > 0 {
                        out.push_str("\\n");
                    }
                    out.push_str(line.trim_end_matches('\r'));
                }
            }
        }
        Some(EventType::ValueMetric) => {
            if let Some(m) = &env.value_metric {
                let _ = write!(out, " {}=", m.name.as_deref().unwrap_or_default());
                write_g(out, m.value.unwrap_or_default());
                let _ = write!(out, " {}", m.unit.as_deref().unwrap_or_default());
            }
        }
        Some(EventType::CounterEvent) => {
            if let Some(c) = &env.counter_event {
                let _ = write!(
                    out,
                    " {} delta={} total={}",
                    c.name.as_deref().unwrap_or_default(),
                    c.delta.unwrap_or_default(),
                    c.total.unwrap_or_default()
                );
            }
        }
        Some(EventType::ContainerMetric) => {
            if let Some(c) = &env.container_metric {
                let _ = write!(
                    out,
                    " app={} instance={} cpu=",
                    c.application_id.as_deref().unwrap_or_default(),
                    c.instance_index.unwrap_or_default()
                );
                write_g(out, c.cpu_percentage.unwrap_or_default());
                let _ = write!(
                    out,
                    "% memory={}/{} disk={}/{}",
                    c.memory_bytes.unwrap_or_default(),
                    c.memory_bytes_quota.unwrap_or_default(),
                    c.disk_bytes.unwrap_or_default(),
                    c.disk_bytes_quota.unwrap_or_default()
                );
            }
        }
        Some(EventType::HttpStartStop) => {
            if let Some(h) = &env.http_start_stop {
                let method = h
                    .method
                    .and_then(|m| envelope_proto::events::Method::try_from(m).ok())
                    .map_or("-", |m| m.as_str_name());
                let ms = (h.stop_timestamp.unwrap_or_default()
                    - h.start_timestamp.unwrap_or_default())
                    / 1_000_000;
                let _ = write!(
                    out,
                    " {method} {} {} {ms}ms",
                    h.uri.as_deref().unwrap_or_default(),
                    h.status_code.unwrap_or_default()
                );
                if let Some(app) = &h.application_id {
                    let _ = write!(out, " app={}", uuid::format(app));
                }
            }
        }
        Some(EventType::Error) => {
            if let Some(e) = &env.error {
                let _ = write!(
                    out,
                    " source={} code={} {}",
                    e.source.as_deref().unwrap_or_default(),
                    e.code.unwrap_or_default(),
                    e.message.as_deref().unwrap_or_default()
                );
            }
        }
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use envelope_proto::events::{CounterEvent, LogMessage, ValueMetric};

    fn base(event_type: EventType) -> Envelope {
        Envelope {
            origin: Some("demo".into()),
            event_type: Some(event_type as i32),
            timestamp: Some(1_468_969_692_129_876_543),
            ..Envelope::default()
        }
    }

    fn render(env: &Envelope) -> String {
        let mut s = String::new();
        one_line(&mut s, env);
        // Drop the local-time timestamp; the formatter's own tests cover it.
        s.split_once(' ')
            .map(|(_, rest)| rest.to_owned())
            .unwrap_or_default()
    }

    #[test]
    fn log_message_line_escapes_newlines() {
        let mut env = base(EventType::LogMessage);
        env.log_message = Some(LogMessage {
            message: Some(Bytes::from_static(b"a\r\nb")),
            message_type: Some(2),
            timestamp: Some(1),
            app_id: Some("app".into()),
            source_type: Some("APP/PROC/WEB".into()),
            source_instance: Some("0".into()),
        });
        assert_eq!(
            render(&env),
            "demo LogMessage app=app [APP/PROC/WEB/0] ERR a\\nb"
        );
    }

    #[test]
    fn metric_lines() {
        let mut env = base(EventType::ValueMetric);
        env.value_metric = Some(ValueMetric {
            name: Some("cpu".into()),
            value: Some(12.5),
            unit: Some("percentage".into()),
        });
        assert_eq!(render(&env), "demo ValueMetric cpu=12.5 percentage");
        let mut env = base(EventType::CounterEvent);
        env.counter_event = Some(CounterEvent {
            name: Some("requests".into()),
            delta: Some(2),
            total: Some(10),
        });
        assert_eq!(render(&env), "demo CounterEvent requests delta=2 total=10");
    }
}
