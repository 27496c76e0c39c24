//! Finding the stack's queues, and `sfctl status`.

use std::fmt::Write;
use std::time::{Duration, SystemTime};

use anyhow::{Context, anyhow};
use aws_sdk_cloudwatch::types::{Dimension, Statistic};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::json;

use crate::Target;

/// One queue: its name, URL and ARN, and its message counts when it was looked up (each `sfctl`
/// command looks its queues up afresh).
#[derive(Debug, Clone)]
pub struct Queue {
    pub name: String,
    pub url: String,
    pub arn: String,
    pub depth: Depth,
}

/// The queues of one stack.
#[derive(Debug)]
pub struct Queues {
    pub orders: Queue,
    /// Only stacks with `failover_queue = true` have one.
    pub failover: Option<Queue>,
    pub dlq: Queue,
}

impl Queues {
    /// The queues given as URLs, the others found by the stack's name prefix.
    pub async fn resolve(sqs: &aws_sdk_sqs::Client, target: &Target) -> anyhow::Result<Self> {
        let stack = &target.stack;
        let find = |url: &Option<String>, suffix: &str| {
            let name = format!("{stack}-{suffix}");
            let url = url.clone();
            async move {
                match url {
                    Some(url) => describe(sqs, url).await.map(Some),
                    None => by_name(sqs, &name).await,
                }
            }
        };
        let orders = find(&target.queue_url, "orders").await?.ok_or_else(|| {
            anyhow!("no queue {stack}-orders (or .fifo): pass --stack NAME_PREFIX or --queue-url")
        })?;
        let dlq = find(&target.dlq_url, "orders-dlq").await?.ok_or_else(|| {
            anyhow!("no queue {stack}-orders-dlq (or .fifo): pass --stack NAME_PREFIX or --dlq-url")
        })?;
        let failover = find(&target.failover_queue_url, "orders-failover").await?;
        Ok(Self {
            orders,
            failover,
            dlq,
        })
    }

    fn all(&self) -> impl Iterator<Item = (&'static str, &Queue)> {
        [
            ("orders", Some(&self.orders)),
            ("failover", self.failover.as_ref()),
            ("dlq", Some(&self.dlq)),
        ]
        .into_iter()
        .filter_map(|(role, queue)| queue.map(|q| (role, q)))
    }
}

/// The queue called `name` or `name.fifo`, if either exists.
async fn by_name(sqs: &aws_sdk_sqs::Client, name: &str) -> anyhow::Result<Option<Queue>> {
    for candidate in [name.to_owned(), format!("{name}.fifo")] {
        match sqs.get_queue_url().queue_name(&candidate).send().await {
            Ok(found) => {
                let url = found
                    .queue_url
                    .context("GetQueueUrl answered without a URL")?;
                return describe(sqs, url).await.map(Some);
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_queue_does_not_exist()) => {}
            Err(e) => {
                return Err(
                    anyhow::Error::new(e).context(format!("looking up the queue {candidate}"))
                );
            }
        }
    }
    Ok(None)
}

async fn describe(sqs: &aws_sdk_sqs::Client, url: String) -> anyhow::Result<Queue> {
    let answer = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .with_context(|| format!("reading the queue {url}"))?;
    let attribute = |name: QueueAttributeName| answer.attributes().and_then(|a| a.get(&name));
    let count = |name| attribute(name).and_then(|v| v.parse().ok()).unwrap_or(0);
    let arn = attribute(QueueAttributeName::QueueArn)
        .cloned()
        .with_context(|| format!("the queue {url} has no ARN"))?;
    let name = arn.rsplit(':').next().unwrap_or_default().to_owned();
    let depth = Depth {
        visible: count(QueueAttributeName::ApproximateNumberOfMessages),
        in_flight: count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        delayed: count(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
    };
    Ok(Queue {
        name,
        url,
        arn,
        depth,
    })
}

/// A queue's approximate message counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Depth {
    pub visible: u64,
    pub in_flight: u64,
    pub delayed: u64,
}

/// The latest `ApproximateAgeOfOldestMessage` SQS published to CloudWatch in the last 15
/// minutes; `None` if there is none (an idle queue, or LocalStack, which does not publish it).
async fn oldest_age(
    cloudwatch: &aws_sdk_cloudwatch::Client,
    queue: &Queue,
) -> anyhow::Result<Option<Duration>> {
    let now = SystemTime::now();
    let answer = cloudwatch
        .get_metric_statistics()
        .namespace("AWS/SQS")
        .metric_name("ApproximateAgeOfOldestMessage")
        .dimensions(
            Dimension::builder()
                .name("QueueName")
                .value(&queue.name)
                .build(),
        )
        .start_time((now - Duration::from_secs(15 * 60)).into())
        .end_time(now.into())
        .period(60)
        .statistics(Statistic::Maximum)
        .send()
        .await
        .with_context(|| format!("reading the age of the oldest message of {}", queue.name))?;
    Ok(answer
        .datapoints()
        .iter()
        .filter_map(|p| Some((p.timestamp?, p.maximum?)))
        .max_by_key(|(at, _)| *at)
        .map(|(_, seconds)| Duration::from_secs_f64(seconds.max(0.0))))
}

/// `1h 2m`, `3m 4s`, `5s`.
pub fn human(age: Duration) -> String {
    let s = age.as_secs();
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m {s}s"),
        (h, m, _) => format!("{h}h {m}m"),
    }
}

/// The stack's alarms (named `<stack>-...`) with their state and the reason for it.
async fn alarms(
    cloudwatch: &aws_sdk_cloudwatch::Client,
    stack: &str,
) -> anyhow::Result<Vec<(String, String, String)>> {
    let mut alarms = Vec::new();
    let mut pages = cloudwatch
        .describe_alarms()
        .alarm_name_prefix(format!("{stack}-"))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.with_context(|| format!("reading the alarms of {stack}"))?;
        alarms.extend(page.metric_alarms().iter().map(|a| {
            (
                a.alarm_name().unwrap_or_default().to_owned(),
                a.state_value().map_or("?", |s| s.as_str()).to_owned(),
                a.state_reason().unwrap_or_default().to_owned(),
            )
        }));
    }
    Ok(alarms)
}

/// Each queue's counts and age, and the stack's alarms: a table, or one JSON object per line.
pub async fn status(
    cloudwatch: &aws_sdk_cloudwatch::Client,
    queues: &Queues,
    stack: &str,
    json: bool,
) -> anyhow::Result<String> {
    let mut out = String::new();
    if !json {
        writeln!(
            out,
            "{:<9} {:<40} {:>9} {:>9} {:>9}  oldest",
            "queue", "name", "visible", "in flight", "delayed"
        )?;
    }
    for (role, queue) in queues.all() {
        let d = queue.depth;
        let age = oldest_age(cloudwatch, queue).await?;
        if json {
            writeln!(
                out,
                "{}",
                json!({
                    "queue": role,
                    "name": queue.name,
                    "url": queue.url,
                    "visible": d.visible,
                    "in_flight": d.in_flight,
                    "delayed": d.delayed,
                    "oldest_age_seconds": age.map(|a| a.as_secs()),
                })
            )?;
        } else {
            let age = age.map_or_else(|| "unknown".to_owned(), human);
            writeln!(
                out,
                "{role:<9} {:<40} {:>9} {:>9} {:>9}  {age}",
                queue.name, d.visible, d.in_flight, d.delayed
            )?;
        }
        if role == "dlq" && d.visible > 0 && !json {
            writeln!(
                out,
                "\n{} dead letter(s): `sfctl dlq peek` shows why, `sfctl dlq redrive` moves them back.",
                d.visible
            )?;
        }
    }
    let alarms = alarms(cloudwatch, stack).await?;
    if !json && !alarms.is_empty() {
        writeln!(out, "\n{:<40} state", "alarm")?;
    }
    for (name, state, reason) in alarms {
        if json {
            writeln!(
                out,
                "{}",
                json!({"alarm": name, "state": state, "reason": reason})
            )?;
        } else if state == "ALARM" {
            writeln!(out, "{name:<40} {state}  {reason}")?;
        } else {
            writeln!(out, "{name:<40} {state}")?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_a_person_would_say_them() {
        assert_eq!(human(Duration::from_secs(5)), "5s");
        assert_eq!(human(Duration::from_secs(3 * 60 + 4)), "3m 4s");
        assert_eq!(human(Duration::from_secs(3600 + 2 * 60 + 59)), "1h 2m");
        assert_eq!(human(Duration::from_secs(50 * 3600)), "50h 0m");
    }
}
