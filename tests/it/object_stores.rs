//! The static layout in real object-storage emulators (moto S3, Azurite),
//! each behind the nginx CDN stand-in, checked with the real Trivy client. One
//! conformance routine runs against every backend.

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

// GCS: object_store writes through the GCS XML API, which stock fake-gcs-server does not
// implement (a PUT of an object answers "invalid uploadType"; fsouza/fake-gcs-server#331,
// #852). GCS writes are therefore not exercised here; see the README.
