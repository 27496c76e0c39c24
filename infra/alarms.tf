################################################################################
# Alarms: dead letters, a backlog that ages, delivery paused, forwarder errors and throttles
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

  alarms = var.alarms_enabled ? merge(local.queue_age_alarms, local.paused_alarms, {
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
      description = "Lambda throttled the forwarder: raise its concurrency or lower maximum_concurrency."
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
}

resource "aws_sns_topic" "alarms" {
  count = var.alarms_enabled && var.alarm_notifications && var.alarm_topic_arn == null ? 1 : 0

  name              = "${var.name_prefix}-alarms"
  kms_master_key_id = var.kms_key_arn == null ? "alias/aws/sns" : var.kms_key_arn
}

resource "aws_sns_topic_subscription" "alarm_emails" {
  for_each = toset(length(aws_sns_topic.alarms) > 0 ? var.alarm_emails : [])

  topic_arn = aws_sns_topic.alarms[0].arn
  protocol  = "email"
  endpoint  = each.value
}
