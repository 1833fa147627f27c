//! An in-memory [`Source`] for the engine's fast tests: artifacts held as bytes, request
//! counters, and the faults a test injects (unreachable, a stream cut mid-blob, a flipped
//! byte). Built for fault injection, which no real registry produces on demand; the
//! integration tests run the same engine against real registries.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream;

use super::{RawBlob, RawManifest, Source};
use crate::artifact::OciArtifact;
use crate::error::{Cause, Error, Result};
use crate::oci::{Descriptor, Digest};

/// What goes wrong with the next requests for a blob.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Fault {
    /// The stream ends with a connection reset after this many bytes (transient).
    CutAfter(usize),
    /// One byte is flipped; the size stays right.
    Flip,
}

#[derive(Debug, Default)]
pub(crate) struct MemorySource {
    label: String,
    manifests: Mutex<HashMap<String, RawManifest>>,
    blobs: Mutex<HashMap<Digest, Bytes>>,
    /// Per blob: the fault and how many more requests it applies to.
    faults: Mutex<HashMap<Digest, (Fault, usize)>>,
    unreachable: std::sync::atomic::AtomicBool,
    pub(crate) manifest_requests: AtomicUsize,
    pub(crate) blob_requests: AtomicUsize,
}

impl MemorySource {
    pub(crate) fn new(label: &str) -> Self {
        MemorySource { label: label.to_string(), ..Default::default() }
    }

    /// Serve `fixture` as `name:tag`.
    pub(crate) fn add(&self, name: &str, tag: &str, fixture: &trivy_mirror_fixtures::Artifact) -> &Self {
        let raw = RawManifest {
            raw: Bytes::from(fixture.manifest.clone()),
            content_type: Some(fixture.manifest_media_type.to_string()),
        };
        self.manifests.lock().unwrap().insert(format!("{name}:{tag}"), raw);
        let mut blobs = self.blobs.lock().unwrap();
        for blob in [&fixture.config, &fixture.layer] {
            blobs.insert(Digest::of(blob), Bytes::from(blob.clone()));
        }
        self
    }

    /// Serve the manifest `raw` as `name:tag`, and `blobs` (an artifact no fixture
    /// builds, such as VEX).
    pub(crate) fn add_raw(&self, name: &str, tag: &str, raw: Bytes, blobs: &[Bytes]) -> &Self {
        let manifest = RawManifest { raw, content_type: Some(crate::oci::OCI_MANIFEST.to_string()) };
        self.manifests.lock().unwrap().insert(format!("{name}:{tag}"), manifest);
        let mut kept = self.blobs.lock().unwrap();
        for blob in blobs {
            kept.insert(Digest::of(blob), blob.clone());
        }
        self
    }

    /// Apply `fault` to the next `times` requests for the blob `digest`.
    pub(crate) fn fault(&self, digest: &str, fault: Fault, times: usize) {
        self.faults.lock().unwrap().insert(Digest::parse(digest).unwrap(), (fault, times));
    }

    /// Every request fails as a host name that does not resolve would.
    pub(crate) fn set_unreachable(&self) {
        self.unreachable.store(true, Ordering::SeqCst);
    }

    fn check_reachable(&self, url: String) -> Result<()> {
        if self.unreachable.load(Ordering::SeqCst) {
            return Err(Error::Transport {
                method: "GET",
                url,
                cause: Cause::Dns,
                message: "dns error: failed to lookup address information".into(),
                transient: false,
                proxy: None,
                help: None,
            });
        }
        Ok(())
    }
}

#[async_trait]
impl Source for MemorySource {
    fn label(&self) -> &str {
        &self.label
    }

    async fn manifest(&self, artifact: &OciArtifact, reference: &str) -> Result<Option<RawManifest>> {
        self.manifest_requests.fetch_add(1, Ordering::SeqCst);
        self.check_reachable(format!("memory://{}/{}:{reference}", self.label, artifact.name))?;
        Ok(self.manifests.lock().unwrap().get(&format!("{}:{reference}", artifact.name)).cloned())
    }

    async fn blob(&self, artifact: &OciArtifact, desc: &Descriptor) -> Result<RawBlob> {
        self.blob_requests.fetch_add(1, Ordering::SeqCst);
        let url = format!("memory://{}/{}/blobs/{}", self.label, artifact.name, desc.digest);
        self.check_reachable(url.clone())?;
        let Some(data) = self.blobs.lock().unwrap().get(&desc.digest).cloned() else {
            return Err(Error::NotFound { what: format!("blob {}", desc.digest), place: self.label.clone() });
        };
        let fault = {
            let mut faults = self.faults.lock().unwrap();
            match faults.get_mut(&desc.digest) {
                Some((fault, left)) if *left > 0 => {
                    *left -= 1;
                    Some(*fault)
                }
                _ => None,
            }
        };
        // Chunks of 1 KiB, so that a cut lands between chunks as it would on the wire.
        let chunks = |d: Bytes| -> Vec<Result<Bytes>> {
            (0..d.len()).step_by(1024).map(|i| Ok(d.slice(i..(i + 1024).min(d.len())))).collect()
        };
        let items = match fault {
            None => chunks(data),
            Some(Fault::Flip) => {
                let mut v = data.to_vec();
                let mid = v.len() / 2;
                v[mid] ^= 0x01;
                chunks(Bytes::from(v))
            }
            Some(Fault::CutAfter(n)) => {
                let mut items = chunks(data.slice(..n.min(data.len())));
                items.push(Err(Error::Transport {
                    method: "GET",
                    url,
                    cause: Cause::Reset,
                    message: "connection reset by peer".into(),
                    transient: true,
                    proxy: None,
                    help: None,
                }));
                items
            }
        };
        Ok(Box::pin(stream::iter(items)))
    }
}
