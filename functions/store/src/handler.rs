//! HTTP ⇄ domain: routes the request, asks the order rules, stores, and answers.

use lambda_http::http::header::{ALLOW, CONTENT_TYPE, HOST, HeaderValue, RETRY_AFTER};
use lambda_http::http::{HeaderMap, Method, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::{Value, json};
use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{SystemTime, UNIX_EPOCH};
use storeforward_core::metrics::Document;
use storeforward_core::order::{Incoming, OrderRules, Rejection, Storage, store_with_failover};
use tracing::{error, info};

use crate::event::Unreadable;

/// The store's dependencies, built once at cold start.
#[derive(Debug)]
pub struct App<S> {
    pub primary: S,
    pub failover: Option<S>,
    pub rules: OrderRules,
    /// The route that accepts orders, without the API stage.
    pub order_path: String,
    /// Seconds a `503` asks the caller to wait.
    pub retry_after_secs: u32,
}

/// What became of a request, for the metrics; every response carries one as an extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    Accepted { failover: bool },
    Rejected(&'static str),
    StorageUnavailable,
}

impl Recorded {
    /// The request's EMF document: `Accepted` and `FailoverUsed`, `Rejected` (also by `Reason`),
    /// or `StorageErrors`.
    pub fn document(self, function_name: &str) -> Document {
        let doc = Document::new(function_name);
        match self {
            Self::Accepted { failover } => doc
                .count("Accepted", 1)
                .count("FailoverUsed", usize::from(failover)),
            Self::Rejected(code) => doc.dimension("Reason", code).count("Rejected", 1),
            Self::StorageUnavailable => doc.count("StorageErrors", 1),
        }
    }
}

/// The response header that names the request (API Gateway's request id, else the Lambda
/// invocation's): the caller can quote it, and the request's metrics document carries it.
pub const REQUEST_ID: &str = "x-request-id";

/// Handles one request. Every answer is JSON and names its request ([`REQUEST_ID`]); nothing
/// here panics or fails the invocation.
pub async fn handle<S: Storage>(app: &App<S>, req: Request) -> Response<Body> {
    let id = request_id(&req);
    let mut response = answer(app, req).await;
    if let Some(value) = id.and_then(|id| HeaderValue::from_str(&id).ok()) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

async fn answer<S: Storage>(app: &App<S>, req: Request) -> Response<Body> {
    if let Some(why) = req.extensions().get::<Unreadable>() {
        return error(StatusCode::BAD_REQUEST, why.code, &why.message, Value::Null);
    }
    if let Err(message) = check_host_and_scheme(&req) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_header",
            &message,
            Value::Null,
        );
    }
    let path = route_path(&req);
    if path.trim_end_matches('/') != app.order_path {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no route for {path}"),
            Value::Null,
        );
    }
    if req.method() != Method::POST {
        let mut response = error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            &format!("{} is not allowed here; use POST", req.method()),
            Value::Null,
        );
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
        return response;
    }

    let headers = req.headers();
    let content_type = header(headers, "content-type");
    let idempotency_key = header(headers, "idempotency-key");
    let group_id = header(headers, "x-message-group-id");
    let incoming = Incoming {
        content_type: content_type.as_deref(),
        body: req.body().as_ref(),
        idempotency_key: idempotency_key.as_deref(),
        group_id: group_id.as_deref(),
        request_id: request_id(&req),
        trace_header: header(headers, "x-amzn-trace-id").map(Cow::into_owned),
        received_at_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    };
    let order = match app
        .rules
        .accept(&incoming, || uuid::Uuid::new_v4().to_string())
    {
        Ok(order) => order,
        Err(rejection) => return rejected(&rejection),
    };
    let key = &order.envelope.idempotency_key;

    match store_with_failover(&order, &app.primary, app.failover.as_ref()).await {
        Ok(stored) => {
            let storage = if stored.failover {
                "failover"
            } else {
                "primary"
            };
            info!(message_id = %stored.message_id, idempotency_key = %key, storage, "order stored");
            let mut response = json_response(
                StatusCode::ACCEPTED,
                &json!({
                    "status": "accepted",
                    "messageId": stored.message_id,
                    "idempotencyKey": key,
                    "storage": storage,
                }),
            );
            response.extensions_mut().insert(Recorded::Accepted {
                failover: stored.failover,
            });
            response
        }
        Err(e) => {
            error!(error = %e, idempotency_key = %key, "order NOT stored: storage unavailable");
            let mut response = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                "the order could not be stored; it was not accepted, retry later",
                Value::Null,
            );
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(app.retry_after_secs));
            response
                .extensions_mut()
                .insert(Recorded::StorageUnavailable);
            response
        }
    }
}

/// The host the request names, its `Host` header or else the domain name API Gateway reports, must
/// be one [`is_host`] allows, and `X-Forwarded-Proto`, if any, `http` or `https`: a request that
/// is wrong about where it went is answered before it is routed.
fn check_host_and_scheme(req: &Request) -> Result<(), String> {
    let headers = req.headers();
    let mut hosts = headers.get_all(HOST).iter();
    let host = match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => return Err("the request has more than one Host header".into()),
        (Some(host), None) => Some(String::from_utf8_lossy(host.as_bytes())),
        (None, _) => domain_name(req).map(Cow::Borrowed),
    };
    if let Some(host) = host.filter(|h| !is_host(h)) {
        return Err(format!(
            "Host {host:?} is not a host name, IPv4 or [IPv6] address with an optional port"
        ));
    }
    let scheme = headers.get_all("x-forwarded-proto").iter().find(|proto| {
        !proto.as_bytes().eq_ignore_ascii_case(b"https")
            && !proto.as_bytes().eq_ignore_ascii_case(b"http")
    });
    match scheme {
        Some(proto) => Err(format!(
            "X-Forwarded-Proto {:?} is neither http nor https",
            String::from_utf8_lossy(proto.as_bytes())
        )),
        None => Ok(()),
    }
}

/// `host[:port]` as RFC 9110 lets a client name a server, as the DNS and IP know them: a name
/// of dot-separated labels of 1 to 63 letters, digits, hyphens and underscores (at most 253
/// characters, a trailing dot allowed) that does not end in a number, a dotted IPv4 address, or
/// a bracketed IPv6 address; the port, if given, is a number up to 65535.
fn is_host(authority: &str) -> bool {
    let (host, port) = match authority.rsplit_once(':') {
        // The colons of an IPv6 address without a port are not a port's.
        Some((host, port)) if !host.starts_with('[') || host.ends_with(']') => (host, Some(port)),
        _ => (authority, None),
    };
    let port_ok = port.is_none_or(|p| {
        (1..=5).contains(&p.len())
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u16>().is_ok()
    });
    let host_ok = if let Some(ip) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        ip.parse::<Ipv6Addr>().is_ok()
    } else {
        let name = host.strip_suffix('.').unwrap_or(host);
        let last = name.rsplit('.').next().unwrap_or_default();
        if last.bytes().all(|b| b.is_ascii_digit()) {
            name.parse::<Ipv4Addr>().is_ok()
        } else {
            name.len() <= 253
                && name.split('.').all(|label| {
                    (1..=63).contains(&label.len())
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                })
        }
    };
    port_ok && host_ok
}

fn domain_name(req: &Request) -> Option<&str> {
    match req.request_context_ref()? {
        RequestContext::ApiGatewayV1(c) => c.domain_name.as_deref(),
        RequestContext::ApiGatewayV2(c) => c.domain_name.as_deref(),
        _ => None,
    }
}

/// A header as text; bytes that are not UTF-8 survive as U+FFFD, so validation rejects them.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<Cow<'a, str>> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()))
}

/// The request path without the API stage: REST APIs (v1) report it without, HTTP APIs (v2)
/// with a named stage in front.
fn route_path(req: &Request) -> &str {
    let path = req.raw_http_path();
    let stage = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(c)) => c.stage.as_deref(),
        Some(RequestContext::ApiGatewayV2(c)) => c.stage.as_deref(),
        _ => None,
    };
    stage
        .filter(|s| *s != "$default")
        .and_then(|s| path.strip_prefix('/')?.strip_prefix(s))
        .filter(|rest| rest.starts_with('/'))
        .unwrap_or(path)
}

fn request_id(req: &Request) -> Option<String> {
    let gateway = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(c)) => c.request_id.clone(),
        Some(RequestContext::ApiGatewayV2(c)) => c.request_id.clone(),
        _ => None,
    };
    gateway.or_else(|| req.lambda_context_ref().map(|c| c.request_id.clone()))
}

fn rejected(rejection: &Rejection) -> Response<Body> {
    info!(code = rejection.code(), status = rejection.status(), reason = %rejection, "order rejected");
    let details: Vec<Value> = rejection
        .violations()
        .iter()
        .map(|v| json!({"path": v.path, "message": v.message}))
        .collect();
    let status = StatusCode::from_u16(rejection.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let details = if details.is_empty() {
        Value::Null
    } else {
        Value::Array(details)
    };
    error(status, rejection.code(), &rejection.to_string(), details)
}

fn error(status: StatusCode, code: &'static str, message: &str, details: Value) -> Response<Body> {
    let mut error = json!({"code": code, "message": message});
    if !details.is_null() {
        error["details"] = details;
    }
    let mut response = json_response(status, &json!({ "error": error }));
    response.extensions_mut().insert(Recorded::Rejected(code));
    response
}

fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::request::from_str;
    use serde_json::Map;
    use storeforward_core::fakes::FakeStorage;
    use storeforward_core::order::DEFAULT_MAX_MESSAGE_BYTES;

    const REST: &str = include_str!("../tests/fixtures/apigw-rest-request.json");
    const V2: &str = include_str!("../tests/fixtures/apigw-v2-request.json");
    const ORDER: &str = "{\r\n\t\"id\": \"o-1\", \"qty\": 2\r\n}";

    fn app(primary: FakeStorage, failover: Option<FakeStorage>) -> App<FakeStorage> {
        App {
            primary,
            failover,
            rules: OrderRules {
                max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
                schema: None,
                fifo: None,
            },
            order_path: "/orders/new-order".into(),
            retry_after_secs: 7,
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> (Value, Value) {
        let single: Map<String, Value> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let multi: Map<String, Value> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), json!([v])))
            .collect();
        (Value::Object(single), Value::Object(multi))
    }

    /// A REST API (v1) proxy event, from the `aws_lambda_events` fixture.
    fn rest(
        method: &str,
        path: &str,
        hdrs: &[(&str, &str)],
        body: Option<&str>,
        base64: bool,
    ) -> Request {
        let mut event: Value = serde_json::from_str(REST).unwrap();
        let (single, multi) = headers(hdrs);
        event["httpMethod"] = json!(method);
        event["path"] = json!(path);
        event["resource"] = json!(path);
        event["requestContext"]["path"] = json!(format!("/testStage{path}"));
        event["headers"] = single;
        event["multiValueHeaders"] = multi;
        event["body"] = json!(body);
        event["isBase64Encoded"] = json!(base64);
        from_str(&event.to_string()).unwrap()
    }

    /// An HTTP API / function URL (v2) event, from the `aws_lambda_events` fixture.
    fn v2(stage: &str, raw_path: &str, hdrs: &[(&str, &str)], body: &str) -> Request {
        let mut event: Value = serde_json::from_str(V2).unwrap();
        event["rawPath"] = json!(raw_path);
        event["requestContext"]["stage"] = json!(stage);
        event["requestContext"]["http"]["method"] = json!("POST");
        event["requestContext"]["http"]["path"] = json!(raw_path);
        event["headers"] = headers(hdrs).0;
        event["body"] = json!(body);
        from_str(&event.to_string()).unwrap()
    }

    fn post(body: &str) -> Request {
        rest(
            "POST",
            "/orders/new-order",
            &[("Content-Type", "application/json")],
            Some(body),
            false,
        )
    }

    fn json_body(response: &Response<Body>) -> Value {
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        serde_json::from_slice(response.body().as_ref()).unwrap()
    }

    fn error_code(response: &Response<Body>) -> String {
        json_body(response)["error"]["code"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[tokio::test]
    async fn a_rest_order_is_stored_byte_identical_and_answered_202() {
        let app = app(FakeStorage::up("m"), None);
        let req = rest(
            "POST",
            "/orders/new-order",
            &[
                ("Content-Type", "application/json; charset=utf-8"),
                ("Idempotency-Key", "order-o-1"),
                (
                    "X-Amzn-Trace-Id",
                    "Root=1-5759e988-bd862e3fe1be46a994272793",
                ),
            ],
            Some(ORDER),
            false,
        );
        let response = handle(&app, req).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert_eq!(
            json_body(&response),
            json!({"status": "accepted", "messageId": "m-1", "idempotencyKey": "order-o-1", "storage": "primary"})
        );
        assert_eq!(
            response.headers()[REQUEST_ID],
            "deef4878-7910-11e6-8f14-25afc3e9ae33"
        );
        let stored = app.primary.stored();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].body, ORDER);
        let envelope = &stored[0].envelope;
        assert_eq!(envelope.content_type, "application/json; charset=utf-8");
        assert_eq!(
            envelope.request_id.as_deref(),
            Some("deef4878-7910-11e6-8f14-25afc3e9ae33")
        );
        assert_eq!(
            envelope.trace_header.as_deref(),
            Some("Root=1-5759e988-bd862e3fe1be46a994272793")
        );
        assert!(envelope.received_at_ms.is_some());
    }

    #[tokio::test]
    async fn a_generated_idempotency_key_is_returned_to_the_caller() {
        let app = app(FakeStorage::up("m"), None);
        let response = handle(&app, post("{}")).await;
        let key = json_body(&response)["idempotencyKey"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(key.len(), 36, "a UUID: {key}");
        assert_eq!(app.primary.stored()[0].envelope.idempotency_key, key);
    }

    #[tokio::test]
    async fn http_api_and_function_url_events_are_accepted_with_or_without_a_stage() {
        let app = app(FakeStorage::up("m"), None);
        let ct = [("content-type", "application/json")];
        for (stage, path) in [
            ("$default", "/orders/new-order"),
            ("prod", "/prod/orders/new-order"),
        ] {
            let response = handle(&app, v2(stage, path, &ct, ORDER)).await;
            assert_eq!(response.status(), StatusCode::ACCEPTED, "{stage} {path}");
        }
        assert_eq!(
            app.primary.stored()[1].envelope.request_id.as_deref(),
            Some("LV7fzho-PHcEJPw=")
        );
    }

    #[tokio::test]
    async fn base64_bodies_are_decoded_and_stored_byte_identical() {
        let app = app(FakeStorage::up("m"), None);
        // {"x":"é"} base64-encoded, as API Gateway sends binary media types.
        let req = rest(
            "POST",
            "/orders/new-order",
            &[("Content-Type", "application/json")],
            Some("eyJ4Ijoiw6kifQ=="),
            true,
        );
        assert_eq!(handle(&app, req).await.status(), StatusCode::ACCEPTED);
        assert_eq!(app.primary.stored()[0].body, "{\"x\":\"é\"}");

        // 0xff 0xfe 0x7b 0x7d: not UTF-8.
        let req = rest(
            "POST",
            "/orders/new-order",
            &[("Content-Type", "application/json")],
            Some("//57fQ=="),
            true,
        );
        let response = handle(&app, req).await;
        assert_eq!(
            (response.status(), error_code(&response)),
            (StatusCode::BAD_REQUEST, "invalid_utf8".into())
        );
    }

    #[tokio::test]
    async fn unknown_routes_are_404_and_other_methods_405() {
        let app = app(FakeStorage::up("m"), None);
        let response = handle(
            &app,
            rest("POST", "/orders/old-order", &[], Some("{}"), false),
        )
        .await;
        assert_eq!(
            (response.status(), error_code(&response)),
            (StatusCode::NOT_FOUND, "not_found".into())
        );
        for method in ["GET", "PUT", "DELETE"] {
            let response = handle(&app, rest(method, "/orders/new-order", &[], None, false)).await;
            assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
            assert_eq!(response.headers()[ALLOW], "POST");
            assert_eq!(error_code(&response), "method_not_allowed");
        }
        assert!(app.primary.stored().is_empty());
    }

    #[tokio::test]
    async fn callers_mistakes_are_4xx_with_a_json_error_and_store_nothing() {
        let app = app(FakeStorage::up("m"), None);
        let cases = [
            (post("{\"a\":"), 400, "malformed_json"),
            (post("[1]"), 400, "not_an_object"),
            (post("null"), 400, "not_an_object"),
            (
                rest(
                    "POST",
                    "/orders/new-order",
                    &[("Content-Type", "application/json")],
                    None,
                    false,
                ),
                400,
                "empty_body",
            ),
            (
                rest(
                    "POST",
                    "/orders/new-order",
                    &[("Content-Type", "text/plain")],
                    Some("{}"),
                    false,
                ),
                415,
                "unsupported_media_type",
            ),
            (
                rest("POST", "/orders/new-order", &[], Some("{}"), false),
                415,
                "unsupported_media_type",
            ),
            (
                rest(
                    "POST",
                    "/orders/new-order",
                    &[
                        ("Content-Type", "application/json"),
                        ("Idempotency-Key", "a b"),
                    ],
                    Some("{}"),
                    false,
                ),
                400,
                "invalid_header",
            ),
            (
                post(&format!("{{\"p\":\"{}\"}}", "x".repeat(300_000))),
                413,
                "payload_too_large",
            ),
        ];
        for (req, status, code) in cases {
            let response = handle(&app, req).await;
            assert_eq!(
                (response.status().as_u16(), error_code(&response)),
                (status, code.to_owned())
            );
            assert!(
                json_body(&response)["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty())
            );
        }
        assert!(app.primary.stored().is_empty());
    }

    #[tokio::test]
    async fn schema_violations_are_422_with_the_failing_paths() {
        let mut app = app(FakeStorage::up("m"), None);
        let schema = json!({"type": "object", "required": ["id"], "properties": {"qty": {"type": "integer", "minimum": 1}}});
        app.rules.schema = Some(OrderRules::compile_schema(&schema).unwrap());
        let response = handle(&app, post(r#"{"id": "o", "qty": 0}"#)).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body = json_body(&response);
        assert_eq!(body["error"]["code"], "schema_violation");
        assert_eq!(body["error"]["details"][0]["path"], "/qty");
    }

    #[tokio::test]
    async fn every_answer_says_what_the_metrics_count() {
        let recorded = |r: &Response<Body>| r.extensions().get::<Recorded>().copied();
        let up = app(FakeStorage::up("m"), None);
        let accepted = handle(&up, post(ORDER)).await;
        assert_eq!(
            recorded(&accepted),
            Some(Recorded::Accepted { failover: false })
        );
        let malformed = handle(&up, post("{")).await;
        assert_eq!(
            recorded(&malformed),
            Some(Recorded::Rejected("malformed_json"))
        );
        let lost = handle(&up, rest("GET", "/nowhere", &[], None, false)).await;
        assert_eq!(recorded(&lost), Some(Recorded::Rejected("not_found")));
        let down = handle(&app(FakeStorage::down(), None), post(ORDER)).await;
        assert_eq!(recorded(&down), Some(Recorded::StorageUnavailable));
        let failover = handle(
            &app(FakeStorage::down(), Some(FakeStorage::up("f"))),
            post(ORDER),
        )
        .await;
        assert_eq!(
            recorded(&failover),
            Some(Recorded::Accepted { failover: true })
        );

        let doc: Value =
            serde_json::from_str(&Recorded::Rejected("too_deep").document("s").render(0)).unwrap();
        assert_eq!(
            (doc["Reason"].as_str(), doc["Rejected"].as_u64()),
            (Some("too_deep"), Some(1))
        );
    }

    #[tokio::test]
    async fn storage_down_is_503_with_retry_after_and_never_202() {
        let app = app(FakeStorage::down(), None);
        let response = handle(&app, post(ORDER)).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[RETRY_AFTER], "7");
        assert_eq!(error_code(&response), "storage_unavailable");
    }

    #[tokio::test]
    async fn the_failover_queue_takes_orders_when_the_primary_is_down() {
        let app = app(FakeStorage::down(), Some(FakeStorage::up("f")));
        let response = handle(&app, post(ORDER)).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert_eq!(json_body(&response)["storage"], "failover");
        assert_eq!(app.failover.as_ref().unwrap().stored()[0].body, ORDER);
    }
}
