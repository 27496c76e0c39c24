//! A cold start that fails is reported where Lambda shows it.
//!
//! Lambda learns why a function could not start only if the runtime posts the error to the
//! Runtime API's init error endpoint before it exits; otherwise the invoke's answer, the console
//! and the `INIT_REPORT` log line say no more than `Runtime.ExitError`. Both functions start
//! through [`init_or_exit`], so a bad variable or an unreadable secret reaches all three with its
//! message.

use std::error::Error as StdError;
use std::future::Future;
use std::time::Duration;

use lambda_runtime_api_client::body::Body;
use lambda_runtime_api_client::{PooledClient, build_request};
use serde::Serialize;

use crate::config::{ConfigError, Env};

type BoxError = Box<dyn StdError + Send + Sync>;

/// Where the Runtime API takes init errors, below `http://${AWS_LAMBDA_RUNTIME_API}`.
pub const INIT_ERROR_PATH: &str = "/2018-06-01/runtime/init/error";

/// The header that carries the error type (Lambda's `<category.reason>` form).
const ERROR_TYPE_HEADER: &str = "Lambda-Runtime-Function-Error-Type";

/// How long the report may take: the process exits either way, and init has a 10 s budget.
const REPORT_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs `init`, everything a function does before its first event, and returns what it built.
///
/// If `init` fails, the error is logged, posted to the Runtime API's init error endpoint (when
/// `AWS_LAMBDA_RUNTIME_API` is set, as it is in Lambda) and the process exits with status 1
/// without asking for an event. The message is the error's `Display`, which for a
/// [`ConfigError`] names the variable and never holds a secret value.
pub async fn init_or_exit<T, E: Into<BoxError>>(init: impl Future<Output = Result<T, E>>) -> T {
    let error = match init.await {
        Ok(ready) => return ready,
        Err(error) => InitError::from(error.into()),
    };
    tracing::error!(error = %error.message, error_type = error.error_type, "init failed");
    if let Some(api) = Env::process().optional("AWS_LAMBDA_RUNTIME_API")
        && let Err(e) = error.report(&api).await
    {
        tracing::error!(error = %e, "could not report the init error to the Runtime API");
    }
    std::process::exit(1)
}

/// What Lambda is told about a failed init: the JSON body of the init error request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct InitError {
    /// `Runtime.ConfigInvalid` for a [`ConfigError`], `Runtime.InitError` for anything else.
    #[serde(rename = "errorType")]
    error_type: &'static str,
    /// The error's `Display`.
    #[serde(rename = "errorMessage")]
    message: String,
}

impl From<BoxError> for InitError {
    fn from(error: BoxError) -> Self {
        let error_type = if error.is::<ConfigError>() {
            "Runtime.ConfigInvalid"
        } else {
            "Runtime.InitError"
        };
        Self {
            error_type,
            message: error.to_string(),
        }
    }
}

impl InitError {
    /// Posts this error to the Runtime API at `api` (`host:port`) and checks that it was taken.
    async fn report(&self, api: &str) -> Result<(), BoxError> {
        let client = PooledClient::builder()
            .with_endpoint(format!("http://{api}").parse()?)
            .build();
        let request = build_request()
            .method("POST")
            .uri(INIT_ERROR_PATH)
            .header(ERROR_TYPE_HEADER, self.error_type)
            .header("Content-Type", "application/json")
            .body(Body::from(serde_json::to_vec(self)?))?;
        let response = tokio::time::timeout(REPORT_TIMEOUT, client.call(request)).await??;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("the Runtime API answered {}", response.status()).into())
        }
    }
}

#[cfg(any(test, feature = "fakes"))]
pub mod fake {
    //! A Lambda Runtime API on 127.0.0.1 that records what a runtime asks of it, and a way to run
    //! a function's binary against it.

    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::process::{Command, ExitStatus, Stdio};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    /// One request the fake Runtime API received.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Request {
        pub method: String,
        pub path: String,
        /// Names in lower case.
        pub headers: Vec<(String, String)>,
        pub body: String,
    }

    impl Request {
        /// The value of header `name` (any case).
        pub fn header(&self, name: &str) -> Option<&str> {
            let name = name.to_ascii_lowercase();
            self.headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
        }
    }

    /// Answers `202` to an init error and `404` to anything else (an event is never handed
    /// out), one request per connection.
    #[derive(Debug)]
    pub struct RuntimeApi {
        address: String,
        requests: Arc<Mutex<Vec<Request>>>,
    }

    impl RuntimeApi {
        /// Listens on a free loopback port, serving from a thread that lives as long as the test.
        pub fn start() -> std::io::Result<Self> {
            let listener = TcpListener::bind("127.0.0.1:0")?;
            let address = listener.local_addr()?.to_string();
            let requests = Arc::new(Mutex::new(Vec::new()));
            let recorded = Arc::clone(&requests);
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    let _ = serve(stream, &recorded);
                }
            });
            Ok(Self { address, requests })
        }

        /// The value for `AWS_LAMBDA_RUNTIME_API`.
        pub fn address(&self) -> &str {
            &self.address
        }

        /// What it has received so far, in order.
        pub fn requests(&self) -> Vec<Request> {
            self.requests.lock().expect("not poisoned").clone()
        }

        /// The error type header and the JSON body of the init error that must be the only
        /// request so far (a runtime whose init failed asks for no event); panics otherwise.
        pub fn only_init_error(&self) -> (String, serde_json::Value) {
            let requests = self.requests();
            let [request] = requests.as_slice() else {
                panic!("expected one request, the init error: {requests:?}");
            };
            assert_eq!(
                (request.method.as_str(), request.path.as_str()),
                ("POST", super::INIT_ERROR_PATH)
            );
            let error_type = request.header(super::ERROR_TYPE_HEADER).unwrap_or_default();
            let body = serde_json::from_str(&request.body).expect("a JSON body");
            (error_type.to_owned(), body)
        }

        /// Runs `program` with [`run`], pointed at this Runtime API and with the other variables
        /// Lambda sets that a runtime needs.
        pub fn run(&self, program: &str, env: &[(&str, &str)], limit: Duration) -> Exit {
            let mut env = env.to_vec();
            env.extend([
                ("AWS_LAMBDA_RUNTIME_API", self.address()),
                ("AWS_LAMBDA_FUNCTION_NAME", "function"),
                ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
                ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
            ]);
            run(program, &env, limit)
        }
    }

    /// How a program ended: `status` is `None` when it was still running at the limit (and was
    /// killed then).
    #[derive(Debug)]
    pub struct Exit {
        pub status: Option<ExitStatus>,
        pub stdout: String,
        pub stderr: String,
    }

    /// Runs `program` with only the variables `env`, and kills it if it runs longer than `limit`.
    /// Its output is read when it has ended, so it should stay below a pipe's buffer (64 KiB).
    pub fn run(program: &str, env: &[(&str, &str)], limit: Duration) -> Exit {
        let mut child = Command::new(program)
            .env_clear()
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the program starts");
        let deadline = Instant::now() + limit;
        let status = loop {
            match child.try_wait().expect("the program can be waited for") {
                Some(status) => break Some(status),
                None if Instant::now() >= deadline => break None,
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        if status.is_none() {
            let _ = child.kill();
        }
        let output = child.wait_with_output().expect("its output can be read");
        Exit {
            status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Reads one request and records it before it answers, so that a runtime that exits on the
    /// answer has been recorded by then.
    fn serve(stream: TcpStream, recorded: &Mutex<Vec<Request>>) -> std::io::Result<()> {
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let path = parts.next().unwrap_or_default().to_owned();
        let mut headers = Vec::new();
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            match line.trim_end().split_once(':') {
                Some((name, value)) => {
                    headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()))
                }
                None => break,
            }
        }
        let length = headers
            .iter()
            .find(|(name, _)| name == "content-length")
            .and_then(|(_, value)| value.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let init_error = method == "POST" && path == super::INIT_ERROR_PATH;
        recorded.lock().expect("not poisoned").push(Request {
            method,
            path,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        let (status, answer) = if init_error {
            ("202 Accepted", r#"{"status":"OK"}"#)
        } else {
            (
                "404 Not Found",
                r#"{"errorType":"NotFound","errorMessage":"not found"}"#,
            )
        };
        write!(
            &stream,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
            answer.len()
        )?;
        (&stream).flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init_error(error: impl Into<BoxError>) -> InitError {
        InitError::from(error.into())
    }

    #[test]
    fn a_config_error_is_an_invalid_configuration_that_names_the_variable() {
        let error = init_error(ConfigError::Missing("QUEUE_URL"));
        assert_eq!(error.error_type, "Runtime.ConfigInvalid");
        assert_eq!(
            error.message,
            "environment variable QUEUE_URL is required but not set"
        );
    }

    #[test]
    fn any_other_error_is_an_init_error_with_its_message() {
        let error = init_error("the TLS roots cannot be loaded");
        assert_eq!(error.error_type, "Runtime.InitError");
        assert_eq!(error.message, "the TLS roots cannot be loaded");
    }

    #[test]
    fn the_body_has_the_runtime_api_field_names() {
        let body = serde_json::to_value(init_error(ConfigError::Missing("QUEUE_URL"))).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "errorType": "Runtime.ConfigInvalid",
                "errorMessage": "environment variable QUEUE_URL is required but not set",
            })
        );
    }

    #[tokio::test]
    async fn the_report_is_a_post_to_the_init_error_path_with_the_type_in_its_header() {
        let api = fake::RuntimeApi::start().unwrap();
        let error = init_error(ConfigError::invalid("RETRY_AFTER_SECONDS", "soon", "nope"));

        error.report(api.address()).await.unwrap();

        let (error_type, body) = api.only_init_error();
        assert_eq!(error_type, "Runtime.ConfigInvalid");
        assert_eq!(body, serde_json::to_value(&error).unwrap());
        assert_eq!(
            api.requests()[0].header("content-type"),
            Some("application/json")
        );
    }

    #[tokio::test]
    async fn a_refused_report_is_an_error() {
        let api = fake::RuntimeApi::start().unwrap();
        // a base path moves the request off the init error path, where the fake answers 404
        let elsewhere = format!("{}/elsewhere", api.address());

        let refused = init_error("x").report(&elsewhere).await.unwrap_err();

        assert!(refused.to_string().contains("404"), "{refused}");
        assert_eq!(
            api.requests()[0].path,
            format!("/elsewhere{INIT_ERROR_PATH}")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_runtime_api_that_never_answers_does_not_hold_the_exit() {
        // accepts connections (the backlog) and never reads or answers
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = silent.local_addr().unwrap().to_string();

        let error = init_error("x").report(&address).await.unwrap_err();

        assert!(error.is::<tokio::time::error::Elapsed>(), "{error}");
    }
}
