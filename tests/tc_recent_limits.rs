//! Recent logs larger than one gRPC message (issue 12 item 4): the doppler's
//! cache is bounded by bytes and its RecentLogs answer carries the newest logs
//! that fit in 10 MiB, so `/recentlogs` returns them (not an empty 200); a
//! doppler that fails is logged and counted, and when every doppler fails the
//! answer is a 500, not an empty 200.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/tc_cluster.rs"]
mod tc_cluster;

use std::time::Duration;

use envelope_proto::events;
use tc_cluster::*;

const APP: &str = "11111111-2222-3333-4444-555555555555";
const LINE: usize = 250_000;
const LINES: usize = 100;

fn line(i: usize) -> String {
    format!("line-{i:03}-{}", "z".repeat(LINE))
}

fn index_of(e: &events::Envelope) -> usize {
    let text = log_text(e).expect("a log");
    text[5..8].parse().expect("line number")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recent_logs_larger_than_a_message_return_the_newest_that_fit() {
    let c = Cluster::start_n(1, |_| {}).await;
    // 100 logs of 250 kB: 25 MB for one app, 2.5 times the message limit.
    for chunk in (0..LINES).collect::<Vec<_>>().chunks(20) {
        let envs: Vec<_> = chunk.iter().map(|&i| log_env(APP, &line(i))).collect();
        c.push(0, &envs).await;
    }
    let path = format!("/apps/{APP}/recentlogs");
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < deadline {
        let r = c.http("GET", &path, &[], "").await;
        assert_eq!(r.status, 200, "{}", r.text());
        got = multipart_envelopes(&r);
        if got.last().is_some_and(|e| index_of(e) == LINES - 1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!got.is_empty(), "recent logs must not be empty");
    let indices: Vec<usize> = got.iter().map(index_of).collect();
    let first = indices[0];
    assert_eq!(
        indices,
        (first..LINES).collect::<Vec<_>>(),
        "the newest logs, oldest first, none missing in between"
    );
    // 10 MiB holds 41 of them (framing and the cache's per-entry overhead
    // included); far fewer would mean the bound is much too tight.
    assert!(
        (30..LINES).contains(&indices.len()),
        "{} logs returned",
        indices.len()
    );
    let dropped = c.dopplers[0]
        .registry
        .counter_value("recent_logs_dropped_by_size", &[])
        .unwrap_or(0);
    assert_eq!(
        dropped as usize,
        LINES - indices.len(),
        "the doppler cache dropped the rest by size and counted it"
    );
    assert_eq!(
        c.tc_counter(
            "doppler_proxy_recent_failures",
            &[("endpoint", "recentlogs")]
        ),
        0
    );
    // limit=N still keeps the newest N.
    let r = c.http("GET", &format!("{path}?limit=3"), &[], "").await;
    let indices: Vec<usize> = multipart_envelopes(&r).iter().map(index_of).collect();
    assert_eq!(indices, vec![LINES - 3, LINES - 2, LINES - 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_dopplers_are_counted_and_all_failing_is_not_an_empty_200() {
    let c = Cluster::start_n(2, |config| {
        config.recent_timeout = Duration::from_secs(2);
    })
    .await;
    c.push(0, &[log_env(APP, "line-000-from doppler 0")]).await;
    let path = format!("/apps/{APP}/recentlogs");
    // Doppler 1 goes away: doppler 0's logs still come back, the failure is counted.
    c.dopplers[1].shutdown.trigger();
    let mut got = Vec::new();
    for _ in 0..100 {
        let r = c.http("GET", &path, &[], "").await;
        assert_eq!(r.status, 200, "{}", r.text());
        got = multipart_envelopes(&r);
        if !got.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(got.len(), 1);
    eventually(
        || {
            c.tc_counter(
                "doppler_proxy_recent_failures",
                &[("endpoint", "recentlogs")],
            ) >= 1
        },
        "the failed doppler call counted",
    )
    .await;

    // Every doppler gone: an error, not an empty success.
    c.dopplers[0].shutdown.trigger();
    let mut last = None;
    for _ in 0..100 {
        let r = c.http("GET", &path, &[], "").await;
        if r.status != 200 {
            last = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = last.expect("a non-200 answer once every doppler is down");
    assert_eq!(r.status, 500);
    assert!(
        r.text()
            .starts_with("RecentLogs failed on every doppler (2)"),
        "{}",
        r.text()
    );
    let r = c
        .http("GET", &format!("/apps/{APP}/containermetrics"), &[], "")
        .await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(
        c.tc_counter(
            "doppler_proxy_recent_failures",
            &[("endpoint", "containermetrics")]
        ) >= 2
    );
}
