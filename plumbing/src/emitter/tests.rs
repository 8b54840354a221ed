//! Own-metric emitter tests: batch contents and delta computation. `run` against an agent over
//! mutual TLS is tested in the workspace's `tests/own_metric_emitter.rs`.

use super::*;

fn counter_of(e: &Envelope) -> (&str, u64, u64) {
    match &e.message {
        Some(Message::Counter(c)) => (c.name.as_str(), c.delta, c.total),
        other => panic!("not a counter: {other:?}"),
    }
}

fn description(a: &Counter, b: &Counter, g: &Gauge) -> Description {
    Description::new("test_source", "test.origin")
        .tag("metric_version", "2.0")
        .counter("sent", &[], a.clone())
        .counter("dropped", &[("direction", "egress")], b.clone())
        .gauge("conns", "connections", g.clone())
}

#[test]
fn batch_holds_counters_in_order_then_gauges_with_tags() {
    let (a, b, g) = (Counter::detached(), Counter::detached(), Gauge::detached());
    a.add(3);
    g.set(-2);
    let batch = Snapshots::new(description(&a, &b, &g)).next_batch(42);
    assert_eq!(batch.batch.len(), 3);
    for e in &batch.batch {
        assert_eq!(e.source_id, "test_source");
        assert_eq!(e.timestamp, 42);
        assert_eq!(
            e.tags.get("origin").map(String::as_str),
            Some("test.origin")
        );
        assert_eq!(
            e.tags.get("metric_version").map(String::as_str),
            Some("2.0")
        );
    }
    assert_eq!(counter_of(&batch.batch[0]), ("sent", 3, 3));
    assert_eq!(batch.batch[0].tags.len(), 2);
    assert_eq!(counter_of(&batch.batch[1]), ("dropped", 0, 0));
    assert_eq!(
        batch.batch[1].tags.get("direction").map(String::as_str),
        Some("egress")
    );
    let Some(Message::Gauge(gauge)) = &batch.batch[2].message else {
        panic!("not a gauge: {:?}", batch.batch[2]);
    };
    assert_eq!(gauge.metrics.len(), 1);
    let v = &gauge.metrics["conns"];
    assert_eq!((v.unit.as_str(), v.value), ("connections", -2.0));
    assert_eq!(batch.batch[2].tags.len(), 2);
}

#[test]
fn delta_is_the_increase_since_the_previous_batch() {
    let (a, b, g) = (Counter::detached(), Counter::detached(), Gauge::detached());
    let mut snapshots = Snapshots::new(description(&a, &b, &g));
    a.add(5);
    b.add(1);
    let first = snapshots.next_batch(1);
    assert_eq!(counter_of(&first.batch[0]), ("sent", 5, 5));
    assert_eq!(counter_of(&first.batch[1]), ("dropped", 1, 1));

    a.add(2);
    let second = snapshots.next_batch(2);
    assert_eq!(counter_of(&second.batch[0]), ("sent", 2, 7));
    assert_eq!(counter_of(&second.batch[1]), ("dropped", 0, 1));

    let third = snapshots.next_batch(3);
    assert_eq!(counter_of(&third.batch[0]), ("sent", 0, 7));
}

#[test]
fn same_name_with_different_tags_keeps_separate_deltas() {
    let (x, y) = (Counter::detached(), Counter::detached());
    let mut snapshots = Snapshots::new(
        Description::new("s", "o")
            .counter("egress", &[("endpoint", "firehose")], x.clone())
            .counter("egress", &[("endpoint", "stream")], y.clone()),
    );
    x.add(10);
    y.add(1);
    snapshots.next_batch(1);
    x.add(1);
    y.add(10);
    let batch = snapshots.next_batch(2);
    assert_eq!(counter_of(&batch.batch[0]), ("egress", 1, 11));
    assert_eq!(counter_of(&batch.batch[1]), ("egress", 10, 11));
}

#[test]
fn a_counter_that_went_down_reports_delta_zero() {
    // Counters only grow; a handle swapped for a smaller one must not underflow.
    let mut snapshots =
        Snapshots::new(Description::new("s", "o").counter("c", &[], Counter::detached()));
    snapshots.previous[0] = 9;
    assert_eq!(counter_of(&snapshots.next_batch(1).batch[0]), ("c", 0, 0));
}
