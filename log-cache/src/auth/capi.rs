//! Cloud Controller asked with the user's own token (upstream
//! `src/internal/auth/capi_client.go`).
//!
//! - One source: `GET /v3/apps/<id>`, then `GET /v3/service_instances/<id>`;
//!   a 200 from either allows it. The id is percent-encoded as one path
//!   segment, so a source id can never address another Cloud Controller
//!   resource.
//! - Every source of a user (meta): `GET /v3/apps?per_page=N` and
//!   `GET /v3/service_instances?per_page=N`, following `pagination.next.href`.
//!   As upstream, only the path and query of `next` are used, against the
//!   configured Cloud Controller: the user's token never goes to another
//!   host. At most [`MAX_PAGES`] pages per kind are read (a larger listing is
//!   cut, logged, and the meta answer lists fewer sources, never more).

use std::collections::BTreeSet;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::Full;
use plumbing::http_client::HttpClient;
use plumbing::metrics::Counter;
use serde::Deserialize;

/// Resources per listing page (upstream asks for 5000; a smaller page keeps
/// each buffered body small).
pub(crate) const PER_PAGE: usize = 1000;
/// Pages followed per listing.
pub(crate) const MAX_PAGES: usize = 100;
/// Largest Cloud Controller body read (a full page of apps).
pub(crate) const MAX_BODY: usize = 8 << 20;

/// Why Cloud Controller gave no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CcError {
    /// Unreachable, timed out, or a broken exchange.
    #[error("{path}: {source}")]
    Transport {
        path: &'static str,
        source: plumbing::http_client::ClientError,
    },
    /// A status that is neither an answer nor a refusal, or an undecodable body.
    #[error("{path}: {detail}")]
    Answer { path: &'static str, detail: String },
}

/// The Cloud Controller client.
#[derive(Debug)]
pub(crate) struct Capi {
    client: HttpClient,
    /// `scheme://authority`.
    origin: String,
    /// The configured address without a trailing `/`.
    base: String,
    requests: Counter,
    failures: Counter,
}

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    pagination: Pagination,
    #[serde(default)]
    resources: Vec<Resource>,
}

#[derive(Deserialize, Default)]
struct Pagination {
    next: Option<Next>,
}

#[derive(Deserialize)]
struct Next {
    href: Option<String>,
}

#[derive(Deserialize)]
struct Resource {
    guid: String,
}

/// The resource kinds a source id can be.
const KINDS: [&str; 2] = ["apps", "service_instances"];

impl Capi {
    pub(crate) fn new(
        client: HttpClient,
        base: &Uri,
        requests: Counter,
        failures: Counter,
    ) -> Self {
        let origin = format!(
            "{}://{}",
            base.scheme_str().unwrap_or("http"),
            base.authority().map(|a| a.as_str()).unwrap_or_default()
        );
        let base = base.to_string().trim_end_matches('/').to_owned();
        Self {
            client,
            origin,
            base,
            requests,
            failures,
        }
    }

    /// Whether `bearer`'s user may read `source_id` (an app or a service
    /// instance of theirs).
    pub(crate) async fn allows(
        &self,
        source_id: &str,
        bearer: &HeaderValue,
    ) -> Result<bool, CcError> {
        let id = encode_segment(source_id);
        let mut error = None;
        for kind in KINDS {
            let path = path_name(kind, false);
            let url = format!("{}/v3/{kind}/{id}", self.base);
            match self.get(&url, bearer, path).await {
                Ok((StatusCode::OK, _)) => return Ok(true),
                Ok((
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND,
                    _,
                )) => {}
                Ok((status, _)) => {
                    self.failures.inc();
                    error = Some(CcError::Answer {
                        path,
                        detail: format!("status {status}"),
                    });
                }
                Err(e) => error = Some(e),
            }
        }
        match error {
            Some(e) => Err(e),
            None => Ok(false),
        }
    }

    /// Every app and service-instance guid `bearer`'s user can see.
    pub(crate) async fn sources(&self, bearer: &HeaderValue) -> Result<BTreeSet<String>, CcError> {
        let mut out = BTreeSet::new();
        for kind in KINDS {
            let path = path_name(kind, true);
            let mut url = format!("{}/v3/{kind}?per_page={PER_PAGE}", self.base);
            let mut pages = 0;
            loop {
                pages += 1;
                let body = match self.get(&url, bearer, path).await? {
                    (StatusCode::OK, body) => body,
                    (status, _) => {
                        self.failures.inc();
                        return Err(CcError::Answer {
                            path,
                            detail: format!("status {status}"),
                        });
                    }
                };
                let page: Page = serde_json::from_slice(&body).map_err(|e| {
                    self.failures.inc();
                    CcError::Answer {
                        path,
                        detail: format!("failed to decode resource list: {e}"),
                    }
                })?;
                out.extend(page.resources.into_iter().map(|r| r.guid));
                let Some(href) = page
                    .pagination
                    .next
                    .and_then(|n| n.href)
                    .filter(|h| !h.is_empty())
                else {
                    break;
                };
                if pages == MAX_PAGES {
                    tracing::warn!(
                        path,
                        pages,
                        "Cloud Controller listing cut after {MAX_PAGES} pages; meta lists fewer sources"
                    );
                    break;
                }
                let next = href
                    .parse::<Uri>()
                    .ok()
                    .and_then(|u| u.path_and_query().map(|pq| pq.as_str().to_owned()))
                    .filter(|pq| pq.starts_with('/'))
                    .ok_or_else(|| {
                        self.failures.inc();
                        CcError::Answer {
                            path,
                            detail: format!("unusable pagination.next.href {href:?}"),
                        }
                    })?;
                url = format!("{}{next}", self.origin);
            }
        }
        Ok(out)
    }

    async fn get(
        &self,
        url: &str,
        bearer: &HeaderValue,
        path: &'static str,
    ) -> Result<(StatusCode, Bytes), CcError> {
        let answer = |detail: String| CcError::Answer { path, detail };
        let req = Request::builder()
            .method(Method::GET)
            .uri(url)
            .header(http::header::AUTHORIZATION, bearer.clone())
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|e| answer(format!("bad request url: {e}")))?;
        self.requests.inc();
        match self.client.send(req).await {
            Ok(resp) => Ok((resp.status, resp.body)),
            Err(source) => {
                self.failures.inc();
                Err(CcError::Transport { path, source })
            }
        }
    }
}

fn path_name(kind: &str, list: bool) -> &'static str {
    match (kind, list) {
        ("apps", false) => "/v3/apps/:guid",
        ("apps", true) => "/v3/apps",
        (_, false) => "/v3/service_instances/:guid",
        (_, true) => "/v3/service_instances",
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    // `.` and `..` alone are path navigation even when unencoded-safe.
    match out.as_str() {
        "." => "%2E".to_owned(),
        ".." => "%2E%2E".to_owned(),
        _ => out,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn source_ids_stay_one_path_segment() {
        assert_eq!(
            encode_segment("6579464f-c802-494a-82a9-e5da6c93d119"),
            "6579464f-c802-494a-82a9-e5da6c93d119"
        );
        assert_eq!(encode_segment("a/../b?x#y"), "a%2F..%2Fb%3Fx%23y");
        assert_eq!(encode_segment(".."), "%2E%2E");
        assert_eq!(encode_segment("é"), "%C3%A9");
    }
}
