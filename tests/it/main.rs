//! The integration suite: the real stack on LocalStack (`infra/` applied by Terraform, the real
//! `store` and `forwarder` binaries), checked only through its public surfaces: the HTTP API,
//! SQS, and the backend it delivers to.
//!
//! One test binary with its own harness, so the stack is brought up once (or an already running
//! LocalStack is reused) and everything it started is stopped at the end.

#![allow(clippy::unwrap_used, clippy::panic)] // a broken stack may abort the run

mod auth;
mod badinput;
mod breaker;
mod chaos;
mod creds;
mod dashboard;
mod delivery;
mod fifo;
mod forwarder;
mod ingress;
mod metrics;
mod ops;
mod outage;
mod schedule;
mod schema;
mod support;
mod trace;

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use libtest_mimic::{Arguments, Trial};
use support::{Outcome, World};

type Suite = for<'a> fn(&'a World) -> Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>;

macro_rules! suites {
    ($($path:path),* $(,)?) => {
        vec![$((stringify!($path), (|w| Box::pin($path(w))) as Suite)),*]
    };
}

/// Suites at a time, unless `--test-threads` says otherwise. They share one LocalStack, whose
/// Python runs every function and queue on this machine's cores: two keep both busy (CI's
/// machine has two) while the fault and breaker suites' timings keep their margins, whatever
/// the number of cores.
const SUITES_AT_A_TIME: usize = 2;

fn main() -> ExitCode {
    let mut args = Arguments::from_args();
    args.test_threads = args.test_threads.or(Some(SUITES_AT_A_TIME));
    let suites = suites![
        delivery::order_is_delivered_byte_identical_with_its_key,
        delivery::transient_failures_are_retried_until_delivered,
        delivery::permanent_rejections_are_dead_lettered_after_one_attempt,
        delivery::exhausted_retries_reach_the_dlq_through_the_redrive_policy,
        badinput::bad_input_gets_its_4xx_and_never_reaches_the_backend,
        auth::orders_without_the_api_key_are_refused_and_never_stored,
        metrics::both_functions_publish_emf_metrics_in_their_log_streams,
        schema::the_api_conforms_to_its_openapi_document,
        fifo::each_group_is_delivered_in_order_under_failures,
        forwarder::a_panic_while_delivering_fails_only_that_message,
        forwarder::malformed_records_fail_alone_with_a_reason,
        forwarder::messages_the_deadline_leaves_unstarted_come_back,
        schedule::the_schedule_rule_targets_the_forwarder,
        schedule::a_scheduled_invocation_drains_both_queues,
        outage::no_false_202_while_sqs_is_down_and_failover_takes_over,
        chaos::every_accepted_order_is_delivered_or_dead_lettered,
        ops::sfctl_shows_peeks_redrives_and_purges_real_dead_letters,
        breaker::outages_pause_delivery_keep_every_order_and_resume,
        breaker::a_fifo_outage_keeps_each_groups_order,
        breaker::a_scheduled_forwarder_probes_instead_of_draining,
        breaker::a_backend_that_fails_some_orders_keeps_the_circuit_closed,
        creds::orders_reach_a_backend_behind_mtls_oauth2_and_a_header_secret,
        dashboard::the_dashboard_is_applied_and_read_back,
        trace::trace_context_reaches_the_backend_and_sfctl_traces_each_order,
        ingress::a_signed_order_on_the_function_url_is_accepted_and_delivered_byte_identical,
        ingress::the_function_url_refuses_what_the_rest_api_refuses,
    ];
    if args.list {
        let trials = suites
            .iter()
            .map(|(name, _)| Trial::test(name.replace(' ', ""), || Ok(())))
            .collect();
        return libtest_mimic::run(&args, trials).exit_code();
    }

    let bringing_up = Instant::now();
    let started = match bring_up() {
        Ok(started) => started,
        Err(e) => {
            eprintln!("the local stack did not come up: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "functions built and LocalStack up in {:.1} s",
        bringing_up.elapsed().as_secs_f64()
    );
    let runtime = Arc::new(tokio::runtime::Runtime::new().unwrap());
    let world = match runtime.block_on(World::new()) {
        Ok(world) => Arc::new(world),
        Err(e) => {
            eprintln!("{e}");
            tear_down(started);
            return ExitCode::FAILURE;
        }
    };
    // A whole run applies every stack before the first suite starts, so that no suite's timing
    // meets the load of the applies; a filtered run only those its suites use, on first use.
    if args.filter.is_none() && args.skip.is_empty() {
        let applying = Instant::now();
        world.apply_every_stack();
        eprintln!(
            "every stack applied in {:.1} s",
            applying.elapsed().as_secs_f64()
        );
    }
    let trials = suites
        .into_iter()
        .map(|(name, suite)| {
            let (world, runtime) = (world.clone(), runtime.clone());
            let name = name.replace(' ', "");
            Trial::test(name.clone(), move || {
                let started = Instant::now();
                let outcome = runtime.block_on(suite(&world));
                // Where CI's time goes, suite by suite (two run at a time).
                eprintln!("{name}: {:.1} s", started.elapsed().as_secs_f64());
                outcome.map_err(Into::into)
            })
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    drop(world);
    tear_down(started);
    conclusion.exit_code()
}

/// Builds what the suites deploy and run (`make build-suite`, a near no-op after `make unit`)
/// while LocalStack starts, unless one already runs. Returns whether this run started it, and
/// stops it again if the build fails.
fn bring_up() -> Result<bool, String> {
    if support::localstack_is_up() {
        eprintln!("reusing the LocalStack on 127.0.0.1:4566");
        return build().map(|()| false);
    }
    let starting = std::thread::spawn(|| support::run("localstack/bin/start", &[]));
    let built = build();
    let started = starting
        .join()
        .unwrap_or_else(|_| Err("starting LocalStack panicked".into()));
    match (built, started) {
        (Ok(()), Ok(())) => Ok(true),
        (built, started) => {
            tear_down(started.is_ok());
            Err([built.err(), started.err()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("\n"))
        }
    }
}

fn build() -> Result<(), String> {
    support::run("make", &["--no-print-directory", "-s", "build-suite"])
}

fn tear_down(started: bool) {
    if started && let Err(e) = support::run("localstack/bin/stop", &[]) {
        eprintln!("stopping LocalStack: {e}");
    }
}
