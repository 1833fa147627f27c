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

    type Tweak = Box<dyn Fn(String) -> String>;
    let cases: Vec<(&str, Tweak, &str)> = vec![
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

fn db_at(updated_at: &str) -> fx::Artifact {
    fx::trivy_db(&fx::DbOptions { updated_at: updated_at.parse().unwrap(), ..fx::DbOptions::default() })
}

#[test]
fn snapshot_tags_and_retention() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("mirror");
    let source = format!("{}/aquasecurity", registry.addr);
    let times = ["2026-11-25T00:00:00Z", "2026-11-25T06:00:00Z", "2026-11-25T12:00:00Z"];
    let stamps = ["2-20261125T0000Z", "2-20261125T0600Z", "2-20261125T1200Z"];
    let versions: Vec<fx::Artifact> = times.iter().map(|t| db_at(t)).collect();
    for v in &versions {
        let layout = work.path().join(format!("layout-{}", v.manifest_digest().replace(':', "-")));
        fx::write_oci_layout(&layout, &[("2", v)]).unwrap();
        registry.seed(&layout, "2", "aquasecurity/trivy-db", "2");
        let run = sync(&["--to", dir.to_str().unwrap(), "--source", &source, "--only", "db", "--snapshot-tags"], &[]);
        run.assert_ok();
        assert_eq!(run.outcomes(), ["written"]);
    }
    let serve = Serve::start(&dir);
    let (_, _, body) = fetch("GET", &format!("http://{}/v2/aquasecurity/trivy-db/tags/list", serve.addr));
    let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let expected: Vec<&str> = std::iter::once("2").chain(stamps).collect();
    assert_eq!(list["tags"], serde_json::json!(expected));

    // A scan can pin a known database: the dated tag resolves with real Trivy.
    let trivy = Trivy::new(TRIVY_CURRENT);
    let out = trivy.run(&[
        "image",
        "--download-db-only",
        "--db-repository",
        &format!("{}/aquasecurity/trivy-db:{}", serve.addr, stamps[0]),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(trivy.cache().join("db/metadata.json")).unwrap()).unwrap();
    assert_eq!(meta["UpdatedAt"], times[0]);

    // Dry run: lists the oldest version, its blob and its snapshot tag; removes nothing.
    let before = snapshot(&dir);
    let prune = |extra: &[&str]| {
        let out = mirror().args(["prune", "--to", dir.to_str().unwrap(), "--keep", "2"]).args(extra).output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let dry = prune(&["--grace", "0s", "--dry-run"]);
    let oldest = &versions[0];
    for key in [
        format!("v2/aquasecurity/trivy-db/manifests/{}", stamps[0]),
        format!("v2/aquasecurity/trivy-db/manifests/{}", oldest.manifest_digest()),
        format!("v2/aquasecurity/trivy-db/blobs/{}", oldest.layer_digest()),
    ] {
        assert!(dry.contains(&format!("would remove {key}")), "{key} missing from:\n{dry}");
    }
    assert!(!dry.contains(&versions[1].layer_digest()) && !dry.contains(&versions[2].layer_digest()), "{dry}");
    assert_eq!(snapshot(&dir), before, "a dry run must not remove anything");

    // Within the grace period nothing goes.
    assert!(prune(&["--grace", "1h"]).contains("removed 0 objects"));
    let done = prune(&["--grace", "0s"]);
    assert!(done.contains("removed 3 objects"), "{done}");
    assert!(!dir.join(format!("v2/aquasecurity/trivy-db/blobs/{}", oldest.layer_digest())).exists());
    let (status, _, _) =
        fetch("GET", &format!("http://{}/v2/aquasecurity/trivy-db/manifests/{}", serve.addr, stamps[0]));
    assert_eq!(status, 404);
    let (_, _, body) = fetch("GET", &format!("http://{}/v2/aquasecurity/trivy-db/tags/list", serve.addr));
    let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(list["tags"], serde_json::json!(["2", stamps[1], stamps[2]]));

    // Everything still tagged is complete: Trivy downloads every remaining tag.
    for tag in ["2", stamps[1], stamps[2]] {
        let trivy = Trivy::new(TRIVY_CURRENT);
        let out = trivy.run(&[
            "image",
            "--download-db-only",
            "--db-repository",
            &format!("{}/aquasecurity/trivy-db:{tag}", serve.addr),
        ]);
        assert!(out.status.success(), "{tag}: {}", text(&out.stderr));
    }
    let (ok, out) = verify(&[&serve.addr, "--only", "db"]);
    assert!(ok, "{out}");
}

#[test]
fn sync_with_prune_applies_retention_after_publishing() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("mirror");
    let source = format!("{}/aquasecurity", registry.addr);
    let (old, new) = (db_at("2026-11-25T00:00:00Z"), db_at("2026-11-25T06:00:00Z"));
    for v in [&old, &new] {
        let layout = work.path().join(v.manifest_digest().replace(':', "-"));
        fx::write_oci_layout(&layout, &[("2", v)]).unwrap();
        registry.seed(&layout, "2", "aquasecurity/trivy-db", "2");
        let out = mirror()
            .args(["sync", "--to", dir.to_str().unwrap(), "--source", &source, "--only", "db"])
            .args(["--prune", "--keep", "1", "--grace", "0s"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let blobs = dir.join("v2/aquasecurity/trivy-db/blobs");
    assert!(!blobs.join(old.layer_digest()).exists(), "the superseded layer should be pruned");
    assert!(blobs.join(new.layer_digest()).exists());
    let serve = Serve::start(&dir);
    let (ok, out) = verify(&[&serve.addr, "--only", "db"]);
    assert!(ok, "{out}");
}
