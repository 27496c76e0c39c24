//! One SQS batch of 10 through the real forwarder handler and reqwest backend, against a backend
//! on 127.0.0.1 that answers in 100 ms: concurrent (`MAX_IN_FLIGHT=10`) next to one by one
//! (`MAX_IN_FLIGHT=1`), in the same run.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use aws_sdk_sqs::config::{BehaviorVersion, Region};
use axum::Router;
use axum::routing::post;
use criterion::{Criterion, criterion_group, criterion_main};
use forwarder::{BackendSettings, Event, Forwarder, HttpBackend};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use storeforward_core::batch::{AfterPermanent, Policy};
use storeforward_core::breaker::Breaker;
use storeforward_core::fakes::policy;
use storeforward_core::poll::Limits;
use storeforward_sqs::SqsSource;

use common::sqs_event;

const BACKEND_LATENCY: Duration = Duration::from_millis(100);
const BATCH: usize = 10;

async fn slow_backend() -> String {
    let app = Router::new().route(
        "/sales/save-order",
        post(|| async {
            tokio::time::sleep(BACKEND_LATENCY).await;
            "ok"
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/sales/save-order")
}

fn forwarder(url: &str, max_in_flight: usize) -> Forwarder<HttpBackend> {
    // Every delivery succeeds, so the handler makes no SQS call; the client only has to exist.
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .build(),
    );
    let backend = HttpBackend::new(&BackendSettings {
        url: url.parse().unwrap(),
        method: "POST".parse().unwrap(),
        request_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(3),
        signer: None,
        health_url: None,
        identity: None,
        extra_roots: Vec::new(),
    })
    .unwrap();
    Forwarder {
        backend,
        primary: SqsSource::new(
            sqs,
            "http://127.0.0.1:4566/queue/eu-west-1/000000000000/orders",
            None,
        ),
        failover_url: None,
        policy: Policy {
            max_in_flight,
            after_permanent: AfterPermanent::Redrive,
            ..policy()
        },
        poll: Limits {
            wait: Duration::ZERO,
            max_messages: None,
            max_rps: None,
        },
        breaker: Breaker::new(0, Duration::from_secs(60)),
        circuit: None,
    }
}

fn event(payload: &Value) -> LambdaEvent<Event> {
    let mut ctx = Context::default();
    ctx.deadline = (std::time::SystemTime::now() + Duration::from_secs(900))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    LambdaEvent::new(Event::try_from(payload.clone()).unwrap(), ctx)
}

fn batch_of_ten(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = rt.block_on(slow_backend());
    let payload = sqs_event(BATCH, |i| format!(r#"{{"id":"order-{i}","qty":1}}"#));
    let mut group = c.benchmark_group("forwarder_batch_10_backend_100ms");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(15));
    for (name, max_in_flight) in [
        ("concurrent_max_in_flight_10", 10),
        ("sequential_max_in_flight_1", 1),
    ] {
        let fw = forwarder(&url, max_in_flight);
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let response = fw.handle(event(&payload)).await.unwrap();
                assert_eq!(response["batchItemFailures"], json!([]));
            })
        });
    }
    group.finish();
}

criterion_group!(benches, batch_of_ten);
criterion_main!(benches);
