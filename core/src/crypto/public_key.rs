//! Verification keys: SPKI parsing for ECDSA (P-256/384/521), Ed25519 and RSA, and signature checks over messages or digests.

#[allow(unused_imports)]
use super::*;

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
