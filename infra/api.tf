locals {
  # Orders are accepted on POST /orders/new-order (ORDER_PATH of the store).
  order_path = "/orders/new-order"

  # Which ingresses (variable ingresses) this stack has; each one's resources exist only with it.
  rest         = contains(var.ingresses, "rest")
  http_api     = contains(var.ingresses, "http_api")
  function_url = contains(var.ingresses, "function_url")
}

################################################################################
# REST API (ingresses contains "rest", the default): a proxy; the store does the routing
################################################################################

resource "aws_api_gateway_rest_api" "this" {
  count = local.rest ? 1 : 0

  # checkov:skip=CKV_AWS_237:Replacing the API changes its URL and key; it is replaced in place on purpose
  name        = "${var.name_prefix}-api"
  description = "Store-and-forward: accepts orders and stores them in SQS"

  endpoint_configuration {
    types = [var.api_endpoint_type]
  }
}

# Every method on every path goes to the store, so wrong paths and methods get the same JSON errors
# as bad orders (404, and 405 with `Allow: POST`) instead of API Gateway's 403 "Missing
# Authentication Token".
resource "aws_api_gateway_resource" "proxy" {
  count = local.rest ? 1 : 0

  rest_api_id = aws_api_gateway_rest_api.this[0].id
  parent_id   = aws_api_gateway_rest_api.this[0].root_resource_id
  path_part   = "{proxy+}"
}

locals {
  # `{proxy+}` does not match `/`, which is its own resource.
  routes = local.rest ? {
    root  = aws_api_gateway_rest_api.this[0].root_resource_id
    proxy = aws_api_gateway_resource.proxy[0].id
  } : {}
}

resource "aws_api_gateway_method" "store" {
  # checkov:skip=CKV2_AWS_53:The store validates every request itself (JSON, size, schema) and keeps the body byte for byte; an API Gateway model would reject valid orders (e.g. numbers beyond f64)
  for_each = local.routes

  rest_api_id      = aws_api_gateway_rest_api.this[0].id
  resource_id      = each.value
  http_method      = "ANY"
  authorization    = var.api_auth == "iam" ? "AWS_IAM" : "NONE"
  api_key_required = var.api_auth == "api_key"
}

resource "aws_api_gateway_integration" "store" {
  for_each = local.routes

  rest_api_id             = aws_api_gateway_rest_api.this[0].id
  resource_id             = each.value
  http_method             = aws_api_gateway_method.store[each.key].http_method
  type                    = "AWS_PROXY"
  integration_http_method = "POST"
  uri                     = aws_lambda_function.store.invoke_arn
}

################################################################################
# Errors API Gateway answers itself (throttling, payload too large, integration failures), in the
# store's JSON error shape. LocalStack 4.13 applies the status codes but not the templates.
################################################################################

locals {
  # `$context.error.messageString` is already a quoted JSON string.
  gateway_error = "{\"error\":{\"code\":\"$context.error.responseType\",\"message\":$context.error.messageString}}"
}

resource "aws_api_gateway_gateway_response" "this" {
  for_each = toset(local.rest ? ["DEFAULT_4XX", "DEFAULT_5XX"] : [])

  rest_api_id        = aws_api_gateway_rest_api.this[0].id
  response_type      = each.key
  response_templates = { "application/json" = local.gateway_error }
  response_parameters = {
    "gatewayresponse.header.Content-Type" = "'application/json'"
  }
}

locals {
  # Everything that makes up the gateway responses, for the deployment's triggers.
  gateway_responses_hash = sha1(jsonencode({
    for type, r in aws_api_gateway_gateway_response.this :
    type => [r.status_code, r.response_templates, r.response_parameters]
  }))
}

################################################################################
# Deployment & stage
################################################################################

resource "aws_api_gateway_deployment" "this" {
  count = local.rest ? 1 : 0

  rest_api_id = aws_api_gateway_rest_api.this[0].id
  description = "Managed by Terraform"

  # A new deployment whenever the routes, the integration or the gateway responses change: a
  # stage serves the snapshot its deployment took, so a change that does not redeploy never goes
  # live. The gateway responses are hashed on their own from their configuration, known at plan.
  triggers = {
    redeployment = sha1(jsonencode([
      aws_api_gateway_resource.proxy[0].id,
      [for m in aws_api_gateway_method.store : [m.id, m.authorization, m.api_key_required]],
      [for i in aws_api_gateway_integration.store : [i.id, i.uri]],
    ]))
    gateway_responses = local.gateway_responses_hash
  }

  # The snapshot must be taken after the responses exist (and after each change to them).
  depends_on = [aws_api_gateway_gateway_response.this]

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_api_gateway_stage" "this" {
  # checkov:skip=CKV_AWS_76:Access logs and execution logging need the account-wide API Gateway CloudWatch role (aws_api_gateway_account), which this stack does not own; the store logs every request
  # checkov:skip=CKV2_AWS_4:See CKV_AWS_76: execution logging needs the account-wide role
  # checkov:skip=CKV_AWS_73:X-Ray: see the functions (no-"*" IAM rule); the trace header is passed through
  # checkov:skip=CKV_AWS_120:Orders are POSTs and must never be cached
  # checkov:skip=CKV2_AWS_51:Callers authenticate with an API key (or IAM); mutual TLS needs a custom domain, which is outside this stack
  # checkov:skip=CKV2_AWS_29:A WAF web ACL is the operator's, per account; associate one with the stage (aws_wafv2_web_acl_association) where needed. The usage plan throttles each key
  count = local.rest ? 1 : 0

  rest_api_id   = aws_api_gateway_rest_api.this[0].id
  deployment_id = aws_api_gateway_deployment.this[0].id
  stage_name    = var.api_stage_name
}

resource "aws_api_gateway_method_settings" "this" {
  # checkov:skip=CKV_AWS_225:Orders are POSTs and must never be cached
  count = local.rest && (var.api_throttling_rate_limit != null || var.api_throttling_burst_limit != null) ? 1 : 0

  rest_api_id = aws_api_gateway_rest_api.this[0].id
  stage_name  = aws_api_gateway_stage.this[0].stage_name
  method_path = "*/*"

  settings {
    throttling_rate_limit  = var.api_throttling_rate_limit
    throttling_burst_limit = var.api_throttling_burst_limit
  }
}

################################################################################
# Authentication: an API key in a usage plan (api_auth = "api_key")
################################################################################

resource "aws_api_gateway_api_key" "this" {
  count = local.rest && var.api_auth == "api_key" ? 1 : 0

  name        = "${var.name_prefix}-key"
  description = "Callers of ${var.name_prefix}-api send it as x-api-key"
}

resource "aws_api_gateway_usage_plan" "this" {
  count = length(aws_api_gateway_api_key.this)

  name        = "${var.name_prefix}-plan"
  description = "Throttling and quota per API key of ${var.name_prefix}-api"

  api_stages {
    api_id = aws_api_gateway_rest_api.this[0].id
    stage  = aws_api_gateway_stage.this[0].stage_name
  }

  throttle_settings {
    rate_limit  = var.usage_plan_rate_limit
    burst_limit = var.usage_plan_burst_limit
  }

  dynamic "quota_settings" {
    for_each = var.usage_plan_quota_limit == null ? [] : [var.usage_plan_quota_limit]
    content {
      limit  = quota_settings.value
      period = var.usage_plan_quota_period
    }
  }
}

resource "aws_api_gateway_usage_plan_key" "this" {
  count = length(aws_api_gateway_api_key.this)

  key_id        = aws_api_gateway_api_key.this[0].id
  key_type      = "API_KEY"
  usage_plan_id = aws_api_gateway_usage_plan.this[0].id
}

################################################################################
# Permission
################################################################################

resource "aws_lambda_permission" "api" {
  count = local.rest ? 1 : 0

  statement_id  = "AllowApiGatewayInvoke"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.store.function_name
  principal     = "apigateway.amazonaws.com"
  # Any stage, method and path of this API only.
  source_arn = "${aws_api_gateway_rest_api.this[0].execution_arn}/*/*"
}

# The REST resources became optional (ingresses); stacks applied before keep them as they are.
moved {
  from = aws_api_gateway_rest_api.this
  to   = aws_api_gateway_rest_api.this[0]
}

moved {
  from = aws_api_gateway_resource.proxy
  to   = aws_api_gateway_resource.proxy[0]
}

moved {
  from = aws_api_gateway_deployment.this
  to   = aws_api_gateway_deployment.this[0]
}

moved {
  from = aws_api_gateway_stage.this
  to   = aws_api_gateway_stage.this[0]
}

moved {
  from = aws_lambda_permission.api
  to   = aws_lambda_permission.api[0]
}
