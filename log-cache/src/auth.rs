//! Who may read what: Log Cache's authorisation as upstream's cf-auth-proxy
//! does it (reference §2 "Auth"; upstream `src/internal/auth/*`,
//! `src/cmd/cf-auth-proxy`).
//!
//! Two modes. [`AuthMode::None`] allows everything (development).
//! [`AuthMode::Uaa`]:
//!
//! 1. The `Authorization` header is required: `bearer <jwt>` (the scheme in
//!    any case, as upstream's `(?i)^bearer\s+`; a bare JWT is accepted too).
//! 2. The JWT is verified locally against UAA's `GET /token_keys` (RS256 and
//!    HS256, see `jwt`), fetched with HTTP basic auth when a client id and
//!    secret are configured. Call [`Auth::refresh_keys`] once at start
//!    (upstream exits when it fails). Keys are fetched again when a token
//!    names an unknown `kid` or fails verification (UAA may rotate a key
//!    under the same `kid`); such refreshes happen at most once per
//!    [`UaaConfig::key_refresh_interval`] (upstream: 5 s), so a flood of bad
//!    tokens costs UAA one request per interval. A refresh replaces the key
//!    set wholesale (keys UAA dropped are forgotten); a failed one keeps it.
//! 3. An expired `exp` is refused locally.
//! 4. Scopes `doppler.firehose` or `logs.admin` read every source.
//! 5. Anyone else is checked with Cloud Controller using the user's own
//!    token (see `capi`): `GET /v3/apps/<id>`, then
//!    `GET /v3/service_instances/<id>`; 200 allows. Meta lists the user's
//!    apps and service instances (paginated) and is filtered to them.
//!
//! Every refusal is a [`Denied`]; the HTTP layer answers all of them 404
//! ("to discourage malicious actors"), except [`Denied::NoSourceIds`] (400).
//!
//! Positive Cloud Controller answers are cached for
//! [`UaaConfig::cache_expiration`] (upstream `CACHE_EXPIRATION_INTERVAL`,
//! 1 m) but never past the token's `exp`, keyed by SHA-256 digests (no token
//! is held). The cache is bounded ([`UaaConfig::cache_capacity`] answers,
//! [`UaaConfig::meta_cache_capacity`] source ids over all cached meta sets);
//! a full cache drops its expired entries and, if that is not enough, is
//! cleared (counted). Expired entries are also swept every
//! [`UaaConfig::token_pruning_interval`] (upstream `TOKEN_PRUNING_INTERVAL`).
//! Refusals are not cached. A source found in a cached meta set is allowed
//! without asking again.
//!
//! TLS to UAA and Cloud Controller: `UAA_CA_PATH` / `CAPI_CA_PATH`,
//! `CAPI_COMMON_NAME` (the server name expected from Cloud Controller) and
//! `SKIP_CERT_VERIFY`. An `https` address needs a CA file (there is no
//! system trust store) unless verification is skipped. Requests go through
//! [`plumbing::http_client`], one connection each (upstream disables
//! keep-alives too), with [`UaaConfig::request_timeout`].
//!
//! Failures to reach UAA or Cloud Controller and refused tokens are logged
//! at most once per cause every 10 s.
//!
//! # Metrics
//!
//! | Name | Kind | Meaning |
//! |---|---|---|
//! | `log_cache_auth_allowed{via="admin"}` | counter | requests allowed by an admin scope |
//! | `log_cache_auth_allowed{via="cloud_controller"}` | counter | requests allowed by Cloud Controller (asked or cached) |
//! | `log_cache_auth_denied{reason=...}` | counter | refusals: `missing_token`, `invalid_token`, `expired_token`, `not_allowed`, `upstream_error`, `no_source_ids` |
//! | `log_cache_auth_uaa_key_refreshes{result=...}` | counter | `/token_keys` fetches: `ok`, `error`; `throttled` = a refresh wanted within the interval and skipped |
//! | `log_cache_auth_cc_requests` | counter | requests sent to Cloud Controller |
//! | `log_cache_auth_cc_failures` | counter | Cloud Controller requests without a usable answer (unreachable, timeout, unexpected status, bad body) |
//! | `log_cache_auth_cache_hits` | counter | authorisations answered from the cache |
//! | `log_cache_auth_cache_evictions` | counter | live cache entries dropped because the cache was full |
//! | `log_cache_auth_cache_entries{cache="read"\|"meta"}` | gauge | cache weight held (answers; source ids) |

mod cache;
mod capi;
mod jwt;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::Full;
use parking_lot::RwLock;
use plumbing::http_client::{HttpClient, TlsSetupError, tls_config};
use plumbing::limited_log::Limiter;
use plumbing::metrics::{Counter, Registry};
use tokio::time::Instant;

use cache::TtlCache;
use capi::Capi;
use jwt::{JwtError, KeySet};

/// How requests are authorised.
#[derive(Debug, Clone)]
#[allow(
    clippy::large_enum_variant,
    reason = "built once at start; boxing buys nothing"
)]
pub enum AuthMode {
    /// Everything allowed (development).
    None,
    /// UAA tokens, Cloud Controller for non-admins.
    Uaa(UaaConfig),
}

/// Settings of [`AuthMode::Uaa`] (upstream cf-auth-proxy's environment).
#[derive(Clone)]
pub struct UaaConfig {
    /// `UAA_ADDR`; `/token_keys` is fetched from its origin (upstream
    /// replaces the path).
    pub uaa_addr: String,
    /// `UAA_CA_PATH`.
    pub uaa_ca: Option<PathBuf>,
    /// `UAA_CLIENT_ID`: with the secret, basic auth on `/token_keys`.
    pub client_id: String,
    /// `UAA_CLIENT_SECRET`.
    pub client_secret: String,
    /// `CAPI_ADDR`; `/v3/...` is appended to it.
    pub capi_addr: String,
    /// `CAPI_CA_PATH`.
    pub capi_ca: Option<PathBuf>,
    /// `CAPI_COMMON_NAME`: the TLS server name expected from Cloud Controller.
    pub capi_common_name: Option<String>,
    /// `SKIP_CERT_VERIFY`: accept any certificate from UAA and Cloud Controller.
    pub skip_cert_verify: bool,
    /// `CACHE_EXPIRATION_INTERVAL` (upstream default 1 m): how long a positive
    /// answer is reused (never past the token's `exp`). Zero disables caching.
    pub cache_expiration: Duration,
    /// `TOKEN_PRUNING_INTERVAL` (default 1 m): how often expired cache entries
    /// are swept.
    pub token_pruning_interval: Duration,
    /// Most cached read answers (token × source id).
    pub cache_capacity: usize,
    /// Most source ids held over all cached meta answers.
    pub meta_cache_capacity: usize,
    /// Least time between two `/token_keys` refreshes caused by tokens
    /// (upstream's minimum refresh interval, 5 s).
    pub key_refresh_interval: Duration,
    /// Deadline of one UAA or Cloud Controller request.
    pub request_timeout: Duration,
}

impl UaaConfig {
    /// Settings with upstream's defaults for everything but the addresses.
    pub fn new(uaa_addr: impl Into<String>, capi_addr: impl Into<String>) -> Self {
        Self {
            uaa_addr: uaa_addr.into(),
            uaa_ca: None,
            client_id: String::new(),
            client_secret: String::new(),
            capi_addr: capi_addr.into(),
            capi_ca: None,
            capi_common_name: None,
            skip_cert_verify: false,
            cache_expiration: Duration::from_secs(60),
            token_pruning_interval: Duration::from_secs(60),
            cache_capacity: 10_000,
            meta_cache_capacity: 100_000,
            key_refresh_interval: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
        }
    }
}

impl std::fmt::Debug for UaaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UaaConfig")
            .field("uaa_addr", &self.uaa_addr)
            .field("uaa_ca", &self.uaa_ca)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("capi_addr", &self.capi_addr)
            .field("capi_ca", &self.capi_ca)
            .field("capi_common_name", &self.capi_common_name)
            .field("skip_cert_verify", &self.skip_cert_verify)
            .field("cache_expiration", &self.cache_expiration)
            .field("token_pruning_interval", &self.token_pruning_interval)
            .field("cache_capacity", &self.cache_capacity)
            .field("meta_cache_capacity", &self.meta_cache_capacity)
            .field("key_refresh_interval", &self.key_refresh_interval)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

/// Why [`Auth`] could not be built or could not fetch UAA's keys.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// An address is not an `http(s)://host[:port]` URL.
    #[error("invalid {what} address {url:?}: {reason}")]
    Url {
        /// `UAA_ADDR` or `CAPI_ADDR`.
        what: &'static str,
        /// The address given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A CA file could not be read or parsed.
    #[error("{what} TLS: {source}")]
    Tls {
        /// `UAA` or `CAPI`.
        what: &'static str,
        /// The TLS error.
        source: TlsSetupError,
    },
    /// An `https` address without a CA file (and without skip-verify).
    #[error("{what} is https but no CA file is configured ({var}) and SKIP_CERT_VERIFY is off")]
    NoCa {
        /// `UAA` or `CAPI`.
        what: &'static str,
        /// The variable to set.
        var: &'static str,
    },
    /// `GET /token_keys` failed.
    #[error("failed to fetch token keys from UAA: {0}")]
    Keys(String),
}

/// Why a request is refused. The HTTP layer answers 404 for all but
/// [`Denied::NoSourceIds`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// No (or an empty) `Authorization` header.
    #[error("missing token")]
    MissingToken,
    /// Malformed, unsupported algorithm, unknown key, bad signature.
    #[error("invalid token")]
    InvalidToken,
    /// The token's `exp` has passed.
    #[error("expired token")]
    ExpiredToken,
    /// Cloud Controller does not let this user read the source.
    #[error("not allowed")]
    NotAllowed,
    /// Cloud Controller could not be asked (unreachable, error status).
    #[error("cloud controller error")]
    Upstream,
    /// A PromQL query naming no source id (upstream answers 400
    /// `{"status":"error","errorType":"bad_data","error":"query does not request any source_ids"}`).
    #[error("query does not request any source_ids")]
    NoSourceIds,
}

impl Denied {
    /// The `reason` label of `log_cache_auth_denied`.
    pub fn reason(self) -> &'static str {
        match self {
            Denied::MissingToken => "missing_token",
            Denied::InvalidToken => "invalid_token",
            Denied::ExpiredToken => "expired_token",
            Denied::NotAllowed => "not_allowed",
            Denied::Upstream => "upstream_error",
            Denied::NoSourceIds => "no_source_ids",
        }
    }
}

/// What a meta request may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Every source (no auth, or an admin scope).
    All,
    /// Only these source ids.
    Sources(BTreeSet<String>),
}

/// The authoriser; cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct Auth {
    inner: Option<Arc<Uaa>>,
}

const DENIALS: [Denied; 6] = [
    Denied::MissingToken,
    Denied::InvalidToken,
    Denied::ExpiredToken,
    Denied::NotAllowed,
    Denied::Upstream,
    Denied::NoSourceIds,
];

#[derive(Debug)]
struct AuthMetrics {
    allowed_admin: Counter,
    allowed_cc: Counter,
    denied: [Counter; 6],
    refresh_ok: Counter,
    refresh_error: Counter,
    refresh_throttled: Counter,
    cache_hits: Counter,
}

impl AuthMetrics {
    fn denied(&self, d: Denied) -> &Counter {
        let i = DENIALS.iter().position(|x| *x == d).unwrap_or(0);
        &self.denied[i]
    }
}

#[derive(Debug)]
struct Uaa {
    uaa: HttpClient,
    token_keys: Uri,
    basic: Option<HeaderValue>,
    keys: RwLock<Arc<KeySet>>,
    /// When a token last caused a refresh; held across the fetch so that
    /// concurrent callers wait for it instead of fetching again.
    last_refresh: tokio::sync::Mutex<Option<Instant>>,
    refresh_interval: Duration,
    capi: Capi,
    reads: TtlCache<()>,
    metas: TtlCache<Arc<BTreeSet<String>>>,
    metrics: AuthMetrics,
    log: Limiter,
}

/// A verified token.
struct User {
    /// `bearer <jwt>`, what Cloud Controller is sent.
    bearer: HeaderValue,
    /// Digest of the bare JWT.
    digest: cache::Key,
    claims: jwt::Claims,
}

fn parse_addr(what: &'static str, url: &str) -> Result<Uri, AuthError> {
    let bad = |reason: &str| AuthError::Url {
        what,
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(bad("scheme must be http or https")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("missing host"));
    }
    if uri.query().is_some() {
        return Err(bad("a query is not allowed"));
    }
    Ok(uri)
}

impl Auth {
    /// Builds the authoriser. Fails on a bad address or an unreadable CA file;
    /// does not contact UAA (see [`Auth::refresh_keys`]).
    pub fn new(mode: AuthMode, registry: &Registry) -> Result<Auth, AuthError> {
        let AuthMode::Uaa(cfg) = mode else {
            return Ok(Auth { inner: None });
        };
        let uaa_uri = parse_addr("UAA_ADDR", &cfg.uaa_addr)?;
        let capi_uri = parse_addr("CAPI_ADDR", &cfg.capi_addr)?;
        for (uri, what, var, ca) in [
            (&uaa_uri, "UAA", "UAA_CA_PATH", &cfg.uaa_ca),
            (&capi_uri, "CAPI", "CAPI_CA_PATH", &cfg.capi_ca),
        ] {
            if uri.scheme_str() == Some("https") && ca.is_none() && !cfg.skip_cert_verify {
                return Err(AuthError::NoCa { what, var });
            }
        }
        let uaa_tls =
            tls_config(cfg.uaa_ca.as_deref(), None, cfg.skip_cert_verify).map_err(|source| {
                AuthError::Tls {
                    what: "UAA",
                    source,
                }
            })?;
        let capi_tls =
            tls_config(cfg.capi_ca.as_deref(), None, cfg.skip_cert_verify).map_err(|source| {
                AuthError::Tls {
                    what: "CAPI",
                    source,
                }
            })?;
        let token_keys: Uri = format!(
            "{}://{}/token_keys",
            uaa_uri.scheme_str().unwrap_or("http"),
            uaa_uri.authority().map(|a| a.as_str()).unwrap_or_default()
        )
        .parse()
        .map_err(|e: http::uri::InvalidUri| AuthError::Url {
            what: "UAA_ADDR",
            url: cfg.uaa_addr.clone(),
            reason: e.to_string(),
        })?;
        let basic = (!cfg.client_id.is_empty() && !cfg.client_secret.is_empty())
            .then(|| {
                let raw = format!("{}:{}", cfg.client_id, cfg.client_secret);
                let v = format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                );
                HeaderValue::from_str(&v).ok().map(|mut v| {
                    v.set_sensitive(true);
                    v
                })
            })
            .flatten();

        let c =
            |name: &str, help: &str, labels: &[(&str, &str)]| registry.counter(name, help, labels);
        let denied = DENIALS.map(|d| {
            c(
                "log_cache_auth_denied",
                "Requests refused by authorisation, by reason.",
                &[("reason", d.reason())],
            )
        });
        let refresh = |result: &str| {
            c(
                "log_cache_auth_uaa_key_refreshes",
                "UAA /token_keys refreshes, by result.",
                &[("result", result)],
            )
        };
        let allowed = |via: &str| {
            c(
                "log_cache_auth_allowed",
                "Requests allowed by authorisation, by how.",
                &[("via", via)],
            )
        };
        let evictions = c(
            "log_cache_auth_cache_evictions",
            "Live authorisation cache entries dropped because the cache was full.",
            &[],
        );
        let entries = |which: &str| {
            registry.gauge(
                "log_cache_auth_cache_entries",
                "Authorisation cache weight held (read: answers; meta: source ids).",
                &[("cache", which)],
            )
        };
        let metrics = AuthMetrics {
            allowed_admin: allowed("admin"),
            allowed_cc: allowed("cloud_controller"),
            denied,
            refresh_ok: refresh("ok"),
            refresh_error: refresh("error"),
            refresh_throttled: refresh("throttled"),
            cache_hits: c(
                "log_cache_auth_cache_hits",
                "Authorisations answered from the cache.",
                &[],
            ),
        };
        let capi = Capi::new(
            HttpClient::new(capi_tls, cfg.capi_common_name.clone(), cfg.request_timeout)
                .with_max_body(capi::MAX_BODY),
            &capi_uri,
            c(
                "log_cache_auth_cc_requests",
                "Requests sent to Cloud Controller.",
                &[],
            ),
            c(
                "log_cache_auth_cc_failures",
                "Cloud Controller requests without a usable answer.",
                &[],
            ),
        );
        let uaa = Uaa {
            uaa: HttpClient::new(uaa_tls, None, cfg.request_timeout),
            token_keys,
            basic,
            keys: RwLock::new(Arc::new(HashMap::new())),
            last_refresh: tokio::sync::Mutex::new(None),
            refresh_interval: cfg.key_refresh_interval,
            capi,
            reads: TtlCache::new(
                cfg.cache_expiration,
                cfg.cache_capacity,
                cfg.token_pruning_interval,
                evictions.clone(),
                entries("read"),
            ),
            metas: TtlCache::new(
                cfg.cache_expiration,
                cfg.meta_cache_capacity,
                cfg.token_pruning_interval,
                evictions,
                entries("meta"),
            ),
            metrics,
            log: Limiter::new(Duration::from_secs(10)),
        };
        Ok(Auth {
            inner: Some(Arc::new(uaa)),
        })
    }

    /// Fetches UAA's keys now. Call once at start: like upstream, a Log
    /// Cache that cannot reach UAA should not start. Not rate-limited, and it
    /// does not delay the first refresh a token causes. A no-op in
    /// [`AuthMode::None`].
    pub async fn refresh_keys(&self) -> Result<(), AuthError> {
        let Some(u) = &self.inner else {
            return Ok(());
        };
        let _serialised = u.last_refresh.lock().await;
        u.fetch_keys().await.map_err(AuthError::Keys)
    }

    /// May the request read `source_id`?
    pub async fn read(&self, headers: &HeaderMap, source_id: &str) -> Result<(), Denied> {
        let Some(u) = &self.inner else {
            return Ok(());
        };
        u.counted(async {
            let user = u.authenticate(headers).await?;
            if user.claims.admin {
                u.metrics.allowed_admin.inc();
                return Ok(());
            }
            u.check_source(&user, source_id).await?;
            u.metrics.allowed_cc.inc();
            Ok(())
        })
        .await
    }

    /// Which sources may the request see in meta?
    pub async fn meta(&self, headers: &HeaderMap) -> Result<Access, Denied> {
        let Some(u) = &self.inner else {
            return Ok(Access::All);
        };
        u.counted(async {
            let user = u.authenticate(headers).await?;
            if user.claims.admin {
                u.metrics.allowed_admin.inc();
                return Ok(Access::All);
            }
            let set = u.sources(&user).await?;
            u.metrics.allowed_cc.inc();
            Ok(Access::Sources((*set).clone()))
        })
        .await
    }

    /// May the request query every one of `source_ids` (a PromQL query's)?
    /// An empty list is [`Denied::NoSourceIds`] in every mode (checked after
    /// the header's presence, as upstream does).
    pub async fn query(&self, headers: &HeaderMap, source_ids: &[String]) -> Result<(), Denied> {
        let Some(u) = &self.inner else {
            return if source_ids.is_empty() {
                Err(Denied::NoSourceIds)
            } else {
                Ok(())
            };
        };
        u.counted(async {
            if bearer_token(headers).is_none() {
                return Err(Denied::MissingToken);
            }
            if source_ids.is_empty() {
                return Err(Denied::NoSourceIds);
            }
            let user = u.authenticate(headers).await?;
            if user.claims.admin {
                u.metrics.allowed_admin.inc();
                return Ok(());
            }
            let unique: BTreeSet<&str> = source_ids.iter().map(String::as_str).collect();
            for id in unique {
                u.check_source(&user, id).await?;
            }
            u.metrics.allowed_cc.inc();
            Ok(())
        })
        .await
    }
}

/// The bare JWT of the first `Authorization` header: `(?i)^bearer\s+`
/// stripped; `None` when missing or empty.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let v = headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let token = match v.get(..6) {
        Some(s) if s.eq_ignore_ascii_case("bearer") && v[6..].starts_with(char::is_whitespace) => {
            v[6..].trim_start()
        }
        _ => v,
    };
    (!token.is_empty()).then_some(token)
}

fn digest(parts: &[&[u8]]) -> cache::Key {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            ctx.update(&[0]);
        }
        ctx.update(p);
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}

impl Uaa {
    /// Runs `f`, counting its refusal.
    async fn counted<T>(&self, f: impl Future<Output = Result<T, Denied>>) -> Result<T, Denied> {
        let r = f.await;
        if let Err(d) = &r {
            self.metrics.denied(*d).inc();
        }
        r
    }

    async fn authenticate(&self, headers: &HeaderMap) -> Result<User, Denied> {
        let token = bearer_token(headers).ok_or(Denied::MissingToken)?;
        let claims = self.verify(token).await.map_err(|e| {
            self.log.warn(
                match e {
                    JwtError::Expired => "expired-token",
                    _ => "invalid-token",
                },
                |suppressed| tracing::info!(error = %e, suppressed, "token refused"),
            );
            match e {
                JwtError::Expired => Denied::ExpiredToken,
                _ => Denied::InvalidToken,
            }
        })?;
        let mut bearer =
            HeaderValue::from_str(&format!("bearer {token}")).map_err(|_| Denied::InvalidToken)?;
        bearer.set_sensitive(true);
        Ok(User {
            bearer,
            digest: digest(&[token.as_bytes()]),
            claims,
        })
    }

    async fn verify(&self, token: &str) -> Result<jwt::Claims, JwtError> {
        let parsed = jwt::parse(token)?;
        let key = self.keys.read().get(&parsed.kid).cloned();
        let key = match key {
            Some(k) => k,
            None => {
                self.refresh().await;
                self.keys
                    .read()
                    .get(&parsed.kid)
                    .cloned()
                    .ok_or_else(|| JwtError::UnknownKey(parsed.kid.clone()))?
            }
        };
        if let Err(e) = parsed.verify(&key) {
            if e != JwtError::Signature {
                return Err(e);
            }
            // UAA may have rolled the key under the same kid: refresh
            // (rate-limited) and try once more if the key changed.
            self.refresh().await;
            let fresh = self.keys.read().get(&parsed.kid).cloned();
            match fresh {
                Some(k) if !Arc::ptr_eq(&k, &key) => parsed.verify(&k)?,
                _ => return Err(e),
            }
        }
        parsed.claims(SystemTime::now())
    }

    /// A token-caused refresh: at most one per interval; callers arriving
    /// while one runs wait for it and use its result.
    async fn refresh(&self) {
        let mut last = self.last_refresh.lock().await;
        if let Some(t) = *last
            && t.elapsed() < self.refresh_interval
        {
            self.metrics.refresh_throttled.inc();
            return;
        }
        *last = Some(Instant::now());
        if let Err(e) = self.fetch_keys().await {
            self.log.warn("uaa-token-keys", |suppressed| {
                tracing::warn!(error = %e, suppressed, "failed to refresh UAA token keys")
            });
        }
    }

    async fn fetch_keys(&self) -> Result<(), String> {
        let mut req = Request::builder()
            .method(Method::GET)
            .uri(self.token_keys.clone())
            .header(http::header::ACCEPT, "application/json");
        if let Some(b) = &self.basic {
            req = req.header(http::header::AUTHORIZATION, b.clone());
        }
        let result = async {
            let req = req
                .body(Full::new(Bytes::new()))
                .map_err(|e| e.to_string())?;
            let resp = self.uaa.send(req).await.map_err(|e| e.to_string())?;
            if resp.status != StatusCode::OK {
                return Err(format!(
                    "got an invalid status code talking to UAA {}",
                    resp.status
                ));
            }
            jwt::parse_token_keys(&resp.body)
        }
        .await;
        match result {
            Ok(set) => {
                tracing::debug!(keys = set.len(), "UAA token keys refreshed");
                *self.keys.write() = Arc::new(set);
                self.metrics.refresh_ok.inc();
                Ok(())
            }
            Err(e) => {
                self.metrics.refresh_error.inc();
                Err(e)
            }
        }
    }

    /// A non-admin's access to one source: cache, else Cloud Controller.
    async fn check_source(&self, user: &User, source_id: &str) -> Result<(), Denied> {
        if source_id.is_empty() {
            return Err(Denied::NotAllowed);
        }
        let key = digest(&[&user.digest, source_id.as_bytes()]);
        if self.reads.get(&key).is_some()
            || self
                .metas
                .get(&user.digest)
                .is_some_and(|s| s.contains(source_id))
        {
            self.metrics.cache_hits.inc();
            return Ok(());
        }
        match self.capi.allows(source_id, &user.bearer).await {
            Ok(true) => {
                self.reads.insert(key, (), 1, user.claims.exp);
                Ok(())
            }
            Ok(false) => Err(Denied::NotAllowed),
            Err(e) => {
                self.log_cc(&e);
                Err(Denied::Upstream)
            }
        }
    }

    /// A non-admin's sources: cache, else Cloud Controller's listings.
    async fn sources(&self, user: &User) -> Result<Arc<BTreeSet<String>>, Denied> {
        if let Some(set) = self.metas.get(&user.digest) {
            self.metrics.cache_hits.inc();
            return Ok(set);
        }
        match self.capi.sources(&user.bearer).await {
            Ok(set) => {
                let set = Arc::new(set);
                self.metas
                    .insert(user.digest, set.clone(), set.len() + 1, user.claims.exp);
                Ok(set)
            }
            Err(e) => {
                self.log_cc(&e);
                Err(Denied::Upstream)
            }
        }
    }

    fn log_cc(&self, e: &capi::CcError) {
        self.log.warn(
            "cloud-controller",
            |suppressed| tracing::warn!(error = %e, suppressed, "Cloud Controller request failed"),
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(v).unwrap(),
        );
        h
    }

    #[test]
    fn bearer_prefix_is_case_insensitive_and_optional() {
        assert_eq!(bearer_token(&headers("bearer a.b.c")), Some("a.b.c"));
        assert_eq!(bearer_token(&headers("BeArEr   a.b.c")), Some("a.b.c"));
        assert_eq!(bearer_token(&headers("a.b.c")), Some("a.b.c"));
        assert_eq!(bearer_token(&headers("bearer ")), Some("bearer"));
        assert_eq!(bearer_token(&headers("  ")), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }

    #[test]
    fn bad_addresses_and_missing_cas_fail_loudly() {
        let r = Registry::new();
        let bad = |uaa: &str, capi: &str| {
            Auth::new(AuthMode::Uaa(UaaConfig::new(uaa, capi)), &r)
                .err()
                .map(|e| e.to_string())
        };
        assert!(bad("uaa.example.com", "http://cc").is_some());
        assert!(bad("ftp://uaa", "http://cc").is_some());
        assert!(bad("http://uaa", "http://").is_some());
        assert!(
            bad("https://uaa", "http://cc")
                .unwrap()
                .contains("UAA_CA_PATH")
        );
        assert!(bad("http://uaa", "http://cc").is_none());
        let mut cfg = UaaConfig::new("https://uaa", "https://cc");
        cfg.uaa_ca = Some("/nonexistent/ca.pem".into());
        cfg.capi_ca = Some("/nonexistent/ca.pem".into());
        let e = Auth::new(AuthMode::Uaa(cfg), &r).unwrap_err();
        assert!(matches!(e, AuthError::Tls { what: "UAA", .. }), "{e}");
    }

    #[test]
    fn the_client_secret_is_not_printed() {
        let mut cfg = UaaConfig::new("http://uaa", "http://cc");
        cfg.client_secret = "hunter2".into();
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }
}
