//! Backend outages: the circuit breaker pauses delivery instead of dead-lettering, probes, and
//! resumes. The breaker stack's backend sits behind a gate the suite takes down and brings back.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::ops::sfctl_ok;
use crate::support::{GateMode, Outcome, Stack, StackKind, World, ensure, poll_until, unique};

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

/// The breaker stack's `name_prefix`, for `sfctl`.
const STACK: &str = "sfit-brk";
/// `probe_interval_seconds` in infra/localstack.tfvars.
const PROBE_INTERVAL: Duration = Duration::from_secs(10);

/// One stack and one gate, so the scenarios run one after another: a backend answering 503, an
/// operator's pause while the circuit is open, and a backend whose port is closed.
pub async fn outages_pause_delivery_keep_every_order_and_resume(w: &World) -> Outcome {
    let stack = w.stack(StackKind::Breaker)?;
    outage(w, stack, GateMode::Down(503), "503 to every request").await?;
    an_operators_pause_outlasts_the_probes(w, stack).await?;
    outage(w, stack, GateMode::Closed, "its port closed").await
}

async fn set_gate(w: &World, mode: GateMode) -> Outcome {
    w.breaker_gate.set(mode).await.map_err(|e| e.to_string())
}

/// Waits until the orders queue's mapping reads `state`.
async fn mapping_reads(w: &World, stack: &Stack, state: &str, within: Duration) -> Outcome {
    let forwarder = stack.output("forwarder_function_name");
    let orders_queue = queue_name(stack.output("queue_url"));
    poll_until(&format!("the orders mapping {state}"), within, || async {
        let states = w.mapping_states(forwarder).await.ok()?;
        (states.get(&orders_queue)? == state).then_some(())
    })
    .await
}

async fn outage(w: &World, stack: &Stack, mode: GateMode, shape: &str) -> Outcome {
    let forwarder = stack.output("forwarder_function_name");
    let orders_queue = queue_name(stack.output("queue_url"));
    let run = unique("outage");
    set_gate(w, mode).await?;
    let started = Instant::now();

    let bodies = (0..ORDERS)
        .map(|n| format!("{{\"run\":\"{run}\",\"n\":{n}}}"))
        .collect();
    let keys = w.accept_all(stack, bodies, POSTS_IN_FLIGHT).await?;
    let posted_in = started.elapsed();

    mapping_reads(w, stack, "Disabled", TRIP_WITHIN).await?;
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

    set_gate(w, GateMode::Open).await?;
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
        "\n  backend outage ({ORDERS} orders, {shape} for {} s): posted in {:.1} s, mapping off after \
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

/// An operator pauses while the circuit is open: the backend comes back, but the probes must not
/// resume delivery; `sfctl resume` does, and everything is delivered.
async fn an_operators_pause_outlasts_the_probes(w: &World, stack: &Stack) -> Outcome {
    let run = unique("paused");
    set_gate(w, GateMode::Down(503)).await?;
    let bodies = (0..30)
        .map(|n| format!("{{\"run\":\"{run}\",\"n\":{n}}}"))
        .collect();
    let keys = w.accept_all(stack, bodies, POSTS_IN_FLIGHT).await?;
    mapping_reads(w, stack, "Disabled", TRIP_WITHIN).await?;

    sfctl_ok(
        STACK,
        &["pause", "--reason", "integration test: backend maintenance"],
    )
    .await?;
    set_gate(w, GateMode::Open).await?;
    let status = sfctl_ok(STACK, &["status"]).await?;
    ensure(
        status.contains("PAUSED by an operator") && status.contains("backend maintenance"),
        || format!("sfctl status must show the pause and its reason:\n{status}"),
    )?;
    // Three probe intervals with the backend up: the ticket comes back, and is held.
    let observed = Instant::now();
    tokio::time::sleep(3 * PROBE_INTERVAL).await;
    let delivered = keys.iter().filter(|k| w.receiver.delivered(k)).count();
    ensure(delivered == 0, || {
        format!("{delivered} orders delivered while paused by an operator")
    })?;
    let state = w.delivery_state(stack).await?;
    ensure(
        state["state"] == "paused" && state["reason"] == "integration test: backend maintenance",
        || format!("the probes must leave the operator's pause: {state}"),
    )?;
    mapping_reads(w, stack, "Disabled", Duration::ZERO).await?;

    sfctl_ok(STACK, &["resume"]).await?;
    poll_until(
        "every paused order delivered after sfctl resume",
        DRAIN_WITHIN,
        || async { keys.iter().all(|k| w.receiver.delivered(k)).then_some(()) },
    )
    .await?;
    mapping_reads(w, stack, "Enabled", Duration::ZERO).await?;
    let state = w.delivery_state(stack).await?;
    ensure(state["state"] == "delivering", || {
        format!("after sfctl resume the state should be delivering: {state}")
    })?;
    eprintln!(
        "\n  operator pause: nothing delivered in {:.0} s of probes with the backend up; all 30 \
         delivered after sfctl resume",
        observed.elapsed().as_secs_f64()
    );
    Ok(())
}

fn queue_name(url: &str) -> String {
    url.rsplit('/').next().unwrap_or(url).to_owned()
}

/// A backend that rejects some orders (422) and fails a few once (503) is answering: the circuit
/// stays closed, the mapping enabled, and every other order is delivered.
pub async fn a_backend_that_fails_some_orders_keeps_the_circuit_closed(w: &World) -> Outcome {
    const N: usize = 60;
    let stack = w.stack(StackKind::Standard)?;
    let forwarder = stack.output("forwarder_function_name");
    let orders_queue = queue_name(stack.output("queue_url"));
    let run = unique("partial");
    let behaviour = |n: usize| match n {
        n if n % 5 == 0 => "status:422",
        n if n % 7 == 0 => "fail-first:1",
        _ => "ok",
    };
    let bodies = (0..N)
        .map(|n| {
            format!(
                "{{\"run\":\"{run}\",\"n\":{n},\"behaviour\":\"{}\"}}",
                behaviour(n)
            )
        })
        .collect();
    let keys = w.accept_all(stack, bodies, POSTS_IN_FLIGHT).await?;
    let states_seen = std::sync::Mutex::new(std::collections::HashSet::new());
    poll_until(
        "every order that can be delivered delivered",
        DRAIN_WITHIN,
        || {
            let states = w.mapping_states(forwarder);
            let (keys, seen, orders_queue) = (&keys, &states_seen, &orders_queue);
            async move {
                if let Some(state) = states.await.ok()?.get(orders_queue) {
                    seen.lock().unwrap().insert(state.clone());
                }
                keys.iter()
                    .enumerate()
                    .filter(|(n, _)| n % 5 != 0)
                    .all(|(_, k)| w.receiver.delivered(k))
                    .then_some(())
            }
        },
    )
    .await?;
    let states_seen = states_seen.into_inner().unwrap();
    ensure(states_seen == ["Enabled".to_owned()].into(), || {
        format!("the orders mapping must stay enabled: saw {states_seen:?}")
    })?;
    let state = w.delivery_state(stack).await?;
    ensure(state["state"] == "delivering", || {
        format!("the circuit must stay closed: {state}")
    })?;
    for (n, key) in keys.iter().enumerate().filter(|(n, _)| n % 5 == 0) {
        let attempts = w.receiver.deliveries(key).len();
        ensure(attempts == 1, || {
            format!("order {n} (422) was tried {attempts} times instead of once")
        })?;
    }
    Ok(())
}
