//! An app's channel and user operations as the connection and the HTTP API see them, on one
//! node or in a cluster: here the cluster adapter's decisions meet the local registries.
//!
//! Each operation asks the cluster first (when there is one and its breaker is closed), then
//! applies the decision locally. When the cluster is unavailable the node decides alone;
//! the adapter reconciles the backend with what the node holds once it is back (docs/cluster.md,
//! docs/nats.md).

use std::sync::Arc;

use herald_protocol::presence::roster_json;
use herald_protocol::user::SignedInUser;
use herald_protocol::{ChannelKind, ChannelName, PresenceMember, SocketId, UserId};

use super::App;
use crate::adapter::{Cluster, Membership};
use crate::channels::{ChannelSummary, ClusterJoin, JoinError, Joined, Subscriber};
use crate::frame::Frame;
use crate::history::Position;
use crate::outbox::Outbox;
use crate::users::{status_change_frame, status_frame};

impl App {
    /// The cluster adapter, when there is one and it is available.
    fn live_cluster(&self) -> Option<&Cluster> {
        self.cluster.as_ref().filter(|c| c.is_available())
    }

    /// Subscribes `subscriber`; see [`ChannelRegistry::subscribe_recovering`](crate::channels::ChannelRegistry::subscribe_recovering).
    pub async fn join(
        &self,
        name: &ChannelName,
        subscriber: &Subscriber,
        member: Option<&PresenceMember>,
        recovering: bool,
    ) -> Result<Joined, JoinError> {
        let decided = match self.live_cluster() {
            Some(cluster) => self.decide_join(cluster, name, subscriber.socket_id, member).await?,
            None => None,
        };
        let joined = self.channels.subscribe_recovering(name, subscriber, member, decided.as_ref(), recovering)?;
        self.debug.emit(|| {
            serde_json::json!({"type": "subscribed", "channel": name.as_str(), "socket_id": subscriber.socket_id.to_string(),
                "user_id": member.map(|m| m.user_id.as_str())})
        });
        if let (Some(cluster), true) = (&self.cluster, joined.locally_occupied) {
            cluster.watch_channel(&self.config.id, name.as_str(), true);
        }
        Ok(joined)
    }

    /// Asks the cluster about a join: the presence limit and roster, the cached event, and
    /// the transition. `Ok(None)` when the cluster did not answer: the node decides alone.
    async fn decide_join(
        &self,
        cluster: &Cluster,
        name: &ChannelName,
        socket: SocketId,
        member: Option<&PresenceMember>,
    ) -> Result<Option<ClusterJoin>, JoinError> {
        let app = self.config.id.as_str();
        let mut decided = ClusterJoin::default();
        if let Some(m) = member {
            let Ok(mut roster) = cluster.roster(app, name.as_str()).await else { return Ok(None) };
            let max = self.config.max_presence_members;
            if !roster.iter().any(|(u, _)| u == &m.user_id) {
                if roster.len() >= max {
                    return Err(JoinError::PresenceFull { max });
                }
                roster.push((m.user_id.clone(), m.user_info.as_deref().map(str::to_string)));
            }
            decided.roster_json = Some(roster_json(roster.iter().map(|(u, i)| (u.as_str(), i.as_deref()))));
        }
        if name.is_cache() {
            let Ok(cached) = cluster.cache_get(app, name.as_str()).await else { return Ok(None) };
            decided.cached = cached.map(|(frame, _, _)| Frame::from_wire(frame));
        }
        let membership = Membership {
            app,
            channel: name.as_str(),
            socket,
            user: member.map(|m| &m.user_id),
            user_info: member.and_then(|m| m.user_info.as_deref()),
        };
        let Ok(outcome) = cluster.join(membership).await else { return Ok(None) };
        decided.outcome = outcome;
        Ok(Some(decided))
    }

    /// Unsubscribes `socket_id` from `name`; nothing when it was not subscribed.
    pub async fn leave(&self, name: &ChannelName, socket_id: SocketId, user: Option<&UserId>) {
        let outcome = match self.live_cluster() {
            Some(cluster) => {
                let membership = Membership {
                    app: &self.config.id,
                    channel: name.as_str(),
                    socket: socket_id,
                    user,
                    user_info: None,
                };
                cluster.leave(membership).await.ok()
            }
            None => None,
        };
        let left = self.channels.unsubscribe(name, socket_id, outcome.as_ref());
        self.debug.emit(|| {
            serde_json::json!({"type": "unsubscribed", "channel": name.as_str(), "socket_id": socket_id.to_string()})
        });
        if let (Some(cluster), Some(left)) = (&self.cluster, left) {
            if left.locally_vacated {
                cluster.watch_channel(&self.config.id, name.as_str(), false);
            }
        }
    }

    /// Publishes an event everywhere; `cache_data` for HTTP events on cache channels.
    pub fn publish(&self, name: &ChannelName, frame: &Frame, except: Option<SocketId>, cache_data: Option<&str>) {
        self.publish_at(name, frame, None, except, cache_data);
    }

    /// [`publish`](Self::publish) for a frame that carries its history `position`, if any.
    pub(super) fn publish_at(
        &self,
        name: &ChannelName,
        frame: &Frame,
        position: Option<Position>,
        except: Option<SocketId>,
        cache_data: Option<&str>,
    ) {
        let delivered = self.channels.publish_at(name, frame, position, except, cache_data);
        self.published(name, frame, except, delivered);
        self.store_cached(name, frame, cache_data);
    }

    /// Tells the dashboard about a published event.
    pub(super) fn published(&self, name: &ChannelName, frame: &Frame, except: Option<SocketId>, delivered: usize) {
        self.debug.emit(|| {
            let text = String::from_utf8_lossy(frame.payload()).into_owned();
            let message: serde_json::Value = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
            serde_json::json!({"type": "event", "channel": name.as_str(), "message": message,
                "excluded": except.map(|s| s.to_string()), "local_deliveries": delivered})
        });
    }

    /// In a cluster, stores a cache channel's event in Redis for the other nodes.
    fn store_cached(&self, name: &ChannelName, frame: &Frame, cache_data: Option<&str>) {
        if let (Some(cluster), Some(data)) = (self.live_cluster(), cache_data) {
            let (cluster, app, channel) = (cluster.clone(), self.config.id.clone(), name.to_string());
            let (bytes, data, ttl) = (frame.bytes().clone(), data.to_string(), self.channels.policy().cache_ttl);
            tokio::spawn(async move {
                if let Err(error) = cluster.cache_set(&app, &channel, bytes, &data, ttl).await {
                    tracing::warn!(%error, channel, "could not store the cache channel's event in the cluster");
                }
            });
        }
    }

    /// Counts of one channel, cluster-wide; `None` when unoccupied.
    pub async fn channel_summary(&self, name: &ChannelName) -> Option<ChannelSummary> {
        if let Some(cluster) = self.live_cluster() {
            if let Ok(counts) = cluster.counts(&self.config.id, name.as_str()).await {
                return (counts.subscription_count > 0).then(|| ChannelSummary {
                    name: name.clone(),
                    subscription_count: counts.subscription_count as usize,
                    user_count: (name.kind() == ChannelKind::Presence).then_some(counts.user_count as usize),
                });
            }
        }
        self.channels.summary(name.as_str())
    }

    /// Occupied channels with `prefix`, cluster-wide, sorted by name.
    pub async fn channel_list(&self, prefix: &str) -> Vec<ChannelSummary> {
        if let Some(cluster) = self.live_cluster() {
            if let Ok(list) = cluster.channels(&self.config.id, prefix).await {
                let mut out: Vec<ChannelSummary> = list
                    .into_iter()
                    .filter_map(|(name, counts)| {
                        let name = ChannelName::parse(&name, usize::MAX).ok()?;
                        let user_count = (name.kind() == ChannelKind::Presence).then_some(counts.user_count as usize);
                        Some(ChannelSummary {
                            name,
                            subscription_count: counts.subscription_count as usize,
                            user_count,
                        })
                    })
                    .collect();
                out.sort_by(|a, b| a.name.cmp(&b.name));
                return out;
            }
        }
        self.channels.list(prefix)
    }

    /// Distinct users of a presence channel, cluster-wide, sorted.
    pub async fn channel_users(&self, name: &str) -> Vec<UserId> {
        if let Some(cluster) = self.live_cluster() {
            if let Ok(mut users) = cluster.users(&self.config.id, name).await {
                users.sort();
                return users;
            }
        }
        self.channels.users(name)
    }

    /// A cache channel's event data and time to live, cluster-wide.
    pub async fn cached(&self, name: &str) -> Option<(String, std::time::Duration)> {
        if let Some(cluster) = self.live_cluster() {
            if let Ok(cached) = cluster.cache_get(&self.config.id, name).await {
                return cached.map(|(_, data, ttl)| (data, ttl));
            }
        }
        self.channels.cached(name).map(|(data, ttl)| (data.to_string(), ttl))
    }

    /// Open connections, cluster-wide.
    pub async fn connections(&self) -> u64 {
        if let Some(cluster) = self.live_cluster() {
            if let Ok(n) = cluster.connection_count(&self.config.id).await {
                return n;
            }
        }
        self.connection_count()
    }

    /// Records a sign-in: answers the socket's watchlist with the current status of each
    /// watched user, and tells the user's watchers it came online when this is its first
    /// signed-in socket (in the cluster, when there is one).
    pub async fn sign_in(&self, user: &SignedInUser, socket_id: SocketId, outbox: &Arc<Outbox>) {
        let app = self.config.id.as_str();
        let signed = self.users.sign_in(&user.id, socket_id, outbox, &user.watchlist);
        if let Some(cluster) = &self.cluster {
            if signed.first_here {
                cluster.watch_user(app, &user.id, true);
            }
            for watched in &signed.newly_watched {
                cluster.watch_watchers(app, watched, true);
            }
        }
        let cluster = self.live_cluster();
        let first = match cluster {
            Some(c) => c.sign_in(app, &user.id, socket_id).await.unwrap_or(signed.first_here),
            None => signed.first_here,
        };
        if !user.watchlist.is_empty() {
            let online = match cluster {
                Some(c) => c.online(app, &user.watchlist).await.ok(),
                None => None,
            };
            let online = online.unwrap_or_else(|| user.watchlist.iter().map(|w| self.users.is_online(w)).collect());
            let (on, off): (Vec<_>, Vec<_>) = user.watchlist.iter().zip(online).partition(|(_, o)| *o);
            let on: Vec<&UserId> = on.into_iter().map(|(u, _)| u).collect();
            let off: Vec<&UserId> = off.into_iter().map(|(u, _)| u).collect();
            let _ = outbox.push(status_frame(&on, &off));
        }
        if first {
            self.announce_status(&user.id, true);
        }
    }

    /// Forgets a sign-in; tells the user's watchers it went offline when that was its last
    /// signed-in socket.
    pub async fn sign_out(&self, user: &SignedInUser, socket_id: SocketId) {
        let app = self.config.id.as_str();
        let signed = self.users.sign_out(&user.id, socket_id, &user.watchlist);
        if let Some(cluster) = &self.cluster {
            if signed.last_here {
                cluster.watch_user(app, &user.id, false);
            }
            for watched in &signed.unwatched {
                cluster.watch_watchers(app, watched, false);
            }
        }
        let last = match self.live_cluster() {
            Some(c) => c.sign_out(app, &user.id, socket_id).await.unwrap_or(signed.last_here),
            None => signed.last_here,
        };
        if last {
            self.announce_status(&user.id, false);
        }
    }

    /// Tells every watcher of `user`, here and on the other nodes, that it came or went.
    pub(super) fn announce_status(&self, user: &UserId, online: bool) {
        let frame = status_change_frame(user, online);
        self.users.notify_watchers(user.as_str(), &frame);
        if let Some(cluster) = self.live_cluster() {
            cluster.publish_watch(&self.config.id, user, frame.bytes().clone());
        }
    }

    /// Sends a server-to-user event to every socket signed in as `user`, cluster-wide.
    pub fn send_to_user(&self, user: &str, frame: &Frame) {
        self.users.send(user, frame);
        if let Some(cluster) = self.live_cluster() {
            cluster.publish_user(&self.config.id, &UserId::new(user), frame.bytes().clone());
        }
    }

    /// Closes every socket signed in as `user`, cluster-wide.
    pub fn terminate_user(&self, user: &str) {
        self.users.terminate(user);
        if let Some(cluster) = self.live_cluster() {
            cluster.terminate_user(&self.config.id, &UserId::new(user));
        }
    }
}
