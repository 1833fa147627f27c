################################################################################
# Scheduled publisher: Lambda (provided.al2023) + EventBridge Scheduler
################################################################################

locals {
  function_name = var.name
  log_group     = "/aws/lambda/${local.function_name}"

  publisher_environment = merge(
    {
      TRIVY_MIRROR_TO         = local.publisher_to
      TRIVY_MIRROR_BASE_URL   = local.mirror_url
      TRIVY_MIRROR_LOG_FORMAT = "json"
    },
    length(var.only) > 0 ? { TRIVY_MIRROR_ONLY = join(",", var.only) } : {},
    var.source_registry == null ? {} : { TRIVY_MIRROR_SOURCE = var.source_registry },
    var.vex_prefix == "" ? {} : { TRIVY_MIRROR_VEX_PREFIX = var.vex_prefix },
    var.environment,
  )
}

resource "aws_cloudwatch_log_group" "publisher" {
  # checkov:skip=CKV_AWS_158:The publisher logs carry no secrets (object keys, digests, sizes); CloudWatch encrypts log data at rest with service keys. A CMK would need its own key policy for logs.<region>.amazonaws.com.
  # checkov:skip=CKV_AWS_338:Retention defaults to 30 days (log_retention_days) to keep cost proportional: the logs are operational, the mirror's status.json records each run.
  count = var.create_publisher ? 1 : 0

  name              = local.log_group
  retention_in_days = var.log_retention_days

  tags = local.tags
}

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

# Least privilege: read/write/delete objects under the mirror prefix of this one bucket, list that
# prefix (so HEAD of a missing key is a 404, not a 403), manage its multipart uploads, write its logs,
# and, with lambda_tracing_mode = "Active", send X-Ray segments.
data "aws_iam_policy_document" "publisher" {
  count = var.create_publisher ? 1 : 0

  statement {
    sid    = "ListMirrorPrefix"
    effect = "Allow"
    actions = [
      "s3:ListBucket",
      "s3:ListBucketMultipartUploads",
    ]
    resources = [local.bucket_arn]

    dynamic "condition" {
      for_each = var.prefix == "" ? [] : [1]
      content {
        test     = "StringLike"
        variable = "s3:prefix"
        values   = [var.prefix, "${local.key_prefix}*"]
      }
    }
  }

  statement {
    sid    = "ReadWriteMirrorObjects"
    effect = "Allow"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = [local.objects_arn]
  }

  statement {
    sid    = "WriteOwnLogs"
    effect = "Allow"
    actions = [
      "logs:CreateLogStream",
      "logs:PutLogEvents",
    ]
    # The log group's own ARN (no data.aws_region: its `name` is deprecated in provider 6).
    resources = ["${aws_cloudwatch_log_group.publisher[0].arn}:*"]
  }

  # Lambda needs these on the execution role for Active tracing, or CreateFunction fails. X-Ray has no
  # resource-level permissions for them: "*" is the only resource they accept.
  dynamic "statement" {
    for_each = var.lambda_tracing_mode == "Active" ? [1] : []
    content {
      sid    = "XRayTracing"
      effect = "Allow"
      actions = [
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
      ]
      resources = ["*"]
    }
  }

  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [var.kms_key_arn]
    content {
      sid    = "UseBucketKey"
      effect = "Allow"
      actions = [
        "kms:Decrypt",
        "kms:GenerateDataKey",
      ]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role" "publisher" {
  count = var.create_publisher ? 1 : 0

  name               = "${var.name}-publisher"
  description        = "trivy-mirror publisher: writes ${var.bucket_name}/${local.key_prefix}"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json

  tags = local.tags
}

resource "aws_iam_role_policy" "publisher" {
  count = var.create_publisher ? 1 : 0

  name   = "${var.name}-publisher"
  role   = aws_iam_role.publisher[0].id
  policy = data.aws_iam_policy_document.publisher[0].json
}

resource "aws_lambda_function" "publisher" {
  # checkov:skip=CKV_AWS_117:The publisher must reach the upstream registries on the internet; inside a VPC it would need a NAT gateway (a fixed monthly cost) and gains nothing, since it serves no inbound traffic.
  # checkov:skip=CKV_AWS_116:A dead-letter queue would only hold the empty schedule event; a failed run is retried by the scheduler, logged, and superseded by the next scheduled run.
  # checkov:skip=CKV_AWS_173:The environment holds no secrets (bucket URL, public base URL, artifact list); Lambda encrypts it at rest with an AWS-managed key.
  # checkov:skip=CKV_AWS_272:The zip is built by the operator with cargo lambda; code signing needs an AWS Signer profile the operator would have to create first.
  # checkov:skip=CKV_AWS_115:Reserved concurrency is lambda_reserved_concurrency (null by default): any reservation fails in accounts at the default concurrency limit of 10; the 6-hour schedule and 15-minute timeout keep runs apart.
  count = var.create_publisher ? 1 : 0

  function_name    = local.function_name
  description      = "trivy-mirror: publishes Trivy databases and VEX Hub to ${local.publisher_to}"
  role             = aws_iam_role.publisher[0].arn
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = [var.lambda_architecture]
  filename         = var.lambda_zip_path
  source_code_hash = filebase64sha256(var.lambda_zip_path)
  memory_size      = var.lambda_memory_mb
  timeout          = var.lambda_timeout_seconds

  # Optional (lambda_reserved_concurrency): 1 keeps runs from overlapping, but reserving any concurrency
  # fails in accounts still at the default limit of 10 (AWS keeps 10 unreserved).
  reserved_concurrent_executions = var.lambda_reserved_concurrency

  ephemeral_storage {
    size = var.lambda_ephemeral_storage_mb
  }

  tracing_config {
    mode = var.lambda_tracing_mode
  }

  logging_config {
    log_format = "JSON"
    log_group  = local.log_group
  }

  environment {
    variables = local.publisher_environment
  }

  tags = local.tags

  depends_on = [
    aws_cloudwatch_log_group.publisher,
    aws_iam_role_policy.publisher,
  ]

  lifecycle {
    precondition {
      condition     = var.lambda_zip_path != null
      error_message = "lambda_zip_path is required when create_publisher is true (build it with: cargo lambda build --release --features lambda --output-format zip)."
    }
  }
}

resource "aws_lambda_function_event_invoke_config" "publisher" {
  count = var.create_publisher ? 1 : 0

  function_name                = aws_lambda_function.publisher[0].function_name
  maximum_retry_attempts       = 0
  maximum_event_age_in_seconds = 3600
}

data "aws_iam_policy_document" "scheduler_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "scheduler" {
  count = var.create_publisher ? 1 : 0

  name               = "${var.name}-scheduler"
  description        = "trivy-mirror: EventBridge Scheduler invokes the publisher"
  assume_role_policy = data.aws_iam_policy_document.scheduler_assume.json

  tags = local.tags
}

data "aws_iam_policy_document" "scheduler" {
  count = var.create_publisher ? 1 : 0

  statement {
    sid       = "InvokePublisher"
    effect    = "Allow"
    actions   = ["lambda:InvokeFunction"]
    resources = [aws_lambda_function.publisher[0].arn]
  }

  # A schedule encrypted with a customer-managed key is decrypted with the execution role.
  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [var.kms_key_arn]
    content {
      sid       = "DecryptSchedule"
      effect    = "Allow"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "scheduler" {
  count = var.create_publisher ? 1 : 0

  name   = "${var.name}-scheduler"
  role   = aws_iam_role.scheduler[0].id
  policy = data.aws_iam_policy_document.scheduler[0].json
}

resource "aws_scheduler_schedule" "publisher" {
  # checkov:skip=CKV_AWS_297:The schedule's only data is a constant, empty event; kms_key_arn is applied when one is given.
  count = var.create_publisher ? 1 : 0

  name                         = var.name
  description                  = "trivy-mirror: publish every run of ${var.schedule_expression}"
  schedule_expression          = var.schedule_expression
  schedule_expression_timezone = var.schedule_timezone
  state                        = "ENABLED"
  kms_key_arn                  = var.kms_key_arn

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_lambda_function.publisher[0].arn
    role_arn = aws_iam_role.scheduler[0].arn
    input = jsonencode({
      source        = "trivy-mirror.scheduler"
      "detail-type" = "Scheduled Event"
      detail        = {}
    })

    retry_policy {
      maximum_retry_attempts       = 2
      maximum_event_age_in_seconds = 3600
    }
  }
}
