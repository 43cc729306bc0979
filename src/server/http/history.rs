//! `GET /apps/{id}/channels/{name}/history[?since=<position>]` (herald's extension): a
//! history channel's kept events for backends, oldest first, each the frame subscribers got.
//! Without `since`, everything kept; with it, what came after it, or 410 when that is no
//! longer all kept (the same rule as a client's recovery).

use herald_protocol::history::BadPosition;
use herald_protocol::http::query_get;
use herald_protocol::ChannelName;

use super::api::Authorized;
use super::ApiError;
use crate::history::{Gap, Replay, Since};

pub async fn history(req: &Authorized<'_>, name: &str) -> Result<String, ApiError> {
    let channel = ChannelName::parse(name, req.shared.config.max_channel_name_length)
        .map_err(|e| ApiError::BadRequest(format!("Invalid channel name: {e}")))?;
    let read = match query_get(&req.query, "since") {
        None => req.app.history_kept(&channel).await,
        Some(since) => {
            let since = since.parse().map_err(|e: BadPosition| ApiError::BadRequest(format!("since: {e}")))?;
            req.app.read_history(&channel, Since::Position(since)).await.map(Some)
        }
    };
    match read {
        Ok(replay) => Ok(body(&channel, replay)),
        Err(gap) => Err(refusal(&channel, gap)),
    }
}

/// `{"channel":…,"position":<newest or null>,"events":[<frame>,…]}`: the frames are spliced
/// in as they were sent.
fn body(channel: &ChannelName, replay: Option<Replay>) -> String {
    let mut out = String::from("{\"channel\":");
    out.push_str(&serde_json::Value::from(channel.as_str()).to_string());
    match &replay {
        Some(r) => out.push_str(&format!(",\"position\":\"{}\"", r.latest)),
        None => out.push_str(",\"position\":null"),
    }
    out.push_str(",\"events\":[");
    for (i, (_, frame)) in replay.iter().flat_map(|r| &r.events).enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&String::from_utf8_lossy(frame.payload()));
    }
    out.push_str("]}");
    out
}

fn refusal(channel: &ChannelName, gap: Gap) -> ApiError {
    match gap {
        Gap::NoHistory => ApiError::NotFound(format!("Channel {channel} does not keep history")),
        Gap::NotKept | Gap::Unknown | Gap::Unrecorded => ApiError::Gone(format!("{gap} (channel {channel})")),
        Gap::Unavailable => ApiError::Unavailable(gap.to_string()),
    }
}
