//! Standalone `nozzle-syslog` binary.

use clap::Parser;

/// Loggregator nozzle-syslog.
#[derive(Debug, Parser)]
#[command(
    name = "nozzle-syslog",
    version,
    about = "Loggregator nozzle-syslog: firehose to syslog (RFC 5424 or JSON lines)"
)]
struct Cli {
    #[command(flatten)]
    args: nozzles::syslog_nozzle::cli::Args,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    nozzles::syslog_nozzle::cli::main(Cli::parse().args).await
}
