//! Rekor v1 entry kinds: validation, signature verification and the canonical bodies Rekor
//! stores (RFC 8785 JSON), so that clients rebuilding a body from a bundle get the same bytes.
//!
//! Supported: `hashedrekord` 0.0.1, `dsse` 0.0.1, `intoto` 0.0.1 and 0.0.2.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use serde_json::{Map, Value, json};

use crate::certs::{self, San};
use crate::crypto::{DigestAlgorithm, PublicKey};
use crate::jcs;
use crate::merkle::{Hash, leaf_hash};

/// The kinds and versions accepted, for error messages.
pub const SUPPORTED_KINDS: &str = "hashedrekord 0.0.1, dsse 0.0.1, intoto 0.0.1, intoto 0.0.2";

/// Why a proposed entry was rejected. Every variant is the caller's to fix.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EntryError {
    #[error("missing field {0}")]
    Missing(&'static str),
    #[error("field {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("unsupported entry kind/version {kind} {version}; supported: {SUPPORTED_KINDS}")]
    Unsupported { kind: String, version: String },
    #[error("signature verification failed: {0}")]
    Signature(String),
}

fn invalid(field: &'static str, reason: impl std::fmt::Display) -> EntryError {
    EntryError::Invalid {
        field,
        reason: reason.to_string(),
    }
}

/// A validated entry: the body to store and the keys to index it under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanonicalEntry {
    pub kind: &'static str,
    pub api_version: &'static str,
    /// RFC 8785 JSON, exactly what Rekor would store; the Merkle leaf is this body.
    pub body: Vec<u8>,
    /// Search index keys: `sha256:<hex>` artifact/payload and key hashes, lower-cased e-mails and URIs.
    pub search_keys: Vec<String>,
}

impl CanonicalEntry {
    pub fn leaf_hash(&self) -> Hash {
        leaf_hash(&self.body)
    }
    /// The entry UUID: hex of the leaf hash.
    pub fn uuid(&self) -> String {
        hex::encode(self.leaf_hash())
    }
}

/// Validate and canonicalize a proposed entry `{apiVersion, kind, spec}`, verifying its signatures.
pub fn canonicalize(proposed: &Value) -> Result<CanonicalEntry, EntryError> {
    let obj = proposed
        .as_object()
        .ok_or_else(|| invalid("entry", "must be a JSON object {apiVersion, kind, spec}"))?;
    let kind = str_field(obj, "kind", "kind")?;
    let version = str_field(obj, "apiVersion", "apiVersion")?;
    let spec = obj
        .get("spec")
        .and_then(Value::as_object)
        .ok_or(EntryError::Missing("spec"))?;
    match (kind, version) {
        ("hashedrekord", "0.0.1") => hashedrekord(spec),
        ("dsse", "0.0.1") => dsse(spec),
        ("intoto", "0.0.1") => intoto_v001(spec),
        ("intoto", "0.0.2") => intoto(spec),
        (k, v) => Err(EntryError::Unsupported {
            kind: k.to_string(),
            version: v.to_string(),
        }),
    }
}

fn str_field<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    name: &'static str,
) -> Result<&'a str, EntryError> {
    match obj.get(key) {
        None | Some(Value::Null) => Err(EntryError::Missing(name)),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(invalid(name, "must be a string")),
    }
}

fn obj_field<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    name: &'static str,
) -> Result<&'a Map<String, Value>, EntryError> {
    match obj.get(key) {
        None | Some(Value::Null) => Err(EntryError::Missing(name)),
        Some(Value::Object(o)) => Ok(o),
        Some(_) => Err(invalid(name, "must be an object")),
    }
}

fn b64_field(
    obj: &Map<String, Value>,
    key: &str,
    name: &'static str,
) -> Result<Vec<u8>, EntryError> {
    let s = str_field(obj, key, name)?;
    decode_b64(s).map_err(|e| invalid(name, format!("not valid base64: {e}")))
}

fn decode_b64(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
    STANDARD
        .decode(s)
        .or_else(|e| URL_SAFE.decode(s).map_err(|_| e))
}

/// A verification key as given in an entry (PEM certificate(s) or PEM public key), with its
/// canonical PEM and the identities it carries.
pub struct Verifier {
    pub key: PublicKey,
    /// Go `pem.Encode` form: what Rekor stores.
    pub canonical_pem: String,
    /// SAN e-mails / URIs of the certificate (empty for bare keys).
    pub subjects: Vec<String>,
}

/// Parse a PEM certificate (chain: the first is the signer) or PEM public key.
pub fn parse_verifier(pem_bytes: &[u8], field: &'static str) -> Result<Verifier, EntryError> {
    let blocks = certs::pem_decode_all(pem_bytes).map_err(|e| invalid(field, e))?;
    let (label, first_der) = blocks.first().ok_or(EntryError::Missing(field))?;
    match label.as_str() {
        "CERTIFICATE" => {
            let mut canonical_pem = String::new();
            let mut leaf = None;
            for (label, der) in &blocks {
                if label != "CERTIFICATE" {
                    return Err(invalid(
                        field,
                        format!("unexpected PEM block {label:?} in a certificate chain"),
                    ));
                }
                let cert = certs::parse_certificate(der).map_err(|e| invalid(field, e))?;
                canonical_pem.push_str(&certs::pem_encode("CERTIFICATE", der));
                if leaf.is_none() {
                    leaf = Some(cert);
                }
            }
            let leaf = leaf.ok_or(EntryError::Missing(field))?;
            let spki = certs::spki_der(&leaf).map_err(|e| invalid(field, e))?;
            let key = PublicKey::from_spki_der(&spki).map_err(|e| invalid(field, e))?;
            let subjects = rekor_subjects(&leaf);
            Ok(Verifier {
                key,
                canonical_pem,
                subjects,
            })
        }
        "PUBLIC KEY" => {
            let key = PublicKey::from_spki_der(first_der).map_err(|e| invalid(field, e))?;
            Ok(Verifier {
                canonical_pem: certs::pem_encode("PUBLIC KEY", first_der),
                key,
                subjects: Vec::new(),
            })
        }
        other => Err(invalid(
            field,
            format!("expected a PEM CERTIFICATE or PUBLIC KEY, found {other:?}"),
        )),
    }
}

/// The SAN values Rekor indexes a certificate under (and `subject` searches match): e-mail
/// addresses, URIs, otherName UTF8Strings (Fulcio's username SAN), DNS names, IP addresses.
fn rekor_subjects(cert: &x509_cert::Certificate) -> Vec<String> {
    use x509_cert::ext::pkix::SubjectAltName;
    use x509_cert::ext::pkix::name::GeneralName;
    let mut out: Vec<String> = certs::subject_alt_names(cert)
        .iter()
        .map(|s: &San| s.value().to_string())
        .collect();
    if let Ok(Some((_, san))) = cert.tbs_certificate.get::<SubjectAltName>() {
        for name in &san.0 {
            match name {
                GeneralName::DnsName(d) => out.push(d.to_string()),
                GeneralName::IpAddress(ip) => {
                    let b = ip.as_bytes();
                    let addr = <[u8; 4]>::try_from(b)
                        .map(std::net::IpAddr::from)
                        .or_else(|_| <[u8; 16]>::try_from(b).map(std::net::IpAddr::from));
                    if let Ok(a) = addr {
                        out.push(a.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// The search keys of a verifier: the SHA-256 of its canonical PEM and its identities, lowercase.
pub fn verifier_search_keys(v: &Verifier) -> Vec<String> {
    let mut keys = Vec::new();
    key_search_keys(v, &mut keys);
    keys
}

fn key_search_keys(v: &Verifier, keys: &mut Vec<String>) {
    keys.push(format!(
        "sha256:{}",
        hex::encode(crate::crypto::sha256(v.canonical_pem.as_bytes()))
    ));
    keys.extend(v.subjects.iter().map(|s| s.to_lowercase()));
}

fn finish(
    kind: &'static str,
    api_version: &'static str,
    spec: Value,
    mut search_keys: Vec<String>,
) -> Result<CanonicalEntry, EntryError> {
    let body = json!({"apiVersion": api_version, "kind": kind, "spec": spec});
    let body = jcs::to_canonical_vec(&body).map_err(|e| invalid("spec", e))?;
    search_keys.sort();
    search_keys.dedup();
    Ok(CanonicalEntry {
        kind,
        api_version,
        body,
        search_keys,
    })
}

/// The canonical `hashedrekord` 0.0.1 body for a digest, signature and verifier PEM (already canonical).
pub fn hashedrekord_body(
    algorithm: DigestAlgorithm,
    digest: &[u8],
    signature: &[u8],
    canonical_pem: &str,
) -> Result<Vec<u8>, EntryError> {
    let spec = hashedrekord_spec(algorithm, digest, signature, canonical_pem);
    let body = json!({"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": spec});
    jcs::to_canonical_vec(&body).map_err(|e| invalid("spec", e))
}

fn hashedrekord_spec(
    algorithm: DigestAlgorithm,
    digest: &[u8],
    signature: &[u8],
    canonical_pem: &str,
) -> Value {
    json!({
        "data": {"hash": {"algorithm": digest_name(algorithm), "value": hex::encode(digest)}},
        "signature": {
            "content": STANDARD.encode(signature),
            "publicKey": {"content": STANDARD.encode(canonical_pem.as_bytes())},
        },
    })
}

fn digest_name(alg: DigestAlgorithm) -> &'static str {
    match alg {
        DigestAlgorithm::Sha256 => "sha256",
        DigestAlgorithm::Sha384 => "sha384",
        DigestAlgorithm::Sha512 => "sha512",
    }
}

fn parse_digest_alg(name: &str) -> Result<(DigestAlgorithm, usize), EntryError> {
    match name {
        "sha256" => Ok((DigestAlgorithm::Sha256, 32)),
        "sha384" => Ok((DigestAlgorithm::Sha384, 48)),
        "sha512" => Ok((DigestAlgorithm::Sha512, 64)),
        other => Err(invalid(
            "spec.data.hash.algorithm",
            format!("{other:?} is not supported; use sha256, sha384 or sha512"),
        )),
    }
}

fn hashedrekord(spec: &Map<String, Value>) -> Result<CanonicalEntry, EntryError> {
    let sig = obj_field(spec, "signature", "spec.signature")?;
    let content = b64_field(sig, "content", "spec.signature.content")?;
    if content.is_empty() {
        return Err(invalid("spec.signature.content", "is empty"));
    }
    let pk = obj_field(sig, "publicKey", "spec.signature.publicKey")?;
    let pem = b64_field(pk, "content", "spec.signature.publicKey.content")?;
    let verifier = parse_verifier(&pem, "spec.signature.publicKey.content")?;

    let data = obj_field(spec, "data", "spec.data")?;
    let hash = obj_field(data, "hash", "spec.data.hash")?;
    let (alg, len) = parse_digest_alg(str_field(hash, "algorithm", "spec.data.hash.algorithm")?)?;
    let value = str_field(hash, "value", "spec.data.hash.value")?;
    let digest = hex::decode(value)
        .map_err(|e| invalid("spec.data.hash.value", format!("not valid hex: {e}")))?;
    if digest.len() != len {
        return Err(invalid(
            "spec.data.hash.value",
            format!(
                "{} digest must be {len} bytes, got {}",
                digest_name(alg),
                digest.len()
            ),
        ));
    }
    verifier
        .key
        .verify_prehashed(alg, &digest, &content)
        .map_err(|e| {
            EntryError::Signature(format!(
                "hashedrekord signature does not verify against the given key and digest: {e}"
            ))
        })?;

    let mut keys = vec![format!("{}:{}", digest_name(alg), hex::encode(&digest))];
    key_search_keys(&verifier, &mut keys);
    let spec = hashedrekord_spec(alg, &digest, &content, &verifier.canonical_pem);
    finish("hashedrekord", "0.0.1", spec, keys)
}

/// DSSE pre-authentication encoding.
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

struct Envelope {
    payload: Vec<u8>,
    payload_type: String,
    /// (keyid, signature string as in the envelope, decoded signature)
    signatures: Vec<(Option<String>, String, Vec<u8>)>,
}

fn parse_envelope(v: &Value, field: &'static str) -> Result<Envelope, EntryError> {
    let obj = v
        .as_object()
        .ok_or_else(|| invalid(field, "must be a DSSE envelope object"))?;
    let payload = b64_field(obj, "payload", field)?;
    let payload_type = str_field(obj, "payloadType", field)?.to_string();
    let sigs = match obj.get("signatures") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        _ => return Err(invalid(field, "envelope needs at least one signature")),
    };
    let mut signatures = Vec::with_capacity(sigs.len());
    for s in sigs {
        let so = s
            .as_object()
            .ok_or_else(|| invalid(field, "signature must be an object"))?;
        let sig_str = str_field(so, "sig", field)?.to_string();
        let sig = decode_b64(&sig_str)
            .map_err(|e| invalid(field, format!("signature not valid base64: {e}")))?;
        let keyid = so.get("keyid").and_then(Value::as_str).map(str::to_string);
        signatures.push((keyid, sig_str, sig));
    }
    Ok(Envelope {
        payload,
        payload_type,
        signatures,
    })
}

/// Verify every signature of the envelope with one of the verifiers; returns, per signature,
/// the index of the verifier that accepted it.
fn verify_envelope(env: &Envelope, verifiers: &[Verifier]) -> Result<Vec<usize>, EntryError> {
    let message = pae(&env.payload_type, &env.payload);
    env.signatures
        .iter()
        .enumerate()
        .map(|(i, (_, _, sig))| {
            verifiers
                .iter()
                .position(|v| v.key.verify(&message, sig).is_ok())
                .ok_or_else(|| {
                    EntryError::Signature(format!(
                        "DSSE signature {i} does not verify with any of the {} given key(s)",
                        verifiers.len()
                    ))
                })
        })
        .collect()
}

fn statement_subject_keys(payload_type: &str, payload: &[u8], keys: &mut Vec<String>) {
    if payload_type != "application/vnd.in-toto+json" {
        return;
    }
    let Ok(stmt) = serde_json::from_slice::<Value>(payload) else {
        return;
    };
    if let Some(subjects) = stmt.get("subject").and_then(Value::as_array) {
        for s in subjects {
            if let Some(d) = s.get("digest").and_then(Value::as_object) {
                for (alg, v) in d {
                    if let Some(v) = v.as_str() {
                        keys.push(format!("{alg}:{v}").to_lowercase());
                    }
                }
            }
        }
    }
}

fn dsse(spec: &Map<String, Value>) -> Result<CanonicalEntry, EntryError> {
    let proposed = obj_field(spec, "proposedContent", "spec.proposedContent")?;
    let envelope_str = str_field(proposed, "envelope", "spec.proposedContent.envelope")?;
    let envelope_json: Value = serde_json::from_str(envelope_str).map_err(|e| {
        invalid(
            "spec.proposedContent.envelope",
            format!("not valid JSON: {e}"),
        )
    })?;
    let env = parse_envelope(&envelope_json, "spec.proposedContent.envelope")?;
    let verifier_list = match proposed.get("verifiers") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        _ => return Err(EntryError::Missing("spec.proposedContent.verifiers")),
    };
    let mut verifiers = Vec::with_capacity(verifier_list.len());
    for v in verifier_list {
        let s = v
            .as_str()
            .ok_or_else(|| invalid("spec.proposedContent.verifiers", "must be base64 strings"))?;
        let pem = decode_b64(s).map_err(|e| {
            invalid(
                "spec.proposedContent.verifiers",
                format!("not valid base64: {e}"),
            )
        })?;
        verifiers.push(parse_verifier(&pem, "spec.proposedContent.verifiers")?);
    }
    let used = verify_envelope(&env, &verifiers)?;

    let payload_hash = crate::crypto::sha256(&env.payload);
    let envelope_hash = crate::crypto::sha256(envelope_str.as_bytes());
    let mut sigs: Vec<(String, String)> = env
        .signatures
        .iter()
        .zip(&used)
        .filter_map(|((_, sig_str, _), i)| {
            verifiers
                .get(*i)
                .map(|v| (sig_str.clone(), STANDARD.encode(v.canonical_pem.as_bytes())))
        })
        .collect();
    sigs.sort();
    sigs.dedup_by(|a, b| a.0 == b.0);

    let mut keys = vec![
        format!("sha256:{}", hex::encode(payload_hash)),
        format!("sha256:{}", hex::encode(envelope_hash)),
    ];
    for i in &used {
        if let Some(v) = verifiers.get(*i) {
            key_search_keys(v, &mut keys);
        }
    }
    statement_subject_keys(&env.payload_type, &env.payload, &mut keys);
    let spec = json!({
        "envelopeHash": {"algorithm": "sha256", "value": hex::encode(envelope_hash)},
        "payloadHash": {"algorithm": "sha256", "value": hex::encode(payload_hash)},
        "signatures": sigs.iter().map(|(s, v)| json!({"signature": s, "verifier": v})).collect::<Vec<_>>(),
    });
    finish("dsse", "0.0.1", spec, keys)
}

/// Digests of the materials of a SLSA v0.2 provenance statement (what Rekor indexes for intoto
/// 0.0.1 besides the subjects).
fn statement_material_keys(payload_type: &str, payload: &[u8], keys: &mut Vec<String>) {
    if payload_type != "application/vnd.in-toto+json" {
        return;
    }
    let Ok(stmt) = serde_json::from_slice::<Value>(payload) else {
        return;
    };
    let materials = stmt
        .get("predicate")
        .and_then(|p| p.get("materials"))
        .and_then(Value::as_array);
    for m in materials.into_iter().flatten() {
        if let Some(d) = m.get("digest").and_then(Value::as_object) {
            for (alg, v) in d {
                if let Some(v) = v.as_str() {
                    keys.push(format!("{alg}:{v}").to_lowercase());
                }
            }
        }
    }
}

/// Does `sig` sign `message` with `key`? ECDSA keys are also tried with SHA-256 whatever their
/// curve: Rekor checks intoto 0.0.1 envelopes with a SHA-256 verifier for every key.
fn verify_dsse_signature(key: &PublicKey, message: &[u8], sig: &[u8]) -> bool {
    if key.verify(message, sig).is_ok() {
        return true;
    }
    matches!(
        key.algorithm(),
        crate::crypto::KeyAlgorithm::EcdsaP384 | crate::crypto::KeyAlgorithm::EcdsaP521
    ) && key
        .verify_prehashed(
            DigestAlgorithm::Sha256,
            &crate::crypto::sha256(message),
            sig,
        )
        .is_ok()
}

/// `intoto` 0.0.1: the DSSE envelope as a JSON string and one verification key. Rekor stores
/// only the key and the hashes of the envelope and of its payload, computed here (hashes the
/// client sends are ignored); at least one envelope signature must verify with the key.
fn intoto_v001(spec: &Map<String, Value>) -> Result<CanonicalEntry, EntryError> {
    let pem = b64_field(spec, "publicKey", "spec.publicKey")?;
    let verifier = parse_verifier(&pem, "spec.publicKey")?;
    let content = obj_field(spec, "content", "spec.content")?;
    let envelope_str = str_field(content, "envelope", "spec.content.envelope")?;
    if envelope_str.is_empty() {
        return Err(EntryError::Missing("spec.content.envelope"));
    }
    let envelope_json: Value = serde_json::from_str(envelope_str)
        .map_err(|e| invalid("spec.content.envelope", format!("not valid JSON: {e}")))?;
    let env = parse_envelope(&envelope_json, "spec.content.envelope")?;
    if env.payload.is_empty() || env.payload_type.is_empty() {
        return Err(invalid(
            "spec.content.envelope",
            "payload and payloadType must not be empty",
        ));
    }
    let message = pae(&env.payload_type, &env.payload);
    if !env
        .signatures
        .iter()
        .any(|(_, _, sig)| verify_dsse_signature(&verifier.key, &message, sig))
    {
        return Err(EntryError::Signature(format!(
            "none of the {} envelope signature(s) verifies with spec.publicKey",
            env.signatures.len()
        )));
    }
    let envelope_hash = hex::encode(crate::crypto::sha256(envelope_str.as_bytes()));
    let payload_hash = hex::encode(crate::crypto::sha256(&env.payload));
    let mut keys = vec![
        format!("sha256:{envelope_hash}"),
        format!("sha256:{payload_hash}"),
    ];
    key_search_keys(&verifier, &mut keys);
    statement_subject_keys(&env.payload_type, &env.payload, &mut keys);
    statement_material_keys(&env.payload_type, &env.payload, &mut keys);
    let spec = json!({
        "content": {
            "hash": {"algorithm": "sha256", "value": envelope_hash},
            "payloadHash": {"algorithm": "sha256", "value": payload_hash},
        },
        "publicKey": STANDARD.encode(verifier.canonical_pem.as_bytes()),
    });
    finish("intoto", "0.0.1", spec, keys)
}

fn intoto(spec: &Map<String, Value>) -> Result<CanonicalEntry, EntryError> {
    let content = obj_field(spec, "content", "spec.content")?;
    let env = obj_field(content, "envelope", "spec.content.envelope")?;
    // intoto 0.0.2 double-encodes: the JSON holds base64 of the envelope's base64 strings.
    let payload_b64 = b64_field(env, "payload", "spec.content.envelope.payload")?;
    let payload = decode_b64(&String::from_utf8_lossy(&payload_b64)).map_err(|e| {
        invalid(
            "spec.content.envelope.payload",
            format!("inner payload not base64: {e}"),
        )
    })?;
    let payload_type = str_field(env, "payloadType", "spec.content.envelope.payloadType")?;
    let sig_list = match env.get("signatures") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        _ => return Err(EntryError::Missing("spec.content.envelope.signatures")),
    };
    let message = pae(payload_type, &payload);
    let mut canonical_sigs = Vec::with_capacity(sig_list.len());
    let mut keys = Vec::new();
    for s in sig_list {
        let so = s
            .as_object()
            .ok_or_else(|| invalid("spec.content.envelope.signatures", "must be objects"))?;
        let sig_b64 = b64_field(so, "sig", "spec.content.envelope.signatures.sig")?;
        let sig = decode_b64(&String::from_utf8_lossy(&sig_b64)).map_err(|e| {
            invalid(
                "spec.content.envelope.signatures.sig",
                format!("inner signature not base64: {e}"),
            )
        })?;
        let pem = b64_field(
            so,
            "publicKey",
            "spec.content.envelope.signatures.publicKey",
        )?;
        let verifier = parse_verifier(&pem, "spec.content.envelope.signatures.publicKey")?;
        verifier.key.verify(&message, &sig).map_err(|e| {
            EntryError::Signature(format!("in-toto envelope signature does not verify: {e}"))
        })?;
        key_search_keys(&verifier, &mut keys);
        let mut c = Map::new();
        if let Some(kid) = so
            .get("keyid")
            .and_then(Value::as_str)
            .filter(|k| !k.is_empty())
        {
            c.insert("keyid".into(), Value::String(kid.to_string()));
        }
        c.insert("publicKey".into(), Value::String(STANDARD.encode(&pem)));
        c.insert("sig".into(), Value::String(STANDARD.encode(&sig_b64)));
        canonical_sigs.push(Value::Object(c));
    }
    let hash = obj_field(content, "hash", "spec.content.hash")?;
    let (alg, len) =
        parse_digest_alg(str_field(hash, "algorithm", "spec.content.hash.algorithm")?)?;
    let hash_value = str_field(hash, "value", "spec.content.hash.value")?;
    let hash_bytes = hex::decode(hash_value)
        .map_err(|e| invalid("spec.content.hash.value", format!("not valid hex: {e}")))?;
    if hash_bytes.len() != len {
        return Err(invalid(
            "spec.content.hash.value",
            format!("must be {len} bytes"),
        ));
    }
    let payload_hash = crate::crypto::sha256(&payload);
    keys.push(format!("sha256:{}", hex::encode(payload_hash)));
    statement_subject_keys(payload_type, &payload, &mut keys);
    let spec = json!({
        "content": {
            "envelope": {"payloadType": payload_type, "signatures": canonical_sigs},
            "hash": {"algorithm": digest_name(alg), "value": hex::encode(&hash_bytes)},
            "payloadHash": {"algorithm": "sha256", "value": hex::encode(payload_hash)},
        }
    });
    finish("intoto", "0.0.2", spec, keys)
}

/// The bytes a signed entry timestamp signs: RFC 8785 JSON of body, integratedTime, logID, logIndex.
pub fn set_payload(body: &[u8], integrated_time: i64, log_id_hex: &str, log_index: u64) -> Vec<u8> {
    let v = json!({
        "body": STANDARD.encode(body),
        "integratedTime": integrated_time,
        "logID": log_id_hex,
        "logIndex": log_index,
    });
    jcs::to_canonical_vec(&v).unwrap_or_default()
}

/// Entry ID as Rekor prints it: 16 hex digits of the tree ID followed by the UUID.
pub fn entry_id(tree_id: u64, uuid: &str) -> String {
    format!("{tree_id:016x}{uuid}")
}

/// Accepts a 64-hex UUID or an 80-hex entry ID; returns the leaf hash.
pub fn parse_uuid_or_entry_id(s: &str) -> Option<Hash> {
    let hex_part = match s.len() {
        64 => s,
        80 => s.get(16..)?,
        _ => return None,
    };
    let bytes = hex::decode(hex_part).ok()?;
    bytes.try_into().ok()
}

/// A reference to a Rekor v1 entry as clients give it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryRef {
    /// 64 hex digits: the leaf hash, in whichever tree holds it.
    Uuid(Hash),
    /// 80 hex digits: the tree (shard) ID, then the leaf hash.
    EntryId { tree_id: i64, leaf: Hash },
}

impl EntryRef {
    pub fn leaf(&self) -> Hash {
        match self {
            EntryRef::Uuid(h) | EntryRef::EntryId { leaf: h, .. } => *h,
        }
    }
}

/// Parse a UUID or entry ID with Rekor's rules: the tree ID of an entry ID is a positive
/// 64-bit signed integer in 16 hex digits; anything else is a malformed ID.
pub fn parse_entry_ref(s: &str) -> Result<EntryRef, String> {
    let bytes = hex::decode(s).map_err(|_| {
        format!("{s:?} is not hexadecimal: give a 64-hex UUID or an 80-hex entry ID")
    })?;
    match bytes.len() {
        32 => bytes
            .try_into()
            .map(EntryRef::Uuid)
            .map_err(|_| "UUID must be 32 bytes".to_string()),
        40 => {
            let (tree, leaf) = bytes.split_at(8);
            let tree: [u8; 8] = tree
                .try_into()
                .map_err(|_| "tree ID must be 8 bytes".to_string())?;
            let tree_id = i64::from_be_bytes(tree);
            if tree_id <= 0 {
                return Err(format!(
                    "{} is not a valid tree ID (a positive 64-bit integer)",
                    hex::encode(tree)
                ));
            }
            let leaf: Hash = leaf
                .try_into()
                .map_err(|_| "UUID must be 32 bytes".to_string())?;
            Ok(EntryRef::EntryId { tree_id, leaf })
        }
        n => Err(format!(
            "an entry UUID has 64 hex digits and an entry ID 80, this has {}",
            n * 2
        )),
    }
}

/// The search-index key of a hash as Rekor's `/api/v1/index/retrieve` takes it: `alg:hex`, or
/// bare hex whose length names the algorithm (40 sha1, 64 sha256, 96 sha384, 128 sha512).
pub fn search_hash_key(input: &str) -> Result<String, String> {
    let lower = input.to_ascii_lowercase();
    let (alg, hex_part) = match lower.split_once(':') {
        Some((alg, h)) => (alg, h),
        None => match lower.len() {
            40 => ("sha1", lower.as_str()),
            64 => ("sha256", lower.as_str()),
            96 => ("sha384", lower.as_str()),
            128 => ("sha512", lower.as_str()),
            n => {
                return Err(format!(
                    "hash {input:?} has {n} characters: give <sha1|sha256|sha384|sha512>:<hex> \
                     or 40, 64, 96 or 128 hex digits"
                ));
            }
        },
    };
    let want = match alg {
        "sha1" => 40,
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        other => {
            return Err(format!(
                "hash algorithm {other:?} is not one of sha1, sha256, sha384, sha512"
            ));
        }
    };
    if hex_part.len() != want || !hex_part.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("a {alg} hash is {want} hex digits, got {input:?}"));
    }
    Ok(format!("{alg}:{hex_part}"))
}
