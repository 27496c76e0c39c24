# make bench, local pipeline throughput (bench/benches/pipeline.rs); the bench's backend URL comes
# from BACKEND_URL. Sized for throughput: up to 1,000 records per invocation gathered for at most
# 1 s, delivered 100 at a time.
trigger                            = "sqs"
batch_size                         = 1000
maximum_batching_window_in_seconds = 1
max_in_flight                      = 100
# 6 x forwarder_timeout (10 s) + the window
queue_visibility_timeout_seconds = 61
