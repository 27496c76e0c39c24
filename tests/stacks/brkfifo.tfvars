# Integration suite, backend outages on FIFO queues (tests/it/breaker.rs): per-group order must
# hold across the pause; the suite's backend behind a gate on 9922.
backend_url = "http://127.0.0.1:9922/sales/save-order"
fifo        = true
