//! The CloudWatch dashboard every stack gets by default (`infra/dashboard.tf`), read back from
//! LocalStack: its widgets show this stack's queues and functions, and list this stack's alarms.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::support::{Outcome, StackKind, World, ensure};

const SQS_METRICS: [&str; 4] = [
    "ApproximateNumberOfMessagesVisible",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
    "ApproximateAgeOfOldestMessage",
];

/// Standard queues with the circuit breaker (a probe queue), FIFO queues, and a failover queue
/// on the scheduled stack.
pub async fn the_dashboard_is_applied_and_read_back(w: &World) -> Outcome {
    let queues = ["queue_url", "dlq_url", "probe_queue_url"];
    check(w, StackKind::Standard, &queues).await?;
    check(w, StackKind::BreakerFifo, &queues).await?;
    check(
        w,
        StackKind::Scheduled,
        &[
            "queue_url",
            "failover_queue_url",
            "dlq_url",
            "probe_queue_url",
        ],
    )
    .await
}

/// The dashboard of stack `kind`, whose queues are the outputs `queue_outputs` (their URLs).
async fn check(w: &World, kind: StackKind, queue_outputs: &[&str]) -> Outcome {
    let stack = w.stack(kind)?;
    let name = stack.output("dashboard_name");
    let store = stack.output("store_function_name");
    let forwarder = stack.output("forwarder_function_name");
    let (status, got) = w
        .aws(
            "monitoring",
            Some("GraniteServiceVersion20100801.GetDashboard"),
            "/",
            &json!({ "DashboardName": name }),
        )
        .await?;
    ensure(status == 200, || {
        format!("{kind:?}: GetDashboard {name}: {status} {got}")
    })?;
    let body: Value = got["DashboardBody"]
        .as_str()
        .and_then(|text| serde_json::from_str(text).ok())
        .ok_or_else(|| format!("{kind:?}: dashboard {name} has no JSON body: {got}"))?;
    let widgets = body["widgets"].as_array().cloned().unwrap_or_default();
    let metrics: Vec<&Vec<Value>> = widgets
        .iter()
        .filter_map(|widget| widget["properties"]["metrics"].as_array())
        .flatten()
        .filter_map(Value::as_array)
        .collect();
    // [namespace, metric, dimension, value, options?] as "namespace metric value".
    let shown: BTreeSet<String> = metrics
        .iter()
        .filter_map(|m| {
            Some(format!(
                "{} {} {}",
                m[0].as_str()?,
                m.get(1)?.as_str()?,
                m.get(3)?.as_str()?
            ))
        })
        .collect();

    // Every queue of the stack, depth and age, and no other queue.
    let queues: Vec<&str> = queue_outputs
        .iter()
        .map(|output| {
            let url = stack.output(output);
            url.rsplit('/').next().unwrap_or(url)
        })
        .collect();
    let expected: BTreeSet<String> = queues
        .iter()
        .flat_map(|queue| SQS_METRICS.map(|metric| format!("AWS/SQS {metric} {queue}")))
        .collect();
    let sqs: BTreeSet<String> = shown
        .iter()
        .filter(|s| s.starts_with("AWS/SQS "))
        .cloned()
        .collect();
    ensure(sqs == expected, || {
        format!("{kind:?}: dashboard {name} shows the queue metrics {sqs:?}, expected {expected:?}")
    })?;
    if kind == StackKind::BreakerFifo {
        ensure(
            queues[..2].iter().all(|queue| queue.ends_with(".fifo")),
            || format!("{kind:?}: the dashboard's orders queue and DLQ are not FIFO: {queues:?}"),
        )?;
    }

    // Both functions' own metrics, under their names.
    for wanted in [
        format!("storeforward Accepted {store}"),
        format!("storeforward Rejected {store}"),
        format!("storeforward StorageErrors {store}"),
        format!("storeforward Delivered {forwarder}"),
        format!("storeforward DeadLettered {forwarder}"),
        format!("storeforward Backend5xx {forwarder}"),
        format!("storeforward BackendNoAnswer {forwarder}"),
        format!("storeforward CircuitOpened {forwarder}"),
        format!("AWS/Lambda Errors {store}"),
        format!("AWS/Lambda Errors {forwarder}"),
    ] {
        ensure(shown.contains(&wanted), || {
            format!("{kind:?}: dashboard {name} lacks {wanted}; it shows {shown:?}")
        })?;
    }
    let latency: BTreeSet<&str> = metrics
        .iter()
        .filter(|m| {
            m.get(1) == Some(&json!("DeliveryLatency")) && m.get(3) == Some(&json!(forwarder))
        })
        .filter_map(|m| m.get(4)?["stat"].as_str())
        .collect();
    ensure(latency.contains("p50") && latency.contains("p99"), || {
        format!("{kind:?}: DeliveryLatency of {forwarder} shown as {latency:?}, not p50 and p99")
    })?;
    let by_reason = metrics.iter().any(|m| {
        m[0]["expression"].as_str().is_some_and(|e| {
            e.contains("Reason") && e.contains(&format!("FunctionName=\"{store}\""))
        })
    });
    ensure(by_reason, || {
        format!("{kind:?}: dashboard {name} has no SEARCH of {store}'s rejections by Reason")
    })?;

    // The failed attempts, from the forwarder's log group.
    let logs = widgets.iter().any(|widget| {
        widget["type"] == "log"
            && widget["properties"]["query"].as_str().is_some_and(|q| {
                q.contains(&format!("'/aws/lambda/{forwarder}'")) && q.contains("delivery.attempt")
            })
    });
    ensure(logs, || {
        format!(
            "{kind:?}: dashboard {name} has no log widget on {forwarder}'s delivery.attempt lines"
        )
    })?;

    // The alarm widget lists the stack's alarms by their real ARNs, all of them.
    let listed: BTreeSet<&str> = widgets
        .iter()
        .filter(|widget| widget["type"] == "alarm")
        .filter_map(|widget| widget["properties"]["alarms"].as_array())
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let (status, alarms) = w
        .aws(
            "monitoring",
            Some("GraniteServiceVersion20100801.DescribeAlarms"),
            "/",
            &json!({ "AlarmNamePrefix": format!("{name}-") }),
        )
        .await?;
    let actual: BTreeSet<&str> = alarms["MetricAlarms"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|alarm| alarm["AlarmArn"].as_str())
        .collect();
    ensure(
        status == 200 && !actual.is_empty() && listed == actual,
        || {
            format!(
                "{kind:?}: the dashboard lists the alarms {listed:?}, the stack has {actual:?} ({status})"
            )
        },
    )
}
