//! What the three programs' `cli::main` have in common: logging, the admin
//! listener, the startup line and running until SIGTERM / Ctrl-C.

use std::future::Future;

use plumbing::shutdown::Shutdown;

use crate::Error;
use crate::admin::Listeners;

/// Initialises tracing at `log_level` (keeping a subscriber the root binary
/// may already have installed), validates the flags with `config`, binds the
/// admin listener at `admin_addr`, prints the `metrics bound to:` startup
/// line and runs `run` until SIGTERM / Ctrl-C.
pub(crate) async fn main<C, Fut>(
    log_level: &str,
    admin_addr: &str,
    config: impl FnOnce() -> anyhow::Result<C>,
    run: impl FnOnce(C, Listeners, Shutdown) -> Fut,
) -> anyhow::Result<()>
where
    Fut: Future<Output = Result<(), Error>>,
{
    // The root binary may already have installed a subscriber: keep it.
    if let Err(e) = plumbing::logline::init_tracing(log_level) {
        tracing::debug!(error = %e, "tracing subscriber not installed");
    }
    plumbing::rlimit::raise_nofile_for(1024);
    let config = config()?;
    let admin = tokio::net::TcpListener::bind(admin_addr)
        .await
        .map_err(|e| anyhow::anyhow!("binding admin listener {admin_addr}: {e}"))?;
    plumbing::logline::startup(&format!("metrics bound to: {}", admin.local_addr()?));
    let shutdown = Shutdown::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        signal.wait_for_signal().await;
    });
    run(config, Listeners { admin: Some(admin) }, shutdown).await?;
    Ok(())
}
