//! The built `store` binary against a fake Lambda Runtime API on 127.0.0.1: a bad variable is
//! posted to the init error endpoint, and the process exits without asking for an event.

use std::time::Duration;

use storeforward_core::startup::fake::RuntimeApi;

#[test]
fn a_bad_variable_is_reported_and_the_process_exits() {
    let api = RuntimeApi::start().unwrap();
    let env = [
        ("QUEUE_URL", "http://127.0.0.1:9/000000000000/orders"),
        ("RETRY_AFTER_SECONDS", "soon"),
    ];

    let exit = api.run(env!("CARGO_BIN_EXE_store"), &env, Duration::from_secs(30));

    assert!(exit.status.is_some_and(|s| !s.success()), "{exit:?}");
    let (error_type, body) = api.only_init_error();
    assert_eq!(error_type, "Runtime.ConfigInvalid");
    assert_eq!(body["errorType"], "Runtime.ConfigInvalid");
    let message = body["errorMessage"].as_str().unwrap();
    assert!(message.contains("RETRY_AFTER_SECONDS"), "{message}");
}
