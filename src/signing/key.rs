//! Keys: an ECDSA P-256 private key to sign with (`sync --sign-key`) and public keys to
//! check with (`verify --key`, `sync --require-signature`), read from PEM as OpenSSL and
//! cosign write them. The arithmetic is aws-lc-rs, which rustls already links.
//!
//! Accepted private keys: PKCS#8 (`openssl genpkey -algorithm EC -pkeyopt
//! ec_paramgen_curve:P-256`, "BEGIN PRIVATE KEY") and SEC1 (`openssl ecparam -genkey`,
//! "BEGIN EC PRIVATE KEY"), and cosign's own encrypted format ("BEGIN ENCRYPTED SIGSTORE
//! PRIVATE KEY", [`super::encrypted`]) with the password cosign reads from
//! `COSIGN_PASSWORD`. Public keys:
//! "BEGIN PUBLIC KEY" (SubjectPublicKeyInfo), which is what `cosign generate-key-pair`
//! and `openssl pkey -pubout` write.

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _, UnparsedPublicKey,
};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{PrivateKeyDer, SubjectPublicKeyInfoDer};

use crate::error::{Error, Result, Setting};
use crate::oci::Digest;

/// The private key a run signs with: a PEM key in memory, or a key in AWS KMS. Its
/// `Debug` shows only where it is.
pub struct SigningKey {
    signer: Signer,
}

enum Signer {
    Pem {
        pair: EcdsaKeyPair,
        public: PublicKey,
    },
    #[cfg(feature = "kms")]
    Kms {
        key: super::kms::KmsKey,
        /// Asked of KMS once per run.
        public: tokio::sync::OnceCell<PublicKey>,
    },
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.signer {
            Signer::Pem { public, .. } => write!(f, "SigningKey({})", public.id),
            #[cfg(feature = "kms")]
            Signer::Kms { .. } => f.write_str("SigningKey(KMS)"),
        }
    }
}

impl SigningKey {
    /// Load a key from `spec`: the PEM itself (as `TRIVY_MIRROR_SIGN_KEY` carries it in a
    /// Lambda or a container job), the path of a PEM file, or `awskms:///…`. Another key
    /// service is named as unsupported rather than read as a file name. `password` opens a
    /// cosign-encrypted key (unset: the empty password, as cosign allows).
    pub fn load(spec: &str, password: Option<&str>) -> Result<SigningKey> {
        if spec.trim_start().starts_with("-----BEGIN") {
            return SigningKey::from_pem(spec.as_bytes(), "(PEM from the environment)", password);
        }
        #[cfg(feature = "kms")]
        if let Some(kms) = super::kms::KmsKey::parse(spec) {
            return Ok(SigningKey { signer: Signer::Kms { key: kms?, public: tokio::sync::OnceCell::new() } });
        }
        if spec.contains("://") {
            let why = if spec.starts_with("awskms://") {
                "AWS KMS keys need a build with the `kms` feature; or give a PEM file"
            } else {
                "the only key management service supported is AWS KMS (awskms:///alias/NAME); or give a PEM file"
            };
            return Err(Error::config(Setting::SignKey, spec, why));
        }
        let pem = std::fs::read(spec)
            .map_err(|e| Error::config(Setting::SignKey, spec, crate::error::io_words(&e).as_str()))?;
        SigningKey::from_pem(&pem, spec, password)
    }

    /// Parse a PKCS#8 or SEC1 PEM private key, or cosign's encrypted one opened with
    /// `password`; `origin` names it in errors (never the key).
    pub fn from_pem(pem: &[u8], origin: &str, password: Option<&str>) -> Result<SigningKey> {
        let bad = |reason: &str| Error::config(Setting::SignKey, origin, reason);
        let text = String::from_utf8_lossy(pem);
        if super::encrypted::is_encrypted(&text) {
            let der = super::encrypted::open(&text, password.unwrap_or_default().as_bytes()).map_err(|p| match p {
                super::encrypted::Problem::WrongPassword if password.is_none() => {
                    bad("a cosign key with a password: set COSIGN_PASSWORD, as for cosign")
                }
                super::encrypted::Problem::WrongPassword => bad("COSIGN_PASSWORD does not open this cosign key"),
                super::encrypted::Problem::Malformed(why) => bad(&format!("not a readable cosign key: {why}")),
            })?;
            return SigningKey::from_der(&der, origin);
        }
        let der = PrivateKeyDer::from_pem_slice(pem)
            .map_err(|_| bad("no PEM private key found (expected BEGIN PRIVATE KEY or BEGIN EC PRIVATE KEY)"))?;
        let body = match &der {
            PrivateKeyDer::Pkcs8(k) => k.secret_pkcs8_der(),
            PrivateKeyDer::Sec1(k) => k.secret_sec1_der(),
            _ => return Err(bad("an RSA key; expected an ECDSA P-256 key")),
        };
        SigningKey::from_der(body, origin)
    }

    /// A PKCS#8 or SEC1 DER P-256 private key.
    fn from_der(body: &[u8], origin: &str) -> Result<SigningKey> {
        let bad = |reason: &str| Error::config(Setting::SignKey, origin, reason);
        let pair = EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_ASN1_SIGNING, body)
            .map_err(|_| bad("not an ECDSA P-256 key"))?;
        let spki = pair.public_key().as_der().map_err(|_| bad("its public key cannot be encoded"))?;
        let public = PublicKey::from_spki(spki.as_ref().to_vec(), origin.to_string());
        Ok(SigningKey { signer: Signer::Pem { pair, public } })
    }

    /// A fresh random key (the conformance routine signs with one).
    #[cfg(any(test, feature = "conformance"))]
    pub fn generate() -> SigningKey {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).expect("key generation");
        let spki = pair.public_key().as_der().expect("public key DER");
        let public = PublicKey::from_spki(spki.as_ref().to_vec(), "generated".to_string());
        SigningKey { signer: Signer::Pem { pair, public } }
    }

    /// ECDSA P-256 with SHA-256 over `message`, ASN.1 DER encoded (what cosign stores).
    pub async fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        match &self.signer {
            // Signing with a parsed key only fails if the system's RNG does.
            Signer::Pem { pair, .. } => {
                Ok(pair.sign(&SystemRandom::new(), message).expect("ECDSA signing").as_ref().to_vec())
            }
            #[cfg(feature = "kms")]
            Signer::Kms { key, .. } => key.sign(message).await,
        }
    }

    /// The matching public key (for a KMS key, asked of KMS once).
    pub async fn public(&self) -> Result<&PublicKey> {
        match &self.signer {
            Signer::Pem { public, .. } => Ok(public),
            #[cfg(feature = "kms")]
            Signer::Kms { key, public } => {
                public.get_or_try_init(|| async { PublicKey::from_der(key.public_der().await?, key.spec()) }).await
            }
        }
    }
}

/// A public key to check signatures with.
#[derive(Clone)]
pub struct PublicKey {
    spki: Vec<u8>,
    /// Where it came from (a file name), for messages.
    pub origin: String,
    /// sha256 of the SubjectPublicKeyInfo, shortened: tells keys apart in logs.
    pub id: String,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({} {})", self.origin, self.id)
    }
}

impl PublicKey {
    fn from_spki(spki: Vec<u8>, origin: String) -> PublicKey {
        let id = Digest::of(&spki).hex()[..16].to_string();
        PublicKey { spki, origin, id }
    }

    /// A DER SubjectPublicKeyInfo (what KMS answers), refused unless P-256.
    #[cfg_attr(not(feature = "kms"), allow(dead_code))]
    pub(super) fn from_der(spki: Vec<u8>, origin: &str) -> Result<PublicKey> {
        aws_lc_rs::signature::ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &spki)
            .map_err(|_| Error::config(Setting::SignKey, origin, "its public key is not an ECDSA P-256 key"))?;
        Ok(PublicKey::from_spki(spki, origin.to_string()))
    }

    /// Read a "BEGIN PUBLIC KEY" PEM file given as `setting`.
    pub fn load(path: &str, setting: Setting) -> Result<PublicKey> {
        let pem = std::fs::read(path).map_err(|e| Error::config(setting, path, crate::error::io_words(&e).as_str()))?;
        PublicKey::from_pem(&pem, path, setting)
    }

    /// Parse a "BEGIN PUBLIC KEY" PEM; `origin` names it in messages.
    pub fn from_pem(pem: &[u8], origin: &str, setting: Setting) -> Result<PublicKey> {
        let bad = |reason: &str| Error::config(setting, origin, reason);
        let der = SubjectPublicKeyInfoDer::from_pem_slice(pem)
            .map_err(|_| bad("no PEM public key found (expected BEGIN PUBLIC KEY)"))?;
        let key = PublicKey::from_spki(der.as_ref().to_vec(), origin.to_string());
        // An unusable key is refused now, not at every check.
        aws_lc_rs::signature::ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &key.spki)
            .map_err(|_| bad("not an ECDSA P-256 public key"))?;
        Ok(key)
    }

    /// Whether `signature` (ASN.1 DER) is this key's ECDSA P-256/SHA-256 signature of `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &self.spki).verify(message, signature).is_ok()
    }

    /// The key as PEM ("BEGIN PUBLIC KEY"), e.g. to hand to `cosign verify --key`.
    pub fn to_pem(&self) -> String {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&self.spki);
        let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).expect("ascii")).collect();
        format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", lines.join("\n"))
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.spki == other.spki
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A throwaway P-256 key (made with `openssl genpkey -algorithm EC -pkeyopt
    /// ec_paramgen_curve:P-256`); it signs nothing outside these tests.
    pub(crate) const TEST_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgEHlxKAtaySXs6C9h
mYEqgtIZA3jXruKB9Oym7FvVnuKhRANCAAQNBccfCLxLjlq79dLtSPeudccWINc9
6gbgQ8gsOCYpZC3x2OcMsApybVO1+TmzXZwuDsDNG/ZUZHDC56OTSRqc
-----END PRIVATE KEY-----
";

    /// A second throwaway key, in SEC1 form (`openssl ecparam -name prime256v1 -genkey`).
    pub(crate) const OTHER_KEY: &str = "-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIBs9hWal8zh0jvJ43pHQuxuUwI0crVmPPL7Nyh2U/xruoAoGCCqGSM49
AwEHoUQDQgAE6ujtjgPzg9jql+dMvtE0LO9+CclMNxhHhOmFItCDY5RMjjSqkn5Z
ibY1v30sViSjQaNo0RDFWhLBi7eoJbtICw==
-----END EC PRIVATE KEY-----
";

    #[tokio::test]
    async fn signs_and_verifies_and_refuses_other_messages() {
        let key = SigningKey::from_pem(TEST_KEY.as_bytes(), "test", None).unwrap();
        let sig = key.sign(b"payload").await.unwrap();
        let public = key.public().await.unwrap();
        assert!(public.verifies(b"payload", &sig));
        assert!(!public.verifies(b"payload!", &sig));
        let other = SigningKey::from_pem(OTHER_KEY.as_bytes(), "sec1", None).unwrap();
        assert!(!other.public().await.unwrap().verifies(b"payload", &sig), "another key does not verify it");
        let round = PublicKey::from_pem(public.to_pem().as_bytes(), "pem", Setting::VerifyKey).unwrap();
        assert_eq!(&round, public);
        assert!(round.verifies(b"payload", &sig));
    }

    #[test]
    fn bad_keys_name_the_file_not_the_key() {
        for pem in ["", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"] {
            let e = SigningKey::from_pem(pem.as_bytes(), "k.pem", None).unwrap_err().to_string();
            assert!(e.contains("k.pem"), "{e}");
        }
        let e = SigningKey::load("gcpkms://projects/p/keys/k", None).unwrap_err().to_string();
        assert!(e.contains("only key management service supported is AWS KMS"), "{e}");
        let e = SigningKey::load(TEST_KEY.replace("MIGH", "MIGX").as_str(), None).unwrap_err().to_string();
        assert!(!e.contains("MIG"), "the key itself is never echoed: {e}");
    }
}
