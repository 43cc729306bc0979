//! The `/metrics` endpoint: its own listener, Prometheus' text format.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus::{Encoder, TextEncoder};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::Metrics;

/// Serves `GET /metrics` until `shutdown`; `refresh` updates the computed gauges first.
pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    refresh: Arc<dyn Fn() + Send + Sync>,
    shutdown: CancellationToken,
) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "metrics accept failed");
                    continue;
                }
            },
            () = shutdown.cancelled() => return,
        };
        let (metrics, refresh) = (metrics.clone(), refresh.clone());
        tokio::spawn(async move {
            let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let response = if request.uri().path() == "/metrics" {
                    refresh();
                    scrape(&metrics)
                } else {
                    text(StatusCode::NOT_FOUND, "not found: metrics are at /metrics\n".into())
                };
                std::future::ready(Ok::<_, Infallible>(response))
            });
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

fn scrape(metrics: &Metrics) -> Response<Full<Bytes>> {
    let encoder = TextEncoder::new();
    let mut body = Vec::new();
    if let Err(error) = encoder.encode(&metrics.registry.gather(), &mut body) {
        return text(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode metrics: {error}\n"));
    }
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}
