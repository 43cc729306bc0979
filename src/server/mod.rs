//! The network side: one TCP listener serving the HTTP API, WebSocket upgrades and pusher-js's
//! HTTP fallback transports on the same port, the accept loop, request routing, and shutdown.

mod cluster;
mod dashboard;
pub mod http;
mod socket_ids;
mod sse;
pub mod tls;
pub mod ws;
mod xhr;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use std::net::IpAddr;
use std::num::NonZeroU32;

use bytes::Bytes;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::apps::Apps;
use crate::config::{Config, ServerConfig};
use crate::metrics::Metrics;
use crate::webhooks::Webhooks;
use socket_ids::SocketIds;

/// Response bodies: complete buffers, except the dashboard's event stream.
pub type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// A complete response body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    use http_body_util::BodyExt;
    Full::new(bytes.into()).boxed()
}

/// How long a TLS handshake may take.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// State every connection and request shares.
#[derive(Debug)]
pub struct Shared {
    pub config: ServerConfig,
    pub dashboard: crate::config::DashboardConfig,
    pub apps: Arc<Apps>,
    pub socket_ids: SocketIds,
    /// The cluster adapter (Redis or NATS), when this node is part of a cluster.
    pub cluster: Option<crate::adapter::Cluster>,
    /// Cancelled when the drain starts (SIGTERM/SIGINT).
    pub shutdown: CancellationToken,
    /// Cancelled when the drain window is over: HTTP connections finish and close.
    pub stopped: CancellationToken,
    /// WebSocket connection attempts (and new HTTP sessions) per client address, when limited.
    pub connection_attempts: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// The live sessions of pusher-js's HTTP transports.
    pub xhr: xhr::Sessions,
}

/// A bound, not yet running, herald server.
pub struct Server {
    listener: TcpListener,
    cluster: Option<cluster::ClusterLink>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    metrics_listener: Option<TcpListener>,
    config: Config,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.local_addr())
            .field("tls", &self.tls.is_some())
            .field("cluster", &self.cluster.is_some())
            .field("metrics_addr", &self.metrics_addr())
            .finish()
    }
}

impl Server {
    /// Binds the configured address (port 0 picks a free port) and loads TLS material.
    pub async fn bind(config: Config) -> std::io::Result<Self> {
        let tls = match &config.server.tls {
            Some(tls) => {
                Some(tls::acceptor(tls).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?)
            }
            None => None,
        };
        let listener = bind(config.server.host, config.server.port, "server").await?;
        let metrics_host = config.metrics.host.unwrap_or(config.server.host);
        let metrics_listener = match config.metrics.enabled {
            true => Some(bind(metrics_host, config.metrics.port, "metrics").await?),
            false => None,
        };
        let cluster = cluster::ClusterLink::connect(&config.adapter).await?;
        if let Some(link) = &cluster {
            // The cluster applies the webhooks' leave delay across nodes (docs/cluster.md).
            link.adapter.set_leave_delay(std::time::Duration::from_millis(config.webhooks.leave_delay_ms));
        }
        Ok(Self { listener, cluster, tls, metrics_listener, config })
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
            apps: Arc::new(Apps::new(
                &self.config.apps,
                &webhooks,
                &metrics,
                self.cluster.as_ref().map(|c| &c.adapter),
            )),
            cluster: self.cluster.as_ref().map(|c| c.adapter.clone()),
            config: self.config.server.clone(),
            dashboard: self.config.dashboard.clone(),
            socket_ids: SocketIds::new(),
            shutdown: shutdown.clone(),
            stopped: CancellationToken::new(),
            connection_attempts: self
                .config
                .server
                .connection_attempts_per_ip_per_minute
                .and_then(NonZeroU32::new)
                .map(|n| RateLimiter::keyed(Quota::per_minute(n))),
            xhr: xhr::Sessions::default(),
        });
        tracing::info!("listening on {addr}");
        if let Some(cluster) = &self.cluster {
            cluster.bind(&shared.apps);
        }
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
        // During the drain the listener stays open: the API and health endpoints keep
        // answering, new WebSocket upgrades are refused with 4200.
        let drain_window = Duration::from_secs(shared.config.drain_window_seconds);
        let watched = shared.clone();
        let stop_accepting = async move {
            shutdown.cancelled().await;
            tracing::info!(window_seconds = drain_window.as_secs(), "draining: closing sockets with 4200");
            let deadline = tokio::time::Instant::now() + drain_window;
            // Bounded: at most one check every 50 ms until the window ends.
            while tokio::time::Instant::now() < deadline && watched.apps.iter().any(|a| a.connection_count() > 0) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::pin!(stop_accepting);
        let mut prune = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        let (shared, tls, tasks) = (shared.clone(), self.tls.clone(), tracker.clone());
                        tracker.spawn(async move {
                            match tls {
                                None => serve_connection(shared, stream, peer, tasks).await,
                                Some(acceptor) => match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                                    Ok(Ok(stream)) => serve_connection(shared, stream, peer, tasks).await,
                                    Ok(Err(error)) => tracing::debug!(%error, %peer, "TLS handshake failed"),
                                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                                },
                            }
                        });
                    }
                    Err(error) => {
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                _ = prune.tick() => {
                    if let Some(limiter) = &shared.connection_attempts {
                        limiter.retain_recent();
                    }
                }
                () = &mut stop_accepting => break,
            }
        }
        drop(self.listener);
        shared.stopped.cancel();
        // The webhook dispatcher finishes once every app handle is gone: drop ours now so it
        // only outlives the last connection task, not this function.
        drop(shared);
        drop(webhooks);
        tracker.close();
        tracker.wait().await;
        if let Some(cluster) = self.cluster {
            cluster.stop().await;
        }
    }
}

async fn serve_connection<I>(shared: Arc<Shared>, stream: I, peer: SocketAddr, tracker: TaskTracker)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let stopped = shared.stopped.clone();
    let header_timeout = Duration::from_secs(shared.config.header_read_timeout_seconds);
    // Cancelled by an event stream whose client stopped reading (the connection is dropped),
    // and when the connection ends (so the stream stops waiting for it).
    let abort = CancellationToken::new();
    let _ended = abort.clone().drop_guard();
    let aborts = abort.clone();
    // The request's future is boxed and freed when it completes: hyper keeps the allocation
    // of its in-flight future for the connection's whole life, and every route's future
    // inline would make that about 13 KiB on each long-lived SSE or HTTP-fallback connection.
    let service = service_fn(move |request| {
        let (shared, tracker, abort) = (shared.clone(), tracker.clone(), aborts.clone());
        let routed: std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>> =
            Box::pin(async move { Ok::<_, Infallible>(route(shared, request, peer, &tracker, &abort).await) });
        routed
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => if let Err(error) = result {
            tracing::debug!(%error, "http connection ended with an error");
        },
        () = stopped.cancelled() => {
            connection.as_mut().graceful_shutdown();
            tokio::select! {
                _ = connection => {}
                () = abort.cancelled() => {}
            }
        }
        () = abort.cancelled() => tracing::debug!(%peer, "connection dropped: its event stream was abandoned"),
    }
}

async fn route(
    shared: Arc<Shared>,
    mut request: Request<Incoming>,
    peer: SocketAddr,
    tracker: &TaskTracker,
    abort: &CancellationToken,
) -> Response<Body> {
    let prefix = shared.config.path_prefix.as_str();
    let path = request.uri().path().to_string();
    let Some(path) = path.strip_prefix(prefix) else {
        return http::not_found();
    };
    // `/app/{key}/events` before `/app/{key}`, which only takes WebSocket upgrades.
    if let Some(key) = path.strip_prefix("/app/").and_then(|rest| rest.strip_suffix("/events")) {
        if !key.is_empty() && !key.contains('/') {
            return sse::handle(&shared, request, key, peer, tracker, abort).await;
        }
    }
    if let Some(key) = path.strip_prefix("/app/") {
        if key.is_empty() || key.contains('/') || !fastwebsockets::upgrade::is_upgrade_request(&request) {
            return http::not_found();
        }
        if over_attempt_rate(&shared, &request, peer, key) {
            return http::ApiError::TooManyRequests("Too many connection attempts from this address".into())
                .into_response();
        }
        let handshake = ws::Handshake {
            app_key: key.to_string(),
            query: request.uri().query().map(str::to_string),
            origin: request.headers().get(hyper::header::ORIGIN).and_then(|v| v.to_str().ok()).map(str::to_string),
        };
        return match fastwebsockets::upgrade::upgrade(&mut request) {
            Ok((response, upgrade)) => {
                tracker.spawn(ws::serve(shared.clone(), upgrade, handshake));
                response.map(|_| full(Bytes::new()))
            }
            Err(error) => http::bad_request(&format!("WebSocket upgrade failed: {error}")),
        };
    }
    if let Some(rest) = path.strip_prefix(xhr::ROOT) {
        let ip = client_ip(&request, peer, shared.config.trust_forwarded_for);
        return xhr::handle(&shared, request, rest, ip, tracker).await;
    }
    if path == "/dashboard" || path.starts_with("/dashboard/") {
        return dashboard::handle(&shared, request, path).await;
    }
    if path.starts_with("/apps/") {
        return http::api::handle(&shared, request, path).await;
    }
    match path {
        "/up" | "/healthz" => http::json(hyper::StatusCode::OK, r#"{"health":"OK"}"#.to_string()),
        "/readyz" if shared.shutdown.is_cancelled() => {
            http::json(hyper::StatusCode::SERVICE_UNAVAILABLE, r#"{"ready":false,"reason":"draining"}"#.to_string())
        }
        "/readyz" if shared.cluster.as_ref().is_some_and(|c| !c.is_available()) => http::json(
            hyper::StatusCode::SERVICE_UNAVAILABLE,
            r#"{"ready":false,"reason":"adapter unavailable"}"#.to_string(),
        ),
        "/readyz" => http::json(hyper::StatusCode::OK, r#"{"ready":true}"#.to_string()),
        _ => http::not_found(),
    }
}

/// Whether a connection attempt (WebSocket or event stream) for app `key` is over the
/// per-address rate; counted as a rejection when it is.
fn over_attempt_rate(shared: &Shared, request: &Request<Incoming>, peer: SocketAddr, key: &str) -> bool {
    let Some(limiter) = &shared.connection_attempts else { return false };
    let ip = client_ip(request, peer, shared.config.trust_forwarded_for);
    if limiter.check_key(&ip).is_ok() {
        return false;
    }
    if let Some(app) = shared.apps.by_key(key) {
        app.metrics.reject(crate::metrics::Rejection::ConnectionRate);
    }
    true
}

/// The client's address: the peer, or the first `X-Forwarded-For` entry behind a trusted proxy.
fn client_ip(request: &Request<Incoming>, peer: SocketAddr, trust_forwarded_for: bool) -> IpAddr {
    let forwarded = trust_forwarded_for
        .then(|| request.headers().get("x-forwarded-for"))
        .flatten()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.trim().parse().ok());
    forwarded.unwrap_or(peer.ip())
}

/// Binds `host:port`, naming which listener failed.
async fn bind(host: IpAddr, port: u16, what: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind((host, port))
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot bind the {what} listener on {host}:{port}: {e}")))
}
