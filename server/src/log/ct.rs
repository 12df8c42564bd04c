//! An RFC 6962 certificate-transparency log on the Merkle log engine (its own log id and key).
//! The CA submits precertificates here over HTTP, exactly as it would to a remote CT log.

use std::sync::Arc;

use crate::routes::Api;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use der::{Decode, Encode};
use serde::Deserialize;
use serde_json::{Value, json};
use sigil_core::crypto::{PublicKey, SigningKey, sha256};
use sigil_core::merkle::Hash;
use sigil_core::sct::{self, DigitallySigned};
use x509_cert::Certificate;

use super::engine::{EngineError, LeafInput, LogEngine, LogView, Submission};
use crate::error::AppError;

/// State of the CT log handlers.
pub struct CtState {
    /// Appends (the only write path).
    pub engine: LogEngine,
    /// Reads.
    pub log: LogView,
    pub key: SigningKey,
    /// SHA-256 of the CT key's SPKI: the CT log ID.
    pub log_id: [u8; 32],
    /// DER roots this log accepts chains to.
    pub roots: Vec<Vec<u8>>,
    /// (child, parent) certificate pairs already verified: CA intermediates repeat in every
    /// chain, so their signature check is done once.
    verified_links: std::sync::Mutex<std::collections::HashSet<[u8; 32]>>,
}

impl CtState {
    pub fn new(engine: LogEngine, key: SigningKey, roots: Vec<Vec<u8>>) -> Self {
        let log_id = sha256(key.public_key().spki_der());
        Self {
            log: engine.view().clone(),
            engine,
            key,
            log_id,
            roots,
            verified_links: std::sync::Mutex::new(std::collections::HashSet::new()),
        }
    }
}

/// RFC 6962 routes under `/ct/v1/`.
pub fn router(state: Arc<CtState>) -> Api {
    Api::new()
        .post("/ct/v1/add-pre-chain", add_pre_chain)
        .post("/ct/v1/add-chain", add_chain)
        .get("/ct/v1/get-sth", get_sth)
        .get("/ct/checkpoint", checkpoint)
        .get("/ct/v1/get-sth-consistency", get_sth_consistency)
        .get("/ct/v1/get-proof-by-hash", get_proof_by_hash)
        .get("/ct/v1/get-entries", get_entries)
        .get("/ct/v1/get-roots", get_roots)
        .with_state(state)
}

/// Retired shards of the CT log by database name, served read-only.
pub type Shards = std::collections::HashMap<String, Arc<CtState>>;

/// Read-only RFC 6962 routes of the retired shards (`rotate ct`), each under
/// `/shards/<name>/ct/v1/`, the base URL the trusted root lists for it.
pub fn shards_router(shards: Arc<Shards>) -> Api {
    Api::new()
        .get("/shards/{shard}/ct/v1/get-sth", shard_get_sth)
        .get(
            "/shards/{shard}/ct/v1/get-sth-consistency",
            shard_get_sth_consistency,
        )
        .get(
            "/shards/{shard}/ct/v1/get-proof-by-hash",
            shard_get_proof_by_hash,
        )
        .get("/shards/{shard}/ct/v1/get-entries", shard_get_entries)
        .get("/shards/{shard}/ct/v1/get-roots", shard_get_roots)
        .with_state(shards)
}

type ShardName = Result<Path<String>, PathRejection>;

fn shard(shards: &Shards, name: ShardName) -> Result<State<Arc<CtState>>, AppError> {
    let Path(name) = name.map_err(|e| AppError::bad_request(e.body_text()))?;
    shards.get(&name).cloned().map(State).ok_or_else(|| {
        AppError::not_found(format!(
            "no retired CT shard {name:?} (the trusted root lists this log's shards)"
        ))
    })
}

async fn shard_get_sth(
    State(shards): State<Arc<Shards>>,
    name: ShardName,
) -> Result<Json<Value>, AppError> {
    get_sth(shard(&shards, name)?).await
}

async fn shard_get_sth_consistency(
    State(shards): State<Arc<Shards>>,
    name: ShardName,
    q: Result<Query<ConsistencyQuery>, QueryRejection>,
) -> Result<Json<Value>, AppError> {
    get_sth_consistency(shard(&shards, name)?, q).await
}

async fn shard_get_proof_by_hash(
    State(shards): State<Arc<Shards>>,
    name: ShardName,
    q: Result<Query<ProofByHashQuery>, QueryRejection>,
) -> Result<Json<Value>, AppError> {
    get_proof_by_hash(shard(&shards, name)?, q).await
}

async fn shard_get_entries(
    State(shards): State<Arc<Shards>>,
    name: ShardName,
    q: Result<Query<EntriesQuery>, QueryRejection>,
) -> Result<Json<Value>, AppError> {
    get_entries(shard(&shards, name)?, q).await
}

async fn shard_get_roots(
    State(shards): State<Arc<Shards>>,
    name: ShardName,
) -> Result<Json<Value>, AppError> {
    Ok(get_roots(shard(&shards, name)?).await)
}

fn sig_algs(key: &SigningKey) -> (u8, u8) {
    match key.algorithm() {
        sigil_core::crypto::KeyAlgorithm::Ed25519 => (8, 7),
        sigil_core::crypto::KeyAlgorithm::EcdsaP384 => (5, 3),
        _ => (4, 3),
    }
}

fn digitally_signed(key: &SigningKey, data: &[u8]) -> Result<DigitallySigned, AppError> {
    let (hash_alg, sig_alg) = sig_algs(key);
    Ok(DigitallySigned {
        hash_alg,
        sig_alg,
        signature: key.sign(data).map_err(AppError::internal)?,
    })
}

struct ParsedChain {
    ders: Vec<Vec<u8>>,
    certs: Vec<Certificate>,
}

fn parse_chain(body: Result<Bytes, BytesRejection>) -> Result<ParsedChain, AppError> {
    let bytes = body.map_err(|e| AppError::bad_request(format!("could not read body: {e}")))?;
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| AppError::bad_request(format!("body is not valid JSON: {e}")))?;
    let chain = v.get("chain").and_then(Value::as_array).ok_or_else(|| {
        AppError::bad_request("body must be {\"chain\": [base64 DER certificates]}")
    })?;
    if chain.len() < 2 {
        return Err(AppError::bad_request(
            "chain must hold the certificate and at least its issuer",
        ));
    }
    let mut ders = Vec::with_capacity(chain.len());
    let mut certs = Vec::with_capacity(chain.len());
    for (i, c) in chain.iter().enumerate() {
        let der = c
            .as_str()
            .and_then(|s| STANDARD.decode(s).ok())
            .ok_or_else(|| AppError::bad_request(format!("chain[{i}] is not base64")))?;
        let cert = Certificate::from_der(&der).map_err(|e| {
            AppError::bad_request(format!("chain[{i}] is not a DER certificate: {e}"))
        })?;
        ders.push(der);
        certs.push(cert);
    }
    Ok(ParsedChain { ders, certs })
}

fn spki(cert: &Certificate) -> Result<Vec<u8>, AppError> {
    cert.tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(AppError::internal)
}

/// Each certificate is signed by the next, and the chain ends at (or is issued by) a root we accept.
fn check_chain(s: &CtState, chain: &ParsedChain) -> Result<(), AppError> {
    for i in 0..chain.certs.len().saturating_sub(1) {
        let (Some(child), Some(parent)) = (chain.certs.get(i), chain.certs.get(i + 1)) else {
            continue;
        };
        let link = match (chain.ders.get(i), chain.ders.get(i + 1)) {
            (Some(c), Some(p)) => sha256(&[c.as_slice(), p.as_slice()].concat()),
            _ => continue,
        };
        if s.verified_links.lock().is_ok_and(|v| v.contains(&link)) {
            continue;
        }
        let tbs = child.tbs_certificate.to_der().map_err(AppError::internal)?;
        let key = PublicKey::from_spki_der(&spki(parent)?)
            .map_err(|e| AppError::bad_request(format!("chain[{}] key: {e}", i + 1)))?;
        let sig = child.signature.raw_bytes();
        key.verify(&tbs, sig).map_err(|_| {
            AppError::bad_request(format!("chain[{i}] is not signed by chain[{}]", i + 1))
        })?;
        // Leaves are unique per request; only links between CA certificates are worth keeping.
        if i > 0
            && let Ok(mut v) = s.verified_links.lock()
            && v.len() < 1024
        {
            v.insert(link);
        }
    }
    let anchored = chain.ders.iter().any(|d| s.roots.contains(d));
    if !anchored {
        return Err(AppError::bad_request(
            "chain does not end at a root this log accepts (see get-roots)",
        ));
    }
    Ok(())
}

fn sct_err(e: sct::SctError) -> AppError {
    AppError::bad_request(sct_err_message(&e))
}

fn sct_err_message(e: &sct::SctError) -> String {
    format!("cannot build the CT entry: {e}")
}

fn sct_json(s: &CtState, timestamp: u64, sig: &DigitallySigned) -> Result<Value, AppError> {
    Ok(json!({
        "sct_version": 0,
        "id": STANDARD.encode(s.log_id),
        "timestamp": timestamp,
        "extensions": "",
        "signature": STANDARD.encode(sct::encode_digitally_signed(sig).map_err(sct_err)?),
    }))
}

async fn add_pre_chain(
    State(s): State<Arc<CtState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, AppError> {
    let chain = parse_chain(body)?;
    let (Some(pre), Some(issuer)) = (chain.certs.first(), chain.certs.get(1)) else {
        return Err(AppError::bad_request(
            "chain must hold the precertificate and its issuer",
        ));
    };
    if !sct::has_poison(pre) {
        return Err(AppError::bad_request(
            "chain[0] is not a precertificate (no poison extension); use add-chain",
        ));
    }
    check_chain(&s, &chain)?;
    // The one precert TBS rule (core's): the poison must be critical and NULL.
    let tbs =
        sct::precert_tbs_from_precert(chain.ders.first().map(Vec::as_slice).unwrap_or_default())
            .map_err(|e| {
                AppError::bad_request(format!("chain[0] is not a valid precertificate: {e}"))
            })?;
    let issuer_key_hash = sha256(&spki(issuer)?);
    let leaf_tbs = tbs.clone();
    let leaf = LeafInput::Timestamped(Arc::new(move |timestamp| {
        sct::merkle_tree_leaf_precert(timestamp, &issuer_key_hash, &leaf_tbs, &[])
            .map_err(|e| sct_err_message(&e))
    }));
    let extra = sct::encode_precert_chain_entry(
        chain.ders.first().map(Vec::as_slice).unwrap_or_default(),
        chain.ders.get(1..).unwrap_or_default(),
    )
    .map_err(sct_err)?;
    let timestamp = append(&s, leaf, extra).await?;
    let sig = digitally_signed(
        &s.key,
        &sct::sct_signed_data_precert(timestamp, &issuer_key_hash, &tbs, &[]).map_err(sct_err)?,
    )?;
    Ok(Json(sct_json(&s, timestamp, &sig)?))
}

async fn add_chain(
    State(s): State<Arc<CtState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, AppError> {
    let chain = parse_chain(body)?;
    let Some(cert) = chain.certs.first() else {
        return Err(AppError::bad_request("empty chain"));
    };
    if sct::has_poison(cert) {
        return Err(AppError::bad_request(
            "chain[0] is a precertificate; use add-pre-chain",
        ));
    }
    check_chain(&s, &chain)?;
    let der = chain.ders.first().cloned().unwrap_or_default();
    let leaf_der = der.clone();
    let leaf = LeafInput::Timestamped(Arc::new(move |timestamp| {
        sct::merkle_tree_leaf_x509(timestamp, &leaf_der, &[]).map_err(|e| sct_err_message(&e))
    }));
    let timestamp = append(
        &s,
        leaf,
        sct::encode_cert_chain(chain.ders.get(1..).unwrap_or_default()).map_err(sct_err)?,
    )
    .await?;
    let sig = digitally_signed(
        &s.key,
        &sct::sct_signed_data_x509(timestamp, &der, &[]).map_err(sct_err)?,
    )?;
    Ok(Json(sct_json(&s, timestamp, &sig)?))
}

/// Append a leaf that the sequencer builds with its batch timestamp; returns that timestamp,
/// which the SCT must carry. The same chain sequenced again builds the same leaf only when the
/// timestamp is the same too, so a duplicate is answered with an SCT for the stored entry.
async fn append(s: &CtState, leaf: LeafInput, extra: Vec<u8>) -> Result<u64, AppError> {
    let appended = s
        .engine
        .append(Submission {
            leaf,
            extra,
            search_keys: Vec::new(),
        })
        .await;
    match appended {
        Ok(a) => Ok(a.timestamp_ms),
        Err(EngineError::Duplicate {
            timestamp_ms: Some(timestamp),
            ..
        }) => Ok(timestamp),
        Err(e) => Err(e.into()),
    }
}

async fn get_sth(State(s): State<Arc<CtState>>) -> Result<Json<Value>, AppError> {
    let head = s.log.head();
    // RFC 6962: an STH carries the current time; never below the head's batch timestamp, so
    // it is at least every SCT timestamp in the tree even if the clock stepped back.
    let timestamp = s.log.clock().unix_ms().max(head.timestamp_ms);
    let sig = digitally_signed(
        &s.key,
        &sct::tree_head_signed_data(timestamp, head.size, &head.root),
    )?;
    Ok(Json(json!({
        "tree_size": head.size,
        "timestamp": timestamp,
        "sha256_root_hash": STANDARD.encode(head.root),
        "tree_head_signature": STANDARD.encode(sct::encode_digitally_signed(&sig).map_err(sct_err)?),
    })))
}

/// The head as a signed note (the log's note key; cosigned when witnessing is configured): RFC
/// 6962's STH has no room for cosignatures, so witnessed CT heads are read here.
async fn checkpoint(State(s): State<Arc<CtState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        s.log.head().checkpoint.clone(),
    )
}

#[derive(Deserialize)]
struct ConsistencyQuery {
    first: Option<u64>,
    second: Option<u64>,
}

async fn get_sth_consistency(
    State(s): State<Arc<CtState>>,
    q: Result<Query<ConsistencyQuery>, QueryRejection>,
) -> Result<Json<Value>, AppError> {
    let Query(q) = q.map_err(|e| AppError::bad_request(e.body_text()))?;
    let (Some(first), Some(second)) = (q.first, q.second) else {
        return Err(AppError::bad_request(
            "first and second tree sizes are required",
        ));
    };
    if first > second {
        return Err(AppError::bad_request(
            "first must not be larger than second",
        ));
    }
    let proof = if first == 0 || first == second {
        Vec::new()
    } else {
        s.log.consistency_proof(first, second).await?
    };
    Ok(Json(
        json!({"consistency": proof.iter().map(|h| STANDARD.encode(h)).collect::<Vec<_>>()}),
    ))
}

#[derive(Deserialize)]
struct ProofByHashQuery {
    hash: Option<String>,
    tree_size: Option<u64>,
}

async fn get_proof_by_hash(
    State(s): State<Arc<CtState>>,
    q: Result<Query<ProofByHashQuery>, QueryRejection>,
) -> Result<Json<Value>, AppError> {
    let Query(q) = q.map_err(|e| AppError::bad_request(e.body_text()))?;
    let (Some(hash), Some(size)) = (q.hash, q.tree_size) else {
        return Err(AppError::bad_request("hash and tree_size are required"));
    };
    let leaf: Hash = STANDARD
        .decode(&hash)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| AppError::bad_request("hash must be a base64 SHA-256 leaf hash"))?;
    let index = s
        .log
        .index_of_leaf(&leaf)
        .await?
        .ok_or_else(|| AppError::not_found("no entry with that leaf hash"))?;
    if index >= size {
        return Err(AppError::bad_request(format!(
            "the entry (index {index}) is not in a tree of size {size}"
        )));
    }
    let proof = s.log.inclusion_proof(index, size).await?;
    Ok(Json(json!({
        "leaf_index": index,
        "audit_path": proof.iter().map(|h| STANDARD.encode(h)).collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize)]
struct EntriesQuery {
    start: Option<u64>,
    end: Option<u64>,
}

async fn get_entries(
    State(s): State<Arc<CtState>>,
    q: Result<Query<EntriesQuery>, QueryRejection>,
) -> Result<Json<Value>, AppError> {
    let Query(q) = q.map_err(|e| AppError::bad_request(e.body_text()))?;
    let (Some(start), Some(end)) = (q.start, q.end) else {
        return Err(AppError::bad_request("start and end are required"));
    };
    let size = s.log.head().size;
    if start > end || start >= size {
        return Err(AppError::bad_request(format!(
            "start ({start}) must be <= end ({end}) and < the tree size ({size})"
        )));
    }
    let end = end.min(size - 1).min(start + 255);
    let rows = s.log.entries(start, end + 1).await?;
    let entries: Vec<Value> = rows
        .iter()
        .map(|r| json!({"leaf_input": STANDARD.encode(&r.data), "extra_data": STANDARD.encode(&r.extra)}))
        .collect();
    Ok(Json(json!({ "entries": entries })))
}

async fn get_roots(State(s): State<Arc<CtState>>) -> Json<Value> {
    Json(json!({"certificates": s.roots.iter().map(|r| STANDARD.encode(r)).collect::<Vec<_>>()}))
}
