//! The handler fed real event shapes (fixtures from `aws_lambda_events`), with a scripted backend
//! and the SQS adapter over a mocked SDK.

#![allow(clippy::unwrap_used)] // test helpers may panic

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::operation::change_message_visibility::ChangeMessageVisibilityOutput;
use aws_sdk_sqs::operation::delete_message_batch::DeleteMessageBatchOutput;
use aws_sdk_sqs::operation::get_queue_attributes::GetQueueAttributesOutput;
use aws_sdk_sqs::operation::receive_message::ReceiveMessageOutput;
use aws_sdk_sqs::operation::send_message::SendMessageOutput;
use aws_sdk_sqs::types::{Message as SdkMessage, MessageSystemAttributeName, QueueAttributeName};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use forwarder::{Event, Forwarder, Record};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use storeforward_core::batch::Policy;
use storeforward_core::breaker::{Breaker, DeliveryState, Switch};
use storeforward_core::fakes::{FakeSwitch, ScriptedBackend, policy};
use storeforward_core::poll::Limits;
use storeforward_core::retry::Attempt;
use storeforward_sqs::SqsSource;

const SQS_EVENT: &str = include_str!("fixtures/sqs-event.json");
const SCHEDULE: &str = include_str!("fixtures/eventbridge-schedule.json");
const QUEUE: &str = "http://127.0.0.1:4566/queue/eu-west-1/000000000000/orders";
const FAILOVER: &str = "http://127.0.0.1:4566/queue/eu-west-1/000000000000/orders-failover";
const DLQ: &str = "http://127.0.0.1:4566/queue/eu-west-1/000000000000/orders-dlq";
const ARN: &str = "arn:aws:sqs:eu-west-1:000000000000:orders";
const PROBE: &str = "http://127.0.0.1:4566/queue/eu-west-1/000000000000/orders-probe";
const PROBE_ARN: &str = "arn:aws:sqs:eu-west-1:000000000000:orders-probe";

fn status(s: u16) -> Attempt {
    Attempt::Response {
        status: s,
        retry_after: None,
    }
}

fn forwarder(backend: ScriptedBackend, rules: &[&Rule], queue: &str) -> Forwarder<ScriptedBackend> {
    with_circuit(backend, rules, queue, None)
}

fn with_circuit<W: Switch>(
    backend: ScriptedBackend,
    rules: &[&Rule],
    queue: &str,
    switch: Option<W>,
) -> Forwarder<ScriptedBackend, W> {
    let client: Client = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, rules);
    let primary = SqsSource::new(client, queue, Some(DLQ.into()))
        .with_probe_queue(switch.as_ref().map(|_| PROBE.into()));
    Forwarder {
        circuit: switch.map(|s| (s, primary.for_queue(PROBE))),
        backend,
        primary,
        failover_url: Some(FAILOVER.into()),
        policy: Policy {
            attempt_budget: Duration::from_secs(2),
            ..policy()
        },
        poll: Limits {
            wait: Duration::ZERO,
            max_messages: None,
            max_rps: None,
        },
        breaker: Breaker::new(3, Duration::from_secs(60)),
    }
}

fn context(deadline_in: Duration) -> Context {
    let mut ctx = Context::default();
    ctx.deadline = (std::time::SystemTime::now() + deadline_in)
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    ctx
}

/// The fixture's record, re-identified and pointed at our queue.
fn record(id: &str, arn: &str, group: Option<&str>) -> Value {
    let fixture: Value = serde_json::from_str(SQS_EVENT).unwrap();
    let mut r = fixture["Records"][0].clone();
    r["messageId"] = json!(id);
    r["receiptHandle"] = json!(format!("rh-{id}"));
    r["body"] = json!(format!(r#"{{"order":"{id}"}}"#));
    r["eventSourceARN"] = json!(arn);
    r["attributes"]["ApproximateReceiveCount"] = json!("1");
    if let Some(g) = group {
        r["attributes"]["MessageGroupId"] = json!(g);
    }
    r["messageAttributes"]["IdempotencyKey"] = json!({"stringValue": format!("key-{id}"), "stringListValues": [], "binaryListValues": [], "dataType": "String"});
    r
}

fn sqs_event(records: Vec<Value>) -> LambdaEvent<Event> {
    lambda_event(
        json!({ "Records": records }),
        context(Duration::from_secs(60)),
    )
}

fn failures(response: &Value) -> Vec<String> {
    response["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_owned())
        .collect()
}

fn visibility_ok() -> Rule {
    mock!(Client::change_message_visibility)
        .then_output(|| ChangeMessageVisibilityOutput::builder().build())
}

fn dlq_ok() -> Rule {
    mock!(Client::send_message)
        .match_requests(|r| r.queue_url() == Some(DLQ))
        .then_output(|| SendMessageOutput::builder().message_id("dead-1").build())
}

#[tokio::test]
async fn only_failed_messages_are_reported_and_each_is_settled() {
    let backend = ScriptedBackend::answering(status(200))
        .with("m2", [status(503)])
        .with("m3", [status(404)]);
    let (visibility, dlq) = (visibility_ok(), dlq_ok());
    let fw = forwarder(backend, &[&visibility, &dlq], QUEUE);
    let event = sqs_event(vec![
        record("m1", ARN, None),
        record("m2", ARN, None),
        record("m3", ARN, None),
    ]);

    let response = fw.handle(event).await.unwrap();
    assert_eq!(
        response,
        json!({"batchItemFailures": [{"itemIdentifier": "m2"}]})
    );
    assert_eq!(visibility.num_calls(), 1, "m2 gets its retry delay");
    assert_eq!(dlq.num_calls(), 1, "m3 is dead-lettered at once");
    assert_eq!(fw.backend.calls().len(), 3);
}

#[tokio::test]
async fn the_unmodified_fixture_is_delivered() {
    let fw = forwarder(ScriptedBackend::answering(status(204)), &[], QUEUE);
    let event = lambda_event(
        serde_json::from_str(SQS_EVENT).unwrap(),
        context(Duration::from_secs(60)),
    );
    let response = fw.handle(event).await.unwrap();
    assert_eq!(failures(&response), Vec::<String>::new());
    assert_eq!(fw.backend.calls(), ["MessageID_1"]);
}

#[tokio::test]
async fn malformed_records_fail_alone_and_repeated_ids_are_handled_once() {
    let fw = forwarder(ScriptedBackend::answering(status(200)), &[], QUEUE);
    let mut no_body = record("m2", ARN, None);
    no_body.as_object_mut().unwrap().remove("body");
    let mut bad_shape = record("m3", ARN, None);
    bad_shape["attributes"] = json!("not a map");
    let event = sqs_event(vec![
        record("m1", ARN, None),
        no_body,
        bad_shape,
        record("m1", ARN, None),
        record("m4", ARN, None),
    ]);

    let response = fw.handle(event).await.unwrap();
    assert_eq!(failures(&response), ["m2", "m3"]);
    assert_eq!(fw.backend.calls(), ["m1", "m4"]);
}

#[tokio::test]
async fn a_record_without_an_id_fails_the_invocation_rather_than_lose_it() {
    let fw = forwarder(ScriptedBackend::answering(status(200)), &[], QUEUE);
    let mut anonymous = record("m2", ARN, None);
    anonymous["messageId"] = json!("");
    assert!(
        fw.handle(sqs_event(vec![record("m1", ARN, None), anonymous]))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn messages_that_cannot_finish_before_the_deadline_are_reported_untried() {
    let fw = forwarder(ScriptedBackend::answering(status(200)), &[], QUEUE);
    let event = lambda_event(
        json!({ "Records": [record("m1", ARN, None), record("m2", ARN, None)] }),
        context(Duration::from_millis(500)),
    );
    let response = fw.handle(event).await.unwrap();
    assert_eq!(failures(&response), ["m1", "m2"]);
    assert!(fw.backend.calls().is_empty());
}

#[tokio::test]
async fn fifo_batches_stop_each_group_at_its_first_failure() {
    let backend = ScriptedBackend::answering(status(200)).with("a1", [status(500)]);
    let visibility = visibility_ok();
    let fifo_queue = "http://127.0.0.1:4566/queue/eu-west-1/000000000000/orders.fifo";
    let fw = forwarder(backend, &[&visibility], fifo_queue);
    let arn = "arn:aws:sqs:eu-west-1:000000000000:orders.fifo";
    let event = sqs_event(vec![
        record("a1", arn, Some("A")),
        record("b1", arn, Some("B")),
        record("a2", arn, Some("A")),
    ]);
    let response = fw.handle(event).await.unwrap();
    assert_eq!(failures(&response), ["a1", "a2"]);
    assert!(!fw.backend.calls().contains(&"a2".to_string()));
}

fn sdk_message(id: &str) -> SdkMessage {
    SdkMessage::builder()
        .message_id(id)
        .receipt_handle(format!("rh-{id}"))
        .body(format!(r#"{{"order":"{id}"}}"#))
        .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "1")
        .build()
}

#[tokio::test]
async fn a_scheduled_event_drains_the_queue_then_the_failover_queue() {
    let primary = mock!(Client::receive_message)
        .match_requests(|r| r.queue_url() == Some(QUEUE))
        .sequence()
        .output(|| {
            ReceiveMessageOutput::builder()
                .messages(sdk_message("p1"))
                .messages(sdk_message("p2"))
                .messages(sdk_message("p3"))
                .build()
        })
        .output(|| ReceiveMessageOutput::builder().build())
        .build();
    let failover = mock!(Client::receive_message)
        .match_requests(|r| r.queue_url() == Some(FAILOVER))
        .sequence()
        .output(|| {
            ReceiveMessageOutput::builder()
                .messages(sdk_message("f1"))
                .build()
        })
        .output(|| ReceiveMessageOutput::builder().build())
        .build();
    let deleted = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = deleted.clone();
    let delete = mock!(Client::delete_message_batch).then_compute_output(move |r| {
        let mut seen = seen.lock().unwrap();
        seen.extend(r.entries().iter().map(|e| {
            format!(
                "{}:{}",
                r.queue_url()
                    .unwrap_or_default()
                    .rsplit('/')
                    .next()
                    .unwrap(),
                e.receipt_handle()
            )
        }));
        DeleteMessageBatchOutput::builder()
            .set_successful(Some(vec![]))
            .set_failed(Some(vec![]))
            .build()
            .unwrap()
    });
    let visibility = visibility_ok();
    let backend = ScriptedBackend::answering(status(200)).with("p2", [status(502)]);
    let fw = forwarder(backend, &[&primary, &failover, &delete, &visibility], QUEUE);

    let event = lambda_event(
        serde_json::from_str(SCHEDULE).unwrap(),
        context(Duration::from_secs(60)),
    );
    let tally = fw.handle(event).await.unwrap();
    assert_eq!(
        tally,
        json!({"received": 4, "delivered": 3, "deadLettered": 0, "dropped": 0, "retrying": 1, "deferred": 0, "failed": 0, "parked": 0, "held": 0, "stopped": 0, "circuitOpened": 0, "circuitClosed": 0, "probesFailed": 0, "deliveryPaused": 0})
    );
    let mut deleted = deleted.lock().unwrap().clone();
    deleted.sort();
    assert_eq!(
        deleted,
        ["orders-failover:rh-f1", "orders:rh-p1", "orders:rh-p3"],
        "p2 stays for its retry"
    );
    assert_eq!(visibility.num_calls(), 1);
}

#[tokio::test]
async fn the_poll_stops_at_the_message_cap() {
    let receive = mock!(Client::receive_message)
        .match_requests(|r| r.max_number_of_messages() == Some(2))
        .then_output(|| {
            ReceiveMessageOutput::builder()
                .messages(sdk_message("p1"))
                .messages(sdk_message("p2"))
                .build()
        });
    let delete = mock!(Client::delete_message_batch).then_output(|| {
        DeleteMessageBatchOutput::builder()
            .set_successful(Some(vec![]))
            .set_failed(Some(vec![]))
            .build()
            .unwrap()
    });
    let mut fw = forwarder(
        ScriptedBackend::answering(status(200)),
        &[&receive, &delete],
        QUEUE,
    );
    fw.poll.max_messages = Some(2);
    let tally = fw
        .handle(lambda_event(json!({}), context(Duration::from_secs(60))))
        .await
        .unwrap();
    assert_eq!(tally["received"], 2);
    assert_eq!(
        receive.num_calls(),
        1,
        "one receive of 2 reaches the cap; no more"
    );
}

#[tokio::test]
async fn other_events_are_refused() {
    let fw = forwarder(ScriptedBackend::answering(status(200)), &[], QUEUE);
    let event = lambda_event(
        json!({"httpMethod": "POST"}),
        context(Duration::from_secs(60)),
    );
    let err = fw.handle(event).await.unwrap_err();
    assert!(err.to_string().contains("unsupported event"), "{err}");
}

#[tokio::test]
async fn records_that_are_not_an_array_or_not_objects_fail_the_invocation() {
    // Not an array: the event does not deserialize, and Lambda reports that as the error.
    let err = Event::try_from(json!({"Records": {"messageId": "m1"}})).unwrap_err();
    assert!(
        err.to_string()
            .contains("expected Records as an array of SQS records"),
        "{err}"
    );
    let fw = forwarder(ScriptedBackend::answering(status(200)), &[], QUEUE);
    for payload in [json!({"Records": ["m1"]}), json!({"Records": [null]})] {
        let event = lambda_event(payload.clone(), context(Duration::from_secs(60)));
        let err = fw.handle(event).await.unwrap_err();
        assert!(
            err.to_string().contains("without a messageId"),
            "{payload}: {err}"
        );
    }
}

#[tokio::test]
async fn an_sqs_event_is_read_record_by_record_whatever_its_other_keys() {
    // Keys before and after Records are ignored; a record that is not an SQS record is
    // reported with its id, the others delivered.
    let mut malformed = record("m2", ARN, None);
    malformed["body"] = json!(42);
    let payload = json!({
        "before": {"nested": [1, 2]},
        "Records": [record("m1", ARN, None), malformed],
        "after": "x"
    });
    let Event::Sqs(records) = Event::try_from(payload.clone()).unwrap() else {
        panic!("not read as an SQS event");
    };
    assert!(matches!(&records[0], Record::Read { message, .. } if message.id == "m1"));
    assert!(
        matches!(&records[1], Record::Malformed { id: Some(id), reason } if id == "m2" && reason.contains("not an SQS record")),
        "{records:?}"
    );
    let fw = forwarder(ScriptedBackend::answering(status(200)), &[], QUEUE);
    let response = fw
        .handle(lambda_event(payload, context(Duration::from_secs(60))))
        .await
        .unwrap();
    assert_eq!(failures(&response), ["m2"]);
    assert_eq!(fw.backend.calls(), ["m1"]);
}

#[tokio::test]
async fn an_emulator_deadline_given_as_time_left_is_honoured() {
    // `cargo lambda watch` sends Lambda-Runtime-Deadline-Ms: 600000 (time left, not epoch ms).
    let fw = forwarder(ScriptedBackend::answering(status(200)), &[], QUEUE);
    let mut ctx = Context::default();
    ctx.deadline = 600_000;
    let response = fw
        .handle(lambda_event(
            json!({ "Records": [record("m1", ARN, None)] }),
            ctx,
        ))
        .await
        .unwrap();
    assert_eq!(failures(&response), Vec::<String>::new());
    assert_eq!(fw.backend.calls(), ["m1"]);
}

#[tokio::test]
async fn a_record_from_the_probe_queue_is_a_probe_that_closes_the_circuit() {
    let open = DeliveryState::Open {
        since_ms: 1,
        reason: "backend answered 503".into(),
        last_probe_ms: None,
        last_probe: None,
        next_probe_ms: 2,
    };
    // The probe queue holds only the ticket in hand.
    let counts = mock!(Client::get_queue_attributes).then_output(|| {
        GetQueueAttributesOutput::builder()
            .attributes(
                QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
                "1",
            )
            .attributes(QueueAttributeName::ApproximateNumberOfMessages, "0")
            .build()
    });
    let fw = with_circuit(
        ScriptedBackend::answering(status(200)),
        &[&counts],
        QUEUE,
        Some(FakeSwitch::with(open)),
    );
    let switch = &fw.circuit.as_ref().unwrap().0;
    switch.consume(false).await.unwrap();

    let response = fw
        .handle(sqs_event(vec![record("t1", PROBE_ARN, None)]))
        .await
        .unwrap();
    assert_eq!(response, json!({"batchItemFailures": []}));
    assert_eq!(switch.state(), DeliveryState::Delivering);
    assert!(switch.consuming(), "the probe resumed consumption");
}

#[tokio::test]
async fn a_batch_that_opens_the_circuit_parks_one_holds_the_rest_and_switches_off() {
    let visibility = visibility_ok();
    let park = mock!(Client::send_message)
        .match_requests(|r| r.queue_url() == Some(PROBE))
        .then_output(|| SendMessageOutput::builder().message_id("ticket-1").build());
    let mut fw = with_circuit(
        ScriptedBackend::answering(status(503)),
        &[&visibility, &park],
        QUEUE,
        Some(FakeSwitch::default()),
    );
    fw.policy.max_in_flight = 1;
    let records = (1..=5)
        .map(|i| record(&format!("m{i}"), ARN, None))
        .collect();

    let response = fw.handle(sqs_event(records)).await.unwrap();
    assert_eq!(
        response,
        json!({"batchItemFailures": [
            {"itemIdentifier": "m1"}, {"itemIdentifier": "m2"},
            {"itemIdentifier": "m4"}, {"itemIdentifier": "m5"}
        ]}),
        "m3 opened the circuit and is parked; its copy is the ticket"
    );
    assert_eq!(park.num_calls(), 1);
    assert_eq!(fw.backend.calls(), ["m1", "m2", "m3"]);
    let switch = &fw.circuit.as_ref().unwrap().0;
    assert!(!switch.consuming());
    assert!(matches!(switch.state(), DeliveryState::Open { .. }));
}

/// An event as Lambda would hand it over: `payload` read from its JSON text.
fn lambda_event(payload: Value, context: Context) -> LambdaEvent<Event> {
    LambdaEvent::new(Event::try_from(payload).unwrap(), context)
}
