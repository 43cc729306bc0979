//! The `herald` binary: parse the command line, resolve the configuration, run the server
//! until SIGINT or SIGTERM.

use anyhow::Context;
use clap::Parser;
use herald::cli::{AppSource, Cli, Command, ConfigAction, LogFormat};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let resolved = cli.resolve(&|name| std::env::var(name).ok());
    if let Some(Command::Config { action: ConfigAction::Check }) = cli.command {
        return match resolved {
            Ok((config, _)) => {
                print!("{}", config.to_masked_toml());
                Ok(())
            }
            Err(error) => {
                eprintln!("invalid configuration: {error}");
                std::process::exit(1);
            }
        };
    }
    init_logging(cli.log_format);
    let (config, source) = resolved.context("invalid configuration")?;
    if let Err(error) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!(%error, "could not raise the open-files limit");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(serve(config, source))
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn serve(config: herald::config::Config, source: AppSource) -> anyhow::Result<()> {
    let server = herald::Server::bind(config.clone()).await.context("cannot start")?;
    let addr = server.local_addr();
    match source {
        AppSource::BuiltInDev => tracing::info!(
            "no app configured: serving the development app (id app-id, key app-key, secret app-secret); \
             connect pusher-js with key 'app-key', wsHost '{}', wsPort {}, forceTLS false",
            if addr.ip().is_unspecified() { "127.0.0.1".to_string() } else { addr.ip().to_string() },
            addr.port()
        ),
        AppSource::LaravelEnv(vars) => tracing::info!("app {} from {vars}", config.apps[0].id),
        AppSource::File => tracing::info!(apps = config.apps.len(), "apps from the config file"),
    }
    let shutdown = CancellationToken::new();
    tokio::spawn(signal_shutdown(shutdown.clone()));
    let grace = std::time::Duration::from_secs(config.server.shutdown_grace_seconds);
    let run = server.run(shutdown.clone());
    tokio::pin!(run);
    tokio::select! {
        () = &mut run => tracing::info!("stopped"),
        () = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(grace_seconds = grace.as_secs(), "grace period over: exiting with connections still open");
        }
    }
    Ok(())
}

async fn signal_shutdown(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: asking clients to reconnect (4200)");
    shutdown.cancel();
}
