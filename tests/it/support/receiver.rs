//! The backend the forwarder delivers to during the suite: a real HTTP server on 127.0.0.1 whose
//! answer each order chooses with its `behaviour` field, so suites can run at the same time.
//!
//! - `"ok"` (or absent): 200
//! - `"fail-first:N"`: 503 for the first N attempts of that idempotency key, then 200
//! - `"status:S"`: always S (a permanent 4xx, or a 5xx that never recovers)

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;

/// The port the test stacks' `backend_url` points at (tests/stacks/*.tfvars).
pub const PORT: u16 = 9911;

/// One request the backend received, and what it answered.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub idempotency_key: String,
    pub content_type: String,
    pub body: String,
    pub status: u16,
}

#[derive(Default)]
struct Log {
    deliveries: Vec<Delivery>,
    attempts: HashMap<String, u32>,
}

/// Shared handle to the running backend.
#[derive(Clone)]
pub struct Receiver {
    log: Arc<Mutex<Log>>,
}

impl Receiver {
    /// Starts the backend on 127.0.0.1:[`PORT`] on the current runtime.
    pub async fn start() -> std::io::Result<Self> {
        let log = Arc::new(Mutex::new(Log::default()));
        let app = Router::new()
            .route("/sales/save-order", post(answer))
            .with_state(log.clone());
        let listener =
            tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], PORT))).await?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { log })
    }

    /// Every request carrying `idempotency_key`, in arrival order.
    pub fn deliveries(&self, idempotency_key: &str) -> Vec<Delivery> {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        log.deliveries
            .iter()
            .filter(|d| d.idempotency_key == idempotency_key)
            .cloned()
            .collect()
    }

    /// Every request whose body contains `needle`.
    pub fn deliveries_containing(&self, needle: &str) -> Vec<Delivery> {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        log.deliveries
            .iter()
            .filter(|d| d.body.contains(needle))
            .cloned()
            .collect()
    }
}

async fn answer(State(log): State<Arc<Mutex<Log>>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let text = String::from_utf8_lossy(&body).into_owned();
    let key = header(&headers, "idempotency-key");
    let behaviour = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| {
            v.get("behaviour")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "ok".into());
    let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
    let attempt = {
        let n = log.attempts.entry(key.clone()).or_default();
        *n += 1;
        *n
    };
    let status = match behaviour.split_once(':') {
        Some(("fail-first", n)) if attempt <= n.parse().unwrap_or(0) => 503,
        Some(("status", s)) => s.parse().unwrap_or(500),
        _ => 200,
    };
    log.deliveries.push(Delivery {
        idempotency_key: key,
        content_type: header(&headers, "content-type"),
        body: text,
        status,
    });
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}
