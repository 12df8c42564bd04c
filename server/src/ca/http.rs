//! Fulcio's HTTP API: v2 `signingCert`, `trustBundle`, `configuration`; legacy v1 `signingCert`
//! and `rootCert`. Tokens are never logged.

use std::sync::Arc;

use crate::routes::Api;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::CaError;
use super::issue::{Ca, KeyProof};

/// The CA's routes. The body limit comes from the configuration.
pub fn router(ca: Arc<Ca>) -> Api {
    let limit = ca.config().max_body_bytes;
    Api::new()
        .post("/api/v2/signingCert", signing_cert_v2)
        .get("/api/v2/trustBundle", trust_bundle)
        .get("/api/v2/configuration", configuration)
        .post("/api/v1/signingCert", signing_cert_v1)
        .get("/api/v1/rootCert", root_cert)
        .map_router(|r| r.layer(DefaultBodyLimit::max(limit)))
        .with_state(ca)
}

fn body(b: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, CaError> {
    match b {
        Ok(b) => Ok(b),
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(CaError::TooLarge(format!(
            "request body is larger than {limit} bytes"
        ))),
        Err(e) => Err(CaError::bad_request(format!("request body: {e}"))),
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, CaError> {
    if b.is_empty() {
        return Err(CaError::bad_request(
            "request body is empty: send a JSON object",
        ));
    }
    serde_json::from_slice(b).map_err(|e| {
        CaError::bad_request(format!(
            "request body is not valid JSON for this endpoint: {e}"
        ))
    })
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

fn b64_field(v: &str, field: &str) -> Result<Vec<u8>, CaError> {
    let cleaned: String = v.chars().filter(|c| !c.is_whitespace()).collect();
    B64.decode(&cleaned)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(&cleaned))
        .map_err(|_| CaError::bad_request(format!("{field} is not valid base64")))
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Credentials {
    #[serde(alias = "oidc_identity_token")]
    oidc_identity_token: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct PublicKeyV2 {
    algorithm: Option<Value>,
    content: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct PublicKeyRequest {
    #[serde(alias = "public_key")]
    public_key: Option<PublicKeyV2>,
    #[serde(alias = "proof_of_possession")]
    proof_of_possession: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct SigningCertV2 {
    credentials: Option<Credentials>,
    #[serde(alias = "public_key_request")]
    public_key_request: Option<PublicKeyRequest>,
    #[serde(alias = "certificate_signing_request")]
    certificate_signing_request: Option<String>,
}

async fn signing_cert_v2(
    State(ca): State<Arc<Ca>>,
    headers: HeaderMap,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, CaError> {
    let b = body(b, ca.config().max_body_bytes)?;
    let req: SigningCertV2 = parse_json(&b)?;
    let token = req
        .credentials
        .and_then(|c| c.oidc_identity_token)
        .filter(|t| !t.is_empty())
        .or_else(|| bearer(&headers))
        .unwrap_or_default();
    let proof = match (req.certificate_signing_request, req.public_key_request) {
        (Some(csr), None) if !csr.is_empty() => {
            KeyProof::Csr(b64_field(&csr, "certificateSigningRequest")?)
        }
        (None, Some(pkr)) => {
            let content = pkr
                .public_key
                .and_then(|k| k.content)
                .filter(|c| !c.is_empty())
                .ok_or_else(|| {
                    CaError::bad_request(
                        "publicKeyRequest.publicKey.content is missing (PEM public key)",
                    )
                })?;
            let proof = b64_field(
                pkr.proof_of_possession.as_deref().unwrap_or(""),
                "publicKeyRequest.proofOfPossession",
            )?;
            KeyProof::PublicKey {
                key: content.into_bytes(),
                proof,
            }
        }
        (Some(_), Some(_)) => {
            return Err(CaError::bad_request(
                "send either certificateSigningRequest or publicKeyRequest, not both",
            ));
        }
        _ => {
            return Err(CaError::bad_request(
                "the request needs certificateSigningRequest (base64 PEM CSR) or publicKeyRequest {publicKey, proofOfPossession}",
            ));
        }
    };
    let issued = ca.issue(&token, proof).await?;
    let chain = json!({ "certificates": issued.chain_pem });
    // Always JSON, as Fulcio's v2 answers whatever the Accept header says (sigstore-python
    // asks for a PEM chain yet parses JSON).
    let out = match issued.detached_sct {
        Some(sct) => {
            let sct_json = serde_json::to_vec(&sct).map_err(CaError::internal)?;
            json!({ "signedCertificateDetachedSct": {
                "chain": chain,
                "signedCertificateTimestamp": B64.encode(sct_json),
            }})
        }
        None => json!({ "signedCertificateEmbeddedSct": { "chain": chain } }),
    };
    Ok((StatusCode::OK, Json(out)).into_response())
}

async fn trust_bundle(State(ca): State<Arc<Ca>>) -> Json<Value> {
    Json(json!({ "chains": [ { "certificates": ca.keys().chain_pem() } ] }))
}

async fn configuration(State(ca): State<Arc<Ca>>) -> Json<Value> {
    let issuers: Vec<Value> = ca
        .oidc()
        .issuers()
        .iter()
        .map(|i| {
            let mut o = serde_json::Map::new();
            if let Some(u) = &i.issuer_url {
                o.insert("issuerUrl".into(), json!(u));
            }
            if let Some(u) = &i.wildcard_issuer_url {
                o.insert("wildcardIssuerUrl".into(), json!(u));
            }
            o.insert("audience".into(), json!(i.client_id));
            o.insert("challengeClaim".into(), json!(i.challenge_claim()));
            o.insert("issuerType".into(), json!(i.issuer_type.as_str()));
            if let Some(td) = &i.spiffe_trust_domain {
                o.insert("spiffeTrustDomain".into(), json!(td));
            }
            if let Some(d) = &i.subject_domain {
                o.insert("subjectDomain".into(), json!(d));
            }
            Value::Object(o)
        })
        .collect();
    Json(json!({ "issuers": issuers }))
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct PublicKeyV1 {
    content: Option<String>,
    algorithm: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct SigningCertV1 {
    public_key: Option<PublicKeyV1>,
    signed_email_address: Option<String>,
    certificate_signing_request: Option<String>,
}

const PEM_CHAIN: &str = "application/pem-certificate-chain";

async fn signing_cert_v1(
    State(ca): State<Arc<Ca>>,
    headers: HeaderMap,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, CaError> {
    let b = body(b, ca.config().max_body_bytes)?;
    let req: SigningCertV1 = parse_json(&b)?;
    let token = bearer(&headers).unwrap_or_default();
    let proof = match req.certificate_signing_request.filter(|c| !c.is_empty()) {
        Some(csr) => KeyProof::Csr(b64_field(&csr, "certificateSigningRequest")?),
        None => {
            let pk = req
                .public_key
                .ok_or_else(|| CaError::bad_request("publicKey is missing"))?;
            let _ = pk.algorithm;
            let key = b64_field(pk.content.as_deref().unwrap_or(""), "publicKey.content")?;
            let proof = b64_field(
                req.signed_email_address.as_deref().unwrap_or(""),
                "signedEmailAddress",
            )?;
            KeyProof::PublicKey { key, proof }
        }
    };
    let issued = ca.issue(&token, proof).await?;
    let mut resp = (
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, PEM_CHAIN)],
        issued.chain_pem.join("\n").trim().to_string(),
    )
        .into_response();
    if let Some(sct) = issued.detached_sct {
        let sct_json = serde_json::to_vec(&sct).map_err(CaError::internal)?;
        if let Ok(v) = HeaderValue::from_str(&B64.encode(sct_json)) {
            resp.headers_mut().insert("SCT", v);
        }
    }
    Ok(resp)
}

async fn root_cert(State(ca): State<Arc<Ca>>) -> Response {
    (
        [(header::CONTENT_TYPE, PEM_CHAIN)],
        ca.keys().chain_pem().join("\n").trim().to_string(),
    )
        .into_response()
}
