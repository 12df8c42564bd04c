//! The Rekor v2 API (rekor-tiles; sigstore-python/-js/-go with `majorApiVersion: 2`) on the log
//! engine: one write endpoint and a read API of static C2SP tlog-tiles.
//!
//! Rekor v2 runs as its own log (`rekor-v2`, own key and tree) on the same engine, sequencer and
//! database as v1: v2 leaves are hashedrekord 0.0.2 bodies, v1 leaves are 0.0.1 bodies with a
//! signed entry timestamp, so one tree serving both would give clients entries of a kind their
//! API does not describe.
//!
//! - `POST /api/v2/log/entries` `{"hashedRekordRequestV002": {digest, signature: {content,
//!   verifier: {x509Certificate|publicKey: {rawBytes}, keyDetails}}}}` → 201 and a
//!   `TransparencyLogEntry` (protobuf JSON: 64-bit integers as strings, bytes as base64, zero
//!   values omitted, so no `integratedTime`: v2 clients take signing time from a TSA). Answered
//!   once the entry is in a signed checkpoint; a resubmitted entry answers its existing index.
//! - `GET /api/v2/checkpoint`, `/api/v2/tile/<L>/<N>[.p/<W>]`, `/api/v2/tile/entries/<N>[.p/<W>]`.
//!   Full tiles never change (cached for a year, `immutable`); partial tiles and the checkpoint
//!   carry an ETag and must be revalidated.

use std::sync::Arc;

use crate::routes::Api;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};
use sigil_core::crypto::{DigestAlgorithm, PublicKey, sha256};
use sigil_core::rekor_v2;
use sigil_core::tiles::{
    TILE_HEIGHT, TILE_WIDTH, TileId, TilePath, encode_entry_bundle, parse_tile_path,
};

use super::engine::{EngineError, LeafInput, LogEngine, LogView, Submission};
use crate::error::AppError;

/// The name of the v2 log in the database.
pub const LOG_NAME: &str = "rekor-v2";
pub use sigil_core::rekor_v2::{API_VERSION as VERSION, KIND};
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";

/// Shared state of the v2 handlers.
pub struct RekorV2State {
    /// Appends (the only write path).
    pub engine: LogEngine,
    /// Reads.
    pub log: LogView,
    /// SHA-256 of the log key's SPKI DER: the log ID clients find in the trusted root.
    pub log_id: [u8; 32],
    /// Who may append (`None`: anyone).
    pub admission: Option<Arc<crate::access::Admission>>,
}

impl RekorV2State {
    pub fn new(engine: LogEngine, public: &PublicKey) -> Self {
        Self {
            log: engine.view().clone(),
            engine,
            log_id: sha256(public.spki_der()),
            admission: None,
        }
    }
}

/// Routes of the Rekor v2 API.
pub fn router(state: Arc<RekorV2State>) -> Api {
    Api::new()
        .post("/api/v2/log/entries", create_entry)
        .get("/api/v2/checkpoint", checkpoint)
        .get("/api/v2/tile/{*path}", tile)
        .with_state(state)
}

/// Retired shards of the v2 log by database name, served read-only.
pub type Shards = std::collections::HashMap<String, Arc<RekorV2State>>;

/// Read-only routes of the retired shards (`rotate rekor-v2`): each at
/// `/shards/<name>/api/v2/checkpoint` and `/shards/<name>/api/v2/tile/...`, the base URL the
/// trusted root lists for it.
pub fn shards_router(shards: Arc<Shards>) -> Api {
    Api::new()
        .get("/shards/{shard}/api/v2/checkpoint", shard_checkpoint)
        .get("/shards/{shard}/api/v2/tile/{*path}", shard_tile)
        .with_state(shards)
}

fn shard(shards: &Shards, name: &str) -> Result<Arc<RekorV2State>, AppError> {
    shards.get(name).cloned().ok_or_else(|| {
        AppError::not_found(format!(
            "no retired shard {name:?} (the trusted root lists this log's shards)"
        ))
    })
}

async fn shard_checkpoint(
    State(shards): State<Arc<Shards>>,
    name: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let Path(name) = name.map_err(|e| AppError::bad_request(e.body_text()))?;
    Ok(checkpoint(State(shard(&shards, &name)?), headers).await)
}

async fn shard_tile(
    State(shards): State<Arc<Shards>>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let Path((name, path)) = path.map_err(|e| AppError::bad_request(e.body_text()))?;
    tile(State(shard(&shards, &name)?), Ok(Path(path)), headers).await
}

/// Why a v2 entry request is refused.
#[derive(Debug, thiserror::Error)]
pub enum V2EntryError {
    #[error("request body is not valid JSON: {0}")]
    Json(String),
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("the signature does not verify against the verifier's key and the digest: {0}")]
    Signature(String),
}

fn invalid(field: &'static str, message: impl Into<String>) -> V2EntryError {
    V2EntryError::Invalid {
        field,
        message: message.into(),
    }
}

/// A validated hashedrekord 0.0.2 entry.
#[derive(Clone, Debug)]
pub struct CanonicalV2 {
    /// RFC 8785 JSON of `{apiVersion, kind, spec: {hashedRekordV002: {data, signature}}}`: the leaf.
    pub body: Vec<u8>,
    pub search_keys: Vec<String>,
    /// What signed it, for the admission policy.
    pub signer: sigil_core::rekor::Signer,
}

fn field<'a>(
    obj: &'a Map<String, Value>,
    names: &[&str],
    path: &'static str,
) -> Result<&'a Value, V2EntryError> {
    names
        .iter()
        .find_map(|n| obj.get(*n))
        .filter(|v| !v.is_null())
        .ok_or_else(|| invalid(path, "is required"))
}

fn object<'a>(v: &'a Value, path: &'static str) -> Result<&'a Map<String, Value>, V2EntryError> {
    v.as_object()
        .ok_or_else(|| invalid(path, "must be an object"))
}

fn b64(v: &Value, path: &'static str) -> Result<Vec<u8>, V2EntryError> {
    let s = v
        .as_str()
        .ok_or_else(|| invalid(path, "must be a base64 string"))?;
    let bytes = STANDARD
        .decode(s.trim())
        .map_err(|e| invalid(path, format!("is not base64: {e}")))?;
    if bytes.is_empty() {
        return Err(invalid(path, "is empty"));
    }
    Ok(bytes)
}

/// `x509Certificate` / `publicKey` hold `{rawBytes}`; a bare base64 string is accepted too.
fn raw_bytes(v: &Value, path: &'static str) -> Result<Vec<u8>, V2EntryError> {
    match v {
        Value::String(_) => b64(v, path),
        Value::Object(o) => b64(field(o, &["rawBytes", "raw_bytes"], path)?, path),
        _ => Err(invalid(path, "must be {\"rawBytes\": base64 DER}")),
    }
}

/// The digest a key-details name signs with, after checking it fits the key.
fn digest_for(key: &PublicKey, details: &str) -> Result<DigestAlgorithm, V2EntryError> {
    sigil_core::rekor_v2::digest_for_key_details(key.algorithm(), details).map_err(|e| {
        invalid(
            "hashedRekordRequestV002.signature.verifier.keyDetails",
            e.to_string(),
        )
    })
}

/// Validate a `CreateEntryRequest`, verify its signature and build the canonical body.
pub fn canonicalize_request(req: &Value) -> Result<CanonicalV2, V2EntryError> {
    let top = object(req, "body")?;
    if top.contains_key("dsseRequestV002") || top.contains_key("dsseRequestV0_0_2") {
        return Err(invalid(
            "dsseRequestV002",
            "DSSE entries are not accepted by Rekor v2: log a hashedrekord whose digest is the hash of the envelope's PAE",
        ));
    }
    let hr = object(
        field(
            top,
            &[
                "hashedRekordRequestV002",
                "hashedRekordRequestV0_0_2",
                "hashed_rekord_request_v002",
                "hashed_rekord_request_v0_0_2",
            ],
            "hashedRekordRequestV002",
        )?,
        "hashedRekordRequestV002",
    )?;
    let digest = b64(
        field(hr, &["digest"], "hashedRekordRequestV002.digest")?,
        "hashedRekordRequestV002.digest",
    )?;
    let sig = object(
        field(hr, &["signature"], "hashedRekordRequestV002.signature")?,
        "hashedRekordRequestV002.signature",
    )?;
    let content = b64(
        field(
            sig,
            &["content"],
            "hashedRekordRequestV002.signature.content",
        )?,
        "hashedRekordRequestV002.signature.content",
    )?;
    let verifier = object(
        field(
            sig,
            &["verifier"],
            "hashedRekordRequestV002.signature.verifier",
        )?,
        "hashedRekordRequestV002.signature.verifier",
    )?;
    let details = field(
        verifier,
        &["keyDetails", "key_details"],
        "hashedRekordRequestV002.signature.verifier.keyDetails",
    )?
    .as_str()
    .ok_or_else(|| {
        invalid(
            "hashedRekordRequestV002.signature.verifier.keyDetails",
            "must be a string",
        )
    })?;
    let cert = verifier
        .get("x509Certificate")
        .or_else(|| verifier.get("x509_certificate"))
        .filter(|v| !v.is_null());
    let pk = verifier
        .get("publicKey")
        .or_else(|| verifier.get("public_key"))
        .filter(|v| !v.is_null());
    let (key, verifier_der, is_certificate, verifier_pem) = match (cert, pk) {
        (Some(c), None) => {
            let der = raw_bytes(
                c,
                "hashedRekordRequestV002.signature.verifier.x509Certificate",
            )?;
            let parsed = sigil_core::certs::parse_certificate(&der).map_err(|e| {
                invalid(
                    "hashedRekordRequestV002.signature.verifier.x509Certificate",
                    format!("is not a DER certificate: {e}"),
                )
            })?;
            let spki = sigil_core::certs::spki_der(&parsed).map_err(|e| {
                invalid(
                    "hashedRekordRequestV002.signature.verifier.x509Certificate",
                    e.to_string(),
                )
            })?;
            let key = PublicKey::from_spki_der(&spki).map_err(|e| {
                invalid(
                    "hashedRekordRequestV002.signature.verifier.x509Certificate",
                    format!("unsupported key: {e}"),
                )
            })?;
            let pem = sigil_core::certs::pem_encode("CERTIFICATE", &der);
            (key, der, true, pem)
        }
        (None, Some(p)) => {
            let der = raw_bytes(p, "hashedRekordRequestV002.signature.verifier.publicKey")?;
            let key = PublicKey::from_spki_der(&der).map_err(|e| {
                invalid(
                    "hashedRekordRequestV002.signature.verifier.publicKey",
                    format!("is not a DER SubjectPublicKeyInfo: {e}"),
                )
            })?;
            let pem = sigil_core::certs::pem_encode("PUBLIC KEY", &der);
            (key, der, false, pem)
        }
        _ => {
            return Err(invalid(
                "hashedRekordRequestV002.signature.verifier",
                "give exactly one of x509Certificate or publicKey",
            ));
        }
    };
    let alg = digest_for(&key, details)?;
    if digest.len() != alg.len() {
        return Err(invalid(
            "hashedRekordRequestV002.digest",
            format!(
                "a {} digest is {} bytes, got {}",
                rekor_v2::digest_name(alg),
                alg.len(),
                digest.len()
            ),
        ));
    }
    key.verify_prehashed(alg, &digest, &content)
        .map_err(|e| V2EntryError::Signature(e.to_string()))?;
    let verifier = rekor_v2::Verifier {
        material: if is_certificate {
            rekor_v2::Material::Certificate(&verifier_der)
        } else {
            rekor_v2::Material::PublicKey(&verifier_der)
        },
        key_details: details,
    };
    let body = rekor_v2::body(alg, &digest, &content, &verifier);
    let body =
        sigil_core::jcs::to_canonical_vec(&body).map_err(|e| invalid("body", e.to_string()))?;
    // The keys Sigil's search extension (`v2_search`) reads: the digest, and as for v1 entries
    // the verifier PEM's hash and the certificate's identities.
    let mut search_keys = vec![format!("{}:{}", alg.name(), hex::encode(&digest))];
    if let Ok(v) = sigil_core::rekor::parse_verifier(verifier_pem.as_bytes(), "verifier") {
        search_keys.extend(sigil_core::rekor::verifier_search_keys(&v));
    }
    search_keys.sort();
    search_keys.dedup();
    let signer = if is_certificate {
        sigil_core::rekor::Signer::Certificate(vec![verifier_der])
    } else {
        sigil_core::rekor::Signer::PublicKey(verifier_der)
    };
    Ok(CanonicalV2 {
        body,
        search_keys,
        signer,
    })
}

async fn create_entry(
    State(s): State<Arc<RekorV2State>>,
    request_headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    let bytes = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::TooLarge("request body is larger than the log accepts".into())
        } else {
            AppError::bad_request(format!("could not read the request body: {e}"))
        }
    })?;
    let req: Value = serde_json::from_slice(&bytes)
        .map_err(|e| AppError::BadRequest(V2EntryError::Json(e.to_string()).to_string()))?;
    // Parsing and signature checks run on the handler's task, never in the sequencer.
    let canonical = canonicalize_request(&req).map_err(|e| AppError::BadRequest(e.to_string()))?;
    if let Some(a) = &s.admission {
        a.admit(std::slice::from_ref(&canonical.signer), &request_headers)
            .await?;
    }
    let leaf = sigil_core::merkle::leaf_hash(&canonical.body);
    let (index, size, checkpoint, status) = match s
        .engine
        .append(Submission {
            leaf: LeafInput::Fixed(canonical.body.clone()),
            extra: Vec::new(),
            search_keys: canonical.search_keys,
        })
        .await
    {
        Ok(a) => (
            a.index,
            a.tree.size,
            a.tree.checkpoint.clone(),
            StatusCode::CREATED,
        ),
        // Idempotent: the same entry answers where it already is, proven in the latest checkpoint.
        Err(EngineError::Duplicate { index, .. }) => {
            let head = s.log.head();
            if index >= head.size {
                return Err(AppError::Unavailable {
                    message: "the entry is logged but not yet in a published checkpoint (being \
                              integrated, or waiting for witness cosignatures); retry shortly"
                        .into(),
                    retry_after_secs: 1,
                });
            }
            (index, head.size, head.checkpoint.clone(), StatusCode::OK)
        }
        Err(e) => return Err(e.into()),
    };
    let entry =
        transparency_log_entry(&s, index, &leaf, &canonical.body, size, &checkpoint).await?;
    Ok((status, Json(entry)).into_response())
}

/// A `TransparencyLogEntry` in protobuf JSON.
async fn transparency_log_entry(
    s: &RekorV2State,
    index: u64,
    leaf: &[u8; 32],
    body: &[u8],
    size: u64,
    checkpoint: &[u8],
) -> Result<Value, AppError> {
    let proof = s.log.inclusion_proof(index, size).await?;
    let root = sigil_core::merkle::root_from_inclusion_proof(leaf, index, size, &proof)
        .map_err(|e| AppError::Internal(format!("stored proof does not verify: {e}")))?;
    Ok(json!({
        "logIndex": index.to_string(),
        "logId": {"keyId": STANDARD.encode(s.log_id)},
        "kindVersion": {"kind": KIND, "version": VERSION},
        "inclusionProof": {
            "logIndex": index.to_string(),
            "rootHash": STANDARD.encode(root),
            "treeSize": size.to_string(),
            "hashes": proof.iter().map(|h| STANDARD.encode(h)).collect::<Vec<_>>(),
            "checkpoint": {"envelope": String::from_utf8_lossy(checkpoint)},
        },
        "canonicalizedBody": STANDARD.encode(body),
    }))
}

fn etag_of(data: &[u8]) -> String {
    format!(
        "\"{}\"",
        hex::encode(sha256(data).get(..16).unwrap_or_default())
    )
}

/// 200 with the bytes, or 304 when the client's `If-None-Match` names the same content.
fn cacheable(
    headers: &HeaderMap,
    content_type: &'static str,
    data: Vec<u8>,
    immutable: bool,
) -> Response {
    let etag = etag_of(&data);
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut resp = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, content_type)], data).into_response()
    };
    let h = resp.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if immutable { IMMUTABLE } else { REVALIDATE }),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    resp
}

async fn checkpoint(State(s): State<Arc<RekorV2State>>, headers: HeaderMap) -> Response {
    let head = s.log.head();
    cacheable(
        &headers,
        "text/plain; charset=utf-8",
        head.checkpoint.clone(),
        false,
    )
}

/// Hashes at tile level `level` in a tree of `size` leaves.
fn hashes_at_level(size: u64, level: u8) -> u64 {
    size.checked_shr(u32::from(level) * u32::from(TILE_HEIGHT))
        .unwrap_or(0)
}

/// Whether the tile (at its width) exists in a tree of `size` leaves.
fn tile_exists(tile: &TileId, size: u64) -> bool {
    let end = u128::from(tile.index) * u128::from(TILE_WIDTH) + u128::from(tile.width);
    end <= u128::from(hashes_at_level(size, tile.level))
}

async fn tile(
    State(s): State<Arc<RekorV2State>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let Path(path) = path.map_err(|e| AppError::bad_request(e.body_text()))?;
    let parsed = parse_tile_path(&format!("tile/{path}"))
        .map_err(|e| AppError::bad_request(format!("tile/{path}: {e}")))?;
    let size = s.log.head().size;
    let (id, entries) = match parsed {
        TilePath::Hashes(t) => (t, false),
        TilePath::Entries(t) => (t, true),
    };
    if !tile_exists(&id, size) {
        return Err(AppError::not_found(format!(
            "tile/{path} is beyond the log's current size {size}"
        )));
    }
    let data = if entries {
        let start = id.index.saturating_mul(TILE_WIDTH);
        let end = start.saturating_add(u64::from(id.width));
        let rows = s.log.entries(start, end).await?;
        if u64::try_from(rows.len()).unwrap_or(0) != u64::from(id.width) {
            return Err(AppError::Internal(format!(
                "entry bundle {}: {} of {} entries in storage",
                id.entries_path(),
                rows.len(),
                id.width
            )));
        }
        let refs: Vec<&[u8]> = rows.iter().map(|r| r.data.as_slice()).collect();
        encode_entry_bundle(&refs).map_err(AppError::internal)?
    } else {
        s.log
            .tile(id)
            .await?
            .ok_or_else(|| AppError::not_found(format!("tile/{path} is not stored")))?
            .as_ref()
            .clone()
    };
    Ok(cacheable(
        &headers,
        "application/octet-stream",
        data,
        id.is_full(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_existence_follows_the_tree_size() {
        let t = |level, index, width| TileId {
            level,
            index,
            width,
        };
        assert!(tile_exists(&t(0, 0, 1), 1));
        assert!(!tile_exists(&t(0, 0, 2), 1));
        assert!(!tile_exists(&t(0, 0, 256), 255));
        assert!(tile_exists(&t(0, 0, 256), 256));
        assert!(tile_exists(&t(1, 0, 1), 256));
        assert!(!tile_exists(&t(1, 0, 2), 511));
        assert!(tile_exists(&t(0, 1, 3), 259));
        assert!(!tile_exists(&t(0, 1, 4), 259));
    }

    #[test]
    fn requests_are_checked_before_logging() {
        let key =
            sigil_core::crypto::SigningKey::generate(sigil_core::crypto::KeyAlgorithm::EcdsaP256)
                .unwrap();
        let digest = sha256(b"artifact");
        let sig = key
            .sign_prehashed(DigestAlgorithm::Sha256, &digest)
            .unwrap();
        let spki = STANDARD.encode(key.public_key().spki_der());
        let req = |d: &[u8], s: &[u8], details: &str| {
            json!({"hashedRekordRequestV002": {"digest": STANDARD.encode(d), "signature": {
                "content": STANDARD.encode(s),
                "verifier": {"publicKey": {"rawBytes": spki}, "keyDetails": details}}}})
        };
        let ok = canonicalize_request(&req(&digest, &sig, "PKIX_ECDSA_P256_SHA_256")).unwrap();
        let body: Value = serde_json::from_slice(&ok.body).unwrap();
        assert_eq!(body["kind"], "hashedrekord");
        assert_eq!(body["apiVersion"], "0.0.2");
        assert_eq!(
            body["spec"]["hashedRekordV002"]["data"]["algorithm"],
            "SHA2_256"
        );
        assert_eq!(
            sigil_core::jcs::to_canonical_vec(&body).unwrap(),
            ok.body,
            "the body is stored in canonical form"
        );
        let other = sha256(b"other");
        assert!(matches!(
            canonicalize_request(&req(&other, &sig, "PKIX_ECDSA_P256_SHA_256")),
            Err(V2EntryError::Signature(_))
        ));
        assert!(canonicalize_request(&req(&digest, &sig, "PKIX_ECDSA_P384_SHA_384")).is_err());
        assert!(
            canonicalize_request(&req(&digest[..31], &sig, "PKIX_ECDSA_P256_SHA_256")).is_err()
        );
        assert!(canonicalize_request(&json!({"dsseRequestV002": {}})).is_err());
        assert!(canonicalize_request(&json!([])).is_err());
    }
}
