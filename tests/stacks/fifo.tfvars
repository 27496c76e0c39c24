# Integration suite: FIFO queues (in-order delivery per message group).
backend_url = "http://127.0.0.1:9911/sales/save-order"
fifo        = true
