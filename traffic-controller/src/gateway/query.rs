//! `/v2/read` query parameters -> `EgressBatchRequest` (reference §17.2).
//!
//! Only the presence of a key matters (`?log` equals `?log=`). For every
//! `source_id` (or the wildcard `""` when there is none) one selector is
//! built per requested type; `counter.name` and `gauge.name` add one named
//! selector per value. `use_preferred_tags` is always true.

use envelope_proto::loggregator_v2::{
    CounterSelector, EgressBatchRequest, EventSelector, GaugeSelector, LogSelector, Selector,
    TimerSelector, selector::Message,
};

/// A query rejected before any upstream work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QueryError {
    /// `query cannot be empty` (`empty_query`).
    Empty,
    /// `query must provide at least one envelope type` (`missing_envelope_type`).
    MissingEnvelopeType,
}

/// A parsed `/v2/read` request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ReadQuery {
    /// The upstream request sent to every doppler.
    pub(crate) request: EgressBatchRequest,
    /// The `source_id` values in order of appearance, de-duplicated (for auth).
    pub(crate) source_ids: Vec<String>,
}

pub(crate) use plumbing::url::query_pairs as pairs;

/// Parses the query of a `/v2/read` request.
pub(crate) fn parse(raw: Option<&str>) -> Result<ReadQuery, QueryError> {
    let pairs = pairs(raw.unwrap_or(""));
    if pairs.is_empty() {
        return Err(QueryError::Empty);
    }
    let has = |key: &str| pairs.iter().any(|(k, _)| k == key);
    let values = |key: &str| {
        pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect::<Vec<_>>()
    };
    let first = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };

    let counter_names = values("counter.name");
    let gauge_names = values("gauge.name");
    let types = ["log", "counter", "gauge", "timer", "event"];
    if !types.iter().any(|t| has(t)) && counter_names.is_empty() && gauge_names.is_empty() {
        return Err(QueryError::MissingEnvelopeType);
    }

    let mut source_ids: Vec<String> = Vec::new();
    for id in values("source_id") {
        if !source_ids.contains(&id) {
            source_ids.push(id);
        }
    }
    let selector_ids = if source_ids.is_empty() {
        vec![String::new()]
    } else {
        source_ids.clone()
    };

    let mut selectors = Vec::new();
    for sid in &selector_ids {
        let mut push = |m: Message| {
            selectors.push(Selector {
                source_id: sid.clone(),
                message: Some(m),
            })
        };
        if has("log") {
            push(Message::Log(LogSelector {}));
        }
        if has("counter") {
            push(Message::Counter(CounterSelector::default()));
        }
        for name in &counter_names {
            push(Message::Counter(CounterSelector { name: name.clone() }));
        }
        if has("gauge") {
            push(Message::Gauge(GaugeSelector::default()));
        }
        for names in &gauge_names {
            push(Message::Gauge(GaugeSelector {
                names: names.split(',').map(str::to_owned).collect(),
            }));
        }
        if has("timer") {
            push(Message::Timer(TimerSelector {}));
        }
        if has("event") {
            push(Message::Event(EventSelector {}));
        }
    }

    Ok(ReadQuery {
        request: EgressBatchRequest {
            shard_id: first("shard_id"),
            legacy_selector: None,
            use_preferred_tags: true,
            selectors,
            deterministic_name: first("deterministic_name"),
        },
        source_ids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(q: &ReadQuery) -> Vec<(String, Option<Message>)> {
        q.request
            .selectors
            .iter()
            .map(|s| (s.source_id.clone(), s.message.clone()))
            .collect()
    }

    #[test]
    fn empty_and_typeless_queries_are_rejected() {
        assert_eq!(parse(None), Err(QueryError::Empty));
        assert_eq!(parse(Some("")), Err(QueryError::Empty));
        assert_eq!(parse(Some("&&")), Err(QueryError::Empty));
        assert_eq!(
            parse(Some("source_id=a")),
            Err(QueryError::MissingEnvelopeType)
        );
        assert_eq!(
            parse(Some("shard_id=x&logs")),
            Err(QueryError::MissingEnvelopeType)
        );
    }

    #[test]
    fn presence_not_value_selects_a_type() {
        let a = parse(Some("log")).expect("valid");
        let b = parse(Some("log=")).expect("valid");
        let c = parse(Some("log=false")).expect("valid");
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(
            msgs(&a),
            vec![(String::new(), Some(Message::Log(LogSelector {})))]
        );
        assert!(a.request.use_preferred_tags);
    }

    #[test]
    fn selectors_per_source_id_and_named_selectors() {
        let q = parse(Some(
            "source_id=a&source_id=b&source_id=a&counter.name=x&counter.name=y&gauge.name=cpu,mem&shard_id=s&deterministic_name=d",
        ))
        .expect("valid");
        assert_eq!(q.source_ids, vec!["a", "b"]);
        assert_eq!(q.request.shard_id, "s");
        assert_eq!(q.request.deterministic_name, "d");
        let counter = |n: &str| Some(Message::Counter(CounterSelector { name: n.into() }));
        let gauge = Some(Message::Gauge(GaugeSelector {
            names: vec!["cpu".into(), "mem".into()],
        }));
        assert_eq!(
            msgs(&q),
            vec![
                ("a".into(), counter("x")),
                ("a".into(), counter("y")),
                ("a".into(), gauge.clone()),
                ("b".into(), counter("x")),
                ("b".into(), counter("y")),
                ("b".into(), gauge),
            ]
        );
    }

    #[test]
    fn every_bare_type() {
        let q = parse(Some("log&counter&gauge&timer&event")).expect("valid");
        assert_eq!(q.request.selectors.len(), 5);
        assert!(q.request.selectors.iter().all(|s| s.source_id.is_empty()));
    }

    #[test]
    fn escapes_are_decoded_and_bad_escapes_dropped() {
        let q = parse(Some("log&source_id=a%2Fb&source_id=%zz")).expect("valid");
        assert_eq!(q.source_ids, vec!["a/b"]);
    }
}
