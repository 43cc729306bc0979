//! `POST /events` and `POST /batch_events`: validate everything first, then publish each
//! event as one encoded frame per channel.

use herald_protocol::http::{BatchBody, TriggerBody};
use herald_protocol::{ChannelKind, ChannelName, ServerMessage, SocketId};
use serde_json::{Map, Value};

use super::api::Authorized;
use super::ApiError;
use crate::frame::Frame;

/// One validated event, ready to publish.
#[derive(Debug)]
struct Trigger {
    name: String,
    data: String,
    channels: Vec<ChannelName>,
    except: Option<SocketId>,
    info: Info,
}

/// Which attributes the caller asked for in `info`.
#[derive(Debug, Default, Clone, Copy)]
struct Info {
    user_count: bool,
    subscription_count: bool,
}

impl Info {
    fn parse(info: Option<&str>) -> Self {
        let mut out = Self::default();
        for attribute in info.unwrap_or("").split(',').map(str::trim) {
            match attribute {
                "user_count" => out.user_count = true,
                "subscription_count" => out.subscription_count = true,
                _ => {}
            }
        }
        out
    }

    fn any(self) -> bool {
        self.user_count || self.subscription_count
    }
}

pub async fn trigger(req: &Authorized<'_>) -> Result<String, ApiError> {
    let body: TriggerBody<'_> = parse_json(&req.body)?;
    let trigger = validate(req, body, false)?;
    publish(req, &trigger).await;
    if !trigger.info.any() {
        return Ok("{}".into());
    }
    let mut channels = Map::new();
    for name in &trigger.channels {
        channels.insert(name.to_string(), info_for(req, name, trigger.info).await);
    }
    Ok(serde_json::json!({ "channels": channels }).to_string())
}

pub async fn batch(req: &Authorized<'_>) -> Result<String, ApiError> {
    let body: BatchBody<'_> = parse_json(&req.body)?;
    let max = req.app.config.max_batch_size;
    if body.batch.is_empty() {
        return Err(ApiError::BadRequest("batch must contain at least one event".into()));
    }
    if body.batch.len() > max {
        return Err(ApiError::BadRequest(format!("Cannot batch-send more than {max} messages at once")));
    }
    let triggers = body.batch.into_iter().map(|item| validate(req, item, true)).collect::<Result<Vec<_>, _>>()?;
    for trigger in &triggers {
        publish(req, trigger).await;
    }
    if !triggers.iter().any(|t| t.info.any()) {
        return Ok("{}".into());
    }
    let mut batch: Vec<Value> = Vec::with_capacity(triggers.len());
    for t in &triggers {
        batch.push(info_for(req, &t.channels[0], t.info).await);
    }
    Ok(serde_json::json!({ "batch": batch }).to_string())
}

fn parse_json<'a, T: serde::Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("Request body is not valid JSON of the expected shape: {e}")))
}

fn validate(req: &Authorized<'_>, body: TriggerBody<'_>, single_channel: bool) -> Result<Trigger, ApiError> {
    let config = &req.app.config;
    let server = &req.shared.config;
    let name = body.name.clone().ok_or_else(|| ApiError::BadRequest("name is required".into()))?;
    if name.is_empty() || name.chars().count() > server.max_event_name_length {
        return Err(ApiError::BadRequest(format!("name must be 1 to {} characters", server.max_event_name_length)));
    }
    if name.starts_with("pusher:") || name.starts_with("pusher_internal:") {
        return Err(ApiError::BadRequest("Event names starting with pusher: or pusher_internal: are reserved".into()));
    }
    let data = body.data_text().ok_or_else(|| ApiError::BadRequest("data is required".into()))?;
    if data.len() > config.max_event_payload_bytes {
        return Err(ApiError::PayloadTooLarge(format!(
            "Event data is {} bytes, more than the limit of {}",
            data.len(),
            config.max_event_payload_bytes
        )));
    }
    let names = match (body.channels, body.channel) {
        (Some(list), None) if !single_channel => list,
        (None, Some(one)) => vec![one],
        (Some(_), Some(_)) => return Err(ApiError::BadRequest("Give either channel or channels, not both".into())),
        (Some(_), None) => return Err(ApiError::BadRequest("Each batch event names one channel".into())),
        (None, None) => return Err(ApiError::BadRequest("channels is required".into())),
    };
    let max = config.max_channels_per_trigger;
    if names.is_empty() || names.len() > max {
        return Err(ApiError::BadRequest(format!("channels must list 1 to {max} channels")));
    }
    let mut channels = Vec::with_capacity(names.len());
    for n in &names {
        let channel = ChannelName::parse(n, server.max_channel_name_length)
            .map_err(|e| ApiError::BadRequest(format!("Invalid channel name: {e}")))?;
        if !channels.contains(&channel) {
            channels.push(channel);
        }
    }
    if channels.len() > 1 && channels.iter().any(|c| c.kind() == ChannelKind::PrivateEncrypted) {
        return Err(ApiError::BadRequest("An event to an encrypted channel must name that channel alone".into()));
    }
    let except = match body.socket_id.as_deref() {
        None => None,
        Some(s) => Some(s.parse::<SocketId>().map_err(|e| ApiError::BadRequest(e.to_string()))?),
    };
    Ok(Trigger { name, data, channels, except, info: Info::parse(body.info.as_deref()) })
}

async fn publish(req: &Authorized<'_>, trigger: &Trigger) {
    for channel in &trigger.channels {
        let started = std::time::Instant::now();
        let message = ServerMessage::Event {
            event: &trigger.name,
            channel: channel.as_str(),
            data: Some(&trigger.data),
            user_id: None,
        };
        match channel.server_to_user_id() {
            Some(user_id) => {
                req.app.send_to_user(user_id, &Frame::message(&message));
            }
            None => {
                let cache_data = channel.is_cache().then_some(trigger.data.as_str());
                req.app.publish_event(channel, &message, trigger.except, cache_data).await;
            }
        }
        req.app.metrics.fanout_latency.observe(started.elapsed().as_secs_f64());
    }
}

async fn info_for(req: &Authorized<'_>, channel: &ChannelName, info: Info) -> Value {
    let summary = req.app.channel_summary(channel).await;
    let mut out = Map::new();
    if channel.kind() == ChannelKind::Presence {
        if info.user_count {
            out.insert("user_count".into(), summary.as_ref().and_then(|s| s.user_count).unwrap_or(0).into());
        }
    } else if info.subscription_count {
        out.insert("subscription_count".into(), summary.as_ref().map_or(0, |s| s.subscription_count).into());
    }
    Value::Object(out)
}
