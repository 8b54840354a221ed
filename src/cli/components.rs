//! Thin delegations: `loggregator doppler|agent|traffic-controller|syslog-drain` parse the
//! component crate's own `cli::Args` (the same options as its standalone binary) and call its
//! `cli::main`.

use super::Common;

/// `loggregator doppler` options: those of the standalone `doppler` binary.
#[derive(Debug, clap::Args)]
pub(crate) struct DopplerArgs {
    #[command(flatten)]
    args: doppler::cli::Args,
}

/// `loggregator agent` options: those of the standalone `metron-agent` binary.
#[derive(Debug, clap::Args)]
pub(crate) struct AgentArgs {
    #[command(flatten)]
    args: metron_agent::cli::Args,
}

/// `loggregator traffic-controller` options: those of the standalone `traffic-controller`
/// binary.
#[derive(Debug, clap::Args)]
pub(crate) struct TrafficControllerArgs {
    #[command(flatten)]
    args: traffic_controller::cli::Args,
}

/// `loggregator syslog-drain` options.
#[derive(Debug, clap::Args)]
pub(crate) struct SyslogDrainArgs {
    #[command(flatten)]
    args: nozzles::drain::cli::Args,
    #[command(flatten)]
    common: Common,
}

/// Runs a doppler. The top-level `--log-level`, when given, wins over the default.
pub(crate) async fn doppler(a: DopplerArgs, top_level: Option<String>) -> anyhow::Result<()> {
    let mut args = a.args;
    if let Some(level) = top_level {
        args.log_level = level;
    }
    doppler::cli::main(args).await
}

/// Runs a metron agent.
pub(crate) async fn agent(a: AgentArgs, top_level: Option<String>) -> anyhow::Result<()> {
    let mut args = a.args;
    if let Some(level) = top_level {
        args.log_level = level;
    }
    metron_agent::cli::main(args).await
}

/// Runs a traffic controller.
pub(crate) async fn traffic_controller(
    a: TrafficControllerArgs,
    top_level: Option<String>,
) -> anyhow::Result<()> {
    let mut args = a.args;
    if let Some(level) = top_level {
        args.log_level = level;
    }
    traffic_controller::cli::main(args).await
}

/// Runs the syslog drain forwarder.
pub(crate) async fn syslog_drain(
    a: SyslogDrainArgs,
    top_level: Option<String>,
) -> anyhow::Result<()> {
    super::init_tracing(top_level.as_deref(), &a.common)?;
    nozzles::drain::cli::main(a.args).await
}
