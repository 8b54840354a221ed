//! Recent logs and container metrics: multipart/x-protobuf gathered from both
//! dopplers through the historical RecentLogs / ContainerMetrics RPCs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/tc_cluster.rs"]
mod tc_cluster;

use bytes::Bytes;
use tc_cluster::*;

const APP: &str = "11111111-2222-3333-4444-555555555555";
const OTHER_APP: &str = "99999999-2222-3333-4444-555555555555";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recent_logs_from_every_doppler_with_limit() {
    let c = Cluster::start(|_| {}).await;
    let mut sent = Vec::new();
    for i in 0..6 {
        let e = log_env(APP, &format!("line {i}"));
        sent.push(log_text(&e).expect("text"));
        c.push(i % 2, &[e, log_env(OTHER_APP, "other")]).await;
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let path = format!("/apps/{APP}/recentlogs");
    let mut got = Vec::new();
    for _ in 0..100 {
        let r = c
            .http(
                "GET",
                &path,
                &[("origin", "https://console.example.com")],
                "",
            )
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("access-control-allow-origin"),
            "https://console.example.com"
        );
        got = multipart_envelopes(&r);
        if got.len() == 6 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let texts: Vec<String> = got.iter().filter_map(log_text).collect();
    assert_eq!(texts, sent, "both dopplers, merged oldest first");

    let r = c.http("GET", &format!("{path}?limit=2"), &[], "").await;
    let texts: Vec<String> = multipart_envelopes(&r)
        .iter()
        .filter_map(log_text)
        .collect();
    assert_eq!(texts, sent[4..].to_vec(), "limit keeps the newest");

    let r = c
        .http(
            "GET",
            &format!("/apps/{OTHER_APP}/recentlogs?limit=0"),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(multipart_envelopes(&r).is_empty());
    let boundary = r
        .header("content-type")
        .split("boundary=")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    assert_eq!(r.body, Bytes::from(format!("\r\n--{boundary}--\r\n")));

    let r = c.http("GET", "/apps/not-a-guid/recentlogs", &[], "").await;
    assert_eq!(r.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn container_metrics_newest_per_instance_across_dopplers() {
    let c = Cluster::start(|_| {}).await;
    c.push(0, &[container_env(APP, 0, 1.0)]).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    c.push(
        1,
        &[
            container_env(APP, 0, 2.0),
            container_env(APP, 1, 3.0),
            container_env(OTHER_APP, 0, 9.0),
        ],
    )
    .await;
    let path = format!("/apps/{APP}/containermetrics");
    let mut got = Vec::new();
    for _ in 0..100 {
        let r = c.http("GET", &path, &[], "").await;
        assert_eq!(r.status, 200);
        got = multipart_envelopes(&r);
        if got.len() == 2
            && got[0]
                .container_metric
                .as_ref()
                .and_then(|m| m.cpu_percentage)
                == Some(2.0)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let metrics: Vec<(i32, f64)> = got
        .iter()
        .map(|e| {
            let m = e.container_metric.as_ref().expect("container metric");
            assert_eq!(m.application_id.as_deref(), Some(APP));
            (
                m.instance_index.unwrap_or(-1),
                m.cpu_percentage.unwrap_or(-1.0),
            )
        })
        .collect();
    assert_eq!(metrics, vec![(0, 2.0), (1, 3.0)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn set_cookie() {
    let c = Cluster::start(|config| config.system_domain = "sys.example.com".into()).await;
    let r = c
        .http(
            "POST",
            "/set-cookie",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("origin", "https://console.sys.example.com"),
            ],
            "CookieName=authorization&CookieValue=bearer%20abc",
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("set-cookie"),
        "authorization=\"bearer abc\"; Domain=doppler.sys.example.com; HttpOnly; Secure; SameSite=Lax"
    );
    assert_eq!(
        r.header("access-control-allow-origin"),
        "https://console.sys.example.com"
    );
    assert_eq!(r.header("access-control-allow-credentials"), "true");
    assert_eq!(r.header("access-control-allow-headers"), "Content-Type");
    let r = c
        .http(
            "POST",
            "/set-cookie",
            &[("content-type", "application/x-www-form-urlencoded")],
            "CookieName=a",
        )
        .await;
    assert_eq!(r.status, 400);
}
