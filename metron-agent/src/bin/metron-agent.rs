//! Standalone `metron-agent` binary: parses [`metron_agent::cli::Args`] and
//! runs [`metron_agent::cli::main`]; exits 1 on any startup error.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "metron-agent",
    version,
    about = "Loggregator agent: UDP v1 and mTLS gRPC v2 ingress forwarding to dopplers"
)]
struct Cli {
    #[command(flatten)]
    args: metron_agent::cli::Args,
}

#[tokio::main]
#[allow(clippy::print_stderr)]
async fn main() {
    let cli = Cli::parse();
    if let Err(e) = metron_agent::cli::main(cli.args).await {
        eprintln!("metron-agent: {e:#}");
        std::process::exit(1);
    }
}
