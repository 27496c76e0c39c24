locals {
  # One event source mapping per source queue (orders, failover) when trigger = sqs, and one for
  # the probe queue, which the circuit breaker never disables.
  event_source_queue_arns = var.trigger == "sqs" ? merge(
    { for i, arn in local.source_queue_arns : (i == 0 ? "orders" : "failover") => arn },
    { for arn in aws_sqs_queue.probe[*].arn : "probe" => arn },
  ) : {}

  # Each mapping's maximum concurrency: the probe queue holds a ticket or two during an outage,
  # so it takes the least Lambda allows.
  esm_maximum_concurrency = {
    for name in keys(local.event_source_queue_arns) : name => name == "probe" ? 2 : var.maximum_concurrency
  }

  # What the mappings may use together (null: unbounded).
  esm_concurrency_total = (
    anytrue([for c in values(local.esm_maximum_concurrency) : c == null]) ? null : sum(concat([0], values(local.esm_maximum_concurrency)))
  )
}

################################################################################
# SQS event source mapping (trigger = sqs)
################################################################################

resource "aws_lambda_event_source_mapping" "this" {
  for_each = local.event_source_queue_arns

  event_source_arn = each.value
  function_name    = aws_lambda_function.forwarder.arn
  enabled          = var.trigger_enabled

  batch_size = var.batch_size
  # FIFO queues do not take a batching window at all.
  maximum_batching_window_in_seconds = var.fifo ? null : var.maximum_batching_window_in_seconds
  function_response_types            = ["ReportBatchItemFailures"]

  dynamic "scaling_config" {
    for_each = local.esm_maximum_concurrency[each.key] == null ? [] : [local.esm_maximum_concurrency[each.key]]

    content {
      maximum_concurrency = scaling_config.value
    }
  }

  # The function's role must allow receiving from the queue before the mapping is created.
  depends_on = [aws_iam_role_policy.forwarder, aws_iam_role_policy.breaker]

  lifecycle {
    # After creation, the circuit breaker and `sfctl pause` / `resume` own the mapping's state: an
    # apply must not resume delivery that an operator paused.
    ignore_changes = [enabled]

    precondition {
      condition     = !var.fifo || (var.batch_size <= 10 && var.maximum_batching_window_in_seconds == 0)
      error_message = "A FIFO queue takes batch_size 1-10 (got ${var.batch_size}) and no batching window (maximum_batching_window_in_seconds = 0, got ${var.maximum_batching_window_in_seconds})."
    }

    precondition {
      condition     = var.maximum_batching_window_in_seconds > 0 || var.batch_size <= 10
      error_message = "batch_size ${var.batch_size} needs maximum_batching_window_in_seconds of at least 1: without a window the batch size is 1-10."
    }
  }
}

################################################################################
# EventBridge schedule (trigger = schedule)
################################################################################

resource "aws_cloudwatch_event_rule" "schedule" {
  count = var.trigger == "schedule" ? 1 : 0

  name                = "${local.forwarder_function_name}-schedule"
  description         = "Runs ${local.forwarder_function_name}, which polls the orders queue(s) itself"
  schedule_expression = var.schedule_expression
  state               = var.trigger_enabled ? "ENABLED" : "DISABLED"
}

resource "aws_cloudwatch_event_target" "schedule" {
  count = var.trigger == "schedule" ? 1 : 0

  rule      = aws_cloudwatch_event_rule.schedule[0].name
  target_id = "forwarder"
  arn       = aws_lambda_function.forwarder.arn
}

resource "aws_lambda_permission" "schedule" {
  count = var.trigger == "schedule" ? 1 : 0

  statement_id  = "AllowEventBridgeInvoke"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.forwarder.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.schedule[0].arn
}
