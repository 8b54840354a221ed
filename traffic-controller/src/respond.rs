//! Response builders shared by the handlers, with upstream's exact bodies.

use std::convert::Infallible;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};

/// The response body type of every handler.
pub(crate) type Body = BoxBody<Bytes, Infallible>;

/// A response with a full body.
pub(crate) fn full(
    status: StatusCode,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()).boxed());
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(CONTENT_TYPE, v);
    }
    r
}

/// An empty response.
pub(crate) fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(Empty::new().boxed());
    *r.status_mut() = status;
    r
}

/// Go's `http.Error`: text/plain, `X-Content-Type-Options: nosniff`, body + `\n`.
pub(crate) fn go_error(status: StatusCode, message: &str) -> Response<Body> {
    let mut r = full(status, "text/plain; charset=utf-8", format!("{message}\n"));
    r.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// Go's mux answer for an unknown path.
pub(crate) fn not_found() -> Response<Body> {
    full(
        StatusCode::NOT_FOUND,
        "text/plain; charset=utf-8",
        "404 page not found\n",
    )
}

/// The TC's denial: 401, `WWW-Authenticate: Basic`, `You are not authorized. <reason>`.
pub(crate) fn unauthorized(reason: &str) -> Response<Body> {
    let mut r = full(
        StatusCode::UNAUTHORIZED,
        "text/plain; charset=utf-8",
        format!("You are not authorized. {reason}"),
    );
    r.headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
    r
}

/// The RLP gateway's JSON error (reference §17.1): `{"message":..,"error":..}`.
pub(crate) fn json_error(status: StatusCode, error: &str, message: &str) -> Response<Body> {
    let body = format!(
        "{{\"message\":{},\"error\":{}}}",
        serde_json::Value::from(message),
        serde_json::Value::from(error)
    );
    go_error(status, &body)
}

/// `/v2/read` auth failure.
pub(crate) fn gateway_not_found() -> Response<Body> {
    json_error(StatusCode::NOT_FOUND, "not_found", "resource not found")
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(r: Response<Body>) -> String {
        let b = r.into_body().collect().await.expect("body").to_bytes();
        String::from_utf8(b.to_vec()).expect("utf8")
    }

    #[tokio::test]
    async fn gateway_errors_are_go_http_error_json() {
        let r = gateway_not_found();
        assert_eq!(r.status(), 404);
        assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        assert_eq!(
            body(r).await,
            "{\"message\":\"resource not found\",\"error\":\"not_found\"}\n"
        );
    }

    #[tokio::test]
    async fn unauthorized_has_basic_challenge() {
        let r = unauthorized("authorization not provided");
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()["www-authenticate"], "Basic");
        assert_eq!(
            body(r).await,
            "You are not authorized. authorization not provided"
        );
    }
}
