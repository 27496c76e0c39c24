//! What a million orders cost on AWS (issue #15), from billed durations measured on the local
//! stack and list prices.
//!
//! On the stack `bench-cost` (`bench/stacks/cost.tfvars`: the defaults, no batching window, both
//! functions at 128 MB) with a backend on 127.0.0.1 that answers in 100 ms, after one warm-up
//! order:
//!
//! 1. **trickle**: `TRICKLE` orders one at a time, each delivered before the next (every order is
//!    its own forwarder invocation, as on a quiet stack);
//! 2. **busy**: `BUSY` orders from `CLIENTS` clients at once (the event source mapping gathers
//!    batches).
//!
//! For each phase it reads the `REPORT` lines of both functions from CloudWatch Logs (what the
//! local executor writes, as Lambda does) and takes each invocation's billed duration as AWS
//! bills it, the duration rounded up to the next millisecond; it counts forwarder invocations per
//! order and the log bytes per order. It prices them at 128 MB arm64 with the list prices below
//! and compares:
//!
//! - this project behind the REST API (the default), behind an HTTP API, behind a Lambda Function
//!   URL;
//! - API Gateway (REST, or an HTTP API) → SQS (service integration) → EventBridge Pipes → API
//!   destination (neither Pipes nor API destinations run on LocalStack community: computed from
//!   prices only);
//! - the forwarder replaced by the Powertools peers, from `target/bench/peers.json` (the invoke
//!   times of `bench/benches/peers.rs` at Lambda's 128 MB CPU share; run that bench first).
//!
//! Prints the price list with sources, the measured figures and the cost table, and writes
//! `target/bench/cost.json`. Durations are this machine's: the functions run with a whole CPU
//! here, not Lambda's 128 MB share. Bounded by count and by `DELIVERY_LIMIT`; loopback only.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::local::{Setup, aws, delivery_latencies, post, write_result};
use common::order;
use serde_json::{Value, json};

const STACK: &str = "bench-cost";
const BACKEND_LATENCY: Duration = Duration::from_millis(100);
const TRICKLE: usize = 30;
const BUSY: usize = 300;
const CLIENTS: usize = 10;
const DELIVERY_LIMIT: Duration = Duration::from_secs(120);
/// How long to wait for the last phase's log lines to reach CloudWatch Logs.
const LOG_LIMIT: Duration = Duration::from_secs(60);
/// Both functions are priced at this memory size (arm64).
const MEMORY_MB: f64 = 128.0;

/// One list price: US East (N. Virginia), first tier, free tier not counted.
#[derive(Debug)]
struct Price {
    what: &'static str,
    usd: f64,
    per: &'static str,
    source: &'static str,
}

const LAMBDA_REQUEST: Price = Price {
    what: "Lambda requests",
    usd: 0.20,
    per: "1M requests",
    source: "aws.amazon.com/lambda/pricing (worked example: \"$0.20 per 1 million requests\")",
};
const LAMBDA_ARM_GB_S: Price = Price {
    what: "Lambda duration, arm64",
    usd: 0.000_013_333_4,
    per: "GB-s",
    source: "3rd-party copies of aws.amazon.com/lambda/pricing: cloudchipr.com/blog/aws-lambda-pricing (2025 guide), git.mcrn.ar lambda_local_runner lambda-13-cost.md (2026-05-11)",
};
const REST_API: Price = Price {
    what: "API Gateway REST API",
    usd: 3.50,
    per: "1M requests",
    source: "docs.aws.amazon.com whitepaper best-practices-api-gateway-private-apis-integration, cost-optimization, Table 4 (undated)",
};
const HTTP_API: Price = Price {
    what: "API Gateway HTTP API (per 512 KB)",
    usd: 1.00,
    per: "1M requests",
    source: "same AWS whitepaper, Table 4 (undated)",
};
const SQS_REQUEST: Price = Price {
    what: "SQS standard (per 64 KB)",
    usd: 0.40,
    per: "1M requests",
    source: "3rd-party: cloudburn.io/blog/amazon-sqs-pricing (March 2026), factualminds.com (2026-06-13)",
};
const PIPES: Price = Price {
    what: "EventBridge Pipes (after filtering, per 64 KB)",
    usd: 0.40,
    per: "1M requests",
    source: "3rd-party: cloudburn.io/blog/amazon-eventbridge-pricing (March 2026), factualminds.com (June 2026)",
};
const API_DESTINATION: Price = Price {
    what: "EventBridge API destinations",
    usd: 0.20,
    per: "1M invocations",
    source: "3rd-party: cloudburn.io/blog/amazon-eventbridge-pricing (March 2026), factualminds.com (June 2026)",
};
const LOGS_GB: Price = Price {
    what: "CloudWatch Logs ingestion (Lambda vended logs, first tier)",
    usd: 0.50,
    per: "GB",
    source: "3rd-party: c3x.dev cloudwatch-logs-cost-optimization (June 2026), duckbillgroup.com (2025-05 tiering)",
};
const PRICES: [&Price; 8] = [
    &LAMBDA_REQUEST,
    &LAMBDA_ARM_GB_S,
    &REST_API,
    &HTTP_API,
    &SQS_REQUEST,
    &PIPES,
    &API_DESTINATION,
    &LOGS_GB,
];

/// What one phase measured.
#[derive(Debug)]
struct Phase {
    name: &'static str,
    orders: usize,
    store: Reports,
    forwarder: Reports,
    /// Bytes of log messages of both functions (platform lines and ours) per order.
    log_bytes_per_order: f64,
    /// The same by function and kind of line, largest first.
    log_bytes_by_kind: Vec<(String, f64)>,
}

/// The billed durations of a function's invocations in a phase.
#[derive(Debug, Default)]
struct Reports {
    billed_ms: Vec<f64>,
}

impl Reports {
    fn invocations(&self) -> usize {
        self.billed_ms.len()
    }

    fn mean_billed_ms(&self) -> f64 {
        self.billed_ms.iter().sum::<f64>() / self.billed_ms.len().max(1) as f64
    }
}

/// A Lambda function's cost per order: requests and duration at `MEMORY_MB`.
fn lambda_per_order(invocations_per_order: f64, billed_ms: f64) -> f64 {
    let gb_s = billed_ms / 1e3 * MEMORY_MB / 1024.0;
    invocations_per_order * (LAMBDA_REQUEST.usd / 1e6 + gb_s * LAMBDA_ARM_GB_S.usd)
}

/// The billed duration in a `REPORT` line: its `Duration` rounded up to the next millisecond.
fn billed_ms(line: &str) -> Option<f64> {
    let rest = line.strip_prefix("REPORT ")?.split("\tDuration: ").nth(1)?;
    let duration: f64 = rest.split(' ').next()?.parse().ok()?;
    Some(duration.ceil())
}

/// What a log line is: a platform line (`START`, `END`, `REPORT`, ...), an embedded metric
/// format document, or one of the functions' JSON lines by its message.
fn line_kind(line: &str) -> String {
    match serde_json::from_str::<Value>(line) {
        Ok(v) if v.get("_aws").is_some() => "metrics (EMF)".to_owned(),
        Ok(v) => format!("\"{}\"", v["message"].as_str().unwrap_or("?")),
        Err(_) => line
            .split([' ', '\t'])
            .next()
            .unwrap_or_default()
            .to_owned(),
    }
}

fn epoch_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Every log message of `group` between `from` and `to` (epoch ms).
async fn log_messages(
    logs: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    from: i64,
    to: i64,
) -> Vec<String> {
    let mut messages = Vec::new();
    let mut token = None;
    loop {
        let page = logs
            .filter_log_events()
            .log_group_name(group)
            .start_time(from)
            .end_time(to)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        messages.extend(
            page.events()
                .iter()
                .filter_map(|e| e.message().map(str::to_owned)),
        );
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            return messages;
        }
    }
}

/// Both functions' log lines since `from` (epoch ms), once the store's `REPORT` lines of all
/// `orders` are there and the forwarder's stopped growing. Read right after the phase: under
/// load LocalStack stamps log lines when it stores them, well after the invocation.
async fn read_phase(
    logs: &aws_sdk_cloudwatchlogs::Client,
    groups: [&str; 2],
    from: i64,
    name: &'static str,
    orders: usize,
) -> Phase {
    let deadline = Instant::now() + LOG_LIMIT;
    let mut last_forwarder = usize::MAX;
    loop {
        let to = epoch_ms();
        let store = log_messages(logs, groups[0], from, to).await;
        let forwarder = log_messages(logs, groups[1], from, to).await;
        let reports = |lines: &[String]| Reports {
            billed_ms: lines.iter().filter_map(|l| billed_ms(l)).collect(),
        };
        let (store_reports, forwarder_reports) = (reports(&store), reports(&forwarder));
        let settled = store_reports.invocations() >= orders
            && forwarder_reports.invocations() == last_forwarder;
        if settled || Instant::now() > deadline {
            assert_eq!(
                store_reports.invocations(),
                orders,
                "{name}: one store REPORT line per order"
            );
            let bytes: usize = store.iter().chain(&forwarder).map(String::len).sum();
            let mut by_kind: HashMap<String, usize> = HashMap::new();
            for (function, lines) in [("store", &store), ("forwarder", &forwarder)] {
                for line in lines {
                    *by_kind
                        .entry(format!("{function} {}", line_kind(line)))
                        .or_default() += line.len();
                }
            }
            let mut log_bytes_by_kind: Vec<(String, f64)> = by_kind
                .into_iter()
                .map(|(kind, b)| (kind, b as f64 / orders as f64))
                .collect();
            log_bytes_by_kind.sort_by(|a, b| b.1.total_cmp(&a.1));
            return Phase {
                name,
                orders,
                store: store_reports,
                forwarder: forwarder_reports,
                log_bytes_per_order: bytes as f64 / orders as f64,
                log_bytes_by_kind,
            };
        }
        last_forwarder = forwarder_reports.invocations();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The invoke time (ms) of a batch of 10 at Lambda's 128 MB CPU share, by contestant, from the
/// peers bench; empty when it has not run.
fn peer_batch_of_10() -> HashMap<String, f64> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench/peers.json");
    let Ok(text) = std::fs::read_to_string(path) else {
        return HashMap::new();
    };
    let peers: Value = serde_json::from_str(&text).unwrap();
    peers["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["cpu"] == "128MB" && r["n"] == 10)
        .filter_map(|r| {
            Some((
                r["contestant"].as_str()?.to_owned(),
                r["invoke_ms_p50"].as_f64()?,
            ))
        })
        .collect()
}

/// A line of a cost breakdown, in dollars per million orders.
type Line = (&'static str, f64);

fn scenario(name: &str, lines: &[Line]) -> Value {
    let total: f64 = lines.iter().map(|(_, usd)| usd).sum();
    let (top, top_usd) = lines
        .iter()
        .copied()
        .fold(("", 0.0), |a, b| if b.1 > a.1 { b } else { a });
    json!({
        "scenario": name,
        "usd_per_million_orders": total,
        "lines": lines.iter().map(|(what, usd)| json!({"what": what, "usd": usd})).collect::<Vec<_>>(),
        "dominated_by": top,
        "dominant_share": top_usd / total,
    })
}

/// The scenarios of one phase, per million orders.
fn scenarios(phase: &Phase) -> Vec<Value> {
    let million = 1e6;
    let per_order = |invocations: usize| invocations as f64 / phase.orders as f64;
    let store = million
        * lambda_per_order(
            per_order(phase.store.invocations()),
            phase.store.mean_billed_ms(),
        );
    let forwarder_invocations = per_order(phase.forwarder.invocations());
    let forwarder =
        million * lambda_per_order(forwarder_invocations, phase.forwarder.mean_billed_ms());
    // One SendMessage; a ReceiveMessage and a DeleteMessageBatch per forwarder invocation.
    let sqs = (1.0 + 2.0 * forwarder_invocations) * SQS_REQUEST.usd;
    let logs = million * phase.log_bytes_per_order / 1e9 * LOGS_GB.usd;
    let ours = |ingress: Line| {
        vec![
            ingress,
            ("store Lambda", store),
            ("SQS", sqs),
            ("forwarder Lambda", forwarder),
            ("CloudWatch Logs", logs),
        ]
    };
    // API destinations cannot take batches, so the pipe reads one message at a time: a
    // ReceiveMessage and a DeleteMessage per order besides the SendMessage (an API Gateway
    // service integration: REST's, or an HTTP API's SQS-SendMessage).
    let pipes = |ingress: Line| {
        vec![
            ingress,
            ("SQS", 3.0 * SQS_REQUEST.usd),
            ("EventBridge Pipes", PIPES.usd),
            ("API destination", API_DESTINATION.usd),
        ]
    };
    vec![
        scenario(
            "this project, REST API",
            &ours(("API Gateway REST", REST_API.usd)),
        ),
        scenario(
            "this project, HTTP API",
            &ours(("API Gateway HTTP API", HTTP_API.usd)),
        ),
        scenario("this project, Function URL", &ours(("Function URL", 0.0))),
        scenario(
            "API Gateway REST -> SQS -> Pipes -> API destination (prices only)",
            &pipes(("API Gateway REST", REST_API.usd)),
        ),
        scenario(
            "API Gateway HTTP API -> SQS -> Pipes -> API destination (prices only)",
            &pipes(("API Gateway HTTP API", HTTP_API.usd)),
        ),
    ]
}

fn main() {
    let Some(setup) =
        Setup::start_with_backend_latency(STACK, "bench/stacks/cost.tfvars", BACKEND_LATENCY)
    else {
        return; // `cargo bench -- --list` probes every bench binary
    };
    let api = setup.api();
    let groups = [
        format!("/aws/lambda/{}", setup.output("store_function_name")),
        format!("/aws/lambda/{}", setup.output("forwarder_function_name")),
    ];
    let groups = [groups[0].as_str(), groups[1].as_str()];
    let arrivals = &setup.arrivals;
    let body = order();

    let phases = setup.rt.block_on(async {
        let http = reqwest::Client::new();
        let logs = aws_sdk_cloudwatchlogs::Client::new(&aws());
        // The first order starts both functions' processes (cold starts are not counted).
        let from = epoch_ms();
        let at = post(&http, &api, &body, "cost-warm").await;
        let warm = HashMap::from([("cost-warm".to_owned(), at)]);
        delivery_latencies(&warm, arrivals, "cost-warm", DELIVERY_LIMIT).await;
        // Each phase starts once the last one's log lines are in, and a second later.
        read_phase(&logs, groups, from, "warm-up", 1).await;
        tokio::time::sleep(Duration::from_secs(1)).await;

        let from = epoch_ms();
        for i in 0..TRICKLE {
            let key = format!("cost-trickle-{i:04}");
            let one = HashMap::from([(key.clone(), post(&http, &api, &body, &key).await)]);
            delivery_latencies(&one, arrivals, &key, DELIVERY_LIMIT).await;
        }
        let trickle = read_phase(&logs, groups, from, "trickle", TRICKLE).await;
        tokio::time::sleep(Duration::from_secs(1)).await;

        let from = epoch_ms();
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (http, api, body) = (http.clone(), api.clone(), body.clone());
                tokio::spawn(async move {
                    let mut accepted = Vec::new();
                    for i in (c..BUSY).step_by(CLIENTS) {
                        let key = format!("cost-busy-{i:04}");
                        accepted.push((key.clone(), post(&http, &api, &body, &key).await));
                    }
                    accepted
                })
            })
            .collect();
        let mut accepted = HashMap::new();
        for client in clients {
            accepted.extend(client.await.unwrap());
        }
        delivery_latencies(&accepted, arrivals, "cost-busy-", DELIVERY_LIMIT).await;
        [trickle, read_phase(&logs, groups, from, "busy", BUSY).await]
    });

    println!("cost: list prices (us-east-1, first tier, free tier not counted):");
    for p in PRICES {
        println!(
            "cost:   {:<55} ${} per {} ({})",
            p.what, p.usd, p.per, p.source
        );
    }
    let mut results = Vec::new();
    for phase in &phases {
        let table = scenarios(phase);
        println!(
            "cost: {}: {} orders; store {} invocations, billed {:.1} ms mean; forwarder {} \
             invocations ({:.2} per order), billed {:.1} ms mean; {:.0} log bytes per order",
            phase.name,
            phase.orders,
            phase.store.invocations(),
            phase.store.mean_billed_ms(),
            phase.forwarder.invocations(),
            phase.forwarder.invocations() as f64 / phase.orders as f64,
            phase.forwarder.mean_billed_ms(),
            phase.log_bytes_per_order,
        );
        let kinds: Vec<String> = phase
            .log_bytes_by_kind
            .iter()
            .map(|(kind, b)| format!("{kind} {b:.0}"))
            .collect();
        println!(
            "cost: {}: log bytes per order: {}",
            phase.name,
            kinds.join(", ")
        );
        for s in &table {
            let lines: Vec<String> = s["lines"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| {
                    format!(
                        "{} ${:.4}",
                        l["what"].as_str().unwrap(),
                        l["usd"].as_f64().unwrap()
                    )
                })
                .collect();
            println!(
                "cost: {}: {:<68} ${:.2} per million orders, {:.0} % {} ({})",
                phase.name,
                s["scenario"].as_str().unwrap(),
                s["usd_per_million_orders"].as_f64().unwrap(),
                100.0 * s["dominant_share"].as_f64().unwrap(),
                s["dominated_by"].as_str().unwrap(),
                lines.join(", "),
            );
        }
        results.push(json!({
            "phase": phase.name,
            "orders": phase.orders,
            "store_invocations": phase.store.invocations(),
            "store_billed_ms_mean": phase.store.mean_billed_ms(),
            "forwarder_invocations": phase.forwarder.invocations(),
            "forwarder_billed_ms_mean": phase.forwarder.mean_billed_ms(),
            "log_bytes_per_order": phase.log_bytes_per_order,
            "log_bytes_per_order_by_kind": phase.log_bytes_by_kind.iter().map(|(k, b)| json!({"kind": k, "bytes": b})).collect::<Vec<_>>(),
            "scenarios": table,
        }));
    }

    // The forwarder alone, batches of 10 at Lambda's 128 MB CPU share (peers bench).
    let peers = peer_batch_of_10();
    let forwarders: Vec<Value> = ["rust", "powertools-async", "powertools-sync"]
        .iter()
        .filter_map(|c| {
            let invoke_ms = *peers.get(*c)?;
            let usd = 1e6 * lambda_per_order(0.1, invoke_ms.ceil());
            println!(
                "cost: forwarder {c:<17} batches of 10 at the 128 MB CPU share: {invoke_ms:.1} ms \
                 per batch, ${usd:.4} per million orders"
            );
            Some(json!({"contestant": c, "invoke_ms_per_batch_of_10": invoke_ms, "usd_per_million_orders": usd}))
        })
        .collect();
    if forwarders.is_empty() {
        println!(
            "cost: no target/bench/peers.json with 128 MB figures: run `cargo bench -p \
             storeforward-bench --bench peers` first for the Powertools forwarder"
        );
    }

    let prices: Vec<Value> = PRICES
        .iter()
        .map(|p| json!({"what": p.what, "usd": p.usd, "per": p.per, "source": p.source}))
        .collect();
    write_result(
        "cost",
        &json!({
            "memory_mb": MEMORY_MB,
            "architecture": "arm64",
            "backend_latency_ms": BACKEND_LATENCY.as_millis() as u64,
            "prices": prices,
            "phases": results,
            "forwarder_batches_of_10_at_128mb": forwarders,
        }),
    );
}
