//! The standard stack: API Gateway → store → SQS → event source mapping → forwarder → backend.

use std::time::Duration;

use aws_sdk_sqs::types::Message;

use crate::support::{Answer, Outcome, StackKind, World, attribute, ensure, poll_until, unique};

const DELIVERY: Duration = Duration::from_secs(60);
/// Three receives with retry waits of at most 1, 2 and 1 s (infra/localstack.tfvars), plus event
/// source mapping polling.
const REDRIVE: Duration = Duration::from_secs(150);

pub async fn order_is_delivered_byte_identical_with_its_key(w: &World) -> Outcome {
    let stack = w.stack(StackKind::Standard)?;
    let id = unique("byte-identical");
    // Odd spacing, escapes, raw UTF-8 and a number no f64 holds: any re-serialisation shows.
    let body = format!(
        "{{ \"id\" : \"{id}\",\r\n\t\"note\": \"caf\\u00e9 — ✓\", \"qty\":12345678901234567890123 }}"
    );
    let key = unique("key");
    let Answer { status, json, .. } = w
        .post_order(
            stack,
            "application/json; charset=utf-8",
            body.clone(),
            &[("Idempotency-Key", &key)],
        )
        .await?;
    ensure(status == 202, || {
        format!("expected 202, got {status} {json}")
    })?;
    ensure(
        json["idempotencyKey"] == key.as_str() && json["messageId"].is_string(),
        || format!("unexpected 202 body {json}"),
    )?;

    let deliveries = poll_until("the order at the backend", DELIVERY, || async {
        Some(w.receiver.deliveries(&key)).filter(|d| !d.is_empty())
    })
    .await?;
    let d = &deliveries[0];
    ensure(d.body == body, || {
        format!(
            "body changed in transit:\n sent {body:?}\n got  {:?}",
            d.body
        )
    })?;
    ensure(d.content_type == "application/json; charset=utf-8", || {
        format!("content type {:?}", d.content_type)
    })?;
    ensure(d.succeeded(), || format!("backend did {:?}", d.action))
}

pub async fn transient_failures_are_retried_until_delivered(w: &World) -> Outcome {
    let stack = w.stack(StackKind::Standard)?;
    let key = w
        .accepted(
            stack,
            &format!(
                "{{\"id\":\"{}\",\"behaviour\":\"fail-first:2\"}}",
                unique("transient")
            ),
            &[],
        )
        .await?;
    let attempts = poll_until("a successful redelivery", DELIVERY, || async {
        let d = w.receiver.deliveries(&key);
        Some(d).filter(|d| d.iter().any(|x| x.succeeded()))
    })
    .await?;
    let statuses: Vec<Option<u16>> = attempts.iter().map(|d| d.action.status()).collect();
    ensure(statuses == [Some(503), Some(503), Some(200)], || {
        format!("attempts answered {statuses:?}")
    })
}

pub async fn permanent_rejections_are_dead_lettered_after_one_attempt(w: &World) -> Outcome {
    let (key, dead) = dead_letter_of(w, "status:422", DELIVERY).await?;
    let reason = attribute(&dead, "FailureReason").unwrap_or_default();
    ensure(
        attribute(&dead, "FailureKind") == Some("permanent")
            && attribute(&dead, "FailureStatus") == Some("422")
            && reason.contains("422"),
        || {
            format!(
                "dead letter lacks its reason: {:?}",
                dead.message_attributes
            )
        },
    )?;
    let attempts = w.receiver.deliveries(&key).len();
    ensure(attempts == 1, || {
        format!("a permanent failure was attempted {attempts} times")
    })
}

pub async fn exhausted_retries_reach_the_dlq_through_the_redrive_policy(w: &World) -> Outcome {
    let (key, dead) = dead_letter_of(w, "status:500", REDRIVE).await?;
    ensure(attribute(&dead, "FailureKind").is_none(), || {
        "a retryable failure was dead-lettered by the forwarder, not by the redrive policy".into()
    })?;
    // localstack.tfvars: max_receive_count = 3; SQS moves the message on the 4th receive.
    let attempts = w.receiver.deliveries(&key).len();
    ensure(attempts == 3, || {
        format!("expected 3 attempts before the redrive, saw {attempts}")
    })
}

/// Posts an order the backend answers with `behaviour`, and waits for it in the DLQ.
async fn dead_letter_of(
    w: &World,
    behaviour: &str,
    within: Duration,
) -> Result<(String, Message), String> {
    let stack = w.stack(StackKind::Standard)?;
    let body = format!(
        "{{\"id\":\"{}\",\"behaviour\":\"{behaviour}\"}}",
        unique("dead")
    );
    let key = w.accepted(stack, &body, &[]).await?;
    let accepted_at = std::time::Instant::now();
    let dlq = stack.output("dlq_url");
    let dead = poll_until("the order in the DLQ", within, || async {
        w.take(dlq, &key).await.ok().flatten()
    })
    .await?;
    eprintln!(
        "{behaviour}: in the DLQ {:.1} s after its 202",
        accepted_at.elapsed().as_secs_f64()
    );
    Ok((key, dead))
}
