//! The admin endpoint (`/metrics`, `/health`) every program serves from an
//! already-bound listener.

use plumbing::metrics::Registry;
use plumbing::shutdown::Shutdown;
use tokio::net::TcpListener;

/// Already-bound listeners.
#[derive(Debug, Default)]
pub struct Listeners {
    /// Admin endpoint (`/metrics`, `/health`); `None` = not served.
    pub admin: Option<TcpListener>,
}

impl Listeners {
    /// Serves the admin endpoint (if bound) with `registry` until `shutdown`.
    pub(crate) fn serve_admin(self, registry: &Registry, shutdown: &Shutdown) {
        if let Some(l) = self.admin {
            shutdown.spawn(plumbing::admin::serve(
                l,
                registry.clone(),
                shutdown.clone(),
            ));
        }
    }
}
