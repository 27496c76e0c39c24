# Integration suite, backend outages in scheduled mode (tests/it/breaker.rs): the rule stays
# disabled and the suite invokes the ticks itself, as EventBridge would every minute; the suite's
# backend behind a gate on 9923.
backend_url     = "http://127.0.0.1:9923/sales/save-order"
trigger         = "schedule"
trigger_enabled = false
