//! The command line as users see it: `--help` texts and the end-of-run summary are
//! compared with committed snapshots (`UPDATE_SNAPSHOTS=1` rewrites them after a
//! deliberate change).

use crate::harness::*;

pub(crate) fn check_snapshot(name: &str, actual: &str) {
    let path = root().join("tests/it/snapshots").join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} is missing: run with UPDATE_SNAPSHOTS=1", path.display()));
    assert_eq!(actual, expected, "{name} changed; if on purpose, rerun with UPDATE_SNAPSHOTS=1");
}

#[test]
fn help_texts() {
    for (name, args) in [
        ("help.txt", vec!["--help"]),
        ("sync-help.txt", vec!["sync", "--help"]),
        ("serve-help.txt", vec!["serve", "--help"]),
        ("verify-help.txt", vec!["verify", "--help"]),
        ("prune-help.txt", vec!["prune", "--help"]),
    ] {
        let out = mirror().args(&args).env("COLUMNS", "100").output().unwrap();
        assert!(out.status.success());
        check_snapshot(name, &text(&out.stdout));
    }
}

#[test]
fn summary_table() {
    let (_, registry) = Upstream::seeded();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("mirror");
    let source = format!("{}/aquasecurity", registry.addr);
    let run = |dir: &std::path::Path| {
        let out = mirror().args(["sync", "-q", "--to", dir.to_str().unwrap(), "--source", &source]).output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        // Seconds and the destination path vary between runs, and column widths with them.
        text(&out.stdout)
            .replace(dir.to_str().unwrap(), "DIR")
            .lines()
            .map(|l| {
                let mut cells: Vec<&str> = l.split_whitespace().collect();
                cells.pop();
                cells.push("SECONDS");
                cells.join(" ") + "\n"
            })
            .collect::<String>()
    };
    check_snapshot("summary-first-run.txt", &run(&dir));
    check_snapshot("summary-rerun.txt", &run(&dir));
}
