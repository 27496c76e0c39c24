# make bench, idle -> delivered (bench/benches/idle.rs); the bench's backend URL comes from
# BACKEND_URL. The local defaults: event source mappings without a batching window, so that
# LocalStack's pollers make short polls and back off while the queues are empty.
trigger                            = "sqs"
maximum_batching_window_in_seconds = 0
batch_size                         = 10
