//! PEM and X.509 helpers shared by the log (canonical bodies, search keys), the CA and the client.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use der::{Decode, Encode};
use x509_cert::Certificate;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

/// Why PEM or certificate input was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CertError {
    #[error("not valid PEM: {0}")]
    Pem(String),
    #[error("no PEM block found")]
    NoPemBlock,
    #[error("unexpected PEM block {found:?}, expected {expected}")]
    UnexpectedLabel {
        found: String,
        expected: &'static str,
    },
    #[error("not a valid X.509 certificate: {0}")]
    Certificate(String),
}

/// PEM-encode with 64-column lines and `\n` endings, as Go's `pem.Encode` (and so Rekor) does.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// Every PEM block in `text` as (label, DER), tolerating CRLF and any line width.
pub fn pem_decode_all(text: &[u8]) -> Result<Vec<(String, Vec<u8>)>, CertError> {
    let blocks = pem::parse_many(text).map_err(|e| CertError::Pem(e.to_string()))?;
    if blocks.is_empty() {
        return Err(CertError::NoPemBlock);
    }
    Ok(blocks
        .into_iter()
        .map(|p| (p.tag().to_string(), p.into_contents()))
        .collect())
}

/// Parse a DER certificate.
pub fn parse_certificate(der: &[u8]) -> Result<Certificate, CertError> {
    Certificate::from_der(der).map_err(|e| CertError::Certificate(e.to_string()))
}

/// Parse every certificate in a PEM bundle (leaf first, as given).
pub fn parse_pem_certificates(text: &[u8]) -> Result<Vec<(Vec<u8>, Certificate)>, CertError> {
    pem_decode_all(text)?
        .into_iter()
        .map(|(label, der)| {
            if label != "CERTIFICATE" {
                return Err(CertError::UnexpectedLabel {
                    found: label,
                    expected: "CERTIFICATE",
                });
            }
            let cert = parse_certificate(&der)?;
            Ok((der, cert))
        })
        .collect()
}

/// The DER SubjectPublicKeyInfo of a certificate.
pub fn spki_der(cert: &Certificate) -> Result<Vec<u8>, CertError> {
    cert.tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| CertError::Certificate(e.to_string()))
}

/// A subject alternative name Sigstore cares about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum San {
    Email(String),
    Uri(String),
    Other(String),
}

impl San {
    pub fn value(&self) -> &str {
        match self {
            San::Email(s) | San::Uri(s) | San::Other(s) => s,
        }
    }
}

/// The e-mail, URI (and otherName UTF8String) SANs of a certificate.
pub fn subject_alt_names(cert: &Certificate) -> Vec<San> {
    let Ok(Some((_, san))) = cert.tbs_certificate.get::<SubjectAltName>() else {
        return Vec::new();
    };
    san.0
        .iter()
        .filter_map(|name| match name {
            GeneralName::Rfc822Name(s) => Some(San::Email(s.to_string())),
            GeneralName::UniformResourceIdentifier(s) => Some(San::Uri(s.to_string())),
            GeneralName::OtherName(other) => der::asn1::Utf8StringRef::try_from(&other.value)
                .ok()
                .map(|s| San::Other(s.as_str().to_string())),
            _ => None,
        })
        .collect()
}

/// The raw value (contents of the extnValue OCTET STRING) of an extension, by dotted OID.
pub fn extension_value<'a>(cert: &'a Certificate, oid: &str) -> Option<&'a [u8]> {
    let oid = der::asn1::ObjectIdentifier::new(oid).ok()?;
    cert.tbs_certificate
        .extensions
        .as_ref()?
        .iter()
        .find(|e| e.extn_id == oid)
        .map(|e| e.extn_value.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip_64_columns() {
        let der: Vec<u8> = (0..200u8).collect();
        let text = pem_encode("CERTIFICATE", &der);
        assert!(
            text.lines()
                .all(|l| l.len() <= 64 || l.starts_with("-----"))
        );
        assert!(text.ends_with("-----END CERTIFICATE-----\n"));
        let crlf = text.replace('\n', "\r\n");
        let blocks = pem_decode_all(crlf.as_bytes()).unwrap();
        assert_eq!(blocks, vec![("CERTIFICATE".to_string(), der)]);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(pem_decode_all(b"hello").is_err());
        assert!(parse_certificate(b"\x30\x03\x02\x01\x01").is_err());
    }
}
