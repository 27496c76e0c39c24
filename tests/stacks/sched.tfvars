# Integration suite: scheduled trigger, a failover queue, and a store whose primary queue does
# not exist, so every order takes the failover path. The rule exists but stays disabled: the
# suite invokes the forwarder itself, as EventBridge would, and checks that invocation's tally.
backend_url           = "http://127.0.0.1:9911/sales/save-order"
trigger               = "schedule"
trigger_enabled       = false
schedule_expression   = "rate(1 minute)"
enable_failover_queue = true
store_environment = {
  QUEUE_URL = "http://127.0.0.1:4566/000000000000/sfit-sched-unavailable"
}
