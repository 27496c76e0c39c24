//! Faults inside the forwarder: its deadline arriving in the middle of a batch, a panic while
//! delivering one message, and malformed SQS records. The last two invoke the deployed function
//! directly with a hand-made event, so the batch holds exactly the records under test.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Outcome, StackKind, World, ensure, now_ms, poll_until, unique};

/// `FAULT_PANIC_MARKER` in tests/stacks/std.tfvars.
const PANIC_MARKER: &str = "inject-panic";
/// The first round, then one visibility timeout (20 s) per further round, with slack.
const DEADLINE_ROUNDS: Duration = Duration::from_secs(120);
const LOGS: Duration = Duration::from_secs(30);

/// An SQS record as the event source mapping builds it, carrying the store's attributes.
fn record(queue_arn: &str, id: &str, body: &str) -> Value {
    json!({
        "messageId": id,
        "receiptHandle": format!("handle-{id}"),
        "body": body,
        "attributes": { "ApproximateReceiveCount": "1" },
        "messageAttributes": {
            "ContentType": { "stringValue": "application/json", "dataType": "String" },
            "IdempotencyKey": { "stringValue": id, "dataType": "String" },
        },
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": crate::support::REGION,
    })
}

/// The ids a partial batch response reports as failed.
fn failures(response: &Value) -> BTreeSet<String> {
    response["batchItemFailures"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned))
        .collect()
}

/// Waits until the function's log has a line with every one of `needles`.
async fn logged(w: &World, function: &str, since_ms: u64, needles: &[&str]) -> Outcome {
    poll_until(&format!("a log line with {needles:?}"), LOGS, || async {
        let lines = w.log_lines(function, since_ms).await.ok()?;
        lines
            .iter()
            .any(|l| needles.iter().all(|n| l.contains(n)))
            .then_some(())
    })
    .await
}

pub async fn a_panic_while_delivering_fails_only_that_message(w: &World) -> Outcome {
    let stack = w.stack(StackKind::Standard)?;
    let function = stack.output("forwarder_function_name");
    let since = now_ms();
    let run = unique("panic");
    let [before, panicking, after] = ["before", "panicking", "after"].map(|n| format!("{run}-{n}"));
    let body = |id: &str, extra: &str| format!(r#"{{"run":"{run}","id":"{id}"{extra}}}"#);
    let event = json!({ "Records": [
        record(stack.output("queue_arn"), &before, &body(&before, "")),
        record(stack.output("queue_arn"), &panicking, &body(&panicking, &format!(r#","note":"{PANIC_MARKER}""#))),
        record(stack.output("queue_arn"), &after, &body(&after, "")),
    ]});
    let response = w.invoke(function, &event).await?;
    ensure(
        failures(&response) == BTreeSet::from([panicking.clone()]),
        || format!("expected only {panicking} to fail, got {response}"),
    )?;
    for id in [&before, &after] {
        let deliveries = w.receiver.deliveries(id);
        ensure(deliveries.len() == 1 && deliveries[0].succeeded(), || {
            format!("{id} next to the panic: {deliveries:?}")
        })?;
    }
    ensure(w.receiver.deliveries(&panicking).is_empty(), || {
        format!("{panicking} reached the backend")
    })?;
    logged(w, function, since, &[&panicking, "panicked", PANIC_MARKER]).await
}

pub async fn malformed_records_fail_alone_with_a_reason(w: &World) -> Outcome {
    let stack = w.stack(StackKind::Standard)?;
    let function = stack.output("forwarder_function_name");
    let arn = stack.output("queue_arn");
    let since = now_ms();
    let run = unique("records");
    let id = |n: &str| format!("{run}-{n}");
    let order = |n: &str| format!(r#"{{"run":"{run}","id":"{}"}}"#, id(n));
    let without = |n: &str, field: &str| {
        let mut r = record(arn, &id(n), &order(n));
        r.as_object_mut().map(|o| o.remove(field));
        r
    };
    let with = |n: &str, field: &str, value: Value| {
        let mut r = record(arn, &id(n), &order(n));
        r[field] = value;
        r
    };
    // Malformed records, each with the reason its log line must give.
    let malformed = [
        (without("no-body", "body"), "record has no body"),
        (
            without("no-handle", "receiptHandle"),
            "record has no receiptHandle",
        ),
        (with("numeric-body", "body", json!(42)), "not an SQS record"),
        (
            with(
                "bad-attribute",
                "messageAttributes",
                json!({ "ContentType": "text" }),
            ),
            "not an SQS record",
        ),
    ];
    // A foreign producer's message without our attributes still delivers, keyed by its id.
    let foreign = without("foreign", "messageAttributes");
    let good = record(arn, &id("good"), &order("good"));
    let mut records = vec![good.clone(), foreign, good];
    records.extend(malformed.iter().map(|(r, _)| r.clone()));

    let response = w.invoke(function, &json!({ "Records": records })).await?;
    let want: BTreeSet<String> = malformed
        .iter()
        .filter_map(|(r, _)| r["messageId"].as_str().map(str::to_owned))
        .collect();
    ensure(failures(&response) == want, || {
        format!("expected exactly {want:?} to fail, got {response}")
    })?;
    for n in ["good", "foreign"] {
        let deliveries = w.receiver.deliveries(&id(n));
        ensure(deliveries.len() == 1 && deliveries[0].succeeded(), || {
            format!("{n} (the good record is repeated in the batch): {deliveries:?}")
        })?;
    }
    let reached = w.receiver.filtered(|d| {
        d.body.contains(&run) && ![id("good"), id("foreign")].contains(&d.idempotency_key)
    });
    ensure(reached.is_empty(), || {
        format!("malformed records reached the backend: {reached:?}")
    })?;
    for (r, reason) in &malformed {
        let message_id = r["messageId"].as_str().unwrap_or_default();
        logged(
            w,
            function,
            since,
            &[message_id, "malformed SQS record", reason],
        )
        .await?;
    }

    // A record without a messageId cannot be reported, so the whole invocation fails and the
    // event source mapping will hand the batch back: nothing in it is delivered now.
    let mut anonymous = record(arn, &id("anonymous"), &order("anonymous"));
    anonymous.as_object_mut().map(|o| o.remove("messageId"));
    let beside = record(arn, &id("beside-anonymous"), &order("beside-anonymous"));
    let failed = w
        .invoke(function, &json!({ "Records": [beside, anonymous] }))
        .await;
    ensure(
        failed.as_ref().is_err_and(|e| e.contains("messageId")),
        || format!("expected the invocation to fail, got {failed:?}"),
    )?;
    ensure(
        w.receiver.deliveries(&id("beside-anonymous")).is_empty(),
        || "a record of a failed invocation was delivered".into(),
    )
}

pub async fn messages_the_deadline_leaves_unstarted_come_back(w: &World) -> Outcome {
    let stack = w.stack(StackKind::Deadline)?;
    let function = stack.output("forwarder_function_name");
    let since = now_ms();
    let started = std::time::Instant::now();
    let run = unique("deadline");
    let keys: Vec<String> = (0..8).map(|n| format!("{run}-{n}")).collect();
    // One batch of all eight (visible together, the mapping takes up to ten): two at a time at
    // 800 ms each, a 3 s function reaches its deadline after two or three rounds, so at least
    // two are handed back. Sent one by one on a loaded machine, they could arrive in batches
    // too small to reach it.
    let messages: Vec<(String, String)> = keys
        .iter()
        .map(|key| {
            let body = format!(r#"{{"run":"{run}","key":"{key}","behaviour":"slow"}}"#);
            (body, key.clone())
        })
        .collect();
    w.enqueue_all(stack.output("queue_url"), &messages).await?;
    let delivered = poll_until("every order delivered", DEADLINE_ROUNDS, || async {
        let all: HashMap<&String, usize> = keys
            .iter()
            .map(|k| {
                let ok = w
                    .receiver
                    .deliveries(k)
                    .iter()
                    .filter(|d| d.succeeded())
                    .count();
                (k, ok)
            })
            .collect();
        all.values().all(|n| *n > 0).then_some(all)
    })
    .await?;
    let duplicates: usize = delivered.values().map(|n| n - 1).sum();
    ensure(duplicates == 0, || {
        format!("{duplicates} orders delivered twice: {delivered:?}")
    })?;
    // The forwarder stopped starting deliveries before its deadline, handed the rest back, and
    // was never killed by the timeout.
    logged(w, function, since, &["deferred", "not enough time left"]).await?;
    let lines = w.log_lines(function, since).await?;
    let count = |needle: &str| lines.iter().filter(|l| l.contains(needle)).count();
    let killed = count("Task timed out");
    eprintln!(
        "deadline: {} slow orders delivered in {:.1} s, {} deferrals at the deadline, {duplicates} duplicates, {killed} timeouts",
        keys.len(),
        started.elapsed().as_secs_f64(),
        count("not enough time left"),
    );
    ensure(killed == 0, || format!("{killed} invocations timed out"))
}
