locals {
  store_function_name     = "${var.name_prefix}-store"
  forwarder_function_name = "${var.name_prefix}-forwarder"

  # The SDK client settings both functions read.
  sqs_client_environment = {
    SQS_MAX_ATTEMPTS = var.sqs_max_attempts == null ? null : tostring(var.sqs_max_attempts)
    SQS_RETRY_MODE   = var.sqs_retry_mode
    SQS_TIMEOUT_MS   = var.sqs_timeout_ms == null ? null : tostring(var.sqs_timeout_ms)
  }

  # Queue URLs are known only after apply, so the optional settings are filtered on their own:
  # unset (null) ones are left out and keep the code's defaults.
  store_environment = merge(
    {
      QUEUE_URL         = aws_sqs_queue.orders.url
      ORDER_PATH        = local.order_path
      MAX_MESSAGE_BYTES = tostring(var.max_message_size)
    },
    var.enable_failover_queue ? { FAILOVER_QUEUE_URL = aws_sqs_queue.failover[0].url } : {},
    { for name, value in merge(local.sqs_client_environment, {
      ORDER_SCHEMA          = var.order_schema
      MESSAGE_GROUP_POINTER = var.message_group_pointer
      RETRY_AFTER_SECONDS   = var.retry_after_seconds == null ? null : tostring(var.retry_after_seconds)
    }) : name => value if value != null },
    var.store_environment,
  )

  forwarder_environment = merge(
    {
      BACKEND_URL        = var.backend_url
      BACKEND_METHOD     = var.backend_method
      QUEUE_URL          = aws_sqs_queue.orders.url
      DLQ_URL            = aws_sqs_queue.dlq.url
      REQUEST_TIMEOUT_MS = tostring(var.request_timeout_ms)
      MAX_IN_FLIGHT      = tostring(var.max_in_flight)
      RETRY_SCHEDULE     = join(",", var.retry_schedule_seconds)
      FAILURE_ACTION     = var.failure_action
      # FAILURE_ACTION=pause gives a message up on its last receive, before the redrive policy would.
      MAX_RECEIVE_COUNT = tostring(local.max_receive_count)
    },
    var.enable_failover_queue ? { FAILOVER_QUEUE_URL = aws_sqs_queue.failover[0].url } : {},
    local.breaker_environment,
    { for name, value in merge(local.sqs_client_environment, {
      CONNECT_TIMEOUT_MS = var.connect_timeout_ms == null ? null : tostring(var.connect_timeout_ms)
      DEADLINE_MARGIN_MS = var.deadline_margin_ms == null ? null : tostring(var.deadline_margin_ms)
      RETRYABLE_STATUSES = var.retryable_statuses
      PERMANENT_STATUSES = var.permanent_statuses
      POLL_WAIT_SECONDS  = var.poll_wait_seconds == null ? null : tostring(var.poll_wait_seconds)
      POLL_MAX_MESSAGES  = var.poll_max_messages == null ? null : tostring(var.poll_max_messages)
      MAX_RPS            = var.max_rps == null ? null : tostring(var.max_rps)
      SIGNING_SECRET_ARN = var.signing_secret_arn
      HEALTH_URL         = var.health_url
      # How it authenticates at the backend: secrets by ARN only.
      BACKEND_HEADERS_SECRET_ARN    = var.backend_headers_secret_arn
      OAUTH_TOKEN_URL               = var.oauth_token_url
      OAUTH_CLIENT_ID               = var.oauth_client_id
      OAUTH_CLIENT_SECRET_ARN       = var.oauth_client_secret_arn
      OAUTH_SCOPE                   = var.oauth_scope
      OAUTH_AUDIENCE                = var.oauth_audience
      OAUTH_CLIENT_AUTH             = var.oauth_client_auth
      CLIENT_CERTIFICATE_SECRET_ARN = var.client_certificate_secret_arn
      BACKEND_CA_ARN                = var.backend_ca_arn
      CREDENTIALS_REFRESH_SECONDS   = var.credentials_refresh_seconds == null ? null : tostring(var.credentials_refresh_seconds)
    }) : name => value if value != null },
    # Kept apart so that only this value, not the whole environment, is sensitive in plans.
    nonsensitive(var.signing_secret != null) ? { SIGNING_SECRET = var.signing_secret } : {},
    var.forwarder_environment,
  )

  # OAuth2 takes its three settings together, and its options only with them.
  oauth_required_missing = [for name, value in {
    oauth_token_url         = var.oauth_token_url
    oauth_client_id         = var.oauth_client_id
    oauth_client_secret_arn = var.oauth_client_secret_arn
  } : name if value == null]
  oauth_options_set = [for name, value in {
    oauth_scope       = var.oauth_scope
    oauth_audience    = var.oauth_audience
    oauth_client_auth = var.oauth_client_auth
  } : name if value != null]

  # The forwarder starts no delivery unless REQUEST_TIMEOUT_MS + DEADLINE_MARGIN_MS remain.
  forwarder_min_timeout_ms = var.request_timeout_ms + coalesce(var.deadline_margin_ms, 1000)

  # Lambda takes at most 4 KB of environment variables, measured as their JSON object
  # ({"NAME":"value",...}, quotes in values escaped); LocalStack does not check. The queue URLs are
  # known only after apply, so their AWS form stands in for them.
  sqs_url_prefix = "https://sqs.${data.aws_region.current.name}.amazonaws.com/${data.aws_caller_identity.current.account_id}/"
  environment_json = {
    store = jsonencode(merge(
      local.store_environment,
      { QUEUE_URL = "${local.sqs_url_prefix}${local.queue_name}" },
      var.enable_failover_queue ? { FAILOVER_QUEUE_URL = "${local.sqs_url_prefix}${local.failover_queue_name}" } : {},
      var.store_environment,
    ))
    # Without the (sensitive) signing secret, which is counted by its length below.
    forwarder = jsonencode(merge(
      { for name, value in local.forwarder_environment : name => value if name != "SIGNING_SECRET" },
      {
        QUEUE_URL = "${local.sqs_url_prefix}${local.queue_name}"
        DLQ_URL   = "${local.sqs_url_prefix}${local.dlq_name}"
      },
      var.enable_failover_queue ? { FAILOVER_QUEUE_URL = "${local.sqs_url_prefix}${local.failover_queue_name}" } : {},
      local.breaker_enabled ? { PROBE_QUEUE_URL = "${local.sqs_url_prefix}${local.probe_queue_name}" } : {},
      var.forwarder_environment,
    ))
  }
  # Bytes, not characters (what length() counts): from the base64 form. jsonencode escapes <, >
  # and & as \u003c, \u003e and \u0026, which Lambda's JSON does not: undone first (a value that
  # holds such an escape itself is then counted a few bytes short).
  environment_base64 = {
    for name, json in local.environment_json :
    name => base64encode(replace(replace(replace(json, "\\u003c", "<"), "\\u003e", ">"), "\\u0026", "&"))
  }
  signing_secret_bytes = nonsensitive(var.signing_secret == null) ? 0 : length(",\"SIGNING_SECRET\":\"\"") + nonsensitive(length(var.signing_secret))
  environment_bytes = {
    for name, b64 in local.environment_base64 :
    name => length(b64) / 4 * 3 - length(regexall("=", b64)) + (name == "forwarder" ? local.signing_secret_bytes : 0)
  }
  environment_limit_bytes = 4096

  # `make build` / `build-local` write `<zip>.architecture` next to each zip: the architecture it
  # was built for and the zip's SHA-256. A marker of another build (another hash), or none, says
  # nothing, and nothing is checked.
  package_architecture = {
    for name, path in { store = var.store_package, forwarder = var.forwarder_package } : name => try(
      split(" ", trimspace(file("${path}.architecture")))[1] == filesha256(path) ? split(" ", trimspace(file("${path}.architecture")))[0] : null,
      null,
    )
  }
}

################################################################################
# Store function
################################################################################

resource "aws_lambda_function" "store" {
  # checkov:skip=CKV_AWS_50:X-Ray needs xray:PutTraceSegments on "*", against this stack's no-"*" IAM rule; requests carry X-Amzn-Trace-Id (PassThrough) and the forwarder hands it to the backend
  # checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile of the user's; the zips come from `make build` (cargo lambda)
  # checkov:skip=CKV_AWS_117:Reaches SQS and the backend over their public endpoints; no VPC resource to reach. Deploy into a VPC (with an SQS endpoint) if the backend is private
  # checkov:skip=CKV_AWS_116:Invoked synchronously (API Gateway, the event source mapping) or by the schedule, whose missed poll loses nothing; orders that fail go to the SQS dead-letter queue
  # checkov:skip=CKV_AWS_115:store_reserved_concurrency, null by default: a reservation needs an account limit of 100 + the reservation, above the 10 of new accounts, so the first apply would fail. The store keeps what the forwarder leaves, which its mappings' maximum_concurrency (5 each, 2 for the probe) bounds by default
  # checkov:skip=CKV_AWS_173:The environment holds no secret (the signing secret comes from SSM or Secrets Manager through SIGNING_SECRET_ARN); Lambda encrypts it at rest, with kms_key_arn when one is given
  function_name = local.store_function_name
  description   = "Accepts POST ${local.order_path} and stores the order in SQS before answering 202"
  role          = aws_iam_role.store.arn

  filename         = var.store_package
  source_code_hash = filebase64sha256(var.store_package)
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = [var.architecture]
  memory_size      = var.store_memory_size
  timeout          = var.store_timeout

  reserved_concurrent_executions = var.store_reserved_concurrency

  kms_key_arn = var.kms_key_arn

  environment {
    variables = local.store_environment
  }

  logging_config {
    log_format            = "JSON"
    log_group             = aws_cloudwatch_log_group.store.name
    application_log_level = var.log_level
  }

  depends_on = [
    aws_cloudwatch_log_group.store,
    aws_iam_role_policy.store,
  ]

  lifecycle {
    precondition {
      condition     = fileexists(var.store_package)
      error_message = "store_package ${var.store_package} does not exist: build it first (`make build`, or `cargo lambda build --release --arm64 --output-format zip`)."
    }

    precondition {
      condition     = local.package_architecture.store == null || local.package_architecture.store == var.architecture
      error_message = "store_package ${var.store_package} was built for ${coalesce(local.package_architecture.store, "?")} (its .architecture marker), but architecture is ${var.architecture}: Lambda could not run it. Build for ${var.architecture} (`make build ARCH=${var.architecture == "x86_64" ? "x86-64" : "arm64"}`) or set architecture = \"${coalesce(local.package_architecture.store, "?")}\"."
    }

    precondition {
      condition     = var.message_group_pointer == null || var.fifo
      error_message = "message_group_pointer only applies to FIFO queues (fifo = true)."
    }

    precondition {
      condition     = local.environment_bytes.store <= local.environment_limit_bytes
      error_message = "The store's environment variables come to ${local.environment_bytes.store} bytes of JSON; Lambda accepts at most 4096 (4 KB, all together), so AWS would refuse the function (LocalStack does not check). The usual cause is a large order_schema: put the schema in the store's zip (e.g. `zip -j target/lambda/store/bootstrap.zip order.schema.json`) and set store_environment = { ORDER_SCHEMA_FILE = \"order.schema.json\" } instead, or minify it (`jq -c`)."
    }
  }
}

################################################################################
# Forwarder function
################################################################################

resource "aws_lambda_function" "forwarder" {
  # checkov:skip=CKV_AWS_50:X-Ray needs xray:PutTraceSegments on "*", against this stack's no-"*" IAM rule; requests carry X-Amzn-Trace-Id (PassThrough) and the forwarder hands it to the backend
  # checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile of the user's; the zips come from `make build` (cargo lambda)
  # checkov:skip=CKV_AWS_117:Reaches SQS and the backend over their public endpoints; no VPC resource to reach. Deploy into a VPC (with an SQS endpoint) if the backend is private
  # checkov:skip=CKV_AWS_116:Invoked synchronously (API Gateway, the event source mapping) or by the schedule, whose missed poll loses nothing; orders that fail go to the SQS dead-letter queue
  # checkov:skip=CKV_AWS_115:forwarder_reserved_concurrency, null by default (a reservation needs an account limit of 100 + the reservation, above the 10 of new accounts). The default bound is the event source mappings' maximum_concurrency (5 each, 2 for the probe) with trigger = sqs, one poll per tick with schedule
  # checkov:skip=CKV_AWS_173:The environment holds no secret (the signing secret, backend headers, OAuth2 client secret and client certificate come from SSM or Secrets Manager through their *_ARN variables); Lambda encrypts it at rest, with kms_key_arn when one is given
  function_name = local.forwarder_function_name
  description   = "Delivers stored orders to the backend, retrying on a schedule and dead-lettering what cannot succeed"
  role          = aws_iam_role.forwarder.arn

  filename         = var.forwarder_package
  source_code_hash = filebase64sha256(var.forwarder_package)
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = [var.architecture]
  memory_size      = var.forwarder_memory_size
  timeout          = var.forwarder_timeout

  reserved_concurrent_executions = var.forwarder_reserved_concurrency

  kms_key_arn = var.kms_key_arn

  environment {
    variables = local.forwarder_environment
  }

  logging_config {
    log_format            = "JSON"
    log_group             = aws_cloudwatch_log_group.forwarder.name
    application_log_level = var.log_level
  }

  depends_on = [
    aws_cloudwatch_log_group.forwarder,
    aws_iam_role_policy.forwarder,
    aws_iam_role_policy.breaker,
  ]

  lifecycle {
    precondition {
      condition     = fileexists(var.forwarder_package)
      error_message = "forwarder_package ${var.forwarder_package} does not exist: build it first (`make build`, or `cargo lambda build --release --arm64 --output-format zip`)."
    }

    precondition {
      condition     = local.package_architecture.forwarder == null || local.package_architecture.forwarder == var.architecture
      error_message = "forwarder_package ${var.forwarder_package} was built for ${coalesce(local.package_architecture.forwarder, "?")} (its .architecture marker), but architecture is ${var.architecture}: Lambda could not run it. Build for ${var.architecture} (`make build ARCH=${var.architecture == "x86_64" ? "x86-64" : "arm64"}`) or set architecture = \"${coalesce(local.package_architecture.forwarder, "?")}\"."
    }

    precondition {
      condition     = var.forwarder_timeout * 1000 > local.forwarder_min_timeout_ms
      error_message = "forwarder_timeout (${var.forwarder_timeout} s) must exceed request_timeout_ms + deadline_margin_ms (${local.forwarder_min_timeout_ms} ms), or the forwarder never starts a delivery."
    }

    precondition {
      condition     = local.environment_bytes.forwarder <= local.environment_limit_bytes
      error_message = "The forwarder's environment variables come to ${local.environment_bytes.forwarder} bytes of JSON; Lambda accepts at most 4096 (4 KB, all together), so AWS would refuse the function (LocalStack does not check). Shorten forwarder_environment, or the longest values (backend_url, health_url, oauth_token_url, oauth_scope, the secret ARNs)."
    }

    precondition {
      condition     = var.signing_secret == null || can(regex("^whsec_[A-Za-z0-9+/]+=*$", var.signing_secret))
      error_message = "signing_secret must look like whsec_<base64>."
    }

    precondition {
      condition     = var.signing_secret == null || var.signing_secret_arn == null
      error_message = "Give signing_secret or signing_secret_arn, not both."
    }

    precondition {
      condition     = length(local.oauth_required_missing) == 0 || length(local.oauth_required_missing) == 3
      error_message = "OAuth2 client credentials need oauth_token_url, oauth_client_id and oauth_client_secret_arn together; ${join(" and ", local.oauth_required_missing)} missing."
    }

    precondition {
      condition     = var.oauth_token_url != null || length(local.oauth_options_set) == 0
      error_message = "${join(", ", local.oauth_options_set)}: only with OAuth2 client credentials (oauth_token_url, oauth_client_id, oauth_client_secret_arn)."
    }

    precondition {
      # Lambda throttles what the mappings invoke beyond the reservation; throttled batches go
      # back to the queue and use up their messages' receives.
      condition     = var.forwarder_reserved_concurrency == null || var.trigger != "sqs" || try(var.forwarder_reserved_concurrency >= local.esm_concurrency_total, false)
      error_message = "forwarder_reserved_concurrency (${coalesce(var.forwarder_reserved_concurrency, 0)}) must be at least what the event source mappings may invoke together (${local.esm_concurrency_total == null ? "unbounded: set maximum_concurrency" : local.esm_concurrency_total}: maximum_concurrency for the orders and the failover queue, 2 for the probe queue). Lambda throttles the rest, and throttled batches go back to the queue and use up their receives."
    }
  }
}
