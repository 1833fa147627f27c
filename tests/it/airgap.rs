//! Air-gapped sites: export into a bundle (`oci-archive:FILE`, `oci:DIR`) from the
//! fixture registry and the VEX fixture, read it with skopeo, import it with the sources
//! stopped into every kind of destination, and write Trivy's cache directly; real Trivy
//! (0.76, and 0.67 for checks:1) uses each. Hostile bundles are refused with nothing
//! published. Every child runs with HTTP(S)_PROXY at a closed port (`offline_env`).

use std::path::{Path, PathBuf};
use std::process::Command;

use trivy_mirror_fixtures as fx;

use crate::harness::*;
use crate::vex::{UpstreamVex, assert_trivy_applies_vex};

fn oci(path: &Path) -> String {
    format!("oci:{}", path.display())
}

fn oci_archive(path: &Path) -> String {
    format!("oci-archive:{}", path.display())
}

/// `skopeo inspect --raw` of a local transport reference (`oci-archive:FILE:REF`).
fn skopeo_local_raw(reference: &str) -> Vec<u8> {
    run_ok("skopeo inspect", Command::new(system_tool("skopeo")).args(["inspect", "--raw", reference])).stdout
}

/// Export the fixtures (and VEX, with `vex`) from a seeded registry into each of `to`,
/// then stop the sources.
fn export(to: &[String], vex: bool, extra: &[&str]) -> (Upstream, SyncRun) {
    let (upstream, registry) = Upstream::seeded();
    let vex_upstream = vex.then(UpstreamVex::start);
    let source = format!("{}/aquasecurity", registry.addr);
    let mut args = vec!["--source", source.as_str()];
    let manifest_url = vex_upstream.as_ref().map(|v| v.manifest_url());
    match &manifest_url {
        Some(url) => args.extend(["--vex-source", url.as_str()]),
        None => args.extend(["--only", "db,java-db,checks"]),
    }
    for t in to {
        args.extend(["--to", t.as_str()]);
    }
    args.extend_from_slice(extra);
    let run = sync(&args, &[]);
    run.assert_ok();
    (upstream, run)
}

#[test]
fn a_bundle_carries_every_database_and_vex_across_the_gap() {
    let work = tempfile::tempdir().unwrap();
    let tar = work.path().join("trivy-bundle.tar");
    let layout = work.path().join("layout");
    let (upstream, run) = export(&[oci_archive(&tar), oci(&layout)], true, &["--snapshot-tags"]);
    assert_eq!(run.outcomes(), ["written"; 10], "{:?}", run.summary);
    assert!(
        !std::fs::read_dir(work.path()).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().contains("partial"))
    );

    // Standard tools read both forms; digests and bytes are the upstream ones.
    for (name, tag, artifact) in upstream.items() {
        for form in [oci_archive(&tar), oci(&layout)] {
            let raw = skopeo_local_raw(&format!("{form}:aquasecurity/{name}:{tag}"));
            assert_eq!(raw, artifact.manifest, "{form}: {name}:{tag}");
        }
    }
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let names: Vec<&str> =
        index["manifests"].as_array().unwrap().iter().filter_map(|m| m["annotations"][REF].as_str()).collect();
    assert!(names.contains(&"aquasecurity/vexhub:latest"), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("aquasecurity/trivy-db:2-")), "a dated snapshot tag: {names:?}");
    let registry = Registry::start();
    let copied = format!("{}/copied/trivy-java-db:1", registry.addr);
    run_ok(
        "skopeo copy",
        Command::new(system_tool("skopeo")).args([
            "copy",
            "--quiet",
            "--preserve-digests",
            "--dest-tls-verify=false",
            &format!("{}:aquasecurity/trivy-java-db:1", oci(&layout)),
            &format!("docker://{copied}"),
        ]),
    );
    assert_eq!(skopeo_raw(&copied, None), upstream.java_db.manifest);
    drop(registry);

    // Import with every source stopped: into a directory served by `serve`, VEX included.
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let dir = work.path().join("mirror");
    let import = |source: &str, to: &str, env: &[(&str, &str)]| {
        let run = sync(&["--source", source, "--to", to, "--base-url", &base, "--allow-http-base-url"], env);
        run.assert_ok();
        run
    };
    let first = import(&oci_archive(&tar), dir.to_str().unwrap(), &[]);
    assert_eq!(first.outcomes(), ["written"; 5]);
    assert_eq!(first.entries()[0]["source"], oci_archive(&tar));
    let again = import(&oci_archive(&tar), dir.to_str().unwrap(), &[]);
    assert_eq!(again.outcomes(), ["unchanged"; 5], "a second import of the same bundle writes nothing");
    let serve = Serve::start_on(&dir, port);
    assert_trivy_uses_mirror(&serve.addr);
    assert_trivy_applies_vex(TRIVY_CURRENT, &base);
    let (ok, out) = crate::operate::verify(&[&serve.addr]);
    assert!(ok, "{out}");
    drop(serve);

    // Into moto S3 behind the CDN stand-in, from the layout directory.
    let moto = Moto::start("airgap");
    let cdn = Nginx::cdn(&format!("http://{}/airgap/", moto.addr), &moto.addr);
    let env: Vec<(&str, String)> = moto.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    sync(&["--source", &oci(&layout), "--to", "s3://airgap", "--only", "db,java-db,checks"], &env).assert_ok();
    assert_trivy_uses_mirror(&cdn.addr);

    // Into Azurite behind the CDN stand-in.
    let azurite = Azurite::start("airgap");
    let cdn = Nginx::cdn(&format!("http://{}/devstoreaccount1/airgap/", azurite.addr), &azurite.addr);
    let env: Vec<(&str, String)> = azurite.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    sync(&["--source", &oci_archive(&tar), "--to", "az://airgap", "--only", "db,java-db,checks"], &env).assert_ok();
    assert_trivy_uses_mirror(&cdn.addr);

    // Into a registry (VEX only when asked for with --only: by default it goes where
    // clients read it, a static mirror with --base-url, a bundle or a Trivy cache).
    let registry = Registry::start();
    let run = sync(&["--source", &oci(&layout), "--to", &format!("oci://{}", registry.addr)], &[]);
    run.assert_ok();
    assert_eq!(run.outcomes(), ["written"; 4]);
    assert_trivy_uses_mirror(&registry.addr);
}

const REF: &str = "org.opencontainers.image.ref.name";

#[test]
fn trivy_uses_a_cache_written_from_a_bundle_with_no_network() {
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let (upstream, _) = export(&[oci(&layout)], true, &[]);

    let trivy = Trivy::new(TRIVY_CURRENT);
    let cache = format!("trivy-cache:{}", trivy.cache().display());
    let run = sync(&["--source", &oci(&layout), "--to", &cache], &[]);
    run.assert_ok();
    assert_eq!(run.outcomes(), ["written"; 4], "db, java-db, checks:2 and VEX: {:?}", run.summary);
    let before = snapshot(&trivy.cache());
    let again = sync(&["--source", &oci(&layout), "--to", &cache], &[]);
    again.assert_ok();
    assert_eq!(again.outcomes(), ["unchanged"; 4]);
    assert_eq!(snapshot(&trivy.cache()), before, "a rerun with nothing new rewrote the cache");

    let read = |rel: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(trivy.cache().join(rel)).unwrap()).unwrap()
    };
    let policy = read("policy/metadata.json");
    assert_eq!(policy["Digest"], upstream.checks2.manifest_digest());
    assert_eq!(policy["MajorVersion"], 2);
    let db = read("db/metadata.json");
    assert_eq!((db["Version"].as_i64(), db["NextUpdate"].as_str()), (Some(2), Some("2099-01-01T00:00:00Z")));
    assert!(db["DownloadedAt"].as_str().is_some_and(|t| t.starts_with("20") && !t.starts_with("0001")), "{db}");

    // Vulnerabilities, with and without the skip flags: without them Trivy would try to
    // download (fatal for the DB) if the cache did not look fresh to it.
    assert!(trivy.scan_requirements(&[]).contains(&fx::DEFAULT_CVE_ID.to_string()));
    let project = trivy.home.path().join("project");
    let out =
        trivy.run_ok(&["fs", "--offline-scan", "--scanners", "vuln", "--format", "json", project.to_str().unwrap()]);
    assert!(vulnerability_ids(&out.stdout).contains(&fx::DEFAULT_CVE_ID.to_string()));
    // VEX Hub as Trivy's default repository, with and without --skip-vex-repo-update.
    for extra in [&["--vex", "repo", "--skip-vex-repo-update"][..], &["--vex", "repo"]] {
        let ids = trivy.scan_requirements(extra);
        assert!(!ids.contains(&fx::DEFAULT_CVE_ID.to_string()), "{extra:?}: VEX did not apply: {ids:?}");
    }
    // The Java DB identifies the fixture jar.
    let rootfs = trivy.home.path().join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    std::fs::write(rootfs.join(fx::JAR_FILE_NAME), fx::fixture_jar()).unwrap();
    let out =
        trivy.run_ok(&["rootfs", "--offline-scan", "--list-all-pkgs", "--format", "json", rootfs.to_str().unwrap()]);
    assert!(text(&out.stdout).contains(fx::JAR_PACKAGE_NAME), "{}", text(&out.stderr));
    // The mirrored checks bundle, not the embedded one, with Trivy's default repository.
    assert_config_uses_cached_checks(&trivy);

    // Trivy 0.67 reads checks:1.
    let old = Trivy::new(TRIVY_OLD);
    let cache = format!("trivy-cache:{}", old.cache().display());
    sync(&["--source", &oci(&layout), "--to", &cache, "--cache-checks", "1", "--only", "checks"], &[]).assert_ok();
    let policy: serde_json::Value =
        serde_json::from_slice(&std::fs::read(old.cache().join("policy/metadata.json")).unwrap()).unwrap();
    assert_eq!(policy["Digest"], upstream.checks1.manifest_digest());
    assert_config_uses_cached_checks(&old);
}

fn assert_config_uses_cached_checks(trivy: &Trivy) {
    let iac = trivy.home.path().join("iac");
    std::fs::create_dir_all(&iac).unwrap();
    std::fs::write(iac.join("Dockerfile"), fx::CHECK_DOCKERFILE).unwrap();
    let out = trivy.run_ok(&["config", "--format", "json", iac.to_str().unwrap()]);
    let log = text(&out.stderr);
    assert!(!log.contains("embedded"), "Trivy fell back to its embedded checks:\n{log}");
    assert!(text(&out.stdout).contains(fx::CHECK_ID), "{log}");
}

/// A copy of `dir` to damage.
fn copy_dir(from: &Path, to: &Path) {
    run_ok("cp", Command::new("cp").arg("-r").arg(from).arg(to));
}

fn blob(layout: &Path, digest: &str) -> PathBuf {
    layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))
}

/// Import `source` into a fresh directory; returns the run and the directory.
fn import(work: &Path, case: &str, source: &str) -> (SyncRun, PathBuf) {
    let dir = work.join(format!("dest-{case}"));
    let run = sync(&["--source", source, "--to", dir.to_str().unwrap(), "--only", "db,java-db,checks"], &[]);
    assert!(!run.success, "{case}: a hostile bundle was accepted:\n{}", run.stderr);
    (run, dir)
}

fn tag_file(dir: &Path, name: &str, tag: &str) -> PathBuf {
    dir.join(format!("v2/aquasecurity/{name}/manifests/{tag}"))
}

#[test]
fn hostile_bundles_are_refused_and_nothing_of_them_is_published() {
    let work = tempfile::tempdir().unwrap();
    let good = work.path().join("good");
    let good_tar = work.path().join("good.tar");
    let (upstream, _) = export(&[oci(&good), oci_archive(&good_tar)], false, &[]);

    // Damage inside one artifact: that artifact fails, with nothing of it published.
    let db_layer = upstream.db.layer_digest();
    let java_layer = upstream.java_db.layer_digest();
    let mut two_layers: serde_json::Value = serde_json::from_slice(&upstream.checks2.manifest).unwrap();
    let layer = two_layers["layers"][0].clone();
    two_layers["layers"].as_array_mut().unwrap().push(layer);
    let two_layers = serde_json::to_vec(&two_layers).unwrap();
    type Damage<'a> = Box<dyn Fn(&Path) + 'a>;
    let cases: Vec<(&str, &str, &str, Damage)> = vec![
        (
            "flipped byte",
            "trivy-java-db",
            "sha256",
            Box::new(|l: &Path| {
                let p = blob(l, &java_layer);
                let mut b = std::fs::read(&p).unwrap();
                let mid = b.len() / 2;
                b[mid] ^= 1;
                std::fs::write(&p, b).unwrap();
            }),
        ),
        (
            "missing blob",
            "trivy-db",
            "missing from the bundle",
            Box::new(|l: &Path| std::fs::remove_file(blob(l, &db_layer)).unwrap()),
        ),
        (
            "index names an absent manifest",
            "trivy-checks",
            "missing from the bundle",
            Box::new(|l: &Path| std::fs::remove_file(blob(l, &upstream.checks1.manifest_digest())).unwrap()),
        ),
        (
            "manifest failing the shape checks",
            "trivy-checks",
            "layers",
            Box::new(|l: &Path| {
                let digest = format!("sha256:{}", sha256_hex(&two_layers));
                std::fs::write(blob(l, &digest), &two_layers).unwrap();
                let mut index: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(l.join("index.json")).unwrap()).unwrap();
                for m in index["manifests"].as_array_mut().unwrap() {
                    if m["annotations"][REF] == "aquasecurity/trivy-checks:2" {
                        m["digest"] = digest.clone().into();
                        m["size"] = two_layers.len().into();
                    }
                }
                std::fs::write(l.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
            }),
        ),
        (
            "blob replaced by a link",
            "trivy-db",
            "links are refused",
            Box::new(|l: &Path| {
                let p = blob(l, &db_layer);
                std::fs::remove_file(&p).unwrap();
                std::os::unix::fs::symlink("/etc/passwd", &p).unwrap();
            }),
        ),
    ];
    for (case, name, expect, damage) in &cases {
        let layout = work.path().join(case.replace(' ', "-"));
        copy_dir(&good, &layout);
        damage(&layout);
        let (run, dir) = import(work.path(), &case.replace(' ', "-"), &oci(&layout));
        let failed: Vec<_> = run.entries().into_iter().filter(|e| e["outcome"] == "failed").collect();
        assert!(!failed.is_empty(), "{case}: {:?}", run.summary);
        for e in &failed {
            assert!(e["artifact"].as_str().unwrap().starts_with(name), "{case}: {e}");
            assert!(e["error"].as_str().unwrap().contains(expect), "{case}: expected {expect:?} in {e}");
        }
        for e in &failed {
            let (_, tag) = e["artifact"].as_str().unwrap().split_once(':').unwrap();
            assert!(!tag_file(&dir, name, tag).exists(), "{case}: {name}:{tag} was published");
        }
        if *case == "flipped byte" {
            assert!(!dir.join("v2/aquasecurity/trivy-java-db/blobs").join(&java_layer).exists());
            assert!(tag_file(&dir, "trivy-db", "2").exists(), "the undamaged artifacts are published");
        }
    }

    // Damage to the bundle as a whole: refused before anything is read.
    let index = std::fs::read_to_string(good.join("index.json")).unwrap();
    let bad_ref = work.path().join("bad-ref");
    copy_dir(&good, &bad_ref);
    std::fs::write(
        bad_ref.join("index.json"),
        index.replace("aquasecurity/trivy-db:2", "aquasecurity/trivy-db:../../x"),
    )
    .unwrap();
    let (run, dir) = import(work.path(), "bad-ref", &oci(&bad_ref));
    assert!(run.stderr.contains("index.json") && run.stderr.contains("ref name"), "{}", run.stderr);
    assert!(!dir.exists(), "nothing may be published from a refused bundle");

    let tar = std::fs::read(&good_tar).unwrap();
    let truncated = work.path().join("truncated.tar");
    std::fs::write(&truncated, &tar[..tar.len() / 2]).unwrap();
    let members = [("oci-layout", &b"{\"imageLayoutVersion\":\"1.0.0\"}"[..]), ("index.json", index.as_bytes())];
    let hostile: Vec<(&str, PathBuf, &str)> = vec![
        ("truncated tar", truncated, "truncated"),
        ("dot-dot member", hostile_tar(work.path(), &members, "../../evil", None), "../../evil"),
        ("absolute member", hostile_tar(work.path(), &members, "/etc/evil", None), "/etc/evil"),
        (
            "link member",
            hostile_tar(work.path(), &members, "blobs/sha256/evil", Some("/etc/shadow")),
            "links are refused",
        ),
    ];
    for (case, file, expect) in hostile {
        let (run, dir) = import(work.path(), &case.replace(' ', "-"), &oci_archive(&file));
        assert!(run.stderr.contains(expect), "{case}: expected {expect:?} in:\n{}", run.stderr);
        assert!(!dir.exists(), "{case}: something was published");
    }
}

/// A tar of `members` plus one hostile member named `name` (a symlink to `link` if given).
fn hostile_tar(dir: &Path, members: &[(&str, &[u8])], name: &str, link: Option<&str>) -> PathBuf {
    let mut out = Vec::new();
    let mut push = |name: &str, data: &[u8], link: Option<&str>| {
        let mut h = tar::Header::new_ustar();
        // tar::Header refuses `..` and absolute names itself: write the field directly.
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        match link {
            Some(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_link_name(target).unwrap();
            }
            None => h.set_entry_type(tar::EntryType::Regular),
        }
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.extend(std::iter::repeat_n(0u8, (512 - data.len() % 512) % 512));
    };
    for (n, d) in members {
        push(n, d, None);
    }
    push(name, if link.is_some() { b"" } else { b"evil" }, link);
    out.extend_from_slice(&[0; 1024]);
    let path = dir.join(format!("hostile-{}.tar", name.replace('/', "_")));
    std::fs::write(&path, out).unwrap();
    path
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(b))
}
