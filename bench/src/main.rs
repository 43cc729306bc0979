//! `herald-bench`: a load generator for Pusher Channels protocol servers.
//!
//! Parses the command line, raises the open-files limit, builds the tokio runtime and runs one
//! scenario; prints the report table and optionally writes it as JSON. The exit status is 1
//! when a run asked to fail on loss (`smoke`, `--fail-on-loss`) saw any, 2 on a usage or setup
//! error.

mod api;
mod api_load;
mod ceiling;
mod chat;
mod cli;
mod clock;
mod connect;
mod fanout;
mod payload;
mod presence;
mod process;
mod recorder;
mod report;
mod socket;
mod storm;
mod subscriber;
mod target;
mod trigger;
mod usage;

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tokio::time::Instant;

use crate::cli::{Cli, Command, TargetArgs};
use crate::process::Process;
use crate::report::Summary;
use crate::target::Target;

/// What every scenario is given: the server to load, its process and the run's deadline.
#[derive(Debug, Clone)]
pub struct Run {
    pub target: Target,
    /// The server's process (`--server-pid`), for its RSS and CPU time.
    pub server: Option<Process>,
    pub deadline: Instant,
    pub ws_url: String,
    pub http_url: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Fanout(args) => fanout(args),
        Command::Smoke(args) => fanout(&args.clone().into_fanout()),
        Command::Ceiling(a) => a.check().and_then(|()| {
            execute(&a.target, a.planned_seconds(), false, |run| async move { ceiling::run(&run, a).await })
        }),
        Command::Presence(a) => a
            .check()
            .and_then(|()| execute(&a.target, 0, a.fail_on_loss, |run| async move { presence::run(&run, a).await })),
        Command::Chat(a) => a
            .check()
            .and_then(|()| execute(&a.target, 0, a.fail_on_loss, |run| async move { chat::run(&run, a).await })),
        Command::Storm(a) => a
            .check()
            .and_then(|()| execute(&a.target, 0, a.fail_on_loss, |run| async move { storm::run(&run, a).await })),
        Command::Api(a) => a.check().and_then(|()| {
            execute(&a.target, a.seconds, a.fail_on_loss, |run| async move { api_load::run(&run, a).await })
        }),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("herald-bench: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn fanout(args: &cli::FanoutArgs) -> anyhow::Result<bool> {
    let plan = args.plan()?;
    execute(&args.target, 0, plan.fail_on_loss, |run| async move { fanout::run(&run, plan).await })
}

/// Runs one scenario on a fresh runtime, prints its table and writes its JSON; `Ok(false)`
/// when it must fail on loss and saw some.
fn execute<S, F>(
    args: &TargetArgs,
    planned_seconds: u64,
    fail_on_loss: bool,
    scenario: impl FnOnce(Run) -> F,
) -> anyhow::Result<bool>
where
    S: Summary,
    F: Future<Output = anyhow::Result<S>>,
{
    let target = Target::from_args(args)?;
    if let Err(error) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("herald-bench: could not raise the open-files limit: {error}");
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.worker_threads {
        builder.worker_threads(threads);
    }
    let runtime = builder.enable_all().build().context("starting the tokio runtime")?;
    let timeout = args.timeout(planned_seconds);
    let server = args.server_pid.map(Process::Pid);
    let (ws_url, http_url) = (args.ws_url.clone(), args.http_url.clone());
    let report = runtime.block_on(async move {
        let run = Run { target, server, deadline: Instant::now() + timeout, ws_url, http_url };
        scenario(run).await
    })?;
    // Tasks still blocked in a connect that outlived the deadline must not hold the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    print!("{}", report.table());
    if let Some(path) = &args.json {
        report.write_json(path)?;
    }
    let failures = report.failures();
    for failure in &failures {
        eprintln!("herald-bench: {failure}");
    }
    Ok(!fail_on_loss || failures.is_empty())
}
