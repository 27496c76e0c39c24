# Integration suite, `sfctl` (tests/it/ops.rs): a standard stack of its own, because a redrive or a
# purge takes everything in the DLQ; the suite's backend on 9911.
backend_url = "http://127.0.0.1:9911/sales/save-order"
# Alarms that evaluate every 10 s (LocalStack publishes the SQS metrics every 10 s, see
# localstack/bin/start), notifying a topic of their own.
alarm_period_seconds = 10
alarm_notifications  = true
# The signing secret from SSM Parameter Store; the suite puts the parameter there first.
signing_secret_arn = "arn:aws:ssm:us-east-1:000000000000:parameter/sfit-ops/signing-secret"
