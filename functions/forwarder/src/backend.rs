//! The reqwest adapter: one delivery attempt to the backend, signed and carrying credentials when
//! configured.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Certificate, Identity, Method};
use sha2::Sha256;
use storeforward_core::batch::{Backend, Message};
use storeforward_core::retry::{Attempt, parse_retry_after};
use storeforward_core::trace::TraceContext;
use tracing::info;

use crate::credentials::Credentials;

/// At most this much of a response body is read (to keep the connection reusable); the rest is
/// dropped with the connection.
const MAX_RESPONSE_DRAIN: usize = 64 * 1024;

/// Where and how to deliver.
#[derive(Debug, Clone)]
pub struct BackendSettings {
    /// `BACKEND_URL`.
    pub url: reqwest::Url,
    /// `BACKEND_METHOD` (default `POST`).
    pub method: Method,
    /// `REQUEST_TIMEOUT_MS`: the whole attempt, connect to last response byte read (a token
    /// fetch and a second request after refused credentials included).
    pub request_timeout: Duration,
    /// `CONNECT_TIMEOUT_MS`.
    pub connect_timeout: Duration,
    /// `SIGNING_SECRET`, decoded.
    pub signer: Option<Signer>,
    /// `HEALTH_URL`: what the circuit breaker's probe `GET`s before it tries a ticket.
    pub health_url: Option<reqwest::Url>,
    /// The client certificate and key (`CLIENT_CERTIFICATE_SECRET_ARN`), for mutual TLS.
    pub identity: Option<Identity>,
    /// CA certificates trusted besides the system's roots (`BACKEND_CA_ARN`).
    pub extra_roots: Vec<Certificate>,
}

/// A client certificate chain and its private key, PEM, in one value
/// (`CLIENT_CERTIFICATE_SECRET_ARN`).
pub fn identity(pem: &str) -> Result<Identity, String> {
    Identity::from_pem(pem.as_bytes()).map_err(|e| {
        format!(
            "expected PEM certificates and their private key ({})",
            error_chain(&e)
        )
    })
}

/// One or more PEM CA certificates (`BACKEND_CA_ARN`).
pub fn roots(pem: &str) -> Result<Vec<Certificate>, String> {
    match Certificate::from_pem_bundle(pem.as_bytes()) {
        Ok(roots) if !roots.is_empty() => Ok(roots),
        Ok(_) => Err("it holds no PEM certificate".into()),
        Err(e) => Err(format!("expected PEM certificates ({})", error_chain(&e))),
    }
}

/// Signs deliveries per the Standard Webhooks specification.
#[derive(Clone)]
pub struct Signer {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(<redacted>)")
    }
}

impl Signer {
    /// A secret as Standard Webhooks writes it: base64, optionally prefixed with `whsec_`.
    pub fn from_secret(secret: &str) -> Result<Self, String> {
        let encoded = secret.trim().trim_start_matches("whsec_");
        let key = STANDARD.decode(encoded).map_err(|e| {
            format!("the secret must be base64, optionally prefixed with whsec_ ({e})")
        })?;
        if key.len() < 16 {
            return Err("the secret must decode to at least 16 bytes".into());
        }
        let mac = Hmac::new_from_slice(&key).map_err(|e| e.to_string())?;
        Ok(Self { mac })
    }

    /// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
    pub fn signature(&self, id: &str, timestamp: u64, body: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body.as_bytes());
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// Delivers over HTTP with a pooled client; redirects are not followed.
#[derive(Debug, Clone)]
pub struct HttpBackend {
    client: reqwest::Client,
    settings: BackendSettings,
    credentials: Arc<Credentials>,
}

impl HttpBackend {
    /// The backend with its client (TLS roots, client certificate, timeouts) and no credentials.
    pub fn new(settings: &BackendSettings) -> Result<Self, reqwest::Error> {
        // No client-wide timeout: `deliver` and `health` bound the whole attempt themselves
        // (one timer per delivery, not two), and the token request sets its own.
        let mut client = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!(
                "storeforward-forwarder/",
                env!("CARGO_PKG_VERSION")
            ))
            .tls_certs_merge(settings.extra_roots.iter().cloned());
        if let Some(identity) = &settings.identity {
            client = client.identity(identity.clone());
        }
        Ok(Self {
            client: client.build()?,
            settings: settings.clone(),
            credentials: Arc::default(),
        })
    }

    /// The client, for the token endpoint: same roots and certificate.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// How long a token request may take: half an attempt, so that a hanging token endpoint is
    /// told apart from a hanging backend, and leaves the delivery time.
    pub fn token_timeout(&self) -> Duration {
        self.settings.request_timeout / 2
    }

    /// Sends `credentials` with every request.
    pub fn with_credentials(self, credentials: Credentials) -> Self {
        Self {
            credentials: Arc::new(credentials),
            ..self
        }
    }

    fn request(&self, message: &Message, trace: &TraceContext) -> reqwest::RequestBuilder {
        let envelope = &message.envelope;
        let mut request = self
            .client
            .request(self.settings.method.clone(), self.settings.url.clone())
            .header(CONTENT_TYPE, &envelope.content_type)
            .header("idempotency-key", &envelope.idempotency_key)
            .body(message.body.clone());
        if let Some(trace) = &envelope.trace_header {
            request = request.header("x-amzn-trace-id", trace);
        }
        // This receive's attempt span, a child of the store's; the health check sends none.
        request = request.header("traceparent", trace.parent.to_string());
        if let Some(state) = &trace.state {
            request = request.header("tracestate", state);
        }
        if let Some(signer) = &self.settings.signer {
            let timestamp = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            request = request
                .header("webhook-id", &envelope.idempotency_key)
                .header("webhook-timestamp", timestamp)
                .header(
                    "webhook-signature",
                    signer.signature(&envelope.idempotency_key, timestamp, &message.body),
                );
        }
        request
    }
}

impl HttpBackend {
    /// Sends one request: its status and `Retry-After`, or how it failed.
    async fn send(request: reqwest::RequestBuilder) -> Attempt {
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(e) if e.is_timeout() => return Attempt::Timeout,
            Err(e) if e.is_connect() => return Attempt::Connection(error_chain(&e)),
            Err(e) => return Attempt::Other(error_chain(&e)),
        };
        let attempt = Attempt::Response {
            status: response.status().as_u16(),
            retry_after: response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, SystemTime::now())),
        };
        // The status decides; reading (a bounded part of) the body only lets the pool reuse the
        // connection, so a body that fails to arrive changes nothing.
        let mut drained = 0;
        while drained < MAX_RESPONSE_DRAIN {
            match response.chunk().await {
                Ok(Some(chunk)) => drained += chunk.len(),
                _ => break,
            }
        }
        attempt
    }
}

impl Backend for HttpBackend {
    /// One attempt, within the request timeout, whatever it takes: a token, the request, and one
    /// more if the backend refused the credentials (401, 403) and newer ones could be had.
    async fn deliver(&self, message: &Message, trace: &TraceContext) -> Attempt {
        tokio::time::timeout(self.settings.request_timeout, self.attempt(message, trace))
            .await
            .unwrap_or(Attempt::Timeout)
    }

    fn method(&self) -> &str {
        self.settings.method.as_str()
    }

    async fn health(&self) -> Option<Attempt> {
        let url = self.settings.health_url.clone()?;
        let check = async {
            match self.credentials.current().await {
                Ok(auth) => Self::send(auth.apply(self.client.get(url))).await,
                Err(no_credentials) => no_credentials,
            }
        };
        Some(
            tokio::time::timeout(self.settings.request_timeout, check)
                .await
                .unwrap_or(Attempt::Timeout),
        )
    }
}

impl HttpBackend {
    async fn attempt(&self, message: &Message, trace: &TraceContext) -> Attempt {
        let auth = match self.credentials.current().await {
            Ok(auth) => auth,
            Err(no_credentials) => return no_credentials,
        };
        let attempt = Self::send(auth.apply(self.request(message, trace))).await;
        let Attempt::Response { status, .. } = attempt else {
            return attempt;
        };
        match self.credentials.after_refusal(&auth, status).await {
            Some(Ok(fresh)) => {
                info!(
                    status,
                    "credentials refused; trying once more with new ones"
                );
                Self::send(fresh.apply(self.request(message, trace))).await
            }
            Some(Err(no_credentials)) => no_credentials,
            None => attempt,
        }
    }
}

/// The error with its causes on one line, which reqwest and the AWS SDK keep out of their
/// `Display`.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
