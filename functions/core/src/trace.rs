//! W3C Trace Context (level 1): the `traceparent` and `tracestate` headers, the spans the store
//! and each delivery attempt form in one trace, and the carrier that keeps a context in a message.
//!
//! The store continues a caller's valid `traceparent` (or starts a trace) with a span of its own,
//! and stores that span's context with the order. Every receive of the message in the forwarder
//! is an attempt span, a child of the store's, whose id is derived from the message id and the
//! receive count, so that the logs and the backend's `traceparent` agree without any state.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The only version this implementation writes.
const VERSION: &str = "00";

/// The length of a version 00 `traceparent`: `00-` 32 hex `-` 16 hex `-` 2 hex.
const TRACEPARENT_LEN: usize = 55;

/// At most this many list-members in a `tracestate`.
const MAX_TRACESTATE_MEMBERS: usize = 32;

/// At most this many characters in a `tracestate`.
const MAX_TRACESTATE_LEN: usize = 512;

/// A trace id: 16 bytes, never all zero; shown as 32 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId(u128);

/// A span (parent) id: 8 bytes, never all zero; shown as 16 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanId(u64);

impl TraceId {
    /// A random trace id.
    pub fn random() -> Self {
        Self(fastrand::u128(1..))
    }

    /// The trace id `id` names, unless it is zero.
    pub fn new(id: u128) -> Option<Self> {
        (id != 0).then_some(Self(id))
    }
}

impl SpanId {
    /// A random span id.
    pub fn random() -> Self {
        Self(fastrand::u64(1..))
    }

    /// The span id `id` names, unless it is zero.
    pub fn new(id: u64) -> Option<Self> {
        (id != 0).then_some(Self(id))
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// The fields of a `traceparent` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: TraceId,
    /// The id of the span that sent the header.
    pub parent_id: SpanId,
    /// The trace flags (bit 0: sampled), passed on as received.
    pub flags: u8,
}

impl TraceParent {
    /// Parses a `traceparent` header. Version 00 must be exactly its four fields; a higher
    /// version may be longer, and its first four fields are read as version 00's, as the spec's
    /// forward compatibility asks. Version `ff`, uppercase hex, wrong lengths and all-zero ids are
    /// invalid.
    pub fn parse(header: &str) -> Option<Self> {
        let version = header.get(..2).filter(|v| is_lower_hex(v))?;
        let fields = match version {
            "ff" => return None,
            VERSION if header.len() != TRACEPARENT_LEN => return None,
            VERSION => header,
            _ => match header.as_bytes().get(TRACEPARENT_LEN) {
                None | Some(b'-') => header.get(..TRACEPARENT_LEN)?,
                Some(_) => return None,
            },
        };
        let mut parts = fields.split('-');
        let (_, trace_id, parent_id, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        fn hex(field: &str, len: usize) -> Option<&str> {
            (field.len() == len && is_lower_hex(field)).then_some(field)
        }
        Some(Self {
            trace_id: TraceId::new(u128::from_str_radix(hex(trace_id, 32)?, 16).ok()?)?,
            parent_id: SpanId::new(u64::from_str_radix(hex(parent_id, 16)?, 16).ok()?)?,
            flags: u8::from_str_radix(hex(flags, 2)?, 16).ok()?,
        })
    }
}

impl fmt::Display for TraceParent {
    /// The version 00 header.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{VERSION}-{}-{}-{:02x}",
            self.trace_id, self.parent_id, self.flags
        )
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A valid `tracestate`, in its canonical form: the list-members without optional whitespace,
/// empty members left out.
pub fn tracestate(header: &str) -> Option<String> {
    if header.len() > MAX_TRACESTATE_LEN {
        return None;
    }
    let members: Vec<&str> = header
        .split(',')
        .map(|m| m.trim_matches([' ', '\t']))
        .filter(|m| !m.is_empty())
        .collect();
    if members.is_empty() || members.len() > MAX_TRACESTATE_MEMBERS {
        return None;
    }
    let mut keys = Vec::with_capacity(members.len());
    for member in &members {
        let (key, value) = member.split_once('=')?;
        if !is_key(key) || !is_value(value) || keys.contains(&key) {
            return None;
        }
        keys.push(key);
    }
    Some(members.join(","))
}

/// `simple-key = lcalpha 0*255(lcalpha / DIGIT / "_" / "-" / "*" / "/")`, or
/// `tenant-id "@" system-id` with `tenant-id = (lcalpha / DIGIT) 0*240(...)` and
/// `system-id = lcalpha 0*13(...)`.
fn is_key(key: &str) -> bool {
    let rest = |s: &str| {
        s.bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/'))
    };
    let starts = |s: &str, digit_ok: bool| {
        s.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || digit_ok && b.is_ascii_digit())
    };
    match key.split_once('@') {
        None => (1..=256).contains(&key.len()) && starts(key, false) && rest(key),
        Some((tenant, system)) => {
            (1..=241).contains(&tenant.len())
                && starts(tenant, true)
                && rest(tenant)
                && (1..=14).contains(&system.len())
                && starts(system, false)
                && rest(system)
        }
    }
}

/// `value = 0*255(chr) nblk-chr`: printable ASCII but `,` and `=`, spaces inside only.
fn is_value(value: &str) -> bool {
    let nblk = |b: u8| matches!(b, 0x21..=0x7e) && b != b',' && b != b'=';
    (1..=256).contains(&value.len())
        && value.bytes().all(|b| b == b' ' || nblk(b))
        && value.bytes().last().is_some_and(nblk)
}

/// A context as it travels: a `traceparent` and the `tracestate` that goes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    pub parent: TraceParent,
    /// A valid `tracestate` ([`tracestate`]), if there was one.
    pub state: Option<String>,
}

/// The context as the SQS attribute `TraceContext` keeps it: an OpenTelemetry text-map carrier.
#[derive(Serialize, Deserialize)]
struct Carrier<'a> {
    #[serde(borrow)]
    traceparent: Cow<'a, str>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    tracestate: Option<Cow<'a, str>>,
}

impl TraceContext {
    /// The context from a request's `traceparent` and `tracestate` headers: `None` unless the
    /// `traceparent` is valid; an invalid `tracestate` is dropped.
    pub fn from_headers(traceparent: &str, tracestate: Option<&str>) -> Option<Self> {
        Some(Self {
            parent: TraceParent::parse(traceparent)?,
            state: tracestate.and_then(self::tracestate),
        })
    }

    /// The carrier JSON, `{"traceparent":"00-…","tracestate":"…"}`.
    pub fn to_carrier(&self) -> String {
        let traceparent = self.parent.to_string();
        let carrier = Carrier {
            traceparent: Cow::Borrowed(&traceparent),
            tracestate: self.state.as_deref().map(Cow::Borrowed),
        };
        serde_json::to_string(&carrier).unwrap_or_default()
    }

    /// Reads a carrier back; `None` unless it is JSON with a valid `traceparent`.
    pub fn from_carrier(json: &str) -> Option<Self> {
        let carrier: Carrier<'_> = serde_json::from_str(json).ok()?;
        Self::from_headers(&carrier.traceparent, carrier.tracestate.as_deref())
    }
}

/// One span of a trace, as the logs name it and the next hop continues it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// The span this one continues, if any.
    pub parent_id: Option<SpanId>,
    pub flags: u8,
    pub state: Option<String>,
}

/// Flags of a trace this code starts: sampled.
const SAMPLED: u8 = 0x01;

impl Span {
    /// The store's span: a child of the caller's context if it sent a valid one, else the root
    /// of a new trace (sampled, and without any `tracestate`).
    pub fn continuing(caller: Option<TraceContext>) -> Self {
        match caller {
            Some(TraceContext { parent, state }) => Self {
                trace_id: parent.trace_id,
                span_id: SpanId::random(),
                parent_id: Some(parent.parent_id),
                flags: parent.flags,
                state,
            },
            None => Self {
                trace_id: TraceId::random(),
                span_id: SpanId::random(),
                parent_id: None,
                flags: SAMPLED,
                state: None,
            },
        }
    }

    /// The span of one receive of message `message_id`: a child of the stored context, with an
    /// id derived from the message id and the receive count. A message stored without a context
    /// gets a trace id derived from its id, so that all its attempts share one trace.
    pub fn attempt(stored: Option<&TraceContext>, message_id: &str, receive_count: u32) -> Self {
        let span_id =
            SpanId(nonzero(sha256_prefix::<8>(&format!("{message_id}:{receive_count}"))) as u64);
        match stored {
            Some(context) => Self {
                trace_id: context.parent.trace_id,
                span_id,
                parent_id: Some(context.parent.parent_id),
                flags: context.parent.flags,
                state: context.state.clone(),
            },
            None => Self {
                trace_id: TraceId(nonzero(sha256_prefix::<16>(message_id))),
                span_id,
                parent_id: None,
                flags: SAMPLED,
                state: None,
            },
        }
    }

    /// The context that makes the next hop a child of this span.
    pub fn context(&self) -> TraceContext {
        TraceContext {
            parent: TraceParent {
                trace_id: self.trace_id,
                parent_id: self.span_id,
                flags: self.flags,
            },
            state: self.state.clone(),
        }
    }
}

/// The first `N` (≤ 16) bytes of SHA-256 of `text`, big-endian.
fn sha256_prefix<const N: usize>(text: &str) -> u128 {
    Sha256::digest(text.as_bytes())
        .iter()
        .take(N)
        .fold(0, |id, b| (id << 8) | u128::from(*b))
}

/// An id is never all zero; a digest that starts with that many zero bytes becomes 1.
fn nonzero(id: u128) -> u128 {
    id.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spec's example header.
    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_specs_example_parses_and_formats_back() {
        let parent = TraceParent::parse(EXAMPLE).unwrap();
        assert_eq!(
            parent.trace_id.to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(parent.parent_id.to_string(), "00f067aa0ba902b7");
        assert_eq!(parent.flags, 1);
        assert_eq!(parent.to_string(), EXAMPLE);
        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        assert_eq!(TraceParent::parse(unsampled).unwrap().flags, 0);
    }

    #[test]
    fn invalid_traceparents_are_refused() {
        for bad in [
            "",
            "00",
            // all-zero trace id, all-zero parent id
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            // version ff, uppercase hex, non-hex
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            // wrong lengths
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-011",
            // version 00 with more after it
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what",
            // wrong separators
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
            " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn higher_versions_are_read_as_version_00_and_written_as_it() {
        let future = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future";
        let parent = TraceParent::parse(future).unwrap();
        assert_eq!(parent.to_string(), EXAMPLE);
        assert!(TraceParent::parse(&EXAMPLE.replacen("00", "01", 1)).is_some());
        assert_eq!(
            TraceParent::parse(
                "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.what-the-future"
            ),
            None,
            "a longer header must go on with a dash"
        );
        assert_eq!(
            TraceParent::parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0"),
            None
        );
    }

    #[test]
    fn tracestate_is_kept_canonical_when_valid() {
        assert_eq!(
            tracestate("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE").as_deref(),
            Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
        );
        assert_eq!(
            tracestate(" rojo=1 ,\t,congo=2\t").as_deref(),
            Some("rojo=1,congo=2"),
            "optional whitespace and empty members go"
        );
        assert_eq!(
            tracestate("fw529a3039@dt=ZmYXZhbHVl,a*b/c_d-e=x y").as_deref(),
            Some("fw529a3039@dt=ZmYXZhbHVl,a*b/c_d-e=x y")
        );
        let thirty_two = (0..32).map(|i| format!("k{i}=v")).collect::<Vec<_>>();
        assert!(tracestate(&thirty_two.join(",")).is_some());
    }

    #[test]
    fn invalid_tracestates_are_dropped() {
        let thirty_three = (0..33).map(|i| format!("k{i}=v")).collect::<Vec<_>>();
        let long = format!("k={}", "v".repeat(257));
        let too_long = (0..30)
            .map(|i| format!("key{i:02}={}", "v".repeat(14)))
            .collect::<Vec<_>>()
            .join(",");
        assert!(too_long.len() > MAX_TRACESTATE_LEN);
        for bad in [
            "",
            " , ",
            "rojo",
            "Rojo=1",
            "1rojo=1",
            "rojo=1,rojo=2",
            "rojo=a,b",
            "rojo=a=b",
            "rojo=",
            "rojo=é",
            "tenant@System=1",
            "tenant@s012345678901234=1",
            "@s=1",
            "t@=1",
            &thirty_three.join(","),
            &long,
            &too_long,
        ] {
            assert_eq!(tracestate(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_carrier_round_trips_and_is_read_leniently() {
        let context = TraceContext::from_headers(EXAMPLE, Some("rojo=1")).unwrap();
        let json = context.to_carrier();
        assert_eq!(
            json,
            format!(r#"{{"traceparent":"{EXAMPLE}","tracestate":"rojo=1"}}"#)
        );
        assert_eq!(TraceContext::from_carrier(&json), Some(context));

        let bare = TraceContext::from_headers(EXAMPLE, None).unwrap();
        assert_eq!(
            bare.to_carrier(),
            format!(r#"{{"traceparent":"{EXAMPLE}"}}"#)
        );
        let dropped = TraceContext::from_carrier(&format!(
            r#"{{"traceparent":"{EXAMPLE}","tracestate":"x"}}"#
        ));
        assert_eq!(dropped, Some(bare));
        for bad in ["", "{}", "null", r#"{"traceparent":"00-zz"}"#, "not json"] {
            assert_eq!(TraceContext::from_carrier(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_store_continues_a_callers_trace_or_starts_one() {
        let caller = TraceContext::from_headers(EXAMPLE, Some("rojo=1"));
        let span = Span::continuing(caller.clone());
        let caller = caller.unwrap();
        assert_eq!(span.trace_id, caller.parent.trace_id);
        assert_eq!(span.parent_id, Some(caller.parent.parent_id));
        assert_ne!(span.span_id, caller.parent.parent_id);
        assert_eq!(span.state.as_deref(), Some("rojo=1"));
        let next = span.context();
        assert_eq!(
            next.parent.to_string(),
            format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01", span.span_id)
        );

        let root = Span::continuing(None);
        assert_eq!((root.parent_id, root.flags, &root.state), (None, 1, &None));
        assert_ne!(root.trace_id, Span::continuing(None).trace_id);
        assert!(TraceParent::parse(&root.context().parent.to_string()).is_some());
    }

    #[test]
    fn attempt_spans_derive_from_the_message_id_and_receive_count() {
        let stored = Span::continuing(TraceContext::from_headers(EXAMPLE, Some("rojo=1")));
        let context = stored.context();
        let first = Span::attempt(Some(&context), "m-1", 1);
        assert_eq!(first.trace_id, stored.trace_id);
        assert_eq!(first.parent_id, Some(stored.span_id));
        assert_eq!((first.flags, first.state.as_deref()), (1, Some("rojo=1")));
        assert_eq!(first, Span::attempt(Some(&context), "m-1", 1), "stable");
        assert_ne!(
            first.span_id,
            Span::attempt(Some(&context), "m-1", 2).span_id
        );
        // SHA-256("m-1:1") starts with these 8 bytes.
        let digest = Sha256::digest(b"m-1:1");
        let expected: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(first.span_id.to_string(), expected);

        let foreign = Span::attempt(None, "m-1", 3);
        let digest = Sha256::digest(b"m-1");
        let expected: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(foreign.trace_id.to_string(), expected);
        assert_eq!(
            (foreign.parent_id, foreign.flags, foreign.state),
            (None, 1, None)
        );
        assert_eq!(foreign.trace_id, Span::attempt(None, "m-1", 4).trace_id);
    }
}
