//! `/apps/{guid}/recentlogs` and `/apps/{guid}/containermetrics` (reference
//! §15): gathered from every doppler with the historical
//! `plumbing.Doppler/RecentLogs` and `ContainerMetrics` RPCs (deadline
//! `recent_timeout`, 5 s by default), answered as `multipart/x-protobuf`.
//!
//! Recent logs: every doppler's LogMessages merged by envelope timestamp
//! (oldest first); `limit=N` keeps the newest N. Container metrics: the
//! newest ContainerMetric per instance index, ordered by index. Dopplers that
//! fail or time out contribute nothing (what is available is returned).

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
use crate::upstream::fanin::MAX_MESSAGE;

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
    let payloads = gather(&shared, &app, Rpc::RecentLogs).await;
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
    let payloads = gather(&shared, &app, Rpc::ContainerMetrics).await;
    multipart_response(&newest_per_instance(payloads))
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

async fn gather(shared: &Shared, app: &str, rpc: Rpc) -> Vec<Bytes> {
    let set = shared.pool.current();
    let deadline = shared.config.recent_timeout;
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
            match tokio::time::timeout(deadline, call).await {
                Ok(Ok(p)) => p,
                Ok(Err(status)) => {
                    tracing::warn!(doppler = %addr, %status, "recent logs / container metrics call failed");
                    Vec::new()
                }
                Err(_) => {
                    tracing::warn!(doppler = %addr, "recent logs / container metrics call timed out");
                    Vec::new()
                }
            }
        }
    });
    futures::future::join_all(calls)
        .await
        .into_iter()
        .flatten()
        .collect()
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
