//! Loading and comparing the golden fixtures in `shared/fixtures` (produced
//! by the reference Go implementation; see its README).
//!
//! Messages are compared semantically: both sides are decoded and compared
//! through their `Debug` form, which prints maps in key order, proto2
//! presence as `Some`/`None`, and `NaN` equal to `NaN` (while `-0.0` stays
//! distinct from `0.0`).
#![allow(dead_code)]

use std::fmt::Debug;
use std::path::PathBuf;

use base64::Engine as _;
use envelope_proto::{events, loggregator_v2, v1};
use prost::Message as _;
use serde_json::Value;

/// `shared/fixtures` relative to this crate.
pub(crate) fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures")
}

/// Parsed `shared/fixtures/<rel>`, e.g. `"v2/view.json"`.
pub(crate) fn fixture(rel: &str) -> Value {
    let path = dir().join(rel);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()));
    serde_json::from_str(&text).expect("fixture is JSON")
}

/// The `cases` array of one fixture file, e.g. `"v1/invalid.json"`.
pub(crate) fn cases(rel: &str) -> Vec<Value> {
    let cases = fixture(rel)["cases"]
        .as_array()
        .expect("fixture has cases")
        .clone();
    assert!(!cases.is_empty(), "{rel} has no cases");
    cases
}

/// Every `"b64"` value under `shared/fixtures/<sub>/*.json`, with the file
/// and case it came from.
pub(crate) fn fixture_blobs(sub: &str) -> Vec<(String, Vec<u8>)> {
    let dir = dir().join(sub);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let json: Value =
            serde_json::from_slice(&std::fs::read(&file).expect("read fixture")).expect("json");
        collect_b64(&json, &file.display().to_string(), &mut out);
    }
    out
}

fn collect_b64(v: &Value, at: &str, out: &mut Vec<(String, Vec<u8>)>) {
    match v {
        Value::Object(m) => {
            let at = match m.get("name").and_then(|n| n.as_str()) {
                Some(name) => format!("{at}#{name}"),
                None => at.to_string(),
            };
            for (k, x) in m {
                if k == "b64" {
                    if let Some(s) = x.as_str() {
                        out.push((at.clone(), b64(s)));
                    }
                } else {
                    collect_b64(x, &at, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_b64(x, at, out)),
        _ => {}
    }
}

/// The case's name.
pub(crate) fn name(case: &Value) -> String {
    case["name"].as_str().expect("case name").to_owned()
}

/// Decodes a standard base64 string.
pub(crate) fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("fixture base64 is valid")
}

/// The bytes of a Blob (`{"b64": ...}`).
pub(crate) fn blob(v: &Value) -> Vec<u8> {
    b64(v["b64"].as_str().expect("blob has b64"))
}

/// The encoding of a ProtoValue: `b64`, or `partial_b64` when Go refused to
/// marshal it (the encoding without the required-field check).
pub(crate) fn proto_bytes(pv: &Value) -> Option<Vec<u8>> {
    pv["b64"]
        .as_str()
        .or_else(|| pv["partial_b64"].as_str())
        .map(b64)
}

/// The Go marshal error of a ProtoValue, if any.
pub(crate) fn marshal_error(pv: &Value) -> Option<&str> {
    pv["marshal_error"].as_str()
}

/// Reference decode of a v1 message with prost (an independent decoder).
/// `None` when prost cannot hold it (invalid UTF-8 in a proto2 string).
pub(crate) fn prost_v1(bytes: &[u8]) -> Option<events::Envelope> {
    events::Envelope::decode(bytes).ok()
}

/// Reference decode of a v2 envelope with prost.
pub(crate) fn prost_v2(bytes: &[u8]) -> Option<loggregator_v2::Envelope> {
    loggregator_v2::Envelope::decode(bytes).ok()
}

/// Reference decode of a v2 batch with prost.
pub(crate) fn prost_batch(bytes: &[u8]) -> Option<loggregator_v2::EnvelopeBatch> {
    loggregator_v2::EnvelopeBatch::decode(bytes).ok()
}

/// Semantic equality through `Debug` (see the module docs).
pub(crate) fn same<T: Debug>(a: &T, b: &T) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

/// Multiset equality through `Debug`.
pub(crate) fn same_multiset<T: Debug>(a: &[T], b: &[T]) -> bool {
    let mut x: Vec<String> = a.iter().map(|v| format!("{v:?}")).collect();
    let mut y: Vec<String> = b.iter().map(|v| format!("{v:?}")).collect();
    x.sort();
    y.sort();
    x == y
}

/// The field name in a Go "required field X not set" message.
pub(crate) fn required_field(go_error: &str) -> Option<&str> {
    let rest = go_error.split("required field ").nth(1)?;
    rest.strip_suffix(" not set")
}

/// Collects failing cases so that one assertion reports all of them.
#[derive(Default)]
pub(crate) struct Failures {
    items: Vec<String>,
    checked: usize,
}

impl Failures {
    /// Records a failure of `case` unless `ok`.
    pub(crate) fn check(&mut self, case: &str, ok: bool, what: impl FnOnce() -> String) {
        self.checked += 1;
        if !ok {
            self.items.push(format!("{case}: {}", what()));
        }
    }

    /// Asserts that nothing failed and that at least `min_checks` checks ran.
    pub(crate) fn finish(self, set: &str, min_checks: usize) {
        assert!(
            self.items.is_empty(),
            "{} failing check(s) in {set}:\n{}",
            self.items.len(),
            self.items.join("\n")
        );
        assert!(
            self.checked >= min_checks,
            "{set}: only {} checks ran, expected at least {min_checks}",
            self.checked
        );
    }
}

/// Expected v1 list of a V1List: (ordered, [(case label, reference message,
/// go marshal error, exact bytes when Go could marshal)]).
pub(crate) struct ExpectedV1 {
    pub(crate) ordered: bool,
    pub(crate) envelopes: Vec<ExpectedV1Envelope>,
}

/// One expected v1 envelope.
pub(crate) struct ExpectedV1Envelope {
    /// The reference message; decoded with prost, or with the crate's own
    /// decoder (lossy UTF-8) when prost cannot hold it.
    pub(crate) message: events::Envelope,
    /// True when `message` had to be decoded lossily (invalid UTF-8).
    pub(crate) lossy: bool,
    /// Go's marshal error, when Go refuses to encode it.
    pub(crate) marshal_error: Option<String>,
    /// Go's deterministic encoding, when it could encode it.
    pub(crate) bytes: Option<Vec<u8>>,
}

/// Reads a V1List.
pub(crate) fn expected_v1_list(v: &Value) -> ExpectedV1 {
    let ordered = v["ordered"].as_bool().expect("ordered");
    let envelopes = v["envelopes"]
        .as_array()
        .expect("envelopes")
        .iter()
        .map(|pv| {
            let bytes = proto_bytes(pv).expect("v1 envelope has bytes");
            let (message, lossy) = match prost_v1(&bytes) {
                Some(m) => (m, false),
                None => (lossy_v1(&bytes), true),
            };
            ExpectedV1Envelope {
                message,
                lossy,
                marshal_error: marshal_error(pv).map(str::to_owned),
                bytes: pv["b64"].as_str().map(b64),
            }
        })
        .collect();
    ExpectedV1 { ordered, envelopes }
}

/// Decodes v1 bytes that prost rejects (invalid UTF-8 in a proto2 string)
/// with the crate's own decoder, which repairs them with U+FFFD (the one
/// documented deviation, see `envelope_proto::v1`).
pub(crate) fn lossy_v1(bytes: &[u8]) -> events::Envelope {
    match v1::decode(bytes) {
        Ok(e) => e,
        Err(e) => panic!("fixture bytes do not decode: {e}"),
    }
}

/// JSON equality where numbers compare by value (`12` == `12.0`).
pub(crate) fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

fn num(v: f64) -> Value {
    if v.is_nan() {
        Value::from("NaN")
    } else if v == f64::INFINITY {
        Value::from("Infinity")
    } else if v == f64::NEG_INFINITY {
        Value::from("-Infinity")
    } else {
        Value::from(v)
    }
}

fn enum_name<E: TryFrom<i32>>(v: i32, name: impl Fn(E) -> &'static str) -> Value {
    match E::try_from(v) {
        Ok(e) => Value::from(name(e)),
        Err(_) => Value::from(v),
    }
}

fn b64_encode(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// The fixtures' protojson view of a v1 envelope: proto field names, a
/// field present exactly when it is set, 64-bit integers as strings.
pub(crate) fn v1_json_view(e: &events::Envelope) -> Value {
    use serde_json::Map;
    fn put<T>(m: &mut Map<String, Value>, k: &str, v: &Option<T>, f: impl Fn(&T) -> Value) {
        if let Some(v) = v {
            m.insert(k.to_owned(), f(v));
        }
    }
    let s = |v: &String| Value::from(v.as_str());
    let i64s = |v: &i64| Value::from(v.to_string());
    let u64s = |v: &u64| Value::from(v.to_string());
    let i32n = |v: &i32| Value::from(*v);
    let uuid = |u: &events::Uuid| {
        let mut m = Map::new();
        put(&mut m, "low", &u.low, u64s);
        put(&mut m, "high", &u.high, u64s);
        Value::Object(m)
    };
    let mut m = Map::new();
    put(&mut m, "origin", &e.origin, s);
    put(&mut m, "eventType", &e.event_type, |v| {
        enum_name(*v, |x: events::envelope::EventType| x.as_str_name())
    });
    put(&mut m, "timestamp", &e.timestamp, i64s);
    put(&mut m, "deployment", &e.deployment, s);
    put(&mut m, "job", &e.job, s);
    put(&mut m, "index", &e.index, s);
    put(&mut m, "ip", &e.ip, s);
    if !e.tags.is_empty() {
        let tags: Map<String, Value> = e
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        m.insert("tags".into(), Value::Object(tags));
    }
    put(&mut m, "httpStartStop", &e.http_start_stop, |h| {
        let mut o = Map::new();
        put(&mut o, "startTimestamp", &h.start_timestamp, i64s);
        put(&mut o, "stopTimestamp", &h.stop_timestamp, i64s);
        put(&mut o, "requestId", &h.request_id, uuid);
        put(&mut o, "peerType", &h.peer_type, |v| {
            enum_name(*v, |x: events::PeerType| x.as_str_name())
        });
        put(&mut o, "method", &h.method, |v| {
            enum_name(*v, |x: events::Method| x.as_str_name())
        });
        put(&mut o, "uri", &h.uri, s);
        put(&mut o, "remoteAddress", &h.remote_address, s);
        put(&mut o, "userAgent", &h.user_agent, s);
        put(&mut o, "statusCode", &h.status_code, i32n);
        put(&mut o, "contentLength", &h.content_length, i64s);
        put(&mut o, "applicationId", &h.application_id, uuid);
        put(&mut o, "instanceIndex", &h.instance_index, i32n);
        put(&mut o, "instanceId", &h.instance_id, s);
        if !h.forwarded.is_empty() {
            o.insert(
                "forwarded".into(),
                Value::Array(
                    h.forwarded
                        .iter()
                        .map(|f| Value::from(f.as_str()))
                        .collect(),
                ),
            );
        }
        Value::Object(o)
    });
    put(&mut m, "logMessage", &e.log_message, |l| {
        let mut o = Map::new();
        put(&mut o, "message", &l.message, |b| {
            Value::from(b64_encode(b))
        });
        put(&mut o, "message_type", &l.message_type, |v| {
            enum_name(*v, |x: events::log_message::MessageType| x.as_str_name())
        });
        put(&mut o, "timestamp", &l.timestamp, i64s);
        put(&mut o, "app_id", &l.app_id, s);
        put(&mut o, "source_type", &l.source_type, s);
        put(&mut o, "source_instance", &l.source_instance, s);
        Value::Object(o)
    });
    put(&mut m, "valueMetric", &e.value_metric, |v| {
        let mut o = Map::new();
        put(&mut o, "name", &v.name, s);
        put(&mut o, "value", &v.value, |x| num(*x));
        put(&mut o, "unit", &v.unit, s);
        Value::Object(o)
    });
    put(&mut m, "counterEvent", &e.counter_event, |c| {
        let mut o = Map::new();
        put(&mut o, "name", &c.name, s);
        put(&mut o, "delta", &c.delta, u64s);
        put(&mut o, "total", &c.total, u64s);
        Value::Object(o)
    });
    put(&mut m, "error", &e.error, |c| {
        let mut o = Map::new();
        put(&mut o, "source", &c.source, s);
        put(&mut o, "code", &c.code, i32n);
        put(&mut o, "message", &c.message, s);
        Value::Object(o)
    });
    put(&mut m, "containerMetric", &e.container_metric, |c| {
        let mut o = Map::new();
        put(&mut o, "applicationId", &c.application_id, s);
        put(&mut o, "instanceIndex", &c.instance_index, i32n);
        put(&mut o, "cpuPercentage", &c.cpu_percentage, |x| num(*x));
        put(&mut o, "memoryBytes", &c.memory_bytes, u64s);
        put(&mut o, "diskBytes", &c.disk_bytes, u64s);
        put(&mut o, "memoryBytesQuota", &c.memory_bytes_quota, u64s);
        put(&mut o, "diskBytesQuota", &c.disk_bytes_quota, u64s);
        Value::Object(o)
    });
    Value::Object(m)
}
