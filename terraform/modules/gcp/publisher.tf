################################################################################
# Scheduled publisher: Cloud Run job + Cloud Scheduler
################################################################################

locals {
  publisher_environment = merge(
    {
      TRIVY_MIRROR_TO         = local.publisher_to
      TRIVY_MIRROR_BASE_URL   = local.mirror_url
      TRIVY_MIRROR_LOG_FORMAT = "json"
    },
    length(var.only) > 0 ? { TRIVY_MIRROR_ONLY = join(",", var.only) } : {},
    var.source_registry == null ? {} : { TRIVY_MIRROR_SOURCE = var.source_registry },
    var.vex_prefix == "" ? {} : { TRIVY_MIRROR_VEX_PREFIX = var.vex_prefix },
    var.environment,
  )

  log_bucket_id = "${var.name}-publisher"
}

# The job's identity. Credentials come from the metadata server (object_store's GCS default).
resource "google_service_account" "publisher" {
  count = var.create_publisher ? 1 : 0

  project      = var.project_id
  account_id   = "${var.name}-pub"
  display_name = "trivy-mirror publisher (writes gs://${var.bucket_name}/${local.key_prefix})"
}

# Least privilege: object read/write/delete/list on this bucket only (no bucket or IAM administration);
# with a prefix, an IAM condition limits objects to that prefix.
resource "google_storage_bucket_iam_member" "publisher" {
  count = var.create_publisher ? 1 : 0

  bucket = google_storage_bucket.this.name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.publisher[0].email}"

  dynamic "condition" {
    for_each = var.prefix == "" ? [] : [var.prefix]
    content {
      title       = "trivy-mirror-prefix"
      description = "Only objects under ${condition.value}/ (listing is evaluated on the bucket)"
      expression  = "resource.type == \"storage.googleapis.com/Bucket\" || resource.name.startsWith(\"projects/_/buckets/${var.bucket_name}/objects/${condition.value}/\")"
    }
  }
}

resource "google_cloud_run_v2_job" "publisher" {
  count = var.create_publisher ? 1 : 0

  project             = var.project_id
  name                = var.name
  location            = var.region
  deletion_protection = var.deletion_protection
  labels              = local.labels

  template {
    task_count  = 1
    parallelism = 1
    labels      = local.labels

    template {
      service_account = google_service_account.publisher[0].email
      timeout         = "${var.job_timeout_seconds}s"
      max_retries     = 1

      containers {
        name  = "trivy-mirror"
        image = var.image

        resources {
          limits = {
            cpu    = var.job_cpu
            memory = var.job_memory
          }
        }

        dynamic "env" {
          for_each = local.publisher_environment
          content {
            name  = env.key
            value = env.value
          }
        }
      }
    }
  }

  lifecycle {
    precondition {
      condition     = var.image != null
      error_message = "image is required when create_publisher is true."
    }
  }
}

# Cloud Scheduler calls the Cloud Run Admin API (jobs.run) as this account.
resource "google_service_account" "scheduler" {
  count = var.create_publisher ? 1 : 0

  project      = var.project_id
  account_id   = "${var.name}-sch"
  display_name = "trivy-mirror scheduler (runs the ${var.name} job)"
}

resource "google_cloud_run_v2_job_iam_member" "scheduler" {
  count = var.create_publisher ? 1 : 0

  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_job.publisher[0].name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.scheduler[0].email}"
}

resource "google_cloud_scheduler_job" "publisher" {
  count = var.create_publisher ? 1 : 0

  project          = var.project_id
  region           = var.region
  name             = var.name
  description      = "trivy-mirror: run the publisher (${var.schedule})"
  schedule         = var.schedule
  time_zone        = var.schedule_time_zone
  attempt_deadline = "180s"

  retry_config {
    retry_count = 1
  }

  http_target {
    http_method = "POST"
    uri         = "https://run.googleapis.com/v2/projects/${var.project_id}/locations/${var.region}/jobs/${google_cloud_run_v2_job.publisher[0].name}:run"

    oauth_token {
      service_account_email = google_service_account.scheduler[0].email
      scope                 = "https://www.googleapis.com/auth/cloud-platform"
    }
  }

  depends_on = [google_cloud_run_v2_job_iam_member.scheduler]
}

# Log retention: the job's logs are also routed to a bucket of their own with a fixed retention.
resource "google_logging_project_bucket_config" "publisher" {
  count = var.create_publisher ? 1 : 0

  project        = var.project_id
  location       = var.region
  bucket_id      = local.log_bucket_id
  retention_days = var.log_retention_days
  description    = "trivy-mirror publisher logs"
}

resource "google_logging_project_sink" "publisher" {
  count = var.create_publisher ? 1 : 0

  project                = var.project_id
  name                   = "${var.name}-publisher"
  destination            = "logging.googleapis.com/projects/${var.project_id}/locations/${var.region}/buckets/${google_logging_project_bucket_config.publisher[0].bucket_id}"
  filter                 = "resource.type=\"cloud_run_job\" AND resource.labels.job_name=\"${var.name}\""
  unique_writer_identity = true
}
