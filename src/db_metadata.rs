//! Reading `metadata.json` out of a trivy-db or trivy-java-db layer (a tar.gz) while it
//! streams, for `status.json`, dated snapshot tags and `verify`'s freshness check.
//!
//! Trivy re-downloads a database whose `NextUpdate` has passed on every run more than an
//! hour apart (docs/TRIVY.md, "When clients download again"; Trivy pkg/db/db.go), so a mirror serving a stale DB multiplies its
//! traffic: this is what lets an operator see that coming.

use std::io::Read;

use futures_util::TryStreamExt as _;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::stream::BlobStream;

/// The fields of `metadata.json` (Go field names, as trivy-db writes them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbMetadata {
    /// Schema version: 2 for trivy-db, 1 for trivy-java-db.
    #[serde(rename = "Version")]
    pub version: i64,
    /// When clients will look for a newer database.
    #[serde(rename = "NextUpdate")]
    pub next_update: Option<Timestamp>,
    /// When upstream built it.
    #[serde(rename = "UpdatedAt")]
    pub updated_at: Option<Timestamp>,
}

/// Read a tar.gz to the end, returning its `metadata.json` if it has one. Reading to the
/// end matters when the reader also hashes: every byte must pass.
pub fn read_metadata(reader: impl Read) -> crate::Result<Option<DbMetadata>> {
    let refuse = |reason: String| crate::Error::rejected("database layer", reason);
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(reader));
    let mut found = None;
    let entries = archive.entries().map_err(|e| refuse(format!("not a tar.gz: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| refuse(format!("not a tar.gz: {e}")))?;
        let path = entry.path().map_err(|e| refuse(e.to_string()))?;
        let path = path.to_string_lossy().trim_start_matches("./").to_string();
        if path == "metadata.json" && found.is_none() {
            let mut buf = Vec::new();
            (&mut entry).take(1024 * 1024).read_to_end(&mut buf).map_err(|e| refuse(e.to_string()))?;
            found = Some(serde_json::from_slice(&buf).map_err(|e| refuse(format!("metadata.json: {e}")))?);
        }
    }
    // Drain whatever follows the tar end marker (gzip trailer, padding).
    let mut rest = archive.into_inner();
    std::io::copy(&mut rest, &mut std::io::sink()).map_err(|e| refuse(e.to_string()))?;
    Ok(found)
}

/// Consume a blob stream (a fan-out branch) and extract its `metadata.json`. Any problem
/// (not a tar.gz, no metadata) gives `None`: inspection never fails a sync.
pub async fn metadata_from_stream(stream: BlobStream) -> Option<DbMetadata> {
    let reader = tokio_util::io::StreamReader::new(stream.map_err(std::io::Error::other));
    let bridge = tokio_util::io::SyncIoBridge::new(reader);
    match tokio::task::spawn_blocking(move || read_metadata(bridge)).await {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "no metadata.json in the layer");
            None
        }
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::tar_gz;

    #[test]
    fn finds_metadata_as_trivy_db_writes_it() {
        let meta = br#"{"Version":2,"NextUpdate":"2023-07-20T18:11:37.696263532Z","UpdatedAt":"2023-07-20T12:11:37.696263932Z","DownloadedAt":"0001-01-01T00:00:00Z"}"#;
        let archive = tar_gz(&[("trivy.db", b"bolt"), ("metadata.json", meta)]);
        let m = read_metadata(&archive[..]).unwrap().unwrap();
        assert_eq!(m.version, 2);
        assert_eq!(m.next_update.unwrap().to_string(), "2023-07-20T18:11:37.696263532Z");
        assert!(read_metadata(&tar_gz(&[("x", b"y")])[..]).unwrap().is_none());
        assert!(read_metadata(&b"garbage"[..]).is_err());
    }
}
