//! `sfctl` operates a deployed storeforward stack through the AWS APIs, on AWS or on LocalStack
//! (the standard AWS configuration: profile, region, credentials, `AWS_ENDPOINT_URL`).
//!
//! The queues are found by the stack's name prefix (`<prefix>-orders`, `<prefix>-orders-failover`,
//! `<prefix>-orders-dlq`, each with `.fifo` for FIFO stacks), or given as URLs; the delivery state
//! is the SSM parameter `/<prefix>/delivery-state` and the mappings of `<prefix>-forwarder`.

mod delivery;
mod dlq;
mod queues;
mod watch;

use std::io::IsTerminal;
use std::time::Duration;

use aws_config::BehaviorVersion;
use clap::{Args, Parser, Subcommand};
use storeforward_control::AwsSwitch;

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
    fn rates_beyond_what_sqs_allows_are_refused() {
        assert!(Cli::try_parse_from(["sfctl", "dlq", "redrive", "--rate", "501"]).is_err());
        assert!(Cli::try_parse_from(["sfctl", "dlq", "redrive", "--rate", "0"]).is_err());
    }
}
