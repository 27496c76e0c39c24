//! Storage outage: with SQS unreachable the store answers 503 with Retry-After and never 202;
//! with only the primary queue unreachable, the failover queue takes the orders and they are
//! delivered from there.

use std::time::Duration;

use futures::{StreamExt, stream};

use crate::support::{
    Answer, Mode, Outcome, SqsProxy, Stack, StackKind, World, ensure, now_ms, poll_until,
    queue_name, unique,
};

const DURING_OUTAGE: usize = 200;
const DURING_PRIMARY_OUTAGE: usize = 50;

/// Puts the proxy back to `Pass` however the suite ends.
struct Restore<'a>(&'a SqsProxy);

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        self.0.set(Mode::Pass);
    }
}

async fn post_many(w: &World, stack: &Stack, tag: &str, n: usize) -> Vec<Result<Answer, String>> {
    stream::iter(0..n)
        .map(|i| async move {
            let body = format!("{{\"id\":\"{tag}-{i}\"}}");
            w.post_order(stack, "application/json", body, &[]).await
        })
        .buffer_unordered(8)
        .collect()
        .await
}

pub async fn no_false_202_while_sqs_is_down_and_failover_takes_over(w: &World) -> Outcome {
    let stack = w.stack(StackKind::Outage)?;
    let _restore = Restore(&w.proxy);
    let down = unique("down");

    // SQS unreachable: every answer must be an honest 503.
    w.proxy.set(Mode::RefuseAll);
    let answers = post_many(w, stack, &down, DURING_OUTAGE).await;
    w.proxy.set(Mode::Pass);
    // Nothing of it is stored: this stack's queues are the suite's alone, and an order stored
    // would be in them now (visible, delayed or in flight) or already at the backend, which is
    // checked once the later orders have arrived.
    for queue in [
        stack.output("queue_url"),
        stack.output("failover_queue_url"),
    ] {
        w.ensure_empty("a queue after the outage's 503s", queue)
            .await?;
    }
    let false_202 = answers
        .iter()
        .filter(|a| matches!(a, Ok(Answer { status: 202, .. })))
        .count();
    let honest_503 = answers
        .iter()
        .filter(|a| {
            matches!(a, Ok(Answer { status: 503, retry_after: Some(_), json, .. })
                if json["error"]["code"] == "storage_unavailable")
        })
        .count();

    // Only the primary queue unreachable: the failover queue takes every order.
    let primary = queue_name(stack.output("queue_url")).to_owned();
    let failover = unique("failover");
    let failover_since = now_ms();
    w.proxy.set(Mode::RefuseQueue(primary));
    let failover_answers = post_many(w, stack, &failover, DURING_PRIMARY_OUTAGE).await;
    w.proxy.set(Mode::Pass);
    let failover_keys: Vec<String> = failover_answers
        .iter()
        .filter_map(|a| match a {
            Ok(Answer {
                status: 202, json, ..
            }) if json["storage"] == "failover" => {
                json["idempotencyKey"].as_str().map(str::to_owned)
            }
            _ => None,
        })
        .collect();

    // Back to normal: the primary takes orders again.
    let after = w
        .accepted(stack, &format!("{{\"id\":\"{}\"}}", unique("after")), &[])
        .await?;
    poll_until(
        "orders from the failover queue and the primary at the backend",
        Duration::from_secs(120),
        || async {
            let all = failover_keys.iter().chain(std::iter::once(&after));
            Some(()).filter(|_| all.into_iter().all(|k| w.receiver.delivered(k)))
        },
    )
    .await?;
    let leaked = w.receiver.deliveries_containing(&down).len();

    eprintln!(
        "\n  storage outage\n  {:<48}{:>5}\n  {:<48}{:>5}\n  {:<48}{:>5}\n  {:<48}{:>5}\n  {:<48}{:>5}\n  {:<48}{:>5}",
        "requests while SQS was unreachable",
        DURING_OUTAGE,
        "  answered 202 (false promises)",
        false_202,
        "  answered 503 with Retry-After",
        honest_503,
        "  delivered anyway",
        leaked,
        "requests while only the primary was unreachable",
        DURING_PRIMARY_OUTAGE,
        "  202 from the failover queue, all delivered",
        failover_keys.len(),
    );
    ensure(false_202 == 0 && leaked == 0, || {
        format!("{false_202} false 202s, {leaked} delivered")
    })?;
    ensure(honest_503 == DURING_OUTAGE, || {
        let other: Vec<String> = answers
            .iter()
            .filter(|a| !matches!(a, Ok(Answer { status: 503, .. })))
            .map(|a| format!("{a:?}"))
            .take(3)
            .collect();
        format!(
            "only {honest_503} of {DURING_OUTAGE} answers were 503 storage_unavailable with Retry-After: {other:?}"
        )
    })?;
    if failover_keys.len() == DURING_PRIMARY_OUTAGE {
        return Ok(());
    }
    let other: Vec<String> = failover_answers
        .iter()
        .filter(
            |a| !matches!(a, Ok(Answer { status: 202, json, .. }) if json["storage"] == "failover"),
        )
        .map(|a| format!("{a:?}"))
        .collect();
    // Why, in the store's words: its errors while only the primary was down.
    let errors: Vec<String> = w
        .log_lines(stack.output("store_function_name"), failover_since)
        .await?
        .into_iter()
        .filter(|l| l.contains("\"ERROR\""))
        .take(5)
        .collect();
    Err(format!(
        "only {} of {DURING_PRIMARY_OUTAGE} orders were stored in the failover queue; the others: {other:?}; the store's errors: {errors:?}",
        failover_keys.len()
    ))
}
