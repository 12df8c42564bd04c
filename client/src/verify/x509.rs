//! Certificate parsing and chain checks against a trusted root, written against `x509-cert` and
//! `sigil_core::crypto` so verification stays offline and dependency-light.

use der::{Decode, Encode};
use sigil_core::certs;
use sigil_core::crypto::PublicKey;
use sigil_core::oid;
use sigil_core::trust::TrustedRoot;
use x509_cert::Certificate;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectAltName, SubjectKeyIdentifier,
};

use super::error::VerifyError;

/// A parsed certificate with the fields verification needs.
#[derive(Clone, Debug)]
pub struct ParsedCert {
    pub der: Vec<u8>,
    pub cert: Certificate,
    pub spki: Vec<u8>,
    pub key: PublicKey,
    pub not_before: i64,
    pub not_after: i64,
}

impl ParsedCert {
    /// Parses a DER certificate and its public key.
    pub fn from_der(der: &[u8]) -> Result<Self, VerifyError> {
        let bad = |e: String| VerifyError::Certificate(e);
        let cert = Certificate::from_der(der)
            .map_err(|e| bad(format!("not a DER X.509 certificate: {e}")))?;
        let spki = certs::spki_der(&cert).map_err(|e| bad(e.to_string()))?;
        let key = PublicKey::from_spki_der(&spki)
            .map_err(|e| bad(format!("unsupported certificate key: {e}")))?;
        let v = &cert.tbs_certificate.validity;
        let secs = |t: x509_cert::time::Time| {
            i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
        };
        let (not_before, not_after) = (secs(v.not_before), secs(v.not_after));
        Ok(Self {
            der: der.to_vec(),
            cert,
            spki,
            key,
            not_before,
            not_after,
        })
    }

    /// RFC 4514 subject.
    pub fn subject(&self) -> String {
        self.cert.tbs_certificate.subject.to_string()
    }

    /// RFC 4514 issuer.
    pub fn issuer(&self) -> String {
        self.cert.tbs_certificate.issuer.to_string()
    }

    /// Whether `t` (Unix seconds) is inside `[notBefore, notAfter]`.
    pub fn valid_at(&self, t: i64) -> bool {
        self.not_before <= t && t <= self.not_after
    }

    fn is_ca(&self) -> bool {
        matches!(self.cert.tbs_certificate.get::<BasicConstraints>(), Ok(Some((_, bc))) if bc.ca)
    }

    /// Checks that `issuer` signed this certificate and that the names chain.
    pub fn check_issued_by(&self, issuer: &ParsedCert) -> Result<(), String> {
        self.check_names_chain(issuer)?;
        verify_cert_signature(&self.cert, &issuer.key)
    }

    fn check_names_chain(&self, issuer: &ParsedCert) -> Result<(), String> {
        let (a, b) = (
            self.cert.tbs_certificate.issuer.to_der(),
            issuer.cert.tbs_certificate.subject.to_der(),
        );
        if a.is_err() || a != b {
            return Err(format!(
                "issuer name {:?} is not the subject {:?}",
                self.issuer(),
                issuer.subject()
            ));
        }
        Ok(())
    }

    /// [`Self::check_issued_by`] for a link between two certificates of the trusted root,
    /// whose signature is checked once and then remembered (see [`super::link_cache`]).
    pub fn check_trusted_link(&self, issuer: &ParsedCert) -> Result<(), String> {
        self.check_names_chain(issuer)?;
        super::link_cache::checked(&self.der, &issuer.spki, || {
            verify_cert_signature(&self.cert, &issuer.key)
        })
    }
}

impl ParsedCert {
    /// A root's issuer is its own subject.
    pub fn check_self_issued(&self) -> Result<(), String> {
        let tbs = &self.cert.tbs_certificate;
        if tbs.issuer != tbs.subject {
            return Err(format!(
                "{:?} is issued by {:?}, not by itself",
                self.subject(),
                self.issuer()
            ));
        }
        Ok(())
    }
}

pub use sigil_core::crypto::verify_cert_signature;

/// The result of chaining a leaf to a trusted CA.
#[derive(Clone, Debug)]
pub struct ChainMatch {
    /// Index into `certificateAuthorities`.
    pub ca_index: usize,
    /// The issuing certificate (first of the CA's chain).
    pub issuer: ParsedCert,
}

/// Chains `leaf` to a certificate authority of `root` that was valid at `at`: every link's names
/// and signature, CA basicConstraints, and each certificate's validity at `at`.
pub fn verify_chain(
    leaf: &ParsedCert,
    root: &TrustedRoot,
    at: i64,
) -> Result<ChainMatch, VerifyError> {
    let mut reasons = Vec::new();
    for (i, ca) in root.certificate_authorities.iter().enumerate() {
        let label = if ca.uri.is_empty() {
            format!("CA #{i}")
        } else {
            ca.uri.clone()
        };
        if !ca.valid_for.contains(at) {
            reasons.push(format!("{label}: not valid at {}", fmt_time(at)));
            continue;
        }
        match chain_to(leaf, ca, at) {
            Ok(issuer) => {
                return Ok(ChainMatch {
                    ca_index: i,
                    issuer,
                });
            }
            Err(r) => reasons.push(format!("{label}: {r}")),
        }
    }
    Err(VerifyError::UntrustedCertificate {
        issuer: leaf.issuer(),
        reasons: if reasons.is_empty() {
            "the trusted root lists no certificate authorities".into()
        } else {
            reasons.join("; ")
        },
    })
}

/// Whether the CA `ca_index` of `root`, which `leaf` was already chained to, and every
/// certificate of its chain were valid at `at` too.
pub fn chain_valid_at(
    leaf: &ParsedCert,
    root: &TrustedRoot,
    ca_index: usize,
    at: i64,
) -> Result<(), VerifyError> {
    let untrusted = |reason: String| VerifyError::UntrustedCertificate {
        issuer: leaf.issuer(),
        reasons: reason,
    };
    let ca = root
        .certificate_authorities
        .get(ca_index)
        .ok_or_else(|| untrusted(format!("no CA #{ca_index}")))?;
    if !ca.valid_for.contains(at) {
        return Err(untrusted(format!(
            "CA #{ca_index}: not valid at {}",
            fmt_time(at)
        )));
    }
    for c in &ca.cert_chain.certificates {
        let c = ParsedCert::from_der(&c.raw_bytes)?;
        if !c.valid_at(at) {
            return Err(untrusted(format!(
                "{:?} is valid {}..{}, not at {}",
                c.subject(),
                fmt_time(c.not_before),
                fmt_time(c.not_after),
                fmt_time(at)
            )));
        }
    }
    Ok(())
}

fn chain_to(
    leaf: &ParsedCert,
    ca: &sigil_core::trust::CertificateAuthority,
    at: i64,
) -> Result<ParsedCert, String> {
    let chain: Vec<ParsedCert> = ca
        .cert_chain
        .certificates
        .iter()
        .map(|c| ParsedCert::from_der(&c.raw_bytes).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let first = chain.first().ok_or("empty certificate chain")?;
    leaf.check_issued_by(first)?;
    let mut child = first;
    for (n, c) in chain.iter().enumerate() {
        check_extensions(c)?;
        if !c.is_ca() {
            return Err(format!(
                "{:?} is not a CA (basicConstraints cA is not true)",
                c.subject()
            ));
        }
        if !c.valid_at(at) {
            return Err(format!(
                "{:?} is valid {}..{}, not at {}",
                c.subject(),
                fmt_time(c.not_before),
                fmt_time(c.not_after),
                fmt_time(at)
            ));
        }
        if n > 0 {
            child
                .check_trusted_link(c)
                .map_err(|e| format!("{:?}: {e}", child.subject()))?;
        }
        child = c;
    }
    // The last certificate is the trust anchor: it is trusted because the trusted root lists
    // it, not because of its self-signature, which (as in the reference clients' path
    // validation) is not verified; it must still name itself as its issuer.
    child
        .check_self_issued()
        .map_err(|e| format!("chain does not end in a root: {e}"))?;
    Ok(first.clone())
}

/// Checks the leaf profile a code-signing certificate must have: digitalSignature key usage and
/// the codeSigning extended key usage.
pub fn check_leaf_profile(leaf: &ParsedCert) -> Result<(), VerifyError> {
    let tbs = &leaf.cert.tbs_certificate;
    if leaf.is_ca() {
        return Err(VerifyError::Certificate(
            "the signing certificate is a CA certificate (basicConstraints cA is true)".into(),
        ));
    }
    check_extensions(leaf).map_err(VerifyError::Certificate)?;
    match tbs.get::<KeyUsage>() {
        Ok(Some((_, ku))) if ku.0.contains(KeyUsages::DigitalSignature) => {}
        _ => {
            return Err(VerifyError::Certificate(
                "leaf certificate lacks the digitalSignature key usage".into(),
            ));
        }
    }
    match tbs.get::<ExtendedKeyUsage>() {
        Ok(Some((_, eku))) if eku.0.contains(&oid::KP_CODE_SIGNING) => Ok(()),
        _ => Err(VerifyError::Certificate(
            "leaf certificate lacks the codeSigning extended key usage".into(),
        )),
    }
}

/// Extensions a certificate may mark critical: the ones this verifier enforces. An unknown
/// critical extension means a constraint nobody checks, so the certificate is refused (RFC 5280
/// §4.2), as are duplicate extensions and a signature algorithm that differs between the
/// certificate and its TBS part.
pub fn check_extensions(c: &ParsedCert) -> Result<(), String> {
    const KNOWN_CRITICAL: [der::asn1::ObjectIdentifier; 4] = [
        oid::BASIC_CONSTRAINTS,
        oid::KEY_USAGE,
        oid::EXTENDED_KEY_USAGE,
        oid::SUBJECT_ALT_NAME,
    ];
    let tbs = &c.cert.tbs_certificate;
    let exts = tbs.extensions.as_deref().unwrap_or_default();
    for (i, e) in exts.iter().enumerate() {
        if exts.iter().take(i).any(|o| o.extn_id == e.extn_id) {
            return Err(format!(
                "{:?}: extension {} appears twice",
                c.subject(),
                e.extn_id
            ));
        }
        // A precertificate is what the CT log saw, never a certificate to use (RFC 6962 §3.1).
        if e.extn_id == oid::CT_PRECERT_POISON {
            return Err(format!(
                "{:?}: is a precertificate (CT poison extension)",
                c.subject()
            ));
        }
        if e.critical && !KNOWN_CRITICAL.contains(&e.extn_id) {
            return Err(format!(
                "{:?}: unknown critical extension {}",
                c.subject(),
                e.extn_id
            ));
        }
        well_formed(e).map_err(|why| {
            format!(
                "{:?}: extension {} is malformed: {why}",
                c.subject(),
                e.extn_id
            )
        })?;
    }
    Ok(())
}

/// A standard extension's value must be the DER its OID says, even where this verifier does not
/// use it (a trust anchor's key identifiers): a present field is checked or refused.
fn well_formed(e: &x509_cert::ext::Extension) -> Result<(), der::Error> {
    let v = e.extn_value.as_bytes();
    match e.extn_id {
        oid::BASIC_CONSTRAINTS => BasicConstraints::from_der(v).map(drop),
        oid::KEY_USAGE => KeyUsage::from_der(v).map(drop),
        oid::EXTENDED_KEY_USAGE => ExtendedKeyUsage::from_der(v).map(drop),
        oid::SUBJECT_ALT_NAME => SubjectAltName::from_der(v).map(drop),
        oid::SUBJECT_KEY_IDENTIFIER => SubjectKeyIdentifier::from_der(v).map(drop),
        oid::AUTHORITY_KEY_IDENTIFIER => AuthorityKeyIdentifier::from_der(v).map(drop),
        _ => Ok(()),
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
pub fn fmt_time(t: i64) -> String {
    sigil_core::trust::format_rfc3339(t)
}
