output "mirror_host" {
  description = "Host name of the mirror."
  value       = module.trivy_mirror.mirror_host
}

output "trivy_flags" {
  description = "Flags to pass to trivy."
  value       = module.trivy_mirror.trivy_flags
}

output "trivy_yaml_registry_mirrors" {
  description = "trivy.yaml snippet with registry.mirrors."
  value       = module.trivy_mirror.trivy_yaml_registry_mirrors
}

output "vex_repository_yaml" {
  description = "VEX repository.yaml entry."
  value       = module.trivy_mirror.vex_repository_yaml
}

output "storage_account_id" {
  description = "Approve the Front Door private endpoint connection on this account."
  value       = module.trivy_mirror.storage_account_id
}
