//! One connection's Pusher protocol state: its channels, its signed-in user, its client-event
//! budget, and what each inbound message does to them.
//!
//! No socket here: replies go into the connection's [`Outbox`], so the whole state machine is
//! testable with plain values. The socket task in `connection.rs` feeds it text frames.

mod joined;
mod recovery;

use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use herald_protocol::channel::ChannelNameError;
use herald_protocol::presence::PresenceDataError;
use herald_protocol::signature::{self, AuthError};
use herald_protocol::user::{SignedInUser, UserDataError};
use herald_protocol::{ChannelKind, ChannelName, ClientMessage, DecodeError, ErrorCode, PresenceMember, ServerMessage};
use herald_protocol::{SocketId, UserId};

use crate::apps::App;
use crate::channels::{JoinError, Subscriber};
use crate::frame::Frame;
use crate::metrics::Rejection;
use crate::outbox::Outbox;
use crate::webhooks::WebhookEvent;
use joined::JoinedChannels;
use recovery::PendingRecoveries;

/// Everything an inbound message can get wrong; each maps to one `pusher:error` frame and
/// none closes the connection.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("Invalid channel name: {0}")]
    ChannelName(#[from] ChannelNameError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("Presence channel {0} needs channel_data or a signed-in user")]
    PresenceWithoutUser(String),
    #[error("Invalid presence channel_data: {0}")]
    PresenceData(#[from] PresenceDataError),
    #[error(transparent)]
    PresenceFull(#[from] JoinError),
    #[error("Subscription to {0} is only allowed to the user it belongs to, signed in")]
    NotThisUser(String),
    #[error("The app does not have client messaging enabled")]
    ClientEventsDisabled,
    #[error("Client events are only allowed on private and presence channels, not {0}")]
    ClientEventChannel(String),
    #[error("Client event rejected: not subscribed to {0}")]
    ClientEventNotSubscribed(String),
    #[error("Client event rejected: data is {len} bytes, more than the limit of {max}")]
    ClientEventTooLarge { len: usize, max: usize },
    #[error("Client event name is longer than {max} characters")]
    ClientEventNameTooLong { max: usize },
    #[error("Client event rejected due to rate limit: at most {0} per second")]
    ClientEventRateLimited(u32),
    #[error("Invalid user_data: {0}")]
    UserData(#[from] UserDataError),
    #[error("Already signed in as a different user")]
    SignedInAsOther,
    #[error("Subscription limit reached: at most {0} channels per connection")]
    TooManySubscriptions(usize),
}

impl SessionError {
    /// The `pusher:error` code for this error (`None` is sent as `null`).
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Decode(_) | Self::PresenceData(_) | Self::PresenceFull(_) => None,
            Self::ClientEventTooLarge { .. } | Self::ClientEventNameTooLong { .. } => None,
            Self::TooManySubscriptions(_) => None,
            Self::ChannelName(_) | Self::Auth(_) | Self::PresenceWithoutUser(_) | Self::NotThisUser(_) => {
                Some(ErrorCode::Unauthorized)
            }
            Self::ClientEventChannel(_) | Self::ClientEventNotSubscribed(_) => Some(ErrorCode::Unauthorized),
            Self::ClientEventsDisabled | Self::ClientEventRateLimited(_) => Some(ErrorCode::ClientEventRejected),
            Self::UserData(_) | Self::SignedInAsOther => Some(ErrorCode::Unauthorized),
        }
    }
}

/// Server-wide limits a session needs.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    pub max_channel_name_length: usize,
    pub max_event_name_length: usize,
}

/// One connection's protocol state.
#[derive(Debug)]
pub struct Session {
    app: Arc<App>,
    limits: SessionLimits,
    me: Subscriber,
    /// Channels joined, with the user id this socket holds in each presence channel.
    channels: JoinedChannels,
    user: Option<SignedInUser>,
    client_events: Option<Box<DefaultDirectRateLimiter>>,
    /// The budget of `herald:recover` requests, made on the first one.
    recoveries: Option<Box<DefaultDirectRateLimiter>>,
    /// Signed in, or subscribed to a private or presence channel ("authorized connections").
    authorized: bool,
    /// `herald:recover` requests waiting for their channel's subscription.
    pending: PendingRecoveries,
}

impl Session {
    pub fn new(app: Arc<App>, limits: SessionLimits, socket_id: SocketId, outbox: Arc<Outbox>) -> Self {
        Self {
            app,
            limits,
            me: Subscriber { socket_id, outbox },
            channels: JoinedChannels::default(),
            user: None,
            client_events: None,
            recoveries: None,
            authorized: false,
            pending: PendingRecoveries::default(),
        }
    }

    pub fn socket_id(&self) -> SocketId {
        self.me.socket_id
    }

    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// Whether the connection has proved who it is: signed in, or subscribed to a private
    /// or presence channel.
    pub fn is_authorized(&self) -> bool {
        self.authorized
    }

    /// Handles one text frame; errors are answered with a `pusher:error` frame.
    pub async fn handle_text(&mut self, text: &str) {
        let result = match ClientMessage::decode(text) {
            Ok(message) => self.handle(message).await,
            Err(error) => Err(error.into()),
        };
        if let Err(error) = result {
            self.report(&error);
        }
    }

    /// Subscribes as a `pusher:subscribe` would; a refusal is answered with `pusher:error`.
    /// Transports without inbound messages (Server-Sent Events) subscribe this way.
    pub async fn subscribe_or_report(&mut self, channel: &str, auth: Option<&str>, channel_data: Option<&str>) {
        if let Err(error) = self.subscribe(channel, auth, channel_data).await {
            self.report(&error);
        }
    }

    /// Checks a subscription exactly as [`subscribe_or_report`](Self::subscribe_or_report)
    /// will (the channel name, the signature over this socket id, presence data) without
    /// joining, so a transport can refuse a bad request before it starts.
    pub fn check_subscription(
        &self,
        channel: &str,
        auth: Option<&str>,
        channel_data: Option<&str>,
    ) -> Result<ChannelName, SessionError> {
        let name = ChannelName::parse(channel, self.limits.max_channel_name_length)?;
        self.authorize(&name, auth.unwrap_or(""), channel_data)?;
        Ok(name)
    }

    fn report(&self, error: &SessionError) {
        tracing::debug!(socket_id = %self.me.socket_id, %error, "client message refused");
        let message = error.to_string();
        let code = error.code().map(ErrorCode::code);
        self.send(&ServerMessage::Error { code, message: &message });
    }

    async fn handle(&mut self, message: ClientMessage) -> Result<(), SessionError> {
        match message {
            ClientMessage::Ping => self.send(&ServerMessage::Pong),
            ClientMessage::Pong => {}
            ClientMessage::Subscribe { channel, auth, channel_data } => {
                self.subscribe(&channel, auth.as_deref(), channel_data.as_deref()).await?
            }
            ClientMessage::Unsubscribe { channel } => self.unsubscribe(&channel).await,
            ClientMessage::Signin { auth, user_data } => self.signin(&auth, &user_data).await?,
            ClientMessage::ClientEvent { event, channel, data } => {
                self.client_event(&event, &channel, data.as_deref()).await?
            }
            ClientMessage::Recover { channel, since } => self.recover(&channel, &since).await,
            ClientMessage::Unknown { event } => tracing::debug!(socket_id = %self.me.socket_id, event, "ignored"),
        }
        Ok(())
    }

    fn send(&self, message: &ServerMessage<'_>) {
        // A refused push means the outbox is closing; the socket task is already ending.
        let _ = self.me.outbox.push(Frame::message(message));
    }

    async fn subscribe(
        &mut self,
        channel: &str,
        auth: Option<&str>,
        channel_data: Option<&str>,
    ) -> Result<(), SessionError> {
        let name = ChannelName::parse(channel, self.limits.max_channel_name_length)?;
        let max = self.app.config.max_subscriptions_per_connection;
        if self.channels.len() >= max && !self.channels.contains(name.as_str()) {
            self.app.metrics.reject(Rejection::SubscriptionLimit);
            return Err(SessionError::TooManySubscriptions(max));
        }
        let member = self.authorize(&name, auth.unwrap_or(""), channel_data)?;
        if name.kind() == ChannelKind::ServerToUser {
            // Server-to-user events reach the user's sockets through the user registry,
            // subscribed or not; the subscription is only acknowledged.
            self.send(&ServerMessage::SubscriptionSucceeded { channel: name.as_str(), data_json: "{}" });
            return Ok(());
        }
        let recovery = self.pending.take(name.as_str());
        let joined = self.app.join(&name, &self.me, member.as_ref(), recovery.is_some()).await?;
        if !joined.already_subscribed {
            self.channels.insert(name.clone(), member.map(|m| m.user_id));
        }
        self.authorized |= name.kind().needs_auth();
        if let Some(since) = recovery {
            self.recover_joined(&name, since, joined.already_subscribed).await;
        }
        Ok(())
    }

    /// Checks the subscription's signature; for presence, returns who is joining.
    fn authorize(
        &self,
        name: &ChannelName,
        auth: &str,
        channel_data: Option<&str>,
    ) -> Result<Option<PresenceMember>, SessionError> {
        let socket_id = self.me.socket_id.to_string();
        let (key, secret) = (&self.app.config.key, &self.app.config.secret);
        match name.kind() {
            ChannelKind::Public => Ok(None),
            ChannelKind::ServerToUser => match &self.user {
                Some(user) if Some(user.id.as_str()) == name.server_to_user_id() => Ok(None),
                _ => Err(SessionError::NotThisUser(name.to_string())),
            },
            ChannelKind::Private | ChannelKind::PrivateEncrypted => {
                let plain = signature::channel_string_to_sign(&socket_id, name.as_str(), None);
                let with_data =
                    channel_data.map(|d| signature::channel_string_to_sign(&socket_id, name.as_str(), Some(d)));
                let mut candidates = vec![plain.as_str()];
                candidates.extend(with_data.as_deref());
                signature::verify_auth(key, secret, &candidates, auth)?;
                Ok(None)
            }
            ChannelKind::Presence => {
                let Some(data) = channel_data else {
                    let user = self.user.as_ref().ok_or_else(|| SessionError::PresenceWithoutUser(name.to_string()))?;
                    let signed = signature::channel_string_to_sign(&socket_id, name.as_str(), None);
                    signature::verify_auth(key, secret, &[&signed], auth)?;
                    return Ok(Some(PresenceMember { user_id: user.id.clone(), user_info: user.user_info.clone() }));
                };
                let signed = signature::channel_string_to_sign(&socket_id, name.as_str(), Some(data));
                signature::verify_auth(key, secret, &[&signed], auth)?;
                Ok(Some(PresenceMember::parse(data, self.app.presence_limits())?))
            }
        }
    }

    async fn unsubscribe(&mut self, channel: &str) {
        let Some((name, user)) = self.channels.remove(channel) else { return };
        self.app.leave(&name, self.me.socket_id, user.as_ref()).await;
    }

    async fn signin(&mut self, auth: &str, user_data: &str) -> Result<(), SessionError> {
        let socket_id = self.me.socket_id.to_string();
        let signed = signature::user_string_to_sign(&socket_id, user_data);
        signature::verify_auth(&self.app.config.key, &self.app.config.secret, &[&signed], auth)?;
        let user = SignedInUser::parse(user_data, self.app.config.max_user_id_length)?;
        if let Some(current) = &self.user {
            if current.id != user.id {
                return Err(SessionError::SignedInAsOther);
            }
        }
        let truncated = user.watchlist_truncated;
        self.send(&ServerMessage::SigninSuccess { user_data });
        if self.user.is_none() {
            self.app.sign_in(&user, self.me.socket_id, &self.me.outbox).await;
            self.user = Some(user);
        }
        self.authorized = true;
        if truncated {
            let code = Some(ErrorCode::WatchlistLimitExceeded.code());
            self.send(&ServerMessage::Error { code, message: ErrorCode::WatchlistLimitExceeded.default_message() });
        }
        Ok(())
    }

    async fn client_event(&mut self, event: &str, channel: &str, data: Option<&str>) -> Result<(), SessionError> {
        let config = &self.app.config;
        if !config.client_events {
            return Err(SessionError::ClientEventsDisabled);
        }
        if event.chars().count() > self.limits.max_event_name_length {
            return Err(SessionError::ClientEventNameTooLong { max: self.limits.max_event_name_length });
        }
        let Some((name, user_id)) = self.channels.get(channel) else {
            let kind = ChannelName::parse(channel, usize::MAX).map(|n| n.kind()).ok();
            return Err(match kind {
                Some(k) if k.allows_client_events() => SessionError::ClientEventNotSubscribed(channel.into()),
                _ => SessionError::ClientEventChannel(channel.into()),
            });
        };
        if !name.kind().allows_client_events() {
            return Err(SessionError::ClientEventChannel(channel.into()));
        }
        let len = data.map_or(0, str::len);
        if len > config.max_event_payload_bytes {
            return Err(SessionError::ClientEventTooLarge { len, max: config.max_event_payload_bytes });
        }
        let per_second = config.client_events_per_second;
        let limiter = self.client_events.get_or_insert_with(|| {
            let n = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
            Box::new(RateLimiter::direct(Quota::per_second(n)))
        });
        if limiter.check().is_err() {
            self.app.metrics.reject(Rejection::ClientEventRate);
            return Err(SessionError::ClientEventRateLimited(per_second));
        }
        let message = ServerMessage::Event { event, channel, data, user_id: user_id.as_ref().map(UserId::as_str) };
        self.app.publish_event(name, &message, Some(self.me.socket_id), None).await;
        if self.app.webhooks.wants("client_event") {
            self.app.webhooks.emit(WebhookEvent::ClientEvent {
                channel: name.clone(),
                event: event.to_string(),
                data: data.unwrap_or_default().to_string(),
                socket_id: self.me.socket_id,
                user_id: user_id.clone(),
            });
        }
        Ok(())
    }

    /// Leaves every channel; called once when the connection ends.
    pub async fn close(&mut self) {
        for (name, user) in std::mem::take(&mut self.channels) {
            self.app.leave(&name, self.me.socket_id, user.as_ref()).await;
        }
        if let Some(user) = self.user.take() {
            self.app.sign_out(&user, self.me.socket_id).await;
        }
    }
}

impl Drop for Session {
    /// A session dropped without `close` (its task was cancelled) still leaves its channels
    /// on this node; the cluster's record of it is reconciled by the adapter.
    fn drop(&mut self) {
        for (name, _) in std::mem::take(&mut self.channels) {
            self.app.channels.unsubscribe(&name, self.me.socket_id, None);
        }
        if let Some(user) = self.user.take() {
            self.app.users.sign_out(&user.id, self.me.socket_id, &user.watchlist);
        }
    }
}
