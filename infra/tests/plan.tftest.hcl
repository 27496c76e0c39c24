# Offline checks of the configuration: plans against a mocked provider (no AWS, no LocalStack, no
# build needed). Terraform >= 1.7:
#   terraform -chdir=infra init -backend=false && terraform -chdir=infra test

mock_provider "aws" {
  override_data {
    target = data.aws_caller_identity.current
    values = { account_id = "123456789012" }
  }

  override_data {
    target = data.aws_partition.current
    values = { partition = "aws" }
  }

  override_data {
    target = data.aws_region.current
    values = { name = "us-east-1" }
  }

  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
}

variables {
  backend_url = "https://backend.example.com/sales/save-order"
  # Any existing file will do for a plan: only its hash is taken.
  store_package     = "README.md"
  forwarder_package = "README.md"
}

################################################################################
# Shapes
################################################################################

run "defaults" {
  command = plan

  assert {
    condition     = toset(keys(aws_lambda_event_source_mapping.this)) == toset(["orders", "probe"]) && length(aws_cloudwatch_event_rule.schedule) == 0
    error_message = "trigger = sqs must create an event source mapping for the orders queue and one for the probe queue, and no schedule rule."
  }

  assert {
    condition     = jsondecode(aws_sqs_queue.dlq.redrive_allow_policy).sourceQueueArns == ["arn:aws:sqs:us-east-1:123456789012:storeforward-orders"]
    error_message = "The DLQ must allow exactly the orders queue."
  }

  assert {
    condition     = aws_lambda_function.store.environment[0].variables["MAX_MESSAGE_BYTES"] == "262144" && !contains(keys(aws_lambda_function.store.environment[0].variables), "FAILOVER_QUEUE_URL")
    error_message = "The store must get MAX_MESSAGE_BYTES and no FAILOVER_QUEUE_URL without a failover queue."
  }

  assert {
    condition     = length(aws_api_gateway_method.store) == 2 && alltrue([for m in aws_api_gateway_method.store : m.http_method == "ANY"]) && aws_api_gateway_resource.proxy[0].path_part == "{proxy+}"
    error_message = "Every method on / and /{proxy+} must reach the store, which answers wrong routes with its JSON 404/405."
  }

  assert {
    condition     = aws_lambda_function.forwarder.logging_config[0].log_format == "JSON" && aws_lambda_function.forwarder.architectures[0] == "arm64"
    error_message = "The forwarder must log JSON and default to arm64."
  }

  assert {
    condition     = aws_lambda_event_source_mapping.this["orders"].function_response_types == toset(["ReportBatchItemFailures"])
    error_message = "The event source mapping must report batch item failures."
  }
}

run "auth_api_key_by_default" {
  command = plan

  assert {
    condition     = alltrue([for m in aws_api_gateway_method.store : m.api_key_required && m.authorization == "NONE"])
    error_message = "By default every route must require an API key."
  }

  assert {
    condition     = length(aws_api_gateway_api_key.this) == 1 && length(aws_api_gateway_usage_plan_key.this) == 1
    error_message = "The default stack must create its API key and put it in the usage plan."
  }

  assert {
    condition     = aws_api_gateway_usage_plan.this[0].throttle_settings[0].rate_limit == 100 && aws_api_gateway_usage_plan.this[0].throttle_settings[0].burst_limit == 200 && aws_api_gateway_usage_plan.this[0].quota_settings[0].limit == 1000000 && aws_api_gateway_usage_plan.this[0].quota_settings[0].period == "DAY"
    error_message = "The usage plan must throttle and cap each key by the usage_plan_* variables."
  }
}

run "alarms_by_default" {
  command = plan

  assert {
    condition     = toset(keys(aws_cloudwatch_metric_alarm.this)) == toset(["dlq-not-empty", "orders-oldest-message", "delivery-paused", "forwarder-errors", "forwarder-throttles", "store-errors", "store-throttles", "api-5xx"])
    error_message = "The default stack must alarm on dead letters, the age of the oldest order, delivery paused, errors and throttles of both functions, and the API's 5XX answers."
  }

  assert {
    condition     = aws_cloudwatch_metric_alarm.this["store-throttles"].namespace == "AWS/Lambda" && aws_cloudwatch_metric_alarm.this["store-throttles"].metric_name == "Throttles" && aws_cloudwatch_metric_alarm.this["store-throttles"].dimensions == tomap({ FunctionName = "storeforward-store" }) && aws_cloudwatch_metric_alarm.this["store-errors"].metric_name == "Errors" && aws_cloudwatch_metric_alarm.this["store-errors"].dimensions == tomap({ FunctionName = "storeforward-store" })
    error_message = "The store's errors and throttles must be watched: a throttled store refuses orders."
  }

  assert {
    condition     = aws_cloudwatch_metric_alarm.this["api-5xx"].namespace == "AWS/ApiGateway" && aws_cloudwatch_metric_alarm.this["api-5xx"].metric_name == "5XXError" && aws_cloudwatch_metric_alarm.this["api-5xx"].dimensions == tomap({ ApiName = "storeforward-api", Stage = "v1" }) && aws_cloudwatch_metric_alarm.this["api-5xx"].statistic == "Sum" && aws_cloudwatch_metric_alarm.this["api-5xx"].threshold == 0
    error_message = "The API's 5XX answers must be watched (ApiName and Stage of this stack)."
  }

  assert {
    condition     = aws_cloudwatch_metric_alarm.this["dlq-not-empty"].metric_name == "ApproximateNumberOfMessagesVisible" && aws_cloudwatch_metric_alarm.this["dlq-not-empty"].threshold == 0 && aws_cloudwatch_metric_alarm.this["dlq-not-empty"].comparison_operator == "GreaterThanThreshold" && aws_cloudwatch_metric_alarm.this["orders-oldest-message"].threshold == 900
    error_message = "The DLQ alarm must fire on its first message, the age alarm after 900 s."
  }

  assert {
    condition     = length(aws_sns_topic.alarms) == 0 && alltrue([for a in aws_cloudwatch_metric_alarm.this : length(a.alarm_actions) == 0])
    error_message = "Without alarm_notifications no topic is created and alarms notify nobody."
  }

  assert {
    condition     = toset(keys(aws_sqs_queue_policy.tls_only)) == toset(["orders", "dlq", "probe"])
    error_message = "Every queue must have its TLS-only policy."
  }

  assert {
    condition     = aws_sqs_queue.orders.sqs_managed_sse_enabled && aws_sqs_queue.dlq.sqs_managed_sse_enabled && aws_sqs_queue.orders.kms_master_key_id == null
    error_message = "Without a KMS key the queues must use SSE-SQS."
  }
}

run "alarm_topic_and_kms" {
  command = plan

  variables {
    enable_failover_queue = true
    alarm_notifications   = true
    alarm_emails          = ["oncall@example.com"]
    kms_key_arn           = "arn:aws:kms:us-east-1:123456789012:key/0b8d3c5e-1111-2222-3333-444455556666"
  }

  assert {
    condition     = contains(keys(aws_cloudwatch_metric_alarm.this), "failover-oldest-message") && length(aws_sns_topic.alarms) == 1 && length(aws_sns_topic_subscription.alarm_emails) == 1
    error_message = "With a failover queue its age must be watched; alarm_notifications must create the topic and its subscriptions."
  }

  assert {
    condition     = alltrue([for q in [aws_sqs_queue.orders, aws_sqs_queue.dlq, aws_sqs_queue.failover[0]] : q.kms_master_key_id == var.kms_key_arn]) && aws_sns_topic.alarms[0].kms_master_key_id == var.kms_key_arn
    error_message = "A KMS key must encrypt every queue (instead of SSE-SQS) and the alarm topic."
  }

  assert {
    condition     = length(aws_kms_key.alarms) == 0
    error_message = "With kms_key_arn the alarm topic uses that key (whose policy must admit CloudWatch) and no key is created."
  }
}

run "alarm_topic_with_its_own_key" {
  command = plan

  variables {
    alarm_notifications = true
  }

  override_resource {
    target          = aws_kms_key.alarms
    override_during = plan
    values          = { arn = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555" }
  }

  override_resource {
    target          = aws_sns_topic.alarms
    override_during = plan
    values          = { arn = "arn:aws:sns:us-east-1:123456789012:storeforward-alarms" }
  }

  # CloudWatch cannot publish to a topic under alias/aws/sns: the topic gets a key whose policy
  # lets this stack's alarms generate and decrypt data keys.
  assert {
    condition     = aws_sns_topic.alarms[0].kms_master_key_id == "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555" && aws_kms_key.alarms[0].enable_key_rotation && aws_kms_alias.alarms[0].name == "alias/storeforward-alarms"
    error_message = "Without kms_key_arn the alarm topic must be encrypted with a key of its own (rotated, aliased), not alias/aws/sns."
  }

  assert {
    condition = one([for st in jsondecode(aws_kms_key.alarms[0].policy).Statement : st if st.Principal == { Service = "cloudwatch.amazonaws.com" }]) == {
      Sid       = "CloudWatchAlarmsPublish"
      Effect    = "Allow"
      Principal = { Service = "cloudwatch.amazonaws.com" }
      Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
      Resource  = "*"
      Condition = {
        StringEquals = { "aws:SourceAccount" = "123456789012" }
        ArnLike      = { "aws:SourceArn" = "arn:aws:cloudwatch:us-east-1:123456789012:alarm:storeforward-*" }
      }
    }
    error_message = "The key policy must let CloudWatch (this account's storeforward-* alarms only) use kms:Decrypt and kms:GenerateDataKey*."
  }

  assert {
    condition     = contains([for st in jsondecode(aws_kms_key.alarms[0].policy).Statement : st.Principal], { AWS = "arn:aws:iam::123456789012:root" })
    error_message = "The account must keep the key's administration, or the key policy locks everyone out."
  }

  assert {
    condition     = alltrue([for a in aws_cloudwatch_metric_alarm.this : startswith(a.alarm_name, "storeforward-") && a.alarm_actions == toset(["arn:aws:sns:us-east-1:123456789012:storeforward-alarms"])])
    error_message = "Every alarm must notify the topic and match the key policy's alarm name pattern."
  }
}

run "alarms_off" {
  command = plan

  variables {
    alarms_enabled = false
  }

  assert {
    condition     = length(aws_cloudwatch_metric_alarm.this) == 0
    error_message = "alarms_enabled = false must create no alarms."
  }
}

run "signing_secret_from_ssm" {
  command = plan

  variables {
    signing_secret_arn = "arn:aws:ssm:us-east-1:123456789012:parameter/storeforward/signing-secret"
  }

  assert {
    condition     = aws_lambda_function.forwarder.environment[0].variables["SIGNING_SECRET_ARN"] == var.signing_secret_arn && !contains(keys(aws_lambda_function.forwarder.environment[0].variables), "SIGNING_SECRET")
    error_message = "The forwarder must get the secret's ARN, not the secret."
  }
}

run "signing_secret_twice" {
  command = plan

  variables {
    signing_secret     = "whsec_c2ZpdC1vcHMtc2lnbmluZy1zZWNyZXQtMzJieXRlcyE="
    signing_secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:sf-AbCdEf"
  }

  expect_failures = [aws_lambda_function.forwarder]
}

run "auth_iam" {
  command = plan

  variables {
    api_auth = "iam"
  }

  assert {
    condition     = alltrue([for m in aws_api_gateway_method.store : !m.api_key_required && m.authorization == "AWS_IAM"])
    error_message = "api_auth = iam must use AWS_IAM authorization and no API key."
  }

  assert {
    condition     = length(aws_api_gateway_api_key.this) == 0 && length(aws_api_gateway_usage_plan.this) == 0
    error_message = "api_auth = iam must not create an API key or usage plan."
  }
}

run "auth_off" {
  command = plan

  variables {
    api_auth = "none"
  }

  assert {
    condition     = alltrue([for m in aws_api_gateway_method.store : !m.api_key_required && m.authorization == "NONE"]) && length(aws_api_gateway_api_key.this) == 0
    error_message = "api_auth = none must leave the API open."
  }
}

run "auth_unknown" {
  command = plan

  variables {
    api_auth = "basic"
  }

  expect_failures = [var.api_auth]
}

run "schedule_fifo_failover" {
  command = plan

  variables {
    trigger               = "schedule"
    fifo                  = true
    enable_failover_queue = true
    message_group_pointer = "/customerId"
  }

  assert {
    condition     = length(aws_lambda_event_source_mapping.this) == 0 && aws_cloudwatch_event_rule.schedule[0].schedule_expression == "rate(1 minute)"
    error_message = "trigger = schedule must create the rule and no event source mapping."
  }

  assert {
    condition     = aws_sqs_queue.dlq.name == "storeforward-orders-dlq.fifo" && aws_sqs_queue.failover[0].fifo_queue
    error_message = "FIFO queues must be named .fifo."
  }

  assert {
    condition     = length(jsondecode(aws_sqs_queue.dlq.redrive_allow_policy).sourceQueueArns) == 2
    error_message = "The DLQ must allow the orders and the failover queue."
  }
}

run "sqs_with_failover" {
  command = plan

  variables {
    enable_failover_queue = true
    maximum_concurrency   = 7
  }

  assert {
    condition     = length(aws_lambda_event_source_mapping.this) == 3 && aws_lambda_event_source_mapping.this["failover"].scaling_config[0].maximum_concurrency == 7 && aws_lambda_event_source_mapping.this["orders"].scaling_config[0].maximum_concurrency == 7
    error_message = "The failover queue must get its own event source mapping, bounded like the orders queue's."
  }
}

################################################################################
# Concurrency: the forwarder is bounded, so that a draining backlog leaves the store its share
################################################################################

run "concurrency_by_default" {
  command = plan

  assert {
    condition     = aws_lambda_event_source_mapping.this["orders"].scaling_config[0].maximum_concurrency == 5 && aws_lambda_event_source_mapping.this["probe"].scaling_config[0].maximum_concurrency == 2
    error_message = "By default the orders queue's mapping must invoke at most 5 forwarders at once, the probe queue's 2."
  }

  assert {
    # Reserving needs an account limit of 100 + the reservation: new accounts (10) could not apply.
    condition     = coalesce(aws_lambda_function.store.reserved_concurrent_executions, -1) == -1 && coalesce(aws_lambda_function.forwarder.reserved_concurrent_executions, -1) == -1
    error_message = "By default no concurrency is reserved, so that the first apply works on a new account."
  }
}

run "concurrency_reserved" {
  command = plan

  variables {
    store_reserved_concurrency     = 20
    forwarder_reserved_concurrency = 7
  }

  assert {
    condition     = aws_lambda_function.store.reserved_concurrent_executions == 20 && aws_lambda_function.forwarder.reserved_concurrent_executions == 7
    error_message = "The reservations must reach the functions."
  }
}

run "forwarder_reserved_below_its_mappings" {
  command = plan

  # The orders and failover mappings (5 each) and the probe's (2) may invoke 12 at once.
  variables {
    enable_failover_queue          = true
    forwarder_reserved_concurrency = 11
  }

  expect_failures = [aws_lambda_function.forwarder]
}

run "forwarder_reserved_with_unbounded_mappings" {
  command = plan

  variables {
    maximum_concurrency            = null
    forwarder_reserved_concurrency = 100
  }

  expect_failures = [aws_lambda_function.forwarder]
}

run "forwarder_reserved_on_a_schedule" {
  command = plan

  variables {
    trigger                        = "schedule"
    forwarder_reserved_concurrency = 1
  }

  assert {
    condition     = aws_lambda_function.forwarder.reserved_concurrent_executions == 1
    error_message = "With the schedule (no mappings), any reservation bounds the forwarder."
  }
}

run "store_reserved_zero" {
  command = plan

  variables {
    store_reserved_concurrency = 0
  }

  expect_failures = [var.store_reserved_concurrency]
}

run "breaker_by_default" {
  command = plan

  assert {
    condition     = aws_sqs_queue.probe[0].name == "storeforward-orders-probe" && aws_sqs_queue.probe[0].sqs_managed_sse_enabled && !coalesce(aws_sqs_queue.probe[0].fifo_queue, false)
    error_message = "The breaker needs an encrypted, standard probe queue."
  }

  assert {
    condition     = aws_ssm_parameter.delivery_state[0].name == "/storeforward/delivery-state" && jsondecode(aws_ssm_parameter.delivery_state[0].value).state == "delivering"
    error_message = "The delivery state parameter must start as delivering."
  }

  assert {
    condition     = aws_lambda_function.forwarder.environment[0].variables["BREAKER_THRESHOLD"] == "10" && aws_lambda_function.forwarder.environment[0].variables["PROBE_INTERVAL_SECONDS"] == "60" && aws_lambda_function.forwarder.environment[0].variables["STATE_PARAMETER"] == "/storeforward/delivery-state"
    error_message = "The forwarder must get the breaker's threshold (10), probe interval (60 s) and state parameter."
  }

  assert {
    condition     = aws_lambda_event_source_mapping.this["probe"].function_response_types == toset(["ReportBatchItemFailures"])
    error_message = "The probe queue's mapping must report batch item failures, or failed probes would delete their tickets."
  }
}

run "paused_alarm" {
  command = plan

  variables {
    alarm_period_seconds = 60
    alarm_paused_seconds = 600
  }

  assert {
    condition     = aws_cloudwatch_metric_alarm.this["delivery-paused"].namespace == "storeforward" && aws_cloudwatch_metric_alarm.this["delivery-paused"].metric_name == "DeliveryPaused" && aws_cloudwatch_metric_alarm.this["delivery-paused"].evaluation_periods == 10
    error_message = "The paused alarm must fire after alarm_paused_seconds of DeliveryPaused (600 s / 60 s = 10 periods)."
  }
}

run "health_url" {
  command = plan

  variables {
    health_url = "https://backend.example.com/health"
  }

  assert {
    condition     = aws_lambda_function.forwarder.environment[0].variables["HEALTH_URL"] == "https://backend.example.com/health"
    error_message = "The forwarder must get HEALTH_URL for its probes."
  }
}

run "breaker_off" {
  command = plan

  variables {
    breaker_threshold = 0
  }

  assert {
    condition     = length(aws_sqs_queue.probe) == 0 && length(aws_ssm_parameter.delivery_state) == 0 && length(aws_iam_role_policy.breaker) == 0 && toset(keys(aws_lambda_event_source_mapping.this)) == toset(["orders"]) && !contains(keys(aws_cloudwatch_metric_alarm.this), "delivery-paused")
    error_message = "breaker_threshold = 0 must create no probe queue, state parameter, permissions, probe mapping or paused alarm."
  }

  assert {
    condition     = aws_lambda_function.forwarder.environment[0].variables["BREAKER_THRESHOLD"] == "0"
    error_message = "The forwarder must be told the breaker is off."
  }
}

run "retry_schedule_by_default" {
  command = plan

  assert {
    condition     = sum(var.retry_schedule_seconds) >= 23 * 3600 && sum(var.retry_schedule_seconds) <= 25 * 3600 && max(var.retry_schedule_seconds...) <= 43200
    error_message = "The default retry schedule must span about a day (23-25 h) in steps of at most 12 h."
  }

  assert {
    condition     = aws_lambda_function.forwarder.environment[0].variables["RETRY_SCHEDULE"] == "10,30,60,300,900,1800,3600,7200,14400,28800,28800"
    error_message = "The forwarder must get the schedule as RETRY_SCHEDULE, comma-separated seconds."
  }

  assert {
    # The redrive policy (which names the DLQ's ARN, unknown in a plan) takes the same local.
    condition     = aws_lambda_function.forwarder.environment[0].variables["MAX_RECEIVE_COUNT"] == tostring(length(var.retry_schedule_seconds) + 3)
    error_message = "max_receive_count must follow the schedule: one receive per retry, the first, and the circuit breaker's 2 (14)."
  }
}

run "retry_schedule_without_breaker" {
  command = plan

  variables {
    breaker_threshold      = 0
    retry_schedule_seconds = [60, 600]
  }

  assert {
    condition     = aws_lambda_function.forwarder.environment[0].variables["MAX_RECEIVE_COUNT"] == "3"
    error_message = "Without the breaker, max_receive_count must be one receive per retry plus the first."
  }
}

run "retry_schedule_longer_than_retention" {
  command = plan

  # 8 x 12 h of waits against the default 4 days of retention: messages would expire unseen.
  variables {
    retry_schedule_seconds = [43200, 43200, 43200, 43200, 43200, 43200, 43200, 43200]
  }

  expect_failures = [aws_sqs_queue.orders]
}

run "retention_shorter_than_the_default_schedule" {
  command = plan

  variables {
    message_retention_seconds = 86400
  }

  expect_failures = [aws_sqs_queue.orders]
}

run "retry_step_over_twelve_hours" {
  command = plan

  variables {
    retry_schedule_seconds = [10, 43201]
  }

  expect_failures = [var.retry_schedule_seconds]
}

run "retry_schedule_empty" {
  command = plan

  variables {
    retry_schedule_seconds = []
  }

  expect_failures = [var.retry_schedule_seconds]
}

run "max_receive_count_too_low_for_the_breaker" {
  command = plan

  variables {
    max_receive_count = 2
  }

  expect_failures = [aws_sqs_queue.orders]
}

run "probe_interval_too_long" {
  command = plan

  variables {
    probe_interval_seconds = 901
  }

  expect_failures = [var.probe_interval_seconds]
}

run "localstack_values" {
  command = plan

  # The timing values of localstack.tfvars must satisfy the rules.
  variables {
    architecture                     = "x86_64"
    forwarder_timeout                = 10
    request_timeout_ms               = 3000
    queue_visibility_timeout_seconds = 60
    max_receive_count                = 3
    retry_schedule_seconds           = [1, 2]
  }

  assert {
    condition     = aws_lambda_function.forwarder.environment[0].variables["MAX_RECEIVE_COUNT"] == "3" && aws_lambda_function.forwarder.environment[0].variables["RETRY_SCHEDULE"] == "1,2"
    error_message = "The local stack must keep its 3 receives (the integration suite counts on them) and its 1 s, 2 s retries."
  }
}

################################################################################
# Rules
################################################################################

run "visibility_timeout_too_short" {
  command = plan

  variables {
    queue_visibility_timeout_seconds = 100
  }

  expect_failures = [aws_sqs_queue.orders]
}

run "fifo_with_batching_window" {
  command = plan

  variables {
    fifo                               = true
    maximum_batching_window_in_seconds = 5
    queue_visibility_timeout_seconds   = 300
  }

  expect_failures = [aws_lambda_event_source_mapping.this]
}

run "large_batch_without_window" {
  command = plan

  variables {
    batch_size = 100
  }

  expect_failures = [aws_lambda_event_source_mapping.this]
}

run "dlq_retention_not_longer" {
  command = plan

  variables {
    message_retention_seconds = 1209600
  }

  expect_failures = [aws_sqs_queue.dlq]
}

run "forwarder_timeout_below_request_timeout" {
  command = plan

  variables {
    request_timeout_ms = 30000
  }

  expect_failures = [aws_lambda_function.forwarder]
}

run "unknown_trigger" {
  command = plan

  variables {
    trigger = "poll"
  }

  expect_failures = [var.trigger]
}

run "max_receive_count_zero" {
  command = plan

  variables {
    max_receive_count = 0
  }

  expect_failures = [var.max_receive_count]
}

run "maximum_concurrency_one" {
  command = plan

  variables {
    maximum_concurrency = 1
  }

  expect_failures = [var.maximum_concurrency]
}

run "log_level_above_info" {
  command = plan

  # The metric lines carry no level; Lambda files them under INFO and WARN would drop them.
  variables {
    log_level = "WARN"
  }

  expect_failures = [var.log_level]
}

run "log_level_debug" {
  command = plan

  variables {
    log_level = "DEBUG"
  }

  assert {
    condition     = aws_lambda_function.store.logging_config[0].application_log_level == "DEBUG" && aws_lambda_function.forwarder.logging_config[0].application_log_level == "DEBUG"
    error_message = "log_level must reach both functions' logging_config."
  }
}

run "gateway_responses_redeploy" {
  command = plan

  # A stage serves what its deployment snapshotted: the gateway responses must be part of the
  # deployment's triggers, or a change to them never goes live.
  assert {
    condition     = toset(keys(aws_api_gateway_gateway_response.this)) == toset(["DEFAULT_4XX", "DEFAULT_5XX"]) && alltrue([for r in aws_api_gateway_gateway_response.this : r.response_templates["application/json"] == local.gateway_error])
    error_message = "DEFAULT_4XX and DEFAULT_5XX must answer in the store's JSON error shape."
  }

  assert {
    condition = aws_api_gateway_deployment.this[0].triggers["gateway_responses"] == sha1(jsonencode({
      for type in ["DEFAULT_4XX", "DEFAULT_5XX"] : type => [
        null,
        { "application/json" = local.gateway_error },
        { "gatewayresponse.header.Content-Type" = "'application/json'" },
      ]
    }))
    error_message = "The deployment's triggers must hash every gateway response's status, templates and headers."
  }
}

run "alarm_period_below_a_minute" {
  command = plan

  # AWS publishes the SQS and Lambda metrics once a minute: a 10 s alarm would never fire.
  variables {
    alarm_period_seconds = 10
  }

  expect_failures = [aws_cloudwatch_metric_alarm.this]
}

run "alarm_period_below_a_minute_on_localstack" {
  command = plan

  variables {
    alarm_period_seconds     = 10
    alarm_sub_minute_periods = true
  }

  assert {
    condition     = alltrue([for a in aws_cloudwatch_metric_alarm.this : a.period == 10])
    error_message = "Where metrics come every 10 s (LocalStack), the alarms may evaluate every 10 s."
  }
}

################################################################################
# Lambda's 4 KB of environment variables (AWS refuses the function; LocalStack does not check)
################################################################################

run "environment_size_by_default" {
  command = plan

  assert {
    # {"MAX_MESSAGE_BYTES":"262144","ORDER_PATH":"/orders/new-order","QUEUE_URL":"https://sqs.us-east-1.amazonaws.com/123456789012/storeforward-orders"}
    condition     = local.environment_bytes.store == 146 && local.environment_bytes.forwarder > 500 && local.environment_bytes.forwarder < 1200
    error_message = "The default environments must be measured in bytes of JSON, queue URLs included, and stay far below 4 KB (store ${local.environment_bytes.store}, forwarder ${local.environment_bytes.forwarder} bytes)."
  }

  assert {
    condition     = strcontains(local.environment_json.store, "\"QUEUE_URL\":\"https://sqs.us-east-1.amazonaws.com/123456789012/storeforward-orders\"") && strcontains(local.environment_json.forwarder, "\"PROBE_QUEUE_URL\":\"https://sqs.us-east-1.amazonaws.com/123456789012/storeforward-orders-probe\"")
    error_message = "The queue URLs, unknown at plan, must be counted in their AWS form."
  }
}

run "environment_too_large_for_lambda" {
  command = plan

  # A schema of about 4,000 bytes: with the other variables, over 4 KB.
  variables {
    order_schema = jsonencode({ description = join("", [for i in range(400) : "0123456789"]) })
  }

  expect_failures = [aws_lambda_function.store]
}

run "environment_counted_in_bytes" {
  command = plan

  # 2,000 characters but 4,000 bytes: Lambda counts bytes.
  variables {
    order_schema = jsonencode({ description = join("", [for i in range(1000) : "éé"]) })
  }

  expect_failures = [aws_lambda_function.store]
}

run "environment_just_fits" {
  command = plan

  variables {
    order_schema = jsonencode({ description = join("", [for i in range(300) : "0123456789"]) })
  }

  assert {
    condition     = local.environment_bytes.store > 3000 && local.environment_bytes.store <= 4096 && aws_lambda_function.store.environment[0].variables["ORDER_SCHEMA"] == var.order_schema
    error_message = "A 3 KB schema fits within Lambda's 4 KB and must reach the store."
  }
}

run "environment_with_a_long_signing_secret" {
  command = plan

  # The secret is sensitive: counted by its length.
  variables {
    signing_secret = "whsec_${join("", [for i in range(1000) : "QUFB"])}"
  }

  expect_failures = [aws_lambda_function.forwarder]
}

################################################################################
# A zip built for one architecture, deployed as the other
################################################################################

run "package_built_for_the_other_architecture" {
  command = plan

  # Its marker says x86_64 (and carries its hash); the stack defaults to arm64.
  variables {
    store_package = "tests/fixtures/x86_64.zip"
  }

  expect_failures = [aws_lambda_function.store]
}

run "package_built_for_this_architecture" {
  command = plan

  variables {
    architecture      = "x86_64"
    store_package     = "tests/fixtures/x86_64.zip"
    forwarder_package = "tests/fixtures/x86_64.zip"
  }

  assert {
    condition     = local.package_architecture.store == "x86_64" && local.package_architecture.forwarder == "x86_64" && aws_lambda_function.store.architectures[0] == "x86_64"
    error_message = "A marker that matches its zip must be read, and agree with architecture."
  }
}

run "package_with_a_stale_marker" {
  command = plan

  # The marker names another zip (another hash), e.g. one rebuilt by hand since: it says nothing.
  variables {
    store_package     = "tests/fixtures/stale.zip"
    forwarder_package = "tests/fixtures/stale.zip"
  }

  assert {
    condition     = local.package_architecture.store == null && local.package_architecture.forwarder == null
    error_message = "A marker whose hash is not its zip's must be ignored."
  }
}

run "package_without_a_marker" {
  command = plan

  assert {
    condition     = local.package_architecture.store == null && local.package_architecture.forwarder == null
    error_message = "Without a marker nothing is checked (builds made without make)."
  }
}

################################################################################
# The signing secret: ARNs without their suffix, secrets under another key
################################################################################

run "signing_secret_from_secrets_manager_by_name" {
  command = plan

  # No random suffix: IAM compares the full ARN (…:secret:sf-signing-AbCdEf) and would deny.
  variables {
    signing_secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:sf-signing"
  }

  assert {
    condition     = toset(keys(local.secret_resources)) == toset(["secretsmanager"]) && local.secret_resources.secretsmanager == tolist(["arn:aws:secretsmanager:us-east-1:123456789012:secret:sf-signing", "arn:aws:secretsmanager:us-east-1:123456789012:secret:sf-signing-??????"])
    error_message = "The forwarder must be allowed the secret with and without its 6-character suffix."
  }

  assert {
    condition     = aws_lambda_function.forwarder.environment[0].variables["SIGNING_SECRET_ARN"] == var.signing_secret_arn && length(data.aws_iam_policy_document.kms) == 0
    error_message = "The forwarder reads the secret by the ARN given; no key is granted without one."
  }
}

run "signing_secret_from_ssm_exactly" {
  command = plan

  variables {
    signing_secret_arn = "arn:aws:ssm:us-east-1:123456789012:parameter/storeforward/signing-secret"
  }

  assert {
    condition     = toset(keys(local.secret_resources)) == toset(["ssm"]) && local.secret_resources.ssm == tolist(["arn:aws:ssm:us-east-1:123456789012:parameter/storeforward/signing-secret"])
    error_message = "An SSM parameter's ARN has no suffix: exactly that ARN."
  }
}

run "signing_secret_arn_with_a_wildcard" {
  command = plan

  variables {
    signing_secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:*"
  }

  expect_failures = [aws_iam_role_policy.forwarder]
}

run "signing_secret_key_without_a_secret" {
  command = plan

  variables {
    signing_secret_kms_key_arn = "arn:aws:kms:us-east-1:123456789012:key/0b8d3c5e-1111-2222-3333-444455556666"
  }

  expect_failures = [aws_iam_role_policy.forwarder]
}

run "signing_secret_key_alias" {
  command = plan

  variables {
    signing_secret_arn         = "arn:aws:secretsmanager:us-east-1:123456789012:secret:sf-signing-AbCdEf"
    signing_secret_kms_key_arn = "arn:aws:kms:us-east-1:123456789012:alias/signing"
  }

  expect_failures = [aws_iam_role_policy.forwarder]
}

run "signing_secret_under_its_own_key" {
  command = plan

  variables {
    signing_secret_arn         = "arn:aws:secretsmanager:us-east-1:123456789012:secret:sf-signing-AbCdEf"
    signing_secret_kms_key_arn = "arn:aws:kms:us-east-1:123456789012:key/0b8d3c5e-1111-2222-3333-444455556666"
  }

  assert {
    condition = alltrue([for st in data.aws_iam_policy_document.forwarder.statement : (
      st.actions == toset(["kms:Decrypt"])
      && st.resources == toset(["arn:aws:kms:us-east-1:123456789012:key/0b8d3c5e-1111-2222-3333-444455556666"])
      && st.condition == toset([{ test = "StringEquals", variable = "kms:ViaService", values = tolist(["secretsmanager.us-east-1.amazonaws.com"]) }])
    ) if st.sid == "DecryptSecrets"]) && length([for st in data.aws_iam_policy_document.forwarder.statement : st if st.sid == "DecryptSecrets"]) == 1
    error_message = "The forwarder must be allowed kms:Decrypt on the secret's key, through Secrets Manager only."
  }

  assert {
    condition     = one([for st in data.aws_iam_policy_document.forwarder.statement : st.resources if st.sid == "ReadSecrets"]) == toset(["arn:aws:secretsmanager:us-east-1:123456789012:secret:sf-signing-AbCdEf", "arn:aws:secretsmanager:us-east-1:123456789012:secret:sf-signing-AbCdEf-??????"])
    error_message = "The forwarder's policy must name the secret (and the suffix pattern)."
  }
}

run "signing_secret_keys_in_both_variables" {
  command = plan

  # signing_secret_kms_key_arn from before secret_kms_key_arns keeps working, and they add up.
  variables {
    signing_secret_arn         = "arn:aws:ssm:us-east-1:123456789012:parameter/storeforward/signing-secret"
    signing_secret_kms_key_arn = "arn:aws:kms:us-east-1:123456789012:key/0b8d3c5e-1111-2222-3333-444455556666"
    secret_kms_key_arns        = ["arn:aws:kms:us-east-1:123456789012:key/mrk-1234abcd", "arn:aws:kms:us-east-1:123456789012:key/0b8d3c5e-1111-2222-3333-444455556666"]
  }

  assert {
    condition = one([for st in data.aws_iam_policy_document.forwarder.statement : (
      st.resources == toset(["arn:aws:kms:us-east-1:123456789012:key/0b8d3c5e-1111-2222-3333-444455556666", "arn:aws:kms:us-east-1:123456789012:key/mrk-1234abcd"])
      && st.condition == toset([{ test = "StringEquals", variable = "kms:ViaService", values = tolist(["ssm.us-east-1.amazonaws.com"]) }])
    ) if st.sid == "DecryptSecrets"])
    error_message = "Each key once, decrypted through SSM only (where the one secret is)."
  }
}

# The shapes the forwarder's policy accepts (signing_secret_arn_with_a_wildcard and
# signing_secret_key_alias show that a refused one fails the plan).
run "secret_arn_shapes" {
  command = plan

  # ARN => accepted? (secrets, then KMS keys)
  assert {
    condition = alltrue([for arn, accepted in {
      "arn:aws:ssm:us-east-1:123456789012:parameter/storeforward/signing-secret"                           = true
      "arn:aws:ssm:eu-west-1:123456789012:parameter/backend_ca.pem"                                        = true
      "arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:prod/backend+headers@v2=x.y-AbCdEf" = true
      "arn:aws:secretsmanager:us-east-1:000000000000:secret:orders-apikey"                                 = true
      "arn:aws:ssm:us-east-1:123456789012:parameter/storeforward/*"                                        = false
      "arn:aws:ssm:us-east-1:123456789012:parameter/storeforward/signing-secre?"                           = false
      "arn:aws:ssm:*:123456789012:parameter/storeforward/signing-secret"                                   = false
      "arn:aws:secretsmanager:*:123456789012:secret:sf-signing"                                            = false
      "arn:aws:secretsmanager:us-east-1:*:secret:sf-signing"                                               = false
      "arn:aws:secretsmanager:us-east-1::secret:sf-signing"                                                = false
      "arn:aws:secretsmanager:us-east-1:123456789012:secret:sf-*"                                          = false
      "arn:aws:s3:::bucket/secret"                                                                         = false
      "arn:aws:ssm:us-east-1:123456789012:document/storeforward"                                           = false
      "storeforward/signing-secret"                                                                        = false
      "arn:aws:kms:us-east-1:123456789012:key/mrk-1234abcd"                                                = true
      "arn:aws:kms:us-east-1:123456789012:key/*"                                                           = false
      "arn:aws:kms:us-east-1:123456789012:alias/signing"                                                   = false
      "arn:aws:kms:*:123456789012:key/0b8d3c5e"                                                            = false
    } : can(regex(strcontains(arn, ":kms:") ? local.kms_key_arn_pattern : local.secret_arn_pattern, arn)) == accepted])
    error_message = "SSM parameters and Secrets Manager secrets (with or without the suffix, any partition) and KMS keys by key ARN must be accepted; wildcards in the name, region or account, other services, bare names and key aliases (IAM does not match them) refused."
  }
}

################################################################################
# Backend credentials: headers from a secret, OAuth2 client credentials, mutual TLS
################################################################################

run "backend_credentials_off_by_default" {
  command = plan

  assert {
    condition     = length(setintersection(keys(aws_lambda_function.forwarder.environment[0].variables), ["SIGNING_SECRET_ARN", "BACKEND_HEADERS_SECRET_ARN", "OAUTH_TOKEN_URL", "OAUTH_CLIENT_ID", "OAUTH_CLIENT_SECRET_ARN", "OAUTH_SCOPE", "OAUTH_AUDIENCE", "OAUTH_CLIENT_AUTH", "CLIENT_CERTIFICATE_SECRET_ARN", "BACKEND_CA_ARN", "CREDENTIALS_REFRESH_SECONDS"])) == 0
    error_message = "Without credentials the forwarder must get none of their variables (the code's defaults apply)."
  }

  assert {
    condition     = length(local.secret_arns) == 0 && length([for st in data.aws_iam_policy_document.forwarder.statement : st if contains(["ReadSecretParameters", "ReadSecrets", "DecryptSecrets"], st.sid)]) == 0
    error_message = "Without secrets the forwarder must be allowed to read none."
  }
}

run "backend_credentials_every_mode" {
  command = plan

  # Every mode at once, with signing; secrets in both services, ARNs with and without suffix.
  variables {
    signing_secret_arn            = "arn:aws:ssm:us-east-1:123456789012:parameter/sf/signing-secret"
    backend_headers_secret_arn    = "arn:aws:secretsmanager:us-east-1:123456789012:secret:sf/backend-headers"
    oauth_token_url               = "https://auth.example.com/oauth2/token"
    oauth_client_id               = "storeforward"
    oauth_client_secret_arn       = "arn:aws:ssm:us-east-1:123456789012:parameter/sf/oauth-client-secret"
    oauth_scope                   = "orders:write audit"
    oauth_audience                = "https://backend.example.com"
    oauth_client_auth             = "post"
    client_certificate_secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:sf/client-cert-AbCdEf"
    backend_ca_arn                = "arn:aws:ssm:us-east-1:123456789012:parameter/sf/backend-ca"
    credentials_refresh_seconds   = 300
    secret_kms_key_arns           = ["arn:aws:kms:us-east-1:123456789012:key/0b8d3c5e-1111-2222-3333-444455556666"]
  }

  assert {
    condition = tomap({ for name, value in aws_lambda_function.forwarder.environment[0].variables : name => value if contains(["SIGNING_SECRET_ARN", "BACKEND_HEADERS_SECRET_ARN", "CLIENT_CERTIFICATE_SECRET_ARN", "BACKEND_CA_ARN", "CREDENTIALS_REFRESH_SECONDS"], name) || startswith(name, "OAUTH_") }) == tomap({
      SIGNING_SECRET_ARN            = "arn:aws:ssm:us-east-1:123456789012:parameter/sf/signing-secret"
      BACKEND_HEADERS_SECRET_ARN    = "arn:aws:secretsmanager:us-east-1:123456789012:secret:sf/backend-headers"
      OAUTH_TOKEN_URL               = "https://auth.example.com/oauth2/token"
      OAUTH_CLIENT_ID               = "storeforward"
      OAUTH_CLIENT_SECRET_ARN       = "arn:aws:ssm:us-east-1:123456789012:parameter/sf/oauth-client-secret"
      OAUTH_SCOPE                   = "orders:write audit"
      OAUTH_AUDIENCE                = "https://backend.example.com"
      OAUTH_CLIENT_AUTH             = "post"
      CLIENT_CERTIFICATE_SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:sf/client-cert-AbCdEf"
      BACKEND_CA_ARN                = "arn:aws:ssm:us-east-1:123456789012:parameter/sf/backend-ca"
      CREDENTIALS_REFRESH_SECONDS   = "300"
    })
    error_message = "The forwarder must get each credential setting under its variable, and secrets by ARN only."
  }

  assert {
    condition     = strcontains(local.environment_json.forwarder, "\"OAUTH_SCOPE\":\"orders:write audit\"") && strcontains(local.environment_json.forwarder, "\"BACKEND_CA_ARN\":")
    error_message = "The credential settings must count towards the 4 KB of environment."
  }

  assert {
    condition = { for st in data.aws_iam_policy_document.forwarder.statement : st.sid => { actions = st.actions, resources = st.resources } if contains(["ReadSecretParameters", "ReadSecrets"], st.sid) } == {
      ReadSecretParameters = {
        actions   = toset(["ssm:GetParameter"])
        resources = toset(["arn:aws:ssm:us-east-1:123456789012:parameter/sf/signing-secret", "arn:aws:ssm:us-east-1:123456789012:parameter/sf/oauth-client-secret", "arn:aws:ssm:us-east-1:123456789012:parameter/sf/backend-ca"])
      }
      ReadSecrets = {
        actions = toset(["secretsmanager:GetSecretValue"])
        resources = toset([
          "arn:aws:secretsmanager:us-east-1:123456789012:secret:sf/backend-headers",
          "arn:aws:secretsmanager:us-east-1:123456789012:secret:sf/backend-headers-??????",
          "arn:aws:secretsmanager:us-east-1:123456789012:secret:sf/client-cert-AbCdEf",
          "arn:aws:secretsmanager:us-east-1:123456789012:secret:sf/client-cert-AbCdEf-??????",
        ])
      }
    }
    error_message = "The forwarder must read exactly the configured secrets: each SSM parameter, each Secrets Manager secret with its suffix pattern, nothing else."
  }

  assert {
    condition     = !anytrue(flatten([for st in data.aws_iam_policy_document.forwarder.statement : [for r in st.resources : strcontains(r, "*")] if contains(["ReadSecretParameters", "ReadSecrets", "DecryptSecrets"], st.sid)]))
    error_message = "No \"*\" in the resources of the secret statements."
  }

  assert {
    condition = one([for st in data.aws_iam_policy_document.forwarder.statement : (
      st.actions == toset(["kms:Decrypt"])
      && st.resources == toset(["arn:aws:kms:us-east-1:123456789012:key/0b8d3c5e-1111-2222-3333-444455556666"])
      && st.condition == toset([{ test = "StringEquals", variable = "kms:ViaService", values = tolist(["secretsmanager.us-east-1.amazonaws.com", "ssm.us-east-1.amazonaws.com"]) }])
    ) if st.sid == "DecryptSecrets"])
    error_message = "The secrets' key must be decrypted through SSM and Secrets Manager only, the services that hold them."
  }
}

run "headers_and_client_certificate_only" {
  command = plan

  # Two modes without OAuth2, a CA bundle or signing: only their variables, only their secrets.
  variables {
    backend_headers_secret_arn    = "arn:aws:ssm:us-east-1:123456789012:parameter/sf/backend-headers"
    client_certificate_secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:sf/client-cert"
  }

  assert {
    condition     = sort([for name in keys(aws_lambda_function.forwarder.environment[0].variables) : name if strcontains(name, "SECRET") || startswith(name, "OAUTH_") || contains(["BACKEND_CA_ARN", "CREDENTIALS_REFRESH_SECONDS"], name)]) == tolist(["BACKEND_HEADERS_SECRET_ARN", "CLIENT_CERTIFICATE_SECRET_ARN"])
    error_message = "Each mode must set its own variable and no other mode's (a client certificate needs no CA bundle: the system roots apply)."
  }

  assert {
    condition     = local.secret_resources.ssm == tolist([var.backend_headers_secret_arn]) && local.secret_resources.secretsmanager == tolist([var.client_certificate_secret_arn, "${var.client_certificate_secret_arn}-??????"]) && length([for st in data.aws_iam_policy_document.forwarder.statement : st if st.sid == "DecryptSecrets"]) == 0
    error_message = "The forwarder must read those two secrets and nothing else, and decrypt with no key of its own."
  }
}

run "oauth_without_its_client_secret" {
  command = plan

  variables {
    oauth_token_url = "https://auth.example.com/oauth2/token"
    oauth_client_id = "storeforward"
  }

  expect_failures = [aws_lambda_function.forwarder]
}

run "oauth_options_without_oauth" {
  command = plan

  variables {
    oauth_scope = "orders:write"
  }

  expect_failures = [aws_lambda_function.forwarder]
}

run "credential_settings_refused" {
  command = plan

  variables {
    oauth_token_url             = "https://storeforward:secret@auth.example.com/oauth2/token"
    oauth_client_id             = "store forward"
    oauth_client_secret_arn     = "arn:aws:ssm:us-east-1:123456789012:parameter/sf/oauth-client-secret"
    oauth_scope                 = "orders:write  audit"
    oauth_client_auth           = "private_key_jwt"
    credentials_refresh_seconds = 0
  }

  expect_failures = [var.oauth_token_url, var.oauth_client_id, var.oauth_scope, var.oauth_client_auth, var.credentials_refresh_seconds]
}

run "credential_settings_refused_past_their_bounds" {
  command = plan

  variables {
    oauth_token_url             = "auth.example.com/oauth2/token"
    oauth_client_id             = "storeforward"
    oauth_client_secret_arn     = "arn:aws:ssm:us-east-1:123456789012:parameter/sf/oauth-client-secret"
    oauth_audience              = ""
    credentials_refresh_seconds = 3601
  }

  expect_failures = [var.oauth_token_url, var.oauth_audience, var.credentials_refresh_seconds]
}

run "backend_ca_not_an_arn" {
  command = plan

  # Every secret ARN is checked, not only the signing secret's.
  variables {
    backend_ca_arn = "sf/backend-ca"
  }

  expect_failures = [aws_iam_role_policy.forwarder]
}

run "environment_with_long_credential_settings" {
  command = plan

  # About 3,600 bytes of scopes: with the other variables, over 4 KB.
  variables {
    oauth_token_url         = "https://auth.example.com/oauth2/token"
    oauth_client_id         = "storeforward"
    oauth_client_secret_arn = "arn:aws:ssm:us-east-1:123456789012:parameter/sf/oauth-client-secret"
    oauth_scope             = join(" ", [for i in range(400) : "scope:${format("%03d", i)}"])
  }

  expect_failures = [aws_lambda_function.forwarder]
}

run "alarm_topic_unencrypted_on_localstack" {
  command = plan

  # LocalStack 4.13.1 cannot create KMS keys (localstack.tfvars).
  variables {
    alarm_notifications   = true
    alarm_topic_encrypted = false
  }

  assert {
    condition     = length(aws_sns_topic.alarms) == 1 && aws_sns_topic.alarms[0].kms_master_key_id == null && length(aws_kms_key.alarms) == 0
    error_message = "alarm_topic_encrypted = false must create the topic without a key."
  }
}

# The CloudWatch dashboard (dashboard.tf): its body is built from names known when planning, so
# these plans read it whole.

run "dashboard_by_default" {
  command = plan

  assert {
    condition     = length(aws_cloudwatch_dashboard.this) == 1 && output.dashboard_name == "storeforward"
    error_message = "The dashboard must exist by default, named after name_prefix."
  }

  assert {
    condition     = output.dashboard_url == "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#dashboards/dashboard/storeforward"
    error_message = "dashboard_url must open the dashboard in the console of the stack's region."
  }

  # Every queue of the stack (the probe queue too, the breaker being on by default): its depth
  # (waiting, in flight, delayed) and the age of its oldest message.
  assert {
    condition = toset(flatten([
      for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : [
        for m in try(w.properties.metrics, []) : "${m[1]} ${m[3]}" if try(m[0] == "AWS/SQS" && m[2] == "QueueName", false)
      ]
      ])) == toset(flatten([
      for q in ["storeforward-orders", "storeforward-orders-dlq", "storeforward-orders-probe"] : [
        for n in ["ApproximateNumberOfMessagesVisible", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed", "ApproximateAgeOfOldestMessage"] : "${n} ${q}"
      ]
    ]))
    error_message = "The dashboard must show depth and age of the orders queue, the DLQ and the probe queue, and no other queue."
  }

  # The functions' own metrics, each under its function's name.
  assert {
    condition = toset(flatten([
      for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : [
        for m in try(w.properties.metrics, []) : "${m[3]} ${m[1]}" if try(m[0] == "storeforward" && m[2] == "FunctionName", false)
      ]
      ])) == toset(concat(
      [for n in ["Accepted", "Rejected", "StorageErrors"] : "storeforward-store ${n}"],
      [for n in [
        "Received", "Delivered", "Retried", "Deferred", "DeadLettered", "Dropped", "Failed", "Parked", "Held", "Stopped",
        "Backend2xx", "Backend3xx", "Backend4xx", "Backend5xx", "BackendNoAnswer", "CredentialsUnavailable", "CredentialsRejected", "CredentialsMalformed",
        "DeliveryLatency", "CircuitOpened", "CircuitClosed", "ProbeFailed", "DeliveryPaused",
      ] : "storeforward-forwarder ${n}"],
    ))
    error_message = "The dashboard must show the store's and the forwarder's metrics (outcomes, status classes, latency, breaker) under their function names, and FailoverUsed only with a failover queue."
  }

  # Each metric is [namespace, name, dimension, value, options] or [{ expression }].
  assert {
    condition = alltrue(flatten([
      for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : [
        for m in try(w.properties.metrics, []) : can(m[0].expression) || can(regex("^(storeforward|AWS/SQS|AWS/Lambda)$", m[0]))
      ]
    ]))
    error_message = "Every metric of a widget must be a metric array or an expression."
  }

  assert {
    condition = toset(flatten([
      for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : [
        for m in try(w.properties.metrics, []) : "${m[1]} ${m[3]}" if try(m[0] == "AWS/Lambda" && m[2] == "FunctionName", false)
      ]
    ])) == toset(["Errors storeforward-store", "Throttles storeforward-store", "Errors storeforward-forwarder", "Throttles storeforward-forwarder"])
    error_message = "The dashboard must show errors and throttles of both functions."
  }

  assert {
    condition = toset(flatten([
      for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : [
        for m in try(w.properties.metrics, []) : m[4].stat if try(m[1] == "DeliveryLatency", false)
      ]
    ])) == toset(["p50", "p99", "Maximum"])
    error_message = "Delivery latency must be shown as p50, p99 and maximum."
  }

  assert {
    condition = anytrue(flatten([
      for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : [
        for m in try(w.properties.metrics, []) : try(startswith(m[0].expression, "SEARCH('{storeforward,FunctionName,Reason} MetricName=\"Rejected\" FunctionName=\"storeforward-store\"'"), false)
      ]
    ]))
    error_message = "Rejections must be shown by Reason, through a SEARCH over the store's Rejected metric."
  }

  assert {
    condition = [
      for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : w.properties.alarms if try(w.type == "alarm", false)
      ] == [[
        for k in sort(keys(aws_cloudwatch_metric_alarm.this)) : "arn:aws:cloudwatch:us-east-1:123456789012:alarm:storeforward-${k}"
    ]] && contains(keys(aws_cloudwatch_metric_alarm.this), "delivery-paused")
    error_message = "One alarm widget must list the ARNs of all the stack's alarms, the delivery-paused alarm among them."
  }

  assert {
    condition = length([
      for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : w
      if try(w.type == "log" && startswith(w.properties.query, "SOURCE '/aws/lambda/storeforward-forwarder' |") && strcontains(w.properties.query, "filter event = 'delivery.attempt' and outcome != 'delivered'"), false)
    ]) == 1
    error_message = "A Logs Insights widget must list the forwarder's failed delivery.attempt lines."
  }

  # Laid out on CloudWatch's 24-unit grid, no widget over another.
  assert {
    condition = alltrue(flatten([
      for i, a in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : [
        for j, b in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets :
        a.x >= 0 && a.x + a.width <= 24 && (i == j || a.x + a.width <= b.x || b.x + b.width <= a.x || a.y + a.height <= b.y || b.y + b.height <= a.y)
      ]
    ]))
    error_message = "The widgets must fit 24 units across and not overlap."
  }
}

run "dashboard_fifo_failover_without_breaker" {
  command = plan

  variables {
    name_prefix           = "shop"
    fifo                  = true
    enable_failover_queue = true
    breaker_threshold     = 0
  }

  assert {
    condition     = output.dashboard_name == "shop" && endswith(output.dashboard_url, "#dashboards/dashboard/shop")
    error_message = "The dashboard must be named after name_prefix."
  }

  assert {
    condition = toset(flatten([
      for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : [
        for m in try(w.properties.metrics, []) : m[3] if try(m[0] == "AWS/SQS" && m[2] == "QueueName", false)
      ]
    ])) == toset(["shop-orders.fifo", "shop-orders-failover.fifo", "shop-orders-dlq.fifo"])
    error_message = "A FIFO stack's dashboard must show its .fifo queues, the failover queue among them, and no probe queue without the breaker."
  }

  assert {
    condition = toset(flatten([
      for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : [
        for m in try(w.properties.metrics, []) : m[1] if try(m[0] == "storeforward" && contains(["FailoverUsed", "CircuitOpened", "CircuitClosed", "ProbeFailed", "DeliveryPaused"], m[1]), false)
      ]
    ])) == toset(["FailoverUsed"])
    error_message = "With a failover queue and without the breaker, the dashboard must show FailoverUsed and no breaker metrics."
  }

  assert {
    condition = toset(flatten([
      for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : [
        for m in try(w.properties.metrics, []) : m[3] if try(m[2] == "FunctionName", false)
      ]
    ])) == toset(["shop-store", "shop-forwarder"])
    error_message = "Every metric must name this stack's functions (shop-store, shop-forwarder)."
  }

  assert {
    condition = [
      for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : length(w.properties.alarms) if w.type == "alarm"
    ] == [length(aws_cloudwatch_metric_alarm.this)] && !contains(keys(aws_cloudwatch_metric_alarm.this), "delivery-paused")
    error_message = "The alarm widget must list every alarm, without the paused alarm when there is no breaker."
  }
}

run "dashboard_without_alarms" {
  command = plan

  variables {
    alarms_enabled = false
  }

  assert {
    condition     = length([for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : w if w.type == "alarm"]) == 0
    error_message = "Without alarms the dashboard must have no alarm widget (CloudWatch refuses an empty one)."
  }
}

run "dashboard_off" {
  command = plan

  variables {
    dashboard_enabled = false
  }

  assert {
    condition     = length(aws_cloudwatch_dashboard.this) == 0 && output.dashboard_name == null && output.dashboard_url == null
    error_message = "dashboard_enabled = false must create no dashboard and output null name and URL."
  }
}

################################################################################
# Ingresses: the REST API by default; a function URL (AWS_IAM) and an HTTP API (IAM or JWT) as
# options. LocalStack community runs only the function URL (tests/it/ingress.rs); the HTTP API is
# checked here only.
################################################################################

run "ingress_rest_by_default" {
  command = plan

  assert {
    condition     = length(aws_api_gateway_rest_api.this) == 1 && length(aws_api_gateway_stage.this) == 1 && length(aws_lambda_permission.api) == 1
    error_message = "By default the REST API must exist, with its stage and its permission to invoke the store."
  }

  assert {
    condition     = length(aws_lambda_function_url.store) == 0 && length(aws_lambda_permission.function_url) == 0 && length(aws_apigatewayv2_api.this) == 0 && length(aws_apigatewayv2_stage.this) == 0 && length(aws_lambda_permission.http_api) == 0 && length(aws_cloudwatch_log_group.http_api) == 0
    error_message = "By default there must be no function URL and no HTTP API."
  }

  assert {
    condition     = output.function_url == null && output.http_api_url == null && output.http_api_execution_arn == null && toset(keys(output.order_urls)) == toset(["rest"])
    error_message = "By default the function URL and HTTP API outputs must be null, and order_urls must name only rest."
  }
}

run "ingress_function_url_only" {
  command = plan

  variables {
    ingresses               = ["function_url"]
    function_url_principals = ["arn:aws:iam::210987654321:role/orders-client", "123456789012"]
  }

  assert {
    condition     = length(aws_api_gateway_rest_api.this) == 0 && length(aws_api_gateway_stage.this) == 0 && length(aws_api_gateway_deployment.this) == 0 && length(aws_api_gateway_method.store) == 0 && length(aws_api_gateway_gateway_response.this) == 0 && length(aws_api_gateway_api_key.this) == 0 && length(aws_api_gateway_usage_plan.this) == 0 && length(aws_lambda_permission.api) == 0 && length(aws_apigatewayv2_api.this) == 0
    error_message = "ingresses = [function_url] must create no REST API (nor its key, plan and permission) and no HTTP API."
  }

  assert {
    condition     = aws_lambda_function_url.store[0].authorization_type == "AWS_IAM" && aws_lambda_function_url.store[0].invoke_mode == "BUFFERED" && length(aws_lambda_function_url.store[0].cors) == 0 && aws_lambda_function_url.store[0].function_name == "storeforward-store"
    error_message = "The function URL must be the store's, with AWS_IAM auth, buffered, and without CORS."
  }

  assert {
    condition     = toset([for p in aws_lambda_permission.function_url : p.principal]) == toset(["arn:aws:iam::210987654321:role/orders-client", "123456789012"]) && alltrue([for p in aws_lambda_permission.function_url : p.action == "lambda:InvokeFunctionUrl" && p.function_url_auth_type == "AWS_IAM"])
    error_message = "Each principal must get lambda:InvokeFunctionUrl for AuthType AWS_IAM."
  }

  assert {
    condition     = toset([for p in aws_lambda_permission.function_url_invoke : p.principal]) == toset(["arn:aws:iam::210987654321:role/orders-client", "123456789012"]) && alltrue([for p in aws_lambda_permission.function_url_invoke : p.action == "lambda:InvokeFunction"])
    error_message = "Each principal must also get lambda:InvokeFunction, which new function URLs need since October 2025."
  }

  assert {
    condition     = output.api_url == null && output.api_id == null && output.api_stage == null && output.api_execution_arn == null && output.api_key == null && output.usage_plan_id == null && toset(keys(output.order_urls)) == toset(["function_url"])
    error_message = "Without rest the REST outputs must be null, and order_urls must name only function_url."
  }

  assert {
    condition     = contains(keys(aws_cloudwatch_metric_alarm.this), "function-url-5xx") && !contains(keys(aws_cloudwatch_metric_alarm.this), "api-5xx") && aws_cloudwatch_metric_alarm.this["function-url-5xx"].metric_name == "Url5xxCount" && aws_cloudwatch_metric_alarm.this["function-url-5xx"].dimensions == tomap({ FunctionName = "storeforward-store" })
    error_message = "Without rest there must be no REST 5XX alarm, and the function URL's 5XX answers must alarm."
  }
}

run "ingress_function_url_beside_rest" {
  command = plan

  variables {
    ingresses = ["rest", "function_url"]
  }

  assert {
    condition     = length(aws_api_gateway_stage.this) == 1 && length(aws_lambda_function_url.store) == 1 && length(aws_lambda_permission.function_url) == 0 && toset(keys(output.order_urls)) == toset(["rest", "function_url"])
    error_message = "rest and function_url together must create both; without principals the URL grants nobody outside the account's IAM policies."
  }
}

run "ingress_http_api_iam" {
  command = plan

  variables {
    ingresses = ["http_api"]
  }

  assert {
    condition     = aws_apigatewayv2_api.this[0].protocol_type == "HTTP" && aws_apigatewayv2_api.this[0].name == "storeforward-http-api" && length(aws_apigatewayv2_api.this[0].cors_configuration) == 0 && length(aws_api_gateway_rest_api.this) == 0
    error_message = "ingresses = [http_api] must create an HTTP API without CORS, and no REST API."
  }

  assert {
    condition     = aws_apigatewayv2_integration.store[0].integration_type == "AWS_PROXY" && aws_apigatewayv2_integration.store[0].payload_format_version == "2.0"
    error_message = "The HTTP API must proxy to the store with payload format 2.0."
  }

  assert {
    condition     = aws_apigatewayv2_route.store[0].route_key == "$default" && aws_apigatewayv2_route.store[0].authorization_type == "AWS_IAM" && aws_apigatewayv2_route.store[0].authorizer_id == null && length(aws_apigatewayv2_authorizer.jwt) == 0
    error_message = "http_api_auth = iam (the default) must authorize the $default route with AWS_IAM and no JWT authorizer."
  }

  assert {
    condition     = aws_apigatewayv2_stage.this[0].name == "$default" && aws_apigatewayv2_stage.this[0].auto_deploy && aws_apigatewayv2_stage.this[0].default_route_settings[0].throttling_rate_limit == 100 && aws_apigatewayv2_stage.this[0].default_route_settings[0].throttling_burst_limit == 200
    error_message = "The $default stage must deploy itself and throttle by the http_api_throttling_* defaults (100/s, burst 200)."
  }

  assert {
    condition     = aws_cloudwatch_log_group.http_api[0].name == "/aws/apigateway/storeforward-http-api" && aws_cloudwatch_log_group.http_api[0].retention_in_days == 14 && jsondecode(aws_apigatewayv2_stage.this[0].access_log_settings[0].format).requestId == "$context.requestId" && jsondecode(aws_apigatewayv2_stage.this[0].access_log_settings[0].format).caller == "$context.identity.userArn"
    error_message = "The stage must write JSON access logs (request id, caller) to its own log group with log_retention_in_days."
  }

  assert {
    condition     = aws_lambda_permission.http_api[0].principal == "apigateway.amazonaws.com" && aws_lambda_permission.http_api[0].action == "lambda:InvokeFunction" && length(aws_lambda_permission.api) == 0
    error_message = "The HTTP API (alone) must be allowed to invoke the store."
  }

  assert {
    condition     = contains(keys(aws_cloudwatch_metric_alarm.this), "http-api-5xx") && aws_cloudwatch_metric_alarm.this["http-api-5xx"].metric_name == "5xx" && !contains(keys(aws_cloudwatch_metric_alarm.this), "api-5xx") && toset(keys(output.order_urls)) == toset(["http_api"]) && output.api_url == null
    error_message = "The HTTP API's 5XX answers must alarm; no REST alarm or output without rest."
  }
}

run "ingress_http_api_jwt" {
  command = plan

  variables {
    ingresses                       = ["rest", "http_api"]
    http_api_auth                   = "jwt"
    http_api_jwt_issuer             = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Example"
    http_api_jwt_audience           = ["orders-client"]
    http_api_throttling_rate_limit  = 50
    http_api_throttling_burst_limit = 10
  }

  assert {
    condition     = aws_apigatewayv2_authorizer.jwt[0].authorizer_type == "JWT" && aws_apigatewayv2_authorizer.jwt[0].identity_sources == toset(["$request.header.Authorization"]) && aws_apigatewayv2_authorizer.jwt[0].jwt_configuration[0].issuer == "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Example" && aws_apigatewayv2_authorizer.jwt[0].jwt_configuration[0].audience == toset(["orders-client"])
    error_message = "http_api_auth = jwt must create a JWT authorizer on the Authorization header with the issuer and audience given."
  }

  assert {
    condition     = aws_apigatewayv2_route.store[0].authorization_type == "JWT"
    error_message = "http_api_auth = jwt must authorize the route with JWT."
  }

  assert {
    condition     = aws_apigatewayv2_stage.this[0].default_route_settings[0].throttling_rate_limit == 50 && aws_apigatewayv2_stage.this[0].default_route_settings[0].throttling_burst_limit == 10
    error_message = "The stage must throttle by http_api_throttling_rate_limit and http_api_throttling_burst_limit."
  }

  assert {
    condition     = length(aws_api_gateway_stage.this) == 1 && length(aws_lambda_permission.api) == 1 && length(aws_lambda_permission.http_api) == 1 && toset(keys(output.order_urls)) == toset(["rest", "http_api"])
    error_message = "rest and http_api together must keep the REST API beside the HTTP API (a migration)."
  }
}

run "ingress_http_api_jwt_without_issuer" {
  command = plan

  variables {
    ingresses     = ["http_api"]
    http_api_auth = "jwt"
  }

  expect_failures = [aws_apigatewayv2_authorizer.jwt]
}

run "ingresses_empty" {
  command = plan

  variables {
    ingresses = []
  }

  expect_failures = [var.ingresses]
}

run "ingresses_unknown" {
  command = plan

  variables {
    ingresses = ["rest", "alb"]
  }

  expect_failures = [var.ingresses]
}

run "ingress_settings_refused" {
  command = plan

  variables {
    http_api_auth                   = "cognito"
    http_api_jwt_issuer             = "http://issuer.example.com"
    http_api_jwt_audience           = [""]
    http_api_throttling_rate_limit  = 0
    http_api_throttling_burst_limit = 0
    function_url_principals         = ["*"]
  }

  expect_failures = [var.http_api_auth, var.http_api_jwt_issuer, var.http_api_jwt_audience, var.http_api_throttling_rate_limit, var.http_api_throttling_burst_limit, var.function_url_principals]
}
