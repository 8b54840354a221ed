//! `syslog-drain` end to end: envelopes sent into two dopplers' v2 Ingress
//! (mTLS) are read by the forwarder through doppler egress for the bound
//! apps and written to rsyslog (TCP and TLS); bindings added and removed in
//! the file take effect without restart; a receiver that is down and comes
//! back gets delivery resumed, and the "messages lost" notice appears in the
//! app's own stream read back from the doppler.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/nozzle_sink.rs"]
mod nozzle_sink;
#[path = "../nozzles/tests/support/receivers.rs"]
mod receivers;
#[path = "support/tc_cluster.rs"]
mod tc_cluster;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use envelope_proto::loggregator_v2::{
    EgressBatchRequest, Envelope, EnvelopeBatch, Log, LogSelector, Selector,
    egress_client::EgressClient, envelope::Message, ingress_client::IngressClient, selector,
};
use plumbing::shutdown::Shutdown;
use tc_cluster::Cluster;

const APP_A: &str = "f47ac10b-58cc-4372-a567-0e02b2c3d479";
const APP_B: &str = "0b3f9a32-7cc1-4b6e-9a4a-8a5e6a1e2c11";
const APP_C: &str = "6c8f7a02-9a1d-4d8b-8e36-2f6f7d6c0b55";

fn log(app: &str, payload: &str) -> Envelope {
    let mut tags = BTreeMap::new();
    tags.insert("source_type".to_owned(), "APP/PROC/WEB".to_owned());
    tags.insert("app_name".to_owned(), "my app".to_owned());
    tags.insert("organization_name".to_owned(), "org_1".to_owned());
    tags.insert("space_name".to_owned(), "dev".to_owned());
    Envelope {
        timestamp: 1_700_000_000_123_456_789,
        source_id: app.into(),
        instance_id: "0".into(),
        deprecated_tags: BTreeMap::new(),
        tags,
        message: Some(Message::Log(Log {
            payload: payload.as_bytes().to_vec().into(),
            r#type: 0,
        })),
    }
}

fn write_bindings(path: &Path, bindings: &[(&str, String, &str)]) {
    let list: Vec<serde_json::Value> = bindings
        .iter()
        .map(|(app, url, ca)| {
            serde_json::json!({
                "url": url,
                "credentials": [{"cert": "", "key": "", "ca": ca, "apps": [{"hostname": "org.space.app", "app_id": app}]}]
            })
        })
        .collect();
    let tmp = path.with_extension("tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec(&serde_json::json!({"results": list, "next_id": null})).unwrap(),
    )
    .unwrap();
    std::fs::rename(tmp, path).unwrap();
}

async fn send(cluster: &Cluster, i: usize, envs: Vec<Envelope>) {
    IngressClient::new(cluster.doppler_channel(i))
        .batch_sender(futures::stream::iter([EnvelopeBatch { batch: envs }]))
        .await
        .expect("doppler v2 ingress");
}

fn start_forwarder(
    cluster: &Cluster,
    bindings: &Path,
    buffer: usize,
) -> (Shutdown, plumbing::metrics::Registry) {
    let mut config = nozzles::drain::Config::for_tests(
        bindings.to_owned(),
        cluster
            .dopplers
            .iter()
            .map(|d| d.addr.to_string())
            .collect(),
        Some(cluster.pki.files("metron")),
    );
    config.poll_interval = Duration::from_millis(200);
    config.ingress_addr = Some(cluster.dopplers[0].addr.to_string());
    config.ingress_server_name = "doppler".into();
    config.drains.buffer_size = buffer;
    let registry = config.registry.clone();
    let shutdown = Shutdown::new();
    tokio::spawn(nozzles::drain::run(
        config,
        nozzles::drain::Listeners::default(),
        shutdown.clone(),
    ));
    (shutdown, registry)
}

/// Waits until the forwarder's subscriptions are open on every doppler.
async fn wait_subscribed(registry: &plumbing::metrics::Registry, opens: u64) {
    tc_cluster::eventually(
        || {
            registry
                .counter_value("syslog_drain_subscriptions", &[])
                .unwrap_or(0)
                >= opens
        },
        "forwarder subscribed",
    )
    .await;
    // Streams are open once the counter moved; give dopplers a moment to register them.
    tokio::time::sleep(Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drains_through_dopplers_to_rsyslog_and_follow_binding_changes() {
    let cluster = Cluster::start_n(2, |_| {}).await;
    let rs = receivers::Rsyslog::start(cluster.dir.path(), &cluster.pki);
    let bindings = cluster.dir.path().join("bindings.json");
    write_bindings(
        &bindings,
        &[
            (APP_A, format!("syslog://127.0.0.1:{}", rs.tcp_port), ""),
            (
                APP_B,
                format!("syslog-tls://localhost:{}", rs.tls_port),
                cluster.pki.ca_cert_pem(),
            ),
        ],
    );
    let (shutdown, registry) = start_forwarder(&cluster, &bindings, 10_000);
    wait_subscribed(&registry, 2).await;

    send(
        &cluster,
        0,
        vec![log(APP_A, "a via doppler 0"), log(APP_B, "b via doppler 0")],
    )
    .await;
    send(
        &cluster,
        1,
        vec![log(APP_A, "a via doppler 1"), log(APP_C, "c not bound yet")],
    )
    .await;
    let recs = rs.wait_records(3, Duration::from_secs(15)).await;
    let mut msgs: Vec<(String, String)> = recs
        .iter()
        .map(|r| {
            (
                r["app_name"].as_str().unwrap().to_owned(),
                r["msg"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    msgs.sort();
    let mut want: Vec<(String, String)> = [
        (APP_A, "a via doppler 0"),
        (APP_A, "a via doppler 1"),
        (APP_B, "b via doppler 0"),
    ]
    .iter()
    .map(|(a, m)| ((*a).to_owned(), (*m).to_owned()))
    .collect();
    want.sort();
    assert_eq!(msgs, want);
    for r in &recs {
        assert_eq!(r["pri"], "14");
        assert_eq!(r["timestamp"], "2023-11-14T22:13:20.123456+00:00");
        assert_eq!(r["hostname"], "org1.dev.my-app");
        assert_eq!(r["procid"], "[APP/PROC/WEB/0]");
        assert_eq!(r["msgid"], "-");
        assert_eq!(
            r["sd"],
            "[tags@47450 app_name=\"my app\" organization_name=\"org_1\" source_type=\"APP/PROC/WEB\" space_name=\"dev\"]"
        );
    }

    // Bind C, unbind A: takes effect without restart.
    write_bindings(
        &bindings,
        &[
            (
                APP_B,
                format!("syslog-tls://localhost:{}", rs.tls_port),
                cluster.pki.ca_cert_pem(),
            ),
            (APP_C, format!("syslog://127.0.0.1:{}", rs.tcp_port), ""),
        ],
    );
    wait_subscribed(&registry, 4).await;
    send(
        &cluster,
        0,
        vec![log(APP_A, "a after unbind"), log(APP_C, "c after bind")],
    )
    .await;
    send(&cluster, 1, vec![log(APP_B, "b still bound")]).await;
    let recs = rs.wait_records(5, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let recs = if rs.records().len() > recs.len() {
        rs.records()
    } else {
        recs
    };
    let later: Vec<&str> = recs[3..]
        .iter()
        .map(|r| r["msg"].as_str().unwrap())
        .collect();
    assert_eq!(recs.len(), 5, "{recs:#?}");
    assert!(later.contains(&"c after bind"), "{later:?}");
    assert!(later.contains(&"b still bound"), "{later:?}");
    assert_eq!(registry.gauge_value("syslog_drain_drains", &[]), Some(2));
    shutdown.trigger();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn receiver_outage_resumes_and_announces_losses_in_app_stream() {
    let cluster = Cluster::start_n(1, |_| {}).await;
    let port = receivers::free_port();
    let bindings = cluster.dir.path().join("bindings.json");
    write_bindings(
        &bindings,
        &[(APP_A, format!("syslog://127.0.0.1:{port}"), "")],
    );

    // Read the app's own stream from the doppler (as `cf logs` would).
    let mut app_stream = EgressClient::new(cluster.doppler_channel(0))
        .batched_receiver(EgressBatchRequest {
            shard_id: String::new(),
            legacy_selector: None,
            use_preferred_tags: true,
            selectors: vec![Selector {
                source_id: APP_A.into(),
                message: Some(selector::Message::Log(LogSelector {})),
            }],
            deterministic_name: String::new(),
        })
        .await
        .unwrap()
        .into_inner();

    let (shutdown, registry) = start_forwarder(&cluster, &bindings, 10);
    wait_subscribed(&registry, 1).await;

    send(
        &cluster,
        0,
        (0..5).map(|i| log(APP_A, &format!("seq {i}"))).collect(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    send(
        &cluster,
        0,
        (5..105).map(|i| log(APP_A, &format!("seq {i}"))).collect(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let _sink = nozzle_sink::Sink::start(port, true, tx).await;
    let mut got: Vec<u32> = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(3), rx.recv()).await {
            Ok(Some(m)) => {
                let s = String::from_utf8(m).unwrap();
                // The drain also carries the app's own LGR notices (they are app logs).
                if let Some(n) = s
                    .trim_end()
                    .rsplit("] seq ")
                    .next()
                    .and_then(|n| n.parse().ok())
                {
                    got.push(n);
                }
            }
            _ if got.len() >= 10 => break,
            _ => panic!("delivery did not resume: got {got:?}"),
        }
    }
    // Order kept, the newest 10 survive, the first batch was retried until delivered.
    assert!(got.windows(2).all(|w| w[0] < w[1]), "{got:?}");
    assert_eq!(&got[got.len() - 10..], &(95..105).collect::<Vec<_>>()[..]);
    assert_eq!(got[0], 0, "{got:?}");
    let lost = registry
        .counter_value(
            "syslog_drain_dropped",
            &[("scheme", "syslog"), ("reason", "buffer")],
        )
        .unwrap();
    assert!(
        lost >= 105 - got.len() as u64,
        "lost {lost}, delivered {got:?}"
    );

    // The notices arrive in the app's own stream through the doppler.
    let anon = format!("syslog://127.0.0.1:{port}");
    let want_lost = format!(
        "{lost} messages lost for application {APP_A} in user provided syslog drain with url {anon}"
    );
    let want_failed = format!("Failed to connect to {anon}");
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !(seen.contains(&want_lost) && seen.contains(&want_failed)) {
        let batch = tokio::time::timeout_at(deadline, app_stream.message())
            .await
            .unwrap_or_else(|_| panic!("notices not seen in app stream; saw {seen:?}"))
            .unwrap()
            .unwrap();
        for e in batch.batch {
            if e.tags.get("source_type").map(String::as_str) != Some("LGR") {
                continue;
            }
            assert_eq!(e.instance_id, "0");
            let Some(Message::Log(l)) = &e.message else {
                panic!("notice is not a log")
            };
            assert_eq!(l.r#type, 1, "ERR");
            seen.push(String::from_utf8(l.payload.to_vec()).unwrap());
        }
    }
    shutdown.trigger();
}
