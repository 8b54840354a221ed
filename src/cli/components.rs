//! Thin delegations: `loggregator doppler|agent|traffic-controller|nozzle syslog|nozzle
//! datadog|syslog-drain` parse the component crate's own `cli::Args` (the same options as its
//! standalone binary) and call its `cli::main`. Each component has its own `--log-level`; the
//! top-level `loggregator --log-level` wins when given.

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

/// `loggregator log-cache` options.
#[derive(Debug, clap::Args)]
pub(crate) struct LogCacheArgs {
    #[command(flatten)]
    args: log_cache::cli::Args,
}

/// `loggregator syslog-drain` options.
#[derive(Debug, clap::Args)]
pub(crate) struct SyslogDrainArgs {
    #[command(flatten)]
    args: nozzles::drain::cli::Args,
}

/// `loggregator nozzle ...`: firehose nozzles.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum NozzleCommand {
    /// Forward the firehose to a syslog server (RFC 5424 over TCP/TLS, or JSON lines).
    Syslog(SyslogNozzleArgs),
    /// Send firehose metrics to the Datadog series API.
    Datadog(DatadogNozzleArgs),
}

/// `loggregator nozzle syslog` options.
#[derive(Debug, clap::Args)]
pub(crate) struct SyslogNozzleArgs {
    #[command(flatten)]
    args: nozzles::syslog_nozzle::cli::Args,
}

/// `loggregator nozzle datadog` options.
#[derive(Debug, clap::Args)]
pub(crate) struct DatadogNozzleArgs {
    #[command(flatten)]
    args: nozzles::datadog::cli::Args,
}

/// Runs a doppler.
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

/// Runs a log-cache node.
pub(crate) async fn log_cache(a: LogCacheArgs, top_level: Option<String>) -> anyhow::Result<()> {
    let mut args = a.args;
    if let Some(level) = top_level {
        args.log_level = level;
    }
    log_cache::cli::main(args).await
}

/// Runs the syslog drain forwarder.
pub(crate) async fn syslog_drain(
    a: SyslogDrainArgs,
    top_level: Option<String>,
) -> anyhow::Result<()> {
    let mut args = a.args;
    if let Some(level) = top_level {
        args.log_level = level;
    }
    nozzles::drain::cli::main(args).await
}

/// Runs a nozzle.
pub(crate) async fn nozzle(cmd: NozzleCommand, top_level: Option<String>) -> anyhow::Result<()> {
    match cmd {
        NozzleCommand::Syslog(a) => {
            let mut args = a.args;
            if let Some(level) = top_level {
                args.log_level = level;
            }
            nozzles::syslog_nozzle::cli::main(args).await
        }
        NozzleCommand::Datadog(a) => {
            let mut args = a.args;
            if let Some(level) = top_level {
                args.log_level = level;
            }
            nozzles::datadog::cli::main(args).await
        }
    }
}
