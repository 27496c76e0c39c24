# Offline checks of the CloudWatch dashboard (dashboard.tf): its body is built from names known
# when planning, so these plans read it whole. Same mocked provider as plan.tftest.hcl.

mock_provider "aws" {
  override_data {
    target = data.aws_caller_identity.current
    values = { account_id = "123456789012" }
  }

  override_data {
    target = data.aws_partition.current
    values = { partition = "aws" }
  }

  override_data {
    target = data.aws_region.current
    values = { name = "us-east-1" }
  }

  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
}

variables {
  backend_url = "https://backend.example.com/sales/save-order"
  # Any existing file will do for a plan: only its hash is taken.
  store_package     = "README.md"
  forwarder_package = "README.md"
}

run "dashboard_by_default" {
  command = plan

  assert {
    condition     = length(aws_cloudwatch_dashboard.this) == 1 && output.dashboard_name == "storeforward"
    error_message = "The dashboard must exist by default, named after name_prefix."
  }

  assert {
    condition     = output.dashboard_url == "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#dashboards/dashboard/storeforward"
    error_message = "dashboard_url must open the dashboard in the console of the stack's region."
  }

  # Every queue of the stack (the probe queue too, the breaker being on by default): its depth
  # (waiting, in flight, delayed) and the age of its oldest message.
  assert {
    condition = toset(flatten([
      for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : [
        for m in try(w.properties.metrics, []) : "${m[1]} ${m[3]}" if try(m[0] == "AWS/SQS" && m[2] == "QueueName", false)
      ]
      ])) == toset(flatten([
      for q in ["storeforward-orders", "storeforward-orders-dlq", "storeforward-orders-probe"] : [
        for n in ["ApproximateNumberOfMessagesVisible", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed", "ApproximateAgeOfOldestMessage"] : "${n} ${q}"
      ]
    ]))
    error_message = "The dashboard must show depth and age of the orders queue, the DLQ and the probe queue, and no other queue."
  }

  # The functions' own metrics, each under its function's name.
  assert {
    condition = toset(flatten([
      for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : [
        for m in try(w.properties.metrics, []) : "${m[3]} ${m[1]}" if try(m[0] == "storeforward" && m[2] == "FunctionName", false)
      ]
      ])) == toset(concat(
      [for n in ["Accepted", "Rejected", "StorageErrors"] : "storeforward-store ${n}"],
      [for n in [
        "Received", "Delivered", "Retried", "Deferred", "DeadLettered", "Dropped", "Failed", "Parked", "Held", "Stopped",
        "Backend2xx", "Backend3xx", "Backend4xx", "Backend5xx", "BackendNoAnswer", "CredentialsUnavailable", "CredentialsRejected", "CredentialsMalformed",
        "DeliveryLatency", "CircuitOpened", "CircuitClosed", "ProbeFailed", "DeliveryPaused",
      ] : "storeforward-forwarder ${n}"],
    ))
    error_message = "The dashboard must show the store's and the forwarder's metrics (outcomes, status classes, latency, breaker) under their function names, and FailoverUsed only with a failover queue."
  }

  # Each metric is [namespace, name, dimension, value, options] or [{ expression }].
  assert {
    condition = alltrue(flatten([
      for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : [
        for m in try(w.properties.metrics, []) : can(m[0].expression) || can(regex("^(storeforward|AWS/SQS|AWS/Lambda)$", m[0]))
      ]
    ]))
    error_message = "Every metric of a widget must be a metric array or an expression."
  }

  assert {
    condition = toset(flatten([
      for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : [
        for m in try(w.properties.metrics, []) : "${m[1]} ${m[3]}" if try(m[0] == "AWS/Lambda" && m[2] == "FunctionName", false)
      ]
    ])) == toset(["Errors storeforward-store", "Throttles storeforward-store", "Errors storeforward-forwarder", "Throttles storeforward-forwarder"])
    error_message = "The dashboard must show errors and throttles of both functions."
  }

  assert {
    condition = toset(flatten([
      for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : [
        for m in try(w.properties.metrics, []) : m[4].stat if try(m[1] == "DeliveryLatency", false)
      ]
    ])) == toset(["p50", "p99", "Maximum"])
    error_message = "Delivery latency must be shown as p50, p99 and maximum."
  }

  assert {
    condition = anytrue(flatten([
      for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : [
        for m in try(w.properties.metrics, []) : try(startswith(m[0].expression, "SEARCH('{storeforward,FunctionName,Reason} MetricName=\"Rejected\" FunctionName=\"storeforward-store\"'"), false)
      ]
    ]))
    error_message = "Rejections must be shown by Reason, through a SEARCH over the store's Rejected metric."
  }

  assert {
    condition = [
      for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : w.properties.alarms if try(w.type == "alarm", false)
      ] == [[
        for k in sort(keys(aws_cloudwatch_metric_alarm.this)) : "arn:aws:cloudwatch:us-east-1:123456789012:alarm:storeforward-${k}"
    ]] && contains(keys(aws_cloudwatch_metric_alarm.this), "delivery-paused")
    error_message = "One alarm widget must list the ARNs of all the stack's alarms, the delivery-paused alarm among them."
  }

  assert {
    condition = length([
      for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : w
      if try(w.type == "log" && startswith(w.properties.query, "SOURCE '/aws/lambda/storeforward-forwarder' |") && strcontains(w.properties.query, "filter event = 'delivery.attempt' and outcome != 'delivered'"), false)
    ]) == 1
    error_message = "A Logs Insights widget must list the forwarder's failed delivery.attempt lines."
  }

  # Laid out on CloudWatch's 24-unit grid, no widget over another.
  assert {
    condition = alltrue(flatten([
      for i, a in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : [
        for j, b in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets :
        a.x >= 0 && a.x + a.width <= 24 && (i == j || a.x + a.width <= b.x || b.x + b.width <= a.x || a.y + a.height <= b.y || b.y + b.height <= a.y)
      ]
    ]))
    error_message = "The widgets must fit 24 units across and not overlap."
  }
}

run "dashboard_fifo_failover_without_breaker" {
  command = plan

  variables {
    name_prefix           = "shop"
    fifo                  = true
    enable_failover_queue = true
    breaker_threshold     = 0
  }

  assert {
    condition     = output.dashboard_name == "shop" && endswith(output.dashboard_url, "#dashboards/dashboard/shop")
    error_message = "The dashboard must be named after name_prefix."
  }

  assert {
    condition = toset(flatten([
      for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : [
        for m in try(w.properties.metrics, []) : m[3] if try(m[0] == "AWS/SQS" && m[2] == "QueueName", false)
      ]
    ])) == toset(["shop-orders.fifo", "shop-orders-failover.fifo", "shop-orders-dlq.fifo"])
    error_message = "A FIFO stack's dashboard must show its .fifo queues, the failover queue among them, and no probe queue without the breaker."
  }

  assert {
    condition = toset(flatten([
      for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : [
        for m in try(w.properties.metrics, []) : m[1] if try(m[0] == "storeforward" && contains(["FailoverUsed", "CircuitOpened", "CircuitClosed", "ProbeFailed", "DeliveryPaused"], m[1]), false)
      ]
    ])) == toset(["FailoverUsed"])
    error_message = "With a failover queue and without the breaker, the dashboard must show FailoverUsed and no breaker metrics."
  }

  assert {
    condition = toset(flatten([
      for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : [
        for m in try(w.properties.metrics, []) : m[3] if try(m[2] == "FunctionName", false)
      ]
    ])) == toset(["shop-store", "shop-forwarder"])
    error_message = "Every metric must name this stack's functions (shop-store, shop-forwarder)."
  }

  assert {
    condition = [
      for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : length(w.properties.alarms) if w.type == "alarm"
    ] == [length(aws_cloudwatch_metric_alarm.this)] && !contains(keys(aws_cloudwatch_metric_alarm.this), "delivery-paused")
    error_message = "The alarm widget must list every alarm, without the paused alarm when there is no breaker."
  }
}

run "dashboard_without_alarms" {
  command = plan

  variables {
    alarms_enabled = false
  }

  assert {
    condition     = length([for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : w if w.type == "alarm"]) == 0
    error_message = "Without alarms the dashboard must have no alarm widget (CloudWatch refuses an empty one)."
  }
}

run "dashboard_off" {
  command = plan

  variables {
    dashboard_enabled = false
  }

  assert {
    condition     = length(aws_cloudwatch_dashboard.this) == 0 && output.dashboard_name == null && output.dashboard_url == null
    error_message = "dashboard_enabled = false must create no dashboard and output null name and URL."
  }
}
