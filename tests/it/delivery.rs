//! The standard stack: API Gateway → store → SQS → event source mapping → forwarder → backend.

use std::time::Duration;

use aws_sdk_sqs::types::Message;

use crate::support::{Answer, Outcome, StackKind, World, attribute, ensure, poll_until, unique};

const DELIVERY: Duration = Duration::from_secs(60);
/// Three receives with backoff of at most 1, 2 and 4 s, plus event source mapping polling.
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

pub async fn malformed_orders_are_rejected_and_never_delivered(w: &World) -> Outcome {
    let stack = w.stack(StackKind::Standard)?;
    let marker = unique("malformed");
    let cases = [
        (
            "application/json",
            format!("{{\"id\":\"{marker}\","),
            400,
            "malformed_json",
        ),
        (
            "application/json",
            format!("[\"{marker}\"]"),
            400,
            "not_an_object",
        ),
        (
            "text/plain",
            format!("{{\"id\":\"{marker}\"}}"),
            415,
            "unsupported_media_type",
        ),
    ];
    for (content_type, body, want_status, want_code) in cases {
        let Answer { status, json, .. } =
            w.post_order(stack, content_type, body.clone(), &[]).await?;
        ensure(
            status == want_status && json["error"]["code"] == want_code,
            || {
                format!(
                    "{body:?} as {content_type}: expected {want_status} {want_code}, got {status} {json}"
                )
            },
        )?;
    }
    // A valid order carrying the same marker, posted after the bad ones, is delivered; by then any
    // bad one that had slipped through would have arrived too.
    let sentinel = w
        .accepted(
            stack,
            &format!("{{\"id\":\"{marker}\",\"sentinel\":true}}"),
            &[],
        )
        .await?;
    poll_until("the sentinel order", DELIVERY, || async {
        Some(()).filter(|_| !w.receiver.deliveries(&sentinel).is_empty())
    })
    .await?;
    let reached = w.receiver.deliveries_containing(&marker);
    ensure(
        reached.iter().all(|d| d.idempotency_key == sentinel),
        || format!("a rejected order reached the backend: {reached:?}"),
    )
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
        w.peek(dlq)
            .await
            .ok()?
            .into_iter()
            .find(|m| attribute(m, "IdempotencyKey") == Some(key.as_str()))
    })
    .await?;
    eprintln!(
        "{behaviour}: in the DLQ {:.1} s after its 202",
        accepted_at.elapsed().as_secs_f64()
    );
    Ok((key, dead))
}
