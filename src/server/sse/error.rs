//! Why an event stream is refused before it starts: each reason has one HTTP status and is
//! answered `{"error":"<message>"}`, like the HTTP API. Refusals after the stream started
//! (a full presence channel, a cluster error) are `pusher:error` messages in the stream.

use hyper::{Response, StatusCode};

use super::request::RequestError;
use crate::server::socket_ids::ClaimError;
use crate::server::ws::session::SessionError;
use crate::server::{http, Body};

#[derive(Debug, thiserror::Error)]
pub enum SseError {
    #[error("Method {0} is not allowed here: use GET")]
    MethodNotAllowed(String),
    #[error("Unknown app key {0:?}")]
    AppNotFound(String),
    #[error("Application is disabled")]
    AppDisabled,
    #[error("Origin {0:?} is not allowed for this app")]
    OriginNotAllowed(String),
    #[error("Server is shutting down: reconnect")]
    ShuttingDown,
    #[error("Too many connection attempts from this address")]
    ConnectionRate,
    #[error("Over the app's connection quota")]
    OverQuota,
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    SocketId(#[from] ClaimError),
    #[error("{0} needs a signature, and a signature needs socket_id: pass socket_id=<digits>.<digits>")]
    SocketIdRequired(String),
    #[error("{0} needs auth[{0}]: key:HMAC-SHA256(secret, socket_id:channel) from the app's auth endpoint")]
    AuthRequired(String),
    #[error("Presence channel {0} needs channel_data[{0}] and its auth from the app's auth endpoint")]
    ChannelDataRequired(String),
    #[error("{0} is not available on an event stream: it needs a signed-in user")]
    SignInRequired(String),
    #[error("This app only accepts authorized connections: include a private or presence channel")]
    AuthorizedConnectionRequired,
    #[error("Subscription to {channel} refused: {error}")]
    Subscription { channel: String, error: SessionError },
}

impl SseError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::AppNotFound(_) => StatusCode::NOT_FOUND,
            Self::AppDisabled | Self::OriginNotAllowed(_) => StatusCode::FORBIDDEN,
            Self::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            Self::ConnectionRate | Self::OverQuota => StatusCode::TOO_MANY_REQUESTS,
            Self::Request(_) | Self::SocketIdRequired(_) => StatusCode::BAD_REQUEST,
            Self::SocketId(_) => StatusCode::CONFLICT,
            Self::AuthRequired(_) | Self::ChannelDataRequired(_) => StatusCode::UNAUTHORIZED,
            Self::SignInRequired(_) | Self::AuthorizedConnectionRequired => StatusCode::FORBIDDEN,
            Self::Subscription { error, .. } => subscription_status(error),
        }
    }

    /// The response: the status and `{"error":"<message>"}`.
    pub fn into_response(self) -> Response<Body> {
        let body = serde_json::json!({ "error": self.to_string() }).to_string();
        http::json(self.status(), body)
    }
}

/// A subscription the session refused when checked up front.
fn subscription_status(error: &SessionError) -> StatusCode {
    match error {
        SessionError::Auth(_) | SessionError::PresenceWithoutUser(_) => StatusCode::UNAUTHORIZED,
        SessionError::NotThisUser(_) | SessionError::SignedInAsOther | SessionError::UserData(_) => {
            StatusCode::FORBIDDEN
        }
        SessionError::ChannelName(_) | SessionError::PresenceData(_) | SessionError::Decode(_) => {
            StatusCode::BAD_REQUEST
        }
        SessionError::TooManySubscriptions(_) | SessionError::PresenceFull(_) => StatusCode::BAD_REQUEST,
        SessionError::ClientEventsDisabled
        | SessionError::ClientEventChannel(_)
        | SessionError::ClientEventNotSubscribed(_)
        | SessionError::ClientEventTooLarge { .. }
        | SessionError::ClientEventNameTooLong { .. }
        | SessionError::ClientEventRateLimited(_) => StatusCode::BAD_REQUEST,
    }
}
