//! Standalone `datadog-nozzle` binary.

use clap::Parser;

/// Loggregator datadog-nozzle.
#[derive(Debug, Parser)]
#[command(
    name = "datadog-nozzle",
    version,
    about = "Loggregator datadog-nozzle: firehose metrics to the Datadog series API"
)]
struct Cli {
    #[command(flatten)]
    args: nozzles::datadog::cli::Args,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    nozzles::datadog::cli::main(Cli::parse().args).await
}
