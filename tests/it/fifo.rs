//! The FIFO stack: per-group order holds while messages fail and are retried.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::support::{Outcome, StackKind, World, ensure, poll_until, queue_name, unique};

const GROUPS: usize = 3;
const PER_GROUP: u64 = 4;

pub async fn each_group_is_delivered_in_order_under_failures(w: &World) -> Outcome {
    let stack = w.stack(StackKind::Fifo)?;
    let run = unique("fifo");
    // Every order is queued before the first is received. LocalStack (4.13.1) makes a FIFO group
    // receivable again as soon as a failed message of it is visible again, even while later
    // messages of the group are still in flight (SQS keeps the group locked until none is): an
    // order posted while its group was in flight then came back with the retry, ahead of an
    // earlier order still in flight ("seq 4 attempted before seq 3 was delivered", one CI run).
    let forwarder = stack.output("forwarder_function_name");
    let queue = queue_name(stack.output("queue_url"));
    w.switch_mapping(forwarder, queue, false).await?;
    for seq in 1..=PER_GROUP {
        for g in 0..GROUPS {
            // The second message of every group fails once, which blocks its group until retried.
            let behaviour = if seq == 2 { "fail-first:1" } else { "ok" };
            let group = format!("{run}-g{g}");
            let body = format!(
                "{{\"run\":\"{run}\",\"group\":\"{group}\",\"seq\":{seq},\"behaviour\":\"{behaviour}\"}}"
            );
            w.accepted(stack, &body, &[("X-Message-Group-Id", &group)])
                .await?;
        }
    }
    w.switch_mapping(forwarder, queue, true).await?;
    let complete = |d: &[crate::support::Delivery]| {
        d.iter().filter(|x| x.succeeded()).count() == GROUPS * PER_GROUP as usize
    };
    let deliveries = poll_until(
        "every message of every group",
        Duration::from_secs(120),
        || async { Some(w.receiver.deliveries_containing(&run)).filter(|d| complete(d)) },
    )
    .await?;

    // Walk each group's attempts in arrival order: an attempt may only ever be for the next
    // message not yet delivered.
    let mut delivered: BTreeMap<String, u64> = BTreeMap::new();
    for d in &deliveries {
        let v: Value = serde_json::from_str(&d.body).map_err(|e| e.to_string())?;
        let (group, seq) = (
            v["group"].as_str().unwrap_or_default().to_owned(),
            v["seq"].as_u64().unwrap_or(0),
        );
        let done = delivered.entry(group.clone()).or_default();
        ensure(seq == *done + 1 || seq <= *done, || {
            format!(
                "group {group}: seq {seq} attempted before seq {} was delivered",
                *done + 1
            )
        })?;
        if d.succeeded() && seq == *done + 1 {
            *done = seq;
        }
    }
    ensure(delivered.values().all(|&n| n == PER_GROUP), || {
        format!("per-group progress {delivered:?}")
    })
}
