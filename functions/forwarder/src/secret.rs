//! Secrets kept in SSM Parameter Store or Secrets Manager, named by ARN in a variable
//! (`SIGNING_SECRET_ARN`, `BACKEND_HEADERS_SECRET_ARN`, `OAUTH_CLIENT_SECRET_ARN`,
//! `CLIENT_CERTIFICATE_SECRET_ARN`, `BACKEND_CA_ARN`): read at cold start, and those that a
//! backend or token endpoint can refuse re-read after a refusal, at most once per interval. A
//! value never reaches a log or an error message: errors name the variable and the ARN.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use aws_config::SdkConfig;
use storeforward_core::config::ConfigError;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::backend::error_chain;

/// Where a secret is kept, and the variable that named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSource {
    variable: &'static str,
    place: Place,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Place {
    /// An SSM parameter (`arn:aws:ssm:…:parameter/…`), a `SecureString` as a rule.
    Parameter(String),
    /// A Secrets Manager secret (`arn:aws:secretsmanager:…`), its `SecretString`.
    Secret(String),
}

impl SecretSource {
    /// The source the ARN in `variable` names.
    pub fn from_arn(variable: &'static str, arn: &str) -> Result<Self, ConfigError> {
        let arn = arn.trim();
        let service = arn.split(':').nth(2).filter(|_| arn.starts_with("arn:"));
        let place = match service {
            Some("ssm") if arn.contains(":parameter/") => Place::Parameter(arn.to_owned()),
            Some("secretsmanager") => Place::Secret(arn.to_owned()),
            _ => {
                return Err(ConfigError::invalid(
                    variable,
                    arn,
                    "expected the ARN of an SSM parameter (arn:aws:ssm:…:parameter/…) or a Secrets Manager secret (arn:aws:secretsmanager:…)",
                ));
            }
        };
        Ok(Self { variable, place })
    }

    fn arn(&self) -> &str {
        match &self.place {
            Place::Parameter(arn) | Place::Secret(arn) => arn,
        }
    }

    /// An error about this secret: its variable and ARN, never its value.
    pub(crate) fn invalid(&self, reason: impl std::fmt::Display) -> ConfigError {
        ConfigError::invalid(self.variable, self.arn(), reason)
    }
}

/// Reads secrets with the SSM and Secrets Manager clients, built once.
#[derive(Debug, Clone)]
pub struct SecretReader {
    ssm: aws_sdk_ssm::Client,
    secrets: aws_sdk_secretsmanager::Client,
}

impl SecretReader {
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            ssm: aws_sdk_ssm::Client::new(config),
            secrets: aws_sdk_secretsmanager::Client::new(config),
        }
    }

    /// The secret's text, trimmed, made into a `T` by `parse` (whose error must not quote it).
    pub async fn read<T>(
        &self,
        source: &SecretSource,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        let unreadable = |e: &dyn std::error::Error| {
            source.invalid(format!("cannot read it: {}", error_chain(e)))
        };
        let value = match &source.place {
            Place::Parameter(arn) => self
                .ssm
                .get_parameter()
                .name(arn)
                .with_decryption(true)
                .send()
                .await
                .map_err(|e| unreadable(&e))?
                .parameter
                .and_then(|p| p.value),
            Place::Secret(arn) => {
                self.secrets
                    .get_secret_value()
                    .secret_id(arn)
                    .send()
                    .await
                    .map_err(|e| unreadable(&e))?
                    .secret_string
            }
        };
        let value = value.ok_or_else(|| source.invalid("it holds no text value"))?;
        parse(value.trim()).map_err(|e| source.invalid(format!("its value is unusable: {e}")))
    }

    /// [`read`](Self::read), when there is a source.
    pub async fn read_optional<T>(
        &self,
        source: Option<&SecretSource>,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        match source {
            Some(source) => self.read(source, parse).await.map(Some),
            None => Ok(None),
        }
    }
}

/// A secret that a backend or token endpoint may refuse: re-read after a refusal, at most once
/// per interval, so that a rotated secret takes effect without a redeploy.
pub struct Refreshable<T> {
    source: SecretSource,
    reader: SecretReader,
    parse: fn(&str) -> Result<T, String>,
    interval: Duration,
    current: RwLock<Arc<T>>,
    /// When it was last read; held while re-reading, so that one caller reads for all.
    read_at: tokio::sync::Mutex<Instant>,
}

impl<T> std::fmt::Debug for Refreshable<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refreshable")
            .field("source", &self.source)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl<T: PartialEq> Refreshable<T> {
    /// Reads the secret for the first time.
    pub async fn load(
        source: SecretSource,
        reader: SecretReader,
        parse: fn(&str) -> Result<T, String>,
        interval: Duration,
    ) -> Result<Self, ConfigError> {
        let value = reader.read(&source, parse).await?;
        Ok(Self {
            source,
            reader,
            parse,
            interval,
            current: RwLock::new(Arc::new(value)),
            read_at: tokio::sync::Mutex::new(Instant::now()),
        })
    }

    /// The value to use now.
    pub fn current(&self) -> Arc<T> {
        match self.current.read() {
            Ok(value) => value.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// After `used` was refused: a newer value to try once more with, if there is one. Re-reads
    /// the secret unless it was read less than the interval ago; an unreadable or unusable new
    /// value is logged and the old one kept.
    pub async fn after_refusal(&self, used: &Arc<T>) -> Option<Arc<T>> {
        let mut read_at = self.read_at.lock().await;
        let current = self.current();
        if !Arc::ptr_eq(&current, used) {
            return Some(current);
        }
        if read_at.elapsed() < self.interval {
            return None;
        }
        *read_at = Instant::now();
        let variable = self.source.variable;
        // Boxed: a rare Secrets Manager call (an SDK future of kilobytes), kept out of the
        // future of every delivery.
        match Box::pin(self.reader.read(&self.source, self.parse)).await {
            Ok(fresh) if fresh != *current => {
                info!(variable, "secret re-read after a refusal: it changed");
                let fresh = Arc::new(fresh);
                match self.current.write() {
                    Ok(mut value) => *value = fresh.clone(),
                    Err(poisoned) => *poisoned.into_inner() = fresh.clone(),
                }
                Some(fresh)
            }
            Ok(_) => {
                warn!(
                    variable,
                    "secret re-read after a refusal: unchanged, so it stays refused"
                );
                None
            }
            Err(error) => {
                warn!(variable, %error, "secret re-read after a refusal failed; keeping the old value");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_ssm::operation::get_parameter::GetParameterOutput;
    use aws_sdk_ssm::types::Parameter;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;

    const ARN: &str = "arn:aws:ssm:eu-west-1:123456789012:parameter/sf/headers";

    fn answer(value: &'static str) -> impl Fn() -> GetParameterOutput + Send + Sync {
        move || {
            GetParameterOutput::builder()
                .parameter(Parameter::builder().value(value).build())
                .build()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_secret_is_read_again_at_most_once_per_interval() {
        let reads = mock!(aws_sdk_ssm::Client::get_parameter)
            .sequence()
            .output(answer("v1"))
            .output(answer("v1"))
            .output(answer(" v2\n"))
            .build();
        let reader = SecretReader {
            ssm: mock_client!(aws_sdk_ssm, RuleMode::Sequential, [&reads]),
            secrets: mock_client!(aws_sdk_secretsmanager, []),
        };
        let source = SecretSource::from_arn("BACKEND_HEADERS_SECRET_ARN", ARN).unwrap();
        let parse: fn(&str) -> Result<String, String> = |v| Ok(v.to_owned());
        let interval = Duration::from_secs(60);
        let secret = Refreshable::load(source, reader, parse, interval)
            .await
            .unwrap();
        let v1 = secret.current();
        assert_eq!(*v1, "v1");
        assert_eq!(
            secret.after_refusal(&v1).await,
            None,
            "read less than 60 s ago"
        );
        assert_eq!(reads.num_calls(), 1);
        tokio::time::advance(interval).await;
        assert_eq!(
            secret.after_refusal(&v1).await,
            None,
            "read again: unchanged"
        );
        assert_eq!(reads.num_calls(), 2);
        assert_eq!(secret.after_refusal(&v1).await, None, "not again so soon");
        tokio::time::advance(interval).await;
        let v2 = secret.after_refusal(&v1).await.expect("rotated");
        assert_eq!(*v2, "v2", "trimmed");
        assert_eq!(*secret.current(), "v2");
        // Deliveries that were refused with v1 meanwhile take v2 without a read.
        assert_eq!(secret.after_refusal(&v1).await, Some(v2));
        assert_eq!(reads.num_calls(), 3);
    }

    #[test]
    fn parameters_and_secrets_are_told_apart_by_their_arn() {
        let parameter = "arn:aws:ssm:eu-west-1:123456789012:parameter/sf/signing";
        let source = SecretSource::from_arn("SIGNING_SECRET_ARN", parameter).unwrap();
        assert_eq!(source.place, Place::Parameter(parameter.into()));
        let secret = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:sf-AbCdEf";
        let source = SecretSource::from_arn("OAUTH_CLIENT_SECRET_ARN", secret).unwrap();
        assert_eq!(source.place, Place::Secret(secret.into()));
        for wrong in [
            "",
            "sf/signing",
            "arn:aws:s3:::bucket/key",
            "arn:aws:ssm:eu-west-1:1:document/x",
        ] {
            let err = SecretSource::from_arn("BACKEND_CA_ARN", wrong)
                .unwrap_err()
                .to_string();
            assert!(err.contains("BACKEND_CA_ARN"), "{err}");
        }
    }
}
