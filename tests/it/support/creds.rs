//! Backends behind credentials, on 127.0.0.1, for the suite that proves the forwarder reaches
//! them (issue 13). Everything runs as tasks on the test's runtime and stops with it.
//!
//! - [`Pki`]: a CA, a server certificate and a client certificate signed by it, and an unrelated
//!   CA the backend can be told to trust instead; made fresh for each run.
//! - [`TokenEndpoint`]: an OAuth 2.0 token endpoint for the client credentials grant (RFC 6749
//!   §4.4) over plain HTTP at `http://127.0.0.1:{port}/oauth/token`.
//! - [`SecureBackend`]: the backend over HTTPS at `https://127.0.0.1:{port}/sales/save-order`. It
//!   requires a client certificate signed by the CA it trusts (mutual TLS) and, each only once
//!   configured, a header from a secret, a bearer token from a [`TokenEndpoint`] and a Standard
//!   Webhooks signature.
//!
//! Both speak HTTP/1.1 with keep-alive (hyper); the backend offers only `http/1.1` by ALPN.
//! Unlike the [`Receiver`](super::Receiver) they never misbehave, so they need no hand-written
//! HTTP.

use std::collections::HashMap;
use std::fmt::Display;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::Engine as _;
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{AUTHORIZATION, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig, crypto};

/// The port of the suite's [`TokenEndpoint`].
pub const TOKEN_PORT: u16 = 9931;
/// The port of the suite's [`SecureBackend`].
pub const BACKEND_PORT: u16 = 9932;

/// The common name of [`Pki::ca_pem`]'s certificate.
pub const CA_CN: &str = "sfit test CA";
/// The common name of [`Pki::client_pem`]'s certificate.
pub const CLIENT_CN: &str = "sfit forwarder";
/// The common name of [`Pki::other_ca_pem`]'s certificate.
pub const OTHER_CA_CN: &str = "sfit other CA";

const TOKEN_PATH: &str = "/oauth/token";
const ORDER_PATH: &str = "/sales/save-order";
/// How long tokens live until [`TokenEndpoint::set_lifetime`] says otherwise.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// Certificates for mutual TLS, each with an ECDSA P-256 key.
pub struct Pki {
    ca: String,
    /// The backend's certificate, for IP 127.0.0.1 and DNS `localhost`, and its key.
    server: String,
    client: String,
    other_ca: String,
}

impl Pki {
    /// Makes a CA ([`CA_CN`]) that signs the backend's certificate and a client certificate
    /// ([`CLIENT_CN`]), and an unrelated CA ([`OTHER_CA_CN`]), which the backend can be told to
    /// trust instead.
    pub fn generate() -> Result<Self, String> {
        let make = || -> Result<Self, rcgen::Error> {
            let ca = authority(CA_CN)?;
            let other_ca = authority(OTHER_CA_CN)?;
            Ok(Self {
                server: leaf(
                    &ca,
                    "sfit backend",
                    &["127.0.0.1", "localhost"],
                    ExtendedKeyUsagePurpose::ServerAuth,
                )?,
                client: leaf(&ca, CLIENT_CN, &[], ExtendedKeyUsagePurpose::ClientAuth)?,
                ca: ca.pem(),
                other_ca: other_ca.pem(),
            })
        };
        make().map_err(|e| format!("cannot generate the test certificates: {e}"))
    }

    /// The CA's certificate (PEM): the root the forwarder must trust for the backend's
    /// certificate, and the one the backend trusts for client certificates at first.
    pub fn ca_pem(&self) -> &str {
        &self.ca
    }

    /// The client certificate's chain (the certificate alone: the CA signed it) followed by its
    /// PKCS#8 private key, in one PEM string: what the forwarder reads from its secret.
    pub fn client_pem(&self) -> &str {
        &self.client
    }

    /// The unrelated CA's certificate (PEM), for [`SecureBackend::trust_client_ca`].
    pub fn other_ca_pem(&self) -> &str {
        &self.other_ca
    }
}

/// A self-signed CA named `cn`.
fn authority(cn: &str) -> Result<CertifiedIssuer<'static, KeyPair>, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate()?)
}

/// A certificate for `names` (IP addresses or DNS names) signed by `issuer`, followed by its
/// PKCS#8 private key, in PEM.
fn leaf(
    issuer: &Issuer<'_, KeyPair>,
    cn: &str,
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> Result<String, rcgen::Error> {
    let mut params =
        CertificateParams::new(names.iter().map(|&n| n.to_owned()).collect::<Vec<_>>())?;
    params.distinguished_name.push(DnType::CommonName, cn);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate()?;
    let certificate = params.signed_by(&key, issuer)?;
    Ok(format!("{}{}", certificate.pem(), key.serialize_pem()))
}

/// How a client authenticated at the [`TokenEndpoint`] (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `client_secret_basic`: HTTP Basic with the id and secret, each form-urlencoded first.
    Basic,
    /// `client_secret_post`: `client_id` and `client_secret` in the form body.
    Post,
}

/// One request the [`TokenEndpoint`] received, and its answer.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// The client id presented, by whichever method.
    pub client_id: Option<String>,
    /// How the client authenticated: Basic if it sent an `Authorization` header at all.
    pub auth: Option<ClientAuth>,
    /// The form's `scope`.
    pub scope: Option<String>,
    /// The form's `audience`.
    pub audience: Option<String>,
    /// The status answered.
    pub status: u16,
}

/// An OAuth 2.0 token endpoint for the client credentials grant, over plain HTTP at
/// `http://127.0.0.1:{port}/oauth/token`. It answers a `POST` of
/// `grant_type=client_credentials` from the expected client with a fresh random opaque token:
/// `{"access_token": …, "token_type": "Bearer", "expires_in": <whole seconds>}`.
///
/// Anything but a `POST` to that path gets 404. Errors then, in the order they are checked: 503
/// with a plain-text body while unavailable; 400 `invalid_request` if the client authenticated
/// both ways at once; 401 `invalid_client` (with `WWW-Authenticate: Basic`) for any client but
/// the expected one, and for every client until [`TokenEndpoint::set_client`]; 400
/// `invalid_request` without a `grant_type`, 400 `unsupported_grant_type` for another one.
#[derive(Clone)]
pub struct TokenEndpoint {
    state: Arc<Mutex<TokenState>>,
}

struct TokenState {
    client: Option<(String, String)>,
    lifetime: Duration,
    unavailable: bool,
    /// Every token issued and not revoked: when, and for how long.
    tokens: HashMap<String, (Instant, Duration)>,
    requests: Vec<TokenRequest>,
}

impl TokenEndpoint {
    /// Starts the endpoint on 127.0.0.1:`port` on the current runtime; tokens live an hour.
    pub async fn start(port: u16) -> Result<Self, String> {
        let listener = bind(port).await?;
        let endpoint = Self {
            state: Arc::new(Mutex::new(TokenState {
                client: None,
                lifetime: DEFAULT_LIFETIME,
                unavailable: false,
                tokens: HashMap::new(),
                requests: Vec::new(),
            })),
        };
        let serving = endpoint.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let endpoint = serving.clone();
                tokio::spawn(serve_http(socket, move |r| endpoint.answer(r), None));
            }
        });
        Ok(endpoint)
    }

    fn state(&self) -> MutexGuard<'_, TokenState> {
        lock(&self.state)
    }

    /// The one client that gets tokens from now on.
    pub fn set_client(&self, id: &str, secret: &str) {
        self.state().client = Some((id.to_owned(), secret.to_owned()));
    }

    /// How long tokens issued from now on live (`expires_in` is its whole seconds).
    pub fn set_lifetime(&self, lifetime: Duration) {
        self.state().lifetime = lifetime;
    }

    /// While set, every request is answered 503 with a body that is not JSON.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.state().unavailable = unavailable;
    }

    /// Invalidates every token issued so far.
    pub fn revoke_all(&self) {
        self.state().tokens.clear();
    }

    /// Whether this endpoint issued `token`, and it has neither expired nor been revoked.
    pub fn is_valid(&self, token: &str) -> bool {
        self.state()
            .tokens
            .get(token)
            .is_some_and(|(issued, lifetime)| issued.elapsed() < *lifetime)
    }

    /// Every request so far, in the order they were answered.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.state().requests.clone()
    }

    fn answer(&self, request: Request<Bytes>) -> Response<Full<Bytes>> {
        let at = Instant::now();
        let mut form: HashMap<String, String> = form_urlencoded::parse(request.body())
            .into_owned()
            .collect();
        // An `Authorization` header that is not Basic, or does not decode, presents no client.
        let basic = request
            .headers()
            .get(AUTHORIZATION)
            .map(|v| v.to_str().ok().and_then(basic_credentials));
        let post = form.get("client_secret").map(|secret| {
            let id = form.get("client_id").cloned().unwrap_or_default();
            (id, secret.clone())
        });
        let both = basic.is_some() && post.is_some();
        let (auth, presented) = match (basic, post) {
            (Some(basic), _) => (Some(ClientAuth::Basic), basic),
            (None, Some(post)) => (Some(ClientAuth::Post), Some(post)),
            (None, None) => (None, None),
        };

        let mut state = self.state();
        let response = if request.method() != Method::POST || request.uri().path() != TOKEN_PATH {
            response(404, &[], "")
        } else if state.unavailable {
            response(
                503,
                &[("content-type", "text/plain")],
                "the token service is unavailable",
            )
        } else if both {
            // RFC 6749 §2.3: a client must not use more than one authentication method.
            oauth_error(400, "invalid_request")
        } else if presented.is_none() || presented != state.client {
            let mut response = oauth_error(401, "invalid_client");
            response.headers_mut().insert(
                "www-authenticate",
                HeaderValue::from_static("Basic realm=\"token\""),
            );
            response
        } else {
            match form.get("grant_type").map(String::as_str) {
                None => oauth_error(400, "invalid_request"),
                Some("client_credentials") => {
                    let token = uuid::Uuid::new_v4().simple().to_string();
                    let lifetime = state.lifetime;
                    state.tokens.insert(token.clone(), (at, lifetime));
                    let body = json!({
                        "access_token": token,
                        "token_type": "Bearer",
                        "expires_in": lifetime.as_secs(),
                    });
                    oauth_json(200, &body)
                }
                Some(_) => oauth_error(400, "unsupported_grant_type"),
            }
        };
        state.requests.push(TokenRequest {
            client_id: presented.map(|(id, _)| id),
            auth,
            scope: form.remove("scope"),
            audience: form.remove("audience"),
            status: response.status().as_u16(),
        });
        response
    }
}

/// The client id and secret of an `Authorization: Basic` value: each was form-urlencoded
/// before the pair was base64-encoded (RFC 6749 §2.3.1).
fn basic_credentials(value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let (id, secret) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    let form_decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .map(|s| s.into_owned())
            .ok()
    };
    Some((form_decode(id)?, form_decode(secret)?))
}

/// A token response (RFC 6749 §5.1), or an error response (§5.2), both never to be cached.
fn oauth_json(status: u16, body: &serde_json::Value) -> Response<Full<Bytes>> {
    response(
        status,
        &[
            ("content-type", "application/json"),
            ("cache-control", "no-store"),
            ("pragma", "no-cache"),
        ],
        body.to_string(),
    )
}

fn oauth_error(status: u16, error: &str) -> Response<Full<Bytes>> {
    oauth_json(status, &json!({ "error": error }))
}

/// A check of the [`SecureBackend`] that a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The header of [`SecureBackend::require_header`] is missing or wrong: 403.
    Header,
    /// No bearer token, or one its token endpoint does not hold valid (never issued, expired or
    /// revoked): 401 with `WWW-Authenticate: Bearer`, and `error="invalid_token"` if there was a
    /// token.
    Bearer,
    /// The Standard Webhooks signature is missing, stale or wrong: 401.
    Signature,
}

/// One request the [`SecureBackend`] received over an accepted TLS connection.
#[derive(Debug, Clone)]
pub struct SecureDelivery {
    /// When the request had arrived in full.
    pub at: Instant,
    /// The `idempotency-key` header, empty if there was none.
    pub idempotency_key: String,
    /// The status answered.
    pub status: u16,
    /// The first check that failed, in the order of [`Check`]'s variants.
    pub failed: Option<Check>,
    /// The token of an `Authorization: Bearer` header.
    pub bearer: Option<String>,
    /// The common name of the client certificate's subject.
    pub client_cn: String,
    /// The common name of the client certificate's issuer.
    pub client_issuer_cn: String,
}

/// The backend over HTTPS at `https://127.0.0.1:{port}/sales/save-order`.
///
/// A TLS handshake succeeds only with a client certificate signed by the CA the backend trusts
/// (at first [`Pki::ca_pem`]); the others are counted in [`SecureBackend::refused_handshakes`].
/// A `POST` to the path is then answered 200 if it passes every configured check (see [`Check`]
/// for the statuses otherwise); anything else is 404. Connections are kept alive: a connection
/// keeps the trust of its handshake until [`SecureBackend::drop_connections`].
#[derive(Clone)]
pub struct SecureBackend {
    inner: Arc<Backend>,
}

struct Backend {
    certificate: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    /// The TLS configuration new connections get.
    tls: Mutex<Arc<ServerConfig>>,
    header: Mutex<Option<(String, String)>>,
    signature: Mutex<Option<standardwebhooks::Webhook>>,
    tokens: Option<TokenEndpoint>,
    deliveries: Mutex<Vec<SecureDelivery>>,
    refused: AtomicUsize,
    /// Bumped to close every open connection.
    close: watch::Sender<u64>,
}

impl SecureBackend {
    /// Starts the backend on 127.0.0.1:`port` on the current runtime, with the server
    /// certificate of `pki`, trusting client certificates signed by [`Pki::ca_pem`]. With
    /// `tokens`, every request needs a bearer token that endpoint holds valid.
    pub async fn start(
        port: u16,
        pki: &Pki,
        tokens: Option<TokenEndpoint>,
    ) -> Result<Self, String> {
        let certificate = CertificateDer::pem_slice_iter(pki.server.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("the server certificate: {e}"))?;
        let key = PrivateKeyDer::from_pem_slice(pki.server.as_bytes())
            .map_err(|e| format!("the server key: {e}"))?;
        let tls = server_config(&certificate, &key, pki.ca_pem())?;
        let listener = bind(port).await?;
        let backend = Self {
            inner: Arc::new(Backend {
                certificate,
                key,
                tls: Mutex::new(tls),
                header: Mutex::default(),
                signature: Mutex::default(),
                tokens,
                deliveries: Mutex::default(),
                refused: AtomicUsize::new(0),
                close: watch::Sender::new(0),
            }),
        };
        let serving = backend.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serving.clone().connection(socket));
            }
        });
        Ok(backend)
    }

    /// Trusts only client certificates signed by a CA in `pem` (one or more certificates) for
    /// new connections; open ones keep theirs.
    pub fn trust_client_ca(&self, pem: &str) -> Result<(), String> {
        let config = server_config(&self.inner.certificate, &self.inner.key, pem)?;
        *lock(&self.inner.tls) = config;
        Ok(())
    }

    /// Closes every open connection, each once its request in flight is answered, so that the
    /// client's next request needs a new handshake.
    pub fn drop_connections(&self) {
        self.inner.close.send_modify(|n| *n += 1);
    }

    /// Requires header `name` to be `value` on every request from now on (replacing an earlier
    /// requirement).
    pub fn require_header(&self, name: &str, value: &str) {
        *lock(&self.inner.header) = Some((name.to_owned(), value.to_owned()));
    }

    /// Requires a Standard Webhooks signature with `secret` (`whsec_…` or bare base64) on every
    /// request from now on.
    pub fn require_signature(&self, secret: &str) -> Result<(), String> {
        let webhook =
            standardwebhooks::Webhook::new(secret).map_err(|e| format!("signing secret: {e}"))?;
        *lock(&self.inner.signature) = Some(webhook);
        Ok(())
    }

    /// Every request so far, in the order they were answered.
    pub fn deliveries(&self) -> Vec<SecureDelivery> {
        lock(&self.inner.deliveries).clone()
    }

    /// How many connections were closed before their TLS handshake completed: those without a
    /// client certificate or with one the backend does not trust.
    pub fn refused_handshakes(&self) -> usize {
        self.inner.refused.load(Ordering::Relaxed)
    }

    async fn connection(self, socket: TcpStream) {
        let close = self.inner.close.subscribe();
        let acceptor = TlsAcceptor::from(lock(&self.inner.tls).clone());
        let Ok(tls) = acceptor.accept(socket).await else {
            self.inner.refused.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let client = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(<[_]>::first)
            .map(common_names)
            .unwrap_or_default();
        serve_http(tls, move |r| self.answer(r, &client), Some(close)).await;
    }

    fn answer(&self, request: Request<Bytes>, client: &(String, String)) -> Response<Full<Bytes>> {
        let at = Instant::now();
        let text = |name: HeaderName| request.headers().get(name).and_then(|v| v.to_str().ok());
        let bearer = text(AUTHORIZATION)
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim().to_owned());
        let routed = request.method() == Method::POST && request.uri().path() == ORDER_PATH;
        let failed = routed
            .then(|| self.first_failed_check(&request, bearer.as_deref()))
            .flatten();
        let response = match failed {
            None if !routed => response(404, &[], ""),
            None => response(200, &[], ""),
            Some(Check::Header) => response(403, &[], ""),
            Some(Check::Bearer) => {
                let challenge = if bearer.is_some() {
                    "Bearer error=\"invalid_token\""
                } else {
                    "Bearer"
                };
                response(401, &[("www-authenticate", challenge)], "")
            }
            Some(Check::Signature) => response(401, &[], ""),
        };
        lock(&self.inner.deliveries).push(SecureDelivery {
            at,
            idempotency_key: text(HeaderName::from_static("idempotency-key"))
                .unwrap_or_default()
                .to_owned(),
            status: response.status().as_u16(),
            failed,
            bearer,
            client_cn: client.0.clone(),
            client_issuer_cn: client.1.clone(),
        });
        response
    }

    /// The first check of [`Check`]'s order that `request` fails.
    fn first_failed_check(&self, request: &Request<Bytes>, bearer: Option<&str>) -> Option<Check> {
        let headers = request.headers();
        let header_ok = lock(&self.inner.header)
            .as_ref()
            .is_none_or(|(name, value)| headers.get(name.as_str()).is_some_and(|v| v == value));
        let bearer_ok = self
            .inner
            .tokens
            .as_ref()
            .is_none_or(|tokens| bearer.is_some_and(|token| tokens.is_valid(token)));
        let signature_ok = lock(&self.inner.signature)
            .as_ref()
            .is_none_or(|webhook| webhook.verify(request.body(), headers).is_ok());
        [
            (header_ok, Check::Header),
            (bearer_ok, Check::Bearer),
            (signature_ok, Check::Signature),
        ]
        .into_iter()
        .find_map(|(ok, check)| (!ok).then_some(check))
    }
}

/// A TLS configuration with the backend's certificate that requires a client certificate
/// signed by a CA in `client_ca_pem`.
fn server_config(
    certificate: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'static>,
    client_ca_pem: &str,
) -> Result<Arc<ServerConfig>, String> {
    let tls = |e: &dyn Display| format!("the backend's TLS configuration: {e}");
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(client_ca_pem.as_bytes()) {
        let ca = ca.map_err(|e| tls(&e))?;
        roots.add(ca).map_err(|e| tls(&e))?;
    }
    let provider = Arc::new(crypto::aws_lc_rs::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| tls(&e))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(&e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certificate.to_vec(), key.clone_key())
        .map_err(|e| tls(&e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The common names of a certificate's subject and issuer (empty where there is none).
fn common_names(certificate: &CertificateDer<'_>) -> (String, String) {
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(certificate) else {
        return Default::default();
    };
    let cn = |name: &x509_parser::x509::X509Name<'_>| {
        name.iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    (cn(parsed.subject()), cn(parsed.issuer()))
}

async fn bind(port: u16) -> Result<TcpListener, String> {
    TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))
}

/// Serves HTTP/1.1 with keep-alive on one connection, answering each request with `answer`,
/// until the client closes it or `close` changes (then once the request in flight is answered).
async fn serve_http(
    io: impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
    answer: impl Fn(Request<Bytes>) -> Response<Full<Bytes>> + Send + Sync + 'static,
    close: Option<watch::Receiver<u64>>,
) {
    let answer = Arc::new(answer);
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let answer = answer.clone();
        async move {
            let (head, body) = request.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, hyper::Error>(answer(Request::from_parts(head, body)))
        }
    });
    let connection =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let closed = async {
        match close {
            Some(mut close) => {
                let _ = close.changed().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = connection.as_mut() => return,
        () = closed => connection.as_mut().graceful_shutdown(),
    }
    let _ = connection.await;
}

fn response(
    status: u16,
    headers: &[(&'static str, &str)],
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for &(name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
