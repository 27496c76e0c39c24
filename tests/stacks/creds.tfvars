# Integration suite, backend credentials (tests/it/creds.rs): standard queue, event source mapping,
# DLQ; a backend over mutual TLS on 9932 that requires a header from a secret, a bearer token from
# the token endpoint on 9931 and a Standard Webhooks signature. The suite puts every secret in
# LocalStack's SSM and Secrets Manager before its first order (the forwarder reads them at cold
# start). The Secrets Manager ARNs have no random suffix: IAM gets `-??????` appended.
backend_url                   = "https://127.0.0.1:9932/sales/save-order"
signing_secret_arn            = "arn:aws:ssm:us-east-1:000000000000:parameter/sfit-creds/signing-secret"
backend_headers_secret_arn    = "arn:aws:ssm:us-east-1:000000000000:parameter/sfit-creds/headers"
oauth_token_url               = "http://127.0.0.1:9931/oauth/token"
oauth_client_id               = "sfit-forwarder"
oauth_client_secret_arn       = "arn:aws:secretsmanager:us-east-1:000000000000:secret:sfit-creds/oauth-client"
oauth_scope                   = "orders:write"
oauth_audience                = "https://backend.sfit.test"
client_certificate_secret_arn = "arn:aws:secretsmanager:us-east-1:000000000000:secret:sfit-creds/client-certificate"
backend_ca_arn                = "arn:aws:ssm:us-east-1:000000000000:parameter/sfit-creds/ca"
# A rotated secret is re-read after a refusal at most once a second.
credentials_refresh_seconds = 1
# Outages of the token endpoint and wrong credentials are retried, never dead-lettered, while the
# receives last: ten receives 1-2 s, then 2-4 s, then 1-2 s apart give the suite's outages
# (about 6 s each) a wide margin.
retry_schedule_seconds = [2, 4]
max_receive_count      = 10
# The breaker has suites of its own; here the retries alone carry the orders through.
breaker_threshold = 0
