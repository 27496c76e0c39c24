# Integration suite, fault injection: standard queue, event source mapping, DLQ; the suite's
# misbehaving backend on 9911. Five receives before the redrive, as AWS advises for event source
# mappings (production derives 14 from its retry schedule).
backend_url       = "http://127.0.0.1:9911/sales/save-order"
max_receive_count = 5
# The mix fails 40 % of attempts at random (503, 429, hang, late completion, reset: `chaos` in
# tests/it/support/receiver.rs): a flaky backend, not a down one, which per-message retries
# handle. 20 retryable failures in a row (0.4^20, about 1 in 10^8 per attempt) keep the breaker
# shut through its ~800 attempts, while it stays on as in production.
breaker_threshold = 20
