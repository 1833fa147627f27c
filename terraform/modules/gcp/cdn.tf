################################################################################
# Global external Application Load Balancer (EXTERNAL_MANAGED) + Cloud CDN
#
# Viewer path              -> object (URL-map rewrite adds the prefix)         backend
#   /v2/ and /v2           -> <prefix>/v2/index.json                          mutable
#   /v2/<repo>/blobs/...   -> <prefix>/v2/<repo>/blobs/...                    immutable
#   /v2/<repo>/manifests/sha256:...                                           immutable
#   /<vex>/main.tar.gz|zip -> same, ETag/Last-Modified removed                mutable
#   everything else        -> <prefix>/<path>                                 mutable
#
# Two backend buckets point at the same GCS bucket and differ only in their cache policy.
################################################################################

resource "google_compute_backend_bucket" "immutable" {
  project     = var.project_id
  name        = "${var.name}-immutable"
  description = "trivy-mirror: blobs and manifests by digest (content-addressed, cached long)"
  bucket_name = google_storage_bucket.this.name
  enable_cdn  = true

  # Never compress: a changed Content-Length breaks Trivy's size check.
  compression_mode     = "DISABLED"
  edge_security_policy = try(google_compute_security_policy.edge[0].id, null)

  cdn_policy {
    cache_mode         = "FORCE_CACHE_ALL"
    default_ttl        = var.immutable_cache_ttl_seconds
    client_ttl         = var.immutable_cache_ttl_seconds
    serve_while_stale  = 86400
    negative_caching   = true
    request_coalescing = true

    # A blob missing a moment ago may be published now: cache 404s only briefly.
    negative_caching_policy {
      code = 404
      ttl  = 10
    }
  }
}

resource "google_compute_backend_bucket" "mutable" {
  project     = var.project_id
  name        = "${var.name}-mutable"
  description = "trivy-mirror: tags, tags/list, the /v2/ ping, VEX files, status.json (short TTL)"
  bucket_name = google_storage_bucket.this.name
  enable_cdn  = true

  compression_mode     = "DISABLED"
  edge_security_policy = try(google_compute_security_policy.edge[0].id, null)

  cdn_policy {
    # Honour the stored Cache-Control (max-age=300), but never cache longer than tag_max_ttl_seconds.
    # With CACHE_ALL_STATIC the API rejects a default or client TTL above max_ttl (precondition below).
    cache_mode         = "CACHE_ALL_STATIC"
    default_ttl        = var.tag_cache_ttl_seconds
    client_ttl         = var.tag_cache_ttl_seconds
    max_ttl            = var.tag_max_ttl_seconds
    serve_while_stale  = 0
    negative_caching   = true
    request_coalescing = true

    negative_caching_policy {
      code = 404
      ttl  = 10
    }
  }

  lifecycle {
    precondition {
      condition     = var.tag_cache_ttl_seconds <= var.tag_max_ttl_seconds
      error_message = "tag_cache_ttl_seconds (the default and client TTL) must not exceed tag_max_ttl_seconds: Cloud CDN rejects a default_ttl or client_ttl above max_ttl with CACHE_ALL_STATIC."
    }
  }
}

# Adding a signed URL key to a backend bucket is what makes Google create the project's Cloud CDN fill
# service agent (service-<number>@cloud-cdn-fill.iam.gserviceaccount.com), which the bucket binding in
# storage.tf names; without it the first apply on a new project fails. The key is never used to sign:
# Cloud CDN does not block requests that carry no Signature parameter.
resource "random_id" "cdn_fill_key" {
  count = var.cdn_fill_service_account == null ? 1 : 0

  byte_length = 16
}

resource "google_compute_backend_bucket_signed_url_key" "cdn_fill" {
  count = var.cdn_fill_service_account == null ? 1 : 0

  project        = var.project_id
  name           = "${var.name}-cdn-fill"
  backend_bucket = google_compute_backend_bucket.mutable.name
  key_value      = random_id.cdn_fill_key[0].b64_url
}

resource "google_compute_url_map" "this" {
  project         = var.project_id
  name            = var.name
  description     = "trivy-mirror: registry routes over ${var.bucket_name}"
  default_service = google_compute_backend_bucket.mutable.id

  # A missing object answers 404 with the registry JSON error document instead of Cloud Storage's XML.
  default_custom_error_response_policy {
    error_service = google_compute_backend_bucket.mutable.id

    error_response_rule {
      match_response_codes   = ["404"]
      path                   = "/${local.not_found_object}"
      override_response_code = 404
    }
  }

  host_rule {
    hosts        = ["*"]
    path_matcher = "mirror"
  }

  path_matcher {
    name            = "mirror"
    default_service = google_compute_backend_bucket.mutable.id

    # Registry ping: object stores cannot hold a key ending in '/'.
    route_rules {
      priority = 1
      service  = google_compute_backend_bucket.mutable.id

      match_rules {
        full_path_match = "/v2/"
      }
      match_rules {
        full_path_match = "/v2"
      }

      route_action {
        url_rewrite {
          path_prefix_rewrite = "/${local.key_prefix}v2/index.json"
        }
      }
    }

    # VEX archives: no ETag/Last-Modified, no conditional requests (Trivy <= 0.72 wipes its cache on 304).
    dynamic "route_rules" {
      for_each = var.vex_strip_etag ? local.vex_archive_paths : []
      content {
        priority = 2 + route_rules.key
        service  = google_compute_backend_bucket.mutable.id

        match_rules {
          full_path_match = route_rules.value
        }

        header_action {
          request_headers_to_remove  = ["If-None-Match", "If-Modified-Since"]
          response_headers_to_remove = ["ETag", "Last-Modified"]
        }

        route_action {
          url_rewrite {
            path_prefix_rewrite = "/${local.key_prefix}${trimprefix(route_rules.value, "/")}"
          }
        }
      }
    }

    # Content-addressed objects: blobs and manifests by digest.
    dynamic "route_rules" {
      for_each = local.immutable_path_prefixes
      content {
        priority = 10 + route_rules.key
        service  = google_compute_backend_bucket.immutable.id

        match_rules {
          prefix_match = route_rules.value
        }

        route_action {
          url_rewrite {
            path_prefix_rewrite = "/${local.key_prefix}${trimprefix(route_rules.value, "/")}"
          }
        }
      }
    }

    # Everything else: tags, tags/list, .well-known/vex-repository.json, status.json.
    route_rules {
      priority = 1000
      service  = google_compute_backend_bucket.mutable.id

      match_rules {
        prefix_match = "/"
      }

      route_action {
        url_rewrite {
          path_prefix_rewrite = "/${local.key_prefix}"
        }
      }
    }
  }
}

resource "google_compute_managed_ssl_certificate" "this" {
  count = length(var.ssl_certificate_ids) == 0 ? 1 : 0

  project = var.project_id
  # The name follows the domains: a new certificate is created (and attached to the proxy) before the
  # old one, still in use by the proxy, is deleted.
  name = "${var.name}-cert-${substr(sha256(join(",", var.domain_names)), 0, 8)}"

  managed {
    domains = var.domain_names
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "google_compute_ssl_policy" "this" {
  project         = var.project_id
  name            = "${var.name}-tls"
  profile         = var.ssl_policy_profile
  min_tls_version = "TLS_1_2"
}

resource "google_compute_target_https_proxy" "this" {
  project          = var.project_id
  name             = "${var.name}-https"
  url_map          = google_compute_url_map.this.id
  ssl_certificates = length(var.ssl_certificate_ids) == 0 ? [google_compute_managed_ssl_certificate.this[0].id] : var.ssl_certificate_ids
  ssl_policy       = google_compute_ssl_policy.this.id
}

resource "google_compute_global_address" "this" {
  project     = var.project_id
  name        = "${var.name}-ip"
  description = "trivy-mirror: address of ${local.mirror_host}"
}

# HTTPS only: no port-80 listener at all.
resource "google_compute_global_forwarding_rule" "https" {
  project               = var.project_id
  name                  = "${var.name}-https"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  ip_protocol           = "TCP"
  port_range            = "443"
  ip_address            = google_compute_global_address.this.id
  target                = google_compute_target_https_proxy.this.id
  labels                = local.labels
}

resource "google_dns_record_set" "this" {
  for_each = var.dns_managed_zone == null ? toset([]) : toset(var.domain_names)

  project      = var.project_id
  managed_zone = var.dns_managed_zone
  name         = "${each.value}."
  type         = "A"
  ttl          = 300
  rrdatas      = [google_compute_global_address.this.address]
}

# Optional IP allow-list. Backend buckets only accept edge security policies (IP and geo matches).
resource "google_compute_security_policy" "edge" {
  # checkov:skip=CKV_GCP_73:An edge security policy (the only kind a backend bucket accepts) cannot evaluate preconfigured WAF expressions; the origin is static objects in a bucket, so there is no Log4j to exploit.
  count = length(var.allowed_cidrs) > 0 ? 1 : 0

  project     = var.project_id
  name        = "${var.name}-edge"
  description = "trivy-mirror: IP allow-list"
  type        = "CLOUD_ARMOR_EDGE"

  dynamic "rule" {
    # At most 10 ranges per rule.
    for_each = chunklist(var.allowed_cidrs, 10)
    content {
      action      = "allow"
      priority    = 1000 + rule.key
      description = "allowed ranges ${rule.key}"

      match {
        versioned_expr = "SRC_IPS_V1"
        config {
          src_ip_ranges = rule.value
        }
      }
    }
  }

  rule {
    action      = "deny(403)"
    priority    = 2147483647
    description = "default deny"

    match {
      versioned_expr = "SRC_IPS_V1"
      config {
        src_ip_ranges = ["*"]
      }
    }
  }
}
