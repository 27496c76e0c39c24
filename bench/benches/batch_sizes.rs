//! Large batches through the real forwarder binary: batches of 100 and 1,000 messages (standard
//! queues take up to 10,000 with a batching window) with `MAX_IN_FLIGHT` 10, 50 and 100, and a
//! batch of 10 messages of 256 KiB, against a backend on 127.0.0.1 that answers in 100 ms. Each
//! run is one invocation served by a Lambda Runtime API stand-in; the time is from handing out
//! the event to receiving the batch response, the memory is the forwarder process's peak RSS
//! (`VmHWM`). Build first: `cargo build --release --bins` (`make bench` does). Writes
//! `target/bench/batch_sizes.csv` and the plot `docs/bench/batch_sizes.svg`.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use serde_json::{Value, json};

use common::runtime_api::{RuntimeApi, forwarder_command, peak_rss_kib};
use common::sqs_event;

const BACKEND_LATENCY: Duration = Duration::from_millis(100);
const RUNS: usize = 3;
/// (messages, `MAX_IN_FLIGHT`, body bytes)
const CASES: [(usize, usize, usize); 8] = [
    (100, 10, 64),
    (100, 50, 64),
    (100, 100, 64),
    (1_000, 10, 64),
    (1_000, 50, 64),
    (1_000, 100, 64),
    (10, 10, 256 * 1024 - 1024),
    (10, 1, 256 * 1024 - 1024),
];

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr.to_string()
}

fn padded_event(messages: usize, body_bytes: usize) -> String {
    let pad = "x".repeat(body_bytes.saturating_sub(40));
    sqs_event(messages, |i| {
        format!(r#"{{"id":"order-{i}","pad":"{pad}"}}"#)
    })
    .to_string()
}

/// One invocation of the forwarder binary with one batch; returns its time and peak RSS.
async fn run_once(
    backend: &str,
    messages: usize,
    in_flight: usize,
    body: usize,
) -> (Duration, u64) {
    let api = RuntimeApi::start().await;
    let mut child = forwarder_command(&api.address(), backend, in_flight)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let invocation = tokio::time::timeout(
        Duration::from_secs(120),
        api.invoke(padded_event(messages, body)),
    )
    .await
    .expect("the forwarder answered within 120 s");
    let rss = peak_rss_kib(child.id());
    child.kill().unwrap();
    child.wait().unwrap();
    let result: Value = serde_json::from_str(&invocation.body).unwrap_or(Value::Null);
    assert!(
        !invocation.error,
        "the forwarder failed: {}",
        invocation.body
    );
    assert_eq!(
        result["batchItemFailures"],
        json!([]),
        "every message delivered"
    );
    (invocation.took, rss)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` probes every bench binary
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let backend = rt.block_on(serve(
        Router::new().route(
            "/sales/save-order",
            post(|_body: axum::body::Bytes| async {
                tokio::time::sleep(BACKEND_LATENCY).await;
                "ok"
            })
            .layer(axum::extract::DefaultBodyLimit::disable()),
        ),
    ));
    let backend = format!("http://{backend}/sales/save-order");
    let mut csv = String::from("messages,max_in_flight,body_bytes,median_ms,peak_rss_kib\n");
    let mut results = Vec::new();
    println!(
        "batch through the forwarder binary, backend {BACKEND_LATENCY:?}, median of {RUNS} runs"
    );
    println!(
        "{:>8} {:>13} {:>10} {:>11} {:>9} {:>13}",
        "messages", "MAX_IN_FLIGHT", "body", "time", "msg/s", "peak RSS"
    );
    for (messages, in_flight, body) in CASES {
        let mut runs: Vec<(Duration, u64)> = (0..RUNS)
            .map(|_| rt.block_on(run_once(&backend, messages, in_flight, body)))
            .collect();
        runs.sort();
        let (median, _) = runs[RUNS / 2];
        let rss = runs.iter().map(|r| r.1).max().unwrap_or(0);
        println!(
            "{messages:>8} {in_flight:>13} {body:>10} {:>9.1}ms {:>9.0} {:>10.1}MiB",
            median.as_secs_f64() * 1e3,
            messages as f64 / median.as_secs_f64(),
            rss as f64 / 1024.0,
        );
        csv.push_str(&format!(
            "{messages},{in_flight},{body},{:.1},{rss}\n",
            median.as_secs_f64() * 1e3
        ));
        results.push((messages, in_flight, body, median, rss));
    }
    plot(&results);
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("batch_sizes.csv"), csv).unwrap();
}

/// Messages per second against `MAX_IN_FLIGHT`, one line per batch size, with the ideal
/// (`MAX_IN_FLIGHT` / backend latency) for reference.
fn plot(results: &[(usize, usize, usize, Duration, u64)]) {
    use plotters::prelude::*;
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/bench/batch_sizes.svg");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let root = SVGBackend::new(&path, (720, 420)).into_drawing_area();
    root.fill(&WHITE).unwrap();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Forwarder throughput, backend answering in 100 ms",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..110f64, 0f64..1100f64)
        .unwrap();
    chart
        .configure_mesh()
        .x_desc("MAX_IN_FLIGHT")
        .y_desc("messages per second")
        .draw()
        .unwrap();
    let ideal = [(0.0, 0.0), (100.0, 1000.0)];
    chart
        .draw_series(LineSeries::new(ideal, BLACK.mix(0.3)))
        .unwrap()
        .label("ideal: MAX_IN_FLIGHT / 100 ms")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLACK.mix(0.3)));
    for (colour, messages) in [(BLUE, 100), (RED, 1_000)] {
        let points: Vec<(f64, f64)> = results
            .iter()
            .filter(|r| r.0 == messages && r.2 < 1024)
            .map(|r| (r.1 as f64, r.0 as f64 / r.3.as_secs_f64()))
            .collect();
        common::line_with_points(&mut chart, points, colour, format!("batch of {messages}"));
    }
    common::legend(&mut chart);
    root.present().unwrap();
}
