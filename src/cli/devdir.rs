//! The well-known directory `loggregator dev` writes its generated certificates to, and where
//! `emit` finds the `client` certificate without flags.
//!
//! `$LOGGREGATOR_DEV_DIR` when set, else `$XDG_RUNTIME_DIR/loggregator-dev`, else
//! `/tmp/loggregator-dev-<uid>`. Files (from `plumbing::tls::dev::DevPki`): `ca.crt`,
//! `ca.key`, `<name>.crt`, `<name>.key` for `doppler`, `metron`, `trafficcontroller`,
//! `reverselogproxy`, `client`, `localhost`.

use std::path::{Path, PathBuf};

use anyhow::bail;
use plumbing::tls::TlsFiles;

/// Environment variable overriding the directory.
pub(crate) const ENV: &str = "LOGGREGATOR_DEV_DIR";

/// The default directory (ignoring [`ENV`], which clap reads).
pub(crate) fn default_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => Path::new(&dir).join("loggregator-dev"),
        _ => PathBuf::from(format!("/tmp/loggregator-dev-{}", uid())),
    }
}

/// The directory given on the command line or in the environment, else the default.
pub(crate) fn resolve(dir: Option<&Path>) -> PathBuf {
    dir.map_or_else(default_dir, Path::to_owned)
}

fn uid() -> u32 {
    use std::os::unix::fs::MetadataExt as _;
    // /proc/self is owned by the process's (effective) user.
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or_default()
}

/// Client certificate options shared by the commands that talk mutual TLS to the pipeline.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct ClientTlsArgs {
    /// Talk plaintext gRPC instead of mutual TLS (the server must be plaintext too).
    #[arg(long)]
    pub(crate) plaintext: bool,
    /// Directory with the development certificates written by `loggregator dev`
    /// (`ca.crt`, `client.crt`, `client.key`) [default: $XDG_RUNTIME_DIR/loggregator-dev, else
    /// /tmp/loggregator-dev-$UID].
    #[arg(long, value_name = "DIR", env = ENV)]
    pub(crate) cert_dir: Option<PathBuf>,
    /// CA certificate the server must chain to [default: <cert-dir>/ca.crt].
    #[arg(long, value_name = "FILE")]
    pub(crate) ca_file: Option<PathBuf>,
    /// Client certificate [default: <cert-dir>/client.crt].
    #[arg(long, value_name = "FILE")]
    pub(crate) cert_file: Option<PathBuf>,
    /// Client private key [default: <cert-dir>/client.key].
    #[arg(long, value_name = "FILE")]
    pub(crate) key_file: Option<PathBuf>,
}

impl ClientTlsArgs {
    /// The TLS files to use, or `None` for `--plaintext`. Fails, naming the file and the
    /// ways to fix it, when a file does not exist.
    pub(crate) fn files(&self) -> anyhow::Result<Option<TlsFiles>> {
        if self.plaintext {
            return Ok(None);
        }
        let dir = resolve(self.cert_dir.as_deref());
        let pick =
            |given: &Option<PathBuf>, file: &str| given.clone().unwrap_or_else(|| dir.join(file));
        let files = TlsFiles::new(
            pick(&self.ca_file, "ca.crt"),
            pick(&self.cert_file, "client.crt"),
            pick(&self.key_file, "client.key"),
        );
        let ca = files.ca.clone().unwrap_or_default();
        for (flag, path) in [
            ("--ca-file", &ca),
            ("--cert-file", &files.cert),
            ("--key-file", &files.key),
        ] {
            if !path.exists() {
                bail!(
                    "{flag}: {} does not exist (start `loggregator dev` to generate the \
                     development certificates, pass --cert-dir or {flag}, or use --plaintext)",
                    path.display()
                );
            }
        }
        Ok(Some(files))
    }
}
