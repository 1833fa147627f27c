################################################################################
# Azure Front Door Standard/Premium in front of the container
#
# Viewer path              -> blob (rule set rewrites)                     cache
#   /v2/ and /v2           -> /<container>/<prefix>/v2/index.json          tag TTL     (rule Ping, stops)
#   .../blobs/sha256:...   -> /<container>/<prefix>/...                    immutable   (rule Immutable)
#   .../manifests/sha256:..-> /<container>/<prefix>/...                    immutable   (rule Immutable)
#   /<vex>/main.tar.gz|zip -> same, no ETag/Last-Modified                   tag TTL     (rule VexArchive)
#   everything else        -> /<container>/<prefix>/<path>                 tag TTL     (rules Mutable, Prefix)
################################################################################

resource "azurerm_cdn_frontdoor_profile" "this" {
  name                     = var.name
  resource_group_name      = var.resource_group_name
  sku_name                 = var.front_door_sku_name
  response_timeout_seconds = 120

  tags = local.tags
}

resource "azurerm_cdn_frontdoor_endpoint" "this" {
  name                     = var.name
  cdn_frontdoor_profile_id = azurerm_cdn_frontdoor_profile.this.id
  enabled                  = true

  tags = local.tags
}

resource "azurerm_cdn_frontdoor_origin_group" "this" {
  name                     = "${var.name}-storage"
  cdn_frontdoor_profile_id = azurerm_cdn_frontdoor_profile.this.id
  session_affinity_enabled = false

  # A single origin: no health probe (it would only add requests against the bucket).
  load_balancing {
    sample_size                 = 4
    successful_samples_required = 3
  }
}

resource "azurerm_cdn_frontdoor_origin" "this" {
  name                           = "${var.name}-blob"
  cdn_frontdoor_origin_group_id  = azurerm_cdn_frontdoor_origin_group.this.id
  enabled                        = true
  host_name                      = azurerm_storage_account.this.primary_blob_host
  origin_host_header             = azurerm_storage_account.this.primary_blob_host
  http_port                      = 80
  https_port                     = 443
  certificate_name_check_enabled = true
  priority                       = 1
  weight                         = 1000

  dynamic "private_link" {
    for_each = local.private_origin ? [1] : []
    content {
      request_message        = "trivy-mirror Front Door origin"
      target_type            = "blob"
      location               = var.location
      private_link_target_id = azurerm_storage_account.this.id
    }
  }
}

resource "azurerm_cdn_frontdoor_rule_set" "this" {
  name                     = "trivymirror"
  cdn_frontdoor_profile_id = azurerm_cdn_frontdoor_profile.this.id
}

# 1. Registry ping: object stores cannot hold a key ending in '/'.
resource "azurerm_cdn_frontdoor_rule" "ping" {
  name                      = "Ping"
  cdn_frontdoor_rule_set_id = azurerm_cdn_frontdoor_rule_set.this.id
  order                     = 1
  behavior_on_match         = "Stop"

  conditions {
    url_path_condition {
      operator     = "Equal"
      match_values = ["v2", "v2/"]
    }
  }

  actions {
    url_rewrite_action {
      source_pattern          = "/"
      destination             = "${local.origin_root}v2/index.json"
      preserve_unmatched_path = false
    }

    # Rules run after the WAF has checked the credentials. Azure Storage answers any Authorization
    # header it cannot use (Trivy's Basic credentials) with 401 AuthenticationFailed, even on a blob
    # that is anonymously readable: the origin must never see it. Ping stops rule processing, so it
    # deletes the header itself; rule Prefix does it for every other request.
    request_header_action {
      header_action = "Delete"
      header_name   = "Authorization"
    }

    route_configuration_override_action {
      cache_behavior                = "OverrideAlways"
      cache_duration                = var.tag_cache_ttl
      compression_enabled           = false
      query_string_caching_behavior = "IgnoreQueryString"
    }
  }

  depends_on = [azurerm_cdn_frontdoor_origin.this]
}

# 2. Content-addressed objects: cached long, never compressed, optional Docker-Content-Digest.
resource "azurerm_cdn_frontdoor_rule" "immutable" {
  name                      = "Immutable"
  cdn_frontdoor_rule_set_id = azurerm_cdn_frontdoor_rule_set.this.id
  order                     = 2
  behavior_on_match         = "Continue"

  conditions {
    url_path_condition {
      operator     = "Contains"
      match_values = ["/blobs/sha256:", "/manifests/sha256:"]
    }
  }

  actions {
    route_configuration_override_action {
      cache_behavior                = "OverrideAlways"
      cache_duration                = var.immutable_cache_ttl
      compression_enabled           = false
      query_string_caching_behavior = "IgnoreQueryString"
    }

    dynamic "response_header_action" {
      for_each = var.docker_content_digest_header ? [1] : []
      content {
        header_action = "Overwrite"
        header_name   = "Docker-Content-Digest"
        # v2/<org>/<name>/(blobs|manifests)/sha256:<hex>: segment 4 is the digest.
        value = "{url_path:seg4}"
      }
    }
  }

  depends_on = [azurerm_cdn_frontdoor_origin.this]
}

# 3. VEX archives: no ETag/Last-Modified, no conditional requests.
resource "azurerm_cdn_frontdoor_rule" "vex_archive" {
  count = var.vex_strip_etag ? 1 : 0

  name                      = "VexArchive"
  cdn_frontdoor_rule_set_id = azurerm_cdn_frontdoor_rule_set.this.id
  order                     = 3
  behavior_on_match         = "Continue"

  conditions {
    url_path_condition {
      operator     = "Equal"
      match_values = local.vex_archive_url_paths
    }
  }

  actions {
    request_header_action {
      header_action = "Delete"
      header_name   = "If-None-Match"
    }
    request_header_action {
      header_action = "Delete"
      header_name   = "If-Modified-Since"
    }
    response_header_action {
      header_action = "Delete"
      header_name   = "ETag"
    }
    response_header_action {
      header_action = "Delete"
      header_name   = "Last-Modified"
    }
  }

  depends_on = [azurerm_cdn_frontdoor_origin.this]
}

# 4. Everything mutable (tags, tags/list, VEX manifest and archive, status.json): short TTL.
resource "azurerm_cdn_frontdoor_rule" "mutable" {
  name                      = "Mutable"
  cdn_frontdoor_rule_set_id = azurerm_cdn_frontdoor_rule_set.this.id
  order                     = 4
  behavior_on_match         = "Continue"

  conditions {
    url_path_condition {
      operator         = "Contains"
      negate_condition = true
      match_values     = ["sha256:"]
    }
  }

  actions {
    route_configuration_override_action {
      cache_behavior                = "OverrideAlways"
      cache_duration                = var.tag_cache_ttl
      compression_enabled           = false
      query_string_caching_behavior = "IgnoreQueryString"
    }
  }

  depends_on = [azurerm_cdn_frontdoor_origin.this]
}

# 5. Map every path into the container (and prefix), drop the Authorization header. Last, so the
#    conditions above see viewer paths.
resource "azurerm_cdn_frontdoor_rule" "prefix" {
  name                      = "Prefix"
  cdn_frontdoor_rule_set_id = azurerm_cdn_frontdoor_rule_set.this.id
  order                     = 5
  behavior_on_match         = "Continue"

  actions {
    url_rewrite_action {
      source_pattern          = "/"
      destination             = local.origin_root
      preserve_unmatched_path = true
    }

    # See rule Ping: the WAF has checked the credentials; the blob origin must not receive them.
    request_header_action {
      header_action = "Delete"
      header_name   = "Authorization"
    }
  }

  depends_on = [azurerm_cdn_frontdoor_origin.this]
}

resource "azurerm_cdn_frontdoor_custom_domain" "this" {
  for_each = toset(var.domain_names)

  name                     = replace(each.value, ".", "-")
  cdn_frontdoor_profile_id = azurerm_cdn_frontdoor_profile.this.id
  host_name                = each.value
  dns_zone_id              = var.dns_zone_id

  tls {
    certificate_type    = "ManagedCertificate"
    minimum_tls_version = "TLS12"
  }
}

resource "azurerm_cdn_frontdoor_route" "this" {
  name                          = var.name
  cdn_frontdoor_endpoint_id     = azurerm_cdn_frontdoor_endpoint.this.id
  cdn_frontdoor_origin_group_id = azurerm_cdn_frontdoor_origin_group.this.id
  cdn_frontdoor_origin_ids      = [azurerm_cdn_frontdoor_origin.this.id]
  cdn_frontdoor_rule_set_ids    = [azurerm_cdn_frontdoor_rule_set.this.id]
  enabled                       = true

  patterns_to_match      = ["/*"]
  supported_protocols    = ["Http", "Https"]
  https_redirect_enabled = true
  forwarding_protocol    = "HttpsOnly"
  link_to_default_domain = true

  cdn_frontdoor_custom_domain_ids = [for d in azurerm_cdn_frontdoor_custom_domain.this : d.id]

  # GET and HEAD pass through; the stored Content-Type is returned unchanged; nothing is compressed.
  cache {
    query_string_caching_behavior = "IgnoreQueryString"
    compression_enabled           = false
  }
}

resource "azurerm_cdn_frontdoor_custom_domain_association" "this" {
  for_each = azurerm_cdn_frontdoor_custom_domain.this

  cdn_frontdoor_custom_domain_id = each.value.id
  cdn_frontdoor_route_ids        = [azurerm_cdn_frontdoor_route.this.id]
}

################################################################################
# WAF: optional IP allow-list and Basic-credential check
################################################################################

resource "azurerm_cdn_frontdoor_firewall_policy" "this" {
  name                              = replace("${var.name}waf", "-", "")
  resource_group_name               = var.resource_group_name
  sku_name                          = var.front_door_sku_name
  enabled                           = true
  mode                              = "Prevention"
  custom_block_response_status_code = 403
  custom_block_response_body        = base64encode("{\"errors\":[{\"code\":\"DENIED\",\"message\":\"access denied\"}]}")

  dynamic "custom_rule" {
    for_each = length(var.allowed_cidrs) > 0 ? [1] : []
    content {
      name     = "AllowList"
      enabled  = true
      priority = 1
      type     = "MatchRule"
      action   = "Block"

      # SocketAddr is the address of the TCP connection to Front Door. RemoteAddr would be taken from
      # X-Forwarded-For, which any client can set.
      match_condition {
        match_variable     = "SocketAddr"
        operator           = "IPMatch"
        negation_condition = true
        match_values       = var.allowed_cidrs
      }
    }
  }

  dynamic "custom_rule" {
    for_each = local.basic_auth_enabled ? [1] : []
    content {
      name     = "BasicAuth"
      enabled  = true
      priority = 2
      type     = "MatchRule"
      action   = "Block"

      # No accepted Authorization header ...
      match_condition {
        match_variable     = "RequestHeader"
        selector           = "Authorization"
        operator           = "Equal"
        negation_condition = true
        match_values       = [for user, password in var.basic_auth_credentials : "Basic ${base64encode("${user}:${password}")}"]
      }

      # ... and not the registry ping, which must answer 200 or 401 (WAF can only answer 403).
      match_condition {
        match_variable     = "RequestUri"
        operator           = "RegEx"
        negation_condition = true
        match_values       = ["^(https?://[^/]+)?/v2/?$"]
      }
    }
  }

  dynamic "managed_rule" {
    for_each = var.waf_managed_rules && var.front_door_sku_name == "Premium_AzureFrontDoor" ? [1] : []
    content {
      type    = "Microsoft_DefaultRuleSet"
      version = "2.1"
      action  = "Block"
    }
  }

  tags = local.tags
}

resource "azurerm_cdn_frontdoor_security_policy" "this" {
  name                     = "${var.name}-waf"
  cdn_frontdoor_profile_id = azurerm_cdn_frontdoor_profile.this.id

  security_policies {
    firewall {
      cdn_frontdoor_firewall_policy_id = azurerm_cdn_frontdoor_firewall_policy.this.id

      association {
        patterns_to_match = ["/*"]

        domain {
          cdn_frontdoor_domain_id = azurerm_cdn_frontdoor_endpoint.this.id
        }

        dynamic "domain" {
          for_each = azurerm_cdn_frontdoor_custom_domain.this
          content {
            cdn_frontdoor_domain_id = domain.value.id
          }
        }
      }
    }
  }
}
