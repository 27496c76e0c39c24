# Integration suite, storage outage: the store reaches SQS only through the suite's switchable
# proxy on 9912; a failover queue; the suite's backend on 9911.
backend_url           = "http://127.0.0.1:9911/sales/save-order"
enable_failover_queue = true
store_environment = {
  AWS_ENDPOINT_URL = "http://127.0.0.1:9912"
  SQS_MAX_ATTEMPTS = "2"
  SQS_TIMEOUT_MS   = "1000"
}
