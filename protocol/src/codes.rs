//! Pusher close codes and `pusher:error` codes (PROTOCOL.md §2).
//!
//! One enum for both: a code at or above 4300 is only ever sent as a `pusher:error` frame,
//! because pusher-js treats such a close as "refused" and never reconnects.

/// A Pusher protocol code, sent in `pusher:error` frames and (below 4300) as a close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 4000: the app only accepts TLS connections.
    TlsOnly,
    /// 4001: no app has this key.
    AppNotFound,
    /// 4003: the app is disabled.
    AppDisabled,
    /// 4004: the app is over its connection quota.
    OverConnectionQuota,
    /// 4005: no such path.
    PathNotFound,
    /// 4006: the protocol version is not a number.
    InvalidVersionFormat,
    /// 4007: the protocol version is not supported.
    UnsupportedProtocolVersion,
    /// 4008: no protocol version was given.
    NoProtocolVersion,
    /// 4009: the connection (or a subscription on it) is not authorized.
    Unauthorized,
    /// 4100: the server is over capacity; reconnect after a back-off.
    OverCapacity,
    /// 4200: reconnect immediately (restart, drain).
    ReconnectImmediately,
    /// 4201: no pong reply arrived in time.
    PongNotReceived,
    /// 4202: closed after inactivity.
    ClosedAfterInactivity,
    /// 4301: client event rejected by the rate limit (frame only).
    ClientEventRejected,
    /// 4302: watchlist over its limit (frame only).
    WatchlistLimitExceeded,
}

impl ErrorCode {
    /// The numeric code on the wire.
    pub fn code(self) -> u16 {
        match self {
            Self::TlsOnly => 4000,
            Self::AppNotFound => 4001,
            Self::AppDisabled => 4003,
            Self::OverConnectionQuota => 4004,
            Self::PathNotFound => 4005,
            Self::InvalidVersionFormat => 4006,
            Self::UnsupportedProtocolVersion => 4007,
            Self::NoProtocolVersion => 4008,
            Self::Unauthorized => 4009,
            Self::OverCapacity => 4100,
            Self::ReconnectImmediately => 4200,
            Self::PongNotReceived => 4201,
            Self::ClosedAfterInactivity => 4202,
            Self::ClientEventRejected => 4301,
            Self::WatchlistLimitExceeded => 4302,
        }
    }

    /// Whether this code may be used as a WebSocket close code. Codes of 4300 and above make
    /// pusher-js give up for good, so herald only sends them as `pusher:error` frames.
    pub fn may_close(self) -> bool {
        self.code() < 4300
    }

    /// The standard human-readable text for this code.
    pub fn default_message(self) -> &'static str {
        match self {
            Self::TlsOnly => "Application only accepts TLS connections, reconnect with wss",
            Self::AppNotFound => "Application does not exist",
            Self::AppDisabled => "Application is disabled",
            Self::OverConnectionQuota => "Application is over connection quota",
            Self::PathNotFound => "Path not found",
            Self::InvalidVersionFormat => "Invalid version string format",
            Self::UnsupportedProtocolVersion => "Unsupported protocol version",
            Self::NoProtocolVersion => "No protocol version supplied",
            Self::Unauthorized => "Connection is unauthorized",
            Self::OverCapacity => "Over capacity",
            Self::ReconnectImmediately => "Generic reconnect immediately",
            Self::PongNotReceived => "Pong reply not received in time",
            Self::ClosedAfterInactivity => "Closed after inactivity",
            Self::ClientEventRejected => "Client event rejected due to rate limit",
            Self::WatchlistLimitExceeded => "Watchlist limit exceeded, only the first 100 ids are accepted",
        }
    }
}

/// WebSocket close code for a message larger than the configured maximum (RFC 6455).
pub const CLOSE_MESSAGE_TOO_BIG: u16 = 1009;
/// WebSocket close code for a protocol violation (RFC 6455).
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// WebSocket close code for data that is not valid UTF-8 in a text message (RFC 6455).
pub const CLOSE_INVALID_PAYLOAD: u16 = 1007;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_of_4300_and_above_never_close() {
        assert!(!ErrorCode::ClientEventRejected.may_close());
        assert!(!ErrorCode::WatchlistLimitExceeded.may_close());
        assert!(ErrorCode::PongNotReceived.may_close());
        assert!(ErrorCode::AppNotFound.may_close());
    }
}
