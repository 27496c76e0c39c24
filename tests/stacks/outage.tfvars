# Integration suite, storage outage: the store reaches SQS only through the suite's switchable
# proxy on 9912; a failover queue; the suite's backend on 9911.
backend_url           = "http://127.0.0.1:9911/sales/save-order"
enable_failover_queue = true
# The proxy refuses by resetting the connection, at once; the attempt timeout only bounds SQS's
# own answers, which can take seconds while other suites keep LocalStack's one Python process busy:
# with 1,000 ms one of the 50 orders of the failover check missed the failover queue, with 2,000 ms
# two were answered 503 (the failover queue failed as well). Two attempts of 5 s on each queue,
# within the store's timeout of 20 s here (API Gateway waits 29 s).
store_timeout = 20
store_environment = {
  AWS_ENDPOINT_URL = "http://127.0.0.1:9912"
  SQS_MAX_ATTEMPTS = "2"
  SQS_TIMEOUT_MS   = "5000"
}
