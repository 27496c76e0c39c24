//! The store's hot path without the SQS call: an API Gateway REST event as Lambda hands it over →
//! `store::invoke`, what the function serves (the event read, routing, validation, envelope → a
//! storage that answers at once → the 202 response and its metrics document). Criterion gives the mean; then 100,000 timed calls give the p50/p99/p99.9 that
//! the target (p99 ≤ 100 µs) is about, and check that each accepted order made exactly one
//! storage call (one `SendMessage`).

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{apigw_order_event, order};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::value::RawValue;
use store::{Answer, App};
use storeforward_core::order::{
    DEFAULT_MAX_MESSAGE_BYTES, Order, OrderRules, Storage, StorageError,
};

const TIMED_CALLS: usize = 100_000;

/// Stands in for SQS: acknowledges at once and counts the calls.
#[derive(Default)]
struct Acknowledging(AtomicUsize);

impl Storage for Acknowledging {
    async fn store(&self, _order: &Order) -> Result<String, StorageError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok("00000000-0000-0000-0000-000000000000".into())
    }
}

fn app() -> App<Acknowledging> {
    App {
        primary: Acknowledging::default(),
        failover: None,
        rules: OrderRules {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            schema: None,
            fifo: None,
        },
        order_path: "/orders/new-order".into(),
        retry_after_secs: 1,
    }
}

/// One request through the function, from event text to response.
async fn one(app: &App<Acknowledging>, event: &str) -> i64 {
    let payload = RawValue::from_string(event.to_owned()).unwrap();
    match store::invoke(app, LambdaEvent::new(payload, Context::default()))
        .await
        .0
    {
        Answer::Rest(response) => response.status_code,
        Answer::Http(response) => response.status_code,
    }
}

fn hot_path(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let app = app();
    let event = apigw_order_event(&order(), "order-42");
    assert_eq!(rt.block_on(one(&app, &event)), 202);

    let mut group = c.benchmark_group("store_hot_path");
    group.bench_function("post_order_to_202", |b| {
        b.iter_batched(
            || (),
            |()| rt.block_on(one(&app, &event)),
            BatchSize::SmallInput,
        )
    });
    group.finish();

    let before = app.primary.0.load(Ordering::Relaxed);
    let mut samples: Vec<Duration> = (0..TIMED_CALLS)
        .map(|_| {
            let start = Instant::now();
            let status = rt.block_on(one(&app, &event));
            let took = start.elapsed();
            assert_eq!(status, 202);
            took
        })
        .collect();
    let calls = app.primary.0.load(Ordering::Relaxed) - before;
    assert_eq!(
        calls, TIMED_CALLS,
        "exactly one storage call per accepted order"
    );
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "store_hot_path: {TIMED_CALLS} requests of {} bytes: p50 {:?}, p99 {:?}, p99.9 {:?}, max {:?}; {calls} storage calls",
        order().len(),
        at(0.50),
        at(0.99),
        at(0.999),
        samples[samples.len() - 1],
    );
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
