# The example as a root module against the mocked AWS provider (the module's mocks): it must plan and
# apply, and its outputs must be plain (not sensitive) values. Before the fix for "Output refers to
# sensitive values" (vex_repository_yaml) this plan failed.
mock_provider "aws" {
  source = "../../modules/aws/tests/mocks"
}

variables {
  bucket_name     = "my-trivy-mirror"
  lambda_zip_path = "../../modules/aws/tests/fixtures/bootstrap.zip"
}

run "plan" {
  command = plan

  assert {
    condition     = module.trivy_mirror.publisher_environment["TRIVY_MIRROR_LOG_FORMAT"] == "json"
    error_message = "The module is planned with the publisher."
  }
}

run "apply" {
  assert {
    condition     = output.mirror_host == "d111111abcdef8.cloudfront.net"
    error_message = "mirror_host is the CloudFront domain."
  }
  assert {
    condition     = output.trivy_flags == "--db-repository d111111abcdef8.cloudfront.net/aquasecurity/trivy-db:2 --java-db-repository d111111abcdef8.cloudfront.net/aquasecurity/trivy-java-db:1 --checks-bundle-repository d111111abcdef8.cloudfront.net/aquasecurity/trivy-checks:2"
    error_message = "trivy_flags."
  }
  assert {
    condition     = !issensitive(output.vex_repository_yaml) && strcontains(output.vex_repository_yaml, "url: https://d111111abcdef8.cloudfront.net")
    error_message = "vex_repository_yaml is a plain value naming the mirror."
  }
  assert {
    condition     = output.publisher_function_name == "trivy-mirror"
    error_message = "publisher_function_name."
  }
}
