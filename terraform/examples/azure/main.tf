# A mirror behind Azure Front Door Premium with a Private Link origin, published every 6 hours
# by a Container Apps job that reaches the storage account through a service endpoint.
#
#   terraform init && terraform apply -var storage_account_name=mytrivymirror \
#     -var image=myacr.azurecr.io/trivy-mirror:latest
# Then approve the pending private endpoint connection on the storage account once:
#   az storage account show -n mytrivymirror --query "privateEndpointConnections[].id"
#   az network private-endpoint-connection approve --id <id>

provider "azurerm" {
  features {
    # The storage firewall denies the public network (Premium + private_link_origin), and the machine
    # running Terraform is usually outside it: azurerm 4.x would still call the blob data plane while
    # reading the account and fail with 403 AuthorizationFailure (terraform-provider-azurerm#33454).
    # The module manages everything through Azure Resource Manager, so the data plane is never needed.
    # (azurerm >= 4.9.) Alternatively, add the runner's address to storage_allowed_ips.
    storage {
      data_plane_available = false
    }
  }
  # The storage account disables shared keys: should anything reach the data plane, use Entra ID.
  storage_use_azuread = true
}

resource "azurerm_resource_group" "this" {
  name     = "trivy-mirror"
  location = var.location
}

resource "azurerm_virtual_network" "this" {
  name                = "trivy-mirror"
  resource_group_name = azurerm_resource_group.this.name
  location            = azurerm_resource_group.this.location
  address_space       = ["10.42.0.0/24"]
}

# Container Apps (workload profiles) environment subnet with the storage service endpoint.
resource "azurerm_subnet" "publisher" {
  # checkov:skip=CKV2_AZURE_31:The Container Apps environment manages its own network security; an NSG is optional for a delegated Microsoft.App/environments subnet.
  name                 = "publisher"
  resource_group_name  = azurerm_resource_group.this.name
  virtual_network_name = azurerm_virtual_network.this.name
  address_prefixes     = ["10.42.0.0/27"]
  service_endpoints    = ["Microsoft.Storage"]

  delegation {
    name = "container-apps"
    service_delegation {
      name    = "Microsoft.App/environments"
      actions = ["Microsoft.Network/virtualNetworks/subnets/join/action"]
    }
  }
}

module "trivy_mirror" {
  source = "../../modules/azure"

  resource_group_name  = azurerm_resource_group.this.name
  location             = azurerm_resource_group.this.location
  storage_account_name = var.storage_account_name
  image                = var.image
  publisher_subnet_id  = azurerm_subnet.publisher.id

  # Only if something must reach the blob data plane from outside (not needed with the provider
  # setting above): plain public IPv4 addresses, or ranges up to /30 (Azure refuses /31 and /32).
  # storage_allowed_ips = ["203.0.113.7"]

  # Optional: custom domain, private mirror.
  # domain_names           = ["trivy.example.com"]
  # basic_auth_credentials = { ci = var.mirror_password }
  # allowed_cidrs          = ["203.0.113.0/24"]

  tags = {
    owner = "platform"
  }
}
