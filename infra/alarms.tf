################################################################################
# Alarms: dead letters, a backlog that ages, delivery paused, errors and throttles of both
# functions, 5XX answers of each ingress
################################################################################

locals {
  # Notifications go to the topic given, or to the one created here, or nowhere.
  alarm_topic_arn = coalesce(var.alarm_topic_arn, one(aws_sns_topic.alarms[*].arn), "none")
  alarm_actions   = local.alarm_topic_arn == "none" ? [] : [local.alarm_topic_arn]

  queue_age_alarms = {
    for role, queue in merge(
      { orders = aws_sqs_queue.orders.name },
      var.enable_failover_queue ? { failover = aws_sqs_queue.failover[0].name } : {},
      ) : "${role}-oldest-message" => {
      namespace   = "AWS/SQS"
      metric      = "ApproximateAgeOfOldestMessage"
      dimensions  = { QueueName = queue }
      statistic   = "Maximum"
      threshold   = var.alarm_oldest_message_age_seconds
      periods     = 3
      description = "The oldest order in ${queue} has waited more than ${var.alarm_oldest_message_age_seconds} s: the backend is down or slow, or delivery is paused."
    }
  }

  # Each probe (and each scheduled tick) that finds delivery paused reports DeliveryPaused = 1.
  paused_alarms = local.breaker_enabled ? {
    delivery-paused = {
      namespace   = "storeforward"
      metric      = "DeliveryPaused"
      dimensions  = { FunctionName = aws_lambda_function.forwarder.function_name }
      statistic   = "Maximum"
      threshold   = 0
      periods     = max(1, ceil(var.alarm_paused_seconds / var.alarm_period_seconds))
      description = "Delivery has been paused for ${var.alarm_paused_seconds} s: the circuit breaker is open (the backend keeps failing its probes) or an operator paused it. `sfctl status` says which and since when."
    }
  } : {}

  # 5XX answers of each ingress: the store could not store (503), failed, timed out or could not be
  # invoked. The store's alarms and log group say which.
  ingress_alarms = merge(
    local.rest ? {
      api-5xx = {
        namespace   = "AWS/ApiGateway"
        metric      = "5XXError"
        dimensions  = { ApiName = aws_api_gateway_rest_api.this[0].name, Stage = aws_api_gateway_stage.this[0].stage_name }
        statistic   = "Sum"
        threshold   = 0
        periods     = 1
        description = "The REST API answered callers with 5XX: the store could not store (503), failed, timed out or could not be invoked. The store's alarms and log group say which."
      }
    } : {},
    local.http_api ? {
      http-api-5xx = {
        namespace   = "AWS/ApiGateway"
        metric      = "5xx"
        dimensions  = { ApiId = aws_apigatewayv2_api.this[0].id, Stage = aws_apigatewayv2_stage.this[0].name }
        statistic   = "Sum"
        threshold   = 0
        periods     = 1
        description = "The HTTP API answered callers with 5XX: the store could not store (503), failed, timed out or could not be invoked. The store's alarms and log group say which."
      }
    } : {},
    local.function_url ? {
      function-url-5xx = {
        namespace   = "AWS/Lambda"
        metric      = "Url5xxCount"
        dimensions  = { FunctionName = aws_lambda_function.store.function_name }
        statistic   = "Sum"
        threshold   = 0
        periods     = 1
        description = "The store's function URL answered callers with 5XX: the store could not store (503), failed or timed out. The store's alarms and log group say which."
      }
    } : {},
  )

  alarms = var.alarms_enabled ? merge(local.queue_age_alarms, local.paused_alarms, local.ingress_alarms, {
    dlq-not-empty = {
      namespace   = "AWS/SQS"
      metric      = "ApproximateNumberOfMessagesVisible"
      dimensions  = { QueueName = aws_sqs_queue.dlq.name }
      statistic   = "Maximum"
      threshold   = 0
      periods     = 1
      description = "Orders are in the dead-letter queue ${aws_sqs_queue.dlq.name}: `sfctl dlq peek` shows why, `sfctl dlq redrive` moves them back."
    }
    forwarder-errors = {
      namespace   = "AWS/Lambda"
      metric      = "Errors"
      dimensions  = { FunctionName = aws_lambda_function.forwarder.function_name }
      statistic   = "Sum"
      threshold   = 0
      periods     = 1
      description = "The forwarder failed whole invocations (its log group says why); their batches come back and count towards the redrive."
    }
    forwarder-throttles = {
      namespace   = "AWS/Lambda"
      metric      = "Throttles"
      dimensions  = { FunctionName = aws_lambda_function.forwarder.function_name }
      statistic   = "Sum"
      threshold   = 0
      periods     = 1
      description = "Lambda throttled the forwarder (the account's concurrency is used up, or forwarder_reserved_concurrency is below what the mappings invoke); throttled batches come back and count towards the redrive."
    }
    store-errors = {
      namespace   = "AWS/Lambda"
      metric      = "Errors"
      dimensions  = { FunctionName = aws_lambda_function.store.function_name }
      statistic   = "Sum"
      threshold   = 0
      periods     = 1
      description = "The store failed whole invocations (crashed or timed out; its log group says why): those callers got a 5XX instead of 202."
    }
    store-throttles = {
      namespace   = "AWS/Lambda"
      metric      = "Throttles"
      dimensions  = { FunctionName = aws_lambda_function.store.function_name }
      statistic   = "Sum"
      threshold   = 0
      periods     = 1
      description = "Lambda throttled the store, so orders were refused: the account's concurrency is used up (lower maximum_concurrency, reserve store_reserved_concurrency, or raise the account's limit) or store_reserved_concurrency is reached."
    }
  }) : {}
}

resource "aws_cloudwatch_metric_alarm" "this" {
  for_each = local.alarms

  alarm_name          = "${var.name_prefix}-${each.key}"
  alarm_description   = each.value.description
  namespace           = each.value.namespace
  metric_name         = each.value.metric
  dimensions          = each.value.dimensions
  statistic           = each.value.statistic
  period              = var.alarm_period_seconds
  evaluation_periods  = each.value.periods
  comparison_operator = "GreaterThanThreshold"
  threshold           = each.value.threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  lifecycle {
    precondition {
      # Every metric here is standard resolution: one data point a minute on AWS.
      condition     = var.alarm_period_seconds >= 60 || var.alarm_sub_minute_periods
      error_message = "alarm_period_seconds ${var.alarm_period_seconds} is shorter than a minute: AWS publishes these metrics once a minute, so the alarm would find no data and never fire. Use 60 or a multiple of it (10 and 30 only where metrics come more often, e.g. on LocalStack: alarm_sub_minute_periods = true)."
    }
  }
}

################################################################################
# Alarm topic, and the key it is encrypted with
################################################################################

locals {
  create_alarm_topic = var.alarms_enabled && var.alarm_notifications && var.alarm_topic_arn == null

  account_arn = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"
  # This stack's alarms: the only ones whose notifications the key may encrypt.
  alarm_arn_pattern = "arn:${data.aws_partition.current.partition}:cloudwatch:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:alarm:${var.name_prefix}-*"

  # CloudWatch publishes to an encrypted topic only when the key's policy lets it generate and
  # decrypt data keys; the AWS-managed alias/aws/sns cannot be given that, so notifications to a
  # topic under it are dropped. The account keeps the key's administration (IAM policies decide).
  alarm_key_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministers"
        Effect    = "Allow"
        Principal = { AWS = local.account_arn }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchAlarmsPublish"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.amazonaws.com" }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource  = "*"
        Condition = {
          StringEquals = { "aws:SourceAccount" = data.aws_caller_identity.current.account_id }
          ArnLike      = { "aws:SourceArn" = local.alarm_arn_pattern }
        }
      },
    ]
  })
}

# Only when no kms_key_arn is given: that key's policy must then admit CloudWatch (README).
resource "aws_kms_key" "alarms" {
  count = local.create_alarm_topic && var.alarm_topic_encrypted && var.kms_key_arn == null ? 1 : 0

  description             = "Encrypts the ${var.name_prefix}-alarms topic; CloudWatch alarms ${var.name_prefix}-* may use it"
  enable_key_rotation     = true
  deletion_window_in_days = 7
  policy                  = local.alarm_key_policy
}

resource "aws_kms_alias" "alarms" {
  count = length(aws_kms_key.alarms)

  name          = "alias/${var.name_prefix}-alarms"
  target_key_id = aws_kms_key.alarms[0].key_id
}

resource "aws_sns_topic" "alarms" {
  count = local.create_alarm_topic ? 1 : 0

  name              = "${var.name_prefix}-alarms"
  kms_master_key_id = var.alarm_topic_encrypted ? coalesce(var.kms_key_arn, one(aws_kms_key.alarms[*].arn)) : null
}

resource "aws_sns_topic_subscription" "alarm_emails" {
  for_each = toset(length(aws_sns_topic.alarms) > 0 ? var.alarm_emails : [])

  topic_arn = aws_sns_topic.alarms[0].arn
  protocol  = "email"
  endpoint  = each.value
}
