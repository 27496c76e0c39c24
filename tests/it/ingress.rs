//! The function URL ingress (`ingresses` with `function_url`, beside `rest` on the standard
//! stack): the store's own URL, AWS_IAM auth. A SigV4-signed order gets the REST API's answers
//! and reaches the backend byte for byte.
//!
//! LocalStack 4.13.1 community serves function URLs but does not enforce AWS_IAM: it checks no
//! signature, so an unsigned call goes through too. That AWS refuses unsigned and wrongly signed
//! calls (403) is AWS's behaviour and is not tested here; the requests are signed anyway, as a
//! caller on AWS must sign them, so the signed form is what the store is shown to take. The HTTP
//! API ingress is not in LocalStack community at all and is checked at plan level only
//! (infra/tests/plan.tftest.hcl).

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use reqwest::{Method, Url};

use crate::support::{Answer, Outcome, REGION, Stack, StackKind, World, answer, ensure, unique};

const DELIVERY: Duration = Duration::from_secs(60);

/// Where LocalStack serves every function URL. It routes on the host alone,
/// `<url-id>.lambda-url.<region>.<any server>`; the URL it reports puts its LOCALSTACK_HOST there
/// (`127.0.0.1:4566`, which makes no host name), so the suite sends to
/// `<url-id>.lambda-url.us-east-1.localhost.localstack.cloud`, resolved here (it needs DNS this
/// machine may not have).
const LOCALSTACK_ADDR: ([u8; 4], u16) = ([127, 0, 0, 1], 4566);

/// A caller of the store's function URL, signing as an AWS SDK would (service `lambda`).
struct FunctionUrl {
    base: Url,
    http: reqwest::Client,
}

impl FunctionUrl {
    fn of(stack: &Stack) -> Result<Self, String> {
        let url = stack.output("function_url");
        let url_id = url
            .strip_prefix("http://")
            .and_then(|rest| rest.split_once(".lambda-url."))
            .map(|(id, _)| id)
            .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()))
            .ok_or_else(|| format!("function_url {url:?} is not LocalStack's http://<url-id>.lambda-url.<region>.<host>/"))?;
        let host = format!("{url_id}.lambda-url.{REGION}.localhost.localstack.cloud");
        let base = Url::parse(&format!("http://{host}:{}/", LOCALSTACK_ADDR.1))
            .map_err(|e| format!("{host}: {e}"))?;
        let http = reqwest::Client::builder()
            .resolve(&host, SocketAddr::from(LOCALSTACK_ADDR))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self { base, http })
    }

    /// Sends `body` to `path` with `headers`, signed with the suite's credentials.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> Result<Answer, String> {
        let url = self
            .base
            .join(path.trim_start_matches('/'))
            .map_err(|e| format!("{path}: {e}"))?;
        let identity = Credentials::new("test", "test", None, None, "integration-tests").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(REGION)
            .name("lambda")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| format!("signing parameters: {e}"))?
            .into();
        let signable = SignableRequest::new(
            method.as_str(),
            url.as_str(),
            headers.iter().copied(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .map_err(|e| format!("signing {url}: {e}"))?;
        let (signature, _) = sign(signable, &params)
            .map_err(|e| format!("signing {url}: {e}"))?
            .into_parts();
        let mut request = self.http.request(method, url).body(body.to_owned());
        for (name, value) in headers.iter().copied().chain(signature.headers()) {
            request = request.header(name, value);
        }
        answer(request, false).await
    }
}

pub async fn a_signed_order_on_the_function_url_is_accepted_and_delivered_byte_identical(
    w: &World,
) -> Outcome {
    let stack = w.stack(StackKind::Standard)?;
    // As LocalStack reports it; `function_url` is the form it routes (scripts/apply-local).
    let url = stack.output("aws_function_url");
    let config = w
        .function_url_config(stack.output("store_function_name"))
        .await?;
    ensure(
        config["AuthType"] == "AWS_IAM"
            && config["InvokeMode"] == "BUFFERED"
            && config["FunctionUrl"] == url
            && config.get("Cors").is_none_or(|c| c.is_null()),
        || {
            format!(
                "the store's function URL should be {url}, AWS_IAM, buffered, without CORS: {config}"
            )
        },
    )?;

    // Odd spacing, escapes, raw UTF-8 (which LocalStack hands over base64-encoded) and a number
    // no f64 holds: any re-serialisation shows.
    let id = unique("function-url");
    let body = format!(
        "{{ \"id\" : \"{id}\",\r\n\t\"note\": \"caf\\u00e9 — ✓\", \"qty\":12345678901234567890123 }}"
    );
    let key = unique("key");
    let content_type = "application/json; charset=utf-8";
    let headers = [("content-type", content_type), ("idempotency-key", &key)];
    let function_url = FunctionUrl::of(stack)?;
    let accepted = function_url
        .send(Method::POST, "/orders/new-order", &body, &headers)
        .await?;
    // The REST API's 202 for an order like it, for its shape.
    let rest = w
        .post_order(
            stack,
            content_type,
            format!(r#"{{"id":"{id}-rest"}}"#),
            &[("idempotency-key", &unique("key"))],
        )
        .await?;
    let fields = |a: &Answer| {
        let mut keys: Vec<String> = a
            .json
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k.clone())
            .collect();
        keys.sort();
        keys
    };
    ensure(
        accepted.status == 202
            && rest.status == 202
            && fields(&accepted) == fields(&rest)
            && accepted.json["status"] == "accepted"
            && accepted.json["storage"] == "primary"
            && accepted.json["idempotencyKey"] == key.as_str()
            && accepted.json["messageId"].is_string()
            && accepted.content_type.as_deref() == Some("application/json"),
        || {
            format!(
                "expected the REST API's 202 ({} {}), got {} {} ({:?})",
                rest.status, rest.json, accepted.status, accepted.json, accepted.content_type
            )
        },
    )?;
    ensure(
        accepted
            .request_id
            .as_deref()
            .is_some_and(|id| !id.is_empty())
            && accepted.traceparent.is_some(),
        || format!("the 202 should name its request and trace: {accepted:?}"),
    )?;

    let delivered = crate::support::poll_until("the order at the backend", DELIVERY, || async {
        Some(w.receiver.deliveries(&key)).filter(|d| !d.is_empty())
    })
    .await?;
    let d = &delivered[0];
    ensure(d.body == body && d.content_type == content_type, || {
        format!(
            "changed in transit:\n sent {body:?} ({content_type})\n got  {:?} ({})",
            d.body, d.content_type
        )
    })?;
    ensure(d.succeeded(), || format!("backend did {:?}", d.action))
}

/// What a refused request is, its method, path, body and headers.
type Refused<'a> = (&'a str, Method, &'a str, &'a str, &'a [(&'a str, &'a str)]);

pub async fn the_function_url_refuses_what_the_rest_api_refuses(w: &World) -> Outcome {
    let stack = w.stack(StackKind::Standard)?;
    let function_url = FunctionUrl::of(stack)?;
    let run = unique("function-url-refused");
    let json = [("content-type", "application/json")];
    // Each answered as the REST API answers it.
    let cases: [Refused; 5] = [
        (
            "malformed JSON",
            Method::POST,
            "/orders/new-order",
            "{\"a\":",
            &json,
        ),
        (
            "not an object",
            Method::POST,
            "/orders/new-order",
            "[1]",
            &json,
        ),
        (
            "text/plain",
            Method::POST,
            "/orders/new-order",
            "{}",
            &[("content-type", "text/plain")],
        ),
        (
            "another path",
            Method::POST,
            "/orders/old-order",
            "{}",
            &json,
        ),
        ("GET", Method::GET, "/orders/new-order", "", &[]),
    ];
    let mut wrong = Vec::new();
    for (n, (what, method, path, body, headers)) in cases.into_iter().enumerate() {
        let key = format!("{run}-{n}");
        let mut headers = headers.to_vec();
        headers.push(("idempotency-key", &key));
        let got = function_url
            .send(method.clone(), path, body, &headers)
            .await?;
        let mut rest_headers = headers.clone();
        rest_headers.extend(stack.key_header());
        let api = stack.output("api_url");
        let want = w
            .request(
                method,
                &format!("{api}{path}"),
                body.to_owned(),
                &rest_headers,
            )
            .await?;
        let error = |a: &Answer| {
            (
                a.status,
                a.json["error"]["code"].clone(),
                a.json["error"]["message"].clone(),
                a.allow.clone(),
            )
        };
        if !(400..500).contains(&got.status) || error(&got) != error(&want) {
            wrong.push(format!(
                "{what}: the function URL answered {} {} (allow {:?}), the REST API {} {} (allow {:?})",
                got.status, got.json, got.allow, want.status, want.json, want.allow
            ));
        }
    }
    ensure(wrong.is_empty(), || wrong.join("\n"))
}
