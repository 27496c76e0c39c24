//! Typed configuration from environment variables, read once at cold start.
//!
//! Every reader takes a default or fails with a [`ConfigError`] that names the variable, so a bad
//! deployment fails its init with a clear message instead of misbehaving later.

use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

/// A configuration value that is missing or cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A required variable is not set (or is empty).
    #[error("environment variable {0} is required but not set")]
    Missing(&'static str),
    /// A variable is set to something unusable.
    #[error("environment variable {name}={value:?} is invalid: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
}

impl ConfigError {
    /// Builds an [`ConfigError::Invalid`] for `name`.
    pub fn invalid(name: &'static str, value: &str, reason: impl Display) -> Self {
        Self::Invalid {
            name,
            value: value.to_owned(),
            reason: reason.to_string(),
        }
    }
}

/// Reads variables through a lookup function, so tests need not touch the process environment.
#[derive(Debug, Clone, Copy)]
pub struct Env<F> {
    lookup: F,
}

impl Env<fn(&str) -> Option<String>> {
    /// The process environment.
    pub fn process() -> Self {
        Self {
            lookup: |name| std::env::var(name).ok(),
        }
    }
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// An environment backed by `lookup`.
    pub fn new(lookup: F) -> Self {
        Self { lookup }
    }

    /// The value of `name`; unset and empty are the same.
    pub fn optional(&self, name: &'static str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }

    /// The value of `name`, which must be set.
    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.optional(name).ok_or(ConfigError::Missing(name))
    }

    /// `name` parsed with [`FromStr`], or `default` when unset.
    pub fn parsed<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.parsed_with(name, default, |raw| raw.trim().parse::<T>())
    }

    /// `name` parsed by `parse`, or `default` when unset.
    pub fn parsed_with<T, E: Display>(
        &self,
        name: &'static str,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<T, ConfigError> {
        match self.optional(name) {
            None => Ok(default),
            Some(raw) => parse(&raw).map_err(|e| ConfigError::invalid(name, &raw, e)),
        }
    }

    /// `name` as a whole number within `range`, or `default` when unset.
    pub fn bounded<T>(
        &self,
        name: &'static str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Display + Copy,
        T::Err: Display,
    {
        let value = self.parsed(name, default)?;
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(ConfigError::invalid(
                name,
                &value.to_string(),
                format!("must be between {} and {}", range.start(), range.end()),
            ))
        }
    }

    /// `name` as milliseconds, or `default` when unset.
    pub fn millis(&self, name: &'static str, default: Duration) -> Result<Duration, ConfigError> {
        self.parsed_with(name, default, |raw| {
            raw.trim().parse::<u64>().map(Duration::from_millis)
        })
    }

    /// `name` as a boolean (`true`/`false`/`1`/`0`), or `default` when unset.
    pub fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        self.parsed_with(name, default, |raw| {
            match raw.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Ok(true),
                "false" | "0" | "no" => Ok(false),
                _ => Err("expected true or false"),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::StatusSet;

    fn env(pairs: &[(&str, &str)]) -> Env<impl Fn(&str) -> Option<String>> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Env::new(move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn required_names_the_missing_variable() {
        let err = env(&[("QUEUE_URL", "  ")])
            .required("QUEUE_URL")
            .unwrap_err();
        assert_eq!(err, ConfigError::Missing("QUEUE_URL"));
        assert!(err.to_string().contains("QUEUE_URL"));
    }

    #[test]
    fn bounded_rejects_values_outside_the_range_with_the_range_in_the_message() {
        let e = env(&[("MAX_IN_FLIGHT", "0")]);
        let err = e.bounded("MAX_IN_FLIGHT", 10usize, 1..=1000).unwrap_err();
        assert!(err.to_string().contains("between 1 and 1000"), "{err}");
        assert_eq!(env(&[]).bounded("MAX_IN_FLIGHT", 10usize, 1..=1000), Ok(10));
    }

    #[test]
    fn parse_errors_carry_name_and_value() {
        let err = env(&[("REQUEST_TIMEOUT_MS", "ten")])
            .millis("REQUEST_TIMEOUT_MS", Duration::from_secs(10))
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("REQUEST_TIMEOUT_MS") && text.contains("ten"),
            "{text}"
        );
    }

    #[test]
    fn flags_and_parsed_values() {
        let e = env(&[("A", "TRUE"), ("S", "500-599, 429")]);
        assert_eq!(e.flag("A", false), Ok(true));
        assert_eq!(e.flag("B", false), Ok(false));
        assert!(env(&[("A", "maybe")]).flag("A", false).is_err());
        let default = StatusSet::from_ranges(&[(400, 400)]);
        let s = e.parsed("S", default.clone()).unwrap();
        assert!(s.contains(503) && s.contains(429) && !s.contains(400));
        assert!(env(&[("S", "5xx")]).parsed("S", default).is_err());
    }
}
