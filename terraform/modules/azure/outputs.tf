################################################################################
# What a user pastes
################################################################################

output "mirror_host" {
  description = "Host name of the mirror (the first custom domain, else the Front Door endpoint host)."
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

output "storage_account_name" {
  description = "Name of the storage account."
  value       = azurerm_storage_account.this.name
}

output "storage_account_id" {
  description = "ID of the storage account (approve the Front Door private endpoint connection on it after the first apply with private_link_origin)."
  value       = azurerm_storage_account.this.id
}

output "container_name" {
  description = "Blob container of the mirror."
  value       = azurerm_storage_container.this.name
}

output "publisher_destination" {
  description = "Destination URL the publisher writes to (TRIVY_MIRROR_TO)."
  value       = local.publisher_to
}

output "front_door_endpoint_host" {
  description = "The *.azurefd.net host of the endpoint (CNAME target for custom domains)."
  value       = azurerm_cdn_frontdoor_endpoint.this.host_name
}

output "custom_domain_validation_tokens" {
  description = "TXT validation tokens of the custom domains (create _dnsauth.<domain> records when dns_zone_id is not used)."
  value       = { for k, d in azurerm_cdn_frontdoor_custom_domain.this : k => d.validation_token }
}

output "publisher_job_name" {
  description = "Name of the Container Apps job (run it now with: az containerapp job start -n NAME -g RG)."
  value       = try(azurerm_container_app_job.publisher[0].name, null)
}

output "publisher_identity_client_id" {
  description = "Client ID of the publisher's user-assigned identity."
  value       = try(azurerm_user_assigned_identity.publisher[0].client_id, null)
}

output "publisher_environment" {
  description = "Environment the publisher runs with (the TRIVY_MIRROR_* and AZURE_* settings)."
  value       = local.publisher_environment
}
