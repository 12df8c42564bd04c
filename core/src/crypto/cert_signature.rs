//! X.509 certificate signatures: a certificate checked against its issuer's key, with the
//! signature algorithm the certificate names (shared by the client's chain checks and the log's
//! admission policy).

use der::Encode;
use x509_cert::Certificate;

use super::{DigestAlgorithm, KeyAlgorithm, PublicKey};

/// Verifies a certificate's signature with its issuer's key. The signature algorithm must be
/// one this verifier knows, fit the issuer's key type, and be the same in the certificate and
/// its TBS part; nothing is inferred from the key alone.
pub fn verify_cert_signature(cert: &Certificate, issuer_key: &PublicKey) -> Result<(), String> {
    let tbs = cert.tbs_certificate.to_der().map_err(|e| e.to_string())?;
    let sig = cert
        .signature
        .as_bytes()
        .ok_or_else(|| "signature BIT STRING has unused bits".to_owned())?;
    let alg = cert.signature_algorithm.oid;
    if cert.tbs_certificate.signature != cert.signature_algorithm {
        return Err("the TBS signature algorithm differs from the certificate's".into());
    }
    let key = issuer_key.algorithm();
    let is_ec = matches!(
        key,
        KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384 | KeyAlgorithm::EcdsaP521
    );
    let is_rsa = matches!(key, KeyAlgorithm::Rsa { .. });
    let res = match alg {
        a if a == crate::oid::ECDSA_WITH_SHA256 && is_ec => {
            prehashed(issuer_key, DigestAlgorithm::Sha256, &tbs, sig)
        }
        a if a == crate::oid::ECDSA_WITH_SHA384 && is_ec => {
            prehashed(issuer_key, DigestAlgorithm::Sha384, &tbs, sig)
        }
        a if a == crate::oid::ECDSA_WITH_SHA512 && is_ec => {
            prehashed(issuer_key, DigestAlgorithm::Sha512, &tbs, sig)
        }
        a if a == SHA256_RSA && is_rsa => prehashed(issuer_key, DigestAlgorithm::Sha256, &tbs, sig),
        a if a == SHA384_RSA && is_rsa => prehashed(issuer_key, DigestAlgorithm::Sha384, &tbs, sig),
        a if a == SHA512_RSA && is_rsa => prehashed(issuer_key, DigestAlgorithm::Sha512, &tbs, sig),
        a if a == crate::oid::ED25519 && key == KeyAlgorithm::Ed25519 => {
            issuer_key.verify(&tbs, sig).map_err(|e| e.to_string())
        }
        a => {
            return Err(format!(
                "signature algorithm {a} is not supported for a {key} issuer key"
            ));
        }
    };
    res.map_err(|e| format!("signature ({alg}) does not verify with the issuer's key: {e}"))
}

const SHA256_RSA: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const SHA384_RSA: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const SHA512_RSA: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");

fn prehashed(key: &PublicKey, d: DigestAlgorithm, tbs: &[u8], sig: &[u8]) -> Result<(), String> {
    key.verify_prehashed(d, &d.digest(tbs), sig)
        .map_err(|e| e.to_string())
}
