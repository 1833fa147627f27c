//! Replays every committed input through its harness with plain `cargo test` (no
//! cargo-fuzz, no nightly flags): the seed corpus under `corpus/<target>/` and every
//! minimised crash under `regressions/<target>/`. A crash found by fuzzing is fixed for
//! good once its input is saved in `regressions/<target>/` and this test passes.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use trivy_mirror_fuzz::{TARGETS, spec_repository, spec_tag};

fn inputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(read) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<_> = read
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| !n.to_string_lossy().starts_with('.')))
        .collect();
    files.sort();
    files.into_iter().map(|p| (p.display().to_string(), std::fs::read(&p).expect("read input"))).collect()
}

fn replay(kind: &str) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut failures = Vec::new();
    let mut count = 0;
    for (target, harness) in TARGETS {
        for (name, data) in inputs(&root.join(kind).join(target)) {
            count += 1;
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| harness(&data))) {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{name}: {msg}"));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {count} inputs fail:\n{}", failures.len(), failures.join("\n"));
    count
}

#[test]
fn seed_corpus_passes_every_harness() {
    let n = replay("corpus");
    assert!(n >= TARGETS.len(), "only {n} seed inputs: is corpus/ missing?");
}

#[test]
fn saved_crashes_stay_fixed() {
    replay("regressions");
}

#[test]
fn every_target_has_seeds_and_an_entry_point() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (target, _) in TARGETS {
        assert!(root.join("fuzz_targets").join(format!("{target}.rs")).is_file(), "{target}: no fuzz target");
        assert!(!inputs(&root.join("corpus").join(target)).is_empty(), "{target}: no seed corpus");
    }
}

#[test]
fn reference_grammars_match_the_spec_examples() {
    for good in ["aquasecurity/trivy-db", "a/b/c", "my.org/x_y", "a__b", "a---b", "a.b-c_d"] {
        assert!(spec_repository(good), "{good}");
    }
    for bad in ["", "Aqua/x", "a//b", "../x", "a/../b", "/a", "a/", "a/-b", "a___b", "a._b", "a-.b", "a_-b"] {
        assert!(!spec_repository(bad), "{bad}");
    }
    for good in ["2", "latest", "2-20261126T0600Z", "v1.2.3", "_x", &"x".repeat(128)] {
        assert!(spec_tag(good), "{good}");
    }
    for bad in ["", "-x", ".x", "a/b", "a:b", &"x".repeat(129), "é"] {
        assert!(!spec_tag(bad), "{bad}");
    }
}
