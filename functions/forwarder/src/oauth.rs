//! OAuth2 client credentials (RFC 6749 §4.4) for the backend's bearer token: the `oauth2` crate
//! speaks the protocol over the forwarder's own HTTP client, and a cache keeps the token for the
//! life of the instance, across invocations, fetching a new one shortly before it expires.

use std::time::Duration;

use oauth2::basic::{BasicClient, BasicRequestTokenError};
use oauth2::{
    AuthType, ClientId, ClientSecret, HttpRequest, HttpResponse, RequestTokenError, Scope,
    TokenResponse, TokenUrl,
};
use reqwest::StatusCode;
use reqwest::header::HeaderValue;
use storeforward_core::retry::CredentialFailure;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::backend::error_chain;
use crate::secret::Refreshable;

/// A token endpoint's answers are small; more than this is not a token response.
const MAX_TOKEN_RESPONSE: usize = 64 * 1024;
/// After a failed fetch, the failure is the answer for this long, so that a batch of deliveries
/// (or a broken identity provider) makes one request per second at most.
pub const FAILURE_HOLD: Duration = Duration::from_secs(1);
/// A token is refreshed this long before it expires, or a quarter of its lifetime before when
/// that is shorter.
pub const REFRESH_AHEAD: Duration = Duration::from_secs(60);

/// A token as the endpoint issued it.
#[derive(Debug, Clone)]
pub struct Token {
    /// The `Authorization` header that carries it (`Bearer …`), marked sensitive.
    pub value: HeaderValue,
    /// `expires_in`; without it the token is kept until the backend refuses it.
    pub lifetime: Option<Duration>,
}

/// Why no token could be had: its class, and what happened (never a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenError {
    pub failure: CredentialFailure,
    pub reason: String,
}

/// Gets a new token; the cache's seam for tests.
pub trait Fetch: Sync {
    fn fetch(&self) -> impl Future<Output = Result<Token, TokenError>> + Send;
}

struct Cached {
    value: HeaderValue,
    refresh_at: Option<Instant>,
    expires_at: Option<Instant>,
}

#[derive(Default)]
struct Cache {
    token: Option<Cached>,
    failed: Option<(Instant, TokenError)>,
}

/// The token cache: one fetch at a time, shared by every delivery of the instance.
pub struct TokenSource<F> {
    fetcher: F,
    cache: tokio::sync::Mutex<Cache>,
}

impl<F: std::fmt::Debug> std::fmt::Debug for TokenSource<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("fetcher", &self.fetcher)
            .finish_non_exhaustive()
    }
}

impl<F: Fetch> TokenSource<F> {
    pub fn new(fetcher: F) -> Self {
        Self {
            fetcher,
            cache: tokio::sync::Mutex::new(Cache::default()),
        }
    }

    /// The token to send: the cached one until its refresh time, then a new one. If a new one
    /// cannot be had, the old one serves until it expires; after that the failure is the answer
    /// for [`FAILURE_HOLD`].
    pub async fn token(&self) -> Result<HeaderValue, TokenError> {
        let mut cache = self.cache.lock().await;
        let now = Instant::now();
        if let Some(token) = &cache.token
            && token.refresh_at.is_none_or(|at| now < at)
        {
            return Ok(token.value.clone());
        }
        let unexpired = |cache: &Cache, now: Instant| {
            cache
                .token
                .as_ref()
                .filter(|t| t.expires_at.is_none_or(|at| now < at))
                .map(|t| t.value.clone())
        };
        if let Some((until, error)) = &cache.failed
            && now < *until
        {
            return unexpired(&cache, now).ok_or_else(|| error.clone());
        }
        let requested = Instant::now();
        // Boxed: a rare call, kept out of the future of every delivery that asks for the token.
        match Box::pin(self.fetcher.fetch()).await {
            Ok(token) => {
                info!(
                    lifetime_s = token.lifetime.map(|l| l.as_secs()),
                    "new access token"
                );
                let ahead = |lifetime: Duration| REFRESH_AHEAD.min(lifetime / 4);
                cache.token = Some(Cached {
                    value: token.value.clone(),
                    refresh_at: token.lifetime.map(|l| requested + l - ahead(l)),
                    expires_at: token.lifetime.map(|l| requested + l),
                });
                cache.failed = None;
                Ok(token.value)
            }
            Err(error) => {
                warn!(
                    failure = error.failure.as_str(),
                    reason = %error.reason,
                    "token endpoint failed; deliveries wait"
                );
                let now = Instant::now();
                cache.failed = Some((now + FAILURE_HOLD, error.clone()));
                unexpired(&cache, now).ok_or(error)
            }
        }
    }

    /// The backend refused `used` (401): unless a newer token replaced it already, it is
    /// dropped, so that the next [`token`](Self::token) fetches one.
    pub async fn refused(&self, used: &HeaderValue) {
        let mut cache = self.cache.lock().await;
        if cache.token.as_ref().is_some_and(|t| t.value == used) {
            cache.token = None;
            cache.failed = None;
        }
    }
}

/// How the client authenticates at the token endpoint (`OAUTH_CLIENT_AUTH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `client_secret_basic`: HTTP Basic (the RFC's default).
    Basic,
    /// `client_secret_post`: in the form body.
    Post,
}

/// The token endpoint's settings (`OAUTH_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthSettings {
    pub token_url: reqwest::Url,
    pub client_id: String,
    pub scope: Option<String>,
    pub audience: Option<String>,
    pub client_auth: ClientAuth,
}

/// The real token endpoint, asked with the `oauth2` crate over `http`.
#[derive(Debug)]
pub struct Endpoint {
    pub settings: OAuthSettings,
    pub client_secret: Refreshable<String>,
    pub http: reqwest::Client,
    /// Per token request.
    pub timeout: Duration,
}

impl Fetch for Endpoint {
    /// A rejected client (`invalid_client`, say) re-reads its secret, at most once per interval,
    /// and tries again once if it changed.
    async fn fetch(&self) -> Result<Token, TokenError> {
        let secret = self.client_secret.current();
        match self.exchange(&secret).await {
            Err(e) if e.failure == CredentialFailure::Rejected => {
                match self.client_secret.after_refusal(&secret).await {
                    Some(fresh) => self.exchange(&fresh).await,
                    None => Err(e),
                }
            }
            answer => answer,
        }
    }
}

impl Endpoint {
    async fn exchange(&self, secret: &str) -> Result<Token, TokenError> {
        let settings = &self.settings;
        let client = BasicClient::new(ClientId::new(settings.client_id.clone()))
            .set_client_secret(ClientSecret::new(secret.to_owned()))
            .set_token_uri(TokenUrl::from_url(settings.token_url.clone()))
            .set_auth_type(match settings.client_auth {
                ClientAuth::Basic => AuthType::BasicAuth,
                ClientAuth::Post => AuthType::RequestBody,
            });
        let mut request = client.exchange_client_credentials().add_scopes(
            settings
                .scope
                .iter()
                .flat_map(|s| s.split_whitespace())
                .map(|s| Scope::new(s.to_owned())),
        );
        if let Some(audience) = &settings.audience {
            request = request.add_extra_param("audience", audience);
        }
        let http = |request: HttpRequest| send(self.http.clone(), request, self.timeout);
        let response = request.request_async(&http).await.map_err(classify)?;
        let mut value =
            HeaderValue::try_from(format!("Bearer {}", response.access_token().secret())).map_err(
                |_| TokenError {
                    failure: CredentialFailure::Malformed,
                    reason: "the access token cannot be sent in a header".into(),
                },
            )?;
        value.set_sensitive(true);
        Ok(Token {
            value,
            lifetime: response.expires_in(),
        })
    }
}

/// What the HTTP exchange with the token endpoint can fail with before `oauth2` reads an answer.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// 5xx, 408 or 429: the endpoint is down or busy, whatever its body says.
    #[error("token endpoint answered {0}")]
    Unavailable(u16),
    #[error("{}", error_chain(.0))]
    Http(#[from] reqwest::Error),
    #[error("{0}")]
    Response(#[from] oauth2::http::Error),
}

/// One request to the token endpoint with the forwarder's client (its TLS roots and client
/// certificate).
async fn send(
    http: reqwest::Client,
    request: HttpRequest,
    timeout: Duration,
) -> Result<HttpResponse, ExchangeError> {
    let mut request = reqwest::Request::try_from(request)?;
    *request.timeout_mut() = Some(timeout);
    let mut response = http.execute(request).await?;
    let status = response.status();
    if status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
    {
        return Err(ExchangeError::Unavailable(status.as_u16()));
    }
    let mut answer = oauth2::http::Response::builder().status(status);
    for (name, value) in response.headers() {
        answer = answer.header(name, value);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_TOKEN_RESPONSE {
            break;
        }
    }
    Ok(answer.body(body)?)
}

fn classify(error: BasicRequestTokenError<ExchangeError>) -> TokenError {
    let (failure, reason) = match error {
        RequestTokenError::Request(ExchangeError::Unavailable(status)) => (
            CredentialFailure::Unavailable,
            format!("token endpoint answered {status}"),
        ),
        RequestTokenError::Request(e) => (CredentialFailure::Unavailable, e.to_string()),
        RequestTokenError::ServerResponse(e) => (
            CredentialFailure::Rejected,
            format!(
                "token endpoint refused the client: {}{}",
                e.error().as_ref(),
                e.error_description()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            ),
        ),
        // Neither the answer's body (it may hold a token) nor the parser's quote of it.
        RequestTokenError::Parse(e, _) => (
            CredentialFailure::Malformed,
            format!("not a token response (at {})", e.path()),
        ),
        RequestTokenError::Other(e) => (CredentialFailure::Malformed, e),
    };
    TokenError { failure, reason }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Answers from a script, one per fetch, and counts the fetches; each takes 10 ms.
    struct Scripted {
        answers: Mutex<Vec<Result<Token, TokenError>>>,
        fetches: AtomicUsize,
    }

    impl Scripted {
        fn new(mut answers: Vec<Result<Token, TokenError>>) -> Self {
            answers.reverse();
            Self {
                answers: Mutex::new(answers),
                fetches: AtomicUsize::new(0),
            }
        }

        fn fetches(&self) -> usize {
            self.fetches.load(Ordering::SeqCst)
        }
    }

    impl Fetch for Scripted {
        async fn fetch(&self) -> Result<Token, TokenError> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(10)).await;
            self.answers
                .lock()
                .unwrap()
                .pop()
                .expect("more fetches than the script has answers")
        }
    }

    fn token(value: &'static str, lifetime_s: u64) -> Result<Token, TokenError> {
        Ok(Token {
            value: HeaderValue::from_static(value),
            lifetime: Some(Duration::from_secs(lifetime_s)),
        })
    }

    fn down() -> Result<Token, TokenError> {
        Err(TokenError {
            failure: CredentialFailure::Unavailable,
            reason: "token endpoint answered 503".into(),
        })
    }

    async fn advance(by: Duration) {
        tokio::time::advance(by).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_is_reused_until_shortly_before_it_expires() {
        let source = TokenSource::new(Scripted::new(vec![token("t1", 3600), token("t2", 3600)]));
        assert_eq!(source.token().await.unwrap(), "t1");
        // 3600 s: refreshed 60 s ahead, so at 3540 s after the request.
        advance(Duration::from_secs(3500)).await;
        assert_eq!(source.token().await.unwrap(), "t1");
        assert_eq!(source.fetcher.fetches(), 1);
        advance(Duration::from_secs(40)).await;
        assert_eq!(source.token().await.unwrap(), "t2");
        assert_eq!(source.fetcher.fetches(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_lived_token_is_refreshed_a_quarter_of_its_life_ahead() {
        let source = TokenSource::new(Scripted::new(vec![token("t1", 4), token("t2", 4)]));
        assert_eq!(source.token().await.unwrap(), "t1");
        advance(Duration::from_millis(2900)).await;
        assert_eq!(source.token().await.unwrap(), "t1", "refresh at 3 s");
        advance(Duration::from_millis(100)).await;
        assert_eq!(source.token().await.unwrap(), "t2");
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_deliveries_share_one_fetch() {
        let source = TokenSource::new(Scripted::new(vec![token("t1", 3600)]));
        let tokens = futures::future::join_all((0..10).map(|_| source.token())).await;
        assert!(
            tokens.iter().all(|t| t.as_ref().is_ok_and(|t| t == "t1")),
            "{tokens:?}"
        );
        assert_eq!(source.fetcher.fetches(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unexpired_token_serves_while_the_endpoint_is_down() {
        let source = TokenSource::new(Scripted::new(vec![token("t1", 100), down(), down()]));
        assert_eq!(source.token().await.unwrap(), "t1");
        advance(Duration::from_secs(80)).await;
        assert_eq!(
            source.token().await.unwrap(),
            "t1",
            "refresh due at 75 s failed, the token lives until 100 s"
        );
        assert_eq!(source.fetcher.fetches(), 2);
        advance(Duration::from_secs(21)).await;
        assert_eq!(source.token().await, down().map(|t| t.value));
        assert_eq!(source.fetcher.fetches(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_is_the_answer_for_a_second_then_the_endpoint_is_asked_again() {
        let source = TokenSource::new(Scripted::new(vec![down(), token("t1", 3600)]));
        assert_eq!(source.token().await, down().map(|t| t.value));
        let held = futures::future::join_all((0..10).map(|_| source.token())).await;
        assert!(held.iter().all(Result::is_err), "{held:?}");
        assert_eq!(source.fetcher.fetches(), 1, "held, not asked again");
        advance(FAILURE_HOLD).await;
        assert_eq!(source.token().await.unwrap(), "t1");
        assert_eq!(source.fetcher.fetches(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_token_is_replaced_once_however_many_deliveries_saw_it_refused() {
        let source = TokenSource::new(Scripted::new(vec![token("t1", 3600), token("t2", 3600)]));
        let used = source.token().await.unwrap();
        source.refused(&used).await;
        assert_eq!(source.token().await.unwrap(), "t2");
        // A delivery that still held t1 reports it late: t2 stays.
        source.refused(&used).await;
        assert_eq!(source.token().await.unwrap(), "t2");
        assert_eq!(source.fetcher.fetches(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_without_a_lifetime_is_kept_until_refused() {
        let source = TokenSource::new(Scripted::new(vec![
            Ok(Token {
                value: HeaderValue::from_static("t1"),
                lifetime: None,
            }),
            token("t2", 3600),
        ]));
        assert_eq!(source.token().await.unwrap(), "t1");
        advance(Duration::from_secs(86_400)).await;
        assert_eq!(source.token().await.unwrap(), "t1");
        source.refused(&HeaderValue::from_static("t1")).await;
        assert_eq!(source.token().await.unwrap(), "t2");
    }
}
