//! The DSSE-carrying kinds (dsse 0.0.1, intoto 0.0.1 and 0.0.2): envelope parsing, signature checks against the verifiers, canonical bodies and search keys.

#[allow(unused_imports)]
use super::*;

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

pub(super) fn dsse(spec: &Map<String, Value>) -> Result<CanonicalEntry, EntryError> {
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
    let mut signers = Vec::new();
    for i in &used {
        if let Some(v) = verifiers.get(*i) {
            key_search_keys(v, &mut keys);
            if !signers.contains(&v.signer) {
                signers.push(v.signer.clone());
            }
        }
    }
    statement_subject_keys(&env.payload_type, &env.payload, &mut keys);
    let spec = json!({
        "envelopeHash": {"algorithm": "sha256", "value": hex::encode(envelope_hash)},
        "payloadHash": {"algorithm": "sha256", "value": hex::encode(payload_hash)},
        "signatures": sigs.iter().map(|(s, v)| json!({"signature": s, "verifier": v})).collect::<Vec<_>>(),
    });
    finish("dsse", "0.0.1", spec, keys, signers)
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
pub(super) fn intoto_v001(spec: &Map<String, Value>) -> Result<CanonicalEntry, EntryError> {
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
    finish("intoto", "0.0.1", spec, keys, vec![verifier.signer])
}

pub(super) fn intoto(spec: &Map<String, Value>) -> Result<CanonicalEntry, EntryError> {
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
    let mut signers = Vec::new();
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
        if !signers.contains(&verifier.signer) {
            signers.push(verifier.signer);
        }
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
    finish("intoto", "0.0.2", spec, keys, signers)
}
