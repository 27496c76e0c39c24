//! Metrics in CloudWatch Embedded Metric Format (EMF): a JSON line in the function's log stream
//! that CloudWatch Logs turns into metrics, so that no metric costs an API call. One document
//! per invocation; namespace [`NAMESPACE`], dimension `FunctionName` (and `Reason` for the
//! store's rejections).

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use crate::batch::{Backend, Message, Tally};
use crate::retry::{Attempt, CredentialFailure};
use crate::trace::TraceContext;

pub const NAMESPACE: &str = "storeforward";
/// EMF takes at most 100 values per metric in one document.
pub const MAX_VALUES: usize = 100;

/// One EMF document under construction.
#[derive(Debug, Clone)]
pub struct Document {
    dimensions: Vec<(&'static str, String)>,
    metrics: Vec<(&'static str, &'static str, Value)>,
    properties: Vec<(&'static str, String)>,
}

impl Document {
    /// A document for the function `function_name`.
    pub fn new(function_name: &str) -> Self {
        Self {
            dimensions: vec![("FunctionName", function_name.to_owned())],
            metrics: Vec::new(),
            properties: Vec::new(),
        }
    }

    /// Also carries `name` = `value` as a plain member: not a metric nor a dimension, but
    /// searchable in the logs (e.g. the `RequestId` that ties the document to its invocation).
    pub fn property(mut self, name: &'static str, value: &str) -> Self {
        self.properties.push((name, value.to_owned()));
        self
    }

    /// Also publishes every metric under `FunctionName` + `name` = `value`.
    pub fn dimension(mut self, name: &'static str, value: &str) -> Self {
        self.dimensions.push((name, value.to_owned()));
        self
    }

    pub fn count(mut self, name: &'static str, n: usize) -> Self {
        self.metrics.push((name, "Count", json!(n)));
        self
    }

    /// Up to [`MAX_VALUES`] durations, in milliseconds.
    pub fn milliseconds(mut self, name: &'static str, values: &[Duration]) -> Self {
        let ms: Vec<f64> = values
            .iter()
            .take(MAX_VALUES)
            .map(|d| (d.as_secs_f64() * 1e6).round() / 1e3)
            .collect();
        if !ms.is_empty() {
            self.metrics.push((name, "Milliseconds", json!(ms)));
        }
        self
    }

    /// The document as one line of JSON, stamped `timestamp_ms`.
    pub fn render(&self, timestamp_ms: u64) -> String {
        let names: Vec<&str> = self.dimensions.iter().map(|(n, _)| *n).collect();
        // The first dimension alone, and with each further one.
        let sets: Vec<Vec<&str>> = std::iter::once(vec![names[0]])
            .chain(names[1..].iter().map(|n| vec![names[0], *n]))
            .collect();
        let definitions: Vec<Value> = self
            .metrics
            .iter()
            .map(|(name, unit, _)| json!({"Name": name, "Unit": unit}))
            .collect();
        let mut root = Map::new();
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": sets,
                    "Metrics": definitions,
                }]
            }),
        );
        for (name, value) in self.properties.iter().chain(&self.dimensions) {
            root.insert((*name).into(), json!(value));
        }
        for (name, _, value) in &self.metrics {
            root.insert((*name).into(), value.clone());
        }
        Value::Object(root).to_string()
    }
}

/// Writes `documents` to standard output, one line each, where Lambda ships them to the log
/// stream.
pub fn emit(documents: &[Document]) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut out = std::io::stdout().lock();
    for document in documents {
        // A metric lost to a broken stdout is no reason to fail a delivery.
        let _ = writeln!(out, "{}", document.render(now));
    }
}

/// A backend that times each attempt and notes the class of its answer.
#[derive(Debug)]
pub struct Measured<'a, B> {
    inner: &'a B,
    attempts: Mutex<Vec<(StatusClass, Duration)>>,
}

/// The class of a backend's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    Success,
    Redirect,
    ClientError,
    ServerError,
    /// Timeout, connection failure, or no request at all.
    NoAnswer,
    /// No request: the credentials could not be had.
    NoCredentials(CredentialFailure),
}

impl StatusClass {
    fn of(attempt: &Attempt) -> Self {
        match attempt {
            Attempt::Response { status, .. } => match status / 100 {
                2 => Self::Success,
                3 => Self::Redirect,
                4 => Self::ClientError,
                5 => Self::ServerError,
                _ => Self::NoAnswer,
            },
            Attempt::NoCredentials { failure, .. } => Self::NoCredentials(*failure),
            _ => Self::NoAnswer,
        }
    }

    fn metric(self) -> &'static str {
        match self {
            Self::Success => "Backend2xx",
            Self::Redirect => "Backend3xx",
            Self::ClientError => "Backend4xx",
            Self::ServerError => "Backend5xx",
            Self::NoAnswer => "BackendNoAnswer",
            Self::NoCredentials(CredentialFailure::Unavailable) => "CredentialsUnavailable",
            Self::NoCredentials(CredentialFailure::Rejected) => "CredentialsRejected",
            Self::NoCredentials(CredentialFailure::Malformed) => "CredentialsMalformed",
        }
    }
}

impl<'a, B> Measured<'a, B> {
    pub fn new(inner: &'a B) -> Self {
        Self {
            inner,
            attempts: Mutex::new(Vec::new()),
        }
    }

    /// The forwarder's documents for one invocation, each built on `base` (its dimensions and
    /// properties): the outcomes in `tally`, the attempts' status classes, and their latencies
    /// (more documents when there are more than [`MAX_VALUES`] of them).
    pub fn documents(&self, base: Document, tally: &Tally) -> Vec<Document> {
        let attempts = self.attempts.lock().map(|a| a.clone()).unwrap_or_default();
        let mut first = base
            .clone()
            .count("Received", tally.received)
            .count("Delivered", tally.delivered)
            .count("Retried", tally.retrying)
            .count("DeadLettered", tally.dead_lettered)
            .count("Dropped", tally.dropped)
            .count("Deferred", tally.deferred)
            .count("Failed", tally.failed)
            .count("Parked", tally.parked)
            .count("Held", tally.held)
            .count("Stopped", tally.stopped)
            .count("CircuitOpened", tally.circuit_opened)
            .count("CircuitClosed", tally.circuit_closed)
            .count("ProbeFailed", tally.probes_failed)
            .count("DeliveryPaused", tally.delivery_paused);
        for class in [
            StatusClass::Success,
            StatusClass::Redirect,
            StatusClass::ClientError,
            StatusClass::ServerError,
            StatusClass::NoAnswer,
            StatusClass::NoCredentials(CredentialFailure::Unavailable),
            StatusClass::NoCredentials(CredentialFailure::Rejected),
            StatusClass::NoCredentials(CredentialFailure::Malformed),
        ] {
            first = first.count(
                class.metric(),
                attempts.iter().filter(|(c, _)| *c == class).count(),
            );
        }
        let latencies: Vec<Duration> = attempts.iter().map(|(_, d)| *d).collect();
        let mut chunks = latencies.chunks(MAX_VALUES);
        let mut documents =
            vec![first.milliseconds("DeliveryLatency", chunks.next().unwrap_or(&[]))];
        documents.extend(chunks.map(|chunk| base.clone().milliseconds("DeliveryLatency", chunk)));
        documents
    }
}

impl<B: Backend> Backend for Measured<'_, B> {
    async fn deliver(&self, message: &Message, trace: &TraceContext) -> Attempt {
        let started = Instant::now();
        let attempt = self.inner.deliver(message, trace).await;
        let took = started.elapsed();
        if let Ok(mut attempts) = self.attempts.lock() {
            attempts.push((StatusClass::of(&attempt), took));
        }
        attempt
    }

    fn method(&self) -> &str {
        self.inner.method()
    }

    async fn health(&self) -> Option<Attempt> {
        self.inner.health().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(document: &Document) -> Value {
        serde_json::from_str(&document.render(1_700_000_000_000)).unwrap()
    }

    #[test]
    fn a_document_declares_every_metric_it_carries() {
        let doc = parse(
            &Document::new("orders-store")
                .property("RequestId", "req-1")
                .dimension("Reason", "malformed_json")
                .count("Rejected", 1)
                .milliseconds("Latency", &[Duration::from_micros(1500)]),
        );
        let aws = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000_u64);
        assert_eq!(aws["Namespace"], NAMESPACE);
        assert_eq!(
            aws["Dimensions"],
            json!([["FunctionName"], ["FunctionName", "Reason"]])
        );
        assert_eq!(
            aws["Metrics"],
            json!([{"Name": "Rejected", "Unit": "Count"}, {"Name": "Latency", "Unit": "Milliseconds"}])
        );
        assert_eq!(doc["FunctionName"], "orders-store");
        assert_eq!(doc["Reason"], "malformed_json");
        assert_eq!(
            doc["RequestId"], "req-1",
            "a property, neither metric nor dimension"
        );
        assert_eq!(doc["Rejected"], 1);
        assert_eq!(doc["Latency"], json!([1.5]));
    }

    #[test]
    fn answers_are_classed_by_status_and_no_answer_is_its_own_class() {
        let response = |status| Attempt::Response {
            status,
            retry_after: None,
        };
        assert_eq!(StatusClass::of(&response(204)), StatusClass::Success);
        assert_eq!(StatusClass::of(&response(302)), StatusClass::Redirect);
        assert_eq!(StatusClass::of(&response(429)), StatusClass::ClientError);
        assert_eq!(StatusClass::of(&response(503)), StatusClass::ServerError);
        assert_eq!(StatusClass::of(&Attempt::Timeout), StatusClass::NoAnswer);
        assert_eq!(
            StatusClass::of(&Attempt::Connection("reset".into())),
            StatusClass::NoAnswer
        );
        let no_token = StatusClass::of(&Attempt::NoCredentials {
            failure: CredentialFailure::Unavailable,
            reason: "token endpoint answered 503".into(),
        });
        assert_eq!(
            no_token,
            StatusClass::NoCredentials(CredentialFailure::Unavailable)
        );
        assert_eq!(
            no_token.metric(),
            "CredentialsUnavailable",
            "not BackendNoAnswer: the backend was never asked"
        );
    }

    #[test]
    fn more_latencies_than_one_document_holds_spill_into_more_documents() {
        let backend = ();
        let measured = Measured::new(&backend);
        *measured.attempts.lock().unwrap() = (0..250)
            .map(|i| (StatusClass::Success, Duration::from_millis(i)))
            .collect();
        let tally = Tally {
            received: 250,
            delivered: 250,
            ..Tally::default()
        };
        let docs: Vec<Value> = measured
            .documents(Document::new("fwd").property("RequestId", "r-1"), &tally)
            .iter()
            .map(parse)
            .collect();
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[0]["Delivered"], 250);
        assert_eq!(docs[0]["Backend2xx"], 250);
        let values: usize = docs
            .iter()
            .map(|d| d["DeliveryLatency"].as_array().unwrap().len())
            .sum();
        assert_eq!(values, 250);
        assert!(docs[1].get("Delivered").is_none(), "counts appear once");
        assert!(docs.iter().all(|d| d["RequestId"] == "r-1"), "{docs:?}");
    }
}
