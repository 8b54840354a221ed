//! The traffic controller's answers in `uaa` mode against a fake UAA and
//! Cloud Controller: status codes, bodies and `WWW-Authenticate` of reference
//! §13.6, every token spelling, and the RLP gateway's 404s.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/tc_cluster.rs"]
mod tc_cluster;
#[path = "support/tc_fake_cf.rs"]
mod tc_fake_cf;

use std::time::Duration;

use tc_cluster::*;
use tc_fake_cf::{ALLOWED_APP, FORBIDDEN_APP};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

async fn cluster() -> (Cluster, tc_fake_cf::FakeCf) {
    let cf = tc_fake_cf::start().await;
    let url = cf.url();
    let c = Cluster::start(move |config| {
        config.auth = traffic_controller::AuthMode::Uaa(Box::new(
            traffic_controller::config::UaaAuth::plain(&url, &url),
        ));
    })
    .await;
    (c, cf)
}

/// Status and body of a refused WebSocket upgrade (or 101).
async fn upgrade_status(
    c: &Cluster,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    let mut req = c.url(path).into_client_request().unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(
            http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            http::HeaderValue::from_str(v).unwrap(),
        );
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, resp)) => {
            drop(ws);
            (resp.status().as_u16(), String::new(), String::new())
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let body =
                String::from_utf8_lossy(&resp.body().clone().unwrap_or_default()).into_owned();
            let www = resp
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            (resp.status().as_u16(), body, www)
        }
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn firehose_requires_doppler_firehose_scope() {
    let (c, _cf) = cluster().await;
    let unauthorized = |reason: &str| {
        (
            401,
            format!("You are not authorized. {reason}"),
            "Basic".to_owned(),
        )
    };
    assert_eq!(
        upgrade_status(&c, "/firehose/a", &[]).await,
        unauthorized("authorization not provided")
    );
    assert_eq!(
        upgrade_status(&c, "/firehose/a", &[("authorization", "bearer user-token")]).await,
        unauthorized("invalid authorization")
    );
    assert_eq!(
        upgrade_status(&c, "/firehose/a", &[("authorization", "bearer bogus")]).await,
        unauthorized("invalid authorization")
    );
    for spelling in ["bearer admin-token", "Bearer admin-token", "admin-token"] {
        assert_eq!(
            upgrade_status(&c, "/firehose/a?", &[("authorization", spelling)])
                .await
                .0,
            101,
            "{spelling}"
        );
    }
    assert_eq!(
        upgrade_status(
            &c,
            "/firehose/a",
            &[("cookie", "authorization=bearer%20admin-token")]
        )
        .await
        .0,
        101
    );
    // The fake UAA accepts only the bare token in the form body, so every
    // spelling above reaching 101 shows the scheme was stripped.
    // Authorised but not an upgrade: 400.
    let r = c
        .http(
            "GET",
            "/firehose/a",
            &[("authorization", "bearer admin-token")],
            "",
        )
        .await;
    assert_eq!(r.status, 400);
    c.wait_subscriptions(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn app_stream_uses_cloud_controller() {
    let (c, cf) = cluster().await;
    let path = |app: &str| format!("/apps/{app}/stream");
    assert_eq!(
        upgrade_status(
            &c,
            &path("not-a-guid"),
            &[("authorization", "bearer user-token")]
        )
        .await
        .0,
        401
    );
    let (s, _, www) = upgrade_status(&c, &path(ALLOWED_APP), &[]).await;
    assert_eq!((s, www.as_str()), (401, "Basic"));
    let (s, _, www) = upgrade_status(
        &c,
        &path(ALLOWED_APP),
        &[("authorization", "bearer expired")],
    )
    .await;
    assert_eq!((s, www.as_str()), (401, "Basic"));
    assert_eq!(
        upgrade_status(
            &c,
            &path(FORBIDDEN_APP),
            &[("authorization", "bearer user-token")]
        )
        .await
        .0,
        404
    );
    assert_eq!(
        upgrade_status(
            &c,
            &path("33333333-2222-3333-4444-555555555555"),
            &[("authorization", "user-token")]
        )
        .await
        .0,
        404
    );
    for spelling in ["bearer user-token", "Bearer user-token", "user-token"] {
        let mut ws = c
            .ws(&path(ALLOWED_APP), &[("authorization", spelling)])
            .await;
        c.wait_subscriptions(1).await;
        c.push(0, &[log_env(ALLOWED_APP, spelling)]).await;
        let e = next_envelope(&mut ws, Duration::from_secs(5))
            .await
            .expect("envelope");
        assert_eq!(log_text(&e).as_deref(), Some(spelling));
        drop(ws);
        c.wait_subscriptions(0).await;
    }
    assert!(
        cf.authorizations("/internal/v4/log_access/")
            .iter()
            .all(|a| a.starts_with("bearer "))
    );
    let r = c
        .http(
            "GET",
            &format!("/apps/{ALLOWED_APP}/recentlogs"),
            &[("authorization", "Bearer user-token")],
            "",
        )
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cloud_controller_down_is_500() {
    let c = Cluster::start(|config| {
        config.auth = traffic_controller::AuthMode::Uaa(Box::new(
            traffic_controller::config::UaaAuth::plain("http://127.0.0.1:1", "http://127.0.0.1:1"),
        ));
    })
    .await;
    let r = c
        .http(
            "GET",
            &format!("/apps/{ALLOWED_APP}/recentlogs"),
            &[("authorization", "bearer user-token")],
            "",
        )
        .await;
    assert_eq!(r.status, 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gateway_auth_failures_are_404_not_found() {
    let (c, _cf) = cluster().await;
    let nf = "{\"message\":\"resource not found\",\"error\":\"not_found\"}\n";
    let r = c.http("GET", "/v2/read?log", &[], "").await;
    assert_eq!((r.status, r.text().as_str()), (404, nf));
    let r = c
        .http(
            "GET",
            "/v2/read?log",
            &[("authorization", "user-token")],
            "",
        )
        .await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (404, nf),
        "non-admin needs a source id"
    );
    let r = c
        .http(
            "GET",
            &format!("/v2/read?log&source_id={FORBIDDEN_APP}"),
            &[("authorization", "user-token")],
            "",
        )
        .await;
    assert_eq!((r.status, r.text().as_str()), (404, nf));
    let r = c
        .http(
            "GET",
            "/v2/read?log",
            &[("cookie", "authorization=admin-token")],
            "",
        )
        .await;
    assert_eq!(r.status, 404, "cookie is not accepted by the gateway");
}
