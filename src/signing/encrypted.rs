//! cosign's encrypted private key (`cosign generate-key-pair`, "BEGIN ENCRYPTED SIGSTORE
//! PRIVATE KEY", formerly "… COSIGN PRIVATE KEY"), so a key made for cosign signs here
//! unchanged, with its password in `COSIGN_PASSWORD` as cosign reads it.
//!
//! The PEM body is JSON from go-securesystemslib's `encrypted` package (cosign's
//! `pkg/cosign/keys.go` calls `encrypted.Encrypt` on the PKCS#8 DER of the key):
//! `{"kdf": {"name": "scrypt", "params": {"N", "r", "p"}, "salt"}, "cipher": {"name":
//! "nacl/secretbox", "nonce"}, "ciphertext"}`, byte strings in base64. The secretbox key is
//! scrypt(password, salt, N, r, p) of 32 bytes; the ciphertext is NaCl's (tag first).

use base64::Engine as _;
use crypto_secretbox::aead::{Aead as _, KeyInit as _};
use crypto_secretbox::{Nonce, XSalsa20Poly1305};
use serde::Deserialize;

/// The PEM labels cosign has written.
const LABELS: [&str; 2] = ["ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY"];

/// scrypt memory (128·r·N bytes) allowed: cosign's parameters need 32–64 MiB; a hostile
/// file must not make the run allocate gigabytes.
const MAX_SCRYPT_BYTES: u64 = 256 << 20;

#[derive(Deserialize)]
struct Sealed {
    kdf: Kdf,
    cipher: Cipher,
    #[serde(with = "b64")]
    ciphertext: Vec<u8>,
}

#[derive(Deserialize)]
struct Kdf {
    name: String,
    params: Params,
    #[serde(with = "b64")]
    salt: Vec<u8>,
}

#[derive(Deserialize)]
#[allow(non_snake_case)] // the field names of the format
struct Params {
    N: u64,
    r: u32,
    p: u32,
}

#[derive(Deserialize)]
struct Cipher {
    name: String,
    #[serde(with = "b64")]
    nonce: Vec<u8>,
}

mod b64 {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// Whether `pem` is one of cosign's encrypted keys.
pub(super) fn is_encrypted(pem: &str) -> bool {
    LABELS.iter().any(|label| pem.contains(&format!("-----BEGIN {label}-----")))
}

/// What went wrong, in words for the user.
#[derive(Debug, PartialEq)]
pub(super) enum Problem {
    /// The file is not in cosign's format (why).
    Malformed(String),
    /// The password does not open it (or the file was altered).
    WrongPassword,
}

/// The PKCS#8 DER inside `pem`, opened with `password`.
pub(super) fn open(pem: &str, password: &[u8]) -> Result<Vec<u8>, Problem> {
    let bad = |why: &str| Problem::Malformed(why.to_string());
    let body: String = pem
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let json = base64::engine::general_purpose::STANDARD.decode(body).map_err(|_| bad("the PEM body is not base64"))?;
    let sealed: Sealed =
        serde_json::from_slice(&json).map_err(|e| Problem::Malformed(format!("not cosign's JSON: {e}")))?;
    if sealed.kdf.name != "scrypt" || sealed.cipher.name != "nacl/secretbox" {
        return Err(bad("only scrypt with nacl/secretbox is known (cosign's format)"));
    }
    let Params { N: n, r, p } = sealed.kdf.params;
    if !n.is_power_of_two() || n < 2 || r == 0 || p == 0 || p > 16 {
        return Err(bad("invalid scrypt parameters"));
    }
    if 128 * u64::from(r) * n > MAX_SCRYPT_BYTES {
        return Err(bad("scrypt parameters ask for more than 256 MiB"));
    }
    let params =
        scrypt::Params::new(n.trailing_zeros() as u8, r, p, 32).map_err(|_| bad("invalid scrypt parameters"))?;
    let mut key = [0u8; 32];
    scrypt::scrypt(password, &sealed.kdf.salt, &params, &mut key).map_err(|_| bad("invalid scrypt parameters"))?;
    if sealed.cipher.nonce.len() != 24 {
        return Err(bad("the nonce is not 24 bytes"));
    }
    let cipher = XSalsa20Poly1305::new(&key.into());
    cipher
        .decrypt(Nonce::from_slice(&sealed.cipher.nonce), sealed.ciphertext.as_slice())
        .map_err(|_| Problem::WrongPassword)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by `cosign generate-key-pair` with an empty password (N = 65536); see
    /// fixtures/README.md.
    const COSIGN_EMPTY_PASSWORD: &str = include_str!("../../fixtures/cosign/cosign.key");

    #[test]
    fn a_key_cosign_wrote_opens_and_signs() {
        assert!(is_encrypted(COSIGN_EMPTY_PASSWORD));
        let der = open(COSIGN_EMPTY_PASSWORD, b"").unwrap();
        let pair =
            aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(&aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING, &der);
        assert!(pair.is_ok(), "PKCS#8 P-256 inside");
        assert_eq!(open(COSIGN_EMPTY_PASSWORD, b"guess"), Err(Problem::WrongPassword));
    }

    #[test]
    fn altered_or_hostile_files_are_refused() {
        let b64 = base64::engine::general_purpose::STANDARD;
        let wrap = |json: &str| {
            format!(
                "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n{}\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n",
                b64.encode(json)
            )
        };
        let salt = b64.encode([0u8; 32]);
        let nonce = b64.encode([0u8; 24]);
        let sealed = |n: u64, r: u32, kdf: &str| {
            wrap(&format!(
                r#"{{"kdf":{{"name":"{kdf}","params":{{"N":{n},"r":{r},"p":1}},"salt":"{salt}"}},"cipher":{{"name":"nacl/secretbox","nonce":"{nonce}"}},"ciphertext":"{nonce}"}}"#
            ))
        };
        assert!(
            matches!(open(&sealed(1 << 30, 8, "scrypt"), b""), Err(Problem::Malformed(m)) if m.contains("256 MiB"))
        );
        assert!(matches!(open(&sealed(1000, 8, "scrypt"), b""), Err(Problem::Malformed(_))));
        assert!(matches!(open(&sealed(1024, 8, "argon2"), b""), Err(Problem::Malformed(_))));
        assert_eq!(open(&sealed(1024, 8, "scrypt"), b""), Err(Problem::WrongPassword));
        assert!(matches!(open(&wrap("{}"), b""), Err(Problem::Malformed(_))));
        // One flipped ciphertext byte: the authenticator refuses it.
        let body: String = COSIGN_EMPTY_PASSWORD.lines().filter(|l| !l.starts_with("-----")).collect();
        let json = String::from_utf8(b64.decode(body).unwrap()).unwrap();
        let at = json.find("\"ciphertext\":\"").unwrap() + 14;
        let swapped = if &json[at..at + 1] == "A" { "B" } else { "A" };
        let flipped = wrap(&format!("{}{swapped}{}", &json[..at], &json[at + 1..]));
        assert_eq!(open(&flipped, b""), Err(Problem::WrongPassword));
    }
}
