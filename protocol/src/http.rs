//! The HTTP API's request authentication and request bodies (PROTOCOL.md §11).
//!
//! [`verify_request`] is the exact algorithm every official SDK signs with; [`sign_request`]
//! is its mirror, used by herald's own tests and load generator.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::signature;

/// How far `auth_timestamp` may be from the server's clock, by default.
pub const DEFAULT_MAX_TIMESTAMP_SKEW_SECONDS: u64 = 600;

/// Query parameters, percent-decoded, keys lower-cased, in the order received.
pub type Query = Vec<(String, String)>;

/// Parses a raw query string (`a=1&b=2`), decoding `%xx` and `+`.
pub fn parse_query(raw: &str) -> Query {
    form_urlencoded::parse(raw.as_bytes()).map(|(k, v)| (k.to_ascii_lowercase(), v.into_owned())).collect()
}

/// The first value of `key` in `query`.
pub fn query_get<'a>(query: &'a Query, key: &str) -> Option<&'a str> {
    query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// `METHOD\npath\nsorted query without auth_signature`.
pub fn string_to_sign(method: &str, path: &str, query: &Query) -> String {
    let mut params: Vec<(&str, &str)> =
        query.iter().filter(|(k, _)| k != "auth_signature").map(|(k, v)| (k.as_str(), v.as_str())).collect();
    params.sort();
    let joined: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{}\n{}\n{}", method.to_ascii_uppercase(), path, joined.join("&"))
}

/// Why a request was not authenticated. Every variant is answered with 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiAuthError {
    #[error("Missing query parameter {0}")]
    MissingParameter(&'static str),
    #[error("Unknown auth_key")]
    WrongKey,
    #[error("auth_version must be 1.0")]
    UnsupportedAuthVersion,
    #[error("auth_timestamp is not a Unix time in seconds")]
    InvalidTimestamp,
    #[error("Timestamp expired: given timestamp {given} is not within {max_skew}s of server time {now}")]
    TimestampExpired { given: u64, now: u64, max_skew: u64 },
    #[error("body_md5 is required for a request with a body")]
    MissingBodyMd5,
    #[error("body_md5 does not match the MD5 of the request body")]
    BodyMd5Mismatch,
    #[error("Invalid signature: expected HMAC SHA256 hex digest of {expected:?}")]
    BadSignature { expected: String },
}

/// A request as received, for [`verify_request`].
#[derive(Debug, Clone, Copy)]
pub struct ApiRequest<'a> {
    pub method: &'a str,
    /// The path as the SDK signed it (`/apps/{id}/…`), any mount prefix removed.
    pub path: &'a str,
    pub query: &'a Query,
    pub body: &'a [u8],
}

/// Checks a request's signature, key, timestamp and body hash against one app.
pub fn verify_request(
    req: ApiRequest<'_>,
    key: &str,
    secret: &str,
    now_unix_seconds: u64,
    max_skew_seconds: u64,
) -> Result<(), ApiAuthError> {
    let get = |k: &'static str| query_get(req.query, k).ok_or(ApiAuthError::MissingParameter(k));
    let auth_key = get("auth_key")?;
    let timestamp = get("auth_timestamp")?;
    let version = get("auth_version")?;
    let signature = get("auth_signature")?;
    if auth_key != key {
        return Err(ApiAuthError::WrongKey);
    }
    if version != "1.0" {
        return Err(ApiAuthError::UnsupportedAuthVersion);
    }
    let given: u64 = timestamp.parse().map_err(|_| ApiAuthError::InvalidTimestamp)?;
    if given.abs_diff(now_unix_seconds) > max_skew_seconds {
        return Err(ApiAuthError::TimestampExpired { given, now: now_unix_seconds, max_skew: max_skew_seconds });
    }
    match query_get(req.query, "body_md5") {
        Some(md5) if md5 != signature::body_md5(req.body) => return Err(ApiAuthError::BodyMd5Mismatch),
        None if !req.body.is_empty() => return Err(ApiAuthError::MissingBodyMd5),
        _ => {}
    }
    let expected = string_to_sign(req.method, req.path, req.query);
    if signature::verify(secret, expected.as_bytes(), signature) {
        Ok(())
    } else {
        Err(ApiAuthError::BadSignature { expected })
    }
}

/// Builds the signed query string an SDK would send (without the leading `?`).
pub fn sign_request(
    method: &str,
    path: &str,
    key: &str,
    secret: &str,
    timestamp: u64,
    body: &[u8],
    params: &[(&str, &str)],
) -> String {
    let mut query: Query = vec![
        ("auth_key".into(), key.into()),
        ("auth_timestamp".into(), timestamp.to_string()),
        ("auth_version".into(), "1.0".into()),
    ];
    if !body.is_empty() {
        query.push(("body_md5".into(), signature::body_md5(body)));
    }
    query.extend(params.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let sig = signature::sign(secret, string_to_sign(method, path, &query).as_bytes());
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in &query {
        out.append_pair(k, v);
    }
    out.append_pair("auth_signature", &sig);
    out.finish()
}

/// The body of `POST /apps/{id}/events` and of each `batch_events` item.
#[derive(Debug, Deserialize)]
pub struct TriggerBody<'a> {
    pub name: Option<String>,
    #[serde(borrow)]
    pub data: Option<&'a RawValue>,
    pub channels: Option<Vec<String>>,
    pub channel: Option<String>,
    pub socket_id: Option<String>,
    pub info: Option<String>,
}

impl TriggerBody<'_> {
    /// The text to deliver as `data`: a JSON string's content, or any other JSON value as
    /// written (herald accepts an object where Pusher documents a string).
    pub fn data_text(&self) -> Option<String> {
        let raw = self.data?.get();
        if raw.starts_with('"') {
            serde_json::from_str::<String>(raw).ok()
        } else {
            Some(raw.to_string())
        }
    }
}

/// The body of `POST /apps/{id}/batch_events`.
#[derive(Debug, Deserialize)]
pub struct BatchBody<'a> {
    #[serde(borrow)]
    pub batch: Vec<TriggerBody<'a>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_keys_are_lowercased_and_values_decoded() {
        let q = parse_query("Auth_Key=a&info=user_count%2Csubscription_count&x=a+b");
        assert_eq!(query_get(&q, "auth_key"), Some("a"));
        assert_eq!(query_get(&q, "info"), Some("user_count,subscription_count"));
        assert_eq!(query_get(&q, "x"), Some("a b"));
    }

    #[test]
    fn signed_requests_verify() {
        let body = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
        let qs = sign_request("POST", "/apps/3/events", "k", "s", 1000, body, &[]);
        let q = parse_query(&qs);
        let req = ApiRequest { method: "POST", path: "/apps/3/events", query: &q, body };
        assert_eq!(verify_request(req, "k", "s", 1000, 600), Ok(()));
        assert_eq!(
            verify_request(req, "k", "t", 1000, 600).map_err(|e| matches!(e, ApiAuthError::BadSignature { .. })),
            Err(true)
        );
        assert!(matches!(verify_request(req, "k", "s", 1601, 600), Err(ApiAuthError::TimestampExpired { .. })));
        let tampered = ApiRequest { body: b"{}", ..req };
        assert_eq!(verify_request(tampered, "k", "s", 1000, 600), Err(ApiAuthError::BodyMd5Mismatch));
    }
}
