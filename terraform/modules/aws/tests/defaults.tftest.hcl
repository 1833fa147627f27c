# The module with its defaults, planned and then applied against the mocked AWS provider
# (tests/mocks): no account, no network. The provider's own argument validation still runs.
mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  bucket_name     = "my-trivy-mirror"
  lambda_zip_path = "tests/fixtures/bootstrap.zip"
}

run "plan_defaults" {
  command = plan

  assert {
    condition     = aws_lambda_function.publisher[0].runtime == "provided.al2023" && aws_lambda_function.publisher[0].handler == "bootstrap"
    error_message = "The publisher is the provided.al2023 bootstrap."
  }

  # Item 8: no reserved concurrency by default.
  assert {
    condition     = aws_lambda_function.publisher[0].reserved_concurrent_executions == null
    error_message = "Reserved concurrency must be off by default (accounts at the default limit of 10 refuse any reservation)."
  }

  # Item 7: no X-Ray statement while tracing is PassThrough.
  assert {
    condition     = length([for st in data.aws_iam_policy_document.publisher[0].statement : st if st.sid == "XRayTracing"]) == 0
    error_message = "No X-Ray permissions without Active tracing."
  }

  # Item 9: 404 answered with the registry JSON error document, written by Terraform at the origin.
  assert {
    condition     = one([for e in aws_cloudfront_distribution.this.custom_error_response : e.response_page_path if e.error_code == 404]) == "/_trivy-mirror/404.json"
    error_message = "404 must be mapped to the JSON error document."
  }
  assert {
    condition     = one([for e in aws_cloudfront_distribution.this.custom_error_response : tostring(e.response_code) if e.error_code == 404]) == "404"
    error_message = "The 404 must stay a 404."
  }
  assert {
    condition     = aws_s3_object.not_found.key == "_trivy-mirror/404.json" && aws_s3_object.not_found.content_type == "application/json"
    error_message = "Error document key and Content-Type."
  }
  assert {
    condition     = jsondecode(aws_s3_object.not_found.content).errors[0].code == "BLOB_UNKNOWN"
    error_message = "The error code must be BLOB_UNKNOWN, the 404 on which Trivy tries its next repository."
  }
  assert {
    condition     = one([for b in aws_cloudfront_distribution.this.ordered_cache_behavior : b.path_pattern if b.path_pattern == "/_trivy-mirror/*"]) != null
    error_message = "A behaviour must serve the error document path."
  }
  assert {
    condition     = aws_cloudfront_distribution.this.ordered_cache_behavior[0].path_pattern == "/_trivy-mirror/*" && length(aws_cloudfront_distribution.this.ordered_cache_behavior[0].function_association) == 0
    error_message = "The error document behaviour comes first and runs no function (CloudFront fetches it itself)."
  }

  # Item 10: the default function is well under the 10 KB limit, and whole-line comments are not shipped.
  assert {
    condition     = length(aws_cloudfront_function.viewer_request.code) < 6000 && !strcontains(aws_cloudfront_function.viewer_request.code, "\n//")
    error_message = "The default viewer-request function should stay small, without comment lines."
  }
  assert {
    condition     = startswith(aws_cloudfront_function.viewer_request.code, "var CONFIG = {") && strcontains(aws_cloudfront_function.viewer_request.code, "function handler(event)")
    error_message = "The function code is the CONFIG line followed by the function file."
  }

}

run "apply_defaults" {
  # Item 14: the log statement uses the log group's ARN, not data.aws_region.
  assert {
    condition     = one([for st in data.aws_iam_policy_document.publisher[0].statement : st.resources if st.sid == "WriteOwnLogs"]) == toset(["${aws_cloudwatch_log_group.publisher[0].arn}:*"])
    error_message = "The log statement must target the publisher's own log group."
  }

  # Item 15: both checks-bundle tags are printed.
  assert {
    condition     = endswith(output.trivy_flags, "trivy-checks:2") && endswith(output.trivy_flags_pre_0_69, "trivy-checks:1")
    error_message = "trivy_flags is for Trivy >= 0.69 (:2), trivy_flags_pre_0_69 for <= 0.68 (:1)."
  }

  # Item 1: plannable as a root module; no credentials line without credentials.
  assert {
    condition     = !strcontains(output.vex_repository_yaml, "username")
    error_message = "No username line without basic auth."
  }
  assert {
    condition     = output.kms_key_policy_statements == null
    error_message = "No key policy statements without kms_key_arn."
  }

  assert {
    condition     = output.mirror_host == "d111111abcdef8.cloudfront.net" && output.mirror_url == "https://d111111abcdef8.cloudfront.net"
    error_message = "Without a custom domain the mirror host is the CloudFront domain."
  }
  assert {
    condition     = output.publisher_environment.TRIVY_MIRROR_TO == "s3://my-trivy-mirror" && output.publisher_environment.TRIVY_MIRROR_BASE_URL == output.mirror_url
    error_message = "Publisher destination and base URL."
  }
  assert {
    condition     = strcontains(output.trivy_flags, "--db-repository d111111abcdef8.cloudfront.net/aquasecurity/trivy-db:2")
    error_message = "trivy_flags names the mirror host."
  }
  assert {
    condition     = output.publisher_function_name == "trivy-mirror" && output.publisher_log_group == "/aws/lambda/trivy-mirror"
    error_message = "Publisher outputs."
  }
  assert {
    condition     = [for st in data.aws_iam_policy_document.scheduler[0].statement : st.sid] == ["InvokePublisher"] && data.aws_iam_policy_document.scheduler[0].statement[0].actions == toset(["lambda:InvokeFunction"])
    error_message = "Without kms_key_arn the scheduler may only invoke the function."
  }
}
