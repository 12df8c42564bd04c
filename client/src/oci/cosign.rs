//! cosign's container-image signature format: the simple-signing payload, the signature image
//! at tag `sha256-<hex>.sig` (one layer per signature) and its layer annotations.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sigil_core::bundle::TransparencyLogEntry;

use super::error::OciError;
use super::registry::{Descriptor, Manifest, OCI_CONFIG, OCI_MANIFEST};

pub const SIMPLESIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
pub const SIGNATURE_TYPE: &str = "cosign container image signature";
pub const ANN_SIGNATURE: &str = "dev.cosignproject.cosign/signature";
pub const ANN_CERTIFICATE: &str = "dev.sigstore.cosign/certificate";
pub const ANN_CHAIN: &str = "dev.sigstore.cosign/chain";
pub const ANN_BUNDLE: &str = "dev.sigstore.cosign/bundle";
pub const ANN_PREDICATE_TYPE: &str = "predicateType";

/// cosign's simple-signing payload for an image digest. `optional` holds `-a key=value`
/// annotations (`null` when there are none, as cosign writes it).
pub fn simple_signing_payload(
    docker_reference: &str,
    digest: &str,
    optional: &BTreeMap<String, String>,
) -> Vec<u8> {
    let optional = if optional.is_empty() {
        Value::Null
    } else {
        json!(optional)
    };
    let v = json!({
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": digest},
            "type": SIGNATURE_TYPE,
        },
        "optional": optional,
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

/// The claims a simple-signing payload makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayloadClaims {
    pub docker_reference: String,
    pub digest: String,
    pub optional: Value,
}

/// Reads the claims of a simple-signing payload.
pub fn parse_payload(payload: &[u8]) -> Result<PayloadClaims, OciError> {
    let v: Value = serde_json::from_slice(payload)
        .map_err(|e| OciError::Format(format!("signature payload is not JSON: {e}")))?;
    let s = |p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_owned);
    let ty = s("/critical/type").unwrap_or_default();
    if !ty.eq_ignore_ascii_case(SIGNATURE_TYPE) {
        return Err(OciError::Format(format!(
            "signature payload type is {ty:?}, not {SIGNATURE_TYPE:?}"
        )));
    }
    let digest = s("/critical/image/docker-manifest-digest").ok_or_else(|| {
        OciError::Format("signature payload has no critical.image.docker-manifest-digest".into())
    })?;
    let docker_reference = s("/critical/identity/docker-reference").unwrap_or_default();
    Ok(PayloadClaims {
        docker_reference,
        digest,
        optional: v.get("optional").cloned().unwrap_or(Value::Null),
    })
}

/// The `dev.sigstore.cosign/bundle` annotation: a Rekor v1 entry's SET and what it signs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RekorBundle {
    #[serde(rename = "SignedEntryTimestamp")]
    pub signed_entry_timestamp: String,
    #[serde(rename = "Payload")]
    pub payload: RekorPayload,
}

/// What a SET signs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RekorPayload {
    /// base64 of the canonicalized entry body.
    pub body: String,
    #[serde(rename = "integratedTime")]
    pub integrated_time: i64,
    #[serde(rename = "logIndex")]
    pub log_index: i64,
    /// hex log ID.
    #[serde(rename = "logID")]
    pub log_id: String,
}

impl RekorBundle {
    /// From a bundle's tlog entry (which must carry a SET).
    pub fn from_entry(e: &TransparencyLogEntry) -> Result<Self, OciError> {
        let set = e.inclusion_promise.as_ref().ok_or_else(|| {
            OciError::Format("the log entry has no signed entry timestamp".into())
        })?;
        Ok(Self {
            signed_entry_timestamp: STANDARD.encode(&set.signed_entry_timestamp),
            payload: RekorPayload {
                body: STANDARD.encode(&e.canonicalized_body),
                integrated_time: e.integrated_time,
                log_index: e.log_index,
                log_id: hex::encode(&e.log_id.key_id),
            },
        })
    }

    /// Back to a bundle tlog entry (SET only: the annotation has no inclusion proof).
    pub fn to_entry(&self) -> Result<TransparencyLogEntry, OciError> {
        let bad = |what: &str, e: String| OciError::Format(format!("{ANN_BUNDLE}: {what}: {e}"));
        let body = STANDARD
            .decode(&self.payload.body)
            .map_err(|e| bad("Payload.body is not base64", e.to_string()))?;
        let parsed: Value = serde_json::from_slice(&body)
            .map_err(|e| bad("Payload.body is not JSON", e.to_string()))?;
        let field = |k: &str| {
            parsed
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        Ok(TransparencyLogEntry {
            log_index: self.payload.log_index,
            log_id: sigil_core::bundle::LogId {
                key_id: hex::decode(&self.payload.log_id)
                    .map_err(|e| bad("Payload.logID is not hex", e.to_string()))?,
            },
            kind_version: sigil_core::bundle::KindVersion {
                kind: field("kind"),
                version: field("apiVersion"),
            },
            integrated_time: self.payload.integrated_time,
            inclusion_promise: Some(sigil_core::bundle::InclusionPromise {
                signed_entry_timestamp: STANDARD
                    .decode(&self.signed_entry_timestamp)
                    .map_err(|e| bad("SignedEntryTimestamp is not base64", e.to_string()))?,
            }),
            inclusion_proof: None,
            canonicalized_body: body,
        })
    }
}

/// The config blob of a signature image, as cosign writes it (its layers' digests as diff IDs).
pub fn signature_config(layers: &[Descriptor]) -> Vec<u8> {
    let diff_ids: Vec<&str> = layers.iter().map(|l| l.digest.as_str()).collect();
    let v = json!({
        "architecture": "",
        "config": {},
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

/// A signature-image manifest over `layers` with the given config blob.
pub fn signature_manifest(config: &[u8], layers: Vec<Descriptor>) -> Manifest {
    Manifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.to_owned()),
        artifact_type: None,
        config: Descriptor::of(OCI_CONFIG, config),
        layers,
        subject: None,
        annotations: None,
    }
}

/// The annotations of a signature layer.
pub fn layer_annotations(
    signature_b64: &str,
    chain_der: &[Vec<u8>],
    rekor: &RekorBundle,
) -> Result<BTreeMap<String, String>, OciError> {
    let mut a = BTreeMap::new();
    a.insert(ANN_SIGNATURE.to_owned(), signature_b64.to_owned());
    if let Some((leaf, rest)) = chain_der.split_first() {
        a.insert(
            ANN_CERTIFICATE.to_owned(),
            sigil_core::certs::pem_encode("CERTIFICATE", leaf),
        );
        let chain: String = rest
            .iter()
            .map(|c| sigil_core::certs::pem_encode("CERTIFICATE", c))
            .collect();
        a.insert(ANN_CHAIN.to_owned(), chain);
    }
    a.insert(
        ANN_BUNDLE.to_owned(),
        serde_json::to_string(rekor).map_err(|e| OciError::Format(e.to_string()))?,
    );
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_cosigns_shape_and_parses_back() {
        let d = format!("sha256:{}", "ab".repeat(32));
        let p = simple_signing_payload("127.0.0.1:5000/app", &d, &BTreeMap::new());
        assert_eq!(
            String::from_utf8(p.clone()).unwrap(),
            format!(
                r#"{{"critical":{{"identity":{{"docker-reference":"127.0.0.1:5000/app"}},"image":{{"docker-manifest-digest":"{d}"}},"type":"cosign container image signature"}},"optional":null}}"#
            )
        );
        let c = parse_payload(&p).unwrap();
        assert_eq!(
            (c.docker_reference.as_str(), c.digest.as_str()),
            ("127.0.0.1:5000/app", d.as_str())
        );
        assert!(parse_payload(br#"{"critical":{"type":"other"}}"#).is_err());
        assert!(parse_payload(b"not json").is_err());
    }
}
