//! A tlog entry's canonicalized body must be the one the bundle implies: rebuilt from the
//! bundle's signature, digest or envelope and signing certificate or key, and compared field by
//! field, so that an error names the field that differs. Fields the verifier does not check
//! are refused.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use sigil_core::bundle::{BundleError, Content, TransparencyLogEntry};
use sigil_core::certs;
use sigil_core::crypto::{DigestAlgorithm, KeyAlgorithm, PublicKey, sha256};
use sigil_core::rekor_v2;

use super::artifact::{Artifact, message_digest};
use super::error::VerifyError;

/// The signing certificate or key, in the forms log entry bodies carry it.
pub(crate) struct Signer<'a> {
    pub(crate) key: &'a PublicKey,
    /// Certificate DER, or the key's SPKI DER.
    pub(crate) der: &'a [u8],
    pub(crate) pem: String,
    pub(crate) is_certificate: bool,
}

fn mismatch(field: &str, expected: impl Into<String>, actual: impl Into<String>) -> VerifyError {
    VerifyError::BodyMismatch {
        field: field.into(),
        expected: expected.into(),
        actual: actual.into(),
    }
}

fn get_str<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(n) => cur = n,
            None => return "",
        }
    }
    cur.as_str().unwrap_or("")
}

fn short(s: &str) -> String {
    if s.len() > 80 {
        format!("{}…", s.get(..77).unwrap_or(s))
    } else {
        s.to_owned()
    }
}

/// Refuses fields of the body object at `at` (a top-level key, or "" for the body itself) that
/// the verifier does not check.
fn only_fields(body: &Value, at: &str, allowed: &[&str]) -> Result<(), VerifyError> {
    let obj = if at.is_empty() {
        Some(body)
    } else {
        body.get(at)
    };
    let Some(Value::Object(map)) = obj else {
        return Err(VerifyError::Entry(format!(
            "canonicalizedBody{} is not a JSON object",
            if at.is_empty() {
                String::new()
            } else {
                format!(".{at}")
            }
        )));
    };
    match map.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(VerifyError::Entry(format!(
            "canonicalizedBody{} has an unexpected field {k:?}",
            if at.is_empty() {
                String::new()
            } else {
                format!(".{at}")
            }
        ))),
        None => Ok(()),
    }
}

/// Decodes base64 PEM text from a body field and returns the DER of its first block.
fn pem_field_der(b64: &str) -> Option<Vec<u8>> {
    let pem = STANDARD.decode(b64).ok()?;
    certs::pem_decode_all(&pem)
        .ok()?
        .into_iter()
        .next()
        .map(|(_, der)| der)
}

/// Rebuilds what the log entry must say from the bundle and compares.
pub(crate) fn check_body(
    e: &TransparencyLogEntry,
    content: Content<'_>,
    artifact: &Artifact<'_>,
    signer: &Signer<'_>,
) -> Result<(), VerifyError> {
    let (signer_pem, signer_der) = (signer.pem.as_str(), signer.der);
    let body: Value = serde_json::from_slice(&e.canonicalized_body)
        .map_err(|err| VerifyError::Entry(format!("canonicalizedBody is not JSON: {err}")))?;
    only_fields(&body, "", &["apiVersion", "kind", "spec"])?;
    let kind = get_str(&body, &["kind"]);
    let version = get_str(&body, &["apiVersion"]);
    if kind != e.kind_version.kind || version != e.kind_version.version {
        return Err(mismatch(
            "kindVersion",
            format!("{} {}", e.kind_version.kind, e.kind_version.version),
            format!("{kind} {version}"),
        ));
    }
    match (content, kind, version) {
        (Content::MessageSignature(ms), "hashedrekord", "0.0.1") => {
            let (alg, digest) = message_digest(ms, artifact)?;
            let expected =
                sigil_core::rekor::hashedrekord_body(alg, &digest, &ms.signature, signer_pem)
                    .map_err(|err| VerifyError::Entry(err.to_string()))?;
            if expected == e.canonicalized_body {
                return Ok(());
            }
            // Name the field that differs.
            let want: Value = serde_json::from_slice(&expected).unwrap_or(Value::Null);
            for path in [
                &["spec", "data", "hash", "algorithm"][..],
                &["spec", "data", "hash", "value"],
                &["spec", "signature", "content"],
                &["spec", "signature", "publicKey", "content"],
            ] {
                let (a, b) = (get_str(&want, path), get_str(&body, path));
                if a != b {
                    return Err(mismatch(&path.join("."), short(a), short(b)));
                }
            }
            Err(mismatch(
                "canonicalizedBody",
                "the canonical hashedrekord body",
                "different bytes",
            ))
        }
        (Content::MessageSignature(ms), "hashedrekord", "0.0.2") => {
            let (alg, digest) = message_digest(ms, artifact)?;
            check_v2_body(&body, alg, &digest, &ms.signature, signer)
        }
        (Content::Dsse(env), "hashedrekord", "0.0.2") => {
            // Rekor v2 has no DSSE kind: clients log an envelope as a hashedrekord over the
            // digest of its pre-authentication encoding, with the DSSE signature. The digest is
            // the signing key's (SHA-256 for P-256, SHA-384 for P-384).
            let sig = env
                .signatures
                .first()
                .ok_or(VerifyError::Bundle(BundleError::DsseSignatureCount(0)))?;
            let alg = signer
                .key
                .algorithm()
                .default_digest()
                .unwrap_or(DigestAlgorithm::Sha256);
            check_v2_body(&body, alg, &alg.digest(&env.pae()), &sig.sig, signer)
        }
        (Content::Dsse(env), "dsse", "0.0.1") => {
            let sig = env
                .signatures
                .first()
                .ok_or(VerifyError::Bundle(BundleError::DsseSignatureCount(0)))?;
            only_fields(
                &body,
                "spec",
                &["envelopeHash", "payloadHash", "signatures"],
            )?;
            let alg = get_str(&body, &["spec", "payloadHash", "algorithm"]);
            if alg != "sha256" {
                return Err(mismatch("spec.payloadHash.algorithm", "sha256", alg));
            }
            let want_hash = hex::encode(sha256(&env.payload));
            let got_hash = get_str(&body, &["spec", "payloadHash", "value"]);
            if got_hash != want_hash {
                return Err(mismatch("spec.payloadHash.value", want_hash, got_hash));
            }
            let sigs = body
                .pointer("/spec/signatures")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            // The log entry must list exactly the envelope's signatures.
            if sigs.len() != env.signatures.len() {
                return Err(mismatch(
                    "spec.signatures",
                    format!("{} signature(s)", env.signatures.len()),
                    format!("{} signature(s)", sigs.len()),
                ));
            }
            let want_sig = STANDARD.encode(&sig.sig);
            let hit = sigs.iter().find(|s| get_str(s, &["signature"]) == want_sig);
            let Some(hit) = hit else {
                return Err(mismatch(
                    "spec.signatures[].signature",
                    short(&want_sig),
                    "no such signature",
                ));
            };
            if pem_field_der(get_str(hit, &["verifier"])).as_deref() != Some(signer_der) {
                return Err(mismatch(
                    "spec.signatures[].verifier",
                    "the bundle's signing certificate/key",
                    "a different key",
                ));
            }
            Ok(())
        }
        (Content::Dsse(env), "intoto", "0.0.2") => {
            let sig = env
                .signatures
                .first()
                .ok_or(VerifyError::Bundle(BundleError::DsseSignatureCount(0)))?;
            let want_hash = hex::encode(sha256(&env.payload));
            let got_hash = get_str(&body, &["spec", "content", "payloadHash", "value"]);
            if got_hash != want_hash {
                return Err(mismatch(
                    "spec.content.payloadHash.value",
                    want_hash,
                    got_hash,
                ));
            }
            let got_type = get_str(&body, &["spec", "content", "envelope", "payloadType"]);
            if got_type != env.payload_type {
                return Err(mismatch(
                    "spec.content.envelope.payloadType",
                    env.payload_type.clone(),
                    got_type,
                ));
            }
            let sigs = body
                .pointer("/spec/content/envelope/signatures")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if sigs.len() != env.signatures.len() {
                return Err(mismatch(
                    "spec.content.envelope.signatures",
                    format!("{} signature(s)", env.signatures.len()),
                    format!("{} signature(s)", sigs.len()),
                ));
            }
            // intoto 0.0.2 double-encodes signatures: base64 of the envelope's base64 text.
            let want_sig = STANDARD.encode(STANDARD.encode(&sig.sig));
            let hit = sigs.iter().find(|s| get_str(s, &["sig"]) == want_sig);
            let Some(hit) = hit else {
                return Err(mismatch(
                    "spec.content.envelope.signatures[].sig",
                    short(&want_sig),
                    "no such signature",
                ));
            };
            if pem_field_der(get_str(hit, &["publicKey"])).as_deref() != Some(signer_der) {
                return Err(mismatch(
                    "spec.content.envelope.signatures[].publicKey",
                    "the bundle's signing certificate/key",
                    "a different key",
                ));
            }
            Ok(())
        }
        (_, k, v) => Err(VerifyError::Entry(format!(
            "entry kind {k} {v} does not fit the bundle's content"
        ))),
    }
}

/// The Rekor v2 hashedrekord 0.0.2 body must be exactly the one the bundle implies: digest and
/// algorithm, signature, the signing certificate or key and its key details, and nothing else.
fn check_v2_body(
    body: &Value,
    alg: DigestAlgorithm,
    digest: &[u8],
    signature: &[u8],
    signer: &Signer<'_>,
) -> Result<(), VerifyError> {
    let spec = body
        .pointer("/spec/hashedRekordV002")
        .cloned()
        .unwrap_or(Value::Null);
    // RSA keys name their padding and size in keyDetails; any RSA variant fits an RSA key.
    let details = match signer.key.algorithm() {
        KeyAlgorithm::Rsa { .. } => {
            let got = get_str(&spec, &["signature", "verifier", "keyDetails"]);
            if got.starts_with("PKIX_RSA_") {
                got.to_owned()
            } else {
                KeyAlgorithm::Rsa { bits: 2048 }.key_details().to_owned()
            }
        }
        a => a.key_details().to_owned(),
    };
    let material = if signer.is_certificate {
        rekor_v2::Material::Certificate(signer.der)
    } else {
        rekor_v2::Material::PublicKey(signer.der)
    };
    let field_name = material.field();
    let expected = rekor_v2::body(
        alg,
        digest,
        signature,
        &rekor_v2::Verifier {
            material,
            key_details: &details,
        },
    );
    if *body == expected {
        return Ok(());
    }
    // Name the first field that differs.
    let want_spec = expected
        .pointer("/spec/hashedRekordV002")
        .cloned()
        .unwrap_or(Value::Null);
    for path in [
        &["data", "algorithm"][..],
        &["data", "digest"],
        &["signature", "content"],
        &["signature", "verifier", field_name, "rawBytes"],
        &["signature", "verifier", "keyDetails"],
    ] {
        let (a, b) = (get_str(&want_spec, path), get_str(&spec, path));
        if a != b {
            let field = format!("spec.hashedRekordV002.{}", path.join("."));
            return Err(mismatch(&field, short(a), short(b)));
        }
    }
    Err(mismatch(
        "canonicalizedBody",
        "exactly the hashedrekord 0.0.2 fields the bundle implies",
        "other or extra fields",
    ))
}
