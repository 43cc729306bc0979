//! Subscription counting (PROTOCOL.md §10): `pusher_internal:subscription_count` to every
//! subscriber of a non-presence channel, at once up to 100 subscribers, above that at most
//! every 5 s with a trailing update so the last count always arrives.

use std::sync::Arc;
use std::time::Duration;

use herald_protocol::{ChannelKind, ChannelName, ServerMessage};
use tokio::time::Instant;

use super::registry::{Channel, ChannelRegistry};
use super::state::ChannelState;
use crate::frame::Frame;
use crate::webhooks::WebhookEvent;

/// Above this many subscribers, counts go out at most every [`COUNT_INTERVAL`].
pub const COUNT_THROTTLE_ABOVE: usize = 100;
pub const COUNT_INTERVAL: Duration = Duration::from_secs(5);

/// The channel's count changed to `count`: announce it now or schedule it.
pub(super) fn changed(
    registry: &ChannelRegistry,
    channel: &Arc<Channel>,
    state: &mut ChannelState,
    name: &ChannelName,
    count: usize,
) {
    if !counting(registry, name) {
        return;
    }
    state.count_value = count;
    let now = Instant::now();
    let due = count <= COUNT_THROTTLE_ABOVE || state.count_sent_at.is_none_or(|t| now >= t + COUNT_INTERVAL);
    if due {
        state.count_sent_at = Some(now);
        send(registry, Some(state), name, count);
        return;
    }
    if state.count_timer_armed {
        return;
    }
    state.count_timer_armed = true;
    let at = state.count_sent_at.map_or(now, |t| t + COUNT_INTERVAL);
    let (channel, name) = (channel.clone(), name.clone());
    let (webhooks, remote) = (registry.webhooks().clone(), registry.remote_handle());
    tokio::spawn(async move {
        tokio::time::sleep_until(at).await;
        let mut state = channel.state.write();
        state.count_timer_armed = false;
        if state.removed {
            return;
        }
        state.count_sent_at = Some(Instant::now());
        let count = state.count_value;
        let frame = count_frame(&name, count);
        state.broadcast(&frame, None);
        if let Some(remote) = remote {
            remote.publish(&name, &frame, None);
        }
        webhooks.emit(WebhookEvent::SubscriptionCount { channel: name.clone(), subscription_count: count as u64 });
    });
}

/// Announces `count` for a channel that may have no local subscriber (a reaped leave).
pub(super) fn announce(registry: &ChannelRegistry, state: Option<&ChannelState>, name: &ChannelName, count: usize) {
    if counting(registry, name) {
        send(registry, state, name, count);
    }
}

fn counting(registry: &ChannelRegistry, name: &ChannelName) -> bool {
    registry.policy().subscription_count && name.kind() != ChannelKind::Presence
}

fn send(registry: &ChannelRegistry, state: Option<&ChannelState>, name: &ChannelName, count: usize) {
    let frame = count_frame(name, count);
    if let Some(state) = state {
        state.broadcast(&frame, None);
    }
    registry.forward(name, &frame, None);
    registry
        .webhooks()
        .emit(WebhookEvent::SubscriptionCount { channel: name.clone(), subscription_count: count as u64 });
}

fn count_frame(name: &ChannelName, count: usize) -> Frame {
    Frame::message(&ServerMessage::SubscriptionCount { channel: name.as_str(), count: count as u64 })
}
