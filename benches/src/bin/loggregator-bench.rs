//! `loggregator-bench`: runs the benchmark scenarios against the components started from a
//! `loggregator` binary and writes Markdown and JSON reports.

use benches::report::SuiteReport;
use benches::scenario::{SuiteOptions, run_suite};
use clap::Parser;
use std::path::PathBuf;

/// Benchmark suite for Loggregator-compatible pipelines.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Run every scenario briefly to prove the harness works (numbers are not meaningful).
    #[arg(long)]
    quick: bool,
    /// The `loggregator` binary that starts the components (`doppler`, `agent`,
    /// `traffic-controller` subcommands, configured by the upstream environment variables).
    /// Default: `loggregator` next to this executable.
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Measured seconds per offered rate (default 10, or 1 with --quick).
    #[arg(long)]
    seconds: Option<f64>,
    /// Offered rates to sweep, ascending, comma-separated (envelopes/s).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "20000,50000,100000,200000,300000,500000,750000,1000000"
    )]
    rates: Vec<u64>,
    /// Only run scenarios whose id starts with one of these (e.g. W2,W3).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Directory for `report.md` and `report.json`.
    #[arg(long, default_value = "target/bench-report")]
    out: PathBuf,
    /// Log level for the harness itself.
    #[arg(long, default_value = "warn")]
    log_level: String,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    plumbing::logline::init_tracing(&args.log_level)?;
    let binary = match args.binary {
        Some(b) => b,
        None => std::env::current_exe()?
            .parent()
            .map(|d| d.join("loggregator"))
            .ok_or_else(|| {
                anyhow::anyhow!("cannot locate the loggregator binary; pass --binary")
            })?,
    };
    anyhow::ensure!(
        binary.exists(),
        "{} does not exist: build it (cargo build --release) or pass --binary",
        binary.display()
    );
    let rates = if args.quick { vec![2_000] } else { args.rates };
    let opts = SuiteOptions {
        binary,
        quick: args.quick,
        seconds: args.seconds.unwrap_or(if args.quick { 1.0 } else { 10.0 }),
        rates,
        only: args.only,
    };
    let scenarios = run_suite(&opts).await?;
    let report = SuiteReport {
        quick: opts.quick,
        machine: machine(),
        scenarios,
    };
    std::fs::create_dir_all(&args.out)?;
    let md = report.to_markdown();
    std::fs::write(args.out.join("report.md"), &md)?;
    std::fs::write(
        args.out.join("report.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    let failed: Vec<_> = report
        .scenarios
        .iter()
        .filter(|s| s.runs.is_empty())
        .map(|s| s.id.clone())
        .collect();
    emit(&md);
    anyhow::ensure!(
        failed.is_empty(),
        "scenarios failed to run: {}",
        failed.join(", ")
    );
    Ok(())
}

#[allow(clippy::print_stdout)]
fn emit(md: &str) {
    println!("{md}");
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    format!("{cpus} cores, {model}")
}
