//! Encrypted PKCS#8 keys (RFC 5958 EncryptedPrivateKeyInfo with PBES2 from RFC 8018).

#[allow(unused_imports)]
use super::*;

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
