//! A parsed `--source` value, the counterpart of [`crate::dest::DestinationUrl`]: which
//! kind of source a spec names, decided once for every entry point. The `kind:PATH` forms
//! ([`path_form`]) are read here for both: a destination URL uses them too.

use std::path::PathBuf;

use crate::error::{Error, Result, Setting};

/// Where artifacts come from, as written in the settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceLocation {
    /// `REGISTRY[:PORT]/NAMESPACE`: an upstream registry namespace (its grammar is checked
    /// by [`crate::source::RegistrySource::parse`]).
    Registry {
        /// The spec as given, trimmed.
        spec: String,
        /// The registry host, with its port if any: whose credentials apply.
        host: String,
    },
    /// `oci:DIR`: an air-gap bundle as an OCI image layout directory.
    OciLayout(PathBuf),
    /// `oci-archive:FILE`: an air-gap bundle as a tar.
    OciArchive(PathBuf),
}

impl SourceLocation {
    /// Parse a source as written on the command line or in the environment.
    pub fn parse(spec: &str) -> Result<SourceLocation> {
        let spec = spec.trim();
        if let Some((form, path)) = path_form(spec) {
            return match form {
                PathForm::OciLayout => Ok(SourceLocation::OciLayout(PathBuf::from(path))),
                PathForm::OciArchive => Ok(SourceLocation::OciArchive(PathBuf::from(path))),
                PathForm::TrivyCache => Err(Error::config(
                    Setting::Source,
                    spec,
                    "a Trivy cache is a destination only; give the bundle (oci:DIR or oci-archive:FILE)",
                )),
            };
        }
        let host = spec.split('/').next().unwrap_or_default().to_string();
        Ok(SourceLocation::Registry { spec: spec.to_string(), host })
    }

    /// Whether this is an air-gap bundle (read with no network at all).
    pub fn is_bundle(&self) -> bool {
        !matches!(self, SourceLocation::Registry { .. })
    }
}

/// The forms written `kind:PATH` (skopeo's transport names for OCI image layouts), as
/// opposed to a plain directory (a static layout) or a URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathForm {
    /// `oci:DIR`: an OCI image layout directory.
    OciLayout,
    /// `oci-archive:FILE`: a tar of an OCI image layout.
    OciArchive,
    /// `trivy-cache:DIR` (a destination only).
    TrivyCache,
}

/// Split `oci:DIR`, `oci-archive:FILE` or `trivy-cache:DIR` (not `oci://…`).
pub fn path_form(s: &str) -> Option<(PathForm, &str)> {
    if s.contains("://") {
        return None;
    }
    let (kind, path) = s.split_once(':')?;
    let kind = match kind {
        "oci" => PathForm::OciLayout,
        "oci-archive" => PathForm::OciArchive,
        "trivy-cache" => PathForm::TrivyCache,
        _ => return None,
    };
    Some((kind, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_names_a_registry_or_a_bundle_but_never_a_cache() {
        assert_eq!(
            SourceLocation::parse(" ghcr.io/aquasecurity ").unwrap(),
            SourceLocation::Registry { spec: "ghcr.io/aquasecurity".into(), host: "ghcr.io".into() }
        );
        assert_eq!(SourceLocation::parse("oci:/b").unwrap(), SourceLocation::OciLayout("/b".into()));
        assert_eq!(SourceLocation::parse("oci-archive:b.tar").unwrap(), SourceLocation::OciArchive("b.tar".into()));
        assert!(SourceLocation::parse("oci:/b").unwrap().is_bundle());
        let err = SourceLocation::parse("trivy-cache:/c").unwrap_err().to_string();
        assert!(err.contains("destination only"), "{err}");
    }
}
