################################################################################
# Storage account + container
#
# Front Door sends no credentials to a blob origin, so the container allows anonymous reads of
# blobs (never listing). With Premium + private_link_origin the storage firewall denies the public
# network: only Front Door (Private Link), the publisher's subnet and storage_allowed_ips get in.
# Otherwise (Standard SKU) the blobs are public on the blob endpoint: allow_public_blob_endpoint
# must say so explicitly.
################################################################################

resource "azurerm_storage_account" "this" {
  # checkov:skip=CKV_AZURE_206:Replication is a variable (replication_type); LRS is the default because every object is re-created from upstream by the next run.
  # checkov:skip=CKV2_AZURE_1:Microsoft-managed keys plus infrastructure (double) encryption; the content is public upstream data, a customer-managed key adds a Key Vault and an identity for no gain.
  # checkov:skip=CKV2_AZURE_33:Front Door reaches the account through its own Private Link (private_link_origin); the publisher comes in through a service endpoint, so no separate private endpoint is created.
  # checkov:skip=CKV_AZURE_33:No queues are used; queue logging has nothing to log.
  # checkov:skip=CKV_AZURE_59:Public network access stays enabled so the firewall rules (publisher subnet, allowed IPs) and Front Door Private Link can apply; with private_link_origin the default action is Deny.
  # checkov:skip=CKV_AZURE_35:The default network action is Deny with private_link_origin (Premium); Standard Front Door can only reach a public blob endpoint.
  # checkov:skip=CKV_AZURE_190:Blob-level anonymous read is required: Front Door cannot authenticate to a blob origin. Listing stays off (container access type "blob"), and with private_link_origin the public network is denied.
  # checkov:skip=CKV2_AZURE_47:Same as CKV_AZURE_190: anonymous blob read is how Front Door reads the container.
  # checkov:skip=CKV2_AZURE_40:Shared key access is disabled (shared_access_key_enabled = false); the check misreads the provider default.
  name                     = var.storage_account_name
  resource_group_name      = var.resource_group_name
  location                 = var.location
  account_kind             = "StorageV2"
  account_tier             = "Standard"
  account_replication_type = var.replication_type
  access_tier              = "Hot"

  min_tls_version                   = "TLS1_2"
  https_traffic_only_enabled        = true
  allow_nested_items_to_be_public   = true
  shared_access_key_enabled         = false
  default_to_oauth_authentication   = true
  infrastructure_encryption_enabled = true
  cross_tenant_replication_enabled  = false
  local_user_enabled                = false
  sftp_enabled                      = false
  public_network_access_enabled     = true

  network_rules {
    default_action             = local.private_origin ? "Deny" : "Allow"
    bypass                     = ["AzureServices"]
    ip_rules                   = var.storage_allowed_ips
    virtual_network_subnet_ids = var.publisher_subnet_id == null ? [] : [var.publisher_subnet_id]
  }

  blob_properties {
    delete_retention_policy {
      days = var.soft_delete_retention_days
    }
    container_delete_retention_policy {
      days = var.soft_delete_retention_days
    }
  }

  sas_policy {
    expiration_period = "00.01:00:00"
    expiration_action = "Log"
  }

  tags = local.tags

  lifecycle {
    precondition {
      condition     = !local.private_origin || var.publisher_subnet_id != null || !var.create_publisher
      error_message = "private_link_origin denies the public network on the storage account: set publisher_subnet_id so the publisher can write."
    }
    # Without the Private Link origin (Standard SKU, or private_link_origin = false) the container is
    # readable anonymously on the public blob endpoint, around Front Door, its WAF and its cache.
    precondition {
      condition     = local.private_origin || var.allow_public_blob_endpoint
      error_message = "Without the Private Link origin (front_door_sku_name = \"Premium_AzureFrontDoor\" and private_link_origin = true) every blob of the mirror is anonymously readable at https://<storage_account_name>.blob.core.windows.net/<container_name>/..., bypassing Front Door's caching and the WAF (basic_auth_credentials and allowed_cidrs protect nothing there). Set allow_public_blob_endpoint = true to accept that, or use Premium with private_link_origin."
    }
  }
}

#trivy:ignore:AVD-AZU-0007 Front Door cannot authenticate to a blob origin, so blobs are anonymously readable (no listing); with private_link_origin the storage firewall denies the public network, without it allow_public_blob_endpoint must accept the exposure.
resource "azurerm_storage_container" "this" {
  # checkov:skip=CKV_AZURE_34:Anonymous read of individual blobs (no listing) is how Front Door reads the mirror; see the storage account notes.
  # checkov:skip=CKV2_AZURE_21:Blob read logging needs a diagnostic setting and a destination chosen by the operator; the only reader is Front Door, whose access logs are enabled the same way.
  name                  = var.container_name
  storage_account_id    = azurerm_storage_account.this.id
  container_access_type = "blob"
}

resource "azurerm_storage_management_policy" "this" {
  storage_account_id = azurerm_storage_account.this.id

  rule {
    name    = "expire-old-snapshots-and-versions"
    enabled = true

    filters {
      blob_types   = ["blockBlob"]
      prefix_match = ["${var.container_name}/${local.key_prefix}"]
    }

    actions {
      snapshot {
        delete_after_days_since_creation_greater_than = var.soft_delete_retention_days
      }
      version {
        delete_after_days_since_creation = var.soft_delete_retention_days
      }
    }
  }
}
