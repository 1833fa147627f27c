data "google_project" "this" {
  project_id = var.project_id
}

locals {
  key_prefix = var.prefix == "" ? "" : "${var.prefix}/"
  vex_path   = var.vex_prefix == "" ? "" : "${var.vex_prefix}/"

  repositories = {
    db      = "aquasecurity/trivy-db"
    java_db = "aquasecurity/trivy-java-db"
    checks  = "aquasecurity/trivy-checks"
  }

  # Content-addressed paths (immutable): blobs and manifests by digest of every repository.
  immutable_path_prefixes = flatten([
    for repo in values(local.repositories) : ["/v2/${repo}/blobs/", "/v2/${repo}/manifests/sha256:"]
  ])

  vex_archive_paths = ["/${local.vex_path}main.tar.gz", "/${local.vex_path}main.zip"]

  mirror_host  = var.domain_names[0]
  mirror_url   = "https://${local.mirror_host}"
  publisher_to = "gs://${google_storage_bucket.this.name}${var.prefix == "" ? "" : "/${var.prefix}"}"

  # Registry-style body for every 404 (URL map custom error response, cdn.tf): BLOB_UNKNOWN is the one
  # 404 code on which Trivy tries its next repository (pkg/oci/artifact.go shouldTryOtherRepo). Written
  # by Terraform (storage.tf), outside v2/, so the publisher neither writes nor prunes it.
  not_found_object   = "${local.key_prefix}_trivy-mirror/404.json"
  not_found_document = file("${path.module}/errors/404.json")

  cdn_fill_service_account = coalesce(var.cdn_fill_service_account, "service-${data.google_project.this.number}@cloud-cdn-fill.iam.gserviceaccount.com")

  labels = merge({ app = "trivy-mirror" }, var.labels)
}
