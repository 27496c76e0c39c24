//! The metadata stored next to each order, as SQS message attributes.
//!
//! The store writes these attributes and the forwarder reads them back; both use this module, so
//! the names and the size arithmetic exist once.

use crate::trace::TraceContext;

/// Message attribute names. All are of SQS data type `String`.
pub mod attr {
    /// Media type of the body, as the client sent it.
    pub const CONTENT_TYPE: &str = "ContentType";
    /// The client's `Idempotency-Key`, or one the store generated.
    pub const IDEMPOTENCY_KEY: &str = "IdempotencyKey";
    /// When the store accepted the order, in milliseconds since the Unix epoch.
    pub const RECEIVED_AT: &str = "ReceivedAt";
    /// The API Gateway (or Lambda) request id of the store call.
    pub const REQUEST_ID: &str = "RequestId";
    /// The `X-Amzn-Trace-Id` of the store call.
    pub const TRACE_HEADER: &str = "TraceHeader";
    /// The store span's W3C trace context, as a JSON text-map carrier
    /// (`{"traceparent":"…","tracestate":"…"}`).
    pub const TRACE_CONTEXT: &str = "TraceContext";
    /// Set on dead letters: why the message was given up (`permanent`).
    pub const FAILURE_KIND: &str = "FailureKind";
    /// Set on dead letters: the backend's last status, if it answered.
    pub const FAILURE_STATUS: &str = "FailureStatus";
    /// Set on dead letters: a human-readable reason.
    pub const FAILURE_REASON: &str = "FailureReason";
    /// Set on dead letters: how many times the message had been received.
    pub const FAILURE_ATTEMPTS: &str = "FailureAttempts";
}

/// The SQS data type of every attribute we write.
pub const ATTRIBUTE_TYPE: &str = "String";

/// Content type assumed for messages that arrive without one (written by another producer).
pub const DEFAULT_CONTENT_TYPE: &str = "application/json";

/// What travels with an order from the store to the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub content_type: String,
    pub idempotency_key: String,
    pub received_at_ms: Option<u64>,
    pub request_id: Option<String>,
    pub trace_header: Option<String>,
    /// The W3C trace context of the store's span, the parent of every delivery attempt.
    pub trace_context: Option<TraceContext>,
}

impl Envelope {
    /// The envelope as `(name, value)` attribute pairs, omitting absent values.
    pub fn attributes(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![
            (attr::CONTENT_TYPE, self.content_type.clone()),
            (attr::IDEMPOTENCY_KEY, self.idempotency_key.clone()),
        ];
        let optional = [
            (
                attr::RECEIVED_AT,
                self.received_at_ms.map(|ms| ms.to_string()),
            ),
            (attr::REQUEST_ID, self.request_id.clone()),
            (attr::TRACE_HEADER, self.trace_header.clone()),
            (
                attr::TRACE_CONTEXT,
                self.trace_context.as_ref().map(TraceContext::to_carrier),
            ),
        ];
        out.extend(optional.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))));
        out
    }

    /// Reads an envelope back from message attributes. Messages that another producer wrote
    /// without our attributes still deliver: JSON is assumed, and the SQS message id (stable across
    /// redeliveries) becomes the idempotency key. An unreadable trace context is left out.
    pub fn from_attributes<'a>(get: impl Fn(&str) -> Option<&'a str>, message_id: &str) -> Self {
        let owned = |name| get(name).map(str::to_owned);
        Self {
            content_type: owned(attr::CONTENT_TYPE).unwrap_or_else(|| DEFAULT_CONTENT_TYPE.into()),
            idempotency_key: owned(attr::IDEMPOTENCY_KEY).unwrap_or_else(|| message_id.into()),
            received_at_ms: get(attr::RECEIVED_AT).and_then(|v| v.parse().ok()),
            request_id: owned(attr::REQUEST_ID),
            trace_header: owned(attr::TRACE_HEADER),
            trace_context: get(attr::TRACE_CONTEXT).and_then(TraceContext::from_carrier),
        }
    }
}

/// The size SQS charges against its message size limit: the body plus, for every attribute, its
/// name, data type and value.
pub fn sqs_message_size<'a>(
    body: &str,
    attributes: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> usize {
    body.len()
        + attributes
            .into_iter()
            .map(|(name, value)| name.len() + ATTRIBUTE_TYPE.len() + value.len())
            .sum::<usize>()
}

/// Whether SQS can store `c` in a message body: `#x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD |
/// #x10000-#x10FFFF`. Anything else makes `SendMessage` fail with `InvalidMessageContents`.
pub fn sqs_allows(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn full() -> Envelope {
        Envelope {
            content_type: "application/json; charset=utf-8".into(),
            idempotency_key: "key-1".into(),
            received_at_ms: Some(1_700_000_000_123),
            request_id: Some("req-1".into()),
            trace_header: Some("Root=1-abc".into()),
            trace_context: TraceContext::from_headers(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Some("rojo=1"),
            ),
        }
    }

    #[test]
    fn attributes_round_trip() {
        let env = full();
        let map: HashMap<&str, String> = env.attributes().into_iter().collect();
        let back = Envelope::from_attributes(|k| map.get(k).map(String::as_str), "mid");
        assert_eq!(back, env);
    }

    #[test]
    fn absent_optional_values_are_not_written() {
        let env = Envelope {
            received_at_ms: None,
            request_id: None,
            trace_header: None,
            trace_context: None,
            ..full()
        };
        let names: Vec<&str> = env.attributes().iter().map(|(k, _)| *k).collect();
        assert_eq!(names, [attr::CONTENT_TYPE, attr::IDEMPOTENCY_KEY]);
    }

    #[test]
    fn foreign_messages_fall_back_to_json_and_the_message_id() {
        let env = Envelope::from_attributes(|_| None, "msg-42");
        assert_eq!(env.content_type, DEFAULT_CONTENT_TYPE);
        assert_eq!(env.idempotency_key, "msg-42");
        assert_eq!(env.received_at_ms, None);
        assert_eq!(env.trace_context, None);
    }

    #[test]
    fn the_trace_context_is_one_json_attribute_read_leniently() {
        let map: HashMap<&str, String> = full().attributes().into_iter().collect();
        assert_eq!(
            map[attr::TRACE_CONTEXT],
            r#"{"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","tracestate":"rojo=1"}"#
        );
        let broken = |name: &str| (name == attr::TRACE_CONTEXT).then_some("{\"traceparent\":1}");
        assert_eq!(Envelope::from_attributes(broken, "m").trace_context, None);
    }

    #[test]
    fn size_counts_body_names_types_and_values() {
        assert_eq!(sqs_message_size("{}", []), 2);
        // 2 + ("ContentType" 11 + "String" 6 + "a/b" 3)
        assert_eq!(sqs_message_size("{}", [("ContentType", "a/b")]), 22);
    }

    #[test]
    fn sqs_character_set() {
        for ok in [
            '\t', '\n', '\r', ' ', 'é', '\u{D7FF}', '\u{E000}', '\u{FFFD}', '😀',
        ] {
            assert!(sqs_allows(ok), "{ok:?}");
        }
        for bad in ['\u{0}', '\u{1F}', '\u{8}', '\u{FFFE}', '\u{FFFF}'] {
            assert!(!sqs_allows(bad), "{bad:?}");
        }
    }
}
