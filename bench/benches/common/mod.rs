//! What several benches share. Each bench is its own crate and uses only part of this.
#![allow(dead_code, clippy::unwrap_used)]

pub mod local;

use std::path::PathBuf;

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
