//! Lambda events ⇄ domain: SQS batches (partial batch failures) and scheduled polls.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::{Duration, SystemTime};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse};
use lambda_runtime::{Context, Error, LambdaEvent};
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use serde_json::value::RawValue;
use storeforward_control::AwsSwitch;
use storeforward_core::batch::{Backend, Message, Outcome, Policy, Tally};
use storeforward_core::breaker::{Breaker, Switch};
use storeforward_core::envelope::Envelope;
use storeforward_core::metrics::{Document, Measured, emit};
use storeforward_core::poll::{Circuit, Limits, Source, on_batch, on_tickets, scheduled};
use storeforward_sqs::{SqsSource, is_fifo};
use tokio::time::Instant;
use tracing::{error, info, warn};

/// What a forwarder is invoked with: an SQS batch, each record read into a [`Message`] as the
/// event is deserialized (the event's text is never copied whole, nor held as one
/// `serde_json::Value` tree), or any other object, which must be a scheduled event.
#[derive(Debug)]
pub enum Event {
    Sqs(Vec<Record>),
    Other(Value),
}

/// One record of an SQS batch: a message with the queue it came from (`eventSourceARN`), or why
/// it is not one, with its `messageId` if it has one.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "nearly every record is read; boxing the message would cost an allocation for each"
)]
pub enum Record {
    Read {
        source_arn: Option<String>,
        message: Message,
    },
    Malformed {
        id: Option<String>,
        reason: String,
    },
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EventVisitor)
    }
}

struct EventVisitor;

impl<'de> Visitor<'de> for EventVisitor {
    type Value = Event;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an SQS event (Records) or an EventBridge scheduled event")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Event, A::Error> {
        let mut other = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == "Records" {
                let records = map.next_value_seed(RecordsVisitor)?;
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                return Ok(Event::Sqs(records));
            }
            other.insert(key, map.next_value()?);
        }
        Ok(Event::Other(Value::Object(other)))
    }
}

/// `Records`: an array, each element read on its own, so that one malformed record is reported
/// as failed instead of failing the batch.
struct RecordsVisitor;

impl<'de> DeserializeSeed<'de> for RecordsVisitor {
    type Value = Vec<Record>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RecordsVisitor {
    type Value = Vec<Record>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("Records as an array of SQS records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Record>, A::Error> {
        let mut records = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(raw) = seq.next_element::<&RawValue>()? {
            records.push(Record::read(raw));
        }
        Ok(records)
    }
}

/// An event built in code (tests, benches) reads as Lambda's would.
impl TryFrom<Value> for Event {
    type Error = serde_json::Error;

    fn try_from(value: Value) -> Result<Self, Self::Error> {
        serde_json::from_str(&value.to_string())
    }
}

/// The forwarder's dependencies, built once at cold start.
#[derive(Debug)]
pub struct Forwarder<B, W = AwsSwitch> {
    pub backend: B,
    /// The primary queue (with the dead-letter and probe queues it writes to).
    pub primary: SqsSource,
    pub failover_url: Option<String>,
    pub policy: Policy,
    pub poll: Limits,
    /// This instance's breaker; it lives as long as the instance.
    pub breaker: Breaker,
    /// The circuit's switch and probe queue, when the breaker is on.
    pub circuit: Option<(W, SqsSource)>,
}

impl<B: Backend, W: Switch> Forwarder<B, W> {
    /// Handles an SQS event (answering `batchItemFailures`) or a scheduled event (polling the
    /// queues and answering a [`Tally`]); either way the invocation's metrics go to the log
    /// stream (EMF).
    pub async fn handle(&self, event: LambdaEvent<Event>) -> Result<Value, Error> {
        let deadline = deadline_of(&event.context);
        let time_left_ms = (deadline - Instant::now()).as_millis() as u64;
        info!(time_left_ms, "invocation");
        let backend = Measured::new(&self.backend);
        let (answer, tally) = match event.payload {
            Event::Sqs(records) => {
                let (response, tally) = self.on_sqs_event(&backend, records, deadline).await?;
                (serde_json::to_value(response)?, tally)
            }
            Event::Other(payload) if is_poll_trigger(&payload) => {
                let tally = self.poll(&backend, deadline).await;
                (serde_json::to_value(tally)?, tally)
            }
            Event::Other(_) => {
                return Err(
                    "unsupported event: expected an SQS event (Records) or an EventBridge scheduled event"
                        .into(),
                );
            }
        };
        let base = Document::new(&event.context.env_config.function_name)
            .property("RequestId", &event.context.request_id);
        emit(&backend.documents(base, &tally));
        Ok(answer)
    }

    /// Delivers one event source mapping batch. Only messages that are not finished with are
    /// reported, so SQS deletes the rest; a record that cannot even be identified fails the
    /// whole invocation, since reporting nothing for it would delete it unseen.
    async fn on_sqs_event(
        &self,
        backend: &impl Backend,
        records: Vec<Record>,
        deadline: Instant,
    ) -> Result<(SqsBatchResponse, Tally), Error> {
        let mut failed: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        let mut batches: Vec<(SqsSource, Vec<Message>)> = Vec::new();
        for record in records {
            let (id, record) = match record {
                Record::Read {
                    source_arn,
                    message,
                } => (Some(message.id.clone()), Ok((source_arn, message))),
                Record::Malformed { id, reason } => (id, Err(reason)),
            };
            let Some(id) = id.filter(|id| !id.is_empty()) else {
                error!(
                    "SQS record without a messageId; failing the whole batch so that nothing is lost"
                );
                return Err("SQS record without a messageId".into());
            };
            if !seen.insert(id.clone()) {
                warn!(message_id = %id, "record repeated within the batch; handled once");
                continue;
            }
            match record {
                Ok((arn, message)) => {
                    let source = self.source_of(arn.as_deref());
                    match batches.iter_mut().find(|(s, _)| s.url() == source.url()) {
                        Some((_, messages)) => messages.push(message),
                        None => batches.push((source, vec![message])),
                    }
                }
                Err(reason) => {
                    error!(message_id = %id, %reason, "malformed SQS record; reported as failed");
                    failed.push(id);
                }
            }
        }
        // Malformed records count as received and failed.
        let mut total = Tally {
            received: failed.len(),
            failed: failed.len(),
            ..Tally::default()
        };
        let circuit = self.circuit();
        for (source, messages) in &batches {
            let policy = self.policy_for(source);
            let (outcomes, tally) = match &circuit {
                Some(c) if source.url() == c.tickets.url() => {
                    on_tickets(messages, backend, source, &policy, deadline, c).await
                }
                _ => {
                    on_batch(
                        messages,
                        backend,
                        source,
                        &policy,
                        deadline,
                        circuit.as_ref(),
                    )
                    .await
                }
            };
            info!(queue = source.url(), ?tally, "batch done");
            total.merge(&tally);
            failed.extend(unfinished(messages, &outcomes).map(|m| m.id.clone()));
        }
        let mut response = SqsBatchResponse::default();
        response.batch_item_failures = failed
            .into_iter()
            .map(|id| {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                failure
            })
            .collect();
        Ok((response, total))
    }

    /// Drains the primary queue, then the failover queue, unless the circuit is open or paused.
    async fn poll(&self, backend: &impl Backend, deadline: Instant) -> Tally {
        let queues: Vec<SqsSource> = std::iter::once(self.primary.clone())
            .chain(
                self.failover_url
                    .as_ref()
                    .map(|url| self.primary.for_queue(url)),
            )
            .collect();
        let circuit = self.circuit();
        scheduled(
            &queues,
            backend,
            |source| self.policy_for(source),
            &self.poll,
            deadline,
            circuit.as_ref(),
        )
        .await
    }

    fn circuit(&self) -> Option<Circuit<'_, W, SqsSource>> {
        self.circuit.as_ref().map(|(switch, tickets)| Circuit {
            breaker: &self.breaker,
            switch,
            tickets,
        })
    }

    fn policy_for(&self, source: &SqsSource) -> Policy {
        Policy {
            ordered: is_fifo(source.url()),
            ..self.policy.clone()
        }
    }

    /// The queue a record came from, by the name in its `eventSourceARN`.
    fn source_of(&self, arn: Option<&str>) -> SqsSource {
        let name = arn.and_then(|a| a.rsplit(':').next());
        let named = |url: &str| name.is_some_and(|n| url.rsplit('/').next() == Some(n));
        match (&self.failover_url, &self.circuit) {
            (_, Some((_, tickets))) if named(tickets.url()) => tickets.clone(),
            (Some(url), _) if named(url) => self.primary.for_queue(url),
            _ => {
                if !named(self.primary.url()) {
                    warn!(
                        ?arn,
                        "record from a queue that is neither QUEUE_URL nor FAILOVER_QUEUE_URL; settling against QUEUE_URL"
                    );
                }
                self.primary.clone()
            }
        }
    }
}

fn unfinished<'a>(
    messages: &'a [Message],
    outcomes: &'a [Outcome],
) -> impl Iterator<Item = &'a Message> {
    messages
        .iter()
        .zip(outcomes)
        .filter(|(_, o)| !o.is_handled())
        .map(|(m, _)| m)
}

/// A scheduled EventBridge event, or an empty object from a manual `aws lambda invoke`.
fn is_poll_trigger(payload: &Value) -> bool {
    payload.get("detail-type").is_some() || payload.as_object().is_some_and(|o| o.is_empty())
}

/// Lambda sends the deadline as epoch milliseconds. Some emulators (`cargo lambda watch`) send
/// the time left instead; no real deadline predates 2001 (10^12 ms), so smaller values are read
/// as relative.
fn deadline_of(context: &Context) -> Instant {
    const EPOCH_MS_2001: u64 = 1_000_000_000_000;
    let left = if context.deadline < EPOCH_MS_2001 {
        Duration::from_millis(context.deadline)
    } else {
        context
            .deadline()
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
    };
    Instant::now() + left
}

/// The parts of an SQS record the forwarder reads; the rest is skipped unread.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SqsRecord {
    message_id: Option<String>,
    receipt_handle: Option<String>,
    body: Option<String>,
    attributes: Option<SystemAttributes>,
    message_attributes: Option<HashMap<String, MessageAttribute>>,
    #[serde(rename = "eventSourceARN")]
    event_source_arn: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SystemAttributes {
    approximate_receive_count: Option<String>,
    message_group_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageAttribute {
    string_value: Option<String>,
}

impl Record {
    /// One record from its JSON text.
    fn read(raw: &RawValue) -> Self {
        let mut record = match serde_json::from_str::<SqsRecord>(raw.get()) {
            Ok(record) => record,
            Err(e) => {
                return Record::Malformed {
                    id: serde_json::from_str::<Value>(raw.get())
                        .ok()
                        .and_then(|v| Some(v.get("messageId")?.as_str()?.to_owned())),
                    reason: format!("not an SQS record: {e}"),
                };
            }
        };
        let Some(id) = record.message_id.take().filter(|id| !id.is_empty()) else {
            return Record::Malformed {
                id: None,
                reason: "record has no messageId".into(),
            };
        };
        to_message(id, record).unwrap_or_else(|(id, reason)| Record::Malformed {
            id: Some(id),
            reason: reason.into(),
        })
    }
}

/// One record as a domain message, or why it is not one (with its id back).
fn to_message(id: String, record: SqsRecord) -> Result<Record, (String, &'static str)> {
    let Some(receipt_handle) = record.receipt_handle else {
        return Err((id, "record has no receiptHandle"));
    };
    let Some(body) = record.body else {
        return Err((id, "record has no body"));
    };
    let attributes = record.message_attributes.unwrap_or_default();
    let envelope =
        Envelope::from_attributes(|name| attributes.get(name)?.string_value.as_deref(), &id);
    let system = record.attributes;
    let receive_count = system
        .as_ref()
        .and_then(|a| a.approximate_receive_count.as_deref()?.parse().ok())
        .unwrap_or(1);
    Ok(Record::Read {
        source_arn: record.event_source_arn,
        message: Message {
            group_id: system.and_then(|a| a.message_group_id),
            id,
            receipt_handle,
            body,
            envelope,
            receive_count,
        },
    })
}
