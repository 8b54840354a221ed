//! Drain bindings: the Cloud Controller shape
//! (`/internal/v5/syslog_drain_urls`, reference §19.1), read from a file or
//! polled page by page from an HTTP endpoint, flattened into one
//! [`DrainSpec`] per (URL, app, credentials).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use serde::Deserialize;

use crate::http::HttpClient;

/// One binding as Cloud Controller serves it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Binding {
    /// The drain URL.
    pub url: String,
    /// Credentials groups, each with the apps bound with them.
    #[serde(default)]
    pub credentials: Vec<Credentials>,
}

/// TLS material of a binding and the apps that use it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Default)]
pub struct Credentials {
    /// Client certificate PEM (mTLS drains); empty = none.
    #[serde(default)]
    pub cert: String,
    /// Client key PEM.
    #[serde(default)]
    pub key: String,
    /// CA PEM trusted for this drain; empty = none.
    #[serde(default)]
    pub ca: String,
    /// Apps bound to the drain with these credentials.
    #[serde(default)]
    pub apps: Vec<AppRef>,
}

/// An app bound to a drain.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct AppRef {
    /// `org.space.app`, the default syslog HOSTNAME.
    #[serde(default)]
    pub hostname: String,
    /// The app GUID (envelope `source_id`).
    pub app_id: String,
}

/// One page of the v5 endpoint.
#[derive(Debug, Deserialize)]
struct Page {
    #[serde(default)]
    results: Vec<Binding>,
    #[serde(default)]
    next_id: Option<serde_json::Value>,
}

/// A file is either a bare list of bindings or one v5 page.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FileShape {
    List(Vec<Binding>),
    Page(Page),
}

/// One drain to run: a URL for one app with its credentials. Ordered and
/// hashable so binding sets can be diffed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DrainSpec {
    /// The app GUID.
    pub app_id: String,
    /// The drain URL as bound.
    pub url: String,
    /// Default HOSTNAME.
    pub hostname: String,
    /// Client certificate PEM (empty = none).
    pub cert: String,
    /// Client key PEM.
    pub key: String,
    /// CA PEM (empty = none).
    pub ca: String,
}

/// Flattens bindings into drain specs, sorted, keeping at most
/// `per_app_limit` drains per app (the first in URL order).
pub fn flatten(bindings: &[Binding], per_app_limit: usize) -> Vec<DrainSpec> {
    let mut by_app: BTreeMap<&str, Vec<DrainSpec>> = BTreeMap::new();
    for b in bindings {
        for c in &b.credentials {
            for a in &c.apps {
                by_app.entry(&a.app_id).or_default().push(DrainSpec {
                    app_id: a.app_id.clone(),
                    url: b.url.clone(),
                    hostname: a.hostname.clone(),
                    cert: c.cert.clone(),
                    key: c.key.clone(),
                    ca: c.ca.clone(),
                });
            }
        }
    }
    let mut out = Vec::new();
    for (_, mut specs) in by_app {
        specs.sort_by(|a, b| a.url.cmp(&b.url).then_with(|| a.cmp(b)));
        specs.dedup();
        specs.truncate(per_app_limit);
        out.extend(specs);
    }
    out.sort();
    out
}

/// Parses a bindings file body (a JSON list of bindings or a v5 page).
pub fn parse_file(body: &[u8]) -> Result<Vec<Binding>, String> {
    match serde_json::from_slice::<FileShape>(body) {
        Ok(FileShape::List(l)) => Ok(l),
        Ok(FileShape::Page(p)) => Ok(p.results),
        Err(e) => Err(format!("invalid bindings JSON: {e}")),
    }
}

/// Where bindings come from.
#[derive(Debug)]
pub enum Source {
    /// A JSON file re-read on every poll.
    File(PathBuf),
    /// A Cloud Controller-shaped endpoint, paged.
    Http(CcSource),
}

impl Source {
    /// Fetches the whole current binding set.
    pub async fn fetch(&mut self) -> Result<Vec<Binding>, String> {
        match self {
            Source::File(path) => {
                let body = tokio::fs::read(&path)
                    .await
                    .map_err(|e| format!("reading {}: {e}", path.display()))?;
                parse_file(&body)
            }
            Source::Http(cc) => cc.fetch().await,
        }
    }
}

/// Polls `<base>/internal/v5/syslog_drain_urls?batch_size=N&next_id=M`.
#[derive(Debug)]
pub struct CcSource {
    /// Connection to the endpoint.
    client: HttpClient,
    /// Path prefix of the base URL (usually empty).
    base_path: String,
    /// `batch_size` query value.
    batch_size: usize,
}

/// Upper bound on pages per fetch (guards against a server that loops).
const MAX_PAGES: usize = 100_000;

impl CcSource {
    /// A poller using `client`, under `base_path`, `batch_size` bindings per page.
    pub fn new(client: HttpClient, base_path: String, batch_size: usize) -> Self {
        Self {
            client,
            base_path: base_path.trim_end_matches('/').to_owned(),
            batch_size,
        }
    }

    async fn fetch(&mut self) -> Result<Vec<Binding>, String> {
        let mut all = Vec::new();
        let mut next_id: u64 = 0;
        for _ in 0..MAX_PAGES {
            let uri = format!(
                "{}/internal/v5/syslog_drain_urls?batch_size={}&next_id={}",
                self.base_path, self.batch_size, next_id
            );
            let req = Request::builder()
                .method(Method::GET)
                .uri(uri)
                .body(Full::new(Bytes::new()))
                .map_err(|e| e.to_string())?;
            let resp = self.client.send_ok(req).await.map_err(|e| e.to_string())?;
            let page: Page = serde_json::from_slice(&resp.body)
                .map_err(|e| format!("invalid bindings page: {e}"))?;
            all.extend(page.results);
            match page.next_id {
                None | Some(serde_json::Value::Null) => return Ok(all),
                Some(serde_json::Value::Number(n)) => match n.as_u64() {
                    Some(id) => next_id = id,
                    None => return Err(format!("invalid next_id {n}")),
                },
                Some(serde_json::Value::String(s)) => {
                    next_id = s.parse().map_err(|_| format!("invalid next_id {s:?}"))?
                }
                Some(other) => return Err(format!("invalid next_id {other}")),
            }
        }
        Err("too many binding pages".to_owned())
    }
}

/// Default polling interval (upstream deployment spec: 15 s).
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(15);

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"{"results":[
        {"url":"syslog://b:1","credentials":[{"cert":"","key":"","ca":"","apps":[{"hostname":"o.s.a","app_id":"app-1"},{"hostname":"o.s.b","app_id":"app-2"}]}]},
        {"url":"syslog://a:1","credentials":[{"apps":[{"hostname":"o.s.a","app_id":"app-1"}]}]}
    ],"next_id":null}"#;

    #[test]
    fn parses_pages_and_lists() {
        let b = parse_file(PAGE.as_bytes()).expect("page");
        assert_eq!(b.len(), 2);
        let l = parse_file(br#"[{"url":"syslog://x:1","credentials":[]}]"#).expect("list");
        assert_eq!(l[0].url, "syslog://x:1");
        assert!(parse_file(b"{nope").is_err());
    }

    #[test]
    fn flattens_sorted_with_per_app_limit() {
        let b = parse_file(PAGE.as_bytes()).expect("page");
        let specs = flatten(&b, 5);
        let v: Vec<(&str, &str)> = specs
            .iter()
            .map(|s| (s.app_id.as_str(), s.url.as_str()))
            .collect();
        assert_eq!(
            v,
            [
                ("app-1", "syslog://a:1"),
                ("app-1", "syslog://b:1"),
                ("app-2", "syslog://b:1")
            ]
        );
        let limited = flatten(&b, 1);
        let v: Vec<(&str, &str)> = limited
            .iter()
            .map(|s| (s.app_id.as_str(), s.url.as_str()))
            .collect();
        assert_eq!(v, [("app-1", "syslog://a:1"), ("app-2", "syslog://b:1")]);
    }
}
