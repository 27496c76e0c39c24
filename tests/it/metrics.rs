//! Metrics in Embedded Metric Format reach CloudWatch Logs from both functions: no metric API
//! call, one JSON document per invocation in the log stream, carrying the `RequestId` that ties
//! it to its request (the store's `x-request-id`) or invocation (the forwarder's log lines).

use std::time::Duration;

use serde_json::Value;

use crate::support::{Answer, Outcome, StackKind, World, ensure, now_ms, poll_until, unique};

const WITHIN: Duration = Duration::from_secs(60);

/// The JSON lines a function logged since `since_ms`.
async fn json_lines(w: &World, function: &str, since_ms: u64) -> Vec<Value> {
    w.log_lines(function, since_ms)
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .collect()
}

/// Waits for the EMF document that `function` wrote for `request_id`.
async fn document(
    w: &World,
    function: &str,
    since_ms: u64,
    request_id: &str,
) -> Result<Value, String> {
    poll_until(
        &format!("{function}'s EMF document for {request_id}"),
        WITHIN,
        || async {
            json_lines(w, function, since_ms)
                .await
                .into_iter()
                .find(|d| {
                    d["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "storeforward"
                        && d["RequestId"] == request_id
                })
        },
    )
    .await
}

/// The store's request id for an answer it must have given.
fn request_id(answer: &Answer, status: u16) -> Result<&str, String> {
    match answer {
        Answer {
            status: s,
            request_id: Some(id),
            ..
        } if *s == status => Ok(id),
        _ => Err(format!(
            "expected {status} with an x-request-id, got {answer:?}"
        )),
    }
}

pub async fn both_functions_publish_emf_metrics_in_their_log_streams(w: &World) -> Outcome {
    let stack = w.stack(StackKind::Standard)?;
    let since = now_ms().saturating_sub(1_000);
    let body = format!(r#"{{"id":"{}"}}"#, unique("emf"));
    let order = w.post_order(stack, "application/json", body, &[]).await?;
    let refused = w
        .post_order(stack, "application/json", "{\"unclosed\": ", &[])
        .await?;
    let key = order.json["idempotencyKey"].as_str().unwrap_or_default();

    let store = stack.output("store_function_name");
    let accepted = document(w, store, since, request_id(&order, 202)?).await?;
    ensure(
        accepted["Accepted"] == 1
            && accepted["FailoverUsed"] == 0
            && accepted["FunctionName"] == store,
        || format!("the accepted order's document: {accepted}"),
    )?;
    let rejected = document(w, store, since, request_id(&refused, 400)?).await?;
    ensure(
        rejected["Rejected"] == 1
            && rejected["Reason"] == "malformed_json"
            && rejected["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
                == serde_json::json!([["FunctionName"], ["FunctionName", "Reason"]]),
        || format!("the rejection is not counted by reason: {rejected}"),
    )?;

    // The forwarder's invocation that delivered the order, from its log line about it.
    w.await_delivery(key, WITHIN).await?;
    let forwarder = stack.output("forwarder_function_name");
    let invocation = poll_until(
        &format!("the forwarder's log line delivering {key}"),
        WITHIN,
        || async {
            json_lines(w, forwarder, since).await.iter().find_map(|l| {
                // Flat JSON lines: the invocation span's `requestId` sits beside the attempt's.
                let about_it = l["event"] == "delivery.attempt"
                    && l["outcome"] == "delivered"
                    && l["idempotency_key"] == key;
                about_it
                    .then(|| l["requestId"].as_str().map(str::to_owned))
                    .flatten()
            })
        },
    )
    .await?;
    let delivered = document(w, forwarder, since, &invocation).await?;
    let latencies = delivered["DeliveryLatency"].as_array().map_or(0, Vec::len);
    ensure(
        delivered["Delivered"].as_u64() >= Some(1)
            && delivered["Backend2xx"].as_u64() >= Some(1)
            && latencies >= 1
            && ["Retried", "DeadLettered", "Dropped", "BackendNoAnswer"]
                .iter()
                .all(|m| delivered[m].is_u64()),
        || format!("the forwarder's document lacks its metrics: {delivered}"),
    )
}
