################################################################################
# Log groups
################################################################################

# Created here (not by Lambda on first invocation) so that retention applies and each
# function's role can be limited to its own group.

resource "aws_cloudwatch_log_group" "store" {
  # checkov:skip=CKV_AWS_158:CloudWatch Logs encrypts every log group at rest; a KMS key would need a key policy for the logs service. Payloads and secrets are never logged at INFO
  # checkov:skip=CKV_AWS_338:Retention is log_retention_in_days, the operator's cost decision
  name              = "/aws/lambda/${local.store_function_name}"
  retention_in_days = var.log_retention_in_days
}

resource "aws_cloudwatch_log_group" "forwarder" {
  # checkov:skip=CKV_AWS_158:CloudWatch Logs encrypts every log group at rest; a KMS key would need a key policy for the logs service. Payloads and secrets are never logged at INFO
  # checkov:skip=CKV_AWS_338:Retention is log_retention_in_days, the operator's cost decision
  name              = "/aws/lambda/${local.forwarder_function_name}"
  retention_in_days = var.log_retention_in_days
}
