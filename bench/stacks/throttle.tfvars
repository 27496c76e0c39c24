# make bench, throttling accuracy (bench/benches/throttle.rs): the scheduled forwarder with
# MAX_RPS = 100, its rule disabled so that only the bench invokes it; the bench's backend URL comes
# from BACKEND_URL.
trigger           = "schedule"
trigger_enabled   = false
max_rps           = 100
forwarder_timeout = 40
