//! What other nodes send, applied to this node's apps; and what this node holds, for the
//! adapter's reconciliation after an outage. Called from the adapter's tasks: nothing here
//! blocks or awaits.

use std::sync::{Arc, OnceLock, Weak};

use herald_protocol::ChannelName;

use super::Apps;
use crate::adapter::{OwnedMembership, OwnedSignIn, Remote, RemoteExtra, RemoteSink};
use crate::frame::Frame;

/// The adapter's way into the apps. Created before the apps (the adapter needs it to
/// start), bound to them once they exist.
#[derive(Debug, Default)]
pub struct Inbound {
    apps: OnceLock<Weak<Apps>>,
}

impl Inbound {
    pub fn new() -> Self {
        Self::default()
    }

    /// Points the sink at the apps; later calls are ignored.
    pub fn bind(&self, apps: &Arc<Apps>) {
        let _ = self.apps.set(Arc::downgrade(apps));
    }

    fn apps(&self) -> Option<Arc<Apps>> {
        self.apps.get().and_then(Weak::upgrade)
    }

    /// Reports the adapter has no `Remote` variant for.
    pub fn extra(&self, extra: RemoteExtra) {
        let Some(apps) = self.apps() else { return };
        match extra {
            RemoteExtra::Watch { app, watched, frame } => {
                if let Some(app) = apps.by_id(&app) {
                    app.users.notify_watchers(watched.as_str(), &Frame::from_wire(frame));
                }
            }
            RemoteExtra::Rejoined { app, channel, user, outcome } => {
                if let (Some(app), Some(name)) = (apps.by_id(&app), channel_name(&channel)) {
                    app.channels.apply_rejoined(&name, user, &outcome);
                }
            }
            RemoteExtra::Presence { app, user, online } => {
                if let Some(app) = apps.by_id(&app) {
                    app.announce_status(&user, online);
                }
            }
            RemoteExtra::Reconnected => {
                for app in apps.iter() {
                    app.record_history_gaps();
                }
            }
        }
    }

    /// Every local subscription, for reconciliation.
    pub fn memberships(&self) -> Vec<OwnedMembership> {
        let Some(apps) = self.apps() else { return Vec::new() };
        let mut out = Vec::new();
        for app in apps.iter() {
            for (channel, socket, user, user_info) in app.channels.memberships() {
                out.push(OwnedMembership {
                    app: app.config.id.clone(),
                    channel: channel.to_string(),
                    socket,
                    user,
                    user_info,
                });
            }
        }
        out
    }

    /// Every local sign-in, for reconciliation.
    pub fn sign_ins(&self) -> Vec<OwnedSignIn> {
        let Some(apps) = self.apps() else { return Vec::new() };
        let mut out = Vec::new();
        for app in apps.iter() {
            for (user, socket) in app.users.sign_ins() {
                out.push(OwnedSignIn { app: app.config.id.clone(), user, socket });
            }
        }
        out
    }
}

fn channel_name(channel: &str) -> Option<ChannelName> {
    ChannelName::parse(channel, usize::MAX).ok()
}

impl RemoteSink for Inbound {
    fn receive(&self, message: Remote) {
        let Some(apps) = self.apps() else { return };
        match message {
            Remote::Channel { app, channel, except, frame } => {
                if let Some(app) = apps.by_id(&app) {
                    app.channels.deliver_remote(&channel, &Frame::from_wire(frame), except);
                }
            }
            Remote::User { app, user, frame } => {
                if let Some(app) = apps.by_id(&app) {
                    app.users.send(user.as_str(), &Frame::from_wire(frame));
                }
            }
            Remote::Terminate { app, user } => {
                if let Some(app) = apps.by_id(&app) {
                    app.users.terminate(user.as_str());
                }
            }
            Remote::Reaped { app, channel, user, outcome } => {
                if let (Some(app), Some(name)) = (apps.by_id(&app), channel_name(&channel)) {
                    app.channels.apply_reaped(&name, user, &outcome);
                }
            }
        }
    }
}
