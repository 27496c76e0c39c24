//! What gets a delivery past the backend's front door: headers from a secret
//! (`BACKEND_HEADERS_SECRET_ARN`) and an OAuth2 bearer token (`OAUTH_*`). Both are refreshed when
//! the backend refuses them, and the delivery is then tried once more.

use std::collections::BTreeMap;
use std::sync::Arc;

use reqwest::RequestBuilder;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use storeforward_core::config::ConfigError;
use storeforward_core::retry::Attempt;
use tracing::warn;

use crate::backend::HttpBackend;
use crate::config::SecretSettings;
use crate::oauth::{Endpoint, TokenError, TokenSource};
use crate::secret::{Refreshable, SecretReader};

/// Headers the forwarder sets itself, which a secret may not replace.
const RESERVED: [&str; 10] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "content-type",
    "idempotency-key",
    "x-amzn-trace-id",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

/// The credentials of one instance, loaded at cold start.
#[derive(Debug, Default)]
pub struct Credentials {
    pub headers: Option<Refreshable<HeaderMap>>,
    pub oauth: Option<TokenSource<Endpoint>>,
}

/// What one request carries.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    headers: Option<Arc<HeaderMap>>,
    /// `Authorization: Bearer …`.
    token: Option<HeaderValue>,
}

impl Credentials {
    /// Reads the header secret and the OAuth2 client secret. The token itself is fetched with
    /// the first delivery: an identity provider that is down is no configuration error.
    pub async fn load(
        settings: &SecretSettings,
        reader: &SecretReader,
        backend: &HttpBackend,
    ) -> Result<Self, ConfigError> {
        let interval = settings.refresh_interval;
        let headers = match &settings.headers {
            Some(source) => {
                Some(Refreshable::load(source.clone(), reader.clone(), header_map, interval).await?)
            }
            None => None,
        };
        let oauth = match &settings.oauth {
            Some((oauth, client_secret)) => {
                if let (Some(headers), Some(source)) = (&headers, &settings.headers)
                    && headers.current().contains_key(AUTHORIZATION)
                {
                    return Err(source.invalid(
                        "it sets Authorization, which carries the OAuth2 token (OAUTH_TOKEN_URL)",
                    ));
                }
                let client_secret = Refreshable::load(
                    client_secret.clone(),
                    reader.clone(),
                    |secret| Ok(secret.to_owned()),
                    interval,
                )
                .await?;
                Some(TokenSource::new(Endpoint {
                    settings: oauth.clone(),
                    client_secret,
                    http: backend.client().clone(),
                    timeout: backend.token_timeout(),
                }))
            }
            None => None,
        };
        Ok(Self { headers, oauth })
    }

    /// What to send now; no token is no request.
    pub async fn current(&self) -> Result<Auth, Attempt> {
        Ok(Auth {
            headers: self.headers.as_ref().map(Refreshable::current),
            token: match &self.oauth {
                Some(source) => Some(source.token().await.map_err(no_credentials)?),
                None => None,
            },
        })
    }

    /// The backend answered `status` to a request that carried `used`: after a 401 a new token
    /// (and for 401 or 403 the header secret re-read, at most once per interval); `Some` when
    /// anything changed, so the delivery is worth sending once more.
    pub async fn after_refusal(&self, used: &Auth, status: u16) -> Option<Result<Auth, Attempt>> {
        if status != 401 && status != 403 {
            return None;
        }
        let mut fresh = used.clone();
        let mut changed = false;
        if let (Some(headers), Some(sent)) = (&self.headers, &used.headers)
            && let Some(newer) = headers.after_refusal(sent).await
        {
            fresh.headers = Some(newer);
            changed = true;
        }
        if let (Some(source), Some(sent), 401) = (&self.oauth, &used.token, status) {
            warn!("backend refused the bearer token (401); getting a new one");
            source.refused(sent).await;
            match source.token().await {
                Ok(token) => {
                    changed |= token != *sent;
                    fresh.token = Some(token);
                }
                Err(e) => return Some(Err(no_credentials(e))),
            }
        }
        changed.then_some(Ok(fresh))
    }
}

impl Auth {
    /// `request` with these headers and `Authorization: Bearer <token>`.
    pub fn apply(&self, mut request: RequestBuilder) -> RequestBuilder {
        if let Some(headers) = &self.headers {
            request = request.headers(HeaderMap::clone(headers));
        }
        if let Some(token) = &self.token {
            request = request.header(AUTHORIZATION, token.clone());
        }
        request
    }
}

fn no_credentials(e: TokenError) -> Attempt {
    Attempt::NoCredentials {
        failure: e.failure,
        reason: e.reason,
    }
}

/// A header secret's value: a JSON object of header names to string values. Errors name a header,
/// never a value.
pub fn header_map(text: &str) -> Result<HeaderMap, String> {
    let pairs: BTreeMap<String, String> = serde_json::from_str(text).map_err(|e| {
        format!(
            "expected a JSON object of header names to string values (line {}, column {})",
            e.line(),
            e.column()
        )
    })?;
    if pairs.is_empty() {
        return Err("the JSON object names no header".into());
    }
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("{name:?} is not a valid header name"))?;
        if RESERVED.contains(&header.as_str()) {
            return Err(format!("{header} is set by the forwarder itself"));
        }
        let mut value = HeaderValue::from_str(&value)
            .map_err(|_| format!("the value of {header} is not a valid header value"))?;
        value.set_sensitive(true);
        headers.insert(header, value);
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_secret_is_a_json_object_of_names_to_values() {
        let headers =
            header_map(r#"{"X-Api-Key": "k-123", "Authorization": "Basic dTpw"}"#).unwrap();
        assert_eq!(headers["x-api-key"], "k-123");
        assert_eq!(headers[AUTHORIZATION], "Basic dTpw");
        assert!(headers[AUTHORIZATION].is_sensitive());
    }

    #[test]
    fn a_bad_header_secret_is_refused_without_quoting_a_value() {
        for (text, expected) in [
            (r#"["k-123"]"#, "JSON object"),
            (r#"{"X-Api-Key": 123456}"#, "JSON object"),
            ("k-123", "JSON object"),
            ("{}", "names no header"),
            (r#"{"X Api Key": "k-123"}"#, "not a valid header name"),
            (r#"{"X-Api-Key": "k-123\n"}"#, "not a valid header value"),
            (r#"{"Content-Type": "k-123"}"#, "set by the forwarder"),
            (r#"{"Webhook-Signature": "k-123"}"#, "set by the forwarder"),
        ] {
            let err = header_map(text).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
            assert!(!err.contains("k-123") && !err.contains("123456"), "{err}");
        }
    }
}
