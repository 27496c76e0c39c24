//! Fault injection with full accounting: hundreds of orders through API Gateway → store → SQS →
//! forwarder → a backend that fails about 40 % of attempts in every way it can (503, 429 with
//! Retry-After, hanging past the request timeout, resetting the connection, answering slowly,
//! doing the work only after the forwarder gave up) and rejects some orders for good. Every
//! accepted order must end up delivered or dead-lettered.
//!
//! The mix is derived from a seed the suite prints; `CHAOS_SEED=<seed>` replays it.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};

use crate::support::receiver::{Action, Delivery, RETRY_AFTER};
use crate::support::{Answer, Outcome, StackKind, World, attribute, ensure, unique};

/// A store answer: status and JSON body, or why there was none.
type PostResult = Result<Answer, String>;

const ORDERS: usize = 500;
/// Every 20th order is one the backend rejects for good (422).
const PERMANENT_EVERY: usize = 20;
const POSTS_IN_FLIGHT: usize = 8;
const SETTLE: Duration = Duration::from_secs(480);
/// `request_timeout_ms` in infra/localstack.tfvars.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

pub async fn every_accepted_order_is_delivered_or_dead_lettered(w: &World) -> Outcome {
    let stack = w.stack(StackKind::Chaos)?;
    let seed = match std::env::var("CHAOS_SEED") {
        Ok(s) => s.parse().map_err(|e| format!("CHAOS_SEED={s:?}: {e}"))?,
        Err(_) => u64::from(uuid::Uuid::new_v4().as_fields().0),
    };
    eprintln!("  chaos seed {seed} (CHAOS_SEED={seed} replays this run's faults)");
    let world = w;
    let run = unique("chaos");
    let started = Instant::now();

    // Post concurrently; remember which accepted orders the backend will reject for good.
    let answers: Vec<(bool, PostResult)> = stream::iter(0..ORDERS)
        .map(|n| {
            let permanent = n % PERMANENT_EVERY == 0;
            let behaviour = if permanent {
                "status:422".to_owned()
            } else {
                format!("chaos:{seed}")
            };
            let body = format!("{{\"run\":\"{run}\",\"n\":{n},\"behaviour\":\"{behaviour}\"}}");
            async move {
                (
                    permanent,
                    world.post_order(stack, "application/json", body, &[]).await,
                )
            }
        })
        .buffer_unordered(POSTS_IN_FLIGHT)
        .collect()
        .await;
    let mut accepted: HashMap<String, bool> = HashMap::new();
    let mut refused: HashMap<String, usize> = HashMap::new();
    for (permanent, answer) in answers {
        match answer {
            Ok(Answer {
                status: 202, json, ..
            }) => {
                let key = json["idempotencyKey"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                accepted.insert(key, permanent);
            }
            Ok(Answer { status, .. }) => *refused.entry(status.to_string()).or_default() += 1,
            Err(e) => *refused.entry(e).or_default() += 1,
        }
    }
    let posted_in = started.elapsed();

    // Wait until every accepted order is acknowledged or in the DLQ, draining the DLQ as we go.
    let dlq = stack.output("dlq_url");
    let mut dead: HashMap<String, aws_sdk_sqs::types::Message> = HashMap::new();
    let deadline = Instant::now() + SETTLE;
    let delivered = loop {
        for m in world.drain(dlq).await? {
            if let Some(key) = attribute(&m, "IdempotencyKey") {
                dead.insert(key.to_owned(), m);
            }
        }
        let delivered: HashSet<String> = world
            .receiver
            .deliveries_containing(&run)
            .into_iter()
            .filter(|d| d.acknowledged)
            .map(|d| d.idempotency_key)
            .collect();
        let open = accepted
            .keys()
            .filter(|k| !delivered.contains(*k) && !dead.contains_key(*k))
            .count();
        if open == 0 || Instant::now() >= deadline {
            break delivered;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let settled_in = started.elapsed();

    // Account for every order, from the backend's own log.
    let attempts = world.receiver.deliveries_containing(&run);
    let mut by_key: HashMap<&str, Vec<&Delivery>> = HashMap::new();
    for d in &attempts {
        by_key.entry(&d.idempotency_key).or_default().push(d);
    }
    let lost: Vec<&String> = accepted
        .keys()
        .filter(|k| !delivered.contains(*k) && !dead.contains_key(*k))
        .collect();
    let duplicates = by_key
        .values()
        .filter(|a| a.iter().filter(|d| d.succeeded()).count() > 1)
        .count();
    let delivered_and_dead = accepted
        .keys()
        .filter(|k| delivered.contains(*k) && dead.contains_key(*k))
        .count();
    let count = |f: fn(&Action) -> bool| attempts.iter().filter(|d| f(&d.action)).count();
    let failing = attempts.iter().filter(|d| !d.acknowledged).count();

    let permanent: Vec<&String> = accepted
        .iter()
        .filter(|(_, p)| **p)
        .map(|(k, _)| k)
        .collect();
    let permanent_wrong: Vec<String> = permanent
        .iter()
        .filter_map(|k| {
            let tries = by_key.get(k.as_str()).map_or(0, Vec::len);
            let reason_ok = dead.get(*k).is_some_and(|m| {
                attribute(m, "FailureStatus") == Some("422")
                    && attribute(m, "FailureKind") == Some("permanent")
            });
            (tries != 1 || !reason_ok)
                .then(|| format!("{k}: {tries} attempts, dead-lettered with reason: {reason_ok}"))
        })
        .collect();
    // A 429 asks for RETRY_AFTER; SQS visibility is whole seconds, so allow 100 ms of rounding.
    let early_retries: Vec<String> = by_key
        .iter()
        .flat_map(|(key, tries)| {
            tries.windows(2).filter_map(move |pair| {
                let gap = pair[1].at - pair[0].at;
                (pair[0].action == Action::TooManyRequests
                    && gap + Duration::from_millis(100) < RETRY_AFTER)
                    .then(|| format!("{key}: retried {gap:?} after a 429"))
            })
        })
        .collect();
    let held: Vec<Duration> = attempts.iter().filter_map(|d| d.held).collect();
    let uncut: Vec<&Duration> = held
        .iter()
        .filter(|h| {
            **h + Duration::from_millis(500) < REQUEST_TIMEOUT
                || **h > REQUEST_TIMEOUT + Duration::from_secs(2)
        })
        .collect();

    eprintln!(
        "\n  fault injection ({ORDERS} orders, posted in {:.1} s, settled in {:.1} s)\n\
         \x20 {:<44}{:>6}\n  {:<44}{:>6}\n  {:<44}{:>6}\n  {:<44}{:>6}\n  {:<44}{:>6}\n  {:<44}{:>6}\n  {:<44}{:>6}\n\
         \x20 {:<44}{:>6}\n  {:<44}{:>6}\n  {:<44}{:>6}\n  {:<44}{:>6}\n  {:<44}{:>6}\n  {:<44}{:>6}\n  {:<44}{:>6}\n  {:<44}{:>6}\n  {:<44}{:>5.1}%",
        posted_in.as_secs_f64(),
        settled_in.as_secs_f64(),
        "orders sent",
        ORDERS,
        "accepted (202)",
        accepted.len(),
        "not accepted (and so not promised)",
        refused.values().sum::<usize>(),
        "delivered (a 2xx reached the forwarder)",
        accepted.keys().filter(|k| delivered.contains(*k)).count(),
        "in the DLQ",
        accepted.keys().filter(|k| dead.contains_key(*k)).count(),
        "lost",
        lost.len(),
        "duplicates (done more than once at the backend)",
        duplicates,
        "delivered and also in the DLQ",
        delivered_and_dead,
        "delivery attempts",
        attempts.len(),
        "  503",
        count(|a| *a == Action::Status(503)),
        "  429 with Retry-After",
        count(|a| *a == Action::TooManyRequests),
        "  hung past the request timeout",
        count(|a| *a == Action::Hang),
        "  late: done after the forwarder gave up",
        count(|a| *a == Action::Late),
        "  connection reset",
        count(|a| *a == Action::Reset),
        "  422 (permanent)",
        count(|a| *a == Action::Status(422)),
        "failing attempts",
        100.0 * failing as f64 / attempts.len().max(1) as f64,
    );
    if !refused.is_empty() {
        eprintln!("  not accepted: {refused:?}");
    }
    if !held.is_empty() {
        let max = held.iter().max().copied().unwrap_or_default();
        eprintln!("  hung requests cut by the forwarder after at most {max:?}");
    }

    ensure(lost.is_empty(), || {
        format!(
            "{} accepted orders were lost, e.g. {:?}",
            lost.len(),
            lost.first()
        )
    })?;
    ensure(permanent_wrong.is_empty(), || {
        format!("permanent rejections mishandled: {permanent_wrong:?}")
    })?;
    ensure(early_retries.is_empty(), || {
        format!("Retry-After not honoured: {early_retries:?}")
    })?;
    ensure(uncut.is_empty(), || {
        format!("hangs not cut at the {REQUEST_TIMEOUT:?} request timeout: {uncut:?}")
    })?;
    ensure(accepted.len() * 100 >= ORDERS * 95, || {
        format!("only {} of {ORDERS} orders were accepted", accepted.len())
    })
}
