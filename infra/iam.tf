data "aws_iam_policy_document" "lambda_assume_role" {
  statement {
    sid     = "LambdaAssumeRole"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

# Both functions encrypt (send) and decrypt (receive) with the queues' customer-managed key, if
# one is configured.
data "aws_iam_policy_document" "kms" {
  count = var.kms_key_arn == null ? 0 : 1

  statement {
    sid       = "UseQueueKey"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

################################################################################
# Store role
################################################################################

resource "aws_iam_role" "store" {
  name               = "${local.store_function_name}-role"
  description        = "Execution role of the ${local.store_function_name} function"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume_role.json
}

data "aws_iam_policy_document" "store" {
  source_policy_documents = data.aws_iam_policy_document.kms[*].json

  statement {
    sid       = "StoreOrders"
    actions   = ["sqs:SendMessage"]
    resources = local.source_queue_arns
  }

  statement {
    sid       = "WriteLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.store.arn}:*"]
  }
}

resource "aws_iam_role_policy" "store" {
  name   = "${local.store_function_name}-policy"
  role   = aws_iam_role.store.id
  policy = data.aws_iam_policy_document.store.json
}

################################################################################
# Forwarder role
################################################################################

resource "aws_iam_role" "forwarder" {
  name               = "${local.forwarder_function_name}-role"
  description        = "Execution role of the ${local.forwarder_function_name} function"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume_role.json
}

data "aws_iam_policy_document" "forwarder" {
  source_policy_documents = data.aws_iam_policy_document.kms[*].json

  # The event source mapping polls with the function's role; in scheduled mode the function
  # receives itself. Delete and ChangeMessageVisibility also cover their batch variants.
  statement {
    sid = "ConsumeOrders"
    actions = [
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:ChangeMessageVisibility",
      "sqs:GetQueueAttributes",
    ]
    resources = local.source_queue_arns
  }

  statement {
    sid       = "DeadLetter"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dlq.arn]
  }

  statement {
    sid       = "WriteLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.forwarder.arn}:*"]
  }

  # The signing secret, read once at cold start.
  dynamic "statement" {
    for_each = var.signing_secret_arn == null ? [] : [var.signing_secret_arn]
    content {
      sid       = "ReadSigningSecret"
      actions   = [strcontains(statement.value, ":ssm:") ? "ssm:GetParameter" : "secretsmanager:GetSecretValue"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "forwarder" {
  name   = "${local.forwarder_function_name}-policy"
  role   = aws_iam_role.forwarder.id
  policy = data.aws_iam_policy_document.forwarder.json
}
