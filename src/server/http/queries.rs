//! The read endpoints: `GET /channels`, `GET /channels/{name}`, `GET /channels/{name}/users`.

use herald_protocol::http::query_get;
use herald_protocol::ChannelKind;
use serde_json::{Map, Value};

use super::api::Authorized;
use super::ApiError;

fn attributes(req: &Authorized<'_>) -> Vec<String> {
    query_get(&req.query, "info")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

pub async fn channels(req: &Authorized<'_>) -> Result<String, ApiError> {
    let prefix = query_get(&req.query, "filter_by_prefix").unwrap_or("");
    let info = attributes(req);
    let user_count = info.iter().any(|a| a == "user_count");
    let subscription_count = info.iter().any(|a| a == "subscription_count");
    if user_count && !prefix.starts_with("presence-") {
        return Err(ApiError::BadRequest(
            "info=user_count is only allowed with filter_by_prefix starting with presence-".into(),
        ));
    }
    let mut channels = Map::new();
    for summary in req.app.channel_list(prefix).await {
        let mut attrs = Map::new();
        if user_count {
            attrs.insert("user_count".into(), summary.user_count.unwrap_or(0).into());
        }
        if subscription_count {
            attrs.insert("subscription_count".into(), summary.subscription_count.into());
        }
        channels.insert(summary.name.to_string(), Value::Object(attrs));
    }
    Ok(serde_json::json!({ "channels": channels }).to_string())
}

pub async fn channel(req: &Authorized<'_>, name: &str) -> Result<String, ApiError> {
    let channel = herald_protocol::ChannelName::parse(name, req.shared.config.max_channel_name_length)
        .map_err(|e| ApiError::BadRequest(format!("Invalid channel name: {e}")))?;
    let info = attributes(req);
    let is_presence = channel.kind() == ChannelKind::Presence;
    if info.iter().any(|a| a == "user_count") && !is_presence {
        return Err(ApiError::BadRequest("info=user_count is only available for presence channels".into()));
    }
    let summary = req.app.channel_summary(&channel).await;
    let mut out = Map::new();
    out.insert("occupied".into(), summary.is_some().into());
    for attribute in &info {
        match attribute.as_str() {
            "user_count" => {
                out.insert("user_count".into(), summary.as_ref().and_then(|s| s.user_count).unwrap_or(0).into());
            }
            "subscription_count" => {
                out.insert("subscription_count".into(), summary.as_ref().map_or(0, |s| s.subscription_count).into());
            }
            "cache" if channel.is_cache() => {
                let cache = req
                    .app
                    .cached(channel.as_str())
                    .await
                    .map(|(data, ttl)| serde_json::json!({ "data": data, "ttl": ttl.as_secs() }));
                out.insert("cache".into(), cache.unwrap_or(Value::Null));
            }
            _ => {}
        }
    }
    Ok(Value::Object(out).to_string())
}

/// `POST /users/{user_id}/terminate_connections`: closes every socket signed in as the user.
pub fn terminate(req: &Authorized<'_>, user_id: &str) -> Result<String, ApiError> {
    req.app.terminate_user(user_id);
    tracing::info!(app = %req.app.config.id, "terminated a user's connections");
    Ok("{}".into())
}

pub async fn users(req: &Authorized<'_>, name: &str) -> Result<String, ApiError> {
    let channel = herald_protocol::ChannelName::parse(name, req.shared.config.max_channel_name_length)
        .map_err(|e| ApiError::BadRequest(format!("Invalid channel name: {e}")))?;
    if channel.kind() != ChannelKind::Presence {
        return Err(ApiError::BadRequest("Users can only be listed for presence channels".into()));
    }
    let users: Vec<Value> = req
        .app
        .channel_users(channel.as_str())
        .await
        .iter()
        .map(|id| serde_json::json!({ "id": id.as_str() }))
        .collect();
    Ok(serde_json::json!({ "users": users }).to_string())
}
