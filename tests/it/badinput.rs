//! Bad input end to end, through API Gateway: a corpus of broken bodies, content types, headers,
//! methods and paths, each of which must get its documented 4xx with a JSON error and never reach
//! the backend, next to legitimate variants that must be accepted and delivered byte-identical.

use std::time::Duration;

use reqwest::Method;

use crate::support::{Answer, Outcome, Stack, StackKind, World, ensure, poll_until, unique};

const DELIVERY: Duration = Duration::from_secs(60);
const ORDER_PATH: &str = "/orders/new-order";
const JSON: Option<&str> = Some("application/json");

/// What one request must get.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    /// 202, then delivered byte-identical.
    Accepted,
    /// This status and error code.
    Rejected(u16, &'static str),
}

/// One request of the corpus.
struct Case {
    what: &'static str,
    method: Method,
    path: &'static str,
    content_type: Option<&'static str>,
    /// Replaces the generated `Idempotency-Key`.
    key: Option<String>,
    group: Option<&'static str>,
    /// Further request headers.
    headers: Vec<(&'static str, &'static str)>,
    body: Vec<u8>,
    want: Want,
}

impl Case {
    fn post(
        what: &'static str,
        content_type: Option<&'static str>,
        body: impl Into<Vec<u8>>,
        want: Want,
    ) -> Self {
        Self {
            what,
            method: Method::POST,
            path: ORDER_PATH,
            content_type,
            key: None,
            group: None,
            headers: Vec::new(),
            body: body.into(),
            want,
        }
    }

    fn route(what: &'static str, method: Method, path: &'static str, want: Want) -> Self {
        Self {
            method,
            path,
            ..Self::post(what, JSON, "{}", want)
        }
    }
}

/// Every case; `run` is in each body (or key) so anything that reaches the backend is found.
fn corpus(run: &str) -> Vec<Case> {
    use Want::{Accepted, Rejected};
    let order = format!(r#"{{"run":"{run}"}}"#);
    let with = |extra: &str| format!(r#"{{"run":"{run}",{extra}}}"#);
    let prefix = format!(r#"{{"run":"{run}","a":""#);
    let raw = |tail: &[u8]| [prefix.as_bytes(), tail].concat();
    let too_big = with(&format!(r#""pad":"{}""#, "x".repeat(300 * 1024)));
    let deep = with(&format!(
        r#""a":{}{}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    ));
    let just_too_deep = with(&format!(r#""a":{}{}"#, "[".repeat(128), "]".repeat(128)));
    let deepest = with(&format!(r#""a":{}{}"#, "[".repeat(127), "]".repeat(127)));
    let unsupported = Rejected(415, "unsupported_media_type");
    let malformed = Rejected(400, "malformed_json");
    let not_object = Rejected(400, "not_an_object");
    let bad_utf8 = Rejected(400, "invalid_utf8");
    let unstorable = Rejected(400, "unstorable_character");
    let bad_header = Rejected(400, "invalid_header");
    let repeated = Rejected(400, "duplicate_member");
    let no_route = Rejected(404, "not_found");
    let wrong_method = Rejected(405, "method_not_allowed");

    vec![
        // Content types.
        Case::post("no content type", None, order.clone(), unsupported),
        Case::post("empty content type", Some(""), order.clone(), unsupported),
        Case::post("text/plain", Some("text/plain"), order.clone(), unsupported),
        Case::post(
            "form",
            Some("application/x-www-form-urlencoded"),
            format!("run={run}"),
            unsupported,
        ),
        Case::post(
            "multipart",
            Some("multipart/form-data; boundary=x"),
            format!("--x\r\n\r\n{order}\r\n--x--"),
            unsupported,
        ),
        Case::post(
            "xml",
            Some("application/xml"),
            format!("<order run=\"{run}\"/>"),
            unsupported,
        ),
        Case::post(
            "json with latin-1",
            Some("application/json; charset=iso-8859-1"),
            order.clone(),
            unsupported,
        ),
        Case::post(
            "jsonx",
            Some("application/jsonx"),
            order.clone(),
            unsupported,
        ),
        // Not JSON, or not quite.
        Case::post("empty body", JSON, "", Rejected(400, "empty_body")),
        Case::post("whitespace only", JSON, " \r\n\t ", malformed),
        Case::post(
            "truncated after a comma",
            JSON,
            format!(r#"{{"run":"{run}","#),
            malformed,
        ),
        Case::post(
            "truncated in a string",
            JSON,
            format!(r#"{{"run":"{run}"#),
            malformed,
        ),
        Case::post(
            "truncated in an escape",
            JSON,
            format!(r#"{{"run":"{run}\u00"#),
            malformed,
        ),
        Case::post(
            "truncated in an array",
            JSON,
            with(r#""a":[1,2"#),
            malformed,
        ),
        Case::post("trailing garbage", JSON, format!("{order} {{}}"), malformed),
        Case::post(
            "single quotes",
            JSON,
            format!("{{'run':'{run}'}}"),
            malformed,
        ),
        Case::post(
            "unquoted key",
            JSON,
            format!(r#"{{run:"{run}"}}"#),
            malformed,
        ),
        Case::post("trailing comma", JSON, with(r#""a":1,"#), malformed),
        Case::post("comment", JSON, with(r#""a":1 /* c */"#), malformed),
        Case::post("NaN", JSON, with(r#""a":NaN"#), malformed),
        Case::post("Infinity", JSON, with(r#""a":-Infinity"#), malformed),
        Case::post("leading zero", JSON, with(r#""a":012"#), malformed),
        Case::post(
            "lone surrogate escape",
            JSON,
            with(r#""a":"\ud800""#),
            malformed,
        ),
        Case::post(
            "byte order mark",
            JSON,
            [b"\xef\xbb\xbf", order.as_bytes()].concat(),
            malformed,
        ),
        // Not UTF-8.
        Case::post("0xff in a string", JSON, raw(b"\xff\"}"), bad_utf8),
        Case::post("overlong encoding", JSON, raw(b"\xc0\xaf\"}"), bad_utf8),
        Case::post("encoded surrogate", JSON, raw(b"\xed\xa0\x80\"}"), bad_utf8),
        Case::post("truncated sequence", JSON, raw(b"\xe2\x82"), bad_utf8),
        Case::post(
            "UTF-16 with its byte order mark",
            JSON,
            [0xff, 0xfe]
                .into_iter()
                .chain(order.encode_utf16().flat_map(u16::to_le_bytes))
                .collect::<Vec<u8>>(),
            bad_utf8,
        ),
        // Characters SQS cannot store.
        Case::post("raw NUL", JSON, with("\"a\":\"\0\""), unstorable),
        Case::post(
            "raw control character",
            JSON,
            with("\"a\":\"\u{1}\""),
            unstorable,
        ),
        Case::post("U+FFFF", JSON, with("\"a\":\"\u{FFFF}\""), unstorable),
        // Objects that repeat a member name (RFC 7493).
        Case::post("repeated member", JSON, with(r#""a":1,"a":2"#), repeated),
        Case::post(
            "repeated member, once escaped",
            JSON,
            with(r#""a":1,"\u0061":2"#),
            repeated,
        ),
        Case::post(
            "repeated member, nested",
            JSON,
            with(r#""o":{"b":[{"c":1},{"c":1,"d":{},"c":2}]}"#),
            repeated,
        ),
        Case::post(
            "repeated run",
            JSON,
            format!(r#"{{"run":"{run}","run":"other"}}"#),
            repeated,
        ),
        // JSON, but not an object.
        Case::post("array", JSON, format!(r#"["{run}"]"#), not_object),
        Case::post("string", JSON, format!(r#""{run}""#), not_object),
        Case::post("null", JSON, "null", not_object),
        Case::post("number", JSON, "42", not_object),
        Case::post("boolean", JSON, " true", not_object),
        // Too much.
        Case::post("nested 100,000 deep", JSON, deep, Rejected(400, "too_deep")),
        Case::post(
            "nested 129 deep",
            JSON,
            just_too_deep,
            Rejected(400, "too_deep"),
        ),
        Case::post("300 KiB", JSON, too_big, Rejected(413, "payload_too_large")),
        // Headers.
        Case {
            key: Some(format!("{run} with spaces")),
            ..Case::post("key with spaces", JSON, order.clone(), bad_header)
        },
        Case {
            key: Some(format!("{run}{}", "k".repeat(128))),
            ..Case::post("key over 128", JSON, order.clone(), bad_header)
        },
        Case {
            group: Some("a group"),
            ..Case::post("group with a space", JSON, order.clone(), bad_header)
        },
        // Hosts that name no server. (API Gateway, LocalStack's as well, sets X-Forwarded-Proto
        // itself, so a client's never reaches the store; the store's events test covers it.)
        Case {
            headers: vec![("host", "exa mple.com")],
            ..Case::post("Host with a space", JSON, order.clone(), bad_header)
        },
        Case {
            headers: vec![("host", "a{b}.example")],
            ..Case::post("Host with braces", JSON, order.clone(), bad_header)
        },
        Case {
            headers: vec![("host", "127.0.0.1:99999")],
            ..Case::post("Host with port 99999", JSON, order.clone(), bad_header)
        },
        Case {
            headers: vec![("host", "bücher.example")],
            ..Case::post("Host not in ASCII", JSON, order.clone(), bad_header)
        },
        // Methods and paths.
        Case::route("GET", Method::GET, ORDER_PATH, wrong_method),
        Case::route("PUT", Method::PUT, ORDER_PATH, wrong_method),
        Case::route("PATCH", Method::PATCH, ORDER_PATH, wrong_method),
        Case::route("DELETE", Method::DELETE, ORDER_PATH, wrong_method),
        Case::route("OPTIONS", Method::OPTIONS, ORDER_PATH, wrong_method),
        Case::route("HEAD", Method::HEAD, ORDER_PATH, wrong_method),
        Case::route("root", Method::POST, "/", no_route),
        Case::route("parent", Method::POST, "/orders", no_route),
        Case::route("child", Method::POST, "/orders/new-order/extra", no_route),
        Case::route("case", Method::POST, "/orders/NEW-ORDER", no_route),
        Case::route("elsewhere", Method::GET, "/admin", no_route),
        // Legitimate variants.
        Case::post(
            "charset utf-8",
            Some("application/json; charset=utf-8"),
            order.clone(),
            Accepted,
        ),
        Case::post(
            "odd case, quoted charset",
            Some("Application/JSON;charset=\"UTF-8\""),
            order.clone(),
            Accepted,
        ),
        Case::post(
            "Unicode",
            JSON,
            with("\"name\":\"Zoë 東京 مرحبا 😀 e\u{301}\""),
            Accepted,
        ),
        Case::post(
            "escapes",
            JSON,
            with(r#""a":"\u0000\ud83d\ude00\"\\\/\b\f\n\r\t""#),
            Accepted,
        ),
        Case::post(
            "big numbers",
            JSON,
            with(
                r#""big":123456789012345678901234567890,"huge":1e400,"tiny":-1e-400,"zero":-0.0E+0"#,
            ),
            Accepted,
        ),
        Case::post("nested 128 deep", JSON, deepest, Accepted),
        Case::post(
            "one name in sibling objects",
            JSON,
            with(r#""a":{"x":1},"b":[{"x":1},{"x":2}]"#),
            Accepted,
        ),
        Case::post(
            "names that differ in case or space",
            JSON,
            with(r#""a":1,"A":2,"a ":3"#),
            Accepted,
        ),
        Case {
            headers: vec![("host", "localhost:4566")],
            ..Case::post("Host localhost", JSON, order.clone(), Accepted)
        },
        Case::post(
            "whitespace around",
            JSON,
            format!(" \r\n\t{order}\n"),
            Accepted,
        ),
        Case::post(
            "200 KiB",
            JSON,
            with(&format!(r#""pad":"{}""#, "x".repeat(200 * 1024))),
            Accepted,
        ),
    ]
}

/// What the store answered to a run of the corpus.
#[derive(Default)]
struct Sent<'c> {
    wrong: Vec<String>,
    accepted: Vec<(String, &'c Case)>,
    rejected: usize,
    server_errors: usize,
}

impl Sent<'_> {
    fn ensure_right(&self, of: usize) -> Outcome {
        ensure(self.wrong.is_empty(), || {
            format!(
                "{} of {of} cases wrong:\n{}",
                self.wrong.len(),
                self.wrong.join("\n")
            )
        })
    }
}

/// Sends each case to `stack`, checking its answer; `run` names the generated keys.
async fn send<'c>(
    w: &World,
    stack: &Stack,
    run: &str,
    cases: impl Iterator<Item = (usize, &'c Case)>,
) -> Sent<'c> {
    let api = stack.output("api_url");
    let mut sent = Sent::default();
    for (n, case) in cases {
        let key = case.key.clone().unwrap_or_else(|| format!("{run}-{n}"));
        let mut headers = vec![("idempotency-key", key.as_str())];
        headers.extend(stack.key_header());
        headers.extend(case.content_type.map(|ct| ("content-type", ct)));
        headers.extend(case.group.map(|g| ("x-message-group-id", g)));
        headers.extend(case.headers.iter().copied());
        let url = format!("{api}{}", case.path);
        let answer = w
            .request(case.method.clone(), &url, case.body.clone(), &headers)
            .await;
        let verdict = match (&answer, case.want) {
            (Ok(a), _) if a.status >= 500 => {
                sent.server_errors += 1;
                Err(format!("{} {}", a.status, a.json))
            }
            (Ok(a), Want::Accepted) if a.status == 202 => {
                sent.accepted.push((key, case));
                Ok(())
            }
            (Ok(a), Want::Rejected(status, code)) => {
                sent.rejected += 1;
                check_rejection(a, case.method == Method::HEAD, status, code)
            }
            (Ok(a), want) => Err(format!("{want:?}, got {} {}", a.status, a.json)),
            (Err(e), _) => Err(e.clone()),
        };
        if let Err(e) = verdict {
            sent.wrong.push(format!(
                "{} ({} {}): {e}",
                case.what, case.method, case.path
            ));
        }
    }
    sent
}

pub async fn bad_input_gets_its_4xx_and_never_reaches_the_backend(w: &World) -> Outcome {
    let stack = w.stack(StackKind::Standard)?;
    let run = unique("bad-input");
    let cases = corpus(&run);
    let sent = send(w, stack, &run, cases.iter().enumerate()).await;
    sent.ensure_right(cases.len())?;

    // The accepted ones arrive byte-identical; by then any rejected one would have arrived too.
    for (key, case) in &sent.accepted {
        let delivered = poll_until(case.what, DELIVERY, || async {
            w.receiver.deliveries(key).into_iter().next()
        })
        .await?;
        ensure(delivered.body.as_bytes() == case.body, || {
            format!("{}: body changed in transit", case.what)
        })?;
    }
    let accepted_keys: Vec<&str> = sent.accepted.iter().map(|(k, _)| k.as_str()).collect();
    let leaked = w.receiver.filtered(|d| {
        (d.body.contains(&run) || d.idempotency_key.starts_with(&run))
            && !accepted_keys.contains(&d.idempotency_key.as_str())
    });
    ensure(leaked.is_empty(), || {
        format!("rejected requests reached the backend: {leaked:?}")
    })?;

    // And at the queues, without waiting for anything: the rejected cases again, on the
    // scheduled stack, whose queues nothing else consumes while this suite holds them.
    let quiet = w.stack(StackKind::Scheduled)?;
    let _alone = w.exclusive(StackKind::Scheduled).await;
    let rejected_only: Vec<(usize, &Case)> = cases
        .iter()
        .enumerate()
        .filter(|(_, c)| c.want != Want::Accepted)
        .collect();
    let again = send(w, quiet, &format!("{run}-q"), rejected_only.iter().copied()).await;
    again.ensure_right(rejected_only.len())?;
    for queue in [
        quiet.output("failover_queue_url"),
        quiet.output("queue_url"),
    ] {
        w.ensure_empty("a queue after rejected requests", queue)
            .await?;
    }
    eprintln!(
        "bad input: {} requests, {} rejected with their 4xx (and again with empty queues), {} legitimate variants accepted and delivered, {} 5xx",
        cases.len(),
        sent.rejected,
        sent.accepted.len(),
        sent.server_errors
    );
    Ok(())
}

/// The documented rejection: status, a JSON error with the code and a message, and for 405 the
/// `Allow` header. A `HEAD` answer has no body to check.
fn check_rejection(a: &Answer, head: bool, status: u16, code: &str) -> Result<(), String> {
    let shaped =
        head || (a.json["error"]["code"] == code && a.json["error"]["message"].is_string());
    let json = a
        .content_type
        .as_deref()
        .is_some_and(|ct| ct.starts_with("application/json"));
    let allow = status != 405 || a.allow.as_deref() == Some("POST");
    if a.status == status && shaped && json && allow {
        Ok(())
    } else {
        Err(format!(
            "expected {status} {code}, got {} {} (content-type {:?}, allow {:?})",
            a.status, a.json, a.content_type, a.allow
        ))
    }
}
