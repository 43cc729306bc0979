//! Cross-origin access to the HTTP transports. The page using pusher-js is usually served from
//! another origin than herald, and pusher-js sends `Content-Type: application/json`, so every
//! browser request is preceded by an `OPTIONS` preflight.
//!
//! The rule follows the app's `allowed_origins` (the same check as a WebSocket's `Origin`): an
//! allowed origin is reflected with credentials allowed; a refused origin gets no CORS headers,
//! so the browser hides the response from the page. When the key names no app there is nothing
//! to protect and the origin is reflected, so the page can read the Pusher error (4001).

use hyper::header::{
    HeaderMap, HeaderValue, ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS,
    ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS,
    ORIGIN, VARY,
};
use hyper::{Response, StatusCode};

use super::super::{full, Body};
use crate::apps::App;

/// How long a browser may cache a preflight answer.
const PREFLIGHT_MAX_AGE_SECONDS: &str = "3600";

/// The CORS headers one response gets.
#[derive(Debug, Default)]
pub struct Cors {
    allow_origin: Option<HeaderValue>,
}

impl Cors {
    /// Decides for a request carrying `headers` to a session of `app` (`None`: unknown key).
    pub fn for_request(app: Option<&App>, headers: &HeaderMap) -> Self {
        let Some(origin) = headers.get(ORIGIN) else { return Self::default() };
        let allowed = match (app, origin.to_str()) {
            (None, _) => true,
            (Some(app), Ok(text)) => app.allows_origin(Some(text)),
            (Some(_), Err(_)) => false,
        };
        Self { allow_origin: allowed.then(|| origin.clone()) }
    }

    /// Adds the headers to `response`.
    pub fn apply(&self, response: &mut Response<Body>) {
        let headers = response.headers_mut();
        headers.append(VARY, HeaderValue::from_static("Origin"));
        if let Some(origin) = &self.allow_origin {
            headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            headers.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        }
    }
}

/// The answer to an `OPTIONS` preflight: `POST` with the headers the browser asked for.
/// (The origin headers are added by [`Cors::apply`]; without them the browser refuses.)
pub fn preflight(request: &HeaderMap) -> Response<Body> {
    let mut response = Response::new(full(""));
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.insert(ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("OPTIONS, POST"));
    let asked = request.get(ACCESS_CONTROL_REQUEST_HEADERS).cloned();
    headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, asked.unwrap_or(HeaderValue::from_static("Content-Type")));
    headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(PREFLIGHT_MAX_AGE_SECONDS));
    response
}
