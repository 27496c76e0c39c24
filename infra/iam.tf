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
      actions   = [local.signing_secret_in_ssm ? "ssm:GetParameter" : "secretsmanager:GetSecretValue"]
      resources = local.signing_secret_resources
    }
  }

  # A secret under a customer-managed key: decrypted through its service only.
  dynamic "statement" {
    for_each = var.signing_secret_kms_key_arn == null ? [] : [var.signing_secret_kms_key_arn]
    content {
      sid       = "DecryptSigningSecret"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["${local.signing_secret_in_ssm ? "ssm" : "secretsmanager"}.${data.aws_region.current.name}.amazonaws.com"]
      }
    }
  }
}

locals {
  signing_secret_in_ssm = var.signing_secret_arn != null && strcontains(coalesce(var.signing_secret_arn, "-"), ":ssm:")
  # A Secrets Manager ARN ends in a random 6-character suffix (`<name>-AbCdEf`) that people often
  # leave out: GetSecretValue finds the secret by the partial ARN, but IAM would compare it with the
  # full one and deny. `-??????` matches the suffix (as AWS advises); the ARN itself, a full one.
  signing_secret_resources = var.signing_secret_arn == null ? [] : (
    local.signing_secret_in_ssm ? [var.signing_secret_arn] : [var.signing_secret_arn, "${var.signing_secret_arn}-??????"]
  )
}

resource "aws_iam_role_policy" "forwarder" {
  name   = "${local.forwarder_function_name}-policy"
  role   = aws_iam_role.forwarder.id
  policy = data.aws_iam_policy_document.forwarder.json
}
