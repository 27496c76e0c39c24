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

  # The secrets it reads (secret_arns): each service's read action on exactly those ARNs.
  dynamic "statement" {
    for_each = local.secret_resources
    content {
      sid       = local.secret_read[statement.key].sid
      actions   = [local.secret_read[statement.key].action]
      resources = statement.value
    }
  }

  # Secrets under customer-managed keys: decrypted through the services that hold them only.
  dynamic "statement" {
    for_each = length(local.secret_kms_key_arns) == 0 || length(local.secret_resources) == 0 ? [] : [local.secret_kms_key_arns]
    content {
      sid       = "DecryptSecrets"
      actions   = ["kms:Decrypt"]
      resources = statement.value

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = [for service in keys(local.secret_resources) : "${service}.${data.aws_region.current.name}.amazonaws.com"]
      }
    }
  }
}

locals {
  # Every secret the forwarder reads, by the variable that names it (unset ones left out).
  secret_arns = { for name, arn in {
    signing_secret_arn            = var.signing_secret_arn
    backend_headers_secret_arn    = var.backend_headers_secret_arn
    oauth_client_secret_arn       = var.oauth_client_secret_arn
    client_certificate_secret_arn = var.client_certificate_secret_arn
    backend_ca_arn                = var.backend_ca_arn
  } : name => arn if arn != null }

  # Where a secret is kept decides the action: an SSM parameter or a Secrets Manager secret.
  secret_read = {
    ssm            = { sid = "ReadSecretParameters", action = "ssm:GetParameter" }
    secretsmanager = { sid = "ReadSecrets", action = "secretsmanager:GetSecretValue" }
  }
  # The resources to allow, by service (only the services that hold a secret). A Secrets Manager
  # ARN ends in a random 6-character suffix (`<name>-AbCdEf`) that people often leave out:
  # GetSecretValue finds the secret by the partial ARN, but IAM would compare it with the full one
  # and deny. `-??????` matches the suffix (as AWS advises); the ARN itself, a full one. Whether an
  # ARN has its suffix cannot be told (`orders-apikey` may be a name), so both go in.
  secret_resources = { for service, resources in {
    for arn in distinct(values(local.secret_arns)) :
    (strcontains(arn, ":ssm:") ? "ssm" : "secretsmanager") => strcontains(arn, ":ssm:") ? [arn] : [arn, "${arn}-??????"]...
  } : service => sort(flatten(resources)) }

  # The customer-managed keys those secrets are under (signing_secret_kms_key_arn from before
  # there were other secrets).
  secret_kms_key_arns = sort(distinct(compact(concat([var.signing_secret_kms_key_arn], var.secret_kms_key_arns))))

  # No wildcards anywhere (region and account included): the policy must name each secret.
  secret_arn_pattern  = "^arn:aws[a-z-]*:(ssm:[a-z0-9-]+:[0-9]{12}:parameter/[A-Za-z0-9_./-]+|secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+)$"
  kms_key_arn_pattern = "^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$"
  bad_secret_arns     = [for name, arn in local.secret_arns : name if !can(regex(local.secret_arn_pattern, arn))]
  bad_kms_key_arns    = [for arn in local.secret_kms_key_arns : arn if !can(regex(local.kms_key_arn_pattern, arn))]
}

resource "aws_iam_role_policy" "forwarder" {
  name   = "${local.forwarder_function_name}-policy"
  role   = aws_iam_role.forwarder.id
  policy = data.aws_iam_policy_document.forwarder.json

  lifecycle {
    precondition {
      condition     = length(local.bad_secret_arns) == 0
      error_message = "${join(" and ", local.bad_secret_arns)} must be the ARN of an SSM parameter (arn:aws:ssm:<region>:<account>:parameter/<name>) or of a Secrets Manager secret (arn:aws:secretsmanager:<region>:<account>:secret:<name>[-AbCdEf]), without wildcards."
    }

    precondition {
      condition     = length(local.bad_kms_key_arns) == 0
      error_message = "${join(", ", local.bad_kms_key_arns)}: signing_secret_kms_key_arn and secret_kms_key_arns take the ARNs of KMS keys (arn:aws:kms:<region>:<account>:key/<id>; IAM does not match aliases), without wildcards."
    }

    precondition {
      condition     = length(local.secret_kms_key_arns) == 0 || length(local.secret_arns) > 0
      error_message = "signing_secret_kms_key_arn and secret_kms_key_arns are the keys of the forwarder's secrets, but no secret ARN is set."
    }
  }
}
