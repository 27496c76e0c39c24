//! Idle → delivered on the local stack (issue #15): how long an order waits for LocalStack's SQS
//! event source mapping once the stack has been idle, and what LocalStack spends meanwhile.
//!
//! Without a batching window LocalStack's poller makes short polls; after each empty one it backs
//! off, exponentially from 1 s up to `LAMBDA_EVENT_SOURCE_MAPPING_MAX_BACKOFF_ON_EMPTY_POLL_SEC`
//! (±50 % jitter), and after each poll that found messages it pauses
//! `LAMBDA_EVENT_SOURCE_MAPPING_POLL_INTERVAL_SEC`. The bench reads both from LocalStack's
//! environment (`/proc/<pid>/environ`; unset means LocalStack's defaults, 10 s and 1 s) and:
//!
//! 1. posts `ORDERS` orders one at a time through API Gateway, each after `IDLE` without any
//!    (long enough for a 10 s backoff to reach its ceiling), and takes the time from the 202 to
//!    the order's arrival at the backend on 127.0.0.1: p50, p90, max and every value;
//! 2. samples the CPU time of LocalStack's process group (`/proc/<pid>/stat`) around each idle
//!    wait: CPU seconds per idle minute, the price of polling more often.
//!
//! Prints the settings next to the figures and a summary line, and writes `target/bench/idle.json`.
//! Bounded: `ORDERS` orders, each delivered within `DELIVERY_LIMIT`, no new order after
//! `TIME_LIMIT`. Loopback only. Needs the local stack: starts LocalStack unless one runs (and
//! stops it again), builds the functions (`make build-local`), applies `infra/` as the stack
//! `bench-idle` with `bench/stacks/idle.tfvars`. To compare settings, start LocalStack with them
//! first, e.g. `LAMBDA_EVENT_SOURCE_MAPPING_MAX_BACKOFF_ON_EMPTY_POLL_SEC=10
//! LAMBDA_EVENT_SOURCE_MAPPING_POLL_INTERVAL_SEC=1 localstack/bin/start`.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::local::{
    Setup, delivery_latencies, event_source_mappings, localstack_pid, post, write_result,
};
use common::{cpu_by_pid, cpu_spent, ms, order, percentile, process_env};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

const STACK: &str = "bench-idle";
const ORDERS: usize = 10;
const IDLE: Duration = Duration::from_secs(20);
const DELIVERY_LIMIT: Duration = Duration::from_secs(30);
const TIME_LIMIT: Duration = Duration::from_secs(420);
const TARGET_P50: Duration = Duration::from_millis(1_500);

/// LocalStack's settings for its event source mapping pollers, with LocalStack 4.13.1's defaults.
const ESM_SETTINGS: [(&str, &str); 2] = [
    (
        "LAMBDA_EVENT_SOURCE_MAPPING_MAX_BACKOFF_ON_EMPTY_POLL_SEC",
        "10",
    ),
    ("LAMBDA_EVENT_SOURCE_MAPPING_POLL_INTERVAL_SEC", "1"),
];

/// What one run measured.
#[derive(Debug, Default)]
struct Run {
    /// 202 → arrival of each order, in the order they were sent.
    latencies: Vec<Duration>,
    /// Time spent idle, and the CPU seconds LocalStack's process group and our functions
    /// (`bootstrap` processes) used in it.
    idle: Duration,
    localstack_cpu: f64,
    functions_cpu: f64,
}

fn main() {
    let Some(setup) = Setup::start(STACK, "bench/stacks/idle.tfvars") else {
        return; // `cargo bench -- --list` probes every bench binary
    };
    let api = setup.api();
    let forwarder = setup.output("forwarder_function_name");
    let arrivals = &setup.arrivals;
    let localstack = localstack_pid();
    // (name, value in effect, where it comes from)
    let settings: Vec<(&str, String, &str)> = ESM_SETTINGS
        .iter()
        .map(|(name, default)| match process_env(localstack, name) {
            Some(value) => (*name, value, "LocalStack's environment"),
            None => (*name, (*default).to_owned(), "unset: LocalStack's default"),
        })
        .collect();
    let setting = |i: usize| format!("{}={} ({})", settings[i].0, settings[i].1, settings[i].2);
    let body = order();
    let started = Instant::now();

    let (mappings, run) = setup.rt.block_on(async {
        let http = reqwest::Client::new();
        let mappings = event_source_mappings(&http, &forwarder).await;
        for m in &mappings {
            let window = m["MaximumBatchingWindowInSeconds"].as_u64().unwrap_or(0);
            assert_eq!(window, 0, "a batching window: {m}");
        }
        // The first order starts both functions' processes; then the waits begin.
        let warm = post(&http, &api, &body, "idle-warm").await;
        let accepted = HashMap::from([("idle-warm".to_owned(), warm)]);
        delivery_latencies(&accepted, arrivals, "idle-warm", DELIVERY_LIMIT).await;

        let progress = ProgressBar::new(ORDERS as u64).with_style(
            ProgressStyle::with_template(&format!(
                "{{bar:40}} {{pos}}/{{len}} orders, each after {} s idle",
                IDLE.as_secs()
            ))
            .unwrap(),
        );
        let mut run = Run::default();
        for i in 0..ORDERS {
            if started.elapsed() + IDLE + DELIVERY_LIMIT > TIME_LIMIT {
                println!("idle: stopped at the time limit ({TIME_LIMIT:?}) after {i} orders");
                break;
            }
            let (before, idle_from) = (cpu_by_pid(), Instant::now());
            tokio::time::sleep(IDLE).await;
            let after = cpu_by_pid();
            run.idle += idle_from.elapsed();
            run.localstack_cpu += cpu_spent(&before, &after, |_, p| p.pgid == localstack);
            run.functions_cpu += cpu_spent(&before, &after, |_, p| p.name == "bootstrap");

            // Fixed width: no key is the prefix of another.
            let key = format!("idle-{i:03}");
            let at = post(&http, &api, &body, &key).await;
            let accepted = HashMap::from([(key.clone(), at)]);
            let took = delivery_latencies(&accepted, arrivals, &key, DELIVERY_LIMIT).await;
            run.latencies.push(took[0]);
            progress.inc(1);
        }
        progress.finish();
        (mappings, run)
    });

    let n = run.latencies.len();
    let mut sorted = run.latencies.clone();
    sorted.sort();
    let (p50, p90, max) = (
        percentile(&sorted, 0.5),
        percentile(&sorted, 0.9),
        sorted[n - 1],
    );
    let idle_minutes = run.idle.as_secs_f64() / 60.0;
    let per_idle_minute = run.localstack_cpu / idle_minutes;
    let queues: Vec<&str> = mappings
        .iter()
        .filter_map(|m| m["EventSourceArn"].as_str()?.rsplit(':').next())
        .collect();
    let all_ms: Vec<f64> = run.latencies.iter().map(|d| ms(*d)).collect();
    let all: Vec<String> = all_ms.iter().map(|v| format!("{v:.0}")).collect();
    let met = if p50 <= TARGET_P50 { "met" } else { "not met" };
    println!(
        "idle: LocalStack's SQS pollers: {}, {}; {} mappings ({}), batching window 0 s\n\
         idle: {n} orders, each after {} s idle: 202 -> delivery p50 {:.0} ms, p90 {:.0} ms, max \
         {:.0} ms; all, in the order sent: {} ms\n\
         idle: CPU over {:.1} s idle ({n} waits): LocalStack's process group {:.2} s = {per_idle_minute:.2} \
         CPU s per idle minute; our functions {:.2} s\n\
         idle: summary: after {} s idle an order reaches the backend in {:.0} ms (p50; target <= \
         {} ms: {met}), max {:.0} ms; idle LocalStack costs {per_idle_minute:.2} CPU s per minute \
         (MAX_BACKOFF_ON_EMPTY_POLL {} s, POLL_INTERVAL {} s)",
        setting(0),
        setting(1),
        mappings.len(),
        queues.join(", "),
        IDLE.as_secs(),
        ms(p50),
        ms(p90),
        ms(max),
        all.join(", "),
        run.idle.as_secs_f64(),
        run.localstack_cpu,
        run.functions_cpu,
        IDLE.as_secs(),
        ms(p50),
        TARGET_P50.as_millis(),
        ms(max),
        settings[0].1,
        settings[1].1,
    );

    let in_effect: serde_json::Map<String, serde_json::Value> = settings
        .iter()
        .map(|(name, value, source)| {
            let entry = json!({"value": value, "source": source});
            ((*name).to_owned(), entry)
        })
        .collect();
    let result = json!({
        "settings": in_effect,
        "event_source_mappings": queues,
        "orders": n,
        "idle_seconds_before_each": IDLE.as_secs(),
        "delivery_ms": {
            "p50": ms(p50),
            "p90": ms(p90),
            "max": ms(max),
            "all_in_order_sent": all_ms,
        },
        "target_p50_ms": ms(TARGET_P50),
        "idle_seconds_total": run.idle.as_secs_f64(),
        "localstack_cpu_seconds": run.localstack_cpu,
        "localstack_cpu_seconds_per_idle_minute": per_idle_minute,
        "functions_cpu_seconds": run.functions_cpu,
    });
    write_result("idle", &result);
}
