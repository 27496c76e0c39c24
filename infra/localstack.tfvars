# LocalStack (`make local`): the functions run as host processes on this machine, so they are
# built for the host, time out quickly, and a message that keeps failing reaches the DLQ within
# about two minutes. `scripts/apply-local` applies it with a state of its own under .local/ (see
# README.md), after `make build-local`, against a LocalStack started with SQS_ENDPOINT_STRATEGY=off.

name_prefix = "storeforward"
tags = {
  environment = "local"
}

architecture          = "x86_64"
log_retention_in_days = 1

# Store
store_timeout = 10

# Forwarder: the local demo backend.
backend_url        = "http://127.0.0.1:9090/sales/save-order"
forwarder_timeout  = 10
request_timeout_ms = 3000
connect_timeout_ms = 1000

# Retries: after the 1st failed receive the message waits at most 1 s, after the 2nd 2 s, after
# the 3rd 1 s again (past the schedule the first delay repeats; plus up to 3 s per attempt for a
# backend that times out); the 4th receive exceeds max_receive_count and SQS moves it to the DLQ. max_receive_count is
# explicit: left null it would be 5 (the schedule's 3 receives plus the circuit breaker's outage
# allowance of 2), and the integration suite counts on 3, the least the breaker accepts. Should a
# ChangeMessageVisibility call fail, the 60 s visibility timeout applies instead.
retry_schedule_seconds = [1, 2]
max_receive_count      = 3

# Circuit breaker: probe a backend that looks down every 10 s instead of every minute.
probe_interval_seconds = 10

# Queues: 60 s = 6 x forwarder_timeout + batching window.
queue_visibility_timeout_seconds   = 60
maximum_batching_window_in_seconds = 0
batch_size                         = 10

# LocalStack publishes the SQS metrics every 10 s (localstack/bin/start), so a stack may alarm
# within seconds (alarm_period_seconds = 10); on AWS the metrics come once a minute.
alarm_sub_minute_periods = true

# LocalStack 4.13.1 on Python 3.11 fails every kms:CreateKey (500: its uuid5 call takes bytes only
# from Python 3.12 on), so a stack with alarm_notifications gets its topic unencrypted here.
alarm_topic_encrypted = false

# No AWS_ENDPOINT_URL here: LocalStack gives every function its own endpoint (the process
# executor in host mode, LocalStack itself in Docker mode).
