//! Sigstore bundles (v0.1, v0.2, v0.3) in their protobuf-JSON form, and DSSE envelopes.
//!
//! Protobuf-JSON rules: camelCase field names, int64 as decimal strings (numbers are accepted too),
//! bytes as standard base64 (URL-safe and unpadded are accepted), enums by name. A few fields are
//! always emitted even at their default value (`logIndex`, `inclusionProof.hashes`) because real
//! clients reject bundles without them. A field the schema does not know is refused rather than
//! ignored: a verifier must check everything a bundle carries.

use serde::{Deserialize, Serialize};

/// Media type of a v0.1 bundle.
pub const MEDIA_TYPE_V01: &str = "application/vnd.dev.sigstore.bundle+json;version=0.1";
/// Media type of a v0.2 bundle.
pub const MEDIA_TYPE_V02: &str = "application/vnd.dev.sigstore.bundle+json;version=0.2";
/// Media type of a v0.3 bundle (the form every current client writes).
pub const MEDIA_TYPE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The older spelling of the v0.3 media type, still accepted by readers.
pub const MEDIA_TYPE_V03_LEGACY: &str = "application/vnd.dev.sigstore.bundle+json;version=0.3";
/// DSSE payload type of in-toto statements.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// Errors from reading or checking a bundle's structure.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("bundle is not valid JSON for its schema: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unsupported bundle mediaType {0:?}")]
    UnsupportedMediaType(String),
    #[error("bundle has neither messageSignature nor dsseEnvelope")]
    MissingContent,
    #[error("bundle has both messageSignature and dsseEnvelope")]
    BothContents,
    #[error("bundle verificationMaterial has no certificate, certificate chain or public key")]
    MissingVerificationMaterial,
    #[error("bundle verificationMaterial has more than one of certificate, chain, public key")]
    AmbiguousVerificationMaterial,
    #[error("bundle {version} requires {what}")]
    VersionRequirement {
        version: &'static str,
        what: &'static str,
    },
    #[error("DSSE envelope has {0} signatures; exactly one is supported")]
    DsseSignatureCount(usize),
}

/// Protobuf-JSON codecs shared by the bundle and trust types.
pub mod protojson {
    /// `bytes` fields: standard base64 on output; standard or URL-safe, padded or not, on input.
    pub mod bytes {
        use base64::Engine;
        use base64::engine::general_purpose::{
            STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
        };
        use serde::{Deserialize, Deserializer, Serializer};

        /// Decodes protobuf-JSON base64 in any of the spellings parsers accept.
        pub fn decode(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
            let s = s.trim();
            STANDARD
                .decode(s)
                .or_else(|_| STANDARD_NO_PAD.decode(s))
                .or_else(|_| URL_SAFE.decode(s))
                .or_else(|_| URL_SAFE_NO_PAD.decode(s))
        }

        /// Encodes as standard padded base64.
        pub fn encode(b: &[u8]) -> String {
            STANDARD.encode(b)
        }

        pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(&encode(v))
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
            let s = String::deserialize(d)?;
            decode(&s).map_err(serde::de::Error::custom)
        }

        /// `repeated bytes`.
        pub mod vec {
            use serde::ser::SerializeSeq;
            use serde::{Deserialize, Deserializer, Serializer};

            pub fn serialize<S: Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
                let mut seq = s.serialize_seq(Some(v.len()))?;
                for b in v {
                    seq.serialize_element(&super::encode(b))?;
                }
                seq.end()
            }

            pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
                let v = Option::<Vec<String>>::deserialize(d)?.unwrap_or_default();
                v.iter()
                    .map(|s| super::decode(s).map_err(serde::de::Error::custom))
                    .collect()
            }
        }
    }

    /// `int64` fields: decimal strings on output; strings or numbers on input.
    pub mod int64 {
        use serde::{Deserialize, Deserializer, Serializer};

        #[derive(Deserialize)]
        #[serde(untagged)]
        enum StrOrNum {
            Str(String),
            Num(i64),
        }

        pub fn serialize<S: Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(&v.to_string())
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
            match Option::<StrOrNum>::deserialize(d)? {
                None => Ok(0),
                Some(StrOrNum::Num(n)) => Ok(n),
                Some(StrOrNum::Str(s)) => s.trim().parse().map_err(serde::de::Error::custom),
            }
        }
    }
}

use protojson::{bytes as b64, int64};

/// A Sigstore bundle: the verification material plus exactly one of a message signature or a
/// DSSE envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Bundle {
    pub media_type: String,
    pub verification_material: VerificationMaterial,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_signature: Option<MessageSignature>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dsse_envelope: Option<Envelope>,
}

/// The bundle format versions a reader must handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum BundleVersion {
    V01,
    V02,
    V03,
}

impl BundleVersion {
    /// Parses a bundle media type.
    pub fn from_media_type(m: &str) -> Result<Self, BundleError> {
        match m {
            MEDIA_TYPE_V01 => Ok(Self::V01),
            MEDIA_TYPE_V02 => Ok(Self::V02),
            MEDIA_TYPE_V03 | MEDIA_TYPE_V03_LEGACY => Ok(Self::V03),
            other => Err(BundleError::UnsupportedMediaType(other.to_owned())),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::V01 => "v0.1",
            Self::V02 => "v0.2",
            Self::V03 => "v0.3",
        }
    }
}

/// The signed content of a bundle, borrowed.
#[derive(Debug, Clone, Copy)]
pub enum Content<'a> {
    MessageSignature(&'a MessageSignature),
    Dsse(&'a Envelope),
}

/// The key material that verifies a bundle's signature, borrowed.
#[derive(Debug, Clone, Copy)]
pub enum SigningMaterial<'a> {
    /// DER of the signing (leaf) certificate, plus any further chain certificates the bundle carries.
    Certificate {
        leaf: &'a [u8],
        chain: &'a [X509Certificate],
    },
    /// A key named out of band; the hint may be empty.
    PublicKey { hint: &'a str },
}

impl Bundle {
    /// Parses and structurally validates a bundle of any supported version.
    pub fn from_json(json: &[u8]) -> Result<Self, BundleError> {
        let b: Bundle = serde_json::from_slice(json)?;
        b.validate()?;
        Ok(b)
    }

    /// Serialises as pretty protobuf-JSON.
    pub fn to_json(&self) -> Result<String, BundleError> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// The bundle's format version.
    pub fn version(&self) -> Result<BundleVersion, BundleError> {
        BundleVersion::from_media_type(&self.media_type)
    }

    /// Checks the structural rules of the bundle's version (not any signature).
    pub fn validate(&self) -> Result<(), BundleError> {
        let v = self.version()?;
        self.content()?;
        self.signing_material()?;
        if let Some(env) = &self.dsse_envelope
            && env.signatures.len() != 1
        {
            return Err(BundleError::DsseSignatureCount(env.signatures.len()));
        }
        let vm = &self.verification_material;
        // v0.1 relies on the SET; later versions carry an inclusion proof for every entry.
        if v >= BundleVersion::V02 && vm.tlog_entries.iter().any(|e| e.inclusion_proof.is_none()) {
            return Err(BundleError::VersionRequirement {
                version: v.name(),
                what: "an inclusion proof in every tlog entry",
            });
        }
        if v == BundleVersion::V01
            && vm
                .tlog_entries
                .iter()
                .any(|e| e.inclusion_promise.is_none())
        {
            return Err(BundleError::VersionRequirement {
                version: v.name(),
                what: "an inclusion promise (SET) in every tlog entry",
            });
        }
        if v < BundleVersion::V03 && vm.certificate.is_some() {
            return Err(BundleError::VersionRequirement {
                version: v.name(),
                what: "x509CertificateChain (a single certificate field is v0.3)",
            });
        }
        if v >= BundleVersion::V03 && vm.x509_certificate_chain.is_some() {
            return Err(BundleError::VersionRequirement {
                version: v.name(),
                what: "a single certificate instead of x509CertificateChain",
            });
        }
        Ok(())
    }

    /// The signed content.
    pub fn content(&self) -> Result<Content<'_>, BundleError> {
        match (&self.message_signature, &self.dsse_envelope) {
            (Some(m), None) => Ok(Content::MessageSignature(m)),
            (None, Some(e)) => Ok(Content::Dsse(e)),
            (None, None) => Err(BundleError::MissingContent),
            (Some(_), Some(_)) => Err(BundleError::BothContents),
        }
    }

    /// The certificate or key reference that verifies the signature.
    pub fn signing_material(&self) -> Result<SigningMaterial<'_>, BundleError> {
        let vm = &self.verification_material;
        let count = usize::from(vm.certificate.is_some())
            + usize::from(vm.x509_certificate_chain.is_some())
            + usize::from(vm.public_key.is_some());
        if count > 1 {
            return Err(BundleError::AmbiguousVerificationMaterial);
        }
        if let Some(c) = &vm.certificate {
            return Ok(SigningMaterial::Certificate {
                leaf: &c.raw_bytes,
                chain: &[],
            });
        }
        if let Some(chain) = &vm.x509_certificate_chain {
            let (leaf, rest) = chain
                .certificates
                .split_first()
                .ok_or(BundleError::MissingVerificationMaterial)?;
            return Ok(SigningMaterial::Certificate {
                leaf: &leaf.raw_bytes,
                chain: rest,
            });
        }
        if let Some(pk) = &vm.public_key {
            return Ok(SigningMaterial::PublicKey {
                hint: pk.hint.as_deref().unwrap_or(""),
            });
        }
        Err(BundleError::MissingVerificationMaterial)
    }
}

/// Everything needed to verify the signature besides the artifact and the trust root.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerificationMaterial {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<X509Certificate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x509_certificate_chain: Option<X509CertificateChain>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<PublicKeyIdentifier>,
    #[serde(default)]
    pub tlog_entries: Vec<TransparencyLogEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_verification_data: Option<TimestampVerificationData>,
}

/// A DER certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct X509Certificate {
    #[serde(with = "b64")]
    pub raw_bytes: Vec<u8>,
}

/// A certificate chain, leaf first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct X509CertificateChain {
    #[serde(default)]
    pub certificates: Vec<X509Certificate>,
}

/// A reference to a public key known to the verifier out of band.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublicKeyIdentifier {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// RFC 3161 timestamps over the signature.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TimestampVerificationData {
    #[serde(default)]
    pub rfc3161_timestamps: Vec<Rfc3161SignedTimestamp>,
}

/// One DER `TimeStampResp`/`TimeStampToken`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rfc3161SignedTimestamp {
    #[serde(with = "b64")]
    pub signed_timestamp: Vec<u8>,
}

/// Digest algorithms named in bundles and trust roots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HashAlgorithm {
    #[serde(rename = "HASH_ALGORITHM_UNSPECIFIED")]
    Unspecified,
    #[serde(rename = "SHA2_256")]
    Sha2_256,
    #[serde(rename = "SHA2_384")]
    Sha2_384,
    #[serde(rename = "SHA2_512")]
    Sha2_512,
    #[serde(rename = "SHA3_256")]
    Sha3_256,
    #[serde(rename = "SHA3_384")]
    Sha3_384,
}

impl HashAlgorithm {
    /// The lowercase name Rekor uses (`sha256`, …), where it has one.
    pub fn rekor_name(self) -> Option<&'static str> {
        match self {
            Self::Sha2_256 => Some("sha256"),
            Self::Sha2_384 => Some("sha384"),
            Self::Sha2_512 => Some("sha512"),
            _ => None,
        }
    }
}

/// A digest and its algorithm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HashOutput {
    pub algorithm: HashAlgorithm,
    #[serde(with = "b64")]
    pub digest: Vec<u8>,
}

/// A signature over an artifact's digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MessageSignature {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_digest: Option<HashOutput>,
    #[serde(with = "b64")]
    pub signature: Vec<u8>,
}

/// A DSSE envelope (JSON field names per the DSSE spec: `payloadType`, `keyid`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Envelope {
    #[serde(with = "b64")]
    pub payload: Vec<u8>,
    pub payload_type: String,
    #[serde(default)]
    pub signatures: Vec<DsseSignature>,
}

/// One DSSE signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DsseSignature {
    #[serde(with = "b64")]
    pub sig: Vec<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyid: Option<String>,
}

impl Envelope {
    /// The bytes the DSSE signature covers.
    pub fn pae(&self) -> Vec<u8> {
        pae(&self.payload_type, &self.payload)
    }
}

/// DSSE v1 pre-authentication encoding:
/// `"DSSEv1" SP len(type) SP type SP len(body) SP body`, lengths as ASCII decimal.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// A log's identity: SHA-256 of its public key's SPKI DER.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogId {
    #[serde(with = "b64")]
    pub key_id: Vec<u8>,
}

/// Rekor entry kind and version, e.g. `hashedrekord` / `0.0.1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KindVersion {
    pub kind: String,
    pub version: String,
}

/// The log's signed promise to include the entry (Rekor v1 SET).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InclusionPromise {
    #[serde(with = "b64")]
    pub signed_entry_timestamp: Vec<u8>,
}

/// A signed checkpoint (C2SP signed note text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Checkpoint {
    pub envelope: String,
}

/// An RFC 6962 inclusion proof of the entry in a tree, with the checkpoint that signs the root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InclusionProof {
    #[serde(with = "int64", default)]
    pub log_index: i64,
    #[serde(with = "b64")]
    pub root_hash: Vec<u8>,
    #[serde(with = "int64", default)]
    pub tree_size: i64,
    #[serde(with = "b64::vec", default)]
    pub hashes: Vec<Vec<u8>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Checkpoint>,
}

/// One transparency-log entry as carried in a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransparencyLogEntry {
    #[serde(with = "int64", default)]
    pub log_index: i64,
    pub log_id: LogId,
    pub kind_version: KindVersion,
    #[serde(with = "int64", default)]
    pub integrated_time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inclusion_promise: Option<InclusionPromise>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inclusion_proof: Option<InclusionProof>,
    #[serde(with = "b64", default)]
    pub canonicalized_body: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_dsse_spec_example() {
        // Example from the DSSE protocol description.
        let got = pae("http://example.com/HelloWorld", b"hello world");
        assert_eq!(
            got,
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn int64_accepts_numbers_and_strings_and_emits_strings() {
        let j = r#"{"logIndex": 5, "rootHash": "AAE=", "treeSize": "6"}"#;
        let p: InclusionProof = serde_json::from_str(j).unwrap();
        assert_eq!(
            (p.log_index, p.tree_size, p.root_hash.clone()),
            (5, 6, vec![0, 1])
        );
        let out = serde_json::to_value(&p).unwrap();
        assert_eq!(out["logIndex"], "5");
        assert_eq!(out["hashes"], serde_json::json!([]));
    }

    #[test]
    fn bytes_accept_url_safe_and_unpadded() {
        let c: X509Certificate = serde_json::from_str(r#"{"rawBytes": "-_8"}"#).unwrap();
        assert_eq!(c.raw_bytes, vec![0xfb, 0xff]);
        assert_eq!(serde_json::to_value(&c).unwrap()["rawBytes"], "+/8=");
    }

    #[test]
    fn rejects_unknown_media_type_and_missing_content() {
        let j = r#"{"mediaType": "application/x", "verificationMaterial": {"publicKey": {}},
                    "messageSignature": {"signature": ""}}"#;
        assert!(matches!(
            Bundle::from_json(j.as_bytes()),
            Err(BundleError::UnsupportedMediaType(_))
        ));
        let j = format!(
            r#"{{"mediaType": "{MEDIA_TYPE_V03}", "verificationMaterial": {{"publicKey": {{}}}}}}"#
        );
        assert!(matches!(
            Bundle::from_json(j.as_bytes()),
            Err(BundleError::MissingContent)
        ));
    }

    #[test]
    fn garbage_never_panics() {
        for s in [
            "",
            "{}",
            "[]",
            "null",
            r#"{"mediaType": 1}"#,
            "{\"verificationMaterial\":{}}",
        ] {
            assert!(Bundle::from_json(s.as_bytes()).is_err());
        }
    }
}
