//! The reqwest adapter against a real HTTP server on 127.0.0.1.

#![allow(clippy::unwrap_used)] // test helpers may panic

mod support;

use std::time::Duration;

use forwarder::{BackendSettings, HttpBackend, Signer};
use reqwest::Method;
use storeforward_core::batch::{Backend, Message};
use storeforward_core::fakes::message;
use storeforward_core::retry::Attempt;
use storeforward_core::trace::{Span, TraceContext};
use support::{Receiver, Reply};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn settings(url: &str) -> BackendSettings {
    BackendSettings {
        url: url.parse().unwrap(),
        method: Method::POST,
        request_timeout: Duration::from_millis(500),
        connect_timeout: Duration::from_millis(500),
        signer: None,
        health_url: None,
        identity: None,
        extra_roots: Vec::new(),
    }
}

async fn deliver(settings: &BackendSettings) -> Attempt {
    send(&HttpBackend::new(settings).unwrap(), &message("m1", None)).await
}

/// One delivery of `m` in its attempt span, as the batch makes it.
async fn send(backend: &HttpBackend, m: &Message) -> Attempt {
    backend.deliver(m, &m.attempt_trace().context()).await
}

/// What `attempt` gives, checked to come well within the backend's 30 s hang.
async fn cut_short<T>(attempt: impl std::future::Future<Output = T>) -> T {
    let started = std::time::Instant::now();
    let got = attempt.await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    got
}

#[tokio::test]
async fn delivers_the_body_byte_identical_with_its_headers() {
    let rx = Receiver::start().await;
    let backend = HttpBackend::new(&settings(&rx.url("/sales/save-order"))).unwrap();
    let mut m = message("m1", None);
    m.body =
        "{\r\n \"note\": \"caf\u{e9} \\u00e9\", \"big\": 123456789012345678901234567890 }".into();
    m.envelope.content_type = "application/json; charset=utf-8".into();
    m.envelope.trace_header = Some("Root=1-abc".into());

    let attempt = send(&backend, &m).await;
    assert_eq!(
        attempt,
        Attempt::Response {
            status: 200,
            retry_after: None
        }
    );
    let got = &rx.received()[0];
    assert_eq!(got.method, Method::POST);
    assert_eq!(got.body.as_ref(), m.body.as_bytes());
    assert_eq!(
        got.headers["content-type"],
        "application/json; charset=utf-8"
    );
    assert_eq!(got.headers["idempotency-key"], "key-m1");
    assert_eq!(got.headers["x-amzn-trace-id"], "Root=1-abc");
    assert!(
        got.headers.get("webhook-signature").is_none(),
        "unsigned without a secret"
    );
}

#[tokio::test]
async fn each_attempt_sends_its_own_child_span_and_the_tracestate_unchanged() {
    let rx = Receiver::start().await;
    let backend = HttpBackend::new(&settings(&rx.url("/"))).unwrap();
    let mut m = message("m1", None);
    m.envelope.trace_context = TraceContext::from_headers(
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        Some("rojo=1,congo=2"),
    );
    send(&backend, &m).await;
    m.receive_count = 2;
    send(&backend, &m).await;
    let got = rx.received();
    let sent: Vec<TraceContext> = got
        .iter()
        .map(|r| {
            let state = r.headers["tracestate"].to_str().unwrap();
            TraceContext::from_headers(r.headers["traceparent"].to_str().unwrap(), Some(state))
                .unwrap()
        })
        .collect();
    for (context, receive_count) in sent.iter().zip([1, 2]) {
        assert_eq!(
            context.parent.trace_id.to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(context.state.as_deref(), Some("rojo=1,congo=2"));
        let expected = Span::attempt(m.envelope.trace_context.as_ref(), "m1", receive_count);
        assert_eq!(context.parent.parent_id, expected.span_id);
    }
    assert_ne!(sent[0].parent.parent_id, sent[1].parent.parent_id);

    let mut foreign = message("m2", None);
    foreign.envelope.trace_context = None;
    send(&backend, &foreign).await;
    let last = &rx.received()[2];
    assert_eq!(
        last.headers["traceparent"],
        foreign.attempt_trace().context().parent.to_string()
    );
    assert!(last.headers.get("tracestate").is_none());
}

#[tokio::test]
async fn statuses_and_retry_after_are_reported_as_seen() {
    let rx = Receiver::start().await;
    rx.script([
        Reply::Status(503),
        Reply::RetryAfter(429, "17".into()),
        Reply::RetryAfter(503, "Wed, 21 Oct 2015 07:28:00 GMT".into()),
        Reply::Status(404),
    ]);
    let s = settings(&rx.url("/"));
    assert_eq!(
        deliver(&s).await,
        Attempt::Response {
            status: 503,
            retry_after: None
        }
    );
    assert_eq!(
        deliver(&s).await,
        Attempt::Response {
            status: 429,
            retry_after: Some(Duration::from_secs(17))
        }
    );
    assert_eq!(
        deliver(&s).await,
        Attempt::Response {
            status: 503,
            retry_after: Some(Duration::ZERO)
        },
        "an HTTP-date in the past means no wait"
    );
    assert_eq!(
        deliver(&s).await,
        Attempt::Response {
            status: 404,
            retry_after: None
        }
    );
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let rx = Receiver::start().await;
    rx.script([Reply::Redirect(rx.url("/elsewhere"))]);
    let attempt = deliver(&settings(&rx.url("/sales/save-order"))).await;
    assert_eq!(
        attempt,
        Attempt::Response {
            status: 302,
            retry_after: None
        }
    );
    assert_eq!(
        rx.received().len(),
        1,
        "the redirect target was never called"
    );
}

#[tokio::test]
async fn a_hanging_backend_is_cut_at_the_request_timeout() {
    let rx = Receiver::start().await;
    rx.script([Reply::Hang(Duration::from_secs(30))]);
    let attempt = cut_short(deliver(&settings(&rx.url("/")))).await;
    assert_eq!(attempt, Attempt::Timeout);
}

#[tokio::test]
async fn a_hanging_health_check_is_cut_at_the_request_timeout() {
    let rx = Receiver::start().await;
    rx.script([Reply::Hang(Duration::from_secs(30))]);
    let mut s = settings(&rx.url("/"));
    s.health_url = Some(rx.url("/health").parse().unwrap());
    let attempt = cut_short(HttpBackend::new(&s).unwrap().health()).await;
    assert_eq!(attempt, Some(Attempt::Timeout));
}

#[tokio::test]
async fn a_closed_port_is_a_connection_failure() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let attempt = deliver(&settings(&format!("http://127.0.0.1:{port}/"))).await;
    assert!(matches!(attempt, Attempt::Connection(_)), "{attempt:?}");
}

#[tokio::test]
async fn signatures_verify_with_an_independent_standard_webhooks_implementation() {
    let rx = Receiver::start().await;
    let mut s = settings(&rx.url("/"));
    s.signer = Some(Signer::from_secret(SECRET).unwrap());
    s.method = Method::PUT;
    assert!(matches!(
        deliver(&s).await,
        Attempt::Response { status: 200, .. }
    ));

    let got = &rx.received()[0];
    assert_eq!(got.method, Method::PUT);
    assert_eq!(got.headers["webhook-id"], "key-m1");
    let verifier = standardwebhooks::Webhook::new(SECRET).unwrap();
    verifier
        .verify(&got.body, &got.headers)
        .expect("signature verifies");

    let mut tampered = got.body.to_vec();
    tampered.push(b' ');
    assert!(
        verifier.verify(&tampered, &got.headers).is_err(),
        "a changed body must not verify"
    );
}

#[test]
fn secrets_must_be_base64_of_a_useful_length() {
    assert!(Signer::from_secret(SECRET).is_ok());
    assert!(Signer::from_secret(SECRET.trim_start_matches("whsec_")).is_ok());
    assert!(Signer::from_secret("whsec_%%%").is_err());
    assert!(Signer::from_secret("whsec_c2hvcnQ=").is_err());
}

#[tokio::test]
async fn the_health_check_gets_the_health_url_and_is_absent_without_one() {
    let rx = Receiver::start().await;
    let without = HttpBackend::new(&settings(&rx.url("/sales/save-order"))).unwrap();
    assert_eq!(without.health().await, None);

    let mut s = settings(&rx.url("/sales/save-order"));
    s.health_url = Some(rx.url("/health").parse().unwrap());
    let attempt = HttpBackend::new(&s).unwrap().health().await;
    assert_eq!(
        attempt,
        Some(Attempt::Response {
            status: 200,
            retry_after: None
        })
    );
    let got = &rx.received()[0];
    assert_eq!(
        (got.method.clone(), got.path.as_str()),
        (Method::GET, "/health")
    );
    assert!(
        got.headers.get("traceparent").is_none(),
        "no delivery, no attempt span"
    );
}

/// Each delivery in flight holds this future (100 at the default `MAX_IN_FLIGHT` of a
/// 1,000-record batch): the rare calls behind a delivery, fetching an OAuth2 token and
/// re-reading a refused secret from Secrets Manager (SDK futures of kilobytes), are boxed, so
/// that it stays the size of the HTTP request's.
#[test]
fn a_delivery_does_not_carry_the_futures_of_its_rare_calls() {
    let backend = HttpBackend::new(&settings("http://127.0.0.1:9/")).unwrap();
    let message = message("m1", None);
    let size =
        std::mem::size_of_val(&backend.deliver(&message, &message.attempt_trace().context()));
    assert!(size < 1024, "a delivery's future is {size} bytes");
}
