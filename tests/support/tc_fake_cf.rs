//! A fake Cloud Foundry control plane for traffic-controller tests: the Cloud
//! Controller root document, UAA `/oauth/token` and `/check_token`, and Cloud
//! Controller `/internal/v4/log_access/{guid}`. Plain HTTP on 127.0.0.1.
//!
//! Tokens: client `admin` gets `admin-token` (scope `doppler.firehose`), any
//! other client gets `user-token` (scope `openid`), which Cloud Controller
//! lets read [`ALLOWED_APP`] only; [`FORBIDDEN_APP`] answers 403.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

pub const ALLOWED_APP: &str = "11111111-2222-3333-4444-555555555555";
pub const FORBIDDEN_APP: &str = "22222222-2222-3333-4444-555555555555";
pub const UAA_CLIENT: &str = "doppler";
pub const UAA_SECRET: &str = "secret";

#[derive(Clone, Default)]
pub struct Links {
    pub logging: String,
    pub log_stream: String,
}

pub struct FakeCf {
    pub addr: SocketAddr,
    /// (method, path, authorization header) of every request.
    pub requests: Arc<Mutex<Vec<(String, String, String)>>>,
    pub links: Arc<Mutex<Links>>,
}

impl FakeCf {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_links(&self, logging: &str, log_stream: &str) {
        *self.links.lock().unwrap() = Links {
            logging: logging.to_owned(),
            log_stream: log_stream.to_owned(),
        };
    }

    pub fn authorizations(&self, path_prefix: &str) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, p, _)| p.starts_with(path_prefix))
            .map(|(_, _, a)| a.clone())
            .collect()
    }
}

pub async fn start() -> FakeCf {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let links = Arc::new(Mutex::new(Links::default()));
    let (r, l) = (requests.clone(), links.clone());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (r, l) = (r.clone(), l.clone());
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(move |req| handle(req, addr, r.clone(), l.clone()));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    FakeCf {
        addr,
        requests,
        links,
    }
}

fn reply(
    status: u16,
    content_type: &str,
    body: String,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    Ok(http::Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .unwrap())
}

fn form_value(form: &str, key: &str) -> Option<String> {
    form.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| {
            v.replace('+', " ")
                .replace("%2B", "+")
                .replace("%2F", "/")
                .replace("%3D", "=")
        })
    })
}

async fn handle(
    req: http::Request<Incoming>,
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<(String, String, String)>>>,
    links: Arc<Mutex<Links>>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    requests
        .lock()
        .unwrap()
        .push((method.clone(), path.clone(), auth.clone()));
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let form = String::from_utf8_lossy(&body).into_owned();
    let base = format!("http://{addr}");
    let json = "application/json";
    match (method.as_str(), path.as_str()) {
        ("GET", "/") => {
            let l = links.lock().unwrap().clone();
            let doc = serde_json::json!({
                "links": {
                    "self": {"href": base},
                    "cloud_controller_v2": {"href": format!("{base}/v2"), "meta": {"version": "2.200.0"}},
                    "cloud_controller_v3": {"href": format!("{base}/v3"), "meta": {"version": "3.150.0"}},
                    "network_policy_v0": null,
                    "network_policy_v1": null,
                    "login": {"href": base},
                    "uaa": {"href": base},
                    "credhub": null,
                    "routing": null,
                    "logging": {"href": l.logging},
                    "log_cache": {"href": base},
                    "log_stream": {"href": l.log_stream},
                    "app_ssh": null,
                }
            });
            reply(200, json, doc.to_string())
        }
        ("GET", "/v2/info") => reply(
            200,
            json,
            serde_json::json!({
                "authorization_endpoint": base,
                "token_endpoint": base,
                "doppler_logging_endpoint": links.lock().unwrap().logging,
                "api_version": "2.200.0",
            })
            .to_string(),
        ),
        ("POST", "/oauth/token") => {
            let client = form_value(&form, "client_id").unwrap_or_default();
            let token = if client == "admin" {
                "admin-token"
            } else {
                "user-token"
            };
            reply(
                200,
                json,
                serde_json::json!({
                    "access_token": token,
                    "token_type": "bearer",
                    "refresh_token": format!("refresh-{token}"),
                    "expires_in": 600,
                    "scope": "openid",
                    "jti": "x",
                })
                .to_string(),
            )
        }
        ("POST", "/check_token") => {
            use base64::Engine as _;
            let expected = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{UAA_CLIENT}:{UAA_SECRET}"))
            );
            if auth != expected {
                return reply(401, json, "{\"error\":\"unauthorized\"}".into());
            }
            match form_value(&form, "token").as_deref() {
                Some("admin-token") => {
                    reply(200, json, "{\"scope\":[\"doppler.firehose\"]}".into())
                }
                Some("user-token") => reply(200, json, "{\"scope\":[\"openid\"]}".into()),
                _ => reply(400, json, "{\"error\":\"invalid_token\"}".into()),
            }
        }
        ("GET", p) if p.starts_with("/internal/v4/log_access/") => {
            let guid = &p["/internal/v4/log_access/".len()..];
            if auth != "bearer user-token" && auth != "bearer admin-token" {
                return reply(401, json, "{}".into());
            }
            match guid {
                ALLOWED_APP => reply(200, json, "{}".into()),
                FORBIDDEN_APP => reply(403, json, "{}".into()),
                _ => reply(404, json, "{}".into()),
            }
        }
        _ => reply(404, "text/plain", "not found".into()),
    }
}
