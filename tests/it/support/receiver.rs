//! The backend the forwarder delivers to during the suite: a plain HTTP/1.1 server on 127.0.0.1,
//! written out so that it can also misbehave the way real backends do (hang, reset the
//! connection). Each order chooses the answers with its `behaviour` field, so suites can share it:
//!
//! - `"ok"` (or absent): 200
//! - `"fail-first:N"`: 503 for the first N attempts of that idempotency key, then 200;
//!   `"fail-first:N:S"` answers S instead of 503
//! - `"status:S"`: always S (a permanent 4xx, or a 5xx that never recovers)
//! - `"slow"`: 200 after 800 ms
//! - `"chaos:SEED"`: a pseudo-random mix per attempt (see [`chaos`]), about 40 % of attempts
//!   failing, reproducible from the seed, the order's `n` and the attempt number
//!
//! A [`Gate`] serves the same backend on a port of its own that a suite can take down (every
//! request answered 503) or close (connections refused, open ones reset) and bring back, for the
//! circuit breaker's stacks.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The port the test stacks' `backend_url` points at (tests/stacks/*.tfvars).
pub const PORT: u16 = 9911;
/// What a `429` from [`chaos`] asks for.
pub const RETRY_AFTER: Duration = Duration::from_secs(2);
/// How long [`Action::Slow`] takes to answer 200.
pub const SLOW: Duration = Duration::from_millis(800);
/// A hanging (or late) request is held this long at most, far past any forwarder's request timeout.
const HANG: Duration = Duration::from_secs(30);

/// What the backend does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Status(u16),
    /// 429 with `Retry-After: 2`.
    TooManyRequests,
    /// Never answers; holds the connection until the client gives up.
    Hang,
    /// Closes the connection with a TCP reset instead of answering.
    Reset,
    /// Answers 200 after 800 ms.
    Slow,
    /// Holds the connection until the client gives up, as [`Action::Hang`], and then takes the
    /// order all the same: the work is done at the backend, but no answer ever reaches the client.
    /// How real backends cause duplicates: the client retries what is already done.
    Late,
}

impl Action {
    /// The status the client saw, if any.
    pub fn status(self) -> Option<u16> {
        match self {
            Self::Status(s) => Some(s),
            Self::TooManyRequests => Some(429),
            Self::Slow => Some(200),
            Self::Hang | Self::Reset | Self::Late => None,
        }
    }
}

/// One request the backend received, and what it did.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// When the request had arrived in full.
    pub at: Instant,
    pub idempotency_key: String,
    pub content_type: String,
    pub body: String,
    /// Every request header, e.g. to verify a Standard Webhooks signature.
    pub headers: reqwest::header::HeaderMap,
    pub action: Action,
    /// For [`Action::Hang`] and [`Action::Late`]: how long until the client closed the connection.
    pub held: Option<Duration>,
    /// Whether a 2xx answer was written to the connection before the client went away: the
    /// client was told that the order is done.
    pub acknowledged: bool,
}

impl Delivery {
    /// Whether the backend took the order with this request, whether or not the client heard of
    /// it (it never does with [`Action::Late`]).
    pub fn succeeded(&self) -> bool {
        self.action.status() == Some(200) || self.action == Action::Late
    }
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
        let receiver = Self {
            log: Arc::default(),
        };
        receiver.listen(PORT, None).await?;
        Ok(receiver)
    }

    /// Serves connections on `port` until the returned task is aborted.
    async fn listen(
        &self,
        port: u16,
        gate: Option<Arc<Mutex<GateMode>>>,
    ) -> std::io::Result<tokio::task::JoinHandle<()>> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
        let accepting = self.clone();
        Ok(tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(accepting.clone().connection(socket, gate.clone()));
            }
        }))
    }

    /// The same backend behind a [`Gate`] on `port`, open.
    pub async fn gate(&self, port: u16) -> std::io::Result<Gate> {
        let mode = Arc::new(Mutex::new(GateMode::Open));
        let task = self.listen(port, Some(mode.clone())).await?;
        Ok(Gate {
            receiver: self.clone(),
            port,
            mode,
            task: Mutex::new(Some(task)),
        })
    }

    fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every request carrying `idempotency_key`, in arrival order.
    pub fn deliveries(&self, idempotency_key: &str) -> Vec<Delivery> {
        self.filtered(|d| d.idempotency_key == idempotency_key)
    }

    /// Whether an attempt with `idempotency_key` has succeeded.
    pub fn delivered(&self, idempotency_key: &str) -> bool {
        self.deliveries(idempotency_key)
            .iter()
            .any(Delivery::succeeded)
    }

    /// Every request whose body contains `needle`, in arrival order.
    pub fn deliveries_containing(&self, needle: &str) -> Vec<Delivery> {
        self.filtered(|d| d.body.contains(needle))
    }

    /// Every request `keep` selects, in arrival order. The log itself is in the order answers
    /// were finished: a request that arrives after another was answered (the next message of a
    /// FIFO group) may be logged before that one, so it is sorted by arrival here.
    pub fn filtered(&self, keep: impl Fn(&Delivery) -> bool) -> Vec<Delivery> {
        let mut selected: Vec<Delivery> = self
            .log()
            .deliveries
            .iter()
            .filter(|d| keep(d))
            .cloned()
            .collect();
        selected.sort_by_key(|d| d.at);
        selected
    }

    /// Serves one keep-alive connection: requests in turn, until one is not answered.
    async fn connection(self, mut socket: TcpStream, gate: Option<Arc<Mutex<GateMode>>>) {
        let mut buffer = Vec::new();
        while let Some(request) = read_request(&mut socket, &mut buffer).await {
            let gated = gate
                .as_ref()
                .map(|g| *g.lock().unwrap_or_else(|p| p.into_inner()));
            if gated == Some(GateMode::Closed) {
                reset(&socket);
                return;
            }
            let at = Instant::now();
            let key = request.header("idempotency-key");
            let attempt = {
                let mut log = self.log();
                let n = log.attempts.entry(key.clone()).or_default();
                *n += 1;
                *n
            };
            let action = match gated {
                Some(GateMode::Down(status)) => Action::Status(status),
                _ if request.path == "/sales/save-order" => decide(&request.body, attempt),
                _ => Action::Status(404),
            };
            let headers = request
                .headers
                .iter()
                .filter_map(|(k, v)| {
                    Some((
                        reqwest::header::HeaderName::from_bytes(k.as_bytes()).ok()?,
                        reqwest::header::HeaderValue::from_str(v).ok()?,
                    ))
                })
                .collect();
            let mut delivery = Delivery {
                at,
                idempotency_key: key,
                content_type: request.header("content-type"),
                headers,
                body: request.body,
                action,
                held: None,
                acknowledged: false,
            };
            let answered = match action {
                Action::Status(s) => respond(&mut socket, s, "").await,
                Action::TooManyRequests => {
                    respond(
                        &mut socket,
                        429,
                        &format!("retry-after: {}\r\n", RETRY_AFTER.as_secs()),
                    )
                    .await
                }
                Action::Slow => {
                    tokio::time::sleep(SLOW).await;
                    respond(&mut socket, 200, "").await
                }
                Action::Hang | Action::Late => {
                    // Wait for the client to give up: its close reads as end of stream.
                    let mut sink = [0u8; 1024];
                    let _ = tokio::time::timeout(HANG, async {
                        while let Ok(1..) = socket.read(&mut sink).await {}
                    })
                    .await;
                    delivery.held = Some(at.elapsed());
                    false
                }
                Action::Reset => {
                    reset(&socket);
                    false
                }
            };
            delivery.acknowledged =
                answered && action.status().is_some_and(|s| (200..300).contains(&s));
            self.log().deliveries.push(delivery);
            if !answered {
                return;
            }
        }
    }
}

/// What a [`Gate`] lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateMode {
    /// The backend as usual.
    Open,
    /// Every request is answered with this status, whatever the order asks for.
    Down(u16),
    /// Nothing listens on the port: connections are refused, and open ones reset.
    Closed,
}

/// The backend on a port of its own, switchable between up, down and gone.
pub struct Gate {
    receiver: Receiver,
    port: u16,
    mode: Arc<Mutex<GateMode>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Gate {
    /// Switches the gate; closing stops listening, anything else listens again.
    pub async fn set(&self, mode: GateMode) -> std::io::Result<()> {
        *self.mode.lock().unwrap_or_else(|p| p.into_inner()) = mode;
        let running = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        match (mode, running) {
            (GateMode::Closed, Some(task)) => {
                task.abort();
                let _ = task.await;
            }
            (GateMode::Closed, None) => {}
            (_, Some(task)) => {
                *self.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
            }
            (_, None) => {
                let task = self
                    .receiver
                    .listen(self.port, Some(self.mode.clone()))
                    .await?;
                *self.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
            }
        }
        Ok(())
    }
}

/// What to do with one attempt of an order with `body`.
fn decide(body: &str, attempt: u32) -> Action {
    let order = serde_json::from_str::<Value>(body).unwrap_or_default();
    let behaviour = order["behaviour"].as_str().unwrap_or("ok");
    match behaviour.split_once(':') {
        Some(("fail-first", n)) => {
            let (n, status) = n.split_once(':').unwrap_or((n, "503"));
            if attempt <= n.parse().unwrap_or(0) {
                Action::Status(status.parse().unwrap_or(503))
            } else {
                Action::Status(200)
            }
        }
        Some(("status", s)) => Action::Status(s.parse().unwrap_or(500)),
        Some(("chaos", seed)) => chaos(
            seed.parse().unwrap_or(0),
            order["n"].as_u64().unwrap_or(0),
            attempt,
        ),
        _ if behaviour == "slow" => Action::Slow,
        _ => Action::Status(200),
    }
}

/// The answer to attempt `attempt` (from 1) of order `n` under `seed`, the same on every run with
/// that seed: 48 % 200, 12 % slow 200, and 40 % failures as the client sees them: 14 % 503, 10 %
/// 429 with `Retry-After`, 5 % hang past the request timeout, 3 % late (done after the client gave
/// up), 8 % connection reset.
pub fn chaos(seed: u64, n: u64, attempt: u32) -> Action {
    match splitmix64(splitmix64(splitmix64(seed) ^ n) ^ u64::from(attempt)) % 100 {
        0..48 => Action::Status(200),
        48..60 => Action::Slow,
        60..74 => Action::Status(503),
        74..84 => Action::TooManyRequests,
        84..89 => Action::Hang,
        89..92 => Action::Late,
        _ => Action::Reset,
    }
}

/// One step of SplitMix64 (Steele, Lea and Flood, 2014), written out so that the mix never
/// depends on a standard-library hasher, which may change between Rust versions.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One HTTP/1.1 request as read off a socket.
pub(super) struct Request {
    pub(super) method: String,
    pub(super) path: String,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: String,
}

impl Request {
    pub(super) fn header(&self, name: &str) -> String {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }
}

/// Reads one request (head and `content-length` body); `None` at end of stream or on garbage.
pub(super) async fn read_request(socket: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<Request> {
    let head_end = loop {
        if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        read_more(socket, buffer).await?;
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let (method, path) = (
        request_line.next()?.to_owned(),
        request_line.next()?.to_owned(),
    );
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while buffer.len() < head_end + length {
        read_more(socket, buffer).await?;
    }
    let body = String::from_utf8_lossy(&buffer[head_end..head_end + length]).into_owned();
    buffer.drain(..head_end + length);
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

async fn read_more(socket: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 16 * 1024];
    match socket.read(&mut chunk).await {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buffer.extend_from_slice(&chunk[..n]);
            Some(())
        }
    }
}

async fn respond(socket: &mut TcpStream, status: u16, extra_headers: &str) -> bool {
    let response = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n{extra_headers}\r\n");
    socket.write_all(response.as_bytes()).await.is_ok()
}

/// Makes the socket's close a TCP reset. (`set_linger` is deprecated because a non-zero linger
/// blocks the thread on drop; a zero one never does.)
pub(super) fn reset(socket: &TcpStream) {
    #[allow(deprecated)]
    let _ = socket.set_linger(Some(Duration::ZERO));
}
