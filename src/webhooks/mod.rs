//! Webhooks: the events an app asked to hear about, timed as Pusher times them and delivered
//! reliably without ever making the caller wait.
//!
//! STUB: the interface is final; the delivery engine is being written.

use herald_protocol::{ChannelName, SocketId, UserId};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{AppConfig, WebhooksConfig};

/// One webhook event (PROTOCOL.md §12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookEvent {
    ChannelOccupied { channel: ChannelName },
    ChannelVacated { channel: ChannelName },
    MemberAdded { channel: ChannelName, user_id: UserId },
    MemberRemoved { channel: ChannelName, user_id: UserId },
    ClientEvent { channel: ChannelName, event: String, data: String, socket_id: SocketId, user_id: Option<UserId> },
    CacheMiss { channel: ChannelName },
    SubscriptionCount { channel: ChannelName, subscription_count: u64 },
}

impl WebhookEvent {
    /// The event's `name` on the wire, also the `event_types` entry that selects it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::ChannelOccupied { .. } => "channel_occupied",
            Self::ChannelVacated { .. } => "channel_vacated",
            Self::MemberAdded { .. } => "member_added",
            Self::MemberRemoved { .. } => "member_removed",
            Self::ClientEvent { .. } => "client_event",
            Self::CacheMiss { .. } => "cache_miss",
            Self::SubscriptionCount { .. } => "subscription_count",
        }
    }
}

/// The server's webhook dispatcher.
#[derive(Debug)]
pub struct Webhooks {}

impl Webhooks {
    /// Starts delivery for every app with targets; tasks run on `tracker` and finish (after
    /// flushing within `shutdown_flush_seconds`) once `shutdown` is cancelled.
    pub fn start(_config: &WebhooksConfig, _shutdown: CancellationToken, _tracker: &TaskTracker) -> Self {
        Self {}
    }

    /// The handle an app emits through.
    pub fn for_app(&self, _app: &AppConfig) -> AppWebhooks {
        AppWebhooks {}
    }
}

/// One app's way into the dispatcher. Cheap to clone; emitting never blocks or awaits.
#[derive(Debug, Clone, Default)]
pub struct AppWebhooks {}

impl AppWebhooks {
    /// A handle that sends nothing (apps without targets, tests).
    pub fn disabled() -> Self {
        Self {}
    }

    /// Whether any target wants events named `name`; lets callers skip building them.
    pub fn wants(&self, _name: &str) -> bool {
        false
    }

    /// Queues `event` for every target that wants it.
    pub fn emit(&self, _event: WebhookEvent) {}
}
