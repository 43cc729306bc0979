//! The server under test: its WebSocket and HTTP endpoints and app credentials.
//!
//! The generator only ever talks to loopback: a URL whose host is not `localhost`, `127.x.x.x`
//! or `::1` is refused here, before any socket is opened.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use anyhow::{bail, Context};
use herald_protocol::signature;
use hyper::Uri;

use crate::cli::TargetArgs;

/// A validated loopback endpoint: where to connect and the deployment path prefix.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// `host:port` as written, for the `Host` header.
    pub authority: String,
    /// Path prefix without a trailing slash ("" for none).
    pub prefix: String,
}

/// Everything needed to reach one app on one server.
#[derive(Debug, Clone)]
pub struct Target {
    pub ws: Endpoint,
    pub http: Endpoint,
    pub app_id: String,
    pub key: String,
    pub secret: String,
}

impl Target {
    pub fn from_args(args: &TargetArgs) -> anyhow::Result<Self> {
        Ok(Self {
            ws: Endpoint::parse(&args.ws_url, "ws", 80).context("--ws-url")?,
            http: Endpoint::parse(&args.http_url, "http", 80).context("--http-url")?,
            app_id: args.app_id.clone(),
            key: args.key.clone(),
            secret: args.secret.clone(),
        })
    }

    /// Path and query of the WebSocket upgrade request, as pusher-js would send it.
    pub fn ws_path(&self) -> String {
        format!("{}/app/{}?protocol=7&client=herald-bench&version=0.1.0", self.ws.prefix, self.key)
    }

    /// The `auth` of a private (`channel_data` None) or presence subscription, as an app's
    /// auth endpoint would sign it: `key:hex(HMAC-SHA256(secret, "socket_id:channel[:data]"))`.
    pub fn channel_auth(&self, socket_id: &str, channel: &str, channel_data: Option<&str>) -> String {
        let to_sign = signature::channel_string_to_sign(socket_id, channel, channel_data);
        signature::auth_token(&self.key, &self.secret, &to_sign)
    }
}

impl Endpoint {
    fn parse(url: &str, scheme: &str, default_port: u16) -> anyhow::Result<Self> {
        let uri: Uri = url.parse().with_context(|| format!("not a URL: {url}"))?;
        if uri.scheme_str() != Some(scheme) {
            bail!("{url}: scheme must be {scheme}:// (TLS is not supported)");
        }
        let host = uri.host().context("URL has no host")?;
        let port = uri.port_u16().unwrap_or(default_port);
        let addr = resolve_loopback(host, port)?;
        let prefix = uri.path().trim_end_matches('/').to_string();
        Ok(Self { addr, authority: format!("{host}:{port}"), prefix })
    }
}

/// Resolves `host` only if it names the loopback interface.
fn resolve_loopback(host: &str, port: u16) -> anyhow::Result<SocketAddr> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = if bare.eq_ignore_ascii_case("localhost") {
        let resolved = ("localhost", port).to_socket_addrs().context("resolving localhost")?;
        resolved.map(|a| a.ip()).find(IpAddr::is_loopback).context("localhost is not loopback here")?
    } else {
        bare.parse().with_context(|| format!("{host}: give a loopback IP address or localhost"))?
    };
    if !ip.is_loopback() {
        bail!("{host}: only loopback addresses (127.0.0.0/8, ::1, localhost) are allowed");
    }
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_urls_are_accepted_with_their_prefix() {
        let e = Endpoint::parse("ws://127.0.0.1:6001/ws/", "ws", 80).expect("valid");
        assert_eq!(e.addr, "127.0.0.1:6001".parse().expect("addr"));
        assert_eq!(e.prefix, "/ws");
        assert_eq!(Endpoint::parse("http://[::1]:7", "http", 80).expect("v6").addr.port(), 7);
        assert!(Endpoint::parse("http://localhost:6001", "http", 80).is_ok());
    }

    #[test]
    fn channel_auth_signs_socket_channel_and_data() {
        let target = Target {
            ws: Endpoint::parse("ws://127.0.0.1:1", "ws", 80).expect("ws"),
            http: Endpoint::parse("http://127.0.0.1:1", "http", 80).expect("http"),
            app_id: "app1".into(),
            key: "key1".into(),
            secret: "secret1".into(),
        };
        let expected = format!("key1:{}", signature::sign("secret1", b"1.2:presence-a:{}"));
        assert_eq!(target.channel_auth("1.2", "presence-a", Some("{}")), expected);
        let private = format!("key1:{}", signature::sign("secret1", b"1.2:private-a"));
        assert_eq!(target.channel_auth("1.2", "private-a", None), private);
    }

    #[test]
    fn non_loopback_hosts_and_wrong_schemes_are_refused() {
        assert!(Endpoint::parse("ws://10.0.0.1:6001", "ws", 80).is_err());
        assert!(Endpoint::parse("ws://example.com:6001", "ws", 80).is_err());
        assert!(Endpoint::parse("wss://127.0.0.1:6001", "ws", 80).is_err());
    }
}
