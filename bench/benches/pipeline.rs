//! The whole pipeline on the local stack, next to the raw capacity of the same LocalStack's SQS,
//! in one run (make bench):
//!
//! 1. raw SQS: workers on a queue of their own send, receive and delete messages ten at a time;
//!    and, as the ceiling of any store that makes one SQS call per order, single `SendMessage`s;
//! 2. where the time of one order goes: sequential calls to each hop on its own (SQS
//!    `SendMessage`; the store invoked through the Lambda API; a POST through API Gateway; the
//!    forwarder invoked with one record) and 202 → delivery at that gentle pace;
//! 3. the load generator: `SENDERS` clients POST `ORDERS` orders as fast as they are accepted,
//!    the backend on 127.0.0.1 notes each arrival; sustained rate, 202 → delivery p50/p99, and
//!    the CPU time each process spent (LocalStack, our functions, this bench).
//!
//! Bounded: a fixed number of orders and messages, `TIME_LIMIT` for the load. Loopback only.
//! Needs the local stack: starts LocalStack unless one runs (and stops it again), builds the
//! functions (`make build-local`), applies `infra/` as the stack `bench-pipeline` with
//! `bench/stacks/pipeline.tfvars`.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, SendMessageBatchRequestEntry};
use common::local::{Setup, delivery_latencies, follow, invoke, localstack_pid, post, sqs};
use common::{ProcCpu, apigw_order_event, cpu_by_pid, cpu_spent, ms, order, percentile, sqs_event};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::Value;

const STACK: &str = "bench-pipeline";
const ORDERS: usize = 2_000;
const SENDERS: usize = 16;
const RAW_MESSAGES: usize = 4_000;
const RAW_WORKERS: usize = 8;
const PROBES: usize = 100;
const TIME_LIMIT: Duration = Duration::from_secs(240);

fn bar(total: usize, what: &str) -> ProgressBar {
    ProgressBar::new(total as u64).with_style(
        ProgressStyle::with_template(&format!("{{bar:40}} {{pos}}/{{len}} {what}, {{per_sec}}"))
            .unwrap(),
    )
}

/// Messages per second through send + receive + delete, ten per call, `RAW_WORKERS` at once.
async fn raw_capacity(sqs: &aws_sdk_sqs::Client, queue: &str, body: &str) -> f64 {
    let progress = bar(RAW_MESSAGES, "raw SQS messages sent, received, deleted");
    let started = Instant::now();
    let workers: Vec<_> = (0..RAW_WORKERS)
        .map(|w| {
            let (sqs, queue, body, progress) = (
                sqs.clone(),
                queue.to_owned(),
                body.to_owned(),
                progress.clone(),
            );
            tokio::spawn(async move {
                for round in 0..RAW_MESSAGES / RAW_WORKERS / 10 {
                    let entries = (0..10).map(|i| {
                        SendMessageBatchRequestEntry::builder()
                            .id(format!("m{i}"))
                            .message_body(format!("{body}{w}-{round}-{i}"))
                            .build()
                            .unwrap()
                    });
                    let sent = sqs
                        .send_message_batch()
                        .queue_url(&queue)
                        .set_entries(Some(entries.collect()))
                        .send()
                        .await
                        .unwrap();
                    assert!(sent.failed.is_empty(), "{:?}", sent.failed);
                    // Receive as many as were sent (any worker's), then delete them.
                    let mut wanted = 10;
                    while wanted > 0 {
                        let got = sqs
                            .receive_message()
                            .queue_url(&queue)
                            .max_number_of_messages(wanted)
                            .wait_time_seconds(1)
                            .send()
                            .await
                            .unwrap();
                        let entries: Vec<_> = got
                            .messages()
                            .iter()
                            .enumerate()
                            .map(|(i, m)| {
                                DeleteMessageBatchRequestEntry::builder()
                                    .id(format!("d{i}"))
                                    .receipt_handle(m.receipt_handle().unwrap())
                                    .build()
                                    .unwrap()
                            })
                            .collect();
                        if entries.is_empty() {
                            continue;
                        }
                        wanted -= entries.len() as i32;
                        progress.inc(entries.len() as u64);
                        let deleted = sqs
                            .delete_message_batch()
                            .queue_url(&queue)
                            .set_entries(Some(entries))
                            .send()
                            .await
                            .unwrap();
                        assert!(deleted.failed.is_empty(), "{:?}", deleted.failed);
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let rate = RAW_MESSAGES as f64 / started.elapsed().as_secs_f64();
    progress.finish();
    rate
}

/// Messages per second with one `SendMessage` per message from `SENDERS` clients at once: what
/// any store that makes one SQS call per order can reach at most.
async fn single_send_capacity(sqs: &aws_sdk_sqs::Client, queue: &str, body: &str) -> f64 {
    let total = RAW_MESSAGES / 2;
    let progress = bar(total, "single SendMessage calls");
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let senders: Vec<_> = (0..SENDERS)
        .map(|_| {
            let (sqs, queue, body, next, progress) = (
                sqs.clone(),
                queue.to_owned(),
                body.to_owned(),
                next.clone(),
                progress.clone(),
            );
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    sqs.send_message()
                        .queue_url(&queue)
                        .message_body(&body)
                        .send()
                        .await
                        .unwrap();
                    progress.inc(1);
                }
            })
        })
        .collect();
    for sender in senders {
        sender.await.unwrap();
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    progress.finish();
    rate
}

/// The p50 of `PROBES` sequential calls of `call(i)`, and what the calls returned.
async fn p50<T, F: Future<Output = T>>(
    what: &str,
    call: impl Fn(usize) -> F,
) -> (Duration, Vec<T>) {
    let progress = bar(PROBES, what);
    let mut took = Vec::with_capacity(PROBES);
    let mut results = Vec::with_capacity(PROBES);
    for i in 0..PROBES {
        let start = Instant::now();
        results.push(call(i).await);
        took.push(start.elapsed());
        progress.inc(1);
    }
    progress.finish();
    took.sort();
    (percentile(&took, 0.5), results)
}

/// CPU seconds spent since `before` by LocalStack, by our functions (`bootstrap` processes) and
/// by this bench (load generator and backend).
fn cpu_split(before: &HashMap<u32, ProcCpu>, localstack: u32) -> (f64, f64, f64) {
    let (after, me) = (cpu_by_pid(), std::process::id());
    (
        cpu_spent(before, &after, |pid, _| pid == localstack),
        cpu_spent(before, &after, |_, p| p.name == "bootstrap"),
        cpu_spent(before, &after, |pid, _| pid == me),
    )
}

fn main() {
    let Some(setup) = Setup::start(STACK, "bench/stacks/pipeline.tfvars") else {
        return; // `cargo bench -- --list` probes every bench binary
    };
    let api = setup.api();
    let (store, forwarder) = (
        setup.output("store_function_name"),
        setup.output("forwarder_function_name"),
    );
    let arrivals = &setup.arrivals;
    let localstack_pid = localstack_pid();
    let body = order();

    setup.rt.block_on(async {
        let sqs = sqs();
        let http = reqwest::Client::new();
        let raw_queue = sqs
            .create_queue()
            .queue_name(format!("{STACK}-raw"))
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        sqs.purge_queue().queue_url(&raw_queue).send().await.unwrap();
        // Warm every function once so that the probes measure warm calls.
        post(&http, &api, &body, "warm-0").await;

        println!("1. raw SQS capacity");
        let raw = raw_capacity(&sqs, &raw_queue, &body).await;
        let single = single_send_capacity(&sqs, &raw_queue, &body).await;
        println!(
            "pipeline: raw SQS capacity {raw:.0} msg/s ({RAW_WORKERS} workers, batches of 10); \
             one SendMessage per message {single:.0} msg/s ({SENDERS} clients)"
        );

        println!("2. one order at a time, {PROBES} calls per hop");
        let (send, _) = p50("SendMessage", |_| async {
            sqs.send_message()
                .queue_url(&raw_queue)
                .message_body(&body)
                .send()
                .await
                .unwrap();
        })
        .await;
        let (store_invoke, _) = p50("store through the Lambda API", |i| {
            let event = apigw_order_event(&body, &format!("probe-invoke-{i}"));
            let (http, store) = (&http, &store);
            async move {
                let answer = invoke(http, store, event).await;
                assert_eq!(answer["statusCode"], 202, "{answer}");
            }
        })
        .await;
        let (posted, accepted) = p50("POST through API Gateway", |i| {
            let (http, api, body) = (&http, &api, &body);
            async move {
                let key = format!("probe-post-{i}");
                let at = post(http, api, body, &key).await;
                (key, at)
            }
        })
        .await;
        let accepted: HashMap<String, Instant> = accepted.into_iter().collect();
        let sequential = delivery_latencies(&accepted, arrivals, "probe-post-", TIME_LIMIT).await;
        let record = sqs_event(1, |_| body.clone()).to_string();
        let (forward, _) = p50("forwarder through the Lambda API, 1 record", |_| {
            let (http, forwarder, record) = (&http, &forwarder, record.clone());
            async move {
                let answer: Value = invoke(http, forwarder, record).await;
                assert_eq!(answer["batchItemFailures"], serde_json::json!([]), "{answer}");
            }
        })
        .await;
        sqs.delete_queue().queue_url(&raw_queue).send().await.unwrap();
        println!(
            "pipeline: one at a time (p50): SendMessage {:.2} ms; store via Lambda Invoke {:.2} ms \
             (invoke path {:.2} ms); POST via API Gateway {:.2} ms (API Gateway {:.2} ms); \
             forwarder via Lambda Invoke, 1 record {:.2} ms; 202 -> delivery {:.0} ms (event \
             source mapping {:.0} ms)",
            ms(send),
            ms(store_invoke),
            ms(store_invoke.saturating_sub(send)),
            ms(posted),
            ms(posted.saturating_sub(store_invoke)),
            ms(forward),
            ms(percentile(&sequential, 0.5)),
            ms(percentile(&sequential, 0.5).saturating_sub(forward)),
        );

        println!("3. load: {ORDERS} orders from {SENDERS} senders");
        let cpu_before = cpu_by_pid();
        let progress = MultiProgress::new();
        let sent_bar = progress.add(bar(ORDERS, "accepted (202)"));
        let delivered_bar = progress.add(bar(ORDERS, "delivered"));
        let watching = follow(&delivered_bar, arrivals, "load-");
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let senders: Vec<_> = (0..SENDERS)
            .map(|_| {
                let (http, api, body, next, sent_bar) =
                    (http.clone(), api.clone(), body.clone(), next.clone(), sent_bar.clone());
                tokio::spawn(async move {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= ORDERS || started.elapsed() > TIME_LIMIT {
                            return mine;
                        }
                        let key = format!("load-{i}");
                        let at = post(&http, &api, &body, &key).await;
                        mine.push((key, at));
                        sent_bar.inc(1);
                    }
                })
            })
            .collect();
        let mut accepted = HashMap::new();
        for sender in senders {
            accepted.extend(sender.await.unwrap());
        }
        let last_202 = accepted.values().max().copied().unwrap();
        sent_bar.finish();
        let latencies = delivery_latencies(&accepted, arrivals, "load-", TIME_LIMIT).await;
        watching.abort();
        delivered_bar.finish();
        let (cpu_ls, cpu_ours, cpu_bench) = cpu_split(&cpu_before, localstack_pid);

        let mut delivered: Vec<Instant> = arrivals
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, k)| k.starts_with("load-"))
            .map(|(t, _)| *t)
            .collect();
        delivered.sort();
        let n = delivered.len();
        // Sustained: the middle 80 % of deliveries, without ramp-up and tail.
        let (from, to) = (n / 10, n * 9 / 10);
        let sustained = (to - from) as f64 / (delivered[to] - delivered[from]).as_secs_f64();
        let accepted_rate = n as f64 / (last_202 - started).as_secs_f64();
        let end_to_end = n as f64 / (delivered[n - 1] - started).as_secs_f64();

        println!(
            "pipeline: {n} orders, {SENDERS} senders: accepted {accepted_rate:.0}/s, delivered \
             {sustained:.0}/s sustained (middle 80 %), {end_to_end:.0}/s first POST to last \
             delivery; {:.1} % of the raw capacity, {:.1} % of one SendMessage per message\n\
             pipeline: 202 -> delivery under load p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms\n\
             pipeline: CPU during the load: LocalStack (with the process executor) {cpu_ls:.1} s, our functions {cpu_ours:.1} s, \
             bench (load generator + backend) {cpu_bench:.1} s",
            sustained / raw * 100.0,
            sustained / single * 100.0,
            ms(percentile(&latencies, 0.5)),
            ms(percentile(&latencies, 0.99)),
            ms(latencies[latencies.len() - 1]),
        );
    });
}
