data "aws_partition" "current" {}
data "aws_caller_identity" "current" {}

locals {
  # Key prefix inside the bucket ("" or "some/prefix/").
  key_prefix = var.prefix == "" ? "" : "${var.prefix}/"
  # Viewer path of the VEX repository ("" or "vexhub/").
  vex_path = var.vex_prefix == "" ? "" : "${var.vex_prefix}/"

  # Repositories and tags the publisher writes (docs/TRIVY.md, "Pulling a database").
  repositories = {
    db      = "aquasecurity/trivy-db"
    java_db = "aquasecurity/trivy-java-db"
    checks  = "aquasecurity/trivy-checks"
  }

  # Viewer paths of the VEX archives; the ETag is dropped there when vex_strip_etag is true.
  vex_archive_paths = ["/${local.vex_path}main.tar.gz", "/${local.vex_path}main.zip"]

  mirror_host = length(var.domain_names) > 0 ? var.domain_names[0] : aws_cloudfront_distribution.this.domain_name
  mirror_url  = "https://${local.mirror_host}"

  bucket_arn   = aws_s3_bucket.this.arn
  objects_arn  = "${aws_s3_bucket.this.arn}/${local.key_prefix}*"
  publisher_to = "s3://${aws_s3_bucket.this.id}${var.prefix == "" ? "" : "/${var.prefix}"}"
  # Whether credentials are set is not a secret; the credentials are. Unmarking the boolean keeps
  # outputs that depend on it (vex_repository_yaml) plannable in a root module, where Terraform
  # otherwise fails with "Output refers to sensitive values".
  basic_auth_enabled = nonsensitive(length(var.basic_auth_credentials) > 0)

  # Registry-style body for every 404, served by CloudFront instead of S3's XML error. BLOB_UNKNOWN is
  # the one 404 code on which Trivy tries its next repository (pkg/oci/artifact.go shouldTryOtherRepo);
  # MANIFEST_UNKNOWN and a body that is not registry JSON stop it. Terraform writes the object (storage.tf),
  # so the publisher needs to write nothing for it.
  not_found_viewer_path = "/_trivy-mirror/404.json"
  not_found_key         = "${local.key_prefix}_trivy-mirror/404.json"
  not_found_document    = file("${path.module}/errors/404.json")

  tags = merge({ "app" = "trivy-mirror" }, var.tags)
}
