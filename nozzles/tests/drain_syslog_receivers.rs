//! Drains writing to real rsyslog and syslog-ng daemons over plain TCP and
//! TLS with octet counting; received messages are checked field by field.

#![allow(clippy::unwrap_used)]

#[path = "support/drain_harness.rs"]
mod drain_harness;
#[path = "support/receivers.rs"]
mod receivers;

use std::time::Duration;

use drain_harness::*;
use receivers::{Rsyslog, SyslogNg, pki};

const APP_A: &str = "f47ac10b-58cc-4372-a567-0e02b2c3d479";
const APP_B: &str = "0b3f9a32-7cc1-4b6e-9a4a-8a5e6a1e2c11";

const CF_TAGS: &[(&str, &str)] = &[
    ("app_name", "my app"),
    ("organization_name", "org_1"),
    ("source_type", "APP/PROC/WEB"),
    ("space_name", "dev"),
];

fn by(records: &[serde_json::Value], app: &str, pri: &str) -> Vec<serde_json::Value> {
    records
        .iter()
        .filter(|r| r["app_name"] == app && r["pri"] == pri)
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsyslog_receives_tcp_and_tls_drains_field_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let rs = Rsyslog::start(dir.path(), &pki);
    let mut h = harness(settings(None, 10_000), None);
    h.manager.apply(
        &[
            spec(
                APP_A,
                &format!("syslog://127.0.0.1:{}?drain-data=all", rs.tcp_port),
                "",
            ),
            spec(
                APP_B,
                &format!("syslog-tls://localhost:{}", rs.tls_port),
                pki.ca_cert_pem(),
            ),
        ],
        &[],
    );
    assert_eq!(h.manager.len(), 2);
    h.dispatcher.dispatch(vec![
        log(APP_A, "0", false, "hello \"world\"", CF_TAGS),
        log(
            APP_A,
            "1",
            true,
            "line one\nline two",
            &[("source_type", "STG")],
        ),
        gauge(APP_A, "memory", 123_456_789.0, "bytes"),
        counter(APP_A, "requests", 2, 10, &[("origin", "app")]),
        log(APP_B, "0", false, "over tls", CF_TAGS),
        log(APP_B, "2", true, "err over tls", &[("source_type", "RTR")]),
        // Default drain mode (logs): the timer must not reach the TLS drain.
        timer(APP_B),
    ]);
    let records = rs.wait_records(6, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let records = if rs.records().len() > records.len() {
        rs.records()
    } else {
        records
    };
    assert_eq!(records.len(), 6, "{records:#?}");

    for r in &records {
        assert_eq!(r["timestamp"], "2023-11-14T22:13:20.123456+00:00");
        assert_eq!(r["msgid"], "-");
    }

    let out_a = by(&records, APP_A, "14");
    let log_a = out_a
        .iter()
        .find(|r| r["msg"] == "hello \"world\"")
        .expect("app A OUT log");
    assert_eq!(log_a["hostname"], "org1.dev.my-app");
    assert_eq!(log_a["procid"], "[APP/PROC/WEB/0]");
    assert_eq!(
        log_a["sd"],
        "[tags@47450 app_name=\"my app\" organization_name=\"org_1\" source_type=\"APP/PROC/WEB\" space_name=\"dev\"]"
    );

    let err_a = by(&records, APP_A, "11");
    assert_eq!(err_a.len(), 1);
    // Embedded newline intact (escapeControlCharactersOnReceive=off); trailing newline stripped.
    assert_eq!(err_a[0]["msg"], "line one\nline two");
    assert_eq!(err_a[0]["procid"], "[STG/1]");
    assert_eq!(err_a[0]["hostname"], "org.space.app");
    assert_eq!(err_a[0]["sd"], "[tags@47450 source_type=\"STG\"]");

    let g = out_a.iter().find(|r| r["procid"] == "[3]").expect("gauge");
    assert_eq!(
        g["sd"],
        "[gauge@47450 name=\"memory\" value=\"1.23456789e+08\" unit=\"bytes\"]"
    );
    assert_eq!(g["msg"], "");
    let c = out_a
        .iter()
        .find(|r| r["procid"] == "[1]")
        .expect("counter");
    assert_eq!(
        c["sd"],
        "[counter@47450 name=\"requests\" total=\"10\" delta=\"2\"][tags@47450 origin=\"app\"]"
    );
    assert_eq!(c["msg"], "");

    let b_out = by(&records, APP_B, "14");
    assert_eq!(b_out.len(), 1);
    assert_eq!(b_out[0]["msg"], "over tls");
    assert_eq!(b_out[0]["hostname"], "org1.dev.my-app");
    let b_err = by(&records, APP_B, "11");
    assert_eq!(b_err.len(), 1);
    assert_eq!(b_err[0]["procid"], "[RTR/2]");
    assert_eq!(b_err[0]["msg"], "err over tls");

    assert_eq!(
        h.registry
            .counter_value("syslog_drain_egress", &[("scheme", "syslog")]),
        Some(4)
    );
    assert_eq!(
        h.registry
            .counter_value("syslog_drain_egress", &[("scheme", "syslog-tls")]),
        Some(2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_ng_receives_tcp_and_tls_drains_field_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let ng = SyslogNg::start(dir.path(), &pki);
    let mut h = harness(settings(Some(pki.ca_cert_pem()), 10_000), None);
    h.manager.apply(
        &[
            spec(
                APP_A,
                &format!("syslog://127.0.0.1:{}?drain-type=all", ng.tcp_port),
                "",
            ),
            spec(
                APP_B,
                &format!(
                    "syslog-tls://localhost:{}?disable-metadata=true",
                    ng.tls_port
                ),
                "",
            ),
        ],
        &[],
    );
    let mut half = log(APP_A, "0", false, "half second", CF_TAGS);
    half.timestamp = 1_700_000_000_500_000_000;
    let mut whole = log(APP_B, "7", true, "whole second", &[("source_type", "CELL")]);
    whole.timestamp = 1_700_000_000_000_000_000;
    h.dispatcher.dispatch(vec![
        half,
        counter(APP_A, "requests", 2, 10, &[("origin", "app")]),
        whole,
        // drain-type=all has no events; disable-metadata drain (logs mode) gets this one.
        event(APP_A, "not for A", "x"),
        event(APP_B, "App \"crashed\"", "exit [status 1]"),
    ]);
    ng.wait_records(4, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let recs = ng.records().into_iter().collect::<Vec<_>>();
    assert_eq!(recs.len(), 4, "{recs:#?}");

    let a_log = recs
        .iter()
        .find(|r| r.program == APP_A && r.pri == "14" && r.pid != "[1]")
        .expect("A log");
    assert_eq!(a_log.isodate, "2023-11-14T22:13:20.500000+00:00");
    assert_eq!(a_log.host, "org1.dev.my-app");
    assert_eq!(a_log.pid, "[APP/PROC/WEB/0]");
    assert_eq!(a_log.msgid, "");
    assert_eq!(
        a_log.sdata,
        "[tags@47450 app_name=\"my app\" organization_name=\"org_1\" source_type=\"APP/PROC/WEB\" space_name=\"dev\"]"
    );
    assert_eq!(a_log.source_type, "APP/PROC/WEB");
    assert_eq!(a_log.msg, "half second");

    let a_counter = recs
        .iter()
        .find(|r| r.program == APP_A && r.pid == "[1]")
        .expect("A counter");
    assert_eq!(a_counter.isodate, "2023-11-14T22:13:20.123456+00:00");
    assert_eq!(
        a_counter.sdata,
        "[counter@47450 name=\"requests\" total=\"10\" delta=\"2\"][tags@47450 origin=\"app\"]"
    );
    assert_eq!(a_counter.source_type, "");
    assert_eq!(a_counter.msg, "");

    let b_log = recs
        .iter()
        .find(|r| r.program == APP_B && r.pri == "11")
        .expect("B log");
    assert_eq!(b_log.isodate, "2023-11-14T22:13:20.000000+00:00");
    assert_eq!(b_log.host, "org.space.app");
    assert_eq!(b_log.pid, "[CELL/7]");
    assert_eq!(
        b_log.sdata, "",
        "metadata disabled: SD is '-' (empty in syslog-ng)"
    );
    assert_eq!(b_log.msg, "whole second");

    let b_event = recs
        .iter()
        .find(|r| r.program == APP_B && r.pri == "14")
        .expect("B event");
    assert_eq!(b_event.pid, "[]");
    assert_eq!(
        b_event.sdata,
        "[event@47450 title=\"App \\\"crashed\\\"\" body=\"exit [status 1\\]\"]"
    );
}
