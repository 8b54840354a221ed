//! Slow consumers: a stalled client sees the rate-control warning and is then
//! disconnected, while a fast client on the same firehose (its own
//! subscription id) loses nothing.
//!
//! The stalled client reads in bursts with 3 s pauses (shorter than the 5 s
//! slow-consumer timeout): during a pause its socket and then its ring fill
//! up, so envelopes are lost and the warning arrives ahead of the next ones.
//! Then it stops reading altogether and must be cut off.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/tc_cluster.rs"]
mod tc_cluster;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use envelope_proto::events::{self, envelope::EventType};
use futures::StreamExt;
use prost::Message as _;
use tc_cluster::*;
use tokio_tungstenite::tungstenite::Message;

const APP: &str = "11111111-2222-3333-4444-555555555555";

fn is_warning(e: &events::Envelope) -> bool {
    e.log_message
        .as_ref()
        .and_then(|l| l.source_type.as_deref())
        == Some("LGR")
        || e.counter_event.as_ref().and_then(|c| c.name.as_deref())
            == Some("TruncatingBuffer.DroppedMessages")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stalled_client_gets_warnings_then_disconnect_fast_client_loses_nothing() {
    let c = Cluster::start(|config| {
        config.buffer_size = 1000;
        config.slow_consumer_timeout = Duration::from_secs(5);
    })
    .await;
    let mut fast = c.ws("/firehose/fast", &[]).await;
    let mut slow = c.ws_small_buffer("/firehose/slow").await;
    let slow_addr = slow.get_ref().local_addr().unwrap();
    c.wait_subscriptions(2).await;

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(Mutex::new(BTreeSet::new()));
    let padding = "x".repeat(1000);
    // ~2,000 envelopes of ~1 KiB per second, alternating dopplers, until told to stop.
    let produce = {
        let (stop, done, sent, c) = (stop.clone(), done.clone(), sent.clone(), &c);
        async move {
            let mut round = 0u64;
            while !stop.load(Ordering::SeqCst) {
                for d in 0..2 {
                    let batch: Vec<_> = (0..200)
                        .map(|i| log_env(APP, &format!("{round}-{d}-{i}-{padding}")))
                        .collect();
                    sent.lock()
                        .unwrap()
                        .extend(batch.iter().filter_map(log_text));
                    c.push(d, &batch).await;
                }
                round += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            done.store(true, Ordering::SeqCst);
        }
    };

    let fast_reader = {
        let (done, sent, fast) = (done.clone(), sent.clone(), &mut fast);
        async move {
            let mut got = BTreeSet::new();
            let mut warnings = 0;
            loop {
                if done.load(Ordering::SeqCst) && got.len() >= sent.lock().unwrap().len() {
                    break;
                }
                match next_envelope(fast, Duration::from_secs(5)).await {
                    Some(e) if is_warning(&e) => warnings += 1,
                    Some(e) => {
                        if let Some(t) = log_text(&e) {
                            got.insert(t);
                        }
                    }
                    None => break,
                }
            }
            (got, warnings)
        }
    };

    let slow_reader = async {
        // Phase 1: bursts of reading separated by 3 s pauses, until the warning shows up.
        let mut warning: Option<events::Envelope> = None;
        let mut counter: Option<events::Envelope> = None;
        'outer: for _ in 0..10 {
            tokio::time::sleep(Duration::from_secs(3)).await;
            loop {
                let Ok(Some(Ok(msg))) =
                    tokio::time::timeout(Duration::from_millis(100), slow.next()).await
                else {
                    break;
                };
                let Message::Binary(b) = msg else { continue };
                let e = events::Envelope::decode(b.as_ref()).unwrap();
                if warning.is_some() {
                    counter = Some(e);
                    break 'outer;
                }
                if is_warning(&e) {
                    warning = Some(e);
                }
            }
        }
        // Phase 2: stop reading; the TC must cut us off.
        for _ in 0..300 {
            if c.tc_counter("doppler_proxy_slow_consumer", &[]) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let cut = c.tc_counter("doppler_proxy_slow_consumer", &[]) == 1;
        stop.store(true, Ordering::SeqCst);
        // The fast consumer is still there.
        let firehoses_after_cut = c.tc_gauge("doppler_proxy_firehoses");
        // Phase 3: whatever is buffered, then the end of the stream.
        let ended = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                match slow.next().await {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                    Some(Ok(_)) => {}
                }
            }
        })
        .await
        .is_ok();
        (warning, counter, cut, ended, firehoses_after_cut)
    };

    let ((got, fast_warnings), (warning, counter, cut, ended, firehoses_after_cut), ()) =
        tokio::join!(fast_reader, slow_reader, produce);

    let sent = sent.lock().unwrap().clone();
    assert_eq!(got.len(), sent.len(), "fast client lost envelopes");
    assert_eq!(got, sent);
    assert_eq!(fast_warnings, 0, "fast client must not get warnings");

    let warning = warning.expect("slow client saw the warning log");
    assert_eq!(
        warning.origin.as_deref(),
        Some("loggregator.trafficcontroller")
    );
    let lm = warning.log_message.as_ref().expect("log");
    assert_eq!(lm.message_type, Some(2), "ERR");
    assert_eq!(lm.app_id.as_deref(), Some("system"));
    let text = log_text(&warning).expect("text");
    let rest = text
        .strip_prefix("Log message output is too high. ")
        .expect("prefix");
    let (delta, rest) = rest.split_once(" messages dropped (Total ").expect("delta");
    let (total, rest) = rest.split_once(" messages dropped) from ").expect("total");
    assert_eq!(
        rest,
        format!("loggregator.trafficcontroller to {slow_addr}.")
    );
    let delta: u64 = delta.parse().expect("delta number");
    assert!(delta > 0);
    assert_eq!(
        total.parse::<u64>().expect("total number"),
        delta,
        "first warning: total == delta"
    );
    let counter = counter.expect("counter after the log");
    assert_eq!(counter.event_type, Some(EventType::CounterEvent as i32));
    let ce = counter.counter_event.expect("counter event");
    assert_eq!(ce.name.as_deref(), Some("TruncatingBuffer.DroppedMessages"));
    assert_eq!((ce.delta, ce.total), (Some(delta), Some(delta)));
    assert!(cut, "slow consumer counted");
    assert!(ended, "slow client was disconnected");

    assert!(
        c.tc_counter(
            "dropped",
            &[("direction", "egress"), ("endpoint", "firehose")]
        ) >= delta
    );
    assert!(c.tc_counter("doppler_proxy_rate_control_warnings", &[]) >= 1);
    assert_eq!(firehoses_after_cut, 1, "only the fast consumer left");
    c.wait_subscriptions(1).await;
    drop(fast);
    c.wait_subscriptions(0).await;
}
