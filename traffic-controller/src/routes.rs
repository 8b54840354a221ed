//! Path -> route (reference §12.2, §17.1). Pure, so it is tested alone.

/// A recognised endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route<'a> {
    /// `/firehose/{subscription_id}` (WebSocket).
    Firehose(&'a str),
    /// `/apps/{guid}/stream` (WebSocket).
    AppStream(&'a str),
    /// `/apps/{guid}/recentlogs` (multipart).
    RecentLogs(&'a str),
    /// `/apps/{guid}/containermetrics` (multipart).
    ContainerMetrics(&'a str),
    /// `/set-cookie`.
    SetCookie,
    /// `/v2/read` (RLP gateway SSE).
    V2Read,
    /// Anything else: 404.
    NotFound,
}

/// Which `filter-type` a firehose asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FilterType {
    /// No (or an unknown) filter.
    All,
    /// `filter-type=logs`.
    Logs,
    /// `filter-type=metrics`.
    Metrics,
}

/// Matches a request path.
pub(crate) fn parse(path: &str) -> Route<'_> {
    if path == "/set-cookie" {
        return Route::SetCookie;
    }
    if path == "/v2/read" {
        return Route::V2Read;
    }
    if let Some(sub) = path.strip_prefix("/firehose/") {
        if !sub.is_empty() && !sub.contains('/') {
            return Route::Firehose(sub);
        }
        return Route::NotFound;
    }
    if let Some(rest) = path.strip_prefix("/apps/")
        && let Some((app, endpoint)) = rest.split_once('/')
        && !app.is_empty()
    {
        return match endpoint {
            "stream" => Route::AppStream(app),
            "recentlogs" => Route::RecentLogs(app),
            "containermetrics" => Route::ContainerMetrics(app),
            _ => Route::NotFound,
        };
    }
    Route::NotFound
}

/// `filter-type` of a firehose query: `logs`, `metrics`, anything else (or
/// none, or an empty query as noaa sends) means unfiltered.
pub(crate) fn filter_type(query: Option<&str>) -> FilterType {
    let Some(q) = query else {
        return FilterType::All;
    };
    let value = crate::gateway::query::pairs(q)
        .into_iter()
        .find(|(k, _)| k == "filter-type")
        .map(|(_, v)| v);
    match value.as_deref() {
        Some("logs") => FilterType::Logs,
        Some("metrics") => FilterType::Metrics,
        _ => FilterType::All,
    }
}

/// The `limit` query parameter of recent logs; absent, invalid or negative
/// means no limit.
pub(crate) fn limit(query: Option<&str>) -> Option<usize> {
    let q = query?;
    crate::gateway::query::pairs(q)
        .into_iter()
        .find(|(k, _)| k == "limit")
        .and_then(|(_, v)| v.parse::<usize>().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(parse("/firehose/sub-1"), Route::Firehose("sub-1"));
        assert_eq!(parse("/firehose/"), Route::NotFound);
        assert_eq!(parse("/firehose/a/b"), Route::NotFound);
        assert_eq!(parse("/apps/abc/stream"), Route::AppStream("abc"));
        assert_eq!(parse("/apps/abc/recentlogs"), Route::RecentLogs("abc"));
        assert_eq!(
            parse("/apps/abc/containermetrics"),
            Route::ContainerMetrics("abc")
        );
        assert_eq!(parse("/apps/abc/other"), Route::NotFound);
        assert_eq!(parse("/apps//stream"), Route::NotFound);
        assert_eq!(parse("/apps/abc/stream/"), Route::NotFound);
        assert_eq!(parse("/set-cookie"), Route::SetCookie);
        assert_eq!(parse("/v2/read"), Route::V2Read);
        assert_eq!(parse("/"), Route::NotFound);
        assert_eq!(parse("/v2/read/"), Route::NotFound);
    }

    #[test]
    fn filter_types() {
        assert_eq!(filter_type(None), FilterType::All);
        assert_eq!(filter_type(Some("")), FilterType::All);
        assert_eq!(filter_type(Some("filter-type=logs")), FilterType::Logs);
        assert_eq!(
            filter_type(Some("filter-type=metrics")),
            FilterType::Metrics
        );
        assert_eq!(filter_type(Some("filter-type=other")), FilterType::All);
        assert_eq!(
            filter_type(Some("x=1&filter-type=metrics")),
            FilterType::Metrics
        );
    }

    #[test]
    fn limits() {
        assert_eq!(limit(None), None);
        assert_eq!(limit(Some("limit=5")), Some(5));
        assert_eq!(limit(Some("limit=-1")), None);
        assert_eq!(limit(Some("limit=x")), None);
    }
}
