################################################################################
# Dashboard: what the store took in, what the forwarder made of it and how the backend answered,
# the queues, the circuit breaker, the alarms and the latest failed attempts, on one page
################################################################################

locals {
  dashboard_name   = var.name_prefix
  dashboard_region = data.aws_region.current.name
  # The functions' EMF metrics (functions/core/src/metrics.rs); alarms.tf names it too.
  metric_namespace = "storeforward"
  # AWS publishes every metric shown here once a minute.
  dashboard_period = 60

  # Every queue of the stack, in the order an order passes them. Names, not resources: they are
  # known when planning, and so is the whole body (the plan tests read it).
  dashboard_queues = concat(
    [{ title = "Orders queue", name = local.queue_name }],
    var.enable_failover_queue ? [{ title = "Failover queue", name = local.failover_queue_name }] : [],
    [{ title = "Dead-letter queue", name = local.dlq_name }],
    local.breaker_enabled ? [{ title = "Probe queue", name = local.probe_queue_name }] : [],
  )

  # The alarms' ARNs, built from their names as alarm_arn_pattern is: an alarm widget lists them.
  dashboard_alarm_arns = [
    for key in sort(keys(local.alarms)) :
    "arn:${data.aws_partition.current.partition}:cloudwatch:${local.dashboard_region}:${data.aws_caller_identity.current.account_id}:alarm:${var.name_prefix}-${key}"
  ]

  # What a metric widget shares; each adds its title, statistic and metrics.
  dashboard_metric_defaults = {
    view    = "timeSeries"
    stacked = false
    region  = local.dashboard_region
    period  = local.dashboard_period
    yAxis   = { left = { min = 0 } }
  }

  store_metric     = [local.metric_namespace, "FunctionName", local.store_function_name]
  forwarder_metric = [local.metric_namespace, "FunctionName", local.forwarder_function_name]

  # Rows of widgets, each 24 units wide at most; x and y are worked out below.
  dashboard_rows = [
    [{
      type   = "text"
      width  = 24
      height = 2
      properties = {
        markdown = join("\n", [
          "## ${var.name_prefix}: store and forward",
          "The store (`${local.store_function_name}`) puts each order in `${local.queue_name}`${var.enable_failover_queue ? " (or `${local.failover_queue_name}`)" : ""}; the forwarder (`${local.forwarder_function_name}`) delivers it to the backend, retries on the schedule and gives up into `${local.dlq_name}`${local.breaker_enabled ? ", and pauses delivery while the backend is down (probe queue `${local.probe_queue_name}`)" : ""}. `sfctl status` tells the delivery state, `sfctl dlq peek` why orders were dead-lettered.",
        ])
      }
    }],

    # The store: what callers sent.
    [
      {
        type   = "metric"
        width  = 12
        height = 6
        properties = merge(local.dashboard_metric_defaults, {
          title = "Orders: accepted, rejected, not stored"
          stat  = "Sum"
          metrics = concat(
            [
              [local.store_metric[0], "Accepted", local.store_metric[1], local.store_metric[2], { label = "Accepted (202)" }],
              [local.store_metric[0], "Rejected", local.store_metric[1], local.store_metric[2], { label = "Rejected (4xx)" }],
              [local.store_metric[0], "StorageErrors", local.store_metric[1], local.store_metric[2], { label = "Not stored (503)" }],
            ],
            var.enable_failover_queue ? [
              [local.store_metric[0], "FailoverUsed", local.store_metric[1], local.store_metric[2], { label = "Accepted through the failover queue" }],
            ] : [],
          )
        })
      },
      {
        type   = "metric"
        width  = 12
        height = 6
        properties = merge(local.dashboard_metric_defaults, {
          title = "Orders rejected, by reason"
          stat  = "Sum"
          metrics = [[{
            id         = "reasons"
            expression = "SEARCH('{${local.metric_namespace},FunctionName,Reason} MetricName=\"Rejected\" FunctionName=\"${local.store_function_name}\"', 'Sum', ${local.dashboard_period})"
            label      = "$${PROP('Dim.Reason')}"
          }]]
        })
      },
    ],

    # The forwarder: what became of each message, and how the backend answered each attempt.
    [
      {
        type   = "metric"
        width  = 12
        height = 6
        properties = merge(local.dashboard_metric_defaults, {
          title = "Deliveries by outcome"
          stat  = "Sum"
          metrics = [
            for name in ["Received", "Delivered", "Retried", "Deferred", "DeadLettered", "Dropped", "Failed", "Parked", "Held", "Stopped"] :
            [local.forwarder_metric[0], name, local.forwarder_metric[1], local.forwarder_metric[2]]
          ]
        })
      },
      {
        type   = "metric"
        width  = 12
        height = 6
        properties = merge(local.dashboard_metric_defaults, {
          title = "Delivery attempts by backend answer"
          stat  = "Sum"
          metrics = [
            for name in ["Backend2xx", "Backend3xx", "Backend4xx", "Backend5xx", "BackendNoAnswer", "CredentialsUnavailable", "CredentialsRejected", "CredentialsMalformed"] :
            [local.forwarder_metric[0], name, local.forwarder_metric[1], local.forwarder_metric[2]]
          ]
        })
      },
    ],

    [
      {
        type   = "metric"
        width  = 12
        height = 6
        properties = merge(local.dashboard_metric_defaults, {
          title = "Delivery latency (ms, per attempt)"
          stat  = "p50"
          metrics = [
            for stat in ["p50", "p99", "Maximum"] :
            [local.forwarder_metric[0], "DeliveryLatency", local.forwarder_metric[1], local.forwarder_metric[2], { stat = stat, label = stat }]
          ]
        })
      },
      {
        type   = "metric"
        width  = 12
        height = 6
        properties = merge(local.dashboard_metric_defaults, {
          title = "Functions: failed invocations and throttles"
          stat  = "Sum"
          # setproduct, not flatten: flatten would also flatten each metric into its strings.
          metrics = [
            for pair in setproduct([local.store_function_name, local.forwarder_function_name], ["Errors", "Throttles"]) :
            ["AWS/Lambda", pair[1], "FunctionName", pair[0], { label = "${pair[0]} ${pair[1]}" }]
          ]
        })
      },
    ],

    # The queues: how many messages wait, are in flight or delayed, and for how long.
    [
      for queue in local.dashboard_queues : {
        type   = "metric"
        width  = floor(24 / length(local.dashboard_queues))
        height = 6
        properties = merge(local.dashboard_metric_defaults, {
          title = "${queue.title}: messages"
          stat  = "Maximum"
          metrics = [
            for name, label in {
              ApproximateNumberOfMessagesVisible    = "Waiting"
              ApproximateNumberOfMessagesNotVisible = "In flight"
              ApproximateNumberOfMessagesDelayed    = "Delayed (retry waits, probes)"
            } :
            ["AWS/SQS", name, "QueueName", queue.name, { label = label }]
          ]
        })
      }
    ],

    concat(
      [{
        type   = "metric"
        width  = local.breaker_enabled ? 12 : 24
        height = 6
        properties = merge(local.dashboard_metric_defaults, {
          title   = "Age of the oldest message (s)"
          stat    = "Maximum"
          metrics = [for queue in local.dashboard_queues : ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", queue.name, { label = queue.title }]]
        })
      }],
      local.breaker_enabled ? [{
        type   = "metric"
        width  = 12
        height = 6
        properties = merge(local.dashboard_metric_defaults, {
          title = "Circuit breaker"
          stat  = "Sum"
          metrics = [
            for name in ["CircuitOpened", "CircuitClosed", "ProbeFailed", "DeliveryPaused"] :
            [local.forwarder_metric[0], name, local.forwarder_metric[1], local.forwarder_metric[2]]
          ]
        })
      }] : [],
    ),

    length(local.dashboard_alarm_arns) > 0 ? [{
      type   = "alarm"
      width  = 24
      height = 4
      properties = {
        title  = "Alarms"
        alarms = local.dashboard_alarm_arns
        sortBy = "stateUpdatedTimestamp"
      }
    }] : [],

    # The latest attempts that failed, from the forwarder's JSON log lines: one `delivery.attempt`
    # line per receive that called the backend, its outcome `delivered` or why not.
    [{
      type   = "log"
      width  = 24
      height = 8
      properties = {
        title  = "Latest failed delivery attempts"
        region = local.dashboard_region
        view   = "table"
        query = join(" | ", [
          "SOURCE '${aws_cloudwatch_log_group.forwarder.name}'",
          "fields @timestamp, idempotency_key, message_id, outcome, reason, `error.type`, `http.response.status_code`, latency_ms, trace_id",
          "filter event = 'delivery.attempt' and outcome != 'delivered'",
          "sort @timestamp desc",
          "limit 50",
        ])
      }
    }],
  ]

  dashboard_rows_shown = [for row in local.dashboard_rows : row if length(row) > 0]
  dashboard_row_heights = [
    for row in local.dashboard_rows_shown : max([for widget in row : widget.height]...)
  ]

  dashboard_widgets = flatten([
    for i, row in local.dashboard_rows_shown : [
      for j, widget in row : merge(widget, {
        x = sum(concat([0], [for k in range(j) : row[k].width]))
        y = sum(concat([0], slice(local.dashboard_row_heights, 0, i)))
      })
    ]
  ])

  # The console's address of the dashboard, in the partition's console.
  dashboard_console = lookup({
    aws-cn     = "console.amazonaws.cn"
    aws-us-gov = "console.amazonaws-us-gov.com"
  }, data.aws_partition.current.partition, "console.aws.amazon.com")
}

resource "aws_cloudwatch_dashboard" "this" {
  count = var.dashboard_enabled ? 1 : 0

  dashboard_name = local.dashboard_name
  dashboard_body = jsonencode({
    start   = "-PT6H"
    widgets = local.dashboard_widgets
  })
}
