//! Standalone `syslog-drain` binary.

use clap::Parser;

/// Loggregator syslog-drain.
#[derive(Debug, Parser)]
#[command(
    name = "syslog-drain",
    version,
    about = "Loggregator syslog-drain: syslog drain forwarder: app drains from doppler egress to syslog/https"
)]
struct Cli {
    #[command(flatten)]
    args: nozzles::drain::cli::Args,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    nozzles::drain::cli::main(Cli::parse().args).await
}
