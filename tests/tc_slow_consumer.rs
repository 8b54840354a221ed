//! Slow consumers: a stalled client sees the rate-control warning and is then
//! disconnected, while a fast client on the same firehose (its own
//! subscription id) loses nothing.

#[path = "support/tc_cluster.rs"]
mod tc_cluster;

use std::collections::BTreeSet;
use std::time::Duration;

use envelope_proto::events::envelope::EventType;
use futures::StreamExt;
use tc_cluster::*;
use tokio_tungstenite::tungstenite::Message;

const APP: &str = "11111111-2222-3333-4444-555555555555";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stalled_client_gets_warnings_then_disconnect_fast_client_loses_nothing() {
    let c = Cluster::start(|config| {
        config.buffer_size = 1000;
        config.slow_consumer_timeout = Duration::from_secs(2);
    })
    .await;
    let mut fast = c.ws("/firehose/fast", &[]).await;
    let mut slow = c.ws_small_buffer("/firehose/slow").await;
    let slow_addr = slow.get_ref().local_addr().unwrap();
    c.wait_subscriptions(2).await;

    // 12,000 envelopes of ~1 KiB over ~6 s, alternating dopplers.
    let padding = "x".repeat(1000);
    let batches = 30;
    let per_batch = 200;
    let producer = {
        let envs: Vec<Vec<_>> = (0..batches * 2)
            .map(|b| (0..per_batch).map(|i| log_env(APP, &format!("{b}-{i}-{padding}"))).collect())
            .collect();
        let sent: BTreeSet<String> = envs.iter().flatten().filter_map(log_text).collect();
        let c = &c;
        (sent, async move {
            for (b, batch) in envs.iter().enumerate() {
                c.push(b % 2, batch).await;
                if b % 2 == 1 {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        })
    };
    let (sent, produce) = producer;

    let fast_reader = async {
        let mut got = BTreeSet::new();
        let mut warnings = 0;
        while got.len() < sent.len() {
            match next_envelope(&mut fast, Duration::from_secs(5)).await {
                Some(e) => {
                    if e.log_message.as_ref().and_then(|l| l.source_type.as_deref()) == Some("LGR") {
                        warnings += 1;
                    } else if let Some(t) = log_text(&e) {
                        got.insert(t);
                    }
                }
                None => break,
            }
        }
        (got, warnings)
    };

    let slow_reader = async {
        // Phase 1: read slowly until the warning shows up.
        let mut warning = None;
        let mut counter = None;
        for _ in 0..20_000 {
            let Some(e) = next_envelope(&mut slow, Duration::from_secs(10)).await else { break };
            if e.log_message.as_ref().and_then(|l| l.source_type.as_deref()) == Some("LGR") {
                warning = Some(e);
                counter = next_envelope(&mut slow, Duration::from_secs(5)).await;
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // Phase 2: stop reading; the TC must cut us off.
        eventually(|| c.tc_counter("doppler_proxy_slow_consumer", &[]) == 1, "slow consumer counted").await;
        // Phase 3: whatever is buffered, then the end of the stream.
        let ended = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                match slow.next().await {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                    Some(Ok(_)) => {}
                }
            }
        })
        .await
        .is_ok();
        (warning, counter, ended)
    };

    let ((got, fast_warnings), (warning, counter, ended), ()) = tokio::join!(fast_reader, slow_reader, produce);

    assert_eq!(got.len(), sent.len(), "fast client lost envelopes");
    assert_eq!(got, sent);
    assert_eq!(fast_warnings, 0, "fast client must not get warnings");

    let warning = warning.expect("slow client saw the warning log");
    assert_eq!(warning.origin.as_deref(), Some("loggregator.trafficcontroller"));
    let lm = warning.log_message.as_ref().expect("log");
    assert_eq!(lm.message_type, Some(2), "ERR");
    assert_eq!(lm.app_id.as_deref(), Some("system"));
    let text = log_text(&warning).expect("text");
    let rest = text.strip_prefix("Log message output is too high. ").expect("prefix");
    let (delta, rest) = rest.split_once(" messages dropped (Total ").expect("delta");
    let (total, rest) = rest.split_once(" messages dropped) from ").expect("total");
    assert_eq!(rest, format!("loggregator.trafficcontroller to {slow_addr}."));
    let delta: u64 = delta.parse().expect("delta number");
    assert!(delta > 0);
    assert_eq!(total.parse::<u64>().expect("total number"), delta, "first warning: total == delta");
    let counter = counter.expect("counter after the log");
    assert_eq!(counter.event_type, Some(EventType::CounterEvent as i32));
    let ce = counter.counter_event.expect("counter event");
    assert_eq!(ce.name.as_deref(), Some("TruncatingBuffer.DroppedMessages"));
    assert_eq!((ce.delta, ce.total), (Some(delta), Some(delta)));
    assert!(ended, "slow client was disconnected");

    assert!(c.tc_counter("dropped", &[("direction", "egress"), ("endpoint", "firehose")]) > 0);
    assert!(c.tc_counter("doppler_proxy_rate_control_warnings", &[]) >= 1);
    eventually(|| c.tc_gauge("doppler_proxy_firehoses") == 1, "only the fast consumer left").await;
    c.wait_subscriptions(1).await;
}
