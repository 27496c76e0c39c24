//! `sfctl` against the local stack, as an operator runs it: the real binary, the standard AWS
//! configuration pointed at LocalStack, real dead letters made by the real forwarder.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::support::{Outcome, Stack, StackKind, World, ensure, poll_until, root, unique};

/// The Standard Webhooks secret the ops stack reads from SSM (tests/stacks/ops.tfvars).
const SIGNING_SECRET: &str = "whsec_c2ZpdC1vcHMtc2lnbmluZy1zZWNyZXQtMzJieXRlcyE=";
const SIGNING_PARAMETER: &str = "/sfit-ops/signing-secret";

/// How long a dead letter may take to arrive: three failed attempts on the retry schedule, then
/// the redrive policy's move (about 6 s measured).
const TO_DLQ: Duration = Duration::from_secs(90);
/// How long the DLQ alarm may take to go off: LocalStack publishes the queue metrics every 10 s
/// and evaluates the alarm every period (10 s in tests/stacks/ops.tfvars), so about 20 s; the
/// rest is margin for a loaded machine.
const TO_ALARM: Duration = Duration::from_secs(90);
/// Dead letters in the slow redrive that a second redrive must find running.
const SLOW_REDRIVE: u64 = 10;

struct Output {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// `sfctl` as the harness built it (`make build-suite`, the dev profile).
fn binary() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
        .join("debug")
        .join("sfctl")
}

/// The ops stack's `name_prefix`.
pub const STACK: &str = "sfit-ops";

/// Runs `sfctl ARGS` for `stack` with stdin closed (not a terminal).
async fn sfctl(stack: &str, args: &[&str]) -> Result<Output, String> {
    let out = tokio::process::Command::new(binary())
        .args(args)
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("SFCTL_STACK", stack)
        .env_remove("AWS_PROFILE")
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("sfctl {args:?}: {e}"))?;
    Ok(Output {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Runs `sfctl ARGS` for `stack`, which must succeed; returns its standard output.
pub async fn sfctl_ok(stack: &str, args: &[&str]) -> Result<String, String> {
    let out = sfctl(stack, args).await?;
    if out.ok {
        Ok(out.stdout)
    } else {
        Err(format!(
            "sfctl {args:?} failed: {}{}",
            out.stdout, out.stderr
        ))
    }
}

fn json_lines(text: &str) -> Result<Vec<Value>, String> {
    text.lines()
        .map(|l| serde_json::from_str(l).map_err(|e| format!("not JSON ({e}): {l}")))
        .collect()
}

/// The DLQ's visible messages as `sfctl status --json` reports them.
async fn dead_letters() -> Option<u64> {
    let lines = json_lines(&sfctl_ok(STACK, &["status", "--json"]).await.ok()?).ok()?;
    lines
        .iter()
        .find(|q| q["queue"] == "dlq")
        .and_then(|q| q["visible"].as_u64())
}

pub async fn wait_for_dead_letters(n: u64) -> Outcome {
    poll_until(&format!("{n} dead letter(s)"), TO_DLQ, || async {
        (dead_letters().await == Some(n)).then_some(())
    })
    .await
}

async fn post(w: &World, stack: &Stack, run_id: &str, behaviour: &str) -> Result<String, String> {
    let body = format!(r#"{{"id":"{}","behaviour":"{behaviour}"}}"#, unique(run_id));
    w.accepted(stack, &body, &[]).await
}

/// The ops stack, with the signing secret its forwarder reads from SSM at cold start put there
/// before any order reaches it.
pub async fn prepare(w: &World) -> Result<&Stack, String> {
    let (status, answer) = w
        .aws(
            "ssm",
            Some("AmazonSSM.PutParameter"),
            "/",
            &serde_json::json!({
                "Name": SIGNING_PARAMETER,
                "Type": "SecureString",
                "Value": SIGNING_SECRET,
                "Overwrite": true,
            }),
        )
        .await?;
    ensure(status == 200, || format!("PutParameter: {status} {answer}"))?;
    w.stack(StackKind::Ops)
}

pub async fn sfctl_shows_peeks_redrives_and_purges_real_dead_letters(w: &World) -> Outcome {
    let stack = prepare(w).await?;
    // It counts the dead letters, and its redrives and purges take all of them.
    let _alone = w.exclusive(StackKind::Ops).await;
    let run_id = unique("ops");

    // A permanent rejection the forwarder dead-letters at once, and an order whose retries run
    // out so that the redrive policy moves it; the backend takes both on their next attempt.
    let permanent = post(w, stack, &run_id, "fail-first:1:422").await?;
    let exhausted = post(w, stack, &run_id, "fail-first:3").await?;
    wait_for_dead_letters(2).await?;
    poll_until("the DLQ alarm in ALARM", TO_ALARM, || async {
        let lines = json_lines(&sfctl_ok(STACK, &["status", "--json"]).await.ok()?).ok()?;
        lines
            .iter()
            .any(|l| l["alarm"] == "sfit-ops-dlq-not-empty" && l["state"] == "ALARM")
            .then_some(())
    })
    .await?;

    let table = sfctl_ok(STACK, &["status"]).await?;
    ensure(
        [
            "sfit-ops-orders ",
            "sfit-ops-orders-dlq",
            "2 dead letter(s)",
        ]
        .iter()
        .all(|s| table.contains(s)),
        || format!("status lacks the queues or the dead letters:\n{table}"),
    )?;

    let letters = json_lines(&sfctl_ok(STACK, &["dlq", "peek", "--json"]).await?)?;
    let of = |key: &str| letters.iter().find(|l| l["idempotency_key"] == key);
    let (Some(p), Some(e)) = (of(&permanent), of(&exhausted)) else {
        return Err(format!("peek did not show both dead letters: {letters:?}"));
    };
    ensure(
        p["failure"]["kind"] == "permanent"
            && p["failure"]["status"] == 422
            && p["failure"]["attempts"] == 1
            && p["failure"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("422")),
        || format!("the permanent dead letter lacks its reason: {p}"),
    )?;
    ensure(e["failure"]["kind"] == "retries exhausted", || {
        format!("the redriven dead letter is not shown as such: {e}")
    })?;
    let text = sfctl_ok(STACK, &["dlq", "peek"]).await?;
    ensure(text.contains(&permanent) && text.contains("why:"), || {
        format!("text peek lacks the letters:\n{text}")
    })?;
    ensure(dead_letters().await == Some(2), || {
        "peeking consumed dead letters".into()
    })?;

    let moved = sfctl_ok(STACK, &["dlq", "redrive"]).await?;
    ensure(moved.contains("moved 2 dead letter(s)"), || {
        format!("redrive did not report its move:\n{moved}")
    })?;
    let verifier = standardwebhooks::Webhook::new(SIGNING_SECRET).map_err(|e| e.to_string())?;
    for key in [&permanent, &exhausted] {
        w.await_delivery(key, TO_DLQ).await?;
        for delivery in w.receiver.deliveries(key) {
            verifier
                .verify(delivery.body.as_bytes(), &delivery.headers)
                .map_err(|e| {
                    format!("{key}: the signature (secret from SSM) does not verify: {e}")
                })?;
        }
    }
    wait_for_dead_letters(0).await?;

    // Orders that are always rejected: a slow redrive of them blocks a second one. At one
    // message a second the first runs for SLOW_REDRIVE seconds; the second starts as soon as
    // the first has returned (about 0.1 s later), so the race has some 9 s of margin.
    for _ in 0..SLOW_REDRIVE {
        post(w, stack, &run_id, "status:422").await?;
    }
    wait_for_dead_letters(SLOW_REDRIVE).await?;
    sfctl_ok(STACK, &["dlq", "redrive", "--rate", "1", "--no-wait"]).await?;
    let second = sfctl(STACK, &["dlq", "redrive"]).await?;
    ensure(
        !second.ok && second.stderr.contains("already running"),
        || {
            format!(
                "a second redrive was not refused clearly: {}{}",
                second.stdout, second.stderr
            )
        },
    )?;
    let cancelled = sfctl_ok(STACK, &["dlq", "cancel"]).await?;
    ensure(cancelled.contains("cancelled"), || {
        format!("cancel did not say so:\n{cancelled}")
    })?;
    // Whatever was moved fails again and comes back.
    wait_for_dead_letters(SLOW_REDRIVE).await?;

    let refused = sfctl(STACK, &["dlq", "purge"]).await?;
    ensure(!refused.ok && refused.stderr.contains("--yes"), || {
        format!(
            "purge without a terminal or --yes was not refused: {}{}",
            refused.stdout, refused.stderr
        )
    })?;
    ensure(dead_letters().await == Some(SLOW_REDRIVE), || {
        "a refused purge deleted dead letters".into()
    })?;
    sfctl_ok(STACK, &["dlq", "purge", "--yes"]).await?;
    wait_for_dead_letters(0).await
}
