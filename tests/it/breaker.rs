//! Backend outages: the circuit breaker pauses delivery instead of dead-lettering, probes, and
//! resumes. The breaker stack's backend sits behind a gate the suite takes down and brings back.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::support::{GateMode, Outcome, StackKind, World, ensure, poll_until, unique};

/// Orders that arrive while the backend is down.
const ORDERS: usize = 300;
const POSTS_IN_FLIGHT: usize = 16;
/// Ten times the local stack's retry window: three receives at most 1 s + 2 s apart, plus up to
/// 3 s of request timeout each (infra/localstack.tfvars), is about ten seconds.
const OUTAGE: Duration = Duration::from_secs(100);
/// How soon the mapping must be switched off once orders fail.
const TRIP_WITHIN: Duration = Duration::from_secs(60);
/// How long the backlog may take to drain once the backend is back: the next probe (10 s), then
/// LocalStack's single poller at about ten messages a second.
const DRAIN_WITHIN: Duration = Duration::from_secs(180);

pub async fn an_outage_pauses_delivery_keeps_every_order_and_resumes(w: &World) -> Outcome {
    let stack = w.stack(StackKind::Breaker)?;
    let forwarder = stack.output("forwarder_function_name");
    let orders_queue = queue_name(stack.output("queue_url"));
    let run = unique("outage");
    let gate = &w.breaker_gate;
    gate.set(GateMode::Down(503))
        .await
        .map_err(|e| e.to_string())?;
    let started = Instant::now();

    let bodies = (0..ORDERS)
        .map(|n| format!("{{\"run\":\"{run}\",\"n\":{n}}}"))
        .collect();
    let keys = w.accept_all(stack, bodies, POSTS_IN_FLIGHT).await?;
    let posted_in = started.elapsed();

    poll_until("the orders mapping switched off", TRIP_WITHIN, || async {
        let states = w.mapping_states(forwarder).await.ok()?;
        (states.get(&orders_queue)? == "Disabled").then_some(())
    })
    .await?;
    let tripped_in = started.elapsed();
    let state = w.delivery_state(stack).await?;
    ensure(state["state"] == "open", || {
        format!("the delivery state should be open: {state}")
    })?;

    // The outage goes on: a scenario's length, not a wait for a condition.
    tokio::time::sleep_until((started + OUTAGE).into()).await;
    let during = w.receiver.deliveries_containing(&run);
    ensure(!during.iter().any(|d| d.succeeded()), || {
        "a delivery succeeded while the backend was down".into()
    })?;
    ensure(during.len() * 10 <= ORDERS, || {
        format!(
            "{} backend attempts during the outage for {ORDERS} orders: more than 0.1 per order",
            during.len()
        )
    })?;
    let state = w.delivery_state(stack).await?;
    ensure(
        state["state"] == "open" && state["last_probe"].is_string(),
        || format!("probes must be recorded while the circuit is open: {state}"),
    )?;

    gate.set(GateMode::Open).await.map_err(|e| e.to_string())?;
    let recovered = Instant::now();
    poll_until(
        "every order delivered after the recovery",
        DRAIN_WITHIN,
        || async { keys.iter().all(|k| w.receiver.delivered(k)).then_some(()) },
    )
    .await?;
    let drained_in = recovered.elapsed();

    let mut successes: HashMap<&str, usize> = HashMap::new();
    for d in w.receiver.deliveries_containing(&run) {
        if d.succeeded() {
            *successes
                .entry(
                    keys.iter()
                        .find(|k| **k == d.idempotency_key)
                        .map_or("?", |k| k),
                )
                .or_default() += 1;
        }
    }
    let duplicates: Vec<_> = successes.iter().filter(|(_, n)| **n > 1).collect();
    ensure(duplicates.is_empty(), || {
        format!("delivered more than once: {duplicates:?}")
    })?;
    let dead = w.peek(stack.output("dlq_url")).await?;
    ensure(dead.is_empty(), || {
        format!("{} dead letters after an outage", dead.len())
    })?;
    let states = w.mapping_states(forwarder).await?;
    ensure(
        states.get(&orders_queue).map(String::as_str) == Some("Enabled"),
        || format!("the orders mapping must be enabled again: {states:?}"),
    )?;
    let state = w.delivery_state(stack).await?;
    ensure(state["state"] == "delivering", || {
        format!("the delivery state should be delivering: {state}")
    })?;
    eprintln!(
        "\n  backend outage ({ORDERS} orders, 503 for {} s): posted in {:.1} s, mapping off after \
         {:.1} s, {} backend attempts during the outage ({:.3} per order), all delivered {:.1} s \
         after recovery, 0 dead letters, 0 duplicates",
        OUTAGE.as_secs(),
        posted_in.as_secs_f64(),
        tripped_in.as_secs_f64(),
        during.len(),
        during.len() as f64 / ORDERS as f64,
        drained_in.as_secs_f64(),
    );
    Ok(())
}

fn queue_name(url: &str) -> String {
    url.rsplit('/').next().unwrap_or(url).to_owned()
}
