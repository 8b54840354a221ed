//! Standalone traffic controller (upstream executable name `trafficcontroller`'s
//! equivalent): parses [`traffic_controller::cli::Args`] and runs it.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "traffic-controller",
    about = "Loggregator traffic controller: WebSocket firehose, app streams, recent logs and /v2/read"
)]
struct Cli {
    #[command(flatten)]
    args: traffic_controller::cli::Args,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match traffic_controller::cli::main(cli.args).await {
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
