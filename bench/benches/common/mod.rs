//! What several benches share. Each bench is its own crate and uses only part of this.
#![allow(dead_code, clippy::unwrap_used)]

pub mod local;
pub mod runtime_api;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

/// A release binary of the workspace, as `cargo build --release --bins` leaves it.
pub fn release_binary(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("release").join(name)
}

/// An event source mapping event of `n` records carrying the store's attributes; record `i` has
/// the body `body(i)`.
pub fn sqs_event(n: usize, body: impl Fn(usize) -> String) -> Value {
    let records: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "messageId": format!("m{i}"),
                "receiptHandle": format!("rh{i}"),
                "body": body(i),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {
                    "ContentType": {"stringValue": "application/json", "dataType": "String"},
                    "IdempotencyKey": {"stringValue": format!("key-{i}"), "dataType": "String"}
                },
                "eventSourceARN": "arn:aws:sqs:eu-west-1:000000000000:orders",
                "eventSource": "aws:sqs",
                "awsRegion": "eu-west-1"
            })
        })
        .collect();
    json!({ "Records": records })
}

/// The event Lambda delivers for `POST /orders/new-order` with `body` and an `Idempotency-Key`.
pub fn apigw_order_event(body: &str, key: &str) -> String {
    let mut event: Value = serde_json::from_str(include_str!(
        "../../../functions/store/tests/fixtures/apigw-rest-request.json"
    ))
    .unwrap();
    event["path"] = json!("/orders/new-order");
    event["resource"] = json!("/{proxy+}");
    event["requestContext"]["path"] = json!("/v1/orders/new-order");
    event["headers"] = json!({"Content-Type": "application/json", "Idempotency-Key": key});
    event["multiValueHeaders"] =
        json!({"Content-Type": ["application/json"], "Idempotency-Key": [key]});
    event["body"] = json!(body);
    event.to_string()
}

/// A typical order: a customer, eight lines, a note (808 bytes).
pub fn order() -> String {
    let lines: Vec<String> = (0..8)
        .map(|i| format!(r#"{{"sku":"SKU-{i:05}","name":"Item number {i}, blue, size M","qty":{i},"price":"19.99"}}"#))
        .collect();
    format!(
        r#"{{"orderId":"ord-2026-11-26-000042","customer":{{"id":"cust-8812","email":"jane@example.com"}},"currency":"EUR","lines":[{}],"note":"Leave at the door — merci ✓"}}"#,
        lines.join(",")
    )
}

/// The nearest-rank `q` quantile (0 < `q` <= 1) of `sorted`: the least value that `q` of the
/// values do not exceed (of 10 values the p50 is the 5th, the p90 the 9th).
pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    // The epsilon keeps a whole rank whole: 0.9 * 10 must not round up to 10.
    let rank = (sorted.len() as f64 * q - 1e-9).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A process's CPU time so far, from `/proc/<pid>/stat`.
#[derive(Debug, Clone)]
pub struct ProcCpu {
    /// The command name (`comm`).
    pub name: String,
    /// The process group.
    pub pgid: u32,
    /// User + system CPU seconds.
    pub seconds: f64,
}

/// The CPU time each process has used so far, by PID.
pub fn cpu_by_pid() -> HashMap<u32, ProcCpu> {
    let tick: f64 = 100.0; // USER_HZ on Linux
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // The command name is in parentheses and may hold spaces; fields follow the last ')'.
            let (head, tail) = stat.rsplit_once(')')?;
            let name = head.split_once('(')?.1.to_owned();
            let fields: Vec<&str> = tail.split_whitespace().collect();
            let pgid = fields[2].parse().ok()?;
            let (utime, stime): (f64, f64) = (fields[11].parse().ok()?, fields[12].parse().ok()?);
            let seconds = (utime + stime) / tick;
            Some((
                pid,
                ProcCpu {
                    name,
                    pgid,
                    seconds,
                },
            ))
        })
        .collect()
}

/// CPU seconds that the processes `which` picks (by PID and sample) spent from `before` to
/// `after`; a process that started in between counts from zero.
pub fn cpu_spent(
    before: &HashMap<u32, ProcCpu>,
    after: &HashMap<u32, ProcCpu>,
    which: impl Fn(u32, &ProcCpu) -> bool,
) -> f64 {
    after
        .iter()
        .filter(|(pid, p)| which(**pid, p))
        .map(|(pid, p)| p.seconds - before.get(pid).map_or(0.0, |b| b.seconds))
        .sum()
}

/// A variable in the environment process `pid` started with; `None` when unset or empty.
pub fn process_env(pid: u32, name: &str) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    environ
        .split(|b| *b == 0)
        .filter_map(|entry| std::str::from_utf8(entry).ok()?.split_once('='))
        .find(|(key, value)| *key == name && !value.is_empty())
        .map(|(_, value)| value.to_owned())
}

/// Draws `points` as a line with a dot on each, named `label` in the legend.
pub fn line_with_points<'a, DB, CT>(
    chart: &mut plotters::chart::ChartContext<'a, DB, CT>,
    points: Vec<(f64, f64)>,
    colour: plotters::style::RGBColor,
    label: impl Into<String>,
) where
    DB: plotters::prelude::DrawingBackend + 'a,
    CT: plotters::coord::CoordTranslate<From = (f64, f64)>,
{
    use plotters::prelude::*;
    chart
        .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
        .unwrap()
        .label(label)
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], colour.stroke_width(2)));
    chart
        .draw_series(
            points
                .into_iter()
                .map(|p| Circle::new(p, 4, colour.filled())),
        )
        .unwrap();
}

/// The legend, in the upper left corner as in every plot of the benches.
pub fn legend<'a, DB, CT>(chart: &mut plotters::chart::ChartContext<'a, DB, CT>)
where
    DB: plotters::prelude::DrawingBackend + 'a,
    CT: plotters::coord::CoordTranslate,
{
    use plotters::prelude::*;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK.mix(0.2))
        .background_style(WHITE)
        .draw()
        .unwrap();
}
