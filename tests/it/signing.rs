//! Signed provenance, checked independently of the code that signs: the signature manifest
//! is taken from the served mirror over HTTP and from a registry destination with skopeo,
//! and its payload and signature are checked with `openssl dgst -verify` and plain JSON.
//! Then the air-gap import that demands a valid signature, and real Trivy on a signed
//! mirror.

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use sha2::Digest as _;

use crate::harness::*;
use crate::operate::verify;

/// A P-256 key pair made by openssl: (private PEM path, public PEM path). `sec1` writes
/// the private key as `openssl ecparam -genkey` does, else PKCS#8 as `genpkey` does.
pub fn keypair(dir: &Path, name: &str, sec1: bool) -> (String, String) {
    let key = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub"));
    let mut keygen = Command::new("openssl");
    if sec1 {
        keygen.args(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out"]);
    } else {
        keygen.args(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out"]);
    }
    run_ok("openssl keygen", keygen.arg(&key));
    run_ok(
        "openssl pubout",
        Command::new("openssl").args(["pkey", "-pubout", "-in"]).arg(&key).arg("-out").arg(&public),
    );
    (key.display().to_string(), public.display().to_string())
}

pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// Check a cosign signature with openssl and JSON only: `manifest` is the signature
/// manifest, `blob` fetches a blob by digest. Returns the payload.
fn openssl_check(
    work: &Path,
    manifest: &[u8],
    blob: impl Fn(&str) -> Vec<u8>,
    signed: &str,
    public: &str,
) -> serde_json::Value {
    let m: serde_json::Value = serde_json::from_slice(manifest).unwrap();
    assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json", "{m}");
    let layer = &m["layers"][0];
    assert_eq!(layer["mediaType"], "application/vnd.dev.cosign.simplesigning.v1+json");
    let payload = blob(layer["digest"].as_str().unwrap());
    assert_eq!(digest_of(&payload), layer["digest"].as_str().unwrap(), "payload digest");
    let sig = base64::engine::general_purpose::STANDARD
        .decode(layer["annotations"]["dev.cosignproject.cosign/signature"].as_str().unwrap())
        .unwrap();
    let (payload_file, sig_file) = (work.join("payload.json"), work.join("payload.sig"));
    std::fs::write(&payload_file, &payload).unwrap();
    std::fs::write(&sig_file, &sig).unwrap();
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-verify", public, "-signature"])
        .arg(&sig_file)
        .arg(&payload_file)
        .output()
        .unwrap();
    assert!(
        out.status.success() && text(&out.stdout).contains("Verified OK"),
        "openssl: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let payload: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(payload["critical"]["image"]["docker-manifest-digest"], signed, "{payload}");
    assert_eq!(payload["critical"]["type"], "cosign container image signature");
    payload
}

/// [`openssl_check`] of trivy-db's signature in the directory mirror `dir`.
fn check_stored_signature(work: &Path, dir: &Path, digest: &str, public: &Path) {
    let repo = dir.join("v2/aquasecurity/trivy-db");
    let manifest = std::fs::read(repo.join("manifests").join(sig_tag(digest))).unwrap();
    let blob = |d: &str| std::fs::read(repo.join("blobs").join(d)).unwrap();
    openssl_check(work, &manifest, blob, digest, public.to_str().unwrap());
}

/// `sha256-<hex>.sig`.
fn sig_tag(digest: &str) -> String {
    format!("{}.sig", digest.replace(':', "-"))
}

#[test]
fn a_signed_mirror_checks_out_with_openssl_over_http_and_in_a_registry() {
    let work = tempfile::tempdir().unwrap();
    let (key, public) = keypair(work.path(), "mirror", false);
    let (_, other_public) = keypair(work.path(), "other", true);
    let (upstream, registry) = Upstream::seeded();
    let target = Registry::start();
    let dir = work.path().join("mirror");
    let source = format!("{}/aquasecurity", registry.addr);
    let to_registry = format!("oci://{}", target.addr);
    let args = ["--to", dir.to_str().unwrap(), "--to", &to_registry, "--source", &source, "--sign-key", &key];
    let first = sync(&args, &[]);
    first.assert_ok();
    for e in first.entries() {
        assert!(e["signature"].as_str().is_some_and(|s| s.starts_with("sha256:")), "{e}");
    }

    // Over HTTP from `serve`, as a CDN would serve the same files.
    let serve = Serve::start(&dir);
    let base = format!("http://{}/v2/aquasecurity", serve.addr);
    for (name, tag, artifact) in upstream.items() {
        let (status, _, tagged) = fetch("GET", &format!("{base}/{name}/manifests/{tag}"));
        assert_eq!((status, tagged.as_slice()), (200, artifact.manifest.as_slice()));
        let digest = digest_of(&tagged);
        let (status, headers, manifest) = fetch("GET", &format!("{base}/{name}/manifests/{}", sig_tag(&digest)));
        assert_eq!(status, 200, "{name}:{tag} has a signature");
        assert_eq!(header(&headers, "content-type"), "application/vnd.oci.image.manifest.v1+json");
        let blob = |d: &str| fetch("GET", &format!("{base}/{name}/blobs/{d}")).2;
        openssl_check(work.path(), &manifest, blob, &digest, &public);
    }

    // From the registry destination, read with skopeo; the identity names that registry.
    let digest = upstream.db.manifest_digest();
    let reference = format!("{}/aquasecurity/trivy-db:{}", target.addr, sig_tag(&digest));
    let manifest = skopeo_raw(&reference, None);
    let blob = |d: &str| fetch("GET", &format!("http://{}/v2/aquasecurity/trivy-db/blobs/{d}", target.addr)).2;
    let payload = openssl_check(work.path(), &manifest, blob, &digest, &public);
    assert_eq!(payload["critical"]["identity"]["docker-reference"], format!("{}/aquasecurity/trivy-db", target.addr));
    assert_eq!(payload["optional"]["source"], source);

    // verify --key: passes with the key, fails naming the artifact with another one.
    let mirror_url = format!("http://{}", serve.addr);
    let (ok, out) = verify(&[&mirror_url, "--key", &public]);
    assert!(ok && out.contains("signature") && out.contains("verified with"), "{out}");
    let (ok, out) = verify(&[&mirror_url, "--key", &other_public]);
    assert!(!ok, "{out}");
    let line =
        out.lines().find(|l| l.starts_with("FAIL") && l.contains("signature")).unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("trivy-db:2") && line.contains("not valid"), "{line}");
    let (ok, _) = verify(&[&mirror_url, "--key", &other_public, "--key", &public]);
    assert!(ok, "either of two keys (rotation) is enough");

    // A rerun with nothing new writes no signature (ECDSA would differ each time).
    let before = snapshot(&dir);
    let again = sync(&args, &[]);
    again.assert_ok();
    assert!(again.outcomes().iter().all(|o| o == "unchanged"), "{:?}", again.outcomes());
    assert_eq!(snapshot(&dir), before, "nothing but status.json was written");

    // A damaged signature at the mirror fails verify, naming the artifact.
    let sig_file =
        dir.join(format!("v2/aquasecurity/trivy-checks/manifests/{}", sig_tag(&upstream.checks2.manifest_digest())));
    let raw = std::fs::read_to_string(&sig_file).unwrap();
    let sig_start = raw.find("\"dev.cosignproject.cosign/signature\":\"").unwrap() + 40;
    let flipped = if &raw[sig_start..sig_start + 1] == "A" { "B" } else { "A" };
    std::fs::write(&sig_file, format!("{}{flipped}{}", &raw[..sig_start], &raw[sig_start + 1..])).unwrap();
    let (ok, out) = verify(&[&mirror_url, "--key", &public]);
    assert!(!ok && out.lines().any(|l| l.starts_with("FAIL") && l.contains("trivy-checks:2")), "{out}");

    // Real Trivy pulls from a signed mirror unchanged.
    let trivy = Trivy::new(TRIVY_CURRENT);
    let out = trivy.download_db(&serve.addr);
    assert!(out.status.success(), "trivy: {}", text(&out.stderr));
}

#[test]
fn an_air_gapped_import_takes_only_what_a_trusted_key_signed() {
    let work = tempfile::tempdir().unwrap();
    let (key, public) = keypair(work.path(), "connected", false);
    let (other_key, _) = keypair(work.path(), "intruder", true);
    let (upstream, registry) = Upstream::seeded();
    let source = format!("{}/aquasecurity", registry.addr);
    let bundle = |name: &str, extra: &[&str], env: &[(&str, &str)]| {
        let path = work.path().join(name);
        let to = format!("oci-archive:{}", path.display());
        let mut args = vec!["--to", to.as_str(), "--source", &source, "--only", "db,checks"];
        args.extend(extra);
        let run = sync(&args, env);
        run.assert_ok();
        (format!("oci-archive:{}", path.display()), format!("{}{}", run.stdout, run.stderr))
    };
    // The key as a Lambda or container job holds it: the PEM itself in the environment.
    let pem = std::fs::read_to_string(&key).unwrap();
    let (signed, logs) = bundle("signed.tar", &[], &[("TRIVY_MIRROR_SIGN_KEY", pem.as_str())]);
    let secret_line = pem.lines().nth(1).unwrap();
    assert!(!logs.contains(secret_line), "the key never appears in the output");
    let (unsigned, _) = bundle("unsigned.tar", &[], &[]);
    let (intruder, _) = bundle("intruder.tar", &["--sign-key", &other_key], &[]);

    let dir = work.path().join("inside");
    let import = |from: &str| {
        sync(
            &["--to", dir.to_str().unwrap(), "--source", from, "--only", "db,checks", "--require-signature", &public],
            &[],
        )
    };
    for (bundle, why) in [(&unsigned, "no signature"), (&intruder, "not valid for any of the keys")] {
        let run = import(bundle);
        assert!(!run.success);
        for i in 0..run.entries().len() {
            let failure = run.failure(i);
            assert!(failure.contains(why) && failure.contains("hint:"), "{why}: {failure}");
        }
        let published: Vec<_> = walk(&dir).into_iter().filter(|p| p.contains("/manifests/")).collect();
        assert!(published.is_empty(), "{why}: nothing is published, yet {published:?}");
    }

    // The signed bundle goes in, its signatures with it, byte for byte.
    let run = import(&signed);
    run.assert_ok();
    let digest = upstream.db.manifest_digest();
    let inside = std::fs::read(dir.join(format!("v2/aquasecurity/trivy-db/manifests/{}", sig_tag(&digest)))).unwrap();
    let blob = |d: &str| std::fs::read(dir.join(format!("v2/aquasecurity/trivy-db/blobs/{d}"))).unwrap();
    openssl_check(work.path(), &inside, blob, &digest, &public);
    let serve = Serve::start(&dir);
    let (ok, out) = verify(&[&format!("http://{}", serve.addr), "--only", "db,checks", "--key", &public]);
    assert!(ok, "{out}");
}

/// Every file below `dir`, as paths relative to it.
fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out
}

/// Make a KMS key in moto with `spec` (ECC_NIST_P256, RSA_2048) under `alias/NAME`, as an
/// operator would with the AWS CLI; returns its public key as PEM, from GetPublicKey.
#[cfg(feature = "kms")]
fn kms_key(moto: &Moto, spec: &str, alias: &str) -> String {
    let script = format!(
        "import base64, boto3, textwrap\n\
         kms = boto3.client('kms', region_name='us-east-1')\n\
         key = kms.create_key(KeySpec='{spec}', KeyUsage='SIGN_VERIFY')['KeyMetadata']['KeyId']\n\
         kms.create_alias(AliasName='alias/{alias}', TargetKeyId=key)\n\
         der = kms.get_public_key(KeyId=key)['PublicKey']\n\
         print('-----BEGIN PUBLIC KEY-----')\n\
         print('\\n'.join(textwrap.wrap(base64.b64encode(der).decode(), 64)))\n\
         print('-----END PUBLIC KEY-----')\n"
    );
    let mut python = Command::new(tool("py/bin/python"));
    python.arg("-c").arg(script).envs(moto.env());
    text(&run_ok("create a KMS key in moto", &mut python).stdout)
}

/// `--sign-key awskms:///alias/NAME`: each signature is one KMS Sign call (moto's KMS), and
/// openssl verifies it with the public key KMS hands out; a key KMS cannot sign P-256 with
/// is refused by name and nothing is published.
#[cfg(feature = "kms")]
#[test]
fn a_kms_key_signs_without_key_material_on_the_machine() {
    let work = tempfile::tempdir().unwrap();
    let moto = Moto::start("unused");
    let public_pem = kms_key(&moto, "ECC_NIST_P256", "trivy-mirror");
    let public = work.path().join("kms.pub");
    std::fs::write(&public, &public_pem).unwrap();
    kms_key(&moto, "RSA_2048", "rsa");
    let (upstream, registry) = Upstream::seeded();
    let source = format!("{}/aquasecurity", registry.addr);
    let env: Vec<(&str, String)> = moto.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let dir = work.path().join("mirror");
    let args = ["--to", dir.to_str().unwrap(), "--source", &source, "--only", "db"];
    let signed = sync(&[&args[..], &["--sign-key", "awskms:///alias/trivy-mirror"]].concat(), &env);
    signed.assert_ok();
    let digest = upstream.db.manifest_digest();
    check_stored_signature(work.path(), &dir, &digest, &public);

    let refused = work.path().join("refused");
    let args = ["--to", refused.to_str().unwrap(), "--source", &source, "--only", "db"];
    let rsa = sync(&[&args[..], &["--sign-key", "awskms:///alias/rsa"]].concat(), &env);
    assert!(!rsa.success);
    let failure = rsa.failure(0);
    assert!(failure.contains("awskms:///alias/rsa") && failure.contains("ECC_NIST_P256"), "{failure}");
    assert!(!refused.join("v2/aquasecurity/trivy-db/manifests/2").exists(), "nothing is tagged");
}

/// A key `cosign generate-key-pair` wrote (fixtures/cosign, empty password) signs
/// unchanged; openssl verifies the result with its public key. A wrong COSIGN_PASSWORD is
/// one line naming the variable, without the password, and nothing is published.
#[test]
fn a_cosign_encrypted_key_signs_with_its_password() {
    let work = tempfile::tempdir().unwrap();
    let (key, public) = (root().join("fixtures/cosign/cosign.key"), root().join("fixtures/cosign/cosign.pub"));
    let (upstream, registry) = Upstream::seeded();
    let source = format!("{}/aquasecurity", registry.addr);
    let dir = work.path().join("mirror");
    let args =
        ["--to", dir.to_str().unwrap(), "--source", &source, "--only", "db", "--sign-key", key.to_str().unwrap()];
    sync(&args, &[("COSIGN_PASSWORD", "")]).assert_ok();
    let digest = upstream.db.manifest_digest();
    check_stored_signature(work.path(), &dir, &digest, &public);

    let refused = work.path().join("refused");
    let args =
        ["--to", refused.to_str().unwrap(), "--source", &source, "--only", "db", "--sign-key", key.to_str().unwrap()];
    let wrong = sync(&args, &[("COSIGN_PASSWORD", "hunter2-wrong")]);
    assert!(!wrong.success);
    assert!(wrong.stderr.contains("COSIGN_PASSWORD does not open this cosign key"), "{}", wrong.stderr);
    assert!(!wrong.stderr.contains("hunter2") && !wrong.stdout.contains("hunter2"), "the password is never shown");
    assert!(!refused.join("v2").exists(), "nothing is published");
}
