//! SQS adapters: the store's [`Storage`], the forwarder's [`Settle`] plus polling, and the SDK
//! client both build from the same settings.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageAttributeValue, MessageSystemAttributeName,
    QueueAttributeName,
};
use storeforward_core::batch::{Failure, Message, QueueError, Settle};
use storeforward_core::config::{ConfigError, Env};
use storeforward_core::envelope::{ATTRIBUTE_TYPE, Envelope, attr};
use storeforward_core::order::{Order, Storage, StorageError};
use storeforward_core::poll::Source;
use storeforward_core::retry::MAX_VISIBILITY;
use tokio::sync::OnceCell;

/// Longest dead-letter reason written, so a dead letter stays within
/// [`storeforward_core::order::DEAD_LETTER_RESERVE`].
const MAX_REASON_BYTES: usize = 300;

/// The longest per-message delay SQS accepts (15 minutes).
const MAX_DELAY_SECONDS: u64 = 900;

/// How the SDK client talks to SQS (`SQS_MAX_ATTEMPTS`, `SQS_RETRY_MODE`, `SQS_TIMEOUT_MS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSettings {
    /// Attempts per call, the first included, under the SDK's retry policy.
    pub max_attempts: u32,
    /// `adaptive` (client-side rate limiting) instead of `standard` retries.
    pub adaptive: bool,
    /// Limit for one attempt of one call.
    pub attempt_timeout: Duration,
}

impl ClientSettings {
    /// Reads the settings; defaults: 3 attempts, standard mode, 3 s per attempt.
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            max_attempts: env.bounded("SQS_MAX_ATTEMPTS", 3, 1..=10)?,
            adaptive: env.parsed_with("SQS_RETRY_MODE", false, |mode| match mode.trim() {
                "standard" => Ok(false),
                "adaptive" => Ok(true),
                _ => Err("expected standard or adaptive"),
            })?,
            attempt_timeout: env.millis("SQS_TIMEOUT_MS", Duration::from_secs(3))?,
        })
    }

    /// A client from the standard AWS configuration chain (region, credentials,
    /// `AWS_ENDPOINT_URL` for LocalStack) with these settings.
    pub async fn client(&self) -> Client {
        let retry = if self.adaptive {
            RetryConfig::adaptive()
        } else {
            RetryConfig::standard()
        };
        let config = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(retry.with_max_attempts(self.max_attempts))
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_attempt_timeout(self.attempt_timeout)
                    .build(),
            )
            .load()
            .await;
        Client::new(&config)
    }
}

/// Whether `queue_url` names a FIFO queue.
pub fn is_fifo(queue_url: &str) -> bool {
    queue_url.ends_with(".fifo")
}

fn string_attribute(value: &str) -> Result<MessageAttributeValue, String> {
    MessageAttributeValue::builder()
        .data_type(ATTRIBUTE_TYPE)
        .string_value(value)
        .build()
        .map_err(|e| e.to_string())
}

fn attributes<'a>(
    pairs: impl IntoIterator<Item = (&'a str, String)>,
) -> Result<HashMap<String, MessageAttributeValue>, String> {
    pairs
        .into_iter()
        .map(|(name, value)| Ok((name.to_owned(), string_attribute(&value)?)))
        .collect()
}

fn describe<E: std::error::Error>(e: E) -> String {
    DisplayErrorContext(e).to_string()
}

/// One queue, as the store writes to it.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    url: String,
}

impl SqsQueue {
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }
}

impl Storage for SqsQueue {
    async fn store(&self, order: &Order) -> Result<String, StorageError> {
        let attrs = attributes(order.envelope.attributes()).map_err(StorageError)?;
        let mut send = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(&order.body)
            .set_message_attributes(Some(attrs));
        if is_fifo(&self.url) {
            let group = order
                .group_id
                .as_deref()
                .unwrap_or(storeforward_core::order::DEFAULT_GROUP);
            send = send
                .message_group_id(group)
                .message_deduplication_id(&order.envelope.idempotency_key);
        }
        let out = send.send().await.map_err(|e| StorageError(describe(e)))?;
        out.message_id
            .ok_or_else(|| StorageError("SQS acknowledged the write without a message id".into()))
    }
}

/// A client, or the settings to build one when it is first needed.
#[derive(Debug, Clone)]
enum Connection {
    Ready(Client),
    OnFirstUse(Arc<OnceCell<Client>>, ClientSettings),
}

impl Connection {
    async fn client(&self) -> &Client {
        match self {
            Self::Ready(client) => client,
            Self::OnFirstUse(cell, settings) => cell.get_or_init(|| settings.client()).await,
        }
    }
}

/// The queue the forwarder consumes, with the dead-letter queue it writes permanent failures to
/// and the probe queue it parks the circuit breaker's tickets in.
#[derive(Debug, Clone)]
pub struct SqsSource {
    connection: Connection,
    url: String,
    dead_letter_url: Option<String>,
    probe_url: Option<String>,
}

impl SqsSource {
    pub fn new(client: Client, url: impl Into<String>, dead_letter_url: Option<String>) -> Self {
        Self::with(Connection::Ready(client), url.into(), dead_letter_url)
    }

    /// A source whose client is built from `settings` on its first call, and then shared by
    /// every source made from it with [`Self::for_queue`]. A forwarder fed by an event source
    /// mapping calls SQS only when a delivery fails, so a batch that all goes through never
    /// loads the AWS configuration chain nor the SDK's TLS roots: less to do at cold start and
    /// less memory.
    pub fn on_first_use(
        settings: ClientSettings,
        url: impl Into<String>,
        dead_letter_url: Option<String>,
    ) -> Self {
        let connection = Connection::OnFirstUse(Arc::new(OnceCell::new()), settings);
        Self::with(connection, url.into(), dead_letter_url)
    }

    fn with(connection: Connection, url: String, dead_letter_url: Option<String>) -> Self {
        Self {
            connection,
            url,
            dead_letter_url,
            probe_url: None,
        }
    }

    /// The same source, parking tickets in `probe_url`.
    pub fn with_probe_queue(self, probe_url: Option<String>) -> Self {
        Self { probe_url, ..self }
    }

    /// The same client and dead-letter queue, consuming `url`.
    pub fn for_queue(&self, url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..self.clone()
        }
    }
}

impl Source for SqsSource {
    fn url(&self) -> &str {
        &self.url
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Message>, QueueError> {
        let out = self
            .connection
            .client()
            .await
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .wait_time_seconds(wait.as_secs().min(20) as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .message_attribute_names("All")
            .customize()
            // A long poll legitimately outlasts the per-attempt timeout.
            .config_override(
                aws_sdk_sqs::config::Builder::default().timeout_config(
                    TimeoutConfig::builder()
                        .operation_attempt_timeout(wait + Duration::from_secs(5))
                        .build(),
                ),
            )
            .send()
            .await
            .map_err(|e| QueueError(describe(e)))?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(from_sdk)
            .collect())
    }

    /// Deletes 10 per call.
    async fn delete(&self, receipt_handles: &[&str]) -> usize {
        let mut refused = 0;
        for chunk in receipt_handles.chunks(10) {
            let entries: Vec<_> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, rh)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(*rh)
                        .build()
                        .ok()
                })
                .collect();
            match self
                .connection
                .client()
                .await
                .delete_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(out) => {
                    for failed in &out.failed {
                        tracing::warn!(code = %failed.code, message = ?failed.message, "delete refused; the message will be delivered again");
                    }
                    refused += out.failed.len();
                }
                Err(e) => {
                    tracing::warn!(error = %describe(e), "delete failed; the messages will be delivered again");
                    refused += chunk.len();
                }
            }
        }
        refused
    }

    async fn pending(&self) -> Result<usize, QueueError> {
        let answer = self
            .connection
            .client()
            .await
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| QueueError(describe(e)))?;
        Ok(answer
            .attributes()
            .into_iter()
            .flat_map(|a| a.values())
            .filter_map(|v| v.parse::<usize>().ok())
            .sum())
    }
}

/// An SDK message as a domain message; `None` (logged) if it lacks an id, receipt handle or body.
fn from_sdk(m: aws_sdk_sqs::types::Message) -> Option<Message> {
    let (Some(id), Some(receipt_handle), Some(body)) = (m.message_id, m.receipt_handle, m.body)
    else {
        tracing::error!("SQS returned a message without id, receipt handle or body; skipped");
        return None;
    };
    let attrs = m.message_attributes.unwrap_or_default();
    let envelope =
        Envelope::from_attributes(|name| attrs.get(name).and_then(|v| v.string_value()), &id);
    let system = m.attributes.unwrap_or_default();
    let system_attr = |name| system.get(&name).map(String::as_str);
    Some(Message {
        receive_count: system_attr(MessageSystemAttributeName::ApproximateReceiveCount)
            .and_then(|n| n.parse().ok())
            .unwrap_or(1),
        group_id: system_attr(MessageSystemAttributeName::MessageGroupId).map(str::to_owned),
        id,
        receipt_handle,
        body,
        envelope,
    })
}

impl Settle for SqsSource {
    async fn retry_later(&self, message: &Message, delay: Duration) -> Result<(), QueueError> {
        self.connection
            .client()
            .await
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(&message.receipt_handle)
            .visibility_timeout(delay.min(MAX_VISIBILITY).as_secs() as i32)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| QueueError(describe(e)))
    }

    async fn dead_letter(&self, message: &Message, failure: &Failure) -> Result<(), QueueError> {
        let url = self
            .dead_letter_url
            .as_deref()
            .ok_or_else(|| QueueError("no dead-letter queue configured".into()))?;
        let mut reason = failure.reason.clone();
        if reason.len() > MAX_REASON_BYTES {
            let cut = (0..=MAX_REASON_BYTES)
                .rev()
                .find(|&i| reason.is_char_boundary(i))
                .unwrap_or(0);
            reason.truncate(cut);
        }
        let mut pairs = message.envelope.attributes();
        pairs.push((attr::FAILURE_KIND, "permanent".into()));
        pairs.push((attr::FAILURE_REASON, reason));
        pairs.push((attr::FAILURE_ATTEMPTS, failure.attempts.to_string()));
        if let Some(status) = failure.status {
            pairs.push((attr::FAILURE_STATUS, status.to_string()));
        }
        self.copy_to(url, message, pairs, Duration::ZERO).await
    }

    async fn park(&self, message: &Message, delay: Duration) -> Result<(), QueueError> {
        let url = self
            .probe_url
            .as_deref()
            .ok_or_else(|| QueueError("no probe queue configured".into()))?;
        self.copy_to(url, message, message.envelope.attributes(), delay)
            .await
    }
}

impl SqsSource {
    /// Sends the message's body with `pairs` as attributes to `url`, visible after `delay`
    /// (at most SQS's 15 minutes; FIFO queues take no per-message delay).
    async fn copy_to(
        &self,
        url: &str,
        message: &Message,
        pairs: Vec<(&str, String)>,
        delay: Duration,
    ) -> Result<(), QueueError> {
        let mut send = self
            .connection
            .client()
            .await
            .send_message()
            .queue_url(url)
            .message_body(&message.body)
            .set_message_attributes(Some(attributes(pairs).map_err(QueueError)?));
        if is_fifo(url) {
            send = send
                .message_group_id(
                    message
                        .group_id
                        .as_deref()
                        .unwrap_or(storeforward_core::order::DEFAULT_GROUP),
                )
                .message_deduplication_id(&message.id);
        } else if !delay.is_zero() {
            send = send.delay_seconds(delay.as_secs().min(MAX_DELAY_SECONDS) as i32);
        }
        send.send()
            .await
            .map(|_| ())
            .map_err(|e| QueueError(describe(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sqs::operation::change_message_visibility::ChangeMessageVisibilityOutput;
    use aws_sdk_sqs::operation::delete_message_batch::DeleteMessageBatchOutput;
    use aws_sdk_sqs::operation::receive_message::ReceiveMessageOutput;
    use aws_sdk_sqs::operation::send_message::{SendMessageError, SendMessageOutput};
    use aws_sdk_sqs::types::BatchResultErrorEntry;
    use aws_sdk_sqs::types::error::QueueDoesNotExist;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use storeforward_core::fakes::message;

    const URL: &str = "http://127.0.0.1:4566/queue/eu-west-1/000000000000/orders";
    const FIFO_URL: &str = "http://127.0.0.1:4566/queue/eu-west-1/000000000000/orders.fifo";
    const DLQ: &str = "http://127.0.0.1:4566/queue/eu-west-1/000000000000/orders-dlq";

    fn order(group: Option<&str>) -> Order {
        Order {
            body: r#"{"id": 1}"#.into(),
            envelope: message("x", None).envelope,
            group_id: group.map(str::to_owned),
        }
    }

    fn attr_of<'a>(
        attrs: Option<&'a HashMap<String, MessageAttributeValue>>,
        name: &str,
    ) -> Option<&'a str> {
        attrs?.get(name)?.string_value()
    }

    #[tokio::test]
    async fn store_sends_the_body_and_envelope_and_returns_the_message_id() {
        let send = mock!(Client::send_message)
            .match_requests(|r| {
                r.queue_url() == Some(URL)
                    && r.message_body() == Some(r#"{"id": 1}"#)
                    && attr_of(r.message_attributes(), attr::IDEMPOTENCY_KEY) == Some("key-x")
                    && attr_of(r.message_attributes(), attr::CONTENT_TYPE)
                        == Some("application/json")
                    && r.message_group_id().is_none()
            })
            .then_output(|| SendMessageOutput::builder().message_id("mid-1").build());
        let client = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, &[&send]);
        let id = SqsQueue::new(client, URL)
            .store(&order(None))
            .await
            .unwrap();
        assert_eq!(id, "mid-1");
        assert_eq!(send.num_calls(), 1);
    }

    #[tokio::test]
    async fn fifo_queues_get_the_group_and_the_idempotency_key_as_deduplication_id() {
        let send = mock!(Client::send_message)
            .match_requests(|r| {
                r.message_group_id() == Some("customer-7")
                    && r.message_deduplication_id() == Some("key-x")
            })
            .then_output(|| SendMessageOutput::builder().message_id("mid-2").build());
        let client = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, &[&send]);
        let queue = SqsQueue::new(client, FIFO_URL);
        assert_eq!(
            queue.store(&order(Some("customer-7"))).await.unwrap(),
            "mid-2"
        );
    }

    #[tokio::test]
    async fn a_refused_write_is_a_storage_error() {
        let send = mock!(Client::send_message).then_error(|| {
            SendMessageError::QueueDoesNotExist(QueueDoesNotExist::builder().build())
        });
        let client = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, &[&send]);
        let err = SqsQueue::new(client, URL)
            .store(&order(None))
            .await
            .unwrap_err();
        assert!(err.0.contains("QueueDoesNotExist"), "{err}");
    }

    #[tokio::test]
    async fn retry_later_sets_the_visibility_in_whole_seconds_within_the_sqs_limit() {
        let change = mock!(Client::change_message_visibility)
            .match_requests(|r| {
                r.receipt_handle() == Some("rh-m1") && r.visibility_timeout() == Some(43_200)
            })
            .then_output(|| ChangeMessageVisibilityOutput::builder().build());
        let client = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, &[&change]);
        let source = SqsSource::new(client, URL, None);
        source
            .retry_later(&message("m1", None), Duration::from_secs(100_000))
            .await
            .unwrap();
        assert_eq!(change.num_calls(), 1);
    }

    #[tokio::test]
    async fn dead_letters_carry_the_envelope_and_why() {
        let long_reason = "é".repeat(400);
        let send = mock!(Client::send_message)
            .match_requests(|r| {
                let a = r.message_attributes();
                r.queue_url() == Some(DLQ)
                    && r.message_body() == Some(r#"{"order":"m1"}"#)
                    && attr_of(a, attr::IDEMPOTENCY_KEY) == Some("key-m1")
                    && attr_of(a, attr::FAILURE_KIND) == Some("permanent")
                    && attr_of(a, attr::FAILURE_STATUS) == Some("422")
                    && attr_of(a, attr::FAILURE_ATTEMPTS) == Some("3")
                    && attr_of(a, attr::FAILURE_REASON).is_some_and(|r| r.len() <= MAX_REASON_BYTES)
            })
            .then_output(|| SendMessageOutput::builder().message_id("dlq-1").build());
        let client = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, &[&send]);
        let source = SqsSource::new(client.clone(), URL, Some(DLQ.into()));
        let failure = Failure {
            reason: long_reason,
            status: Some(422),
            attempts: 3,
        };
        source
            .dead_letter(&message("m1", None), &failure)
            .await
            .unwrap();
        assert_eq!(send.num_calls(), 1);

        let no_dlq = SqsSource::new(client, URL, None);
        assert!(
            no_dlq
                .dead_letter(&message("m1", None), &failure)
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn parking_copies_the_message_to_the_probe_queue_with_a_delay() {
        const PROBE: &str = "http://127.0.0.1:4566/000000000000/orders-probe";
        let send = mock!(Client::send_message)
            .match_requests(|r| {
                r.queue_url() == Some(PROBE)
                    && r.message_body() == Some(r#"{"order":"m1"}"#)
                    && r.delay_seconds() == Some(900)
                    && attr_of(r.message_attributes(), attr::IDEMPOTENCY_KEY) == Some("key-m1")
            })
            .then_output(|| SendMessageOutput::builder().message_id("t-1").build());
        let client = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, &[&send]);
        let source = SqsSource::new(client.clone(), URL, None);
        assert!(
            source
                .park(&message("m1", None), Duration::from_secs(60))
                .await
                .is_err(),
            "no probe queue, no parking"
        );
        source
            .with_probe_queue(Some(PROBE.into()))
            .park(&message("m1", None), Duration::from_secs(3600))
            .await
            .unwrap();
        assert_eq!(send.num_calls(), 1);
    }

    #[tokio::test]
    async fn received_messages_become_domain_messages_and_broken_ones_are_skipped() {
        let receive = mock!(Client::receive_message)
            .match_requests(|r| {
                r.max_number_of_messages() == Some(10) && r.wait_time_seconds() == Some(1)
            })
            .then_output(|| {
                let good = aws_sdk_sqs::types::Message::builder()
                    .message_id("m1")
                    .receipt_handle("rh1")
                    .body("{}")
                    .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "4")
                    .attributes(MessageSystemAttributeName::MessageGroupId, "g1")
                    .message_attributes(attr::IDEMPOTENCY_KEY, string_attribute("k1").unwrap())
                    .build();
                let no_body = aws_sdk_sqs::types::Message::builder()
                    .message_id("m2")
                    .receipt_handle("rh2")
                    .build();
                ReceiveMessageOutput::builder()
                    .messages(good)
                    .messages(no_body)
                    .build()
            });
        let client = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, &[&receive]);
        let got = SqsSource::new(client, URL, None)
            .receive(10, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(got.len(), 1);
        let m = &got[0];
        assert_eq!(
            (m.id.as_str(), m.receipt_handle.as_str(), m.body.as_str()),
            ("m1", "rh1", "{}")
        );
        assert_eq!((m.receive_count, m.group_id.as_deref()), (4, Some("g1")));
        assert_eq!(m.envelope.idempotency_key, "k1");
    }

    #[tokio::test]
    async fn deletes_go_in_batches_of_ten_and_refusals_are_counted() {
        let delete = mock!(Client::delete_message_batch)
            .match_requests(|r| r.entries().len() <= 10)
            .then_output(|| {
                DeleteMessageBatchOutput::builder()
                    .failed(
                        BatchResultErrorEntry::builder()
                            .id("0")
                            .code("ReceiptHandleIsInvalid")
                            .sender_fault(true)
                            .build()
                            .unwrap(),
                    )
                    .set_successful(Some(vec![]))
                    .build()
                    .unwrap()
            });
        let client = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, &[&delete]);
        let handles: Vec<String> = (0..23).map(|i| format!("rh{i}")).collect();
        let refs: Vec<&str> = handles.iter().map(String::as_str).collect();
        let refused = SqsSource::new(client, URL, None).delete(&refs).await;
        assert_eq!(delete.num_calls(), 3);
        assert_eq!(refused, 3);
    }

    #[test]
    fn a_source_on_first_use_builds_no_client_until_called_and_shares_it_with_its_queues() {
        let settings = ClientSettings {
            max_attempts: 3,
            adaptive: false,
            attempt_timeout: Duration::from_secs(3),
        };
        let source = SqsSource::on_first_use(settings, URL, Some(DLQ.into()));
        let probe = source.for_queue(FIFO_URL);
        let (Connection::OnFirstUse(cell, _), Connection::OnFirstUse(probes, _)) =
            (&source.connection, &probe.connection)
        else {
            panic!("a source on first use was built with a client");
        };
        assert!(!cell.initialized());
        assert!(Arc::ptr_eq(cell, probes), "each queue would build a client");
    }

    #[test]
    fn client_settings_read_and_validate_the_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            Env::new(move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            })
        };
        let d = ClientSettings::from_env(&env(&[])).unwrap();
        assert_eq!(
            (d.max_attempts, d.adaptive, d.attempt_timeout),
            (3, false, Duration::from_secs(3))
        );
        let s = ClientSettings::from_env(&env(&[
            ("SQS_RETRY_MODE", "adaptive"),
            ("SQS_MAX_ATTEMPTS", "5"),
        ]))
        .unwrap();
        assert_eq!((s.max_attempts, s.adaptive), (5, true));
        assert!(ClientSettings::from_env(&env(&[("SQS_RETRY_MODE", "legacy")])).is_err());
        assert!(ClientSettings::from_env(&env(&[("SQS_MAX_ATTEMPTS", "0")])).is_err());
    }
}
