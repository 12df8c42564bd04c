//! X.509 building: the leaf profile (Fulcio's), precertificates, CA certificates, DER signing.
//! TBS structures are built here and signed by a [`CaSigner`](super::CaSigner), so the precertificate and the
//! final certificate differ in exactly one extension.

use std::time::Duration;

use der::asn1::{BitString, Ia5String, Null, OctetString, Utf8StringRef};
use der::{Any, Decode, Encode};
use sigil_core::crypto::KeyAlgorithm;
use sigil_core::oid;
use x509_cert::certificate::{TbsCertificate, Version};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::name::{GeneralName, OtherName};
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};

use super::error::CaError;
use super::identity::{Identity, San};

fn internal(what: &str) -> impl Fn(der::Error) -> CaError + '_ {
    move |e| CaError::Internal(format!("{what}: {e}"))
}

/// A 20-byte random positive serial number (160 bits as Fulcio's profile asks, the top bit clear
/// so the DER INTEGER stays 20 bytes).
pub fn random_serial() -> Result<SerialNumber, CaError> {
    let mut b = [0u8; 20];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| CaError::internal("random serial: RNG failure"))?;
    if let Some(first) = b.first_mut() {
        *first = (*first & 0x7f) | 0x01;
    }
    SerialNumber::new(&b).map_err(internal("serial number"))
}

/// Key identifier of an SPKI: the leftmost 160 bits of SHA-256 of the subjectPublicKey bits
/// (RFC 7093 §2 method 1).
pub fn key_identifier(spki_der: &[u8]) -> Result<Vec<u8>, CaError> {
    let spki = SubjectPublicKeyInfoOwned::from_der(spki_der).map_err(|e| {
        CaError::bad_request(format!(
            "public key is not a valid SubjectPublicKeyInfo: {e}"
        ))
    })?;
    let h = sigil_core::crypto::sha256(spki.subject_public_key.raw_bytes());
    Ok(h.get(..20).unwrap_or_default().to_vec())
}

/// The signatureAlgorithm a CA key of `alg` writes.
pub fn signature_algorithm(alg: KeyAlgorithm) -> Result<AlgorithmIdentifierOwned, CaError> {
    let (oid, null_params) = match alg {
        KeyAlgorithm::EcdsaP256 => (oid::ECDSA_WITH_SHA256, false),
        KeyAlgorithm::EcdsaP384 => (oid::ECDSA_WITH_SHA384, false),
        KeyAlgorithm::EcdsaP521 => (oid::ECDSA_WITH_SHA512, false),
        KeyAlgorithm::Ed25519 => (oid::ED25519, false),
        KeyAlgorithm::Rsa { .. } => (oid::SHA256_WITH_RSA, true),
    };
    let parameters = if null_params {
        Some(Any::encode_from(&Null).map_err(internal("NULL parameters"))?)
    } else {
        None
    };
    Ok(AlgorithmIdentifierOwned { oid, parameters })
}

/// A certificate time from Unix seconds (UTCTime until 2049, GeneralizedTime after).
pub fn time_from_unix(secs: u64) -> Result<Time, CaError> {
    // RFC 5280 §4.1.2.5: UTCTime through 2049 (strict clients such as sigstore-python reject
    // GeneralizedTime there), GeneralizedTime from 2050 on.
    let dt = der::DateTime::from_unix_duration(Duration::from_secs(secs))
        .map_err(internal("certificate time"))?;
    if dt.year() < 2050 {
        Ok(Time::UtcTime(
            der::asn1::UtcTime::from_date_time(dt).map_err(internal("certificate time"))?,
        ))
    } else {
        Ok(Time::GeneralTime(
            der::asn1::GeneralizedTime::from_date_time(dt),
        ))
    }
}

/// An extension from a value that DER-encodes.
pub fn extension(
    oid: der::asn1::ObjectIdentifier,
    critical: bool,
    value: &impl Encode,
) -> Result<Extension, CaError> {
    let der = value.to_der().map_err(internal("extension value"))?;
    raw_extension(oid, critical, der)
}

/// An extension whose value bytes are given as they go inside the OCTET STRING.
pub fn raw_extension(
    oid: der::asn1::ObjectIdentifier,
    critical: bool,
    value: Vec<u8>,
) -> Result<Extension, CaError> {
    Ok(Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(value).map_err(internal("extension"))?,
    })
}

/// What the CA knows of its issuing certificate.
#[derive(Clone)]
pub struct IssuerInfo {
    pub name: Name,
    pub key_id: Vec<u8>,
    pub spki_der: Vec<u8>,
    pub signature_algorithm: AlgorithmIdentifierOwned,
    /// The issuing certificate's notAfter (Unix seconds): leaves never outlive it.
    pub not_after: u64,
}

impl IssuerInfo {
    /// Reads the issuing certificate (subject, SKI or a computed key id, SPKI, expiry).
    pub fn from_cert_der(cert_der: &[u8], alg: KeyAlgorithm) -> Result<Self, CaError> {
        let cert = x509_cert::Certificate::from_der(cert_der)
            .map_err(|e| CaError::Config(format!("CA certificate does not parse: {e}")))?;
        let tbs = &cert.tbs_certificate;
        let spki_der = tbs
            .subject_public_key_info
            .to_der()
            .map_err(internal("CA SPKI"))?;
        let ski = tbs
            .get::<SubjectKeyIdentifier>()
            .ok()
            .flatten()
            .map(|(_, s)| s.0.as_bytes().to_vec());
        let key_id = match ski {
            Some(k) => k,
            None => key_identifier(&spki_der)?,
        };
        Ok(Self {
            name: tbs.subject.clone(),
            key_id,
            spki_der,
            signature_algorithm: signature_algorithm(alg)?,
            not_after: tbs.validity.not_after.to_unix_duration().as_secs(),
        })
    }
}

/// Inputs of a leaf certificate.
pub struct LeafRequest<'a> {
    pub subject_spki_der: &'a [u8],
    pub identity: &'a Identity,
    /// notBefore, Unix seconds.
    pub not_before: u64,
    pub validity_secs: u64,
}

fn san_extension(san: &San) -> Result<Extension, CaError> {
    let ia5 = |s: &str| {
        Ia5String::new(s).map_err(|_| CaError::bad_request(format!("identity {s:?} is not ASCII")))
    };
    let name = match san {
        San::Email(e) => GeneralName::Rfc822Name(ia5(e)?),
        San::Uri(u) => GeneralName::UniformResourceIdentifier(ia5(u)?),
        San::OtherName(v) => GeneralName::OtherName(OtherName {
            type_id: oid::OTHERNAME_SAN,
            value: Any::encode_from(&Utf8StringRef::new(v).map_err(internal("otherName"))?)
                .map_err(internal("otherName"))?,
        }),
    };
    // The subject is empty, so the SAN is critical (RFC 5280 §4.2.1.6).
    extension(oid::SUBJECT_ALT_NAME, true, &SubjectAltName(vec![name]))
}

/// The leaf TBS without any CT extension: Fulcio's profile (empty subject, one critical SAN,
/// digitalSignature, codeSigning, SKI/AKI, Sigstore extensions).
pub fn leaf_tbs(issuer: &IssuerInfo, req: &LeafRequest<'_>) -> Result<TbsCertificate, CaError> {
    let spki = SubjectPublicKeyInfoOwned::from_der(req.subject_spki_der).map_err(|e| {
        CaError::bad_request(format!(
            "public key is not a valid SubjectPublicKeyInfo: {e}"
        ))
    })?;
    let not_after = req
        .not_before
        .saturating_add(req.validity_secs)
        .min(issuer.not_after);
    if not_after <= req.not_before {
        return Err(CaError::Internal(
            "the CA's issuing certificate has expired: rotate the intermediate".into(),
        ));
    }
    let mut exts = vec![
        extension(
            oid::KEY_USAGE,
            true,
            &KeyUsage(KeyUsages::DigitalSignature.into()),
        )?,
        extension(
            oid::EXTENDED_KEY_USAGE,
            false,
            &ExtendedKeyUsage(vec![oid::KP_CODE_SIGNING]),
        )?,
        extension(
            oid::SUBJECT_KEY_IDENTIFIER,
            false,
            &SubjectKeyIdentifier(
                OctetString::new(key_identifier(req.subject_spki_der)?).map_err(internal("SKI"))?,
            ),
        )?,
        extension(
            oid::AUTHORITY_KEY_IDENTIFIER,
            false,
            &AuthorityKeyIdentifier {
                key_identifier: Some(
                    OctetString::new(issuer.key_id.clone()).map_err(internal("AKI"))?,
                ),
                authority_cert_issuer: None,
                authority_cert_serial_number: None,
            },
        )?,
        san_extension(&req.identity.san)?,
    ];
    for (o, value) in &req.identity.extensions {
        exts.push(raw_extension(*o, false, value.clone())?);
    }
    Ok(TbsCertificate {
        version: Version::V3,
        serial_number: random_serial()?,
        signature: issuer.signature_algorithm.clone(),
        issuer: issuer.name.clone(),
        validity: Validity {
            not_before: time_from_unix(req.not_before)?,
            not_after: time_from_unix(not_after)?,
        },
        subject: Name::default(),
        subject_public_key_info: spki,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(exts),
    })
}

/// `tbs` plus one extension at the end.
pub fn with_extension(tbs: &TbsCertificate, ext: Extension) -> TbsCertificate {
    let mut t = tbs.clone();
    t.extensions.get_or_insert_with(Vec::new).push(ext);
    t
}

/// The critical precertificate poison extension (value ASN.1 NULL).
pub fn poison_extension() -> Result<Extension, CaError> {
    raw_extension(oid::CT_PRECERT_POISON, true, vec![0x05, 0x00])
}

/// The embedded SCT list extension: an OCTET STRING holding the TLS-encoded list.
pub fn sct_list_extension(tls_list: Vec<u8>) -> Result<Extension, CaError> {
    let inner = OctetString::new(tls_list).map_err(internal("SCT list"))?;
    extension(oid::CT_PRECERT_SCTS, false, &inner)
}

/// DER length bytes.
fn der_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        let significant = bytes.get(skip..).unwrap_or_default();
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
}

/// Signs `tbs` with `sign` (a [`CaSigner`](super::CaSigner)'s) and returns the certificate
/// DER. The TBS is encoded once and signed as encoded.
pub fn sign_tbs(
    tbs: &TbsCertificate,
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, CaError>,
) -> Result<Vec<u8>, CaError> {
    let tbs_der = tbs.to_der().map_err(internal("TBS"))?;
    sign_tbs_der(&tbs_der, &tbs.signature, sign)
}

/// Signs an encoded TBS: `Certificate ::= SEQUENCE { tbs, signatureAlgorithm, signature }`.
pub fn sign_tbs_der(
    tbs_der: &[u8],
    alg: &AlgorithmIdentifierOwned,
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, CaError>,
) -> Result<Vec<u8>, CaError> {
    let sig = sign(tbs_der)?;
    let alg_der = alg.to_der().map_err(internal("signature algorithm"))?;
    let bits = BitString::from_bytes(&sig)
        .and_then(|b| b.to_der())
        .map_err(internal("signature"))?;
    let body_len = tbs_der.len() + alg_der.len() + bits.len();
    let mut out = Vec::with_capacity(body_len + 6);
    out.push(0x30);
    der_len(&mut out, body_len);
    out.extend_from_slice(tbs_der);
    out.extend_from_slice(&alg_der);
    out.extend_from_slice(&bits);
    Ok(out)
}

/// Names for a generated CA.
#[derive(Debug, Clone)]
pub struct CaNames {
    pub organization: String,
    pub root_common_name: String,
    pub intermediate_common_name: String,
    pub root_validity_days: u64,
    pub intermediate_validity_days: u64,
}

impl Default for CaNames {
    fn default() -> Self {
        Self {
            organization: "sigil".into(),
            root_common_name: "sigil-root".into(),
            intermediate_common_name: "sigil-intermediate".into(),
            root_validity_days: 3650,
            intermediate_validity_days: 1095,
        }
    }
}

/// `CN=<cn>, O=<org>`.
pub fn name(common_name: &str, organization: &str) -> Result<Name, CaError> {
    let esc = |s: &str| {
        let mut o = String::new();
        for c in s.chars() {
            if ",+\"\\<>;=#".contains(c) {
                o.push('\\');
            }
            o.push(c);
        }
        o
    };
    format!("CN={},O={}", esc(common_name), esc(organization))
        .parse::<Name>()
        .map_err(|e| CaError::Config(format!("CA name {common_name:?}/{organization:?}: {e}")))
}

/// A CA certificate TBS: `CA:TRUE` (pathlen 0 for an intermediate), keyCertSign + cRLSign,
/// codeSigning EKU on intermediates (Fulcio's chain rule), SKI, AKI for intermediates.
#[allow(clippy::too_many_arguments)]
pub fn ca_tbs(
    subject: Name,
    subject_spki_der: &[u8],
    issuer: &IssuerInfo,
    is_root: bool,
    not_before: u64,
    validity_secs: u64,
) -> Result<TbsCertificate, CaError> {
    let spki = SubjectPublicKeyInfoOwned::from_der(subject_spki_der)
        .map_err(|e| CaError::Config(format!("CA key: {e}")))?;
    let ski = key_identifier(subject_spki_der)?;
    let mut exts = vec![
        extension(
            oid::KEY_USAGE,
            true,
            &KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign),
        )?,
        extension(
            oid::BASIC_CONSTRAINTS,
            true,
            &BasicConstraints {
                ca: true,
                path_len_constraint: if is_root { None } else { Some(0) },
            },
        )?,
        extension(
            oid::SUBJECT_KEY_IDENTIFIER,
            false,
            &SubjectKeyIdentifier(OctetString::new(ski).map_err(internal("SKI"))?),
        )?,
    ];
    if !is_root {
        exts.insert(
            1,
            extension(
                oid::EXTENDED_KEY_USAGE,
                false,
                &ExtendedKeyUsage(vec![oid::KP_CODE_SIGNING]),
            )?,
        );
        exts.push(extension(
            oid::AUTHORITY_KEY_IDENTIFIER,
            false,
            &AuthorityKeyIdentifier {
                key_identifier: Some(
                    OctetString::new(issuer.key_id.clone()).map_err(internal("AKI"))?,
                ),
                authority_cert_issuer: None,
                authority_cert_serial_number: None,
            },
        )?);
    }
    let not_after = not_before.saturating_add(validity_secs);
    let not_after = if is_root {
        not_after
    } else {
        not_after.min(issuer.not_after)
    };
    Ok(TbsCertificate {
        version: Version::V3,
        serial_number: random_serial()?,
        signature: issuer.signature_algorithm.clone(),
        issuer: issuer.name.clone(),
        validity: Validity {
            not_before: time_from_unix(not_before)?,
            not_after: time_from_unix(not_after)?,
        },
        subject,
        subject_public_key_info: spki,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(exts),
    })
}
