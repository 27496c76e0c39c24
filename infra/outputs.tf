################################################################################
# API
################################################################################

output "api_url" {
  description = "ingresses with rest: invoke URL of the REST API stage; orders go to `<api_url>/orders/new-order` (null without rest)"
  value       = one(aws_api_gateway_stage.this[*].invoke_url)
}

output "api_id" {
  description = "ingresses with rest: ID of the REST API (null without rest)"
  value       = one(aws_api_gateway_rest_api.this[*].id)
}

output "api_stage" {
  description = "ingresses with rest: name of the REST API stage (null without rest)"
  value       = one(aws_api_gateway_stage.this[*].stage_name)
}

output "api_execution_arn" {
  description = "ingresses with rest: execution ARN of the REST API; with api_auth = iam, grant callers `execute-api:Invoke` on `<api_execution_arn>/<stage>/POST/orders/new-order` (null without rest)"
  value       = one(aws_api_gateway_rest_api.this[*].execution_arn)
}

output "api_key" {
  description = "ingresses with rest and api_auth = api_key: the key callers send as `x-api-key` (`terraform output -raw api_key`); null otherwise"
  value       = one(aws_api_gateway_api_key.this[*].value)
  sensitive   = true
}

output "usage_plan_id" {
  description = "ingresses with rest and api_auth = api_key: the usage plan; add more keys to it for more callers (null otherwise)"
  value       = one(aws_api_gateway_usage_plan.this[*].id)
}

output "function_url" {
  description = "ingresses with function_url: the store's function URL (AWS_IAM auth, ends in `/`); callers SigV4-sign (service `lambda`) POSTs to `<function_url>orders/new-order` (null without function_url)"
  value       = one(aws_lambda_function_url.store[*].function_url)
}

output "http_api_url" {
  description = "ingresses with http_api: invoke URL of the HTTP API's `$default` stage (ends in `/`); orders go to `<http_api_url>orders/new-order` (null without http_api)"
  value       = one(aws_apigatewayv2_stage.this[*].invoke_url)
}

output "http_api_execution_arn" {
  description = "ingresses with http_api and http_api_auth = iam: grant callers `execute-api:Invoke` on `<http_api_execution_arn>/$default/POST/orders/new-order` (null without http_api)"
  value       = one(aws_apigatewayv2_api.this[*].execution_arn)
}

output "order_urls" {
  description = "Where orders go, by ingress: `rest`, `http_api`, `function_url` (only the ingresses this stack has)"
  value = merge(
    local.rest ? { rest = "${aws_api_gateway_stage.this[0].invoke_url}${local.order_path}" } : {},
    local.http_api ? { http_api = "${trimsuffix(aws_apigatewayv2_stage.this[0].invoke_url, "/")}${local.order_path}" } : {},
    local.function_url ? { function_url = "${trimsuffix(aws_lambda_function_url.store[0].function_url, "/")}${local.order_path}" } : {},
  )
}

output "order_path" {
  description = "Path of the order route, without the stage"
  value       = local.order_path
}

################################################################################
# Queues
################################################################################

output "queue_url" {
  description = "URL of the orders queue"
  value       = aws_sqs_queue.orders.url
}

output "queue_arn" {
  description = "ARN of the orders queue"
  value       = aws_sqs_queue.orders.arn
}

output "dlq_url" {
  description = "URL of the dead-letter queue"
  value       = aws_sqs_queue.dlq.url
}

output "failover_queue_url" {
  description = "URL of the failover queue (null when enable_failover_queue = false)"
  value       = try(aws_sqs_queue.failover[0].url, null)
}

################################################################################
# Functions & trigger
################################################################################

output "store_function_name" {
  description = "Name of the store function"
  value       = aws_lambda_function.store.function_name
}

output "forwarder_function_name" {
  description = "Name of the forwarder function"
  value       = aws_lambda_function.forwarder.function_name
}

output "schedule_rule_name" {
  description = "Name of the EventBridge rule that runs the forwarder (null when trigger = sqs)"
  value       = try(aws_cloudwatch_event_rule.schedule[0].name, null)
}

################################################################################
# Alarms
################################################################################

output "alarm_names" {
  description = "The CloudWatch alarms, by what they watch"
  value       = { for k, a in aws_cloudwatch_metric_alarm.this : k => a.alarm_name }
}

output "alarm_topic_arn" {
  description = "The SNS topic the alarms notify (null when none)"
  value       = local.alarm_topic_arn == "none" ? null : local.alarm_topic_arn
}

################################################################################
# Logs
################################################################################

output "log_group_names" {
  description = "The functions' log groups (with retention log_retention_in_days), where their EMF metrics also land"
  value = {
    store     = aws_cloudwatch_log_group.store.name
    forwarder = aws_cloudwatch_log_group.forwarder.name
  }
}

output "probe_queue_url" {
  description = "The circuit breaker's probe queue, where tickets wait for the next probe (null with breaker_threshold = 0)"
  value       = one(aws_sqs_queue.probe[*].url)
}

output "state_parameter_name" {
  description = "The SSM parameter holding the delivery state: delivering, paused (by whom, why) or circuit open (null with breaker_threshold = 0)"
  value       = one(aws_ssm_parameter.delivery_state[*].name)
}

################################################################################
# Dashboard
################################################################################

output "dashboard_name" {
  description = "The CloudWatch dashboard (null when dashboard_enabled = false)"
  value       = one(aws_cloudwatch_dashboard.this[*].dashboard_name)
}

output "dashboard_url" {
  description = "The dashboard in the AWS console of the stack's region (null when dashboard_enabled = false)"
  value       = var.dashboard_enabled ? "https://${local.dashboard_region}.${local.dashboard_console}/cloudwatch/home?region=${local.dashboard_region}#dashboards/dashboard/${local.dashboard_name}" : null
}
