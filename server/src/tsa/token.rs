//! Parsing time-stamp queries (DER and the JSON form of Sigstore's timestamp-authority API) and
//! issuing RFC 3161 time-stamp tokens: a CMS SignedData over a TSTInfo, signed with signed
//! attributes (content type, signing time, message digest, ESS signing-certificate v2).
//! IO-free apart from the key: the time and serial number are arguments.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use der::asn1::{
    Any, BitString, GeneralizedTime, Int, ObjectIdentifier, OctetString, SetOfVec, Uint, UtcTime,
};
use der::{Decode, Encode};
use serde::Deserialize;
use sigil_core::crypto::{KeyAlgorithm, SigningKey, sha256};
use sigil_core::oid;
use x509_cert::Certificate;
use x509_cert::attr::Attribute;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::spki::AlgorithmIdentifierOwned;

use sigil_core::rfc3161::{
    self as asn1, Accuracy, ContentInfo, EncapsulatedContentInfo, EssCertIdV2,
    IssuerAndSerialNumber, IssuerSerial, MessageImprint, PkiStatusInfo, SignedData, SignerInfo,
    SigningCertificateV2, TimeStampReq, TimeStampResp, TstInfo,
};

/// Largest query accepted: a real one is well under 200 bytes; the cap bounds parser work.
pub const MAX_QUERY_BYTES: usize = 16 * 1024;

/// Why a query is refused or a token cannot be made. Each maps to an RFC 3161 failure bit.
#[derive(Debug, thiserror::Error)]
pub enum TsaError {
    #[error("the time-stamp query is not a DER TimeStampReq: {0}")]
    MalformedDer(String),
    #[error("the JSON time-stamp request is invalid: {0}")]
    MalformedJson(String),
    #[error("the time-stamp query is larger than {MAX_QUERY_BYTES} bytes")]
    TooLarge,
    #[error("unsupported TimeStampReq version {0}: only version 1 exists")]
    BadVersion(u8),
    #[error("unsupported hash algorithm {0}: use SHA-256, SHA-384 or SHA-512")]
    UnsupportedHash(String),
    #[error("the message imprint is {got} bytes, but a {alg} digest is {expected} bytes")]
    BadImprintLength {
        alg: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("hash algorithm parameters must be absent or NULL")]
    BadHashParameters,
    #[error("requested policy {0} is not this TSA's policy {policy}", policy = oid::TSA_POLICY)]
    UnacceptedPolicy(ObjectIdentifier),
    #[error("critical request extension {0} is not supported")]
    UnacceptedExtension(ObjectIdentifier),
    #[error("the nonce is not a usable INTEGER")]
    BadNonce,
    #[error("the TSA is misconfigured: {0}")]
    Config(String),
    #[error("issuing the time-stamp token failed: {0}")]
    Internal(String),
}

impl TsaError {
    /// The PKIFailureInfo bit (RFC 3161 §2.4.2) naming this failure.
    pub fn fail_bit(&self) -> usize {
        match self {
            Self::UnsupportedHash(_) | Self::BadHashParameters => 0, // badAlg
            Self::BadVersion(_) | Self::TooLarge | Self::BadNonce => 2, // badRequest
            Self::MalformedDer(_) | Self::MalformedJson(_) | Self::BadImprintLength { .. } => 5, // badDataFormat
            Self::UnacceptedPolicy(_) => 15,
            Self::UnacceptedExtension(_) => 16,
            Self::Config(_) | Self::Internal(_) => 25, // systemFailure
        }
    }

    /// Whether the caller is at fault (4xx) rather than the server (5xx).
    pub fn is_client_error(&self) -> bool {
        !matches!(self, Self::Config(_) | Self::Internal(_))
    }
}

fn internal(e: impl std::fmt::Display) -> TsaError {
    TsaError::Internal(e.to_string())
}

/// The digests a message imprint may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImprintHash {
    Sha256,
    Sha384,
    Sha512,
}

impl ImprintHash {
    pub fn from_oid(o: &ObjectIdentifier) -> Result<Self, TsaError> {
        match *o {
            asn1::SHA256 => Ok(Self::Sha256),
            asn1::SHA384 => Ok(Self::Sha384),
            asn1::SHA512 => Ok(Self::Sha512),
            asn1::SHA1 => Err(TsaError::UnsupportedHash("SHA-1 (1.3.14.3.2.26)".into())),
            other => Err(TsaError::UnsupportedHash(other.to_string())),
        }
    }

    /// `sha256`, `SHA-256`, `SHA2_256` and the like.
    pub fn from_name(name: &str) -> Result<Self, TsaError> {
        let n: String = name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        match n.as_str() {
            "sha256" | "sha2256" => Ok(Self::Sha256),
            "sha384" | "sha2384" => Ok(Self::Sha384),
            "sha512" | "sha2512" => Ok(Self::Sha512),
            _ => Err(TsaError::UnsupportedHash(format!("{name:?}"))),
        }
    }

    pub fn oid(self) -> ObjectIdentifier {
        match self {
            Self::Sha256 => asn1::SHA256,
            Self::Sha384 => asn1::SHA384,
            Self::Sha512 => asn1::SHA512,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "SHA-256",
            Self::Sha384 => "SHA-384",
            Self::Sha512 => "SHA-512",
        }
    }

    pub fn digest_len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }
}

/// A validated query.
#[derive(Clone, Debug)]
pub struct TimestampRequest {
    /// Echoed into the TSTInfo exactly as received.
    pub imprint: MessageImprint,
    pub hash: ImprintHash,
    pub nonce: Option<Int>,
    pub cert_req: bool,
}

fn check_imprint(imprint: &MessageImprint) -> Result<ImprintHash, TsaError> {
    let hash = ImprintHash::from_oid(&imprint.hash_algorithm.oid)?;
    if imprint
        .hash_algorithm
        .parameters
        .as_ref()
        .is_some_and(|p| !p.is_null())
    {
        return Err(TsaError::BadHashParameters);
    }
    let got = imprint.hashed_message.as_bytes().len();
    if got != hash.digest_len() {
        return Err(TsaError::BadImprintLength {
            alg: hash.name(),
            expected: hash.digest_len(),
            got,
        });
    }
    Ok(hash)
}

/// Parse and validate a DER `TimeStampReq`.
pub fn parse_der_request(bytes: &[u8]) -> Result<TimestampRequest, TsaError> {
    if bytes.len() > MAX_QUERY_BYTES {
        return Err(TsaError::TooLarge);
    }
    let req = TimeStampReq::from_der(bytes).map_err(|e| TsaError::MalformedDer(e.to_string()))?;
    if req.version != 1 {
        return Err(TsaError::BadVersion(req.version));
    }
    let hash = check_imprint(&req.message_imprint)?;
    if let Some(p) = req.req_policy.filter(|p| *p != oid::TSA_POLICY) {
        return Err(TsaError::UnacceptedPolicy(p));
    }
    if let Some(ext) = req.extensions.iter().flatten().find(|e| e.critical) {
        return Err(TsaError::UnacceptedExtension(ext.extn_id));
    }
    Ok(TimestampRequest {
        imprint: req.message_imprint,
        hash,
        nonce: req.nonce,
        cert_req: req.cert_req.unwrap_or(false),
    })
}

/// The JSON request form of Sigstore's timestamp-authority API.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct JsonRequest {
    artifact_hash: String,
    #[serde(default)]
    hash_algorithm: Option<String>,
    #[serde(default)]
    nonce: Option<u64>,
    #[serde(default)]
    certificates: Option<bool>,
    #[serde(default, rename = "tsaPolicyOID")]
    tsa_policy_oid: Option<String>,
}

/// Parse and validate the JSON request form:
/// `{"artifactHash": b64, "hashAlgorithm": "sha256", "nonce": int, "certificates": bool}`.
pub fn parse_json_request(bytes: &[u8]) -> Result<TimestampRequest, TsaError> {
    if bytes.len() > MAX_QUERY_BYTES {
        return Err(TsaError::TooLarge);
    }
    let req: JsonRequest =
        serde_json::from_slice(bytes).map_err(|e| TsaError::MalformedJson(e.to_string()))?;
    let hash = ImprintHash::from_name(req.hash_algorithm.as_deref().unwrap_or("sha256"))?;
    let digest = STANDARD
        .decode(req.artifact_hash.trim())
        .map_err(|e| TsaError::MalformedJson(format!("artifactHash is not base64: {e}")))?;
    if digest.len() != hash.digest_len() {
        return Err(TsaError::BadImprintLength {
            alg: hash.name(),
            expected: hash.digest_len(),
            got: digest.len(),
        });
    }
    if let Some(p) = req.tsa_policy_oid {
        let p: ObjectIdentifier = p
            .parse()
            .map_err(|_| TsaError::MalformedJson(format!("tsaPolicyOID {p:?} is not an OID")))?;
        if p != oid::TSA_POLICY {
            return Err(TsaError::UnacceptedPolicy(p));
        }
    }
    let nonce = req.nonce.map(nonce_from_u64).transpose()?;
    Ok(TimestampRequest {
        imprint: MessageImprint {
            hash_algorithm: AlgorithmIdentifierOwned {
                oid: hash.oid(),
                parameters: None,
            },
            hashed_message: OctetString::new(digest).map_err(internal)?,
        },
        hash,
        nonce,
        cert_req: req.certificates.unwrap_or(false),
    })
}

/// A non-negative INTEGER: minimal big-endian bytes, with a 0x00 lead if the top bit is set.
fn nonce_from_u64(n: u64) -> Result<Int, TsaError> {
    let raw = n.to_be_bytes();
    let start = raw.iter().position(|b| *b != 0).unwrap_or(raw.len() - 1);
    let mut bytes = raw.get(start..).unwrap_or(&[0]).to_vec();
    if bytes.first().is_some_and(|b| b & 0x80 != 0) {
        bytes.insert(0, 0);
    }
    Int::new(&bytes).map_err(|_| TsaError::BadNonce)
}

/// The signing side: key, certificate chain and what is derived from them once.
pub struct TimestampAuthority {
    key: SigningKey,
    /// DER, leaf first.
    chain: Vec<Vec<u8>>,
    leaf: Certificate,
    /// The encoded SigningCertificateV2 attribute value.
    signing_certificate: Any,
    digest_alg: AlgorithmIdentifierOwned,
    signature_alg: AlgorithmIdentifierOwned,
}

impl std::fmt::Debug for TimestampAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimestampAuthority")
            .field("subject", &self.leaf.tbs_certificate.subject.to_string())
            .finish_non_exhaustive()
    }
}

impl TimestampAuthority {
    /// `chain` is DER, leaf first; the leaf must certify `key` and carry the critical
    /// timeStamping extended key usage that RFC 3161 §2.3 requires.
    pub fn new(key: SigningKey, chain: Vec<Vec<u8>>) -> Result<Self, TsaError> {
        let leaf_der = chain
            .first()
            .ok_or_else(|| TsaError::Config("the certificate chain is empty".into()))?;
        let leaf = Certificate::from_der(leaf_der)
            .map_err(|e| TsaError::Config(format!("the leaf certificate does not parse: {e}")))?;
        let leaf_spki = leaf
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(internal)?;
        if leaf_spki != key.public_key().spki_der() {
            return Err(TsaError::Config(
                "the leaf certificate is not for the TSA signing key".into(),
            ));
        }
        let eku_ok = leaf.tbs_certificate.extensions.iter().flatten().any(|e| {
            e.extn_id == oid::EXTENDED_KEY_USAGE
                && e.critical
                && x509_cert::ext::pkix::ExtendedKeyUsage::from_der(e.extn_value.as_bytes())
                    .map(|eku| eku.0 == vec![oid::KP_TIME_STAMPING])
                    .unwrap_or(false)
        });
        if !eku_ok {
            return Err(TsaError::Config(
                "the leaf certificate needs a critical extended key usage of exactly timeStamping"
                    .into(),
            ));
        }
        let (digest, sig) = match key.algorithm() {
            KeyAlgorithm::EcdsaP256 => (asn1::SHA256, oid::ECDSA_WITH_SHA256),
            KeyAlgorithm::EcdsaP384 => (asn1::SHA384, oid::ECDSA_WITH_SHA384),
            other => {
                return Err(TsaError::Config(format!(
                    "TSA keys must be ECDSA P-256 or P-384, not {other:?}"
                )));
            }
        };
        let ess = SigningCertificateV2 {
            certs: vec![EssCertIdV2 {
                cert_hash: OctetString::new(sha256(leaf_der).to_vec()).map_err(internal)?,
                issuer_serial: Some(IssuerSerial {
                    issuer: vec![GeneralName::DirectoryName(
                        leaf.tbs_certificate.issuer.clone(),
                    )],
                    serial_number: leaf.tbs_certificate.serial_number.clone(),
                }),
            }],
        };
        Ok(Self {
            key,
            chain,
            signing_certificate: Any::encode_from(&ess).map_err(internal)?,
            leaf,
            digest_alg: AlgorithmIdentifierOwned {
                oid: digest,
                parameters: None,
            },
            signature_alg: AlgorithmIdentifierOwned {
                oid: sig,
                parameters: None,
            },
        })
    }

    /// The chain as DER, leaf first.
    pub fn chain(&self) -> &[Vec<u8>] {
        &self.chain
    }

    /// The chain as PEM, leaf first (what `/api/v1/timestamp/certchain` serves).
    pub fn chain_pem(&self) -> String {
        self.chain
            .iter()
            .map(|c| sigil_core::certs::pem_encode("CERTIFICATE", c))
            .collect()
    }

    fn signed_digest(&self, data: &[u8]) -> Vec<u8> {
        match self.digest_alg.oid {
            asn1::SHA384 => sigil_core::crypto::DigestAlgorithm::Sha384.digest(data),
            _ => sha256(data).to_vec(),
        }
    }

    /// A DER `TimeStampResp` granting a token for `req` at `now` (truncated to whole seconds,
    /// accuracy ±1 s). `serial` must be unique per token (random 16+ bytes serve).
    pub fn issue(
        &self,
        req: &TimestampRequest,
        now: SystemTime,
        serial: &[u8],
    ) -> Result<Vec<u8>, TsaError> {
        let secs = now.duration_since(UNIX_EPOCH).map_err(internal)?.as_secs();
        let whole = UNIX_EPOCH + Duration::from_secs(secs);
        let tst = TstInfo {
            version: 1,
            policy: oid::TSA_POLICY,
            message_imprint: req.imprint.clone(),
            serial_number: Uint::new(serial).map_err(internal)?,
            gen_time: GeneralizedTime::from_system_time(whole).map_err(internal)?,
            accuracy: Some(Accuracy {
                seconds: Some(1),
                millis: None,
                micros: None,
            }),
            ordering: false,
            nonce: req.nonce.clone(),
            tsa: Some(GeneralName::DirectoryName(
                self.leaf.tbs_certificate.subject.clone(),
            )),
            extensions: None,
        };
        let tst_der = tst.to_der().map_err(internal)?;
        let attrs = vec![
            attribute(asn1::ATTR_CONTENT_TYPE, &asn1::ID_CT_TST_INFO)?,
            attribute(
                asn1::ATTR_SIGNING_TIME,
                &UtcTime::from_system_time(whole).map_err(internal)?,
            )?,
            attribute(
                asn1::ATTR_MESSAGE_DIGEST,
                &OctetString::new(self.signed_digest(&tst_der)).map_err(internal)?,
            )?,
            Attribute {
                oid: asn1::ATTR_SIGNING_CERTIFICATE_V2,
                values: SetOfVec::try_from(vec![self.signing_certificate.clone()])
                    .map_err(internal)?,
            },
        ];
        // DER sorts the SET OF; the signature covers that sorted SET (tag 0x31), while the
        // SignerInfo carries it re-tagged [0] IMPLICIT (RFC 5652 §5.4).
        let signed_attrs = SetOfVec::try_from(attrs).map_err(internal)?;
        let signature = self
            .key
            .sign(&signed_attrs.to_der().map_err(internal)?)
            .map_err(internal)?;
        let signer = SignerInfo {
            version: 1,
            sid: IssuerAndSerialNumber {
                issuer: self.leaf.tbs_certificate.issuer.clone(),
                serial_number: self.leaf.tbs_certificate.serial_number.clone(),
            },
            digest_algorithm: self.digest_alg.clone(),
            signed_attrs: Some(signed_attrs),
            signature_algorithm: self.signature_alg.clone(),
            signature: OctetString::new(signature).map_err(internal)?,
        };
        let certificates = if req.cert_req {
            let leaf = self
                .chain
                .first()
                .ok_or_else(|| TsaError::Config("empty chain".into()))?;
            Some(
                SetOfVec::try_from(vec![Any::from_der(leaf).map_err(internal)?])
                    .map_err(internal)?,
            )
        } else {
            None
        };
        let signed_data = SignedData {
            version: 3,
            digest_algorithms: SetOfVec::try_from(vec![self.digest_alg.clone()])
                .map_err(internal)?,
            encap_content_info: EncapsulatedContentInfo {
                e_content_type: asn1::ID_CT_TST_INFO,
                e_content: Some(OctetString::new(tst_der).map_err(internal)?),
            },
            certificates,
            signer_infos: SetOfVec::try_from(vec![signer]).map_err(internal)?,
        };
        let resp = TimeStampResp {
            status: PkiStatusInfo {
                status: 0, // granted
                status_string: None,
                fail_info: None,
            },
            time_stamp_token: Some(
                Any::encode_from(&ContentInfo {
                    content_type: asn1::ID_SIGNED_DATA,
                    content: signed_data,
                })
                .map_err(internal)?,
            ),
        };
        resp.to_der().map_err(internal)
    }
}

fn attribute<T: Encode>(oid: ObjectIdentifier, value: &T) -> Result<Attribute, TsaError> {
    Ok(Attribute {
        oid,
        values: SetOfVec::try_from(vec![
            Any::from_der(&value.to_der().map_err(internal)?).map_err(internal)?,
        ])
        .map_err(internal)?,
    })
}

/// A DER `TimeStampResp` with status rejection (2), the failure bit and a readable reason.
pub fn rejection(err: &TsaError) -> Vec<u8> {
    let bit = err.fail_bit();
    // PKIFailureInfo is a named BIT STRING: DER drops trailing zero bits.
    let mut bytes = vec![0u8; bit / 8 + 1];
    if let Some(b) = bytes.get_mut(bit / 8) {
        *b = 0x80 >> (bit % 8);
    }
    let unused = u8::try_from(7 - bit % 8).unwrap_or(0);
    let resp = TimeStampResp {
        status: PkiStatusInfo {
            status: 2,
            status_string: Some(vec![err.to_string()]),
            fail_info: BitString::new(unused, bytes).ok(),
        },
        time_stamp_token: None,
    };
    // Every part above is well-formed; an empty body would still be a 4xx the client sees.
    resp.to_der().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_encoding_is_minimal_and_positive() {
        assert_eq!(nonce_from_u64(0).unwrap().to_der().unwrap(), vec![2, 1, 0]);
        assert_eq!(
            nonce_from_u64(0x80).unwrap().to_der().unwrap(),
            vec![2, 2, 0, 0x80]
        );
        assert_eq!(
            nonce_from_u64(0x0102).unwrap().to_der().unwrap(),
            vec![2, 2, 1, 2]
        );
        assert_eq!(
            nonce_from_u64(u64::MAX).unwrap().to_der().unwrap(),
            [vec![2, 9, 0], vec![0xff; 8]].concat()
        );
    }

    #[test]
    fn rejection_carries_the_failure_bit() {
        let der = rejection(&TsaError::UnsupportedHash("x".into()));
        let resp = TimeStampResp::from_der(&der).unwrap();
        assert_eq!(resp.status.status, 2);
        let fi = resp.status.fail_info.unwrap();
        assert_eq!(fi.raw_bytes(), &[0x80]);
        let der = rejection(&TsaError::UnacceptedPolicy(asn1::SHA1));
        let fi = TimeStampResp::from_der(&der)
            .unwrap()
            .status
            .fail_info
            .unwrap();
        assert_eq!(fi.raw_bytes(), &[0, 0x01]);
        assert_eq!(fi.unused_bits(), 0);
    }

    #[test]
    fn hash_names() {
        assert_eq!(
            ImprintHash::from_name("SHA2_384").unwrap(),
            ImprintHash::Sha384
        );
        assert_eq!(
            ImprintHash::from_name("sha-512").unwrap(),
            ImprintHash::Sha512
        );
        assert!(ImprintHash::from_name("md5").is_err());
    }
}
