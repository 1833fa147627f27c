################################################################################
# Private GCS bucket: public access prevention enforced, uniform bucket-level
# access; only Cloud CDN (cdn-fill service account) reads, only the publisher writes.
################################################################################

resource "google_storage_bucket" "this" {
  # checkov:skip=CKV_GCP_62:Usage logging is optional (access_log_bucket): the bucket's only reader is Cloud CDN and its content is public upstream data.
  project                     = var.project_id
  name                        = var.bucket_name
  location                    = var.bucket_location
  storage_class               = "STANDARD"
  force_destroy               = var.force_destroy
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  versioning {
    enabled = var.versioning
  }

  # Versioning already keeps overwritten and deleted objects; soft delete would keep them twice.
  soft_delete_policy {
    retention_duration_seconds = var.versioning ? 0 : 604800
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_version_retention_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  # Interrupted uploads of large blobs.
  lifecycle_rule {
    condition {
      age = 1
    }
    action {
      type = "AbortIncompleteMultipartUpload"
    }
  }

  dynamic "encryption" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
    content {
      default_kms_key_name = encryption.value
    }
  }

  dynamic "logging" {
    for_each = var.access_log_bucket == null ? [] : [var.access_log_bucket]
    content {
      log_bucket        = logging.value
      log_object_prefix = "gcs/${var.bucket_name}/"
    }
  }

  labels = local.labels
}

# Cloud CDN private bucket access: the cdn-fill service agent reads objects; no allUsers binding.
# The agent exists only once a signed URL key is on a backend bucket (cdn.tf).
resource "google_storage_bucket_iam_member" "cdn_read" {
  bucket = google_storage_bucket.this.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${local.cdn_fill_service_account}"

  depends_on = [google_compute_backend_bucket_signed_url_key.cdn_fill]
}

# The body of every 404 (default_custom_error_response_policy in cdn.tf).
resource "google_storage_bucket_object" "not_found" {
  bucket        = google_storage_bucket.this.name
  name          = local.not_found_object
  content       = local.not_found_document
  content_type  = "application/json"
  cache_control = "max-age=60"
}
