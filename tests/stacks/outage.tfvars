# Integration suite, storage outage: the store reaches SQS only through the suite's switchable
# proxy on 9912; a failover queue; the suite's backend on 9911.
backend_url           = "http://127.0.0.1:9911/sales/save-order"
enable_failover_queue = true
# The proxy refuses by resetting the connection, at once; the attempt timeout only bounds SQS's
# own answers, which can take a second while the other suites keep LocalStack busy (with
# 1,000 ms, one run stored 49 of 50 orders in the failover queue). Two attempts of 2 s on each
# queue stay within the store's 10 s timeout (infra/localstack.tfvars).
store_environment = {
  AWS_ENDPOINT_URL = "http://127.0.0.1:9912"
  SQS_MAX_ATTEMPTS = "2"
  SQS_TIMEOUT_MS   = "2000"
}
