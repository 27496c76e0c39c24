//! The local stack for the benches that need one: LocalStack on 127.0.0.1 (started unless one
//! runs, and stopped again), the functions (`make build-local`), `infra/` applied as a named
//! stack, and a backend on 127.0.0.1 that notes when each order arrives.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_sqs::config::{Credentials, SharedCredentialsProvider};
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::Value;

pub const LOCALSTACK: &str = "http://127.0.0.1:4566";

/// A signature LocalStack's Lambda API accepts (it checks none).
const LAMBDA_AUTHORIZATION: &str = "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/lambda/aws4_request, SignedHeaders=host, Signature=0";

/// When each delivery reached the backend, with its `Idempotency-Key`.
pub type Arrivals = Arc<Mutex<Vec<(Instant, String)>>>;

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

/// What a bench on the local stack starts from: its runtime, the backend's arrivals, the stack's
/// outputs; LocalStack stops (if the bench started it) when this is dropped.
pub struct Setup {
    pub rt: tokio::runtime::Runtime,
    pub arrivals: Arrivals,
    pub outputs: Value,
    _local: LocalStack,
}

impl Setup {
    /// LocalStack, the backend and the stack `stack` applied with `tfvars`; `None` when cargo
    /// only lists the benches (`cargo bench -- --list`).
    pub fn start(stack: &str, tfvars: &str) -> Option<Self> {
        Self::start_with_backend_latency(stack, tfvars, Duration::ZERO)
    }

    /// As [`Setup::start`], with a backend that answers each order after `latency`.
    pub fn start_with_backend_latency(
        stack: &str,
        tfvars: &str,
        latency: Duration,
    ) -> Option<Self> {
        if std::env::args().any(|a| a == "--list") {
            return None;
        }
        let local = LocalStack::up();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let arrivals = Arrivals::default();
        let url = rt.block_on(backend(arrivals.clone(), latency));
        let outputs = local.apply(stack, tfvars, &url);
        Some(Self {
            rt,
            arrivals,
            outputs,
            _local: local,
        })
    }

    /// A string output of the stack.
    pub fn output(&self, name: &str) -> String {
        self.outputs[name].as_str().unwrap().to_owned()
    }

    /// Where the stack takes orders.
    pub fn api(&self) -> Api {
        Api {
            url: format!("{}{}", self.output("api_url"), self.output("order_path")),
            key: self.outputs["api_key"].as_str().map(str::to_owned),
        }
    }
}

/// Where orders go, and the API key they need (the stack's default `api_auth = "api_key"`).
#[derive(Debug, Clone)]
pub struct Api {
    pub url: String,
    pub key: Option<String>,
}

/// Writes a bench's result to `target/bench/<name>.json`.
pub fn write_result(name: &str, result: &Value) {
    let out = root().join("target/bench");
    std::fs::create_dir_all(&out).unwrap();
    let text = serde_json::to_string_pretty(result).unwrap() + "\n";
    std::fs::write(out.join(format!("{name}.json")), text).unwrap();
}

/// The PID of the LocalStack `localstack/bin/start` started; it leads its own process group.
pub fn localstack_pid() -> u32 {
    std::fs::read_to_string(root().join(".local/localstack.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// LocalStack for the length of a bench: started unless one already answers, stopped on drop
/// only if this started it.
struct LocalStack {
    started: bool,
}

impl LocalStack {
    fn up() -> Self {
        let started = std::net::TcpStream::connect(("127.0.0.1", 4566)).is_err();
        if started {
            run("localstack/bin/start", &[], &[]);
        }
        Self { started }
    }

    /// Builds the functions and applies `infra/` as `stack` with `tfvars` (repo-relative) and the
    /// backend at `backend_url`; returns the stack's outputs.
    fn apply(&self, stack: &str, tfvars: &str, backend_url: &str) -> Value {
        run("make", &["--no-print-directory", "-s", "build-local"], &[]);
        run(
            "scripts/apply-local",
            &[stack, tfvars],
            &[("BACKEND_URL", backend_url)],
        );
        let outputs = root().join(format!(".local/stacks/{stack}/outputs.json"));
        serde_json::from_str(&std::fs::read_to_string(outputs).unwrap()).unwrap()
    }
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        if self.started {
            run("localstack/bin/stop", &[], &[]);
        }
    }
}

/// A backend on 127.0.0.1 that notes each order's arrival and answers 200 after `latency`;
/// returns its URL.
async fn backend(arrivals: Arrivals, latency: Duration) -> String {
    let app = Router::new()
        .route(
            "/sales/save-order",
            axum::routing::post(
                move |State(log): State<Arrivals>, headers: HeaderMap| async move {
                    let key = headers
                        .get("idempotency-key")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    log.lock().unwrap().push((Instant::now(), key));
                    tokio::time::sleep(latency).await;
                    "ok"
                },
            ),
        )
        .with_state(arrivals);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/sales/save-order")
}

/// Keeps `bar` at the number of deliveries whose key starts with `prefix`, every 100 ms, until
/// the returned task is aborted.
pub fn follow(
    bar: &indicatif::ProgressBar,
    arrivals: &Arrivals,
    prefix: &'static str,
) -> tokio::task::JoinHandle<()> {
    let (bar, arrivals) = (bar.clone(), arrivals.clone());
    tokio::spawn(async move {
        loop {
            let n = {
                let log = arrivals.lock().unwrap();
                log.iter().filter(|(_, k)| k.starts_with(prefix)).count()
            };
            bar.set_position(n as u64);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// The SDK configuration for LocalStack on 127.0.0.1: `aws_sdk_<service>::Client::new(&aws())`.
pub fn aws() -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(LOCALSTACK)
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "test", "test", None, None, "bench",
        )))
        .build()
}

pub fn sqs() -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&aws())
}

/// Invokes a function synchronously through LocalStack's Lambda API; returns its answer.
pub async fn invoke(http: &reqwest::Client, function: &str, payload: String) -> Value {
    let response = http
        .post(format!(
            "{LOCALSTACK}/2015-03-31/functions/{function}/invocations"
        ))
        .header("authorization", LAMBDA_AUTHORIZATION)
        .body(payload)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .unwrap();
    response.json().await.unwrap()
}

/// The event source mappings of a function, as LocalStack's Lambda API lists them.
pub async fn event_source_mappings(http: &reqwest::Client, function: &str) -> Vec<Value> {
    let list: Value = http
        .get(format!(
            "{LOCALSTACK}/2015-03-31/event-source-mappings/?FunctionName={function}"
        ))
        .header("authorization", LAMBDA_AUTHORIZATION)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list["EventSourceMappings"].as_array().unwrap().clone()
}

/// Posts one order through API Gateway; returns when the 202 arrived.
pub async fn post(http: &reqwest::Client, api: &Api, body: &str, key: &str) -> Instant {
    let mut request = http.post(&api.url);
    if let Some(api_key) = &api.key {
        request = request.header("x-api-key", api_key);
    }
    let response = request
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let at = Instant::now();
    assert_eq!(response.status(), 202, "{key}: {:?}", response.text().await);
    at
}

/// 202 → delivery of each accepted order whose key starts with `prefix`, once all arrived (or
/// `limit` passed); sorted. Panics on a duplicate delivery, or if any is missing after `limit`.
pub async fn delivery_latencies(
    accepted: &HashMap<String, Instant>,
    arrivals: &Arrivals,
    prefix: &str,
    limit: Duration,
) -> Vec<Duration> {
    let deadline = Instant::now() + limit;
    loop {
        let arrived: HashMap<String, Instant> = {
            let log = arrivals.lock().unwrap();
            let mine: Vec<_> = log.iter().filter(|(_, k)| k.starts_with(prefix)).collect();
            let unique: HashMap<String, Instant> =
                mine.iter().map(|(t, k)| (k.clone(), *t)).collect();
            assert_eq!(unique.len(), mine.len(), "{prefix}: a duplicate delivery");
            unique
        };
        if arrived.len() == accepted.len() || Instant::now() > deadline {
            let mut latencies: Vec<Duration> = accepted
                .iter()
                .filter_map(|(k, at)| arrived.get(k).map(|t| t.saturating_duration_since(*at)))
                .collect();
            assert_eq!(
                latencies.len(),
                accepted.len(),
                "{prefix}: not all delivered within {limit:?}"
            );
            latencies.sort();
            return latencies;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
