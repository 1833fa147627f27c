################################################################################
# What a user pastes
################################################################################

output "mirror_host" {
  description = "Host name of the mirror (the first custom domain, else the CloudFront domain). Registry references start with it."
  value       = local.mirror_host
}

output "mirror_url" {
  description = "Public base URL of the mirror (passed to the publisher as TRIVY_MIRROR_BASE_URL)."
  value       = local.mirror_url
}

output "trivy_flags" {
  description = "Trivy command-line flags that pull the three databases from the mirror, for Trivy >= 0.69 (trivy-checks:2). Trivy <= 0.68 asks for trivy-checks:1: use trivy_flags_pre_0_69."
  value       = "--db-repository ${local.mirror_host}/${local.repositories.db}:2 --java-db-repository ${local.mirror_host}/${local.repositories.java_db}:1 --checks-bundle-repository ${local.mirror_host}/${local.repositories.checks}:2"
}

output "trivy_flags_pre_0_69" {
  description = "The same flags for Trivy <= 0.68, whose checks bundle is trivy-checks:1 (the publisher mirrors both tags)."
  value       = "--db-repository ${local.mirror_host}/${local.repositories.db}:2 --java-db-repository ${local.mirror_host}/${local.repositories.java_db}:1 --checks-bundle-repository ${local.mirror_host}/${local.repositories.checks}:1"
}

output "trivy_env" {
  description = "The same settings as environment variables (for CI), for Trivy >= 0.69 (trivy-checks:2; Trivy <= 0.68 needs TRIVY_CHECKS_BUNDLE_REPOSITORY ending in :1)."
  value = {
    TRIVY_DB_REPOSITORY            = "${local.mirror_host}/${local.repositories.db}:2"
    TRIVY_JAVA_DB_REPOSITORY       = "${local.mirror_host}/${local.repositories.java_db}:1"
    TRIVY_CHECKS_BUNDLE_REPOSITORY = "${local.mirror_host}/${local.repositories.checks}:2"
  }
}

output "trivy_yaml_registry_mirrors" {
  description = "trivy.yaml snippet: use ghcr.io references and let registry.mirrors try the mirror first, with ghcr.io itself as the automatic fallback (registry.mirrors is experimental in Trivy and only settable in trivy.yaml)."
  value       = <<-EOT
    db:
      repository:
        - ghcr.io/${local.repositories.db}:2
      java-repository:
        - ghcr.io/${local.repositories.java_db}:1
    misconfiguration:
      checks-bundle-repository: ghcr.io/${local.repositories.checks}:2
    registry:
      mirrors:
        ghcr.io:
          - ${local.mirror_host}
  EOT
}

output "vex_repository_yaml" {
  description = "Entry for ~/.trivy/vex/repository.yaml that points Trivy at the mirrored VEX Hub (the default repository is disabled)."
  value       = <<-EOT
    repositories:
      - name: trivy-mirror
        url: ${local.mirror_url}${var.vex_prefix == "" ? "" : "/${var.vex_prefix}"}
        enabled: true%{if local.basic_auth_enabled}
        username: <user>
        password: <password>%{endif}
      - name: default
        url: https://github.com/aquasecurity/vexhub
        enabled: false
  EOT
}

################################################################################
# Resources
################################################################################

output "bucket_name" {
  description = "Name of the mirror bucket."
  value       = aws_s3_bucket.this.id
}

output "bucket_arn" {
  description = "ARN of the mirror bucket."
  value       = aws_s3_bucket.this.arn
}

output "publisher_destination" {
  description = "Destination URL the publisher writes to (TRIVY_MIRROR_TO)."
  value       = local.publisher_to
}

output "cloudfront_distribution_id" {
  description = "ID of the CloudFront distribution (for invalidations)."
  value       = aws_cloudfront_distribution.this.id
}

output "cloudfront_distribution_arn" {
  description = "ARN of the CloudFront distribution."
  value       = aws_cloudfront_distribution.this.arn
}

output "cloudfront_domain_name" {
  description = "The *.cloudfront.net domain of the distribution (point custom domains at it)."
  value       = aws_cloudfront_distribution.this.domain_name
}

output "cloudfront_hosted_zone_id" {
  description = "Route 53 zone ID of the distribution, for alias records managed elsewhere."
  value       = aws_cloudfront_distribution.this.hosted_zone_id
}

output "publisher_function_name" {
  description = "Name of the publisher Lambda function (run it now with: aws lambda invoke --function-name NAME /dev/stdout)."
  value       = try(aws_lambda_function.publisher[0].function_name, null)
}

output "publisher_role_arn" {
  description = "ARN of the publisher's IAM role."
  value       = try(aws_iam_role.publisher[0].arn, null)
}

output "publisher_log_group" {
  description = "CloudWatch log group of the publisher."
  value       = try(aws_cloudwatch_log_group.publisher[0].name, null)
}

output "publisher_environment" {
  description = "Environment the publisher runs with (the TRIVY_MIRROR_* settings)."
  value       = local.publisher_environment
}

output "kms_key_policy_statements" {
  description = "Key policy statements to add to kms_key_arn's key policy when a customer-managed key is used (JSON): CloudFront for this distribution, the publisher role, and the scheduler role (it decrypts the schedule). Null without kms_key_arn."
  value = var.kms_key_arn == null ? null : jsonencode(concat([
    {
      Sid       = "AllowCloudFrontDecrypt"
      Effect    = "Allow"
      Principal = { Service = "cloudfront.amazonaws.com" }
      Action    = ["kms:Decrypt"]
      Resource  = "*"
      Condition = { StringEquals = { "AWS:SourceArn" = aws_cloudfront_distribution.this.arn } }
    },
    {
      Sid       = "AllowPublisher"
      Effect    = "Allow"
      Principal = { AWS = try(aws_iam_role.publisher[0].arn, "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root") }
      Action    = ["kms:Decrypt", "kms:GenerateDataKey"]
      Resource  = "*"
    },
    ], var.create_publisher ? [
    {
      # EventBridge Scheduler decrypts the CMK-encrypted schedule with its execution role.
      Sid       = "AllowSchedulerDecrypt"
      Effect    = "Allow"
      Principal = { AWS = aws_iam_role.scheduler[0].arn }
      Action    = ["kms:Decrypt"]
      Resource  = "*"
    },
  ] : []))
}
