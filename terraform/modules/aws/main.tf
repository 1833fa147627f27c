data "aws_partition" "current" {}
data "aws_caller_identity" "current" {}
data "aws_region" "current" {}

locals {
  # Key prefix inside the bucket ("" or "some/prefix/").
  key_prefix = var.prefix == "" ? "" : "${var.prefix}/"
  # Viewer path of the VEX repository ("" or "vexhub/").
  vex_path = var.vex_prefix == "" ? "" : "${var.vex_prefix}/"

  # Repositories and tags the publisher writes (see docs: TRIVY-PROTOCOL.md section 1.1).
  repositories = {
    db      = "aquasecurity/trivy-db"
    java_db = "aquasecurity/trivy-java-db"
    checks  = "aquasecurity/trivy-checks"
  }

  # Viewer paths of the VEX archives; the ETag is dropped there when vex_strip_etag is true.
  vex_archive_paths = ["/${local.vex_path}main.tar.gz", "/${local.vex_path}main.zip"]

  mirror_host = length(var.domain_names) > 0 ? var.domain_names[0] : aws_cloudfront_distribution.this.domain_name
  mirror_url  = "https://${local.mirror_host}"

  bucket_arn         = aws_s3_bucket.this.arn
  objects_arn        = "${aws_s3_bucket.this.arn}/${local.key_prefix}*"
  publisher_to       = "s3://${aws_s3_bucket.this.id}${var.prefix == "" ? "" : "/${var.prefix}"}"
  basic_auth_enabled = length(var.basic_auth_credentials) > 0

  tags = merge({ "app" = "trivy-mirror" }, var.tags)
}
