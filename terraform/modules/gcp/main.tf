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

  cdn_fill_service_account = coalesce(var.cdn_fill_service_account, "service-${data.google_project.this.number}@cloud-cdn-fill.iam.gserviceaccount.com")

  labels = merge({ app = "trivy-mirror" }, var.labels)
}
