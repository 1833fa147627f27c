################################################################################
# General
################################################################################

variable "name" {
  description = "Name used for every resource this module creates (function, role, distribution comment, schedule). Lower case letters, digits and hyphens."
  type        = string
  default     = "trivy-mirror"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,38}[a-z0-9]$", var.name))
    error_message = "name must be 3-40 characters of lower case letters, digits and hyphens, starting and ending with a letter or digit."
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

variable "bucket_name" {
  description = "Name of the private S3 bucket that holds the mirror. The bucket is created by this module."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be a valid S3 bucket name (3-63 characters: lower case letters, digits, dots and hyphens)."
  }
}

variable "prefix" {
  description = "Key prefix under which the publisher writes the layout (for example \"mirror\" puts the ping at mirror/v2/index.json). Empty means the bucket root. No leading or trailing slash."
  type        = string
  default     = ""

  validation {
    condition     = var.prefix == "" || can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", var.prefix))
    error_message = "prefix must be empty or path segments of [A-Za-z0-9._-] separated by single slashes, without a leading or trailing slash."
  }
}

variable "vex_prefix" {
  description = "Path under the mirror root where the publisher writes the VEX repository (.well-known/vex-repository.json and main.tar.gz / main.zip). Empty means the root. Must match the publisher's --vex-prefix; it is passed as TRIVY_MIRROR_VEX_PREFIX when not empty."
  type        = string
  default     = ""

  validation {
    condition     = var.vex_prefix == "" || can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", var.vex_prefix))
    error_message = "vex_prefix must be empty or path segments of [A-Za-z0-9._-] separated by single slashes, without a leading or trailing slash."
  }
}

variable "force_destroy" {
  description = "Allow terraform destroy to delete a non-empty bucket. Keep false in production."
  type        = bool
  default     = false
}

variable "versioning" {
  description = "Enable S3 versioning. Overwritten tags and pruned blobs are kept as noncurrent versions for noncurrent_version_retention_days."
  type        = bool
  default     = true
}

variable "noncurrent_version_retention_days" {
  description = "Days after which noncurrent object versions are deleted (only with versioning)."
  type        = number
  default     = 7

  validation {
    condition     = var.noncurrent_version_retention_days >= 1 && var.noncurrent_version_retention_days <= 365
    error_message = "noncurrent_version_retention_days must be between 1 and 365."
  }
}

variable "kms_key_arn" {
  description = "ARN of a customer-managed KMS key for bucket encryption (SSE-KMS with an S3 bucket key). Null uses SSE-S3 (AES256). With a key, its key policy must allow the statements in the kms_key_policy_statements output (CloudFront's service principal for this distribution, and the publisher role)."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be null or a KMS key ARN."
  }
}

variable "access_log_bucket" {
  description = "Optional name of an existing bucket that receives S3 server access logs for the mirror bucket. Null disables S3 access logging."
  type        = string
  default     = null
}

################################################################################
# CDN (CloudFront)
################################################################################

variable "domain_names" {
  description = "Optional custom host names (CNAMEs) for the distribution. The first one becomes the mirror host. Requires acm_certificate_arn."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for d in var.domain_names : can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", d))])
    error_message = "domain_names must be lower case fully qualified host names without scheme, port or path."
  }
}

variable "acm_certificate_arn" {
  description = "ARN of an ACM certificate in us-east-1 covering domain_names. Null uses the *.cloudfront.net certificate."
  type        = string
  default     = null

  validation {
    condition     = var.acm_certificate_arn == null || can(regex("^arn:aws[a-z-]*:acm:us-east-1:", var.acm_certificate_arn))
    error_message = "acm_certificate_arn must be an ACM certificate ARN in us-east-1 (CloudFront only reads certificates from us-east-1)."
  }
}

variable "route53_zone_id" {
  description = "Optional Route 53 hosted zone ID in which A/AAAA alias records are created for every entry of domain_names."
  type        = string
  default     = null
}

variable "price_class" {
  description = "CloudFront price class."
  type        = string
  default     = "PriceClass_100"

  validation {
    condition     = contains(["PriceClass_100", "PriceClass_200", "PriceClass_All"], var.price_class)
    error_message = "price_class must be PriceClass_100, PriceClass_200 or PriceClass_All."
  }
}

variable "web_acl_id" {
  description = "Optional ARN of an AWS WAFv2 web ACL (scope CLOUDFRONT) to attach to the distribution."
  type        = string
  default     = null
}

variable "cloudfront_log_bucket" {
  description = "Optional bucket domain name (for example logs.s3.amazonaws.com) that receives CloudFront standard access logs. Null disables them."
  type        = string
  default     = null
}

variable "tag_cache_ttl_seconds" {
  description = "CloudFront default TTL for mutable objects (tag manifests, tags/list, the /v2/ ping, the VEX manifest and archive, status.json) when the origin sends no Cache-Control. The publisher sends max-age=300."
  type        = number
  default     = 300

  validation {
    condition     = var.tag_cache_ttl_seconds >= 0 && var.tag_cache_ttl_seconds <= 600
    error_message = "tag_cache_ttl_seconds must be between 0 and 600."
  }
}

variable "tag_max_ttl_seconds" {
  description = "CloudFront maximum TTL for mutable objects; caps whatever Cache-Control the origin sends so that a new tag is visible within this many seconds."
  type        = number
  default     = 600

  validation {
    condition     = var.tag_max_ttl_seconds >= 1 && var.tag_max_ttl_seconds <= 600
    error_message = "tag_max_ttl_seconds must be between 1 and 600 (10 minutes)."
  }
}

variable "immutable_min_ttl_seconds" {
  description = "CloudFront minimum TTL for content-addressed objects (blobs and manifests by digest). They never change, so a long minimum is safe."
  type        = number
  default     = 86400

  validation {
    condition     = var.immutable_min_ttl_seconds >= 86400 && var.immutable_min_ttl_seconds <= 31536000
    error_message = "immutable_min_ttl_seconds must be between 86400 (1 day) and 31536000 (1 year)."
  }
}

variable "docker_content_digest_header" {
  description = "Add a Docker-Content-Digest response header (CloudFront viewer-response function) for blobs and manifests requested by digest, for HEAD-based clients (crane, containerd, skopeo). Trivy does not need it."
  type        = bool
  default     = true
}

variable "vex_strip_etag" {
  description = "Drop ETag and Last-Modified from responses for the VEX archive (and the conditional request headers on the way in), so that no 304 is ever returned for it. Trivy <= 0.72 deletes its VEX cache on a 304 (trivy#10958)."
  type        = bool
  default     = true
}

variable "basic_auth_credentials" {
  description = "Optional HTTP Basic credentials for a private mirror, as a map of user name to password. When set, every request without a matching Authorization header is answered 401 with WWW-Authenticate: Basic. Only SHA-256 hashes of the header values are stored in the CloudFront function."
  type        = map(string)
  default     = {}
  sensitive   = true

  validation {
    condition     = alltrue([for u, p in var.basic_auth_credentials : !strcontains(u, ":") && length(u) > 0 && length(p) >= 12])
    error_message = "basic_auth_credentials user names must be non-empty without ':' and passwords at least 12 characters."
  }
}

variable "basic_auth_realm" {
  description = "Realm sent in the WWW-Authenticate challenge."
  type        = string
  default     = "trivy-mirror"

  validation {
    condition     = can(regex("^[A-Za-z0-9 ._-]{1,64}$", var.basic_auth_realm))
    error_message = "basic_auth_realm must be 1-64 characters of letters, digits, space, dot, underscore or hyphen."
  }
}

variable "allowed_cidrs" {
  description = "Optional IP allow-list (IPv4 and IPv6 CIDRs) checked by the viewer-request function. Empty allows every address. Other addresses get 403."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.allowed_cidrs : can(cidrhost(c, 0))])
    error_message = "allowed_cidrs must contain valid CIDR blocks."
  }
}

################################################################################
# Publisher (Lambda + EventBridge Scheduler)
################################################################################

variable "create_publisher" {
  description = "Create the scheduled publisher (Lambda function, IAM role, log group, schedule). Set false to publish from elsewhere, for example CI."
  type        = bool
  default     = true
}

variable "lambda_zip_path" {
  description = "Path to the publisher zip built by `cargo lambda build --release --features lambda --output-format zip` (target/lambda/trivy-mirror/bootstrap.zip)."
  type        = string
  default     = null
}

variable "lambda_architecture" {
  description = "Lambda architecture the zip was built for: x86_64 (cargo lambda default) or arm64 (cargo lambda build --arm64)."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.lambda_architecture)
    error_message = "lambda_architecture must be x86_64 or arm64."
  }
}

variable "lambda_memory_mb" {
  description = "Lambda memory in MB. 512 is enough: blobs are streamed with multipart uploads."
  type        = number
  default     = 512

  validation {
    condition     = var.lambda_memory_mb >= 256 && var.lambda_memory_mb <= 10240
    error_message = "lambda_memory_mb must be between 256 and 10240."
  }
}

variable "lambda_timeout_seconds" {
  description = "Lambda timeout in seconds (the Lambda maximum, 900, leaves room for a 650 MB java-db copy)."
  type        = number
  default     = 900

  validation {
    condition     = var.lambda_timeout_seconds >= 60 && var.lambda_timeout_seconds <= 900
    error_message = "lambda_timeout_seconds must be between 60 and 900."
  }
}

variable "lambda_ephemeral_storage_mb" {
  description = "Size of the Lambda /tmp in MB."
  type        = number
  default     = 512

  validation {
    condition     = var.lambda_ephemeral_storage_mb >= 512 && var.lambda_ephemeral_storage_mb <= 10240
    error_message = "lambda_ephemeral_storage_mb must be between 512 and 10240."
  }
}

variable "lambda_reserved_concurrency" {
  description = "Reserved concurrency of the publisher. 1 guarantees that two runs never overlap (they would race on the tags), but AWS refuses any reservation that leaves fewer than 10 unreserved executions, which fails in new accounts still at the default limit of 10. Null reserves nothing; the schedule's 6-hour interval and the 15-minute timeout keep scheduled runs apart anyway."
  type        = number
  default     = null

  validation {
    condition     = var.lambda_reserved_concurrency == null || try(var.lambda_reserved_concurrency >= 1, false)
    error_message = "lambda_reserved_concurrency must be null or at least 1 (0 would disable the function)."
  }
}

variable "lambda_tracing_mode" {
  description = "X-Ray tracing mode of the function: PassThrough or Active. Active adds xray:PutTraceSegments and xray:PutTelemetryRecords to the publisher role."
  type        = string
  default     = "PassThrough"

  validation {
    condition     = contains(["PassThrough", "Active"], var.lambda_tracing_mode)
    error_message = "lambda_tracing_mode must be PassThrough or Active."
  }
}

variable "schedule_expression" {
  description = "EventBridge Scheduler expression for the publisher. Upstream trivy-db is rebuilt every 6 hours."
  type        = string
  default     = "rate(6 hours)"

  validation {
    condition     = can(regex("^(rate\\(.+\\)|cron\\(.+\\)|at\\(.+\\))$", var.schedule_expression))
    error_message = "schedule_expression must be a rate(...), cron(...) or at(...) expression."
  }
}

variable "schedule_timezone" {
  description = "Time zone of the schedule expression."
  type        = string
  default     = "UTC"
}

variable "log_retention_days" {
  description = "Retention of the publisher's CloudWatch log group in days."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of the values CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, ...)."
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
  description = "Optional upstream source (TRIVY_MIRROR_SOURCE). Null keeps the publisher's default."
  type        = string
  default     = null
}

variable "environment" {
  description = "Extra environment variables for the publisher (for example TRIVY_MIRROR_TAG_CACHE_SECONDS or RUST_LOG). They override the module's own settings."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.environment : can(regex("^[A-Z_][A-Z0-9_]*$", k)) && !startswith(k, "AWS_")])
    error_message = "environment keys must be upper case shell names and must not start with AWS_ (reserved by the Lambda runtime)."
  }
}
