//! Backends behind credentials, on 127.0.0.1, for the suite that proves the forwarder reaches
//! them (issue 13). Everything runs as tasks on the test's runtime and stops with it.
//!
//! - [`Pki`]: a CA, a server certificate and a client certificate signed by it, and an unrelated
//!   CA with a client certificate of its own; made fresh for each run.
//! - [`TokenEndpoint`]: an OAuth 2.0 token endpoint for the client credentials grant (RFC 6749
//!   §4.4) over plain HTTP at `http://127.0.0.1:{port}/oauth/token`, HTTP/1.1 with keep-alive
//!   (hyper). Unlike the [`Receiver`](super::Receiver) it never misbehaves, so it needs no
//!   hand-written HTTP.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::Engine as _;
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{AUTHORIZATION, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

/// The port of the suite's [`TokenEndpoint`].
pub const TOKEN_PORT: u16 = 9931;

/// The common name of [`Pki::ca_pem`]'s certificate.
pub const CA_CN: &str = "sfit test CA";
/// The common name of [`Pki::client_pem`]'s certificate.
pub const CLIENT_CN: &str = "sfit forwarder";
/// The common name of [`Pki::other_ca_pem`]'s certificate.
pub const OTHER_CA_CN: &str = "sfit other CA";
/// The common name of [`Pki::other_client_pem`]'s certificate.
pub const OTHER_CLIENT_CN: &str = "sfit other forwarder";

const TOKEN_PATH: &str = "/oauth/token";
/// How long tokens live until [`TokenEndpoint::set_lifetime`] says otherwise.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// Certificates for mutual TLS, each with an ECDSA P-256 key.
pub struct Pki {
    ca: String,
    /// The backend's certificate, for IP 127.0.0.1 and DNS `localhost`, and its key.
    server: String,
    client: String,
    other_ca: String,
    other_client: String,
}

impl Pki {
    /// Makes a CA ([`CA_CN`]) that signs the backend's certificate and a client certificate
    /// ([`CLIENT_CN`]), and an unrelated CA ([`OTHER_CA_CN`]) that signs a client certificate of
    /// its own ([`OTHER_CLIENT_CN`]).
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
                other_client: leaf(
                    &other_ca,
                    OTHER_CLIENT_CN,
                    &[],
                    ExtendedKeyUsagePurpose::ClientAuth,
                )?,
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

    /// A client certificate and key as [`Pki::client_pem`], signed by the unrelated CA: one the
    /// backend does not trust until it is told to trust [`Pki::other_ca_pem`].
    pub fn other_client_pem(&self) -> &str {
        &self.other_client
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
    /// When the request had arrived in full.
    pub at: Instant,
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
                tokio::spawn(serve_http(socket, move |r| endpoint.answer(r)));
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
            at,
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

async fn bind(port: u16) -> Result<TcpListener, String> {
    TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))
}

/// Serves HTTP/1.1 with keep-alive on one connection, answering each request with `answer`,
/// until the client closes it.
async fn serve_http(
    io: impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
    answer: impl Fn(Request<Bytes>) -> Response<Full<Bytes>> + Send + Sync + 'static,
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
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .await;
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
