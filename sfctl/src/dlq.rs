//! `sfctl dlq`: peek, redrive, cancel, purge.

use std::collections::HashSet;
use std::io::{BufRead, IsTerminal, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use aws_sdk_sqs::types::{ListMessageMoveTasksResultEntry, Message, MessageSystemAttributeName};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use storeforward_core::envelope::attr;

use crate::queues::{Queue, Queues, human};

/// Longest body shown by `peek` without `--body`, in characters.
const BODY_PREVIEW: usize = 200;
/// Receives in a row that bring no new dead letter before `peek` stops looking.
const FRUITLESS_RECEIVES: u32 = 3;
const MOVE_POLL: Duration = Duration::from_millis(500);

pub async fn peek(
    sqs: &aws_sdk_sqs::Client,
    dlq: &Queue,
    max: usize,
    whole_body: bool,
    json: bool,
) -> anyhow::Result<()> {
    let mut seen = HashSet::new();
    let mut letters = Vec::new();
    let mut fruitless = 0;
    while letters.len() < max && fruitless < FRUITLESS_RECEIVES {
        // Visibility timeout 0: the messages stay visible, nothing is consumed.
        let answer = sqs
            .receive_message()
            .queue_url(&dlq.url)
            .max_number_of_messages((max - letters.len()).min(10) as i32)
            .visibility_timeout(0)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .with_context(|| format!("reading {}", dlq.name))?;
        let before = letters.len();
        for message in answer.messages.unwrap_or_default() {
            if seen.insert(message.message_id.clone().unwrap_or_default()) {
                letters.push(message);
            }
        }
        fruitless = if letters.len() == before {
            fruitless + 1
        } else {
            0
        };
    }
    if letters.is_empty() && !json {
        println!("{}: no dead letters", dlq.name);
    }
    for letter in &letters {
        let shown = describe(letter);
        if json {
            println!("{shown}");
        } else {
            print_letter(&shown, whole_body);
        }
    }
    Ok(())
}

fn attribute<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message.message_attributes()?.get(name)?.string_value()
}

fn system_attribute(message: &Message, name: MessageSystemAttributeName) -> Option<&str> {
    message.attributes()?.get(&name).map(String::as_str)
}

/// A dead letter as `peek` shows it: what it is and why it is here.
fn describe(message: &Message) -> Value {
    let number = |v: Option<&str>| v.and_then(|v| v.parse::<u64>().ok());
    let failure = attribute(message, attr::FAILURE_KIND).map(|kind| {
        json!({
            "kind": kind,
            "reason": attribute(message, attr::FAILURE_REASON),
            "status": number(attribute(message, attr::FAILURE_STATUS)),
            "attempts": number(attribute(message, attr::FAILURE_ATTEMPTS)),
        })
    });
    json!({
        "message_id": message.message_id(),
        "idempotency_key": attribute(message, attr::IDEMPOTENCY_KEY),
        "content_type": attribute(message, attr::CONTENT_TYPE),
        "sent_at_ms": number(system_attribute(message, MessageSystemAttributeName::SentTimestamp)),
        "receive_count": number(system_attribute(message, MessageSystemAttributeName::ApproximateReceiveCount)),
        // Without our failure attributes the message did not come from the forwarder: SQS moved
        // it here after max_receive_count receives (retries exhausted, or a batch that failed
        // as a whole).
        "failure": failure.unwrap_or_else(|| json!({"kind": "retries exhausted"})),
        "body": message.body(),
    })
}

fn print_letter(letter: &Value, whole_body: bool) {
    let text = |k: &str| letter[k].as_str().unwrap_or("-").to_owned();
    let failure = &letter["failure"];
    let mut why = failure["kind"].as_str().unwrap_or("-").to_owned();
    if let Some(status) = failure["status"].as_u64() {
        why += &format!(", backend answered {status}");
    }
    if let Some(attempts) = failure["attempts"].as_u64() {
        why += &format!(", after {attempts} attempt(s)");
    }
    if let Some(reason) = failure["reason"].as_str() {
        why += &format!(": {reason}");
    }
    let age = letter["sent_at_ms"].as_u64().map_or_else(
        || "-".to_owned(),
        |sent| {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            format!(
                "{} ago",
                human(now.saturating_sub(Duration::from_millis(sent)))
            )
        },
    );
    let body = text("body");
    let chars = body.chars().count();
    let shown = if whole_body || chars <= BODY_PREVIEW {
        body
    } else {
        let cut: String = body.chars().take(BODY_PREVIEW).collect();
        format!("{cut}… ({chars} characters; --body shows all)")
    };
    println!(
        "{}  key {}  sent {age}\n  why:  {why}\n  body: {shown}\n",
        text("message_id"),
        text("idempotency_key"),
    );
}

/// The redrive out of `dlq` that is running, if one is.
async fn running(
    sqs: &aws_sdk_sqs::Client,
    dlq: &Queue,
) -> anyhow::Result<Option<ListMessageMoveTasksResultEntry>> {
    Ok(latest(sqs, dlq)
        .await?
        .filter(|t| t.status() == Some("RUNNING")))
}

/// The most recent redrive out of `dlq`.
async fn latest(
    sqs: &aws_sdk_sqs::Client,
    dlq: &Queue,
) -> anyhow::Result<Option<ListMessageMoveTasksResultEntry>> {
    let answer = sqs
        .list_message_move_tasks()
        .source_arn(&dlq.arn)
        .max_results(1)
        .send()
        .await
        .with_context(|| format!("listing the redrives of {}", dlq.name))?;
    Ok(answer.results.unwrap_or_default().into_iter().next())
}

fn already_running(dlq: &Queue, task: &ListMessageMoveTasksResultEntry) -> anyhow::Error {
    anyhow::anyhow!(
        "a redrive of {} is already running ({} of {} moved); SQS runs one at a time per queue: \
         wait for it to end, or stop it with `sfctl dlq cancel`",
        dlq.name,
        task.approximate_number_of_messages_moved(),
        task.approximate_number_of_messages_to_move()
            .map_or_else(|| "?".to_owned(), |n| n.to_string()),
    )
}

pub async fn redrive(
    sqs: &aws_sdk_sqs::Client,
    queues: &Queues,
    rate: Option<i32>,
    follow: bool,
) -> anyhow::Result<()> {
    let (dlq, orders) = (&queues.dlq, &queues.orders);
    if let Some(task) = running(sqs, dlq).await? {
        return Err(already_running(dlq, &task));
    }
    let waiting = dlq.depth.visible;
    if waiting == 0 {
        println!("{}: no dead letters to redrive", dlq.name);
        return Ok(());
    }
    let started = sqs
        .start_message_move_task()
        .source_arn(&dlq.arn)
        .destination_arn(&orders.arn)
        .set_max_number_of_messages_per_second(rate)
        .send()
        .await;
    let handle = match started {
        Ok(started) => started.task_handle.unwrap_or_default(),
        // Someone started one since we looked.
        Err(e) => match running(sqs, dlq).await? {
            Some(task) => return Err(already_running(dlq, &task)),
            None => {
                return Err(
                    anyhow::Error::new(e).context(format!("starting the redrive of {}", dlq.name))
                );
            }
        },
    };
    println!(
        "redriving about {waiting} dead letter(s) from {} to {}{}",
        dlq.name,
        orders.name,
        rate.map_or_else(String::new, |r| format!(" at {r}/s at most")),
    );
    if !follow {
        println!(
            "task {handle}: follow it with `sfctl dlq redrive` (it says when one runs) or `sfctl status`"
        );
        return Ok(());
    }
    let bar = ProgressBar::new(waiting).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} moved, {per_sec}, {elapsed}")
            .context("progress bar template")?,
    );
    loop {
        tokio::time::sleep(MOVE_POLL).await;
        let Some(task) = latest(sqs, dlq).await? else {
            continue;
        };
        let moved = u64::try_from(task.approximate_number_of_messages_moved()).unwrap_or(0);
        if let Some(total) = task.approximate_number_of_messages_to_move() {
            bar.set_length(u64::try_from(total).unwrap_or(0));
        }
        bar.set_position(moved);
        match task.status() {
            Some("RUNNING") | None => continue,
            Some("COMPLETED") => {
                bar.finish();
                println!("moved {moved} dead letter(s) to {}", orders.name);
                return Ok(());
            }
            Some("CANCELLED" | "CANCELLING") => {
                bar.abandon();
                bail!("the redrive was cancelled after {moved} message(s)");
            }
            Some(other) => {
                bar.abandon();
                bail!(
                    "the redrive ended {other} after {moved} message(s): {}",
                    task.failure_reason().unwrap_or("no reason given")
                );
            }
        }
    }
}

pub async fn cancel(sqs: &aws_sdk_sqs::Client, dlq: &Queue) -> anyhow::Result<()> {
    let Some(task) = running(sqs, dlq).await? else {
        bail!("no redrive of {} is running", dlq.name);
    };
    let answer = sqs
        .cancel_message_move_task()
        .task_handle(task.task_handle().unwrap_or_default())
        .send()
        .await
        .with_context(|| format!("cancelling the redrive of {}", dlq.name))?;
    println!(
        "cancelled the redrive of {}; {} message(s) had been moved",
        dlq.name,
        answer.approximate_number_of_messages_moved()
    );
    Ok(())
}

pub async fn purge(sqs: &aws_sdk_sqs::Client, dlq: &Queue, yes: bool) -> anyhow::Result<()> {
    let waiting = dlq.depth;
    let count = waiting.visible + waiting.in_flight + waiting.delayed;
    if !yes {
        if !std::io::stdin().is_terminal() {
            bail!(
                "refusing to purge {} ({count} message(s)) without a confirmation: run it in a \
                 terminal, or pass --yes",
                dlq.name
            );
        }
        eprint!(
            "This deletes all {count} message(s) in {} for good. Type the queue's name to confirm: ",
            dlq.name
        );
        std::io::stderr().flush().ok();
        let mut typed = String::new();
        std::io::stdin().lock().read_line(&mut typed)?;
        if typed.trim() != dlq.name {
            bail!("not confirmed; nothing was deleted");
        }
    }
    sqs.purge_queue()
        .queue_url(&dlq.url)
        .send()
        .await
        .with_context(|| {
            format!(
                "purging {} (SQS allows one purge per queue every 60 s)",
                dlq.name
            )
        })?;
    println!(
        "purged {} ({count} message(s)); SQS completes a purge within 60 s",
        dlq.name
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sqs::types::MessageAttributeValue;

    fn string(v: &str) -> MessageAttributeValue {
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(v)
            .build()
            .unwrap()
    }

    #[test]
    fn a_forwarder_dead_letter_says_why() {
        let message = Message::builder()
            .message_id("m1")
            .body("{}")
            .message_attributes(attr::IDEMPOTENCY_KEY, string("order-1"))
            .message_attributes(attr::FAILURE_KIND, string("permanent"))
            .message_attributes(attr::FAILURE_REASON, string("backend answered 422"))
            .message_attributes(attr::FAILURE_STATUS, string("422"))
            .message_attributes(attr::FAILURE_ATTEMPTS, string("1"))
            .attributes(MessageSystemAttributeName::SentTimestamp, "1700000000000")
            .build();
        let shown = describe(&message);
        assert_eq!(shown["idempotency_key"], "order-1");
        assert_eq!(shown["failure"]["kind"], "permanent");
        assert_eq!(shown["failure"]["status"], 422);
        assert_eq!(shown["failure"]["attempts"], 1);
        assert_eq!(shown["failure"]["reason"], "backend answered 422");
        assert_eq!(shown["sent_at_ms"], 1_700_000_000_000_u64);
    }

    #[test]
    fn a_message_sqs_moved_is_one_whose_retries_ran_out() {
        let message = Message::builder().message_id("m2").body("{}").build();
        assert_eq!(describe(&message)["failure"]["kind"], "retries exhausted");
    }
}
