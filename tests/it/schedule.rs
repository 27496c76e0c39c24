//! The scheduled stack: an EventBridge rule instead of an event source mapping, a failover queue,
//! and a store whose primary queue is unavailable.

use std::time::Duration;

use serde_json::json;

use crate::support::{Answer, Outcome, StackKind, World, ensure, poll_until, unique};

const DRAIN: Duration = Duration::from_secs(60);
const SCHEDULED_EVENT: &str =
    include_str!("../../functions/forwarder/tests/fixtures/eventbridge-schedule.json");

pub async fn the_schedule_rule_targets_the_forwarder(w: &World) -> Outcome {
    let stack = w.stack(StackKind::Scheduled)?;
    let rule = stack.output("schedule_rule_name");
    let (status, described) = w
        .aws(
            "events",
            Some("AWSEvents.DescribeRule"),
            "/",
            &json!({ "Name": rule }),
        )
        .await?;
    ensure(
        status == 200
            && described["ScheduleExpression"]
                .as_str()
                .is_some_and(|e| e.starts_with("rate(") || e.starts_with("cron(")),
        || format!("rule {rule}: {status} {described}"),
    )?;
    let (_, targets) = w
        .aws(
            "events",
            Some("AWSEvents.ListTargetsByRule"),
            "/",
            &json!({ "Rule": rule }),
        )
        .await?;
    let forwarder = stack.output("forwarder_function_name");
    ensure(targets.to_string().contains(forwarder), || {
        format!("rule {rule} does not target {forwarder}: {targets}")
    })
}

pub async fn a_scheduled_invocation_drains_the_queue(w: &World) -> Outcome {
    let stack = w.stack(StackKind::Scheduled)?;
    let queue = stack.output("queue_url");
    let keys: Vec<String> = (0..15).map(|_| unique("scheduled")).collect();
    for key in &keys {
        w.enqueue(queue, &format!("{{\"id\":\"{key}\"}}"), key)
            .await?;
    }
    let event: serde_json::Value =
        serde_json::from_str(SCHEDULED_EVENT).map_err(|e| e.to_string())?;
    w.invoke(stack.output("forwarder_function_name"), &event)
        .await?;
    poll_until("all 15 orders at the backend", DRAIN, || async {
        Some(()).filter(|_| keys.iter().all(|k| w.receiver.delivered(k)))
    })
    .await
}

pub async fn the_failover_queue_takes_orders_and_is_drained_later(w: &World) -> Outcome {
    let stack = w.stack(StackKind::Scheduled)?;
    let body = format!("{{\"id\":\"{}\"}}", unique("failover"));
    let Answer { status, json, .. } = w
        .post_order(stack, "application/json", body.clone(), &[])
        .await?;
    ensure(status == 202 && json["storage"] == "failover", || {
        format!(
            "with the primary queue unavailable expected 202 from the failover queue, got {status} {json}"
        )
    })?;
    let key = json["idempotencyKey"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    w.invoke(stack.output("forwarder_function_name"), &json!({}))
        .await?;
    let delivered = poll_until("the failover order at the backend", DRAIN, || async {
        Some(w.receiver.deliveries(&key)).filter(|d| d.iter().any(|x| x.succeeded()))
    })
    .await?;
    ensure(delivered[0].body == body, || {
        format!("body changed: {:?}", delivered[0].body)
    })
}
