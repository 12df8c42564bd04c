//! The hashedrekord 0.0.1 kind: its canonical body and the checks of a proposed entry.

#[allow(unused_imports)]
use super::*;

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

pub(super) fn digest_name(alg: DigestAlgorithm) -> &'static str {
    match alg {
        DigestAlgorithm::Sha256 => "sha256",
        DigestAlgorithm::Sha384 => "sha384",
        DigestAlgorithm::Sha512 => "sha512",
    }
}

pub(super) fn parse_digest_alg(name: &str) -> Result<(DigestAlgorithm, usize), EntryError> {
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

pub(super) fn hashedrekord(spec: &Map<String, Value>) -> Result<CanonicalEntry, EntryError> {
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
    finish("hashedrekord", "0.0.1", spec, keys, vec![verifier.signer])
}
