//! The HTTP API at the root of its listener, as upstream's gateway and
//! cf-auth-proxy together serve it (log-cache-reference §2):
//!
//! | Route | Answer |
//! |---|---|
//! | `GET /api/v1/info` | `{"version":"…","vm_uptime":"…"}` (no auth) |
//! | `GET /api/v1/read/{source_id=**}` | `{"envelopes":{"batch":[…]}}` (protojson, proto names, unpopulated fields) |
//! | `GET /api/v1/meta` | `{"meta":{…}}` camelCase, zero fields left out, filtered to what the caller may see |
//! | `GET /api/v1/query`, `/api/v1/query_range` | Prometheus-shaped PromQL results ([`crate::promql`]) |
//!
//! Every JSON body ends with `\n`. Parameter parse failures are 400 with
//! grpc-gateway's body `{"code":3,"message":"…","details":[]}`; store errors
//! are 500 (`code` 2) with upstream's words; every authorisation failure is
//! 404, never 401/403.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use envelope_proto::logcache_v1::{EnvelopeType, MetaInfo, ReadRequest};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;

use crate::auth::{Access, Auth, Denied};
use crate::metrics::Metrics;
use crate::promql;
use crate::read::{ReadError, Reader};

/// The `version` `/api/v1/info` reports: the upstream release whose API
/// this implements (clients need semver >= 2.0.0 to use `/api/v1`).
pub const API_VERSION: &str = "3.2.12";

/// Largest encoded read response the HTTP API serves: upstream's gateway
/// reads from the store over gRPC with Go's default 4 MiB receive limit, so
/// a larger batch fails there with `ResourceExhausted`, which grpc-gateway
/// answers with 429, on which the cf CLI halves its `limit` and asks again.
pub const MAX_READ_RESPONSE: usize = 4 * 1024 * 1024;

/// Path prefix of reads.
const READ_PREFIX: &str = "/api/v1/read/";

/// Everything a request handler needs.
pub struct Gateway {
    /// Where reads go.
    pub reader: Arc<dyn Reader>,
    /// Who may read what.
    pub auth: Arc<Auth>,
    /// PromQL.
    pub promql: Arc<promql::Engine>,
    /// Metrics.
    pub metrics: Metrics,
    /// Process start (for `vm_uptime` when `/proc/uptime` is unreadable).
    pub started: Instant,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").finish_non_exhaustive()
    }
}

/// A response body.
pub type Body = Full<Bytes>;

fn json(status: StatusCode, body: String) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// grpc-gateway's error body for a gRPC code and message.
pub fn status_body(code: tonic::Code, message: &str) -> String {
    let mut out = String::with_capacity(48 + message.len());
    let _ = write!(out, "{{\"code\":{},\"message\":", code as i32);
    envelope_proto::json::write_str(&mut out, message);
    out.push_str(",\"details\":[]}\n");
    out
}

/// The HTTP status grpc-gateway gives a gRPC code.
pub fn http_status(code: tonic::Code) -> StatusCode {
    use tonic::Code;
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn error(e: &ReadError) -> Response<Body> {
    json(http_status(e.code), status_body(e.code, &e.message))
}

fn not_found() -> Response<Body> {
    json(
        StatusCode::NOT_FOUND,
        status_body(tonic::Code::NotFound, "Not Found"),
    )
}

/// Every authorisation failure looks like an unknown route.
fn denied(_d: &Denied) -> Response<Body> {
    not_found()
}

impl Gateway {
    /// Answers one request.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<Body> {
        let path = req.uri().path();
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return json(
                StatusCode::METHOD_NOT_ALLOWED,
                status_body(tonic::Code::Unimplemented, "Method Not Allowed"),
            );
        }
        let query = req.uri().query().unwrap_or("");
        match path {
            "/api/v1/info" => self.info(),
            "/api/v1/meta" => self.meta(req.headers()).await,
            "/api/v1/query" | "/api/v1/query_range" => {
                self.promql(req.headers(), path == "/api/v1/query", query)
                    .await
            }
            p if p.starts_with(READ_PREFIX) => {
                let raw_id = &p[READ_PREFIX.len()..];
                self.read(req.headers(), raw_id, query).await
            }
            _ => not_found(),
        }
    }

    fn info(&self) -> Response<Body> {
        let uptime = vm_uptime().unwrap_or_else(|| self.started.elapsed().as_secs());
        json(
            StatusCode::OK,
            format!("{{\"version\":\"{API_VERSION}\",\"vm_uptime\":\"{uptime}\"}}\n"),
        )
    }

    async fn read(&self, headers: &http::HeaderMap, raw_id: &str, query: &str) -> Response<Body> {
        self.metrics.http_reads.inc();
        let Some(source_id) = plumbing::url::path_unescape(raw_id) else {
            self.metrics.http_read_errors.inc();
            return error(&ReadError::invalid(format!(
                "invalid source_id in path: {raw_id:?}"
            )));
        };
        let request = match parse_read(&source_id, query) {
            Ok(r) => r,
            Err(e) => {
                self.metrics.http_read_errors.inc();
                return error(&e);
            }
        };
        if let Err(d) = self.auth.read(headers, &source_id).await {
            self.metrics.http_read_errors.inc();
            return denied(&d);
        }
        match self.reader.read(request).await {
            Ok(stored) => {
                let size = envelope_proto::logcache::read_response_len(&stored);
                if size > MAX_READ_RESPONSE {
                    self.metrics.http_read_errors.inc();
                    return error(&ReadError {
                        code: tonic::Code::ResourceExhausted,
                        message: format!(
                            "grpc: received message larger than max ({size} vs. {MAX_READ_RESPONSE})"
                        ),
                    });
                }
                // Rendered from the stored bytes (no decoding for logs,
                // counters, timers and events).
                let mut out = String::with_capacity(
                    32 + stored.iter().map(|s| s.len() * 3 / 2 + 64).sum::<usize>(),
                );
                out.push_str("{\"envelopes\":{\"batch\":[");
                let mut first = true;
                for s in &stored {
                    let mark = out.len();
                    if !first {
                        out.push(',');
                    }
                    // Stored bytes were validated on the way in.
                    if envelope_proto::json::write_encoded(&mut out, s).is_err() {
                        out.truncate(mark);
                        continue;
                    }
                    first = false;
                }
                out.push_str("]}}\n");
                json(StatusCode::OK, out)
            }
            Err(e) => {
                self.metrics.http_read_errors.inc();
                error(&e)
            }
        }
    }

    async fn meta(&self, headers: &http::HeaderMap) -> Response<Body> {
        let access = match self.auth.meta(headers).await {
            Ok(a) => a,
            Err(d) => return denied(&d),
        };
        match self.reader.meta(false).await {
            Ok(meta) => {
                let visible = meta.iter().filter(|(id, _)| match &access {
                    Access::All => true,
                    Access::Sources(ids) => ids.contains(id.as_str()),
                });
                json(StatusCode::OK, meta_json(visible))
            }
            // Upstream's auth proxy answers 502 when the gateway fails.
            Err(e) => json(StatusCode::BAD_GATEWAY, status_body(e.code, &e.message)),
        }
    }

    async fn promql(
        &self,
        headers: &http::HeaderMap,
        instant: bool,
        query: &str,
    ) -> Response<Body> {
        let text = plumbing::url::query_pairs(query)
            .into_iter()
            .find(|(k, _)| k == "query")
            .map(|(_, v)| v)
            .unwrap_or_default();
        let ids = promql::source_ids(&text).unwrap_or_default();
        match self.auth.query(headers, &ids).await {
            Ok(()) => {}
            Err(Denied::NoSourceIds) => {
                return json(
                    StatusCode::BAD_REQUEST,
                    "{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"query does not request any source_ids\"}\n".to_owned(),
                );
            }
            Err(d) => return denied(&d),
        }
        let (status, body) = if instant {
            promql::http_instant(&self.promql, query).await
        } else {
            promql::http_range(&self.promql, query).await
        };
        json(status, body)
    }
}

/// `/proc/uptime`'s whole seconds.
fn vm_uptime() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/uptime").ok()?;
    let secs = text.split_whitespace().next()?;
    secs.split('.').next()?.parse().ok()
}

/// `{"meta":{…}}` as the cf-auth-proxy re-marshals it (`protojson.Marshal`):
/// camelCase names, int64 as strings, zero fields left out.
pub fn meta_json<'a>(meta: impl Iterator<Item = (&'a String, &'a MetaInfo)>) -> String {
    let mut out = String::from("{\"meta\":{");
    for (i, (id, m)) in meta.enumerate() {
        if i > 0 {
            out.push(',');
        }
        envelope_proto::json::write_str(&mut out, id);
        out.push_str(":{");
        let mut first = true;
        for (name, v) in [
            ("count", m.count),
            ("expired", m.expired),
            ("oldestTimestamp", m.oldest_timestamp),
            ("newestTimestamp", m.newest_timestamp),
        ] {
            if v == 0 {
                continue;
            }
            if !first {
                out.push(',');
            }
            first = false;
            let _ = write!(out, "\"{name}\":\"{v}\"");
        }
        out.push('}');
    }
    out.push_str("}}\n");
    out
}

/// The query parameters of a read, parsed as grpc-gateway does (unknown
/// parameters are ignored; a repeated scalar takes its last value).
pub fn parse_read(source_id: &str, query: &str) -> Result<ReadRequest, ReadError> {
    let mut req = ReadRequest {
        source_id: source_id.to_owned(),
        ..ReadRequest::default()
    };
    for (k, v) in plumbing::url::query_pairs(query) {
        match k.as_str() {
            "start_time" | "startTime" => req.start_time = int64("start_time", &v)?,
            "end_time" | "endTime" => req.end_time = int64("end_time", &v)?,
            "limit" => req.limit = int64("limit", &v)?,
            "descending" => req.descending = go_bool("descending", &v)?,
            "name_filter" | "nameFilter" => req.name_filter = v,
            "envelope_types" | "envelopeTypes" => req.envelope_types.push(envelope_type(&v)?),
            _ => {}
        }
    }
    Ok(req)
}

fn int64(name: &str, v: &str) -> Result<i64, ReadError> {
    v.parse::<i64>().map_err(|_| {
        ReadError::invalid(format!(
            "type mismatch, parameter: {name}, error: strconv.ParseInt: parsing {v:?}: invalid syntax"
        ))
    })
}

fn go_bool(name: &str, v: &str) -> Result<bool, ReadError> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(ReadError::invalid(format!(
            "type mismatch, parameter: {name}, error: strconv.ParseBool: parsing {v:?}: invalid syntax"
        ))),
    }
}

fn envelope_type(v: &str) -> Result<i32, ReadError> {
    if let Some(t) = EnvelopeType::from_str_name(v) {
        return Ok(t as i32);
    }
    match v.parse::<i32>() {
        Ok(n) if EnvelopeType::try_from(n).is_ok() => Ok(n),
        _ => Err(ReadError::invalid(format!(
            "type mismatch, parameter: envelope_types, error: {v:?} is not valid"
        ))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_recent_query_parses() {
        let r = parse_read(
            "app",
            "descending=true&envelope_types=LOG&limit=1000&start_time=-6795364578871345152",
        )
        .unwrap();
        assert!(r.descending);
        assert_eq!(r.envelope_types, vec![1]);
        assert_eq!(r.limit, 1000);
        assert_eq!(r.start_time, -6_795_364_578_871_345_152);
    }

    #[test]
    fn types_by_name_or_number_repeated() {
        let r = parse_read(
            "a",
            "envelope_types=LOG&envelope_types=3&envelope_types=ANY",
        )
        .unwrap();
        assert_eq!(r.envelope_types, vec![1, 3, 0]);
        let e = parse_read("a", "envelope_types=NOPE").unwrap_err();
        assert_eq!(e.code, tonic::Code::InvalidArgument);
    }

    #[test]
    fn bad_numbers_are_400_with_grpc_gateway_words() {
        let e = parse_read("a", "limit=abc").unwrap_err();
        assert_eq!(http_status(e.code), StatusCode::BAD_REQUEST);
        assert_eq!(
            status_body(e.code, &e.message),
            "{\"code\":3,\"message\":\"type mismatch, parameter: limit, error: strconv.ParseInt: parsing \\\"abc\\\": invalid syntax\",\"details\":[]}\n"
        );
        assert!(parse_read("a", "descending=yes").is_err());
    }

    #[test]
    fn meta_is_camel_case_with_zeros_left_out() {
        let m: std::collections::BTreeMap<String, MetaInfo> = [
            (
                "source-id-0".to_owned(),
                MetaInfo {
                    count: 100000,
                    expired: 129452,
                    oldest_timestamp: 1524071322998223702,
                    newest_timestamp: 1524081739994226961,
                },
            ),
            (
                "quiet".to_owned(),
                MetaInfo {
                    count: 1,
                    ..MetaInfo::default()
                },
            ),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            meta_json(m.iter()),
            "{\"meta\":{\"quiet\":{\"count\":\"1\"},\"source-id-0\":{\"count\":\"100000\",\"expired\":\"129452\",\"oldestTimestamp\":\"1524071322998223702\",\"newestTimestamp\":\"1524081739994226961\"}}}\n"
        );
    }
}
