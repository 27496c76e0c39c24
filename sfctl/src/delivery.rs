//! `sfctl pause`, `sfctl resume`, and the delivery state in `sfctl status`.

use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context;
use serde_json::{Value, json};
use storeforward_control::AwsSwitch;
use storeforward_core::breaker::{self, DeliveryState, Switch};
use storeforward_core::poll::now_ms;

use crate::queues::human;

/// The stack's switch: `/<stack>/delivery-state`, and the mappings of `<stack>-forwarder` other
/// than the one reading `<stack>-orders-probe`.
pub fn switch(config: &aws_config::SdkConfig, stack: &str) -> AwsSwitch {
    AwsSwitch::new(
        aws_sdk_ssm::Client::new(config),
        format!("/{stack}/delivery-state"),
    )
    .with_mappings(
        aws_sdk_lambda::Client::new(config),
        format!("{stack}-forwarder"),
        &format!("{stack}-orders-probe"),
    )
}

/// Records the pause first, so that a probe running now sees it, then switches consumption off.
pub async fn pause(switch: &AwsSwitch, by: &str, reason: &str) -> anyhow::Result<()> {
    breaker::pause(switch, by, reason, now_ms())
        .await
        .context("pausing delivery (a recorded pause stays even if the mappings did not switch)")?;
    println!(
        "delivery paused; orders are still accepted and wait in the queue. `sfctl resume` resumes it."
    );
    Ok(())
}

/// Switches consumption on, then records delivering; an open circuit resumes too (if the backend
/// is still down, the breaker opens it again).
pub async fn resume(switch: &AwsSwitch) -> anyhow::Result<()> {
    switch
        .consume(true)
        .await
        .context("switching the event source mappings on")?;
    switch
        .write(&DeliveryState::Delivering)
        .await
        .context("the mappings are on, but recording the state failed")?;
    println!("delivery resumed.");
    Ok(())
}

/// The delivery state and the mappings' states, as a line of text or as JSON.
pub async fn describe(switch: &AwsSwitch, as_json: bool) -> anyhow::Result<String> {
    let state = switch.read().await.context("reading the delivery state")?;
    let mappings = switch
        .mappings()
        .await
        .context("reading the event source mappings")?;
    if as_json {
        let mut value: Value = serde_json::from_str(&state.to_json())?;
        value["mappings"] = mappings
            .iter()
            .map(|m| (m.queue.clone(), Value::from(m.state.clone())))
            .collect::<serde_json::Map<_, _>>()
            .into();
        return Ok(json!({ "delivery": value }).to_string());
    }
    let mut line = format!("delivery: {}", sentence(&state, now_ms()));
    if !mappings.is_empty() {
        let states: Vec<String> = mappings
            .iter()
            .map(|m| format!("{} {}", m.queue, m.state))
            .collect();
        line.push_str(&format!("\nmappings: {}", states.join(", ")));
    }
    Ok(line)
}

/// The state as a person would say it, with times relative to `now_ms`.
fn sentence(state: &DeliveryState, now_ms: u64) -> String {
    let at = |ms: u64| {
        let when = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(ms));
        let ago = Duration::from_millis(now_ms.saturating_sub(ms));
        let ahead = Duration::from_millis(ms.saturating_sub(now_ms));
        if ms > now_ms {
            format!("{when} (in {})", human(ahead))
        } else {
            format!("{when} ({} ago)", human(ago))
        }
    };
    match state {
        DeliveryState::Delivering => "delivering".into(),
        DeliveryState::Paused {
            by,
            since_ms,
            reason,
        } => format!(
            "PAUSED by an operator ({by}) since {}: {reason}. `sfctl resume` resumes it.",
            at(*since_ms)
        ),
        DeliveryState::Open {
            since_ms,
            reason,
            last_probe_ms,
            last_probe,
            next_probe_ms,
        } => {
            let last = match (last_probe_ms, last_probe) {
                (Some(ms), Some(result)) => format!("last probe {}: {result}", at(*ms)),
                _ => "no probe yet".into(),
            };
            format!(
                "CIRCUIT OPEN since {} ({reason}); {last}; next probe {}",
                at(*since_ms),
                at(*next_probe_ms)
            )
        }
    }
}

/// Who is pausing: the caller's IAM identity, or the local user where STS does not answer.
pub async fn caller(config: &aws_config::SdkConfig) -> String {
    let identity = aws_sdk_sts::Client::new(config)
        .get_caller_identity()
        .send()
        .await;
    match identity.ok().and_then(|i| i.arn) {
        Some(arn) => arn,
        None => std::env::var("USER").unwrap_or_else(|_| "unknown".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_read_as_sentences() {
        let now = 1_764_601_200_000; // 2025-12-01 15:00:00 UTC
        assert_eq!(sentence(&DeliveryState::Delivering, now), "delivering");
        let paused = sentence(
            &DeliveryState::Paused {
                by: "arn:aws:iam::1:user/alice".into(),
                since_ms: now - 125_000,
                reason: "backend maintenance".into(),
            },
            now,
        );
        assert!(
            paused.starts_with("PAUSED by an operator (arn:aws:iam::1:user/alice) since Mon, 01 Dec 2025 14:57:55 GMT (2m 5s ago): backend maintenance"),
            "{paused}"
        );
        let open = sentence(
            &DeliveryState::Open {
                since_ms: now - 60_000,
                reason: "backend answered 503".into(),
                last_probe_ms: Some(now - 10_000),
                last_probe: Some("connection refused".into()),
                next_probe_ms: now + 50_000,
            },
            now,
        );
        assert!(open.contains("CIRCUIT OPEN since"), "{open}");
        assert!(open.contains("(backend answered 503)"), "{open}");
        assert!(
            open.contains("last probe") && open.contains("(10s ago): connection refused"),
            "{open}"
        );
        assert!(
            open.contains("next probe") && open.ends_with("(in 50s)"),
            "{open}"
        );
    }
}
