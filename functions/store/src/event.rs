//! Lambda event ⇄ HTTP, without `lambda_http`'s conversion: that one builds an absolute URI
//! from the `Host` header (or the domain name), `X-Forwarded-Proto`, the path and a raw query, and
//! decodes base64 bodies, with `unwrap` and `expect`, so a request with a bad host panicked the
//! store into a non-JSON 502. Here reading an event cannot fail: what cannot be read becomes a
//! request marked [`Unreadable`], which [`crate::handle`] answers like any other bad request.

use std::fmt::Write;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lambda_http::aws_lambda_events::apigw::{
    ApiGatewayProxyRequest, ApiGatewayProxyRequestContext, ApiGatewayProxyResponse,
    ApiGatewayV2httpRequest, ApiGatewayV2httpRequestContext, ApiGatewayV2httpResponse,
};
use lambda_http::http::header::{HeaderName, HeaderValue};
use lambda_http::http::{HeaderMap, Method, Uri};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Context, Request, RequestExt, Response};
use serde::Serialize;
use serde_json::Value;

/// Why an event could not be read as the request it stands for, set on the request in its stead;
/// [`crate::handle`] answers `400` with this code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unreadable {
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

/// An invocation's payload: a request as an API Gateway REST API (payload 1.0), or an HTTP API
/// or a function URL (payload 2.0) sends it, or one that is neither.
#[derive(Debug)]
pub(crate) enum Event {
    Rest(Box<ApiGatewayProxyRequest>),
    Http(Box<ApiGatewayV2httpRequest>),
    Unreadable {
        http: bool,
        request_id: Option<String>,
        why: Unreadable,
    },
}

/// The answer to an invocation, in the shape of the event's payload version.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Answer {
    Rest(ApiGatewayProxyResponse),
    Http(ApiGatewayV2httpResponse),
}

impl Event {
    /// Reads the event's JSON text, trying payload 1.0 first as `lambda_http` does (a 2.0 event
    /// has no `httpMethod`, which 1.0 requires).
    pub(crate) fn read(json: &str) -> Self {
        let rest_error = match serde_json::from_str(json) {
            Ok(rest) => return Self::Rest(rest),
            Err(e) => e,
        };
        let http_error = match serde_json::from_str(json) {
            Ok(http) => return Self::Http(http),
            Err(e) => e,
        };
        let event: Value = serde_json::from_str(json).unwrap_or_default();
        let http = event["version"] == "2.0";
        let why = bad_header(&event).unwrap_or_else(|| Unreadable {
            code: "malformed_request",
            message: format!(
                "the event is not a request as API Gateway or a function URL sends one: {}",
                if http { http_error } else { rest_error }
            ),
        });
        Self::Unreadable {
            http,
            request_id: event["requestContext"]["requestId"]
                .as_str()
                .map(str::to_owned),
            why,
        }
    }

    /// Whether the answer takes the shape of payload 2.0.
    pub(crate) fn is_http(&self) -> bool {
        matches!(self, Self::Http(_) | Self::Unreadable { http: true, .. })
    }

    /// The request [`crate::handle`] answers. Query and path parameters, stage variables and
    /// cookies are left out: the store reads none of them.
    pub(crate) fn into_request(self, lambda: Context) -> Request {
        let (mut request, path) = match self {
            Self::Rest(rest) => {
                let ApiGatewayProxyRequest {
                    path,
                    http_method,
                    headers,
                    mut multi_value_headers,
                    query_string_parameters,
                    multi_value_query_string_parameters,
                    request_context,
                    body,
                    is_base64_encoded,
                    ..
                } = *rest;
                // As API Gateway merges them: the single values win.
                multi_value_headers.extend(headers);
                let query = if multi_value_query_string_parameters.is_empty() {
                    query_string_parameters
                } else {
                    multi_value_query_string_parameters
                };
                let path = path.unwrap_or_default();
                let request = request(
                    http_method,
                    origin_form(&path, &query.to_query_string()),
                    multi_value_headers,
                    body,
                    is_base64_encoded,
                )
                .with_request_context(RequestContext::ApiGatewayV1(request_context));
                (request, path)
            }
            Self::Http(http) => {
                let ApiGatewayV2httpRequest {
                    raw_path,
                    raw_query_string,
                    headers,
                    request_context,
                    body,
                    is_base64_encoded,
                    ..
                } = *http;
                let path = raw_path.unwrap_or_default();
                let request = request(
                    request_context.http.method.clone(),
                    origin_form(&path, raw_query_string.as_deref().unwrap_or_default()),
                    headers,
                    body,
                    is_base64_encoded,
                )
                .with_request_context(RequestContext::ApiGatewayV2(request_context));
                (request, path)
            }
            Self::Unreadable {
                http,
                request_id,
                why,
            } => {
                // A context with only the request id, so the answer names the request as
                // API Gateway does.
                let context = if http {
                    let mut context = ApiGatewayV2httpRequestContext::default();
                    context.request_id = request_id;
                    RequestContext::ApiGatewayV2(context)
                } else {
                    let mut context = ApiGatewayProxyRequestContext::default();
                    context.request_id = request_id;
                    RequestContext::ApiGatewayV1(context)
                };
                let mut request = Request::default().with_request_context(context);
                request.extensions_mut().insert(why);
                (request, String::new())
            }
        };
        // As `lambda_http` does: the invocation's trace, which the caller's header cannot forge.
        if let Some(trace) = lambda
            .xray_trace_id
            .as_deref()
            .and_then(|t| HeaderValue::from_str(t).ok())
        {
            request
                .headers_mut()
                .insert(HeaderName::from_static("x-amzn-trace-id"), trace);
        }
        request.with_raw_http_path(path).with_lambda_context(lambda)
    }
}

impl Answer {
    /// `response` in the shape of payload 2.0 if `http`, else of payload 1.0.
    pub(crate) fn new(response: Response<Body>, http: bool) -> Self {
        let (parts, body) = response.into_parts();
        let is_base64_encoded = matches!(body, Body::Binary(_));
        let body = match body {
            Body::Empty => None,
            body => Some(body),
        };
        let status_code = parts.status.as_u16().into();
        if http {
            let mut answer = ApiGatewayV2httpResponse::default();
            answer.status_code = status_code;
            answer.headers = parts.headers;
            answer.body = body;
            answer.is_base64_encoded = is_base64_encoded;
            Self::Http(answer)
        } else {
            let mut answer = ApiGatewayProxyResponse::default();
            answer.status_code = status_code;
            answer.multi_value_headers = parts.headers;
            answer.body = body;
            answer.is_base64_encoded = is_base64_encoded;
            Self::Rest(answer)
        }
    }
}

fn request(
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Option<String>,
    base64: bool,
) -> Request {
    let (body, why) = match body {
        None => (Body::Empty, None),
        Some(text) if base64 => match STANDARD.decode(&text) {
            Ok(bytes) => (Body::from(bytes), None),
            Err(e) => (
                Body::Empty,
                Some(Unreadable {
                    code: "malformed_request",
                    message: format!("the body is marked base64 but is not: {e}"),
                }),
            ),
        },
        Some(text) => (Body::from(text), None),
    };
    let mut request = Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    if let Some(why) = why {
        request.extensions_mut().insert(why);
    }
    request
}

/// `path?query` as a URI, percent-encoding what a URI may not hold: a REST API's path arrives
/// decoded, and a raw query holds what the client sent.
fn origin_form(path: &str, query: &str) -> Uri {
    let mut uri = String::with_capacity(path.len() + query.len() + 2);
    if !path.starts_with('/') {
        uri.push('/');
    }
    escape(&mut uri, path, b"/");
    if !query.is_empty() {
        uri.push('?');
        escape(&mut uri, query, b"/?");
    }
    uri.parse().unwrap_or_default()
}

/// Appends `text`, keeping RFC 3986's unreserved characters, sub-delimiters, `:`, `@`, `%` and
/// the bytes in `also`, and percent-encoding every other byte.
fn escape(out: &mut String, text: &str, also: &[u8]) {
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@%".contains(&b) || also.contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// The first header of an unreadable event whose name or value HTTP does not allow (control
/// characters, say), which is why `aws_lambda_events` could not read it.
fn bad_header(event: &Value) -> Option<Unreadable> {
    let allowed = |value: &Value| match value {
        Value::String(v) => HeaderValue::from_str(v).is_ok(),
        Value::Array(values) => values
            .iter()
            .all(|v| v.as_str().is_some_and(|v| HeaderValue::from_str(v).is_ok())),
        _ => false,
    };
    ["headers", "multiValueHeaders"]
        .iter()
        .filter_map(|field| event[field].as_object())
        .flatten()
        .find(|(name, value)| HeaderName::from_bytes(name.as_bytes()).is_err() || !allowed(value))
        .map(|(name, _)| Unreadable {
            code: "invalid_header",
            message: format!("header {name:?} has a name or a value that HTTP does not allow"),
        })
}
