//! Client side of the traffic controller's v1 API: the WebSocket streams (`/apps/{guid}/stream`,
//! `/firehose/{subscription_id}`) and the `multipart/x-protobuf` recent logs
//! (`/apps/{guid}/recentlogs`, reference §15.1).

use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;
use futures::StreamExt as _;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// Default traffic controller URL (`loggregator dev`'s WebSocket/HTTP port).
pub(crate) const DEFAULT_URL: &str = "http://127.0.0.1:8081";

/// Frames buffered between the WebSocket reader task and the printer. When full the reader
/// waits (policy `Block`): the socket is not read, and the traffic controller's own
/// slow-consumer handling decides what is dropped, so nothing is lost silently here.
const FRAME_QUEUE: usize = 65_536;

/// A traffic controller's base URLs.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    /// `http://host:port` (no trailing slash).
    pub(crate) http: String,
    /// `ws://host:port` (no trailing slash).
    pub(crate) ws: String,
}

impl Endpoint {
    /// Parses `http://host:port` or `ws://host:port` (a trailing `/` is ignored).
    pub(crate) fn parse(url: &str) -> anyhow::Result<Endpoint> {
        let url = url.trim_end_matches('/');
        let rest = if let Some(rest) = url.strip_prefix("http://") {
            rest
        } else if let Some(rest) = url.strip_prefix("ws://") {
            rest
        } else if url.starts_with("https://") || url.starts_with("wss://") {
            bail!(
                "--tc-url: {url}: TLS to the traffic controller is not supported by this client; \
                 accepted schemes: http://, ws://"
            );
        } else {
            bail!("--tc-url: {url}: accepted forms: http://HOST:PORT, ws://HOST:PORT");
        };
        if rest.is_empty() || rest.contains('/') {
            bail!("--tc-url: {url}: accepted forms: http://HOST:PORT, ws://HOST:PORT");
        }
        Ok(Endpoint {
            http: format!("http://{rest}"),
            ws: format!("ws://{rest}"),
        })
    }
}

/// The `Authorization` header value for a token: `bearer <token>`, or the token as given when
/// it already carries a scheme (`bearer ...`, `Bearer ...`).
pub(crate) fn authorization(token: &str) -> String {
    let token = token.trim();
    let has_scheme = token
        .get(..7)
        .is_some_and(|s| s.eq_ignore_ascii_case("bearer "));
    if has_scheme {
        token.to_owned()
    } else {
        format!("bearer {token}")
    }
}

/// What the WebSocket reader task reports.
#[derive(Debug)]
pub(crate) enum WsEvent {
    /// One binary message: one encoded v1 envelope.
    Frame(Bytes),
    /// The stream ended: close frame reason, read error, or EOF.
    Ended(String),
}

/// Opens a WebSocket to `url` and spawns a task that reads it into a bounded queue.
///
/// Pings are answered by the WebSocket library while the task reads; text frames are ignored.
pub(crate) async fn open_stream(
    url: &str,
    token: Option<&str>,
) -> anyhow::Result<mpsc::Receiver<WsEvent>> {
    let mut request = url
        .into_client_request()
        .with_context(|| format!("invalid WebSocket URL {url}"))?;
    if let Some(token) = token {
        let value = HeaderValue::from_str(&authorization(token))
            .map_err(|_| anyhow!("--token: not a valid header value"))?;
        request.headers_mut().insert("authorization", value);
    }
    let (ws, _response) = tokio_tungstenite::connect_async(request)
        .await
        .map_err(|e| describe_ws_error(url, e))?;
    let (tx, rx) = mpsc::channel(FRAME_QUEUE);
    tokio::spawn(async move {
        let (_sink, mut stream) = ws.split();
        // Keep the sink alive so the library can queue pongs and the close reply.
        let _sink = _sink;
        let end = loop {
            match stream.next().await {
                Some(Ok(Message::Binary(data))) => {
                    if tx.send(WsEvent::Frame(data)).await.is_err() {
                        return;
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    break match frame {
                        Some(f) if !f.reason.is_empty() => {
                            format!("closed by server ({}: {})", u16::from(f.code), f.reason)
                        }
                        Some(f) => format!("closed by server ({})", u16::from(f.code)),
                        None => "closed by server".to_owned(),
                    };
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => break e.to_string(),
                None => break "connection closed".to_owned(),
            }
        };
        let _ = tx.send(WsEvent::Ended(end)).await;
    });
    Ok(rx)
}

fn describe_ws_error(url: &str, e: tokio_tungstenite::tungstenite::Error) -> anyhow::Error {
    use tokio_tungstenite::tungstenite::Error as WsError;
    match e {
        WsError::Http(response) => {
            let status = response.status();
            let body = response
                .body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(b).trim().to_owned())
                .unwrap_or_default();
            if body.is_empty() {
                anyhow!("{url}: {status}")
            } else {
                anyhow!("{url}: {status}: {body}")
            }
        }
        WsError::Io(e) => anyhow!(
            "cannot connect to the traffic controller at {url}: {e} (is `loggregator dev` running? see --tc-url)"
        ),
        other => anyhow!("{url}: {other}"),
    }
}

/// GETs a `multipart/x-protobuf` resource and returns its parts (one encoded v1 envelope
/// each).
pub(crate) async fn get_multipart(url: &str, token: Option<&str>) -> anyhow::Result<Vec<Bytes>> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut request = http::Request::get(url);
    if let Some(token) = token {
        request = request.header(http::header::AUTHORIZATION, authorization(token));
    }
    let request = request
        .body(Empty::new())
        .with_context(|| format!("invalid URL {url}"))?;
    let response = client
        .request(request)
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = response.status();
    let content_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response
        .into_body()
        .collect()
        .await
        .with_context(|| format!("GET {url}: reading the body"))?
        .to_bytes();
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body);
        let text = text.trim();
        if text.is_empty() {
            bail!("GET {url}: {status}");
        }
        bail!("GET {url}: {status}: {text}");
    }
    let boundary = boundary(&content_type)
        .ok_or_else(|| anyhow!("GET {url}: no multipart boundary in {content_type:?}"))?;
    parse_multipart(&body, boundary).with_context(|| format!("GET {url}"))
}

/// The boundary parameter of a `multipart/...; boundary=<b>` content type (quotes removed).
pub(crate) fn boundary(content_type: &str) -> Option<&str> {
    let start = content_type.find("boundary=")? + "boundary=".len();
    let b = content_type[start..]
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .trim_matches('"');
    (!b.is_empty()).then_some(b)
}

/// Splits a multipart body into part bodies (reference §15.1; part headers, if any, skipped).
pub(crate) fn parse_multipart(body: &Bytes, boundary: &str) -> anyhow::Result<Vec<Bytes>> {
    let delim = format!("--{boundary}");
    let next_delim = format!("\r\n--{boundary}");
    let mut parts = Vec::new();
    let mut pos = find(body, delim.as_bytes(), 0)
        .ok_or_else(|| anyhow!("multipart body without boundary {boundary:?}"))?;
    loop {
        let after = pos + delim.len();
        if body[after..].starts_with(b"--") {
            return Ok(parts);
        }
        // The rest of the delimiter line, then part headers up to an empty line.
        let mut p =
            find(body, b"\r\n", after).ok_or_else(|| anyhow!("truncated multipart body"))? + 2;
        while !body[p..].starts_with(b"\r\n") {
            p = find(body, b"\r\n", p).ok_or_else(|| anyhow!("truncated multipart headers"))? + 2;
        }
        p += 2;
        let end = find(body, next_delim.as_bytes(), p)
            .ok_or_else(|| anyhow!("multipart body without closing boundary"))?;
        parts.push(body.slice(p..end));
        pos = end + 2;
    }
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_with_parts_and_binary_bodies() {
        let b = "a".repeat(60);
        let body = Bytes::from(
            [
                format!("--{b}\r\n\r\n").into_bytes(),
                b"one\r\nwith crlf".to_vec(),
                format!("\r\n--{b}\r\n\r\n").into_bytes(),
                vec![0, 1, 2, 255],
                format!("\r\n--{b}--\r\n").into_bytes(),
            ]
            .concat(),
        );
        let parts = parse_multipart(&body, &b).expect("parses");
        assert_eq!(parts.len(), 2);
        assert_eq!(&parts[0][..], b"one\r\nwith crlf");
        assert_eq!(&parts[1][..], &[0, 1, 2, 255]);
    }

    #[test]
    fn multipart_empty() {
        let body = Bytes::from_static(b"\r\n--xyz--\r\n");
        assert!(parse_multipart(&body, "xyz").expect("parses").is_empty());
    }

    #[test]
    fn multipart_with_part_headers() {
        let body = Bytes::from_static(b"--xyz\r\nContent-Type: a\r\n\r\nbody\r\n--xyz--\r\n");
        let parts = parse_multipart(&body, "xyz").expect("parses");
        assert_eq!(parts, vec![Bytes::from_static(b"body")]);
    }

    #[test]
    fn multipart_truncated_is_an_error() {
        let body = Bytes::from_static(b"--xyz\r\n\r\nbody");
        assert!(parse_multipart(&body, "xyz").is_err());
    }

    #[test]
    fn boundary_parameter() {
        assert_eq!(boundary("multipart/x-protobuf; boundary=abc"), Some("abc"));
        assert_eq!(
            boundary("multipart/x-protobuf; boundary=\"abc\"; x=y"),
            Some("abc")
        );
        assert_eq!(boundary("application/json"), None);
    }

    #[test]
    fn authorization_spellings() {
        assert_eq!(authorization("abc"), "bearer abc");
        assert_eq!(authorization("bearer abc"), "bearer abc");
        assert_eq!(authorization("Bearer abc"), "Bearer abc");
    }

    #[test]
    fn endpoint_forms() {
        let e = Endpoint::parse("http://127.0.0.1:8081/").expect("valid");
        assert_eq!(e.http, "http://127.0.0.1:8081");
        assert_eq!(e.ws, "ws://127.0.0.1:8081");
        let e = Endpoint::parse("ws://localhost:1").expect("valid");
        assert_eq!(e.http, "http://localhost:1");
        assert!(Endpoint::parse("ftp://x").is_err());
        assert!(Endpoint::parse("https://x:1").is_err());
    }
}
