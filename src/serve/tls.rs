//! `serve --tls-cert FILE --tls-key FILE`: rustls (the same 0.23 and aws-lc-rs provider
//! reqwest already carries), TLS 1.2 and 1.3, ALPN `h2` and `http/1.1`.
//!
//! cert-manager and Let's Encrypt clients replace the files in place, so the certified
//! key is chosen per handshake by a resolver that re-reads both files when either one's
//! (length, mtime, inode) changed — looked at no more than once a second. Connections
//! already open keep their session; new handshakes get the new certificate. A pair that
//! does not load (written half-way, or a key that does not match) keeps the previous one
//! with a warning, and is tried again on the next check.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::http::FileKey;
use crate::error::{Error, Result, Setting};

const RESTAT: Duration = Duration::from_secs(1);

/// The rustls server configuration for a certificate and key on disk.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let resolver = Reloading::load(cert, key, provider.clone())?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| Error::config(Setting::TlsCertificate, cert.display().to_string(), e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[derive(Debug)]
struct Loaded {
    keys: (Option<FileKey>, Option<FileKey>),
    certified: Arc<CertifiedKey>,
}

/// A certificate resolver that follows the files.
#[derive(Debug)]
struct Reloading {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Loaded>,
    last_stat: Mutex<Instant>,
}

impl Reloading {
    fn load(cert: &Path, key: &Path, provider: Arc<CryptoProvider>) -> Result<Reloading> {
        let loaded = load_pair(cert, key, &provider)?;
        Ok(Reloading {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            provider,
            current: RwLock::new(loaded),
            last_stat: Mutex::new(Instant::now()),
        })
    }

    fn reload_if_changed(&self) {
        {
            let mut last = self.last_stat.lock().expect("stat lock");
            if last.elapsed() < RESTAT {
                return;
            }
            *last = Instant::now();
        }
        if file_keys(&self.cert, &self.key) == self.current.read().expect("cert lock").keys {
            return;
        }
        match load_pair(&self.cert, &self.key, &self.provider) {
            Ok(loaded) => {
                tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                *self.current.write().expect("cert lock") = loaded;
            }
            Err(e) => tracing::warn!("keeping the previous TLS certificate: {e}"),
        }
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.reload_if_changed();
        Some(self.current.read().expect("cert lock").certified.clone())
    }
}

fn file_keys(cert: &Path, key: &Path) -> (Option<FileKey>, Option<FileKey>) {
    let k = |p: &Path| std::fs::metadata(p).ok().map(|m| FileKey::of(&m));
    (k(cert), k(key))
}

/// Read and check a certificate chain and its key; errors name the file at fault.
fn load_pair(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<Loaded> {
    // Metadata first: if a file changes while it is read, the next check sees it again.
    let keys = file_keys(cert, key);
    let cert_err = |reason: String| Error::config(Setting::TlsCertificate, cert.display().to_string(), reason);
    let key_err = |reason: String| Error::config(Setting::TlsKey, key.display().to_string(), reason);
    let cert_pem = std::fs::read(cert).map_err(|e| cert_err(format!("cannot be read: {e}")))?;
    let key_pem = std::fs::read(key).map_err(|e| key_err(format!("cannot be read: {e}")))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| cert_err(format!("is not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(cert_err("holds no PEM certificate (BEGIN CERTIFICATE)".into()));
    }
    let private = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| key_err(format!("holds no PEM private key (PKCS#8, PKCS#1 or SEC1): {e}")))?;
    let certified = CertifiedKey::from_der(chain, private, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => key_err(format!("does not match the certificate in {}", cert.display())),
        other => key_err(format!("cannot be used: {other}")),
    })?;
    Ok(Loaded { keys, certified: Arc::new(certified) })
}
