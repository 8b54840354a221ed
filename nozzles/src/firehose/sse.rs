//! The v2 firehose over the RLP gateway's `/v2/read` Server-Sent Events
//! stream (reference §17): `data: <protojson EnvelopeBatch>` events,
//! `event: heartbeat` (ignored), `event: closing` (reconnect at once).
//! Events with any other name are skipped, as SSE clients that listen for
//! plain messages do. Losses upstream arrive as rate-control warning
//! envelopes inside ordinary data events (the traffic controller's and
//! doppler's), counted in `firehose_upstream_dropped` like on the WebSocket
//! firehose. Connection failures reconnect with backoff.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use envelope_proto::loggregator_v2 as v2;
use http::{Request, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{Ended, Feed, Reconnect, note_v2_warning, reconnect_loop};

/// Where and what to read.
#[derive(Clone)]
pub struct SseConfig {
    /// `http://host:port` or `https://host:port` of the gateway.
    pub url: String,
    /// Query string without `?` (e.g. `shard_id=x&log&counter`).
    pub query: String,
    /// `Authorization` header value.
    pub authorization: String,
    /// TLS for `https://`.
    pub tls: Option<Arc<ClientConfig>>,
}

impl std::fmt::Debug for SseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseConfig")
            .field("url", &self.url)
            .field("query", &self.query)
            .finish()
    }
}

/// One parsed SSE event.
#[derive(Debug, Clone, PartialEq)]
pub enum SseEvent {
    /// A data event (the joined `data:` lines).
    Data(String),
    /// `event: heartbeat`.
    Heartbeat,
    /// `event: closing`: the server ends the stream.
    Closing,
}

/// Incremental SSE parser: feed bytes, get events.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    event: Option<String>,
    data: Vec<String>,
}

impl SseParser {
    /// Adds bytes; returns the events completed by them.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=nl).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line).into_owned();
            if line.is_empty() {
                let event = self.event.take();
                let data = std::mem::take(&mut self.data);
                match event.as_deref() {
                    Some("heartbeat") => out.push(SseEvent::Heartbeat),
                    Some("closing") => out.push(SseEvent::Closing),
                    // Named events other than those are not batches.
                    None | Some("message") if !data.is_empty() => {
                        out.push(SseEvent::Data(data.join("\n")))
                    }
                    _ => {}
                }
            } else if let Some(v) = line.strip_prefix("data:") {
                self.data.push(v.strip_prefix(' ').unwrap_or(v).to_owned());
            } else if let Some(v) = line.strip_prefix("event:") {
                self.event = Some(v.trim().to_owned());
            } else if line.starts_with("heartbeat:") {
                out.push(SseEvent::Heartbeat);
            }
        }
        out
    }
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

fn i64_of(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

fn u64_of(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_u64().unwrap_or(0),
        _ => 0,
    }
}

fn f64_of(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap_or(0.0),
        Value::String(s) => match s.as_str() {
            "NaN" => f64::NAN,
            "Infinity" => f64::INFINITY,
            "-Infinity" => f64::NEG_INFINITY,
            other => other.parse().unwrap_or(0.0),
        },
        _ => 0.0,
    }
}

/// Parses one envelope of the gateway's protojson.
pub fn envelope_from_json(v: &Value) -> Result<v2::Envelope, String> {
    let obj = v.as_object().ok_or("envelope is not an object")?;
    let tags: BTreeMap<String, String> = obj
        .get("tags")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), s(v))).collect())
        .unwrap_or_default();
    use v2::envelope::Message as M;
    let message = if let Some(l) = obj.get("log") {
        let payload = base64::engine::general_purpose::STANDARD
            .decode(l.get("payload").and_then(Value::as_str).unwrap_or(""))
            .map_err(|e| format!("log payload: {e}"))?;
        let t = match l.get("type") {
            Some(Value::String(t)) if t == "ERR" => 1,
            Some(Value::Number(n)) => n.as_i64().unwrap_or(0) as i32,
            _ => 0,
        };
        Some(M::Log(v2::Log {
            payload: payload.into(),
            r#type: t,
        }))
    } else if let Some(c) = obj.get("counter") {
        Some(M::Counter(v2::Counter {
            name: s(&c["name"]),
            delta: u64_of(&c["delta"]),
            total: u64_of(&c["total"]),
        }))
    } else if let Some(g) = obj.get("gauge") {
        let metrics = g
            .get("metrics")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v2::GaugeValue {
                                unit: s(&v["unit"]),
                                value: f64_of(&v["value"]),
                            },
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(M::Gauge(v2::Gauge { metrics }))
    } else if let Some(t) = obj.get("timer") {
        Some(M::Timer(v2::Timer {
            name: s(&t["name"]),
            start: i64_of(&t["start"]),
            stop: i64_of(&t["stop"]),
        }))
    } else {
        obj.get("event").map(|e| {
            M::Event(v2::Event {
                title: s(&e["title"]),
                body: s(&e["body"]),
            })
        })
    };
    Ok(v2::Envelope {
        timestamp: i64_of(obj.get("timestamp").unwrap_or(&Value::Null)),
        source_id: obj.get("source_id").map(s).unwrap_or_default(),
        instance_id: obj.get("instance_id").map(s).unwrap_or_default(),
        deprecated_tags: BTreeMap::new(),
        tags,
        message,
    })
}

/// Parses a `{"batch":[...]}` data event.
pub fn batch_from_json(text: &str) -> Result<Vec<v2::Envelope>, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    v.get("batch")
        .and_then(Value::as_array)
        .ok_or("no batch array")?
        .iter()
        .map(envelope_from_json)
        .collect()
}

enum End {
    Closing,
    Error(String),
}

/// Reads the gateway stream into `feed` until `cancel` fires.
pub async fn run(config: SseConfig, feed: Feed<v2::Envelope>, cancel: CancellationToken) {
    reconnect_loop(feed.metrics(), &cancel, || async {
        let mut received = false;
        let next = match session(&config, &feed, &mut received).await {
            End::Closing => {
                tracing::info!("gateway closed the stream; reconnecting");
                Reconnect::Now
            }
            End::Error(e) => {
                tracing::warn!(error = %e, "gateway stream failed");
                Reconnect::AfterDelay
            }
        };
        Ended { received, next }
    })
    .await;
    feed.close();
}

async fn session(config: &SseConfig, feed: &Feed<v2::Envelope>, received: &mut bool) -> End {
    let Some((scheme, rest)) = config.url.split_once("://") else {
        return End::Error(format!("invalid gateway url {}", config.url));
    };
    let authority = rest.split('/').next().unwrap_or("");
    let secure = scheme == "https";
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, p.parse().unwrap_or(0)),
        _ => (authority, if secure { 443 } else { 80 }),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let tcp = match plumbing::dial::tcp((host, port)).await {
        Ok(t) => t,
        Err(e) => return End::Error(format!("connect {authority}: {e}")),
    };
    let req = match Request::get(format!("/v2/read?{}", config.query))
        .header(header::HOST, authority)
        .header(header::ACCEPT, "text/event-stream")
        .header(header::AUTHORIZATION, config.authorization.as_str())
        .body(Empty::<Bytes>::new())
    {
        Ok(r) => r,
        Err(e) => return End::Error(e.to_string()),
    };
    let resp = if secure {
        let Some(tls) = config.tls.clone() else {
            return End::Error("https gateway needs a TLS configuration".into());
        };
        let stream = match crate::tlsutil::connect(tls, host, tcp).await {
            Ok(s) => s,
            Err(e) => return End::Error(e),
        };
        send(TokioIo::new(stream), req).await
    } else {
        send(TokioIo::new(tcp), req).await
    };
    let resp = match resp {
        Ok(r) => r,
        Err(e) => return End::Error(e),
    };
    if !resp.status().is_success() {
        return End::Error(format!("gateway answered {}", resp.status()));
    }
    tracing::info!("connected to the gateway stream");
    let m = feed.metrics().clone();
    let mut parser = SseParser::default();
    let mut body = resp.into_body();
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => return End::Error(e.to_string()),
        };
        let Some(data) = frame.data_ref() else {
            continue;
        };
        for ev in parser.push(data) {
            match ev {
                SseEvent::Data(text) => match batch_from_json(&text) {
                    Ok(envs) => {
                        *received = true;
                        m.received.add(envs.len() as u64);
                        for e in envs {
                            note_v2_warning(&e, &m);
                            feed.push(e);
                        }
                    }
                    Err(e) => {
                        m.decode_errors.inc();
                        tracing::debug!(error = %e, "undecodable gateway event");
                    }
                },
                SseEvent::Heartbeat => {}
                SseEvent::Closing => return End::Closing,
            }
        }
    }
    End::Error("stream ended".into())
}

async fn send<T>(
    io: T,
    req: Request<Empty<Bytes>>,
) -> Result<http::Response<hyper::body::Incoming>, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let mut sender = crate::http::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    sender.send_request(req).await.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_data_heartbeat_and_closing() {
        let mut p = SseParser::default();
        let mut evs = p.push(b"data: {\"batch\":[]}\n\nevent: heartbeat\ndata: 1700000000\n\n");
        evs.extend(p.push(b"event: closing\ndata: closing due to stream timeout\n\n"));
        assert_eq!(
            evs,
            vec![
                SseEvent::Data("{\"batch\":[]}".into()),
                SseEvent::Heartbeat,
                SseEvent::Closing
            ]
        );
        // Named events the client does not know are skipped, not decoded.
        assert_eq!(
            p.push(b"event: other\ndata: {\"x\":1}\n\nevent: message\ndata: {\"batch\":[]}\n\n"),
            vec![SseEvent::Data("{\"batch\":[]}".into())]
        );
        // Split across reads.
        assert!(p.push(b"data: {\"ba").is_empty());
        assert_eq!(
            p.push(b"tch\":[]}\n\n"),
            vec![SseEvent::Data("{\"batch\":[]}".into())]
        );
    }

    #[test]
    fn parses_gateway_json_round_trip() {
        let env = v2::Envelope {
            timestamp: 1_700_000_000_123_456_789,
            source_id: "app".into(),
            instance_id: "1".into(),
            deprecated_tags: BTreeMap::new(),
            tags: [("k".to_owned(), "v".to_owned())].into_iter().collect(),
            message: Some(v2::envelope::Message::Gauge(v2::Gauge {
                metrics: [(
                    "cpu".to_owned(),
                    v2::GaugeValue {
                        unit: "percentage".into(),
                        value: 1e21,
                    },
                )]
                .into_iter()
                .collect(),
            })),
        };
        let log = v2::Envelope {
            message: Some(v2::envelope::Message::Log(v2::Log {
                payload: Bytes::from_static(b"hi\n"),
                r#type: 1,
            })),
            ..env.clone()
        };
        let json = envelope_proto::json::batch_to_json(&v2::EnvelopeBatch {
            batch: vec![env.clone(), log.clone()],
        });
        assert_eq!(batch_from_json(&json).expect("parses"), vec![env, log]);
    }
}
