//! In-memory implementations of the capability traits, for tests of this crate and of the
//! function crates (feature `fakes`).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::batch::{AfterPermanent, Backend, Failure, Message, Policy, QueueError, Settle};
use crate::breaker::{DeliveryState, Switch, SwitchError};
use crate::envelope::Envelope;
use crate::order::{Order, Storage, StorageError};
use crate::poll::Source;
use crate::retry::{Attempt, RetrySchedule, StatusPolicy};
use crate::trace::TraceContext;

/// A message with a JSON body and a full envelope, for tests.
pub fn message(id: &str, group: Option<&str>) -> Message {
    Message {
        id: id.into(),
        receipt_handle: format!("rh-{id}"),
        body: format!(r#"{{"order":"{id}"}}"#),
        envelope: Envelope {
            content_type: "application/json".into(),
            idempotency_key: format!("key-{id}"),
            received_at_ms: Some(1_700_000_000_000),
            request_id: None,
            trace_header: None,
            trace_context: None,
        },
        receive_count: 1,
        group_id: group.map(str::to_owned),
    }
}

/// The backend's answer with `status` and no `Retry-After`.
pub fn answer(status: u16) -> Attempt {
    Attempt::Response {
        status,
        retry_after: None,
    }
}

/// A deadline far enough away not to matter.
pub fn far() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(900)
}

/// The default policy with a dead-letter queue: 10 in flight, unordered, an 11 s attempt budget.
pub fn policy() -> Policy {
    Policy {
        statuses: StatusPolicy::default(),
        retry_schedule: RetrySchedule::default(),
        max_in_flight: 10,
        after_permanent: AfterPermanent::DeadLetter,
        ordered: false,
        attempt_budget: Duration::from_secs(11),
        max_receives: None,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A backend that answers from a per-message script, then with a default answer.
#[derive(Debug)]
pub struct ScriptedBackend {
    default: Attempt,
    script: Mutex<HashMap<String, VecDeque<Attempt>>>,
    latency: Duration,
    panic_on: Option<String>,
    health: Mutex<VecDeque<Attempt>>,
    calls: Mutex<Vec<String>>,
    traces: Mutex<Vec<TraceContext>>,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
}

impl ScriptedBackend {
    /// Answers every call with `default`.
    pub fn answering(default: Attempt) -> Self {
        Self {
            default,
            script: Mutex::default(),
            latency: Duration::ZERO,
            panic_on: None,
            health: Mutex::default(),
            calls: Mutex::default(),
            traces: Mutex::default(),
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    /// Answers calls for message `id` with `answers` first.
    pub fn with(self, id: &str, answers: impl IntoIterator<Item = Attempt>) -> Self {
        lock(&self.script).insert(id.into(), answers.into_iter().collect());
        self
    }

    /// Has a health check that answers `answers`, one per check (none once they run out).
    pub fn with_health(self, answers: impl IntoIterator<Item = Attempt>) -> Self {
        *lock(&self.health) = answers.into_iter().collect();
        self
    }

    /// Every call takes `latency`.
    pub fn taking(self, latency: Duration) -> Self {
        Self { latency, ..self }
    }

    /// Panics when asked to deliver message `id`.
    pub fn panicking_on(self, id: &str) -> Self {
        Self {
            panic_on: Some(id.into()),
            ..self
        }
    }

    /// Message ids in the order their deliveries started.
    pub fn calls(&self) -> Vec<String> {
        lock(&self.calls).clone()
    }

    /// The trace context each delivery was given, in the order of [`calls`](Self::calls).
    pub fn traces(&self) -> Vec<TraceContext> {
        lock(&self.traces).clone()
    }

    /// The most deliveries that were in flight at once.
    pub fn peak_in_flight(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

impl Backend for ScriptedBackend {
    async fn deliver(&self, message: &Message, trace: &TraceContext) -> Attempt {
        lock(&self.calls).push(message.id.clone());
        lock(&self.traces).push(trace.clone());
        if self.panic_on.as_deref() == Some(message.id.as_str()) {
            panic!("scripted panic for {}", message.id);
        }
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(self.latency).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let scripted = lock(&self.script)
            .get_mut(&message.id)
            .and_then(VecDeque::pop_front);
        scripted.unwrap_or_else(|| self.default.clone())
    }

    async fn health(&self) -> Option<Attempt> {
        lock(&self.health).pop_front()
    }
}

/// Records what the forwarder did to the queue; can be told to fail.
#[derive(Debug, Default)]
pub struct FakeQueue {
    fail_visibility: bool,
    fail_dead_letters: bool,
    fail_parks: bool,
    visibility: Mutex<Vec<(String, Duration)>>,
    dead: Mutex<Vec<(String, Failure)>>,
    parked: Mutex<Vec<(String, Duration)>>,
}

impl FakeQueue {
    /// Every `retry_later` fails.
    pub fn failing_visibility(self) -> Self {
        Self {
            fail_visibility: true,
            ..self
        }
    }

    /// Every `dead_letter` fails.
    pub fn failing_dead_letters(self) -> Self {
        Self {
            fail_dead_letters: true,
            ..self
        }
    }

    /// Every `park` fails.
    pub fn failing_parks(self) -> Self {
        Self {
            fail_parks: true,
            ..self
        }
    }

    /// `(message id, delay)` of every message parked in the probe queue.
    pub fn parked(&self) -> Vec<(String, Duration)> {
        lock(&self.parked).clone()
    }

    /// `(message id, delay)` of every successful visibility change.
    pub fn visibility_changes(&self) -> Vec<(String, Duration)> {
        lock(&self.visibility).clone()
    }

    /// `(message id, failure)` of every successful dead-letter write.
    pub fn dead_letters(&self) -> Vec<(String, Failure)> {
        lock(&self.dead).clone()
    }
}

impl Settle for FakeQueue {
    async fn retry_later(&self, message: &Message, delay: Duration) -> Result<(), QueueError> {
        if self.fail_visibility {
            return Err(QueueError("visibility change refused".into()));
        }
        lock(&self.visibility).push((message.id.clone(), delay));
        Ok(())
    }

    async fn dead_letter(&self, message: &Message, failure: &Failure) -> Result<(), QueueError> {
        if self.fail_dead_letters {
            return Err(QueueError("dead-letter queue unavailable".into()));
        }
        lock(&self.dead).push((message.id.clone(), failure.clone()));
        Ok(())
    }

    async fn park(&self, message: &Message, delay: Duration) -> Result<(), QueueError> {
        if self.fail_parks {
            return Err(QueueError("probe queue unavailable".into()));
        }
        lock(&self.parked).push((message.id.clone(), delay));
        Ok(())
    }
}

/// A queue in memory: receives hand out visible messages, which stay in flight until deleted
/// (or made visible again); settling is recorded by the [`FakeQueue`] it derefs to.
#[derive(Debug, Default)]
pub struct FakeSource {
    queue: FakeQueue,
    visible: Mutex<VecDeque<Message>>,
    in_flight: Mutex<Vec<Message>>,
    deleted: Mutex<Vec<String>>,
    received: AtomicUsize,
}

impl FakeSource {
    /// A queue holding `messages`, all visible.
    pub fn holding(messages: impl IntoIterator<Item = Message>) -> Self {
        Self {
            visible: Mutex::new(messages.into_iter().collect()),
            ..Self::default()
        }
    }

    /// Every message in flight becomes visible again, at the front.
    pub fn make_visible(&self) {
        let mut back = std::mem::take(&mut *lock(&self.in_flight));
        let mut visible = lock(&self.visible);
        back.extend(visible.drain(..));
        *visible = back.into();
    }

    /// Receipt handles deleted, in order.
    pub fn deleted(&self) -> Vec<String> {
        lock(&self.deleted).clone()
    }

    /// Messages received so far.
    pub fn received(&self) -> usize {
        self.received.load(Ordering::SeqCst)
    }

    /// Messages still visible.
    pub fn remaining(&self) -> usize {
        lock(&self.visible).len()
    }
}

impl std::ops::Deref for FakeSource {
    type Target = FakeQueue;

    fn deref(&self) -> &FakeQueue {
        &self.queue
    }
}

impl Settle for FakeSource {
    async fn retry_later(&self, message: &Message, delay: Duration) -> Result<(), QueueError> {
        self.queue.retry_later(message, delay).await
    }

    async fn dead_letter(&self, message: &Message, failure: &Failure) -> Result<(), QueueError> {
        self.queue.dead_letter(message, failure).await
    }

    async fn park(&self, message: &Message, delay: Duration) -> Result<(), QueueError> {
        self.queue.park(message, delay).await
    }
}

impl Source for FakeSource {
    fn url(&self) -> &str {
        "memory"
    }

    async fn receive(&self, max: usize, _wait: Duration) -> Result<Vec<Message>, QueueError> {
        let mut visible = lock(&self.visible);
        let n = max.min(10).min(visible.len());
        let batch: Vec<Message> = visible.drain(..n).collect();
        self.received.fetch_add(batch.len(), Ordering::SeqCst);
        lock(&self.in_flight).extend(batch.iter().cloned());
        Ok(batch)
    }

    async fn delete(&self, receipt_handles: &[&str]) -> usize {
        lock(&self.in_flight).retain(|m| !receipt_handles.contains(&m.receipt_handle.as_str()));
        lock(&self.deleted).extend(receipt_handles.iter().map(|h| h.to_string()));
        0
    }

    async fn pending(&self) -> Result<usize, QueueError> {
        Ok(lock(&self.visible).len() + lock(&self.in_flight).len())
    }
}

/// The delivery state and the consumption switch, in memory.
#[derive(Debug)]
pub struct FakeSwitch {
    state: Mutex<DeliveryState>,
    consuming: Mutex<bool>,
    pause_on_resume: bool,
    fail_consume: bool,
}

impl Default for FakeSwitch {
    fn default() -> Self {
        Self::with(DeliveryState::Delivering)
    }
}

impl FakeSwitch {
    /// Consuming, with `state` recorded.
    pub fn with(state: DeliveryState) -> Self {
        Self {
            state: Mutex::new(state),
            consuming: Mutex::new(true),
            pause_on_resume: false,
            fail_consume: false,
        }
    }

    /// An operator pauses delivery the moment consumption is turned back on.
    pub fn pausing_on_resume(self) -> Self {
        Self {
            pause_on_resume: true,
            ..self
        }
    }

    /// Every `consume` fails.
    pub fn failing_consume(self) -> Self {
        Self {
            fail_consume: true,
            ..self
        }
    }

    /// The recorded state.
    pub fn state(&self) -> DeliveryState {
        lock(&self.state).clone()
    }

    /// Whether consumption is on.
    pub fn consuming(&self) -> bool {
        *lock(&self.consuming)
    }
}

impl Switch for FakeSwitch {
    async fn read(&self) -> Result<DeliveryState, SwitchError> {
        Ok(self.state())
    }

    async fn write(&self, state: &DeliveryState) -> Result<(), SwitchError> {
        *lock(&self.state) = state.clone();
        Ok(())
    }

    async fn consume(&self, on: bool) -> Result<(), SwitchError> {
        if self.fail_consume {
            return Err(SwitchError("event source mapping unavailable".into()));
        }
        *lock(&self.consuming) = on;
        if on && self.pause_on_resume {
            *lock(&self.state) = DeliveryState::Paused {
                by: "ops".into(),
                since_ms: 0,
                reason: "raced".into(),
            };
        }
        Ok(())
    }
}

/// Storage that either keeps orders in memory, numbering them `<prefix>-1`, ..., or is down.
#[derive(Debug, Default)]
pub struct FakeStorage {
    prefix: Option<String>,
    orders: Mutex<Vec<Order>>,
}

impl FakeStorage {
    /// Accepts every order.
    pub fn up(prefix: &str) -> Self {
        Self {
            prefix: Some(prefix.into()),
            orders: Mutex::default(),
        }
    }

    /// Refuses every order.
    pub fn down() -> Self {
        Self::default()
    }

    /// What was stored, in order.
    pub fn stored(&self) -> Vec<Order> {
        lock(&self.orders).clone()
    }
}

impl Storage for FakeStorage {
    async fn store(&self, order: &Order) -> Result<String, StorageError> {
        let prefix = self
            .prefix
            .as_ref()
            .ok_or_else(|| StorageError("storage is down".into()))?;
        let mut orders = lock(&self.orders);
        orders.push(order.clone());
        Ok(format!("{prefix}-{}", orders.len()))
    }
}
