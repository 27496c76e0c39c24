# Integration suite, backend outages (tests/it/breaker.rs): standard queue, event source mapping,
# the circuit breaker with its local 10 s probe interval; the suite's backend behind a gate on
# 9921 that the suite takes down, closes and brings back.
backend_url = "http://127.0.0.1:9921/sales/save-order"
