//! Reading: a `logcache.v1.ReadRequest` checked and defaulted exactly as
//! upstream's `LocalStoreReader` does, the [`Reader`] every API (HTTP, gRPC,
//! PromQL) reads through, and the local implementation over the store.
//!
//! Rules (log-cache-reference §2): `end_time` 0 means now; `start_time`
//! may be negative (the cf CLI sends Go's zero time, `-6795364578871345152`);
//! `start_time > end_time` (with `end_time` set), `limit > 1000` and
//! `limit < 0` are errors that gRPC reports as `Unknown` (HTTP 500); `limit`
//! 0 means 100; `ANY` in `envelope_types` is ignored; `name_filter` is a
//! regular expression (RE2 syntax, linear time; a pattern longer than
//! [`MAX_NAME_FILTER_LEN`] or compiling beyond [`NAME_FILTER_SIZE_LIMIT`]
//! is refused at once).

use std::collections::BTreeMap;
use std::sync::Arc;

use envelope_proto::logcache_v1::{MetaInfo, ReadRequest};
use envelope_proto::loggregator_v2::{Envelope, envelope::Message};
use envelope_proto::view::{EnvelopeView, Kind};
use futures::future::BoxFuture;
use prost::Message as _;
use regex::{Regex, RegexBuilder};

use crate::store::{Query, Store, Stored, TypeSet};

/// Default `limit` when the request gives 0.
pub const DEFAULT_LIMIT: i64 = 100;

/// Largest `limit` accepted.
pub const MAX_LIMIT: i64 = 1000;

/// Longest `name_filter` pattern accepted, in bytes.
pub const MAX_NAME_FILTER_LEN: usize = 1024;

/// Compiled-size limit of a `name_filter` (bytes of regex program).
pub const NAME_FILTER_SIZE_LIMIT: usize = 1 << 20;

/// A refused read, with the gRPC code it maps to (HTTP through
/// grpc-gateway's table: `InvalidArgument` 400, `Unknown` 500,
/// `ResourceExhausted` 429, `Unavailable` 503).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ReadError {
    /// gRPC status code.
    pub code: tonic::Code,
    /// Message as upstream words it.
    pub message: String,
}

impl ReadError {
    /// An error upstream returns as a plain Go error (gRPC `Unknown`).
    pub fn unknown(message: impl Into<String>) -> Self {
        Self {
            code: tonic::Code::Unknown,
            message: message.into(),
        }
    }

    /// A malformed parameter (gRPC `InvalidArgument`).
    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            code: tonic::Code::InvalidArgument,
            message: message.into(),
        }
    }
}

impl From<ReadError> for tonic::Status {
    fn from(e: ReadError) -> Self {
        tonic::Status::new(e.code, e.message)
    }
}

/// A checked read with its defaults applied.
#[derive(Debug, Clone)]
pub struct Checked {
    /// Source id.
    pub source_id: String,
    /// Inclusive start, ns.
    pub start: i64,
    /// Exclusive end, ns.
    pub end: i64,
    /// Limit (1..=1000).
    pub limit: usize,
    /// Admitted types.
    pub types: TypeSet,
    /// Newest first.
    pub descending: bool,
    /// Compiled name filter.
    pub name_filter: Option<Regex>,
}

impl Checked {
    /// The store query for it.
    pub fn query(&self) -> Query<'_> {
        Query {
            source_id: &self.source_id,
            start: self.start,
            end: self.end,
            limit: self.limit,
            types: self.types,
            descending: self.descending,
            name_filter: self.name_filter.as_ref(),
        }
    }
}

/// Compiles a `name_filter` with the size bounds.
pub fn compile_name_filter(pattern: &str) -> Result<Regex, ReadError> {
    if pattern.len() > MAX_NAME_FILTER_LEN {
        return Err(ReadError::unknown(format!(
            "Name filter must be a valid regular expression: longer than {MAX_NAME_FILTER_LEN} bytes"
        )));
    }
    RegexBuilder::new(pattern)
        .size_limit(NAME_FILTER_SIZE_LIMIT)
        .dfa_size_limit(NAME_FILTER_SIZE_LIMIT)
        .build()
        .map_err(|e| {
            let e = e.to_string();
            let first = e.lines().last().unwrap_or("").trim().to_owned();
            ReadError::unknown(format!(
                "Name filter must be a valid regular expression: {first}"
            ))
        })
}

/// Checks `req` as upstream does; `now` (ns) replaces a zero `end_time`.
pub fn check(req: &ReadRequest, now: i64) -> Result<Checked, ReadError> {
    if req.end_time != 0 && req.start_time > req.end_time {
        return Err(ReadError::unknown(format!(
            "StartTime ({}) must be before EndTime ({})",
            req.start_time, req.end_time
        )));
    }
    if req.limit > MAX_LIMIT {
        return Err(ReadError::unknown(format!(
            "Limit ({}) must be 1000 or less",
            req.limit
        )));
    }
    if req.limit < 0 {
        return Err(ReadError::unknown(format!(
            "Limit ({}) must be greater than zero",
            req.limit
        )));
    }
    let name_filter = if req.name_filter.is_empty() {
        None
    } else {
        Some(compile_name_filter(&req.name_filter)?)
    };
    Ok(Checked {
        source_id: req.source_id.clone(),
        start: req.start_time,
        end: if req.end_time == 0 { now } else { req.end_time },
        limit: if req.limit == 0 {
            DEFAULT_LIMIT
        } else {
            req.limit
        } as usize,
        types: TypeSet::from_types(&req.envelope_types),
        descending: req.descending,
        name_filter,
    })
}

/// Where reads go: the local store, or (in a cluster) the owner of the
/// source. Every API reads through one.
pub trait Reader: Send + Sync + 'static {
    /// `logcache.v1.Egress/Read`: the selected envelopes, encoded, in the
    /// order asked for.
    fn read(&self, req: ReadRequest) -> BoxFuture<'_, Result<Vec<Stored>, ReadError>>;

    /// `logcache.v1.Egress/Meta`.
    fn meta(
        &self,
        local_only: bool,
    ) -> BoxFuture<'_, Result<BTreeMap<String, MetaInfo>, ReadError>>;
}

/// Reads this node's store.
#[derive(Debug, Clone)]
pub struct LocalReader {
    store: Arc<Store>,
}

impl LocalReader {
    /// A reader over `store`.
    pub fn new(store: Arc<Store>) -> Self {
        Self { store }
    }

    /// The synchronous read (no I/O).
    pub fn read_now(&self, req: &ReadRequest) -> Result<Vec<Stored>, ReadError> {
        let checked = check(req, envelope_proto::timestamp::now())?;
        let mut out = self.store.read(&checked.query());
        if let Some(re) = &checked.name_filter {
            filter_gauge_keys(&mut out, re);
        }
        Ok(out)
    }
}

impl Reader for LocalReader {
    fn read(&self, req: ReadRequest) -> BoxFuture<'_, Result<Vec<Stored>, ReadError>> {
        let result = self.read_now(&req);
        Box::pin(async move { result })
    }

    fn meta(
        &self,
        _local_only: bool,
    ) -> BoxFuture<'_, Result<BTreeMap<String, MetaInfo>, ReadError>> {
        let meta = self.store.meta();
        Box::pin(async move { Ok(meta) })
    }
}

/// Upstream's name filter on gauges keeps only the matching keys of the
/// metrics map: re-encode those gauges.
fn filter_gauge_keys(out: &mut [Stored], re: &Regex) {
    for stored in out.iter_mut() {
        let is_gauge = EnvelopeView::parse(stored).is_ok_and(|v| v.kind() == Kind::Gauge);
        if !is_gauge {
            continue;
        }
        let Ok(mut env) = Envelope::decode(&stored[..]) else {
            continue;
        };
        if let Some(Message::Gauge(g)) = &mut env.message {
            let before = g.metrics.len();
            g.metrics.retain(|k, _| re.is_match(k));
            if g.metrics.len() != before {
                *stored = Arc::from(env.encode_to_vec());
            }
        }
    }
}

/// Decodes stored envelopes (they were validated when stored).
pub fn decode_all(stored: &[Stored]) -> Vec<Envelope> {
    stored
        .iter()
        .filter_map(|s| Envelope::decode(&s[..]).ok())
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn req(f: impl FnOnce(&mut ReadRequest)) -> ReadRequest {
        let mut r = ReadRequest {
            source_id: "app".into(),
            ..ReadRequest::default()
        };
        f(&mut r);
        r
    }

    #[test]
    fn defaults_and_the_cli_start_time() {
        let c = check(&req(|r| r.start_time = -6_795_364_578_871_345_152), 1_000).unwrap();
        assert_eq!(c.limit, 100);
        assert_eq!(c.end, 1_000);
        assert_eq!(c.start, -6_795_364_578_871_345_152);
        assert_eq!(c.types, TypeSet::ALL);
    }

    #[test]
    fn upstream_errors_word_for_word() {
        let e = |f: fn(&mut ReadRequest)| check(&req(f), 5).unwrap_err();
        assert_eq!(
            e(|r| r.limit = 1001),
            ReadError::unknown("Limit (1001) must be 1000 or less")
        );
        assert_eq!(
            e(|r| r.limit = -1),
            ReadError::unknown("Limit (-1) must be greater than zero")
        );
        assert_eq!(
            e(|r| {
                r.start_time = 10;
                r.end_time = 9
            }),
            ReadError::unknown("StartTime (10) must be before EndTime (9)")
        );
        let bad = e(|r| r.name_filter = "(".into());
        assert_eq!(bad.code, tonic::Code::Unknown);
        assert!(
            bad.message
                .starts_with("Name filter must be a valid regular expression: "),
            "{bad}"
        );
    }

    #[test]
    fn regex_bombs_are_refused_quickly() {
        let started = std::time::Instant::now();
        let long = "a".repeat(MAX_NAME_FILTER_LEN + 1);
        assert!(compile_name_filter(&long).is_err());
        assert!(compile_name_filter("((a{100}){100}){100}").is_err());
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn any_is_ignored_in_types() {
        let c = check(&req(|r| r.envelope_types = vec![1, 0]), 1).unwrap();
        assert_eq!(c.types, TypeSet::from_types(&[1]));
        let c = check(&req(|r| r.envelope_types = vec![0]), 1).unwrap();
        assert_eq!(c.types, TypeSet::ALL);
        let c = check(&req(|r| r.envelope_types = vec![1, 3]), 1).unwrap();
        assert_eq!(c.types, TypeSet::from_types(&[3, 1]));
    }
}
