//! The API key the stack requires by default (`api_auth = "api_key"`): API Gateway refuses
//! orders without it, or with a wrong one, before they reach the store; with it they are
//! accepted. Checked at the queue itself, on the scheduled stack whose queues nothing else
//! consumes: after the refused requests it holds nothing, after the accepted one exactly that.

use crate::support::{Outcome, StackKind, World, attribute, ensure, unique};

pub async fn orders_without_the_api_key_are_refused_and_never_stored(w: &World) -> Outcome {
    let stack = w.stack(StackKind::Scheduled)?;
    let _alone = w.exclusive(StackKind::Scheduled).await;
    // The store's primary queue is unavailable in this stack: what it stores goes here.
    let queues = [
        stack.output("failover_queue_url"),
        stack.output("queue_url"),
    ];
    let key = stack
        .api_key()
        .ok_or("the stack has no API key: api_auth should default to api_key")?;
    ensure(key.len() >= 20, || {
        format!(
            "the API key is suspiciously short ({} characters)",
            key.len()
        )
    })?;
    let run = unique("auth");
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
    }
    for queue in queues {
        w.ensure_empty("a queue after refused orders", queue)
            .await?;
    }

    // With the key: stored, and the queue shows it (so the emptiness above could have failed).
    let accepted = w
        .accepted(stack, &format!(r#"{{"id":"{run}-ok"}}"#), &[])
        .await?;
    let stored: Vec<_> = w
        .drain(queues[0])
        .await?
        .iter()
        .filter_map(|m| attribute(m, "IdempotencyKey").map(str::to_owned))
        .collect();
    ensure(stored == [accepted.clone()], || {
        format!("the queue should hold just {accepted}, it held {stored:?}")
    })
}
