//! Static checks of the Terraform modules (owned by the terraform work).
//!
//! No cloud account is reachable from the tests, so these parse the HCL of `terraform/` with
//! hcl-rs and assert the properties that make the mirror work (the `/v2/` route, HEAD passed
//! through, no compression, TTLs) and safe (private storage, a publisher limited to its bucket).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use hcl::{Attribute, Block, Body, Expression};

// ---------------------------------------------------------------------------------------------
// Loading and walking
// ---------------------------------------------------------------------------------------------

fn terraform_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("terraform")
}

fn module_dir(cloud: &str) -> PathBuf {
    terraform_dir().join("modules").join(cloud)
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Every top-level block of every `.tf` file in `dir` (not recursive).
fn load_dir(dir: &Path) -> Vec<Block> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "tf"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .tf files in {}", dir.display());
    let mut blocks = Vec::new();
    for file in files {
        let body: Body = hcl::from_str(&read(&file)).unwrap_or_else(|e| panic!("parse {}: {e}", file.display()));
        blocks.extend(body.into_blocks());
    }
    blocks
}

fn module(cloud: &str) -> Vec<Block> {
    load_dir(&module_dir(cloud))
}

fn label(block: &Block, i: usize) -> &str {
    block.labels().get(i).map_or("", |l| l.as_str())
}

fn resources<'a>(blocks: &'a [Block], kind: &str) -> Vec<&'a Block> {
    blocks
        .iter()
        .filter(|b| (b.identifier() == "resource" || b.identifier() == "data") && label(b, 0) == kind)
        .collect()
}

fn resource<'a>(blocks: &'a [Block], kind: &str, name: &str) -> &'a Block {
    blocks
        .iter()
        .find(|b| b.identifier() == "resource" && label(b, 0) == kind && label(b, 1) == name)
        .unwrap_or_else(|| panic!("resource {kind}.{name} not found"))
}

fn data<'a>(blocks: &'a [Block], kind: &str, name: &str) -> &'a Block {
    blocks
        .iter()
        .find(|b| b.identifier() == "data" && label(b, 0) == kind && label(b, 1) == name)
        .unwrap_or_else(|| panic!("data {kind}.{name} not found"))
}

fn attr<'a>(body: &'a Body, key: &str) -> Option<&'a Expression> {
    body.attributes().find(|a| a.key() == key).map(Attribute::expr)
}

fn req<'a>(body: &'a Body, key: &str) -> &'a Expression {
    attr(body, key).unwrap_or_else(|| panic!("attribute {key} missing"))
}

/// Nested blocks named `name`, including the `content` of `dynamic "name"` blocks.
fn nested<'a>(body: &'a Body, name: &str) -> Vec<&'a Body> {
    let mut out = Vec::new();
    for b in body.blocks() {
        if b.identifier() == name {
            out.push(b.body());
        } else if b.identifier() == "dynamic" && label(b, 0) == name {
            out.extend(b.body().blocks().filter(|c| c.identifier() == "content").map(Block::body));
        }
    }
    out
}

fn one<'a>(body: &'a Body, name: &str) -> &'a Body {
    let found = nested(body, name);
    assert_eq!(found.len(), 1, "expected exactly one {name} block");
    found[0]
}

/// The HCL text of an expression (strings come back quoted).
fn text(expr: &Expression) -> String {
    expr.to_string()
}

fn string(expr: &Expression) -> &str {
    match expr {
        Expression::String(s) => s,
        other => panic!("expected a string literal, got {other}"),
    }
}

fn boolean(expr: &Expression) -> bool {
    match expr {
        Expression::Bool(b) => *b,
        other => panic!("expected a bool literal, got {other}"),
    }
}

fn strings(expr: &Expression) -> Vec<String> {
    match expr {
        Expression::Array(items) => items.iter().map(|e| string(e).to_owned()).collect(),
        other => panic!("expected an array of strings, got {other}"),
    }
}

fn variable<'a>(blocks: &'a [Block], name: &str) -> &'a Body {
    blocks
        .iter()
        .find(|b| b.identifier() == "variable" && label(b, 0) == name)
        .map(Block::body)
        .unwrap_or_else(|| panic!("variable {name} not found"))
}

fn default_of<'a>(blocks: &'a [Block], name: &str) -> &'a Expression {
    req(variable(blocks, name), "default")
}

fn validations(blocks: &[Block], name: &str) -> String {
    nested(variable(blocks, name), "validation")
        .iter()
        .map(|v| text(req(v, "condition")))
        .collect::<Vec<_>>()
        .join(" && ")
}

/// A number literal, or `var.NAME` resolved to its default.
fn number(blocks: &[Block], expr: &Expression) -> f64 {
    match expr {
        Expression::Number(n) => n.as_f64().expect("finite number"),
        _ => {
            let t = text(expr);
            let name = t.strip_prefix("var.").unwrap_or_else(|| panic!("expected a number or var.NAME, got {t}"));
            number(blocks, default_of(blocks, name))
        }
    }
}

/// The HCL text of an expression without any whitespace, for formatting-independent comparisons.
fn squashed(expr: &Expression) -> String {
    text(expr).split_whitespace().collect()
}

/// The `lifecycle` preconditions of a block, as squashed condition texts.
fn preconditions(body: &Body) -> Vec<String> {
    nested(body, "lifecycle")
        .into_iter()
        .flat_map(|l| nested(l, "precondition"))
        .map(|p| squashed(req(p, "condition")))
        .collect()
}

fn local<'a>(blocks: &'a [Block], name: &str) -> &'a Expression {
    blocks
        .iter()
        .filter(|b| b.identifier() == "locals")
        .find_map(|b| attr(b.body(), name))
        .unwrap_or_else(|| panic!("local {name} not found"))
}

// ---------------------------------------------------------------------------------------------
// AWS
// ---------------------------------------------------------------------------------------------

#[test]
fn aws_bucket_is_private_and_tls_only() {
    let m = module("aws");
    let pab = resource(&m, "aws_s3_bucket_public_access_block", "this").body();
    for key in ["block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"] {
        assert!(boolean(req(pab, key)), "{key} must be true");
    }
    let own = resource(&m, "aws_s3_bucket_ownership_controls", "this").body();
    assert_eq!(string(req(one(own, "rule"), "object_ownership")), "BucketOwnerEnforced");
    for forbidden in
        ["aws_s3_bucket_acl", "aws_s3_bucket_website_configuration", "aws_cloudfront_origin_access_identity"]
    {
        assert!(resources(&m, forbidden).is_empty(), "{forbidden} must not be used");
    }

    // Bucket policy: Allow only to CloudFront, only for this distribution; Deny without TLS.
    let policy = data(&m, "aws_iam_policy_document", "bucket").body();
    let mut saw_tls_deny = false;
    for st in nested(policy, "statement") {
        let effect = string(req(st, "effect"));
        let principals = one(st, "principals");
        if effect == "Allow" {
            assert_eq!(string(req(principals, "type")), "Service");
            assert_eq!(strings(req(principals, "identifiers")), ["cloudfront.amazonaws.com"]);
            let cond = one(st, "condition");
            assert_eq!(string(req(cond, "variable")), "AWS:SourceArn");
            assert!(text(req(cond, "values")).contains("aws_cloudfront_distribution.this.arn"));
            let actions = strings(req(st, "actions"));
            assert!(actions.iter().all(|a| a == "s3:GetObject" || a == "s3:ListBucket"), "{actions:?}");
        } else {
            assert_eq!(effect, "Deny");
            let cond = one(st, "condition");
            if string(req(cond, "variable")) == "aws:SecureTransport" {
                assert_eq!(strings(req(cond, "values")), ["false"]);
                saw_tls_deny = true;
            }
        }
    }
    assert!(saw_tls_deny, "the bucket policy must deny requests without TLS");

    // Encryption at rest, versioning, and the multipart clean-up rule.
    let sse = resource(&m, "aws_s3_bucket_server_side_encryption_configuration", "this").body();
    let by_default = one(one(sse, "rule"), "apply_server_side_encryption_by_default");
    let alg = text(req(by_default, "sse_algorithm"));
    assert!(alg.contains("AES256") && alg.contains("aws:kms"), "{alg}");
    assert!(boolean(default_of(&m, "versioning")));
    let lifecycle = resource(&m, "aws_s3_bucket_lifecycle_configuration", "this").body();
    let abort = nested(lifecycle, "rule")
        .into_iter()
        .flat_map(|r| nested(r, "abort_incomplete_multipart_upload"))
        .next()
        .expect("abort_incomplete_multipart_upload rule");
    assert_eq!(number(&m, req(abort, "days_after_initiation")), 1.0);
}

/// Every cache behaviour of the distribution, with its path pattern ("" for the default).
fn aws_behaviours(m: &[Block]) -> Vec<(String, &Body)> {
    let dist = resource(m, "aws_cloudfront_distribution", "this").body();
    let mut out: Vec<(String, &Body)> =
        nested(dist, "ordered_cache_behavior").into_iter().map(|b| (text(req(b, "path_pattern")), b)).collect();
    out.push((String::new(), one(dist, "default_cache_behavior")));
    out
}

#[test]
fn aws_cdn_forwards_head_and_never_compresses() {
    let m = module("aws");
    let behaviours = aws_behaviours(&m);
    assert!(behaviours.len() >= 5, "blobs, digests, /v2/*, VEX archives, default");
    for (path, b) in &behaviours {
        let allowed = strings(req(b, "allowed_methods"));
        assert!(allowed.contains(&"GET".to_owned()) && allowed.contains(&"HEAD".to_owned()), "{path}: {allowed:?}");
        assert!(!boolean(req(b, "compress")), "{path}: compress must be false");
        assert_eq!(string(req(b, "viewer_protocol_policy")), "redirect-to-https", "{path}");
    }
    for name in ["immutable", "mutable"] {
        let params = one(
            resource(&m, "aws_cloudfront_cache_policy", name).body(),
            "parameters_in_cache_key_and_forwarded_to_origin",
        );
        assert!(!boolean(req(params, "enable_accept_encoding_gzip")), "{name}");
        assert!(!boolean(req(params, "enable_accept_encoding_brotli")), "{name}");
        let qs = one(params, "query_strings_config");
        assert_eq!(string(req(qs, "query_string_behavior")), "none", "{name}: no listing through the CDN");
    }
}

#[test]
fn aws_blobs_cached_at_least_a_day_and_tags_at_most_ten_minutes() {
    let m = module("aws");
    let behaviours = aws_behaviours(&m);
    let policy_of = |pattern: &str| -> String {
        let (_, b) = behaviours
            .iter()
            .find(|(p, _)| p == &format!("\"{pattern}\""))
            .unwrap_or_else(|| panic!("no behaviour for {pattern}"));
        text(req(b, "cache_policy_id"))
    };
    assert_eq!(policy_of("/v2/*/blobs/*"), "aws_cloudfront_cache_policy.immutable.id");
    assert_eq!(policy_of("/v2/*/manifests/sha256:*"), "aws_cloudfront_cache_policy.immutable.id");
    assert_eq!(policy_of("/v2/*"), "aws_cloudfront_cache_policy.mutable.id");
    // Order matters in CloudFront: the blob and digest patterns must precede /v2/*.
    let order: Vec<&str> = behaviours.iter().map(|(p, _)| p.as_str()).collect();
    let pos = |p: &str| order.iter().position(|x| *x == p).unwrap_or(usize::MAX);
    assert!(pos("\"/v2/*/blobs/*\"") < pos("\"/v2/*\""));
    assert!(pos("\"/v2/*/manifests/sha256:*\"") < pos("\"/v2/*\""));
    let (_, default) = behaviours.last().expect("default");
    assert_eq!(text(req(default, "cache_policy_id")), "aws_cloudfront_cache_policy.mutable.id");

    let immutable = resource(&m, "aws_cloudfront_cache_policy", "immutable").body();
    assert!(number(&m, req(immutable, "min_ttl")) >= 86400.0);
    assert!(number(&m, req(immutable, "default_ttl")) >= 86400.0);
    assert!(validations(&m, "immutable_min_ttl_seconds").contains(">= 86400"));

    let mutable = resource(&m, "aws_cloudfront_cache_policy", "mutable").body();
    assert!(number(&m, req(mutable, "max_ttl")) <= 600.0);
    assert!(number(&m, req(mutable, "default_ttl")) <= 600.0);
    assert!(validations(&m, "tag_max_ttl_seconds").contains("<= 600"));
    assert!(validations(&m, "tag_cache_ttl_seconds").contains("<= 600"));

    // Missing objects are cached only briefly.
    let dist = resource(&m, "aws_cloudfront_distribution", "this").body();
    for err in nested(dist, "custom_error_response") {
        assert!(number(&m, req(err, "error_caching_min_ttl")) <= 60.0);
    }
}

#[test]
fn aws_v2_route_exists_on_every_behaviour() {
    let m = module("aws");
    let f = resource(&m, "aws_cloudfront_function", "viewer_request").body();
    assert_eq!(string(req(f, "runtime")), "cloudfront-js-2.0");
    let code = text(local(&m, "viewer_request_code"));
    assert!(code.contains("local.viewer_request_source"), "{code}");
    let source = text(local(&m, "viewer_request_source"));
    assert!(source.contains("functions/viewer-request.js") && source.contains("\"//\""), "{source}");
    let js = read(&module_dir("aws").join("functions/viewer-request.js"));
    assert!(js.contains("request.uri === '/v2/' || request.uri === '/v2'"));
    assert!(js.contains("v2/index.json"));

    for (path, b) in aws_behaviours(&m) {
        let assoc = nested(b, "function_association");
        if path == "\"/_trivy-mirror/*\"" {
            // The 404 body: fetched by CloudFront itself for its error response, no function.
            assert!(assoc.is_empty(), "{path}: the error document behaviour runs no function");
            continue;
        }
        assert!(
            assoc.iter().any(|a| string(req(a, "event_type")) == "viewer-request"
                && text(req(a, "function_arn")) == "aws_cloudfront_function.viewer_request.arn"),
            "{path}: viewer-request function (rewrite, auth, allow-list) must run"
        );
    }

    // The origin is the private bucket through OAC, with the prefix as origin path.
    let dist = resource(&m, "aws_cloudfront_distribution", "this").body();
    let origin = one(dist, "origin");
    assert_eq!(text(req(origin, "origin_access_control_id")), "aws_cloudfront_origin_access_control.this.id");
    assert!(text(req(origin, "origin_path")).contains("var.prefix"));
    assert!(attr(origin, "s3_origin_config").is_none() && nested(origin, "custom_origin_config").is_empty());
    let oac = resource(&m, "aws_cloudfront_origin_access_control", "this").body();
    assert_eq!(string(req(oac, "signing_behavior")), "always");
    assert_eq!(string(req(oac, "signing_protocol")), "sigv4");
}

#[test]
fn aws_edge_config_keys_are_the_ones_the_functions_read() {
    let m = module("aws");
    for (local_name, file) in
        [("viewer_request_config", "viewer-request.js"), ("viewer_response_config", "viewer-response.js")]
    {
        let js = read(&module_dir("aws").join("functions").join(file));
        let Expression::Object(obj) = local(&m, local_name) else {
            panic!("{local_name} must be an object");
        };
        for key in obj.keys() {
            let key = key.to_string();
            assert!(js.contains(&format!("c.{key}")), "{file} never reads CONFIG.{key}");
        }
    }
}

#[test]
fn aws_publisher_policy_is_limited_to_its_bucket() {
    let m = module("aws");
    assert_eq!(text(local(&m, "bucket_arn")), "aws_s3_bucket.this.arn");
    assert_eq!(text(local(&m, "objects_arn")), "\"${aws_s3_bucket.this.arn}/${local.key_prefix}*\"");

    let policy = data(&m, "aws_iam_policy_document", "publisher").body();
    let allowed: BTreeSet<&str> = [
        "s3:ListBucket",
        "s3:ListBucketMultipartUploads",
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "kms:Decrypt",
        "kms:GenerateDataKey",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    ]
    .into_iter()
    .collect();
    let mut seen = BTreeSet::new();
    for st in nested(policy, "statement") {
        assert_eq!(string(req(st, "effect")), "Allow");
        let actions = strings(req(st, "actions"));
        for a in &actions {
            assert!(allowed.contains(a.as_str()), "unexpected action {a}");
            seen.insert(a.clone());
        }
        let res: String = text(req(st, "resources")).split_whitespace().collect();
        if actions.iter().all(|a| a.starts_with("xray:")) {
            // X-Ray accepts no resource-level permissions; only with Active tracing.
            assert_eq!(res, "[\"*\"]");
            continue;
        }
        assert!(!res.contains("\"*\""), "no wildcard resource: {res}");
        let s3 = actions.iter().any(|a| a.starts_with("s3:"));
        if s3 {
            assert!(
                res == "[local.bucket_arn]" || res == "[local.objects_arn]",
                "S3 actions must target the mirror bucket: {res}"
            );
        } else if actions.iter().any(|a| a.starts_with("logs:")) {
            assert_eq!(res, "[\"${aws_cloudwatch_log_group.publisher[0].arn}:*\"]", "the publisher's own log group");
        } else {
            assert_eq!(res, "[statement.value]", "KMS only on kms_key_arn");
        }
    }
    for needed in ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"] {
        assert!(seen.contains(needed), "publisher needs {needed}");
    }
    // No managed policies or other attachments to the role.
    assert!(resources(&m, "aws_iam_role_policy_attachment").is_empty());
    assert_eq!(resources(&m, "aws_iam_role_policy").len(), 2, "publisher and scheduler inline policies only");

    // X-Ray only with Active tracing (CreateFunction fails without it).
    let xray = policy
        .blocks()
        .filter(|b| b.identifier() == "dynamic" && label(b, 0) == "statement")
        .find(|b| text(req(b.body(), "for_each")).contains("lambda_tracing_mode"))
        .expect("a dynamic X-Ray statement");
    assert_eq!(squashed(req(xray.body(), "for_each")), "var.lambda_tracing_mode==\"Active\"?[1]:[]");

    // No data.aws_region (its `name` is deprecated in provider 6).
    assert!(
        m.iter().all(|b| !(b.identifier() == "data" && label(b, 0) == "aws_region")),
        "data.aws_region must not be used"
    );

    let sched = resource(&m, "aws_iam_role_policy", "scheduler").body();
    assert_eq!(text(req(sched, "policy")), "data.aws_iam_policy_document.scheduler[0].json");
    let sched_doc = data(&m, "aws_iam_policy_document", "scheduler").body();
    let sched_statements = nested(sched_doc, "statement");
    assert_eq!(sched_statements.len(), 2, "invoke, and decrypt with kms_key_arn");
    for st in sched_statements {
        let actions = strings(req(st, "actions"));
        let res = squashed(req(st, "resources"));
        match actions.as_slice() {
            [a] if a == "lambda:InvokeFunction" => assert_eq!(res, "[aws_lambda_function.publisher[0].arn]"),
            [a] if a == "kms:Decrypt" => assert_eq!(res, "[statement.value]", "the schedule's CMK only"),
            other => panic!("unexpected scheduler actions {other:?}"),
        }
    }
    let kms_out = m
        .iter()
        .find(|b| b.identifier() == "output" && label(b, 0) == "kms_key_policy_statements")
        .expect("kms_key_policy_statements output");
    let kms_text = text(req(kms_out.body(), "value"));
    for sid in ["AllowCloudFrontDecrypt", "AllowPublisher", "AllowSchedulerDecrypt"] {
        assert!(kms_text.contains(sid), "kms_key_policy_statements lacks {sid}");
    }
    assert!(kms_text.contains("aws_iam_role.scheduler[0].arn"));
}

#[test]
fn aws_publisher_runs_on_schedule_with_the_mirror_settings() {
    let m = module("aws");
    let f = resource(&m, "aws_lambda_function", "publisher").body();
    assert_eq!(string(req(f, "runtime")), "provided.al2023");
    assert_eq!(string(req(f, "handler")), "bootstrap");
    assert_eq!(text(req(f, "filename")), "var.lambda_zip_path");
    assert_eq!(number(&m, req(f, "memory_size")), 512.0);
    assert_eq!(number(&m, req(f, "timeout")), 900.0);
    // Nullable: any reservation fails in accounts at the default concurrency limit of 10.
    assert_eq!(text(req(f, "reserved_concurrent_executions")), "var.lambda_reserved_concurrency");
    assert!(matches!(default_of(&m, "lambda_reserved_concurrency"), Expression::Null));
    assert!(validations(&m, "lambda_reserved_concurrency").contains(">= 1"));
    assert_eq!(string(default_of(&m, "schedule_expression")), "rate(6 hours)");
    assert!(number(&m, default_of(&m, "log_retention_days")) > 0.0);

    let env = text(local(&m, "publisher_environment"));
    for key in [
        "TRIVY_MIRROR_TO",
        "TRIVY_MIRROR_BASE_URL",
        "TRIVY_MIRROR_LOG_FORMAT",
        "TRIVY_MIRROR_ONLY",
        "TRIVY_MIRROR_SOURCE",
    ] {
        assert!(env.contains(key), "{key} missing from the publisher environment");
    }
    assert!(env.contains("local.mirror_url"), "base URL comes from the CDN host");
    assert_eq!(text(local(&m, "mirror_url")), "\"https://${local.mirror_host}\"");
    assert!(text(local(&m, "publisher_to")).starts_with("\"s3://${aws_s3_bucket.this.id}"));

    let schedule = resource(&m, "aws_scheduler_schedule", "publisher").body();
    assert_eq!(text(req(schedule, "schedule_expression")), "var.schedule_expression");
    assert_eq!(text(req(one(schedule, "target"), "arn")), "aws_lambda_function.publisher[0].arn");
}

#[test]
fn aws_credentials_flag_is_not_sensitive() {
    // The credentials are sensitive; whether there are any is not. A sensitive flag made every output
    // that depends on it fail in a root module ("Output refers to sensitive values").
    let m = module("aws");
    assert_eq!(squashed(local(&m, "basic_auth_enabled")), "nonsensitive(length(var.basic_auth_credentials)>0)");
    let vex = m.iter().find(|b| b.identifier() == "output" && label(b, 0) == "vex_repository_yaml").expect("output");
    assert!(text(req(vex.body(), "value")).contains("local.basic_auth_enabled"));
    assert!(boolean(req(variable(&m, "basic_auth_credentials"), "sensitive")));
}

/// The registry error document the AWS and GCP modules serve for every 404.
fn error_document(cloud: &str) -> serde_json::Value {
    let text = read(&module_dir(cloud).join("errors/404.json"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{cloud} errors/404.json: {e}"))
}

#[test]
fn aws_missing_objects_answer_registry_json() {
    let m = module("aws");
    // BLOB_UNKNOWN: the one 404 code on which Trivy tries its next repository (shouldTryOtherRepo).
    assert_eq!(error_document("aws")["errors"][0]["code"], "BLOB_UNKNOWN");
    assert_eq!(text(local(&m, "not_found_document")), "file(\"${path.module}/errors/404.json\")");
    assert_eq!(string(local(&m, "not_found_viewer_path")), "/_trivy-mirror/404.json");
    assert_eq!(text(local(&m, "not_found_key")), "\"${local.key_prefix}_trivy-mirror/404.json\"");

    let dist = resource(&m, "aws_cloudfront_distribution", "this").body();
    let not_found = nested(dist, "custom_error_response")
        .into_iter()
        .find(|e| number(&m, req(e, "error_code")) == 404.0)
        .expect("a custom_error_response for 404");
    assert_eq!(text(req(not_found, "response_page_path")), "local.not_found_viewer_path");
    assert_eq!(number(&m, req(not_found, "response_code")), 404.0, "the status stays 404");
    assert!(number(&m, req(not_found, "error_caching_min_ttl")) <= 60.0);

    // Terraform writes the object (the publisher does not), under the prefix, as JSON.
    let object = resource(&m, "aws_s3_object", "not_found").body();
    assert_eq!(text(req(object, "key")), "local.not_found_key");
    assert_eq!(text(req(object, "content")), "local.not_found_document");
    assert_eq!(string(req(object, "content_type")), "application/json");
    assert_eq!(text(req(object, "bucket")), "aws_s3_bucket.this.id");
}

#[test]
fn aws_function_size_is_checked_before_apply() {
    let m = module("aws");
    assert_eq!(number(&m, local(&m, "cloudfront_function_max_bytes")), 10240.0);
    let f = resource(&m, "aws_cloudfront_function", "viewer_request").body();
    assert!(
        preconditions(f).contains(
            &"nonsensitive(length(local.viewer_request_code))<=local.cloudfront_function_max_bytes".to_owned()
        ),
        "{:?}",
        preconditions(f)
    );
}

// ---------------------------------------------------------------------------------------------
// GCP
// ---------------------------------------------------------------------------------------------

#[test]
fn gcp_bucket_is_private() {
    let m = module("gcp");
    let bucket = resource(&m, "google_storage_bucket", "this").body();
    assert_eq!(string(req(bucket, "public_access_prevention")), "enforced");
    assert!(boolean(req(bucket, "uniform_bucket_level_access")));
    let all = m.iter().map(|b| format!("{:?}", b)).collect::<String>();
    assert!(!all.contains("allUsers") && !all.contains("allAuthenticatedUsers"), "no public IAM member");
    assert!(resources(&m, "google_storage_bucket_acl").is_empty());
    assert!(resources(&m, "google_storage_default_object_acl").is_empty());
    let read = resource(&m, "google_storage_bucket_iam_member", "cdn_read").body();
    assert_eq!(string(req(read, "role")), "roles/storage.objectViewer");
    assert!(text(req(read, "member")).contains("local.cdn_fill_service_account"));
    assert!(text(local(&m, "cdn_fill_service_account")).contains("@cloud-cdn-fill.iam.gserviceaccount.com"));
    // HTTPS only, TLS >= 1.2.
    let rule = resource(&m, "google_compute_global_forwarding_rule", "https").body();
    assert_eq!(string(req(rule, "port_range")), "443");
    assert_eq!(resources(&m, "google_compute_global_forwarding_rule").len(), 1);
    let ssl = resource(&m, "google_compute_ssl_policy", "this").body();
    assert_eq!(string(req(ssl, "min_tls_version")), "TLS_1_2");
}

#[test]
fn gcp_cdn_routes_and_caching() {
    let m = module("gcp");
    for name in ["immutable", "mutable"] {
        let b = resource(&m, "google_compute_backend_bucket", name).body();
        assert!(boolean(req(b, "enable_cdn")), "{name}");
        assert_eq!(string(req(b, "compression_mode")), "DISABLED", "{name}");
        assert_eq!(text(req(b, "bucket_name")), "google_storage_bucket.this.name", "{name}");
    }
    let imm = one(resource(&m, "google_compute_backend_bucket", "immutable").body(), "cdn_policy");
    assert_eq!(string(req(imm, "cache_mode")), "FORCE_CACHE_ALL");
    assert!(number(&m, req(imm, "default_ttl")) >= 86400.0);
    assert!(validations(&m, "immutable_cache_ttl_seconds").contains(">= 86400"));
    let mutable = one(resource(&m, "google_compute_backend_bucket", "mutable").body(), "cdn_policy");
    assert!(number(&m, req(mutable, "max_ttl")) <= 600.0);
    assert!(number(&m, req(mutable, "default_ttl")) <= 600.0);
    assert!(validations(&m, "tag_max_ttl_seconds").contains("<= 600"));

    let url_map = resource(&m, "google_compute_url_map", "this").body();
    let matcher = one(url_map, "path_matcher");
    let rules = nested(matcher, "route_rules");
    let ping = rules
        .iter()
        .find(|r| {
            nested(r, "match_rules").iter().any(|mr| attr(mr, "full_path_match").is_some_and(|e| text(e) == "\"/v2/\""))
        })
        .expect("a route for /v2/");
    let rewrite = one(one(ping, "route_action"), "url_rewrite");
    assert_eq!(text(req(rewrite, "path_prefix_rewrite")), "\"/${local.key_prefix}v2/index.json\"");
    assert_eq!(number(&m, req(ping, "priority")), 1.0, "the ping route is evaluated first");

    let immutable_route = rules
        .iter()
        .find(|r| text(req(r, "service")) == "google_compute_backend_bucket.immutable.id")
        .expect("a route to the immutable backend");
    assert_eq!(text(req(one(immutable_route, "match_rules"), "prefix_match")), "route_rules.value");
    let prefixes = text(local(&m, "immutable_path_prefixes"));
    assert!(prefixes.contains("/blobs/") && prefixes.contains("/manifests/sha256:"), "{prefixes}");
}

#[test]
fn gcp_publisher_is_limited_to_its_bucket() {
    let m = module("gcp");
    let member = resource(&m, "google_storage_bucket_iam_member", "publisher").body();
    assert_eq!(text(req(member, "bucket")), "google_storage_bucket.this.name");
    assert_eq!(string(req(member, "role")), "roles/storage.objectUser");
    for kind in [
        "google_project_iam_member",
        "google_project_iam_binding",
        "google_project_iam_policy",
        "google_storage_bucket_iam_binding",
        "google_storage_bucket_iam_policy",
    ] {
        assert!(resources(&m, kind).is_empty(), "{kind} must not be used");
    }
    let members: Vec<&Block> = resources(&m, "google_storage_bucket_iam_member");
    assert_eq!(members.len(), 2, "the CDN reader and the publisher");

    let job = resource(&m, "google_cloud_run_v2_job", "publisher").body();
    let container = one(one(one(job, "template"), "template"), "containers");
    assert_eq!(text(req(container, "image")), "var.image");
    assert_eq!(string(default_of(&m, "schedule")), "0 */6 * * *");
    let env = text(local(&m, "publisher_environment"));
    for key in ["TRIVY_MIRROR_TO", "TRIVY_MIRROR_BASE_URL", "TRIVY_MIRROR_LOG_FORMAT"] {
        assert!(env.contains(key), "{key}");
    }
    assert!(text(local(&m, "publisher_to")).starts_with("\"gs://"));
    let invoker = resource(&m, "google_cloud_run_v2_job_iam_member", "scheduler").body();
    assert_eq!(string(req(invoker, "role")), "roles/run.invoker");
    let sched = resource(&m, "google_cloud_scheduler_job", "publisher").body();
    assert!(text(req(one(sched, "http_target"), "uri")).ends_with(":run\""));
    assert!(resources(&m, "google_logging_project_bucket_config").len() == 1, "log retention");
}

#[test]
fn gcp_missing_objects_answer_registry_json() {
    let m = module("gcp");
    assert_eq!(error_document("gcp"), error_document("aws"), "one error document for both clouds");
    assert_eq!(text(local(&m, "not_found_object")), "\"${local.key_prefix}_trivy-mirror/404.json\"");
    let url_map = resource(&m, "google_compute_url_map", "this").body();
    let policy = one(url_map, "default_custom_error_response_policy");
    assert_eq!(text(req(policy, "error_service")), "google_compute_backend_bucket.mutable.id");
    let rule = one(policy, "error_response_rule");
    assert_eq!(strings(req(rule, "match_response_codes")), ["404"]);
    assert_eq!(text(req(rule, "path")), "\"/${local.not_found_object}\"", "a full object path in the bucket");
    assert_eq!(number(&m, req(rule, "override_response_code")), 404.0);
    let object = resource(&m, "google_storage_bucket_object", "not_found").body();
    assert_eq!(text(req(object, "name")), "local.not_found_object");
    assert_eq!(text(req(object, "content")), "local.not_found_document");
    assert_eq!(string(req(object, "content_type")), "application/json");
    // default_custom_error_response_policy left google-beta in provider 6.41.
    let tf = m.iter().find(|b| b.identifier() == "terraform").expect("terraform block");
    let google = text(req(one(tf.body(), "required_providers"), "google"));
    assert!(google.contains(">= 6.41"), "{google}");
}

#[test]
fn gcp_cdn_fill_agent_exists_before_the_bucket_binding() {
    // The service-N@cloud-cdn-fill account exists only once a signed URL key is on a backend bucket.
    let m = module("gcp");
    let key = resource(&m, "google_compute_backend_bucket_signed_url_key", "cdn_fill").body();
    assert_eq!(squashed(req(key, "count")), "var.cdn_fill_service_account==null?1:0");
    assert_eq!(text(req(key, "key_value")), "random_id.cdn_fill_key[0].b64_url");
    assert_eq!(number(&m, req(resource(&m, "random_id", "cdn_fill_key").body(), "byte_length")), 16.0, "128-bit key");
    let read = resource(&m, "google_storage_bucket_iam_member", "cdn_read").body();
    assert!(text(req(read, "depends_on")).contains("google_compute_backend_bucket_signed_url_key.cdn_fill"));
}

#[test]
fn gcp_certificate_and_ttl_changes_apply_cleanly() {
    let m = module("gcp");
    let cert = resource(&m, "google_compute_managed_ssl_certificate", "this").body();
    let lifecycle = one(cert, "lifecycle");
    assert!(boolean(req(lifecycle, "create_before_destroy")), "the proxy keeps a certificate while domains change");
    assert!(squashed(req(cert, "name")).contains("sha256(join(\",\",var.domain_names))"), "a new name for new domains");
    let mutable = resource(&m, "google_compute_backend_bucket", "mutable").body();
    assert!(preconditions(mutable).contains(&"var.tag_cache_ttl_seconds<=var.tag_max_ttl_seconds".to_owned()));
    assert_eq!(text(req(one(mutable, "cdn_policy"), "client_ttl")), "var.tag_cache_ttl_seconds");
}

// ---------------------------------------------------------------------------------------------
// Azure
// ---------------------------------------------------------------------------------------------

#[test]
fn azure_storage_is_locked_down() {
    let m = module("azure");
    let sa = resource(&m, "azurerm_storage_account", "this").body();
    assert_eq!(string(req(sa, "min_tls_version")), "TLS1_2");
    assert!(boolean(req(sa, "https_traffic_only_enabled")));
    assert!(!boolean(req(sa, "shared_access_key_enabled")));
    assert!(boolean(req(sa, "infrastructure_encryption_enabled")));
    let rules = one(sa, "network_rules");
    assert_eq!(text(req(rules, "default_action")), "local.private_origin ? \"Deny\" : \"Allow\"");
    let blob = one(sa, "blob_properties");
    assert!(!nested(blob, "delete_retention_policy").is_empty(), "soft delete");
    // Blob-level read only (no listing): Front Door cannot authenticate to a blob origin.
    let container = resource(&m, "azurerm_storage_container", "this").body();
    assert_eq!(string(req(container, "container_access_type")), "blob");
    // Private by default: Premium with the Private Link origin.
    assert_eq!(string(default_of(&m, "front_door_sku_name")), "Premium_AzureFrontDoor");
    assert!(boolean(default_of(&m, "private_link_origin")));
    let origin = resource(&m, "azurerm_cdn_frontdoor_origin", "this").body();
    assert!(!nested(origin, "private_link").is_empty());
}

fn azure_rule<'a>(m: &'a [Block], name: &str) -> (&'a Body, &'a Body) {
    let rule = resource(m, "azurerm_cdn_frontdoor_rule", name).body();
    (rule, one(rule, "actions"))
}

#[test]
fn azure_cdn_routes_and_caching() {
    let m = module("azure");
    let route = resource(&m, "azurerm_cdn_frontdoor_route", "this").body();
    assert!(!boolean(req(one(route, "cache"), "compression_enabled")));
    assert_eq!(string(req(route, "forwarding_protocol")), "HttpsOnly");

    let (ping, actions) = azure_rule(&m, "ping");
    assert_eq!(number(&m, req(ping, "order")), 1.0);
    assert_eq!(string(req(ping, "behavior_on_match")), "Stop");
    let cond = one(one(ping, "conditions"), "url_path_condition");
    assert!(strings(req(cond, "match_values")).contains(&"v2/".to_owned()));
    let rw = one(actions, "url_rewrite_action");
    assert_eq!(text(req(rw, "destination")), "\"${local.origin_root}v2/index.json\"");

    for name in ["ping", "immutable", "mutable"] {
        let (_, actions) = azure_rule(&m, name);
        let over = one(actions, "route_configuration_override_action");
        assert!(!boolean(req(over, "compression_enabled")), "{name}: no compression");
    }
    let (_, imm) = azure_rule(&m, "immutable");
    let over = one(imm, "route_configuration_override_action");
    assert_eq!(text(req(over, "cache_duration")), "var.immutable_cache_ttl");
    let days: u32 = string(default_of(&m, "immutable_cache_ttl"))
        .split('.')
        .next()
        .and_then(|d| d.parse().ok())
        .expect("d.HH:MM:SS");
    assert!(days >= 1);
    let tag = string(default_of(&m, "tag_cache_ttl"));
    assert!(tag.starts_with("00:0") || tag == "00:10:00", "{tag} must be at most ten minutes");
    // The prefix rewrite is the last rule, so earlier conditions see viewer paths.
    let orders: Vec<f64> =
        resources(&m, "azurerm_cdn_frontdoor_rule").iter().map(|r| number(&m, req(r.body(), "order"))).collect();
    let (prefix, _) = azure_rule(&m, "prefix");
    assert_eq!(number(&m, req(prefix, "order")), orders.iter().copied().fold(0.0, f64::max));
}

#[test]
fn azure_publisher_is_limited_to_its_container() {
    let m = module("azure");
    let ra = resource(&m, "azurerm_role_assignment", "publisher").body();
    assert_eq!(string(req(ra, "role_definition_name")), "Storage Blob Data Contributor");
    assert!(text(req(ra, "scope")).contains("/blobServices/default/containers/${azurerm_storage_container.this.name}"));
    assert_eq!(resources(&m, "azurerm_role_assignment").len(), 1);
    let job = resource(&m, "azurerm_container_app_job", "publisher").body();
    assert_eq!(text(req(one(job, "schedule_trigger_config"), "cron_expression")), "var.schedule");
    assert_eq!(string(default_of(&m, "schedule")), "0 */6 * * *");
    let env = text(local(&m, "publisher_environment"));
    for key in ["TRIVY_MIRROR_TO", "TRIVY_MIRROR_BASE_URL", "AZURE_STORAGE_ACCOUNT_NAME", "AZURE_CLIENT_ID"] {
        assert!(env.contains(key), "{key}");
    }
    assert!(text(local(&m, "publisher_to")).starts_with("\"az://"));
    let ws = resource(&m, "azurerm_log_analytics_workspace", "publisher").body();
    assert_eq!(text(req(ws, "retention_in_days")), "var.log_retention_days");
}

#[test]
fn azure_waf_and_rule_set_make_basic_auth_work() {
    let m = module("azure");
    assert_eq!(squashed(local(&m, "basic_auth_enabled")), "nonsensitive(length(var.basic_auth_credentials)>0)");
    let waf = resource(&m, "azurerm_cdn_frontdoor_firewall_policy", "this").body();
    let dynamic_rules: Vec<&Block> =
        waf.blocks().filter(|b| b.identifier() == "dynamic" && label(b, 0) == "custom_rule").collect();
    assert_eq!(dynamic_rules.len(), 2);
    for rule in &dynamic_rules {
        // Terraform < 1.10 refuses a sensitive for_each (hashicorp/terraform#34071).
        let for_each = text(req(rule.body(), "for_each"));
        assert!(!for_each.contains("var.basic_auth_credentials"), "{for_each}");
    }
    // The IP allow-list matches the TCP peer, not X-Forwarded-For.
    let rules = nested(waf, "custom_rule");
    let allow = rules.iter().find(|r| string(req(r, "name")) == "AllowList").expect("AllowList rule");
    assert_eq!(string(req(one(allow, "match_condition"), "match_variable")), "SocketAddr");
    assert!(!read(&module_dir("azure").join("cdn.tf")).contains("\"RemoteAddr\""));

    // After the WAF has checked it, the Authorization header is deleted before the blob origin:
    // in Ping (which stops rule processing) and in Prefix (every other request).
    for name in ["ping", "prefix"] {
        let (_, actions) = azure_rule(&m, name);
        let deletes = nested(actions, "request_header_action")
            .iter()
            .any(|h| string(req(h, "header_action")) == "Delete" && string(req(h, "header_name")) == "Authorization");
        assert!(deletes, "rule {name} must delete the Authorization header");
    }
}

#[test]
fn azure_public_blob_endpoint_is_never_silent() {
    let m = module("azure");
    let sa = resource(&m, "azurerm_storage_account", "this").body();
    assert!(preconditions(sa).contains(&"local.private_origin||var.allow_public_blob_endpoint".to_owned()));
    assert!(!boolean(default_of(&m, "allow_public_blob_endpoint")));
    // Storage IP rules: plain addresses, no /31 or /32.
    let ips = validations(&m, "storage_allowed_ips");
    assert!(ips.contains("/31") && ips.contains("/32"), "{ips}");
    // Front Door's maximum cache duration is 365 days; there is no default/max TTL pair to order.
    assert!(validations(&m, "immutable_cache_ttl").contains("<= 365"));
}

#[test]
fn azure_example_skips_the_storage_data_plane() {
    // Behind the storage firewall azurerm 4.x would still call the blob data plane and get 403.
    let blocks = load_dir(&terraform_dir().join("examples/azure"));
    let provider =
        blocks.iter().find(|b| b.identifier() == "provider" && label(b, 0) == "azurerm").expect("provider azurerm");
    let storage = one(one(provider.body(), "features"), "storage");
    assert!(!boolean(req(storage, "data_plane_available")));
    let main = read(&terraform_dir().join("examples/azure/main.tf"));
    assert!(!main.contains("no /31 or /32)"), "the example must not suggest a /24 is needed");
}

// ---------------------------------------------------------------------------------------------
// Conventions shared by the three modules
// ---------------------------------------------------------------------------------------------

#[test]
fn modules_follow_public_module_conventions() {
    for cloud in ["aws", "gcp", "azure"] {
        let dir = module_dir(cloud);
        for file in ["versions.tf", "variables.tf", "outputs.tf", "README.md"] {
            assert!(dir.join(file).is_file(), "{cloud}: {file} missing");
        }
        let m = module(cloud);
        let tf = m.iter().find(|b| b.identifier() == "terraform").expect("terraform block");
        let providers = one(tf.body(), "required_providers");
        assert!(
            providers.attributes().all(|p| text(p.expr()).contains("version")),
            "{cloud}: provider versions pinned"
        );
        assert!(attr(tf.body(), "required_version").is_some());

        let readme = read(&dir.join("README.md"));
        for v in m.iter().filter(|b| b.identifier() == "variable") {
            let name = label(v, 0);
            assert!(attr(v.body(), "description").is_some(), "{cloud}: variable {name} has no description");
            assert!(attr(v.body(), "type").is_some(), "{cloud}: variable {name} has no type");
            assert!(readme.contains(&format!("`{name}`")), "{cloud}: README does not document input {name}");
        }
        for o in m.iter().filter(|b| b.identifier() == "output") {
            let name = label(o, 0);
            assert!(attr(o.body(), "description").is_some(), "{cloud}: output {name} has no description");
            assert!(readme.contains(&format!("`{name}`")), "{cloud}: README does not document output {name}");
        }
    }
}

#[test]
fn outputs_give_the_trivy_settings() {
    for cloud in ["aws", "gcp", "azure"] {
        let m = module(cloud);
        let out = |name: &str| -> String {
            let o = m
                .iter()
                .find(|b| b.identifier() == "output" && label(b, 0) == name)
                .unwrap_or_else(|| panic!("{cloud}: output {name} missing"));
            text(req(o.body(), "value"))
        };
        let flags = out("trivy_flags");
        for f in [
            "--db-repository ${local.mirror_host}/${local.repositories.db}:2",
            "--java-db-repository ${local.mirror_host}/${local.repositories.java_db}:1",
            "--checks-bundle-repository ${local.mirror_host}/${local.repositories.checks}:2",
        ] {
            assert!(flags.contains(f), "{cloud}: {f} not in {flags}");
        }
        // Trivy <= 0.68 asks for trivy-checks:1.
        let legacy = out("trivy_flags_pre_0_69");
        assert!(legacy.ends_with("${local.repositories.checks}:1\""), "{cloud}: {legacy}");
        assert!(out("trivy_yaml_registry_mirrors").contains("mirrors:"));
        let vex = out("vex_repository_yaml");
        assert!(vex.contains("repositories:") && vex.contains("enabled: false"), "{cloud}: {vex}");
        assert!(!out("mirror_host").is_empty());
        let repos = text(local(&m, "repositories"));
        for r in ["aquasecurity/trivy-db", "aquasecurity/trivy-java-db", "aquasecurity/trivy-checks"] {
            assert!(repos.contains(r), "{cloud}: {r}");
        }
    }
}

#[test]
fn examples_use_the_modules() {
    for cloud in ["aws", "gcp", "azure"] {
        let dir = terraform_dir().join("examples").join(cloud);
        let blocks = load_dir(&dir);
        let m = blocks
            .iter()
            .find(|b| b.identifier() == "module")
            .unwrap_or_else(|| panic!("{cloud} example has no module block"));
        assert_eq!(string(req(m.body(), "source")), format!("../../modules/{cloud}"));
        assert!(dir.join("README.md").is_file(), "{cloud} example README");
    }
}

// ---------------------------------------------------------------------------------------------
// External scanners, when installed (scripts/install-test-deps.sh puts checkov and trivy under
// .tools/; terraform comes with the machine image). A missing tool is reported, not hidden.
// ---------------------------------------------------------------------------------------------

fn on_path(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(bin)).find(|p| p.is_file())
}

fn run(cmd: &mut std::process::Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), s)
}

#[test]
fn terraform_fmt_is_clean() {
    let Some(terraform) = on_path("terraform") else {
        eprintln!("NOTICE: terraform is not installed: `terraform fmt -check -recursive terraform/` was NOT run");
        return;
    };
    let (ok, out) = run(std::process::Command::new(terraform)
        .args(["fmt", "-check", "-recursive", "-diff"])
        .arg(terraform_dir())
        .env("CHECKPOINT_DISABLE", "1"));
    assert!(ok, "terraform fmt -check failed:\n{out}");
}

#[test]
fn checkov_finds_no_failed_check() {
    let checkov = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/checkov/bin/checkov");
    if !checkov.is_file() {
        eprintln!("NOTICE: checkov is not installed (.tools/checkov): the checkov scan was NOT run");
        return;
    }
    let (ok, out) = run(std::process::Command::new(checkov).arg("-d").arg(terraform_dir()).args([
        "--framework",
        "terraform",
        "--quiet",
        "--compact",
        "--skip-download",
    ]));
    assert!(ok && out.contains("Failed checks: 0"), "checkov reported failures:\n{out}");
}

#[test]
fn trivy_config_finds_nothing_high_or_critical() {
    let trivy = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/trivy-0.76.0/bin/trivy");
    if !trivy.is_file() {
        eprintln!("NOTICE: trivy is not installed (.tools/trivy-0.76.0): `trivy config` was NOT run");
        return;
    }
    let cache = tempfile::tempdir().expect("cache dir");
    let (ok, out) = run(std::process::Command::new(trivy)
        .args(["config", "--skip-check-update", "--severity", "HIGH,CRITICAL", "--exit-code", "1", "--cache-dir"])
        .arg(cache.path())
        .arg(terraform_dir())
        .env("TRIVY_SKIP_VERSION_CHECK", "true")
        .env("TRIVY_DISABLE_TELEMETRY", "true"));
    assert!(ok, "trivy config reported HIGH or CRITICAL findings:\n{out}");
}
