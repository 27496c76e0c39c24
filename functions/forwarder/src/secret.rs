//! The signing secret from SSM Parameter Store or Secrets Manager (`SIGNING_SECRET_ARN`), read
//! once at cold start. The value never reaches a log or an error message.

use aws_config::BehaviorVersion;
use storeforward_core::config::ConfigError;

use crate::backend::{Signer, error_chain};

const VARIABLE: &str = "SIGNING_SECRET_ARN";

/// Where the signing secret is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// An SSM parameter (`arn:aws:ssm:…:parameter/…`), a `SecureString` as a rule.
    Parameter(String),
    /// A Secrets Manager secret (`arn:aws:secretsmanager:…`), its `SecretString`.
    Secret(String),
}

impl SecretSource {
    /// The source an ARN names.
    pub fn from_arn(arn: &str) -> Result<Self, ConfigError> {
        let service = arn.split(':').nth(2).filter(|_| arn.starts_with("arn:"));
        match service {
            Some("ssm") if arn.contains(":parameter/") => Ok(Self::Parameter(arn.to_owned())),
            Some("secretsmanager") => Ok(Self::Secret(arn.to_owned())),
            _ => Err(ConfigError::invalid(
                VARIABLE,
                arn,
                "expected the ARN of an SSM parameter (arn:aws:ssm:…:parameter/…) or a Secrets Manager secret (arn:aws:secretsmanager:…)",
            )),
        }
    }

    /// Reads the secret with the standard AWS configuration and makes a signer of it.
    pub async fn signer(&self) -> Result<Signer, ConfigError> {
        let config = aws_config::load_defaults(BehaviorVersion::latest()).await;
        let (arn, value) = match self {
            Self::Parameter(arn) => {
                let answer = aws_sdk_ssm::Client::new(&config)
                    .get_parameter()
                    .name(arn)
                    .with_decryption(true)
                    .send()
                    .await
                    .map_err(|e| unreadable(arn, &e))?;
                (arn, answer.parameter.and_then(|p| p.value))
            }
            Self::Secret(arn) => {
                let answer = aws_sdk_secretsmanager::Client::new(&config)
                    .get_secret_value()
                    .secret_id(arn)
                    .send()
                    .await
                    .map_err(|e| unreadable(arn, &e))?;
                (arn, answer.secret_string)
            }
        };
        let value =
            value.ok_or_else(|| ConfigError::invalid(VARIABLE, arn, "it holds no text value"))?;
        Signer::from_secret(value.trim()).map_err(|e| {
            ConfigError::invalid(
                VARIABLE,
                arn,
                format!("its value is not a signing secret: {e}"),
            )
        })
    }
}

fn unreadable(arn: &str, error: &dyn std::error::Error) -> ConfigError {
    ConfigError::invalid(
        VARIABLE,
        arn,
        format!("cannot read it: {}", error_chain(error)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_and_secrets_are_told_apart_by_their_arn() {
        assert_eq!(
            SecretSource::from_arn("arn:aws:ssm:eu-west-1:123456789012:parameter/sf/signing")
                .unwrap(),
            SecretSource::Parameter(
                "arn:aws:ssm:eu-west-1:123456789012:parameter/sf/signing".into()
            )
        );
        assert_eq!(
            SecretSource::from_arn(
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret:sf-AbCdEf"
            )
            .unwrap(),
            SecretSource::Secret(
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret:sf-AbCdEf".into()
            )
        );
        for wrong in [
            "",
            "sf/signing",
            "arn:aws:s3:::bucket/key",
            "arn:aws:ssm:eu-west-1:1:document/x",
        ] {
            let err = SecretSource::from_arn(wrong).unwrap_err().to_string();
            assert!(err.contains(VARIABLE), "{err}");
        }
    }
}
