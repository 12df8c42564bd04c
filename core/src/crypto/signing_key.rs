//! Signing keys: PKCS#8 loading and generation, signatures (ECDSA DER, Ed25519, RSA PKCS#1 v1.5 or PSS).

#[allow(unused_imports)]
use super::*;

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
            .field("algorithm", &self.public.algorithm())
            .field("public", &hex::encode(self.public.spki_der()))
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
        self.public.algorithm()
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
