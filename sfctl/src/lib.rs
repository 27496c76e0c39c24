//! `sfctl` operates a deployed storeforward stack through the AWS APIs, on AWS or on LocalStack
//! (the standard AWS configuration: profile, region, credentials, `AWS_ENDPOINT_URL`).
//!
//! The queues are found by the stack's name prefix (`<prefix>-orders`, `<prefix>-orders-failover`,
//! `<prefix>-orders-dlq`, each with `.fifo` for FIFO stacks), or given as URLs; the delivery state
//! is the SSM parameter `/<prefix>/delivery-state` and the mappings of `<prefix>-forwarder`;
//! the functions' log groups are `/aws/lambda/<prefix>-store` and `/aws/lambda/<prefix>-forwarder`.

mod delivery;
mod dlq;
mod queues;
mod trace;
mod trail;
mod watch;

use std::io::IsTerminal;
use std::time::{Duration, SystemTime};

use anyhow::bail;
use aws_config::BehaviorVersion;
use clap::{Args, Parser, Subcommand};
use storeforward_control::AwsSwitch;

use crate::trail::Query;

pub use queues::Queues;

#[derive(Debug, Parser)]
#[command(
    name = "sfctl",
    version,
    about = "Operate a storeforward stack: queue and delivery status, pause and resume, and the dead-letter queue"
)]
pub struct Cli {
    #[command(flatten)]
    pub target: Target,
    #[command(subcommand)]
    pub command: Command,
}

/// Which stack's queues to work on.
#[derive(Debug, Args)]
pub struct Target {
    /// The stack's `name_prefix` (Terraform variable); its queues are found by name.
    #[arg(
        long,
        env = "SFCTL_STACK",
        default_value = "storeforward",
        global = true
    )]
    pub stack: String,
    /// The orders queue's URL, instead of finding it by name.
    #[arg(long, env = "SFCTL_QUEUE_URL", global = true)]
    pub queue_url: Option<String>,
    /// The failover queue's URL, instead of finding it by name.
    #[arg(long, env = "SFCTL_FAILOVER_QUEUE_URL", global = true)]
    pub failover_queue_url: Option<String>,
    /// The dead-letter queue's URL, instead of finding it by name.
    #[arg(long, env = "SFCTL_DLQ_URL", global = true)]
    pub dlq_url: Option<String>,
    /// The store function's log group, instead of `/aws/lambda/<stack>-store`.
    #[arg(long, env = "SFCTL_STORE_LOG_GROUP", global = true)]
    pub store_log_group: Option<String>,
    /// The forwarder's log group, instead of `/aws/lambda/<stack>-forwarder`.
    #[arg(long, env = "SFCTL_FORWARDER_LOG_GROUP", global = true)]
    pub forwarder_log_group: Option<String>,
}

impl Target {
    /// The store's and the forwarder's log groups.
    fn log_groups(&self) -> [String; 2] {
        let group = |given: &Option<String>, function: &str| {
            given
                .clone()
                .unwrap_or_else(|| format!("/aws/lambda/{}-{function}", self.stack))
        };
        [
            group(&self.store_log_group, "store"),
            group(&self.forwarder_log_group, "forwarder"),
        ]
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Whether orders are being delivered (or paused by an operator, or the circuit is open);
    /// depth, messages in flight, delayed messages and the age of the oldest message of the
    /// orders queue, the failover queue and the dead-letter queue; the stack's alarms.
    Status {
        /// One JSON object per line (the delivery state, each queue, each alarm) instead of a table.
        #[arg(long, conflicts_with = "watch")]
        json: bool,
        /// Redraws the status every --interval seconds, under a header line (stack, time), until
        /// Ctrl-C. A refresh that fails shows its error and the watch goes on. Text only: not
        /// with --json (scripts run `sfctl status --json` in their own loop).
        #[arg(long)]
        watch: bool,
        /// Seconds between refreshes of --watch.
        #[arg(long, default_value_t = 2, requires = "watch", value_parser = clap::value_parser!(u64).range(1..=3600))]
        interval: u64,
        /// Stops --watch after this many refreshes.
        #[arg(long, requires = "watch", value_parser = clap::value_parser!(u32).range(1..))]
        count: Option<u32>,
    },
    /// Pauses delivery: orders are still accepted and wait in the queue. The circuit breaker's
    /// probe never resumes a pause; only `sfctl resume` does.
    Pause {
        /// Why, for whoever looks at `sfctl status` next.
        #[arg(long, default_value = "paused with sfctl")]
        reason: String,
    },
    /// Resumes delivery after a pause (or closes an open circuit at once).
    Resume,
    /// The dead-letter queue.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// An order's life in time order, from the functions' log groups: accepted (or rejected, or
    /// not stored), each delivery attempt, how it ended, and any redrive.
    ///
    /// The order is found by its idempotency key, by any of its SQS message ids, or by its trace
    /// id (the store's `traceparent` answer and `traceId` member); a message id or a trace id
    /// also finds the copies redriven from the dead-letter queue, through the key. The search
    /// uses CloudWatch Logs FilterLogEvents on both log groups over --since..--until; log lines
    /// take a few seconds to arrive.
    ///
    /// Text: a summary line (key, trace id, final state and why), the message ids, then one line
    /// per step: time, step, details.
    ///
    /// --json: one JSON document; a field without a value is null:
    ///   idempotency_key  string   the order's idempotency key
    ///   trace_id         string   the store's trace id (32 hex)
    ///   message_ids      [string] every SQS message id of the order, in order of appearance
    ///   state            string   pending | delivered | dead_lettered | dropped | paused
    ///                             | rejected | not_stored
    ///   reason           string   why it is in that state (last failure, dead-letter reason)
    ///   truncated        bool     the search stopped at its page limit; steps may be missing
    ///   steps            [object] in time order, each with `time` (RFC 3339 UTC, microseconds)
    ///                             and `step`, one of:
    ///     accepted       request_id, queue (primary | failover), message_id, trace_id,
    ///                    span_id (the store's), parent_span_id (the caller's)
    ///     rejected       request_id, code, status (number)
    ///     not_stored     request_id, error   (the store answered 503)
    ///     attempt        message_id, receive_count (number), status (the backend's HTTP
    ///                    status, number), error_type (the status as a string, timeout,
    ///                    connection, other, credentials_...), latency_ms (number), delay_s
    ///                    (number: the retry delay that followed), outcome (delivered | retrying
    ///                    | dead_lettered | dropped | paused | parked | failed), reason,
    ///                    last_receive (bool), span_id (the attempt's), parent_span_id (the
    ///                    store's)
    ///     deferred       message_id, receive_count, reason   (not attempted in that receive)
    ///     held           message_id, receive_count, reason   (not attempted: circuit open)
    ///     delivered      message_id
    ///     dead_lettered  message_id, by (forwarder | redrive_policy), reason
    ///     dropped        message_id, reason
    ///     paused         message_id, reason   (delivery paused until `sfctl resume`)
    ///     redriven       message_id (the copy back from the DLQ), previous_message_id
    ///
    /// Exits non-zero when no line matches.
    #[command(verbatim_doc_comment)]
    Trace {
        /// The order's idempotency key, or one of its SQS message ids.
        #[arg(required_unless_present = "trace_id", conflicts_with = "trace_id")]
        id: Option<String>,
        /// The order's W3C trace id (32 hex digits).
        #[arg(long, value_parser = trace::trace_id)]
        trace_id: Option<String>,
        /// Searches from then: a duration back from now (30m, 2h, 7d) or an RFC 3339 time.
        #[arg(long, default_value = "24h", value_parser = trace::time)]
        since: SystemTime,
        /// Searches until then (same forms as --since); default now.
        #[arg(long, value_parser = trace::time)]
        until: Option<SystemTime>,
        /// One JSON document (fields above) instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Shows dead letters and why they failed, without consuming them. Each look counts as a
    /// receive of the dead letter (the DLQ has no redrive policy, so that is harmless).
    Peek {
        /// Show at most this many.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
        max: u32,
        /// Print whole bodies (otherwise the first 200 characters).
        #[arg(long)]
        body: bool,
        /// One JSON object per dead letter instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Moves every dead letter back to the orders queue (SQS `StartMessageMoveTask`) and follows
    /// the move with a progress bar until it ends.
    Redrive {
        /// Messages per second at most (SQS default: as fast as it can, up to 500/s).
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..=500))]
        rate: Option<i32>,
        /// Start the move and return at once, without following it.
        #[arg(long)]
        no_wait: bool,
    },
    /// Stops a running redrive; the messages moved so far stay moved.
    Cancel,
    /// Deletes every dead letter, after typing the queue's name (or with `--yes`).
    Purge {
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
}

/// Runs one command against the configured AWS (or LocalStack) account.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = aws_config::load_defaults(BehaviorVersion::latest()).await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let switch = delivery::switch(&config, &cli.target.stack);
    let queues = || Queues::resolve(&sqs, &cli.target);
    match cli.command {
        Command::Status {
            json,
            watch,
            interval,
            count,
        } => {
            let cloudwatch = aws_sdk_cloudwatch::Client::new(&config);
            let status = || status(&sqs, &cloudwatch, &switch, &cli.target, json);
            if watch {
                let interval = Duration::from_secs(interval);
                let stdout = std::io::stdout();
                let terminal = stdout.is_terminal();
                let out = (&mut stdout.lock(), terminal);
                watch::watch(out, &cli.target.stack, interval, count, status).await
            } else {
                print!("{}", status().await?);
                Ok(())
            }
        }
        Command::Trace {
            id,
            trace_id,
            since,
            until,
            json,
        } => {
            let query = match (id, trace_id) {
                (_, Some(trace_id)) => Query::TraceId(trace_id),
                (Some(id), None) => Query::Id(id),
                (None, None) => bail!("give an idempotency key, a message id or --trace-id"),
            };
            let logs = aws_sdk_cloudwatchlogs::Client::new(&config);
            let groups = cli.target.log_groups();
            trace::trace(&logs, &groups, &query, since, until, json).await
        }
        Command::Pause { reason } => {
            let by = delivery::caller(&config).await;
            delivery::pause(&switch, &by, &reason).await
        }
        Command::Resume => delivery::resume(&switch).await,
        Command::Dlq(command) => {
            let queues = queues().await?;
            match command {
                DlqCommand::Peek { max, body, json } => {
                    dlq::peek(&sqs, &queues.dlq, max as usize, body, json).await
                }
                DlqCommand::Redrive { rate, no_wait } => {
                    dlq::redrive(&sqs, &queues, rate, !no_wait).await
                }
                DlqCommand::Cancel => dlq::cancel(&sqs, &queues.dlq).await,
                DlqCommand::Purge { yes } => dlq::purge(&sqs, &queues.dlq, yes).await,
            }
        }
    }
}

/// What `sfctl status` shows: the delivery state, then the queues and the alarms.
async fn status(
    sqs: &aws_sdk_sqs::Client,
    cloudwatch: &aws_sdk_cloudwatch::Client,
    switch: &AwsSwitch,
    target: &Target,
    json: bool,
) -> anyhow::Result<String> {
    let queues = Queues::resolve(sqs, target).await?;
    let delivery = delivery::describe(switch, json).await?;
    let table = queues::status(cloudwatch, &queues, &target.stack, json).await?;
    Ok(format!("{delivery}\n{table}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn queue_urls_override_the_stack_name_anywhere_on_the_line() {
        let cli = Cli::try_parse_from([
            "sfctl",
            "dlq",
            "redrive",
            "--rate",
            "5",
            "--dlq-url",
            "http://q/dlq",
        ])
        .unwrap();
        assert_eq!(cli.target.dlq_url.as_deref(), Some("http://q/dlq"));
        assert!(matches!(
            cli.command,
            Command::Dlq(DlqCommand::Redrive {
                rate: Some(5),
                no_wait: false
            })
        ));
    }

    #[test]
    fn status_watches_in_text_only() {
        let cli = Cli::try_parse_from(["sfctl", "status", "--watch", "--count", "3"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Status {
                json: false,
                watch: true,
                interval: 2,
                count: Some(3)
            }
        ));
        let refused = |args: &[&str]| Cli::try_parse_from(args).is_err();
        assert!(refused(&["sfctl", "status", "--watch", "--json"]));
        assert!(refused(&["sfctl", "status", "--interval", "5"]));
        assert!(refused(&["sfctl", "status", "--count", "5"]));
        assert!(refused(&["sfctl", "status", "--watch", "--interval", "0"]));
    }

    #[test]
    fn trace_takes_an_id_or_a_trace_id_and_a_window() {
        let cli = Cli::try_parse_from(["sfctl", "trace", "order-1", "--since", "2h"]).unwrap();
        let Command::Trace {
            id, since, until, ..
        } = cli.command
        else {
            panic!("{cli:?}")
        };
        assert_eq!(id.as_deref(), Some("order-1"));
        let ago = SystemTime::now().duration_since(since).unwrap();
        assert!(ago.as_secs().abs_diff(7200) < 60, "{ago:?}");
        assert_eq!(until, None);
        let trace = "4BF92F3577B34DA6A3CE929D0E0E4736";
        let cli = Cli::try_parse_from(["sfctl", "trace", "--trace-id", trace, "--json"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Trace { id: None, trace_id: Some(t), json: true, .. }
                if t == trace.to_ascii_lowercase()
        ));
        let refused = |args: &[&str]| Cli::try_parse_from(args).is_err();
        assert!(refused(&["sfctl", "trace"]));
        assert!(refused(&["sfctl", "trace", "k", "--trace-id", trace]));
        assert!(refused(&["sfctl", "trace", "k", "--since", "yesterday"]));
        assert!(refused(&["sfctl", "trace", "--trace-id", "abc"]));
    }

    #[test]
    fn log_groups_follow_the_stack_unless_given() {
        let cli = Cli::try_parse_from([
            "sfctl",
            "trace",
            "k",
            "--stack",
            "shop",
            "--forwarder-log-group",
            "fwd",
        ])
        .unwrap();
        assert_eq!(
            cli.target.log_groups(),
            ["/aws/lambda/shop-store".to_owned(), "fwd".to_owned()]
        );
    }

    #[test]
    fn rates_beyond_what_sqs_allows_are_refused() {
        assert!(Cli::try_parse_from(["sfctl", "dlq", "redrive", "--rate", "501"]).is_err());
        assert!(Cli::try_parse_from(["sfctl", "dlq", "redrive", "--rate", "0"]).is_err());
    }
}
