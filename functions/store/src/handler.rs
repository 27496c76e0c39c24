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
use storeforward_core::trace::{Span, TraceContext};
use tracing::{Instrument, error, info, info_span};

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

/// The W3C trace context header a request continues and a `202` answers with.
pub const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

/// Handles one request. Every answer is JSON and names its request ([`REQUEST_ID`]); nothing
/// here panics or fails the invocation. The request is the store's span of the order's trace
/// (the caller's, continued, or a new one); its lines carry the span's ids.
pub async fn handle<S: Storage>(app: &App<S>, req: Request) -> Response<Body> {
    let id = request_id(&req);
    let trace = Span::continuing(caller_context(req.headers()));
    let log = info_span!(
        "request",
        request_id = id.as_deref(),
        trace_id = %trace.trace_id,
        span_id = %trace.span_id,
        parent_span_id = trace.parent_id.map(display),
    );
    let mut response = answer(app, req, &trace).instrument(log).await;
    if let Some(value) = id.and_then(|id| HeaderValue::from_str(&id).ok()) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// The caller's trace context: one valid `traceparent` (a repeated one counts as none), with
/// its `tracestate` lines joined, kept only if valid.
fn caller_context(headers: &HeaderMap) -> Option<TraceContext> {
    let mut parents = headers.get_all(TRACEPARENT).iter();
    let parent = match (parents.next(), parents.next()) {
        (Some(parent), None) => parent.to_str().ok()?,
        _ => return None,
    };
    let states = headers
        .get_all(TRACESTATE)
        .iter()
        .map(|v| v.to_str().ok())
        .collect::<Option<Vec<_>>>()
        .filter(|states| !states.is_empty())
        .map(|states| states.join(","));
    TraceContext::from_headers(parent, states.as_deref())
}

async fn answer<S: Storage>(app: &App<S>, req: Request, trace: &Span) -> Response<Body> {
    if let Some(why) = req.extensions().get::<Unreadable>() {
        return refuse(StatusCode::BAD_REQUEST, why.code, &why.message);
    }
    if let Err(message) = check_host_and_scheme(&req) {
        return refuse(StatusCode::BAD_REQUEST, "invalid_header", &message);
    }
    let path = route_path(&req);
    if path.trim_end_matches('/') != app.order_path {
        return refuse(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no route for {path}"),
        );
    }
    if req.method() != Method::POST {
        let mut response = refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            &format!("{} is not allowed here; use POST", req.method()),
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
        trace_context: Some(trace.context()),
        received_at_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    };
    let order = match app
        .rules
        .accept(&incoming, || uuid::Uuid::new_v4().to_string())
    {
        Ok(order) => order,
        Err(rejection) => return rejected(&rejection, incoming.idempotency_key),
    };
    let key = &order.envelope.idempotency_key;

    match store_with_failover(&order, &app.primary, app.failover.as_ref()).await {
        Ok(stored) => {
            let storage = if stored.failover {
                "failover"
            } else {
                "primary"
            };
            info!(event = "order.accepted", message_id = %stored.message_id, idempotency_key = %key, queue = storage, "order stored");
            let mut response = json_response(
                StatusCode::ACCEPTED,
                &json!({
                    "status": "accepted",
                    "messageId": stored.message_id,
                    "idempotencyKey": key,
                    "storage": storage,
                    "traceId": trace.trace_id.to_string(),
                }),
            );
            if let Ok(traceparent) = HeaderValue::from_str(&trace.context().parent.to_string()) {
                response.headers_mut().insert(TRACEPARENT, traceparent);
            }
            response.extensions_mut().insert(Recorded::Accepted {
                failover: stored.failover,
            });
            response
        }
        Err(e) => {
            error!(event = "order.not_stored", error = %e, idempotency_key = %key, "order NOT stored: storage unavailable");
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

fn rejected(rejection: &Rejection, idempotency_key: Option<&str>) -> Response<Body> {
    info!(event = "order.rejected", code = rejection.code(), status = rejection.status(), reason = %rejection, idempotency_key, "order rejected");
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

/// A `4xx` that is not about the order itself (the request's form, route or method), logged as
/// `order.rejected`.
fn refuse(status: StatusCode, code: &'static str, message: &str) -> Response<Body> {
    info!(
        event = "order.rejected",
        code,
        status = status.as_u16(),
        reason = message,
        "order rejected"
    );
    error(status, code, message, Value::Null)
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
    use storeforward_core::envelope::attr;
    use storeforward_core::fakes::FakeStorage;
    use storeforward_core::logging::capture::Lines;
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
        let body = json_body(&response);
        let trace_id = body["traceId"].as_str().unwrap();
        assert_eq!(
            body,
            json!({"status": "accepted", "messageId": "m-1", "idempotencyKey": "order-o-1", "storage": "primary", "traceId": trace_id})
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

    const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    /// An order request with `traceparent` and `tracestate` header lines.
    fn traced(parents: &[&str], states: &[&str]) -> Request {
        let mut req = post(ORDER);
        for parent in parents {
            req.headers_mut()
                .append(TRACEPARENT, HeaderValue::from_str(parent).unwrap());
        }
        for state in states {
            req.headers_mut()
                .append(TRACESTATE, HeaderValue::from_str(state).unwrap());
        }
        req
    }

    /// The answer's `traceparent`, the stored context, and the trace id of the body.
    async fn trace_of(req: Request) -> (TraceContext, TraceContext, String) {
        let app = app(FakeStorage::up("m"), None);
        let response = handle(&app, req).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let answered =
            TraceContext::from_headers(response.headers()[TRACEPARENT].to_str().unwrap(), None)
                .unwrap();
        let stored = app.primary.stored()[0]
            .envelope
            .trace_context
            .clone()
            .unwrap();
        let trace_id = json_body(&response)["traceId"].as_str().unwrap().to_owned();
        (answered, stored, trace_id)
    }

    #[tokio::test]
    async fn a_callers_traceparent_is_continued_and_its_tracestate_kept() {
        let (answered, stored, trace_id) =
            trace_of(traced(&[CALLER], &["rojo=00f067aa0ba902b7", "congo=t61"])).await;
        assert_eq!(trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(answered.parent.trace_id.to_string(), trace_id);
        assert_eq!(answered.parent.flags, 1);
        assert_ne!(answered.parent.parent_id.to_string(), "00f067aa0ba902b7");
        assert_eq!(stored.parent, answered.parent, "the store's span goes on");
        assert_eq!(
            stored.state.as_deref(),
            Some("rojo=00f067aa0ba902b7,congo=t61")
        );

        let app = app(FakeStorage::up("m"), None);
        handle(&app, traced(&[CALLER], &["rojo=1"])).await;
        let attributes = app.primary.stored()[0].envelope.attributes();
        let (_, carrier) = attributes
            .iter()
            .find(|(name, _)| *name == attr::TRACE_CONTEXT)
            .unwrap();
        let carrier: Value = serde_json::from_str(carrier).unwrap();
        assert_eq!(carrier["tracestate"], "rojo=1");
        assert!(
            carrier["traceparent"]
                .as_str()
                .is_some_and(|p| p.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"))
        );
    }

    #[tokio::test]
    async fn an_invalid_tracestate_is_dropped_not_refused() {
        let (_, stored, trace_id) = trace_of(traced(&[CALLER], &["Not A State"])).await;
        assert_eq!(trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(stored.state, None);
    }

    #[tokio::test]
    async fn without_a_valid_single_traceparent_a_new_trace_starts_without_tracestate() {
        let invalid = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01";
        for req in [
            traced(&[], &[]),
            traced(&[invalid], &["rojo=1"]),
            traced(&[CALLER, CALLER], &["rojo=1"]),
        ] {
            let (answered, stored, trace_id) = trace_of(req).await;
            assert_ne!(trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
            assert_eq!(trace_id.len(), 32);
            assert_eq!(answered.parent.trace_id.to_string(), trace_id);
            assert_eq!(answered.parent.flags, 1);
            assert_eq!(stored, answered, "no tracestate");
        }
    }

    #[tokio::test]
    async fn its_lines_carry_the_event_the_request_and_the_trace_but_never_the_order() {
        let lines = Lines::capture();
        let up = app(FakeStorage::up("m"), None);
        handle(&up, traced(&[CALLER], &[])).await;
        let mut bad = traced(&[CALLER], &[]);
        *bad.body_mut() = Body::from("{\"a\":");
        bad.headers_mut()
            .insert("idempotency-key", HeaderValue::from_static("k-9"));
        handle(&up, bad).await;
        handle(&up, rest("GET", "/nowhere", &[], None, false)).await;
        handle(&app(FakeStorage::down(), None), post(ORDER)).await;

        let accepted = &lines.events("order.accepted")[0];
        for (name, value) in [
            ("message_id", "m-1"),
            ("queue", "primary"),
            ("request_id", "deef4878-7910-11e6-8f14-25afc3e9ae33"),
            ("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736"),
            ("parent_span_id", "00f067aa0ba902b7"),
            ("level", "INFO"),
        ] {
            assert_eq!(accepted[name], value, "{name} in {accepted}");
        }
        assert_eq!(accepted["span_id"].as_str().map(str::len), Some(16));
        let rejected = lines.events("order.rejected");
        assert_eq!(rejected.len(), 2);
        assert_eq!(
            (rejected[0]["code"].as_str(), rejected[0]["status"].as_u64()),
            (Some("malformed_json"), Some(400))
        );
        assert_eq!(rejected[0]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(rejected[0]["idempotency_key"], "k-9");
        assert_eq!(rejected[1]["code"], "not_found");
        assert!(rejected[1].get("parent_span_id").is_none());
        let lost = &lines.events("order.not_stored")[0];
        assert_eq!(lost["level"], "ERROR");
        assert!(lost["error"].is_string() && lost["idempotency_key"].is_string());
        for line in lines.parsed() {
            assert!(!line.to_string().contains("qty"), "no payload: {line}");
        }
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
