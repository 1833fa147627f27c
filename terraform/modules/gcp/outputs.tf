################################################################################
# What a user pastes
################################################################################

output "mirror_host" {
  description = "Host name of the mirror (the first of domain_names)."
  value       = local.mirror_host
}

output "mirror_url" {
  description = "Public base URL of the mirror (passed to the publisher as TRIVY_MIRROR_BASE_URL)."
  value       = local.mirror_url
}

output "ip_address" {
  description = "Global IP address of the load balancer: point the A records of domain_names at it."
  value       = google_compute_global_address.this.address
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
  description = "trivy.yaml snippet: ghcr.io references with registry.mirrors trying the mirror first and ghcr.io as the automatic fallback (experimental Trivy feature, trivy.yaml only)."
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
        enabled: true
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
  value       = google_storage_bucket.this.name
}

output "publisher_destination" {
  description = "Destination URL the publisher writes to (TRIVY_MIRROR_TO)."
  value       = local.publisher_to
}

output "url_map_id" {
  description = "ID of the URL map (for cache invalidations: gcloud compute url-maps invalidate-cdn-cache)."
  value       = google_compute_url_map.this.id
}

output "publisher_job_name" {
  description = "Name of the Cloud Run job (run it now with: gcloud run jobs execute NAME --region REGION)."
  value       = try(google_cloud_run_v2_job.publisher[0].name, null)
}

output "publisher_service_account" {
  description = "Email of the publisher's service account."
  value       = try(google_service_account.publisher[0].email, null)
}

output "publisher_environment" {
  description = "Environment the publisher runs with (the TRIVY_MIRROR_* settings)."
  value       = local.publisher_environment
}
