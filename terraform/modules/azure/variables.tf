################################################################################
# General
################################################################################

variable "resource_group_name" {
  description = "Existing resource group that receives every resource."
  type        = string
}

variable "location" {
  description = "Azure region of the storage account, the Container Apps environment and the job."
  type        = string
}

variable "name" {
  description = "Name used for the resources this module creates (Front Door profile, job, identity). Lower case letters, digits and hyphens."
  type        = string
  default     = "trivy-mirror"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,22}[a-z0-9]$", var.name))
    error_message = "name must be 3-24 characters of lower case letters, digits and hyphens, starting with a letter."
  }
}

variable "tags" {
  description = "Tags added to every taggable resource."
  type        = map(string)
  default     = {}
}

################################################################################
# Storage
################################################################################

variable "storage_account_name" {
  description = "Name of the storage account created for the mirror (globally unique, 3-24 lower case letters and digits)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]{3,24}$", var.storage_account_name))
    error_message = "storage_account_name must be 3-24 lower case letters and digits."
  }
}

variable "container_name" {
  description = "Blob container that holds the mirror."
  type        = string
  default     = "trivy-mirror"

  validation {
    condition     = can(regex("^[a-z0-9](?:[a-z0-9]|-[a-z0-9]){2,62}$", var.container_name))
    error_message = "container_name must be a valid blob container name."
  }
}

variable "prefix" {
  description = "Blob name prefix under which the publisher writes the layout. Empty means the container root. No leading or trailing slash."
  type        = string
  default     = ""

  validation {
    condition     = var.prefix == "" || can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", var.prefix))
    error_message = "prefix must be empty or path segments of [A-Za-z0-9._-] separated by single slashes, without a leading or trailing slash."
  }
}

variable "vex_prefix" {
  description = "Path under the mirror root where the publisher writes the VEX repository. Empty means the root. Passed as TRIVY_MIRROR_VEX_PREFIX when not empty."
  type        = string
  default     = ""

  validation {
    condition     = var.vex_prefix == "" || can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", var.vex_prefix))
    error_message = "vex_prefix must be empty or path segments of [A-Za-z0-9._-] separated by single slashes, without a leading or trailing slash."
  }
}

variable "replication_type" {
  description = "Replication of the storage account. LRS is enough: the content is re-created from upstream by the next run."
  type        = string
  default     = "LRS"

  validation {
    condition     = contains(["LRS", "ZRS", "GRS", "RAGRS", "GZRS", "RAGZRS"], var.replication_type)
    error_message = "replication_type must be one of LRS, ZRS, GRS, RAGRS, GZRS, RAGZRS."
  }
}

variable "soft_delete_retention_days" {
  description = "Blob and container soft-delete retention in days."
  type        = number
  default     = 7

  validation {
    condition     = var.soft_delete_retention_days >= 1 && var.soft_delete_retention_days <= 365
    error_message = "soft_delete_retention_days must be between 1 and 365."
  }
}

variable "storage_allowed_ips" {
  description = "Public IPv4 addresses (203.0.113.7) or ranges (203.0.113.0/24, /30 at most) allowed through the storage firewall when the private-link origin is used, for example the machine running Terraform. A single address is written without a prefix length: Azure refuses /31 and /32."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for ip in var.storage_allowed_ips : can(cidrhost(strcontains(ip, "/") ? ip : "${ip}/32", 0)) && !strcontains(ip, ":") && !endswith(ip, "/31") && !endswith(ip, "/32")])
    error_message = "storage_allowed_ips takes IPv4 addresses (203.0.113.7) or CIDR ranges up to /30; write a single address without /32 (Azure storage rejects /31 and /32)."
  }
}

variable "allow_public_blob_endpoint" {
  description = "Acknowledge that without the Private Link origin (Standard_AzureFrontDoor, or private_link_origin = false) every blob is anonymously readable on the storage account's public blob endpoint, bypassing Front Door, its cache and its WAF (Basic auth, IP allow-list). Required to be true in that case; ignored with Premium + private_link_origin."
  type        = bool
  default     = false
}

################################################################################
# CDN (Azure Front Door Standard/Premium)
################################################################################

variable "front_door_sku_name" {
  description = "Front Door tier. Premium_AzureFrontDoor allows the Private Link origin (storage reachable only through Front Door and the publisher's subnet); Standard_AzureFrontDoor costs less but leaves the container readable anonymously on the public blob endpoint."
  type        = string
  default     = "Premium_AzureFrontDoor"

  validation {
    condition     = contains(["Standard_AzureFrontDoor", "Premium_AzureFrontDoor"], var.front_door_sku_name)
    error_message = "front_door_sku_name must be Standard_AzureFrontDoor or Premium_AzureFrontDoor."
  }
}

variable "private_link_origin" {
  description = "Reach the storage account through Private Link (Premium only) and deny public network access to it, except for publisher_subnet_id and storage_allowed_ips. The private endpoint connection must be approved once on the storage account after apply."
  type        = bool
  default     = true
}

variable "domain_names" {
  description = "Optional custom host names with Front Door managed certificates. The first one becomes the mirror host. Validation records must be created (automatically when dns_zone_id is set)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for d in var.domain_names : can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", d))])
    error_message = "domain_names must be lower case fully qualified host names."
  }
}

variable "dns_zone_id" {
  description = "Optional Azure DNS zone ID holding domain_names; used for managed certificate validation."
  type        = string
  default     = null
}

variable "tag_cache_ttl" {
  description = "Front Door cache duration (d.HH:MM:SS) for mutable objects: tags, tags/list, the /v2/ ping, VEX files, status.json. At most 10 minutes. Front Door has a single cache duration per rule (no default/max pair), so no TTL ordering applies."
  type        = string
  default     = "00:05:00"

  validation {
    condition     = can(regex("^00:0[0-9]:[0-5][0-9]$", var.tag_cache_ttl)) || var.tag_cache_ttl == "00:10:00"
    error_message = "tag_cache_ttl must be HH:MM:SS with at most 00:10:00."
  }
}

variable "immutable_cache_ttl" {
  description = "Front Door cache duration (d.HH:MM:SS) for content-addressed objects (blobs and manifests by digest). At least one day."
  type        = string
  default     = "365.00:00:00"

  validation {
    condition     = can(regex("^([1-9][0-9]{0,2})\\.([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]$", var.immutable_cache_ttl)) && try(tonumber(split(".", var.immutable_cache_ttl)[0]) <= 365, false)
    error_message = "immutable_cache_ttl must be d.HH:MM:SS between 1 day and 365 days (Front Door's maximum cache duration is 365.23:59:59)."
  }
}

variable "docker_content_digest_header" {
  description = "Add Docker-Content-Digest (from the last path segment) to blobs and manifests requested by digest, for HEAD-based clients. Trivy does not need it."
  type        = bool
  default     = true
}

variable "vex_strip_etag" {
  description = "Remove ETag/Last-Modified from VEX archive responses and the conditional headers from their requests, so Trivy <= 0.72 never sees a 304 (trivy#10958)."
  type        = bool
  default     = true
}

variable "basic_auth_credentials" {
  description = "Optional credentials (user name => password) for a private mirror, checked by a WAF custom rule on the Authorization header. The /v2/ ping stays open (Trivy then sends its configured credentials pre-emptively); every other request without a matching header gets 403, since Front Door WAF cannot answer 401. The rule set then deletes the Authorization header, which Azure Storage would refuse. The values are stored in the WAF policy."
  type        = map(string)
  default     = {}
  sensitive   = true

  validation {
    condition     = length(var.basic_auth_credentials) <= 10 && alltrue([for u, p in var.basic_auth_credentials : !strcontains(u, ":") && length(u) > 0 && length(p) >= 12])
    error_message = "basic_auth_credentials holds at most 10 entries; user names must be non-empty without ':' and passwords at least 12 characters."
  }
}

variable "allowed_cidrs" {
  description = "Optional client IP allow-list enforced by a WAF custom rule on the address of the TCP connection (SocketAddr, not the spoofable X-Forwarded-For). Empty allows everyone. Others get 403."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.allowed_cidrs : can(cidrhost(c, 0))])
    error_message = "allowed_cidrs must contain valid CIDR blocks."
  }
}

variable "waf_managed_rules" {
  description = "Attach the Microsoft default managed rule set (Premium only)."
  type        = bool
  default     = false
}

################################################################################
# Publisher (Container Apps job with a schedule trigger)
################################################################################

variable "create_publisher" {
  description = "Create the scheduled publisher (Container Apps environment and job, identity, log workspace)."
  type        = bool
  default     = true
}

variable "image" {
  description = "Container image of trivy-mirror for the job."
  type        = string
  default     = null
}

variable "registry_server" {
  description = "Optional private registry (for example myacr.azurecr.io) from which the job pulls image with its managed identity (needs AcrPull on it)."
  type        = string
  default     = null
}

variable "publisher_subnet_id" {
  description = "Subnet for the Container Apps environment (delegated to Microsoft.App/environments, /27 or larger, with the Microsoft.Storage service endpoint). Required with private_link_origin, so the job can pass the storage firewall."
  type        = string
  default     = null
}

variable "schedule" {
  description = "Cron expression of the job's schedule trigger (UTC). Default: every 6 hours."
  type        = string
  default     = "0 */6 * * *"
}

variable "job_timeout_seconds" {
  description = "Timeout of one job execution in seconds."
  type        = number
  default     = 3600

  validation {
    condition     = var.job_timeout_seconds >= 60 && var.job_timeout_seconds <= 86400
    error_message = "job_timeout_seconds must be between 60 and 86400."
  }
}

variable "job_cpu" {
  description = "CPU cores of the job container."
  type        = number
  default     = 1
}

variable "job_memory" {
  description = "Memory of the job container (must match job_cpu per Container Apps rules: 2Gi per core)."
  type        = string
  default     = "2Gi"
}

variable "log_retention_days" {
  description = "Retention of the Log Analytics workspace that receives the job's logs."
  type        = number
  default     = 30

  validation {
    condition     = var.log_retention_days >= 30 && var.log_retention_days <= 730
    error_message = "log_retention_days must be between 30 and 730."
  }
}

variable "only" {
  description = "Artifacts to publish (TRIVY_MIRROR_ONLY). Empty publishes everything."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for o in var.only : contains(["db", "java-db", "checks", "vex"], o)])
    error_message = "only may contain db, java-db, checks and vex."
  }
}

variable "source_registry" {
  description = "Optional upstream source (TRIVY_MIRROR_SOURCE)."
  type        = string
  default     = null
}

variable "environment" {
  description = "Extra environment variables for the publisher; they override the module's own settings."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.environment : can(regex("^[A-Z_][A-Z0-9_]*$", k))])
    error_message = "environment keys must be upper case shell names."
  }
}
