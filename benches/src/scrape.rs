//! Reads Prometheus text from a component's admin endpoint, to reconcile subscriber loss with the
//! drop counters of each hop.

use bytes::Bytes;
use http_body_util::BodyExt;

/// One sample line: metric name with labels, and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Name including the label set, e.g. `dropped{direction="egress"}`.
    pub series: String,
    /// Value.
    pub value: f64,
}

/// Fetches `http://<addr>/metrics` and parses every sample line.
pub async fn fetch(addr: &str) -> anyhow::Result<Vec<Sample>> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<Bytes>>();
    let uri: hyper::Uri = format!("http://{addr}/metrics").parse()?;
    let resp = client.get(uri).await?;
    anyhow::ensure!(
        resp.status().is_success(),
        "GET /metrics on {addr}: {}",
        resp.status()
    );
    let body = resp.into_body().collect().await?.to_bytes();
    Ok(parse(&String::from_utf8_lossy(&body)))
}

/// Parses Prometheus text exposition (comments skipped).
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some(Sample {
                series: series.trim().to_owned(),
                value: value.parse().ok()?,
            })
        })
        .collect()
}

/// Samples whose name contains `dropped` or `slow_consumer` and whose value is non-zero.
pub fn drops(samples: &[Sample]) -> Vec<Sample> {
    samples
        .iter()
        .filter(|s| {
            (s.series.contains("dropped") || s.series.contains("slow_consumer")) && s.value != 0.0
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exposition() {
        let text = "# HELP dropped x\n# TYPE dropped counter\ndropped{direction=\"egress\"} 12\ningress 5\n\n";
        let s = parse(text);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].series, "dropped{direction=\"egress\"}");
        assert_eq!(s[0].value, 12.0);
        assert_eq!(drops(&s).len(), 1);
    }
}
