//! Optional TLS termination with rustls (ring provider), from PEM files named in `[server.tls]`.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;

/// Why TLS could not be set up; names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificate chain {path}: {message}")]
    Certificates { path: String, message: String },
    #[error("cannot read private key {path}: {message}")]
    Key { path: String, message: String },
    #[error("certificate and key do not form a valid TLS configuration: {0}")]
    Config(String),
}

/// Builds the acceptor from the configured certificate chain and key.
pub fn acceptor(config: &TlsConfig) -> Result<TlsAcceptor, TlsError> {
    let shown = |p: &Path| p.display().to_string();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&config.cert_path)
        .and_then(|certs| certs.collect())
        .map_err(|e| TlsError::Certificates { path: shown(&config.cert_path), message: e.to_string() })?;
    if certs.is_empty() {
        let path = shown(&config.cert_path);
        return Err(TlsError::Certificates { path, message: "no certificate in the file".into() });
    }
    let key = PrivateKeyDer::from_pem_file(&config.key_path)
        .map_err(|e| TlsError::Key { path: shown(&config.key_path), message: e.to_string() })?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(server)))
}
