//! The network side: one TCP listener serving the HTTP API and WebSocket upgrades on the same
//! port, the accept loop, request routing, and shutdown.

pub mod http;
mod socket_ids;
pub mod ws;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::apps::Apps;
use crate::config::{Config, ServerConfig};
use crate::metrics::Metrics;
use crate::webhooks::Webhooks;
use socket_ids::SocketIds;

/// Response bodies are always complete buffers.
pub type Body = Full<Bytes>;

/// How long a client may take to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// State every connection and request shares.
#[derive(Debug)]
pub struct Shared {
    pub config: ServerConfig,
    pub apps: Apps,
    pub socket_ids: SocketIds,
    pub shutdown: CancellationToken,
}

/// A bound, not yet running, herald server.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    config: Config,
}

impl Server {
    /// Binds the configured address (port 0 picks a free port).
    pub async fn bind(config: Config) -> std::io::Result<Self> {
        let listener = TcpListener::bind((config.server.host, config.server.port)).await?;
        let metrics_listener = match config.metrics.enabled {
            true => Some(TcpListener::bind((config.metrics.host, config.metrics.port)).await?),
            false => None,
        };
        Ok(Self { listener, metrics_listener, config })
    }

    /// The address `/metrics` is served on, when enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Serves until `shutdown` is cancelled, then asks every socket to reconnect elsewhere
    /// (close 4200) and waits for the connections to finish.
    pub async fn run(self, shutdown: CancellationToken) {
        let addr = self.local_addr();
        let tracker = TaskTracker::new();
        let webhooks = Webhooks::start(&self.config.webhooks, shutdown.clone(), &tracker);
        let metrics = Metrics::new(&self.config.metrics.prefix);
        let shared = Arc::new(Shared {
            apps: Apps::new(&self.config.apps, &webhooks, &metrics),
            config: self.config.server,
            socket_ids: SocketIds::new(),
            shutdown: shutdown.clone(),
        });
        tracing::info!("listening on {addr}");
        if let Some(listener) = self.metrics_listener {
            let (refresh_from, exported, webhook_stats) = (shared.clone(), metrics.clone(), webhooks.stats());
            let refresh: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
                for app in refresh_from.apps.iter() {
                    app.refresh_metrics();
                }
                exported.sync_webhooks(&webhook_stats);
            });
            if let Ok(addr) = listener.local_addr() {
                tracing::info!("metrics on http://{addr}/metrics");
            }
            tracker.spawn(crate::metrics::serve(listener, metrics, refresh, shutdown.clone()));
        }
        loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        tracker.spawn(serve_connection(shared.clone(), stream, tracker.clone()));
                    }
                    Err(error) => {
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                () = shutdown.cancelled() => break,
            }
        }
        drop(self.listener);
        // The webhook dispatcher finishes once every app handle is gone: drop ours now so it
        // only outlives the last connection task, not this function.
        drop(shared);
        drop(webhooks);
        tracker.close();
        tracker.wait().await;
    }
}

async fn serve_connection(shared: Arc<Shared>, stream: TcpStream, tracker: TaskTracker) {
    let _ = stream.set_nodelay(true);
    let shutdown = shared.shutdown.clone();
    let service = service_fn(move |request| {
        let shared = shared.clone();
        let tracker = tracker.clone();
        async move { Ok::<_, Infallible>(route(shared, request, &tracker).await) }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => if let Err(error) = result {
            tracing::debug!(%error, "http connection ended with an error");
        },
        () = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

async fn route(shared: Arc<Shared>, mut request: Request<Incoming>, tracker: &TaskTracker) -> Response<Body> {
    let prefix = shared.config.path_prefix.as_str();
    let path = request.uri().path().to_string();
    let Some(path) = path.strip_prefix(prefix) else {
        return http::not_found();
    };
    if let Some(key) = path.strip_prefix("/app/") {
        if key.is_empty() || key.contains('/') || !fastwebsockets::upgrade::is_upgrade_request(&request) {
            return http::not_found();
        }
        let handshake = ws::Handshake {
            app_key: key.to_string(),
            query: request.uri().query().map(str::to_string),
            origin: request.headers().get(hyper::header::ORIGIN).and_then(|v| v.to_str().ok()).map(str::to_string),
        };
        return match fastwebsockets::upgrade::upgrade(&mut request) {
            Ok((response, upgrade)) => {
                tracker.spawn(ws::serve(shared.clone(), upgrade, handshake));
                response.map(|_| Body::default())
            }
            Err(error) => http::bad_request(&format!("WebSocket upgrade failed: {error}")),
        };
    }
    if path.starts_with("/apps/") {
        return http::api::handle(&shared, request, path).await;
    }
    match path {
        "/up" | "/healthz" => http::json(hyper::StatusCode::OK, r#"{"health":"OK"}"#.to_string()),
        "/readyz" if shared.shutdown.is_cancelled() => {
            http::json(hyper::StatusCode::SERVICE_UNAVAILABLE, r#"{"ready":false,"reason":"draining"}"#.to_string())
        }
        "/readyz" => http::json(hyper::StatusCode::OK, r#"{"ready":true}"#.to_string()),
        _ => http::not_found(),
    }
}
