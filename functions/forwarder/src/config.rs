//! The forwarder's configuration, read once at cold start.

use std::time::Duration;

use reqwest::{Method, Url};
use storeforward_core::batch::{AfterPermanent, Policy};
use storeforward_core::config::{ConfigError, Env};
use storeforward_core::poll::Limits;
use storeforward_core::retry::{RetrySchedule, StatusPolicy};
use storeforward_sqs::ClientSettings;

use crate::backend::{BackendSettings, Signer};
use crate::oauth::{ClientAuth, OAuthSettings};
use crate::secret::SecretSource;

/// Everything the forwarder needs; see the README for each variable.
#[derive(Debug, Clone)]
pub struct Config {
    pub backend: BackendSettings,
    /// `QUEUE_URL`: the queue the event source mapping reads, and the scheduled poll drains.
    pub queue_url: String,
    /// `FAILOVER_QUEUE_URL`: drained by the scheduled poll after the primary.
    pub failover_queue_url: Option<String>,
    /// `DLQ_URL`: where permanent failures go at once.
    pub dlq_url: Option<String>,
    /// `RETRYABLE_STATUSES`, `PERMANENT_STATUSES`.
    pub statuses: StatusPolicy,
    /// `RETRY_SCHEDULE`: seconds to wait after each failed receive.
    pub retry_schedule: RetrySchedule,
    /// `MAX_IN_FLIGHT`.
    pub max_in_flight: usize,
    /// `FAILURE_ACTION`: `dead-letter` (default), `drop` or `pause`.
    pub failure_action: FailureAction,
    /// `MAX_RECEIVE_COUNT`: the queue's `maxReceiveCount` (needed by `FAILURE_ACTION=pause`).
    pub max_receive_count: Option<u32>,
    /// `DEADLINE_MARGIN_MS`: kept free before the function's deadline, on top of a request.
    pub deadline_margin: Duration,
    /// The scheduled trigger's polling: `POLL_WAIT_SECONDS` (long-poll wait per receive; an
    /// empty receive ends a queue's drain), `POLL_MAX_MESSAGES` (cap per invocation), `MAX_RPS`
    /// (deliveries started per second at most).
    pub poll: Limits,
    pub breaker: BreakerSettings,
    pub sqs: ClientSettings,
    pub secrets: SecretSettings,
}

/// The secrets read at cold start, each named by the ARN of an SSM parameter or a Secrets
/// Manager secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSettings {
    /// `SIGNING_SECRET_ARN`: the signing secret (instead of `SIGNING_SECRET`).
    pub signing: Option<SecretSource>,
    /// `BACKEND_HEADERS_SECRET_ARN`: a JSON object of headers to send with every delivery.
    pub headers: Option<SecretSource>,
    /// `OAUTH_TOKEN_URL`, `OAUTH_CLIENT_ID`, `OAUTH_SCOPE`, `OAUTH_AUDIENCE`,
    /// `OAUTH_CLIENT_AUTH`, and the client secret at `OAUTH_CLIENT_SECRET_ARN`.
    pub oauth: Option<(OAuthSettings, SecretSource)>,
    /// `CLIENT_CERTIFICATE_SECRET_ARN`: PEM client certificate chain and key, for mutual TLS.
    pub client_certificate: Option<SecretSource>,
    /// `BACKEND_CA_ARN`: PEM CA certificates trusted besides the system's roots.
    pub ca_bundle: Option<SecretSource>,
    /// `CREDENTIALS_REFRESH_SECONDS`: the least time between two re-reads of a refused secret.
    pub refresh_interval: Duration,
}

impl SecretSettings {
    /// Whether a backend or token endpoint can refuse what they hold, so a refused delivery may
    /// be sent once more with newer ones.
    pub fn refusable(&self) -> bool {
        self.headers.is_some() || self.oauth.is_some()
    }

    /// Whether any secret is read from AWS.
    pub fn any(&self) -> bool {
        self.refusable()
            || self.signing.is_some()
            || self.client_certificate.is_some()
            || self.ca_bundle.is_some()
    }
}

/// What happens to a message the forwarder gives up on (`FAILURE_ACTION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureAction {
    /// The dead-letter queue (at once for permanent failures, by redrive for exhausted retries).
    DeadLetter,
    /// Discard permanent failures (logged at ERROR).
    Drop,
    /// Park the message and pause delivery until an operator resumes it, for permanent failures
    /// and exhausted retries alike.
    Pause,
}

/// The circuit breaker: on when `BREAKER_THRESHOLD` > 0 and the probe queue and state parameter
/// are configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerSettings {
    /// `BREAKER_THRESHOLD`: retryable failures in a row that open it (0: off).
    pub threshold: u32,
    /// `PROBE_INTERVAL_SECONDS`: how long held messages and tickets wait for the next probe.
    pub probe_interval: Duration,
    /// `PROBE_QUEUE_URL`: where tickets are parked.
    pub probe_queue_url: Option<String>,
    /// `STATE_PARAMETER`: the SSM parameter with the delivery state.
    pub state_parameter: Option<String>,
    /// `AWS_LAMBDA_FUNCTION_NAME`, set by Lambda: whose event source mappings to switch.
    pub function_name: Option<String>,
}

impl BreakerSettings {
    /// The probe queue and state parameter, when they are configured.
    pub fn queues(&self) -> Option<(&str, &str)> {
        Some((
            self.probe_queue_url.as_deref()?,
            self.state_parameter.as_deref()?,
        ))
    }
}

impl Config {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let url = http_url("BACKEND_URL", &env.required("BACKEND_URL")?)?;
        let health_url = env
            .optional("HEALTH_URL")
            .map(|u| http_url("HEALTH_URL", &u))
            .transpose()?;
        let signer = env
            .optional("SIGNING_SECRET")
            .map(|secret| {
                Signer::from_secret(&secret)
                    .map_err(|e| ConfigError::invalid("SIGNING_SECRET", "<redacted>", e))
            })
            .transpose()?;
        let secrets = SecretSettings {
            signing: secret(env, "SIGNING_SECRET_ARN")?,
            headers: secret(env, "BACKEND_HEADERS_SECRET_ARN")?,
            oauth: oauth(env)?,
            client_certificate: secret(env, "CLIENT_CERTIFICATE_SECRET_ARN")?,
            ca_bundle: secret(env, "BACKEND_CA_ARN")?,
            refresh_interval: Duration::from_secs(env.bounded(
                "CREDENTIALS_REFRESH_SECONDS",
                60,
                1..=3600,
            )?),
        };
        if signer.is_some() && secrets.signing.is_some() {
            return Err(ConfigError::invalid(
                "SIGNING_SECRET_ARN",
                "<set>",
                "set SIGNING_SECRET or SIGNING_SECRET_ARN, not both",
            ));
        }
        let failure_action = env.parsed_with("FAILURE_ACTION", FailureAction::DeadLetter, |a| {
            match a.trim() {
                "dead-letter" => Ok(FailureAction::DeadLetter),
                "drop" => Ok(FailureAction::Drop),
                "pause" => Ok(FailureAction::Pause),
                _ => Err("expected dead-letter, drop or pause"),
            }
        })?;
        let max_receive_count = env
            .optional("MAX_RECEIVE_COUNT")
            .map(|_| env.bounded("MAX_RECEIVE_COUNT", 1, 1..=1000))
            .transpose()?;
        let parked_in = (
            env.optional("PROBE_QUEUE_URL"),
            env.optional("STATE_PARAMETER"),
        );
        if failure_action == FailureAction::Pause
            && (max_receive_count.is_none() || parked_in.0.is_none() || parked_in.1.is_none())
        {
            return Err(ConfigError::invalid(
                "FAILURE_ACTION",
                "pause",
                "needs MAX_RECEIVE_COUNT (the queue's maxReceiveCount), PROBE_QUEUE_URL and STATE_PARAMETER",
            ));
        }
        let defaults = StatusPolicy::default();
        // A refused credential is the forwarder's problem, not the order's: retried (and
        // refreshed) rather than dead-lettered, unless the lists say otherwise.
        let retryable = if secrets.refusable() {
            defaults.retryable.including(401).including(403)
        } else {
            defaults.retryable
        };
        Ok(Self {
            backend: BackendSettings {
                url,
                method: env.parsed_with("BACKEND_METHOD", Method::POST, |m| {
                    match m.trim().to_ascii_uppercase().as_str() {
                        "POST" => Ok(Method::POST),
                        "PUT" => Ok(Method::PUT),
                        "PATCH" => Ok(Method::PATCH),
                        _ => Err("expected POST, PUT or PATCH"),
                    }
                })?,
                request_timeout: positive(env, "REQUEST_TIMEOUT_MS", Duration::from_secs(10))?,
                connect_timeout: positive(env, "CONNECT_TIMEOUT_MS", Duration::from_secs(3))?,
                signer,
                health_url,
                identity: None,
                extra_roots: Vec::new(),
            },
            queue_url: env.required("QUEUE_URL")?,
            failover_queue_url: env.optional("FAILOVER_QUEUE_URL"),
            dlq_url: env.optional("DLQ_URL"),
            statuses: StatusPolicy {
                retryable: env.parsed("RETRYABLE_STATUSES", retryable)?,
                permanent: env.parsed("PERMANENT_STATUSES", defaults.permanent)?,
            },
            retry_schedule: env.parsed("RETRY_SCHEDULE", RetrySchedule::default())?,
            max_in_flight: env.bounded("MAX_IN_FLIGHT", 10, 1..=1000)?,
            failure_action,
            max_receive_count,
            deadline_margin: env.millis("DEADLINE_MARGIN_MS", Duration::from_secs(1))?,
            poll: Limits {
                wait: Duration::from_secs(env.bounded("POLL_WAIT_SECONDS", 1, 0..=20)?),
                max_messages: env.parsed_with("POLL_MAX_MESSAGES", None, |n| {
                    match n.trim().parse::<usize>() {
                        Ok(n) if n > 0 => Ok(Some(n)),
                        _ => Err("expected a positive whole number"),
                    }
                })?,
                max_rps: env.parsed_with("MAX_RPS", None, |n| match n.trim().parse::<u32>() {
                    Ok(n) if (1..=10_000).contains(&n) => Ok(Some(n)),
                    _ => Err("expected a whole number from 1 to 10000"),
                })?,
            },
            breaker: BreakerSettings {
                threshold: env.bounded("BREAKER_THRESHOLD", 10, 0..=1000)?,
                probe_interval: Duration::from_secs(env.bounded(
                    "PROBE_INTERVAL_SECONDS",
                    60,
                    1..=900,
                )?),
                probe_queue_url: parked_in.0,
                state_parameter: parked_in.1,
                function_name: env.optional("AWS_LAMBDA_FUNCTION_NAME"),
            },
            sqs: ClientSettings::from_env(env)?,
            secrets,
        })
    }

    /// The batch policy; the handler sets `ordered` per source queue.
    pub fn policy(&self) -> Policy {
        Policy {
            statuses: self.statuses.clone(),
            retry_schedule: self.retry_schedule.clone(),
            max_in_flight: self.max_in_flight,
            after_permanent: match (self.failure_action, &self.dlq_url) {
                (FailureAction::Drop, _) => AfterPermanent::Drop,
                (FailureAction::Pause, _) => AfterPermanent::Pause,
                (FailureAction::DeadLetter, Some(_)) => AfterPermanent::DeadLetter,
                (FailureAction::DeadLetter, None) => AfterPermanent::Redrive,
            },
            max_receives: self.max_receive_count,
            ordered: false,
            attempt_budget: self.backend.request_timeout + self.deadline_margin,
        }
    }
}

fn secret<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    name: &'static str,
) -> Result<Option<SecretSource>, ConfigError> {
    env.optional(name)
        .map(|arn| SecretSource::from_arn(name, &arn))
        .transpose()
}

/// The OAuth2 client credentials settings: the token URL, client id and client secret go
/// together; scope, audience and client authentication are optional.
fn oauth<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<Option<(OAuthSettings, SecretSource)>, ConfigError> {
    let client_auth =
        env.parsed_with("OAUTH_CLIENT_AUTH", ClientAuth::Basic, |a| match a.trim() {
            "basic" => Ok(ClientAuth::Basic),
            "post" => Ok(ClientAuth::Post),
            _ => Err("expected basic (client_secret_basic) or post (client_secret_post)"),
        })?;
    let required = (
        env.optional("OAUTH_TOKEN_URL"),
        env.optional("OAUTH_CLIENT_ID"),
        secret(env, "OAUTH_CLIENT_SECRET_ARN")?,
    );
    let optional = ["OAUTH_SCOPE", "OAUTH_AUDIENCE", "OAUTH_CLIENT_AUTH"];
    match required {
        (Some(url), Some(client_id), Some(client_secret)) => Ok(Some((
            OAuthSettings {
                token_url: http_url("OAUTH_TOKEN_URL", &url)?,
                client_id: client_id.trim().to_owned(),
                scope: env.optional("OAUTH_SCOPE"),
                audience: env.optional("OAUTH_AUDIENCE"),
                client_auth,
            },
            client_secret,
        ))),
        (None, None, None) => match optional.into_iter().find(|n| env.optional(n).is_some()) {
            Some(name) => Err(ConfigError::invalid(
                name,
                "<set>",
                "needs OAUTH_TOKEN_URL, OAUTH_CLIENT_ID and OAUTH_CLIENT_SECRET_ARN",
            )),
            None => Ok(None),
        },
        _ => Err(ConfigError::invalid(
            "OAUTH_TOKEN_URL",
            "<partly set>",
            "OAUTH_TOKEN_URL, OAUTH_CLIENT_ID and OAUTH_CLIENT_SECRET_ARN go together",
        )),
    }
}

/// `value` as an `http://` or `https://` URL.
fn http_url(name: &'static str, value: &str) -> Result<Url, ConfigError> {
    Url::parse(value)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| ConfigError::invalid(name, value, "expected an http:// or https:// URL"))
}

fn positive<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    name: &'static str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let value = env.millis(name, default)?;
    if value.is_zero() {
        return Err(ConfigError::invalid(name, "0", "must be greater than 0"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use storeforward_core::retry::{Attempt, Verdict};

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut all: Vec<(String, String)> = vec![
            (
                "BACKEND_URL".into(),
                "http://127.0.0.1:9090/sales/save-order".into(),
            ),
            (
                "QUEUE_URL".into(),
                "http://127.0.0.1:4566/queue/eu-west-1/000000000000/orders".into(),
            ),
        ];
        all.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Config::from_env(&Env::new(move |name: &str| {
            all.iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }))
    }

    #[test]
    fn defaults() {
        let c = config(&[]).unwrap();
        assert_eq!(c.backend.method, Method::POST);
        assert_eq!(c.backend.request_timeout, Duration::from_secs(10));
        assert_eq!(c.max_in_flight, 10);
        assert_eq!(
            c.poll,
            Limits {
                wait: Duration::from_secs(1),
                max_messages: None,
                max_rps: None
            }
        );
        let p = c.policy();
        assert_eq!(
            p.after_permanent,
            AfterPermanent::Redrive,
            "no DLQ_URL: the redrive policy dead-letters"
        );
        assert!(!p.ordered);
        assert_eq!(p.attempt_budget, Duration::from_secs(11));
        assert_eq!(p.statuses, StatusPolicy::default());
        assert_eq!(p.retry_schedule, RetrySchedule::default());
        assert_eq!(c.breaker.threshold, 10);
        assert_eq!(c.breaker.probe_interval, Duration::from_secs(60));
        assert_eq!(c.breaker.queues(), None, "no probe queue, no breaker");
    }

    #[test]
    fn the_breaker_needs_a_threshold_a_probe_queue_and_a_state_parameter() {
        let on = [
            ("PROBE_QUEUE_URL", "http://q/probe"),
            ("STATE_PARAMETER", "/sf/delivery-state"),
        ];
        let c = config(&on).unwrap();
        assert_eq!(
            c.breaker.queues(),
            Some(("http://q/probe", "/sf/delivery-state"))
        );
        assert_eq!(c.breaker.threshold, 10);
    }

    #[test]
    fn failure_action_pause_needs_the_receive_count_and_the_probe_queue() {
        let err = config(&[("FAILURE_ACTION", "pause")]).unwrap_err();
        assert!(err.to_string().contains("MAX_RECEIVE_COUNT"), "{err}");
        let c = config(&[
            ("FAILURE_ACTION", "pause"),
            ("MAX_RECEIVE_COUNT", "5"),
            ("PROBE_QUEUE_URL", "http://q/probe"),
            ("STATE_PARAMETER", "/sf/delivery-state"),
        ])
        .unwrap();
        let p = c.policy();
        assert_eq!(
            (p.after_permanent, p.max_receives),
            (AfterPermanent::Pause, Some(5))
        );
    }

    #[test]
    fn the_retry_schedule_is_read_in_seconds() {
        let c = config(&[("RETRY_SCHEDULE", "1, 2")]).unwrap();
        assert_eq!(c.policy().retry_schedule, "1,2".parse().unwrap());
    }

    #[test]
    fn failure_action_shapes_the_policy() {
        let c = config(&[("DLQ_URL", "http://q/dlq")]).unwrap();
        assert_eq!(c.policy().after_permanent, AfterPermanent::DeadLetter);
        let c = config(&[("DLQ_URL", "http://q/dlq"), ("FAILURE_ACTION", "drop")]).unwrap();
        assert_eq!(c.policy().after_permanent, AfterPermanent::Drop);
    }

    #[test]
    fn required_and_invalid_values_fail_start_up_with_the_variable_named() {
        let missing = Config::from_env(&Env::new(|_: &str| None)).unwrap_err();
        assert_eq!(missing, ConfigError::Missing("BACKEND_URL"));
        for (name, value) in [
            ("BACKEND_URL", "ftp://backend"),
            ("BACKEND_URL", "not a url"),
            ("HEALTH_URL", "ftp://backend/health"),
            ("BACKEND_METHOD", "GET"),
            ("REQUEST_TIMEOUT_MS", "0"),
            ("MAX_IN_FLIGHT", "0"),
            ("RETRY_SCHEDULE", "10,0"),
            ("RETRY_SCHEDULE", "43201"),
            ("RETRY_SCHEDULE", ","),
            ("RETRYABLE_STATUSES", "5xx"),
            ("FAILURE_ACTION", "deactivate"),
            ("POLL_WAIT_SECONDS", "21"),
            ("POLL_MAX_MESSAGES", "0"),
            ("MAX_RPS", "0"),
            ("BREAKER_THRESHOLD", "-1"),
            ("PROBE_INTERVAL_SECONDS", "901"),
            ("SIGNING_SECRET", "not base64!"),
            ("BACKEND_HEADERS_SECRET_ARN", "X-Api-Key: k"),
            (
                "CLIENT_CERTIFICATE_SECRET_ARN",
                "arn:aws:s3:::bucket/cert.pem",
            ),
            ("BACKEND_CA_ARN", "ca.pem"),
            ("CREDENTIALS_REFRESH_SECONDS", "0"),
        ] {
            let err = config(&[(name, value)]).unwrap_err();
            assert!(err.to_string().contains(name), "{name}={value}: {err}");
        }
    }

    const SECRET_ARN: &str = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:sf/oauth";

    #[test]
    fn oauth_needs_its_token_url_client_id_and_client_secret_together() {
        let all = [
            ("OAUTH_TOKEN_URL", "https://idp.example/oauth/token"),
            ("OAUTH_CLIENT_ID", "forwarder"),
            ("OAUTH_CLIENT_SECRET_ARN", SECRET_ARN),
            ("OAUTH_SCOPE", "orders:write orders:read"),
            ("OAUTH_CLIENT_AUTH", "post"),
        ];
        let c = config(&all).unwrap();
        let (oauth, secret) = c.secrets.oauth.clone().unwrap();
        assert_eq!(oauth.client_id, "forwarder");
        assert_eq!(oauth.scope.as_deref(), Some("orders:write orders:read"));
        assert_eq!(oauth.client_auth, ClientAuth::Post);
        assert_eq!(
            secret,
            SecretSource::from_arn("OAUTH_CLIENT_SECRET_ARN", SECRET_ARN).unwrap()
        );
        for missing in 0..3 {
            let partial: Vec<_> = all[..3]
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != missing)
                .map(|(_, pair)| *pair)
                .collect();
            let err = config(&partial).unwrap_err().to_string();
            assert!(err.contains("go together"), "{err}");
        }
        let err = config(&[("OAUTH_SCOPE", "orders:write")]).unwrap_err();
        assert!(err.to_string().contains("OAUTH_SCOPE"), "{err}");
        let err = config(&[all[0], all[1], all[2], ("OAUTH_CLIENT_AUTH", "jwt")]).unwrap_err();
        assert!(err.to_string().contains("OAUTH_CLIENT_AUTH"), "{err}");
    }

    #[test]
    fn refusable_credentials_make_401_and_403_retryable() {
        let plain = config(&[]).unwrap().policy();
        assert!(matches!(
            plain.statuses.classify(&Attempt::Response {
                status: 401,
                retry_after: None
            }),
            Verdict::Permanent { .. }
        ));
        let headers = config(&[("BACKEND_HEADERS_SECRET_ARN", SECRET_ARN)]).unwrap();
        let policy = headers.policy();
        for status in [401, 403] {
            let attempt = Attempt::Response {
                status,
                retry_after: None,
            };
            assert!(
                matches!(policy.statuses.classify(&attempt), Verdict::Retry { .. }),
                "{status}"
            );
        }
        assert!(matches!(
            policy.statuses.classify(&Attempt::Response {
                status: 404,
                retry_after: None
            }),
            Verdict::Permanent { .. }
        ));
        // REQUEST_TIMEOUT_MS bounds the whole attempt, a token and the retry included.
        assert_eq!(policy.attempt_budget, Duration::from_secs(11));
        let explicit = config(&[
            ("BACKEND_HEADERS_SECRET_ARN", SECRET_ARN),
            ("RETRYABLE_STATUSES", "429,500-599"),
        ])
        .unwrap();
        assert!(
            matches!(
                explicit.policy().statuses.classify(&Attempt::Response {
                    status: 401,
                    retry_after: None
                }),
                Verdict::Permanent { .. }
            ),
            "an explicit list is taken as written"
        );
        // mTLS alone cannot be refused with a status.
        let mtls = config(&[("CLIENT_CERTIFICATE_SECRET_ARN", SECRET_ARN)]).unwrap();
        assert!(mtls.secrets.any() && !mtls.secrets.refusable());
    }

    #[test]
    fn the_signing_secret_is_never_echoed() {
        let err = config(&[("SIGNING_SECRET", "whsec_c2hvcnQ=")]).unwrap_err();
        assert!(!err.to_string().contains("c2hvcnQ"), "{err}");
    }
}
