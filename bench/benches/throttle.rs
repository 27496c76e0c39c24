//! The seed's throttling use case on the local stack: 1,000 orders waiting in the queue, one
//! scheduled invocation of the forwarder with `MAX_RPS=100`, and the delivery rate the backend
//! (on 127.0.0.1) observes. Needs the local stack: starts LocalStack unless one runs (and stops
//! it again), builds the functions (`make build-local`), applies `infra/` as the stack
//! `bench-throttle` with `bench/stacks/throttle.tfvars`.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use axum::Router;
use axum::extract::State;
use axum::routing::post;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

const ORDERS: usize = 1_000;
const MAX_RPS: f64 = 100.0;
const LOCALSTACK: &str = "http://127.0.0.1:4566";
const STACK: &str = "bench-throttle";

type Arrivals = Arc<Mutex<Vec<Instant>>>;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(program: &str, args: &[&str], env: &[(&str, &str)]) {
    let status = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(root())
        .status()
        .unwrap();
    assert!(status.success(), "{program} {args:?} failed");
}

async fn backend(arrivals: Arrivals) -> String {
    let app = Router::new()
        .route(
            "/sales/save-order",
            post(|State(log): State<Arrivals>| async move {
                log.lock().unwrap().push(Instant::now());
                "ok"
            }),
        )
        .with_state(arrivals);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/sales/save-order")
}

fn sqs() -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(LOCALSTACK)
            .credentials_provider(Credentials::new("test", "test", None, None, "bench"))
            .build(),
    )
}

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

/// Invokes the function synchronously with the empty event of a poll; returns its answer.
async fn invoke(function: &str) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{LOCALSTACK}/2015-03-31/functions/{function}/invocations"))
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/lambda/aws4_request, SignedHeaders=host, Signature=0",
        )
        .body("{}")
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .unwrap();
    response.json().await.unwrap()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` probes every bench binary
    }
    let started = std::net::TcpStream::connect(("127.0.0.1", 4566)).is_err();
    if started {
        run("localstack/bin/start", &[], &[]);
    }
    run("make", &["--no-print-directory", "-s", "build-local"], &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let arrivals = Arrivals::default();
    let url = rt.block_on(backend(arrivals.clone()));
    run(
        "scripts/apply-local",
        &[STACK, "bench/stacks/throttle.tfvars"],
        &[("BACKEND_URL", &url)],
    );
    let outputs: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join(format!(".local/stacks/{STACK}/outputs.json")))
            .unwrap(),
    )
    .unwrap();
    let (queue, function) = (
        outputs["queue_url"].as_str().unwrap(),
        outputs["forwarder_function_name"].as_str().unwrap(),
    );

    let tally = rt.block_on(async {
        fill(&sqs(), queue).await;
        let bar = ProgressBar::new(ORDERS as u64).with_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} delivered, {per_sec}").unwrap(),
        );
        let watching = {
            let (bar, arrivals) = (bar.clone(), arrivals.clone());
            tokio::spawn(async move {
                loop {
                    bar.set_position(arrivals.lock().unwrap().len() as u64);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        };
        let tally = invoke(function).await;
        watching.abort();
        bar.finish();
        tally
    });

    let times = arrivals.lock().unwrap().clone();
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
    if started {
        run("localstack/bin/stop", &[], &[]);
    }
}
