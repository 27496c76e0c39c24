//! The scheduled stack: an EventBridge rule instead of an event source mapping, a failover queue,
//! and a store whose primary queue is unavailable.

use serde_json::json;

use crate::support::{Answer, Outcome, StackKind, World, ensure, unique};

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
                .is_some_and(|e| e.starts_with("rate(") || e.starts_with("cron("))
            && described["State"] == "DISABLED",
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

/// The rule stays disabled in this stack (tests/stacks/sched.tfvars), so the suite's own
/// invocation is the only consumer: its tally must account for every order in both queues.
pub async fn a_scheduled_invocation_drains_both_queues(w: &World) -> Outcome {
    let stack = w.stack(StackKind::Scheduled)?;
    let _alone = w.exclusive(StackKind::Scheduled).await;
    let queue = stack.output("queue_url");
    let body = format!("{{\"id\":\"{}\"}}", unique("failover"));
    let Answer { status, json, .. } = w
        .post_order(stack, "application/json", body.clone(), &[])
        .await?;
    ensure(status == 202 && json["storage"] == "failover", || {
        format!(
            "with the primary queue unavailable expected 202 from the failover queue, got {status} {json}"
        )
    })?;
    let failover_key = json["idempotencyKey"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let keys: Vec<String> = (0..15).map(|_| unique("scheduled")).collect();
    for key in &keys {
        w.enqueue(queue, &format!("{{\"id\":\"{key}\"}}"), key)
            .await?;
    }
    let event: serde_json::Value =
        serde_json::from_str(SCHEDULED_EVENT).map_err(|e| e.to_string())?;
    let tally = w
        .invoke(stack.output("forwarder_function_name"), &event)
        .await?;
    ensure(tally["received"] == 16 && tally["delivered"] == 16, || {
        format!("one invocation should have delivered all 16 orders, its tally: {tally}")
    })?;
    let all = keys.iter().chain([&failover_key]);
    ensure(all.clone().all(|k| w.receiver.delivered(k)), || {
        let missing: Vec<_> = all.filter(|k| !w.receiver.delivered(k)).collect();
        format!("not at the backend: {missing:?}")
    })?;
    let delivered = w.receiver.deliveries(&failover_key);
    ensure(delivered[0].body == body, || {
        format!("body changed: {:?}", delivered[0].body)
    })?;
    w.ensure_empty("the orders queue", queue).await?;
    w.ensure_empty("the failover queue", stack.output("failover_queue_url"))
        .await
}
