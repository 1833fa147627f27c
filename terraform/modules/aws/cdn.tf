################################################################################
# CloudFront in front of the private bucket
#
# Viewer path           -> S3 key (origin_path adds the prefix)
#   /v2/ and /v2        -> <prefix>/v2/index.json   (viewer-request function)
#   /v2/<repo>/...      -> <prefix>/v2/<repo>/...   (unchanged; the ':' in sha256:<hex> is passed through)
#   /<vex_prefix>/...   -> <prefix>/<vex_prefix>/...
################################################################################

locals {
  origin_id = "s3-${var.bucket_name}"

  # CloudFront Functions: maximum function size (code plus the inlined configuration).
  cloudfront_function_max_bytes = 10240

  # Configuration handed to the edge functions. Terraform prepends `var CONFIG = {...};` to the
  # function file, and the node tests in tests/edge do exactly the same.
  viewer_request_config = {
    realm            = var.basic_auth_realm
    basicAuthSha256  = [for user, password in var.basic_auth_credentials : sha256("Basic ${base64encode("${user}:${password}")}")]
    allowCidrs       = var.allowed_cidrs
    vexArchivePaths  = local.vex_archive_paths
    stripVexRevalid  = var.vex_strip_etag
    pingObjectSuffix = "v2/index.json"
  }

  viewer_response_config = {
    dockerContentDigest = var.docker_content_digest_header
    vexArchivePaths     = local.vex_archive_paths
    stripVexEtag        = var.vex_strip_etag
  }

  # Whole-line // comments are dropped on the way (CloudFront counts every byte against its 10 KB
  # limit); tests/edge/harness.mjs drops them the same way.
  viewer_request_source  = join("\n", [for line in split("\n", file("${path.module}/functions/viewer-request.js")) : line if !startswith(trimspace(line), "//")])
  viewer_response_source = join("\n", [for line in split("\n", file("${path.module}/functions/viewer-response.js")) : line if !startswith(trimspace(line), "//")])

  viewer_request_code  = "var CONFIG = ${jsonencode(local.viewer_request_config)};\n${local.viewer_request_source}"
  viewer_response_code = "var CONFIG = ${jsonencode(local.viewer_response_config)};\n${local.viewer_response_source}"

  # The viewer-response function is only attached where it has something to do.
  viewer_response_on_registry = var.docker_content_digest_header
  viewer_response_on_vex      = var.vex_strip_etag
}

resource "aws_cloudfront_origin_access_control" "this" {
  name                              = var.name
  description                       = "trivy-mirror: CloudFront reads ${var.bucket_name}"
  origin_access_control_origin_type = "s3"
  signing_behavior                  = "always"
  signing_protocol                  = "sigv4"
}

resource "aws_cloudfront_function" "viewer_request" {
  name    = "${var.name}-viewer-request"
  runtime = "cloudfront-js-2.0"
  comment = "trivy-mirror: /v2/ ping rewrite, optional Basic auth and IP allow-list"
  publish = true
  code    = local.viewer_request_code

  lifecycle {
    # CloudFront rejects function code over 10 KB at apply. The inlined configuration grows by 67 bytes
    # per credential and by the length of each CIDR plus 3: 74 credentials, or about 300 IPv4 CIDRs,
    # fit (tests/edge and tests/limits.tftest.hcl check the same thresholds). The size reveals only
    # how many credentials there are, so it is unmarked for the comparison.
    precondition {
      condition     = nonsensitive(length(local.viewer_request_code)) <= local.cloudfront_function_max_bytes
      error_message = "The viewer-request function with its inlined configuration exceeds CloudFront's 10 KB (10240 bytes) function size limit: use fewer basic_auth_credentials (74 fit) or fewer, aggregated allowed_cidrs (about 300 IPv4 CIDRs fit, depending on their length); for a long IP list attach a WAF web ACL (web_acl_id) instead."
    }
  }
}

resource "aws_cloudfront_function" "viewer_response" {
  name    = "${var.name}-viewer-response"
  runtime = "cloudfront-js-2.0"
  comment = "trivy-mirror: Docker-Content-Digest and VEX ETag removal"
  publish = true
  code    = local.viewer_response_code
}

# Content-addressed objects: blobs and manifests by digest never change.
resource "aws_cloudfront_cache_policy" "immutable" {
  name        = "${var.name}-immutable"
  comment     = "trivy-mirror blobs and manifests by digest"
  min_ttl     = var.immutable_min_ttl_seconds
  default_ttl = 31536000
  max_ttl     = 31536000

  parameters_in_cache_key_and_forwarded_to_origin {
    # No Accept-Encoding in the cache key: the origin never compresses, and neither does CloudFront (compress = false).
    enable_accept_encoding_gzip   = false
    enable_accept_encoding_brotli = false

    cookies_config {
      cookie_behavior = "none"
    }
    headers_config {
      header_behavior = "none"
    }
    query_strings_config {
      query_string_behavior = "none"
    }
  }
}

# Mutable objects: tags, tags/list, the ping, VEX manifest and archive, status.json.
resource "aws_cloudfront_cache_policy" "mutable" {
  name        = "${var.name}-mutable"
  comment     = "trivy-mirror tags and other mutable objects"
  min_ttl     = 0
  default_ttl = var.tag_cache_ttl_seconds
  max_ttl     = var.tag_max_ttl_seconds

  parameters_in_cache_key_and_forwarded_to_origin {
    enable_accept_encoding_gzip   = false
    enable_accept_encoding_brotli = false

    cookies_config {
      cookie_behavior = "none"
    }
    headers_config {
      header_behavior = "none"
    }
    query_strings_config {
      query_string_behavior = "none"
    }
  }

  lifecycle {
    precondition {
      condition     = var.tag_cache_ttl_seconds <= var.tag_max_ttl_seconds
      error_message = "tag_cache_ttl_seconds must not exceed tag_max_ttl_seconds."
    }
  }
}

resource "aws_cloudfront_response_headers_policy" "this" {
  name    = "${var.name}-security"
  comment = "trivy-mirror security headers"

  security_headers_config {
    strict_transport_security {
      access_control_max_age_sec = 31536000
      include_subdomains         = true
      preload                    = true
      override                   = true
    }
    content_type_options {
      override = true
    }
  }
}

resource "aws_cloudfront_response_headers_policy" "vex_archive" {
  name    = "${var.name}-vex-archive"
  comment = "trivy-mirror VEX archive: security headers, no ETag/Last-Modified when vex_strip_etag"

  security_headers_config {
    strict_transport_security {
      access_control_max_age_sec = 31536000
      include_subdomains         = true
      preload                    = true
      override                   = true
    }
    content_type_options {
      override = true
    }
  }

  dynamic "remove_headers_config" {
    for_each = var.vex_strip_etag ? [1] : []

    content {
      items {
        header = "ETag"
      }
      items {
        header = "Last-Modified"
      }
    }
  }
}

resource "aws_cloudfront_distribution" "this" {
  # checkov:skip=CKV_AWS_68:WAF is optional (web_acl_id): a public mirror of public data needs none, and a private one uses the Basic-auth/IP checks of the viewer-request function; a web ACL costs a monthly fee.
  # checkov:skip=CKV2_AWS_47:Same as CKV_AWS_68: attach a web ACL with AWSManagedRulesKnownBadInputsRuleSet through web_acl_id when wanted.
  # checkov:skip=CKV_AWS_86:CloudFront standard logs are optional (cloudfront_log_bucket); a bucket for them is the caller's choice.
  # checkov:skip=CKV_AWS_310:A single origin: the mirror bucket is the only copy; failing over to upstream would need a registry origin, which Trivy's own --db-repository fallback list already provides.
  # checkov:skip=CKV_AWS_374:Geo restriction would break a mirror meant for CI runners anywhere; use allowed_cidrs to restrict access.
  # checkov:skip=CKV_AWS_174:With the default *.cloudfront.net certificate CloudFront fixes the minimum protocol; with acm_certificate_arn the module sets TLSv1.2_2021.
  # checkov:skip=CKV2_AWS_42:A custom certificate is optional (acm_certificate_arn); the *.cloudfront.net host name works for Trivy.
  enabled             = true
  is_ipv6_enabled     = true
  http_version        = "http2and3"
  comment             = "trivy-mirror ${var.name}"
  price_class         = var.price_class
  aliases             = var.domain_names
  web_acl_id          = var.web_acl_id
  default_root_object = "status.json"
  wait_for_deployment = true

  origin {
    origin_id                = local.origin_id
    domain_name              = aws_s3_bucket.this.bucket_regional_domain_name
    origin_path              = var.prefix == "" ? "" : "/${var.prefix}"
    origin_access_control_id = aws_cloudfront_origin_access_control.this.id
  }

  # The registry error body for 404s (custom_error_response below). No function: CloudFront fetches it
  # itself for the error response, and its content is a constant that needs no protection.
  ordered_cache_behavior {
    path_pattern               = "/_trivy-mirror/*"
    target_origin_id           = local.origin_id
    viewer_protocol_policy     = "redirect-to-https"
    allowed_methods            = ["GET", "HEAD"]
    cached_methods             = ["GET", "HEAD"]
    compress                   = false
    cache_policy_id            = aws_cloudfront_cache_policy.mutable.id
    response_headers_policy_id = aws_cloudfront_response_headers_policy.this.id
  }

  # Blobs: /v2/<repo>/blobs/sha256:<hex>. Immutable, never compressed.
  ordered_cache_behavior {
    path_pattern               = "/v2/*/blobs/*"
    target_origin_id           = local.origin_id
    viewer_protocol_policy     = "redirect-to-https"
    allowed_methods            = ["GET", "HEAD"]
    cached_methods             = ["GET", "HEAD"]
    compress                   = false
    cache_policy_id            = aws_cloudfront_cache_policy.immutable.id
    response_headers_policy_id = aws_cloudfront_response_headers_policy.this.id

    function_association {
      event_type   = "viewer-request"
      function_arn = aws_cloudfront_function.viewer_request.arn
    }

    dynamic "function_association" {
      for_each = local.viewer_response_on_registry ? [1] : []
      content {
        event_type   = "viewer-response"
        function_arn = aws_cloudfront_function.viewer_response.arn
      }
    }
  }

  # Manifests by digest: /v2/<repo>/manifests/sha256:<hex>. Immutable.
  ordered_cache_behavior {
    path_pattern               = "/v2/*/manifests/sha256:*"
    target_origin_id           = local.origin_id
    viewer_protocol_policy     = "redirect-to-https"
    allowed_methods            = ["GET", "HEAD"]
    cached_methods             = ["GET", "HEAD"]
    compress                   = false
    cache_policy_id            = aws_cloudfront_cache_policy.immutable.id
    response_headers_policy_id = aws_cloudfront_response_headers_policy.this.id

    function_association {
      event_type   = "viewer-request"
      function_arn = aws_cloudfront_function.viewer_request.arn
    }

    dynamic "function_association" {
      for_each = local.viewer_response_on_registry ? [1] : []
      content {
        event_type   = "viewer-response"
        function_arn = aws_cloudfront_function.viewer_response.arn
      }
    }
  }

  # Everything else under /v2/: the ping (/v2/ -> v2/index.json), tag manifests, tags/list. Short TTL.
  ordered_cache_behavior {
    path_pattern               = "/v2/*"
    target_origin_id           = local.origin_id
    viewer_protocol_policy     = "redirect-to-https"
    allowed_methods            = ["GET", "HEAD"]
    cached_methods             = ["GET", "HEAD"]
    compress                   = false
    cache_policy_id            = aws_cloudfront_cache_policy.mutable.id
    response_headers_policy_id = aws_cloudfront_response_headers_policy.this.id

    function_association {
      event_type   = "viewer-request"
      function_arn = aws_cloudfront_function.viewer_request.arn
    }

    dynamic "function_association" {
      for_each = local.viewer_response_on_registry ? [1] : []
      content {
        event_type   = "viewer-response"
        function_arn = aws_cloudfront_function.viewer_response.arn
      }
    }
  }

  # VEX archives: short TTL, never compressed, optionally without ETag/Last-Modified.
  dynamic "ordered_cache_behavior" {
    for_each = local.vex_archive_paths
    content {
      path_pattern               = ordered_cache_behavior.value
      target_origin_id           = local.origin_id
      viewer_protocol_policy     = "redirect-to-https"
      allowed_methods            = ["GET", "HEAD"]
      cached_methods             = ["GET", "HEAD"]
      compress                   = false
      cache_policy_id            = aws_cloudfront_cache_policy.mutable.id
      response_headers_policy_id = aws_cloudfront_response_headers_policy.vex_archive.id

      function_association {
        event_type   = "viewer-request"
        function_arn = aws_cloudfront_function.viewer_request.arn
      }

      dynamic "function_association" {
        for_each = local.viewer_response_on_vex ? [1] : []
        content {
          event_type   = "viewer-response"
          function_arn = aws_cloudfront_function.viewer_response.arn
        }
      }
    }
  }

  # Default: /v2 (no slash), /.well-known/vex-repository.json, status.json. Short TTL.
  default_cache_behavior {
    target_origin_id           = local.origin_id
    viewer_protocol_policy     = "redirect-to-https"
    allowed_methods            = ["GET", "HEAD"]
    cached_methods             = ["GET", "HEAD"]
    compress                   = false
    cache_policy_id            = aws_cloudfront_cache_policy.mutable.id
    response_headers_policy_id = aws_cloudfront_response_headers_policy.this.id

    function_association {
      event_type   = "viewer-request"
      function_arn = aws_cloudfront_function.viewer_request.arn
    }
  }

  # A missing object answers 404 with a registry JSON body (BLOB_UNKNOWN, so Trivy tries its next
  # repository) instead of S3's XML. Cached only briefly, so that a blob published after a miss shows up.
  custom_error_response {
    error_code            = 404
    error_caching_min_ttl = 10
    response_code         = 404
    response_page_path    = local.not_found_viewer_path
  }

  custom_error_response {
    error_code            = 403
    error_caching_min_ttl = 10
  }

  dynamic "logging_config" {
    for_each = var.cloudfront_log_bucket == null ? [] : [var.cloudfront_log_bucket]
    content {
      bucket          = logging_config.value
      include_cookies = false
      prefix          = "cloudfront/${var.name}/"
    }
  }

  restrictions {
    geo_restriction {
      restriction_type = "none"
    }
  }

  viewer_certificate {
    cloudfront_default_certificate = var.acm_certificate_arn == null
    acm_certificate_arn            = var.acm_certificate_arn
    ssl_support_method             = var.acm_certificate_arn == null ? null : "sni-only"
    minimum_protocol_version       = var.acm_certificate_arn == null ? "TLSv1" : "TLSv1.2_2021"
  }

  tags = local.tags

  lifecycle {
    precondition {
      condition     = length(var.domain_names) == 0 || var.acm_certificate_arn != null
      error_message = "domain_names requires acm_certificate_arn (a us-east-1 ACM certificate covering them)."
    }
  }
}

resource "aws_route53_record" "this" {
  for_each = var.route53_zone_id == null ? {} : { for pair in setproduct(var.domain_names, ["A", "AAAA"]) : "${pair[0]}-${pair[1]}" => { name = pair[0], type = pair[1] } }

  zone_id = var.route53_zone_id
  name    = each.value.name
  type    = each.value.type

  alias {
    name                   = aws_cloudfront_distribution.this.domain_name
    zone_id                = aws_cloudfront_distribution.this.hosted_zone_id
    evaluate_target_health = false
  }
}
