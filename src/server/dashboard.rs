//! `/dashboard`: the live debug page. STUB: being written.

use hyper::body::Incoming;
use hyper::{Request, Response};

use super::{http, Body, Shared};

/// Serves `/dashboard` and everything under it; 404 while the dashboard is disabled.
pub async fn handle(shared: &Shared, _request: Request<Incoming>, _path: &str) -> Response<Body> {
    if !shared.dashboard.enabled {
        return http::not_found();
    }
    http::not_found()
}
