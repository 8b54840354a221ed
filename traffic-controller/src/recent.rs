//! `/apps/{guid}/recentlogs` and `/apps/{guid}/containermetrics` (reference
//! §15): gathered from every doppler with the historical
//! `plumbing.Doppler/RecentLogs` and `ContainerMetrics` RPCs (deadline
//! `recent_timeout`, 5 s by default), answered as `multipart/x-protobuf`.
//!
//! Recent logs: every doppler's LogMessages merged by envelope timestamp
//! (oldest first); `limit=N` keeps the newest N. Container metrics: the
//! newest ContainerMetric per instance index, ordered by index.
//!
//! Each doppler answers with as many of the app's newest envelopes as fit in
//! one 10 MiB message. A doppler that fails or times out contributes nothing
//! (what is available is returned) but is never silent: it is logged and
//! counted in `doppler_proxy_recent_failures{endpoint}`. When every doppler
//! failed, the answer is `500` with the last error's text (as upstream's
//! log-cache era did on errors, reference §15.2) instead of an empty `200`.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use envelope_proto::events::{Envelope, envelope::EventType};
use envelope_proto::plumbing_v1::doppler_client::DopplerClient;
use envelope_proto::plumbing_v1::{ContainerMetricsRequest, RecentLogsRequest};
use http::header::HeaderValue;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use prost::Message as _;

use crate::multipart;
use crate::respond::{self, Body};
use crate::routes;
use crate::server::Shared;
use crate::upstream::MAX_MESSAGE;

/// `/apps/{guid}/recentlogs`.
pub(crate) async fn recent_logs(
    req: Request<Incoming>,
    app: String,
    shared: Arc<Shared>,
) -> Response<Body> {
    if let Err(d) = shared.auth.app(req.headers(), &app).await {
        return crate::websocket::denial_response(&d);
    }
    let limit = routes::limit(req.uri().query());
    let payloads = match gather(&shared, &app, Rpc::RecentLogs).await {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let mut logs: Vec<(i64, Bytes)> = payloads
        .into_iter()
        .filter_map(|p| {
            let env = envelope_proto::v1::decode(p.as_ref()).ok()?;
            (env.event_type == Some(EventType::LogMessage as i32))
                .then(|| (env.timestamp.unwrap_or(0), p))
        })
        .collect();
    logs.sort_by_key(|(ts, _)| *ts);
    if let Some(limit) = limit
        && logs.len() > limit
    {
        logs.drain(..logs.len() - limit);
    }
    let parts: Vec<Bytes> = logs.into_iter().map(|(_, p)| p).collect();
    let mut resp = multipart_response(&parts);
    if let Some(origin) = req.headers().get(http::header::ORIGIN).cloned() {
        let h = resp.headers_mut();
        h.insert("access-control-allow-origin", origin);
        h.insert(
            "access-control-allow-credentials",
            HeaderValue::from_static("true"),
        );
    }
    resp
}

/// `/apps/{guid}/containermetrics`.
pub(crate) async fn container_metrics(
    req: Request<Incoming>,
    app: String,
    shared: Arc<Shared>,
) -> Response<Body> {
    if let Err(d) = shared.auth.app(req.headers(), &app).await {
        return crate::websocket::denial_response(&d);
    }
    match gather(&shared, &app, Rpc::ContainerMetrics).await {
        Ok(payloads) => multipart_response(&newest_per_instance(payloads)),
        Err(resp) => resp,
    }
}

/// Keeps the newest ContainerMetric (by envelope timestamp) per instance index.
pub(crate) fn newest_per_instance(payloads: Vec<Bytes>) -> Vec<Bytes> {
    let mut newest: BTreeMap<i32, (i64, Bytes)> = BTreeMap::new();
    for p in payloads {
        let Ok(env) = Envelope::decode(p.as_ref()) else {
            continue;
        };
        let Some(cm) = env.container_metric.as_ref() else {
            continue;
        };
        if env.event_type != Some(EventType::ContainerMetric as i32) {
            continue;
        }
        let index = cm.instance_index.unwrap_or(0);
        let ts = env.timestamp.unwrap_or(0);
        match newest.get(&index) {
            Some((old, _)) if *old >= ts => {}
            _ => {
                newest.insert(index, (ts, p));
            }
        }
    }
    newest.into_values().map(|(_, p)| p).collect()
}

fn multipart_response(parts: &[Bytes]) -> Response<Body> {
    let boundary = multipart::boundary();
    respond::full(
        StatusCode::OK,
        &multipart::content_type(&boundary),
        multipart::encode(&boundary, parts),
    )
}

#[derive(Clone, Copy)]
enum Rpc {
    RecentLogs,
    ContainerMetrics,
}

impl Rpc {
    fn name(self) -> &'static str {
        match self {
            Rpc::RecentLogs => "RecentLogs",
            Rpc::ContainerMetrics => "ContainerMetrics",
        }
    }
}

/// Every doppler's payloads; a failed or timed-out doppler is logged and
/// counted and contributes nothing. `Err` (a `500` to send) when there were
/// dopplers and every one of them failed.
async fn gather(shared: &Shared, app: &str, rpc: Rpc) -> Result<Vec<Bytes>, Response<Body>> {
    let set = shared.pool.current();
    let deadline = shared.config.recent_timeout;
    let failures = match rpc {
        Rpc::RecentLogs => &shared.metrics.recent_failures_logs,
        Rpc::ContainerMetrics => &shared.metrics.recent_failures_metrics,
    };
    let calls = set.values().map(|doppler| {
        let channel = doppler.channel.clone();
        let addr = doppler.addr;
        let app_id = app.to_owned();
        async move {
            let mut client = DopplerClient::new(channel).max_decoding_message_size(MAX_MESSAGE);
            let call = async {
                match rpc {
                    Rpc::RecentLogs => client
                        .recent_logs(RecentLogsRequest { app_id })
                        .await
                        .map(|r| r.into_inner().payload),
                    Rpc::ContainerMetrics => client
                        .container_metrics(ContainerMetricsRequest { app_id })
                        .await
                        .map(|r| r.into_inner().payload),
                }
            };
            let error = match tokio::time::timeout(deadline, call).await {
                Ok(Ok(p)) => return Ok(p),
                Ok(Err(status)) => {
                    format!("doppler {addr}: {}: {}", status.code(), status.message())
                }
                Err(_) => format!("doppler {addr}: timed out after {deadline:?}"),
            };
            failures.inc();
            tracing::warn!(rpc = rpc.name(), app, "{error}");
            Err(error)
        }
    });
    let results = futures::future::join_all(calls).await;
    let dopplers = results.len();
    let mut payloads = Vec::new();
    let mut failed = 0;
    let mut last_error = String::new();
    for r in results {
        match r {
            Ok(p) => payloads.extend(p),
            Err(e) => {
                failed += 1;
                last_error = e;
            }
        }
    }
    if dopplers > 0 && failed == dopplers {
        return Err(respond::go_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!(
                "{} failed on every doppler ({dopplers}); last error: {last_error}",
                rpc.name()
            ),
        ));
    }
    Ok(payloads)
}

#[cfg(test)]
mod tests {
    use super::*;
    use envelope_proto::events::ContainerMetric;

    fn cm(index: i32, ts: i64, cpu: f64) -> Bytes {
        Bytes::from(
            Envelope {
                origin: Some("o".into()),
                event_type: Some(EventType::ContainerMetric as i32),
                timestamp: Some(ts),
                container_metric: Some(ContainerMetric {
                    application_id: Some("app".into()),
                    instance_index: Some(index),
                    cpu_percentage: Some(cpu),
                    memory_bytes: Some(1),
                    disk_bytes: Some(1),
                    ..Default::default()
                }),
                ..Default::default()
            }
            .encode_to_vec(),
        )
    }

    #[test]
    fn container_metrics_keep_newest_per_instance() {
        let got = newest_per_instance(vec![
            cm(1, 10, 1.0),
            cm(0, 5, 2.0),
            cm(1, 30, 3.0),
            cm(1, 20, 4.0),
            Bytes::from_static(b"\xff garbage"),
        ]);
        assert_eq!(got, vec![cm(0, 5, 2.0), cm(1, 30, 3.0)]);
    }
}
