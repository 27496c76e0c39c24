//! The API key the stack requires by default (`api_auth = "api_key"`): API Gateway refuses
//! orders without it, or with a wrong one, before they reach the store; with it they are
//! accepted and delivered.

use std::time::Duration;

use crate::support::{Outcome, StackKind, World, ensure, unique};

pub async fn orders_without_the_api_key_are_refused_and_never_delivered(w: &World) -> Outcome {
    let stack = w.stack(StackKind::Standard)?;
    let key = stack
        .api_key()
        .ok_or("the stack has no API key: api_auth should default to api_key")?;
    let run = unique("auth");
    let mut refused = Vec::new();
    for (what, api_key) in [("none", None), ("wrong", Some("not-the-key-0123456789"))] {
        let idempotency = format!("{run}-{what}");
        let mut headers = vec![
            ("content-type", "application/json"),
            ("idempotency-key", idempotency.as_str()),
        ];
        headers.extend(api_key.map(|k| ("x-api-key", k)));
        let body = format!(r#"{{"id":"{idempotency}"}}"#);
        let answer = w
            .request(reqwest::Method::POST, &stack.order_url(), body, &headers)
            .await?;
        let message = answer.json["message"]
            .as_str()
            .or_else(|| answer.json["error"]["message"].as_str());
        ensure(answer.status == 403 && message.is_some(), || {
            format!(
                "key {what}: expected 403 with a JSON message, got {} {}",
                answer.status, answer.json
            )
        })?;
        refused.push(idempotency);
    }
    ensure(key.len() >= 20, || {
        format!(
            "the API key is suspiciously short ({} characters)",
            key.len()
        )
    })?;

    let accepted = w
        .accepted(stack, &format!(r#"{{"id":"{run}-ok"}}"#), &[])
        .await?;
    w.await_delivery(&accepted, Duration::from_secs(60)).await?;
    // The refused ones were posted first; had either been stored it would have arrived by now.
    let leaked: Vec<_> = refused
        .iter()
        .filter(|k| !w.receiver.deliveries(k).is_empty())
        .collect();
    ensure(leaked.is_empty(), || {
        format!("refused orders reached the backend: {leaked:?}")
    })
}
