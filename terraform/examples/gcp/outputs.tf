output "ip_address" {
  description = "Point the domain's A record here."
  value       = module.trivy_mirror.ip_address
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
