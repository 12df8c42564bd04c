//! Certificates from the CA through its Fulcio API: a key and an OIDC token in, a chain out.

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sigil_core::certs;
use sigil_core::crypto::{KeyAlgorithm, SigningKey};

use crate::http::{http, json_answer};

/// Asks the CA for a certificate for `key`, proving possession by signing the token's challenge.
/// Returns the chain as DER, leaf first.
pub fn request_certificate(ca_url: &str, token: &str, key: &SigningKey) -> Result<Vec<Vec<u8>>> {
    let claims = crate::oidc::unverified_claims(token)?;
    let challenge = crate::oidc::challenge_claim(&claims)?;
    let pop = key.sign(challenge.as_bytes())?;
    let algorithm = match key.algorithm() {
        KeyAlgorithm::Ed25519 => "ED25519",
        KeyAlgorithm::Rsa { .. } => "RSA_PSS",
        _ => "ECDSA",
    };
    let req = json!({
        "credentials": {"oidcIdentityToken": token},
        "publicKeyRequest": {
            "publicKey": {"algorithm": algorithm, "content": key.public_key().to_pem()},
            "proofOfPossession": STANDARD.encode(pop),
        },
    });
    let url = format!("{}/api/v2/signingCert", ca_url.trim_end_matches('/'));
    let resp = http()?
        .post(&url)
        .json(&req)
        .send()
        .with_context(|| format!("POST {url}"))?;
    let body = json_answer(resp, &format!("CA {url}"))?;
    let chain = body
        .pointer("/signedCertificateEmbeddedSct/chain/certificates")
        .or_else(|| body.pointer("/signedCertificateDetachedSct/chain/certificates"))
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow!("CA answer has no certificate chain: {body}"))?;
    let mut out = Vec::new();
    for pem in chain {
        let pem = pem
            .as_str()
            .ok_or_else(|| anyhow!("CA chain entry is not a string"))?;
        for (label, der) in certs::pem_decode_all(pem.as_bytes())? {
            if label == "CERTIFICATE" {
                out.push(der);
            }
        }
    }
    if out.is_empty() {
        bail!("CA returned an empty certificate chain");
    }
    Ok(out)
}
