# Values the AWS provider would compute, for `terraform test` with mock_provider "aws" (no account, no
# network). Only what the module reads back is fixed here; everything else gets the mock's random value.

mock_data "aws_caller_identity" {
  defaults = {
    account_id = "123456789012"
  }
}

mock_data "aws_partition" {
  defaults = {
    partition  = "aws"
    dns_suffix = "amazonaws.com"
  }
}

# Mocked data sources do not run the provider's code: the JSON is a fixed, valid policy. The tests
# assert on the statement blocks the module passes in instead.
mock_data "aws_iam_policy_document" {
  defaults = {
    json = "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"sts:AssumeRole\",\"Principal\":{\"Service\":\"lambda.amazonaws.com\"}}]}"
  }
}

mock_resource "aws_s3_bucket" {
  defaults = {
    id                          = "my-trivy-mirror"
    arn                         = "arn:aws:s3:::my-trivy-mirror"
    bucket_regional_domain_name = "my-trivy-mirror.s3.eu-west-1.amazonaws.com"
  }
}

mock_resource "aws_cloudfront_distribution" {
  defaults = {
    arn            = "arn:aws:cloudfront::123456789012:distribution/E2EXAMPLE12345"
    domain_name    = "d111111abcdef8.cloudfront.net"
    hosted_zone_id = "Z2FDTNDATAQYW2"
  }
}

mock_resource "aws_cloudfront_function" {
  defaults = {
    arn = "arn:aws:cloudfront::123456789012:function/trivy-mirror-viewer-request"
  }
}

mock_resource "aws_cloudwatch_log_group" {
  defaults = {
    arn = "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/trivy-mirror"
  }
}

mock_resource "aws_iam_role" {
  defaults = {
    arn = "arn:aws:iam::123456789012:role/trivy-mirror-publisher"
  }
}

mock_resource "aws_lambda_function" {
  defaults = {
    arn = "arn:aws:lambda:eu-west-1:123456789012:function:trivy-mirror"
  }
}
