//! Authentication and authorisation of consumers (reference §13).
//!
//! Two modes: [`AuthMode::None`] lets every request through (local
//! development, upstream `TRAFFIC_CONTROLLER_DISABLE_ACCESS_CONTROL=true`);
//! [`AuthMode::Uaa`] checks admin access with UAA `POST /check_token` and app
//! access with Cloud Controller `GET /internal/v4/log_access/{guid}`. Positive
//! answers are cached for a short TTL in a bounded cache, never past the
//! token's own expiry (UAA's `exp`, or the JWT's). Failures to reach UAA or
//! Cloud Controller are logged at most once per cause every 10 s, with the
//! count of those left out, so anonymous requests cannot flood the log.

mod cache;
pub(crate) mod token;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::Full;
use plumbing::limited_log::Limiter;

use crate::config::UaaAuth;
use cache::TtlCache;
use plumbing::http_client::{HttpClient, tls_config};

/// How consumers are authorised.
#[derive(Debug, Clone)]
pub enum AuthMode {
    /// No checks at all (`--auth none`, `TRAFFIC_CONTROLLER_DISABLE_ACCESS_CONTROL=true`).
    None,
    /// UAA for admin (firehose) access and Cloud Controller for app access.
    Uaa(Box<UaaAuth>),
}

/// Scope that grants the firehose (the only admin scope the TC accepts).
pub(crate) const FIREHOSE_SCOPE: &str = "doppler.firehose";
/// Additional admin scope accepted on the RLP gateway's `/v2/read`.
pub(crate) const LOGS_ADMIN_SCOPE: &str = "logs.admin";

/// Why a request was refused; the caller maps it to the endpoint's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Denial {
    /// No credential in the request.
    NoToken,
    /// UAA rejected the token, or it lacks the scope; CC answered 401.
    InvalidToken,
    /// The app id is not a GUID.
    InvalidAppId,
    /// Cloud Controller answered 403 or 404.
    NotFound,
    /// Cloud Controller answered something else or could not be reached.
    Upstream(String),
}

/// Errors building the UAA / CC clients.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    /// UAA client TLS.
    #[error("Unable to create UAA HTTP Client: {0}")]
    Uaa(plumbing::http_client::TlsSetupError),
    /// Cloud Controller client TLS.
    #[error("Unable to create CC HTTP Client: {0}")]
    Cc(plumbing::http_client::TlsSetupError),
}

/// The authoriser shared by every request handler.
#[derive(Debug, Clone)]
pub(crate) struct Authorizer {
    inner: Option<Arc<UaaAuthorizer>>,
}

#[derive(Debug)]
struct UaaAuthorizer {
    settings: Box<UaaAuth>,
    uaa: HttpClient,
    cc: HttpClient,
    /// bare token -> scopes (successful `check_token` answers only).
    scopes: TtlCache<String, Arc<Vec<String>>>,
    /// (bare token, app guid) -> allowed.
    apps: TtlCache<(String, String), ()>,
    /// Failures to reach UAA / CC: one line per cause every 10 s.
    log: Limiter,
}

const CACHE_CAPACITY: usize = 10_000;
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(5);
/// At most one log line per cause this often.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

impl Authorizer {
    /// Builds the authoriser for `mode` (loads CA and client certificates).
    pub(crate) fn new(mode: &AuthMode) -> Result<Self, AuthSetupError> {
        let AuthMode::Uaa(settings) = mode else {
            return Ok(Self { inner: None });
        };
        let uaa_tls = tls_config(settings.uaa_ca.as_deref(), None, settings.skip_cert_verify)
            .map_err(AuthSetupError::Uaa)?;
        let cc_cert_key = match (&settings.cc_cert, &settings.cc_key) {
            (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
            _ => None,
        };
        let cc_tls = tls_config(
            settings.cc_ca.as_deref(),
            cc_cert_key,
            settings.skip_cert_verify,
        )
        .map_err(AuthSetupError::Cc)?;
        Ok(Self {
            inner: Some(Arc::new(UaaAuthorizer {
                uaa: HttpClient::new(uaa_tls, None, UPSTREAM_TIMEOUT),
                cc: HttpClient::new(cc_tls, settings.cc_server_name.clone(), UPSTREAM_TIMEOUT),
                scopes: TtlCache::new(settings.cache_ttl, CACHE_CAPACITY),
                apps: TtlCache::new(settings.cache_ttl, CACHE_CAPACITY),
                log: Limiter::new(LOG_INTERVAL),
                settings: settings.clone(),
            })),
        })
    }

    /// Admin access to the firehose: `doppler.firehose` in the token's scopes.
    pub(crate) async fn firehose(&self, headers: &HeaderMap) -> Result<(), Denial> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        let raw = token::from_request(headers).ok_or(Denial::NoToken)?;
        let bare = token::bare(&raw).ok_or(Denial::NoToken)?;
        let scopes = inner.scopes(bare).await.map_err(|_| Denial::InvalidToken)?;
        if scopes.iter().any(|s| s == FIREHOSE_SCOPE) {
            Ok(())
        } else {
            Err(Denial::InvalidToken)
        }
    }

    /// App log access through Cloud Controller (§13.3). The GUID check applies
    /// in every mode.
    pub(crate) async fn app(&self, headers: &HeaderMap, app_id: &str) -> Result<(), Denial> {
        if !is_guid(app_id) {
            return Err(Denial::InvalidAppId);
        }
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        let raw = token::from_request(headers).ok_or(Denial::NoToken)?;
        let bare = token::bare(&raw).ok_or(Denial::NoToken)?;
        inner.log_access(bare, app_id).await
    }

    /// RLP gateway access (§13.4): admin may read anything; otherwise every
    /// source id must be a GUID the token may read. Header only, no cookie.
    pub(crate) async fn gateway(
        &self,
        headers: &HeaderMap,
        source_ids: &[String],
    ) -> Result<(), Denial> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        let raw = token::header_value(headers).ok_or(Denial::NoToken)?;
        let bare = token::bare(raw).ok_or(Denial::NoToken)?;
        if let Ok(scopes) = inner.scopes(bare).await
            && scopes
                .iter()
                .any(|s| s == FIREHOSE_SCOPE || s == LOGS_ADMIN_SCOPE)
        {
            return Ok(());
        }
        if source_ids.is_empty() {
            return Err(Denial::NotFound);
        }
        for id in source_ids {
            if !is_guid(id) {
                return Err(Denial::InvalidAppId);
            }
            if inner.log_access(bare, id).await.is_ok() {
                continue;
            }
            inner.service_instance(bare, id).await?;
        }
        Ok(())
    }
}

impl UaaAuthorizer {
    async fn scopes(&self, bare: &str) -> Result<Arc<Vec<String>>, Denial> {
        if let Some(s) = self.scopes.get(&bare.to_owned()) {
            return Ok(s);
        }
        let jwt_exp = unexpired(bare)?;
        let body = format!("token={}", form_escape(bare));
        let url = format!(
            "{}/check_token",
            self.settings.uaa_url.trim_end_matches('/')
        );
        let basic = base64_basic(&self.settings.client_id, &self.settings.client_secret);
        let req = Request::builder()
            .method(Method::POST)
            .uri(url)
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::AUTHORIZATION, basic)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| Denial::Upstream(e.to_string()))?;
        let resp = self.uaa.send(req).await.map_err(|e| {
            self.log.warn(
                "uaa",
                |suppressed| tracing::warn!(error = %e, suppressed, "UAA check_token failed"),
            );
            Denial::Upstream(e.to_string())
        })?;
        if resp.status != StatusCode::OK {
            return Err(Denial::InvalidToken);
        }
        #[derive(serde::Deserialize)]
        struct CheckToken {
            #[serde(default)]
            scope: Vec<String>,
            /// The token's expiry (Unix seconds), which UAA always reports.
            exp: Option<f64>,
        }
        let parsed: CheckToken = serde_json::from_slice(&resp.body)
            .map_err(|e| Denial::Upstream(format!("bad check_token answer: {e}")))?;
        let not_after = match (parsed.exp.and_then(token::unix_seconds), jwt_exp) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let scopes = Arc::new(parsed.scope);
        self.scopes
            .insert(bare.to_owned(), scopes.clone(), not_after);
        Ok(scopes)
    }

    async fn log_access(&self, bare: &str, guid: &str) -> Result<(), Denial> {
        let key = (bare.to_owned(), guid.to_owned());
        if self.apps.get(&key).is_some() {
            return Ok(());
        }
        let not_after = unexpired(bare)?;
        let Some(cc) = &self.settings.cc_url else {
            return Err(Denial::Upstream(
                "no cloud controller configured".to_owned(),
            ));
        };
        let url = format!("{}/internal/v4/log_access/{guid}", cc.trim_end_matches('/'));
        let status = self.get_with_token(&self.cc, url, bare).await?;
        match status {
            StatusCode::OK => {
                self.apps.insert(key, (), not_after);
                Ok(())
            }
            StatusCode::UNAUTHORIZED => Err(Denial::InvalidToken),
            StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => Err(Denial::NotFound),
            other => Err(Denial::Upstream(format!(
                "cloud controller answered {other}"
            ))),
        }
    }

    async fn service_instance(&self, bare: &str, guid: &str) -> Result<(), Denial> {
        let Some(external) = &self.settings.cc_external_url else {
            return Err(Denial::NotFound);
        };
        let url = format!(
            "{}/v3/service_instances/{guid}",
            external.trim_end_matches('/')
        );
        match self.get_with_token(&self.cc, url, bare).await? {
            StatusCode::OK => {
                let not_after = token::jwt_expiry(bare);
                self.apps
                    .insert((bare.to_owned(), guid.to_owned()), (), not_after);
                Ok(())
            }
            _ => Err(Denial::NotFound),
        }
    }

    async fn get_with_token(
        &self,
        client: &HttpClient,
        url: String,
        bare: &str,
    ) -> Result<StatusCode, Denial> {
        let req = Request::builder()
            .method(Method::GET)
            .uri(url)
            .header(http::header::AUTHORIZATION, format!("bearer {bare}"))
            .body(Full::new(Bytes::new()))
            .map_err(|e| Denial::Upstream(e.to_string()))?;
        match client.send(req).await {
            Ok(r) => Ok(r.status),
            Err(e) => {
                self.log.warn("cc", |suppressed| {
                    tracing::warn!(error = %e, suppressed, "cloud controller log access check failed")
                });
                Err(Denial::Upstream(e.to_string()))
            }
        }
    }
}

/// The token's own expiry if it states one; a token that says it has expired
/// is refused without asking UAA or Cloud Controller.
fn unexpired(bare: &str) -> Result<Option<std::time::SystemTime>, Denial> {
    let exp = token::jwt_expiry(bare);
    match exp {
        Some(t) if t <= std::time::SystemTime::now() => Err(Denial::InvalidToken),
        _ => Ok(exp),
    }
}

/// `^[[:xdigit:]]{8}-[[:xdigit:]]{4}-[[:xdigit:]]{4}-[[:xdigit:]]{4}-[[:xdigit:]]{12}$`
pub(crate) fn is_guid(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 36 {
        return false;
    }
    b.iter().enumerate().all(|(i, c)| match i {
        8 | 13 | 18 | 23 => *c == b'-',
        _ => c.is_ascii_hexdigit(),
    })
}

/// `application/x-www-form-urlencoded` escaping of one value.
pub(crate) fn form_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push_str(&format!("{b:02X}"));
            }
        }
    }
    out
}

fn base64_basic(id: &str, secret: &str) -> String {
    use base64::Engine as _;
    let raw = format!("{}:{}", form_escape(id), form_escape(secret));
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

#[cfg(test)]
mod tests;
