//! The artifacts this mirror carries and what a valid one looks like: upstream name, tag,
//! the layer media type and title Trivy insists on.
//!
//! Trivy (`pkg/oci/artifact.go`) requires exactly one layer with an exact media type, and
//! takes the file name from the layer's `org.opencontainers.image.title` annotation.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Setting};

/// Which family of Trivy data an artifact belongs to; what `--only` selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// trivy-db, the vulnerability database (BoltDB).
    Db,
    /// trivy-java-db, the Maven index (SQLite).
    JavaDb,
    /// trivy-checks, the misconfiguration checks bundle (Rego).
    Checks,
    /// VEX Hub, the VEX repository (plain HTTPS upstream; copied as the OCI artifact of
    /// [`crate::vex::artifact`]).
    Vex,
}

impl Kind {
    /// Every kind, in the order a sync processes them.
    pub const ALL: [Kind; 4] = [Kind::Db, Kind::JavaDb, Kind::Checks, Kind::Vex];

    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Db => "db",
            Kind::JavaDb => "java-db",
            Kind::Checks => "checks",
            Kind::Vex => "vex",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| Error::config(Setting::ArtifactKind, s, "expected one of db, java-db, checks, vex"))
    }
}

/// One OCI artifact the mirror copies: a repository name (relative to a source namespace
/// and to the published namespace) and a tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OciArtifact {
    /// The family, for `--only`.
    pub kind: Kind,
    /// Repository name below the namespace, e.g. `trivy-db`.
    pub name: &'static str,
    /// The tag Trivy asks for.
    pub tag: &'static str,
    /// The one layer media type Trivy accepts for this artifact.
    pub layer_media_type: &'static str,
    /// The layer title upstream uses (informational; any `*.tar.gz` title is accepted).
    pub title: &'static str,
}

/// Layer media type of trivy-db.
pub const DB_LAYER: &str = "application/vnd.aquasec.trivy.db.layer.v1.tar+gzip";
/// Layer media type of trivy-java-db.
pub const JAVA_DB_LAYER: &str = "application/vnd.aquasec.trivy.javadb.layer.v1.tar+gzip";
/// Layer media type of trivy-checks.
pub const CHECKS_LAYER: &str = "application/vnd.cncf.openpolicyagent.layer.v1.tar+gzip";

/// What a sync mirrors by default. trivy-checks carries both `:1` (Trivy ≤ 0.68) and
/// `:2` (Trivy ≥ 0.69, trivy PR #9875), so one mirror serves old and new clients.
pub const OCI_ARTIFACTS: [OciArtifact; 4] = [
    OciArtifact { kind: Kind::Db, name: "trivy-db", tag: "2", layer_media_type: DB_LAYER, title: "db.tar.gz" },
    OciArtifact {
        kind: Kind::JavaDb,
        name: "trivy-java-db",
        tag: "1",
        layer_media_type: JAVA_DB_LAYER,
        title: "javadb.tar.gz",
    },
    OciArtifact {
        kind: Kind::Checks,
        name: "trivy-checks",
        tag: "1",
        layer_media_type: CHECKS_LAYER,
        title: "bundle.tar.gz",
    },
    OciArtifact {
        kind: Kind::Checks,
        name: "trivy-checks",
        tag: "2",
        layer_media_type: CHECKS_LAYER,
        title: "bundle.tar.gz",
    },
];

/// VEX Hub as the engine copies it: `<namespace>/vexhub:latest`. Its shape differs from
/// the databases' (a config holding the upstream manifest, one layer per archive), which
/// `manifest::check` knows by its kind; `layer_media_type` and `title` name the usual
/// single tar.gz archive.
pub const VEX_ARTIFACT: OciArtifact = OciArtifact {
    kind: Kind::Vex,
    name: crate::vex::artifact::VEX_NAME,
    tag: crate::vex::artifact::VEX_TAG,
    layer_media_type: crate::vex::artifact::VEX_TAR_GZ_TYPE,
    title: "main.tar.gz",
};

/// Everything a sync copies, in the order of the summary: the Trivy databases, then VEX.
pub const ARTIFACTS: [OciArtifact; 5] =
    [OCI_ARTIFACTS[0], OCI_ARTIFACTS[1], OCI_ARTIFACTS[2], OCI_ARTIFACTS[3], VEX_ARTIFACT];

impl OciArtifact {
    /// `trivy-db:2`, for messages, the summary and `status.json`; VEX keeps the name it
    /// has always had there, `vex`.
    pub fn label(&self) -> String {
        match self.kind {
            Kind::Vex => Kind::Vex.as_str().to_string(),
            _ => format!("{}:{}", self.name, self.tag),
        }
    }
}

impl fmt::Display for OciArtifact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for k in Kind::ALL {
            assert_eq!(k.as_str().parse::<Kind>().unwrap(), k);
        }
        assert!("java".parse::<Kind>().is_err());
    }

    #[test]
    fn checks_carries_both_major_versions() {
        let tags: Vec<_> = OCI_ARTIFACTS.iter().filter(|a| a.kind == Kind::Checks).map(|a| a.tag).collect();
        assert_eq!(tags, ["1", "2"]);
    }
}
