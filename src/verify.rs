//! `trivy-mirror verify`: check a served mirror over HTTP(S) exactly as Trivy would use
//! it, and say precisely what is wrong. Works against a CDN in front of a bucket, against
//! `serve`, and against a registry destination.
//!
//! Per artifact: the tag resolves; the manifest's Content-Type is its mediaType; its
//! shape is what Trivy accepts; the layer blob streams with the right sha256 and size and
//! no Content-Encoding; trivy-db and java-db carry a `metadata.json` with the right
//! schema Version and a `NextUpdate` still in the future; Cache-Control is sane (tags
//! short, blobs long). For VEX: the manifest parses, its locations point at the mirror,
//! each archive answers HEAD with a real length and contains `index.json` at the subdir.
//! With keys (`verify --key`): every tag's cosign signature, as cosign checks it (present,
//! valid under one of the keys, for the digest the tag resolves to), VEX Hub's included.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use futures_util::{StreamExt as _, TryStreamExt as _};
use jiff::Timestamp;
use reqwest::header::{CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use serde::Serialize;

use crate::artifact::{Kind, OCI_ARTIFACTS, OciArtifact};
use crate::db_metadata::DbMetadata;
use crate::error::{Error, Help, Setting};
use crate::http::{ClientOptions, read_bounded, status_error, transport_error};
use crate::manifest::{self, CheckedManifest};
use crate::oci::MANIFEST_ACCEPT;
use crate::registry::{RegistryClient, RegistryOptions, pull_scope};
use crate::stream::{fan_out, verify as verifying};

/// Longest max-age accepted on mutable objects (tags): longer, and clients see a new
/// database that late.
pub const MAX_TAG_MAX_AGE: u64 = 3600;

/// What to check.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// How to reach and authenticate to the mirror.
    pub registry: RegistryOptions,
    /// Namespace of the repositories (`aquasecurity`).
    pub namespace: String,
    /// Which kinds to check.
    pub only: BTreeSet<Kind>,
    /// The VEX repository URL users configure in Trivy, if VEX is to be checked.
    pub vex_url: Option<String>,
    /// "Now", for the NextUpdate check.
    pub now: Timestamp,
    /// Public keys every tag's signature must verify under; empty: signatures unchecked.
    pub keys: Vec<crate::signing::PublicKey>,
}

/// One check's result.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// What was checked (`manifest`, `blob`, `freshness`, …).
    pub check: &'static str,
    /// What it was checked on (`trivy-db:2`, a URL).
    pub target: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was seen, and for failures what to do.
    pub detail: String,
}

/// All findings.
#[derive(Clone, Debug, Default, Serialize)]
pub struct VerifyReport {
    /// Every check, in order.
    pub findings: Vec<Finding>,
}

impl VerifyReport {
    /// True when every check passed.
    pub fn ok(&self) -> bool {
        self.findings.iter().all(|f| f.ok)
    }

    fn push(&mut self, check: &'static str, target: impl Into<String>, result: Result<String, String>) {
        let (ok, detail) = match result {
            Ok(d) => (true, d),
            Err(d) => (false, d),
        };
        self.findings.push(Finding { check, target: target.into(), ok, detail });
    }

    /// One line per check.
    pub fn table(&self) -> String {
        let mut out = String::new();
        for f in &self.findings {
            let _ =
                writeln!(out, "{:<4} {:<10} {:<28} {}", if f.ok { "ok" } else { "FAIL" }, f.check, f.target, f.detail);
        }
        let failed = self.findings.iter().filter(|f| !f.ok).count();
        let _ = writeln!(out, "{} checks, {failed} failed", self.findings.len());
        out
    }
}

/// Split `https://host[:port]` / `host[:port]` into the registry host and whether the
/// scheme was plain http.
pub fn parse_mirror_url(url: &str) -> Result<(String, bool), Error> {
    let (http, rest) = match url.split_once("://") {
        Some(("http", r)) => (true, r),
        Some(("https", r)) => (false, r),
        Some(_) => {
            return Err(Error::config(Setting::MirrorUrl, url, "use https://host, http://host or host[:port]"));
        }
        None => (false, url),
    };
    let host = rest.trim_end_matches('/');
    if host.is_empty() || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b)) {
        return Err(Error::config(
            Setting::MirrorUrl,
            url,
            "a registry is addressed by host only (Trivy builds https://HOST/v2/…); no path or credentials",
        ));
    }
    Ok((host.to_string(), http))
}

/// Why the ping failed, in one line with what to do. The CDN mapping is the fix only when
/// a server answered with something else; when nothing answered, the address is wrong or
/// nothing serves it (or the proxy in between is down, or its certificate is not trusted).
fn ping_failure(e: Error) -> String {
    let help = match &e {
        Error::Http { .. } => {
            "Trivy needs 200 or 401 on /v2/: map /v2/ to the v2/index.json object at the CDN".to_string()
        }
        Error::Transport { help: Some(help), .. } => help.to_string(),
        _ => Help::NothingListens.to_string(),
    };
    format!("{e} — {help}")
}

/// Run every check against the mirror at `host`.
pub async fn verify(host: &str, options: &VerifyOptions) -> VerifyReport {
    let mut report = VerifyReport::default();
    let registry = match RegistryClient::new(host, options.registry.clone()) {
        Ok(r) => r,
        Err(e) => {
            report.push("setup", host, Err(e.to_string()));
            return report;
        }
    };
    let ping =
        registry.ping().await.map(|()| "GET /v2/ answers 200 or a 401 challenge".to_string()).map_err(ping_failure);
    let reachable = ping.is_ok();
    report.push("ping", format!("{host}/v2/"), ping);
    if reachable {
        for artifact in OCI_ARTIFACTS.iter().filter(|a| options.only.contains(&a.kind)) {
            check_artifact(&registry, artifact, options, &mut report).await;
        }
        if options.only.contains(&Kind::Vex) && !options.keys.is_empty() {
            let vex = &crate::artifact::VEX_ARTIFACT;
            let repo = crate::oci::join_repository(&options.namespace, vex.name);
            let result = match registry.get_manifest(&repo, vex.tag).await {
                Ok(Some((raw, _))) => {
                    check_signature(&registry, &repo, &crate::oci::Digest::of(&raw), &options.keys).await
                }
                Ok(None) => Err(format!("{vex} is not published as an OCI artifact, so it cannot carry a signature")),
                Err(e) => Err(e.to_string()),
            };
            report.push("signature", vex.label(), result);
        }
    }
    if options.only.contains(&Kind::Vex)
        && let Some(url) = &options.vex_url
    {
        check_vex(url, options, &mut report).await;
    }
    report
}

fn max_age(cache_control: &str) -> Option<u64> {
    cache_control.split(',').find_map(|d| d.trim().strip_prefix("max-age=").and_then(|v| v.trim().parse().ok()))
}

fn header(resp: &reqwest::Response, name: reqwest::header::HeaderName) -> String {
    resp.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
}

async fn check_artifact(
    registry: &RegistryClient,
    artifact: &OciArtifact,
    options: &VerifyOptions,
    report: &mut VerifyReport,
) {
    let label = artifact.label();
    let repo = crate::oci::join_repository(&options.namespace, artifact.name);
    let scope = pull_scope(&repo);
    let resp =
        match registry.get_raw(&format!("{repo}/manifests/{}", artifact.tag), &scope, Some(MANIFEST_ACCEPT)).await {
            Ok(r) => r,
            Err(e) => {
                return report.push("manifest", &label, Err(format!("the tag does not resolve: {e}")));
            }
        };
    let content_type = header(&resp, CONTENT_TYPE);
    let cache_control = header(&resp, CACHE_CONTROL);
    let url = resp.url().to_string();
    let body = match read_bounded(resp, crate::oci::MAX_MANIFEST_BYTES, "GET", &url).await {
        Ok(b) => b,
        Err(e) => return report.push("manifest", &label, Err(e.to_string())),
    };
    let checked = match manifest::check(artifact, body, None) {
        Ok(m) => m,
        Err(e) => return report.push("manifest", &label, Err(e.to_string())),
    };
    report.push(
        "manifest",
        &label,
        if content_type.split(';').next().unwrap_or("").trim() == checked.media_type {
            Ok(format!("{} ({})", checked.digest, checked.media_type))
        } else {
            Err(format!(
                "Content-Type is {content_type:?}, the manifest's mediaType is {:?}: skopeo, crane and containerd rely on it",
                checked.media_type
            ))
        },
    );
    report.push(
        "tag-cache",
        &label,
        match max_age(&cache_control) {
            Some(age) if age <= MAX_TAG_MAX_AGE => Ok(format!("Cache-Control: {cache_control}")),
            Some(age) => Err(format!(
                "Cache-Control max-age={age} on a tag: clients see new databases up to {age} s late (keep it ≤ {MAX_TAG_MAX_AGE})"
            )),
            // A registry answers tags fresh without any Cache-Control; a CDN in front of a
            // bucket applies its default TTL instead, which the publisher avoids by storing one.
            None => Ok(format!("Cache-Control: {cache_control:?}")),
        },
    );
    if !options.keys.is_empty() {
        report.push("signature", &label, check_signature(registry, &repo, &checked.digest, &options.keys).await);
    }
    check_layer(registry, artifact, &repo, &scope, &checked, options, report).await;
}

/// The cosign signature of `digest` in `repo`, checked as cosign checks it: the
/// `sha256-<hex>.sig` tag resolves, one of its payloads verifies under one of `keys`, and
/// that payload names `digest`.
async fn check_signature(
    registry: &RegistryClient,
    repo: &str,
    digest: &crate::oci::Digest,
    keys: &[crate::signing::PublicKey],
) -> Result<String, String> {
    use crate::error::SignatureProblem;
    let tag = crate::signing::signature_tag(digest);
    let raw = match registry.get_manifest(repo, &tag).await {
        Ok(Some((raw, _))) => raw,
        Ok(None) => return Err(format!("{} (no tag {tag})", SignatureProblem::Missing)),
        Err(e) => return Err(e.to_string()),
    };
    let parsed = crate::signing::parse(&raw).map_err(|p| p.to_string())?;
    let mut problem = SignatureProblem::WrongKey;
    for layer in &parsed.layers {
        let resp = registry.get_blob(repo, &layer.payload.digest).await.map_err(|e| e.to_string())?;
        let url = resp.url().to_string();
        let payload = read_bounded(resp, crate::signing::MAX_PAYLOAD_BYTES as usize, "GET", &url)
            .await
            .map_err(|e| e.to_string())?;
        match crate::signing::check(layer, &payload, digest, keys) {
            Ok(key) => return Ok(format!("{tag} verified with {}", key.origin)),
            Err(p) => problem = p,
        }
    }
    Err(problem.to_string())
}

async fn check_layer(
    registry: &RegistryClient,
    artifact: &OciArtifact,
    repo: &str,
    scope: &str,
    manifest: &CheckedManifest,
    options: &VerifyOptions,
    report: &mut VerifyReport,
) {
    let label = artifact.label();
    let layer = &manifest.layer;
    let resp = match registry.get_raw(&format!("{repo}/blobs/{}", layer.digest), scope, None).await {
        Ok(r) => r,
        Err(e) => {
            return report.push("blob", &label, Err(format!("layer {} is not served: {e}", layer.digest)));
        }
    };
    let encoding = header(&resp, CONTENT_ENCODING);
    if !encoding.is_empty() && encoding != "identity" {
        return report.push(
            "blob",
            &label,
            Err(format!(
                "the layer is served with Content-Encoding: {encoding}; Go clients decode it and the digest check fails — never store blobs with a Content-Encoding, and disable CDN compression"
            )),
        );
    }
    let length = header(&resp, CONTENT_LENGTH);
    if !length.is_empty() && length != layer.size.to_string() {
        return report.push(
            "blob",
            &label,
            Err(format!("Content-Length {length} differs from the descriptor size {}", layer.size)),
        );
    }
    let cache_control = header(&resp, CACHE_CONTROL);
    let url = resp.url().to_string();
    let stream = verifying(
        resp.bytes_stream().map_err(move |e| transport_error("GET", &url, &e)),
        layer.clone(),
        format!("layer of {label}"),
    );
    let inspect = matches!(artifact.kind, Kind::Db | Kind::JavaDb);
    let (mut branches, driver) = fan_out(stream, if inspect { 2 } else { 1 });
    let mut drain = branches.remove(0);
    let drained = async move { while drain.next().await.is_some() {} };
    let metadata = async {
        match branches.pop() {
            Some(b) => crate::db_metadata::metadata_from_stream(b).await,
            None => None,
        }
    };
    let (pulled, (), metadata) = tokio::join!(driver, drained, metadata);
    match pulled {
        Ok(()) => report.push("blob", &label, Ok(format!("{} bytes, sha256 verified", layer.size))),
        Err(e) => return report.push("blob", &label, Err(e.to_string())),
    }
    let cc_ok = cache_control.contains("immutable") || max_age(&cache_control).is_some_and(|a| a >= 86_400);
    report.push(
        "blob-cache",
        &label,
        if cc_ok {
            Ok(format!("Cache-Control: {cache_control}"))
        } else {
            Err(format!("Cache-Control {cache_control:?} on a content-addressed blob: make it long-lived (immutable)"))
        },
    );
    if inspect {
        report.push("freshness", &label, freshness(artifact, metadata.as_ref(), options.now));
    }
}

fn freshness(artifact: &OciArtifact, metadata: Option<&DbMetadata>, now: Timestamp) -> Result<String, String> {
    let expected = if artifact.kind == Kind::Db { 2 } else { 1 };
    let m = metadata.ok_or("the layer has no readable metadata.json")?;
    if m.version != expected {
        return Err(format!("metadata.json Version is {}, Trivy expects {expected}", m.version));
    }
    match m.next_update {
        Some(next) if next > now => Ok(format!("NextUpdate {next}")),
        Some(next) => Err(format!(
            "NextUpdate {next} has passed: every client re-downloads this database on each run — is the sync running?"
        )),
        None => Err("metadata.json has no NextUpdate".into()),
    }
}

async fn check_vex(repo_url: &str, options: &VerifyOptions, report: &mut VerifyReport) {
    let base = repo_url.trim_end_matches('/');
    let manifest_url = format!("{base}/.well-known/vex-repository.json");
    let reg = &options.registry;
    let options = ClientOptions {
        insecure: reg.insecure,
        ca_file: reg.ca_file.as_deref(),
        read_timeout: reg.read_timeout,
        ..ClientOptions::default()
    };
    let http = match crate::http::client(&options) {
        Ok(c) => c,
        Err(e) => return report.push("vex", &manifest_url, Err(e.to_string())),
    };
    let get = |url: String| {
        let req = reg.credentials.authorize(http.get(&url));
        async move {
            let resp = req.send().await.map_err(|e| transport_error("GET", &url, &e).to_string())?;
            if !resp.status().is_success() {
                return Err(status_error("GET", &url, resp).await.to_string());
            }
            read_bounded(resp, crate::vex::MAX_VEX_ARCHIVE, "GET", &url).await.map_err(|e| e.to_string())
        }
    };
    let raw = match get(manifest_url.clone()).await {
        Ok(b) => b,
        Err(e) => return report.push("vex", &manifest_url, Err(e)),
    };
    let locations = match crate::vex::parse_manifest(&raw, &manifest_url) {
        Ok((_, l)) => l,
        Err(e) => return report.push("vex", &manifest_url, Err(e.to_string())),
    };
    report.push("vex", &manifest_url, Ok(format!("{} location(s)", locations.len())));
    for raw_loc in locations {
        if !raw_loc.starts_with(&format!("{base}/")) {
            report.push(
                "vex-location",
                &raw_loc,
                Err(format!(
                    "points outside the mirror ({base}): Trivy caches this forever; sync again with --recheck and the mirror's base URL"
                )),
            );
            continue;
        }
        let loc = match crate::vex::parse_location(&raw_loc, crate::vex::ArchiveChoice::AsUpstream, true) {
            Ok(l) => l,
            Err(e) => {
                report.push("vex-location", &raw_loc, Err(e.to_string()));
                continue;
            }
        };
        let head = reg.credentials.authorize(http.head(loc.fetch.clone())).send().await;
        let head_ok = match head {
            Ok(r) if r.status().is_success() => {
                let len = header(&r, CONTENT_LENGTH);
                let enc = header(&r, CONTENT_ENCODING);
                if len.is_empty() || len == "0" {
                    Err(format!("HEAD answers Content-Length {len:?}: go-getter skips the download"))
                } else if !enc.is_empty() {
                    Err(format!("the archive is served with Content-Encoding: {enc}"))
                } else {
                    Ok(len)
                }
            }
            Ok(r) => Err(format!("HEAD answered {}", r.status())),
            Err(e) => Err(e.to_string()),
        };
        let len = match head_ok {
            Ok(l) => l,
            Err(e) => {
                report.push("vex-archive", &raw_loc, Err(e));
                continue;
            }
        };
        let result = match get(loc.fetch.to_string()).await {
            Ok(bytes) => crate::vex::validate_archive(&bytes, loc.format, &loc.subdir, &raw_loc)
                .map(|_| format!("{len} bytes, index.json found"))
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        report.push("vex-archive", &raw_loc, result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_urls() {
        assert_eq!(parse_mirror_url("https://m.example.com/").unwrap(), ("m.example.com".into(), false));
        assert_eq!(parse_mirror_url("http://127.0.0.1:8080").unwrap(), ("127.0.0.1:8080".into(), true));
        assert_eq!(parse_mirror_url("m.example.com:5000").unwrap(), ("m.example.com:5000".into(), false));
        assert!(parse_mirror_url("https://m.example.com/prefix").is_err());
        assert!(parse_mirror_url("ftp://x").is_err());
        assert!(parse_mirror_url("https://u:p@x").is_err());
    }

    #[test]
    fn cache_control_parsing() {
        assert_eq!(max_age("public, max-age=300"), Some(300));
        assert_eq!(max_age("public, max-age=31536000, immutable"), Some(31_536_000));
        assert_eq!(max_age("no-cache"), None);
    }

    #[test]
    fn freshness_needs_a_future_next_update_and_the_right_version() {
        let db = &OCI_ARTIFACTS[0];
        let now: Timestamp = "2026-11-26T00:00:00Z".parse().unwrap();
        let meta =
            |v, next: &str| DbMetadata { version: v, next_update: Some(next.parse().unwrap()), updated_at: None };
        assert!(freshness(db, Some(&meta(2, "2026-11-27T00:00:00Z")), now).is_ok());
        assert!(freshness(db, Some(&meta(2, "2026-11-25T00:00:00Z")), now).unwrap_err().contains("has passed"));
        assert!(freshness(db, Some(&meta(1, "2026-11-27T00:00:00Z")), now).unwrap_err().contains("Version"));
        assert!(freshness(db, None, now).is_err());
    }
}
