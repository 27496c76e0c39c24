################################################################################
# Circuit breaker: the probe queue, the delivery state, and the permissions to switch delivery
################################################################################

locals {
  # FAILURE_ACTION=pause parks in the probe queue and pauses through the state too.
  breaker_enabled      = var.breaker_threshold > 0 || var.failure_action == "pause"
  probe_queue_name     = "${var.name_prefix}-orders-probe"
  state_parameter_name = "/${var.name_prefix}/delivery-state"

  breaker_environment = local.breaker_enabled ? {
    BREAKER_THRESHOLD      = tostring(var.breaker_threshold)
    PROBE_INTERVAL_SECONDS = tostring(var.probe_interval_seconds)
    PROBE_QUEUE_URL        = aws_sqs_queue.probe[0].url
    STATE_PARAMETER        = aws_ssm_parameter.delivery_state[0].name
  } : { BREAKER_THRESHOLD = "0" }
}

# Where the message whose failure opened the circuit waits, as the probe's ticket, for one probe
# interval at a time. A standard queue even for FIFO stacks (each group has at most one ticket),
# and no redrive policy: a ticket's receives are probes, which must never dead-letter it.
resource "aws_sqs_queue" "probe" {
  count = local.breaker_enabled ? 1 : 0

  name = local.probe_queue_name

  max_message_size           = var.max_message_size
  message_retention_seconds  = var.message_retention_seconds
  visibility_timeout_seconds = var.queue_visibility_timeout_seconds
  sqs_managed_sse_enabled    = local.sse_sqs
  kms_master_key_id          = var.kms_key_arn
}

# The delivery state (delivering, paused by an operator, or circuit open) that the forwarder and
# `sfctl` read and write; Terraform only creates it.
resource "aws_ssm_parameter" "delivery_state" {
  # checkov:skip=CKV2_AWS_34:Holds no secret: the delivery state, who paused it and why, read by operators
  count = local.breaker_enabled ? 1 : 0

  name        = local.state_parameter_name
  description = "Delivery state of ${local.forwarder_function_name}: delivering, paused (by whom, why) or circuit open (since, last probe)"
  type        = "String"
  value       = jsonencode({ state = "delivering" })

  lifecycle {
    ignore_changes = [value]
  }
}

data "aws_iam_policy_document" "breaker" {
  count = local.breaker_enabled ? 1 : 0

  statement {
    sid = "ParkAndProbe"
    actions = [
      "sqs:SendMessage",
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:ChangeMessageVisibility",
      "sqs:GetQueueAttributes",
    ]
    resources = [aws_sqs_queue.probe[0].arn]
  }

  statement {
    sid       = "DeliveryState"
    actions   = ["ssm:GetParameter", "ssm:PutParameter"]
    resources = [aws_ssm_parameter.delivery_state[0].arn]
  }

  # With the SQS trigger: ListEventSourceMappings takes no resource; UpdateEventSourceMapping is
  # held to this function's mappings by the function ARN condition.
  dynamic "statement" {
    for_each = var.trigger == "sqs" ? [1] : []
    content {
      sid       = "FindMappings"
      actions   = ["lambda:ListEventSourceMappings"]
      resources = ["*"]
    }
  }

  dynamic "statement" {
    for_each = var.trigger == "sqs" ? [1] : []
    content {
      sid       = "SwitchMappings"
      actions   = ["lambda:UpdateEventSourceMapping"]
      resources = ["arn:${data.aws_partition.current.partition}:lambda:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:event-source-mapping:*"]

      condition {
        test     = "ArnLike"
        variable = "lambda:FunctionArn"
        values   = ["arn:${data.aws_partition.current.partition}:lambda:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:function:${local.forwarder_function_name}*"]
      }
    }
  }
}

resource "aws_iam_role_policy" "breaker" {
  count = local.breaker_enabled ? 1 : 0

  name   = "${local.forwarder_function_name}-breaker"
  role   = aws_iam_role.forwarder.id
  policy = data.aws_iam_policy_document.breaker[0].json
}
