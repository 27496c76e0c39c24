//! The local invoke path (issue #15): what one synchronous Lambda `Invoke` through LocalStack adds
//! to a function's own time.
//!
//! The function is the stack's forwarder, as `make build-local` builds it and `infra/` deploys it
//! (stack `bench-invoke`, `bench/stacks/idle.tfvars`), given an empty batch `{"Records":[]}`: it
//! writes its invocation log line and its EMF metrics, as on every invocation, and answers
//! `{"batchItemFailures":[]}` without any I/O. So nearly all the time is the invoke path's, and
//! the function is the real one, not a stand-in written to be fast.
//!
//! 1. Through LocalStack: `WARMUP` invokes, then `INVOKES` sequential `Invoke`s with
//!    `aws-sdk-lambda`, timed client-side; LocalStack's process-group CPU over them.
//! 2. Bare: the `bootstrap` from the same zip, with the deployed function's environment, under
//!    the Runtime API stand-in (`common::runtime_api`): `WARMUP`, then `INVOKES` times the same
//!    event, timed from handing it out to the response.
//!
//! Prints p50/p90/p99 of both and the difference of the p50s (the invoke path's cost), and writes
//! `target/bench/invoke.json`. Needs the local stack: starts LocalStack unless one runs (and
//! stops it again). To compare plugin versions or settings, start LocalStack with them first.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_lambda::primitives::Blob;
use common::local::{Setup, aws, localstack_pid, write_result};
use common::runtime_api::{RuntimeApi, lambda_env};
use common::{cpu_by_pid, cpu_spent, ms, percentile};
use serde_json::{Value, json};

const STACK: &str = "bench-invoke";
const EVENT: &str = r#"{"Records":[]}"#;
const WARMUP: usize = 20;
const INVOKES: usize = 200;
const TARGET_P50: Duration = Duration::from_millis(20);
/// The package `make build-local` builds and the stack deploys, repo-relative.
const PACKAGE: &str = "target/lambda-local/forwarder/bootstrap.zip";

/// Checks an answer of the forwarder to `EVENT`.
fn check(answer: &str, error: bool) {
    assert!(!error, "the forwarder failed: {answer}");
    let answer: Value = serde_json::from_str(answer).unwrap();
    assert_eq!(answer, json!({"batchItemFailures": []}));
}

/// One synchronous `Invoke`, timed client-side.
async fn invoke(lambda: &aws_sdk_lambda::Client, function: &str) -> Duration {
    let started = Instant::now();
    let output = lambda
        .invoke()
        .function_name(function)
        .payload(Blob::new(EVENT))
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    let payload = output
        .payload()
        .map(|p| p.as_ref().to_vec())
        .unwrap_or_default();
    check(
        &String::from_utf8_lossy(&payload),
        output.function_error().is_some(),
    );
    took
}

/// The `bootstrap` of `PACKAGE`, extracted with Python's `zipfile` (Python runs LocalStack) into
/// `target/bench/invoke/`.
fn bootstrap_of_package(root: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = root.join("target/bench/invoke");
    let status = Command::new("python3")
        .args(["-m", "zipfile", "-e"])
        .arg(root.join(PACKAGE))
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success(), "could not extract {PACKAGE}");
    let bootstrap = dir.join("bootstrap");
    std::fs::set_permissions(&bootstrap, std::fs::Permissions::from_mode(0o755)).unwrap();
    bootstrap
}

/// `bootstrap` under the Runtime API stand-in with `environment`: the time of each of `INVOKES`
/// invocations after `WARMUP`.
async fn bare(bootstrap: &Path, environment: &HashMap<String, String>) -> Vec<Duration> {
    let api = RuntimeApi::start().await;
    let mut child = Command::new(bootstrap)
        .env_clear()
        .envs(environment)
        .envs(lambda_env(&api.address()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut took = Vec::with_capacity(INVOKES);
    for i in 0..WARMUP + INVOKES {
        let invocation = tokio::time::timeout(Duration::from_secs(30), api.invoke(EVENT.into()))
            .await
            .expect("the forwarder answered within 30 s");
        check(&invocation.body, invocation.error);
        if i >= WARMUP {
            took.push(invocation.took);
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    took
}

/// p50, p90 and p99 in ms.
fn quantiles(mut took: Vec<Duration>) -> Value {
    took.sort();
    json!({
        "p50": ms(percentile(&took, 0.5)),
        "p90": ms(percentile(&took, 0.9)),
        "p99": ms(percentile(&took, 0.99)),
    })
}

fn main() {
    let Some(setup) = Setup::start(STACK, "bench/stacks/idle.tfvars") else {
        return; // `cargo bench -- --list` probes every bench binary
    };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let function = setup.output("forwarder_function_name");
    let lambda = aws_sdk_lambda::Client::new(&aws());
    let localstack = localstack_pid();

    let (through_localstack, localstack_cpu, environment) = setup.rt.block_on(async {
        let config = lambda
            .get_function_configuration()
            .function_name(&function)
            .send()
            .await
            .unwrap();
        let environment = config
            .environment()
            .and_then(|e| e.variables())
            .cloned()
            .unwrap_or_default();
        for _ in 0..WARMUP {
            invoke(&lambda, &function).await;
        }
        let before = cpu_by_pid();
        let mut took = Vec::with_capacity(INVOKES);
        for _ in 0..INVOKES {
            took.push(invoke(&lambda, &function).await);
        }
        let cpu = cpu_spent(&before, &cpu_by_pid(), |_, p| p.pgid == localstack);
        (took, cpu, environment)
    });
    let bootstrap = bootstrap_of_package(&root);
    let bare = setup.rt.block_on(bare(&bootstrap, &environment));

    let (local, bare) = (quantiles(through_localstack), quantiles(bare));
    let cost = local["p50"].as_f64().unwrap() - bare["p50"].as_f64().unwrap();
    let cpu_per_invoke_ms = localstack_cpu * 1e3 / INVOKES as f64;
    let met = if local["p50"].as_f64().unwrap() <= ms(TARGET_P50) {
        "met"
    } else {
        "not met"
    };
    println!(
        "invoke: {INVOKES} sequential invokes of the forwarder with {EVENT}, after {WARMUP} to warm up\n\
         invoke: through LocalStack's Lambda API: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms; \
         LocalStack's CPU {cpu_per_invoke_ms:.1} ms per invoke\n\
         invoke: the same binary under a bare Runtime API: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms\n\
         invoke: summary: the local invoke path costs {cost:.2} ms (p50 difference); warm invoke \
         p50 {:.2} ms (target <= {} ms: {met})",
        local["p50"].as_f64().unwrap(),
        local["p90"].as_f64().unwrap(),
        local["p99"].as_f64().unwrap(),
        bare["p50"].as_f64().unwrap(),
        bare["p90"].as_f64().unwrap(),
        bare["p99"].as_f64().unwrap(),
        local["p50"].as_f64().unwrap(),
        TARGET_P50.as_millis(),
    );
    write_result(
        "invoke",
        &json!({
            "function": function,
            "event": EVENT,
            "invokes": INVOKES,
            "warmup": WARMUP,
            "through_localstack_ms": local,
            "bare_runtime_api_ms": bare,
            "invoke_path_p50_ms": cost,
            "localstack_cpu_ms_per_invoke": cpu_per_invoke_ms,
            "target_p50_ms": ms(TARGET_P50),
        }),
    );
}
