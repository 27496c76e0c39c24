################################################################################
# Log groups
################################################################################

# Created here (not by Lambda on first invocation) so that retention applies and each
# function's role can be limited to its own group.

resource "aws_cloudwatch_log_group" "store" {
  name              = "/aws/lambda/${local.store_function_name}"
  retention_in_days = var.log_retention_in_days
}

resource "aws_cloudwatch_log_group" "forwarder" {
  name              = "/aws/lambda/${local.forwarder_function_name}"
  retention_in_days = var.log_retention_in_days
}
