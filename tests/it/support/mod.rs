//! What every suite needs: the local stack, the backend, and clients for the public surfaces.

pub mod creds;
pub mod proxy;
pub mod receiver;

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName};
use serde_json::Value;

pub use proxy::{Mode, SqsProxy};
pub use receiver::{Delivery, Gate, GateMode, Receiver};

/// A suite's verdict.
pub type Outcome = Result<(), String>;

pub const LOCALSTACK: &str = "http://127.0.0.1:4566";
pub const REGION: &str = "us-east-1";

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs a repository script, failing with its output.
pub fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .current_dir(root())
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {args:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Whether LocalStack answers its health check.
pub fn localstack_is_up() -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], 4566).into(), Duration::from_millis(300))
        .is_ok()
}

/// The stacks the suites run against, each `infra/` applied with `tests/stacks/<name>.tfvars`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StackKind {
    /// Standard queue, event source mapping, DLQ.
    Standard,
    /// FIFO queues, event source mapping.
    Fifo,
    /// Scheduled trigger, failover queue, and a store whose primary queue does not exist.
    Scheduled,
    /// Standard queue for fault injection, five receives before the redrive.
    Chaos,
    /// A failover queue, and a store that reaches SQS through the suite's proxy.
    Outage,
    /// A forwarder with a 3 s timeout that delivers one message at a time.
    Deadline,
    /// Standard queue and DLQ for `sfctl`, whose redrives and purges move everything in it.
    Ops,
    /// Standard queue, event source mapping, the circuit breaker; its backend behind a gate.
    Breaker,
    /// The same with FIFO queues.
    BreakerFifo,
    /// The same with the scheduled trigger (its rule disabled: the suite invokes the ticks).
    BreakerScheduled,
    /// Standard queue; a backend over mutual TLS behind a header secret, OAuth2 and a signature.
    Credentials,
}

impl StackKind {
    /// Every stack; `name` has one arm per variant, keep this beside it.
    const ALL: [Self; 11] = [
        Self::Standard,
        Self::Fifo,
        Self::Scheduled,
        Self::Chaos,
        Self::Outage,
        Self::Deadline,
        Self::Ops,
        Self::Breaker,
        Self::BreakerFifo,
        Self::BreakerScheduled,
        Self::Credentials,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Standard => "std",
            Self::Fifo => "fifo",
            Self::Scheduled => "sched",
            Self::Chaos => "chaos",
            Self::Outage => "outage",
            Self::Deadline => "deadline",
            Self::Ops => "ops",
            Self::Breaker => "brk",
            Self::BreakerFifo => "brkfifo",
            Self::BreakerScheduled => "brksched",
            Self::Credentials => "creds",
        }
    }

    /// The port of the gate in front of the backend, for the breaker's stacks
    /// (`backend_url` in their tfvars).
    fn gate_port(self) -> Option<u16> {
        match self {
            Self::Breaker => Some(9921),
            Self::BreakerFifo => Some(9922),
            Self::BreakerScheduled => Some(9923),
            _ => None,
        }
    }
}

/// One applied stack: its Terraform outputs.
#[derive(Debug)]
pub struct Stack {
    outputs: HashMap<String, Value>,
}

impl Stack {
    /// Applies (or re-applies) the stack and reads its outputs.
    fn apply(kind: StackKind) -> Result<Self, String> {
        let name = format!("sfit-{}", kind.name());
        let vars = format!("tests/stacks/{}.tfvars", kind.name());
        run("scripts/apply-local", &[&name, &vars])?;
        let path = root()
            .join(".local/stacks")
            .join(&name)
            .join("outputs.json");
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let outputs =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Self { outputs })
    }

    /// A string output; panics with its name if absent (a broken stack, not a test failure).
    pub fn output(&self, name: &str) -> &str {
        self.outputs
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("stack output {name} is missing"))
    }

    /// The API key callers send as `x-api-key` (stacks with `api_auth = "api_key"`, the default).
    pub fn api_key(&self) -> Option<&str> {
        self.outputs.get("api_key").and_then(Value::as_str)
    }

    /// The stack's API key as a request header, if it has one.
    pub fn key_header(&self) -> Vec<(&'static str, &str)> {
        self.api_key()
            .map(|k| ("x-api-key", k))
            .into_iter()
            .collect()
    }

    /// Where orders go.
    pub fn order_url(&self) -> String {
        format!("{}/orders/new-order", self.output("api_url"))
    }
}

/// Everything shared by the suites. Stacks are applied on first use, so a filtered run only
/// builds what it needs, and different stacks are applied in parallel by the suites that need them.
pub struct World {
    pub receiver: Receiver,
    /// The backend as the breaker's stacks reach it, each through a gate of its own.
    gates: HashMap<StackKind, Gate>,
    pub proxy: SqsProxy,
    pub http: reqwest::Client,
    pub sqs: aws_sdk_sqs::Client,
    stacks: HashMap<StackKind, OnceLock<Result<Stack, String>>>,
    /// Held by a suite that needs a stack's queues to itself (see [`World::exclusive`]).
    exclusive: HashMap<StackKind, tokio::sync::Mutex<()>>,
    /// Whether an API request has been answered yet; until then requests go one at a time.
    /// LocalStack sets up much of API Gateway's invocation path on its first invocation, and
    /// two first invocations at once can meet a CPython 3.11 race there (`SystemError: AST
    /// constructor recursion depth mismatch`, python/cpython#106905), answered with a 500.
    api_answered: tokio::sync::Mutex<bool>,
}

impl World {
    pub async fn new() -> Result<Self, String> {
        let receiver = Receiver::start().await.map_err(|e| {
            format!(
                "cannot start the test backend on 127.0.0.1:{}: {e}",
                receiver::PORT
            )
        })?;
        let mut gates = HashMap::new();
        for (kind, port) in StackKind::ALL
            .into_iter()
            .filter_map(|k| Some((k, k.gate_port()?)))
        {
            let gate = receiver
                .gate(port)
                .await
                .map_err(|e| format!("cannot start the backend's gate on 127.0.0.1:{port}: {e}"))?;
            gates.insert(kind, gate);
        }
        let proxy = SqsProxy::start().await.map_err(|e| {
            format!(
                "cannot start the SQS proxy on 127.0.0.1:{}: {e}",
                proxy::PORT
            )
        })?;
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(LOCALSTACK)
            .credentials_provider(Credentials::new(
                "test",
                "test",
                None,
                None,
                "integration-tests",
            ))
            .build();
        let stacks = StackKind::ALL
            .into_iter()
            .map(|k| (k, OnceLock::new()))
            .collect();
        let exclusive = StackKind::ALL
            .into_iter()
            .map(|k| (k, tokio::sync::Mutex::default()))
            .collect();
        Ok(Self {
            receiver,
            gates,
            proxy,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .map_err(|e| e.to_string())?,
            sqs: aws_sdk_sqs::Client::from_conf(config),
            stacks,
            exclusive,
            api_answered: tokio::sync::Mutex::default(),
        })
    }

    /// Applies every stack at once and waits for all of them. An apply mostly waits on LocalStack
    /// (some 90 s each, the machine nearly idle meanwhile), so all of them at once take about
    /// twice as long as one, where suites applying them on first use wait for each in turn. A
    /// failed apply is kept and reported by the suites that use its stack.
    pub fn apply_every_stack(&self) {
        std::thread::scope(|scope| {
            for kind in StackKind::ALL {
                scope.spawn(move || drop(self.stack(kind)));
            }
        });
    }

    /// The stack, applied on first use (blocking; call from a suite's thread).
    pub fn stack(&self, kind: StackKind) -> Result<&Stack, String> {
        self.stacks[&kind]
            .get_or_init(|| Stack::apply(kind))
            .as_ref()
            .map_err(|e| format!("stack {kind:?} could not be applied: {e}"))
    }

    /// The stack's queues to this suite alone while the guard lives: for checks of what they
    /// hold, on a stack with no consumer of its own (the scheduled stack, its rule disabled).
    pub async fn exclusive(&self, kind: StackKind) -> tokio::sync::MutexGuard<'_, ()> {
        self.exclusive[&kind].lock().await
    }

    /// The gate in front of the backend for one of the breaker's stacks.
    pub fn gate(&self, kind: StackKind) -> Result<&Gate, String> {
        self.gates
            .get(&kind)
            .ok_or_else(|| format!("stack {kind:?} has no gate"))
    }

    /// Waits until the backend has taken the order with `idempotency_key`.
    pub async fn await_delivery(&self, idempotency_key: &str, within: Duration) -> Outcome {
        poll_until(&format!("{idempotency_key} delivered"), within, || async {
            self.receiver.delivered(idempotency_key).then_some(())
        })
        .await
    }

    /// POSTs an order; returns the status, `Retry-After` and the JSON body.
    pub async fn post_order(
        &self,
        stack: &Stack,
        content_type: &str,
        body: impl Into<reqwest::Body>,
        headers: &[(&str, &str)],
    ) -> Result<Answer, String> {
        let mut all = vec![("content-type", content_type)];
        all.extend(stack.key_header());
        all.extend_from_slice(headers);
        self.request(reqwest::Method::POST, &stack.order_url(), body, &all)
            .await
    }

    /// Sends any request to the API; the answer must have a JSON body (unless it is to `HEAD`).
    pub async fn request(
        &self,
        method: reqwest::Method,
        url: &str,
        body: impl Into<reqwest::Body>,
        headers: &[(&str, &str)],
    ) -> Result<Answer, String> {
        let head = method == reqwest::Method::HEAD;
        let mut request = self.http.request(method, url).body(body);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let mut answered = self.api_answered.lock().await;
        if *answered {
            drop(answered);
            return answer(request, head).await;
        }
        let result = answer(request, head).await;
        *answered = result.is_ok();
        result
    }

    /// POSTs a valid order that must be accepted; returns its idempotency key.
    pub async fn accepted(
        &self,
        stack: &Stack,
        body: &str,
        headers: &[(&str, &str)],
    ) -> Result<String, String> {
        let Answer { status, json, .. } = self
            .post_order(stack, "application/json", body.to_owned(), headers)
            .await?;
        if status != 202 {
            return Err(format!("expected 202 for {body}, got {status} {json}"));
        }
        json["idempotencyKey"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("202 without idempotencyKey: {json}"))
    }

    /// POSTs every body, `in_flight` at a time; all must be accepted. Returns their idempotency
    /// keys, in the order of `bodies`.
    pub async fn accept_all(
        &self,
        stack: &Stack,
        bodies: Vec<String>,
        in_flight: usize,
    ) -> Result<Vec<String>, String> {
        use futures::{StreamExt, TryStreamExt, stream};
        stream::iter(bodies)
            .map(|body| async move { self.accepted(stack, &body, &[]).await })
            .buffered(in_flight)
            .try_collect()
            .await
    }

    /// The delivery state a breaker stack recorded (`state_parameter_name`), as JSON.
    pub async fn delivery_state(&self, stack: &Stack) -> Result<Value, String> {
        let name = stack.output("state_parameter_name");
        let (status, answer) = self
            .aws(
                "ssm",
                Some("AmazonSSM.GetParameter"),
                "/",
                &serde_json::json!({ "Name": name }),
            )
            .await?;
        let text = answer["Parameter"]["Value"]
            .as_str()
            .ok_or_else(|| format!("GetParameter {name}: {status} {answer}"))?;
        serde_json::from_str(text).map_err(|e| format!("{name} holds {text:?}: {e}"))
    }

    /// A function's event source mappings as ListEventSourceMappings describes them.
    async fn mappings(&self, function: &str) -> Result<Vec<Value>, String> {
        let answer: Value = self
            .http
            .get(format!(
                "{LOCALSTACK}/2015-03-31/event-source-mappings/?FunctionName={function}"
            ))
            .header("authorization", authorization("lambda"))
            .send()
            .await
            .map_err(|e| format!("ListEventSourceMappings: {e}"))?
            .json()
            .await
            .map_err(|e| format!("ListEventSourceMappings: {e}"))?;
        Ok(answer["EventSourceMappings"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// The state (`Enabled`, `Disabled`, ...) of each of a function's event source mappings, by
    /// the name of the queue it reads.
    pub async fn mapping_states(&self, function: &str) -> Result<HashMap<String, String>, String> {
        Ok(self
            .mappings(function)
            .await?
            .iter()
            .filter_map(|m| {
                let queue = queue_name(m["EventSourceArn"].as_str()?);
                Some((queue.to_owned(), m["State"].as_str()?.to_owned()))
            })
            .collect())
    }

    /// Turns the function's mapping of `queue` (its name) on or off, as an operator would with
    /// UpdateEventSourceMapping, and waits until it reads so. LocalStack writes `Disabled` only
    /// once its poller has finished the poll it was in, so nothing is received after that.
    pub async fn switch_mapping(&self, function: &str, queue: &str, enabled: bool) -> Outcome {
        let mappings = self.mappings(function).await?;
        let uuid = mappings
            .iter()
            .find(|m| {
                m["EventSourceArn"]
                    .as_str()
                    .is_some_and(|arn| queue_name(arn) == queue)
            })
            .and_then(|m| m["UUID"].as_str())
            .ok_or_else(|| format!("{function} has no mapping of {queue}"))?;
        let status = self
            .http
            .put(format!(
                "{LOCALSTACK}/2015-03-31/event-source-mappings/{uuid}"
            ))
            .header("authorization", authorization("lambda"))
            .json(&serde_json::json!({ "Enabled": enabled }))
            .send()
            .await
            .map_err(|e| format!("UpdateEventSourceMapping: {e}"))?
            .status();
        ensure(status.is_success(), || {
            format!("UpdateEventSourceMapping {uuid}: {status}")
        })?;
        let state = if enabled { "Enabled" } else { "Disabled" };
        poll_until(
            &format!("the mapping of {queue} {state}"),
            Duration::from_secs(60),
            || async {
                let states = self.mapping_states(function).await.ok()?;
                (states.get(queue)? == state).then_some(())
            },
        )
        .await
    }

    /// Up to ten messages from `queue_url` with every attribute, each hidden for `visibility`
    /// seconds, waiting up to `wait` seconds for the first.
    async fn receive(
        &self,
        queue_url: &str,
        visibility: i32,
        wait: i32,
    ) -> Result<Vec<aws_sdk_sqs::types::Message>, String> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(visibility)
            .wait_time_seconds(wait)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(|e| format!("receive from {queue_url}: {e:?}"))?;
        Ok(out.messages.unwrap_or_default())
    }

    /// Messages in `queue_url` without consuming them (visibility timeout 0), with attributes.
    pub async fn peek(&self, queue_url: &str) -> Result<Vec<aws_sdk_sqs::types::Message>, String> {
        self.receive(queue_url, 0, 1).await
    }

    async fn delete(&self, queue_url: &str, message: &aws_sdk_sqs::types::Message) -> Outcome {
        let Some(handle) = message.receipt_handle() else {
            return Ok(());
        };
        self.sqs
            .delete_message()
            .queue_url(queue_url)
            .receipt_handle(handle)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("delete from {queue_url}: {e:?}"))
    }

    /// The queue's attributes `names`, as SQS returns them.
    pub async fn queue_attributes(
        &self,
        queue_url: &str,
        names: &[aws_sdk_sqs::types::QueueAttributeName],
    ) -> Result<HashMap<aws_sdk_sqs::types::QueueAttributeName, String>, String> {
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(queue_url)
            .set_attribute_names(Some(names.to_vec()))
            .send()
            .await
            .map_err(|e| format!("attributes of {queue_url}: {e:?}"))?;
        Ok(out.attributes.unwrap_or_default())
    }

    /// How many messages `queue_url` holds: visible, in flight, and delayed, as SQS counts them.
    pub async fn depth(&self, queue_url: &str) -> Result<[u64; 3], String> {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let names = [
            A::ApproximateNumberOfMessages,
            A::ApproximateNumberOfMessagesNotVisible,
            A::ApproximateNumberOfMessagesDelayed,
        ];
        let attributes = self.queue_attributes(queue_url, &names).await?;
        Ok(names.map(|name| {
            attributes
                .get(&name)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        }))
    }

    /// Fails unless `queue_url` holds no message at all (visible, in flight or delayed): what
    /// a rejected request must leave behind, and what a settled run leaves.
    pub async fn ensure_empty(&self, what: &str, queue_url: &str) -> Outcome {
        let depth = self.depth(queue_url).await?;
        ensure(depth == [0; 3], || {
            format!("{what} is not empty: {depth:?} visible/in flight/delayed ({queue_url})")
        })
    }

    /// Takes the message with `idempotency_key` out of `queue_url` (a DLQ shared by suites):
    /// pages through every visible message, each hidden for a few seconds once looked at, and
    /// deletes and returns the one it is after, with its attributes and receive count.
    pub async fn take(
        &self,
        queue_url: &str,
        idempotency_key: &str,
    ) -> Result<Option<aws_sdk_sqs::types::Message>, String> {
        loop {
            let messages = self.receive(queue_url, 3, 0).await?;
            if messages.is_empty() {
                return Ok(None);
            }
            if let Some(m) = messages
                .into_iter()
                .find(|m| attribute(m, "IdempotencyKey") == Some(idempotency_key))
            {
                self.delete(queue_url, &m).await?;
                return Ok(Some(m));
            }
        }
    }

    /// Receives and deletes everything in `queue_url` until a receive comes back empty.
    pub async fn drain(&self, queue_url: &str) -> Result<Vec<aws_sdk_sqs::types::Message>, String> {
        let mut drained = Vec::new();
        loop {
            let messages = self.receive(queue_url, 30, 0).await?;
            if messages.is_empty() {
                return Ok(drained);
            }
            for m in &messages {
                self.delete(queue_url, m).await?;
            }
            drained.extend(messages);
        }
    }

    /// Sends a message straight into a queue, as the store would.
    pub async fn enqueue(
        &self,
        queue_url: &str,
        body: &str,
        idempotency_key: &str,
    ) -> Result<(), String> {
        self.enqueue_all(queue_url, &[(body.to_owned(), idempotency_key.to_owned())])
            .await
    }

    /// Sends up to ten `(body, idempotency key)` messages in one `SendMessageBatch`, so that
    /// they become visible together.
    pub async fn enqueue_all(
        &self,
        queue_url: &str,
        messages: &[(String, String)],
    ) -> Result<(), String> {
        use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
        let attr = |v: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(v)
                .build()
                .map_err(|e| e.to_string())
        };
        let mut batch = self.sqs.send_message_batch().queue_url(queue_url);
        for (n, (body, key)) in messages.iter().enumerate() {
            let entry = SendMessageBatchRequestEntry::builder()
                .id(n.to_string())
                .message_body(body)
                .message_attributes("ContentType", attr("application/json")?)
                .message_attributes("IdempotencyKey", attr(key)?)
                .build()
                .map_err(|e| e.to_string())?;
            batch = batch.entries(entry);
        }
        let out = batch
            .send()
            .await
            .map_err(|e| format!("send to {queue_url}: {e:?}"))?;
        ensure(out.failed.is_empty(), || {
            format!("send to {queue_url}: {:?}", out.failed)
        })
    }

    /// Calls a LocalStack JSON API (`X-Amz-Target`) or REST path, as the AWS CLI would.
    pub async fn aws(
        &self,
        service: &str,
        target: Option<&str>,
        path: &str,
        payload: &Value,
    ) -> Result<(u16, Value), String> {
        let mut request = self
            .http
            .post(format!("{LOCALSTACK}{path}"))
            .header("authorization", authorization(service))
            .body(payload.to_string());
        if let Some(target) = target {
            request = request
                .header("x-amz-target", target)
                .header("content-type", "application/x-amz-json-1.1");
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("{service} call failed: {e}"))?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| e.to_string())?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    /// A function's URL configuration (`GetFunctionUrlConfig`): `FunctionUrl`, `AuthType`,
    /// `InvokeMode`, `Cors`.
    pub async fn function_url_config(&self, function: &str) -> Result<Value, String> {
        let response = self
            .http
            .get(format!("{LOCALSTACK}/2021-10-31/functions/{function}/url"))
            .header("authorization", authorization("lambda"))
            .send()
            .await
            .map_err(|e| format!("{function}'s URL configuration: {e}"))?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| e.to_string())?;
        if status != 200 {
            return Err(format!("{function}'s URL configuration: {status} {text}"));
        }
        serde_json::from_str(&text).map_err(|e| format!("{function}'s URL configuration: {e}"))
    }

    /// A function's environment variables (`GetFunctionConfiguration`).
    pub async fn function_environment(&self, function: &str) -> Result<Value, String> {
        Ok(self.function_configuration(function, None).await?["Environment"]["Variables"].clone())
    }

    /// Replaces a function's environment variables (`UpdateFunctionConfiguration`) and waits
    /// until the update is in effect: what a redeploy with other variables does.
    pub async fn set_function_environment(&self, function: &str, variables: &Value) -> Outcome {
        let update = serde_json::json!({ "Environment": { "Variables": variables } });
        self.function_configuration(function, Some(&update)).await?;
        poll_until(
            &format!("{function}'s new configuration in effect"),
            Duration::from_secs(60),
            || async {
                let now = self.function_configuration(function, None).await.ok()?;
                (now["LastUpdateStatus"] == "Successful").then_some(())
            },
        )
        .await
    }

    async fn function_configuration(
        &self,
        function: &str,
        update: Option<&Value>,
    ) -> Result<Value, String> {
        let url = format!("{LOCALSTACK}/2015-03-31/functions/{function}/configuration");
        let request = match update {
            Some(update) => self.http.put(&url).body(update.to_string()),
            None => self.http.get(&url),
        };
        let response = request
            .header("authorization", authorization("lambda"))
            .send()
            .await
            .map_err(|e| format!("{function}'s configuration: {e}"))?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| e.to_string())?;
        if status != 200 {
            return Err(format!("{function}'s configuration: {status} {text}"));
        }
        serde_json::from_str(&text).map_err(|e| format!("{function}'s configuration: {e}"))
    }

    /// Invokes a function synchronously; returns its result, or its error as `Err`.
    pub async fn invoke(&self, function: &str, payload: &Value) -> Result<Value, String> {
        let path = format!("/2015-03-31/functions/{function}/invocations");
        let (status, result) = self.aws("lambda", None, &path, payload).await?;
        if status != 200 || result.get("errorType").is_some() {
            return Err(format!("invoke {function}: {status} {result}"));
        }
        Ok(result)
    }

    /// Every log line a function wrote since `since_ms` (epoch milliseconds), oldest first.
    pub async fn log_lines(&self, function: &str, since_ms: u64) -> Result<Vec<String>, String> {
        let mut lines = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut request = serde_json::json!({
                "logGroupName": format!("/aws/lambda/{function}"),
                "startTime": since_ms,
            });
            if let Some(t) = &token {
                request["nextToken"] = t.clone().into();
            }
            let (status, page) = self
                .aws("logs", Some("Logs_20140328.FilterLogEvents"), "/", &request)
                .await?;
            if status != 200 {
                return Err(format!("FilterLogEvents for {function}: {status} {page}"));
            }
            let events = page["events"].as_array().cloned().unwrap_or_default();
            lines.extend(
                events
                    .iter()
                    .filter_map(|e| e["message"].as_str().map(str::to_owned)),
            );
            match page["nextToken"].as_str() {
                Some(t) if !events.is_empty() => token = Some(t.to_owned()),
                _ => return Ok(lines),
            }
        }
    }
}

/// An unsigned `Authorization` header that tells LocalStack which service and region a call is for.
fn authorization(service: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential=test/20260101/{REGION}/{service}/aws4_request, SignedHeaders=host, Signature=0"
    )
}

/// Milliseconds since the epoch, as log events and SQS count time.
/// A queue's name, the last segment of its URL (or of its ARN).
pub fn queue_name(url_or_arn: &str) -> &str {
    url_or_arn.rsplit(['/', ':']).next().unwrap_or(url_or_arn)
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The store's answer to one POST.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    pub allow: Option<String>,
    pub content_type: Option<String>,
    /// The store's `x-request-id`: API Gateway's id for the request.
    pub request_id: Option<String>,
    /// The store's W3C `traceparent`: its span of the order's trace.
    pub traceparent: Option<String>,
    pub json: Value,
}

/// Sends a request to an ingress and reads the answer, which must have a JSON body (unless it
/// is to `HEAD`).
pub async fn answer(request: reqwest::RequestBuilder, head: bool) -> Result<Answer, String> {
    let response = request
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (retry_after, allow, content_type, request_id, traceparent) = (
        header("retry-after"),
        header("allow"),
        header("content-type"),
        header("x-request-id"),
        header("traceparent"),
    );
    let text = response.text().await.map_err(|e| e.to_string())?;
    let json = if head && text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text)
            .map_err(|e| format!("{status} with a non-JSON body {text:?}: {e}"))?
    };
    Ok(Answer {
        status,
        retry_after,
        allow,
        content_type,
        request_id,
        traceparent,
        json,
    })
}

/// Polls `check` every 250 ms until it yields a value or `timeout` passes.
pub async fn poll_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(format!("timed out after {timeout:?} waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A `String` message attribute.
pub fn attribute<'a>(message: &'a aws_sdk_sqs::types::Message, name: &str) -> Option<&'a str> {
    message
        .message_attributes
        .as_ref()?
        .get(name)?
        .string_value()
}

/// Fails with `message` unless `condition` holds.
pub fn ensure(condition: bool, message: impl FnOnce() -> String) -> Outcome {
    if condition { Ok(()) } else { Err(message()) }
}

/// A fresh unique id for one test's orders.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}
