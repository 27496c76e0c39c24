//! The circuit breaker: pause delivery while the backend is down instead of spending every
//! message's receives on it, probe it on a schedule, and resume on the first success.
//!
//! - **Closed**: [`Breaker::record`] counts retryable failures in a row, with no success (and no
//!   permanent rejection, which shows the backend answering) between them. The one that reaches
//!   the threshold opens the breaker: [`process`] parks that message in the probe queue as the
//!   probe's *ticket* and holds back every delivery not yet started, untried, for the probe
//!   interval. The forwarder then calls [`open_circuit`], which stops consumption (the event source
//!   mapping is disabled) and records why.
//! - **Open**: nothing is consumed. The ticket comes back after the probe interval and
//!   [`probe`] tries it (and any other tickets): a failure keeps the circuit open until the next
//!   one, success closes it and consumption resumes.
//! - **Paused** by an operator: like open, but only an operator resumes it; a probe never does.
//!
//! The state lives where the probe and `sfctl` can read it ([`Switch`]); the in-memory
//! [`Breaker`] only counts this instance's failures.

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::batch::{
    Backend, Failure, Message, Outcome, Policy, QueueError, Settle, log_held, process,
};
use crate::poll::Source;
use crate::retry::Verdict;

/// Counts one instance's retryable failures in a row and opens at a threshold.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    hold: Duration,
    run: AtomicU32,
    opened_at: Mutex<Option<Instant>>,
}

impl Breaker {
    /// A breaker that opens after `threshold` retryable failures in a row (0: never) and holds
    /// messages back for `hold`, the probe interval.
    pub fn new(threshold: u32, hold: Duration) -> Self {
        Self {
            threshold,
            hold,
            run: AtomicU32::new(0),
            opened_at: Mutex::new(None),
        }
    }

    /// How long held messages and new tickets wait: the probe interval.
    pub fn hold(&self) -> Duration {
        self.hold
    }

    /// Whether this instance opened the breaker and has not closed it since.
    pub fn is_open(&self) -> bool {
        self.opened().is_some()
    }

    /// Counts one attempt. Returns `true` for exactly the failure that opens the breaker.
    pub fn record(&self, verdict: &Verdict) -> bool {
        if !matches!(verdict, Verdict::Retry { .. }) {
            self.run.store(0, Ordering::SeqCst);
            return false;
        }
        let run = self.run.fetch_add(1, Ordering::SeqCst) + 1;
        if self.threshold == 0 || run < self.threshold {
            return false;
        }
        let mut opened = self.opened_at();
        let opens = opened.is_none();
        if opens {
            *opened = Some(Instant::now());
        }
        opens
    }

    /// Opens the breaker whatever the run: a message was given up with `FAILURE_ACTION=pause`.
    pub fn force_open(&self) {
        self.opened_at().get_or_insert_with(Instant::now);
    }

    /// Closes the breaker and forgets the run.
    pub fn close(&self) {
        *self.opened_at() = None;
        self.run.store(0, Ordering::SeqCst);
    }

    /// Closes a breaker opened more than one probe interval ago. A batch from the event source
    /// mapping after that means a probe resumed consumption (no ticket comes back sooner); one
    /// within it arrived while the mapping was still being disabled, and is held.
    pub fn expire(&self) {
        if self.opened().is_some_and(|at| at.elapsed() >= self.hold) {
            self.close();
        }
    }

    fn opened(&self) -> Option<Instant> {
        *self.opened_at()
    }

    fn opened_at(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.opened_at
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Whether the forwarder delivers, as the probe and `sfctl` read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum DeliveryState {
    /// Consuming and delivering.
    Delivering,
    /// An operator paused delivery; only an operator resumes it.
    Paused {
        /// Who paused it (an IAM principal or a user name).
        by: String,
        /// When, in milliseconds since the Unix epoch.
        since_ms: u64,
        reason: String,
    },
    /// The breaker opened: the backend looked down.
    Open {
        since_ms: u64,
        /// The failure that opened it.
        reason: String,
        /// When the last probe ran, and how it failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_probe_ms: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_probe: Option<String>,
        /// When the next probe is due.
        next_probe_ms: u64,
    },
}

impl DeliveryState {
    /// The state as stored; an absent or unreadable record means delivering.
    pub fn parse(text: &str) -> Result<Self, SwitchError> {
        serde_json::from_str(text)
            .map_err(|e| SwitchError(format!("unreadable delivery state {text:?}: {e}")))
    }

    /// The state as stored.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| r#"{"state":"delivering"}"#.into())
    }
}

/// A call to the state store or the event source mapping that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SwitchError(pub String);

/// Where the delivery state is kept, and the consumption it controls.
pub trait Switch: Sync {
    /// The recorded state.
    fn read(&self) -> impl Future<Output = Result<DeliveryState, SwitchError>> + Send;
    /// Records `state`.
    fn write(&self, state: &DeliveryState) -> impl Future<Output = Result<(), SwitchError>> + Send;
    /// Starts or stops consuming (the event source mappings; nothing for a scheduled poll, which
    /// reads the state on every tick).
    fn consume(&self, on: bool) -> impl Future<Output = Result<(), SwitchError>> + Send;
}

/// Stops consumption and records the open circuit, once a message is parked. Idempotent: many
/// instances may open it at once; the first opening time is kept, and an operator's pause is
/// left as it is.
pub async fn open_circuit<S: Switch>(
    switch: &S,
    reason: &str,
    now_ms: u64,
    interval: Duration,
) -> Result<(), SwitchError> {
    switch.consume(false).await?;
    let since_ms = match switch.read().await {
        Ok(DeliveryState::Paused { .. }) => return Ok(()),
        Ok(DeliveryState::Open { since_ms, .. }) => since_ms,
        Ok(DeliveryState::Delivering) | Err(_) => now_ms,
    };
    warn!(%reason, "circuit open: delivery paused until a probe succeeds");
    switch
        .write(&DeliveryState::Open {
            since_ms,
            reason: reason.to_owned(),
            last_probe_ms: None,
            last_probe: None,
            next_probe_ms: now_ms + interval.as_millis() as u64,
        })
        .await
}

/// Pauses delivery for an operator: records who, when and why first, so that a probe running
/// now sees it, then stops consumption. Only an operator resumes it.
pub async fn pause<S: Switch>(
    switch: &S,
    by: &str,
    reason: &str,
    now_ms: u64,
) -> Result<(), SwitchError> {
    warn!(%by, %reason, "delivery paused until an operator resumes it");
    switch
        .write(&DeliveryState::Paused {
            by: by.to_owned(),
            since_ms: now_ms,
            reason: reason.to_owned(),
        })
        .await?;
    switch.consume(false).await
}

/// Resumes consumption and records delivering, unless an operator paused it (then `Ok(false)`).
/// A pause that lands while resuming wins: consumption is stopped again and its record kept.
pub async fn close_circuit<S: Switch>(switch: &S) -> Result<bool, SwitchError> {
    let paused = |state: &DeliveryState| matches!(state, DeliveryState::Paused { .. });
    if paused(&switch.read().await?) {
        return Ok(false);
    }
    switch.consume(true).await?;
    if paused(&switch.read().await?) {
        switch.consume(false).await?;
        return Ok(false);
    }
    switch.write(&DeliveryState::Delivering).await?;
    info!("circuit closed: delivery resumed");
    Ok(true)
}

/// How a probe ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeResult {
    /// No probe: there was nothing to try.
    Skipped,
    /// No probe: an operator paused delivery; the tickets wait.
    Paused,
    /// Every ticket was delivered (or rejected for good); the circuit is closed.
    Closed,
    /// Delivery was not paused and the tickets went through.
    Delivered,
    /// A ticket failed again; the circuit stays open.
    Failed { reason: String },
    /// These tickets were delivered, but others parked at about the same time are still on
    /// their way; the last one's probe resumes delivery, so that no FIFO group's later orders
    /// overtake its parked one.
    Waiting { others: usize },
}

const PAUSED: &str = "delivery is paused by an operator";
const UNHEALTHY: &str = "the backend's health check failed";
const STILL_OPEN: &str = "closing the circuit failed; the ticket stays for the next probe";

/// Tries the tickets parked in the probe queue, in order, unless an operator paused delivery.
/// Tickets that fail come back after `interval` (the next probe). When all are delivered and the
/// circuit was open, it is closed; should that fail, one delivered ticket is kept, so that an
/// open circuit always has a ticket to probe with.
#[allow(clippy::too_many_arguments)]
pub async fn probe<B: Backend, Q: Source, S: Switch>(
    tickets: &[Message],
    backend: &B,
    queue: &Q,
    switch: &S,
    policy: &Policy,
    deadline: Instant,
    interval: Duration,
    now_ms: u64,
) -> (Vec<Outcome>, ProbeResult) {
    let state = switch.read().await;
    if let Ok(DeliveryState::Paused { .. }) = &state {
        let held = hold(tickets, queue, interval, PAUSED).await;
        return (held, ProbeResult::Paused);
    }
    if tickets.is_empty() {
        return (Vec::new(), ProbeResult::Skipped);
    }
    let unhealthy = match backend.health().await.map(|a| policy.statuses.classify(&a)) {
        Some(Verdict::Retry { reason, .. } | Verdict::Permanent { reason, .. }) => {
            Some(format!("health check: {reason}"))
        }
        Some(Verdict::Delivered) | None => None,
    };
    let mut outcomes = match unhealthy {
        Some(_) => hold(tickets, queue, interval, UNHEALTHY).await,
        None => {
            let every = Every(queue, interval);
            process(tickets, backend, &every, policy, deadline, None, None).await
        }
    };
    if let Some(reason) = unhealthy.or_else(|| outcomes.iter().find_map(failure_reason)) {
        warn!(%reason, "probe failed; the circuit stays open");
        record_probe(switch, &state, &reason, now_ms, interval).await;
        return (outcomes, ProbeResult::Failed { reason });
    }
    if !matches!(state, Ok(DeliveryState::Open { .. }) | Err(_)) {
        return (outcomes, ProbeResult::Delivered);
    }
    // The tickets in hand are still in the queue's count until the probe's answer deletes them.
    let others = queue
        .pending()
        .await
        .map_or(0, |n| n.saturating_sub(tickets.len()));
    if others > 0 {
        let waiting =
            format!("delivered; waiting for {others} more parked order(s) before resuming");
        info!(others, "{waiting}");
        record_probe(switch, &state, &waiting, now_ms, interval).await;
        return (outcomes, ProbeResult::Waiting { others });
    }
    match close_circuit(switch).await {
        Ok(_) => (outcomes, ProbeResult::Closed),
        Err(e) => {
            error!(error = %e, "{STILL_OPEN}");
            if let Some(kept) = outcomes.iter_mut().rfind(|o| **o == Outcome::Delivered) {
                *kept = Outcome::Failed {
                    reason: STILL_OPEN.into(),
                };
            }
            (
                outcomes,
                ProbeResult::Failed {
                    reason: STILL_OPEN.into(),
                },
            )
        }
    }
}

/// Records a probe that left the circuit open: when, how it went, and when the next one is due.
async fn record_probe<S: Switch>(
    switch: &S,
    state: &Result<DeliveryState, SwitchError>,
    result: &str,
    now_ms: u64,
    interval: Duration,
) {
    let Ok(DeliveryState::Open {
        since_ms, reason, ..
    }) = state
    else {
        return;
    };
    let record = DeliveryState::Open {
        since_ms: *since_ms,
        reason: reason.clone(),
        last_probe_ms: Some(now_ms),
        last_probe: Some(result.to_owned()),
        next_probe_ms: now_ms + interval.as_millis() as u64,
    };
    if let Err(e) = switch.write(&record).await {
        warn!(error = %e, "could not record the probe");
    }
}

/// Sends every ticket back untried for the next probe.
async fn hold<Q: Settle>(
    tickets: &[Message],
    queue: &Q,
    interval: Duration,
    reason: &'static str,
) -> Vec<Outcome> {
    let mut outcomes = Vec::with_capacity(tickets.len());
    for ticket in tickets {
        if let Err(e) = queue.retry_later(ticket, interval).await {
            warn!(error = %e, "could not hold the ticket; the queue's visibility timeout applies");
        }
        ticket
            .log_span(&ticket.attempt_trace())
            .in_scope(|| log_held(reason));
        outcomes.push(Outcome::Held { reason });
    }
    outcomes
}

fn failure_reason(outcome: &Outcome) -> Option<String> {
    match outcome {
        Outcome::Retrying { reason, .. } | Outcome::Failed { reason } => Some(reason.clone()),
        Outcome::Deferred { reason } | Outcome::Held { reason } => Some((*reason).to_owned()),
        _ => None,
    }
}

/// A queue whose retries all wait the same `interval`: a failed ticket comes back for the next
/// probe, not on the retry schedule.
struct Every<'a, Q>(&'a Q, Duration);

impl<Q: Settle> Settle for Every<'_, Q> {
    async fn retry_later(&self, message: &Message, _delay: Duration) -> Result<(), QueueError> {
        self.0.retry_later(message, self.1).await
    }

    async fn dead_letter(&self, message: &Message, failure: &Failure) -> Result<(), QueueError> {
        self.0.dead_letter(message, failure).await
    }

    async fn park(&self, message: &Message, delay: Duration) -> Result<(), QueueError> {
        self.0.park(message, delay).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{
        FakeQueue, FakeSource, FakeSwitch, ScriptedBackend, answer as status, far, message, policy,
    };
    use crate::retry::Attempt;

    const HOLD: Duration = Duration::from_secs(30);

    /// A probe with the default policy and [`HOLD`] as its interval, at `now_ms`.
    async fn probe_at(
        tickets: &[Message],
        backend: &ScriptedBackend,
        queue: &FakeSource,
        switch: &FakeSwitch,
        now_ms: u64,
    ) -> (Vec<Outcome>, ProbeResult) {
        probe(
            tickets,
            backend,
            queue,
            switch,
            &policy(),
            far(),
            HOLD,
            now_ms,
        )
        .await
    }

    fn batch(n: usize) -> Vec<Message> {
        (0..n).map(|i| message(&format!("m{i}"), None)).collect()
    }

    fn sequential() -> Policy {
        Policy {
            max_in_flight: 1,
            ..policy()
        }
    }

    /// Delivers `msgs` under `policy` with `breaker`, far from any deadline.
    async fn guarded(
        msgs: &[Message],
        backend: &ScriptedBackend,
        queue: &FakeQueue,
        policy: &Policy,
        breaker: &Breaker,
    ) -> Vec<Outcome> {
        process(msgs, backend, queue, policy, far(), None, Some(breaker)).await
    }

    #[tokio::test]
    async fn a_run_of_retryable_failures_parks_one_message_and_holds_the_rest_untried() {
        let backend = ScriptedBackend::answering(Attempt::Connection("refused".into()));
        let queue = FakeQueue::default();
        let breaker = Breaker::new(3, HOLD);
        let msgs = batch(6);
        let out = guarded(&msgs, &backend, &queue, &sequential(), &breaker).await;

        assert!(matches!(out[0], Outcome::Retrying { .. }));
        assert!(matches!(out[1], Outcome::Retrying { .. }));
        assert!(matches!(&out[2], Outcome::Parked { reason } if reason.contains("refused")));
        assert!(out[2].is_handled(), "the ticket replaces the original");
        for held in &out[3..] {
            assert!(matches!(held, Outcome::Held { .. }) && !held.is_handled());
        }
        assert_eq!(
            backend.calls(),
            ["m0", "m1", "m2"],
            "nothing tried after it opened"
        );
        assert_eq!(queue.parked(), [("m2".to_string(), HOLD)]);
        let held: Vec<_> = queue.visibility_changes().into_iter().skip(2).collect();
        assert_eq!(
            held,
            ["m3", "m4", "m5"].map(|id| (id.to_string(), HOLD)),
            "held back for one probe interval"
        );
        assert!(breaker.is_open());
    }

    #[tokio::test]
    async fn rejections_and_successes_between_failures_keep_it_closed() {
        // 503, 503, 422, 503, 503, 200, 503, 503: never three retryable failures in a row.
        let answers = [503, 503, 422, 503, 503, 200, 503, 503];
        let mut backend = ScriptedBackend::answering(status(200));
        for (i, s) in answers.iter().enumerate() {
            backend = backend.with(&format!("m{i}"), [status(*s)]);
        }
        let queue = FakeQueue::default();
        let breaker = Breaker::new(3, HOLD);
        let out = guarded(&batch(8), &backend, &queue, &sequential(), &breaker).await;
        assert!(!breaker.is_open());
        assert!(queue.parked().is_empty());
        assert!(
            !out.iter()
                .any(|o| matches!(o, Outcome::Held { .. } | Outcome::Parked { .. }))
        );
        assert_eq!(backend.calls().len(), 8);
    }

    #[tokio::test]
    async fn a_zero_threshold_never_opens() {
        let breaker = Breaker::new(0, HOLD);
        let retry = Verdict::Retry {
            reason: "503".into(),
            status: Some(503),
            not_before: None,
        };
        assert!((0..100).all(|_| !breaker.record(&retry)));
    }

    #[tokio::test]
    async fn opening_happens_once_however_many_fail_concurrently() {
        let backend = ScriptedBackend::answering(status(503)).taking(Duration::from_millis(10));
        let queue = FakeQueue::default();
        let breaker = Breaker::new(2, HOLD);
        let out = guarded(&batch(20), &backend, &queue, &policy(), &breaker).await;
        let parked = out
            .iter()
            .filter(|o| matches!(o, Outcome::Parked { .. }))
            .count();
        assert_eq!(parked, 1);
        assert_eq!(queue.parked().len(), 1);
    }

    #[tokio::test]
    async fn when_parking_fails_the_breaker_stays_closed_and_the_message_is_retried() {
        let backend = ScriptedBackend::answering(status(503));
        let queue = FakeQueue::default().failing_parks();
        let breaker = Breaker::new(1, HOLD);
        let out = guarded(&batch(1), &backend, &queue, &sequential(), &breaker).await;
        assert!(matches!(out[0], Outcome::Retrying { .. }));
        assert!(!breaker.is_open());
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_breaker_expires_after_one_probe_interval() {
        let breaker = Breaker::new(1, HOLD);
        assert!(breaker.record(&Verdict::Retry {
            reason: "x".into(),
            status: None,
            not_before: None
        }));
        tokio::time::advance(HOLD - Duration::from_secs(1)).await;
        breaker.expire();
        assert!(
            breaker.is_open(),
            "a batch within the interval came during the disable"
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        breaker.expire();
        assert!(!breaker.is_open());
    }

    #[tokio::test]
    async fn opening_stops_consumption_and_keeps_the_first_time_and_an_operators_pause() {
        let switch = FakeSwitch::default();
        open_circuit(&switch, "backend answered 503", 1_000, HOLD)
            .await
            .unwrap();
        open_circuit(&switch, "connection refused", 2_000, HOLD)
            .await
            .unwrap();
        assert!(!switch.consuming());
        assert!(matches!(
            switch.state(),
            DeliveryState::Open { since_ms: 1_000, next_probe_ms: 32_000, ref reason, .. } if reason == "connection refused"
        ));

        let paused = DeliveryState::Paused {
            by: "ops".into(),
            since_ms: 5,
            reason: "maintenance".into(),
        };
        let switch = FakeSwitch::with(paused.clone());
        open_circuit(&switch, "503", 1_000, HOLD).await.unwrap();
        assert_eq!(switch.state(), paused);
    }

    #[tokio::test]
    async fn a_failed_probe_keeps_it_open_and_records_when_and_why() {
        let switch = FakeSwitch::default();
        open_circuit(&switch, "503", 1_000, HOLD).await.unwrap();
        let backend = ScriptedBackend::answering(status(503));
        let queue = FakeSource::default();
        let tickets = batch(1);
        let (out, result) = probe_at(&tickets, &backend, &queue, &switch, 40_000).await;
        assert!(matches!(result, ProbeResult::Failed { .. }));
        assert!(!out[0].is_handled());
        assert_eq!(
            queue.visibility_changes(),
            [("m0".to_string(), HOLD)],
            "back for the next probe"
        );
        assert!(!switch.consuming());
        assert!(matches!(
            switch.state(),
            DeliveryState::Open { since_ms: 1_000, last_probe_ms: Some(40_000), next_probe_ms: 70_000, last_probe: Some(ref r), .. } if r.contains("503")
        ));
    }

    #[tokio::test]
    async fn a_successful_probe_delivers_every_ticket_and_resumes() {
        let switch = FakeSwitch::default();
        open_circuit(&switch, "503", 1_000, HOLD).await.unwrap();
        let backend = ScriptedBackend::answering(status(200));
        let queue = FakeSource::default();
        let (out, result) = probe_at(&batch(2), &backend, &queue, &switch, 40_000).await;
        assert_eq!(result, ProbeResult::Closed);
        assert!(out.iter().all(|o| *o == Outcome::Delivered));
        assert!(switch.consuming());
        assert_eq!(switch.state(), DeliveryState::Delivering);
    }

    #[tokio::test]
    async fn the_last_of_several_tickets_resumes_delivery() {
        let switch = FakeSwitch::default();
        open_circuit(&switch, "503", 1_000, HOLD).await.unwrap();
        let backend = ScriptedBackend::answering(status(200));
        let queue = FakeSource::holding(batch(2));
        let first = queue.receive(1, Duration::ZERO).await.unwrap();
        let (out, result) = probe_at(&first, &backend, &queue, &switch, 40_000).await;
        assert_eq!(out, [Outcome::Delivered]);
        assert_eq!(result, ProbeResult::Waiting { others: 1 });
        assert!(
            !switch.consuming(),
            "another group's parked order is still on its way"
        );
        assert!(
            matches!(switch.state(), DeliveryState::Open { last_probe: Some(ref r), .. } if r.contains("waiting for 1 more"))
        );

        queue.delete(&["rh-m0"]).await;
        let second = queue.receive(1, Duration::ZERO).await.unwrap();
        let (_, result) = probe_at(&second, &backend, &queue, &switch, 41_000).await;
        assert_eq!(result, ProbeResult::Closed);
        assert!(switch.consuming());
    }

    #[tokio::test]
    async fn with_a_health_check_the_tickets_wait_until_it_passes() {
        let switch = FakeSwitch::default();
        open_circuit(&switch, "503", 1_000, HOLD).await.unwrap();
        let backend =
            ScriptedBackend::answering(status(200)).with_health([status(503), status(204)]);
        let queue = FakeSource::default();
        let tickets = batch(1);
        let (out, result) = probe_at(&tickets, &backend, &queue, &switch, 40_000).await;
        assert!(
            matches!(result, ProbeResult::Failed { ref reason } if reason == "health check: backend answered 503")
        );
        assert!(matches!(out[0], Outcome::Held { .. }));
        assert!(
            backend.calls().is_empty(),
            "no ticket tried while unhealthy"
        );
        assert!(
            matches!(switch.state(), DeliveryState::Open { last_probe: Some(ref r), .. } if r.starts_with("health check"))
        );

        let (out, result) = probe_at(&tickets, &backend, &queue, &switch, 50_000).await;
        assert_eq!(result, ProbeResult::Closed);
        assert_eq!(out[0], Outcome::Delivered);
    }

    #[tokio::test]
    async fn a_probe_never_resumes_an_operators_pause() {
        let switch = FakeSwitch::with(DeliveryState::Paused {
            by: "ops".into(),
            since_ms: 5,
            reason: "maintenance".into(),
        });
        switch.consume(false).await.unwrap();
        let backend = ScriptedBackend::answering(status(200));
        let queue = FakeSource::default();
        let (out, result) = probe_at(&batch(1), &backend, &queue, &switch, 40_000).await;
        assert_eq!(result, ProbeResult::Paused);
        assert!(
            backend.calls().is_empty(),
            "tickets are not tried while paused"
        );
        assert!(matches!(out[0], Outcome::Held { .. }));
        assert!(!switch.consuming());
    }

    #[tokio::test]
    async fn a_pause_that_lands_while_closing_wins() {
        let switch = FakeSwitch::default().pausing_on_resume();
        open_circuit(&switch, "503", 1_000, HOLD).await.unwrap();
        assert!(!close_circuit(&switch).await.unwrap());
        assert!(!switch.consuming());
    }

    #[tokio::test]
    async fn if_closing_fails_one_delivered_ticket_stays_to_probe_with() {
        let switch = FakeSwitch::default();
        open_circuit(&switch, "503", 1_000, HOLD).await.unwrap();
        let switch = switch.failing_consume();
        let backend = ScriptedBackend::answering(status(200));
        let queue = FakeSource::default();
        let (out, result) = probe_at(&batch(2), &backend, &queue, &switch, 40_000).await;
        assert!(matches!(result, ProbeResult::Failed { .. }));
        assert_eq!(out[0], Outcome::Delivered);
        assert!(!out[1].is_handled());
    }

    #[test]
    fn the_state_round_trips_through_its_json() {
        let open = DeliveryState::Open {
            since_ms: 1,
            reason: "503".into(),
            last_probe_ms: None,
            last_probe: None,
            next_probe_ms: 2,
        };
        assert_eq!(DeliveryState::parse(&open.to_json()).unwrap(), open);
        assert_eq!(
            DeliveryState::parse(r#"{"state":"delivering"}"#).unwrap(),
            DeliveryState::Delivering
        );
        assert!(DeliveryState::parse("{}").is_err());
    }
}
