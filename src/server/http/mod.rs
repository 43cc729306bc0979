//! The HTTP side: JSON responses and the error type every API failure maps to exactly once.

pub mod api;
mod events;
mod history;
mod queries;

use bytes::Bytes;
use herald_protocol::http::ApiAuthError;
use hyper::{Response, StatusCode};

use super::Body;

/// Everything the HTTP API can refuse, each with one status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Unauthorized(#[from] ApiAuthError),
    #[error("Application is disabled")]
    AppDisabled,
    #[error("{0}")]
    NotFound(String),
    #[error("Method {0} is not allowed here")]
    MethodNotAllowed(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    TooManyRequests(String),
    /// What was asked for existed once and is not kept any more (a history position).
    #[error("{0}")]
    Gone(String),
    /// A store the answer needs cannot be reached (Redis, during an outage).
    #[error("{0}")]
    Unavailable(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::AppDisabled => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Gone(_) => StatusCode::GONE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The response: the status and `{"error":"<message>"}`.
    pub fn into_response(self) -> Response<Body> {
        let body = serde_json::json!({ "error": self.to_string() }).to_string();
        json(self.status(), body)
    }
}

/// A JSON response.
pub fn json(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(super::full(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    response
}

pub fn not_found() -> Response<Body> {
    ApiError::NotFound("Not found".into()).into_response()
}

pub fn bad_request(message: &str) -> Response<Body> {
    ApiError::BadRequest(message.into()).into_response()
}
