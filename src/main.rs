//! `loggregator`: the single command for every component and user tool.
//!
//! `loggregator dev` runs the whole pipeline on loopback; `emit`, `logs` and
//! `firehose` are the user's tools and talk to `dev`'s default ports without
//! flags; `doppler`, `agent`, `traffic-controller`, `log-cache`, `nozzle ...`
//! and `syslog-drain` run one component exactly like its standalone binary.
//!
//! This file only parses the command line and decides the exit code; each
//! subcommand lives in `src/cli/<name>.rs`.

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Wire-compatible Rust reimplementation of Cloud Foundry's Loggregator.
#[derive(Debug, Parser)]
#[command(name = "loggregator", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// Log level or filter for the tool's own diagnostics on stderr (`RUST_LOG` wins when set)
    /// [default: info].
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process; boxing the large component option structs would gain nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Run agent, two dopplers and a traffic controller in one process on loopback.
    Dev(cli::dev::Args),
    /// Send logs (stdin or arguments, one envelope per line) and metrics to an agent.
    Emit(cli::emit::Args),
    /// Show an app's logs in the `cf logs` format: recent logs, then the live stream.
    Logs(cli::logs::Args),
    /// Read the firehose from a traffic controller.
    Firehose(cli::firehose::Args),
    /// Run a doppler (same options as the standalone `doppler` binary).
    Doppler(cli::components::DopplerArgs),
    /// Run a metron agent (same options as the standalone `metron-agent` binary).
    Agent(cli::components::AgentArgs),
    /// Run a traffic controller (same options as the standalone `traffic-controller` binary).
    TrafficController(cli::components::TrafficControllerArgs),
    /// Run a Log Cache node (same options as the standalone `log-cache` binary).
    LogCache(cli::components::LogCacheArgs),
    /// Run a nozzle that reads the firehose and forwards it.
    #[command(subcommand)]
    Nozzle(cli::components::NozzleCommand),
    /// Forward app logs to the syslog drains bound to them.
    SyslogDrain(cli::components::SyslogDrainArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return cli::errors::clap_exit(&err),
    };
    let result = cli::runtime().and_then(|rt| rt.block_on(dispatch(cli)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => cli::errors::report(&err),
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let top_level = cli.log_level;
    match cli.command {
        Command::Dev(args) => {
            cli::init_tracing(top_level.as_deref(), &args.common)?;
            cli::dev::main(args).await
        }
        Command::Emit(args) => {
            cli::init_tracing(top_level.as_deref(), &args.common)?;
            cli::emit::main(args).await
        }
        Command::Logs(args) => {
            cli::init_tracing(top_level.as_deref(), &args.common)?;
            cli::logs::main(args).await
        }
        Command::Firehose(args) => {
            cli::init_tracing(top_level.as_deref(), &args.common)?;
            cli::firehose::main(args).await
        }
        Command::Doppler(args) => cli::components::doppler(args, top_level).await,
        Command::Agent(args) => cli::components::agent(args, top_level).await,
        Command::TrafficController(args) => {
            cli::components::traffic_controller(args, top_level).await
        }
        Command::LogCache(args) => cli::components::log_cache(args, top_level).await,
        Command::Nozzle(cmd) => cli::components::nozzle(cmd, top_level).await,
        Command::SyslogDrain(args) => cli::components::syslog_drain(args, top_level).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// clap's own consistency checks over every subcommand, including the flattened component
    /// options (duplicate names would otherwise only panic at run time in debug builds).
    #[test]
    fn command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
