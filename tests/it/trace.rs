//! Where is my order? W3C trace context from the caller through the store to each delivery
//! attempt, checked with OpenTelemetry's own propagator; and `sfctl trace` (the real binary,
//! reading the functions' log groups on LocalStack) on a delivered, a retried, a dead-lettered
//! and a redriven order; `sfctl status --watch`.

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use serde_json::Value;

use crate::ops::{self, sfctl_ok};
use crate::support::{Answer, Delivery, Outcome, StackKind, World, ensure, poll_until, unique};

/// Delivery with one retry (a wait of at most 1 s, infra/localstack.tfvars), or a redrive's.
const DELIVERY: Duration = Duration::from_secs(90);
/// Until the trail shows what happened: the functions' lines reach CloudWatch Logs within
/// seconds after the invocation.
const TRAIL: Duration = Duration::from_secs(60);

/// Reads `traceparent` (and `tracestate`) with OpenTelemetry's W3C propagator, not ours.
fn extract(traceparent: &str, tracestate: Option<&str>) -> Result<SpanContext, String> {
    let mut carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    if let Some(state) = tracestate {
        carrier.insert("tracestate".to_owned(), state.to_owned());
    }
    let context = TraceContextPropagator::new().extract(&carrier);
    let span = context.span().span_context().clone();
    if span.is_valid() && span.is_remote() {
        Ok(span)
    } else {
        Err(format!("not a valid W3C traceparent: {traceparent:?}"))
    }
}

/// The context the backend received with one delivery.
fn received(delivery: &Delivery) -> Result<SpanContext, String> {
    let header = |name| {
        delivery
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let parent = header("traceparent").ok_or_else(|| {
        format!(
            "{}: a delivery without traceparent",
            delivery.idempotency_key
        )
    })?;
    extract(&parent, header("tracestate").as_deref())
}

/// `sfctl trace ARGS --json` once it shows `state`.
async fn trace_json(args: &[&str], state: &str) -> Result<Value, String> {
    let mut args = args.to_vec();
    args.extend(["--json", "--since", "1h"]);
    poll_until(
        &format!("sfctl trace {args:?} in state {state}"),
        TRAIL,
        || async {
            let out = sfctl_ok(ops::STACK, &args).await.ok()?;
            let trail: Value = serde_json::from_str(&out).ok()?;
            (trail["state"] == state).then_some(trail)
        },
    )
    .await
}

fn steps<'a>(trail: &'a Value, kind: &str) -> Vec<&'a Value> {
    trail["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["step"] == kind)
        .collect()
}

/// Posts an order with `headers`; it must be accepted.
async fn post(w: &World, behaviour: &str, headers: &[(&str, &str)]) -> Result<Answer, String> {
    let stack = w.stack(StackKind::Ops)?;
    let body = format!(
        r#"{{"id":"{}","behaviour":"{behaviour}"}}"#,
        unique("trace")
    );
    let answer = w
        .post_order(stack, "application/json", body, headers)
        .await?;
    ensure(answer.status == 202, || {
        format!("expected 202, got {} {}", answer.status, answer.json)
    })?;
    Ok(answer)
}

/// Member `name` of every step, in order.
fn each<'a>(trail: &'a Value, name: &str) -> Vec<&'a str> {
    trail["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| text(&s[name]))
        .collect()
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

pub async fn trace_context_reaches_the_backend_and_sfctl_traces_each_order(w: &World) -> Outcome {
    ops::prepare(w).await?;
    // Its redrive moves every dead letter of the ops stack: the ops suite must not be counting.
    let _alone = w.exclusive(StackKind::Ops).await;

    let caller_trace = uuid::Uuid::new_v4().simple().to_string();
    let caller_span = &uuid::Uuid::new_v4().simple().to_string()[..16];
    let traceparent = format!("00-{caller_trace}-{caller_span}-01");
    let tracestate = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";
    let retried = post(
        w,
        "fail-first:1",
        &[("traceparent", &traceparent), ("tracestate", tracestate)],
    )
    .await?;
    let plain = post(w, "ok", &[]).await?;
    let dead = post(w, "fail-first:1:422", &[]).await?;
    let exhausted = post(w, "fail-first:3", &[]).await?;

    // The store continues the caller's trace, or starts one, and answers with its own span.
    let stored = |answer: &Answer| {
        extract(
            answer
                .traceparent
                .as_deref()
                .ok_or_else(|| format!("202 without traceparent: {}", answer.json))?,
            None,
        )
    };
    let store_span = stored(&retried)?;
    ensure(
        store_span.trace_id().to_string() == caller_trace
            && store_span.span_id().to_string() != caller_span
            && store_span.trace_flags().is_sampled()
            && retried.json["traceId"] == caller_trace.as_str(),
        || {
            format!(
                "the 202 does not continue the caller's trace: {store_span:?} {}",
                retried.json
            )
        },
    )?;
    let plain_span = stored(&plain)?;
    ensure(plain_span.trace_id().to_string() != caller_trace, || {
        "an order without traceparent joined another trace".into()
    })?;

    // Each attempt reaches the backend as a child span: same trace, a span of its own, the
    // caller's tracestate unchanged.
    let key = |answer: &Answer| text(&answer.json["idempotencyKey"]).to_owned();
    let (retried_key, plain_key) = (key(&retried), key(&plain));
    w.await_delivery(&retried_key, DELIVERY).await?;
    w.await_delivery(&plain_key, DELIVERY).await?;
    let attempts = w.receiver.deliveries(&retried_key);
    let mut spans = vec![caller_span.to_owned(), store_span.span_id().to_string()];
    for delivery in &attempts {
        let context = received(delivery)?;
        ensure(
            context.trace_id() == store_span.trace_id()
                && context.trace_state().header() == tracestate,
            || format!("attempt {delivery:?} left the trace or lost its tracestate: {context:?}"),
        )?;
        spans.push(context.span_id().to_string());
    }
    let distinct: std::collections::HashSet<&String> = spans.iter().collect();
    ensure(attempts.len() == 2 && distinct.len() == spans.len(), || {
        format!("two attempts, each with a span of its own, expected: {spans:?}")
    })?;
    let plain_received = received(&w.receiver.deliveries(&plain_key)[0])?;
    ensure(
        plain_received.trace_id() == plain_span.trace_id()
            && plain_received.span_id() != plain_span.span_id()
            && plain_received.trace_state().header().is_empty(),
        || format!("the store's trace did not reach the backend: {plain_received:?}"),
    )?;

    // The retried order's trail, field by field.
    let trail = trace_json(&["trace", &retried_key], "delivered").await?;
    check_retried(&trail, &retried, &store_span, caller_span, &attempts)?;
    // Found by the caller's trace id too, as from the backend's own logs.
    let by_trace = trace_json(&["trace", "--trace-id", &caller_trace], "delivered").await?;
    ensure(by_trace["idempotency_key"] == retried_key.as_str(), || {
        format!("--trace-id found another order: {by_trace}")
    })?;
    // And by message id.
    let plain_trail = trace_json(&["trace", text(&plain.json["messageId"])], "delivered").await?;
    ensure(
        plain_trail["idempotency_key"] == plain_key.as_str()
            && plain_trail["trace_id"] == plain_span.trace_id().to_string().as_str(),
        || format!("the trail by message id is another order's: {plain_trail}"),
    )?;

    // A permanent rejection, dead-lettered at once; retries that run out, moved by the redrive
    // policy; both redriven with sfctl, and delivered.
    let (dead_key, exhausted_key) = (key(&dead), key(&exhausted));
    let dead_trail = trace_json(&["trace", &dead_key], "dead_lettered").await?;
    let last = steps(&dead_trail, "attempt");
    ensure(
        last.len() == 1
            && last[0]["status"] == 422
            && last[0]["outcome"] == "dead_lettered"
            && text(&dead_trail["reason"]).contains("422"),
        || format!("the dead letter's trail: {dead_trail}"),
    )?;
    let exhausted_trail = trace_json(&["trace", &exhausted_key], "dead_lettered").await?;
    let tries = steps(&exhausted_trail, "attempt");
    ensure(
        tries.len() == 3
            && tries
                .iter()
                .all(|t| t["status"] == 503 && t["outcome"] == "retrying")
            && tries[2]["last_receive"] == true,
        || format!("the exhausted order's trail: {exhausted_trail}"),
    )?;
    ops::wait_for_dead_letters(2).await?;
    sfctl_ok(ops::STACK, &["dlq", "redrive"]).await?;
    for key in [&dead_key, &exhausted_key] {
        w.await_delivery(key, DELIVERY).await?;
        let redriven = trace_json(&["trace", key], "delivered").await?;
        let kinds = each(&redriven, "step");
        let order: Vec<&str> = kinds
            .iter()
            .copied()
            .filter(|k| ["accepted", "dead_lettered", "redriven", "delivered"].contains(k))
            .collect();
        ensure(
            order == ["accepted", "dead_lettered", "redriven", "delivered"],
            || format!("{key}: the redriven order's steps are {kinds:?}: {redriven}"),
        )?;
    }
    let shown = sfctl_ok(ops::STACK, &["trace", &dead_key, "--since", "1h"]).await?;
    println!("sfctl trace {dead_key} (text):\n{shown}");
    ensure(
        ["accepted", "422", "dead-letter", "redriv", "delivered"]
            .iter()
            .all(|s| shown.contains(s)),
        || format!("the text trail lacks a step:\n{shown}"),
    )?;
    ops::wait_for_dead_letters(0).await?;

    // The same signals, for looking at: two refreshes a second apart, then it stops by itself.
    let watched = sfctl_ok(
        ops::STACK,
        &["status", "--watch", "--interval", "1", "--count", "2"],
    )
    .await?;
    ensure(
        watched.matches("Ctrl-C to stop").count() == 2
            && watched.matches("sfit-ops-orders-dlq").count() >= 2,
        || format!("status --watch did not show two refreshes:\n{watched}"),
    )
}

fn check_retried(
    trail: &Value,
    answer: &Answer,
    store_span: &SpanContext,
    caller_span: &str,
    attempts: &[Delivery],
) -> Outcome {
    let trace_id = store_span.trace_id().to_string();
    let accepted = steps(trail, "accepted");
    let tries = steps(trail, "attempt");
    ensure(
        trail["idempotency_key"] == answer.json["idempotencyKey"]
            && trail["trace_id"] == trace_id.as_str()
            && accepted.len() == 1
            && accepted[0]["message_id"] == answer.json["messageId"]
            && accepted[0]["queue"] == "primary"
            && accepted[0]["span_id"] == store_span.span_id().to_string().as_str()
            && accepted[0]["parent_span_id"] == caller_span
            && tries.len() == 2,
        || format!("the retried order's trail: {trail}"),
    )?;
    for (n, (step, delivery)) in tries.iter().zip(attempts).enumerate() {
        let span = received(delivery)?.span_id().to_string();
        let first = n == 0;
        ensure(
            step["receive_count"] == n + 1
                && step["status"] == if first { 503 } else { 200 }
                && step["outcome"] == if first { "retrying" } else { "delivered" }
                && step["span_id"] == span.as_str()
                && step["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0)
                && if first {
                    // The first wait of retry_schedule_seconds = [1, 2], drawn from [0.5, 1].
                    step["delay_s"]
                        .as_f64()
                        .is_some_and(|s| (0.5..=1.0).contains(&s))
                } else {
                    step.get("delay_s").is_none_or(Value::is_null)
                },
            || format!("attempt {} of the retried order: {step}", n + 1),
        )?;
    }
    let times = each(trail, "time");
    ensure(times.windows(2).all(|p| p[0] <= p[1]), || {
        format!("steps out of time order: {times:?}")
    })
}
