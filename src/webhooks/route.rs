//! Where an app's webhooks go: its targets with the event kinds each asked for, parsed once
//! from the configuration, and the signed [`WebhookRequest`] built for one target.

use std::sync::Arc;

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::Uri;
use tokio::time::Instant;

use super::{payload, WebhookEvent};
use crate::config::{AppConfig, WebhookTarget};

/// A set of event kinds, one bit per kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct EventMask(u8);

impl EventMask {
    fn bit(name: &str) -> u8 {
        match name {
            "channel_occupied" => 1,
            "channel_vacated" => 1 << 1,
            "member_added" => 1 << 2,
            "member_removed" => 1 << 3,
            "client_event" => 1 << 4,
            "cache_miss" => 1 << 5,
            "subscription_count" => 1 << 6,
            _ => 0,
        }
    }

    pub(super) fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        Self(names.into_iter().fold(0, |mask, name| mask | Self::bit(name)))
    }

    pub(super) fn contains(self, name: &str) -> bool {
        let bit = Self::bit(name);
        bit != 0 && self.0 & bit == bit
    }

    fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

/// One endpoint of one app.
#[derive(Debug)]
pub(super) struct Target {
    /// The URL as configured: names the endpoint (and its breaker) across apps.
    pub url: String,
    pub uri: Uri,
    pub wants: EventMask,
    /// The configured extra headers.
    pub headers: HeaderMap,
}

impl Target {
    /// Parses a configured target; `None` (logged) when its URL or a header cannot be sent.
    fn new(app_id: &str, target: &WebhookTarget) -> Option<Self> {
        let Ok(uri) = target.url.parse::<Uri>() else {
            tracing::error!(app = app_id, url = %target.url, "webhook URL cannot be parsed; target ignored");
            return None;
        };
        let mut headers = HeaderMap::new();
        for (name, value) in &target.headers {
            let (Ok(name), Ok(value)) = (HeaderName::try_from(name.as_str()), HeaderValue::try_from(value.as_str()))
            else {
                tracing::error!(app = app_id, url = %target.url, header = %name, "webhook header cannot be sent; target ignored");
                return None;
            };
            headers.insert(name, value);
        }
        let wants = EventMask::from_names(target.event_types.iter().map(String::as_str));
        Some(Self { url: target.url.clone(), uri, wants, headers })
    }
}

/// One app's credentials and targets, as the dispatcher needs them.
#[derive(Debug)]
pub(super) struct AppRoute {
    pub id: Arc<str>,
    key: HeaderValue,
    secret: String,
    pub batching: bool,
    pub targets: Vec<Arc<Target>>,
    /// Every kind some target wants.
    pub wants: EventMask,
}

impl AppRoute {
    /// The route of `app`; `None` when it has no usable target.
    pub(super) fn new(app: &AppConfig) -> Option<Self> {
        let targets: Vec<Arc<Target>> =
            app.webhooks.iter().filter_map(|t| Target::new(&app.id, t)).map(Arc::new).collect();
        let wants = targets.iter().fold(EventMask::default(), |mask, t| mask.union(t.wants));
        if wants == EventMask::default() {
            return None;
        }
        let Ok(key) = HeaderValue::try_from(app.key.as_str()) else {
            tracing::error!(app = %app.id, "app key cannot be sent as X-Pusher-Key; webhooks disabled");
            return None;
        };
        Some(Self {
            id: Arc::from(app.id.as_str()),
            key,
            secret: app.secret.clone(),
            batching: app.webhook_batching,
            targets,
            wants,
        })
    }

    /// The signed request carrying `events` to `target`, created now.
    pub(super) fn request(&self, target: &Arc<Target>, events: &[WebhookEvent]) -> WebhookRequest {
        let body = payload::encode_body(payload::now_unix_ms(), events);
        let signature = payload::signature(&self.secret, &body);
        WebhookRequest {
            target: target.clone(),
            app_key: self.key.clone(),
            // Lowercase hex is always a valid header value.
            signature: HeaderValue::try_from(signature).unwrap_or_else(|_| HeaderValue::from_static("")),
            body,
            events: events.len() as u64,
            created: Instant::now(),
        }
    }
}

/// One POST, ready to be sent and retried as is: the body (and its `time_ms`) never changes.
#[derive(Debug, Clone)]
pub(super) struct WebhookRequest {
    pub target: Arc<Target>,
    pub app_key: HeaderValue,
    pub signature: HeaderValue,
    pub body: Bytes,
    /// Events in the body, for the drop counter.
    pub events: u64,
    /// When the body was built; the retry budget counts from here.
    pub created: Instant,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str, kinds: &[&str]) -> WebhookTarget {
        WebhookTarget {
            url: url.into(),
            event_types: kinds.iter().map(|k| k.to_string()).collect(),
            headers: Default::default(),
        }
    }

    #[test]
    fn each_target_wants_only_the_kinds_it_lists() {
        let mut app = AppConfig::new("1", "k", "s");
        app.webhooks =
            vec![target("http://a/", &["channel_occupied", "channel_vacated"]), target("http://b/", &["client_event"])];
        let route = AppRoute::new(&app).expect("two usable targets");
        assert!(route.targets[0].wants.contains("channel_occupied"));
        assert!(!route.targets[0].wants.contains("client_event"));
        assert!(route.targets[1].wants.contains("client_event"));
        assert!(!route.targets[1].wants.contains("member_added"));
        assert!(route.wants.contains("channel_vacated") && route.wants.contains("client_event"));
        assert!(!route.wants.contains("cache_miss"));
        assert!(!route.wants.contains("no_such_kind"));
    }

    #[test]
    fn an_app_without_usable_targets_has_no_route() {
        let mut app = AppConfig::new("1", "k", "s");
        assert!(AppRoute::new(&app).is_none());
        app.webhooks = vec![target("http://a/", &[])];
        assert!(AppRoute::new(&app).is_none());
        app.webhooks = vec![target("http://bad host/", &["cache_miss"])];
        assert!(AppRoute::new(&app).is_none());
    }

    #[test]
    fn request_carries_key_signature_and_extra_headers() {
        let mut app = AppConfig::new("3", "278d425bdf160c739803", "7ad3773142a6692b25b8");
        let mut t = target("http://127.0.0.1:9/hook", &["cache_miss"]);
        t.headers.insert("X-Extra".into(), "yes".into());
        app.webhooks = vec![t];
        let route = AppRoute::new(&app).expect("usable target");
        let channel = herald_protocol::ChannelName::parse("cache-x", 200).expect("valid");
        let request = route.request(&route.targets[0], &[WebhookEvent::CacheMiss { channel }]);
        assert_eq!(request.app_key, "278d425bdf160c739803");
        assert_eq!(request.signature.to_str().ok(), Some(payload::signature(&app.secret, &request.body).as_str()));
        assert_eq!(request.target.headers.get("x-extra").map(|v| v.as_bytes()), Some(&b"yes"[..]));
        assert_eq!(request.events, 1);
    }
}
