//! Entries of every kind, signed by test keys, and the bodies the log must store for them.

#[allow(unused_imports)]
use super::*;

// ---------------------------------------------------------------------------------------------
// Entries of every kind
// ---------------------------------------------------------------------------------------------

/// A PEM with `width`-column lines, optional CRLF and optional final newline.
pub fn pem_formatted(label: &str, der: &[u8], width: usize, crlf: bool, final_nl: bool) -> String {
    let nl = if crlf { "\r\n" } else { "\n" };
    let b64 = B64.encode(der);
    let mut s = format!("-----BEGIN {label}-----{nl}");
    for chunk in b64.as_bytes().chunks(width) {
        s.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        s.push_str(nl);
    }
    s.push_str(&format!("-----END {label}-----"));
    if final_nl {
        s.push_str(nl);
    }
    s
}

pub fn digest(alg: DigestAlgorithm, data: &[u8]) -> Vec<u8> {
    alg.digest(data)
}

fn alg_name(alg: DigestAlgorithm) -> &'static str {
    match alg {
        DigestAlgorithm::Sha256 => "sha256",
        DigestAlgorithm::Sha384 => "sha384",
        DigestAlgorithm::Sha512 => "sha512",
    }
}

/// A proposed hashedrekord 0.0.1 entry.
pub fn hashedrekord(alg: DigestAlgorithm, digest: &[u8], sig: &[u8], verifier_pem: &str) -> Value {
    json!({
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": alg_name(alg), "value": hex::encode(digest)}},
            "signature": {
                "content": B64.encode(sig),
                "publicKey": {"content": B64.encode(verifier_pem.as_bytes())}
            }
        }
    })
}

/// The canonical body Rekor stores for a hashedrekord, built independently: sorted keys,
/// compact JSON, the verifier re-encoded as 64-column PEM.
pub fn expected_hashedrekord_body(
    alg: DigestAlgorithm,
    digest: &[u8],
    sig: &[u8],
    canonical_pem: &str,
) -> Vec<u8> {
    let v = json!({
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": alg_name(alg), "value": hex::encode(digest)}},
            "signature": {
                "content": B64.encode(sig),
                "publicKey": {"content": B64.encode(canonical_pem.as_bytes())}
            }
        }
    });
    sorted_json(&v)
}

/// Compact JSON with object keys sorted at every level (RFC 8785 for strings and integers).
pub fn sorted_json(v: &Value) -> Vec<u8> {
    fn sort(v: &Value) -> Value {
        match v {
            Value::Object(o) => {
                let m: BTreeMap<String, Value> =
                    o.iter().map(|(k, v)| (k.clone(), sort(v))).collect();
                serde_json::to_value(m).unwrap_or(Value::Null)
            }
            Value::Array(a) => Value::Array(a.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    // A BTreeMap serialises in key order whatever serde_json's map type is.
    fn write(v: &Value, out: &mut Vec<u8>) {
        match v {
            Value::Object(o) => {
                let m: BTreeMap<&String, &Value> = o.iter().collect();
                out.push(b'{');
                for (i, (k, v)) in m.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend(serde_json::to_vec(k).unwrap_or_default());
                    out.push(b':');
                    write(v, out);
                }
                out.push(b'}');
            }
            Value::Array(a) => {
                out.push(b'[');
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write(v, out);
                }
                out.push(b']');
            }
            other => out.extend(serde_json::to_vec(other).unwrap_or_default()),
        }
    }
    let mut out = Vec::new();
    write(&sort(v), &mut out);
    out
}

/// A signer of hashedrekord entries and its public key PEM.
pub struct Signer {
    pub key: SigningKey,
    pub pem: String,
}

impl Signer {
    pub fn new(alg: KeyAlgorithm) -> Result<Signer> {
        let key = SigningKey::generate(alg)?;
        let pem = key.public_key().to_pem();
        Ok(Signer { key, pem })
    }

    /// A hashedrekord of `artifact` with the key's natural digest, signed over the digest.
    pub fn hashedrekord(&self, artifact: &[u8]) -> Result<(Value, Vec<u8>)> {
        let alg = self
            .key
            .algorithm()
            .default_digest()
            .ok_or_else(|| anyhow!("no default digest"))?;
        let d = alg.digest(artifact);
        let sig = self.key.sign_prehashed(alg, &d)?;
        Ok((hashedrekord(alg, &d, &sig, &self.pem), sig))
    }
}

/// An RSA hashedrekord with an explicit padding and digest.
pub fn rsa_hashedrekord(
    key: &SigningKey,
    padding: RsaPadding,
    alg: DigestAlgorithm,
    artifact: &[u8],
) -> Result<Value> {
    let sig = key.sign_rsa(padding, alg, artifact)?;
    Ok(hashedrekord(
        alg,
        &alg.digest(artifact),
        &sig,
        &key.public_key().to_pem(),
    ))
}

/// A self-signed ECDSA P-256 X.509 certificate with an e-mail SAN, signed by `key` (DER).
pub fn test_certificate(key: &SigningKey, email: &str) -> Result<Vec<u8>> {
    test_certificate_with_sans(key, &[TestSan::Email(email)])
}

/// A SAN of a test certificate.
pub enum TestSan<'a> {
    Email(&'a str),
    Uri(&'a str),
}

/// A self-signed P-256 test certificate for `key` with these SANs.
pub fn test_certificate_with_sans(key: &SigningKey, sans: &[TestSan]) -> Result<Vec<u8>> {
    use der::Encode;
    use der::asn1::{BitString, Ia5String, OctetString, UtcTime};
    use x509_cert::Certificate;
    use x509_cert::certificate::{TbsCertificate, Version};
    use x509_cert::ext::Extension;
    use x509_cert::ext::pkix::SubjectAltName;
    use x509_cert::ext::pkix::name::GeneralName;
    use x509_cert::name::Name;
    use x509_cert::serial_number::SerialNumber;
    use x509_cert::spki::{AlgorithmIdentifierOwned, ObjectIdentifier, SubjectPublicKeyInfoOwned};
    use x509_cert::time::{Time, Validity};

    ensure!(
        key.algorithm() == KeyAlgorithm::EcdsaP256,
        "test certificates use P-256"
    );
    let ecdsa_sha256 = AlgorithmIdentifierOwned {
        oid: ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2"),
        parameters: None,
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let name = Name::from_str("CN=sigil log test,O=sigil")?;
    let san = SubjectAltName(
        sans.iter()
            .map(|s| {
                Ok(match s {
                    TestSan::Email(e) => GeneralName::Rfc822Name(Ia5String::new(*e)?),
                    TestSan::Uri(u) => GeneralName::UniformResourceIdentifier(Ia5String::new(*u)?),
                })
            })
            .collect::<Result<Vec<_>>>()?,
    );
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::new(&[0x01, 0x42])?,
        signature: ecdsa_sha256.clone(),
        issuer: name.clone(),
        validity: Validity {
            not_before: Time::UtcTime(UtcTime::from_unix_duration(now - Duration::from_secs(60))?),
            not_after: Time::UtcTime(UtcTime::from_unix_duration(now + Duration::from_secs(600))?),
        },
        subject: name,
        subject_public_key_info: SubjectPublicKeyInfoOwned::try_from(key.public_key().spki_der())?,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(vec![Extension {
            extn_id: ObjectIdentifier::new_unwrap("2.5.29.17"),
            critical: false,
            extn_value: OctetString::new(san.to_der()?)?,
        }]),
    };
    let sig = key.sign(&tbs.to_der()?)?;
    let cert = Certificate {
        tbs_certificate: tbs,
        signature_algorithm: ecdsa_sha256,
        signature: BitString::from_bytes(&sig)?,
    };
    Ok(cert.to_der()?)
}

pub const INTOTO_TYPE: &str = "application/vnd.in-toto+json";

/// An in-toto statement about one artifact (its SHA-256 is the subject digest).
pub fn statement(artifact_sha256: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "artifact", "digest": {"sha256": hex::encode(artifact_sha256)}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {}
    }))
    .unwrap_or_default()
}

/// DSSE pre-authentication encoding, written from the spec.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut v = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    v.extend_from_slice(payload);
    v
}

/// A proposed dsse 0.0.1 entry; returns the entry and the envelope JSON string.
pub fn dsse_entry(key: &SigningKey, payload: &[u8]) -> Result<(Value, String)> {
    let sig = key.sign(&pae(INTOTO_TYPE, payload))?;
    let envelope = serde_json::to_string(&json!({
        "payload": B64.encode(payload),
        "payloadType": INTOTO_TYPE,
        "signatures": [{"keyid": "", "sig": B64.encode(&sig)}]
    }))?;
    let entry = json!({
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {"proposedContent": {
            "envelope": envelope,
            "verifiers": [B64.encode(key.public_key().to_pem().as_bytes())]
        }}
    });
    Ok((entry, envelope))
}

/// A proposed intoto 0.0.2 entry (double base64, as Rekor's intoto v0.0.2 wants).
pub fn intoto_entry(key: &SigningKey, payload: &[u8]) -> Result<Value> {
    let sig = key.sign(&pae(INTOTO_TYPE, payload))?;
    let envelope = json!({
        "payloadType": INTOTO_TYPE,
        "payload": B64.encode(payload),
        "signatures": [{"sig": B64.encode(&sig), "keyid": ""}]
    });
    let envelope_hash = hex::encode(Sha256::digest(serde_json::to_vec(&envelope)?));
    Ok(json!({
        "apiVersion": "0.0.2",
        "kind": "intoto",
        "spec": {"content": {
            "envelope": {
                "payloadType": INTOTO_TYPE,
                "payload": B64.encode(B64.encode(payload)),
                "signatures": [{
                    "sig": B64.encode(B64.encode(&sig)),
                    "publicKey": B64.encode(key.public_key().to_pem().as_bytes())
                }]
            },
            "hash": {"algorithm": "sha256", "value": envelope_hash}
        }}
    }))
}
