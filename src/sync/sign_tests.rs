//! The engine's fast tier for signatures: signing order, reruns that write nothing, key
//! rotation, and `--require-signature` refusing every kind of bad signature before
//! anything of the artifact is published. The integration tests check the same bytes
//! with openssl, independently of this crate.

use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;

use super::tests::{Call, Recorder, dests, outcomes, plan, set, source};
use super::*;
use crate::layout;
use crate::signing::{self, OTHER_KEY, PublicKey, SigningKey, TEST_KEY};
use crate::source::memory::MemorySource;

const DB_REPO: &str = "aquasecurity/trivy-db";

fn key(pem: &str) -> Arc<SigningKey> {
    Arc::new(SigningKey::from_pem(pem.as_bytes(), "test", None).unwrap())
}

fn signing_plan(sources: Vec<Arc<MemorySource>>, only: &[Kind], signing: Signing) -> SyncPlan {
    SyncPlan { signing, ..plan(sources, only) }
}

/// The signature stored beside `digest` at `dest`, checked against `key`: the payload.
async fn stored_payload(dest: &Recorder, repo: &str, digest: &str, key: &PublicKey) -> serde_json::Value {
    let digest = Digest::parse(digest).unwrap();
    let raw = dest.get(&layout::manifest_key(repo, &signing::signature_tag(&digest))).await.expect("signature tag");
    let parsed = signing::parse(&raw).unwrap();
    let layer = &parsed.layers[0];
    let payload = dest.get(&layout::blob_key(repo, &layer.payload.digest)).await.expect("payload blob");
    signing::check(layer, &payload, &digest, std::slice::from_ref(key)).expect("valid signature");
    assert!(dest.get(&layout::blob_key(repo, &parsed.config.digest)).await.is_some(), "config blob");
    serde_json::from_slice(&payload).unwrap()
}

#[tokio::test]
async fn signing_goes_blobs_manifest_signature_then_the_tag_and_a_rerun_writes_nothing() {
    let s = set();
    let dest = Recorder::new("mem");
    let k = key(TEST_KEY);
    let p = signing_plan(vec![source("upstream", &s)], &[Kind::Db], Signing { key: Some(k.clone()), require: vec![] });
    let report = sync(&p, &dests(&[&dest])).await;
    assert_eq!(report.entries[0].outcome, Outcome::Written, "{:?}", outcomes(&report));

    let payload = stored_payload(&dest, DB_REPO, &s.db.manifest_digest(), k.public().await.unwrap()).await;
    assert_eq!(payload["critical"]["identity"]["docker-reference"], "mirror.example.com/aquasecurity/trivy-db");
    assert_eq!(payload["critical"]["type"], "cosign container image signature");
    assert_eq!(payload["optional"]["source"], "upstream");
    let sig_digest = report.entries[0].signature.clone().expect("the entry names the signature");
    let status = String::from_utf8(dest.get(crate::status_file::STATUS_KEY).await.unwrap().to_vec()).unwrap();
    assert!(status.contains(&sig_digest), "status.json records the signature: {status}");

    // Order: the database's blobs, its manifest by digest, the signature (blobs, then its
    // manifest under sha256-<hex>.sig), and only then the tag.
    let m = format!("{DB_REPO}@{}", s.db.manifest_digest());
    let tag = signing::signature_tag(&Digest::parse(&s.db.manifest_digest()).unwrap());
    let calls: Vec<Call> = dest.calls().into_iter().filter(|c| *c != Call::Finish).collect();
    let pos = |want: &Call| calls.iter().position(|c| c == want).unwrap_or_else(|| panic!("{want:?} in {calls:?}"));
    let layer = pos(&Call::Blob(format!("{DB_REPO}@{}", s.db.layer_digest())));
    let by_digest = pos(&Call::Manifest(m.clone(), vec![]));
    let signature = pos(&Call::Manifest(format!("{DB_REPO}@{sig_digest}"), vec![tag.clone()]));
    let tagged = pos(&Call::Manifest(m, vec!["2".into()]));
    assert!(layer < by_digest && by_digest < signature && signature < tagged, "{calls:?}");

    // Nothing new: no write at all, and no new signature (ECDSA would differ each time).
    let before = dest.calls().len();
    let again = sync(&p, &dests(&[&dest])).await;
    assert_eq!(again.entries[0].outcome, Outcome::Unchanged);
    assert_eq!(dest.calls().len(), before, "{:?}", &dest.calls()[before..]);

    // A lost signature is written again, alone.
    dest.delete(&layout::manifest_key(DB_REPO, &tag)).await;
    let repaired = sync(&p, &dests(&[&dest])).await;
    assert_eq!(repaired.entries[0].outcome, Outcome::Repaired);
    assert!(!dest.calls()[before..].iter().any(|c| matches!(c, Call::Manifest(_, t) if t == &["2"])), "tag untouched");
    stored_payload(&dest, DB_REPO, &s.db.manifest_digest(), k.public().await.unwrap()).await;
}

#[tokio::test]
async fn a_new_key_replaces_every_signature_and_touches_nothing_else() {
    let s = set();
    let dest = Recorder::new("mem");
    let only = [Kind::Db, Kind::JavaDb, Kind::Checks];
    let (old, new) = (key(TEST_KEY), key(OTHER_KEY));
    let with = |k: &Arc<SigningKey>| {
        signing_plan(vec![source("upstream", &s)], &only, Signing { key: Some(k.clone()), require: vec![] })
    };
    sync(&with(&old), &dests(&[&dest])).await;
    let before = dest.calls().len();
    let report = sync(&with(&new), &dests(&[&dest])).await;
    assert!(report.entries.iter().all(|e| e.outcome == Outcome::Repaired), "{:?}", outcomes(&report));
    let retagged = dest.calls()[before..]
        .iter()
        .filter(|c| matches!(c, Call::Manifest(_, t) if !t.is_empty() && !t[0].ends_with(".sig")))
        .count();
    assert_eq!(retagged, 0, "no artifact tag is rewritten");
    for (repo, fixture) in [(DB_REPO, &s.db), ("aquasecurity/trivy-checks", &s.checks2)] {
        stored_payload(&dest, repo, &fixture.manifest_digest(), new.public().await.unwrap()).await;
    }
    // And the new signatures are then current: nothing more to do.
    let again = sync(&with(&new), &dests(&[&dest])).await;
    assert!(again.entries.iter().all(|e| e.outcome == Outcome::Unchanged), "{:?}", outcomes(&again));
}

/// How a source's signature is spoiled.
enum Spoil {
    None,
    Missing,
    OtherKey,
    OtherDigest,
    FlippedByte,
}

/// A source serving the db `db` with a signature spoiled as told.
async fn signed_source(db: &trivy_mirror_fixtures::Artifact, spoil: Spoil) -> Arc<MemorySource> {
    let src = MemorySource::new("bundle");
    src.add("trivy-db", "2", db);
    let digest = Digest::parse(&db.manifest_digest()).unwrap();
    let provenance = signing::Provenance { source: "upstream".into(), fetched: jiff::Timestamp::now() };
    let (signer, signed) = match spoil {
        Spoil::OtherKey => (key(OTHER_KEY), digest.clone()),
        Spoil::OtherDigest => (key(TEST_KEY), Digest::of(b"another manifest")),
        _ => (key(TEST_KEY), digest.clone()),
    };
    let mut sig = signing::sign(&signer, &signed, DB_REPO, &provenance).await.unwrap();
    if let Spoil::FlippedByte = spoil {
        let mut m: serde_json::Value = serde_json::from_slice(&sig.manifest).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD;
        let annotation = &mut m["layers"][0]["annotations"][signing::SIGNATURE_ANNOTATION];
        let mut der = b64.decode(annotation.as_str().unwrap()).unwrap();
        let last = der.len() - 1;
        der[last] ^= 1;
        *annotation = b64.encode(der).into();
        sig.manifest = Bytes::from(serde_json::to_vec(&m).unwrap());
    }
    if !matches!(spoil, Spoil::Missing) {
        let blobs: Vec<Bytes> = sig.blobs.iter().map(|(_, b)| b.clone()).collect();
        src.add_raw("trivy-db", &signing::signature_tag(&digest), sig.manifest.clone(), &blobs);
    }
    Arc::new(src)
}

#[tokio::test]
async fn a_required_signature_refuses_every_bad_one_and_publishes_nothing_of_it() {
    let trusted = key(TEST_KEY).public().await.unwrap().clone();
    let require = Signing { key: None, require: vec![trusted.clone()] };
    let old = super::tests::db_at("2026-11-25T06:00:00Z");
    let new = super::tests::db_at("2026-11-26T06:00:00Z");
    let dest = Recorder::new("mem");
    // A valid signature: the version and the signature itself, byte for byte, travel on.
    let good = signed_source(&old, Spoil::None).await;
    let report = sync(&signing_plan(vec![good.clone()], &[Kind::Db], require.clone()), &dests(&[&dest])).await;
    assert_eq!(report.entries[0].outcome, Outcome::Written, "{:?}", report.entries[0].error);
    let digest = Digest::parse(&old.manifest_digest()).unwrap();
    let tag = signing::signature_tag(&digest);
    let carried = dest.get(&layout::manifest_key(DB_REPO, &tag)).await.unwrap();
    let at_source = good.manifest(&crate::artifact::OCI_ARTIFACTS[0], &tag).await.unwrap().unwrap().raw;
    assert_eq!(carried, at_source, "the source's signature is published as is");
    stored_payload(&dest, DB_REPO, &old.manifest_digest(), &trusted).await;

    for (spoil, why) in [
        (Spoil::Missing, "no signature"),
        (Spoil::OtherKey, "not valid for any of the keys"),
        (Spoil::OtherDigest, "for another manifest"),
        (Spoil::FlippedByte, "not valid for any of the keys"),
    ] {
        let before = dest.keys().await;
        let report =
            sync(&signing_plan(vec![signed_source(&new, spoil).await], &[Kind::Db], require.clone()), &dests(&[&dest]))
                .await;
        let e = &report.entries[0];
        assert_eq!(e.outcome, Outcome::Failed);
        let error = e.why().unwrap();
        assert!(error.contains(why) && error.contains("bundle"), "{why}: {error}");
        assert_eq!(e.help(), Some(&Help::CheckSignature));
        let after: Vec<_> = dest
            .keys()
            .await
            .into_iter()
            .filter(|k| !before.contains(k) && k != crate::status_file::STATUS_KEY)
            .collect();
        assert!(after.is_empty(), "{why}: nothing published, yet {after:?}");
        let served = dest.get(&layout::manifest_key(DB_REPO, "2")).await.unwrap();
        assert_eq!(served, old.manifest, "{why}: the previous version stays served");
    }
}
