//! `nozzle syslog` end to end: v1 envelopes pushed into two dopplers reach
//! the nozzle through the traffic controller's WebSocket firehose and are
//! written to syslog-ng (RFC 5424, octet counting, TLS) and to a TCP
//! receiver (JSON lines); the syslog side going away and coming back does
//! not cost the firehose subscription.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/nozzle_sink.rs"]
mod nozzle_sink;
#[path = "../nozzles/tests/support/receivers.rs"]
mod receivers;
#[path = "support/tc_cluster.rs"]
mod tc_cluster;

use std::time::Duration;

use nozzles::syslog_nozzle::{self, Format};
use plumbing::shutdown::Shutdown;
use tc_cluster::{Cluster, counter_env, log_env};

const APP: &str = "f47ac10b-58cc-4372-a567-0e02b2c3d479";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn firehose_logs_reach_syslog_ng_over_tls() {
    let cluster = Cluster::start(|_| {}).await;
    let ng = receivers::SyslogNg::start(cluster.dir.path(), &cluster.pki);
    let mut config = syslog_nozzle::Config::for_tests(
        &format!("ws://{}", cluster.tc_addr),
        "syslog-nozzle",
        &format!("localhost:{}", ng.tls_port),
    );
    let trust = nozzles::tlsutil::TrustOptions {
        system_roots: false,
        extra_ca_pem: Some(cluster.pki.ca_cert_pem().as_bytes().to_vec()),
        skip_verify: false,
    };
    config.syslog_tls = Some((
        nozzles::tlsutil::client_config(&trust, None, None, &[]).unwrap(),
        "localhost".to_owned(),
    ));
    let shutdown = Shutdown::new();
    tokio::spawn(syslog_nozzle::run(
        config,
        syslog_nozzle::Listeners::default(),
        shutdown.clone(),
    ));
    cluster.wait_subscriptions(1).await;

    cluster
        .push(
            0,
            &[
                log_env(APP, "from doppler 0"),
                counter_env("filtered.out", 1),
            ],
        )
        .await;
    cluster.push(1, &[log_env(APP, "from doppler 1")]).await;
    ng.wait_records(2, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let recs = ng.records();
    assert_eq!(recs.len(), 2, "only logs (filter-type=logs): {recs:#?}");
    let mut msgs: Vec<&str> = recs.iter().map(|r| r.msg.as_str()).collect();
    msgs.sort();
    assert_eq!(msgs, ["from doppler 0", "from doppler 1"]);
    for r in &recs {
        assert_eq!(r.pri, "14");
        assert_eq!(r.host, "loggregator");
        assert_eq!(r.program, APP);
        assert_eq!(r.pid, "[APP/PROC/WEB/0]");
        assert_eq!(r.msgid, "");
        assert_eq!(r.source_type, "APP/PROC/WEB");
        // v1 -> v2 conversion adds the envelope fields as tags.
        assert!(r.sdata.contains("origin=\"test-origin\""), "{}", r.sdata);
        assert_eq!(
            r.isodate.len(),
            "2023-11-14T22:13:20.123456+00:00".len(),
            "{}",
            r.isodate
        );
    }
    shutdown.trigger();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn syslog_outage_keeps_the_firehose_subscription() {
    let cluster = Cluster::start(|_| {}).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let sink = nozzle_sink::Sink::start(0, false, tx.clone()).await;
    let port = sink.port;
    let mut config = syslog_nozzle::Config::for_tests(
        &format!("ws://{}", cluster.tc_addr),
        "json-nozzle",
        &format!("127.0.0.1:{port}"),
    );
    config.format = Format::Json;
    config.events = syslog_nozzle::parse_events("LogMessage,CounterEvent").unwrap();
    config.firehose.filter = syslog_nozzle::filter_for(&config.events);
    let registry = config.registry.clone();
    let shutdown = Shutdown::new();
    tokio::spawn(syslog_nozzle::run(
        config,
        syslog_nozzle::Listeners::default(),
        shutdown.clone(),
    ));
    cluster.wait_subscriptions(1).await;

    cluster
        .push(
            0,
            &[log_env(APP, "before outage"), counter_env("requests", 3)],
        )
        .await;
    let mut lines = Vec::new();
    while lines.len() < 2 {
        let l = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("json lines")
            .unwrap();
        lines.push(
            serde_json::from_slice::<serde_json::Value>(&l).expect("one JSON object per line"),
        );
    }
    let log = lines
        .iter()
        .find(|v| v.get("log").is_some())
        .expect("log line");
    assert_eq!(log["source_id"], APP);
    assert_eq!(log["tags"]["source_type"], "APP/PROC/WEB");
    assert_eq!(log["log"]["payload"], "YmVmb3JlIG91dGFnZQ=="); // base64("before outage")
    let counter = lines
        .iter()
        .find(|v| v.get("counter").is_some())
        .expect("counter line");
    assert_eq!(counter["counter"]["name"], "requests");
    assert_eq!(counter["counter"]["delta"], "3");

    // Syslog server goes away; the firehose keeps flowing into the nozzle's buffer.
    sink.stop();
    drop(sink);
    tokio::time::sleep(Duration::from_millis(200)).await;
    cluster.push(1, &[log_env(APP, "during outage 1")]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.push(0, &[log_env(APP, "during outage 2")]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _sink = nozzle_sink::Sink::start(port, false, tx).await;
    let mut payloads = Vec::new();
    while !(payloads.contains(&"during outage 1".to_owned())
        && payloads.contains(&"during outage 2".to_owned()))
    {
        let l = tokio::time::timeout(Duration::from_secs(15), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("resumed delivery; got {payloads:?}"))
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&l).unwrap();
        if let Some(p) = v["log"]["payload"].as_str() {
            use base64::Engine as _;
            let b = base64::engine::general_purpose::STANDARD.decode(p).unwrap();
            payloads.push(String::from_utf8(b).unwrap());
        }
    }
    assert_eq!(
        registry.counter_value("firehose_reconnects", &[("consumer", "syslog")]),
        Some(0),
        "the firehose subscription survived the syslog outage"
    );
    assert_eq!(cluster.doppler_subscriptions(0), 1);
    assert_eq!(cluster.doppler_subscriptions(1), 1);
    shutdown.trigger();
}
