# Integration suite: standard queue, event source mapping, DLQ; the suite's backend on 9911.
backend_url = "http://127.0.0.1:9911/sales/save-order"
