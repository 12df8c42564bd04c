//! Rekor v2 (rekor-tiles) `hashedrekord` 0.0.2: the request a client sends, the body the log
//! stores as the leaf, and the rule tying a verifier's `keyDetails` to its digest. One builder
//! shared by the log (which canonicalises requests), `sign` (which makes them) and `verify`
//! (which compares a bundle's body with the one its content implies).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::crypto::{DigestAlgorithm, KeyAlgorithm};

/// `apiVersion` of the entries.
pub const API_VERSION: &str = "0.0.2";
/// `kind` of the entries.
pub const KIND: &str = "hashedrekord";

/// What signed: a certificate (DER) or a public key (SPKI DER), with its `keyDetails`
/// (`PKIX_ECDSA_P256_SHA_256`, ...).
#[derive(Clone, Copy, Debug)]
pub struct Verifier<'a> {
    pub material: Material<'a>,
    pub key_details: &'a str,
}

/// The verifier's key material.
#[derive(Clone, Copy, Debug)]
pub enum Material<'a> {
    Certificate(&'a [u8]),
    PublicKey(&'a [u8]),
}

impl Material<'_> {
    /// Its field name in the verifier object.
    pub fn field(&self) -> &'static str {
        match self {
            Material::Certificate(_) => "x509Certificate",
            Material::PublicKey(_) => "publicKey",
        }
    }

    fn der(&self) -> &[u8] {
        match self {
            Material::Certificate(d) | Material::PublicKey(d) => d,
        }
    }
}

impl Verifier<'_> {
    /// `{x509Certificate|publicKey: {rawBytes}, keyDetails}`.
    pub fn to_json(&self) -> Value {
        json!({
            self.material.field(): {"rawBytes": STANDARD.encode(self.material.der())},
            "keyDetails": self.key_details,
        })
    }
}

/// The digest algorithm's name in v2 bodies (`HashAlgorithm` of the protobuf-specs).
pub fn digest_name(alg: DigestAlgorithm) -> &'static str {
    match alg {
        DigestAlgorithm::Sha256 => "SHA2_256",
        DigestAlgorithm::Sha384 => "SHA2_384",
        DigestAlgorithm::Sha512 => "SHA2_512",
    }
}

/// The request body `POST /api/v2/log/entries` takes.
pub fn request(digest: &[u8], signature: &[u8], verifier: &Verifier<'_>) -> Value {
    json!({"hashedRekordRequestV002": {
        "digest": STANDARD.encode(digest),
        "signature": {"content": STANDARD.encode(signature), "verifier": verifier.to_json()},
    }})
}

/// The entry body the log stores (its leaf is this value's RFC 8785 form).
pub fn body(
    alg: DigestAlgorithm,
    digest: &[u8],
    signature: &[u8],
    verifier: &Verifier<'_>,
) -> Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": KIND,
        "spec": {"hashedRekordV002": {
            "data": {"algorithm": digest_name(alg), "digest": STANDARD.encode(digest)},
            "signature": {"content": STANDARD.encode(signature), "verifier": verifier.to_json()},
        }},
    })
}

/// Why a verifier's `keyDetails` does not fit its key.
#[derive(Debug, thiserror::Error)]
pub enum KeyDetailsError {
    #[error("Ed25519 keys cannot sign a prehashed digest; use ECDSA or RSA")]
    Ed25519,
    #[error("{details:?} does not match the verifier's {key} key")]
    WrongFamily { details: String, key: KeyAlgorithm },
    #[error("{0:?} is not a supported key type")]
    Unsupported(String),
}

/// The digest a verifier signs with, from its `keyDetails`, which must fit its key: ECDSA curves
/// name their one digest; RSA (PKCS#1 v1.5) keys name theirs.
pub fn digest_for_key_details(
    key: KeyAlgorithm,
    details: &str,
) -> Result<DigestAlgorithm, KeyDetailsError> {
    let family_ok = match key {
        KeyAlgorithm::EcdsaP256 => details == "PKIX_ECDSA_P256_SHA_256",
        KeyAlgorithm::EcdsaP384 => details == "PKIX_ECDSA_P384_SHA_384",
        KeyAlgorithm::EcdsaP521 => details == "PKIX_ECDSA_P521_SHA_512",
        KeyAlgorithm::Rsa { .. } => details.starts_with("PKIX_RSA_PKCS1V15_"),
        KeyAlgorithm::Ed25519 => return Err(KeyDetailsError::Ed25519),
    };
    if !family_ok {
        return Err(KeyDetailsError::WrongFamily {
            details: details.to_owned(),
            key,
        });
    }
    if details.ends_with("SHA_256") || details.ends_with("SHA256") {
        Ok(DigestAlgorithm::Sha256)
    } else if details.ends_with("SHA_384") || details.ends_with("SHA384") {
        Ok(DigestAlgorithm::Sha384)
    } else if details.ends_with("SHA_512") || details.ends_with("SHA512") {
        Ok(DigestAlgorithm::Sha512)
    } else {
        Err(KeyDetailsError::Unsupported(details.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_and_request_carry_the_same_verifier() {
        let v = Verifier {
            material: Material::PublicKey(&[1, 2, 3]),
            key_details: "PKIX_ECDSA_P256_SHA_256",
        };
        let b = body(DigestAlgorithm::Sha256, &[7; 32], &[9; 8], &v);
        let r = request(&[7; 32], &[9; 8], &v);
        assert_eq!(
            b["spec"]["hashedRekordV002"]["signature"],
            r["hashedRekordRequestV002"]["signature"]
        );
        assert_eq!(
            b["spec"]["hashedRekordV002"]["data"]["algorithm"],
            "SHA2_256"
        );
        assert_eq!(
            b["spec"]["hashedRekordV002"]["signature"]["verifier"]["publicKey"]["rawBytes"],
            "AQID"
        );
    }

    #[test]
    fn key_details_must_fit_the_key() {
        use KeyAlgorithm::*;
        assert!(matches!(
            digest_for_key_details(EcdsaP384, "PKIX_ECDSA_P384_SHA_384"),
            Ok(DigestAlgorithm::Sha384)
        ));
        assert!(digest_for_key_details(EcdsaP256, "PKIX_ECDSA_P384_SHA_384").is_err());
        assert!(matches!(
            digest_for_key_details(Rsa { bits: 3072 }, "PKIX_RSA_PKCS1V15_3072_SHA256"),
            Ok(DigestAlgorithm::Sha256)
        ));
        assert!(digest_for_key_details(Ed25519, "PKIX_ED25519").is_err());
    }
}
