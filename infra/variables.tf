################################################################################
# General
################################################################################

variable "name_prefix" {
  description = "Prefix of every resource name: functions `<prefix>-store` / `<prefix>-forwarder`, queues `<prefix>-orders[-failover|-dlq][.fifo]`, roles, log groups, API and schedule rule"
  type        = string
  default     = "storeforward"

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9_-]{0,31}$", var.name_prefix))
    error_message = "name_prefix must start with a letter and have 1-32 letters, digits, hyphens or underscores (function, role and queue names derive from it)."
  }
}

variable "region" {
  description = "AWS region. `null` takes it from the environment (AWS_REGION / AWS_DEFAULT_REGION / the profile)"
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags applied to every resource (provider `default_tags`)"
  type        = map(string)
  default     = {}
}

################################################################################
# Functions (both)
################################################################################

variable "architecture" {
  description = "Instruction set of both functions; must match the cargo-lambda build (`--arm64` or `--x86-64`)"
  type        = string
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.architecture)
    error_message = "architecture must be \"arm64\" or \"x86_64\"."
  }
}

variable "log_retention_in_days" {
  description = "Retention of the functions' CloudWatch log groups `/aws/lambda/<name>` (0 = never expire)"
  type        = number
  default     = 14

  validation {
    condition     = contains([0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_in_days)
    error_message = "log_retention_in_days must be one of the values CloudWatch Logs accepts: 0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653."
  }
}

variable "log_level" {
  description = "Application log level of both functions (Lambda `logging_config.application_log_level`; logs are JSON): TRACE, DEBUG or INFO. Not above INFO: the metric lines (EMF) carry no `level`, Lambda files them under INFO, and a higher level drops them, and with them every metric and the alarms on them"
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["TRACE", "DEBUG", "INFO"], var.log_level)
    error_message = "log_level must be TRACE, DEBUG or INFO. Lambda files log lines without a `level`, such as the functions' metric lines (EMF), under INFO: with WARN, ERROR or FATAL it drops them, and every metric (and the delivery-paused alarm) with them."
  }
}

variable "sqs_max_attempts" {
  description = "`SQS_MAX_ATTEMPTS` of both functions: attempts per SQS call, 1-10 (`null` = the code's default, 3)"
  type        = number
  default     = null

  validation {
    condition     = var.sqs_max_attempts == null || try(var.sqs_max_attempts >= 1 && var.sqs_max_attempts <= 10 && floor(var.sqs_max_attempts) == var.sqs_max_attempts, false)
    error_message = "sqs_max_attempts must be a whole number from 1 to 10."
  }
}

variable "sqs_retry_mode" {
  description = "`SQS_RETRY_MODE` of both functions: `standard` or `adaptive` (`null` = the code's default, standard)"
  type        = string
  default     = null

  validation {
    condition     = var.sqs_retry_mode == null || contains(["standard", "adaptive"], coalesce(var.sqs_retry_mode, "standard"))
    error_message = "sqs_retry_mode must be \"standard\" or \"adaptive\"."
  }
}

variable "sqs_timeout_ms" {
  description = "`SQS_TIMEOUT_MS` of both functions: per attempt of an SQS call (`null` = the code's default, 3000)"
  type        = number
  default     = null

  validation {
    condition     = var.sqs_timeout_ms == null || try(var.sqs_timeout_ms >= 1 && floor(var.sqs_timeout_ms) == var.sqs_timeout_ms, false)
    error_message = "sqs_timeout_ms must be a whole number of milliseconds, at least 1."
  }
}

################################################################################
# Store function
################################################################################

variable "store_package" {
  description = "Path of the store function's zip (cargo-lambda `--output-format zip`), relative to this directory"
  type        = string
  default     = "../target/lambda/store/bootstrap.zip"
}

variable "store_memory_size" {
  description = "Memory of the store function, in MB (128-10240)"
  type        = number
  default     = 128

  validation {
    condition     = var.store_memory_size >= 128 && var.store_memory_size <= 10240 && floor(var.store_memory_size) == var.store_memory_size
    error_message = "store_memory_size must be a whole number of MB from 128 to 10240."
  }
}

variable "store_timeout" {
  description = "Timeout of the store function, in seconds. API Gateway stops waiting after 29 s, so keep it below that (covering SQS_MAX_ATTEMPTS x SQS_TIMEOUT_MS, twice with a failover queue)"
  type        = number
  default     = 20

  validation {
    condition     = var.store_timeout >= 1 && var.store_timeout <= 900 && floor(var.store_timeout) == var.store_timeout
    error_message = "store_timeout must be a whole number of seconds from 1 to 900."
  }
}

variable "max_message_size" {
  description = "Largest message, in bytes: the queues' `max_message_size` and the store's `MAX_MESSAGE_BYTES` (1024-262144)"
  type        = number
  default     = 262144

  validation {
    condition     = var.max_message_size >= 1024 && var.max_message_size <= 262144 && floor(var.max_message_size) == var.max_message_size
    error_message = "max_message_size must be a whole number of bytes from 1024 to 262144."
  }
}

variable "order_schema" {
  description = "`ORDER_SCHEMA`: JSON Schema text every order must satisfy (e.g. `file(\"order.schema.json\")`); `null` accepts any JSON object. Lambda caps all environment variables together at 4 KB (a precondition checks): a larger schema goes into the store's zip, named by `store_environment = { ORDER_SCHEMA_FILE = \"order.schema.json\" }`"
  type        = string
  default     = null

  validation {
    condition     = var.order_schema == null || can(jsondecode(var.order_schema))
    error_message = "order_schema must be valid JSON."
  }
}

variable "message_group_pointer" {
  description = "`MESSAGE_GROUP_POINTER` (FIFO only): JSON Pointer to the message group id in the order, e.g. `/customerId`"
  type        = string
  default     = null

  validation {
    condition     = var.message_group_pointer == null || can(regex("^/", var.message_group_pointer))
    error_message = "message_group_pointer must be a JSON Pointer starting with \"/\"."
  }
}

variable "retry_after_seconds" {
  description = "`RETRY_AFTER_SECONDS`: the `Retry-After` of a 503 answer, 0-3600 (`null` = the code's default, 5)"
  type        = number
  default     = null

  validation {
    condition     = var.retry_after_seconds == null || try(var.retry_after_seconds >= 0 && var.retry_after_seconds <= 3600 && floor(var.retry_after_seconds) == var.retry_after_seconds, false)
    error_message = "retry_after_seconds must be a whole number from 0 to 3600."
  }
}

variable "store_reserved_concurrency" {
  description = "Concurrency reserved for the store: it then always has this much, whatever the forwarder or other functions use, and never more. `null` = none reserved (it shares the account's unreserved pool). Lambda keeps at least 100 of the account's limit unreserved, so this needs a limit of at least 100 + this + other reservations: new accounts start lower (e.g. 10) and the apply then fails"
  type        = number
  default     = null

  validation {
    condition     = var.store_reserved_concurrency == null || try(var.store_reserved_concurrency >= 1 && floor(var.store_reserved_concurrency) == var.store_reserved_concurrency, false)
    error_message = "store_reserved_concurrency must be a whole number, at least 1 (0 would refuse every order), or null."
  }
}

variable "store_environment" {
  description = "Extra environment variables of the store function, merged last (overrides the ones set from variables), e.g. `{ AWS_ENDPOINT_URL = \"http://127.0.0.1:4566\" }`"
  type        = map(string)
  default     = {}
}

################################################################################
# Forwarder function
################################################################################

variable "forwarder_package" {
  description = "Path of the forwarder function's zip (cargo-lambda `--output-format zip`), relative to this directory"
  type        = string
  default     = "../target/lambda/forwarder/bootstrap.zip"
}

variable "forwarder_memory_size" {
  description = "Memory of the forwarder function, in MB (128-10240)"
  type        = number
  default     = 256

  validation {
    condition     = var.forwarder_memory_size >= 128 && var.forwarder_memory_size <= 10240 && floor(var.forwarder_memory_size) == var.forwarder_memory_size
    error_message = "forwarder_memory_size must be a whole number of MB from 128 to 10240."
  }
}

variable "forwarder_timeout" {
  description = "Timeout of the forwarder function, in seconds. Must exceed REQUEST_TIMEOUT_MS + DEADLINE_MARGIN_MS; the queue visibility timeout must be at least 6x this plus the batching window"
  type        = number
  default     = 30

  validation {
    condition     = var.forwarder_timeout >= 1 && var.forwarder_timeout <= 900 && floor(var.forwarder_timeout) == var.forwarder_timeout
    error_message = "forwarder_timeout must be a whole number of seconds from 1 to 900."
  }
}

variable "backend_url" {
  description = "`BACKEND_URL`: where the forwarder delivers each order (http:// or https://), e.g. `https://backend.example.com/sales/save-order`"
  type        = string

  validation {
    condition     = can(regex("^https?://[^/\\s]+", var.backend_url))
    error_message = "backend_url must be an http:// or https:// URL."
  }
}

variable "health_url" {
  description = "`HEALTH_URL`: an http(s) URL the circuit breaker's probe `GET`s before it tries a parked order; the order is tried only after a 2xx. `null` = the probe tries the order itself"
  type        = string
  default     = null

  validation {
    condition     = var.health_url == null || can(regex("^https?://", var.health_url))
    error_message = "health_url must be an http:// or https:// URL."
  }
}

variable "backend_method" {
  description = "`BACKEND_METHOD`: HTTP method of each delivery"
  type        = string
  default     = "POST"

  validation {
    condition     = contains(["POST", "PUT", "PATCH"], var.backend_method)
    error_message = "backend_method must be POST, PUT or PATCH."
  }
}

variable "request_timeout_ms" {
  description = "`REQUEST_TIMEOUT_MS`: one delivery, connect to last byte, in ms"
  type        = number
  default     = 10000

  validation {
    condition     = var.request_timeout_ms >= 1 && floor(var.request_timeout_ms) == var.request_timeout_ms
    error_message = "request_timeout_ms must be a whole number of milliseconds, at least 1."
  }
}

variable "connect_timeout_ms" {
  description = "`CONNECT_TIMEOUT_MS`: TCP + TLS connect, in ms (`null` = the code's default, 3000)"
  type        = number
  default     = null

  validation {
    condition     = var.connect_timeout_ms == null || try(var.connect_timeout_ms >= 1 && floor(var.connect_timeout_ms) == var.connect_timeout_ms, false)
    error_message = "connect_timeout_ms must be a whole number of milliseconds, at least 1."
  }
}

variable "deadline_margin_ms" {
  description = "`DEADLINE_MARGIN_MS`: kept free before the function's deadline on top of one request (`null` = the code's default, 1000)"
  type        = number
  default     = null

  validation {
    condition     = var.deadline_margin_ms == null || try(var.deadline_margin_ms >= 0 && floor(var.deadline_margin_ms) == var.deadline_margin_ms, false)
    error_message = "deadline_margin_ms must be a whole number of milliseconds, 0 or more."
  }
}

variable "max_in_flight" {
  description = "`MAX_IN_FLIGHT`: concurrent deliveries per batch (FIFO: message groups in flight), 1-1000"
  type        = number
  default     = 10

  validation {
    condition     = var.max_in_flight >= 1 && var.max_in_flight <= 1000 && floor(var.max_in_flight) == var.max_in_flight
    error_message = "max_in_flight must be a whole number from 1 to 1000."
  }
}

variable "retryable_statuses" {
  description = "`RETRYABLE_STATUSES`: backend statuses worth retrying, e.g. `408,425,429,500-599` (`null` = the code's default)"
  type        = string
  default     = null

  validation {
    condition     = var.retryable_statuses == null || can(regex("^\\s*\\d{3}(\\s*-\\s*\\d{3})?(\\s*,\\s*\\d{3}(\\s*-\\s*\\d{3})?)*\\s*$", var.retryable_statuses))
    error_message = "retryable_statuses must be a comma-separated list of statuses and ranges, e.g. \"408,425,429,500-599\"."
  }
}

variable "permanent_statuses" {
  description = "`PERMANENT_STATUSES`: backend statuses dead-lettered at once, e.g. `400-499` (`null` = the code's default)"
  type        = string
  default     = null

  validation {
    condition     = var.permanent_statuses == null || can(regex("^\\s*\\d{3}(\\s*-\\s*\\d{3})?(\\s*,\\s*\\d{3}(\\s*-\\s*\\d{3})?)*\\s*$", var.permanent_statuses))
    error_message = "permanent_statuses must be a comma-separated list of statuses and ranges, e.g. \"400-499\"."
  }
}

variable "retry_schedule_seconds" {
  description = "`RETRY_SCHEDULE`: seconds to wait after each failed receive, one entry per retry (after the 1st failed receive, the 2nd, ...; past the end the first entry repeats, so that the outage allowance of max_receive_count passes quickly). Each wait is drawn from [d/2, d] and never shorter than the backend's `Retry-After`. The default adds up to 85,900 s (about a day) in steps SQS accepts (at most 12 h)"
  type        = list(number)
  default     = [10, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 28800, 28800]

  validation {
    condition     = length(var.retry_schedule_seconds) > 0 && alltrue([for d in var.retry_schedule_seconds : d >= 1 && d <= 43200 && floor(d) == d])
    error_message = "retry_schedule_seconds must list at least one delay, each a whole number of seconds from 1 to 43200 (12 h, SQS's longest visibility timeout)."
  }
}

variable "failure_action" {
  description = "`FAILURE_ACTION`: what happens to a message the forwarder gives up on: `dead-letter` (permanent failures to the DLQ at once, exhausted retries by the redrive policy), `drop` (permanent failures discarded, logged at ERROR), or `pause` (parked in the probe queue and delivery paused until `sfctl resume`, for permanent failures and exhausted retries alike: nothing overtakes it)"
  type        = string
  default     = "dead-letter"

  validation {
    condition     = contains(["dead-letter", "drop", "pause"], var.failure_action)
    error_message = "failure_action must be \"dead-letter\", \"drop\" or \"pause\"."
  }
}

variable "signing_secret" {
  description = "`SIGNING_SECRET`: Standard Webhooks secret (`whsec_<base64>`); each delivery is then signed. `null` = unsigned. Stored in the Terraform state and the function's configuration (checked by a precondition on the forwarder, so that a wrong value is not printed)"
  type        = string
  default     = null
  sensitive   = true
}

variable "signing_secret_arn" {
  description = "`SIGNING_SECRET_ARN`: where the forwarder reads the Standard Webhooks secret once at cold start: an SSM parameter (`arn:aws:ssm:<region>:<account>:parameter/<name>`, a SecureString) or a Secrets Manager secret (`arn:aws:secretsmanager:<region>:<account>:secret:<name>-AbCdEf`; without its 6-character suffix too, which the forwarder's policy then matches with `-??????`). The secret then never enters Terraform's state or the function's configuration. Use instead of `signing_secret`; a secret under a customer-managed key also needs its key in secret_kms_key_arns. Checked with the other secret ARNs by a precondition on the forwarder's policy: no wildcards"
  type        = string
  default     = null
}

variable "signing_secret_kms_key_arn" {
  description = "The customer-managed KMS key (ARN) of the secret at signing_secret_arn: the same as listing it in secret_kms_key_arns, which covers every secret (kept for existing stacks). `null` = none"
  type        = string
  default     = null
}

variable "secret_kms_key_arns" {
  description = "The customer-managed KMS keys (ARNs, `arn:aws:kms:<region>:<account>:key/<id>`) that encrypt the secrets the forwarder reads (signing_secret_arn, backend_headers_secret_arn, oauth_client_secret_arn, client_certificate_secret_arn, backend_ca_arn), when they are not under the AWS-managed aws/ssm or aws/secretsmanager key: the forwarder gets kms:Decrypt on them, through SSM and Secrets Manager only. Their key policies must let the account's IAM policies grant it (README, KMS keys). `[]` = AWS-managed keys only, which need no grant"
  type        = list(string)
  default     = []
  nullable    = false
}

# How the forwarder authenticates at the backend (README, Backend credentials). Every secret is
# read from SSM or Secrets Manager by ARN, never passed in: see secret_arns in iam.tf.

variable "backend_headers_secret_arn" {
  description = "`BACKEND_HEADERS_SECRET_ARN`: an SSM parameter (SecureString) or Secrets Manager secret holding a JSON object of header name to value (`{\"Authorization\":\"Basic ...\"}`, `{\"X-Api-Key\":\"...\"}`), sent with every delivery; read at cold start and again after a 401 or 403. `null` = no such headers"
  type        = string
  default     = null
}

variable "oauth_token_url" {
  description = "`OAUTH_TOKEN_URL`: the OAuth2 token endpoint (https://, or http:// for local tests) where the forwarder gets a bearer token with the client credentials grant. Goes with oauth_client_id and oauth_client_secret_arn. `null` = no OAuth2"
  type        = string
  default     = null

  validation {
    condition     = var.oauth_token_url == null || can(regex("^https?://[^/?#@\\s]+([/?#]\\S*)?$", var.oauth_token_url))
    error_message = "oauth_token_url must be an http:// or https:// URL without credentials in it (user@host)."
  }
}

variable "oauth_client_id" {
  description = "`OAUTH_CLIENT_ID`: the OAuth2 client's ID (not a secret: it is in the function's configuration). Goes with oauth_token_url and oauth_client_secret_arn"
  type        = string
  default     = null

  validation {
    condition     = var.oauth_client_id == null || can(regex("^\\S+$", var.oauth_client_id))
    error_message = "oauth_client_id must not be empty or hold white space."
  }
}

variable "oauth_client_secret_arn" {
  description = "`OAUTH_CLIENT_SECRET_ARN`: an SSM parameter (SecureString) or Secrets Manager secret holding the OAuth2 client secret as plain text; read at cold start and again when the token endpoint refuses it. Goes with oauth_token_url and oauth_client_id"
  type        = string
  default     = null
}

variable "oauth_scope" {
  description = "`OAUTH_SCOPE`: the scopes to ask for, space-separated (`orders:write audit`). `null` = none asked for (the endpoint's default)"
  type        = string
  default     = null

  validation {
    # RFC 6749, 3.3: scope tokens of printable ASCII but space, " and \, one space apart.
    condition     = var.oauth_scope == null || can(regex("^[\\x21\\x23-\\x5b\\x5d-\\x7e]+( [\\x21\\x23-\\x5b\\x5d-\\x7e]+)*$", var.oauth_scope))
    error_message = "oauth_scope must be scope tokens (printable ASCII, no quotes or backslashes) separated by single spaces."
  }
}

variable "oauth_audience" {
  description = "`OAUTH_AUDIENCE`: the `audience` to ask the token endpoint for (Auth0, Okta and others want one). `null` = none"
  type        = string
  default     = null

  validation {
    condition     = var.oauth_audience == null || can(regex("^\\S+$", var.oauth_audience))
    error_message = "oauth_audience must not be empty or hold white space."
  }
}

variable "oauth_client_auth" {
  description = "`OAUTH_CLIENT_AUTH`: how the client authenticates at the token endpoint: `basic` (HTTP Basic, client_secret_basic) or `post` (in the form body, client_secret_post). `null` = the code's default, basic"
  type        = string
  default     = null

  validation {
    condition     = var.oauth_client_auth == null || contains(["basic", "post"], coalesce(var.oauth_client_auth, "-"))
    error_message = "oauth_client_auth must be basic or post."
  }
}

variable "client_certificate_secret_arn" {
  description = "`CLIENT_CERTIFICATE_SECRET_ARN`: mutual TLS: a Secrets Manager secret or SSM SecureString holding the PEM client certificate chain and its private key in one value, presented to the backend. `null` = no client certificate"
  type        = string
  default     = null
}

variable "backend_ca_arn" {
  description = "`BACKEND_CA_ARN`: a Secrets Manager secret or SSM parameter holding a PEM bundle of CA certificates the forwarder trusts for the backend in addition to the system roots (a private CA). `null` = the system roots only"
  type        = string
  default     = null
}

variable "credentials_refresh_seconds" {
  description = "`CREDENTIALS_REFRESH_SECONDS`: the least time between two re-reads of a secret after the backend or the token endpoint refused it, 1-3600 s (`null` = the code's default, 60)"
  type        = number
  default     = null

  validation {
    condition     = var.credentials_refresh_seconds == null || try(var.credentials_refresh_seconds >= 1 && var.credentials_refresh_seconds <= 3600 && floor(var.credentials_refresh_seconds) == var.credentials_refresh_seconds, false)
    error_message = "credentials_refresh_seconds must be a whole number from 1 to 3600."
  }
}

variable "poll_wait_seconds" {
  description = "`POLL_WAIT_SECONDS` (trigger = schedule): long-poll wait per receive, 0-20 (`null` = the code's default, 1)"
  type        = number
  default     = null

  validation {
    condition     = var.poll_wait_seconds == null || try(var.poll_wait_seconds >= 0 && var.poll_wait_seconds <= 20 && floor(var.poll_wait_seconds) == var.poll_wait_seconds, false)
    error_message = "poll_wait_seconds must be a whole number from 0 to 20."
  }
}

variable "poll_max_messages" {
  description = "`POLL_MAX_MESSAGES` (trigger = schedule): messages per invocation at most (`null` = no cap)"
  type        = number
  default     = null

  validation {
    condition     = var.poll_max_messages == null || try(var.poll_max_messages >= 1 && floor(var.poll_max_messages) == var.poll_max_messages, false)
    error_message = "poll_max_messages must be a whole number, at least 1."
  }
}

variable "max_rps" {
  description = "`MAX_RPS` (trigger = schedule): deliveries started per second at most, 1-10000 (`null` = no limit)"
  type        = number
  default     = null

  validation {
    condition     = var.max_rps == null || try(var.max_rps >= 1 && var.max_rps <= 10000 && floor(var.max_rps) == var.max_rps, false)
    error_message = "max_rps must be a whole number from 1 to 10000."
  }
}

variable "forwarder_reserved_concurrency" {
  description = "Concurrency reserved for the forwarder, also its hard cap (both triggers). `null` = none reserved: the event source mappings' maximum_concurrency (or, with schedule, one poll per tick) bounds it. With trigger = sqs it must be at least what the mappings may use together. Needs an account concurrency limit of at least 100 + this + other reservations"
  type        = number
  default     = null

  validation {
    condition     = var.forwarder_reserved_concurrency == null || try(var.forwarder_reserved_concurrency >= 1 && floor(var.forwarder_reserved_concurrency) == var.forwarder_reserved_concurrency, false)
    error_message = "forwarder_reserved_concurrency must be a whole number, at least 1 (0 would stop delivery; use trigger_enabled or `sfctl pause`), or null."
  }
}

variable "forwarder_environment" {
  description = "Extra environment variables of the forwarder function, merged last (overrides the ones set from variables), e.g. `{ AWS_ENDPOINT_URL = \"http://127.0.0.1:4566\" }`"
  type        = map(string)
  default     = {}
}

################################################################################
# Queues
################################################################################

variable "fifo" {
  description = "Use FIFO queues (names end in `.fifo`, per-group order, no content-based deduplication: the store sets the idempotency key as deduplication id)"
  type        = bool
  default     = false
}

variable "enable_failover_queue" {
  description = "Create a failover queue: the store writes there when the orders queue does not acknowledge, and the forwarder consumes it too"
  type        = bool
  default     = false
}

variable "queue_visibility_timeout_seconds" {
  description = "Visibility timeout of the orders (and failover) queue, in seconds. With trigger = sqs it must be at least 6 x forwarder_timeout + maximum_batching_window_in_seconds; with schedule at least forwarder_timeout"
  type        = number
  default     = 180

  validation {
    condition     = var.queue_visibility_timeout_seconds >= 0 && var.queue_visibility_timeout_seconds <= 43200 && floor(var.queue_visibility_timeout_seconds) == var.queue_visibility_timeout_seconds
    error_message = "queue_visibility_timeout_seconds must be a whole number from 0 to 43200 (12 h)."
  }
}

variable "message_retention_seconds" {
  description = "Retention of the orders (and failover) queue, in seconds (60-1209600; default 4 days)"
  type        = number
  default     = 345600

  validation {
    condition     = var.message_retention_seconds >= 60 && var.message_retention_seconds <= 1209600 && floor(var.message_retention_seconds) == var.message_retention_seconds
    error_message = "message_retention_seconds must be a whole number from 60 to 1209600 (14 days)."
  }
}

variable "dlq_message_retention_seconds" {
  description = "Retention of the dead-letter queue, in seconds (60-1209600; default 14 days). For standard queues it must be longer than message_retention_seconds: a message keeps its original enqueue time when redriven"
  type        = number
  default     = 1209600

  validation {
    condition     = var.dlq_message_retention_seconds >= 60 && var.dlq_message_retention_seconds <= 1209600 && floor(var.dlq_message_retention_seconds) == var.dlq_message_retention_seconds
    error_message = "dlq_message_retention_seconds must be a whole number from 60 to 1209600 (14 days)."
  }
}

variable "max_receive_count" {
  description = "Redrive policy `maxReceiveCount`: receives of a message before SQS moves it to the dead-letter queue (1-1000; at least 3 with the circuit breaker). `null` = one attempt per entry of retry_schedule_seconds plus the first, and with the circuit breaker the 2 receives an outage may cost a message: length(retry_schedule_seconds) + 3 (14 by default)"
  type        = number
  default     = null

  validation {
    condition     = var.max_receive_count == null || try(var.max_receive_count >= 1 && var.max_receive_count <= 1000 && floor(var.max_receive_count) == var.max_receive_count, false)
    error_message = "max_receive_count must be a whole number from 1 to 1000."
  }
}

variable "kms_key_arn" {
  description = "A customer-managed KMS key (ARN) to encrypt the queues and the alarm topic with, instead of SSE-SQS; the functions' roles then get kms:GenerateDataKey and kms:Decrypt on it (`null` = SSE-SQS)"
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be the ARN of a KMS key (arn:aws:kms:...)."
  }
}

variable "sqs_managed_sse_enabled" {
  description = "Encrypt the queues at rest with SQS-owned keys (SSE-SQS) when no kms_key_arn is given"
  type        = bool
  default     = true
}

################################################################################
# Circuit breaker
################################################################################

variable "breaker_threshold" {
  description = "Retryable backend failures in a row (connection errors, timeouts, 5xx, 429; no success or 4xx between them) that open the circuit: delivery pauses and a probe tries again every probe_interval_seconds. 0 turns the breaker off"
  type        = number
  default     = 10

  validation {
    condition     = var.breaker_threshold >= 0 && var.breaker_threshold <= 1000 && floor(var.breaker_threshold) == var.breaker_threshold
    error_message = "breaker_threshold must be a whole number from 0 (off) to 1000."
  }
}

variable "probe_interval_seconds" {
  description = "While the circuit is open: seconds between probes of the backend, and how long messages in hand when it opened wait (1-900, SQS's longest message delay)"
  type        = number
  default     = 60

  validation {
    condition     = var.probe_interval_seconds >= 1 && var.probe_interval_seconds <= 900 && floor(var.probe_interval_seconds) == var.probe_interval_seconds
    error_message = "probe_interval_seconds must be a whole number from 1 to 900."
  }
}

################################################################################
# Trigger
################################################################################

variable "trigger" {
  description = "What runs the forwarder: `sqs` (an event source mapping per queue, continuous) or `schedule` (an EventBridge rule; the forwarder polls the queues itself)"
  type        = string
  default     = "sqs"

  validation {
    condition     = contains(["sqs", "schedule"], var.trigger)
    error_message = "trigger must be \"sqs\" or \"schedule\"."
  }
}

variable "trigger_enabled" {
  description = "Whether the event source mapping(s) or the schedule rule are enabled. `false` pauses delivery; orders keep being stored and wait in SQS. For the mappings this is the state they are created in: after that the circuit breaker and `sfctl pause` / `resume` switch them"
  type        = bool
  default     = true
}

variable "batch_size" {
  description = "trigger = sqs: records per invocation at most. 1-10 when the batching window is 0 or the queue is FIFO; up to 10000 with a batching window (standard queues)"
  type        = number
  default     = 10

  validation {
    condition     = var.batch_size >= 1 && var.batch_size <= 10000 && floor(var.batch_size) == var.batch_size
    error_message = "batch_size must be a whole number from 1 to 10000."
  }
}

variable "maximum_batching_window_in_seconds" {
  description = "trigger = sqs: how long to gather records before invoking, 0-300 s (must be 0 for FIFO queues)"
  type        = number
  default     = 0

  validation {
    condition     = var.maximum_batching_window_in_seconds >= 0 && var.maximum_batching_window_in_seconds <= 300 && floor(var.maximum_batching_window_in_seconds) == var.maximum_batching_window_in_seconds
    error_message = "maximum_batching_window_in_seconds must be a whole number from 0 to 300."
  }
}

variable "maximum_concurrency" {
  description = "trigger = sqs: concurrent forwarder invocations of the orders (and of the failover) queue's event source mapping at most, 2-1000; the probe queue's mapping takes 2. Bounds the load on the backend and what the forwarder takes of the account's concurrency when a backlog drains, so that the store keeps the rest. `null` = no limit: a backlog may then take the whole account's concurrency and the store is throttled, refusing orders"
  type        = number
  default     = 5

  validation {
    condition     = var.maximum_concurrency == null || try(var.maximum_concurrency >= 2 && var.maximum_concurrency <= 1000 && floor(var.maximum_concurrency) == var.maximum_concurrency, false)
    error_message = "maximum_concurrency must be a whole number from 2 to 1000."
  }
}

variable "schedule_expression" {
  description = "trigger = schedule: when EventBridge invokes the forwarder, `rate(...)` or `cron(...)`"
  type        = string
  default     = "rate(1 minute)"

  validation {
    condition     = can(regex("^(rate\\(\\s*[1-9][0-9]*\\s+(minute|minutes|hour|hours|day|days)\\s*\\)|cron\\(.+\\))$", var.schedule_expression))
    error_message = "schedule_expression must be rate(<n> minute(s)|hour(s)|day(s)) or cron(<fields>)."
  }
}

################################################################################
# API
################################################################################

variable "ingresses" {
  description = "Where orders come in, one or more of: `rest` (REST API with api_auth: API keys, usage plans, per-key throttling; $3.50 per million requests), `http_api` (HTTP API with an IAM or JWT authorizer, http_api_auth; $1.00 per million) and `function_url` (the store's Lambda function URL with AWS_IAM auth; no charge beyond Lambda's). Two at once serve a migration"
  type        = set(string)
  default     = ["rest"]

  validation {
    condition     = length(var.ingresses) > 0 && length(setsubtract(var.ingresses, ["rest", "http_api", "function_url"])) == 0
    error_message = "ingresses must name at least one of rest, http_api and function_url, and nothing else."
  }
}


variable "api_stage_name" {
  description = "Name of the REST API stage; the order URL is `<invoke URL of the stage>/orders/new-order`"
  type        = string
  default     = "v1"

  validation {
    condition     = can(regex("^[a-zA-Z0-9_-]{1,128}$", var.api_stage_name))
    error_message = "api_stage_name must have 1-128 letters, digits, hyphens or underscores."
  }
}

variable "api_endpoint_type" {
  description = "Endpoint type of the REST API: `REGIONAL` or `EDGE`"
  type        = string
  default     = "REGIONAL"

  validation {
    condition     = contains(["REGIONAL", "EDGE"], var.api_endpoint_type)
    error_message = "api_endpoint_type must be \"REGIONAL\" or \"EDGE\"."
  }
}

variable "api_auth" {
  description = "ingresses with rest: how callers of the REST API authenticate: `api_key` (an `x-api-key` header; a usage plan with throttling and a quota), `iam` (SigV4-signed requests, `AWS_IAM` authorization; grant `execute-api:Invoke` on `api_execution_arn`) or `none` (for local experiments only: anyone who reaches the URL can post orders)"
  type        = string
  default     = "api_key"

  validation {
    condition     = contains(["api_key", "iam", "none"], var.api_auth)
    error_message = "api_auth must be api_key, iam or none."
  }
}

variable "usage_plan_rate_limit" {
  description = "api_auth = api_key: steady requests per second per key"
  type        = number
  default     = 100

  validation {
    condition     = var.usage_plan_rate_limit > 0
    error_message = "usage_plan_rate_limit must be positive."
  }
}

variable "usage_plan_burst_limit" {
  description = "api_auth = api_key: burst of requests per key"
  type        = number
  default     = 200

  validation {
    condition     = var.usage_plan_burst_limit >= 0 && floor(var.usage_plan_burst_limit) == var.usage_plan_burst_limit
    error_message = "usage_plan_burst_limit must be a whole number, 0 or more."
  }
}

variable "usage_plan_quota_limit" {
  description = "api_auth = api_key: requests per key per `usage_plan_quota_period` (`null` = no quota)"
  type        = number
  default     = 1000000

  validation {
    condition     = var.usage_plan_quota_limit == null || try(var.usage_plan_quota_limit > 0 && floor(var.usage_plan_quota_limit) == var.usage_plan_quota_limit, false)
    error_message = "usage_plan_quota_limit must be a positive whole number or null."
  }
}

variable "usage_plan_quota_period" {
  description = "api_auth = api_key: the quota's period, DAY, WEEK or MONTH"
  type        = string
  default     = "DAY"

  validation {
    condition     = contains(["DAY", "WEEK", "MONTH"], var.usage_plan_quota_period)
    error_message = "usage_plan_quota_period must be DAY, WEEK or MONTH."
  }
}

variable "api_throttling_rate_limit" {
  description = "Steady-state requests per second the stage accepts (`null` = the account default)"
  type        = number
  default     = null

  validation {
    condition     = var.api_throttling_rate_limit == null || try(var.api_throttling_rate_limit > 0, false)
    error_message = "api_throttling_rate_limit must be positive."
  }
}

variable "api_throttling_burst_limit" {
  description = "Burst of requests the stage accepts (`null` = the account default)"
  type        = number
  default     = null

  validation {
    condition     = var.api_throttling_burst_limit == null || try(var.api_throttling_burst_limit >= 0 && floor(var.api_throttling_burst_limit) == var.api_throttling_burst_limit, false)
    error_message = "api_throttling_burst_limit must be a whole number, 0 or more."
  }
}

################################################################################
# Function URL (ingresses contains "function_url")
################################################################################

variable "function_url_principals" {
  description = "ingresses with function_url: IAM principals (account root, role or user ARNs, or account ids) allowed to call the function URL, SigV4-signed. Each gets `lambda:InvokeFunctionUrl` (AuthType AWS_IAM) and `lambda:InvokeFunction` on the store in its resource policy. Empty: only principals of this account whose own IAM policy allows both"
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for p in var.function_url_principals : can(regex("^(\\d{12}|arn:aws[a-z-]*:iam::\\d{12}:(root|(role|user)/[\\w+=,.@/-]+))$", p))])
    error_message = "function_url_principals must be 12-digit account ids or IAM ARNs of an account root, a role or a user."
  }
}

################################################################################
# HTTP API (ingresses contains "http_api")
################################################################################

variable "http_api_auth" {
  description = "ingresses with http_api: how callers authenticate, `iam` (SigV4-signed requests, AWS_IAM route authorization; grant `execute-api:Invoke` on `http_api_execution_arn`) or `jwt` (a bearer token in `Authorization`, checked against http_api_jwt_issuer and http_api_jwt_audience)"
  type        = string
  default     = "iam"

  validation {
    condition     = contains(["iam", "jwt"], var.http_api_auth)
    error_message = "http_api_auth must be iam or jwt."
  }
}

variable "http_api_jwt_issuer" {
  description = "http_api_auth = jwt: the token issuer, an https URL (e.g. `https://cognito-idp.us-east-1.amazonaws.com/<user pool id>`); API Gateway fetches its keys from `<issuer>/.well-known/openid-configuration`"
  type        = string
  default     = null

  validation {
    condition     = var.http_api_jwt_issuer == null || can(regex("^https://[^\\s/?#]+[^\\s?#]*$", var.http_api_jwt_issuer))
    error_message = "http_api_jwt_issuer must be an https URL without query or fragment."
  }
}

variable "http_api_jwt_audience" {
  description = "http_api_auth = jwt: the audiences (`aud`, or `client_id` for Cognito access tokens) a token must name one of"
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for a in var.http_api_jwt_audience : length(trimspace(a)) > 0])
    error_message = "http_api_jwt_audience must not hold empty strings."
  }
}

variable "http_api_throttling_rate_limit" {
  description = "ingresses with http_api: steady requests per second the HTTP API's stage accepts from all callers together (an HTTP API has no usage plans or per-caller limits); the default is the REST usage plan's per-key default"
  type        = number
  default     = 100

  validation {
    condition     = var.http_api_throttling_rate_limit > 0
    error_message = "http_api_throttling_rate_limit must be positive."
  }
}

variable "http_api_throttling_burst_limit" {
  description = "ingresses with http_api: burst of requests the HTTP API's stage accepts from all callers together; the default is the REST usage plan's per-key default"
  type        = number
  default     = 200

  validation {
    condition     = var.http_api_throttling_burst_limit > 0 && floor(var.http_api_throttling_burst_limit) == var.http_api_throttling_burst_limit
    error_message = "http_api_throttling_burst_limit must be a positive whole number."
  }
}

################################################################################
# Alarms
################################################################################

variable "alarms_enabled" {
  description = "Create the CloudWatch alarms: DLQ not empty, age of the oldest order, delivery paused, forwarder and store errors and throttles, API 5XX answers"
  type        = bool
  default     = true
}

variable "alarm_period_seconds" {
  description = "Period over which each alarm evaluates its metric, a multiple of 60 seconds. AWS publishes the SQS, Lambda and API Gateway metrics (and the functions' EMF metrics) once a minute: a shorter period finds no data and the alarm never fires. 10 or 30 only with alarm_sub_minute_periods"
  type        = number
  default     = 60

  validation {
    condition     = contains([10, 30], var.alarm_period_seconds) || (var.alarm_period_seconds >= 60 && var.alarm_period_seconds % 60 == 0)
    error_message = "alarm_period_seconds must be a multiple of 60 (or 10 or 30 with alarm_sub_minute_periods)."
  }
}

variable "alarm_sub_minute_periods" {
  description = "Allow alarm_period_seconds of 10 or 30: only where the metrics are published more often than once a minute, as on LocalStack (SQS_CLOUDWATCH_METRICS_REPORT_INTERVAL=10, see localstack.tfvars). Never on AWS, where such alarms never fire"
  type        = bool
  default     = false
}

variable "alarm_oldest_message_age_seconds" {
  description = "Alarm when the oldest order in the orders (or failover) queue has waited longer than this, in seconds"
  type        = number
  default     = 900

  validation {
    condition     = var.alarm_oldest_message_age_seconds > 0
    error_message = "alarm_oldest_message_age_seconds must be positive."
  }
}

variable "alarm_paused_seconds" {
  description = "Alarm when delivery has been paused this long, in seconds: the circuit breaker open (every probe failed), or an operator's pause that probes keep finding"
  type        = number
  default     = 900

  validation {
    condition     = var.alarm_paused_seconds > 0
    error_message = "alarm_paused_seconds must be positive."
  }
}

variable "alarm_notifications" {
  description = "Create an SNS topic (encrypted) that the alarms notify, when alarm_topic_arn is not given"
  type        = bool
  default     = false
}

variable "alarm_topic_encrypted" {
  description = "Encrypt the created alarm topic at rest: with kms_key_arn, or else with a key created for it whose policy admits CloudWatch. `false`: not encrypted (notifications carry alarm names and states, never orders); for LocalStack 4.13.1, where every kms:CreateKey fails (see localstack.tfvars)"
  type        = bool
  default     = true
}

variable "alarm_topic_arn" {
  description = "An existing SNS topic the alarms notify, instead of creating one (`null` = none, or the created one)"
  type        = string
  default     = null
}

variable "alarm_emails" {
  description = "E-mail addresses subscribed to the created alarm topic (each must confirm its subscription)"
  type        = list(string)
  default     = []
}

################################################################################
# Dashboard
################################################################################

variable "dashboard_enabled" {
  description = "Create the CloudWatch dashboard `<name_prefix>`: orders accepted and rejected (by reason), deliveries by outcome and by backend answer, delivery latency p50/p99, depth and age of every queue, the circuit breaker, the alarms, and the latest failed delivery attempts from the forwarder's logs"
  type        = bool
  default     = true
}
