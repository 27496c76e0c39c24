//! Delivering one batch of messages: bounded concurrency, FIFO stop-the-line, a deadline, panic
//! isolation and the circuit breaker, with one [`Outcome`] per message.
//!
//! The transport and the queue are capabilities ([`Backend`], [`Settle`]); the forwarder plugs in
//! reqwest and SQS, tests plug in the fakes from [`crate::fakes`].

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::{FutureExt, StreamExt, stream};
use tokio::time::Instant;
use tracing::{Instrument, Level, error, info, info_span, warn};

use crate::breaker::Breaker;
use crate::envelope::Envelope;
use crate::pacer::Pacer;
use crate::retry::{Attempt, RetrySchedule, StatusPolicy, Verdict};
use crate::trace::{Span, TraceContext};

/// A message received from the queue, ready to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: String,
    pub receipt_handle: String,
    pub body: String,
    pub envelope: Envelope,
    /// `ApproximateReceiveCount`: 1 on the first delivery attempt.
    pub receive_count: u32,
    /// The FIFO message group, if the queue is FIFO.
    pub group_id: Option<String>,
}

impl Message {
    /// This receive's attempt span: a child of the store's span (from the envelope), its id
    /// derived from the message id and the receive count.
    pub fn attempt_trace(&self) -> Span {
        Span::attempt(
            self.envelope.trace_context.as_ref(),
            &self.id,
            self.receive_count,
        )
    }

    /// The span every line about this receive of the message is written in; `trace` is its
    /// [`attempt_trace`](Self::attempt_trace).
    pub fn log_span(&self, trace: &Span) -> tracing::Span {
        info_span!(
            "message",
            message_id = %self.id,
            idempotency_key = %self.envelope.idempotency_key,
            receive_count = self.receive_count,
            trace_id = %trace.trace_id,
            span_id = %trace.span_id,
            parent_span_id = trace.parent_id.map(display),
        )
    }
}

/// Delivers a message to the backend, once.
pub trait Backend: Sync {
    /// `trace` is the context the request carries (`traceparent`, `tracestate`): that of this
    /// receive's attempt span, derived once per delivery by the caller.
    fn deliver(
        &self,
        message: &Message,
        trace: &TraceContext,
    ) -> impl Future<Output = Attempt> + Send;

    /// The HTTP method of a delivery, for the logs.
    fn method(&self) -> &str {
        "POST"
    }

    /// The backend's health check (`HEALTH_URL`), which a probe runs before it tries a ticket;
    /// `None` when there is none.
    fn health(&self) -> impl Future<Output = Option<Attempt>> + Send {
        std::future::ready(None)
    }
}

/// What the forwarder may do to the queue a message came from.
pub trait Settle: Sync {
    /// Make the message visible again after `delay` (`ChangeMessageVisibility`).
    fn retry_later(
        &self,
        message: &Message,
        delay: Duration,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
    /// Store the message, with `failure`, in the dead-letter queue.
    fn dead_letter(
        &self,
        message: &Message,
        failure: &Failure,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
    /// Move a copy of the message to the probe queue, visible after `delay`: the ticket a probe
    /// tries while the circuit is open. The original is deleted once this succeeds.
    fn park(
        &self,
        message: &Message,
        delay: Duration,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// A queue call that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QueueError(pub String);

/// Why a message is dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: String,
    pub status: Option<u16>,
    /// The message's receive count when it was given up.
    pub attempts: u32,
}

/// What happens to a message the backend can never accept (`FAILURE_ACTION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterPermanent {
    /// Send it to the dead-letter queue now; if that fails, leave it to the redrive policy.
    DeadLetter,
    /// No dead-letter queue to write to: report it failed so the redrive policy moves it.
    Redrive,
    /// Discard it (logged at error). Only ever by explicit configuration.
    Drop,
    /// Park it in the probe queue and pause delivery until an operator resumes it (the seed's
    /// "deactivate the processor"), also when its retries run out: nothing overtakes it.
    Pause,
}

/// How a batch is delivered.
#[derive(Debug, Clone)]
pub struct Policy {
    pub statuses: StatusPolicy,
    pub retry_schedule: RetrySchedule,
    /// Deliveries in flight at once (FIFO: message groups in flight at once).
    pub max_in_flight: usize,
    pub after_permanent: AfterPermanent,
    /// FIFO: deliver each group in order and stop a group at its first failure.
    pub ordered: bool,
    /// Time a delivery may need (request timeout plus a safety margin); none starts unless this
    /// much time is left before the deadline.
    pub attempt_budget: Duration,
    /// The queue's `maxReceiveCount`: with [`AfterPermanent::Pause`], a retryable failure on the
    /// last receive gives the message up (pausing) instead of leaving it to the redrive policy.
    pub max_receives: Option<u32>,
}

/// The fate of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The backend accepted it.
    Delivered,
    /// It can never succeed and is now in the dead-letter queue.
    DeadLettered { reason: String },
    /// It can never succeed and was discarded (`FAILURE_ACTION=drop`).
    Dropped { reason: String },
    /// It failed and comes back after `delay` (or the queue's visibility timeout when `None`).
    Retrying {
        reason: String,
        delay: Option<Duration>,
    },
    /// It was not attempted (deadline, or an earlier message of its FIFO group failed).
    Deferred { reason: &'static str },
    /// Something other than the backend failed (dead-lettering, a panic, a malformed record).
    Failed { reason: String },
    /// Its failure opened the circuit: it now waits in the probe queue as the probe's ticket.
    Parked { reason: String },
    /// Not attempted because the circuit is open; comes back after the probe interval.
    Held { reason: &'static str },
    /// Given up with `FAILURE_ACTION=pause`: parked as a ticket, and delivery paused for an
    /// operator.
    Stopped { reason: String },
}

impl Outcome {
    /// The outcome as the log lines name it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::DeadLettered { .. } => "dead_lettered",
            Self::Dropped { .. } => "dropped",
            Self::Retrying { .. } => "retrying",
            Self::Deferred { .. } => "deferred",
            Self::Failed { .. } => "failed",
            Self::Parked { .. } => "parked",
            Self::Held { .. } => "held",
            Self::Stopped { .. } => "paused",
        }
    }

    /// Why the message was not delivered.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Delivered => None,
            Self::DeadLettered { reason }
            | Self::Dropped { reason }
            | Self::Retrying { reason, .. }
            | Self::Failed { reason }
            | Self::Parked { reason }
            | Self::Stopped { reason } => Some(reason),
            Self::Deferred { reason } | Self::Held { reason } => Some(reason),
        }
    }

    /// Whether the message is finished with and may be deleted from its queue. Everything else
    /// is reported as a batch item failure and comes back.
    pub fn is_handled(&self) -> bool {
        matches!(
            self,
            Self::Delivered
                | Self::DeadLettered { .. }
                | Self::Dropped { .. }
                | Self::Parked { .. }
                | Self::Stopped { .. }
        )
    }
}

/// Counts of outcomes, for logs and the scheduled poll's answer.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tally {
    pub received: usize,
    pub delivered: usize,
    pub dead_lettered: usize,
    pub dropped: usize,
    pub retrying: usize,
    pub deferred: usize,
    pub failed: usize,
    pub parked: usize,
    pub held: usize,
    pub stopped: usize,
    /// Circuit events in this invocation: opened by it, closed by its probe, probes that failed.
    pub circuit_opened: usize,
    pub circuit_closed: usize,
    pub probes_failed: usize,
    /// 1 if this invocation found delivery paused (circuit open, or an operator's pause).
    pub delivery_paused: usize,
}

impl Tally {
    /// Counts one more message with `outcome`.
    pub fn add(&mut self, outcome: &Outcome) {
        self.received += 1;
        let counter = match outcome {
            Outcome::Delivered => &mut self.delivered,
            Outcome::DeadLettered { .. } => &mut self.dead_lettered,
            Outcome::Dropped { .. } => &mut self.dropped,
            Outcome::Retrying { .. } => &mut self.retrying,
            Outcome::Deferred { .. } => &mut self.deferred,
            Outcome::Failed { .. } => &mut self.failed,
            Outcome::Parked { .. } => &mut self.parked,
            Outcome::Held { .. } => &mut self.held,
            Outcome::Stopped { .. } => &mut self.stopped,
        };
        *counter += 1;
    }
}

impl Tally {
    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &Tally) {
        let Tally {
            received,
            delivered,
            dead_lettered,
            dropped,
            retrying,
            deferred,
            failed,
            parked,
            held,
            stopped,
            circuit_opened,
            circuit_closed,
            probes_failed,
            delivery_paused,
        } = *other;
        self.received += received;
        self.delivered += delivered;
        self.dead_lettered += dead_lettered;
        self.dropped += dropped;
        self.retrying += retrying;
        self.deferred += deferred;
        self.failed += failed;
        self.parked += parked;
        self.held += held;
        self.stopped += stopped;
        self.circuit_opened += circuit_opened;
        self.circuit_closed += circuit_closed;
        self.probes_failed += probes_failed;
        self.delivery_paused = self.delivery_paused.max(delivery_paused);
    }
}

impl<'a> FromIterator<&'a Outcome> for Tally {
    fn from_iter<I: IntoIterator<Item = &'a Outcome>>(outcomes: I) -> Self {
        let mut tally = Self::default();
        outcomes.into_iter().for_each(|o| tally.add(o));
        tally
    }
}

const DEFERRED_DEADLINE: &str = "not enough time left before the function's deadline";
const DEFERRED_GROUP: &str = "an earlier message of its FIFO group was not delivered";
const HELD: &str = "the circuit is open: the backend looks down";
/// How long a message given up with `FAILURE_ACTION=pause` waits in the probe queue when there is
/// no breaker to say (its probe interval).
const PAUSE_HOLD: Duration = Duration::from_secs(60);

/// Delivers `messages` and returns one outcome per message, in input order. With a `breaker`, a
/// run of retryable failures opens it: the failure that opened it is parked as the probe's
/// ticket and every delivery not yet started is held back untried.
pub async fn process<B: Backend, S: Settle>(
    messages: &[Message],
    backend: &B,
    settle: &S,
    policy: &Policy,
    deadline: Instant,
    pacer: Option<&Pacer>,
    breaker: Option<&Breaker>,
) -> Vec<Outcome> {
    let ctx = Ctx {
        backend,
        settle,
        policy,
        deadline,
        pacer,
        breaker,
    };
    let mut results: Vec<(usize, Outcome)> = stream::iter(lanes(messages, policy.ordered))
        .map(|lane| ctx.run_lane(messages, lane))
        .buffer_unordered(policy.max_in_flight.max(1))
        .flat_map(stream::iter)
        .collect()
        .await;
    results.sort_unstable_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, outcome)| outcome).collect()
}

/// Standard queues: every message is its own lane. FIFO: one lane per group, in arrival order.
fn lanes(messages: &[Message], ordered: bool) -> Vec<Vec<usize>> {
    if !ordered {
        return (0..messages.len()).map(|i| vec![i]).collect();
    }
    let mut lanes: Vec<(Option<&str>, Vec<usize>)> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let group = m.group_id.as_deref();
        match lanes.iter_mut().find(|(g, _)| *g == group) {
            Some((_, lane)) => lane.push(i),
            None => lanes.push((group, vec![i])),
        }
    }
    lanes.into_iter().map(|(_, lane)| lane).collect()
}

struct Ctx<'a, B, S> {
    backend: &'a B,
    settle: &'a S,
    policy: &'a Policy,
    deadline: Instant,
    pacer: Option<&'a Pacer>,
    breaker: Option<&'a Breaker>,
}

impl<B: Backend, S: Settle> Ctx<'_, B, S> {
    async fn run_lane(&self, messages: &[Message], lane: Vec<usize>) -> Vec<(usize, Outcome)> {
        let mut blocked = false;
        let mut out = Vec::with_capacity(lane.len());
        for i in lane {
            let message = &messages[i];
            let trace = message.attempt_trace();
            let span = message.log_span(&trace);
            let outcome = if blocked {
                Outcome::Deferred {
                    reason: DEFERRED_GROUP,
                }
            } else {
                self.run_isolated(message, &trace.context())
                    .instrument(span.clone())
                    .await
            };
            match &outcome {
                Outcome::Deferred { reason } => {
                    span.in_scope(|| info!(event = "delivery.deferred", reason, "deferred"));
                }
                Outcome::Held { reason } => span.in_scope(|| log_held(reason)),
                _ => {}
            }
            blocked |= self.policy.ordered && !outcome.is_handled()
                || matches!(outcome, Outcome::Stopped { .. });
            out.push((i, outcome));
        }
        out
    }

    /// One message, with a panic anywhere in its handling turned into that message's failure.
    async fn run_isolated(&self, message: &Message, trace: &TraceContext) -> Outcome {
        AssertUnwindSafe(self.run_one(message, trace))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                let settled = Settled {
                    outcome: Outcome::Failed {
                        reason: format!("panicked: {what}"),
                    },
                    level: Level::ERROR,
                    message: "handling the message panicked",
                };
                self.log_attempt(&settled, message, None);
                settled.outcome
            })
    }

    async fn run_one(&self, message: &Message, trace: &TraceContext) -> Outcome {
        let start = self.pacer.map_or_else(Instant::now, Pacer::reserve);
        if start + self.policy.attempt_budget > self.deadline {
            return Outcome::Deferred {
                reason: DEFERRED_DEADLINE,
            };
        }
        tokio::time::sleep_until(start).await;
        if let Some(breaker) = self.breaker.filter(|b| b.is_open()) {
            return Box::pin(self.hold(message, breaker.hold())).await;
        }
        let started = Instant::now();
        let attempt = self.backend.deliver(message, trace).await;
        let latency = started.elapsed();
        let settled = self.decide(message, &attempt).await;
        self.log_attempt(&settled, message, Some((&attempt, latency)));
        settled.outcome
    }

    /// What becomes of a message after `attempt`: parked if it opened the circuit, else settled.
    async fn decide(&self, message: &Message, attempt: &Attempt) -> Settled {
        let verdict = self.policy.statuses.classify(attempt);
        if let Some(breaker) = self.breaker
            && breaker.record(&verdict)
            && let Verdict::Retry { reason, .. } = &verdict
        {
            match Box::pin(self.settle.park(message, breaker.hold())).await {
                Ok(()) => {
                    return Settled {
                        outcome: Outcome::Parked {
                            reason: reason.clone(),
                        },
                        level: Level::WARN,
                        message: "circuit opened; the message is parked as the probe's ticket",
                    };
                }
                Err(e) => {
                    error!(error = %e, "could not park the message; the circuit stays closed");
                    breaker.close();
                }
            }
        }
        match verdict {
            Verdict::Delivered => Settled::DELIVERED,
            // A queue call (an SDK future of about 11 KiB) boxed, off the path that delivers: every
            // delivery in flight holds its future, which stays the size of the backend's call.
            verdict => Box::pin(self.settle(message, verdict)).await,
        }
    }

    /// The one `delivery.attempt` line of a receive that called the backend: `call` is the
    /// backend's answer and how long it took, `None` when the handling panicked.
    fn log_attempt(
        &self,
        settled: &Settled,
        message: &Message,
        call: Option<(&Attempt, Duration)>,
    ) {
        let outcome = &settled.outcome;
        let attempt = call.map(|(attempt, _)| attempt);
        let latency_ms = call.map(|(_, took)| took.as_secs_f64() * 1000.0);
        let status = match attempt {
            Some(Attempt::Response { status, .. }) => Some(*status),
            _ => None,
        };
        let error_type = attempt
            .filter(|_| *outcome != Outcome::Delivered)
            .map(error_type);
        let (delay_s, last_receive) = match outcome {
            Outcome::Retrying { delay, .. } => (
                delay.map(|d| d.as_secs_f64()),
                self.policy
                    .max_receives
                    .is_some_and(|max| message.receive_count >= max)
                    .then_some(true),
            ),
            _ => (None, None),
        };
        let resend_count = Some(message.receive_count.saturating_sub(1)).filter(|n| *n > 0);
        let method = self.backend.method();
        macro_rules! line {
            ($level:ident) => {
                $level!(
                    event = "delivery.attempt",
                    outcome = outcome.name(),
                    latency_ms,
                    http.response.status_code = status,
                    "error.type" = error_type.as_deref(),
                    http.request.method = method,
                    http.request.resend_count = resend_count,
                    delay_s,
                    reason = outcome.reason(),
                    last_receive,
                    "{}",
                    settled.message
                )
            };
        }
        match settled.level {
            Level::ERROR => line!(error),
            Level::WARN => line!(warn),
            _ => line!(info),
        }
    }

    /// Sends a message back untried, to come again after `delay`.
    async fn hold(&self, message: &Message, delay: Duration) -> Outcome {
        if let Err(e) = self.settle.retry_later(message, delay).await {
            warn!(error = %e, "could not change visibility; the queue's visibility timeout applies");
        }
        Outcome::Held { reason: HELD }
    }

    async fn settle(&self, message: &Message, verdict: Verdict) -> Settled {
        match verdict {
            Verdict::Delivered => Settled::DELIVERED,
            Verdict::Retry { reason, status, .. }
                if self.policy.after_permanent == AfterPermanent::Pause
                    && self
                        .policy
                        .max_receives
                        .is_some_and(|max| message.receive_count >= max) =>
            {
                let reason = format!("retries exhausted: {reason}");
                self.give_up(message, reason, status).await
            }
            Verdict::Retry {
                reason, not_before, ..
            } => {
                let delay = self.policy.retry_schedule.delay(
                    message.receive_count,
                    fastrand::f64(),
                    not_before,
                );
                let delay = match self.settle.retry_later(message, delay).await {
                    Ok(()) => Some(delay),
                    Err(e) => {
                        warn!(error = %e, "could not change visibility; the queue's visibility timeout applies");
                        None
                    }
                };
                Settled {
                    outcome: Outcome::Retrying { reason, delay },
                    level: Level::WARN,
                    message: "delivery failed, will retry",
                }
            }
            Verdict::Permanent { reason, status } => self.give_up(message, reason, status).await,
        }
    }

    async fn give_up(&self, message: &Message, reason: String, status: Option<u16>) -> Settled {
        let (outcome, level, message_text) = match self.policy.after_permanent {
            AfterPermanent::DeadLetter => {
                let failure = Failure {
                    reason: reason.clone(),
                    status,
                    attempts: message.receive_count,
                };
                match self.settle.dead_letter(message, &failure).await {
                    Ok(()) => (
                        Outcome::DeadLettered { reason },
                        Level::WARN,
                        "permanent failure, moved to the dead-letter queue",
                    ),
                    Err(e) => (
                        Outcome::Failed {
                            reason: format!("{reason}; dead-lettering failed: {e}"),
                        },
                        Level::ERROR,
                        "permanent failure, and writing to the dead-letter queue failed; left to the redrive policy",
                    ),
                }
            }
            AfterPermanent::Redrive => (
                Outcome::Failed { reason },
                Level::WARN,
                "permanent failure, no dead-letter queue configured; left to the redrive policy",
            ),
            AfterPermanent::Drop => (
                Outcome::Dropped { reason },
                Level::ERROR,
                "permanent failure, message DROPPED (FAILURE_ACTION=drop)",
            ),
            AfterPermanent::Pause => {
                let hold = self.breaker.map_or(PAUSE_HOLD, Breaker::hold);
                match self.settle.park(message, hold).await {
                    Ok(()) => {
                        if let Some(breaker) = self.breaker {
                            breaker.force_open();
                        }
                        (
                            Outcome::Stopped { reason },
                            Level::ERROR,
                            "giving up on the message: delivery PAUSED until an operator resumes it (FAILURE_ACTION=pause)",
                        )
                    }
                    Err(e) => (
                        Outcome::Failed {
                            reason: format!("{reason}; parking failed: {e}"),
                        },
                        Level::ERROR,
                        "giving up on the message, and parking it failed; left to the redrive policy",
                    ),
                }
            }
        };
        Settled {
            outcome,
            level,
            message: message_text,
        }
    }
}

/// How a receive that called the backend ended, and how its `delivery.attempt` line says it.
struct Settled {
    outcome: Outcome,
    level: Level,
    /// The line's human message.
    message: &'static str,
}

impl Settled {
    const DELIVERED: Settled = Settled {
        outcome: Outcome::Delivered,
        level: Level::INFO,
        message: "delivered",
    };
}

/// `error.type` of a failed attempt (OpenTelemetry semantic conventions): the status of an
/// answer, else how the request failed.
fn error_type(attempt: &Attempt) -> String {
    match attempt {
        Attempt::Response { status, .. } => status.to_string(),
        Attempt::Timeout => "timeout".into(),
        Attempt::Connection(_) => "connection".into(),
        Attempt::Other(_) => "other".into(),
        Attempt::NoCredentials { failure, .. } => format!("credentials_{}", failure.as_str()),
    }
}

/// The `delivery.held` line of a message not attempted because delivery is held back.
pub(crate) fn log_held(reason: &str) {
    info!(event = "delivery.held", reason, "held");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{FakeQueue, ScriptedBackend, message, policy};
    use crate::logging::capture::Lines;
    use crate::trace::TraceContext;

    fn ok(status: u16) -> Attempt {
        Attempt::Response {
            status,
            retry_after: None,
        }
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(900)
    }

    /// The outcome of message `m1` alone, delivered with the default policy.
    async fn deliver_one(backend: &ScriptedBackend, queue: &FakeQueue) -> Outcome {
        let out = process(
            &[message("m1", None)],
            backend,
            queue,
            &policy(),
            far(),
            None,
            None,
        )
        .await;
        out.into_iter().next().unwrap()
    }

    #[tokio::test]
    async fn one_bad_message_does_not_fail_its_neighbours() {
        let backend = ScriptedBackend::answering(ok(200))
            .with("m2", [ok(503)])
            .with("m3", [ok(404)]);
        let queue = FakeQueue::default();
        let msgs = [
            message("m1", None),
            message("m2", None),
            message("m3", None),
            message("m4", None),
        ];
        let out = process(&msgs, &backend, &queue, &policy(), far(), None, None).await;

        assert_eq!(out[0], Outcome::Delivered);
        assert!(matches!(&out[1], Outcome::Retrying { delay: Some(_), .. }));
        assert_eq!(
            out[2],
            Outcome::DeadLettered {
                reason: "backend answered 404".into()
            }
        );
        assert_eq!(out[3], Outcome::Delivered);
        assert_eq!(queue.visibility_changes().len(), 1);
        let dead = queue.dead_letters();
        assert_eq!(dead.len(), 1);
        assert_eq!(
            (dead[0].0.as_str(), dead[0].1.status, dead[0].1.attempts),
            ("m3", Some(404), 1)
        );
        assert_eq!(
            backend.calls().len(),
            4,
            "each message attempted exactly once"
        );
    }

    #[tokio::test]
    async fn retry_delay_follows_the_schedule_and_respects_retry_after() {
        let backend = ScriptedBackend::answering(Attempt::Response {
            status: 429,
            retry_after: Some(Duration::from_secs(120)),
        });
        let queue = FakeQueue::default();
        let mut m = message("m1", None);
        m.receive_count = 3;
        let out = process(&[m], &backend, &queue, &policy(), far(), None, None).await;
        assert!(
            matches!(&out[0], Outcome::Retrying { delay: Some(d), .. } if *d == Duration::from_secs(120))
        );
        assert_eq!(
            queue.visibility_changes(),
            [("m1".to_string(), Duration::from_secs(120))]
        );

        let backend = ScriptedBackend::answering(ok(500));
        let queue = FakeQueue::default();
        let mut m = message("m2", None);
        m.receive_count = 3;
        process(&[m], &backend, &queue, &policy(), far(), None, None).await;
        let (_, delay) = queue.visibility_changes()[0].clone();
        assert!(
            (Duration::from_secs(30)..=Duration::from_secs(60)).contains(&delay),
            "the third step (60 s) with equal jitter: {delay:?}"
        );
    }

    #[tokio::test]
    async fn a_failed_visibility_change_still_reports_the_message_for_retry() {
        let backend = ScriptedBackend::answering(ok(500));
        let queue = FakeQueue::default().failing_visibility();
        let out = deliver_one(&backend, &queue).await;
        assert!(matches!(&out, Outcome::Retrying { delay: None, .. }));
        assert!(!out.is_handled());
    }

    #[tokio::test]
    async fn permanent_failures_follow_the_failure_action() {
        let backend = ScriptedBackend::answering(ok(400));
        let msgs = [message("m1", None)];

        let broken_dlq = FakeQueue::default().failing_dead_letters();
        let out = process(&msgs, &backend, &broken_dlq, &policy(), far(), None, None).await;
        assert!(
            matches!(&out[0], Outcome::Failed { reason } if reason.contains("dead-lettering failed"))
        );

        let queue = FakeQueue::default();
        let redrive = Policy {
            after_permanent: AfterPermanent::Redrive,
            ..policy()
        };
        let out = process(&msgs, &backend, &queue, &redrive, far(), None, None).await;
        assert!(matches!(&out[0], Outcome::Failed { .. }));
        assert!(queue.dead_letters().is_empty());

        let drop = Policy {
            after_permanent: AfterPermanent::Drop,
            ..policy()
        };
        let out = process(&msgs, &backend, &queue, &drop, far(), None, None).await;
        assert!(matches!(&out[0], Outcome::Dropped { .. }) && out[0].is_handled());
        assert!(queue.dead_letters().is_empty());
    }

    #[tokio::test]
    async fn a_panic_fails_only_its_own_message() {
        let backend = ScriptedBackend::answering(ok(200)).panicking_on("m2");
        let queue = FakeQueue::default();
        let msgs = [
            message("m1", None),
            message("m2", None),
            message("m3", None),
        ];
        let out = process(&msgs, &backend, &queue, &policy(), far(), None, None).await;
        assert_eq!(out[0], Outcome::Delivered);
        assert!(matches!(&out[1], Outcome::Failed { reason } if reason.contains("panicked")));
        assert_eq!(out[2], Outcome::Delivered);
    }

    /// A queue whose every call holds 16 KiB across an await, as an SDK call's future holds
    /// kilobytes.
    struct HeavyQueue;

    async fn heavy_call() -> Result<(), QueueError> {
        let state = [1u8; 16 * 1024];
        tokio::task::yield_now().await;
        std::hint::black_box(&state);
        Ok(())
    }

    impl Settle for HeavyQueue {
        async fn retry_later(&self, _: &Message, _: Duration) -> Result<(), QueueError> {
            heavy_call().await
        }
        async fn dead_letter(&self, _: &Message, _: &Failure) -> Result<(), QueueError> {
            heavy_call().await
        }
        async fn park(&self, _: &Message, _: Duration) -> Result<(), QueueError> {
            heavy_call().await
        }
    }

    /// Every delivery in flight holds its future (100 of them at the default `MAX_IN_FLIGHT`
    /// of a 1,000-record batch): the queue calls that settle a failure are boxed, so it stays
    /// the size of the backend's call, not the queue's.
    #[tokio::test]
    async fn a_delivery_in_flight_does_not_carry_the_queue_calls_future() {
        let backend = ScriptedBackend::answering(ok(503));
        let breaker = Breaker::new(1, Duration::from_secs(60));
        let ctx = Ctx {
            backend: &backend,
            settle: &HeavyQueue,
            policy: &policy(),
            deadline: far(),
            pacer: None,
            breaker: Some(&breaker),
        };
        let messages = [message("m1", None)];
        let lane = ctx.run_lane(&messages, vec![0]);
        let size = std::mem::size_of_val(&lane);
        assert!(size < 4 * 1024, "a lane's future is {size} bytes");
        // It still settles through the queue: the failure opened the breaker, which parked it.
        assert!(matches!(lane.await[..], [(0, Outcome::Parked { .. })]));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_is_bounded_by_max_in_flight() {
        let backend = ScriptedBackend::answering(ok(200)).taking(Duration::from_millis(100));
        let queue = FakeQueue::default();
        let msgs: Vec<Message> = (0..25).map(|i| message(&format!("m{i}"), None)).collect();
        let limited = Policy {
            max_in_flight: 4,
            ..policy()
        };
        let t0 = Instant::now();
        let out = process(&msgs, &backend, &queue, &limited, far(), None, None).await;
        assert!(out.iter().all(|o| *o == Outcome::Delivered));
        assert_eq!(backend.peak_in_flight(), 4);
        assert_eq!(
            Instant::now() - t0,
            Duration::from_millis(700),
            "ceil(25/4) rounds of 100 ms"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_starts_that_cannot_finish_before_the_deadline() {
        let backend = ScriptedBackend::answering(ok(200)).taking(Duration::from_secs(4));
        let queue = FakeQueue::default();
        let msgs: Vec<Message> = (0..4).map(|i| message(&format!("m{i}"), None)).collect();
        let sequential = Policy {
            max_in_flight: 1,
            attempt_budget: Duration::from_secs(5),
            ..policy()
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let out = process(&msgs, &backend, &queue, &sequential, deadline, None, None).await;
        // Starts at 0 s and 4 s fit (4+5 ≤ 10); the one at 8 s would end past the deadline.
        assert_eq!(out[..2], [Outcome::Delivered, Outcome::Delivered]);
        for o in &out[2..] {
            assert_eq!(
                *o,
                Outcome::Deferred {
                    reason: DEFERRED_DEADLINE
                }
            );
            assert!(!o.is_handled());
        }
        assert_eq!(backend.calls().len(), 2);
        assert!(Instant::now() <= deadline);
    }

    #[tokio::test]
    async fn fifo_groups_stop_at_the_first_failure_and_keep_their_order() {
        let backend = ScriptedBackend::answering(ok(200)).with("a2", [ok(503)]);
        let queue = FakeQueue::default();
        let msgs = [
            message("a1", Some("A")),
            message("b1", Some("B")),
            message("a2", Some("A")),
            message("b2", Some("B")),
            message("a3", Some("A")),
            message("b3", Some("B")),
        ];
        let fifo = Policy {
            ordered: true,
            ..policy()
        };
        let out = process(&msgs, &backend, &queue, &fifo, far(), None, None).await;
        assert_eq!(out[0], Outcome::Delivered);
        assert!(matches!(out[2], Outcome::Retrying { .. }));
        assert_eq!(
            out[4],
            Outcome::Deferred {
                reason: DEFERRED_GROUP
            }
        );
        assert!(
            [&out[1], &out[3], &out[5]]
                .iter()
                .all(|o| **o == Outcome::Delivered)
        );

        let calls = backend.calls();
        assert!(
            !calls.contains(&"a3".to_string()),
            "a3 must not be delivered after a2 failed"
        );
        let order_of = |g: char| {
            calls
                .iter()
                .filter(|c| c.starts_with(g))
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(order_of('a'), ["a1", "a2"]);
        assert_eq!(order_of('b'), ["b1", "b2", "b3"]);
    }

    #[tokio::test]
    async fn a_dead_lettered_fifo_message_does_not_block_its_group() {
        let backend = ScriptedBackend::answering(ok(200)).with("a1", [ok(422)]);
        let queue = FakeQueue::default();
        let msgs = [message("a1", Some("A")), message("a2", Some("A"))];
        let fifo = Policy {
            ordered: true,
            ..policy()
        };
        let out = process(&msgs, &backend, &queue, &fifo, far(), None, None).await;
        assert!(matches!(out[0], Outcome::DeadLettered { .. }));
        assert_eq!(out[1], Outcome::Delivered);
    }

    #[tokio::test]
    async fn each_attempt_writes_one_line_with_its_outcome_and_trace() {
        let lines = Lines::capture();
        let backend = ScriptedBackend::answering(ok(200))
            .with("m2", [ok(503)])
            .with("m3", [ok(404)])
            .with("m4", [Attempt::Timeout]);
        let queue = FakeQueue::default();
        let mut msgs = [
            message("m1", None),
            message("m2", None),
            message("m3", None),
            message("m4", None),
        ];
        msgs[0].envelope.trace_context = TraceContext::from_headers(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            None,
        );
        msgs[1].receive_count = 3;
        let last_is_third = Policy {
            max_receives: Some(3),
            ..policy()
        };
        process(&msgs, &backend, &queue, &last_is_third, far(), None, None).await;

        let attempts = lines.events("delivery.attempt");
        assert_eq!(attempts.len(), 4, "one line per attempt");
        let line = |id: &str| {
            attempts
                .iter()
                .find(|l| l["message_id"] == id)
                .unwrap()
                .as_object()
                .unwrap()
                .clone()
        };
        let delivered = line("m1");
        let trace = msgs[0].attempt_trace();
        assert_eq!(
            (
                delivered["outcome"].as_str(),
                delivered["level"].as_str(),
                delivered["message"].as_str()
            ),
            (Some("delivered"), Some("INFO"), Some("delivered"))
        );
        assert_eq!(delivered["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(delivered["parent_span_id"], "00f067aa0ba902b7");
        assert_eq!(delivered["span_id"], trace.span_id.to_string());
        assert_eq!(delivered["idempotency_key"], "key-m1");
        assert_eq!(delivered["http.response.status_code"], 200);
        assert_eq!(delivered["http.request.method"], "POST");
        assert!(delivered["latency_ms"].is_f64());
        // The backend was given the context of the span the line names, for each message.
        for (id, sent) in backend.calls().iter().zip(backend.traces()) {
            let m = msgs.iter().find(|m| &m.id == id).unwrap();
            assert_eq!(sent, m.attempt_trace().context(), "{id}");
        }
        assert_eq!(backend.traces().len(), 4);
        for absent in [
            "error.type",
            "reason",
            "delay_s",
            "last_receive",
            "http.request.resend_count",
        ] {
            assert!(!delivered.contains_key(absent), "{absent}");
        }

        let retrying = line("m2");
        assert_eq!(
            (retrying["outcome"].as_str(), retrying["level"].as_str()),
            (Some("retrying"), Some("WARN"))
        );
        assert_eq!(retrying["error.type"], "503");
        assert_eq!(retrying["reason"], "backend answered 503");
        assert_eq!(retrying["http.request.resend_count"], 2);
        assert_eq!(retrying["receive_count"], 3);
        assert_eq!(retrying["last_receive"], true);
        assert!(retrying["delay_s"].as_f64().is_some_and(|d| d > 0.0));
        assert!(
            !retrying.contains_key("parent_span_id"),
            "no stored context"
        );

        let dead = line("m3");
        assert_eq!(
            (dead["outcome"].as_str(), dead["error.type"].as_str()),
            (Some("dead_lettered"), Some("404"))
        );
        let timeout = line("m4");
        assert_eq!(timeout["error.type"], "timeout");
        assert!(!timeout.contains_key("http.response.status_code"));
        assert!(
            !timeout.contains_key("last_receive"),
            "not its last receive"
        );

        for l in lines.parsed() {
            assert!(!l.to_string().contains("\"order\""), "no payload: {l}");
        }
    }

    #[tokio::test]
    async fn a_panic_is_its_messages_one_failed_attempt_line() {
        let lines = Lines::capture();
        let backend = ScriptedBackend::answering(ok(200)).panicking_on("m1");
        let queue = FakeQueue::default();
        deliver_one(&backend, &queue).await;
        let attempts = lines.events("delivery.attempt");
        assert_eq!(attempts.len(), 1);
        assert_eq!(
            (
                attempts[0]["outcome"].as_str(),
                attempts[0]["level"].as_str()
            ),
            (Some("failed"), Some("ERROR"))
        );
        assert!(
            attempts[0]["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("panicked: scripted panic"))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn deferred_and_held_messages_write_their_own_lines_and_no_attempt() {
        let lines = Lines::capture();
        let backend = ScriptedBackend::answering(ok(200));
        let queue = FakeQueue::default();
        let soon = Instant::now() + Duration::from_secs(1);
        process(
            &[message("m1", None)],
            &backend,
            &queue,
            &policy(),
            soon,
            None,
            None,
        )
        .await;
        let open = Breaker::new(1, Duration::from_secs(30));
        open.force_open();
        process(
            &[message("m2", None)],
            &backend,
            &queue,
            &policy(),
            far(),
            None,
            Some(&open),
        )
        .await;
        assert!(lines.events("delivery.attempt").is_empty());
        let deferred = lines.events("delivery.deferred");
        let held = lines.events("delivery.held");
        assert_eq!((deferred.len(), held.len()), (1, 1));
        assert_eq!(
            (
                deferred[0]["message_id"].as_str(),
                deferred[0]["reason"].as_str()
            ),
            (Some("m1"), Some(DEFERRED_DEADLINE))
        );
        assert_eq!(
            (held[0]["message_id"].as_str(), held[0]["reason"].as_str()),
            (Some("m2"), Some(HELD))
        );
        assert!(held[0]["trace_id"].as_str().is_some_and(|t| t.len() == 32));
    }

    #[tokio::test(start_paused = true)]
    async fn the_pacer_spaces_delivery_starts() {
        let backend = ScriptedBackend::answering(ok(200));
        let queue = FakeQueue::default();
        let msgs: Vec<Message> = (0..10).map(|i| message(&format!("m{i}"), None)).collect();
        let pacer = Pacer::per_second(20);
        let t0 = Instant::now();
        process(
            &msgs,
            &backend,
            &queue,
            &policy(),
            far(),
            Some(&pacer),
            None,
        )
        .await;
        assert_eq!(
            Instant::now() - t0,
            Duration::from_millis(450),
            "10 starts at 50 ms spacing"
        );
    }
}
