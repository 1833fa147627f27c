################################################################################
# General
################################################################################

variable "project_id" {
  description = "Google Cloud project ID that holds every resource."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a valid project ID."
  }
}

variable "region" {
  description = "Region of the Cloud Run job, the Cloud Scheduler job and the log bucket."
  type        = string
  default     = "europe-west1"
}

variable "name" {
  description = "Name used for the resources this module creates (load balancer parts, job, service accounts). Lower case letters, digits and hyphens."
  type        = string
  default     = "trivy-mirror"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,20}[a-z0-9]$", var.name))
    error_message = "name must be 4-22 characters of lower case letters, digits and hyphens, starting with a letter (service account IDs derive from it)."
  }
}

variable "labels" {
  description = "Labels added to every resource that supports them."
  type        = map(string)
  default     = {}
}

################################################################################
# Storage
################################################################################

variable "bucket_name" {
  description = "Name of the private GCS bucket that holds the mirror. The bucket is created by this module."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be a valid GCS bucket name."
  }
}

variable "bucket_location" {
  description = "Location of the bucket (a region, dual-region or multi-region)."
  type        = string
  default     = "EU"
}

variable "prefix" {
  description = "Object prefix under which the publisher writes the layout. Empty means the bucket root. No leading or trailing slash."
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

variable "force_destroy" {
  description = "Allow terraform destroy to delete a non-empty bucket."
  type        = bool
  default     = false
}

variable "versioning" {
  description = "Enable object versioning; noncurrent versions are deleted after noncurrent_version_retention_days. With versioning the bucket's soft delete is turned off (it would keep the same bytes a second time)."
  type        = bool
  default     = true
}

variable "noncurrent_version_retention_days" {
  description = "Days after which noncurrent versions are deleted (with versioning)."
  type        = number
  default     = 7

  validation {
    condition     = var.noncurrent_version_retention_days >= 1 && var.noncurrent_version_retention_days <= 365
    error_message = "noncurrent_version_retention_days must be between 1 and 365."
  }
}

variable "kms_key_name" {
  description = "Optional Cloud KMS key for the bucket's default encryption (CMEK). The Cloud Storage service agent needs roles/cloudkms.cryptoKeyEncrypterDecrypter on it. Null uses Google-managed encryption."
  type        = string
  default     = null
}

variable "access_log_bucket" {
  description = "Optional bucket that receives Cloud Storage usage logs for the mirror bucket."
  type        = string
  default     = null
}

variable "cdn_fill_service_account" {
  description = "Identity that Cloud CDN and the load balancer use to read the private bucket (Cloud CDN private bucket access). Null means service-<project number>@cloud-cdn-fill.iam.gserviceaccount.com, and the module adds an (unused) signed URL key to the mutable backend bucket so that Google creates that service agent before the bucket binding names it. Set it when the agent already exists to skip the key."
  type        = string
  default     = null
}

################################################################################
# CDN (external Application Load Balancer + Cloud CDN)
################################################################################

variable "domain_names" {
  description = "Host names of the mirror. The first one is the mirror host. A Google-managed certificate is created for them unless ssl_certificate_ids is set; their DNS must point at the ip_address output."
  type        = list(string)

  validation {
    condition     = length(var.domain_names) > 0 && alltrue([for d in var.domain_names : can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", d))])
    error_message = "domain_names must hold at least one lower case fully qualified host name (an HTTPS load balancer needs a certificate, and a managed certificate needs a domain)."
  }
}

variable "ssl_certificate_ids" {
  description = "Optional IDs of existing SSL certificates for the HTTPS proxy. Empty creates a Google-managed certificate for domain_names."
  type        = list(string)
  default     = []
}

variable "dns_managed_zone" {
  description = "Optional Cloud DNS managed zone name in project_id in which A records for domain_names are created."
  type        = string
  default     = null
}

variable "tag_cache_ttl_seconds" {
  description = "Cloud CDN default and client TTL for mutable objects when the origin sends no Cache-Control. The publisher sends max-age=300."
  type        = number
  default     = 300

  validation {
    condition     = var.tag_cache_ttl_seconds >= 0 && var.tag_cache_ttl_seconds <= 600
    error_message = "tag_cache_ttl_seconds must be between 0 and 600."
  }
}

variable "tag_max_ttl_seconds" {
  description = "Cloud CDN maximum TTL for mutable objects (tags, tags/list, the ping, VEX files, status.json)."
  type        = number
  default     = 600

  validation {
    condition     = var.tag_max_ttl_seconds >= 1 && var.tag_max_ttl_seconds <= 600
    error_message = "tag_max_ttl_seconds must be between 1 and 600 (10 minutes)."
  }
}

variable "immutable_cache_ttl_seconds" {
  description = "Cloud CDN TTL for content-addressed objects (blobs, manifests by digest); FORCE_CACHE_ALL is safe for them."
  type        = number
  default     = 31536000

  validation {
    condition     = var.immutable_cache_ttl_seconds >= 86400 && var.immutable_cache_ttl_seconds <= 31536000
    error_message = "immutable_cache_ttl_seconds must be between 86400 (1 day) and 31536000 (1 year)."
  }
}

variable "vex_strip_etag" {
  description = "Remove ETag/Last-Modified from the VEX archive responses (and If-None-Match/If-Modified-Since from its requests) with URL-map header actions, so Trivy <= 0.72 never sees a 304 (trivy#10958)."
  type        = bool
  default     = true
}

variable "allowed_cidrs" {
  description = "Optional IP allow-list enforced by a Cloud Armor edge security policy on the backend buckets. Empty allows everyone. Others get 403."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.allowed_cidrs : can(cidrhost(c, 0))])
    error_message = "allowed_cidrs must contain valid CIDR blocks."
  }
}

variable "ssl_policy_profile" {
  description = "Profile of the SSL policy (minimum TLS 1.2 in every case)."
  type        = string
  default     = "MODERN"

  validation {
    condition     = contains(["MODERN", "RESTRICTED"], var.ssl_policy_profile)
    error_message = "ssl_policy_profile must be MODERN or RESTRICTED."
  }
}

################################################################################
# Publisher (Cloud Run job + Cloud Scheduler)
################################################################################

variable "create_publisher" {
  description = "Create the scheduled publisher (Cloud Run job, Cloud Scheduler job, service accounts)."
  type        = bool
  default     = true
}

variable "image" {
  description = "Container image of trivy-mirror for the Cloud Run job (Artifact Registry or another registry Cloud Run can pull)."
  type        = string
  default     = null
}

variable "schedule" {
  description = "Cron schedule of the publisher (Cloud Scheduler syntax). Default: every 6 hours."
  type        = string
  default     = "0 */6 * * *"
}

variable "schedule_time_zone" {
  description = "Time zone of the schedule."
  type        = string
  default     = "Etc/UTC"
}

variable "job_timeout_seconds" {
  description = "Timeout of one Cloud Run job execution in seconds."
  type        = number
  default     = 3600

  validation {
    condition     = var.job_timeout_seconds >= 60 && var.job_timeout_seconds <= 86400
    error_message = "job_timeout_seconds must be between 60 and 86400."
  }
}

variable "job_memory" {
  description = "Memory limit of the Cloud Run job container."
  type        = string
  default     = "1Gi"
}

variable "job_cpu" {
  description = "CPU limit of the Cloud Run job container."
  type        = string
  default     = "1"
}

variable "deletion_protection" {
  description = "Deletion protection of the Cloud Run job."
  type        = bool
  default     = true
}

variable "log_retention_days" {
  description = "Retention in days of the log bucket that receives the publisher's logs."
  type        = number
  default     = 30

  validation {
    condition     = var.log_retention_days >= 1 && var.log_retention_days <= 3650
    error_message = "log_retention_days must be between 1 and 3650."
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
