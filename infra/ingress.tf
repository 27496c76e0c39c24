################################################################################
# The cheaper ingresses, each an option beside the REST API (api.tf): the store's function URL
# (ingresses contains "function_url") and an HTTP API (ingresses contains "http_api"). Both hand the
# store payload 2.0 events; the store routes them as it routes the REST API's, so any other path
# or method gets its JSON 404/405.
################################################################################

################################################################################
# Function URL, AWS_IAM: callers SigV4-sign (service `lambda`)
################################################################################

resource "aws_lambda_function_url" "store" {
  count = local.function_url ? 1 : 0

  function_name      = aws_lambda_function.store.function_name
  authorization_type = "AWS_IAM"
  # The store answers once the order is stored; nothing to stream. No cors block: callers are
  # servers, and a browser has no business posting orders with AWS credentials.
  invoke_mode = "BUFFERED"
}

locals {
  # Each principal allowed to call the URL, under a statement id of its own that does not change
  # when the list is reordered.
  function_url_principals = local.function_url ? {
    for p in var.function_url_principals : substr(sha1(p), 0, 16) => p
  } : {}
}

resource "aws_lambda_permission" "function_url" {
  for_each = local.function_url_principals

  statement_id           = "AllowFunctionUrl-${each.key}"
  action                 = "lambda:InvokeFunctionUrl"
  function_name          = aws_lambda_function.store.function_name
  principal              = each.value
  function_url_auth_type = "AWS_IAM"
}

# Since October 2025 a new function URL also needs lambda:InvokeFunction
# (docs.aws.amazon.com/lambda/latest/dg/urls-auth.html). AWS offers the condition
# lambda:InvokedViaFunctionUrl to keep it to the URL; the AWS provider 5.x cannot set it, so these
# principals may also invoke the store directly, which lets them do nothing the URL does not.
resource "aws_lambda_permission" "function_url_invoke" {
  for_each = local.function_url_principals

  statement_id  = "AllowFunctionUrlInvoke-${each.key}"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.store.function_name
  principal     = each.value
}

################################################################################
# HTTP API: IAM or JWT authorization on every route, payload 2.0, the `$default` stage
################################################################################

resource "aws_apigatewayv2_api" "this" {
  count = local.http_api ? 1 : 0

  name          = "${var.name_prefix}-http-api"
  description   = "Store-and-forward: accepts orders and stores them in SQS"
  protocol_type = "HTTP"
}

resource "aws_apigatewayv2_integration" "store" {
  count = local.http_api ? 1 : 0

  api_id                 = aws_apigatewayv2_api.this[0].id
  integration_type       = "AWS_PROXY"
  integration_method     = "POST"
  integration_uri        = aws_lambda_function.store.invoke_arn
  payload_format_version = "2.0"
}

resource "aws_apigatewayv2_authorizer" "jwt" {
  count = local.http_api && var.http_api_auth == "jwt" ? 1 : 0

  api_id           = aws_apigatewayv2_api.this[0].id
  name             = "${var.name_prefix}-jwt"
  authorizer_type  = "JWT"
  identity_sources = ["$request.header.Authorization"]

  jwt_configuration {
    issuer   = var.http_api_jwt_issuer
    audience = var.http_api_jwt_audience
  }

  lifecycle {
    precondition {
      condition     = var.http_api_jwt_issuer != null && length(var.http_api_jwt_audience) > 0
      error_message = "http_api_auth = jwt needs http_api_jwt_issuer (the token issuer's https URL) and at least one http_api_jwt_audience."
    }
  }
}

# `$default` takes every method and path, as the REST API's `ANY /` and `ANY /{proxy+}` do, so a
# wrong route gets the store's JSON 404/405; unauthorized calls get API Gateway's 401/403.
resource "aws_apigatewayv2_route" "store" {
  count = local.http_api ? 1 : 0

  api_id             = aws_apigatewayv2_api.this[0].id
  route_key          = "$default"
  target             = "integrations/${aws_apigatewayv2_integration.store[0].id}"
  authorization_type = var.http_api_auth == "jwt" ? "JWT" : "AWS_IAM"
  authorizer_id      = one(aws_apigatewayv2_authorizer.jwt[*].id)
}

resource "aws_cloudwatch_log_group" "http_api" {
  # checkov:skip=CKV_AWS_158:CloudWatch Logs encrypts every log group at rest; a KMS key would need a key policy for the logs service. Access logs hold no payload
  # checkov:skip=CKV_AWS_338:Retention is log_retention_in_days, the operator's cost decision
  count = local.http_api ? 1 : 0

  name              = "/aws/apigateway/${var.name_prefix}-http-api"
  retention_in_days = var.log_retention_in_days
}

resource "aws_apigatewayv2_stage" "this" {
  count = local.http_api ? 1 : 0

  api_id      = aws_apigatewayv2_api.this[0].id
  name        = "$default"
  auto_deploy = true

  # The whole stage: an HTTP API has no usage plans or per-caller limits. Both are always set,
  # since a stage left without them throttles every request.
  default_route_settings {
    throttling_rate_limit  = var.http_api_throttling_rate_limit
    throttling_burst_limit = var.http_api_throttling_burst_limit
  }

  # HTTP APIs write access logs through API Gateway's service-linked role: no account-wide role.
  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.http_api[0].arn
    format = jsonencode({
      requestId          = "$context.requestId"
      requestTime        = "$context.requestTime"
      sourceIp           = "$context.identity.sourceIp"
      caller             = "$context.identity.userArn"
      jwtSubject         = "$context.authorizer.claims.sub"
      httpMethod         = "$context.httpMethod"
      path               = "$context.path"
      status             = "$context.status"
      responseLength     = "$context.responseLength"
      integrationStatus  = "$context.integrationStatus"
      integrationLatency = "$context.integrationLatency"
      error              = "$context.error.message"
      authorizerError    = "$context.authorizer.error"
    })
  }
}

resource "aws_lambda_permission" "http_api" {
  count = local.http_api ? 1 : 0

  statement_id  = "AllowHttpApiInvoke"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.store.function_name
  principal     = "apigateway.amazonaws.com"
  # Any stage and route of this API only.
  source_arn = "${aws_apigatewayv2_api.this[0].execution_arn}/*"
}
