//! Firehose metrics -> Datadog series (`/api/v1/series` JSON).
//!
//! - ValueMetric `name` -> `<prefix><origin>.<name>`, value as is.
//! - CounterEvent -> same naming, the running **total**, typed `gauge` (as
//!   the Datadog nozzle does; not a Datadog count).
//! - ContainerMetric -> per app instance `<prefix>app.cpu.pct`,
//!   `app.memory.used`, `app.disk.used`, `app.memory.quota`,
//!   `app.disk.quota`, tagged `app_id` and `instance_index`.
//! - Tags: `deployment`, `job`, `index`, `ip`, `origin` (when set) plus every
//!   envelope tag as `k:v`, sorted; host = `index`, else `ip`, else `origin`.
//!
//! Points accumulate between flushes in a bounded map (at most
//! `max_series` series, at most `max_points` points each; excess counted).

use std::collections::BTreeMap;

use envelope_proto::events::{self, envelope::EventType};
use serde::Serialize;

/// One Datadog series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    /// Full metric name.
    pub metric: String,
    /// `[[unix seconds, value], ...]`.
    pub points: Vec<(i64, f64)>,
    /// Always `gauge`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Host the metric is attributed to.
    pub host: String,
    /// `k:v` tags, sorted.
    pub tags: Vec<String>,
}

/// The request body.
#[derive(Debug, Serialize)]
pub struct Payload<'a> {
    /// The series.
    pub series: &'a [Series],
}

/// Series key: name, host and tags.
type Key = (String, String, Vec<String>);

/// Accumulates points between flushes.
#[derive(Debug)]
pub struct Aggregator {
    prefix: String,
    max_series: usize,
    max_points: usize,
    series: BTreeMap<Key, Vec<(i64, f64)>>,
    /// Points not kept (series limit, point limit, non-finite values).
    pub dropped: u64,
    /// Envelopes turned into points.
    pub accepted: u64,
}

impl Aggregator {
    /// An aggregator naming metrics `<prefix>...`.
    pub fn new(prefix: &str, max_series: usize, max_points: usize) -> Self {
        Self {
            prefix: prefix.to_owned(),
            max_series: max_series.max(1),
            max_points: max_points.max(1),
            series: BTreeMap::new(),
            dropped: 0,
            accepted: 0,
        }
    }

    fn base_tags(env: &events::Envelope) -> (String, Vec<String>) {
        let mut tags = Vec::new();
        let mut field = |k: &str, v: &Option<String>| {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                tags.push(format!("{k}:{v}"));
            }
        };
        field("deployment", &env.deployment);
        field("job", &env.job);
        field("index", &env.index);
        field("ip", &env.ip);
        field("origin", &env.origin);
        for (k, v) in &env.tags {
            tags.push(format!("{k}:{v}"));
        }
        let host = [&env.index, &env.ip, &env.origin]
            .into_iter()
            .find_map(|v| v.as_deref().filter(|v| !v.is_empty()))
            .unwrap_or("")
            .to_owned();
        (host, tags)
    }

    fn add(&mut self, metric: String, host: String, mut tags: Vec<String>, ts: i64, value: f64) {
        if !value.is_finite() {
            self.dropped += 1;
            return;
        }
        tags.sort();
        tags.dedup();
        let key = (metric, host, tags);
        let full = self.series.len() >= self.max_series;
        match self.series.get_mut(&key) {
            Some(points) => {
                if points.len() >= self.max_points {
                    points.remove(0);
                    self.dropped += 1;
                }
                points.push((ts, value));
            }
            None if full => self.dropped += 1,
            None => {
                self.series.insert(key, vec![(ts, value)]);
            }
        }
    }

    /// Adds the points of one firehose envelope (other event types are ignored).
    pub fn add_envelope(&mut self, env: &events::Envelope) {
        let ts = env.timestamp.unwrap_or(0).div_euclid(1_000_000_000);
        let origin = env.origin.as_deref().unwrap_or("");
        match env.event_type.and_then(|t| EventType::try_from(t).ok()) {
            Some(EventType::ValueMetric) => {
                let Some(m) = &env.value_metric else { return };
                let (host, tags) = Self::base_tags(env);
                let name = format!(
                    "{}{origin}.{}",
                    self.prefix,
                    m.name.as_deref().unwrap_or("")
                );
                self.add(name, host, tags, ts, m.value.unwrap_or(0.0));
                self.accepted += 1;
            }
            Some(EventType::CounterEvent) => {
                let Some(c) = &env.counter_event else { return };
                let (host, tags) = Self::base_tags(env);
                let name = format!(
                    "{}{origin}.{}",
                    self.prefix,
                    c.name.as_deref().unwrap_or("")
                );
                self.add(name, host, tags, ts, c.total.unwrap_or(0) as f64);
                self.accepted += 1;
            }
            Some(EventType::ContainerMetric) => {
                let Some(c) = &env.container_metric else {
                    return;
                };
                let (host, mut tags) = Self::base_tags(env);
                tags.push(format!(
                    "app_id:{}",
                    c.application_id.as_deref().unwrap_or("")
                ));
                tags.push(format!("instance_index:{}", c.instance_index.unwrap_or(0)));
                let values = [
                    ("app.cpu.pct", c.cpu_percentage.unwrap_or(0.0)),
                    ("app.memory.used", c.memory_bytes.unwrap_or(0) as f64),
                    ("app.disk.used", c.disk_bytes.unwrap_or(0) as f64),
                    ("app.memory.quota", c.memory_bytes_quota.unwrap_or(0) as f64),
                    ("app.disk.quota", c.disk_bytes_quota.unwrap_or(0) as f64),
                ];
                for (n, v) in values {
                    self.add(
                        format!("{}{n}", self.prefix),
                        host.clone(),
                        tags.clone(),
                        ts,
                        v,
                    );
                }
                self.accepted += 1;
            }
            _ => {}
        }
    }

    /// Adds an internal metric (`<prefix><name>`, host `host`).
    pub fn add_internal(&mut self, name: &str, host: &str, ts: i64, value: f64) {
        self.add(
            format!("{}{name}", self.prefix),
            host.to_owned(),
            Vec::new(),
            ts,
            value,
        );
    }

    /// Takes every accumulated series, leaving the aggregator empty.
    pub fn take(&mut self) -> Vec<Series> {
        std::mem::take(&mut self.series)
            .into_iter()
            .map(|((metric, host, tags), points)| Series {
                metric,
                points,
                kind: "gauge",
                host,
                tags,
            })
            .collect()
    }
}

/// Splits `series` into request bodies of at most `max_bytes` each (a
/// single series larger than that still goes alone).
pub fn bodies(series: &[Series], max_bytes: usize) -> Vec<(Vec<u8>, usize)> {
    const OPEN: &[u8] = b"{\"series\":[";
    const CLOSE: &[u8] = b"]}";
    let mut out = Vec::new();
    let mut cur = OPEN.to_vec();
    let mut count = 0;
    for s in series {
        let Ok(part) = serde_json::to_vec(s) else {
            continue;
        };
        if count > 0 && cur.len() + 1 + part.len() + CLOSE.len() > max_bytes {
            cur.extend_from_slice(CLOSE);
            out.push((std::mem::replace(&mut cur, OPEN.to_vec()), count));
            count = 0;
        }
        if count > 0 {
            cur.push(b',');
        }
        cur.extend_from_slice(&part);
        count += 1;
    }
    if count > 0 {
        cur.extend_from_slice(CLOSE);
        out.push((cur, count));
    }
    out
}

#[cfg(test)]
fn encode(series: &[Series]) -> Vec<u8> {
    serde_json::to_vec(&Payload { series }).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value_metric(name: &str, v: f64) -> events::Envelope {
        events::Envelope {
            origin: Some("gorouter".into()),
            event_type: Some(EventType::ValueMetric as i32),
            timestamp: Some(1_700_000_000_900_000_000),
            deployment: Some("cf".into()),
            job: Some("router".into()),
            index: Some("0".into()),
            ip: Some("10.0.0.1".into()),
            tags: [("zone".to_owned(), "z1".to_owned())].into_iter().collect(),
            value_metric: Some(events::ValueMetric {
                name: Some(name.into()),
                value: Some(v),
                unit: Some("ms".into()),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn value_metrics_named_and_tagged() {
        let mut a = Aggregator::new("cloudfoundry.nozzle.", 10, 10);
        a.add_envelope(&value_metric("latency", 1.5));
        a.add_envelope(&value_metric("latency", 2.5));
        let s = a.take();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].metric, "cloudfoundry.nozzle.gorouter.latency");
        assert_eq!(
            s[0].points,
            vec![(1_700_000_000, 1.5), (1_700_000_000, 2.5)]
        );
        assert_eq!(s[0].host, "0");
        assert_eq!(
            s[0].tags,
            [
                "deployment:cf",
                "index:0",
                "ip:10.0.0.1",
                "job:router",
                "origin:gorouter",
                "zone:z1"
            ]
        );
        let json = String::from_utf8(encode(&s)).expect("utf8");
        assert!(json.starts_with("{\"series\":[{\"metric\":\"cloudfoundry.nozzle.gorouter.latency\",\"points\":[[1700000000,1.5],[1700000000,2.5]],\"type\":\"gauge\",\"host\":\"0\",\"tags\":["), "{json}");
        assert!(a.take().is_empty());
    }

    #[test]
    fn limits_are_counted() {
        let mut a = Aggregator::new("p.", 1, 2);
        for i in 0..3 {
            a.add_envelope(&value_metric("x", f64::from(i)));
        }
        a.add_envelope(&value_metric("y", 1.0));
        a.add_envelope(&value_metric("x", f64::NAN));
        assert_eq!(a.dropped, 3);
        let s = a.take();
        assert_eq!(s.len(), 1);
        assert_eq!(
            s[0].points,
            vec![(1_700_000_000, 1.0), (1_700_000_000, 2.0)]
        );
    }

    #[test]
    fn bodies_respect_the_size_limit() {
        let mut a = Aggregator::new("p.", 100, 1);
        for i in 0..20 {
            a.add_envelope(&value_metric(&format!("m{i}"), 1.0));
        }
        let s = a.take();
        let one = encode(&s[..1]).len();
        let b = bodies(&s, one * 5);
        assert!(b.len() >= 4);
        assert_eq!(b.iter().map(|(_, n)| n).sum::<usize>(), 20);
        assert!(b.iter().all(|(body, _)| body.len() <= one * 5));
    }
}
