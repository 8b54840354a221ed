//! URL pieces as Go's `net/url` reads them: query strings (`url.ParseQuery`,
//! `url.QueryUnescape`) and path segments (`url.PathUnescape`).

/// Why a string could not be unescaped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnescapeError {
    /// A `%` not followed by two hex digits (Go's `url.EscapeError` text).
    #[error("invalid URL escape {0:?}")]
    Escape(String),
    /// The unescaped bytes are not UTF-8.
    #[error("unescaped value is not valid UTF-8")]
    Utf8,
}

/// Go's `url.QueryUnescape`: `%XX` escapes and `+` as a space; `None` on a
/// bad escape or invalid UTF-8.
pub fn query_unescape(s: &str) -> Option<String> {
    unescape(s, true).ok()
}

/// [`query_unescape`] saying what was wrong, in Go's words.
pub fn query_unescape_checked(s: &str) -> Result<String, UnescapeError> {
    unescape(s, true)
}

/// Go's `url.PathUnescape`: `%XX` escapes (`%2F` becomes `/`), `+` kept;
/// `None` on a bad escape or invalid UTF-8.
pub fn path_unescape(s: &str) -> Option<String> {
    unescape(s, false).ok()
}

fn unescape(s: &str, plus_is_space: bool) -> Result<String, UnescapeError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let digit = |at: usize| bytes.get(at).and_then(|b| hex_val(*b));
                let (Some(hi), Some(lo)) = (digit(i + 1), digit(i + 2)) else {
                    let end = (i + 3).min(bytes.len());
                    return Err(UnescapeError::Escape(
                        String::from_utf8_lossy(&bytes[i..end]).into_owned(),
                    ));
                };
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| UnescapeError::Utf8)
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Splits a raw query string the way Go's `url.ParseQuery` does, in order;
/// pairs with bad escapes are skipped (as `URL.Query()` does).
pub fn query_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Some((query_unescape(k)?, query_unescape(v)?))
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn go_unescape_rules() {
        assert_eq!(query_unescape("%4"), None);
        assert_eq!(query_unescape("a%41+b"), Some("aA b".to_owned()));
        assert_eq!(path_unescape("a%2Fb+c"), Some("a/b+c".to_owned()));
        assert_eq!(path_unescape("%zz"), None);
        assert_eq!(query_unescape("%ff"), None, "invalid UTF-8");
        assert_eq!(
            query_unescape_checked("a%zzb").unwrap_err().to_string(),
            "invalid URL escape \"%zz\""
        );
        assert_eq!(
            query_unescape_checked("a%4").unwrap_err().to_string(),
            "invalid URL escape \"%4\""
        );
    }

    #[test]
    fn pairs_in_order_bad_ones_skipped() {
        assert_eq!(
            query_pairs("a=1&&b&c=%zz&a=2"),
            vec![
                ("a".to_owned(), "1".to_owned()),
                ("b".to_owned(), String::new()),
                ("a".to_owned(), "2".to_owned()),
            ]
        );
    }
}
