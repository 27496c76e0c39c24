# Integration suite, fault injection: standard queue, event source mapping, DLQ; the suite's
# misbehaving backend on 9911. Five receives before the redrive, as in production.
backend_url       = "http://127.0.0.1:9911/sales/save-order"
max_receive_count = 5
