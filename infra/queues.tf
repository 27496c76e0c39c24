data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  queue_suffix = var.fifo ? ".fifo" : ""

  queue_name          = "${var.name_prefix}-orders${local.queue_suffix}"
  failover_queue_name = "${var.name_prefix}-orders-failover${local.queue_suffix}"
  dlq_name            = "${var.name_prefix}-orders-dlq${local.queue_suffix}"

  # Everything the store writes to and the forwarder consumes: the orders queue, then the failover queue.
  source_queue_arns = concat([aws_sqs_queue.orders.arn], aws_sqs_queue.failover[*].arn)

  # The same ARNs, built from the names: the DLQ's redrive allow policy cannot refer to the source
  # queues, whose redrive policies refer to the DLQ.
  source_queue_arns_by_name = [
    for name in concat([local.queue_name], var.enable_failover_queue ? [local.failover_queue_name] : []) :
    "arn:${data.aws_partition.current.partition}:sqs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:${name}"
  ]

  # SSE-SQS unless a customer-managed KMS key is given (SQS takes one or the other).
  sse_sqs = var.kms_key_arn == null ? var.sqs_managed_sse_enabled : null

  # One receive per retry of the schedule plus the first attempt, and with the circuit breaker the
  # 2 receives an outage may cost a message (README "Backend outages"), so that an outage never
  # cuts a message's retries short.
  max_receive_count = coalesce(
    var.max_receive_count,
    length(var.retry_schedule_seconds) + 1 + (local.breaker_enabled ? 2 : 0),
  )

  # How long a message that keeps failing stays in the queue before the redrive policy moves it:
  # the wait after each of its receives, the schedule's first delay past its end.
  redrive_after_seconds = sum([
    for i in range(local.max_receive_count) :
    var.retry_schedule_seconds[i < length(var.retry_schedule_seconds) ? i : 0]
  ])

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq.arn
    maxReceiveCount     = local.max_receive_count
  })

  # AWS: with an event source mapping the visibility timeout should be at least six times the
  # function timeout plus the batching window; a polling forwarder needs at least its own timeout.
  min_visibility_timeout_seconds = (
    var.trigger == "sqs"
    ? 6 * var.forwarder_timeout + var.maximum_batching_window_in_seconds
    : var.forwarder_timeout
  )
}

################################################################################
# Dead-letter queue
################################################################################

resource "aws_sqs_queue" "dlq" {
  name = local.dlq_name

  fifo_queue                  = var.fifo ? true : null
  content_based_deduplication = var.fifo ? false : null

  max_message_size          = var.max_message_size
  message_retention_seconds = var.dlq_message_retention_seconds
  sqs_managed_sse_enabled   = local.sse_sqs
  kms_master_key_id         = var.kms_key_arn

  # Only the orders and failover queues may use this queue as their DLQ. Inline rather than an
  # aws_sqs_queue_redrive_allow_policy, whose removal never completes on LocalStack.
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = local.source_queue_arns_by_name
  })

  lifecycle {
    precondition {
      # FIFO queues reset the enqueue time when a message is moved; standard queues keep it.
      condition     = var.fifo || var.dlq_message_retention_seconds > var.message_retention_seconds
      error_message = "dlq_message_retention_seconds (${var.dlq_message_retention_seconds}) must be longer than message_retention_seconds (${var.message_retention_seconds}): a standard queue's message keeps its original enqueue time in the dead-letter queue and would expire there early."
    }
  }
}

################################################################################
# Orders queue
################################################################################

resource "aws_sqs_queue" "orders" {
  name = local.queue_name

  fifo_queue                  = var.fifo ? true : null
  content_based_deduplication = var.fifo ? false : null

  max_message_size           = var.max_message_size
  message_retention_seconds  = var.message_retention_seconds
  visibility_timeout_seconds = var.queue_visibility_timeout_seconds
  sqs_managed_sse_enabled    = local.sse_sqs
  kms_master_key_id          = var.kms_key_arn

  redrive_policy = local.redrive_policy

  lifecycle {
    precondition {
      condition     = var.queue_visibility_timeout_seconds >= local.min_visibility_timeout_seconds
      error_message = "queue_visibility_timeout_seconds (${var.queue_visibility_timeout_seconds}) must be at least ${local.min_visibility_timeout_seconds}: ${var.trigger == "sqs" ? "6 x forwarder_timeout + maximum_batching_window_in_seconds" : "forwarder_timeout"}, or messages become visible again while still being delivered."
    }

    precondition {
      # An hour on top for the attempts themselves and visibility timeouts after failed
      # ChangeMessageVisibility calls.
      condition     = var.message_retention_seconds > local.redrive_after_seconds + 3600
      error_message = "message_retention_seconds (${var.message_retention_seconds}) must exceed ${local.redrive_after_seconds + 3600} s: the waits of retry_schedule_seconds over max_receive_count (${local.max_receive_count}) receives, ${local.redrive_after_seconds} s, plus an hour. Otherwise a message that keeps failing expires in the queue, lost, instead of reaching the dead-letter queue."
    }

    precondition {
      condition     = !local.breaker_enabled || local.max_receive_count >= 3
      error_message = "max_receive_count (${local.max_receive_count}) must be at least 3 with the circuit breaker (breaker_threshold > 0 or failure_action = \"pause\"): an outage may cost a message 2 receives, which must not use up its retries."
    }

    postcondition {
      condition     = self.arn == local.source_queue_arns_by_name[0]
      error_message = "The orders queue's ARN ${self.arn} is not the one the DLQ's redrive allow policy names (${local.source_queue_arns_by_name[0]})."
    }
  }
}

################################################################################
# Failover queue
################################################################################

resource "aws_sqs_queue" "failover" {
  count = var.enable_failover_queue ? 1 : 0

  name = local.failover_queue_name

  fifo_queue                  = var.fifo ? true : null
  content_based_deduplication = var.fifo ? false : null

  max_message_size           = var.max_message_size
  message_retention_seconds  = var.message_retention_seconds
  visibility_timeout_seconds = var.queue_visibility_timeout_seconds
  sqs_managed_sse_enabled    = local.sse_sqs
  kms_master_key_id          = var.kms_key_arn

  redrive_policy = local.redrive_policy

  lifecycle {
    postcondition {
      condition     = self.arn == local.source_queue_arns_by_name[1]
      error_message = "The failover queue's ARN ${self.arn} is not the one the DLQ's redrive allow policy names (${local.source_queue_arns_by_name[1]})."
    }
  }
}

################################################################################
# Queue policies: TLS only
################################################################################

locals {
  queues = merge(
    { orders = aws_sqs_queue.orders, dlq = aws_sqs_queue.dlq },
    var.enable_failover_queue ? { failover = aws_sqs_queue.failover[0] } : {},
    local.breaker_enabled ? { probe = aws_sqs_queue.probe[0] } : {},
  )
}

data "aws_iam_policy_document" "queue_tls_only" {
  for_each = local.queues

  statement {
    sid       = "DenyWithoutTLS"
    effect    = "Deny"
    actions   = ["sqs:*"]
    resources = [each.value.arn]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_sqs_queue_policy" "tls_only" {
  for_each = local.queues

  queue_url = each.value.url
  policy    = data.aws_iam_policy_document.queue_tls_only[each.key].json
}
