//! Log Cache authorisation against a real (test) UAA and Cloud Controller on
//! 127.0.0.1: JWTs signed here with the test-only keys in `tests/data/`.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use log_cache::auth::{Access, Auth, AuthError, AuthMode, Denied, UaaConfig};
use parking_lot::Mutex;
use plumbing::metrics::Registry;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use tokio::net::TcpListener;

const A_KEY: &str = include_str!("data/uaa-a.key.pem");
const A_PUB: &str = include_str!("data/uaa-a.pub.pem");
const B_KEY: &str = include_str!("data/uaa-b.key.pem");
const B_PUB: &str = include_str!("data/uaa-b.pub.pem");
const HS_SECRET: &str = "legacy-shared-secret";

// ---------------------------------------------------------------- tokens

fn pair(pem: &str) -> RsaKeyPair {
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    RsaKeyPair::from_pkcs8(&STANDARD.decode(b64).unwrap()).unwrap()
}

fn b64(v: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(v)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An RS256 token for `user` with `scopes`, valid for `ttl_secs` (negative: expired).
fn rs256(key: &str, kid: &str, user: &str, scopes: &[&str], ttl_secs: i64) -> String {
    let header = format!(r#"{{"alg":"RS256","kid":"{kid}","typ":"JWT"}}"#);
    let payload = serde_json::json!({
        "user_name": user,
        "scope": scopes,
        "exp": unix_now() as i64 + ttl_secs,
    })
    .to_string();
    let signed = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let kp = pair(key);
    let mut sig = vec![0; kp.public().modulus_len()];
    kp.sign(
        &RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signed.as_bytes(),
        &mut sig,
    )
    .unwrap();
    format!("{signed}.{}", b64(&sig))
}

fn user_token(user: &str) -> String {
    rs256(
        A_KEY,
        "key-1",
        user,
        &["openid", "cloud_controller.read"],
        3600,
    )
}

fn hs256(kid: &str, user: &str, scopes: &[&str]) -> String {
    let header = format!(r#"{{"alg":"HS256","kid":"{kid}"}}"#);
    let payload = serde_json::json!({"user_name": user, "scope": scopes, "exp": unix_now() + 3600})
        .to_string();
    let signed = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, HS_SECRET.as_bytes());
    format!(
        "{signed}.{}",
        b64(ring::hmac::sign(&k, signed.as_bytes()).as_ref())
    )
}

fn auth_headers(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("bearer {token}")).unwrap(),
    );
    h
}

// ---------------------------------------------------------------- servers

type Handler = Arc<dyn Fn(Request<Incoming>) -> Response<Full<Bytes>> + Send + Sync>;

async fn serve(handler: Handler, tls: Option<Arc<rustls::ServerConfig>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let resp = handler(req);
                    async move { Ok::<_, Infallible>(resp) }
                });
                let builder = hyper::server::conn::http1::Builder::new();
                match tls {
                    Some(cfg) => {
                        if let Ok(s) = tokio_rustls::TlsAcceptor::from(cfg).accept(tcp).await {
                            let _ = builder.serve_connection(TokioIo::new(s), svc).await;
                        }
                    }
                    None => {
                        let _ = builder.serve_connection(TokioIo::new(tcp), svc).await;
                    }
                }
            });
        }
    });
    addr
}

fn respond(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

/// The test UAA: `/token_keys` with a replaceable key list.
#[derive(Clone)]
struct Uaa {
    addr: SocketAddr,
    keys: Arc<Mutex<serde_json::Value>>,
    hits: Arc<Mutex<Vec<Option<String>>>>,
}

fn rsa_jwk(kid: &str, public_pem: &str) -> serde_json::Value {
    // UAA's shape: PEM `value` plus JWK fields; `n`/`e` left out here so that
    // the PEM path is exercised end to end (the unit tests cover n/e).
    serde_json::json!({"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid, "value": public_pem})
}

impl Uaa {
    async fn start(keys: serde_json::Value) -> Uaa {
        let keys = Arc::new(Mutex::new(keys));
        let hits = Arc::new(Mutex::new(Vec::new()));
        let (k, h) = (keys.clone(), hits.clone());
        let handler: Handler = Arc::new(move |req| {
            let auth = req
                .headers()
                .get(http::header::AUTHORIZATION)
                .map(|v| v.to_str().unwrap().to_owned());
            if req.uri().path() != "/token_keys" {
                return respond(StatusCode::NOT_FOUND, String::new());
            }
            h.lock().push(auth);
            respond(
                StatusCode::OK,
                serde_json::json!({"keys": k.lock().clone()}).to_string(),
            )
        });
        Uaa {
            addr: serve(handler, None).await,
            keys,
            hits,
        }
    }

    async fn standard() -> Uaa {
        Uaa::start(serde_json::json!([
            rsa_jwk("key-1", A_PUB),
            {"kty": "MAC", "alg": "HS256", "kid": "legacy", "value": HS_SECRET},
        ]))
        .await
    }

    fn hits(&self) -> usize {
        self.hits.lock().len()
    }
}

/// One user's resources in the test Cloud Controller.
#[derive(Default, Clone)]
struct Perms {
    apps: Vec<String>,
    services: Vec<String>,
}

/// The test Cloud Controller: answers by the bearer token it is sent.
#[derive(Clone)]
struct Cc {
    addr: SocketAddr,
    /// `bearer <token>` → resources.
    users: Arc<Mutex<HashMap<String, Perms>>>,
    /// Every request: path and query, Authorization header.
    log: Arc<Mutex<Vec<(String, String)>>>,
}

/// Resources per listing page in the test CC (small, to force pagination).
const CC_PAGE: usize = 2;

fn cc_handler(
    users: Arc<Mutex<HashMap<String, Perms>>>,
    log: Arc<Mutex<Vec<(String, String)>>>,
) -> Handler {
    Arc::new(move |req| {
        let auth = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let pq = req.uri().path_and_query().unwrap().as_str().to_owned();
        log.lock().push((pq.clone(), auth.clone()));
        let Some(perms) = users.lock().get(&auth).cloned() else {
            return respond(StatusCode::UNAUTHORIZED, r#"{"errors":[]}"#.into());
        };
        let path = req.uri().path();
        let one = |list: &[String], id: &str| {
            if list.iter().any(|x| x == id) {
                respond(StatusCode::OK, serde_json::json!({"guid": id}).to_string())
            } else {
                respond(StatusCode::NOT_FOUND, r#"{"errors":[]}"#.into())
            }
        };
        let page = |kind: &str, list: &[String]| {
            let n: usize = req
                .uri()
                .query()
                .unwrap_or("")
                .split('&')
                .find_map(|kv| kv.strip_prefix("page="))
                .map(|p| p.parse().unwrap())
                .unwrap_or(1);
            let chunk: Vec<_> = list
                .iter()
                .skip((n - 1) * CC_PAGE)
                .take(CC_PAGE)
                .map(|g| serde_json::json!({"guid": g, "name": format!("name-{g}")}))
                .collect();
            // A real CC writes its public URL; point it elsewhere to prove
            // only the path and query are used.
            let next = if n * CC_PAGE < list.len() {
                serde_json::json!({"href": format!("https://api.elsewhere.invalid/v3/{kind}?page={}&per_page=1000", n + 1)})
            } else {
                serde_json::Value::Null
            };
            respond(
                StatusCode::OK,
                serde_json::json!({
                    "pagination": {"total_results": list.len(), "next": next},
                    "resources": chunk,
                })
                .to_string(),
            )
        };
        if let Some(id) = path.strip_prefix("/v3/apps/") {
            one(&perms.apps, id)
        } else if let Some(id) = path.strip_prefix("/v3/service_instances/") {
            one(&perms.services, id)
        } else if path == "/v3/apps" {
            page("apps", &perms.apps)
        } else if path == "/v3/service_instances" {
            page("service_instances", &perms.services)
        } else {
            respond(StatusCode::NOT_FOUND, String::new())
        }
    })
}

impl Cc {
    async fn start_with(tls: Option<Arc<rustls::ServerConfig>>) -> Cc {
        let users = Arc::new(Mutex::new(HashMap::new()));
        let log = Arc::new(Mutex::new(Vec::new()));
        Cc {
            addr: serve(cc_handler(users.clone(), log.clone()), tls).await,
            users,
            log,
        }
    }

    async fn start() -> Cc {
        Cc::start_with(None).await
    }

    fn grant(&self, token: &str, apps: &[&str], services: &[&str]) {
        self.users.lock().insert(
            format!("bearer {token}"),
            Perms {
                apps: apps.iter().map(|s| s.to_string()).collect(),
                services: services.iter().map(|s| s.to_string()).collect(),
            },
        );
    }

    fn hits(&self) -> usize {
        self.log.lock().len()
    }

    fn paths(&self) -> Vec<String> {
        self.log.lock().iter().map(|(p, _)| p.clone()).collect()
    }
}

// ---------------------------------------------------------------- harness

struct Env {
    uaa: Uaa,
    cc: Cc,
    auth: Auth,
    registry: Registry,
}

fn config(uaa: &Uaa, cc_addr: SocketAddr) -> UaaConfig {
    let mut cfg = UaaConfig::new(format!("http://{}", uaa.addr), format!("http://{cc_addr}"));
    cfg.request_timeout = Duration::from_secs(10);
    cfg
}

async fn env_with(tweak: impl FnOnce(&mut UaaConfig)) -> Env {
    let uaa = Uaa::standard().await;
    let cc = Cc::start().await;
    let mut cfg = config(&uaa, cc.addr);
    tweak(&mut cfg);
    let registry = Registry::new();
    let auth = Auth::new(AuthMode::Uaa(cfg), &registry).unwrap();
    auth.refresh_keys().await.unwrap();
    Env {
        uaa,
        cc,
        auth,
        registry,
    }
}

async fn env() -> Env {
    env_with(|_| {}).await
}

impl Env {
    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.registry.counter_value(name, labels).unwrap_or(0)
    }

    fn denied(&self, reason: &str) -> u64 {
        self.counter("log_cache_auth_denied", &[("reason", reason)])
    }
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn none_mode_allows_everything() {
    let auth = Auth::new(AuthMode::None, &Registry::new()).unwrap();
    auth.refresh_keys().await.unwrap();
    let empty = HeaderMap::new();
    assert_eq!(auth.read(&empty, "anything").await, Ok(()));
    assert_eq!(auth.meta(&empty).await, Ok(Access::All));
    assert_eq!(auth.query(&empty, &["x".into()]).await, Ok(()));
    assert_eq!(auth.query(&empty, &[]).await, Err(Denied::NoSourceIds));
}

#[tokio::test]
async fn admin_scopes_read_every_source_without_cloud_controller() {
    let e = env().await;
    for scope in ["doppler.firehose", "logs.admin"] {
        let h = auth_headers(&rs256(A_KEY, "key-1", "admin", &["openid", scope], 3600));
        assert_eq!(e.auth.read(&h, "doppler").await, Ok(()), "{scope}");
        assert_eq!(e.auth.read(&h, "some-app-guid").await, Ok(()));
        assert_eq!(e.auth.meta(&h).await, Ok(Access::All));
        assert_eq!(
            e.auth.query(&h, &["a".into(), "gorouter".into()]).await,
            Ok(())
        );
    }
    // An HS256 admin token (UAA's symmetric keys) works as well.
    let h = auth_headers(&hs256("legacy", "admin", &["logs.admin"]));
    assert_eq!(e.auth.read(&h, "doppler").await, Ok(()));
    assert_eq!(e.cc.hits(), 0, "admins never reach Cloud Controller");
    assert_eq!(e.counter("log_cache_auth_allowed", &[("via", "admin")]), 9);
}

#[tokio::test]
async fn a_user_reads_only_what_cloud_controller_allows_with_their_own_token() {
    let e = env().await;
    let alice = user_token("alice");
    let bob = user_token("bob");
    e.cc.grant(&alice, &["app-a"], &["svc-a"]);
    e.cc.grant(&bob, &["app-b"], &[]);
    let h = auth_headers(&alice);
    assert_eq!(e.auth.read(&h, "app-a").await, Ok(()));
    assert_eq!(e.auth.read(&h, "app-b").await, Err(Denied::NotAllowed));
    assert_eq!(e.auth.read(&h, "doppler").await, Err(Denied::NotAllowed));
    assert_eq!(e.auth.read(&auth_headers(&bob), "app-b").await, Ok(()));
    let log = e.cc.log.lock().clone();
    assert_eq!(log[0].0, "/v3/apps/app-a");
    assert_eq!(
        log[0].1,
        format!("bearer {alice}"),
        "Cloud Controller is asked with the user's token"
    );
    // app-b for alice: apps then service instances, both 404.
    assert_eq!(log[1].0, "/v3/apps/app-b");
    assert_eq!(log[2].0, "/v3/service_instances/app-b");
    assert_eq!(e.denied("not_allowed"), 2);
}

#[tokio::test]
async fn a_service_instance_is_allowed_through_its_own_path() {
    let e = env().await;
    let t = user_token("carol");
    e.cc.grant(&t, &[], &["svc-1"]);
    let h = auth_headers(&t);
    assert_eq!(e.auth.read(&h, "svc-1").await, Ok(()));
    assert_eq!(
        e.cc.paths(),
        vec!["/v3/apps/svc-1", "/v3/service_instances/svc-1"]
    );
}

#[tokio::test]
async fn source_ids_are_one_encoded_path_segment() {
    let e = env().await;
    let t = user_token("dave");
    e.cc.grant(&t, &["app-d"], &[]);
    let h = auth_headers(&t);
    assert_eq!(
        e.auth.read(&h, "../apps?x=1").await,
        Err(Denied::NotAllowed)
    );
    assert_eq!(e.cc.paths()[0], "/v3/apps/..%2Fapps%3Fx%3D1");
}

#[tokio::test]
async fn expired_badly_signed_and_missing_tokens_are_refused_locally() {
    let e = env().await;
    let expired = rs256(A_KEY, "key-1", "eve", &["logs.admin"], -5);
    let forged = rs256(B_KEY, "key-1", "eve", &["logs.admin"], 3600);
    let none_alg = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","kid":"key-1"}"#),
        b64(br#"{"scope":["logs.admin"],"exp":9999999999}"#)
    );
    // HS256 "signed" with the RSA public key: algorithm confusion.
    let confused = {
        let header = b64(br#"{"alg":"HS256","kid":"key-1"}"#);
        let payload = b64(br#"{"scope":["logs.admin"],"exp":9999999999}"#);
        let signed = format!("{header}.{payload}");
        let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, A_PUB.as_bytes());
        format!(
            "{signed}.{}",
            b64(ring::hmac::sign(&k, signed.as_bytes()).as_ref())
        )
    };
    assert_eq!(
        e.auth.read(&auth_headers(&expired), "x").await,
        Err(Denied::ExpiredToken)
    );
    for t in [&forged, &none_alg, &confused, &"garbage".to_owned()] {
        assert_eq!(
            e.auth.read(&auth_headers(t), "x").await,
            Err(Denied::InvalidToken),
            "{t}"
        );
        assert_eq!(
            e.auth.meta(&auth_headers(t)).await,
            Err(Denied::InvalidToken)
        );
    }
    let empty = HeaderMap::new();
    assert_eq!(e.auth.read(&empty, "x").await, Err(Denied::MissingToken));
    assert_eq!(e.auth.meta(&empty).await, Err(Denied::MissingToken));
    assert_eq!(
        e.auth.query(&empty, &["x".into()]).await,
        Err(Denied::MissingToken)
    );
    assert_eq!(
        e.auth.query(&empty, &[]).await,
        Err(Denied::MissingToken),
        "upstream checks the header before the source ids"
    );
    let mut blank = HeaderMap::new();
    blank.insert(http::header::AUTHORIZATION, HeaderValue::from_static("  "));
    assert_eq!(e.auth.read(&blank, "x").await, Err(Denied::MissingToken));
    assert_eq!(e.cc.hits(), 0);
    assert_eq!(e.denied("expired_token"), 1);
    assert_eq!(e.denied("invalid_token"), 8);
    assert_eq!(e.denied("missing_token"), 5);
}

#[tokio::test]
async fn an_unknown_kid_triggers_one_rate_limited_refresh() {
    let e = env().await;
    assert_eq!(e.uaa.hits(), 1, "keys fetched at start");
    // UAA starts signing with a new key the proxy has not seen.
    e.uaa
        .keys
        .lock()
        .as_array_mut()
        .unwrap()
        .push(rsa_jwk("key-2", B_PUB));
    let t = rs256(B_KEY, "key-2", "admin", &["logs.admin"], 3600);
    assert_eq!(e.auth.read(&auth_headers(&t), "x").await, Ok(()));
    assert_eq!(e.uaa.hits(), 2, "one refresh for the unknown kid");
    assert_eq!(e.auth.read(&auth_headers(&t), "x").await, Ok(()));
    assert_eq!(e.uaa.hits(), 2, "a known kid needs no refresh");

    // A flood of unknown kids and bad signatures within the refresh interval
    // (5 s) costs UAA nothing more.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let auth = e.auth.clone();
        let t = if i % 2 == 0 {
            rs256(A_KEY, &format!("nope-{i}"), "x", &["logs.admin"], 3600)
        } else {
            rs256(B_KEY, "key-1", "x", &["logs.admin"], 3600)
        };
        tasks.push(tokio::spawn(async move {
            auth.read(&auth_headers(&t), "x").await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), Err(Denied::InvalidToken));
    }
    assert_eq!(e.uaa.hits(), 2, "refreshes are rate-limited");
    assert_eq!(
        e.counter(
            "log_cache_auth_uaa_key_refreshes",
            &[("result", "throttled")]
        ),
        40
    );
    assert_eq!(
        e.counter("log_cache_auth_uaa_key_refreshes", &[("result", "ok")]),
        2
    );
}

#[tokio::test]
async fn a_key_rotated_under_the_same_kid_is_picked_up_on_verification_failure() {
    let e = env_with(|c| c.key_refresh_interval = Duration::from_millis(50)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // UAA's key was deleted and regenerated with the default kid.
    *e.uaa.keys.lock() = serde_json::json!([rsa_jwk("key-1", B_PUB)]);
    let t = rs256(B_KEY, "key-1", "admin", &["logs.admin"], 3600);
    assert_eq!(e.auth.read(&auth_headers(&t), "x").await, Ok(()));
    assert_eq!(e.uaa.hits(), 2);
    // Tokens of the old key are refused now (UAA dropped it).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let old = rs256(A_KEY, "key-1", "admin", &["logs.admin"], 3600);
    assert_eq!(
        e.auth.read(&auth_headers(&old), "x").await,
        Err(Denied::InvalidToken)
    );
}

#[tokio::test]
async fn uaa_is_asked_with_basic_auth_when_a_client_is_configured() {
    let e = env_with(|c| {
        c.client_id = "doppler".into();
        c.client_secret = "s3cret".into();
    })
    .await;
    let expected = format!("Basic {}", STANDARD.encode("doppler:s3cret"));
    assert_eq!(e.uaa.hits.lock()[0].as_deref(), Some(expected.as_str()));
    let plain = env().await;
    assert_eq!(plain.uaa.hits.lock()[0], None);
}

#[tokio::test]
async fn start_fails_loudly_when_uaa_is_unreachable() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let auth = Auth::new(
        AuthMode::Uaa(UaaConfig::new(
            format!("http://{closed}"),
            format!("http://{closed}"),
        )),
        &Registry::new(),
    )
    .unwrap();
    assert!(matches!(auth.refresh_keys().await, Err(AuthError::Keys(_))));
}

#[tokio::test]
async fn cloud_controller_down_means_denied() {
    let uaa = Uaa::standard().await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let registry = Registry::new();
    let auth = Auth::new(AuthMode::Uaa(config(&uaa, closed)), &registry).unwrap();
    auth.refresh_keys().await.unwrap();
    let h = auth_headers(&user_token("frank"));
    assert_eq!(auth.read(&h, "app").await, Err(Denied::Upstream));
    assert_eq!(auth.meta(&h).await, Err(Denied::Upstream));
    assert_eq!(auth.query(&h, &["app".into()]).await, Err(Denied::Upstream));
    assert!(
        registry
            .counter_value("log_cache_auth_cc_failures", &[])
            .unwrap()
            >= 3
    );
    assert_eq!(
        registry.counter_value("log_cache_auth_denied", &[("reason", "upstream_error")]),
        Some(3)
    );
}

#[tokio::test]
async fn answers_are_cached_briefly_and_never_past_the_token() {
    let e = env().await;
    let t = user_token("gina");
    e.cc.grant(&t, &["app-g"], &[]);
    let h = auth_headers(&t);
    assert_eq!(e.auth.read(&h, "app-g").await, Ok(()));
    assert_eq!(e.cc.hits(), 1);
    assert_eq!(e.auth.read(&h, "app-g").await, Ok(()));
    assert_eq!(
        e.auth.query(&h, &["app-g".into(), "app-g".into()]).await,
        Ok(())
    );
    assert_eq!(e.cc.hits(), 1, "served from the cache");
    assert_eq!(e.counter("log_cache_auth_cache_hits", &[]), 2);
    // A refusal is not cached: revoked... and granted access shows at once.
    assert_eq!(e.auth.read(&h, "app-new").await, Err(Denied::NotAllowed));
    e.cc.grant(&t, &["app-g", "app-new"], &[]);
    assert_eq!(e.auth.read(&h, "app-new").await, Ok(()));

    // A token expiring in 2 s: allowed and cached, then refused once expired
    // (locally, without asking Cloud Controller), although the cache TTL is 1 m.
    let short = rs256(A_KEY, "key-1", "gina", &["openid"], 2);
    e.cc.grant(&short, &["app-g"], &[]);
    let hs = auth_headers(&short);
    assert_eq!(e.auth.read(&hs, "app-g").await, Ok(()));
    let before = e.cc.hits();
    tokio::time::sleep(Duration::from_millis(3200)).await;
    assert_eq!(e.auth.read(&hs, "app-g").await, Err(Denied::ExpiredToken));
    assert_eq!(e.cc.hits(), before);
}

#[tokio::test]
async fn cached_answers_expire_after_the_cache_interval() {
    let e = env_with(|c| c.cache_expiration = Duration::from_millis(300)).await;
    let t = user_token("hank");
    e.cc.grant(&t, &["app-h"], &[]);
    let h = auth_headers(&t);
    assert_eq!(e.auth.read(&h, "app-h").await, Ok(()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(e.auth.read(&h, "app-h").await, Ok(()));
    assert_eq!(
        e.cc.hits(),
        2,
        "asked again after CACHE_EXPIRATION_INTERVAL"
    );
}

#[tokio::test]
async fn a_full_cache_is_bounded_and_counts_evictions() {
    let e = env_with(|c| c.cache_capacity = 4).await;
    let t = user_token("ivy");
    let apps: Vec<String> = (0..10).map(|i| format!("app-{i}")).collect();
    let refs: Vec<&str> = apps.iter().map(String::as_str).collect();
    e.cc.grant(&t, &refs, &[]);
    let h = auth_headers(&t);
    for a in &apps {
        assert_eq!(e.auth.read(&h, a).await, Ok(()));
    }
    assert!(e.counter("log_cache_auth_cache_evictions", &[]) >= 4);
    let held = e
        .registry
        .gauge_value("log_cache_auth_cache_entries", &[("cache", "read")])
        .unwrap();
    assert!((1..=4).contains(&held), "{held}");
}

#[tokio::test]
async fn meta_is_filtered_to_the_users_apps_and_service_instances_across_pages() {
    let e = env().await;
    let t = user_token("jane");
    e.cc.grant(
        &t,
        &["app-1", "app-2", "app-3", "app-4", "app-5"],
        &["svc-1", "svc-2", "svc-3"],
    );
    let h = auth_headers(&t);
    assert_eq!(
        e.auth.meta(&h).await,
        Ok(Access::Sources(set(&[
            "app-1", "app-2", "app-3", "app-4", "app-5", "svc-1", "svc-2", "svc-3"
        ])))
    );
    assert_eq!(
        e.cc.paths(),
        vec![
            "/v3/apps?per_page=1000",
            "/v3/apps?page=2&per_page=1000",
            "/v3/apps?page=3&per_page=1000",
            "/v3/service_instances?per_page=1000",
            "/v3/service_instances?page=2&per_page=1000",
        ],
        "every page, from our Cloud Controller (never the href's host)"
    );
    let hits = e.cc.hits();
    assert!(matches!(e.auth.meta(&h).await, Ok(Access::Sources(s)) if s.len() == 8));
    assert_eq!(
        e.auth.read(&h, "svc-3").await,
        Ok(()),
        "listed in the cached meta set"
    );
    assert_eq!(e.cc.hits(), hits, "meta and the read came from the cache");

    let nobody = user_token("kim");
    e.cc.grant(&nobody, &[], &[]);
    assert_eq!(
        e.auth.meta(&auth_headers(&nobody)).await,
        Ok(Access::Sources(BTreeSet::new()))
    );
}

#[tokio::test]
async fn a_query_needs_every_source_id() {
    let e = env().await;
    let t = user_token("lee");
    e.cc.grant(&t, &["app-1", "app-2"], &[]);
    let h = auth_headers(&t);
    assert_eq!(e.auth.query(&h, &[]).await, Err(Denied::NoSourceIds));
    assert_eq!(
        e.auth.query(&h, &["app-1".into(), "app-2".into()]).await,
        Ok(())
    );
    assert_eq!(
        e.auth.query(&h, &["app-1".into(), "app-3".into()]).await,
        Err(Denied::NotAllowed)
    );
    assert_eq!(e.denied("no_source_ids"), 1);
}

#[tokio::test]
async fn tls_to_cloud_controller_uses_the_ca_and_common_name() {
    let dir = std::env::temp_dir().join(format!("lc-auth-tls-{}", std::process::id()));
    let pki = plumbing::tls::dev::DevPki::generate_named(&dir, &["cc.internal"]).unwrap();
    let id = pki.identity("cc.internal").unwrap();
    let label = std::path::Path::new("cc.internal");
    let server = rustls::ServerConfig::builder_with_provider(plumbing::tls::provider(None))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            plumbing::tls::parse_certs(id.cert_pem.as_bytes(), label).unwrap(),
            plumbing::tls::parse_key(id.key_pem.as_bytes(), label).unwrap(),
        )
        .unwrap();
    let cc = Cc::start_with(Some(Arc::new(server))).await;
    let uaa = Uaa::standard().await;
    let t = user_token("mia");
    cc.grant(&t, &["app-m"], &[]);
    let build = |name: Option<&str>, skip: bool, ca: bool| {
        let mut cfg = config(&uaa, cc.addr);
        cfg.capi_addr = format!("https://{}", cc.addr);
        cfg.capi_ca = ca.then(|| pki.ca_path());
        cfg.capi_common_name = name.map(str::to_owned);
        cfg.skip_cert_verify = skip;
        Auth::new(AuthMode::Uaa(cfg), &Registry::new())
    };
    let h = auth_headers(&t);
    for (name, skip, ca, want) in [
        (Some("cc.internal"), false, true, Ok(())),
        (Some("wrong.internal"), false, true, Err(Denied::Upstream)),
        (Some("wrong.internal"), true, false, Ok(())),
    ] {
        let auth = build(name, skip, ca).unwrap();
        auth.refresh_keys().await.unwrap();
        assert_eq!(auth.read(&h, "app-m").await, want, "{name:?} skip={skip}");
    }
    assert!(matches!(
        build(None, false, false),
        Err(AuthError::NoCa { what: "CAPI", .. })
    ));
    let mut cfg = config(&uaa, cc.addr);
    cfg.capi_ca = Some(dir.join("missing.crt"));
    assert!(matches!(
        Auth::new(AuthMode::Uaa(cfg), &Registry::new()),
        Err(AuthError::Tls { what: "CAPI", .. })
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------- through the HTTP API

/// GET through a node's HTTP API with an optional token: status and body.
async fn api_get(base: &str, path: &str, token: Option<&str>) -> (u16, String) {
    use http_body_util::{BodyExt, Empty};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<Bytes>>();
    let mut req = Request::get(format!("{base}{path}"));
    if let Some(t) = token {
        req = req.header("Authorization", format!("bearer {t}"));
    }
    let resp = client
        .request(req.body(Empty::new()).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_api_in_uaa_mode_answers_404_to_every_refusal() {
    let uaa = Uaa::standard().await;
    let cc = Cc::start().await;
    let alice = user_token("alice");
    cc.grant(&alice, &["app-a"], &[]);
    let admin = rs256(A_KEY, "key-1", "ops", &["doppler.firehose"], 600);

    let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", http.local_addr().unwrap());
    let grpc_url = format!("http://{}", grpc.local_addr().unwrap());
    let mut config = log_cache::Config::local(16 << 20);
    config.auth = AuthMode::Uaa(self::config(&uaa, cc.addr));
    let shutdown = plumbing::shutdown::Shutdown::new();
    tokio::spawn(log_cache::run(
        config,
        log_cache::Listeners {
            grpc,
            gateway: Some(http),
            admin: None,
            syslog: None,
        },
        shutdown.clone(),
    ));
    // Two sources, written over gRPC (trusted, as upstream's port 8080).
    let mut ingress = loop {
        match envelope_proto::logcache_v1::ingress_client::IngressClient::connect(grpc_url.clone())
            .await
        {
            Ok(c) => break c,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let env = |source: &str| envelope_proto::loggregator_v2::Envelope {
        timestamp: now - 1_000_000_000,
        source_id: source.into(),
        message: Some(envelope_proto::loggregator_v2::envelope::Message::Log(
            envelope_proto::loggregator_v2::Log {
                payload: Bytes::from_static(b"hi"),
                r#type: 0,
            },
        )),
        ..Default::default()
    };
    ingress
        .send(envelope_proto::logcache_v1::SendRequest {
            envelopes: Some(envelope_proto::loggregator_v2::EnvelopeBatch {
                batch: vec![env("app-a"), env("app-b")],
            }),
            local_only: false,
        })
        .await
        .unwrap();

    // Info needs no token.
    let (status, _) = api_get(&base, "/api/v1/info", None).await;
    assert_eq!(status, 200);
    // Alice reads her app, not the other; no token, a forged one: 404 too.
    let (status, body) = api_get(&base, "/api/v1/read/app-a", Some(&alice)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"source_id\":\"app-a\""), "{body}");
    for (path, token) in [
        ("/api/v1/read/app-b", Some(alice.as_str())),
        ("/api/v1/read/app-a", None),
        ("/api/v1/read/app-a", Some("not.a.jwt")),
    ] {
        let (status, body) = api_get(&base, path, token).await;
        assert_eq!(status, 404, "{path} with {token:?}: {body}");
    }
    // Meta is filtered to what the caller may see; an admin sees all.
    let (_, body) = api_get(&base, "/api/v1/meta", Some(&alice)).await;
    let meta: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        meta["meta"].as_object().unwrap().keys().collect::<Vec<_>>(),
        vec!["app-a"]
    );
    let (_, body) = api_get(&base, "/api/v1/meta", Some(&admin)).await;
    let meta: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(meta["meta"].as_object().unwrap().len(), 2);
    // PromQL without source ids: upstream's 400.
    let (status, body) = api_get(&base, "/api/v1/query?query=up", Some(&admin)).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        "{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"query does not request any source_ids\"}\n"
    );
    shutdown.trigger();
}
