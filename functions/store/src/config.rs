//! The store's configuration, read once at cold start.

use storeforward_core::config::{ConfigError, Env};
use storeforward_core::order::{
    DEFAULT_MAX_MESSAGE_BYTES, GroupRule, OrderRules, SQS_MAX_MESSAGE_BYTES, Schema,
};
use storeforward_sqs::{ClientSettings, is_fifo};

/// Everything the store needs; see the README for each variable.
#[derive(Debug)]
pub struct Config {
    /// `QUEUE_URL`: where orders are stored.
    pub queue_url: String,
    /// `FAILOVER_QUEUE_URL`: where orders go when the primary queue fails.
    pub failover_queue_url: Option<String>,
    /// `ORDER_PATH`: the route that accepts orders.
    pub order_path: String,
    /// `MAX_MESSAGE_BYTES`, `ORDER_SCHEMA`/`ORDER_SCHEMA_FILE`, `MESSAGE_GROUP_POINTER`.
    pub rules: OrderRules,
    /// `RETRY_AFTER_SECONDS`: what a `503` tells the caller.
    pub retry_after_secs: u32,
    /// `SQS_MAX_ATTEMPTS`, `SQS_RETRY_MODE`, `SQS_TIMEOUT_MS`.
    pub sqs: ClientSettings,
}

impl Config {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let queue_url = env.required("QUEUE_URL")?;
        let failover_queue_url = env.optional("FAILOVER_QUEUE_URL");
        let any_fifo = is_fifo(&queue_url) || failover_queue_url.as_deref().is_some_and(is_fifo);
        let pointer = env.parsed_with("MESSAGE_GROUP_POINTER", None, |p| {
            let p = p.trim();
            if p.starts_with('/') {
                Ok(Some(p.to_owned()))
            } else {
                Err("a JSON Pointer starts with '/', e.g. /customerId")
            }
        })?;
        let order_path = env.parsed_with("ORDER_PATH", "/orders/new-order".to_owned(), |p| {
            let p = p.trim().trim_end_matches('/');
            if p.starts_with('/') {
                Ok(p.to_owned())
            } else {
                Err("a path starts with '/'")
            }
        })?;
        Ok(Self {
            rules: OrderRules {
                max_message_bytes: env.bounded(
                    "MAX_MESSAGE_BYTES",
                    DEFAULT_MAX_MESSAGE_BYTES,
                    1024..=SQS_MAX_MESSAGE_BYTES,
                )?,
                schema: schema(env)?,
                fifo: any_fifo.then_some(GroupRule { pointer }),
            },
            queue_url,
            failover_queue_url,
            order_path,
            retry_after_secs: env.bounded("RETRY_AFTER_SECONDS", 5, 0..=3600)?,
            sqs: ClientSettings::from_env(env)?,
        })
    }
}

/// The optional order schema, inline (`ORDER_SCHEMA`) or from a file (`ORDER_SCHEMA_FILE`,
/// relative to the function's code directory).
fn schema<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Option<Schema>, ConfigError> {
    let (name, text) = match (
        env.optional("ORDER_SCHEMA"),
        env.optional("ORDER_SCHEMA_FILE"),
    ) {
        (None, None) => return Ok(None),
        (Some(_), Some(file)) => {
            return Err(ConfigError::invalid(
                "ORDER_SCHEMA_FILE",
                &file,
                "set either ORDER_SCHEMA or ORDER_SCHEMA_FILE, not both",
            ));
        }
        (Some(inline), None) => ("ORDER_SCHEMA", inline),
        (None, Some(file)) => {
            let path = match env.optional("LAMBDA_TASK_ROOT") {
                Some(root) => std::path::Path::new(&root).join(&file),
                None => file.clone().into(),
            };
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ConfigError::invalid(
                    "ORDER_SCHEMA_FILE",
                    &file,
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            ("ORDER_SCHEMA_FILE", text)
        }
    };
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| ConfigError::invalid(name, &text, format!("not JSON: {e}")))?;
    OrderRules::compile_schema(&value)
        .map(Some)
        .map_err(|e| ConfigError::invalid(name, &text, format!("not a valid JSON Schema: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_env(&Env::new(move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }))
    }

    const Q: (&str, &str) = (
        "QUEUE_URL",
        "http://127.0.0.1:4566/queue/eu-west-1/000000000000/orders",
    );

    #[test]
    fn defaults() {
        let c = config(&[Q]).unwrap();
        assert_eq!(c.order_path, "/orders/new-order");
        assert_eq!(c.rules.max_message_bytes, 262_144);
        assert!(c.rules.schema.is_none() && c.rules.fifo.is_none());
        assert_eq!(c.retry_after_secs, 5);
        assert_eq!(c.failover_queue_url, None);
    }

    #[test]
    fn queue_url_is_required() {
        assert_eq!(config(&[]).unwrap_err(), ConfigError::Missing("QUEUE_URL"));
    }

    #[test]
    fn fifo_queues_enable_message_groups() {
        let c = config(&[
            ("QUEUE_URL", "http://q/orders.fifo"),
            ("MESSAGE_GROUP_POINTER", "/customerId"),
        ])
        .unwrap();
        assert_eq!(
            c.rules.fifo,
            Some(GroupRule {
                pointer: Some("/customerId".into())
            })
        );
    }

    #[test]
    fn invalid_values_fail_start_up_with_the_variable_named() {
        for (name, value) in [
            ("MAX_MESSAGE_BYTES", "2000000"),
            ("MAX_MESSAGE_BYTES", "big"),
            ("MESSAGE_GROUP_POINTER", "customerId"),
            ("ORDER_PATH", "orders"),
            ("ORDER_SCHEMA", "{not json"),
            ("ORDER_SCHEMA", r#"{"type": 12}"#),
            ("ORDER_SCHEMA_FILE", "/does/not/exist.json"),
            ("SQS_RETRY_MODE", "fast"),
        ] {
            let err = config(&[Q, (name, value)]).unwrap_err();
            assert!(err.to_string().contains(name), "{name}={value}: {err}");
        }
    }

    #[test]
    fn a_schema_compiles_at_start_up() {
        let c = config(&[
            Q,
            ("ORDER_SCHEMA", r#"{"type":"object","required":["id"]}"#),
        ])
        .unwrap();
        assert!(c.rules.schema.is_some());
    }
}
