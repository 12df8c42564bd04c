//! Keys and signatures used across Sigil: the log, CT, CA and TSA keys and every signature a
//! client or server verifies. Verification keys are parsed once into `aws-lc-rs` handles so the
//! hot paths (checkpoint, SET and hashedrekord verification) do no re-parsing.
//!
//! Supported: ECDSA P-256 (SHA-256) and P-384 (SHA-384) with DER signatures, Ed25519, and RSA
//! (2048–8192 bits; PKCS#1 v1.5 or PSS; SHA-256/384/512) for verification.

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

#[derive(Clone)]
enum Verifier {
    /// Parsed for the key's default digest (SHA-256 for P-256, SHA-384 for P-384, SHA-512 for P-521).
    Ecdsa(ParsedPublicKey),
    Ed25519(ParsedPublicKey),
    /// PKCS#1 `RSAPublicKey` DER; a key is bound to one scheme in aws-lc-rs, and RSA may use six.
    Rsa(Vec<u8>),
}

/// A parsed verification key. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct PublicKey {
    spki: Vec<u8>,
    algorithm: KeyAlgorithm,
    verifier: Verifier,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("algorithm", &self.algorithm)
            .field("spki", &hex::encode(&self.spki))
            .finish()
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.spki == other.spki
    }
}
impl Eq for PublicKey {}

impl PublicKey {
    /// Parse a DER SubjectPublicKeyInfo (ECDSA P-256/P-384/P-521, Ed25519, RSA >= 2048 bits).
    pub fn from_spki_der(der: &[u8]) -> Result<Self, CryptoError> {
        let spki = spki::SubjectPublicKeyInfoRef::from_der(der)
            .map_err(|e| CryptoError::MalformedPublicKey(e.to_string()))?;
        let key_bits = spki.subject_public_key.as_bytes().ok_or_else(|| {
            CryptoError::MalformedPublicKey("public key BIT STRING has unused bits".into())
        })?;
        let oid = spki.algorithm.oid;
        let malformed = |alg: &str, e: aws_lc_rs::error::KeyRejected| {
            CryptoError::MalformedPublicKey(format!("{alg} key rejected: {e}"))
        };
        let (algorithm, verifier) = if oid == OID_EC_PUBLIC_KEY {
            let curve = spki
                .algorithm
                .parameters
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
                .ok_or_else(|| {
                    CryptoError::MalformedPublicKey("EC key without a named curve".into())
                })?;
            let (alg, lc): (KeyAlgorithm, &'static EcdsaVerificationAlgorithm) =
                if curve == OID_P256 {
                    (KeyAlgorithm::EcdsaP256, &signature::ECDSA_P256_SHA256_ASN1)
                } else if curve == OID_P384 {
                    (KeyAlgorithm::EcdsaP384, &signature::ECDSA_P384_SHA384_ASN1)
                } else if curve == OID_P521 {
                    (KeyAlgorithm::EcdsaP521, &signature::ECDSA_P521_SHA512_ASN1)
                } else {
                    return Err(CryptoError::UnsupportedAlgorithm(format!(
                        "EC curve {curve} (supported: P-256, P-384, P-521)"
                    )));
                };
            let parsed = ParsedPublicKey::new(lc, key_bits).map_err(|e| malformed("ECDSA", e))?;
            (alg, Verifier::Ecdsa(parsed))
        } else if oid == OID_ED25519 {
            if spki.algorithm.parameters.is_some() {
                return Err(CryptoError::MalformedPublicKey(
                    "Ed25519 AlgorithmIdentifier must have no parameters".into(),
                ));
            }
            if key_bits.len() != 32 {
                return Err(CryptoError::MalformedPublicKey(format!(
                    "Ed25519 public key must be 32 bytes, got {}",
                    key_bits.len()
                )));
            }
            let parsed = ParsedPublicKey::new(&signature::ED25519, key_bits)
                .map_err(|e| malformed("Ed25519", e))?;
            (KeyAlgorithm::Ed25519, Verifier::Ed25519(parsed))
        } else if oid == OID_RSA {
            let bits = rsa_modulus_bits(key_bits)?;
            if bits < MIN_RSA_BITS {
                return Err(CryptoError::RsaKeyTooSmall { bits });
            }
            if bits > MAX_RSA_BITS {
                return Err(CryptoError::RsaKeyTooLarge { bits });
            }
            // Validate once here so a bad key fails at load, not at every verification.
            ParsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, key_bits)
                .map_err(|e| malformed("RSA", e))?;
            (KeyAlgorithm::Rsa { bits }, Verifier::Rsa(key_bits.to_vec()))
        } else if oid == OID_RSA_PSS {
            return Err(CryptoError::UnsupportedAlgorithm(
                "RSASSA-PSS-restricted keys (OID 1.2.840.113549.1.1.10); use an rsaEncryption key"
                    .into(),
            ));
        } else {
            return Err(CryptoError::UnsupportedAlgorithm(format!(
                "public key algorithm OID {oid}"
            )));
        };
        Ok(PublicKey {
            spki: der.to_vec(),
            algorithm,
            verifier,
        })
    }

    /// Parse a `PUBLIC KEY` PEM block (the first block in `pem`).
    pub fn from_pem(pem: &str) -> Result<Self, CryptoError> {
        let block = pem::parse(pem).map_err(|e| CryptoError::Pem(e.to_string()))?;
        if block.tag() != "PUBLIC KEY" {
            return Err(CryptoError::PemLabel {
                found: block.tag().to_string(),
                expected: "PUBLIC KEY",
            });
        }
        PublicKey::from_spki_der(block.contents())
    }

    /// The DER SubjectPublicKeyInfo this key was parsed from.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    /// `PUBLIC KEY` PEM with 64-column lines.
    pub fn to_pem(&self) -> String {
        crate::certs::pem_encode("PUBLIC KEY", &self.spki)
    }

    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// SHA-256 of the SPKI DER: Rekor's log ID, a CT log ID, the checkpoint key hint source.
    pub fn key_id(&self) -> [u8; 32] {
        sha256(&self.spki)
    }

    /// The raw 32-byte Ed25519 key, for Ed25519 keys.
    pub fn ed25519_bytes(&self) -> Option<[u8; 32]> {
        match &self.verifier {
            Verifier::Ed25519(p) => p.as_ref().try_into().ok(),
            _ => None,
        }
    }

    /// Build an Ed25519 key from its raw 32 bytes.
    pub fn from_ed25519_bytes(raw: &[u8]) -> Result<Self, CryptoError> {
        if raw.len() != 32 {
            return Err(CryptoError::MalformedPublicKey(format!(
                "Ed25519 public key must be 32 bytes, got {}",
                raw.len()
            )));
        }
        // SPKI = SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING (0 unused) key }
        let mut der = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        der.extend_from_slice(raw);
        PublicKey::from_spki_der(&der)
    }

    /// Verify a signature over a message (ECDSA: DER signature with SHA-256 for P-256, SHA-384
    /// for P-384; Ed25519; RSA: PKCS#1 v1.5 or PSS, SHA-256/384/512).
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        let ok = match &self.verifier {
            Verifier::Ecdsa(p) | Verifier::Ed25519(p) => p.verify_sig(message, sig).is_ok(),
            Verifier::Rsa(pkcs1) => [
                DigestAlgorithm::Sha256,
                DigestAlgorithm::Sha384,
                DigestAlgorithm::Sha512,
            ]
            .iter()
            .flat_map(|d| rsa_schemes(*d))
            .any(|alg| {
                UnparsedPublicKey::new(alg, pkcs1)
                    .verify(message, sig)
                    .is_ok()
            }),
        };
        if ok {
            Ok(())
        } else {
            Err(CryptoError::BadSignature(self.algorithm))
        }
    }

    /// Verify a signature given only the message digest (Rekor hashedrekord: the server only
    /// sees the digest). ECDSA and RSA support this; plain Ed25519 needs the whole message.
    pub fn verify_prehashed(
        &self,
        digest_alg: DigestAlgorithm,
        digest: &[u8],
        sig: &[u8],
    ) -> Result<(), CryptoError> {
        let d = digest_alg.import(digest)?;
        let ok = match &self.verifier {
            Verifier::Ed25519(_) => {
                return Err(CryptoError::Unsupported(
                    "Ed25519 signatures cannot be verified from a digest: plain Ed25519 signs \
                     the whole message (Ed25519ph is not supported)"
                        .into(),
                ));
            }
            Verifier::Ecdsa(p) => {
                if self.algorithm.default_digest() == Some(digest_alg) {
                    p.verify_digest_sig(&d, sig).is_ok()
                } else {
                    match ecdsa_alg(self.algorithm, digest_alg) {
                        Some(alg) => UnparsedPublicKey::new(alg, &self.spki)
                            .verify_digest(&d, sig)
                            .is_ok(),
                        None => false,
                    }
                }
            }
            Verifier::Rsa(pkcs1) => rsa_schemes(digest_alg).iter().any(|alg| {
                UnparsedPublicKey::new(*alg, pkcs1)
                    .verify_digest(&d, sig)
                    .is_ok()
            }),
        };
        if ok {
            Ok(())
        } else {
            Err(CryptoError::BadSignature(self.algorithm))
        }
    }
}

/// Bit length of the modulus of a PKCS#1 `RSAPublicKey`.
fn rsa_modulus_bits(pkcs1: &[u8]) -> Result<usize, CryptoError> {
    #[derive(der::Sequence)]
    struct RsaPublicKey<'a> {
        modulus: der::asn1::UintRef<'a>,
        #[allow(dead_code)]
        public_exponent: der::asn1::UintRef<'a>,
    }
    let key = RsaPublicKey::from_der(pkcs1)
        .map_err(|e| CryptoError::MalformedPublicKey(format!("RSA public key: {e}")))?;
    let n = key.modulus.as_bytes();
    let lead = n.first().copied().unwrap_or(0);
    Ok(n.len().saturating_sub(1) * 8 + (8 - lead.leading_zeros() as usize))
}

/// How an RSA signing key pads its signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RsaPadding {
    Pkcs1v15,
    /// PSS with MGF1 over the same digest and a salt as long as the digest.
    Pss,
}

enum SignerInner {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

/// A private signing key loaded from PKCS#8 (PEM/DER) or generated; used for log, CT, CA and TSA
/// keys. ECDSA signatures are DER; RSA signs PKCS#1 v1.5 with SHA-256 unless asked otherwise.
pub struct SigningKey {
    inner: SignerInner,
    public: PublicKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print private material.
        f.debug_struct("SigningKey")
            .field("algorithm", &self.public.algorithm)
            .field("public", &hex::encode(&self.public.spki))
            .finish_non_exhaustive()
    }
}

fn ecdsa_signing(alg: KeyAlgorithm) -> Option<&'static EcdsaSigningAlgorithm> {
    match alg {
        KeyAlgorithm::EcdsaP256 => Some(&signature::ECDSA_P256_SHA256_ASN1_SIGNING),
        KeyAlgorithm::EcdsaP384 => Some(&signature::ECDSA_P384_SHA384_ASN1_SIGNING),
        KeyAlgorithm::EcdsaP521 => Some(&signature::ECDSA_P521_SHA512_ASN1_SIGNING),
        _ => None,
    }
}

impl SigningKey {
    /// Generate a fresh key (ECDSA P-256/P-384/P-521, Ed25519, or RSA 2048/3072/4096/8192).
    pub fn generate(alg: KeyAlgorithm) -> Result<Self, CryptoError> {
        let gen_err = |_| CryptoError::KeyGeneration(format!("{alg} key generation failed"));
        let inner = match alg {
            KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384 | KeyAlgorithm::EcdsaP521 => {
                let lc = ecdsa_signing(alg).ok_or_else(|| {
                    CryptoError::KeyGeneration(format!("{alg} is not an ECDSA algorithm"))
                })?;
                SignerInner::Ecdsa(EcdsaKeyPair::generate(lc).map_err(gen_err)?)
            }
            KeyAlgorithm::Ed25519 => {
                SignerInner::Ed25519(Ed25519KeyPair::generate().map_err(gen_err)?)
            }
            KeyAlgorithm::Rsa { bits } => {
                let size = match bits {
                    2048 => KeySize::Rsa2048,
                    3072 => KeySize::Rsa3072,
                    4096 => KeySize::Rsa4096,
                    8192 => KeySize::Rsa8192,
                    b if b < MIN_RSA_BITS => return Err(CryptoError::RsaKeyTooSmall { bits: b }),
                    b => {
                        return Err(CryptoError::KeyGeneration(format!(
                            "RSA keys can be generated with 2048, 3072, 4096 or 8192 bits, not {b}"
                        )));
                    }
                };
                SignerInner::Rsa(RsaKeyPair::generate(size).map_err(gen_err)?)
            }
        };
        SigningKey::from_inner(inner)
    }

    fn from_inner(inner: SignerInner) -> Result<Self, CryptoError> {
        let spki: Result<PublicKeyX509Der<'static>, _> = match &inner {
            SignerInner::Ecdsa(k) => k.public_key().as_der(),
            SignerInner::Ed25519(k) => k.public_key().as_der(),
            SignerInner::Rsa(k) => k.public_key().as_der(),
        };
        let spki = spki
            .map_err(|_| CryptoError::MalformedPrivateKey("cannot encode the public key".into()))?;
        let public = PublicKey::from_spki_der(spki.as_ref())?;
        Ok(SigningKey { inner, public })
    }

    /// Load a PEM private key: `PRIVATE KEY` (PKCS#8), `EC PRIVATE KEY` (SEC1) or
    /// `RSA PRIVATE KEY` (PKCS#1).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, CryptoError> {
        let block = pem::parse(pem).map_err(|e| CryptoError::Pem(e.to_string()))?;
        match block.tag() {
            "PRIVATE KEY" => SigningKey::from_pkcs8_der(block.contents()),
            "EC PRIVATE KEY" => SigningKey::from_sec1_der(block.contents()),
            "RSA PRIVATE KEY" => {
                let k = RsaKeyPair::from_der(block.contents()).map_err(|e| {
                    CryptoError::MalformedPrivateKey(format!("RSA private key rejected: {e}"))
                })?;
                SigningKey::checked_rsa(k)
            }
            "ENCRYPTED PRIVATE KEY" => Err(CryptoError::Decryption(
                "the key is encrypted: load it with from_encrypted_pkcs8_pem".into(),
            )),
            other => Err(CryptoError::PemLabel {
                found: other.to_string(),
                expected: "PRIVATE KEY",
            }),
        }
    }

    /// Load a DER PKCS#8 `PrivateKeyInfo` (v1 or v2).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, CryptoError> {
        let info = pkcs8::PrivateKeyInfo::try_from(der)
            .map_err(|e| CryptoError::MalformedPrivateKey(format!("PKCS#8: {e}")))?;
        let oid = info.algorithm.oid;
        let rejected = |alg: &str, e: aws_lc_rs::error::KeyRejected| {
            CryptoError::MalformedPrivateKey(format!("{alg} private key rejected: {e}"))
        };
        let inner = if oid == OID_EC_PUBLIC_KEY {
            let curve = info
                .algorithm
                .parameters
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
            let alg = match curve {
                Some(c) if c == OID_P256 => KeyAlgorithm::EcdsaP256,
                Some(c) if c == OID_P384 => KeyAlgorithm::EcdsaP384,
                Some(c) if c == OID_P521 => KeyAlgorithm::EcdsaP521,
                Some(c) => {
                    return Err(CryptoError::UnsupportedAlgorithm(format!(
                        "EC curve {c} (supported: P-256, P-384, P-521)"
                    )));
                }
                None => {
                    return Err(CryptoError::MalformedPrivateKey(
                        "EC private key without a named curve".into(),
                    ));
                }
            };
            let lc = ecdsa_signing(alg).ok_or_else(|| {
                CryptoError::UnsupportedAlgorithm(format!("{alg} is not an ECDSA algorithm"))
            })?;
            SignerInner::Ecdsa(EcdsaKeyPair::from_pkcs8(lc, der).map_err(|e| rejected("ECDSA", e))?)
        } else if oid == OID_ED25519 {
            SignerInner::Ed25519(
                Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                    .map_err(|e| rejected("Ed25519", e))?,
            )
        } else if oid == OID_RSA {
            let k = RsaKeyPair::from_pkcs8(der).map_err(|e| rejected("RSA", e))?;
            return SigningKey::checked_rsa(k);
        } else {
            return Err(CryptoError::UnsupportedAlgorithm(format!(
                "private key algorithm OID {oid}"
            )));
        };
        SigningKey::from_inner(inner)
    }

    /// An Ed25519 key from its 32-byte RFC 8032 seed.
    pub fn from_ed25519_seed(seed: &[u8]) -> Result<Self, CryptoError> {
        if seed.len() != 32 {
            return Err(CryptoError::MalformedPrivateKey(format!(
                "Ed25519 seed must be 32 bytes, got {}",
                seed.len()
            )));
        }
        let k = Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|e| CryptoError::MalformedPrivateKey(format!("Ed25519 seed rejected: {e}")))?;
        SigningKey::from_inner(SignerInner::Ed25519(k))
    }

    /// The 32-byte seed of an Ed25519 key.
    pub fn ed25519_seed(&self) -> Option<[u8; 32]> {
        let SignerInner::Ed25519(k) = &self.inner else {
            return None;
        };
        let seed = k.seed().ok()?;
        let bytes: aws_lc_rs::encoding::Curve25519SeedBin<'static> =
            aws_lc_rs::encoding::AsBigEndian::as_be_bytes(&seed).ok()?;
        bytes.as_ref().try_into().ok()
    }

    /// Load a SEC1 `ECPrivateKey` (what `openssl ecparam -genkey` writes).
    pub fn from_sec1_der(der: &[u8]) -> Result<Self, CryptoError> {
        for alg in [
            KeyAlgorithm::EcdsaP256,
            KeyAlgorithm::EcdsaP384,
            KeyAlgorithm::EcdsaP521,
        ] {
            if let Some(lc) = ecdsa_signing(alg)
                && let Ok(k) = EcdsaKeyPair::from_private_key_der(lc, der)
            {
                return SigningKey::from_inner(SignerInner::Ecdsa(k));
            }
        }
        Err(CryptoError::MalformedPrivateKey(
            "not a P-256, P-384 or P-521 SEC1 EC private key".into(),
        ))
    }

    fn checked_rsa(k: RsaKeyPair) -> Result<Self, CryptoError> {
        let bits = k.public_modulus_len() * 8;
        if bits < MIN_RSA_BITS {
            return Err(CryptoError::RsaKeyTooSmall { bits });
        }
        SigningKey::from_inner(SignerInner::Rsa(k))
    }

    /// DER PKCS#8 v1 `PrivateKeyInfo`.
    pub fn to_pkcs8_der(&self) -> Result<Vec<u8>, CryptoError> {
        let fail = |_| CryptoError::MalformedPrivateKey("cannot encode the key as PKCS#8".into());
        Ok(match &self.inner {
            SignerInner::Ecdsa(k) => k.to_pkcs8v1().map_err(fail)?.as_ref().to_vec(),
            SignerInner::Ed25519(k) => k.to_pkcs8v1().map_err(fail)?.as_ref().to_vec(),
            SignerInner::Rsa(k) => {
                let d: Pkcs8V1Der<'static> = k.as_der().map_err(fail)?;
                d.as_ref().to_vec()
            }
        })
    }

    /// `PRIVATE KEY` PEM (PKCS#8 v1).
    pub fn to_pkcs8_pem(&self) -> Result<String, CryptoError> {
        Ok(crate::certs::pem_encode(
            "PRIVATE KEY",
            &self.to_pkcs8_der()?,
        ))
    }

    pub fn public_key(&self) -> PublicKey {
        self.public.clone()
    }

    pub fn algorithm(&self) -> KeyAlgorithm {
        self.public.algorithm
    }

    /// Sign `message`: ECDSA DER over SHA-256 (P-256) / SHA-384 (P-384); Ed25519; RSA PKCS#1 v1.5
    /// with SHA-256.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match &self.inner {
            SignerInner::Rsa(_) => {
                self.sign_rsa(RsaPadding::Pkcs1v15, DigestAlgorithm::Sha256, message)
            }
            SignerInner::Ecdsa(k) => k
                .sign(&SystemRandom::new(), message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| self.sign_err("ECDSA signing failed")),
            SignerInner::Ed25519(k) => k
                .try_sign(message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| self.sign_err("Ed25519 signing failed")),
        }
    }

    /// Sign a precomputed digest (ECDSA with the key's own digest; RSA with any).
    pub fn sign_prehashed(
        &self,
        digest_alg: DigestAlgorithm,
        digest: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let d = digest_alg.import(digest)?;
        match &self.inner {
            SignerInner::Ecdsa(k) => {
                if self.algorithm().default_digest() != Some(digest_alg) {
                    return Err(CryptoError::Unsupported(format!(
                        "{} keys sign {} digests, not {digest_alg}",
                        self.algorithm(),
                        self.algorithm().default_digest().map_or("no", |d| d.name())
                    )));
                }
                k.sign_digest(&d)
                    .map(|s| s.as_ref().to_vec())
                    .map_err(|_| self.sign_err("ECDSA signing failed"))
            }
            SignerInner::Ed25519(_) => Err(CryptoError::Unsupported(
                "Ed25519 cannot sign a digest: plain Ed25519 signs the whole message".into(),
            )),
            SignerInner::Rsa(k) => {
                let mut out = vec![0u8; k.public_modulus_len()];
                k.sign_digest(rsa_encoding(RsaPadding::Pkcs1v15, digest_alg), &d, &mut out)
                    .map_err(|_| self.sign_err("RSA signing failed"))?;
                Ok(out)
            }
        }
    }

    /// Sign with an RSA key and an explicit padding and digest.
    pub fn sign_rsa(
        &self,
        padding: RsaPadding,
        digest_alg: DigestAlgorithm,
        message: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let SignerInner::Rsa(k) = &self.inner else {
            return Err(CryptoError::Unsupported(format!(
                "sign_rsa needs an RSA key, this is {}",
                self.algorithm()
            )));
        };
        let mut out = vec![0u8; k.public_modulus_len()];
        k.sign(
            rsa_encoding(padding, digest_alg),
            &SystemRandom::new(),
            message,
            &mut out,
        )
        .map_err(|_| self.sign_err("RSA signing failed"))?;
        Ok(out)
    }

    fn sign_err(&self, reason: &str) -> CryptoError {
        CryptoError::Signing {
            algorithm: self.algorithm(),
            reason: reason.to_string(),
        }
    }
}

fn rsa_encoding(padding: RsaPadding, d: DigestAlgorithm) -> &'static dyn signature::RsaEncoding {
    match (padding, d) {
        (RsaPadding::Pkcs1v15, DigestAlgorithm::Sha256) => &signature::RSA_PKCS1_SHA256,
        (RsaPadding::Pkcs1v15, DigestAlgorithm::Sha384) => &signature::RSA_PKCS1_SHA384,
        (RsaPadding::Pkcs1v15, DigestAlgorithm::Sha512) => &signature::RSA_PKCS1_SHA512,
        (RsaPadding::Pss, DigestAlgorithm::Sha256) => &signature::RSA_PSS_SHA256,
        (RsaPadding::Pss, DigestAlgorithm::Sha384) => &signature::RSA_PSS_SHA384,
        (RsaPadding::Pss, DigestAlgorithm::Sha512) => &signature::RSA_PSS_SHA512,
    }
}

// ---- encrypted PKCS#8 (RFC 5958 EncryptedPrivateKeyInfo, PBES2 from RFC 8018) -------------
//
// Written on aws-lc-rs primitives (PBKDF2, AES-CBC) rather than adding a cipher stack.
// Reads what `openssl pkcs8 -topk8 -v2 aes-256-cbc` writes (PBKDF2 with HMAC-SHA1/256/384/512,
// AES-128/192/256-CBC); writes PBKDF2-HMAC-SHA256 with AES-256-CBC.

const OID_PBES2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.5.13");
const OID_PBKDF2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.5.12");
const OID_HMAC_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.2.7");
const OID_HMAC_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.2.9");
const OID_HMAC_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.2.10");
const OID_HMAC_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.2.11");
const OID_AES128_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.2");
const OID_AES192_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.22");
const OID_AES256_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.42");

/// PBKDF2 iterations used when encrypting (OWASP's current figure for HMAC-SHA256).
pub const PBKDF2_ITERATIONS: u32 = 600_000;
/// Refuse to spend longer than this on a key file someone hands us.
const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;

#[derive(der::Sequence)]
struct EncryptedPrivateKeyInfo<'a> {
    encryption_algorithm: spki::AlgorithmIdentifierRef<'a>,
    encrypted_data: der::asn1::OctetStringRef<'a>,
}

#[derive(der::Sequence)]
struct Pbes2Params<'a> {
    key_derivation_func: spki::AlgorithmIdentifierRef<'a>,
    encryption_scheme: spki::AlgorithmIdentifierRef<'a>,
}

#[derive(der::Sequence)]
struct Pbkdf2Params<'a> {
    salt: der::asn1::OctetStringRef<'a>,
    iteration_count: u32,
    #[asn1(optional = "true")]
    key_length: Option<u16>,
    #[asn1(optional = "true")]
    prf: Option<spki::AlgorithmIdentifierRef<'a>>,
}

fn dec_err(m: impl Into<String>) -> CryptoError {
    CryptoError::Decryption(m.into())
}

fn pbes2_decrypt(der_bytes: &[u8], passphrase: &[u8]) -> Result<Vec<u8>, CryptoError> {
    use aws_lc_rs::cipher::{
        AES_128, AES_192, AES_256, DecryptionContext, PaddedBlockDecryptingKey, UnboundCipherKey,
    };
    use aws_lc_rs::iv::FixedLength;
    use aws_lc_rs::pbkdf2;

    let info = EncryptedPrivateKeyInfo::from_der(der_bytes)
        .map_err(|e| dec_err(format!("malformed EncryptedPrivateKeyInfo: {e}")))?;
    if info.encryption_algorithm.oid != OID_PBES2 {
        return Err(CryptoError::UnsupportedAlgorithm(format!(
            "key encryption scheme {} (only PBES2 is supported)",
            info.encryption_algorithm.oid
        )));
    }
    let params: Pbes2Params<'_> = info
        .encryption_algorithm
        .parameters
        .ok_or_else(|| dec_err("PBES2 without parameters"))?
        .decode_as()
        .map_err(|e| dec_err(format!("malformed PBES2 parameters: {e}")))?;
    if params.key_derivation_func.oid != OID_PBKDF2 {
        return Err(CryptoError::UnsupportedAlgorithm(format!(
            "key derivation {} (only PBKDF2 is supported; scrypt is not)",
            params.key_derivation_func.oid
        )));
    }
    let kdf: Pbkdf2Params<'_> = params
        .key_derivation_func
        .parameters
        .ok_or_else(|| dec_err("PBKDF2 without parameters"))?
        .decode_as()
        .map_err(|e| dec_err(format!("malformed PBKDF2 parameters: {e}")))?;
    let prf = match kdf.prf.as_ref().map(|p| p.oid) {
        None => pbkdf2::PBKDF2_HMAC_SHA1,
        Some(o) if o == OID_HMAC_SHA1 => pbkdf2::PBKDF2_HMAC_SHA1,
        Some(o) if o == OID_HMAC_SHA256 => pbkdf2::PBKDF2_HMAC_SHA256,
        Some(o) if o == OID_HMAC_SHA384 => pbkdf2::PBKDF2_HMAC_SHA384,
        Some(o) if o == OID_HMAC_SHA512 => pbkdf2::PBKDF2_HMAC_SHA512,
        Some(o) => {
            return Err(CryptoError::UnsupportedAlgorithm(format!("PBKDF2 PRF {o}")));
        }
    };
    let iterations = std::num::NonZeroU32::new(kdf.iteration_count)
        .ok_or_else(|| dec_err("PBKDF2 iteration count is zero"))?;
    if kdf.iteration_count > MAX_PBKDF2_ITERATIONS {
        return Err(dec_err(format!(
            "PBKDF2 iteration count {} is above the {MAX_PBKDF2_ITERATIONS} limit",
            kdf.iteration_count
        )));
    }
    let scheme = params.encryption_scheme.oid;
    let (cipher, key_len) = if scheme == OID_AES128_CBC {
        (&AES_128, 16)
    } else if scheme == OID_AES192_CBC {
        (&AES_192, 24)
    } else if scheme == OID_AES256_CBC {
        (&AES_256, 32)
    } else {
        return Err(CryptoError::UnsupportedAlgorithm(format!(
            "key encryption cipher {scheme} (supported: AES-128/192/256-CBC)"
        )));
    };
    if let Some(l) = kdf.key_length
        && usize::from(l) != key_len
    {
        return Err(dec_err(format!(
            "PBKDF2 key length {l} does not match the cipher"
        )));
    }
    let iv: der::asn1::OctetStringRef<'_> = params
        .encryption_scheme
        .parameters
        .ok_or_else(|| dec_err("AES-CBC without an IV"))?
        .decode_as()
        .map_err(|e| dec_err(format!("malformed AES-CBC IV: {e}")))?;
    let iv: [u8; 16] = iv
        .as_bytes()
        .try_into()
        .map_err(|_| dec_err("AES-CBC IV must be 16 bytes"))?;

    let mut key = [0u8; 32];
    let key = key
        .get_mut(..key_len)
        .ok_or_else(|| dec_err("key length"))?;
    pbkdf2::derive(prf, iterations, kdf.salt.as_bytes(), passphrase, key);
    let unbound = UnboundCipherKey::new(cipher, key).map_err(|_| dec_err("AES key setup"))?;
    let dk = PaddedBlockDecryptingKey::cbc_pkcs7(unbound).map_err(|_| dec_err("AES key setup"))?;
    let mut data = info.encrypted_data.as_bytes().to_vec();
    let plain = dk
        .decrypt(&mut data, DecryptionContext::Iv128(FixedLength::from(iv)))
        .map_err(|_| dec_err("wrong passphrase or corrupted key"))?;
    Ok(plain.to_vec())
}

fn pbes2_encrypt(plain: &[u8], passphrase: &[u8]) -> Result<Vec<u8>, CryptoError> {
    use aws_lc_rs::cipher::{
        AES_256, EncryptionContext, PaddedBlockEncryptingKey, UnboundCipherKey,
    };
    use aws_lc_rs::iv::FixedLength;
    use aws_lc_rs::pbkdf2;
    use der::Encode;

    let enc_err = |m: &str| CryptoError::Encryption(m.to_string());
    let mut salt = [0u8; 16];
    let mut iv = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| enc_err("no randomness for the salt"))?;
    aws_lc_rs::rand::fill(&mut iv).map_err(|_| enc_err("no randomness for the IV"))?;
    let iterations =
        std::num::NonZeroU32::new(PBKDF2_ITERATIONS).ok_or_else(|| enc_err("iteration count"))?;
    let mut key = [0u8; 32];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        &salt,
        passphrase,
        &mut key,
    );
    let ek = UnboundCipherKey::new(&AES_256, &key)
        .and_then(PaddedBlockEncryptingKey::cbc_pkcs7)
        .map_err(|_| enc_err("AES key setup"))?;
    let mut data = plain.to_vec();
    ek.less_safe_encrypt(&mut data, EncryptionContext::Iv128(FixedLength::from(iv)))
        .map_err(|_| enc_err("AES-CBC encryption failed"))?;

    let der_err = |e: der::Error| CryptoError::Encryption(format!("DER encoding: {e}"));
    let null = der::asn1::AnyRef::from(der::asn1::Null);
    let kdf_params = Pbkdf2Params {
        salt: der::asn1::OctetStringRef::new(&salt).map_err(der_err)?,
        iteration_count: PBKDF2_ITERATIONS,
        key_length: None,
        prf: Some(spki::AlgorithmIdentifierRef {
            oid: OID_HMAC_SHA256,
            parameters: Some(null),
        }),
    }
    .to_der()
    .map_err(der_err)?;
    let iv_der = der::asn1::OctetStringRef::new(&iv)
        .map_err(der_err)?
        .to_der()
        .map_err(der_err)?;
    let pbes2 = Pbes2Params {
        key_derivation_func: spki::AlgorithmIdentifierRef {
            oid: OID_PBKDF2,
            parameters: Some(der::asn1::AnyRef::from_der(&kdf_params).map_err(der_err)?),
        },
        encryption_scheme: spki::AlgorithmIdentifierRef {
            oid: OID_AES256_CBC,
            parameters: Some(der::asn1::AnyRef::from_der(&iv_der).map_err(der_err)?),
        },
    }
    .to_der()
    .map_err(der_err)?;
    EncryptedPrivateKeyInfo {
        encryption_algorithm: spki::AlgorithmIdentifierRef {
            oid: OID_PBES2,
            parameters: Some(der::asn1::AnyRef::from_der(&pbes2).map_err(der_err)?),
        },
        encrypted_data: der::asn1::OctetStringRef::new(&data).map_err(der_err)?,
    }
    .to_der()
    .map_err(der_err)
}

impl SigningKey {
    /// Load an `ENCRYPTED PRIVATE KEY` PEM (PKCS#8 PBES2: PBKDF2 + AES-CBC).
    pub fn from_encrypted_pkcs8_pem(pem: &str, passphrase: &str) -> Result<Self, CryptoError> {
        let block = pem::parse(pem).map_err(|e| CryptoError::Pem(e.to_string()))?;
        if block.tag() != "ENCRYPTED PRIVATE KEY" {
            return Err(CryptoError::PemLabel {
                found: block.tag().to_string(),
                expected: "ENCRYPTED PRIVATE KEY",
            });
        }
        SigningKey::from_encrypted_pkcs8_der(block.contents(), passphrase)
    }

    /// Load a DER PKCS#8 `EncryptedPrivateKeyInfo`.
    pub fn from_encrypted_pkcs8_der(der: &[u8], passphrase: &str) -> Result<Self, CryptoError> {
        let plain = pbes2_decrypt(der, passphrase.as_bytes())?;
        SigningKey::from_pkcs8_der(&plain)
    }

    /// `ENCRYPTED PRIVATE KEY` PEM: PBES2 with PBKDF2-HMAC-SHA256 ([`PBKDF2_ITERATIONS`]
    /// iterations, random 16-byte salt) and AES-256-CBC. Salt and IV come from the system RNG.
    pub fn to_encrypted_pkcs8_pem(&self, passphrase: &str) -> Result<String, CryptoError> {
        let der = pbes2_encrypt(&self.to_pkcs8_der()?, passphrase.as_bytes())?;
        Ok(crate::certs::pem_encode("ENCRYPTED PRIVATE KEY", &der))
    }
}
