//! Where a request's token comes from and how it is normalised (reference §13.1).
//!
//! Accepted spellings on every endpoint: `bearer X`, `Bearer X` (any case of the
//! scheme, one or more spaces) and the bare `X`. The bare token is what UAA's
//! `check_token` receives.

use http::HeaderMap;
use http::header::{AUTHORIZATION, COOKIE};

/// The name of the cookie browsers carry the token in (set through `/set-cookie`).
pub(crate) const COOKIE_NAME: &str = "authorization";

/// The raw credential of a traffic-controller request: the `Authorization`
/// header, or if that is empty the URL-unescaped `authorization` cookie.
pub(crate) fn from_request(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = header_value(headers) {
        return Some(v.to_owned());
    }
    from_cookie(headers)
}

/// The raw `Authorization` header, if present and non-empty (RLP gateway rule:
/// the header only).
pub(crate) fn header_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .find(|v| !v.is_empty())
}

fn from_cookie(headers: &HeaderMap) -> Option<String> {
    for value in headers.get_all(COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        for pair in value.split(';') {
            let pair = pair.trim();
            let Some((name, val)) = pair.split_once('=') else {
                continue;
            };
            if name.trim() != COOKIE_NAME {
                continue;
            }
            let val = val.trim().trim_matches('"');
            let unescaped = query_unescape(val)?;
            if !unescaped.trim().is_empty() {
                return Some(unescaped);
            }
        }
    }
    None
}

pub(crate) use plumbing::url::query_unescape;

/// Strips an optional `bearer` scheme (any case, followed by one or more
/// spaces) and returns the bare token; `None` when nothing is left.
pub(crate) fn bare(raw: &str) -> Option<&str> {
    let s = raw.trim();
    if s.is_empty() {
        return None;
    }
    const SCHEME: &str = "bearer";
    if let Some(head) = s.get(..SCHEME.len())
        && head.eq_ignore_ascii_case(SCHEME)
    {
        let rest = &s[SCHEME.len()..];
        if rest.is_empty() {
            return None;
        }
        if rest.starts_with([' ', '\t']) {
            let token = rest.trim_start_matches([' ', '\t']);
            return (!token.is_empty()).then_some(token);
        }
    }
    Some(s)
}

/// The `exp` claim of a JWT-shaped token (`header.payload.signature`), read
/// without checking the signature. Used only to *shorten* what is cached and to
/// refuse a token that says it has expired, never to accept one: acceptance is
/// UAA's and Cloud Controller's. `None` for anything that is not such a token.
pub(crate) fn jwt_expiry(bare: &str) -> Option<std::time::SystemTime> {
    use base64::Engine as _;
    let mut parts = bare.split('.');
    let (_, payload, _, None) = (parts.next()?, parts.next()?, parts.next()?, parts.next()) else {
        return None;
    };
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    #[derive(serde::Deserialize)]
    struct Claims {
        exp: Option<f64>,
    }
    let claims: Claims = serde_json::from_slice(&json).ok()?;
    unix_seconds(claims.exp?)
}

/// A Unix time in seconds (as JWT and UAA write `exp`) as a `SystemTime`.
pub(crate) fn unix_seconds(secs: f64) -> Option<std::time::SystemTime> {
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs_f64(secs.min(1e12)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn accepts_every_spelling() {
        assert_eq!(bare("bearer abc"), Some("abc"));
        assert_eq!(bare("Bearer abc"), Some("abc"));
        assert_eq!(bare("BEARER   abc"), Some("abc"));
        assert_eq!(bare("abc"), Some("abc"));
        assert_eq!(bare("  abc  "), Some("abc"));
        assert_eq!(bare("bearerabc"), Some("bearerabc"));
        assert_eq!(bare("bearer"), None);
        assert_eq!(bare("bearer   "), None);
        assert_eq!(bare(""), None);
        assert_eq!(bare("é"), Some("é"));
    }

    #[test]
    fn header_wins_over_cookie_and_cookie_is_unescaped() {
        let mut h = HeaderMap::new();
        h.insert(
            COOKIE,
            HeaderValue::from_static("a=b; authorization=bearer%20tok+x"),
        );
        assert_eq!(from_request(&h).as_deref(), Some("bearer tok x"));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer hdr"));
        assert_eq!(from_request(&h).as_deref(), Some("Bearer hdr"));
        h.insert(AUTHORIZATION, HeaderValue::from_static(""));
        assert_eq!(from_request(&h).as_deref(), Some("bearer tok x"));
    }

    #[test]
    fn bad_cookie_escape_is_no_token() {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_static("authorization=%zz"));
        assert_eq!(from_request(&h), None);
        assert_eq!(query_unescape("%4"), None);
        assert_eq!(query_unescape("a%41"), Some("aA".to_owned()));
    }
}
