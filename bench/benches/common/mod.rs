//! What several benches share. Each bench is its own crate and uses only part of this.
#![allow(dead_code)]

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
