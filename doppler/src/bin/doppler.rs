//! Standalone `doppler` binary (upstream executable name).

use clap::Parser;

/// Loggregator doppler (router).
#[derive(Debug, Parser)]
#[command(
    name = "doppler",
    version,
    about = "Loggregator doppler: routes envelopes from agents to subscribers"
)]
struct Cli {
    #[command(flatten)]
    args: doppler::cli::Args,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    doppler::cli::main(Cli::parse().args).await
}
