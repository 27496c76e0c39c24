//! A Lambda Runtime API stand-in on 127.0.0.1 for one runtime process at a time: it hands out
//! the events given to [`RuntimeApi::invoke`] one by one and times each from the answer to
//! `GET /invocation/next` to the `POST /invocation/{id}/response` (or `/error`).
//!
//! ```ignore
//! let api = RuntimeApi::start().await;
//! let spawned = Instant::now();
//! let child = Command::new(..).env("AWS_LAMBDA_RUNTIME_API", api.address()).spawn()?;
//! let init = api.first_next().await? - spawned;      // cold init
//! let invocation = api.invoke(event).await;          // as often as needed, one at a time
//! ```

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use tokio::sync::{Mutex, mpsc, watch};

/// What the runtime answered to one event.
#[derive(Debug)]
pub struct Invocation {
    /// From the answer to `/next` to the response (or error) arriving.
    pub took: Duration,
    /// The response body (or the error report).
    pub body: String,
    /// The runtime reported an error (`/invocation/{id}/error` or `/init/error`).
    pub error: bool,
}

/// Where the runtime process is in its start.
#[derive(Clone, Debug)]
enum Start {
    Starting,
    /// The instant of its first `GET /invocation/next`.
    Asked(Instant),
    /// It reported `/init/error` with this body.
    Failed(String),
}

struct Shared {
    events: Mutex<mpsc::UnboundedReceiver<String>>,
    /// When the event in flight was handed out.
    handed_out: std::sync::Mutex<Option<Instant>>,
    results: mpsc::UnboundedSender<Invocation>,
    start: watch::Sender<Start>,
    request_ids: AtomicU64,
}

/// The stand-in; dropping it leaves the server running on the runtime until that ends.
pub struct RuntimeApi {
    addr: SocketAddr,
    events: mpsc::UnboundedSender<String>,
    results: Mutex<mpsc::UnboundedReceiver<Invocation>>,
    start: watch::Receiver<Start>,
}

impl RuntimeApi {
    /// Serves on 127.0.0.1 at a free port, on the current tokio runtime.
    pub async fn start() -> Self {
        let (events, events_rx) = mpsc::unbounded_channel();
        let (results_tx, results) = mpsc::unbounded_channel();
        let (start_tx, start) = watch::channel(Start::Starting);
        let shared = Arc::new(Shared {
            events: Mutex::new(events_rx),
            handed_out: std::sync::Mutex::default(),
            results: results_tx,
            start: start_tx,
            request_ids: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .layer(DefaultBodyLimit::disable())
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            addr,
            events,
            results: Mutex::new(results),
            start,
        }
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Waits for the runtime's first `GET /invocation/next` and returns its instant (cold init
    /// ends there); `Err` with the report when the runtime posted `/init/error` instead.
    pub async fn first_next(&self) -> Result<Instant, String> {
        let mut start = self.start.clone();
        let state = start
            .wait_for(|s| !matches!(s, Start::Starting))
            .await
            .unwrap()
            .clone();
        match state {
            Start::Asked(at) => Ok(at),
            Start::Failed(report) => Err(report),
            Start::Starting => unreachable!("waited for a state other than Starting"),
        }
    }

    /// Hands `event` to the runtime's next `/next` and waits for its answer. One at a time: the
    /// runtime asks for the next event only after answering the last.
    pub async fn invoke(&self, event: String) -> Invocation {
        let mut results = self.results.lock().await;
        self.events.send(event).unwrap();
        results
            .recv()
            .await
            .expect("the Runtime API stand-in keeps serving")
    }
}

async fn next(State(api): State<Arc<Shared>>) -> (HeaderMap, String) {
    api.start.send_if_modified(|s| {
        let first = matches!(s, Start::Starting);
        if first {
            *s = Start::Asked(Instant::now());
        }
        first
    });
    // A runtime waits here between invocations, as on Lambda.
    let Some(event) = api.events.lock().await.recv().await else {
        return std::future::pending().await;
    };
    let id = api.request_ids.fetch_add(1, Ordering::Relaxed) + 1;
    let deadline = SystemTime::now() + Duration::from_secs(900);
    let deadline_ms = deadline.duration_since(UNIX_EPOCH).unwrap().as_millis();
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("lambda-runtime-aws-request-id", format!("bench-{id}")),
        ("lambda-runtime-deadline-ms", deadline_ms.to_string()),
        (
            "lambda-runtime-invoked-function-arn",
            "arn:aws:lambda:eu-west-1:000000000000:function:bench".to_owned(),
        ),
        (
            "lambda-runtime-trace-id",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0".to_owned(),
        ),
        // awslambdaric hands a handler the raw bytes of any other type.
        ("content-type", "application/json".to_owned()),
    ] {
        headers.insert(name, value.parse().unwrap());
    }
    *api.handed_out.lock().unwrap() = Some(Instant::now());
    (headers, event)
}

async fn response(api: State<Arc<Shared>>, _id: UrlPath<String>, body: String) -> Accepted {
    answered(api, body, false)
}

async fn error(api: State<Arc<Shared>>, _id: UrlPath<String>, body: String) -> Accepted {
    answered(api, body, true)
}

type Accepted = (StatusCode, &'static str);
const ACCEPTED: Accepted = (StatusCode::ACCEPTED, r#"{"status":"OK"}"#);

fn answered(State(api): State<Arc<Shared>>, body: String, error: bool) -> Accepted {
    let took = api
        .handed_out
        .lock()
        .unwrap()
        .take()
        .map(|t| t.elapsed())
        .unwrap_or_default();
    let _ = api.results.send(Invocation { took, body, error });
    ACCEPTED
}

async fn init_error(State(api): State<Arc<Shared>>, body: String) -> Accepted {
    api.start.send_replace(Start::Failed(body.clone()));
    // An invocation waiting for this runtime learns of it too.
    let _ = api.results.send(Invocation {
        took: Duration::ZERO,
        body,
        error: true,
    });
    ACCEPTED
}

/// The release `forwarder` binary against `runtime_api`, delivering to `backend` with
/// `max_in_flight` deliveries at once, with the environment Lambda gives a function (and a queue
/// it never reaches while every delivery succeeds).
pub fn forwarder_command(runtime_api: &str, backend: &str, max_in_flight: usize) -> Command {
    let mut command = Command::new(super::release_binary("forwarder"));
    command.env_clear().envs(lambda_env(runtime_api)).envs([
        ("QUEUE_URL", "http://127.0.0.1:9/000000000000/orders"),
        ("BACKEND_URL", backend),
        ("REQUEST_TIMEOUT_MS", "60000"),
        ("MAX_IN_FLIGHT", &max_in_flight.to_string()),
        ("RUST_LOG", "warn"),
    ]);
    command
}

/// The environment Lambda gives a function of 128 MB, with fake credentials.
pub fn lambda_env(runtime_api: &str) -> Vec<(&'static str, String)> {
    [
        ("AWS_LAMBDA_RUNTIME_API", runtime_api),
        ("AWS_LAMBDA_FUNCTION_NAME", "bench"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "2026/12/02/[$LATEST]bench"),
        ("AWS_REGION", "eu-west-1"),
        ("AWS_DEFAULT_REGION", "eu-west-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("TZ", ":UTC"),
        ("LANG", "en_US.UTF-8"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_owned()))
    .collect()
}

/// Peak resident set size of a live process (`VmHWM` in `/proc/<pid>/status`), in KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
