//! The store's entry point, [`store::invoke`], fed the events API Gateway and function URLs
//! deliver (the fixtures the AWS Lambda Rust runtime publishes, see `fixtures/README.md`), as they
//! are and mutated: hosts, schemes, header names and values, paths, queries, bodies and fields.
//! Every event gets a status and code of the README's store API table, as JSON in its payload's
//! shape with `X-Request-Id` and a metrics document, and nothing is stored unless it is a 202.

#![allow(clippy::unwrap_used)]

use std::panic::{AssertUnwindSafe, catch_unwind};

use lambda_http::{Context, LambdaEvent};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use store::App;
use storeforward_core::fakes::FakeStorage;
use storeforward_core::order::{DEFAULT_MAX_MESSAGE_BYTES, Order, OrderRules};

const REST: &str = include_str!("fixtures/apigw-rest-request.json");
const HTTP_API: &str = include_str!("fixtures/apigw-v2-request.json");
const FUNCTION_URL: &str = include_str!("fixtures/lambda-function-url-request.json");
const HTTP_API_IAM: &str = include_str!("fixtures/apigw-v2-request-iam.json");
const HTTP_API_JWT: &str = include_str!("fixtures/apigw-v2-request-jwt-authorizer.json");
const FUNCTION_URL_IAM: &str = include_str!("fixtures/lambda-function-url-request-iam.json");
const ORDER_PATH: &str = "/orders/new-order";
const ORDER: &str = r#"{"id":"o-1","qty":2}"#;
const LAMBDA_REQUEST_ID: &str = "lambda-invocation-id";
const LAMBDA_TRACE: &str = "Root=1-65f0c2a1-0123456789abcdef01234567;Sampled=1";

/// The README's store API table: each status with its codes (`None` for a 202).
const DOCUMENTED: &[(u16, &[&str])] = &[
    (202, &[]),
    (
        400,
        &[
            "malformed_json",
            "not_an_object",
            "too_deep",
            "empty_body",
            "invalid_utf8",
            "invalid_header",
            "unstorable_character",
            "duplicate_member",
            "malformed_request",
        ],
    ),
    (404, &["not_found"]),
    (405, &["method_not_allowed"]),
    (413, &["payload_too_large"]),
    (415, &["unsupported_media_type"]),
    (422, &["schema_violation"]),
    (503, &["storage_unavailable"]),
];

/// What the store answered to one event.
#[derive(Debug)]
struct Answered {
    status: u16,
    /// Lower-case names, each with its first value.
    headers: Map<String, Value>,
    body: Value,
    /// In the shape of payload 2.0 (`cookies`, no `multiValueHeaders`).
    http_shape: bool,
    metrics: Value,
    stored: Vec<Order>,
}

impl Answered {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(Value::as_str)
    }
}

/// One of the fixtures, with what the answer must carry.
struct Fixture {
    name: &'static str,
    event: Value,
    http: bool,
    request_id: &'static str,
}

/// Each fixture as an order: `POST /orders/new-order`, `application/json`, [`ORDER`].
fn fixtures() -> Vec<Fixture> {
    let mut rest: Value = serde_json::from_str(REST).unwrap();
    rest["httpMethod"] = json!("POST");
    rest["path"] = json!(ORDER_PATH);
    rest["body"] = json!(ORDER);
    let http = |text: &str| {
        let mut event: Value = serde_json::from_str(text).unwrap();
        event["rawPath"] = json!(ORDER_PATH);
        event["requestContext"]["http"]["method"] = json!("POST");
        event["requestContext"]["http"]["path"] = json!(ORDER_PATH);
        event["body"] = json!(ORDER);
        event
    };
    let mut fixtures = vec![
        Fixture {
            name: "REST API",
            event: rest,
            http: false,
            request_id: "deef4878-7910-11e6-8f14-25afc3e9ae33",
        },
        Fixture {
            name: "HTTP API",
            event: http(HTTP_API),
            http: true,
            request_id: "LV7fzho-PHcEJPw=",
        },
        Fixture {
            name: "function URL",
            event: http(FUNCTION_URL),
            http: true,
            request_id: "MIZRNhJtIAMEMDw=",
        },
        // The authorized forms of the cheaper ingresses (infra/ingress.tf): what the event
        // carries about the caller must not make it unreadable.
        Fixture {
            name: "HTTP API, IAM",
            event: http(HTTP_API_IAM),
            http: true,
            request_id: "id",
        },
        Fixture {
            name: "HTTP API, JWT",
            event: http(HTTP_API_JWT),
            http: true,
            request_id: "id",
        },
        Fixture {
            name: "function URL, AWS_IAM",
            event: http(FUNCTION_URL_IAM),
            http: true,
            request_id: "id",
        },
    ];
    for fixture in &mut fixtures {
        set_header(&mut fixture.event, "Content-Type", "application/json");
    }
    fixtures
}

/// `event` with header `name` set to `value`, as [`set_header`] sets it.
fn with_header(event: &Value, name: &str, value: &str) -> Value {
    let mut event = event.clone();
    set_header(&mut event, name, value);
    event
}

/// Sets header `name` (replacing it in any case) in `headers` and, for payload 1.0,
/// `multiValueHeaders`.
fn set_header(event: &mut Value, name: &str, value: &str) {
    remove_header(event, name);
    if let Some(headers) = event["headers"].as_object_mut() {
        headers.insert(name.into(), json!(value));
    }
    if let Some(headers) = event["multiValueHeaders"].as_object_mut() {
        headers.insert(name.into(), json!([value]));
    }
}

fn remove_header(event: &mut Value, name: &str) {
    for field in ["headers", "multiValueHeaders"] {
        if let Some(headers) = event[field].as_object_mut() {
            headers.retain(|k, _| !k.eq_ignore_ascii_case(name));
        }
    }
}

/// The path, in the field of the event's payload version.
fn set_path(event: &mut Value, path: &str) {
    let field = if event.get("rawPath").is_some() {
        "rawPath"
    } else {
        "path"
    };
    event[field] = json!(path);
}

/// The query, raw for payload 2.0, as a parameter `q` for 1.0.
fn set_query(event: &mut Value, query: &str) {
    if event.get("rawQueryString").is_some() {
        event["rawQueryString"] = json!(query);
    } else {
        event["queryStringParameters"] = json!({ "q": query });
        event["multiValueQueryStringParameters"] = json!({ "q": [query] });
    }
}

/// The event through [`store::invoke`] as the Lambda runtime hands it over, with a fresh app;
/// a panic fails the test naming `what`.
fn invoke(what: &str, event: &Value) -> Answered {
    let app = App {
        primary: FakeStorage::up("m"),
        failover: None,
        rules: OrderRules {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            schema: None,
            fifo: None,
        },
        order_path: ORDER_PATH.into(),
        retry_after_secs: 1,
    };
    let payload = RawValue::from_string(event.to_string()).unwrap();
    let mut context = Context::default();
    context.request_id = LAMBDA_REQUEST_ID.into();
    context.xray_trace_id = Some(LAMBDA_TRACE.into());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (answer, metrics) = catch_unwind(AssertUnwindSafe(|| {
        runtime.block_on(store::invoke(&app, LambdaEvent::new(payload, context)))
    }))
    .unwrap_or_else(|_| panic!("{what}: the store panicked"));

    let answer = serde_json::to_value(&answer).unwrap();
    let mut headers = Map::new();
    for (name, value) in answer["headers"].as_object().into_iter().flatten() {
        headers.insert(name.to_ascii_lowercase(), value.clone());
    }
    for (name, values) in answer["multiValueHeaders"]
        .as_object()
        .into_iter()
        .flatten()
    {
        headers.insert(name.to_ascii_lowercase(), values[0].clone());
    }
    let body = answer["body"].as_str().unwrap_or_default();
    Answered {
        status: answer["statusCode"].as_u64().unwrap() as u16,
        headers,
        body: serde_json::from_str(body).unwrap_or(Value::Null),
        http_shape: answer.get("cookies").is_some(),
        metrics: metrics.map_or(Value::Null, |m| serde_json::from_str(&m.render(0)).unwrap()),
        stored: app.primary.stored(),
    }
}

/// What every answer must be, whatever the event: documented, JSON, named, counted, and stored
/// if and only if it is a 202.
fn ensure_documented(what: &str, a: &Answered) {
    let codes = DOCUMENTED
        .iter()
        .find(|(status, _)| *status == a.status)
        .map(|(_, codes)| *codes);
    let Some(codes) = codes else {
        panic!("{what}: undocumented status {} {:?}", a.status, a.body);
    };
    assert!(
        codes.is_empty() || codes.contains(&a.code()),
        "{what}: {} with undocumented code {:?}",
        a.status,
        a.body
    );
    assert_eq!(a.header("content-type"), Some("application/json"), "{what}");
    if a.status != 202 {
        assert!(
            a.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}: {:?}",
            a.body
        );
    }
    let id = a.header("x-request-id");
    assert!(
        id.is_some_and(|id| !id.is_empty()),
        "{what}: no X-Request-Id"
    );
    assert_eq!(a.metrics["RequestId"].as_str(), id, "{what}: metrics");
    assert_eq!(a.stored.len(), usize::from(a.status == 202), "{what}");
}

/// `event` must be stored and answered 202 in the fixture's shape.
fn ensure_accepted(what: &str, fixture: &Fixture, event: &Value) -> Answered {
    let what = format!("{}: {what}", fixture.name);
    let a = invoke(&what, event);
    ensure_documented(&what, &a);
    assert_eq!(a.status, 202, "{what}: {:?}", a.body);
    assert_eq!(a.http_shape, fixture.http, "{what}: shape");
    a
}

/// `event` must be rejected with `status` and `code`, in the fixture's shape, naming its request.
fn ensure_rejected(what: &str, fixture: &Fixture, event: &Value, status: u16, code: &str) {
    let what = format!("{}: {what}", fixture.name);
    let a = invoke(&what, event);
    ensure_documented(&what, &a);
    assert_eq!((a.status, a.code()), (status, code), "{what}: {:?}", a.body);
    assert_eq!(a.http_shape, fixture.http, "{what}: shape");
    assert_eq!(a.metrics["Reason"].as_str(), Some(code), "{what}: metrics");
}

#[test]
fn every_fixture_is_stored_and_answered_in_its_own_shape() {
    for fixture in fixtures() {
        let a = ensure_accepted("as published", &fixture, &fixture.event);
        let stored = &a.stored[..];
        assert_eq!(stored.len(), 1, "{}", fixture.name);
        assert_eq!(stored[0].body, ORDER, "{}", fixture.name);
        // The invocation's trace, not the one in the event's headers.
        let trace = stored[0].envelope.trace_header.as_deref();
        assert_eq!(trace, Some(LAMBDA_TRACE), "{}", fixture.name);
        assert_eq!(a.header("x-request-id"), Some(fixture.request_id));
        assert_eq!(a.metrics["Accepted"], 1, "{}", fixture.name);
    }
}

#[test]
fn without_a_gateway_request_id_the_answer_names_the_invocation() {
    for mut fixture in fixtures() {
        fixture.event["requestContext"]
            .as_object_mut()
            .unwrap()
            .remove("requestId");
        let a = ensure_accepted("no requestId", &fixture, &fixture.event);
        assert_eq!(a.header("x-request-id"), Some(LAMBDA_REQUEST_ID));
    }
}

#[test]
fn hosts_that_name_no_server_are_400_invalid_header() {
    let long_label = format!("{}.com", "a".repeat(64));
    let long_name = format!("{}.com", "abcdefghi.".repeat(25));
    let bad = [
        "",
        " ",
        "a b",
        " example.com",
        "example.com ",
        "exa\tmple.com",
        "bücher.de",
        "例え.jp",
        "😀",
        "example.com:99999",
        "example.com:65536",
        "example.com:port",
        "example.com:",
        "example.com:-1",
        "example.com:+443",
        "example.com:443:443",
        "[::1",
        "::1",
        "[zz::1]",
        "[::1]:x",
        "user@example.com",
        "example.com/path",
        "example.com?q",
        "example.com#f",
        "a{b}.com",
        "a%41.com",
        "a..b",
        ".",
        "..",
        "1.2.3.999",
        "1.2.3",
        "a.123",
        "01.2.3.4",
        "a,b",
        "example.com, example.org",
        long_label.as_str(),
        long_name.as_str(),
    ];
    for fixture in fixtures() {
        for host in bad {
            let mut event = with_header(&fixture.event, "Host", host);
            ensure_rejected(
                &format!("Host {host:?}"),
                &fixture,
                &event,
                400,
                "invalid_header",
            );

            // No Host header: the domain name API Gateway or the function URL reports.
            remove_header(&mut event, "Host");
            event["requestContext"]["domainName"] = json!(host);
            let what = format!("domainName {host:?}");
            ensure_rejected(&what, &fixture, &event, 400, "invalid_header");
        }
    }
}

#[test]
fn hosts_as_clients_name_servers_are_accepted() {
    for fixture in fixtures() {
        for host in [
            "example.com",
            "EXAMPLE.com.",
            "localhost",
            "127.0.0.1:4566",
            "[::1]",
            "[2001:db8::1]:443",
            "my_host.internal:8080",
            "xn--bcher-kva.de",
            "a-b.c-d.example",
            "x.0x1",
        ] {
            let event = with_header(&fixture.event, "Host", host);
            ensure_accepted(&format!("Host {host:?}"), &fixture, &event);
        }
        // No host at all names no wrong one.
        let mut event = fixture.event.clone();
        remove_header(&mut event, "Host");
        event["requestContext"]
            .as_object_mut()
            .unwrap()
            .remove("domainName");
        ensure_accepted("no host", &fixture, &event);
    }
}

#[test]
fn a_second_host_is_400_invalid_header() {
    let fixture = &fixtures()[0];
    let mut event = fixture.event.clone();
    remove_header(&mut event, "Host");
    event["multiValueHeaders"]["Host"] = json!(["example.com", "example.org"]);
    ensure_rejected("two Host headers", fixture, &event, 400, "invalid_header");
}

#[test]
fn schemes_other_than_http_and_https_are_400_invalid_header() {
    for fixture in fixtures() {
        for proto in [
            "",
            "ftp",
            "javascript",
            "ht tp",
            "https, http",
            "1https",
            "https:",
        ] {
            let event = with_header(&fixture.event, "X-Forwarded-Proto", proto);
            let what = format!("X-Forwarded-Proto {proto:?}");
            ensure_rejected(&what, &fixture, &event, 400, "invalid_header");
        }
        for proto in ["https", "http", "HTTPS"] {
            let event = with_header(&fixture.event, "X-Forwarded-Proto", proto);
            ensure_accepted(&format!("X-Forwarded-Proto {proto:?}"), &fixture, &event);
        }
    }
}

#[test]
fn header_names_and_values_http_forbids_are_400_invalid_header() {
    for fixture in fixtures() {
        for (name, value) in [
            ("X-Note", "a\u{0}b"),
            ("X-Note", "a\u{1}b"),
            ("X-Note", "a\nb"),
            ("X-Note", "a\r\nX-Injected: 1"),
            ("X-Note", "a\u{7f}b"),
            ("Host", "example.com\r\n"),
            ("Idempotency-Key", "k\u{1b}"),
            ("bad name", "v"),
            ("", "v"),
            ("a:b", "v"),
            ("ü", "v"),
            ("(x)", "v"),
        ] {
            let event = with_header(&fixture.event, name, value);
            let what = format!("header {name:?}: {value:?}");
            ensure_rejected(&what, &fixture, &event, 400, "invalid_header");
            let a = invoke(&what, &event);
            assert!(
                a.body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("{name:?}")),
                "{what}: {:?}",
                a.body
            );
        }
    }
}

#[test]
fn events_that_are_no_request_are_400_malformed_request_in_their_own_shape() {
    type Mutation = fn(&mut Value);
    let mutations: [(&str, Mutation); 10] = [
        ("no requestContext", |e| {
            e.as_object_mut().unwrap().remove("requestContext");
        }),
        ("requestContext null", |e| e["requestContext"] = Value::Null),
        ("requestContext a string", |e| {
            e["requestContext"] = json!("x")
        }),
        ("no method", |e| {
            e.as_object_mut().unwrap().remove("httpMethod");
            e["requestContext"].as_object_mut().unwrap().remove("http");
        }),
        ("a method with a space", |e| {
            e["httpMethod"] = json!("PO ST");
            e["requestContext"]["http"]["method"] = json!("PO ST");
        }),
        ("headers a string", |e| e["headers"] = json!("Host: x")),
        ("a body that is a number", |e| e["body"] = json!(42)),
        ("isBase64Encoded a string", |e| {
            e["isBase64Encoded"] = json!("yes");
        }),
        ("a base64 body that is not", |e| {
            e["isBase64Encoded"] = json!(true);
            e["body"] = json!("{not base64}");
        }),
        ("a truncated base64 body", |e| {
            e["isBase64Encoded"] = json!(true);
            e["body"] = json!("eyJ4Ijo");
        }),
    ];
    for fixture in fixtures() {
        for (what, mutate) in mutations {
            let mut event = fixture.event.clone();
            mutate(&mut event);
            ensure_rejected(what, &fixture, &event, 400, "malformed_request");
        }
    }
    // Not even an object: payload 1.0's shape, the invocation's id.
    for event in [json!({}), json!([]), json!("x"), json!(null), json!(42)] {
        let what = event.to_string();
        let a = invoke(&what, &event);
        ensure_documented(&what, &a);
        assert_eq!((a.status, a.code()), (400, "malformed_request"), "{what}");
        assert_eq!(a.header("x-request-id"), Some(LAMBDA_REQUEST_ID), "{what}");
        assert!(!a.http_shape, "{what}");
    }
}

#[test]
fn paths_and_queries_are_routed_as_text() {
    for fixture in fixtures() {
        for path in [
            "/orders/new-order%zz",
            "/orders/new%2Dorder",
            "/orders/new order",
            "/orders/ü",
            "/orders/new-order?",
            "/orders/new-order#",
            "orders/new-order",
            "//orders/new-order",
            "",
            "%",
            "\u{0}",
            ":99999",
            "@evil.example",
        ] {
            let mut event = fixture.event.clone();
            set_path(&mut event, path);
            ensure_rejected(
                &format!("path {path:?}"),
                &fixture,
                &event,
                404,
                "not_found",
            );
        }
        // The store reads no query: whatever it holds, the order is taken.
        for query in ["a=%zz", "%", "a b=ü", "a=1&a=2", "\u{0}\r\n", "#?#", "&&=="] {
            let mut event = fixture.event.clone();
            set_query(&mut event, query);
            ensure_accepted(&format!("query {query:?}"), &fixture, &event);
        }
    }
}

/// Every character from U+0000 to U+00FF, and a few beyond, put in the middle of each part of
/// each fixture the caller or API Gateway shapes: whatever the answer, it is documented.
#[test]
fn no_character_anywhere_escapes_the_documented_answers() {
    type Place = fn(&mut Value, &str);
    let places: [(&str, Place); 11] = [
        ("Host", |e, c| {
            set_header(e, "Host", &format!("ex{c}ample.com"))
        }),
        ("domainName", |e, c| {
            remove_header(e, "Host");
            e["requestContext"]["domainName"] = json!(format!("ex{c}ample.com"));
        }),
        ("X-Forwarded-Proto", |e, c| {
            set_header(e, "X-Forwarded-Proto", &format!("ht{c}tps"));
        }),
        ("Content-Type", |e, c| {
            set_header(e, "Content-Type", &format!("application/json{c}"));
        }),
        ("Idempotency-Key", |e, c| {
            set_header(e, "Idempotency-Key", &format!("key{c}1"));
        }),
        ("a header value", |e, c| {
            set_header(e, "X-Note", &format!("a{c}b"))
        }),
        ("a header name", |e, c| {
            set_header(e, &format!("X-N{c}te"), "v")
        }),
        ("the path", |e, c| {
            set_path(e, &format!("/orders/new{c}order"))
        }),
        ("the query", |e, c| set_query(e, &format!("a={c}"))),
        ("the stage", |e, c| e["requestContext"]["stage"] = json!(c)),
        ("the body", |e, c| {
            e["body"] = json!(format!(r#"{{"id":"o{c}1"}}"#));
        }),
    ];
    let characters = (0..=0xFF_u32)
        .chain([0x2028, 0xFEFF, 0xFFFD, 0xFFFF, 0x1F600])
        .filter_map(char::from_u32);
    let mut answers = 0;
    for c in characters {
        for fixture in fixtures() {
            for (place, put) in places {
                let mut event = fixture.event.clone();
                put(&mut event, &c.to_string());
                let what = format!("{}: U+{:04X} in {place}", fixture.name, c as u32);
                ensure_documented(&what, &invoke(&what, &event));
                answers += 1;
            }
        }
    }
    assert_eq!(answers, 261 * fixtures().len() * 11);
}
