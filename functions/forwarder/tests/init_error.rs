//! The built `forwarder` binary against a fake Lambda Runtime API on 127.0.0.1: a failed cold
//! start is posted to the init error endpoint, and the process exits without asking for an event.

use std::time::Duration;

use storeforward_core::startup::INIT_ERROR_PATH;
use storeforward_core::startup::fake::{RuntimeApi, run};

const FORWARDER: &str = env!("CARGO_BIN_EXE_forwarder");
/// Long enough for the SDK's retries against a closed port; the process is killed after it.
const LIMIT: Duration = Duration::from_secs(30);
const VALID: [(&str, &str); 2] = [
    ("BACKEND_URL", "http://127.0.0.1:9/sales/save-order"),
    ("QUEUE_URL", "http://127.0.0.1:9/000000000000/orders"),
];

/// The init error's message, after checking that it is the only request (no event asked for)
/// and an invalid configuration.
fn the_init_error_message(api: &RuntimeApi) -> String {
    let (error_type, body) = api.only_init_error();
    assert_eq!(error_type, "Runtime.ConfigInvalid");
    assert_eq!(body["errorType"], "Runtime.ConfigInvalid");
    body["errorMessage"]
        .as_str()
        .expect("errorMessage is text")
        .to_owned()
}

#[test]
fn a_bad_variable_is_reported_without_its_secret_value_and_the_process_exits() {
    let api = RuntimeApi::start().unwrap();
    let mut env = VALID.to_vec();
    env.push(("SIGNING_SECRET", "whsec_c2hvcnQ="));

    let exit = api.run(FORWARDER, &env, LIMIT);

    assert!(exit.status.is_some_and(|s| !s.success()), "{exit:?}");
    let message = the_init_error_message(&api);
    assert!(message.contains("SIGNING_SECRET"), "{message}");
    assert!(!message.contains("c2hvcnQ"), "the secret leaked: {message}");
}

#[test]
fn a_secret_that_cannot_be_read_at_init_is_reported_and_the_process_exits() {
    let api = RuntimeApi::start().unwrap();
    // a port that refuses: the secret's service cannot be reached
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut env = VALID.to_vec();
    env.extend([
        (
            "SIGNING_SECRET_ARN",
            "arn:aws:ssm:us-east-1:000000000000:parameter/sf/signing",
        ),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]);

    let exit = api.run(FORWARDER, &env, LIMIT);

    assert!(exit.status.is_some_and(|s| !s.success()), "{exit:?}");
    let message = the_init_error_message(&api);
    assert!(message.contains("SIGNING_SECRET_ARN"), "{message}");
    assert!(message.contains("cannot read it"), "{message}");
}

#[test]
fn without_a_runtime_api_the_error_is_logged_and_the_process_exits() {
    let exit = run(FORWARDER, &[("QUEUE_URL", VALID[1].1)], LIMIT);

    assert!(exit.status.is_some_and(|s| !s.success()), "{exit:?}");
    assert!(exit.stdout.contains("init failed"), "{}", exit.stdout);
    assert!(exit.stdout.contains("BACKEND_URL"), "{}", exit.stdout);
}

#[test]
fn a_good_configuration_asks_for_an_event_and_reports_nothing() {
    // the other tests' "no event asked for" means something only if this one sees it asked
    let api = RuntimeApi::start().unwrap();
    let mut env = VALID.to_vec();
    env.extend([
        ("AWS_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]);

    api.run(FORWARDER, &env, Duration::from_secs(5));

    let requests = api.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.path == "/2018-06-01/runtime/invocation/next"),
        "{requests:?}"
    );
    assert!(
        requests.iter().all(|r| r.path != INIT_ERROR_PATH),
        "{requests:?}"
    );
}
