//! `herald-bench`: a load generator for Pusher Channels protocol servers.
//!
//! Parses the command line, raises the open-files limit, builds the tokio runtime and runs one
//! scenario; prints the report table and optionally writes it as JSON. The exit status is 1
//! when a run asked to fail on loss (`smoke`, `--fail-on-loss`) saw any, 2 on a usage or setup
//! error.

mod api;
mod cli;
mod clock;
mod fanout;
mod payload;
mod process;
mod recorder;
mod report;
mod subscriber;
mod target;
mod trigger;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

use crate::cli::{Cli, Command, FanoutArgs};
use crate::process::Process;
use crate::target::Target;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = match cli.command {
        Command::Fanout(args) => args,
        Command::Smoke(args) => args.into_fanout(),
    };
    match run(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("herald-bench: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs one fan-out; `Ok(false)` when it must fail on loss and saw some.
fn run(args: FanoutArgs) -> anyhow::Result<bool> {
    let plan = args.plan()?;
    let target = Target::from_args(&args.target)?;
    if let Err(error) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("herald-bench: could not raise the open-files limit: {error}");
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.target.worker_threads {
        builder.worker_threads(threads);
    }
    let runtime = builder.enable_all().build().context("starting the tokio runtime")?;
    let timeout = Duration::from_secs(args.target.timeout_seconds);
    let server = args.target.server_pid.map(Process::Pid);
    let urls = (args.target.ws_url.clone(), args.target.http_url.clone());
    let fail_on_loss = plan.fail_on_loss;
    let report = runtime.block_on(async move {
        let deadline = tokio::time::Instant::now() + timeout;
        fanout::run(target, urls, plan, server, deadline).await
    })?;
    // Tasks still blocked in a connect that outlived the deadline must not hold the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    print!("{}", report.table());
    if let Some(path) = &args.target.json {
        report.write_json(path)?;
    }
    let failures = report.failures();
    for failure in &failures {
        eprintln!("herald-bench: {failure}");
    }
    Ok(!fail_on_loss || failures.is_empty())
}
