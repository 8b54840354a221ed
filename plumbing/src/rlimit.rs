//! The open-file limit every component raises at start-up, as Go programs do.
//!
//! Go (since 1.19) raises a process's soft `RLIMIT_NOFILE` to its hard limit at start-up, so the
//! upstream components can hold thousands of connections under a distribution's default soft
//! limit of 1024. Our binaries do the same through [`raise_nofile`], so a traffic controller
//! with its default 2000 consumers (plus its pending connections) fits where the Go one did.

/// Raises the soft open-file limit to the hard limit; returns `(before, after)`. Errors are
/// returned, not fatal: the caller logs them and runs with the limit it has.
pub fn raise_nofile() -> std::io::Result<(u64, u64)> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let before = limit.current.unwrap_or(u64::MAX);
    if limit.current == limit.maximum {
        return Ok((before, before));
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    )
    .map_err(std::io::Error::from)?;
    Ok((before, limit.maximum.unwrap_or(u64::MAX)))
}

/// [`raise_nofile`], logging a failure (or a limit below `needed`) as a warning that names
/// what to change.
pub fn raise_nofile_for(needed: u64) {
    match raise_nofile() {
        Ok((_, after)) if after < needed => tracing::warn!(
            limit = after,
            needed,
            "open-file limit is below what the configured connection limits need; raise the hard limit (ulimit -Hn / LimitNOFILE=) or lower the limits"
        ),
        Ok((before, after)) if before != after => {
            tracing::debug!(before, after, "raised the open-file limit")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn soft_limit_ends_at_the_hard_limit() {
        let (before, after) = super::raise_nofile().expect("raise");
        assert!(after >= before);
        let now = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        assert_eq!(now.current, now.maximum);
    }
}
