//! Sending one webhook request: hyper-util's pooled HTTP/1 client over plain TCP or rustls
//! (the `ring` provider, chosen explicitly; Mozilla's roots from webpki-roots), one timeout
//! around the whole exchange, and the answer classified as delivered or failed. Knows nothing
//! of retries or breakers.

use std::error::Error as _;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderValue, CONTENT_TYPE, USER_AGENT};
use hyper::{Method, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::payload;
use super::route::WebhookRequest;

/// Most bytes of a receiver's answer read (and thrown away) so the connection can be reused.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Idle pooled connections kept per endpoint, and for how long.
const POOL_IDLE_PER_HOST: usize = 8;
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why one attempt failed. Every variant means the same thing to the caller: try again later.
#[derive(Debug, thiserror::Error)]
pub(super) enum DeliveryError {
    /// The receiver answered, but not with 2xx.
    #[error("endpoint answered {0}")]
    Status(StatusCode),
    /// No answer: refused connection, DNS, TLS or a broken exchange.
    #[error("request failed: {0}")]
    Network(String),
    /// No complete answer within `request_timeout_ms`.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// The HTTP client every endpoint worker shares. Cheap to clone.
#[derive(Debug, Clone)]
pub(super) struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl HttpClient {
    pub(super) fn new(timeout: Duration) -> Self {
        let provider = rustls::crypto::ring::default_provider();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(provider)
            .expect("the ring provider supports rustls' default protocol versions")
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(POOL_IDLE_PER_HOST)
            .build(connector);
        Self { client, timeout }
    }

    /// POSTs `request` once; `Ok` when the receiver answered 2xx within the timeout.
    pub(super) async fn post(&self, request: &WebhookRequest) -> Result<(), DeliveryError> {
        let mut http = hyper::Request::new(Full::new(request.body.clone()));
        *http.method_mut() = Method::POST;
        *http.uri_mut() = request.target.uri.clone();
        let headers = http.headers_mut();
        headers.extend(request.target.headers.clone());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(payload::CONTENT_TYPE));
        headers.insert("x-pusher-key", request.app_key.clone());
        headers.insert("x-pusher-signature", request.signature.clone());
        if !headers.contains_key(USER_AGENT) {
            headers.insert(USER_AGENT, HeaderValue::from_static(concat!("herald/", env!("CARGO_PKG_VERSION"))));
        }
        let exchange = async {
            let response = self.client.request(http).await.map_err(|e| DeliveryError::Network(describe(&e)))?;
            let status = response.status();
            // The answer's body means nothing; reading it lets the connection go back to the pool.
            let _ = Limited::new(response.into_body(), MAX_ANSWER_BYTES).collect().await;
            if status.is_success() {
                Ok(())
            } else {
                Err(DeliveryError::Status(status))
            }
        };
        tokio::time::timeout(self.timeout, exchange).await.map_err(|_| DeliveryError::Timeout(self.timeout))?
    }
}

/// hyper-util's error with its causes ("client error (Connect): tcp connect error: refused").
fn describe(error: &hyper_util::client::legacy::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
