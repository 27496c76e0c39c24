//! Metrics in Embedded Metric Format reach CloudWatch Logs from both functions: no metric API
//! call, one JSON document per invocation in the log stream.

use std::time::Duration;

use serde_json::Value;

use crate::support::{Outcome, StackKind, World, ensure, now_ms, poll_until, unique};

/// The EMF documents among a function's log lines since `since_ms`.
async fn documents(w: &World, function: &str, since_ms: u64) -> Vec<Value> {
    w.log_lines(function, since_ms)
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .filter(|d| d["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "storeforward")
        .collect()
}

pub async fn both_functions_publish_emf_metrics_in_their_log_streams(w: &World) -> Outcome {
    let stack = w.stack(StackKind::Standard)?;
    let since = now_ms().saturating_sub(1_000);
    let key = w
        .accepted(stack, &format!(r#"{{"id":"{}"}}"#, unique("emf")), &[])
        .await?;
    let refused = w
        .post_order(stack, "application/json", "{\"unclosed\": ", &[])
        .await?;
    ensure(refused.status == 400, || {
        format!("a malformed order got {}", refused.status)
    })?;

    let store = stack.output("store_function_name");
    let (accepted, rejected) = poll_until(
        "the store's EMF documents",
        Duration::from_secs(60),
        || async {
            let docs = documents(w, store, since).await;
            let accepted = docs
                .iter()
                .find(|d| d["Accepted"] == 1 && d["FailoverUsed"] == 0)?;
            let rejected = docs
                .iter()
                .find(|d| d["Rejected"] == 1 && d["Reason"] == "malformed_json")?;
            Some((accepted.clone(), rejected.clone()))
        },
    )
    .await?;
    ensure(accepted["FunctionName"] == store, || {
        format!("the store's document names another function: {accepted}")
    })?;
    ensure(
        rejected["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
            == serde_json::json!([["FunctionName"], ["FunctionName", "Reason"]]),
        || format!("rejections are not counted by reason: {rejected}"),
    )?;

    w.await_delivery(&key, Duration::from_secs(60)).await?;
    let forwarder = stack.output("forwarder_function_name");
    let delivered = poll_until(
        "the forwarder's EMF document",
        Duration::from_secs(60),
        || async {
            documents(w, forwarder, since)
                .await
                .into_iter()
                .find(|d| d["Delivered"].as_u64() >= Some(1))
        },
    )
    .await?;
    let latencies = delivered["DeliveryLatency"].as_array().map_or(0, Vec::len);
    ensure(
        delivered["Backend2xx"].as_u64() >= Some(1)
            && latencies >= 1
            && ["Retried", "DeadLettered", "Dropped", "BackendNoAnswer"]
                .iter()
                .all(|m| delivered[m].is_u64()),
        || format!("the forwarder's document lacks its metrics: {delivered}"),
    )
}
