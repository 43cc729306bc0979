//! The seam for `Last-Event-ID` recovery on history channels — **not built yet**.
//!
//! Channel history (positions per event, a replay on the session: docs/extensions.md) is
//! being built separately. Once it exists, the plan is:
//! - each event on a history channel leaves with an SSE `id:` line carrying its position
//!   (`wire.rs` writes no `id:` today);
//! - a browser's `EventSource` sends the last id it saw back as the `Last-Event-ID` header when
//!   it reconnects (curl users pass `?lastEventId=`); [`resume`] then asks the session to
//!   replay what the stream's history channels published after that position, queued in the
//!   outbox behind the `subscription_succeeded` frames and before live events.
//!
//! Today the id is parsed, bounded and handed to [`resume`], which does nothing with it.

use super::request::RequestError;
use crate::server::ws::session::Session;

/// The longest `Last-Event-ID` accepted (a position is far shorter).
const MAX_LAST_EVENT_ID_BYTES: usize = 256;

/// The position the client saw last, as it sent it (opaque until history exists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastEventId(String);

impl LastEventId {
    /// `None` for an absent or empty id (the spec's way to say "start afresh").
    pub fn parse(value: Option<String>) -> Result<Option<Self>, RequestError> {
        match value {
            None => Ok(None),
            Some(v) if v.is_empty() => Ok(None),
            Some(v) if v.len() > MAX_LAST_EVENT_ID_BYTES => {
                Err(RequestError::LastEventIdTooLong(MAX_LAST_EVENT_ID_BYTES))
            }
            Some(v) => Ok(Some(Self(v))),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Replays what the stream missed since `last_event_id`, after the subscriptions are made.
///
/// HISTORY SEAM: does nothing until channel history exists; see the module docs.
pub fn resume(session: &mut Session, last_event_id: Option<&LastEventId>) {
    if let Some(id) = last_event_id {
        tracing::debug!(socket_id = %session.socket_id(), last_event_id = id.as_str(), "resume requested; no history yet");
    }
}
