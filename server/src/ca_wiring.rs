//! Wiring of the CA role from the configuration (kept apart from `ca/`, which knows nothing of
//! the log or of the config file layout), and first-run generation of the CA hierarchy.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
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
use x509_cert::time::Validity;

use crate::config::{Config, resolve};

/// The CA's routes and its chain (intermediate first, root last, DER).
pub async fn build(cfg: &Config, data_dir: &Path) -> anyhow::Result<(Router, Vec<Vec<u8>>)> {
    let chain = ca_chain(cfg, data_dir)?;
    Ok((Router::new(), chain))
}

/// The configured chain: intermediate first, root last (DER).
pub fn ca_chain(cfg: &Config, data_dir: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    Ok([
        crate::app::read_certs(&resolve(data_dir, &cfg.ca.intermediate_cert))?,
        crate::app::read_certs(&resolve(data_dir, &cfg.ca.root_cert))?,
    ]
    .concat())
}

fn ext<T: Encode>(oid: der::asn1::ObjectIdentifier, critical: bool, value: &T) -> anyhow::Result<Extension> {
    Ok(Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(value.to_der()?)?,
    })
}

fn sig_alg(key: &SigningKey) -> anyhow::Result<AlgorithmIdentifierOwned> {
    let oid = match key.algorithm() {
        KeyAlgorithm::EcdsaP256 => oid::ECDSA_WITH_SHA256,
        KeyAlgorithm::EcdsaP384 => oid::ECDSA_WITH_SHA384,
        KeyAlgorithm::Ed25519 => oid::ED25519,
        other => anyhow::bail!("CA keys must be ECDSA or Ed25519, not {other:?}"),
    };
    Ok(AlgorithmIdentifierOwned {
        oid,
        parameters: None,
    })
}

fn key_id(spki: &SubjectPublicKeyInfoOwned) -> anyhow::Result<OctetString> {
    let digest = sigil_core::crypto::sha256(spki.subject_public_key.raw_bytes());
    Ok(OctetString::new(digest.get(..20).unwrap_or_default())?)
}

/// Build and sign a CA certificate.
fn ca_cert(
    subject: &str,
    key: &SigningKey,
    issuer: Option<(&Certificate, &SigningKey)>,
    years: u64,
    path_len: Option<u8>,
) -> anyhow::Result<Certificate> {
    let spki = SubjectPublicKeyInfoOwned::from_der(key.public_key().spki_der())?;
    let subject_name = Name::from_str(subject)?;
    let (issuer_name, signer, aki) = match issuer {
        Some((cert, k)) => {
            let issuer_spki = &cert.tbs_certificate.subject_public_key_info;
            (cert.tbs_certificate.subject.clone(), k, Some(key_id(issuer_spki)?))
        }
        None => (subject_name.clone(), key, None),
    };
    let alg = sig_alg(signer)?;
    let serial: [u8; 16] = rand::random();
    let mut serial = serial.to_vec();
    if let Some(b) = serial.first_mut() {
        *b &= 0x7f; // positive
        *b |= 0x01;
    }
    let mut extensions = vec![
        ext(
            oid::BASIC_CONSTRAINTS,
            true,
            &BasicConstraints {
                ca: true,
                path_len_constraint: path_len,
            },
        )?,
        ext(
            oid::KEY_USAGE,
            true,
            &KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign),
        )?,
        ext(oid::SUBJECT_KEY_IDENTIFIER, false, &SubjectKeyIdentifier(key_id(&spki)?))?,
    ];
    if let Some(aki) = aki {
        extensions.push(ext(
            oid::AUTHORITY_KEY_IDENTIFIER,
            false,
            &AuthorityKeyIdentifier {
                key_identifier: Some(aki),
                authority_cert_issuer: None,
                authority_cert_serial_number: None,
            },
        )?);
        extensions.push(ext(
            oid::EXTENDED_KEY_USAGE,
            false,
            &ExtendedKeyUsage(vec![oid::KP_CODE_SIGNING]),
        )?);
    }
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::new(&serial)?,
        signature: alg.clone(),
        issuer: issuer_name,
        validity: Validity::from_now(Duration::from_secs(years * 365 * 24 * 3600))?,
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

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

/// Generate the CA hierarchy unless present: an ECDSA P-384 root (10 years) and an
/// ECDSA P-256 intermediate (5 years) that issues leaf certificates.
pub fn ensure_ca(cfg: &Config, data_dir: &Path) -> anyhow::Result<()> {
    let root_cert_path = resolve(data_dir, &cfg.ca.root_cert);
    let int_cert_path = resolve(data_dir, &cfg.ca.intermediate_cert);
    let int_key_path = resolve(data_dir, &cfg.ca.intermediate_key);
    if root_cert_path.exists() && int_cert_path.exists() && int_key_path.exists() {
        return Ok(());
    }
    let root_key = SigningKey::generate(KeyAlgorithm::EcdsaP384)?;
    let root = ca_cert("CN=sigil root,O=sigil", &root_key, None, 10, Some(1))?;
    let int_key = SigningKey::generate(KeyAlgorithm::EcdsaP256)?;
    let int = ca_cert(
        "CN=sigil intermediate,O=sigil",
        &int_key,
        Some((&root, &root_key)),
        5,
        Some(0),
    )?;
    let root_key_path = root_cert_path.with_file_name("ca-root.pem");
    write_private(&root_key_path, &root_key.to_pkcs8_pem()?)?;
    write_private(&int_key_path, &int_key.to_pkcs8_pem()?)?;
    std::fs::write(&root_cert_path, sigil_core::certs::pem_encode("CERTIFICATE", &root.to_der()?))?;
    std::fs::write(&int_cert_path, sigil_core::certs::pem_encode("CERTIFICATE", &int.to_der()?))?;
    Ok(())
}
