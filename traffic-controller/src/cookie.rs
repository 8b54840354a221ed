//! `/set-cookie` (reference §12.2): form fields `CookieName` and
//! `CookieValue` (body limit 4 KiB) become one `Secure`, `HttpOnly`,
//! `SameSite=Lax` cookie for `doppler.<system_domain>`, with CORS headers for
//! the request's origin. Either field missing: 400. A body that is not complete
//! within the listener's body deadline: 408.

use http::header::{HeaderValue, SET_COOKIE};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use plumbing::listen::BodyError;

use crate::gateway::query::pairs;
use crate::respond::{self, Body};
use crate::server::Shared;

const BODY_LIMIT: usize = 4096;

/// Handles `/set-cookie`.
pub(crate) async fn set_cookie(req: Request<Incoming>, shared: &Shared) -> Response<Body> {
    let (parts, body) = match crate::server::read_body(req, BODY_LIMIT).await {
        Ok(x) => x,
        Err(BodyError::TooLarge(_)) => {
            return respond::go_error(StatusCode::BAD_REQUEST, "request body too large");
        }
        Err(BodyError::TimedOut(_)) => {
            return respond::go_error(StatusCode::REQUEST_TIMEOUT, "request body timed out");
        }
        Err(BodyError::Io(_)) => {
            return respond::go_error(StatusCode::BAD_REQUEST, "failed to read request body");
        }
    };
    let mut fields = pairs(parts.uri.query().unwrap_or(""));
    let is_form = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if (is_form || parts.headers.get(http::header::CONTENT_TYPE).is_none())
        && let Ok(text) = std::str::from_utf8(&body)
    {
        // Body values come first, as Go's FormValue prefers them.
        let mut from_body = pairs(text);
        from_body.append(&mut fields);
        fields = from_body;
    }
    let get = |k: &str| {
        fields
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    let (Some(name), Some(value)) = (get("CookieName"), get("CookieValue")) else {
        return respond::go_error(
            StatusCode::BAD_REQUEST,
            "CookieName and CookieValue are required",
        );
    };
    let Some(cookie) = cookie_header(&name, &value, &shared.config.system_domain) else {
        return respond::go_error(StatusCode::BAD_REQUEST, "invalid cookie name");
    };
    let mut resp = respond::empty(StatusCode::OK);
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        h.insert(SET_COOKIE, v);
    }
    let origin = parts
        .headers
        .get(http::header::ORIGIN)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static(""));
    h.insert("access-control-allow-origin", origin);
    h.insert(
        "access-control-allow-credentials",
        HeaderValue::from_static("true"),
    );
    h.insert(
        "access-control-allow-headers",
        HeaderValue::from_static("Content-Type"),
    );
    resp
}

/// Formats the cookie as Go's `http.SetCookie` does; `None` for a name that
/// is not a valid token.
pub(crate) fn cookie_header(name: &str, value: &str, system_domain: &str) -> Option<String> {
    let valid_name = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
    if !valid_name {
        return None;
    }
    // Go drops bytes that are not valid cookie-value octets and quotes values
    // with a space or comma.
    let clean: String = value
        .chars()
        .filter(|c| matches!(*c, ' ' | ',' | '!' | '#'..='+' | '-'..=':' | '<'..='[' | ']'..='~'))
        .collect();
    let clean = if clean.contains([' ', ',']) {
        format!("\"{clean}\"")
    } else {
        clean
    };
    Some(format!(
        "{name}={clean}; Domain=doppler.{system_domain}; HttpOnly; Secure; SameSite=Lax"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_format() {
        assert_eq!(
            cookie_header("authorization", "bearer%20abc", "sys.example.com").as_deref(),
            Some(
                "authorization=bearer%20abc; Domain=doppler.sys.example.com; HttpOnly; Secure; SameSite=Lax"
            )
        );
        assert_eq!(
            cookie_header("a", "b c", "d").as_deref(),
            Some("a=\"b c\"; Domain=doppler.d; HttpOnly; Secure; SameSite=Lax")
        );
        assert_eq!(cookie_header("bad name", "v", "d"), None);
    }
}
