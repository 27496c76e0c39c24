# Integration suite: standard queue, event source mapping, DLQ; the suite's backend on 9911.
backend_url = "http://127.0.0.1:9911/sales/save-order"
# The test-only hook of the local build (functions/forwarder/src/fault.rs): a message whose body
# contains this marker panics in the forwarder.
forwarder_environment = {
  FAULT_PANIC_MARKER = "inject-panic"
}
# The function URL ingress beside the REST API, for tests/it/ingress.rs (no stack of its own).
ingresses = ["rest", "function_url"]
