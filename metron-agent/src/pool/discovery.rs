//! Where the dopplers are: the preferred (same-AZ) names first, then every
//! name; each `host:port` yields all of its A/AAAA records. Resolved again on
//! every dial and periodically by the pool, so a DNS name backed by a
//! changing set of dopplers (a Kubernetes headless service, BOSH DNS) is
//! followed.

use std::net::SocketAddr;

/// The configured doppler names.
#[derive(Clone, Debug)]
pub struct Discovery {
    with_az: Vec<String>,
    all: Vec<String>,
}

/// No configured name resolved to any address.
#[derive(Debug, thiserror::Error)]
#[error("unable to lookup a log consumer")]
pub struct NoConsumer;

impl Discovery {
    /// Names in `with_az` are preferred when they resolve; `@` in them is
    /// replaced by `-` as upstream does.
    pub fn new(with_az: Vec<String>, all: Vec<String>) -> Self {
        let with_az = with_az
            .into_iter()
            .map(|n| n.replace('@', "-"))
            .filter(|n| !n.starts_with(':'))
            .collect();
        Self { with_az, all }
    }

    /// Every address of the first group (AZ, then all) that resolves to at
    /// least one, sorted and deduplicated.
    pub async fn resolve(&self) -> Result<Vec<SocketAddr>, NoConsumer> {
        for group in [&self.with_az, &self.all] {
            let mut addrs = Vec::new();
            for name in group {
                match tokio::net::lookup_host(name.as_str()).await {
                    Ok(found) => addrs.extend(found),
                    Err(e) => tracing::debug!(name = %name, error = %e, "doppler lookup failed"),
                }
            }
            addrs.sort_unstable();
            addrs.dedup();
            if !addrs.is_empty() {
                return Ok(addrs);
            }
        }
        Err(NoConsumer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn az_names_win_when_they_resolve() {
        let d = Discovery::new(
            vec!["127.0.0.2:1".into()],
            vec!["127.0.0.1:1".into(), "127.0.0.1:2".into()],
        );
        assert_eq!(
            d.resolve().await.expect("resolves"),
            vec!["127.0.0.2:1".parse().expect("addr")]
        );
        let d = Discovery::new(
            vec!["does-not-exist.invalid:1".into()],
            vec![
                "127.0.0.1:2".into(),
                "127.0.0.1:1".into(),
                "127.0.0.1:1".into(),
            ],
        );
        assert_eq!(
            d.resolve().await.expect("resolves"),
            vec![
                "127.0.0.1:1".parse().expect("addr"),
                "127.0.0.1:2".parse().expect("addr")
            ]
        );
        let d = Discovery::new(vec![], vec!["does-not-exist.invalid:1".into()]);
        assert_eq!(
            d.resolve().await.expect_err("none").to_string(),
            "unable to lookup a log consumer"
        );
    }

    #[tokio::test]
    async fn localhost_yields_its_records() {
        let d = Discovery::new(vec![], vec!["localhost:8082".into()]);
        let addrs = d.resolve().await.expect("resolves");
        assert!(
            addrs
                .iter()
                .all(|a| a.port() == 8082 && a.ip().is_loopback()),
            "{addrs:?}"
        );
    }
}
