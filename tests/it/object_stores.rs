//! The static layout in real object-storage emulators (moto S3, Azurite, GCS's XML API on moto),
//! each behind the nginx CDN stand-in, checked with the real Trivy client. One
//! conformance routine runs against every backend.

use trivy_mirror_fixtures as fx;

use crate::harness::*;

/// Sync into `dest` (with the backend's environment), then check through `cdn` what a
/// CDN in front of the bucket serves: headers stored with each object, the ping, and
/// real Trivy downloads. Returns the upstream fixtures for further checks.
fn publish_and_check(dest: &str, env: &[(&str, String)], cdn: &Nginx) -> Upstream {
    let (upstream, registry) = Upstream::seeded();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let source = format!("{}/aquasecurity", registry.addr);
    let run = sync(&["--to", dest, "--source", &source], &env);
    run.assert_ok();
    assert_eq!(run.outcomes(), ["written"; 4]);

    let base = format!("http://{}", cdn.addr);
    let (status, h, body) = fetch("GET", &format!("{base}/v2/"));
    assert_eq!((status, body.as_slice()), (200, &b"{}"[..]), "the /v2/ ping through the CDN");
    assert_eq!(header(&h, "content-type"), "application/json");
    for (name, tag, artifact) in upstream.items() {
        let (status, h, body) = fetch("GET", &format!("{base}/v2/aquasecurity/{name}/manifests/{tag}"));
        assert_eq!(status, 200, "{name}:{tag}");
        assert_eq!(body, artifact.manifest, "{name}:{tag} bytes");
        assert_eq!(header(&h, "content-type"), artifact.manifest_media_type, "{name}:{tag} Content-Type");
        assert_eq!(header(&h, "cache-control"), "public, max-age=300", "{name}:{tag} Cache-Control");
        let (status, h, _) =
            fetch("HEAD", &format!("{base}/v2/aquasecurity/{name}/manifests/{}", artifact.manifest_digest()));
        assert_eq!((status, header(&h, "cache-control").as_str()), (200, "public, max-age=31536000, immutable"));
        let (status, h, _) = fetch("HEAD", &format!("{base}/v2/aquasecurity/{name}/blobs/{}", artifact.layer_digest()));
        assert_eq!(status, 200);
        assert_eq!(header(&h, "content-type"), "application/octet-stream");
        assert_eq!(header(&h, "cache-control"), "public, max-age=31536000, immutable");
        assert_eq!(header(&h, "content-length"), artifact.layer.len().to_string());
        assert_eq!(header(&h, "content-encoding"), "");
    }
    let (status, h, body) = fetch("GET", &format!("{base}/v2/aquasecurity/trivy-checks/tags/list"));
    assert_eq!(status, 200);
    assert_eq!(header(&h, "content-type"), "application/json");
    assert_eq!(body, br#"{"name":"aquasecurity/trivy-checks","tags":["1","2"]}"#);

    assert_trivy_uses_mirror(&cdn.addr);
    let (ok, out) = crate::operate::verify(&[&cdn.addr]);
    assert!(ok, "verify through the CDN:\n{out}");
    let raw = skopeo_raw(&format!("{}/aquasecurity/trivy-db:2", cdn.addr), None);
    assert_eq!(raw, upstream.db.manifest);

    let again = sync(&["--to", dest, "--source", &source], &env);
    again.assert_ok();
    assert_eq!(again.outcomes(), ["unchanged"; 4], "a rerun must write nothing");
    assert_eq!(again.bytes_written(), 0);
    upstream
}

#[test]
fn s3_moto_behind_a_cdn() {
    let moto = Moto::start("mirror-bucket");
    let cdn = Nginx::cdn(&format!("http://{}/mirror-bucket/mirror/", moto.addr), &moto.addr);
    let writes_before = moto.writes();
    publish_and_check("s3://mirror-bucket/mirror", &moto.env(), &cdn);
    // The bucket prefix is honoured everywhere: the ping sits at mirror/v2/index.json.
    let (status, _, body) = fetch("GET", &format!("{}/mirror-bucket/mirror/v2/index.json", moto.endpoint));
    assert_eq!((status, body.as_slice()), (200, &b"{}"[..]));
    // First run: per artifact 2 blobs + 2 manifests + tags/list, except that trivy-checks:2
    // finds the `{}` config blob trivy-checks:1 already wrote; plus the ping and
    // status.json. The rerun only rewrites status.json.
    let writes = moto.writes() - writes_before;
    assert_eq!(writes, (4 * 5 - 1 + 2) + 1, "unexpected number of writes to S3:\n{}", moto.log());
}

#[test]
fn azure_blob_azurite_behind_a_cdn() {
    let azurite = Azurite::start("mirror");
    let cdn = Nginx::cdn(&format!("http://{}/devstoreaccount1/mirror/", azurite.addr), &azurite.addr);
    publish_and_check("az://mirror", &azurite.env(), &cdn);
}

/// Google Cloud Storage through its XML API: object_store's GCS client with its token from
/// the metadata server, against moto behind a front that enforces GCS's access rules and
/// passes everything else through unchanged (`harness::gcs` lists what differs from GCS).
#[test]
fn gcs_xml_api_behind_a_cdn() {
    let gcs = Gcs::start("mirrorgcs");
    let cdn = Nginx::cdn(&gcs.origin("mirror"), &gcs.addr);
    let env = gcs.env();
    let writes_before = gcs.moto.writes();
    publish_and_check("gs://mirrorgcs/mirror", &env, &cdn);
    // The same writes as on S3 (see above): no retried or extra requests.
    assert_eq!(
        gcs.moto.writes() - writes_before,
        (4 * 5 - 1 + 2) + 1,
        "unexpected number of writes:\n{}",
        gcs.moto.log()
    );
    assert_eq!(gcs.refused(), Vec::<String>::new(), "requests without the token");
    // One metadata-server token per run, sent on every request (the front checks it).
    assert_eq!(gcs.token_fetches(), 2, "token requests:\n{}", gcs.metadata.access_log());

    // A blob over SINGLE_PUT_MAX (16 MiB) goes up as an XML API multipart upload of 8 MiB
    // parts, keeping its Content-Type and Cache-Control.
    let big = fx::trivy_db(&fx::DbOptions { padding: 20 << 20, ..fx::DbOptions::default() });
    assert!(big.layer.len() > 16 << 20 && big.layer.len() <= 24 << 20, "{} bytes", big.layer.len());
    let registry = Registry::start();
    let layout = tempfile::tempdir().unwrap();
    fx::write_oci_layout(layout.path(), &[("2", &big)]).unwrap();
    registry.seed(layout.path(), "2", "aquasecurity/trivy-db", "2");
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let source = format!("{}/aquasecurity", registry.addr);
    let args = ["--to", "gs://mirrorgcs/big", "--source", &source, "--only", "db"];
    let before = gcs.moto.log().lines().count();
    sync(&args, &env).assert_ok();
    let log: Vec<String> = gcs.moto.log().lines().skip(before).map(str::to_string).collect();
    let count = |method: &str, query: &str| {
        log.iter().filter(|l| l.contains(&format!("\"{method} ")) && l.contains(query) && l.contains("\" 200 ")).count()
    };
    assert_eq!(count("POST", "?uploads"), 1, "one multipart upload initiated:\n{}", log.join("\n"));
    assert_eq!(count("PUT", "?partNumber="), 3, "three parts:\n{}", log.join("\n"));
    assert_eq!(count("POST", "?uploadId="), 1, "one completion:\n{}", log.join("\n"));
    let big_cdn = Nginx::cdn(&gcs.origin("big"), &gcs.addr);
    let blob = format!("http://{}/v2/aquasecurity/trivy-db/blobs/{}", big_cdn.addr, big.layer_digest());
    let (status, h, body) = fetch("GET", &blob);
    assert_eq!(status, 200);
    assert!(body == big.layer, "the multipart blob's bytes differ ({} bytes served)", body.len());
    assert_eq!(header(&h, "content-type"), "application/octet-stream");
    assert_eq!(header(&h, "cache-control"), "public, max-age=31536000, immutable");
    let out = Trivy::new(TRIVY_CURRENT).download_db(&big_cdn.addr);
    assert!(out.status.success(), "trivy-db download of the multipart blob failed:\n{}", text(&out.stderr));
    // The completed object's size matches: a rerun finds the blob and writes nothing.
    let again = sync(&args, &env);
    again.assert_ok();
    assert_eq!((again.outcomes(), again.bytes_written()), (vec!["unchanged".to_string()], 0));
    assert_eq!(gcs.refused(), Vec::<String>::new(), "requests without the token");
    // The front does refuse what GCS refuses: an anonymous listing.
    let (status, _, _) = fetch("GET", &format!("{}/mirrorgcs?list-type=2", gcs.base_url));
    assert_eq!(status, 401, "an anonymous listing must be refused");
}

/// The destination conformance routine (`crate::conformance`) on the GCS XML API, with
/// its multipart checks (a 17 MiB blob, and a corrupt one whose upload is aborted).
#[test]
fn gcs_xml_api_conformance() {
    let gcs = Gcs::start("conformance");
    let store = object_store::gcp::GoogleCloudStorageBuilder::new()
        .with_base_url(&gcs.base_url)
        .with_bucket_name("conformance")
        .with_bearer_token(GCS_TOKEN)
        .build()
        .unwrap();
    crate::conformance::layout("gs://conformance/p", std::sync::Arc::new(store), "p");
    assert_eq!(gcs.refused(), Vec::<String>::new(), "requests without the token");
}
