//! The seed's throttling use case on the local stack: 1,000 orders waiting in the queue, one
//! scheduled invocation of the forwarder with `MAX_RPS=100`, and the delivery rate the backend
//! (on 127.0.0.1) observes. Needs the local stack: starts LocalStack unless one runs (and stops
//! it again), builds the functions (`make build-local`), applies `infra/` as the stack
//! `bench-throttle` with `bench/stacks/throttle.tfvars`.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Instant;

use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use common::local::{Setup, follow, invoke, sqs};
use indicatif::{ProgressBar, ProgressStyle};

const ORDERS: usize = 1_000;
const MAX_RPS: f64 = 100.0;
const STACK: &str = "bench-throttle";

/// Empties the queue, then fills it with `ORDERS` orders, ten per `SendMessageBatch`.
async fn fill(sqs: &aws_sdk_sqs::Client, queue: &str) {
    sqs.purge_queue().queue_url(queue).send().await.unwrap();
    let attr = |v: String| {
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(v)
            .build()
            .unwrap()
    };
    for chunk in (0..ORDERS).collect::<Vec<_>>().chunks(10) {
        let entries = chunk.iter().map(|i| {
            SendMessageBatchRequestEntry::builder()
                .id(format!("m{i}"))
                .message_body(format!(r#"{{"id":"throttle-{i}"}}"#))
                .message_attributes("ContentType", attr("application/json".into()))
                .message_attributes("IdempotencyKey", attr(format!("throttle-{i}")))
                .build()
                .unwrap()
        });
        let out = sqs
            .send_message_batch()
            .queue_url(queue)
            .set_entries(Some(entries.collect()))
            .send()
            .await
            .unwrap();
        assert!(out.failed.is_empty(), "{:?}", out.failed);
    }
}

fn main() {
    let Some(setup) = Setup::start(STACK, "bench/stacks/throttle.tfvars") else {
        return; // `cargo bench -- --list` probes every bench binary
    };
    let (queue, function) = (
        setup.output("queue_url"),
        setup.output("forwarder_function_name"),
    );
    let arrivals = &setup.arrivals;

    let tally = setup.rt.block_on(async {
        fill(&sqs(), &queue).await;
        let bar = ProgressBar::new(ORDERS as u64).with_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} delivered, {per_sec}").unwrap(),
        );
        let watching = follow(&bar, arrivals, "");
        let tally = invoke(&reqwest::Client::new(), &function, "{}".into()).await;
        watching.abort();
        bar.finish();
        tally
    });

    let times: Vec<Instant> = arrivals.lock().unwrap().iter().map(|(t, _)| *t).collect();
    let span = times[times.len() - 1] - times[0];
    let rate = (times.len() - 1) as f64 / span.as_secs_f64();
    // Deliveries per whole second of the run.
    let mut per_second = vec![0usize; span.as_secs() as usize];
    for t in &times {
        if let Some(n) = per_second.get_mut((*t - times[0]).as_secs() as usize) {
            *n += 1;
        }
    }
    println!(
        "throttle: MAX_RPS={MAX_RPS}, {} deliveries in {:.3} s: {rate:.2}/s ({:+.2} % of the limit); \
         per whole second min {} max {}; forwarder tally {tally}",
        times.len(),
        span.as_secs_f64(),
        (rate / MAX_RPS - 1.0) * 100.0,
        per_second.iter().min().unwrap_or(&0),
        per_second.iter().max().unwrap_or(&0),
    );
    assert_eq!(times.len(), ORDERS, "every order delivered once");
}
