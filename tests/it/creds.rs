//! Backends behind credentials (issue 13): the forwarder reaches a backend over mutual TLS that
//! requires a header from a secret, an OAuth2 bearer token and a Standard Webhooks signature, all
//! read from LocalStack's SSM and Secrets Manager. Tokens expire and are refreshed, a revoked
//! token and a rotated header secret cost one more request and no retry, and an identity
//! provider that is down, a client secret that is wrong, a client certificate the backend no
//! longer trusts and none at all hold orders back without losing or dead-lettering one.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::creds::{
    BACKEND_PORT, CA_CN, CLIENT_CN, Check, ClientAuth, Pki, SecureBackend, SecureDelivery,
    TOKEN_PORT, TokenEndpoint,
};
use crate::support::{Outcome, Stack, StackKind, World, ensure, now_ms, poll_until, unique};

const CLIENT_ID: &str = "sfit-forwarder";
const CLIENT_SECRET: &str = "sfit client secret: +&=:/ all RFC 6749-encoded";
const ROTATED_CLIENT_SECRET: &str = "sfit rotated client secret";
const SIGNING_SECRET: &str = "whsec_c2ZpdC1jcmVkcy1zaWduaW5nLXNlY3JldC0zMmJ5dGVzIQ==";
const API_KEY: &str = "sfit-key-1";
const ROTATED_API_KEY: &str = "sfit-key-2";
/// The token lifetime while the suite watches tokens being refreshed.
const SHORT_LIFETIME: Duration = Duration::from_secs(4);
/// Long enough for the local event source mapping's polling, retries and the outages.
const TO_DELIVER: Duration = Duration::from_secs(90);
/// How long the token endpoint is down, and the client secret wrong.
const OUTAGE: Duration = Duration::from_secs(6);

/// The secrets, where `tests/stacks/creds.tfvars` says they are.
fn parameter(name: &str) -> String {
    format!("/sfit-creds/{name}")
}

fn secret(name: &str) -> String {
    format!("sfit-creds/{name}")
}

pub async fn orders_reach_a_backend_behind_mtls_oauth2_and_a_header_secret(w: &World) -> Outcome {
    let pki = Pki::generate()?;
    let tokens = TokenEndpoint::start(TOKEN_PORT).await?;
    tokens.set_client(CLIENT_ID, CLIENT_SECRET);
    let backend = SecureBackend::start(BACKEND_PORT, &pki, Some(tokens.clone())).await?;
    backend.require_header("X-Api-Key", API_KEY);
    backend.require_signature(SIGNING_SECRET)?;
    // Before the first order: the stack's forwarder reads them all at cold start (the stack
    // itself may be applied already).
    put_parameter(w, &parameter("signing-secret"), SIGNING_SECRET).await?;
    put_parameter(w, &parameter("headers"), &headers(API_KEY)).await?;
    put_parameter(w, &parameter("ca"), pki.ca_pem()).await?;
    put_secret(w, &secret("oauth-client"), CLIENT_SECRET).await?;
    put_secret(w, &secret("client-certificate"), pki.client_pem()).await?;
    let stack = w.stack(StackKind::Credentials)?;
    let since = now_ms();
    let run = unique("creds");

    // Everything at once: the client certificate, the header, a token for the right scope and
    // audience, and the signature (any failed check would be a 401 or 403).
    let keys = post(w, stack, &run, 5).await?;
    for key in &keys {
        await_ok(&backend, key).await?;
    }
    for key in &keys {
        let attempts = attempts(&backend, key);
        ensure(attempts.len() == 1, || {
            format!("{key}: one request expected, got {attempts:?}")
        })?;
        let a = &attempts[0];
        ensure(
            a.client_cn == CLIENT_CN && a.client_issuer_cn == CA_CN,
            || format!("{key}: the client certificate was not ours: {a:?}"),
        )?;
    }
    let asked = tokens.requests();
    ensure(
        !asked.is_empty()
            && asked.iter().all(|r| {
                r.client_id.as_deref() == Some(CLIENT_ID)
                    && r.auth == Some(ClientAuth::Basic)
                    && r.scope.as_deref() == Some("orders:write")
                    && r.audience.as_deref() == Some("https://backend.sfit.test")
            }),
        || format!("token requests: {asked:?}"),
    )?;
    ensure(asked.len() < keys.len(), || {
        format!("a token serves many deliveries while it lives; asked {asked:?}")
    })?;

    // Tokens that expire during the run are refreshed before they do: a 4 s token, orders 1.5 s
    // apart for 9 s, no request refused.
    tokens.set_lifetime(SHORT_LIFETIME);
    tokens.revoke_all();
    let before = tokens.requests().len();
    let mut spread = Vec::new();
    for _ in 0..7 {
        spread.extend(post(w, stack, &run, 1).await?);
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    for key in &spread {
        await_ok(&backend, key).await?;
    }
    let issued = tokens.requests()[before..]
        .iter()
        .filter(|r| r.status == 200)
        .count();
    let (taken, refused): (Vec<SecureDelivery>, Vec<SecureDelivery>) = spread
        .iter()
        .flat_map(|key| attempts(&backend, key))
        .partition(|a| a.status == 200);
    // The first of them may meet the revoked long-lived token.
    ensure(refused.len() <= 1, || {
        format!("tokens must be refreshed before they expire: {refused:?}")
    })?;
    let mut used: Vec<&str> = taken.iter().filter_map(|a| a.bearer.as_deref()).collect();
    used.sort_unstable();
    used.dedup();
    ensure(issued >= 2 && used.len() >= 2, || {
        format!("10 s of 4 s tokens: {issued} issued, {} used", used.len())
    })?;
    tokens.set_lifetime(Duration::from_secs(3600));
    // Whatever short-lived token the forwarder holds now is revoked: the next order has it take
    // a long-lived one, so that the revocation below meets a token it still holds valid.
    tokens.revoke_all();
    let key = post(w, stack, &run, 1).await?.remove(0);
    await_ok(&backend, &key).await?;

    // A revoked token: the backend's 401 gets a new token and the same delivery once more, at
    // once (the next receive would be at least a second later).
    tokens.revoke_all();
    let key = post(w, stack, &run, 1).await?.remove(0);
    await_ok(&backend, &key).await?;
    refused_then_taken(&backend, &key, Check::Bearer)?;

    // A rotated header secret: the backend's 403 has the forwarder read the secret again.
    put_parameter(w, &parameter("headers"), &headers(ROTATED_API_KEY)).await?;
    backend.require_header("X-Api-Key", ROTATED_API_KEY);
    // The refresh interval (1 s) since the last read must have passed.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let key = post(w, stack, &run, 1).await?.remove(0);
    await_ok(&backend, &key).await?;
    refused_then_taken(&backend, &key, Check::Header)?;

    // The token endpoint down, and the token revoked: no order can go; each waits for its next
    // receive, none is dead-lettered, and all arrive once it is back.
    tokens.set_unavailable(true);
    tokens.revoke_all();
    let asked = tokens.requests().len();
    let held = post(w, stack, &run, 3).await?;
    held_back(&backend, &tokens, asked, &held, 503).await?;
    tokens.set_unavailable(false);
    for key in &held {
        await_ok(&backend, key).await?;
    }

    // Wrong credentials: the identity provider takes only a new client secret. Orders wait
    // (rejected, retried); once the secret in Secrets Manager is rotated too, the forwarder reads
    // it again and they arrive, without a redeploy.
    tokens.set_client(CLIENT_ID, ROTATED_CLIENT_SECRET);
    tokens.revoke_all();
    let asked = tokens.requests().len();
    let waiting = post(w, stack, &run, 2).await?;
    held_back(&backend, &tokens, asked, &waiting, 401).await?;
    put_secret(w, &secret("oauth-client"), ROTATED_CLIENT_SECRET).await?;
    for key in &waiting {
        await_ok(&backend, key).await?;
    }

    // A client certificate the backend no longer trusts: refused at the handshake and retried;
    // delivered once the backend trusts its CA again.
    let refused_before = backend.refused_handshakes();
    backend.trust_client_ca(pki.other_ca_pem())?;
    backend.drop_connections();
    let key = post(w, stack, &run, 1).await?.remove(0);
    poll_until("a refused handshake", TO_DELIVER, || async {
        (backend.refused_handshakes() > refused_before).then_some(())
    })
    .await?;
    ensure(!delivered(&backend, &key), || {
        format!("{key} delivered over a refused handshake")
    })?;
    backend.trust_client_ca(pki.ca_pem())?;
    await_ok(&backend, &key).await?;

    // Deployed without its client certificate: every handshake is refused and the order retried;
    // delivered once the certificate is configured again.
    let function = stack.output("forwarder_function_name");
    let deployed = w.function_environment(function).await?;
    let mut without = deployed.clone();
    ensure(
        without
            .as_object_mut()
            .and_then(|v| v.remove("CLIENT_CERTIFICATE_SECRET_ARN"))
            .is_some(),
        || format!("the forwarder has no CLIENT_CERTIFICATE_SECRET_ARN: {deployed}"),
    )?;
    w.set_function_environment(function, &without).await?;
    let refused_before = backend.refused_handshakes();
    let key = post(w, stack, &run, 1).await?.remove(0);
    poll_until(
        "a handshake without a certificate, refused",
        TO_DELIVER,
        || async { (backend.refused_handshakes() > refused_before).then_some(()) },
    )
    .await?;
    ensure(!delivered(&backend, &key), || {
        format!("{key} delivered without a client certificate")
    })?;
    w.set_function_environment(function, &deployed).await?;
    await_ok(&backend, &key).await?;

    // Nothing lost, nothing dead-lettered; the failures counted by class.
    w.ensure_empty("the DLQ", stack.output("dlq_url")).await?;
    let counts = poll_until("the forwarder's metrics", TO_DELIVER, || async {
        let counts = metric_sums(w, stack, since).await.ok()?;
        (counts.0 > 0 && counts.1 > 0).then_some(counts)
    })
    .await?;
    eprintln!(
        "creds: {} token requests, {} deliveries, {} refused handshakes; CredentialsUnavailable {}, CredentialsRejected {}",
        tokens.requests().len(),
        backend.deliveries().len(),
        backend.refused_handshakes(),
        counts.0,
        counts.1
    );
    Ok(())
}

/// Waits until the token endpoint has answered `status` to a request after its first `asked`,
/// and then [`OUTAGE`]: none of `keys` may reach the backend meanwhile.
async fn held_back(
    backend: &SecureBackend,
    tokens: &TokenEndpoint,
    asked: usize,
    keys: &[String],
    status: u16,
) -> Outcome {
    poll_until(
        &format!("the token endpoint to answer {status}"),
        TO_DELIVER,
        || async {
            tokens.requests()[asked..]
                .iter()
                .any(|r| r.status == status)
                .then_some(())
        },
    )
    .await?;
    tokio::time::sleep(OUTAGE).await;
    ensure(keys.iter().all(|k| !delivered(backend, k)), || {
        format!("delivered while the token endpoint answered {status}")
    })
}

fn headers(api_key: &str) -> String {
    json!({ "X-Api-Key": api_key }).to_string()
}

async fn put_parameter(w: &World, name: &str, value: &str) -> Outcome {
    let request =
        json!({ "Name": name, "Type": "SecureString", "Value": value, "Overwrite": true });
    let (status, answer) = w
        .aws("ssm", Some("AmazonSSM.PutParameter"), "/", &request)
        .await?;
    ensure(status == 200, || {
        format!("PutParameter {name}: {status} {answer}")
    })
}

/// Creates the secret, or gives it a new value if it exists (a LocalStack that is reused).
async fn put_secret(w: &World, name: &str, value: &str) -> Outcome {
    // The AWS CLI and SDKs generate the idempotency token; a raw call must send one.
    let token = || uuid::Uuid::new_v4().to_string();
    let create = json!({ "Name": name, "SecretString": value, "ClientRequestToken": token() });
    let (status, answer) = w
        .aws(
            "secretsmanager",
            Some("secretsmanager.CreateSecret"),
            "/",
            &create,
        )
        .await?;
    if status == 200 {
        return Ok(());
    }
    let put = json!({ "SecretId": name, "SecretString": value, "ClientRequestToken": token() });
    let (status, again) = w
        .aws(
            "secretsmanager",
            Some("secretsmanager.PutSecretValue"),
            "/",
            &put,
        )
        .await?;
    ensure(status == 200, || {
        format!("CreateSecret {name}: {answer}; PutSecretValue: {status} {again}")
    })
}

/// Posts `n` orders; their idempotency keys.
async fn post(w: &World, stack: &Stack, run: &str, n: usize) -> Result<Vec<String>, String> {
    let bodies = (0..n)
        .map(|_| json!({ "id": unique(run) }).to_string())
        .collect();
    w.accept_all(stack, bodies, n).await
}

fn attempts(backend: &SecureBackend, key: &str) -> Vec<SecureDelivery> {
    backend
        .deliveries()
        .into_iter()
        .filter(|d| d.idempotency_key == key)
        .collect()
}

fn delivered(backend: &SecureBackend, key: &str) -> bool {
    attempts(backend, key).iter().any(|a| a.status == 200)
}

async fn await_ok(backend: &SecureBackend, key: &str) -> Outcome {
    poll_until(&format!("{key} delivered"), TO_DELIVER, || async {
        delivered(backend, key).then_some(())
    })
    .await
}

/// The order's first request failed `check`, and the request that followed at once (not a
/// receive later) was taken.
fn refused_then_taken(backend: &SecureBackend, key: &str, check: Check) -> Outcome {
    let attempts = attempts(backend, key);
    let shape: Vec<(u16, Option<Check>)> = attempts.iter().map(|a| (a.status, a.failed)).collect();
    ensure(
        attempts.len() == 2 && attempts[0].failed == Some(check) && attempts[1].status == 200,
        || format!("{key}: expected {check:?} refused, then taken: {shape:?}"),
    )?;
    let gap = attempts[1].at.duration_since(attempts[0].at);
    ensure(gap < Duration::from_millis(900), || {
        format!("{key}: the second request came {gap:?} later: a retry, not the same attempt")
    })
}

/// The sums of `CredentialsUnavailable` and `CredentialsRejected` in the forwarder's EMF
/// documents since `since`.
async fn metric_sums(w: &World, stack: &Stack, since: u64) -> Result<(u64, u64), String> {
    let lines = w
        .log_lines(stack.output("forwarder_function_name"), since)
        .await?;
    let documents: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|d| d.get("_aws").is_some())
        .collect();
    let sum = |name: &str| {
        documents
            .iter()
            .filter_map(|d| d[name].as_u64())
            .sum::<u64>()
    };
    Ok((sum("CredentialsUnavailable"), sum("CredentialsRejected")))
}
