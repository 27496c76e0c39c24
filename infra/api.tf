locals {
  # POST /orders/new-order; the store function checks the same path (ORDER_PATH).
  order_resource     = "orders"
  new_order_resource = "new-order"
  order_path         = "/${local.order_resource}/${local.new_order_resource}"
}

################################################################################
# REST API
################################################################################

resource "aws_api_gateway_rest_api" "this" {
  name        = "${var.name_prefix}-api"
  description = "Store-and-forward: accepts orders and stores them in SQS"

  endpoint_configuration {
    types = [var.api_endpoint_type]
  }
}

resource "aws_api_gateway_resource" "orders" {
  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_rest_api.this.root_resource_id
  path_part   = local.order_resource
}

resource "aws_api_gateway_resource" "new_order" {
  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_resource.orders.id
  path_part   = local.new_order_resource
}

resource "aws_api_gateway_method" "new_order_post" {
  rest_api_id   = aws_api_gateway_rest_api.this.id
  resource_id   = aws_api_gateway_resource.new_order.id
  http_method   = "POST"
  authorization = "NONE"
}

resource "aws_api_gateway_integration" "new_order_post" {
  rest_api_id             = aws_api_gateway_rest_api.this.id
  resource_id             = aws_api_gateway_resource.new_order.id
  http_method             = aws_api_gateway_method.new_order_post.http_method
  type                    = "AWS_PROXY"
  integration_http_method = "POST"
  uri                     = aws_lambda_function.store.invoke_arn
}

################################################################################
# Deployment & stage
################################################################################

resource "aws_api_gateway_deployment" "this" {
  rest_api_id = aws_api_gateway_rest_api.this.id
  description = "Managed by Terraform"

  # A new deployment whenever the routes or the integration change.
  triggers = {
    redeployment = sha1(jsonencode([
      aws_api_gateway_resource.orders.id,
      aws_api_gateway_resource.new_order.id,
      aws_api_gateway_method.new_order_post.id,
      aws_api_gateway_method.new_order_post.authorization,
      aws_api_gateway_integration.new_order_post.id,
      aws_api_gateway_integration.new_order_post.uri,
    ]))
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_api_gateway_stage" "this" {
  rest_api_id   = aws_api_gateway_rest_api.this.id
  deployment_id = aws_api_gateway_deployment.this.id
  stage_name    = var.api_stage_name
}

resource "aws_api_gateway_method_settings" "this" {
  count = var.api_throttling_rate_limit != null || var.api_throttling_burst_limit != null ? 1 : 0

  rest_api_id = aws_api_gateway_rest_api.this.id
  stage_name  = aws_api_gateway_stage.this.stage_name
  method_path = "*/*"

  settings {
    throttling_rate_limit  = var.api_throttling_rate_limit
    throttling_burst_limit = var.api_throttling_burst_limit
  }
}

################################################################################
# Permission
################################################################################

resource "aws_lambda_permission" "api" {
  statement_id  = "AllowApiGatewayInvoke"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.store.function_name
  principal     = "apigateway.amazonaws.com"
  # Any stage, only POST on the order route.
  source_arn = "${aws_api_gateway_rest_api.this.execution_arn}/*/${aws_api_gateway_method.new_order_post.http_method}${aws_api_gateway_resource.new_order.path}"
}
