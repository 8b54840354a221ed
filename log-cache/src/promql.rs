//! Log Cache's PromQL: `GET /api/v1/query`, `GET /api/v1/query_range` and
//! gRPC `logcache.v1.PromQLQuerier` (log-cache-reference §2 "PromQL";
//! upstream `src/internal/promql/promql.go`, `src/pkg/marshaler/marshaler.go`,
//! `src/internal/gateway/gateway.go`).
//!
//! # The subset
//!
//! What `cf query` users and autoscalers write, parsed by a small hand-written
//! parser ([`parse`]):
//!
//! - selectors `name{label="v", label!="v", label=~"re", label!~"re"}`
//!   (regexes anchored, RE2 syntax; `{__name__="name", …}` also works) and
//!   range selectors `sel[5m]` (durations `ms s m h d w y`, compound allowed);
//! - `rate`, `irate`, `increase`, `delta`, `avg_over_time`, `sum_over_time`,
//!   `min_over_time`, `max_over_time`, `count_over_time`;
//! - `sum`, `avg`, `max`, `min`, `count` with `by (…)` / `without (…)` before
//!   or after the argument;
//! - number literals (`1`, `2.5`, `1e3`, `0x1f`, `Inf`, `NaN`), unary `-`,
//!   and `+ - * / % ^` between scalars and vectors, vector/vector one-to-one
//!   with optional `on (…)` / `ignoring (…)`.
//!
//! Anything else (comparisons, `and/or/unless`, `offset`, subqueries,
//! `group_left`, `topk`, string literals, other functions) is a parse error
//! naming what is not supported.
//!
//! # Data, as upstream builds it
//!
//! Every selector must carry a `source_id` matcher `=` or `=~`, else the
//! query fails with upstream's text `Metric '<name>' does not have a
//! 'source_id' label.`. Each source id (`=` value, or each `|`-separated
//! alternative of a `=~` pattern: upstream reads them literally) is read
//! through the [`Reader`] with `envelope_types` GAUGE, COUNTER, TIMER from
//! `t_start − (range or 5 min lookback) − 1 s` to the second after `t_end`
//! (exclusive; upstream stops at `t_end`, which loses samples that truncate
//! to `t_end`), paging forward in pages of
//! [`crate::read::MAX_LIMIT`] with start = last timestamp + 1 until a short
//! page. A series is the envelope tags + `source_id` + `instance_id` (if not
//! empty; no `__name__` label, as upstream); its value is the counter's
//! `total`, the gauge map value whose sanitised key is the metric name, or
//! the timer's `stop − start` (ns). Names are sanitised to
//! `[A-Za-z_][A-Za-z0-9_]*` (`http.latency` ⇒ `http_latency`). Timestamps
//! are truncated to the second. Label matchers are applied to the whole
//! label set (upstream compared only tags and ignored the operator: a
//! deliberate fix).
//!
//! # Semantics and bounds
//!
//! Prometheus 2.x: an instant selector takes the latest sample in
//! `[t − 5 min, t]`; a range selector the samples in `[t − range, t]`; a
//! range query is evaluated at `start, start + step, …, end`. Results are
//! sorted by label set. Bounds: the whole query runs under the engine's
//! timeout ([`DEFAULT_QUERY_TIMEOUT`], upstream `QUERY_TIMEOUT`); at most
//! [`Limits::max_samples`] samples are loaded and at most as many points
//! returned; at most [`Limits::max_steps`] steps; queries up to
//! [`parse::MAX_QUERY_LEN`] bytes. Each is an error, never unbounded work.
//!
//! # Errors
//!
//! As upstream: query errors are plain errors, gRPC `Unknown`, HTTP 500 with
//! `{"status":"error","errorType":"internal","error":"…"}`; a read error
//! keeps the reader's gRPC code; a malformed query string is 400.

pub mod eval;
pub mod json;
pub mod parse;
pub mod time;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use envelope_proto::logcache_v1::prom_ql::{
    self, InstantQueryRequest, InstantQueryResult, Matrix, Point, RangeQueryRequest,
    RangeQueryResult, Scalar, Vector, instant_query_result, range_query_result,
};
use envelope_proto::logcache_v1::prom_ql_querier_server::{PromQlQuerier, PromQlQuerierServer};
use envelope_proto::logcache_v1::{EnvelopeType, ReadRequest};
use envelope_proto::loggregator_v2::{Envelope, envelope::Message};
use prost::Message as _;

use crate::read::{MAX_LIMIT, ReadError, Reader};
use eval::{Evaluator, LOOKBACK_MS, Series, Value};
use parse::{Expr, Selector, Type};

/// Upstream's `QUERY_TIMEOUT` default.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Default [`Limits::max_samples`].
pub const DEFAULT_MAX_SAMPLES: usize = 1_000_000;

/// Default [`Limits::max_steps`] (Prometheus' 11,000 points per series).
pub const DEFAULT_MAX_STEPS: i64 = 11_000;

/// Extra time read before the window (upstream reads from `start − 1 s`).
const READ_SLACK_NS: i64 = 1_000_000_000;

/// A failed query, with the gRPC code it maps to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct QueryError {
    /// gRPC status code (HTTP through grpc-gateway's table: [`http_status`]).
    pub code: tonic::Code,
    /// Message.
    pub message: String,
}

impl QueryError {
    /// A plain Go error upstream (gRPC `Unknown`, HTTP 500).
    pub fn unknown(message: impl Into<String>) -> Self {
        Self {
            code: tonic::Code::Unknown,
            message: message.into(),
        }
    }

    /// Prometheus' timeout error (a plain error upstream, so `Unknown`).
    pub fn timeout() -> Self {
        Self::unknown("query timed out in query execution")
    }

    fn too_many_samples() -> Self {
        Self::unknown("query processing would load too many samples into memory in query execution")
    }
}

impl From<ReadError> for QueryError {
    fn from(e: ReadError) -> Self {
        Self {
            code: e.code,
            message: e.message,
        }
    }
}

impl From<QueryError> for tonic::Status {
    fn from(e: QueryError) -> Self {
        tonic::Status::new(e.code, e.message)
    }
}

/// Work bounds of one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Samples loaded from the store, and points returned, per query.
    pub max_samples: usize,
    /// Steps of a range query (`(end − start) / step + 1`).
    pub max_steps: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_samples: DEFAULT_MAX_SAMPLES,
            max_steps: DEFAULT_MAX_STEPS,
        }
    }
}

/// The query engine over a [`Reader`].
pub struct Engine {
    reader: Arc<dyn Reader>,
    timeout: Duration,
    limits: Limits,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("timeout", &self.timeout)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine reading through `reader`, each query bounded by `timeout`
    /// and the default [`Limits`].
    pub fn new(reader: Arc<dyn Reader>, timeout: Duration) -> Self {
        Self {
            reader,
            timeout,
            limits: Limits::default(),
        }
    }

    /// The same with other limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// `PromQLQuerier/InstantQuery`: `time` empty means now (truncated to
    /// the second, as upstream).
    pub async fn instant(
        &self,
        req: &InstantQueryRequest,
    ) -> Result<InstantQueryResult, QueryError> {
        let deadline = Instant::now() + self.timeout;
        tokio::time::timeout(self.timeout, self.instant_inner(req, deadline))
            .await
            .unwrap_or_else(|_| Err(QueryError::timeout()))
    }

    /// `PromQLQuerier/RangeQuery`.
    pub async fn range(&self, req: &RangeQueryRequest) -> Result<RangeQueryResult, QueryError> {
        let deadline = Instant::now() + self.timeout;
        tokio::time::timeout(self.timeout, self.range_inner(req, deadline))
            .await
            .unwrap_or_else(|_| Err(QueryError::timeout()))
    }

    async fn instant_inner(
        &self,
        req: &InstantQueryRequest,
        deadline: Instant,
    ) -> Result<InstantQueryResult, QueryError> {
        let t = if req.time.is_empty() {
            let now = envelope_proto::timestamp::now();
            now - now.rem_euclid(1_000_000_000)
        } else {
            time::parse_time_ns(&req.time).map_err(QueryError::unknown)?
        };
        let t = time::ns_to_ms(t);
        let expr = parse::parse(&req.query)?;
        let data = self.load(&expr, t, t).await?;
        let ev = Evaluator {
            data: &data,
            deadline,
        };
        let result = match ev.eval(&expr, t)? {
            Value::Scalar(v) => instant_query_result::Result::Scalar(Scalar {
                time: time::format_time(t),
                value: v,
            }),
            Value::Vector(mut v) => {
                if v.len() > self.limits.max_samples {
                    return Err(QueryError::too_many_samples());
                }
                v.sort_by(|a, b| a.labels.cmp(&b.labels));
                let time = time::format_time(t);
                instant_query_result::Result::Vector(Vector {
                    samples: v
                        .into_iter()
                        .map(|s| prom_ql::Sample {
                            metric: (*s.labels).clone(),
                            point: Some(Point {
                                time: time.clone(),
                                value: s.v,
                            }),
                        })
                        .collect(),
                })
            }
            Value::Matrix(mut m) => {
                let points: usize = m.iter().map(|s| s.points.len()).sum();
                if points > self.limits.max_samples {
                    return Err(QueryError::too_many_samples());
                }
                m.sort_by(|a, b| a.labels.cmp(&b.labels));
                instant_query_result::Result::Matrix(to_matrix(
                    m.into_iter().map(|s| ((*s.labels).clone(), s.points)),
                ))
            }
        };
        Ok(InstantQueryResult {
            result: Some(result),
        })
    }

    async fn range_inner(
        &self,
        req: &RangeQueryRequest,
        deadline: Instant,
    ) -> Result<RangeQueryResult, QueryError> {
        let step = time::parse_step_ns(&req.step)
            .map_err(|e| QueryError::unknown(format!("couldn't parse step: {e}")))?;
        let start = time::parse_time_ns(&req.start)
            .map_err(|e| QueryError::unknown(format!("couldn't parse start: {e}")))?;
        let end = time::parse_time_ns(&req.end)
            .map_err(|e| QueryError::unknown(format!("couldn't parse end: {e}")))?;
        let (start, end, step) = (time::ns_to_ms(start), time::ns_to_ms(end), step / 1_000_000);
        if step <= 0 {
            return Err(QueryError::unknown(
                "zero or negative query resolution step widths are not accepted. Try a positive integer",
            ));
        }
        if end < start {
            return Err(QueryError::unknown(
                "end timestamp must not be before start time",
            ));
        }
        if (end - start) / step + 1 > self.limits.max_steps {
            return Err(QueryError::unknown(format!(
                "exceeded maximum resolution of {} points per timeseries. Try decreasing the query resolution (?step=XX)",
                self.limits.max_steps
            )));
        }
        let expr = parse::parse(&req.query)?;
        if expr.ty() == Type::Matrix {
            return Err(QueryError::unknown(
                "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector",
            ));
        }
        let data = self.load(&expr, start, end).await?;
        let ev = Evaluator {
            data: &data,
            deadline,
        };
        let mut out: BTreeMap<BTreeMap<String, String>, Vec<(i64, f64)>> = BTreeMap::new();
        let mut index: HashMap<eval::Labels, usize> = HashMap::new();
        let mut series: Vec<(eval::Labels, Vec<(i64, f64)>)> = Vec::new();
        let mut points = 0usize;
        let mut t = start;
        let mut n = 0u32;
        while t <= end {
            match ev.eval(&expr, t)? {
                Value::Scalar(v) => {
                    points += 1;
                    out.entry(BTreeMap::new()).or_default().push((t, v));
                }
                Value::Vector(v) => {
                    points += v.len();
                    if points > self.limits.max_samples {
                        return Err(QueryError::too_many_samples());
                    }
                    for s in v {
                        let i = *index.entry(s.labels.clone()).or_insert_with(|| {
                            series.push((s.labels.clone(), Vec::new()));
                            series.len() - 1
                        });
                        series[i].1.push((t, s.v));
                    }
                }
                Value::Matrix(_) => {
                    return Err(QueryError::unknown(
                        "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector",
                    ));
                }
            }
            if points > self.limits.max_samples {
                return Err(QueryError::too_many_samples());
            }
            n += 1;
            if n.is_multiple_of(64) {
                // Let the timeout fire on a long evaluation.
                tokio::task::yield_now().await;
            }
            t += step;
        }
        for (labels, pts) in series {
            out.insert((*labels).clone(), pts);
        }
        Ok(RangeQueryResult {
            result: Some(range_query_result::Result::Matrix(to_matrix(
                out.into_iter(),
            ))),
        })
    }

    /// The series of every selector of `expr` for evaluation between
    /// `start` and `end` (ms), indexed by selector id.
    async fn load(
        &self,
        expr: &Expr,
        start: i64,
        end: i64,
    ) -> Result<Vec<Vec<Series>>, QueryError> {
        let selectors = expr.selectors();
        for (sel, _) in &selectors {
            if sel.source_ids().is_empty() {
                return Err(QueryError::unknown(format!(
                    "Metric '{}' does not have a 'source_id' label.",
                    sel.name
                )));
            }
        }
        let mut budget = self.limits.max_samples;
        let mut data = vec![Vec::new(); selectors.len()];
        for (sel, range) in selectors {
            let from_ms = start - range.unwrap_or(LOOKBACK_MS);
            let from_ns = from_ms
                .saturating_mul(1_000_000)
                .saturating_sub(READ_SLACK_NS);
            // Timestamps are truncated to the second: everything before the
            // second after `end` truncates to at most `end`.
            let to_ns = (end.div_euclid(1000) + 1).saturating_mul(1_000_000_000);
            if let Some(slot) = data.get_mut(sel.id) {
                *slot = self.load_selector(sel, from_ns, to_ns, &mut budget).await?;
            }
        }
        Ok(data)
    }

    async fn load_selector(
        &self,
        sel: &Selector,
        from_ns: i64,
        to_ns: i64,
        budget: &mut usize,
    ) -> Result<Vec<Series>, QueryError> {
        let mut series: HashMap<BTreeMap<String, String>, Vec<(i64, f64)>> = HashMap::new();
        // A read's end of 0 would mean "now": nothing before 1970 is stored.
        if to_ns <= 0 {
            return Ok(Vec::new());
        }
        for source_id in sel.source_ids() {
            let mut cursor = from_ns;
            while cursor < to_ns {
                let page = self
                    .reader
                    .read(ReadRequest {
                        source_id: source_id.clone(),
                        start_time: cursor,
                        end_time: to_ns,
                        limit: MAX_LIMIT,
                        envelope_types: vec![
                            EnvelopeType::Gauge as i32,
                            EnvelopeType::Counter as i32,
                            EnvelopeType::Timer as i32,
                        ],
                        descending: false,
                        name_filter: String::new(),
                    })
                    .await?;
                let mut last = None;
                for stored in &page {
                    let Ok(env) = Envelope::decode(&stored[..]) else {
                        continue;
                    };
                    last = Some(last.map_or(env.timestamp, |l: i64| l.max(env.timestamp)));
                    let Some(v) = value_of(&env, &sel.name) else {
                        continue;
                    };
                    let labels = labels_of(env.tags, env.source_id, env.instance_id);
                    if !eval::selects(sel, &labels) {
                        continue;
                    }
                    if *budget == 0 {
                        return Err(QueryError::too_many_samples());
                    }
                    *budget -= 1;
                    let ms = env.timestamp.div_euclid(1_000_000_000) * 1000;
                    series.entry(labels).or_default().push((ms, v));
                }
                match last {
                    Some(l) if page.len() >= MAX_LIMIT as usize => cursor = l.saturating_add(1),
                    _ => break,
                }
            }
        }
        let mut out: Vec<Series> = series
            .into_iter()
            .map(|(labels, mut points)| {
                points.sort_by_key(|p| p.0);
                Series {
                    labels: Arc::new(labels),
                    points,
                }
            })
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }
}

fn to_matrix(series: impl Iterator<Item = (BTreeMap<String, String>, Vec<(i64, f64)>)>) -> Matrix {
    Matrix {
        series: series
            .map(|(metric, points)| prom_ql::Series {
                metric,
                points: points
                    .into_iter()
                    .map(|(t, value)| Point {
                        time: time::format_time(t),
                        value,
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// Upstream's `SanitizeMetricName` (`^[^A-z_]|[\W_]+?` ⇒ `_`): every
/// character other than an ASCII letter or digit becomes `_`, and so does a
/// leading digit.
pub fn sanitize_metric_name(name: &str) -> String {
    name.chars()
        .enumerate()
        .map(|(i, c)| {
            if c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `sanitize_metric_name(name) == metric`, without allocating.
fn same_sanitized(name: &str, metric: &str) -> bool {
    let mut want = metric.bytes();
    for (i, c) in name.chars().enumerate() {
        let s = if c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()) {
            c as u8
        } else {
            b'_'
        };
        if want.next() != Some(s) {
            return false;
        }
    }
    want.next().is_none()
}

/// The value an envelope contributes to metric `metric`, if any.
fn value_of(env: &Envelope, metric: &str) -> Option<f64> {
    match env.message.as_ref()? {
        Message::Counter(c) if same_sanitized(&c.name, metric) => Some(c.total as f64),
        Message::Gauge(g) => g
            .metrics
            .iter()
            .find(|(k, _)| same_sanitized(k, metric))
            .map(|(_, v)| v.value),
        Message::Timer(t) if same_sanitized(&t.name, metric) => {
            Some(t.stop.wrapping_sub(t.start) as f64)
        }
        _ => None,
    }
}

fn labels_of(
    mut tags: BTreeMap<String, String>,
    source_id: String,
    instance_id: String,
) -> BTreeMap<String, String> {
    tags.insert("source_id".into(), source_id);
    if !instance_id.is_empty() {
        tags.insert("instance_id".into(), instance_id);
    }
    tags
}

/// Every source id `query` reads, sorted and deduplicated, for the auth
/// layer: each `source_id="…"` value, and each `|`-separated alternative of
/// a `source_id=~"…"` pattern (upstream's `ExtractSourceIds`: the engine
/// reads exactly these ids, so a pattern like `app.*` names a source id
/// `app.*`, not every id it would match). An unparsable query is an error;
/// a query without selectors gives an empty list (the auth proxy answers
/// that with "query does not request any source_ids").
pub fn source_ids(query: &str) -> Result<Vec<String>, QueryError> {
    let expr = parse::parse(query)?;
    let mut out: Vec<String> = expr
        .selectors()
        .into_iter()
        .flat_map(|(s, _)| s.source_ids())
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

pub use crate::api::http::http_status;

/// Go's `url.ParseQuery` (`+` is a space; `;` refused), as grpc-gateway
/// reads a GET's parameters. Errors are the gateway's 400s.
fn parse_query_string(qs: &str) -> Result<Vec<(String, String)>, QueryError> {
    let mut out = Vec::new();
    for part in qs.split('&') {
        if part.is_empty() {
            continue;
        }
        if part.contains(';') {
            return Err(QueryError {
                code: tonic::Code::InvalidArgument,
                message: "invalid semicolon separator in query".into(),
            });
        }
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        out.push((unescape(k)?, unescape(v)?));
    }
    Ok(out)
}

fn unescape(s: &str) -> Result<String, QueryError> {
    plumbing::url::query_unescape_checked(s).map_err(|e| match e {
        plumbing::url::UnescapeError::Escape(_) => QueryError {
            code: tonic::Code::InvalidArgument,
            message: e.to_string(),
        },
        plumbing::url::UnescapeError::Utf8 => QueryError {
            code: tonic::Code::Internal,
            message: "grpc: error while marshaling: string field contains invalid UTF-8".into(),
        },
    })
}

/// The single value of parameter `name` (absent: empty), or grpc-gateway's
/// error for a repeated one.
fn param(params: &[(String, String)], name: &str) -> Result<String, QueryError> {
    let values: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect();
    match values.as_slice() {
        [] => Ok(String::new()),
        [v] => Ok((*v).to_owned()),
        many => Err(QueryError {
            code: tonic::Code::InvalidArgument,
            message: format!("too many values for field {name:?}: {}", many.join(", ")),
        }),
    }
}

fn http_error(e: &QueryError) -> (http::StatusCode, String) {
    (http_status(e.code), json::error(&e.message))
}

/// The whole answer to `GET /api/v1/query?<query_string>`: status and JSON
/// body (ending in `\n`), as upstream's gateway gives it.
pub async fn http_instant(engine: &Engine, query_string: &str) -> (http::StatusCode, String) {
    let req = match parse_query_string(query_string).and_then(|p| {
        Ok(InstantQueryRequest {
            query: param(&p, "query")?,
            time: param(&p, "time")?,
        })
    }) {
        Ok(r) => r,
        Err(e) => return http_error(&e),
    };
    match engine.instant(&req).await {
        Ok(r) => (http::StatusCode::OK, json::instant(&r)),
        Err(e) => http_error(&e),
    }
}

/// The whole answer to `GET /api/v1/query_range?<query_string>`.
pub async fn http_range(engine: &Engine, query_string: &str) -> (http::StatusCode, String) {
    let req = match parse_query_string(query_string).and_then(|p| {
        Ok(RangeQueryRequest {
            query: param(&p, "query")?,
            start: param(&p, "start")?,
            end: param(&p, "end")?,
            step: param(&p, "step")?,
        })
    }) {
        Ok(r) => r,
        Err(e) => return http_error(&e),
    };
    match engine.range(&req).await {
        Ok(r) => (http::StatusCode::OK, json::range(&r)),
        Err(e) => http_error(&e),
    }
}

/// gRPC `logcache.v1.PromQLQuerier` over an [`Engine`].
#[derive(Debug, Clone)]
pub struct PromQlService {
    engine: Arc<Engine>,
}

impl PromQlService {
    /// The service over `engine`.
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }

    /// The tonic server for it.
    pub fn into_server(self) -> PromQlQuerierServer<Self> {
        PromQlQuerierServer::new(self)
    }
}

#[tonic::async_trait]
impl PromQlQuerier for PromQlService {
    async fn instant_query(
        &self,
        request: tonic::Request<InstantQueryRequest>,
    ) -> Result<tonic::Response<InstantQueryResult>, tonic::Status> {
        let r = self.engine.instant(request.get_ref()).await?;
        Ok(tonic::Response::new(r))
    }

    async fn range_query(
        &self,
        request: tonic::Request<RangeQueryRequest>,
    ) -> Result<tonic::Response<RangeQueryResult>, tonic::Status> {
        let r = self.engine.range(request.get_ref()).await?;
        Ok(tonic::Response::new(r))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sanitizes_like_upstream() {
        let cases = [
            ("9vitals.vm.cpu.count1", "_vitals_vm_cpu_count1"),
            ("__vitals.vm..cpu.count2", "__vitals_vm__cpu_count2"),
            ("&vitals.vm.cpu./count3", "_vitals_vm_cpu__count3"),
            ("vitals.vm.cpu.count99", "vitals_vm_cpu_count99"),
            ("vitals vm/cpu#count100", "vitals_vm_cpu_count100"),
            ("vitals:vm+cpu-count101", "vitals_vm_cpu_count101"),
            ("1", "_"),
            ("_", "_"),
            ("a", "a"),
            ("&", "_"),
            ("&+&+&+9", "______9"),
            ("http.latency", "http_latency"),
            ("é", "_"),
        ];
        for (raw, want) in cases {
            assert_eq!(sanitize_metric_name(raw), want, "{raw}");
            assert!(same_sanitized(raw, want), "{raw}");
        }
    }

    #[test]
    fn query_strings_decode_like_go() {
        let p = parse_query_string("query=a%7Bb%3D%22c%22%7D+x&time=1&&empty").unwrap();
        assert_eq!(
            p,
            vec![
                ("query".into(), "a{b=\"c\"} x".into()),
                ("time".into(), "1".into()),
                ("empty".into(), String::new()),
            ]
        );
        let e = parse_query_string("query=%zz").unwrap_err();
        assert_eq!(e.message, "invalid URL escape \"%zz\"");
        assert_eq!(e.code, tonic::Code::InvalidArgument);
        assert!(parse_query_string("a=1;b=2").is_err());
        let p = parse_query_string("time=1&time=2").unwrap();
        assert_eq!(
            param(&p, "time").unwrap_err().message,
            "too many values for field \"time\": 1, 2"
        );
    }

    #[test]
    fn status_mapping() {
        assert_eq!(http_status(tonic::Code::Unknown), 500);
        assert_eq!(http_status(tonic::Code::InvalidArgument), 400);
        assert_eq!(http_status(tonic::Code::Unavailable), 503);
        assert_eq!(http_status(tonic::Code::ResourceExhausted), 429);
    }
}
