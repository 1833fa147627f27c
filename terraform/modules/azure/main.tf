locals {
  key_prefix = var.prefix == "" ? "" : "${var.prefix}/"
  vex_path   = var.vex_prefix == "" ? "" : "${var.vex_prefix}/"

  repositories = {
    db      = "aquasecurity/trivy-db"
    java_db = "aquasecurity/trivy-java-db"
    checks  = "aquasecurity/trivy-checks"
  }

  # Front Door's url_path match values carry no leading slash.
  vex_archive_url_paths = ["${local.vex_path}main.tar.gz", "${local.vex_path}main.zip"]

  private_origin = var.private_link_origin && var.front_door_sku_name == "Premium_AzureFrontDoor"

  # Origin path of every object: /<container>/<prefix>/...
  origin_root = "/${var.container_name}/${local.key_prefix}"

  mirror_host  = length(var.domain_names) > 0 ? var.domain_names[0] : azurerm_cdn_frontdoor_endpoint.this.host_name
  mirror_url   = "https://${local.mirror_host}"
  publisher_to = "az://${var.container_name}${var.prefix == "" ? "" : "/${var.prefix}"}"

  # Whether credentials are set is not a secret; the credentials are. Unmarked, the boolean can drive
  # dynamic "custom_rule" (Terraform < 1.10 refuses a sensitive for_each, hashicorp/terraform#34071)
  # and outputs of a root module ("Output refers to sensitive values").
  basic_auth_enabled = nonsensitive(length(var.basic_auth_credentials) > 0)

  tags = merge({ app = "trivy-mirror" }, var.tags)
}
