# The limits the module enforces before AWS would: CloudFront's 10 KB function size (item 10), the TTL
# order, and the input validations. The thresholds (74 credentials, 324 CIDRs 10.N.M.0/24) are the ones
# tests/edge/viewer-request.test.mjs computes from the same function file: update both together.
mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  bucket_name     = "my-trivy-mirror"
  lambda_zip_path = "tests/fixtures/bootstrap.zip"
}

run "credentials_at_the_limit" {
  command = plan
  variables {
    basic_auth_credentials = { for i in range(74) : "user${i}" => "a-long-password-${i}" }
  }
  assert {
    condition     = nonsensitive(length(aws_cloudfront_function.viewer_request.code)) <= 10240
    error_message = "74 credentials must fit."
  }
}

run "credentials_over_the_limit" {
  command = plan
  variables {
    basic_auth_credentials = { for i in range(75) : "user${i}" => "a-long-password-${i}" }
  }
  expect_failures = [aws_cloudfront_function.viewer_request]
}

run "cidrs_at_the_limit" {
  command = plan
  variables {
    allowed_cidrs = [for i in range(324) : cidrsubnet("10.0.0.0/8", 16, i)]
  }
  assert {
    condition     = length(aws_cloudfront_function.viewer_request.code) <= 10240
    error_message = "324 CIDRs of the form 10.N.M.0/24 must fit."
  }
}

run "cidrs_over_the_limit" {
  command = plan
  variables {
    allowed_cidrs = [for i in range(325) : cidrsubnet("10.0.0.0/8", 16, i)]
  }
  expect_failures = [aws_cloudfront_function.viewer_request]
}

run "tag_ttl_above_max" {
  command = plan
  variables {
    tag_cache_ttl_seconds = 600
    tag_max_ttl_seconds   = 300
  }
  expect_failures = [aws_cloudfront_cache_policy.mutable]
}

run "domain_without_certificate" {
  command = plan
  variables {
    domain_names = ["trivy.example.com"]
  }
  expect_failures = [aws_cloudfront_distribution.this]
}

run "publisher_without_zip" {
  command = plan
  variables {
    lambda_zip_path = null
  }
  expect_failures = [aws_lambda_function.publisher]
}

run "reserved_concurrency_zero" {
  command = plan
  variables {
    lambda_reserved_concurrency = 0
  }
  expect_failures = [var.lambda_reserved_concurrency]
}

run "short_password" {
  command = plan
  variables {
    basic_auth_credentials = { ci = "short" }
  }
  expect_failures = [var.basic_auth_credentials]
}
