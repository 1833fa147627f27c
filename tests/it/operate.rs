//! Operating a mirror: `verify` against every serving path, and failing precisely on
//! mirrors broken on purpose.

use std::path::Path;

use trivy_mirror_fixtures as fx;

use crate::harness::*;

/// Run `trivy-mirror verify` and return (success, output).
pub fn verify(args: &[&str]) -> (bool, String) {
    let out = mirror().arg("verify").args(args).output().unwrap();
    (out.status.success(), format!("{}{}", text(&out.stdout), text(&out.stderr)))
}

/// A synced directory of the standard fixtures (plus VEX with `base`), returning the
/// upstream for digest checks.
fn synced_dir(dir: &Path, db: fx::Artifact, vex_base: Option<&str>) -> Upstream {
    let mut upstream = Upstream::standard();
    upstream.db = db;
    let registry = Registry::start();
    upstream.seed(&registry, "aquasecurity");
    let source = format!("{}/aquasecurity", registry.addr);
    let mut args = vec!["--to", dir.to_str().unwrap(), "--source", &source];
    let vex_upstream;
    let manifest_url;
    if let Some(base) = vex_base {
        vex_upstream = Nginx::start("    root @WWW@;\n    location / { }");
        let root = vex_upstream.static_root();
        std::fs::write(root.join("main.tar.gz"), fx::vex_repository(&fx::VexOptions::default()).tar_gz).unwrap();
        let loc = format!("http://{}/main.tar.gz//{}", vex_upstream.addr, fx::VEX_TOP_DIR);
        std::fs::write(root.join("vex-repository.json"), fx::vex_manifest(&[&loc])).unwrap();
        manifest_url = format!("http://{}/vex-repository.json", vex_upstream.addr);
        args.extend(["--base-url", base, "--allow-http-base-url", "--vex-source", &manifest_url]);
        sync(&args, &[]).assert_ok();
    } else {
        sync(&args, &[]).assert_ok();
    }
    upstream
}

/// nginx serving a mirror directory as a static registry; `tweak` edits the config to
/// break it in one specific way.
fn static_registry(dir: &Path, tweak: impl Fn(String) -> String) -> Nginx {
    let conf = format!(
        "    root {};\n\
             location = /v2/ {{ rewrite ^ /v2/index.json last; }}\n\
             location ~ /manifests/ {{ default_type application/vnd.oci.image.manifest.v1+json; add_header Cache-Control \"public, max-age=300\"; }}\n\
             location ~ /blobs/ {{ default_type application/octet-stream; add_header Cache-Control \"public, max-age=31536000, immutable\"; }}\n\
             location / {{ default_type application/json; add_header Cache-Control \"public, max-age=300\"; }}",
        dir.display()
    );
    Nginx::start(&tweak(conf))
}

#[test]
fn verify_passes_on_serve_and_fails_precisely_on_broken_mirrors() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("mirror");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let upstream = synced_dir(&dir, fx::trivy_db(&fx::DbOptions::default()), Some(&base));

    let serve = Serve::start_on(&dir, port);
    let (ok, out) = verify(&[&serve.addr, "--vex-url", &base]);
    assert!(ok, "verify must pass on a good mirror:\n{out}");
    assert!(out.contains("0 failed"), "{out}");
    let (ok, json) = verify(&[&serve.addr, "--json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(v["ok"], true);

    // The same directory behind nginx configured as a correct static registry passes too.
    let good = static_registry(&dir, |c| c);
    let (ok, out) = verify(&[&good.addr]);
    assert!(ok, "{out}");

    let cases: Vec<(&str, Box<dyn Fn(String) -> String>, &str)> = vec![
        (
            "missing ping",
            Box::new(|c: String| c.replace("location = /v2/ { rewrite ^ /v2/index.json last; }", "")),
            "map /v2/",
        ),
        (
            "wrong manifest Content-Type",
            Box::new(|c: String| {
                c.replace(
                    "default_type application/vnd.oci.image.manifest.v1+json",
                    "default_type application/octet-stream",
                )
            }),
            "Content-Type is \"application/octet-stream\"",
        ),
        (
            "stored Content-Encoding",
            Box::new(|c: String| {
                c.replace(
                    "default_type application/octet-stream; add_header",
                    "default_type application/octet-stream; add_header Content-Encoding gzip; add_header",
                )
            }),
            "Content-Encoding: gzip",
        ),
        (
            "tag cached for a day",
            Box::new(|c: String| c.replacen("public, max-age=300", "public, max-age=86400", 1)),
            "max-age=86400 on a tag",
        ),
    ];
    for (name, tweak, expect) in cases {
        let broken = static_registry(&dir, tweak);
        let (ok, out) = verify(&[&broken.addr, "--only", "db"]);
        assert!(!ok, "{name}: verify passed:\n{out}");
        assert!(out.contains(expect), "{name}: expected {expect:?} in:\n{out}");
    }

    // A truncated blob.
    let layer = dir.join(format!("v2/aquasecurity/trivy-db/blobs/{}", upstream.db.layer_digest()));
    let bytes = std::fs::read(&layer).unwrap();
    std::fs::write(&layer, &bytes[..bytes.len() / 2]).unwrap();
    let (ok, out) = verify(&[&serve.addr, "--only", "db"]);
    assert!(!ok && out.contains("differs from the descriptor size"), "{out}");
    std::fs::write(&layer, &bytes).unwrap();

    // VEX: a location pointing elsewhere, then an archive without index.json.
    let vex_manifest = dir.join(".well-known/vex-repository.json");
    let original = std::fs::read_to_string(&vex_manifest).unwrap();
    std::fs::write(&vex_manifest, original.replace(&base, "https://elsewhere.example.com")).unwrap();
    let (ok, out) = verify(&[&serve.addr, "--only", "vex", "--vex-url", &base]);
    assert!(!ok && out.contains("points outside the mirror"), "{out}");
    std::fs::write(&vex_manifest, &original).unwrap();
    std::fs::write(
        dir.join("main.tar.gz"),
        fx::archive::tar_gz(&[fx::archive::Entry::File("vexhub-main/x.txt", b"x")], 0),
    )
    .unwrap();
    let (ok, out) = verify(&[&serve.addr, "--only", "vex", "--vex-url", &base]);
    assert!(!ok && out.contains("no vexhub-main/index.json"), "{out}");
}

#[test]
fn verify_flags_a_stale_database() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("mirror");
    let stale = fx::DbOptions {
        updated_at: "2026-01-01T00:00:00Z".parse().unwrap(),
        next_update: "2026-01-02T00:00:00Z".parse().unwrap(),
        ..fx::DbOptions::default()
    };
    synced_dir(&dir, fx::trivy_db(&stale), None);
    let serve = Serve::start(&dir);
    let (ok, out) = verify(&[&serve.addr, "--only", "db"]);
    assert!(!ok, "{out}");
    assert!(out.contains("NextUpdate 2026-01-02T00:00:00Z has passed"), "{out}");
}
