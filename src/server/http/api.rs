//! `/apps/{app_id}/…`: find the app, read the body within its limit, check the signature,
//! then dispatch to the endpoint.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use herald_protocol::http::{parse_query, verify_request, ApiRequest, Query};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use percent_encoding::percent_decode_str;

use super::{events, history, json, queries, ApiError};
use crate::apps::App;
use crate::metrics::Rejection;
use crate::server::{Body, Shared};

/// A request that passed authentication, with what the endpoints need.
#[derive(Debug)]
pub struct Authorized<'a> {
    pub app: &'a Arc<App>,
    pub shared: &'a Shared,
    pub query: Query,
    pub body: Bytes,
}

/// Serves one API request; `path` has any mount prefix already removed.
pub async fn handle(shared: &Shared, request: Request<Incoming>, path: &str) -> Response<Body> {
    match serve(shared, request, path).await {
        Ok(body) => json(StatusCode::OK, body),
        Err(error) => {
            tracing::debug!(%error, path, "api request refused");
            error.into_response()
        }
    }
}

async fn serve(shared: &Shared, request: Request<Incoming>, path: &str) -> Result<String, ApiError> {
    let rest = path.strip_prefix("/apps/").unwrap_or_default();
    let (app_id, endpoint) = rest.split_once('/').unwrap_or((rest, ""));
    let app = shared.apps.by_id(&decode(app_id)).ok_or_else(|| {
        ApiError::NotFound(format!("Unknown app id {:?}", app_id.chars().take(64).collect::<String>()))
    })?;
    app.metrics.http_calls.inc();
    let method = request.method().clone();
    let query = parse_query(request.uri().query().unwrap_or(""));
    let limit = shared.config.max_request_body_bytes;
    let body = Limited::new(request.into_body(), limit)
        .collect()
        .await
        .map_err(|_| {
            app.metrics.reject(Rejection::PayloadTooLarge);
            ApiError::PayloadTooLarge(format!("Request body is larger than {limit} bytes"))
        })?
        .to_bytes();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
    let signed = ApiRequest { method: method.as_str(), path, query: &query, body: &body };
    verify_request(signed, &app.config.key, &app.config.secret, now, shared.config.max_timestamp_skew_seconds)?;
    if !app.config.enabled {
        return Err(ApiError::AppDisabled);
    }
    if let Some(limiter) = &app.api_limiter {
        if limiter.check().is_err() {
            app.metrics.reject(Rejection::ApiRate);
            let limit = app.config.api_requests_per_second.unwrap_or_default();
            return Err(ApiError::TooManyRequests(format!("Too many requests: this app may make {limit} per second")));
        }
    }
    let req = Authorized { app, shared, query, body };
    let segments: Vec<String> = endpoint.split('/').map(decode).collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (segments.as_slice(), &method) {
        (["events"], &Method::POST) => events::trigger(&req).await,
        (["batch_events"], &Method::POST) => events::batch(&req).await,
        (["channels"], &Method::GET) => queries::channels(&req).await,
        (["channels", name], &Method::GET) => queries::channel(&req, name).await,
        (["channels", name, "users"], &Method::GET) => queries::users(&req, name).await,
        (["channels", name, "history"], &Method::GET) => history::history(&req, name).await,
        (["users", user_id, "terminate_connections"], &Method::POST) => queries::terminate(&req, user_id),
        (["connections"], &Method::GET) => {
            Ok(serde_json::json!({ "connections": app.connections().await }).to_string())
        }
        (
            ["events"] | ["batch_events"] | ["channels", ..] | ["connections"] | ["users", _, "terminate_connections"],
            m,
        ) => Err(ApiError::MethodNotAllowed(m.to_string())),
        _ => Err(ApiError::NotFound(format!("No endpoint at {path}"))),
    }
}

fn decode(segment: &str) -> String {
    percent_decode_str(segment).decode_utf8_lossy().into_owned()
}
