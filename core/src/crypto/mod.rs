//! Keys and signatures used across Sigil: the log, CT, CA and TSA keys and every signature a
//! client or server verifies. Verification keys are parsed once into `aws-lc-rs` handles so the
//! hot paths (checkpoint, SET and hashedrekord verification) do no re-parsing.
//!
//! Supported: ECDSA P-256 (SHA-256) and P-384 (SHA-384) with DER signatures, Ed25519, and RSA
//! (2048–8192 bits; PKCS#1 v1.5 or PSS; SHA-256/384/512) for verification.

mod cert_signature;
pub use cert_signature::verify_cert_signature;
mod public_key;
pub use public_key::*;
mod signing_key;
pub use signing_key::*;
mod encrypted_pkcs8;
pub use encrypted_pkcs8::*;

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::digest;
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeySize, RsaPssSaltLength};
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, EcdsaSigningAlgorithm, EcdsaVerificationAlgorithm, Ed25519KeyPair, KeyPair,
    ParsedPublicKey, RsaKeyPair, RsaParameters, UnparsedPublicKey,
};
use der::Decode;
use der::asn1::ObjectIdentifier;

/// Why a key or signature was rejected. Messages name the algorithm and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("not valid PEM: {0}")]
    Pem(String),
    #[error("unexpected PEM block {found:?}, expected {expected:?}")]
    PemLabel {
        found: String,
        expected: &'static str,
    },
    #[error("malformed public key (SubjectPublicKeyInfo): {0}")]
    MalformedPublicKey(String),
    #[error("malformed private key: {0}")]
    MalformedPrivateKey(String),
    #[error("unsupported key algorithm: {0}")]
    UnsupportedAlgorithm(String),
    #[error("RSA key of {bits} bits is too small: at least 2048 bits are required")]
    RsaKeyTooSmall { bits: usize },
    #[error("RSA key of {bits} bits is too large: at most 8192 bits are supported")]
    RsaKeyTooLarge { bits: usize },
    #[error("unknown digest algorithm {0:?} (expected sha256, sha384 or sha512)")]
    UnknownDigest(String),
    #[error("{algorithm} digest must be {expected} bytes, got {actual}")]
    DigestLength {
        algorithm: DigestAlgorithm,
        expected: usize,
        actual: usize,
    },
    #[error("unsupported operation: {0}")]
    Unsupported(String),
    #[error("{0} signature verification failed")]
    BadSignature(KeyAlgorithm),
    #[error("signing with {algorithm} failed: {reason}")]
    Signing {
        algorithm: KeyAlgorithm,
        reason: String,
    },
    #[error("key generation failed: {0}")]
    KeyGeneration(String),
    #[error("private key encryption: {0}")]
    Encryption(String),
    #[error("private key decryption failed: {0}")]
    Decryption(String),
}

/// A public key's algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    EcdsaP256,
    EcdsaP384,
    /// Verification, and signing for tests and clients; Fulcio's default key policy admits it.
    EcdsaP521,
    Ed25519,
    Rsa {
        bits: usize,
    },
}

impl KeyAlgorithm {
    /// The Sigstore protobuf `PublicKeyDetails` name (RSA: the PKCS#1 v1.5 SHA-256 variant).
    pub fn key_details(&self) -> &'static str {
        match self {
            KeyAlgorithm::EcdsaP256 => "PKIX_ECDSA_P256_SHA_256",
            KeyAlgorithm::EcdsaP384 => "PKIX_ECDSA_P384_SHA_384",
            KeyAlgorithm::EcdsaP521 => "PKIX_ECDSA_P521_SHA_512",
            KeyAlgorithm::Ed25519 => "PKIX_ED25519",
            KeyAlgorithm::Rsa { bits } if *bits >= 4096 => "PKIX_RSA_PKCS1V15_4096_SHA256",
            KeyAlgorithm::Rsa { bits } if *bits >= 3072 => "PKIX_RSA_PKCS1V15_3072_SHA256",
            KeyAlgorithm::Rsa { .. } => "PKIX_RSA_PKCS1V15_2048_SHA256",
        }
    }

    /// The digest used when this key signs or verifies a whole message.
    pub fn default_digest(&self) -> Option<DigestAlgorithm> {
        match self {
            KeyAlgorithm::EcdsaP256 | KeyAlgorithm::Rsa { .. } => Some(DigestAlgorithm::Sha256),
            KeyAlgorithm::EcdsaP384 => Some(DigestAlgorithm::Sha384),
            KeyAlgorithm::EcdsaP521 => Some(DigestAlgorithm::Sha512),
            KeyAlgorithm::Ed25519 => None,
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyAlgorithm::EcdsaP256 => f.write_str("ECDSA P-256"),
            KeyAlgorithm::EcdsaP384 => f.write_str("ECDSA P-384"),
            KeyAlgorithm::EcdsaP521 => f.write_str("ECDSA P-521"),
            KeyAlgorithm::Ed25519 => f.write_str("Ed25519"),
            KeyAlgorithm::Rsa { bits } => write!(f, "RSA-{bits}"),
        }
    }
}

/// A message digest algorithm (the hash of a hashedrekord entry, of a TSA request…).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestAlgorithm {
    Sha256,
    Sha384,
    Sha512,
}

impl DigestAlgorithm {
    /// Parse `sha256` / `sha384` / `sha512` (any case; `SHA2_256`-style protobuf names too).
    pub fn parse(name: &str) -> Result<Self, CryptoError> {
        match name.to_ascii_lowercase().as_str() {
            "sha256" | "sha-256" | "sha2_256" => Ok(DigestAlgorithm::Sha256),
            "sha384" | "sha-384" | "sha2_384" => Ok(DigestAlgorithm::Sha384),
            "sha512" | "sha-512" | "sha2_512" => Ok(DigestAlgorithm::Sha512),
            _ => Err(CryptoError::UnknownDigest(name.to_string())),
        }
    }

    /// Lower-case name as Rekor writes it (`sha256`).
    pub fn name(&self) -> &'static str {
        match self {
            DigestAlgorithm::Sha256 => "sha256",
            DigestAlgorithm::Sha384 => "sha384",
            DigestAlgorithm::Sha512 => "sha512",
        }
    }

    /// Digest length in bytes.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        match self {
            DigestAlgorithm::Sha256 => 32,
            DigestAlgorithm::Sha384 => 48,
            DigestAlgorithm::Sha512 => 64,
        }
    }

    /// Hash `data`.
    pub fn digest(&self, data: &[u8]) -> Vec<u8> {
        digest::digest(self.lc(), data).as_ref().to_vec()
    }

    /// An incremental hasher, for inputs read in pieces (large artifacts).
    pub fn hasher(&self) -> Hasher {
        Hasher(digest::Context::new(self.lc()))
    }

    fn lc(&self) -> &'static digest::Algorithm {
        match self {
            DigestAlgorithm::Sha256 => &digest::SHA256,
            DigestAlgorithm::Sha384 => &digest::SHA384,
            DigestAlgorithm::Sha512 => &digest::SHA512,
        }
    }

    fn import(&self, value: &[u8]) -> Result<digest::Digest, CryptoError> {
        digest::Digest::import_less_safe(value, self.lc()).map_err(|_| CryptoError::DigestLength {
            algorithm: *self,
            expected: self.len(),
            actual: value.len(),
        })
    }
}

impl fmt::Display for DigestAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DigestAlgorithm {
    type Err = CryptoError;
    fn from_str(s: &str) -> Result<Self, CryptoError> {
        DigestAlgorithm::parse(s)
    }
}

/// An incremental digest: feed it with `update`, then `finish`.
pub struct Hasher(digest::Context);

impl Hasher {
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    pub fn finish(self) -> Vec<u8> {
        self.0.finish().as_ref().to_vec()
    }
}

/// SHA-1 of `data`, only to compare with identifiers older formats fix to SHA-1 (RFC 2634 ESS
/// certificate IDs); never for signatures.
pub fn sha1_for_legacy_ids(data: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, data)
        .as_ref()
        .to_vec()
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_RSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");

const MIN_RSA_BITS: usize = 2048;
const MAX_RSA_BITS: usize = 8192;

// PSS signers differ in salt length: Go's default (and OpenSSL's) is the maximum, most others
// use the digest length. Both are accepted.
static RSA_PSS_SHA256_MAX: RsaParameters =
    signature::RSA_PSS_2048_8192_SHA256.with_pss_salt_length(RsaPssSaltLength::Max);
static RSA_PSS_SHA384_MAX: RsaParameters =
    signature::RSA_PSS_2048_8192_SHA384.with_pss_salt_length(RsaPssSaltLength::Max);
static RSA_PSS_SHA512_MAX: RsaParameters =
    signature::RSA_PSS_2048_8192_SHA512.with_pss_salt_length(RsaPssSaltLength::Max);

/// RSA verification schemes tried for a digest, PKCS#1 v1.5 first (what Sigstore keys use).
fn rsa_schemes(d: DigestAlgorithm) -> [&'static RsaParameters; 3] {
    match d {
        DigestAlgorithm::Sha256 => [
            &signature::RSA_PKCS1_2048_8192_SHA256,
            &signature::RSA_PSS_2048_8192_SHA256,
            &RSA_PSS_SHA256_MAX,
        ],
        DigestAlgorithm::Sha384 => [
            &signature::RSA_PKCS1_2048_8192_SHA384,
            &signature::RSA_PSS_2048_8192_SHA384,
            &RSA_PSS_SHA384_MAX,
        ],
        DigestAlgorithm::Sha512 => [
            &signature::RSA_PKCS1_2048_8192_SHA512,
            &signature::RSA_PSS_2048_8192_SHA512,
            &RSA_PSS_SHA512_MAX,
        ],
    }
}

fn ecdsa_alg(alg: KeyAlgorithm, d: DigestAlgorithm) -> Option<&'static EcdsaVerificationAlgorithm> {
    match (alg, d) {
        (KeyAlgorithm::EcdsaP256, DigestAlgorithm::Sha256) => {
            Some(&signature::ECDSA_P256_SHA256_ASN1)
        }
        (KeyAlgorithm::EcdsaP256, DigestAlgorithm::Sha384) => {
            Some(&signature::ECDSA_P256_SHA384_ASN1)
        }
        (KeyAlgorithm::EcdsaP256, DigestAlgorithm::Sha512) => {
            Some(&signature::ECDSA_P256_SHA512_ASN1)
        }
        (KeyAlgorithm::EcdsaP384, DigestAlgorithm::Sha256) => {
            Some(&signature::ECDSA_P384_SHA256_ASN1)
        }
        (KeyAlgorithm::EcdsaP384, DigestAlgorithm::Sha384) => {
            Some(&signature::ECDSA_P384_SHA384_ASN1)
        }
        (KeyAlgorithm::EcdsaP384, DigestAlgorithm::Sha512) => {
            Some(&signature::ECDSA_P384_SHA512_ASN1)
        }
        (KeyAlgorithm::EcdsaP521, DigestAlgorithm::Sha256) => {
            Some(&signature::ECDSA_P521_SHA256_ASN1)
        }
        (KeyAlgorithm::EcdsaP521, DigestAlgorithm::Sha384) => {
            Some(&signature::ECDSA_P521_SHA384_ASN1)
        }
        (KeyAlgorithm::EcdsaP521, DigestAlgorithm::Sha512) => {
            Some(&signature::ECDSA_P521_SHA512_ASN1)
        }
        _ => None,
    }
}
