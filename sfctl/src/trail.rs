//! An order's trail: the functions' log lines about it (README "Log lines") turned into its life
//! in time order, and how that life ended. Pure: `sfctl trace` fetches the lines.

use std::collections::HashSet;

use aws_sdk_cloudwatch::primitives::{DateTime, DateTimeFormat};
use serde::Serialize;
use serde_json::{Map, Value};

/// One log line about an order: a JSON object with an `"event"` member.
#[derive(Debug, Clone)]
pub struct Line {
    /// When, in microseconds since the epoch: the line's own `"timestamp"`, else CloudWatch's.
    at_us: i64,
    /// The same time in RFC 3339 with microseconds, as shown.
    time: String,
    fields: Map<String, Value>,
    /// The line as written, to tell repeats of one line (found by two searches) from two lines.
    raw: String,
}

impl Line {
    /// The line, if it is one of ours: JSON with an `"event"`; `None` for anything else (the
    /// runtime's START/END/REPORT lines, metric (EMF) documents, text). `logged_ms` is when
    /// CloudWatch says it was logged, used when the line has no timestamp of its own.
    pub fn parse(raw: &str, logged_ms: i64) -> Option<Self> {
        let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(raw) else {
            return None;
        };
        fields.get("event")?.as_str()?;
        let at = fields
            .get("timestamp")
            .and_then(Value::as_str)
            .and_then(|t| DateTime::from_str(t, DateTimeFormat::DateTime).ok())
            .unwrap_or_else(|| DateTime::from_millis(logged_ms));
        let micros = at.subsec_nanos() / 1000;
        // `...:07Z` -> `...:07.123456Z`: one width, so that the times also sort as text.
        let seconds = DateTime::from_secs(at.secs())
            .fmt(DateTimeFormat::DateTime)
            .ok()?;
        Some(Self {
            at_us: at.secs() * 1_000_000 + i64::from(micros),
            time: format!("{}.{micros:06}Z", seconds.trim_end_matches('Z')),
            fields,
            raw: raw.to_owned(),
        })
    }

    fn text(&self, name: &str) -> Option<String> {
        self.fields.get(name)?.as_str().map(str::to_owned)
    }

    fn number(&self, name: &str) -> Option<f64> {
        self.fields.get(name)?.as_f64()
    }

    fn count<T: TryFrom<u64>>(&self, name: &str) -> Option<T> {
        T::try_from(self.fields.get(name)?.as_u64()?).ok()
    }

    fn event(&self) -> &str {
        self.fields
            .get("event")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    pub fn key(&self) -> Option<String> {
        self.text("idempotency_key")
    }
}

/// What `sfctl trace` looks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// An idempotency key or an SQS message id.
    Id(String),
    /// A W3C trace id (32 lowercase hex digits).
    TraceId(String),
}

impl Query {
    /// The text the lines must contain.
    pub fn term(&self) -> &str {
        match self {
            Self::Id(id) | Self::TraceId(id) => id,
        }
    }

    /// Whether `line` is about what was asked for (an exact field match, not a substring).
    pub fn matches(&self, line: &Line) -> bool {
        let is = |name: &str, value: &str| line.text(name).as_deref() == Some(value);
        match self {
            Self::Id(id) => is("idempotency_key", id) || is("message_id", id),
            Self::TraceId(id) => is("trace_id", id),
        }
    }
}

/// Where an order ended up, as far as its lines tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Accepted and not finished with: in a queue, retrying, parked as the circuit's ticket.
    Pending,
    Delivered,
    DeadLettered,
    /// Given up and discarded (`FAILURE_ACTION=drop`).
    Dropped,
    /// Given up with `FAILURE_ACTION=pause`: delivery is paused until `sfctl resume`.
    Paused,
    /// Refused by the store (4xx).
    Rejected,
    /// The store could not queue it and answered 503.
    NotStored,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::DeadLettered => "dead-lettered",
            Self::Dropped => "dropped",
            Self::Paused => "paused",
            Self::Rejected => "rejected",
            Self::NotStored => "not stored",
        }
    }
}

/// Who put a message into the dead-letter queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetteredBy {
    /// The forwarder, for a failure that can never succeed.
    Forwarder,
    /// SQS, after the queue's `maxReceiveCount` receives.
    RedrivePolicy,
}

/// One step of the trail; `time` is RFC 3339 UTC with microseconds. Fields without a value are
/// `null`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub time: String,
    #[serde(flatten)]
    pub what: What,
}

/// The step's kind (`"step"` in JSON) and its fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum What {
    Accepted {
        request_id: Option<String>,
        /// `"primary"` or `"failover"`.
        queue: Option<String>,
        message_id: Option<String>,
        trace_id: Option<String>,
        /// The store's span.
        span_id: Option<String>,
        /// The caller's span, when it sent a `traceparent`.
        parent_span_id: Option<String>,
    },
    Rejected {
        request_id: Option<String>,
        code: Option<String>,
        status: Option<u16>,
    },
    NotStored {
        request_id: Option<String>,
        error: Option<String>,
    },
    Attempt {
        message_id: Option<String>,
        receive_count: Option<u32>,
        /// The backend's HTTP status, when it answered.
        status: Option<u16>,
        /// Why the attempt failed: the status as a string, or `timeout`, `connection`, ...
        error_type: Option<String>,
        latency_ms: Option<f64>,
        /// The retry delay that followed, in seconds.
        delay_s: Option<f64>,
        /// `delivered`, `retrying`, `dead_lettered`, `dropped`, `paused`, `parked` or `failed`.
        outcome: String,
        reason: Option<String>,
        /// The queue's redrive policy moves the message to the DLQ instead of another receive.
        last_receive: bool,
        /// This attempt's span (sent to the backend in `traceparent`).
        span_id: Option<String>,
        /// The store's span.
        parent_span_id: Option<String>,
    },
    Deferred {
        message_id: Option<String>,
        receive_count: Option<u32>,
        reason: Option<String>,
    },
    Held {
        message_id: Option<String>,
        receive_count: Option<u32>,
        reason: Option<String>,
    },
    Delivered {
        message_id: Option<String>,
    },
    DeadLettered {
        message_id: Option<String>,
        by: DeadLetteredBy,
        reason: String,
    },
    Dropped {
        message_id: Option<String>,
        reason: Option<String>,
    },
    Paused {
        message_id: Option<String>,
        reason: Option<String>,
    },
    Redriven {
        /// The message that came back from the DLQ.
        message_id: Option<String>,
        /// The one that was dead-lettered.
        previous_message_id: Option<String>,
    },
}

/// An order's life. `--json` prints it as one document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trail {
    pub idempotency_key: Option<String>,
    pub trace_id: Option<String>,
    /// Every SQS message id the order had, in order of appearance.
    pub message_ids: Vec<String>,
    pub state: State,
    /// Why it is in that state (the last failure, the dead-letter reason), when there is one.
    pub reason: Option<String>,
    pub steps: Vec<Step>,
}

/// Which message died, if the story so far ended in the DLQ.
#[derive(Default)]
struct Deliveries {
    dead: Option<Option<String>>,
}

impl Deliveries {
    /// A `Redriven` step if this forwarder line is about a message back from the DLQ: any line
    /// after a dead letter, since nothing receives a message while it is in the DLQ. (A redrive
    /// may keep the message id, and its receive count then goes on: LocalStack's message move
    /// task does both.)
    fn redriven(&mut self, message_id: Option<&String>) -> Option<What> {
        let id = message_id?;
        let dead = self.dead.take()?;
        Some(What::Redriven {
            message_id: Some(id.clone()),
            previous_message_id: dead,
        })
    }
}

/// What an attempt's outcome means for the order: the step that ends its story (if this one
/// does), its state and why.
fn ending(
    outcome: &str,
    last_receive: bool,
    message_id: Option<String>,
    count: Option<u32>,
    reason: Option<String>,
) -> (Option<What>, State, Option<String>) {
    let dead = |message_id, by, why: String| {
        let step = What::DeadLettered {
            message_id,
            by,
            reason: why.clone(),
        };
        (Some(step), State::DeadLettered, Some(why))
    };
    match (outcome, last_receive) {
        ("delivered", _) => (Some(What::Delivered { message_id }), State::Delivered, None),
        ("dead_lettered", _) => dead(
            message_id,
            DeadLetteredBy::Forwarder,
            reason.unwrap_or_else(|| "no reason given".into()),
        ),
        ("retrying", true) => dead(
            message_id,
            DeadLetteredBy::RedrivePolicy,
            format!(
                "moved to the DLQ by the queue's redrive policy after {} receives",
                count.map_or_else(|| "its".into(), |c| c.to_string())
            ),
        ),
        ("dropped", _) => {
            let step = What::Dropped {
                message_id,
                reason: reason.clone(),
            };
            (Some(step), State::Dropped, reason)
        }
        ("paused", _) => {
            let step = What::Paused {
                message_id,
                reason: reason.clone(),
            };
            (Some(step), State::Paused, reason)
        }
        ("parked", _) => (
            None,
            State::Pending,
            reason.map(|r| format!("parked as the circuit's probe ticket: {r}")),
        ),
        _ => (None, State::Pending, reason),
    }
}

impl Trail {
    /// The trail of `lines` (in any order, repeats allowed); `None` without any.
    pub fn of(mut lines: Vec<Line>) -> Option<Self> {
        let mut seen = HashSet::new();
        lines.retain(|l| seen.insert(l.raw.clone()));
        lines.sort_by_key(|l| l.at_us);
        let first = lines.first()?;
        let mut trail = Self {
            idempotency_key: lines.iter().find_map(Line::key),
            trace_id: lines
                .iter()
                .find(|l| l.event() == "order.accepted")
                .unwrap_or(first)
                .text("trace_id")
                .or_else(|| lines.iter().find_map(|l| l.text("trace_id"))),
            message_ids: Vec::new(),
            state: State::Pending,
            reason: None,
            steps: Vec::new(),
        };
        let mut deliveries = Deliveries::default();
        let mut started = false;
        for line in &lines {
            let message_id = line.text("message_id");
            if let Some(id) = &message_id
                && !trail.message_ids.contains(id)
            {
                trail.message_ids.push(id.clone());
            }
            let count = line.count("receive_count");
            let forwarder = line.event().starts_with("delivery.");
            if forwarder && let Some(what) = deliveries.redriven(message_id.as_ref()) {
                trail.push(line, what);
            }
            let reason = line.text("reason");
            let what = match line.event() {
                "order.accepted" => {
                    trail.settle(State::Pending, None);
                    What::Accepted {
                        request_id: line.text("request_id"),
                        queue: line.text("queue"),
                        message_id,
                        trace_id: line.text("trace_id"),
                        span_id: line.text("span_id"),
                        parent_span_id: line.text("parent_span_id"),
                    }
                }
                "order.rejected" | "order.not_stored" => {
                    let rejected = line.event() == "order.rejected";
                    // A refusal ends the story only if nothing else started it.
                    if !started {
                        let (state, why) = if rejected {
                            (State::Rejected, line.text("code"))
                        } else {
                            (State::NotStored, line.text("error"))
                        };
                        trail.settle(state, why);
                    }
                    if rejected {
                        What::Rejected {
                            request_id: line.text("request_id"),
                            code: line.text("code"),
                            status: line.count("status"),
                        }
                    } else {
                        What::NotStored {
                            request_id: line.text("request_id"),
                            error: line.text("error"),
                        }
                    }
                }
                "delivery.attempt" => {
                    let outcome = line.text("outcome").unwrap_or_default();
                    let last_receive = line.fields.get("last_receive") == Some(&Value::Bool(true));
                    let step = What::Attempt {
                        message_id: message_id.clone(),
                        receive_count: count,
                        status: line.count("http.response.status_code"),
                        error_type: line.text("error.type"),
                        latency_ms: line.number("latency_ms"),
                        delay_s: line.number("delay_s"),
                        outcome: outcome.clone(),
                        reason: reason.clone(),
                        last_receive,
                        span_id: line.text("span_id"),
                        parent_span_id: line.text("parent_span_id"),
                    };
                    trail.push(line, step);
                    let (end, state, why) =
                        ending(&outcome, last_receive, message_id.clone(), count, reason);
                    if let Some(end) = end {
                        trail.push(line, end);
                    }
                    if state == State::DeadLettered {
                        deliveries.dead = Some(message_id);
                    }
                    trail.settle(state, why);
                    started = true;
                    continue;
                }
                "delivery.deferred" => What::Deferred {
                    message_id,
                    receive_count: count,
                    reason,
                },
                "delivery.held" => What::Held {
                    message_id,
                    receive_count: count,
                    reason,
                },
                _ => continue,
            };
            started |= !matches!(what, What::Rejected { .. } | What::NotStored { .. });
            trail.push(line, what);
        }
        Some(trail)
    }

    fn push(&mut self, line: &Line, what: What) {
        self.steps.push(Step {
            time: line.time.clone(),
            what,
        });
    }

    fn settle(&mut self, state: State, reason: Option<String>) {
        self.state = state;
        self.reason = reason;
    }

    /// The trail as text: a summary line, then one line per step.
    pub fn render(&self) -> String {
        let none = || "-".to_owned();
        let mut state = self.state.as_str().to_owned();
        if let Some(reason) = &self.reason {
            state += &format!(" ({reason})");
        }
        let mut out = format!(
            "key {}  trace {}  {state}\nmessages: {}\n",
            self.idempotency_key.clone().unwrap_or_else(none),
            self.trace_id.clone().unwrap_or_else(none),
            if self.message_ids.is_empty() {
                none()
            } else {
                self.message_ids.join(", ")
            },
        );
        let several = self.message_ids.len() > 1;
        for step in &self.steps {
            let (name, details) = step.what.describe(several);
            out += &format!("{}  {name:<13} {details}\n", step.time);
        }
        out
    }
}

impl What {
    /// The step's name and its details, as `render` shows them.
    fn describe(&self, several_messages: bool) -> (String, String) {
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        let request = |id: &Option<String>| id.as_ref().map(|r| format!(" (request {r})"));
        let message = |id: &Option<String>| match (several_messages, id) {
            (true, Some(id)) => format!("message {id}: "),
            _ => String::new(),
        };
        let of = |count: &Option<u32>| count.map_or_else(String::new, |c| format!(" #{c}"));
        match self {
            Self::Accepted {
                request_id,
                queue,
                message_id,
                ..
            } => (
                "accepted".into(),
                format!(
                    "into the {} queue as message {}{}",
                    opt(queue),
                    opt(message_id),
                    request(request_id).unwrap_or_default()
                ),
            ),
            Self::Rejected {
                request_id,
                code,
                status,
            } => (
                "rejected".into(),
                format!(
                    "{} {}{}",
                    status.map_or_else(|| "-".into(), |s| s.to_string()),
                    opt(code),
                    request(request_id).unwrap_or_default()
                ),
            ),
            Self::NotStored { request_id, error } => (
                "not stored".into(),
                format!(
                    "503: {}{}",
                    opt(error),
                    request(request_id).unwrap_or_default()
                ),
            ),
            Self::Attempt {
                message_id,
                receive_count,
                status,
                error_type,
                latency_ms,
                delay_s,
                outcome,
                reason,
                last_receive,
                ..
            } => {
                let answer = match (status, error_type) {
                    (Some(status), _) => format!("backend answered {status}"),
                    (None, Some(error)) => format!("failed: {error}"),
                    (None, None) => "no backend answer".into(),
                };
                let latency = latency_ms.map_or_else(String::new, |ms| format!(" in {ms:.1} ms"));
                let mut then = format!(" → {}", outcome.replace('_', " "));
                if let Some(delay) = delay_s {
                    then += &format!(" in {delay}s");
                }
                if *last_receive {
                    then += " (last receive)";
                }
                if let Some(reason) = reason {
                    then += &format!(": {reason}");
                }
                (
                    format!("attempt{}", of(receive_count)),
                    format!("{}{answer}{latency}{then}", message(message_id)),
                )
            }
            Self::Deferred {
                message_id,
                receive_count,
                reason,
            }
            | Self::Held {
                message_id,
                receive_count,
                reason,
            } => (
                format!(
                    "{}{}",
                    if matches!(self, Self::Held { .. }) {
                        "held"
                    } else {
                        "deferred"
                    },
                    of(receive_count)
                ),
                format!("{}{}", message(message_id), opt(reason)),
            ),
            Self::Delivered { message_id } => {
                ("delivered".into(), format!("message {}", opt(message_id)))
            }
            Self::DeadLettered {
                message_id,
                by: _,
                reason,
            } => (
                "dead-lettered".into(),
                format!("{}{reason}", message(message_id)),
            ),
            Self::Dropped { message_id, reason } | Self::Paused { message_id, reason } => (
                if matches!(self, Self::Dropped { .. }) {
                    "dropped"
                } else {
                    "paused"
                }
                .into(),
                format!("{}{}", message(message_id), opt(reason)),
            ),
            Self::Redriven {
                message_id,
                previous_message_id,
            } => (
                "redriven".into(),
                if message_id == previous_message_id {
                    format!("back from the DLQ, still message {}", opt(message_id))
                } else {
                    format!(
                        "back from the DLQ as message {} (was {})",
                        opt(message_id),
                        opt(previous_message_id)
                    )
                },
            ),
        }
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use serde_json::json;

    pub const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    /// A line as the functions write it, at `second` past a fixed minute, with `fields`.
    pub fn line(second: u32, event: &str, fields: Value) -> String {
        let mut value = json!({
            "timestamp": format!("2026-12-02T00:41:{second:02}.000123Z"),
            "level": "INFO",
            "message": "a sentence",
            "target": "storeforward_forwarder::handler",
            "event": event,
            "trace_id": TRACE,
            "span_id": "00f067aa0ba902b7",
        });
        if let (Value::Object(into), Value::Object(from)) = (&mut value, fields) {
            into.extend(from);
        }
        value.to_string()
    }

    pub fn accepted(second: u32, key: &str, message: &str) -> String {
        line(
            second,
            "order.accepted",
            json!({"idempotency_key": key, "message_id": message, "queue": "primary", "request_id": "req-1"}),
        )
    }

    pub fn attempt(second: u32, key: &str, message: &str, count: u32, more: Value) -> String {
        let mut fields = json!({
            "idempotency_key": key, "message_id": message, "receive_count": count,
            "latency_ms": 12.5, "http.request.method": "POST",
        });
        if let (Value::Object(into), Value::Object(from)) = (&mut fields, more) {
            into.extend(from);
        }
        line(second, "delivery.attempt", fields)
    }

    /// An attempt of `order-1`.
    fn tried(second: u32, message: &str, count: u32, more: Value) -> String {
        attempt(second, "order-1", message, count, more)
    }

    fn shows(trail: &Trail, wanted: &str) {
        let text = trail.render();
        assert!(text.contains(wanted), "{wanted:?} not in:\n{text}");
    }

    fn trail(raw: &[String]) -> Trail {
        let lines = raw.iter().filter_map(|r| Line::parse(r, 0)).collect();
        Trail::of(lines).expect("a trail")
    }

    fn names(trail: &Trail) -> Vec<String> {
        trail
            .steps
            .iter()
            .map(|s| match serde_json::to_value(s) {
                Ok(v) => v["step"].as_str().unwrap_or_default().to_owned(),
                Err(e) => panic!("{e}"),
            })
            .collect()
    }

    #[test]
    fn a_delivered_order() {
        let t = trail(&[
            accepted(1, "order-1", "m-1"),
            tried(
                2,
                "m-1",
                1,
                json!({"outcome": "delivered", "http.response.status_code": 200}),
            ),
        ]);
        assert_eq!(t.state, State::Delivered);
        assert_eq!(t.idempotency_key.as_deref(), Some("order-1"));
        assert_eq!(t.trace_id.as_deref(), Some(TRACE));
        assert_eq!(t.message_ids, ["m-1"]);
        assert_eq!(names(&t), ["accepted", "attempt", "delivered"]);
        let text = t.render();
        assert!(
            text.starts_with(&format!("key order-1  trace {TRACE}  delivered\n")),
            "{text}"
        );
        shows(
            &t,
            "2026-12-02T00:41:02.000123Z  attempt #1    backend answered 200 in 12.5 ms → delivered",
        );
        shows(
            &t,
            "accepted      into the primary queue as message m-1 (request req-1)",
        );
    }

    #[test]
    fn retries_show_their_delays_before_the_delivery() {
        let failed = |s, c, delay| {
            attempt(
                s,
                "order-1",
                "m-1",
                c,
                json!({"outcome": "retrying", "http.response.status_code": 503, "error.type": "503",
                       "delay_s": delay, "reason": "backend answered 503"}),
            )
        };
        let t = trail(&[
            accepted(1, "order-1", "m-1"),
            failed(2, 1, 2.0),
            failed(5, 2, 4.5),
            tried(
                10,
                "m-1",
                3,
                json!({"outcome": "delivered", "http.response.status_code": 200}),
            ),
        ]);
        assert_eq!(t.state, State::Delivered);
        assert_eq!(t.reason, None);
        shows(
            &t,
            "attempt #2    backend answered 503 in 12.5 ms → retrying in 4.5s: backend answered 503",
        );
        let Some(What::Attempt { delay_s, .. }) = t.steps.get(1).map(|s| &s.what) else {
            panic!("{t:?}")
        };
        assert_eq!(*delay_s, Some(2.0));
    }

    #[test]
    fn a_permanent_failure_is_dead_lettered_with_its_reason() {
        let t = trail(&[
            accepted(1, "order-1", "m-1"),
            tried(
                2,
                "m-1",
                1,
                json!({"outcome": "dead_lettered", "http.response.status_code": 422,
                       "error.type": "422", "reason": "backend answered 422"}),
            ),
        ]);
        assert_eq!(t.state, State::DeadLettered);
        assert_eq!(t.reason.as_deref(), Some("backend answered 422"));
        assert_eq!(names(&t), ["accepted", "attempt", "dead_lettered"]);
        assert!(matches!(
            t.steps[2].what,
            What::DeadLettered {
                by: DeadLetteredBy::Forwarder,
                ..
            }
        ));
    }

    #[test]
    fn the_redrive_policy_takes_it_after_the_last_receive() {
        let t = trail(&[
            accepted(1, "order-1", "m-1"),
            tried(
                2,
                "m-1",
                5,
                json!({"outcome": "retrying", "error.type": "timeout", "delay_s": 10.0,
                       "reason": "backend timed out", "last_receive": true}),
            ),
        ]);
        assert_eq!(t.state, State::DeadLettered);
        assert_eq!(
            t.reason.as_deref(),
            Some("moved to the DLQ by the queue's redrive policy after 5 receives")
        );
        assert!(matches!(
            t.steps[2].what,
            What::DeadLettered {
                by: DeadLetteredBy::RedrivePolicy,
                ..
            }
        ));
        shows(
            &t,
            "failed: timeout in 12.5 ms → retrying in 10s (last receive)",
        );
    }

    #[test]
    fn a_redriven_copy_is_delivered_under_its_new_message_id() {
        let t = trail(&[
            accepted(1, "order-1", "m-1"),
            tried(
                2,
                "m-1",
                1,
                json!({"outcome": "dead_lettered", "http.response.status_code": 422, "reason": "backend answered 422"}),
            ),
            tried(
                30,
                "m-2",
                1,
                json!({"outcome": "delivered", "http.response.status_code": 200}),
            ),
        ]);
        assert_eq!(t.state, State::Delivered);
        assert_eq!(t.message_ids, ["m-1", "m-2"]);
        assert_eq!(
            names(&t),
            [
                "accepted",
                "attempt",
                "dead_lettered",
                "redriven",
                "attempt",
                "delivered"
            ]
        );
        assert_eq!(
            t.steps[3].what,
            What::Redriven {
                message_id: Some("m-2".into()),
                previous_message_id: Some("m-1".into())
            }
        );
        shows(&t, "message m-2: backend answered 200");
    }

    #[test]
    fn a_redrive_that_keeps_the_message_id_is_a_redrive_whatever_its_receive_count() {
        // LocalStack's message move keeps the id and the count goes on past the policy's
        // receive that moved it; elsewhere the count may start again.
        for count in [1, 7] {
            let t = trail(&[
                tried(
                    2,
                    "m-1",
                    5,
                    json!({"outcome": "retrying", "last_receive": true, "error.type": "connection"}),
                ),
                tried(9, "m-1", count, json!({"outcome": "delivered"})),
            ]);
            assert_eq!(
                names(&t),
                [
                    "attempt",
                    "dead_lettered",
                    "redriven",
                    "attempt",
                    "delivered"
                ],
                "{count}"
            );
            assert_eq!(t.state, State::Delivered);
            shows(&t, "back from the DLQ, still message m-1");
        }
    }

    #[test]
    fn lines_are_put_in_time_order_and_repeats_shown_once() {
        let delivered = tried(3, "m-1", 1, json!({"outcome": "delivered"}));
        let t = trail(&[delivered.clone(), accepted(1, "order-1", "m-1"), delivered]);
        assert_eq!(names(&t), ["accepted", "attempt", "delivered"]);
        assert_eq!(t.state, State::Delivered);
    }

    #[test]
    fn other_lines_are_not_ours() {
        assert!(Line::parse("START RequestId: 1 Version: $LATEST", 0).is_none());
        assert!(Line::parse(r#"{"_aws":{"Timestamp":1},"Delivered":1}"#, 0).is_none());
        assert!(Line::parse(r#"{"message":"no event"}"#, 0).is_none());
        assert!(Line::parse("[1,2]", 0).is_none());
        // Without a timestamp of its own, CloudWatch's is used.
        let line = Line::parse(r#"{"event":"order.accepted"}"#, 1_000).expect("ours");
        assert_eq!(line.time, "1970-01-01T00:00:01.000000Z");
    }

    #[test]
    fn queries_match_whole_fields() {
        let line = Line::parse(&accepted(1, "order-1", "m-1"), 0).expect("ours");
        assert!(Query::Id("order-1".into()).matches(&line));
        assert!(Query::Id("m-1".into()).matches(&line));
        assert!(!Query::Id("order".into()).matches(&line));
        assert!(Query::TraceId(TRACE.into()).matches(&line));
        assert!(!Query::TraceId("req-1".into()).matches(&line));
    }

    #[test]
    fn a_rejection_and_a_503_end_the_story_only_alone() {
        let rejected = line(
            1,
            "order.rejected",
            json!({"code": "malformed_json", "status": 400, "request_id": "r-9"}),
        );
        let t = trail(std::slice::from_ref(&rejected));
        assert_eq!(
            (t.state, t.reason.as_deref()),
            (State::Rejected, Some("malformed_json"))
        );
        shows(&t, "rejected      400 malformed_json (request r-9)");
        let not_stored = line(
            1,
            "order.not_stored",
            json!({"idempotency_key": "order-1", "error": "queue unavailable"}),
        );
        let t = trail(&[not_stored, accepted(2, "order-1", "m-1")]);
        assert_eq!(t.state, State::Pending);
        assert_eq!(names(&t), ["not_stored", "accepted"]);
    }

    #[test]
    fn deferred_and_held_are_minor_steps_of_a_pending_order() {
        let t = trail(&[
            accepted(1, "order-1", "m-1"),
            line(
                2,
                "delivery.held",
                json!({"idempotency_key": "order-1", "message_id": "m-1", "receive_count": 1, "reason": "circuit open"}),
            ),
            line(
                3,
                "delivery.deferred",
                json!({"idempotency_key": "order-1", "message_id": "m-1", "receive_count": 2, "reason": "deadline"}),
            ),
        ]);
        assert_eq!(names(&t), ["accepted", "held", "deferred"]);
        assert_eq!(t.state, State::Pending);
        shows(&t, "held #1       circuit open");
    }

    #[test]
    fn the_json_document_has_explicit_fields() {
        let t = trail(&[
            line(
                1,
                "order.accepted",
                json!({"idempotency_key": "order-1", "message_id": "m-1", "queue": "failover",
                       "request_id": "req-1", "span_id": "a1a1a1a1a1a1a1a1",
                       "parent_span_id": "c0c0c0c0c0c0c0c0"}),
            ),
            tried(
                2,
                "m-1",
                1,
                json!({"outcome": "dead_lettered", "http.response.status_code": 422,
                       "error.type": "422", "reason": "backend answered 422",
                       "span_id": "b1b1b1b1b1b1b1b1", "parent_span_id": "a1a1a1a1a1a1a1a1"}),
            ),
            tried(
                9,
                "m-2",
                1,
                json!({"outcome": "delivered", "http.response.status_code": 200,
                       "span_id": "b2b2b2b2b2b2b2b2", "parent_span_id": "a1a1a1a1a1a1a1a1"}),
            ),
        ]);
        let value = serde_json::to_value(&t).expect("JSON");
        let (first, second, ninth) = (
            "2026-12-02T00:41:01.000123Z",
            "2026-12-02T00:41:02.000123Z",
            "2026-12-02T00:41:09.000123Z",
        );
        assert_eq!(
            value,
            json!({
                "idempotency_key": "order-1",
                "trace_id": TRACE,
                "message_ids": ["m-1", "m-2"],
                "state": "delivered",
                "reason": null,
                "steps": [
                    {"time": first, "step": "accepted", "request_id": "req-1", "queue": "failover",
                     "message_id": "m-1", "trace_id": TRACE, "span_id": "a1a1a1a1a1a1a1a1",
                     "parent_span_id": "c0c0c0c0c0c0c0c0"},
                    {"time": second, "step": "attempt", "message_id": "m-1", "receive_count": 1,
                     "status": 422, "error_type": "422", "latency_ms": 12.5, "delay_s": null,
                     "outcome": "dead_lettered", "reason": "backend answered 422",
                     "last_receive": false, "span_id": "b1b1b1b1b1b1b1b1",
                     "parent_span_id": "a1a1a1a1a1a1a1a1"},
                    {"time": second, "step": "dead_lettered", "message_id": "m-1",
                     "by": "forwarder", "reason": "backend answered 422"},
                    {"time": ninth, "step": "redriven", "message_id": "m-2",
                     "previous_message_id": "m-1"},
                    {"time": ninth, "step": "attempt", "message_id": "m-2", "receive_count": 1,
                     "status": 200, "error_type": null, "latency_ms": 12.5, "delay_s": null,
                     "outcome": "delivered", "reason": null, "last_receive": false,
                     "span_id": "b2b2b2b2b2b2b2b2", "parent_span_id": "a1a1a1a1a1a1a1a1"},
                    {"time": ninth, "step": "delivered", "message_id": "m-2"},
                ]
            })
        );
    }

    #[test]
    fn dropped_and_paused_end_it_with_their_reason() {
        let given_up = |outcome: &str| {
            trail(&[tried(
                1,
                "m-1",
                1,
                json!({"outcome": outcome, "http.response.status_code": 400, "reason": "backend answered 400"}),
            )])
        };
        let dropped = given_up("dropped");
        assert_eq!(dropped.state, State::Dropped);
        assert_eq!(names(&dropped), ["attempt", "dropped"]);
        let paused = given_up("paused");
        assert_eq!(paused.state, State::Paused);
        assert_eq!(paused.reason.as_deref(), Some("backend answered 400"));
        shows(&paused, "paused        backend answered 400");
    }
}
