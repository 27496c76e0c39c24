//! Backend outages: the circuit breaker pauses delivery instead of dead-lettering, probes, and
//! resumes. Each breaker stack's backend sits behind a gate the suite takes down (503 to
//! everything), closes (connection refused) and brings back.

use std::collections::HashMap;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::ops::sfctl_ok;
use crate::support::{
    GateMode, Outcome, Stack, StackKind, World, ensure, poll_until, queue_name, unique,
};

/// Orders that arrive while the backend is down.
const ORDERS: usize = 300;
const POSTS_IN_FLIGHT: usize = 16;
/// Ten times the local stack's retry window: three receives at most 1 s + 2 s apart, plus up to
/// 3 s of request timeout each (infra/localstack.tfvars), is about ten seconds.
const OUTAGE: Duration = Duration::from_secs(100);
/// How soon the mapping must be switched off once orders fail.
const TRIP_WITHIN: Duration = Duration::from_secs(60);
/// How long the backlog may take to drain once the backend is back: the next probe (10 s, and
/// up to 15 s of LocalStack's idle polling), then its single poller at about ten messages a second.
const DRAIN_WITHIN: Duration = Duration::from_secs(180);
/// `probe_interval_seconds` in infra/localstack.tfvars.
const PROBE_INTERVAL: Duration = Duration::from_secs(10);
/// FIFO stacks: message groups the orders are spread over.
const GROUPS: usize = 10;

/// One stack and one gate, so the scenarios run one after another: a backend answering 503, an
/// operator's pause while the circuit is open, and a backend whose port is closed.
pub async fn outages_pause_delivery_keep_every_order_and_resume(w: &World) -> Outcome {
    let kind = StackKind::Breaker;
    outage(w, kind, GateMode::Down(503), "503 to every request").await?;
    an_operators_pause_outlasts_the_probes(w, kind).await?;
    outage(w, kind, GateMode::Closed, "its port closed").await
}

/// The same outage on FIFO queues: every group is delivered in order across the pause.
pub async fn a_fifo_outage_keeps_each_groups_order(w: &World) -> Outcome {
    outage(w, StackKind::BreakerFifo, GateMode::Down(503), "503, FIFO").await
}

async fn set_gate(w: &World, kind: StackKind, mode: GateMode) -> Outcome {
    w.gate(kind)?.set(mode).await.map_err(|e| e.to_string())
}

/// Waits until the orders queue's mapping reads `state`.
async fn mapping_reads(w: &World, stack: &Stack, state: &str, within: Duration) -> Outcome {
    let forwarder = stack.output("forwarder_function_name");
    let orders_queue = queue_name(stack.output("queue_url")).to_owned();
    poll_until(&format!("the orders mapping {state}"), within, || async {
        let states = w.mapping_states(forwarder).await.ok()?;
        (states.get(&orders_queue)? == state).then_some(())
    })
    .await
}

/// Posts `n` orders of a new run; returns the run and the keys, in posting order. On a FIFO stack
/// the orders are spread over message groups, each group's posted one after another (orders of
/// one group in flight together have no order), the groups side by side.
async fn post_run(
    w: &World,
    stack: &Stack,
    prefix: &str,
    n: usize,
) -> Result<(String, Vec<String>), String> {
    let run = unique(prefix);
    let body = |i: usize| format!("{{\"run\":\"{run}\",\"n\":{i}}}");
    if !stack.output("queue_url").ends_with(".fifo") {
        let keys = w
            .accept_all(stack, (0..n).map(body).collect(), POSTS_IN_FLIGHT)
            .await?;
        return Ok((run.clone(), keys));
    }
    let groups = (0..GROUPS).map(|g| {
        let (run, body) = (&run, &body);
        async move {
            let group = format!("{run}-g{g}");
            let mut keys = Vec::new();
            for i in (g..n).step_by(GROUPS) {
                let key = w
                    .accepted(stack, &body(i), &[("X-Message-Group-Id", &group)])
                    .await?;
                keys.push((i, key));
            }
            Ok::<_, String>(keys)
        }
    });
    let mut keys: Vec<(usize, String)> = futures::future::try_join_all(groups)
        .await?
        .into_iter()
        .flatten()
        .collect();
    keys.sort_unstable_by_key(|(i, _)| *i);
    Ok((run, keys.into_iter().map(|(_, k)| k).collect()))
}

/// While the backend is down for [`OUTAGE`], at most 0.1 attempts per order reach it (the batch
/// that opened the circuit, and the probes); afterwards every order is delivered once, nothing is
/// dead-lettered, the mapping is on again and the state says delivering.
async fn outage(w: &World, kind: StackKind, mode: GateMode, shape: &str) -> Outcome {
    let stack = w.stack(kind)?;
    set_gate(w, kind, mode).await?;
    let started = Instant::now();
    let (run, keys) = post_run(w, stack, "outage", ORDERS).await?;
    let posted_in = started.elapsed();

    mapping_reads(w, stack, "Disabled", TRIP_WITHIN).await?;
    // The mapping goes off first, then the state is recorded.
    poll_until("the delivery state open", TRIP_WITHIN, || async {
        let state = w.delivery_state(stack).await.ok()?;
        (state["state"] == "open").then_some(())
    })
    .await?;
    let tripped_in = started.elapsed();

    // The outage goes on: a scenario's length, not a wait for a condition.
    tokio::time::sleep_until((started + OUTAGE).into()).await;
    let during = outage_attempts(w, &run)?;
    let state = w.delivery_state(stack).await?;
    ensure(
        state["state"] == "open" && state["last_probe"].is_string(),
        || format!("probes must be recorded while the circuit is open: {state}"),
    )?;

    set_gate(w, kind, GateMode::Open).await?;
    let recovered = Instant::now();
    poll_until(
        "every order delivered after the recovery",
        DRAIN_WITHIN,
        || async { keys.iter().all(|k| w.receiver.delivered(k)).then_some(()) },
    )
    .await?;
    let drained_in = recovered.elapsed();

    settled(w, stack, &run, &keys).await?;
    mapping_reads(w, stack, "Enabled", Duration::ZERO).await?;
    eprintln!(
        "\n  backend outage ({ORDERS} orders, {shape} for {} s): posted in {:.1} s, mapping off after \
         {:.1} s, {during} backend attempts during the outage ({:.3} per order), all delivered {:.1} s \
         after recovery, 0 dead letters, 0 duplicates",
        OUTAGE.as_secs(),
        posted_in.as_secs_f64(),
        tripped_in.as_secs_f64(),
        during as f64 / ORDERS as f64,
        drained_in.as_secs_f64(),
    );
    Ok(())
}

/// The attempts of `run` so far, none of which may have succeeded; at most 0.1 per order.
fn outage_attempts(w: &World, run: &str) -> Result<usize, String> {
    let during = w.receiver.deliveries_containing(run);
    ensure(!during.iter().any(|d| d.succeeded()), || {
        "a delivery succeeded while the backend was down".into()
    })?;
    ensure(during.len() * 10 <= ORDERS, || {
        format!(
            "{} backend attempts during the outage for {ORDERS} orders: more than 0.1 per order",
            during.len()
        )
    })?;
    Ok(during.len())
}

/// After the recovery: each order delivered exactly once (in order within its group, on FIFO
/// stacks), nothing dead-lettered, and the state back to delivering.
async fn settled(w: &World, stack: &Stack, run: &str, keys: &[String]) -> Outcome {
    let successes: Vec<_> = w
        .receiver
        .deliveries_containing(run)
        .into_iter()
        .filter(|d| d.succeeded())
        .collect();
    let mut per_key: HashMap<&str, usize> = HashMap::new();
    for d in &successes {
        *per_key.entry(d.idempotency_key.as_str()).or_default() += 1;
    }
    let duplicates: Vec<_> = per_key.iter().filter(|(_, n)| **n > 1).collect();
    // A duplicate is explained by the forwarder's own account: its lines for that order (each
    // attempt, parked or held) and every ERROR it logged.
    let account = match duplicates.is_empty() {
        true => Vec::new(),
        false => w
            .log_lines(stack.output("forwarder_function_name"), 0)
            .await
            .unwrap_or_else(|e| vec![e])
            .into_iter()
            .filter(|l| {
                l.contains("\"ERROR\"") || duplicates.iter().any(|(key, _)| l.contains(*key))
            })
            .take(60)
            .collect(),
    };
    ensure(duplicates.is_empty() && per_key.len() == keys.len(), || {
        format!(
            "{} of {} orders delivered; more than once: {duplicates:?}; the forwarder's lines \
             for them and its errors:\n{}",
            per_key.len(),
            keys.len(),
            account.join("\n")
        )
    })?;
    if stack.output("queue_url").ends_with(".fifo") {
        let mut last: HashMap<u64, u64> = HashMap::new();
        for d in &successes {
            let n = serde_json::from_str::<Value>(&d.body)
                .ok()
                .and_then(|v| v["n"].as_u64())
                .ok_or_else(|| format!("a delivery without its number: {}", d.body))?;
            let group = n % GROUPS as u64;
            if let Some(before) = last.insert(group, n) {
                ensure(before < n, || {
                    format!("group {group}: order {n} was delivered after order {before}")
                })?;
            }
        }
    }
    let dead = w.peek(stack.output("dlq_url")).await?;
    ensure(dead.is_empty(), || {
        format!("{} dead letters after an outage", dead.len())
    })?;
    let state = w.delivery_state(stack).await?;
    ensure(state["state"] == "delivering", || {
        format!("the delivery state should be delivering: {state}")
    })
}

/// An operator pauses while the circuit is open: the backend comes back, but the probes must not
/// resume delivery; `sfctl resume` does, and everything is delivered.
async fn an_operators_pause_outlasts_the_probes(w: &World, kind: StackKind) -> Outcome {
    let stack = w.stack(kind)?;
    let sfctl_stack = stack
        .output("forwarder_function_name")
        .trim_end_matches("-forwarder")
        .to_owned();
    set_gate(w, kind, GateMode::Down(503)).await?;
    let (_, keys) = post_run(w, stack, "paused", 30).await?;
    mapping_reads(w, stack, "Disabled", TRIP_WITHIN).await?;

    sfctl_ok(
        &sfctl_stack,
        &["pause", "--reason", "integration test: backend maintenance"],
    )
    .await?;
    set_gate(w, kind, GateMode::Open).await?;
    let status = sfctl_ok(&sfctl_stack, &["status"]).await?;
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

    sfctl_ok(&sfctl_stack, &["resume"]).await?;
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

/// Scheduled mode: a tick that finds the circuit open probes instead of draining. The suite
/// invokes the ticks (every probe interval, where EventBridge would every minute).
pub async fn a_scheduled_forwarder_probes_instead_of_draining(w: &World) -> Outcome {
    let kind = StackKind::BreakerScheduled;
    let stack = w.stack(kind)?;
    let forwarder = stack.output("forwarder_function_name");
    let tick = || async {
        let event: Value = serde_json::from_str(SCHEDULED_EVENT).map_err(|e| e.to_string())?;
        w.invoke(forwarder, &event).await
    };
    set_gate(w, kind, GateMode::Down(503)).await?;
    let started = Instant::now();
    let (run, keys) = post_run(w, stack, "sched-outage", ORDERS).await?;

    let first = tick().await?;
    ensure(first["circuitOpened"] == 1 && first["parked"] == 1, || {
        format!("the first tick should open the circuit: {first}")
    })?;
    let state = w.delivery_state(stack).await?;
    ensure(state["state"] == "open", || {
        format!("the delivery state should be open: {state}")
    })?;
    let mut probes_failed = 0;
    while started.elapsed() < OUTAGE {
        tokio::time::sleep(PROBE_INTERVAL).await;
        let t = tick().await?;
        ensure(
            t["received"].as_u64() <= Some(1) && t["delivered"] == 0,
            || format!("a tick while the circuit is open may only probe its ticket: {t}"),
        )?;
        probes_failed += t["probesFailed"].as_u64().unwrap_or(0);
    }
    ensure(probes_failed > 0, || {
        "no tick probed during the outage".into()
    })?;
    let during = outage_attempts(w, &run)?;

    set_gate(w, kind, GateMode::Open).await?;
    let recovered = Instant::now();
    let closed = std::sync::atomic::AtomicU64::new(0);
    poll_until(
        "every order delivered by the ticks after the recovery",
        DRAIN_WITHIN,
        || async {
            let t = tick().await.ok()?;
            closed.fetch_add(t["circuitClosed"].as_u64().unwrap_or(0), SeqCst);
            keys.iter().all(|k| w.receiver.delivered(k)).then_some(())
        },
    )
    .await?;
    let drained_in = recovered.elapsed();
    let closed = closed.load(SeqCst);
    ensure(closed == 1, || {
        format!("one tick's probe should have closed the circuit, not {closed}")
    })?;
    settled(w, stack, &run, &keys).await?;
    eprintln!(
        "\n  scheduled backend outage ({ORDERS} orders, 503 for {} s): {probes_failed} failed probes, \
         {during} backend attempts during the outage ({:.3} per order), all delivered {:.1} s after \
         recovery",
        OUTAGE.as_secs(),
        during as f64 / ORDERS as f64,
        drained_in.as_secs_f64(),
    );
    Ok(())
}

const SCHEDULED_EVENT: &str =
    include_str!("../../functions/forwarder/tests/fixtures/eventbridge-schedule.json");

/// A backend that rejects some orders (422) and fails a few once (503) is answering: the circuit
/// stays closed, the mapping enabled, and every other order is delivered.
pub async fn a_backend_that_fails_some_orders_keeps_the_circuit_closed(w: &World) -> Outcome {
    const N: usize = 60;
    let stack = w.stack(StackKind::Standard)?;
    let forwarder = stack.output("forwarder_function_name");
    let orders_queue = queue_name(stack.output("queue_url")).to_owned();
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
