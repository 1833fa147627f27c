# Every option on at once: custom domain, Route 53, WAF, logs, CMK, prefixes, Basic auth, IP allow-list,
# X-Ray, reserved concurrency, arm64, artifact selection and extra environment.
mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  name                              = "mirror-all"
  bucket_name                       = "my-trivy-mirror"
  prefix                            = "mirror/v1"
  vex_prefix                        = "vexhub"
  force_destroy                     = true
  versioning                        = false
  noncurrent_version_retention_days = 30
  kms_key_arn                       = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"
  access_log_bucket                 = "my-logs"
  domain_names                      = ["trivy.example.com", "mirror.example.com"]
  acm_certificate_arn               = "arn:aws:acm:us-east-1:123456789012:certificate/abc"
  route53_zone_id                   = "Z0123456789ABCDEFGHIJ"
  price_class                       = "PriceClass_All"
  web_acl_id                        = "arn:aws:wafv2:us-east-1:123456789012:global/webacl/x/y"
  cloudfront_log_bucket             = "my-logs.s3.amazonaws.com"
  tag_cache_ttl_seconds             = 120
  tag_max_ttl_seconds               = 300
  immutable_min_ttl_seconds         = 604800
  docker_content_digest_header      = false
  vex_strip_etag                    = false
  basic_auth_credentials            = { ci = "correct horse battery", dev = "another long secret" }
  basic_auth_realm                  = "my mirror"
  allowed_cidrs                     = ["203.0.113.0/24", "2001:db8::/32"]
  lambda_zip_path                   = "tests/fixtures/bootstrap.zip"
  lambda_architecture               = "arm64"
  lambda_memory_mb                  = 1024
  lambda_timeout_seconds            = 600
  lambda_ephemeral_storage_mb       = 2048
  lambda_reserved_concurrency       = 1
  lambda_tracing_mode               = "Active"
  schedule_expression               = "cron(0 */4 * * ? *)"
  schedule_timezone                 = "Europe/Berlin"
  log_retention_days                = 90
  only                              = ["db", "vex"]
  source_registry                   = "mirror.gcr.io/aquasec"
  environment                       = { RUST_LOG = "debug" }
  tags                              = { owner = "platform" }
}

run "plan_all_options" {
  command = plan

  assert {
    condition     = aws_lambda_function.publisher[0].reserved_concurrent_executions == 1 && aws_lambda_function.publisher[0].architectures[0] == "arm64"
    error_message = "Reserved concurrency and architecture are passed through."
  }

  # Item 7: Active tracing adds exactly the two X-Ray actions.
  assert {
    condition     = one([for st in data.aws_iam_policy_document.publisher[0].statement : st.actions if st.sid == "XRayTracing"]) == toset(["xray:PutTraceSegments", "xray:PutTelemetryRecords"])
    error_message = "Active tracing needs xray:PutTraceSegments and xray:PutTelemetryRecords."
  }
  assert {
    condition     = aws_lambda_function.publisher[0].tracing_config[0].mode == "Active"
    error_message = "Tracing mode."
  }

  # The bucket key is usable by the publisher.
  assert {
    condition     = one([for st in data.aws_iam_policy_document.publisher[0].statement : st.resources if st.sid == "UseBucketKey"]) == toset([var.kms_key_arn])
    error_message = "The publisher may use only the given key."
  }

  # Item 9 with a prefix: the object lives under the prefix, the viewer path does not (origin_path adds it).
  assert {
    condition     = aws_s3_object.not_found.key == "mirror/v1/_trivy-mirror/404.json"
    error_message = "The error document is written under the prefix."
  }
  assert {
    condition     = one(aws_cloudfront_distribution.this.origin).origin_path == "/mirror/v1"
    error_message = "origin_path carries the prefix."
  }
  assert {
    condition     = one([for e in aws_cloudfront_distribution.this.custom_error_response : e.response_page_path if e.error_code == 404]) == "/_trivy-mirror/404.json"
    error_message = "The error page path is a viewer path."
  }

  # The inlined function configuration carries hashes only, never a password.
  assert {
    condition     = !strcontains(nonsensitive(aws_cloudfront_function.viewer_request.code), "correct horse battery") && strcontains(nonsensitive(aws_cloudfront_function.viewer_request.code), sha256("Basic ${base64encode("ci:correct horse battery")}"))
    error_message = "The function holds the SHA-256 of the header value, not the password."
  }
  assert {
    condition     = strcontains(aws_cloudfront_function.viewer_request.code, "2001:db8::/32") && strcontains(aws_cloudfront_function.viewer_request.code, "/vexhub/main.tar.gz")
    error_message = "CIDRs and VEX paths reach the function."
  }

  assert {
    condition     = length(aws_route53_record.this) == 4
    error_message = "A and AAAA for each domain."
  }
  assert {
    condition     = aws_cloudfront_distribution.this.viewer_certificate[0].minimum_protocol_version == "TLSv1.2_2021" && aws_cloudfront_distribution.this.viewer_certificate[0].ssl_support_method == "sni-only"
    error_message = "A custom certificate uses TLSv1.2_2021 with SNI."
  }
  assert {
    condition     = one(aws_s3_bucket_server_side_encryption_configuration.this.rule).apply_server_side_encryption_by_default[0].sse_algorithm == "aws:kms"
    error_message = "SSE-KMS with kms_key_arn."
  }
  assert {
    condition     = length(aws_s3_bucket_logging.this) == 1
    error_message = "S3 access logging."
  }
}

run "apply_all_options" {
  assert {
    condition     = aws_lambda_function.publisher[0].environment[0].variables == tomap({ TRIVY_MIRROR_TO = "s3://my-trivy-mirror/mirror/v1", TRIVY_MIRROR_BASE_URL = "https://trivy.example.com", TRIVY_MIRROR_LOG_FORMAT = "json", TRIVY_MIRROR_ONLY = "db,vex", TRIVY_MIRROR_SOURCE = "mirror.gcr.io/aquasec", TRIVY_MIRROR_VEX_PREFIX = "vexhub", RUST_LOG = "debug" })
    error_message = "Publisher environment."
  }
  # Item 1: with credentials set, the outputs still plan and apply (no "Output refers to sensitive values").
  assert {
    condition     = strcontains(output.vex_repository_yaml, "username: <user>") && strcontains(output.vex_repository_yaml, "url: https://trivy.example.com/vexhub")
    error_message = "The VEX entry names the credentials placeholders and the VEX prefix."
  }
  assert {
    condition     = output.mirror_host == "trivy.example.com"
    error_message = "The first custom domain is the mirror host."
  }

  # Item 11: the scheduler role can decrypt the CMK-encrypted schedule, and the key policy output says so.
  assert {
    condition     = one([for st in data.aws_iam_policy_document.scheduler[0].statement : st.actions if st.sid == "DecryptSchedule"]) == toset(["kms:Decrypt"]) && one([for st in data.aws_iam_policy_document.scheduler[0].statement : st.resources if st.sid == "DecryptSchedule"]) == toset([var.kms_key_arn])
    error_message = "The scheduler role needs kms:Decrypt on the key."
  }
  assert {
    condition     = aws_scheduler_schedule.publisher[0].kms_key_arn == var.kms_key_arn
    error_message = "The schedule is encrypted with the key."
  }
  assert {
    condition     = toset([for st in jsondecode(output.kms_key_policy_statements) : st.Sid]) == toset(["AllowCloudFrontDecrypt", "AllowPublisher", "AllowSchedulerDecrypt"])
    error_message = "The key policy statements cover CloudFront, the publisher and the scheduler."
  }
  assert {
    condition     = one([for st in jsondecode(output.kms_key_policy_statements) : st.Principal.AWS if st.Sid == "AllowSchedulerDecrypt"]) == aws_iam_role.scheduler[0].arn
    error_message = "The scheduler statement names the scheduler role."
  }
}
