//! TLS termination: `wss://` and `https://` on the main port with the configured certificate.

mod common;

use std::sync::Arc;

use common::{app, config_with, APP_KEY};
use futures_util::StreamExt;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// Writes a fresh self-signed certificate for 127.0.0.1 into a temp dir.
fn self_signed(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, CertificateDer<'static>) {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).expect("rcgen");
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).expect("write cert");
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).expect("write key");
    (cert_path, key_path, cert.cert.der().clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_connects_over_wss_with_the_configured_certificate() {
    let dir = std::env::temp_dir().join(format!("herald-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (cert_path, key_path, der) = self_signed(&dir);
    let mut config = config_with(vec![app()]);
    config.server.tls = Some(herald::config::TlsConfig { cert_path, key_path });
    let server = herald::Server::bind(config).await.expect("binds with TLS");
    let addr = server.local_addr();
    let shutdown = tokio_util::sync::CancellationToken::new();
    tokio::spawn(server.run(shutdown.clone()));

    let mut roots = RootCertStore::empty();
    roots.add(der).expect("trust the test certificate");
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let tls = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("tcp");
    let name = ServerName::try_from("127.0.0.1").expect("server name");
    let stream = connector.connect(name, tcp).await.expect("TLS handshake with the configured certificate");
    let url = format!("wss://127.0.0.1:{}/app/{APP_KEY}?protocol=7", addr.port());
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream).await.expect("WebSocket over TLS");
    let first = tokio::time::timeout(common::FRAME_TIMEOUT, ws.next()).await.expect("a frame").expect("open");
    let text = first.expect("frame").into_text().expect("text").to_string();
    assert!(text.contains("pusher:connection_established"), "{text}");
    shutdown.cancel();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_unreadable_certificate_fails_at_bind_naming_the_file() {
    let mut config = config_with(vec![app()]);
    config.server.tls = Some(herald::config::TlsConfig {
        cert_path: "/nonexistent/cert.pem".into(),
        key_path: "/nonexistent/key.pem".into(),
    });
    let error = herald::Server::bind(config).await.expect_err("missing files are an error");
    assert!(error.to_string().contains("/nonexistent/cert.pem"), "{error}");
}
