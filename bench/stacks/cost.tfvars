# make bench, the cost per million orders (bench/benches/cost.rs); the bench's backend URL comes
# from BACKEND_URL. The production defaults (batches of up to 10, no batching window), with both
# functions at 128 MB, the size the cost table prices.
trigger                            = "sqs"
batch_size                         = 10
maximum_batching_window_in_seconds = 0
store_memory_size                  = 128
forwarder_memory_size              = 128
