//! The command line and the environment, layered over the config file:
//! flags > environment > file > defaults.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{AppConfig, Config, ConfigError};

/// herald: a Pusher Channels compatible realtime server.
#[derive(Debug, Parser)]
#[command(name = "herald", version, about)]
pub struct Cli {
    /// TOML configuration file.
    #[arg(long, env = "HERALD_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Address to bind (overrides [server] host).
    #[arg(long, env = "HERALD_HOST", global = true)]
    pub host: Option<IpAddr>,
    /// Port to bind (overrides [server] port).
    #[arg(long, env = "HERALD_PORT", global = true)]
    pub port: Option<u16>,
    /// Log format.
    #[arg(long, env = "HERALD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Work with the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Validate the configuration and print it as herald will use it, secrets masked.
    Check,
}

/// Where the app list came from, for the startup log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppSource {
    File,
    LaravelEnv(&'static str),
    BuiltInDev,
}

/// Reads one environment variable through `lookup` (a parameter so tests need no global state).
type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

impl Cli {
    /// The effective configuration, validated.
    pub fn resolve(&self, env: Lookup<'_>) -> Result<(Config, AppSource), ConfigError> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(host) = parse_env(env, "REVERB_SERVER_HOST")? {
            config.server.host = host;
        }
        if let Some(port) = parse_env(env, "REVERB_SERVER_PORT")? {
            config.server.port = port;
        }
        if let Some(path) = env("REVERB_SERVER_PATH").filter(|p| !p.is_empty()) {
            config.server.path_prefix = format!("/{}", path.trim_matches('/'));
        }
        apply_redis_env(&mut config, env);
        apply_nats_env(&mut config, env)?;
        if let Some(host) = self.host {
            config.server.host = host;
        }
        if let Some(port) = self.port {
            config.server.port = port;
        }
        let source = if !config.apps.is_empty() {
            AppSource::File
        } else if let Some((app, source)) = laravel_app(env)? {
            config.apps.push(app);
            source
        } else {
            config.apps.push(AppConfig::dev());
            AppSource::BuiltInDev
        };
        config.validate()?;
        Ok((config, source))
    }
}

/// `HERALD_REDIS_URL` turns the Redis adapter on with that URL; so does Reverb's
/// `REVERB_SCALING_ENABLED=true` with `REDIS_URL` (or `REDIS_HOST`/`REDIS_PORT`/`REDIS_PASSWORD`).
fn apply_redis_env(config: &mut Config, env: Lookup<'_>) {
    let reverb_scaling = env("REVERB_SCALING_ENABLED").is_some_and(|v| v == "true" || v == "1");
    let reverb_url = || {
        env("REDIS_URL").filter(|u| !u.is_empty()).or_else(|| {
            let host = env("REDIS_HOST").unwrap_or_else(|| "127.0.0.1".into());
            let port = env("REDIS_PORT").unwrap_or_else(|| "6379".into());
            let auth = env("REDIS_PASSWORD").filter(|p| !p.is_empty()).map(|p| format!(":{p}@")).unwrap_or_default();
            Some(format!("redis://{auth}{host}:{port}"))
        })
    };
    let url = env("HERALD_REDIS_URL").filter(|u| !u.is_empty()).or_else(|| reverb_scaling.then(reverb_url).flatten());
    if let Some(url) = url {
        config.adapter.driver = crate::config::AdapterDriver::Redis;
        config.adapter.url = url;
    }
}

/// `HERALD_NATS_URL` turns the NATS adapter on with that URL (an error next to a Redis URL
/// from the environment: one adapter at a time).
fn apply_nats_env(config: &mut Config, env: Lookup<'_>) -> Result<(), ConfigError> {
    let Some(url) = env("HERALD_NATS_URL").filter(|u| !u.is_empty()) else { return Ok(()) };
    if env("HERALD_REDIS_URL").is_some_and(|u| !u.is_empty()) {
        let message = "HERALD_REDIS_URL is set too: choose one adapter".to_string();
        return Err(ConfigError::Env { name: "HERALD_NATS_URL".into(), message });
    }
    config.adapter.driver = crate::config::AdapterDriver::Nats;
    config.adapter.url = url;
    Ok(())
}

/// The app a Laravel `.env` describes: Reverb's variables first, then Pusher's.
fn laravel_app(env: Lookup<'_>) -> Result<Option<(AppConfig, AppSource)>, ConfigError> {
    for prefix in ["REVERB", "PUSHER"] {
        let get = |name: &str| env(&format!("{prefix}_APP_{name}")).filter(|v| !v.is_empty());
        let (Some(id), Some(key), Some(secret)) = (get("ID"), get("KEY"), get("SECRET")) else { continue };
        let mut app = AppConfig::new(&id, &key, &secret);
        if prefix == "REVERB" {
            // Reverb's defaults: a 30 s activity timeout, client events from members.
            app.activity_timeout_seconds = parse_env(env, "REVERB_APP_ACTIVITY_TIMEOUT")?.unwrap_or(30);
            app.max_connections = parse_env(env, "REVERB_APP_MAX_CONNECTIONS")?;
            if let Some(from) = env("REVERB_APP_ACCEPT_CLIENT_EVENTS_FROM") {
                app.client_events = matches!(from.as_str(), "members" | "all");
            }
            let source = AppSource::LaravelEnv("REVERB_APP_*");
            return Ok(Some((app, source)));
        }
        return Ok(Some((app, AppSource::LaravelEnv("PUSHER_APP_*"))));
    }
    Ok(None)
}

fn parse_env<T: std::str::FromStr>(env: Lookup<'_>, name: &str) -> Result<Option<T>, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match env(name).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(value) => value
            .parse()
            .map(Some)
            .map_err(|e| ConfigError::Env { name: name.into(), message: format!("{value:?}: {e}") }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve(args: &[&str], vars: &[(&str, &str)]) -> Result<(Config, AppSource), ConfigError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let cli = Cli::try_parse_from(std::iter::once("herald").chain(args.iter().copied())).unwrap();
        cli.resolve(&|name| vars.get(name).cloned())
    }

    #[test]
    fn no_configuration_serves_the_dev_app_on_6001() {
        let (config, source) = resolve(&[], &[]).unwrap();
        assert_eq!(source, AppSource::BuiltInDev);
        assert_eq!(config.server.port, 6001);
        assert_eq!(config.apps[0].key, "app-key");
    }

    #[test]
    fn a_reverb_env_defines_the_app_and_bind_address() {
        let vars = [
            ("REVERB_APP_ID", "123456"),
            ("REVERB_APP_KEY", "k"),
            ("REVERB_APP_SECRET", "s"),
            ("REVERB_SERVER_PORT", "8080"),
            ("PUSHER_APP_ID", "other"),
        ];
        let (config, source) = resolve(&[], &vars).unwrap();
        assert_eq!(source, AppSource::LaravelEnv("REVERB_APP_*"));
        assert_eq!(config.apps[0].id, "123456");
        assert_eq!(config.apps[0].activity_timeout_seconds, 30);
        assert_eq!(config.server.port, 8080);
    }

    #[test]
    fn flags_override_the_environment() {
        let (config, _) = resolve(&["--port", "7000"], &[("REVERB_SERVER_PORT", "8080")]).unwrap();
        assert_eq!(config.server.port, 7000);
    }

    #[test]
    fn a_redis_url_in_the_environment_turns_the_redis_adapter_on() {
        let (config, _) = resolve(&[], &[("HERALD_REDIS_URL", "redis://10.0.0.1:6380")]).unwrap();
        assert_eq!(config.adapter.driver, crate::config::AdapterDriver::Redis);
        assert_eq!(config.adapter.url, "redis://10.0.0.1:6380");
        let (config, _) = resolve(&[], &[("REVERB_SCALING_ENABLED", "true"), ("REDIS_HOST", "redis")]).unwrap();
        assert_eq!(config.adapter.url, "redis://redis:6379");
        let (config, _) = resolve(&[], &[]).unwrap();
        assert_eq!(config.adapter.driver, crate::config::AdapterDriver::Local);
    }

    #[test]
    fn a_nats_url_in_the_environment_turns_the_nats_adapter_on() {
        let (config, _) = resolve(&[], &[("HERALD_NATS_URL", "nats://10.0.0.1:4222")]).unwrap();
        assert_eq!(config.adapter.driver, crate::config::AdapterDriver::Nats);
        assert_eq!(config.adapter.url, "nats://10.0.0.1:4222");
        let both = [("HERALD_NATS_URL", "nats://n:4222"), ("HERALD_REDIS_URL", "redis://r:6379")];
        let err = resolve(&[], &both).unwrap_err().to_string();
        assert!(err.contains("HERALD_NATS_URL"), "{err}");
    }

    #[test]
    fn a_bad_environment_value_names_the_variable() {
        let err = resolve(&[], &[("REVERB_SERVER_PORT", "eighty")]).unwrap_err().to_string();
        assert!(err.contains("REVERB_SERVER_PORT"), "{err}");
    }
}
