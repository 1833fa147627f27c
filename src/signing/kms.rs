//! Signing with an AWS KMS asymmetric key: `--sign-key awskms:///alias/NAME` (or a key id
//! or ARN after `awskms:///`, cosign's URI form), so that a Lambda or a container job holds
//! no key material. The key must be `ECC_NIST_P256` with `SIGN_VERIFY` usage; each
//! signature is one `Sign` call (`ECDSA_SHA_256`, message type `RAW`: KMS hashes the
//! payload, a few hundred bytes, well under its 4096-byte limit) and returns the ASN.1 DER
//! signature cosign stores. Credentials, region and endpoint come from the environment as
//! for any AWS SDK (`AWS_REGION`, a role, `AWS_ENDPOINT_URL`). Built with the `kms`
//! feature.

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, MessageType, SigningAlgorithmSpec};
use tokio::sync::OnceCell;

use crate::error::{Error, Result, Setting};

/// A KMS key, reached on first use.
pub(super) struct KmsKey {
    spec: String,
    key_id: String,
    client: OnceCell<aws_sdk_kms::Client>,
}

impl KmsKey {
    /// `awskms:///KEY` → the key; `None` if `spec` is not a KMS URI.
    pub(super) fn parse(spec: &str) -> Option<Result<KmsKey>> {
        let rest = spec.strip_prefix("awskms://")?;
        // cosign allows an endpoint between `//` and the key; the SDK's own
        // AWS_ENDPOINT_URL is the way here.
        let Some(key_id) = rest.strip_prefix('/').filter(|k| !k.is_empty()) else {
            let why = "expected awskms:///alias/NAME or awskms:///KEY-ID (set AWS_ENDPOINT_URL for another endpoint)";
            return Some(Err(Error::config(Setting::SignKey, spec, why)));
        };
        let key = KmsKey { spec: spec.to_string(), key_id: key_id.to_string(), client: OnceCell::new() };
        Some(Ok(key))
    }

    fn fail(&self, what: &str, e: impl std::error::Error) -> Error {
        let cause = aws_sdk_kms::error::DisplayErrorContext(e);
        Error::config(Setting::SignKey, self.spec.as_str(), format!("KMS {what}: {cause}"))
    }

    async fn client(&self) -> &aws_sdk_kms::Client {
        self.client
            .get_or_init(|| async {
                let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
                aws_sdk_kms::Client::new(&config)
            })
            .await
    }

    /// `awskms:///…` as given (names the key in errors).
    pub(super) fn spec(&self) -> &str {
        &self.spec
    }

    /// The key's public half as DER SubjectPublicKeyInfo (`GetPublicKey`), refused unless
    /// it is a P-256 key.
    pub(super) async fn public_der(&self) -> Result<Vec<u8>> {
        let out = self.client().await.get_public_key().key_id(&self.key_id).send().await;
        let out = out.map_err(|e| self.fail("GetPublicKey", e))?;
        // KMS answers KeySpec and its deprecated twin CustomerMasterKeySpec; some
        // implementations (moto) only the latter.
        #[allow(deprecated)]
        let spec = out.key_spec().map(KeySpec::as_str).or(out.customer_master_key_spec().map(|s| s.as_str()));
        if spec != Some(KeySpec::EccNistP256.as_str()) {
            let found = spec.unwrap_or("unknown");
            let why = format!("the key is {found}; cosign-compatible signatures need ECC_NIST_P256");
            return Err(Error::config(Setting::SignKey, self.spec.as_str(), why));
        }
        Ok(out.public_key().map(|b| b.as_ref().to_vec()).unwrap_or_default())
    }

    /// ECDSA P-256/SHA-256 of `message` by KMS, ASN.1 DER.
    pub(super) async fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        let out = self
            .client()
            .await
            .sign()
            .key_id(&self.key_id)
            .message(Blob::new(message))
            .message_type(MessageType::Raw)
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await
            .map_err(|e| self.fail("Sign", e))?;
        Ok(out.signature().map(|b| b.as_ref().to_vec()).unwrap_or_default())
    }
}
