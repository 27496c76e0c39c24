# Integration suite, forwarder deadline: a 3 s function that needs 2 s of budget per delivery
# (request timeout + margin) and delivers two at a time, so a batch of slow deliveries runs into
# its deadline and the forwarder must hand the unstarted messages back to SQS.
backend_url                        = "http://127.0.0.1:9911/sales/save-order"
forwarder_timeout                  = 3
request_timeout_ms                 = 1500
deadline_margin_ms                 = 500
max_in_flight                      = 2
maximum_batching_window_in_seconds = 2
queue_visibility_timeout_seconds   = 20
max_receive_count                  = 10
