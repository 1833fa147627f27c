################################################################################
# Scheduled publisher: Container Apps job with a schedule trigger
################################################################################

locals {
  publisher_environment = merge(
    {
      TRIVY_MIRROR_TO            = local.publisher_to
      TRIVY_MIRROR_BASE_URL      = local.mirror_url
      TRIVY_MIRROR_LOG_FORMAT    = "json"
      AZURE_STORAGE_ACCOUNT_NAME = azurerm_storage_account.this.name
    },
    var.create_publisher ? {
      # User-assigned identity: object_store picks it through the Container Apps identity endpoint.
      AZURE_CLIENT_ID         = azurerm_user_assigned_identity.publisher[0].client_id
      AZURE_STORAGE_CLIENT_ID = azurerm_user_assigned_identity.publisher[0].client_id
    } : {},
    length(var.only) > 0 ? { TRIVY_MIRROR_ONLY = join(",", var.only) } : {},
    var.source_registry == null ? {} : { TRIVY_MIRROR_SOURCE = var.source_registry },
    var.vex_prefix == "" ? {} : { TRIVY_MIRROR_VEX_PREFIX = var.vex_prefix },
    var.environment,
  )
}

resource "azurerm_user_assigned_identity" "publisher" {
  count = var.create_publisher ? 1 : 0

  name                = "${var.name}-publisher"
  resource_group_name = var.resource_group_name
  location            = var.location

  tags = local.tags
}

# Least privilege: blob data read/write/delete on this one container (not the account).
resource "azurerm_role_assignment" "publisher" {
  count = var.create_publisher ? 1 : 0

  scope                = "${azurerm_storage_account.this.id}/blobServices/default/containers/${azurerm_storage_container.this.name}"
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = azurerm_user_assigned_identity.publisher[0].principal_id
  principal_type       = "ServicePrincipal"
  description          = "trivy-mirror publisher writes ${var.container_name}/${local.key_prefix}"
}

resource "azurerm_log_analytics_workspace" "publisher" {
  count = var.create_publisher ? 1 : 0

  name                = "${var.name}-logs"
  resource_group_name = var.resource_group_name
  location            = var.location
  sku                 = "PerGB2018"
  retention_in_days   = var.log_retention_days

  tags = local.tags
}

resource "azurerm_container_app_environment" "publisher" {
  count = var.create_publisher ? 1 : 0

  name                       = "${var.name}-env"
  resource_group_name        = var.resource_group_name
  location                   = var.location
  log_analytics_workspace_id = azurerm_log_analytics_workspace.publisher[0].id
  infrastructure_subnet_id   = var.publisher_subnet_id

  dynamic "workload_profile" {
    for_each = var.publisher_subnet_id == null ? [] : [1]
    content {
      name                  = "Consumption"
      workload_profile_type = "Consumption"
    }
  }

  tags = local.tags
}

resource "azurerm_container_app_job" "publisher" {
  count = var.create_publisher ? 1 : 0

  name                         = var.name
  resource_group_name          = var.resource_group_name
  location                     = var.location
  container_app_environment_id = azurerm_container_app_environment.publisher[0].id
  workload_profile_name        = var.publisher_subnet_id == null ? null : "Consumption"

  replica_timeout_in_seconds = var.job_timeout_seconds
  replica_retry_limit        = 1

  schedule_trigger_config {
    cron_expression          = var.schedule
    parallelism              = 1
    replica_completion_count = 1
  }

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.publisher[0].id]
  }

  dynamic "registry" {
    for_each = var.registry_server == null ? [] : [var.registry_server]
    content {
      server   = registry.value
      identity = azurerm_user_assigned_identity.publisher[0].id
    }
  }

  template {
    container {
      name   = "trivy-mirror"
      image  = var.image
      cpu    = var.job_cpu
      memory = var.job_memory

      dynamic "env" {
        for_each = local.publisher_environment
        content {
          name  = env.key
          value = env.value
        }
      }
    }
  }

  tags = local.tags

  depends_on = [azurerm_role_assignment.publisher]

  lifecycle {
    precondition {
      condition     = var.image != null
      error_message = "image is required when create_publisher is true."
    }
  }
}
