use envelope_proto::loggregator_v2::{
    Counter, Envelope, Gauge, GaugeValue, Log, envelope::Message,
};
use prost::Message as _;

use super::*;

fn log(source: &str, ts: i64, text: &str) -> Vec<u8> {
    Envelope {
        timestamp: ts,
        source_id: source.into(),
        message: Some(Message::Log(Log {
            payload: text.as_bytes().to_vec().into(),
            r#type: 0,
        })),
        ..Envelope::default()
    }
    .encode_to_vec()
}

fn counter(source: &str, ts: i64, name: &str) -> Vec<u8> {
    Envelope {
        timestamp: ts,
        source_id: source.into(),
        message: Some(Message::Counter(Counter {
            name: name.into(),
            delta: 1,
            total: 2,
        })),
        ..Envelope::default()
    }
    .encode_to_vec()
}

fn gauge(source: &str, ts: i64, names: &[&str]) -> Vec<u8> {
    Envelope {
        timestamp: ts,
        source_id: source.into(),
        message: Some(Message::Gauge(Gauge {
            metrics: names
                .iter()
                .map(|n| {
                    (
                        n.to_string(),
                        GaugeValue {
                            unit: "u".into(),
                            value: 1.0,
                        },
                    )
                })
                .collect(),
        })),
        ..Envelope::default()
    }
    .encode_to_vec()
}

fn store(max_per_source: usize, memory_limit: u64) -> Store {
    Store::new(
        Limits {
            memory_limit,
            max_per_source,
        },
        StoreMetrics::detached(),
    )
}

fn q(source: &str) -> Query<'_> {
    Query {
        source_id: source,
        start: i64::MIN,
        end: i64::MAX,
        limit: 1000,
        types: TypeSet::ALL,
        descending: false,
        name_filter: None,
    }
}

fn timestamps(out: &[Stored]) -> Vec<i64> {
    out.iter()
        .map(|s| EnvelopeView::parse(s).unwrap().timestamp())
        .collect()
}

fn texts(out: &[Stored]) -> Vec<String> {
    out.iter()
        .map(|s| String::from_utf8_lossy(EnvelopeView::parse(s).unwrap().log_payload()).into())
        .collect()
}

#[test]
fn orders_by_timestamp_and_reads_ranges_both_ways() {
    let s = store(100, u64::MAX);
    for ts in [5, 1, 3, 2, 4] {
        s.put(&log("a", ts, &ts.to_string())).unwrap();
    }
    s.put(&log("b", 9, "other")).unwrap();
    assert_eq!(timestamps(&s.read(&q("a"))), vec![1, 2, 3, 4, 5]);
    let range = Query {
        start: 2,
        end: 5,
        ..q("a")
    };
    assert_eq!(
        timestamps(&s.read(&range)),
        vec![2, 3, 4],
        "start inclusive, end exclusive"
    );
    let desc = Query {
        descending: true,
        limit: 2,
        ..range
    };
    assert_eq!(
        timestamps(&s.read(&desc)),
        vec![4, 3],
        "newest first within the range"
    );
    assert!(s.read(&q("nobody")).is_empty());
    assert_eq!(s.len(), 6);
}

#[test]
fn equal_timestamps_are_all_kept_and_a_page_finishes_their_run() {
    let s = store(100, u64::MAX);
    s.put(&log("a", 1, "first")).unwrap();
    for i in 0..5 {
        s.put(&log("a", 7, &format!("same-{i}"))).unwrap();
    }
    s.put(&log("a", 8, "after")).unwrap();
    assert_eq!(s.len(), 7);
    // A page of 3 ends inside the run at 7: the run is finished, so the
    // next page (start = 7 + 1, as the cf CLI walks) misses nothing.
    let page = s.read(&Query { limit: 3, ..q("a") });
    assert_eq!(
        texts(&page),
        vec!["first", "same-0", "same-1", "same-2", "same-3", "same-4"]
    );
    let next = s.read(&Query {
        start: 8,
        limit: 3,
        ..q("a")
    });
    assert_eq!(texts(&next), vec!["after"]);
}

#[test]
fn max_per_source_evicts_that_sources_oldest_and_counts() {
    let s = store(3, u64::MAX);
    for ts in 1..=5 {
        s.put(&log("a", ts, "x")).unwrap();
    }
    s.put(&log("b", 1, "x")).unwrap();
    assert_eq!(timestamps(&s.read(&q("a"))), vec![3, 4, 5]);
    let meta = s.meta();
    assert_eq!(meta["a"].count, 3);
    assert_eq!(meta["a"].expired, 2);
    assert_eq!(meta["a"].oldest_timestamp, 3);
    assert_eq!(meta["a"].newest_timestamp, 5);
    assert_eq!(meta["b"].expired, 0);
    assert_eq!(s.len(), 4);
}

#[test]
fn memory_limit_evicts_globally_oldest_first() {
    let one = log("a", 1, "0123456789").len() as u64 + ENTRY_OVERHEAD;
    // Room for the sources plus 4 envelopes.
    let limit = 2 * (SOURCE_OVERHEAD + 1) + 4 * one;
    let s = store(100, limit);
    for ts in [1, 3, 5] {
        s.put(&log("a", ts, "0123456789")).unwrap();
    }
    for ts in [2, 4, 6] {
        s.put(&log("b", ts, "0123456789")).unwrap();
    }
    assert!(s.bytes() > limit);
    assert_eq!(s.truncate(), 2);
    assert!(s.bytes() <= limit);
    assert_eq!(timestamps(&s.read(&q("a"))), vec![3, 5]);
    assert_eq!(timestamps(&s.read(&q("b"))), vec![4, 6]);
    let meta = s.meta();
    assert_eq!(meta["a"].expired + meta["b"].expired, 2);
    assert_eq!(s.metrics.expired.get(), 2);
}

#[test]
fn a_source_evicted_to_nothing_is_forgotten_and_its_bytes_returned() {
    let s = store(100, 0);
    s.put(&log("a", 1, "x")).unwrap();
    s.truncate();
    assert!(s.meta().is_empty());
    assert_eq!(s.bytes(), 0);
    assert_eq!(s.len(), 0);
}

#[test]
fn types_and_name_filter() {
    let s = store(100, u64::MAX);
    s.put(&log("a", 1, "l")).unwrap();
    s.put(&counter("a", 2, "requests")).unwrap();
    s.put(&counter("a", 3, "errors")).unwrap();
    s.put(&gauge("a", 4, &["cpu", "memory"])).unwrap();
    s.put(&gauge("a", 5, &["disk"])).unwrap();
    let only = |types: &[i32]| {
        timestamps(&s.read(&Query {
            types: TypeSet::from_types(types),
            ..q("a")
        }))
    };
    assert_eq!(only(&[1]), vec![1]);
    assert_eq!(only(&[2, 3]), vec![2, 3, 4, 5]);
    assert_eq!(only(&[4, 5]), Vec::<i64>::new());
    let re = Regex::new("^(req|cpu)").unwrap();
    let named = s.read(&Query {
        name_filter: Some(&re),
        ..q("a")
    });
    assert_eq!(
        timestamps(&named),
        vec![2, 4],
        "logs excluded, gauges by any key"
    );
}

#[test]
fn invalid_bytes_are_refused() {
    let s = store(100, u64::MAX);
    assert!(s.put(&[0x0a, 0x05, 0x01]).is_err());
    assert!(s.is_empty());
}
