//! Every HMAC the protocol uses (PROTOCOL.md §5.2, §7.1, §11.2, §12), computed and checked
//! in one place. Signatures are compared in constant time by `hmac`'s `verify_slice`.

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Lowercase hex HMAC-SHA256 of `message` under `secret`.
pub fn sign(secret: &str, message: &[u8]) -> String {
    let mut mac = new_mac(secret);
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

/// Whether `signature_hex` is the HMAC-SHA256 of `message` under `secret`, compared in
/// constant time. Anything that is not 64 hex digits is simply wrong.
pub fn verify(secret: &str, message: &[u8], signature_hex: &str) -> bool {
    let Ok(signature) = hex::decode(signature_hex) else {
        return false;
    };
    let mut mac = new_mac(secret);
    mac.update(message);
    mac.verify_slice(&signature).is_ok()
}

fn new_mac(secret: &str) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    <HmacSha256 as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length")
}

/// Lowercase hex MD5 of `body`, as `body_md5` carries it.
pub fn body_md5(body: &[u8]) -> String {
    hex::encode(Md5::digest(body))
}

/// The string a private, encrypted or presence subscription signs.
pub fn channel_string_to_sign(socket_id: &str, channel: &str, channel_data: Option<&str>) -> String {
    match channel_data {
        Some(data) => format!("{socket_id}:{channel}:{data}"),
        None => format!("{socket_id}:{channel}"),
    }
}

/// The string a `pusher:signin` signs.
pub fn user_string_to_sign(socket_id: &str, user_data: &str) -> String {
    format!("{socket_id}::user::{user_data}")
}

/// An `auth` value: `key:hex(HMAC(secret, string_to_sign))`.
pub fn auth_token(key: &str, secret: &str, string_to_sign: &str) -> String {
    format!("{key}:{}", sign(secret, string_to_sign.as_bytes()))
}

/// Why an `auth` value was refused. The message names what was expected, as Pusher's does,
/// but never the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("Invalid format: auth must have the format key:signature")]
    Malformed,
    #[error("Invalid key in subscription auth data: {0:?}")]
    WrongKey(String),
    #[error("Invalid signature: Expected HMAC SHA256 hex digest of {expected}, but got {got}")]
    BadSignature { expected: String, got: String },
}

/// Checks an `auth` value against the app's key and secret for the given strings to sign.
/// The first candidate is the canonical one and the one named in the error.
pub fn verify_auth(key: &str, secret: &str, candidates: &[&str], auth: &str) -> Result<(), AuthError> {
    let (got_key, got_sig) = auth.split_once(':').ok_or(AuthError::Malformed)?;
    if got_key.is_empty() || got_sig.is_empty() {
        return Err(AuthError::Malformed);
    }
    // A misconfigured client may send the secret itself: never echo it back or log it.
    let shown = |s: &str| if s == secret { "(the app secret)".to_string() } else { s.chars().take(64).collect() };
    // The key is public; comparing it in variable time leaks nothing.
    if got_key != key {
        return Err(AuthError::WrongKey(shown(got_key)));
    }
    if candidates.iter().any(|c| verify(secret, c.as_bytes(), got_sig)) {
        return Ok(());
    }
    Err(AuthError::BadSignature {
        expected: candidates.first().map(|s| s.to_string()).unwrap_or_default(),
        got: shown(got_sig),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "278d425bdf160c739803";
    const SECRET: &str = "7ad3773142a6692b25b8";

    #[test]
    fn private_channel_vector_v1() {
        let s = channel_string_to_sign("1234.1234", "private-foobar", None);
        assert_eq!(
            auth_token(KEY, SECRET, &s),
            "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
        );
    }

    #[test]
    fn verify_auth_names_what_is_wrong() {
        let s = "1234.1234:private-foobar";
        let good = auth_token(KEY, SECRET, s);
        assert_eq!(verify_auth(KEY, SECRET, &[s], &good), Ok(()));
        assert_eq!(verify_auth(KEY, SECRET, &[s], "nocolon"), Err(AuthError::Malformed));
        let wrong_key = good.replacen(KEY, "otherkey", 1);
        assert!(matches!(verify_auth(KEY, SECRET, &[s], &wrong_key), Err(AuthError::WrongKey(_))));
        let bad = format!("{KEY}:{}", "0".repeat(64));
        assert!(matches!(verify_auth(KEY, SECRET, &[s], &bad), Err(AuthError::BadSignature { .. })));
        assert!(matches!(verify_auth(KEY, SECRET, &[s], &format!("{KEY}:zz")), Err(AuthError::BadSignature { .. })));
    }

    #[test]
    fn body_md5_of_empty_body() {
        assert_eq!(body_md5(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(body_md5(b"{}"), "99914b932bd37a50b983c5e7c90ae93b");
    }
}
