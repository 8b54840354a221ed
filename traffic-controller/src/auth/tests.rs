//! The auth matrix against a local UAA + Cloud Controller written here.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use http::{HeaderValue, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::*;

const ALLOWED: &str = "11111111-2222-3333-4444-555555555555";
const FORBIDDEN: &str = "22222222-2222-3333-4444-555555555555";
const MISSING: &str = "33333333-2222-3333-4444-555555555555";
const BROKEN: &str = "44444444-2222-3333-4444-555555555555";
const SERVICE: &str = "55555555-2222-3333-4444-555555555555";

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

/// A JWT-shaped token (unsigned: only its `exp` is read) expiring at `exp`.
fn jwt(exp: f64) -> String {
    let enc = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!(
        "{}.{}.c2lnbmF0dXJl",
        enc("{\"alg\":\"RS256\",\"typ\":\"JWT\"}"),
        enc(&format!("{{\"user_id\":\"u\",\"exp\":{exp}}}"))
    )
}

#[derive(Default)]
struct Calls {
    uaa: AtomicUsize,
    cc: AtomicUsize,
}

async fn fake_cf(
    req: http::Request<Incoming>,
    calls: Arc<Calls>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let method = req.method().clone();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let reply = |status: u16, body: &str| {
        let mut r = Response::new(Full::new(Bytes::from(body.to_owned())));
        *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Ok(r)
    };
    if path == "/check_token" {
        calls.uaa.fetch_add(1, Ordering::SeqCst);
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("doppler:secret")
        );
        if method != Method::POST || auth != expected {
            return reply(401, "{\"error\":\"unauthorized\"}");
        }
        let form = String::from_utf8_lossy(&body).to_string();
        let token = form.strip_prefix("token=").unwrap_or("");
        let scopes = match token {
            "admin-token" => "[\"doppler.firehose\",\"openid\"]",
            "logs-admin-token" => "[\"logs.admin\"]",
            "user-token" | "weird%2Btoken" => "[\"openid\"]",
            // `exp-<unix seconds>`: an admin token UAA reports (and honours)
            // the expiry of, as real UAA does.
            t if t.starts_with("exp-") => {
                let exp: f64 = t[4..].parse().unwrap_or(0.0);
                if unix_now() >= exp {
                    return reply(400, "{\"error\":\"invalid_token\"}");
                }
                return reply(
                    200,
                    &format!("{{\"scope\":[\"doppler.firehose\"],\"exp\":{exp}}}"),
                );
            }
            _ => return reply(400, "{\"error\":\"invalid_token\"}"),
        };
        return reply(200, &format!("{{\"scope\":{scopes},\"client_id\":\"cf\"}}"));
    }
    if let Some(guid) = path.strip_prefix("/internal/v4/log_access/") {
        calls.cc.fetch_add(1, Ordering::SeqCst);
        let live_jwt = auth
            .strip_prefix("bearer ")
            .and_then(token::jwt_expiry)
            .is_some_and(|exp| exp > std::time::SystemTime::now());
        if auth != "bearer user-token" && auth != "bearer admin-token" && !live_jwt {
            return reply(401, "");
        }
        return match guid {
            ALLOWED => reply(200, "{}"),
            FORBIDDEN => reply(403, ""),
            MISSING | SERVICE => reply(404, ""),
            BROKEN => reply(502, ""),
            _ => reply(404, ""),
        };
    }
    if let Some(guid) = path.strip_prefix("/v3/service_instances/") {
        return if guid == SERVICE && auth == "bearer user-token" {
            reply(200, "{}")
        } else {
            reply(404, "")
        };
    }
    reply(404, "")
}

async fn start_fake() -> (SocketAddr, Arc<Calls>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let calls = Arc::new(Calls::default());
    let c = calls.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let c = c.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| fake_cf(req, c.clone()));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (addr, calls)
}

async fn authorizer() -> (Authorizer, Arc<Calls>) {
    let (addr, calls) = start_fake().await;
    let base = format!("http://{addr}");
    let mut settings = UaaAuth::plain(&base, &base);
    settings.cc_external_url = Some(base);
    let a = Authorizer::new(&AuthMode::Uaa(Box::new(settings))).expect("authorizer");
    (a, calls)
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            http::header::HeaderName::from_bytes(k.as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    h
}

#[tokio::test]
async fn firehose_matrix() {
    let (a, _) = authorizer().await;
    let cases: HashMap<&str, Result<(), Denial>> = HashMap::from([
        ("bearer admin-token", Ok(())),
        ("Bearer admin-token", Ok(())),
        ("BEARER  admin-token", Ok(())),
        ("admin-token", Ok(())),
        ("bearer user-token", Err(Denial::InvalidToken)),
        ("bearer logs-admin-token", Err(Denial::InvalidToken)),
        ("bearer nope", Err(Denial::InvalidToken)),
        ("bearer", Err(Denial::NoToken)),
    ]);
    for (value, want) in cases {
        assert_eq!(
            a.firehose(&headers(&[("authorization", value)])).await,
            want,
            "{value}"
        );
    }
    assert_eq!(a.firehose(&HeaderMap::new()).await, Err(Denial::NoToken));
    assert_eq!(
        a.firehose(&headers(&[(
            "cookie",
            "authorization=bearer%20admin-token"
        )]))
        .await,
        Ok(())
    );
}

#[tokio::test]
async fn positive_answers_are_cached_negative_are_not() {
    let (a, calls) = authorizer().await;
    let h = headers(&[("authorization", "bearer admin-token")]);
    a.firehose(&h).await.expect("allowed");
    a.firehose(&h).await.expect("allowed");
    assert_eq!(calls.uaa.load(Ordering::SeqCst), 1);
    let bad = headers(&[("authorization", "bearer nope")]);
    let _ = a.firehose(&bad).await;
    let _ = a.firehose(&bad).await;
    assert_eq!(calls.uaa.load(Ordering::SeqCst), 3);

    let user = headers(&[("authorization", "Bearer user-token")]);
    a.app(&user, ALLOWED).await.expect("allowed");
    a.app(&user, ALLOWED).await.expect("allowed");
    assert_eq!(calls.cc.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn app_matrix() {
    let (a, _) = authorizer().await;
    let user = headers(&[("authorization", "user-token")]);
    assert_eq!(a.app(&user, "not-a-guid").await, Err(Denial::InvalidAppId));
    assert_eq!(
        a.app(&HeaderMap::new(), ALLOWED).await,
        Err(Denial::NoToken)
    );
    assert_eq!(a.app(&user, ALLOWED).await, Ok(()));
    assert_eq!(a.app(&user, FORBIDDEN).await, Err(Denial::NotFound));
    assert_eq!(a.app(&user, MISSING).await, Err(Denial::NotFound));
    assert!(matches!(
        a.app(&user, BROKEN).await,
        Err(Denial::Upstream(_))
    ));
    let bad = headers(&[("authorization", "bearer expired")]);
    assert_eq!(a.app(&bad, ALLOWED).await, Err(Denial::InvalidToken));
}

#[tokio::test]
async fn unreachable_cloud_controller_is_upstream_error() {
    let settings = UaaAuth::plain("http://127.0.0.1:1", "http://127.0.0.1:1");
    let a = Authorizer::new(&AuthMode::Uaa(Box::new(settings))).expect("authorizer");
    let user = headers(&[("authorization", "bearer user-token")]);
    assert!(matches!(
        a.app(&user, ALLOWED).await,
        Err(Denial::Upstream(_))
    ));
    assert_eq!(a.firehose(&user).await, Err(Denial::InvalidToken));
}

#[tokio::test]
async fn gateway_matrix() {
    let (a, _) = authorizer().await;
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let admin = headers(&[("authorization", "admin-token")]);
    let logs_admin = headers(&[("authorization", "bearer logs-admin-token")]);
    let user = headers(&[("authorization", "user-token")]);
    assert_eq!(a.gateway(&admin, &[]).await, Ok(()));
    assert_eq!(a.gateway(&logs_admin, &ids(&["anything"])).await, Ok(()));
    assert_eq!(a.gateway(&user, &[]).await, Err(Denial::NotFound));
    assert_eq!(a.gateway(&user, &ids(&[ALLOWED])).await, Ok(()));
    assert_eq!(a.gateway(&user, &ids(&[SERVICE])).await, Ok(()));
    assert!(a.gateway(&user, &ids(&[ALLOWED, FORBIDDEN])).await.is_err());
    assert!(a.gateway(&user, &ids(&["x"])).await.is_err());
    let cookie_only = headers(&[("cookie", "authorization=admin-token")]);
    assert_eq!(a.gateway(&cookie_only, &[]).await, Err(Denial::NoToken));
}

#[tokio::test]
async fn none_mode_allows_everything_but_bad_guids() {
    let a = Authorizer::new(&AuthMode::None).expect("authorizer");
    assert_eq!(a.firehose(&HeaderMap::new()).await, Ok(()));
    assert_eq!(a.app(&HeaderMap::new(), ALLOWED).await, Ok(()));
    assert_eq!(
        a.app(&HeaderMap::new(), "x").await,
        Err(Denial::InvalidAppId)
    );
    assert_eq!(a.gateway(&HeaderMap::new(), &[]).await, Ok(()));
}

#[test]
fn guid_and_form_escaping() {
    assert!(is_guid(ALLOWED));
    assert!(is_guid("ABCDEF01-2222-3333-4444-555555555555"));
    assert!(!is_guid("11111111-2222-3333-4444-55555555555"));
    assert!(!is_guid("11111111x2222-3333-4444-555555555555"));
    assert!(!is_guid("g1111111-2222-3333-4444-555555555555"));
    assert_eq!(form_escape("a b+c/é"), "a+b%2Bc%2F%C3%A9");
}

#[tokio::test]
async fn cached_admin_answers_end_at_the_token_expiry_uaa_reports() {
    let (a, calls) = authorizer().await;
    let exp = (unix_now() + 2.0).ceil();
    let h = headers(&[("authorization", &format!("bearer exp-{exp}"))]);
    assert_eq!(a.firehose(&h).await, Ok(()));
    assert_eq!(a.firehose(&h).await, Ok(()));
    assert_eq!(calls.uaa.load(Ordering::SeqCst), 1, "cached while valid");
    // Past `exp` (well inside the 30 s TTL) the cached answer is gone and UAA,
    // asked again, refuses the token.
    tokio::time::sleep(std::time::Duration::from_secs_f64(exp - unix_now() + 0.2)).await;
    assert_eq!(a.firehose(&h).await, Err(Denial::InvalidToken));
    assert_eq!(calls.uaa.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn cached_app_answers_end_at_the_jwt_expiry_and_expired_jwts_are_refused_locally() {
    let (a, calls) = authorizer().await;
    let exp = (unix_now() + 2.0).ceil();
    let token = jwt(exp);
    let h = headers(&[("authorization", &format!("bearer {token}"))]);
    assert_eq!(a.app(&h, ALLOWED).await, Ok(()));
    assert_eq!(a.app(&h, ALLOWED).await, Ok(()));
    assert_eq!(calls.cc.load(Ordering::SeqCst), 1, "cached while valid");
    tokio::time::sleep(std::time::Duration::from_secs_f64(exp - unix_now() + 0.2)).await;
    assert_eq!(a.app(&h, ALLOWED).await, Err(Denial::InvalidToken));
    assert_eq!(
        calls.cc.load(Ordering::SeqCst),
        1,
        "a token that says it expired is refused without asking"
    );
    let old = headers(&[(
        "authorization",
        &format!("bearer {}", jwt(unix_now() - 60.0)),
    )]);
    assert_eq!(a.firehose(&old).await, Err(Denial::InvalidToken));
    assert_eq!(calls.uaa.load(Ordering::SeqCst), 0);
}

/// Captures this thread's log lines.
#[derive(Clone, Default)]
struct Captured(Arc<parking_lot::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn failures_to_reach_uaa_are_logged_once_per_interval_not_per_request() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let settings = UaaAuth::plain("http://127.0.0.1:1", "http://127.0.0.1:1");
    let a = Authorizer::new(&AuthMode::Uaa(Box::new(settings))).expect("authorizer");
    for i in 0..50 {
        let h = headers(&[("authorization", &format!("bearer anonymous-{i}"))]);
        assert_eq!(a.firehose(&h).await, Err(Denial::InvalidToken));
        assert!(a.app(&h, ALLOWED).await.is_err());
    }
    let text = String::from_utf8_lossy(&captured.0.lock()).into_owned();
    let count = |needle: &str| text.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(count("UAA check_token failed"), 1, "{text}");
    assert_eq!(
        count("cloud controller log access check failed"),
        1,
        "{text}"
    );
}
