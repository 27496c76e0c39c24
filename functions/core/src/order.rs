//! Validation of an incoming order, before anything is stored.
//!
//! [`OrderRules::accept`] turns the parts of an HTTP request into the exact [`Order`] the store
//! writes to SQS, or a [`Rejection`] that says which 4xx the caller gets and why.

use std::borrow::Cow;
use std::future::Future;

use serde_json::Value;
use tracing::warn;

use crate::envelope::{Envelope, sqs_allows, sqs_message_size};
use crate::trace::TraceContext;

/// The largest message SQS accepts (1 MiB).
pub const SQS_MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// The message size limit of queues created with the classic default (256 KiB).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Bytes of every message kept free for the attributes a dead letter gets on top of the order's
/// own (failure kind, status, reason, attempts), so a stored order always fits its dead letter too.
pub const DEAD_LETTER_RESERVE: usize = 512;

/// The deepest nesting of arrays and objects an order may have; serde_json's own limit, and deep
/// enough for any real order while sparing the backend pathological input.
pub const MAX_NESTING: usize = 128;

/// The message group used when neither the body nor the request names one.
pub const DEFAULT_GROUP: &str = "default";

/// A compiled JSON Schema.
pub type Schema = jsonschema::Validator;

/// Everything that decides whether an order is accepted.
#[derive(Debug)]
pub struct OrderRules {
    /// Body, attributes and [`DEAD_LETTER_RESERVE`] must fit in this many bytes (the queue's
    /// `MaximumMessageSize`).
    pub max_message_bytes: usize,
    /// Optional JSON Schema every order must satisfy.
    pub schema: Option<Schema>,
    /// Set for FIFO queues: how to pick the message group.
    pub fifo: Option<GroupRule>,
}

/// How a FIFO message group is chosen: the value at `pointer` in the order if configured and
/// present, else the `X-Message-Group-Id` header, else [`DEFAULT_GROUP`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupRule {
    /// A JSON Pointer (RFC 6901) such as `/customerId`.
    pub pointer: Option<String>,
}

/// The parts of a request the rules look at.
#[derive(Debug, Clone, Default)]
pub struct Incoming<'a> {
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
    pub idempotency_key: Option<&'a str>,
    pub group_id: Option<&'a str>,
    pub request_id: Option<String>,
    pub trace_header: Option<String>,
    /// The context of the store's span, stored for the forwarder to continue.
    pub trace_context: Option<TraceContext>,
    pub received_at_ms: u64,
}

/// An order ready to be written: the body byte-identical to the request's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub body: String,
    pub envelope: Envelope,
    /// Set for FIFO queues.
    pub group_id: Option<String>,
}

/// One failed schema check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON Pointer to the failing value (`""` is the whole order).
    pub path: String,
    pub message: String,
}

/// Why an order was refused. Every variant is the caller's mistake, so every status is a 4xx.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("Content-Type must be application/json (charset utf-8 if given), got {0:?}")]
    UnsupportedMediaType(String),
    #[error("header {name} is invalid: it must be 1 to 128 printable ASCII characters")]
    InvalidHeader { name: &'static str },
    #[error("request body is empty")]
    EmptyBody,
    #[error("request body is not valid UTF-8 (first bad byte at offset {0})")]
    InvalidUtf8(usize),
    #[error(
        "order is {size} bytes including its metadata and the dead-letter reserve; the limit is {limit}"
    )]
    TooLarge { size: usize, limit: usize },
    #[error("request body contains U+{code:04X} at byte {offset}, which SQS cannot store")]
    UnstorableCharacter { code: u32, offset: usize },
    #[error("request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("an order must be a JSON object, got {0}")]
    NotAnObject(&'static str),
    #[error("order nests arrays and objects deeper than {MAX_NESTING} levels")]
    TooDeep,
    #[error(
        "order repeats the member name {name:?} in one object, at {pointer}; RFC 7493 forbids duplicate names"
    )]
    DuplicateMember { name: String, pointer: String },
    #[error("order does not match the schema ({} violation(s))", .0.len())]
    SchemaViolation(Vec<Violation>),
}

impl Rejection {
    /// The HTTP status for this rejection.
    pub fn status(&self) -> u16 {
        match self {
            Self::UnsupportedMediaType(_) => 415,
            Self::TooLarge { .. } => 413,
            Self::SchemaViolation(_) => 422,
            _ => 400,
        }
    }

    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::InvalidHeader { .. } => "invalid_header",
            Self::EmptyBody => "empty_body",
            Self::InvalidUtf8(_) => "invalid_utf8",
            Self::TooLarge { .. } => "payload_too_large",
            Self::UnstorableCharacter { .. } => "unstorable_character",
            Self::MalformedJson(_) => "malformed_json",
            Self::NotAnObject(_) => "not_an_object",
            Self::TooDeep => "too_deep",
            Self::DuplicateMember { .. } => "duplicate_member",
            Self::SchemaViolation(_) => "schema_violation",
        }
    }

    /// The failing paths, for schema violations.
    pub fn violations(&self) -> &[Violation] {
        match self {
            Self::SchemaViolation(v) => v,
            _ => &[],
        }
    }
}

impl OrderRules {
    /// Compiles a JSON Schema for [`OrderRules::schema`].
    pub fn compile_schema(schema: &Value) -> Result<Schema, String> {
        jsonschema::validator_for(schema).map_err(|e| e.to_string())
    }

    /// Checks `incoming` and builds the order to store. `new_key` is called only when the caller
    /// sent no `Idempotency-Key`.
    pub fn accept(
        &self,
        incoming: &Incoming<'_>,
        new_key: impl FnOnce() -> String,
    ) -> Result<Order, Rejection> {
        check_content_type(incoming.content_type)?;
        let client_key = incoming
            .idempotency_key
            .map(|k| header_token("Idempotency-Key", k))
            .transpose()?;
        let group_header = incoming
            .group_id
            .map(|g| header_token("X-Message-Group-Id", g))
            .transpose()?;
        if incoming.body.is_empty() {
            return Err(Rejection::EmptyBody);
        }
        let body = std::str::from_utf8(incoming.body)
            .map_err(|e| Rejection::InvalidUtf8(e.valid_up_to()))?;

        let envelope = Envelope {
            content_type: incoming.content_type.unwrap_or_default().to_owned(),
            idempotency_key: client_key.map_or_else(new_key, str::to_owned),
            received_at_ms: Some(incoming.received_at_ms),
            request_id: incoming.request_id.clone(),
            trace_header: incoming.trace_header.clone(),
            trace_context: incoming.trace_context.clone(),
        };
        let attributes = envelope.attributes();
        let size = sqs_message_size(body, attributes.iter().map(|(k, v)| (*k, v.as_str())))
            + DEAD_LETTER_RESERVE;
        if size > self.max_message_bytes {
            return Err(Rejection::TooLarge {
                size,
                limit: self.max_message_bytes,
            });
        }
        if let Some((offset, c)) = body.char_indices().find(|(_, c)| !sqs_allows(*c)) {
            return Err(Rejection::UnstorableCharacter {
                code: c as u32,
                offset,
            });
        }

        check_json_object(body)?;
        // Only a schema or a group pointer needs the order as a tree; building one turns numbers
        // into f64, which refuses values beyond its range that are fine as stored text.
        let needs_tree = self.schema.is_some()
            || self
                .fifo
                .as_ref()
                .is_some_and(|rule| rule.pointer.is_some());
        let order = if needs_tree {
            serde_json::from_str(body).map_err(|e| Rejection::MalformedJson(e.to_string()))?
        } else {
            Value::Null
        };
        if let Some(schema) = &self.schema {
            let violations: Vec<Violation> = schema
                .iter_errors(&order)
                .map(|e| Violation {
                    path: e.instance_path().to_string(),
                    message: e.to_string(),
                })
                .collect();
            if !violations.is_empty() {
                return Err(Rejection::SchemaViolation(violations));
            }
        }
        let group_id = self
            .fifo
            .as_ref()
            .map(|rule| rule.group_of(&order, group_header))
            .transpose()?;

        Ok(Order {
            body: body.to_owned(),
            envelope,
            group_id,
        })
    }
}

/// Durable storage for orders: a `202` may be answered only after [`Storage::store`] succeeded.
pub trait Storage: Sync {
    /// Stores `order` and returns the id the storage gave it.
    fn store(&self, order: &Order) -> impl Future<Output = Result<String, StorageError>> + Send;
}

/// The storage did not acknowledge the write (after its own retries).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StorageError(pub String);

/// Where an order ended up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub message_id: String,
    /// True when the primary failed and the failover storage took the order.
    pub failover: bool,
}

/// Stores `order` in `primary`, or in `failover` when the primary fails (the seed's failover
/// store). The error is the last storage's.
pub async fn store_with_failover<P: Storage, F: Storage>(
    order: &Order,
    primary: &P,
    failover: Option<&F>,
) -> Result<Stored, StorageError> {
    let primary_error = match primary.store(order).await {
        Ok(message_id) => {
            return Ok(Stored {
                message_id,
                failover: false,
            });
        }
        Err(e) => e,
    };
    let Some(failover) = failover else {
        return Err(primary_error);
    };
    warn!(error = %primary_error, "primary queue failed, storing in the failover queue");
    failover.store(order).await.map(|message_id| Stored {
        message_id,
        failover: true,
    })
}

impl GroupRule {
    fn group_of(&self, order: &Value, header: Option<&str>) -> Result<String, Rejection> {
        let from_body = self
            .pointer
            .as_deref()
            .and_then(|p| order.pointer(p))
            .and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            });
        match (from_body, &self.pointer) {
            (Some(group), Some(pointer)) if !is_token(&group) => {
                Err(Rejection::SchemaViolation(vec![Violation {
                    path: pointer.clone(),
                    message: "a message group id must be 1 to 128 printable ASCII characters"
                        .into(),
                }]))
            }
            (Some(group), _) => Ok(group),
            (None, _) => Ok(header.unwrap_or(DEFAULT_GROUP).to_owned()),
        }
    }
}

fn check_content_type(content_type: Option<&str>) -> Result<(), Rejection> {
    let raw = content_type.unwrap_or_default();
    let mut parts = raw.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    let charset_ok = parts.all(|param| match param.split_once('=') {
        Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
            value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        }
        _ => true,
    });
    if essence.eq_ignore_ascii_case("application/json") && charset_ok {
        Ok(())
    } else {
        Err(Rejection::UnsupportedMediaType(raw.to_owned()))
    }
}

/// SQS deduplication and group ids allow 1-128 alphanumeric or punctuation characters.
fn is_token(value: &str) -> bool {
    (1..=128).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_graphic())
}

fn header_token<'a>(name: &'static str, value: &'a str) -> Result<&'a str, Rejection> {
    if is_token(value) {
        Ok(value)
    } else {
        Err(Rejection::InvalidHeader { name })
    }
}

/// Checks that `body` is one JSON object, syntax only: numbers of any size and precision pass.
fn check_json_object(body: &str) -> Result<(), Rejection> {
    serde_json::from_str::<serde::de::IgnoredAny>(body)
        .map_err(|e| Rejection::MalformedJson(e.to_string()))?;
    // Valid JSON: its first non-whitespace byte says what it is.
    let first = body
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .bytes()
        .next();
    let kind = match first {
        Some(b'{') => return check_structure(body),
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b'n') => "null",
        Some(b't' | b'f') => "a boolean",
        _ => "a number",
    };
    Err(Rejection::NotAnObject(kind))
}

/// Walks valid JSON text for what the syntax check lets through (RFC 7493, I-JSON, forbids all
/// three; many parsers refuse them, others silently keep one of two values): nesting deeper than
/// [`MAX_NESTING`], `\u` escapes of unpaired UTF-16 surrogates, which no Unicode string holds, and
/// objects that repeat a member name, compared as decoded (`"a"` and `"\u0061"` are one name).
fn check_structure(json: &str) -> Result<(), Rejection> {
    let bytes = json.as_bytes();
    // The open arrays and objects, innermost last, and the member names of the open objects in
    // the order read: each object's start at its `Open::Object`.
    let mut open: Vec<Open> = Vec::new();
    let mut names: Vec<Cow<'_, str>> = Vec::new();
    // Valid JSON: a string right after `{`, or after `,` in an object, is a member name.
    let mut name_next = false;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        i += 1;
        match b {
            b'"' => {
                let (end, escaped) = string_end(bytes, i)?;
                if name_next {
                    names.push(member_name(json, i, end, escaped)?);
                    name_next = false;
                }
                i = end;
            }
            b'[' | b'{' if open.len() == MAX_NESTING => return Err(Rejection::TooDeep),
            b'{' => {
                open.push(Open::Object(names.len()));
                name_next = true;
            }
            b'[' => open.push(Open::Array(0)),
            b',' => match open.last_mut() {
                Some(Open::Object(_)) => name_next = true,
                Some(Open::Array(index)) => *index += 1,
                None => {}
            },
            b'}' => {
                // An empty object closes where a name was awaited: what follows is no name.
                name_next = false;
                if let Some(Open::Object(first)) = open.pop() {
                    let members = names.get_mut(first..).unwrap_or_default();
                    // Sorted, a repeated name is next to itself: O(n log n) for any object.
                    members.sort_unstable();
                    if let Some(pair) = members.windows(2).find(|pair| pair[0] == pair[1]) {
                        let name = pair[0].to_string();
                        let pointer = pointer(&open, &names, first, &name);
                        return Err(Rejection::DuplicateMember { name, pointer });
                    }
                    names.truncate(first);
                }
            }
            b']' => {
                open.pop();
            }
            _ => {}
        }
    }
    Ok(())
}

/// An open array (with the index of its current element) or object (with the index in the list
/// of names where its own start).
#[derive(Clone, Copy)]
enum Open {
    Array(usize),
    Object(usize),
}

/// Reads a string from `start`, just after its opening quote: where it ends (just after its
/// closing quote) and whether it has escapes. Refuses `\u` escapes of unpaired surrogates.
fn string_end(bytes: &[u8], mut i: usize) -> Result<(usize, bool), Rejection> {
    let unpaired =
        || Rejection::MalformedJson("a \\u escape encodes an unpaired UTF-16 surrogate".into());
    let (mut escaped, mut high_surrogate) = (false, false);
    while let Some(&b) = bytes.get(i) {
        i += 1;
        // The UTF-16 unit of a `\u` escape, if this is one.
        let unit = match b {
            b'\\' if bytes.get(i) == Some(&b'u') => {
                let hex = bytes.get(i + 1..i + 5);
                i += 5;
                hex.and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u16::from_str_radix(h, 16).ok())
            }
            b'\\' => {
                i += 1;
                None
            }
            _ => None,
        };
        escaped |= b == b'\\';
        match (high_surrogate, unit) {
            (true, Some(0xDC00..=0xDFFF)) => high_surrogate = false,
            (true, _) | (false, Some(0xDC00..=0xDFFF)) => return Err(unpaired()),
            (false, Some(0xD800..=0xDBFF)) => high_surrogate = true,
            _ => {}
        }
        if b == b'"' {
            break;
        }
    }
    Ok((i, escaped))
}

/// The member name between `start` and `end` (its closing quote included), decoded if it has
/// escapes, so that names are compared as the parser will see them.
fn member_name(
    json: &str,
    start: usize,
    end: usize,
    escaped: bool,
) -> Result<Cow<'_, str>, Rejection> {
    let quoted = json.get(start - 1..end).unwrap_or_default();
    if escaped {
        serde_json::from_str::<String>(quoted)
            .map(Cow::Owned)
            .map_err(|e| Rejection::MalformedJson(e.to_string()))
    } else {
        Ok(Cow::Borrowed(
            quoted.get(1..quoted.len() - 1).unwrap_or_default(),
        ))
    }
}

/// The JSON Pointer (RFC 6901) of the member `name` of the object whose names start at `first`,
/// inside the `open` arrays and objects: each open object's member is the last name it read.
fn pointer(open: &[Open], names: &[Cow<'_, str>], first: usize, name: &str) -> String {
    let mut tokens = vec![name.replace('~', "~0").replace('/', "~1")];
    let mut end = first;
    for level in open.iter().rev() {
        match *level {
            Open::Array(index) => tokens.push(index.to_string()),
            Open::Object(start) => {
                let member = names.get(end.wrapping_sub(1)).map_or("", |n| n);
                tokens.push(member.replace('~', "~0").replace('/', "~1"));
                end = start;
            }
        }
    }
    tokens.iter().rev().map(|t| format!("/{t}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules() -> OrderRules {
        OrderRules {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            schema: None,
            fifo: None,
        }
    }

    fn incoming(body: &[u8]) -> Incoming<'_> {
        Incoming {
            content_type: Some("application/json"),
            body,
            received_at_ms: 1_700_000_000_000,
            ..Incoming::default()
        }
    }

    fn reject(rules: &OrderRules, incoming: &Incoming<'_>) -> Rejection {
        rules.accept(incoming, || "generated".into()).unwrap_err()
    }

    #[test]
    fn a_valid_order_is_stored_byte_identical_with_its_metadata() {
        let body = br#"{ "id" : 1,  "item":"caf\u00e9", "n": 12345678901234567890123 }"#;
        let req = Incoming {
            idempotency_key: Some("abc-123"),
            request_id: Some("r1".into()),
            trace_header: Some("Root=1-x".into()),
            trace_context: TraceContext::from_headers(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                None,
            ),
            ..incoming(body)
        };
        let order = rules()
            .accept(&req, || unreachable!("client sent a key"))
            .unwrap();
        assert_eq!(order.body.as_bytes(), body);
        assert_eq!(order.envelope.trace_context, req.trace_context);
        assert_eq!(order.envelope.idempotency_key, "abc-123");
        assert_eq!(order.envelope.request_id.as_deref(), Some("r1"));
        assert_eq!(order.envelope.received_at_ms, Some(1_700_000_000_000));
        assert_eq!(order.group_id, None);
    }

    #[tokio::test]
    async fn failover_storage_takes_the_order_only_when_the_primary_fails() {
        use crate::fakes::FakeStorage;
        let order = rules().accept(&incoming(b"{}"), || "k".into()).unwrap();
        let (up, down, backup) = (
            FakeStorage::up("p"),
            FakeStorage::down(),
            FakeStorage::up("f"),
        );

        let stored = store_with_failover(&order, &up, Some(&backup))
            .await
            .unwrap();
        assert_eq!(
            (stored.message_id.as_str(), stored.failover),
            ("p-1", false)
        );
        assert!(backup.stored().is_empty());

        let stored = store_with_failover(&order, &down, Some(&backup))
            .await
            .unwrap();
        assert_eq!((stored.message_id.as_str(), stored.failover), ("f-1", true));
        assert_eq!(backup.stored(), std::slice::from_ref(&order));

        assert!(
            store_with_failover(&order, &down, Some(&FakeStorage::down()))
                .await
                .is_err()
        );
        assert!(
            store_with_failover(&order, &down, None::<&FakeStorage>)
                .await
                .is_err()
        );
    }

    #[test]
    fn a_key_is_generated_when_the_client_sends_none() {
        let order = rules().accept(&incoming(b"{}"), || "gen-1".into()).unwrap();
        assert_eq!(order.envelope.idempotency_key, "gen-1");
    }

    #[test]
    fn content_types() {
        for ok in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=\"UTF-8\"",
        ] {
            let req = Incoming {
                content_type: Some(ok),
                ..incoming(b"{}")
            };
            assert!(rules().accept(&req, String::new).is_ok(), "{ok}");
        }
        for bad in [
            None,
            Some("text/plain"),
            Some("application/json; charset=latin1"),
            Some(""),
        ] {
            let req = Incoming {
                content_type: bad,
                ..incoming(b"{}")
            };
            let r = reject(&rules(), &req);
            assert_eq!(
                (r.status(), r.code()),
                (415, "unsupported_media_type"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn bodies_that_are_not_json_objects_are_400() {
        let cases: [(&[u8], &str); 11] = [
            (b"", "empty_body"),
            (b"\xff\xfe{}", "invalid_utf8"),
            (b"{\"a\":", "malformed_json"),
            (b"{\"a\":1} trailing", "malformed_json"),
            (b"[1,2]", "not_an_object"),
            (b"\"order\"", "not_an_object"),
            (b"null", "not_an_object"),
            (b"42", "not_an_object"),
            (b" \r\n\ttrue", "not_an_object"),
            (b"   ", "malformed_json"),
            ("{\"a\":\"\u{FFFF}\"}".as_bytes(), "unstorable_character"),
        ];
        for (body, code) in cases {
            let r = reject(&rules(), &incoming(body));
            assert_eq!(
                (r.status(), r.code()),
                (400, code),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn numbers_beyond_f64_are_accepted_as_text_unless_a_schema_must_read_them() {
        let body = br#"{"huge":1e400,"tiny":-1e-400,"long":123456789012345678901234567890.5}"#;
        let order = rules().accept(&incoming(body), String::new).unwrap();
        assert_eq!(order.body.as_bytes(), body);

        let checked = OrderRules {
            schema: Some(OrderRules::compile_schema(&json!({"type": "object"})).unwrap()),
            ..rules()
        };
        let r = reject(&checked, &incoming(body));
        assert_eq!(r.code(), "malformed_json");
        assert!(r.to_string().contains("out of range"), "{r}");
    }

    #[test]
    fn escapes_of_unpaired_surrogates_are_malformed() {
        for ok in [
            r#"{"a":"\ud83d\ude00"}"#,
            r#"{"a":"\uD83D\uDE00\u0000\\ud800"}"#,
        ] {
            assert!(
                rules()
                    .accept(&incoming(ok.as_bytes()), String::new)
                    .is_ok(),
                "{ok}"
            );
        }
        for bad in [
            r#"{"a":"\ud800"}"#,
            r#"{"a":"\ud800x"}"#,
            r#"{"a":"\ud800\n"}"#,
            r#"{"a":"\ud800\ud800\udc00"}"#,
            r#"{"a":"\udc00"}"#,
            r#"{"\udfff":1}"#,
        ] {
            let r = reject(&rules(), &incoming(bad.as_bytes()));
            assert_eq!((r.status(), r.code()), (400, "malformed_json"), "{bad}");
        }
    }

    #[test]
    fn repeated_member_names_are_rejected_with_their_pointer() {
        for (body, name, pointer) in [
            (r#"{"a":1,"a":2}"#, "a", "/a"),
            (r#"{"a":1,"b":2,"a":1}"#, "a", "/a"),
            (r#"{"a":1,"\u0061":2}"#, "a", "/a"),
            (r#"{"\u00e9":1,"é":2}"#, "é", "/é"),
            (r#"{"😀":1,"\ud83d\ude00":2}"#, "😀", "/😀"),
            (r#"{"a/b~":1,"a\/b~":2}"#, "a/b~", "/a~1b~0"),
            (r#"{"a":{},"b":[{}],"a":1}"#, "a", "/a"),
            (
                r#"{"x":{"b":[{"c":1},{"c":1,"d":{},"c":2}]}}"#,
                "c",
                "/x/b/1/c",
            ),
            (
                r#"{"k":[[],{"a":{"a":1}},[0,{"q":0,"q":1}]]}"#,
                "q",
                "/k/2/1/q",
            ),
            (
                r#"{"s":"{\"a\":1,\"a\":2}","t":{"u":1,"u":2}}"#,
                "u",
                "/t/u",
            ),
        ] {
            let r = reject(&rules(), &incoming(body.as_bytes()));
            assert_eq!(
                r,
                Rejection::DuplicateMember {
                    name: name.into(),
                    pointer: pointer.into()
                },
                "{body}"
            );
            assert_eq!((r.status(), r.code()), (400, "duplicate_member"));
            assert!(r.to_string().contains(pointer), "{r}");
        }
        for ok in [
            r#"{"a":1,"b":{"a":1},"c":[{"a":1},{"a":2}],"d":{"b":{"a":1}}}"#,
            r#"{"a":"a","b":["a","a"],"A":1,"a ":1,"":1,"\u0000":1}"#,
            r#"{"a\"":1,"a":2,"\"a":3,"a\\":4}"#,
            r#"{"e\u0301":1,"é":2}"#,
            // Strings after an empty object are values, not its parent's names (Schemathesis).
            r#"{"":1,"x":[{},""],"y":{},"z":[{}, "z", "", "y"]}"#,
        ] {
            assert!(
                rules()
                    .accept(&incoming(ok.as_bytes()), String::new)
                    .is_ok(),
                "{ok}"
            );
        }
    }

    #[test]
    fn a_large_object_is_checked_for_repeats_whole() {
        let members: Vec<String> = (0..10_000).map(|i| format!(r#""m{i}":{i}"#)).collect();
        let distinct = format!("{{{}}}", members.join(","));
        assert!(
            rules()
                .accept(&incoming(distinct.as_bytes()), String::new)
                .is_ok()
        );
        let repeated = format!("{{{},\"m0\":0}}", members.join(","));
        assert_eq!(
            reject(&rules(), &incoming(repeated.as_bytes())).code(),
            "duplicate_member"
        );
    }

    #[test]
    fn deep_nesting_is_rejected_not_overflowed() {
        let nested = |levels: usize| {
            // Brackets inside strings, escaped quotes included, do not count.
            let inner = r#"{"s":"[[{{\"]]"}"#;
            format!(
                "{}{inner}{}",
                "[".repeat(levels - 1),
                "]".repeat(levels - 1)
            )
        };
        let object = |levels: usize| format!("{{\"a\":{}}}", nested(levels - 1));
        assert!(
            rules()
                .accept(&incoming(object(MAX_NESTING).as_bytes()), String::new)
                .is_ok()
        );
        for levels in [MAX_NESTING + 1, 100_000] {
            let r = reject(&rules(), &incoming(object(levels).as_bytes()));
            assert_eq!((r.status(), r.code()), (400, "too_deep"), "{levels}");
        }
    }

    #[test]
    fn size_limit_counts_the_attributes_and_the_dead_letter_reserve() {
        let limit = 200 + DEAD_LETTER_RESERVE;
        let limited = OrderRules {
            max_message_bytes: limit,
            ..rules()
        };
        let meta = sqs_message_size(
            "",
            [
                ("ContentType", "application/json"),
                ("IdempotencyKey", "generated"),
                ("ReceivedAt", "1700000000000"),
            ],
        );
        let body = |len: usize| format!("{{\"p\":\"{}\"}}", "x".repeat(len - 8));
        let fits = body(200 - meta);
        let accepted = limited.accept(&incoming(fits.as_bytes()), || "generated".into());
        assert!(accepted.is_ok());
        let over = body(200 - meta + 1);
        let r = reject(&limited, &incoming(over.as_bytes()));
        assert_eq!(
            r,
            Rejection::TooLarge {
                size: limit + 1,
                limit
            }
        );
        assert_eq!(r.status(), 413);
    }

    #[test]
    fn bad_headers_are_400() {
        let long = "k".repeat(129);
        for key in ["", "has space", "ünïcode", long.as_str()] {
            let req = Incoming {
                idempotency_key: Some(key),
                ..incoming(b"{}")
            };
            assert_eq!(
                reject(&rules(), &req),
                Rejection::InvalidHeader {
                    name: "Idempotency-Key"
                }
            );
        }
    }

    #[test]
    fn schema_violations_are_422_with_paths() {
        let schema = json!({
            "type": "object",
            "required": ["id", "items"],
            "properties": {"id": {"type": "string"}, "items": {"type": "array", "minItems": 1}}
        });
        let strict = OrderRules {
            schema: Some(jsonschema::validator_for(&schema).unwrap()),
            ..rules()
        };
        let r = reject(&strict, &incoming(br#"{"id": 7, "items": []}"#));
        assert_eq!(r.status(), 422);
        let mut paths: Vec<&str> = r.violations().iter().map(|v| v.path.as_str()).collect();
        paths.sort();
        assert_eq!(paths, ["/id", "/items"]);
        assert!(
            strict
                .accept(&incoming(br#"{"id":"a","items":[1]}"#), String::new)
                .is_ok()
        );
    }

    #[test]
    fn fifo_groups_come_from_the_pointer_then_the_header_then_the_default() {
        let fifo = OrderRules {
            fifo: Some(GroupRule {
                pointer: Some("/customer/id".into()),
            }),
            ..rules()
        };
        let group = |body: &[u8], header| {
            let req = Incoming {
                group_id: header,
                ..incoming(body)
            };
            fifo.accept(&req, String::new).map(|o| o.group_id)
        };
        assert_eq!(
            group(br#"{"customer":{"id":"c-9"}}"#, Some("h")),
            Ok(Some("c-9".into()))
        );
        assert_eq!(
            group(br#"{"customer":{"id":42}}"#, None),
            Ok(Some("42".into()))
        );
        assert_eq!(
            group(br#"{"customer":{}}"#, Some("h")),
            Ok(Some("h".into()))
        );
        assert_eq!(group(b"{}", None), Ok(Some(DEFAULT_GROUP.into())));
        assert_eq!(
            group(br#"{"customer":{"id":"has space"}}"#, None)
                .unwrap_err()
                .status(),
            422
        );
    }
}
