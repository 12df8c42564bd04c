//! First-run generation of the TSA's own hierarchy and loading it at start.
//!
//! The TSA chains to its own root (not the code-signing CA): an ECDSA P-384 root (10 years) and
//! an ECDSA P-256 signing certificate (9 years) whose only extended key usage is timeStamping,
//! marked critical as RFC 3161 §2.3 requires. Files: the signing key, the chain (leaf then root)
//! and the root key, kept so an operator can re-issue the leaf.

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use der::asn1::{BitString, OctetString};
use der::{Decode, Encode};
use sigil_core::crypto::{KeyAlgorithm, SigningKey};
use sigil_core::oid;
use x509_cert::certificate::{Certificate, TbsCertificate, Version};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectKeyIdentifier,
};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};

use super::token::TimestampAuthority;

const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
/// Certificates start an hour in the past so a skewed verifier clock still accepts them.
const BACKDATE: Duration = Duration::from_secs(3600);

fn ext<T: Encode>(
    id: der::asn1::ObjectIdentifier,
    critical: bool,
    value: &T,
) -> anyhow::Result<Extension> {
    Ok(Extension {
        extn_id: id,
        critical,
        extn_value: OctetString::new(value.to_der()?)?,
    })
}

fn key_id(spki: &SubjectPublicKeyInfoOwned) -> anyhow::Result<OctetString> {
    let digest = sigil_core::crypto::sha256(spki.subject_public_key.raw_bytes());
    Ok(OctetString::new(digest.get(..20).unwrap_or_default())?)
}

fn sig_alg(key: &SigningKey) -> anyhow::Result<AlgorithmIdentifierOwned> {
    let id = match key.algorithm() {
        KeyAlgorithm::EcdsaP256 => oid::ECDSA_WITH_SHA256,
        KeyAlgorithm::EcdsaP384 => oid::ECDSA_WITH_SHA384,
        other => anyhow::bail!("TSA certificate keys must be ECDSA, not {other:?}"),
    };
    Ok(AlgorithmIdentifierOwned {
        oid: id,
        parameters: None,
    })
}

fn serial() -> anyhow::Result<SerialNumber> {
    let mut s: [u8; 16] = rand::random();
    if let Some(b) = s.first_mut() {
        *b = (*b & 0x7f) | 0x01; // positive, no leading zero
    }
    Ok(SerialNumber::new(&s)?)
}

/// Build and sign one certificate: a CA when `issuer` is None (self-signed root), else the
/// time-stamping leaf.
fn certificate(
    subject: &str,
    key: &SigningKey,
    issuer: Option<(&Certificate, &SigningKey)>,
    lifetime: Duration,
    now: SystemTime,
) -> anyhow::Result<Certificate> {
    let spki = SubjectPublicKeyInfoOwned::from_der(key.public_key().spki_der())?;
    let subject_name = Name::from_str(subject)?;
    let mut extensions = vec![ext(
        oid::SUBJECT_KEY_IDENTIFIER,
        false,
        &SubjectKeyIdentifier(key_id(&spki)?),
    )?];
    let (issuer_name, signer) = match issuer {
        None => {
            extensions.push(ext(
                oid::BASIC_CONSTRAINTS,
                true,
                &BasicConstraints {
                    ca: true,
                    path_len_constraint: Some(0),
                },
            )?);
            extensions.push(ext(
                oid::KEY_USAGE,
                true,
                &KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign),
            )?);
            (subject_name.clone(), key)
        }
        Some((ca, ca_key)) => {
            extensions.push(ext(
                oid::AUTHORITY_KEY_IDENTIFIER,
                false,
                &AuthorityKeyIdentifier {
                    key_identifier: Some(key_id(&ca.tbs_certificate.subject_public_key_info)?),
                    authority_cert_issuer: None,
                    authority_cert_serial_number: None,
                },
            )?);
            extensions.push(ext(
                oid::KEY_USAGE,
                true,
                &KeyUsage(KeyUsages::DigitalSignature.into()),
            )?);
            extensions.push(ext(
                oid::EXTENDED_KEY_USAGE,
                true,
                &ExtendedKeyUsage(vec![oid::KP_TIME_STAMPING]),
            )?);
            (ca.tbs_certificate.subject.clone(), ca_key)
        }
    };
    let alg = sig_alg(signer)?;
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: serial()?,
        signature: alg.clone(),
        issuer: issuer_name,
        validity: Validity {
            not_before: x509_time(now - BACKDATE)?,
            not_after: x509_time(now + lifetime)?,
        },
        subject: subject_name,
        subject_public_key_info: spki,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(extensions),
    };
    let signature = signer.sign(&tbs.to_der()?)?;
    Ok(Certificate {
        tbs_certificate: tbs,
        signature_algorithm: alg,
        signature: BitString::from_bytes(&signature)?,
    })
}

/// RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050 (verifiers enforce it).
fn x509_time(t: SystemTime) -> anyhow::Result<Time> {
    Ok(match der::asn1::UtcTime::from_system_time(t) {
        Ok(utc) => Time::UtcTime(utc),
        Err(_) => Time::GeneralTime(der::asn1::GeneralizedTime::from_system_time(t)?),
    })
}

fn write_new(path: &Path, text: &str, private: bool) -> anyhow::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let _ = private;
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

/// Generate the TSA root, signing key and chain unless the key and chain both exist.
/// `root_key` is written beside the chain. Returns whether anything was generated.
pub fn ensure_tsa(
    key_path: &Path,
    chain_path: &Path,
    root_key_path: &Path,
) -> anyhow::Result<bool> {
    if key_path.exists() && chain_path.exists() {
        return Ok(false);
    }
    if key_path.exists() != chain_path.exists() {
        anyhow::bail!(
            "only one of the TSA key {} and chain {} exists: restore the other or remove both to regenerate",
            key_path.display(),
            chain_path.display()
        );
    }
    let now = SystemTime::now();
    let root_key = SigningKey::generate(KeyAlgorithm::EcdsaP384)?;
    let root = certificate("CN=sigil TSA root,O=sigil", &root_key, None, 10 * YEAR, now)?;
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256)?;
    let leaf = certificate(
        "CN=sigil timestamping,O=sigil",
        &key,
        Some((&root, &root_key)),
        9 * YEAR,
        now,
    )?;
    let chain = [leaf.to_der()?, root.to_der()?]
        .iter()
        .map(|c| sigil_core::certs::pem_encode("CERTIFICATE", c))
        .collect::<String>();
    if !root_key_path.exists() {
        write_new(root_key_path, &root_key.to_pkcs8_pem()?, true)?;
    }
    write_new(key_path, &key.to_pkcs8_pem()?, true)?;
    write_new(chain_path, &chain, false)?;
    Ok(true)
}

/// Load the TSA from its key and chain files.
pub fn load(key_path: &Path, chain_path: &Path) -> anyhow::Result<TimestampAuthority> {
    let key = crate::keyfile::read_key(key_path)?;
    let chain = crate::keyfile::read_certs(chain_path)?;
    TimestampAuthority::new(key, chain).with_context(|| {
        format!(
            "TSA key {} and chain {} do not fit together",
            key_path.display(),
            chain_path.display()
        )
    })
}
