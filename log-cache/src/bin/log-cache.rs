//! Standalone Log Cache (upstream job `log-cache`): parses
//! [`log_cache::cli::Args`] and runs a node.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "log-cache",
    about = "Log Cache: stores recent envelopes from dopplers, syslog and gRPC and serves the API the cf CLI reads `cf logs` from"
)]
struct Cli {
    #[command(flatten)]
    args: log_cache::cli::Args,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match log_cache::cli::main(cli.args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            report(&e);
            std::process::ExitCode::FAILURE
        }
    }
}

#[allow(clippy::print_stderr)]
fn report(e: &anyhow::Error) {
    eprintln!("{e:#}");
}
