//! The Rekor v1 API (what cosign 2, sigstore-python/-js with `majorApiVersion: 1` and rekor-cli
//! speak) on top of the log engine.

use std::collections::HashSet;
use std::sync::Arc;

use crate::routes::Api;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Value, json};
use sigil_core::crypto::{SigningKey, sha256};
use sigil_core::merkle::Hash;
use sigil_core::rekor::{self, EntryError, EntryRef};

use super::engine::{EngineError, LeafInput, LogEngine, LogView, Submission};
use crate::error::AppError;
use crate::storage::EntryRow;

/// The artifact log's identity: its signing key and the values derived from it.
pub struct LogKey {
    pub key: SigningKey,
    /// SHA-256 of the public key's SPKI DER: Rekor's log ID.
    pub log_id: [u8; 32],
    pub public_pem: String,
}

impl LogKey {
    pub fn new(key: SigningKey) -> Self {
        let public = key.public_key();
        let log_id = sha256(public.spki_der());
        let public_pem = public.to_pem();
        Self {
            key,
            log_id,
            public_pem,
        }
    }
    pub fn log_id_hex(&self) -> String {
        hex::encode(self.log_id)
    }
}

/// Shared state of the Rekor v1 handlers.
pub struct RekorState {
    /// Appends (the only write path).
    pub engine: LogEngine,
    /// Reads.
    pub log: LogView,
    pub key: LogKey,
    /// Search answers are capped at this many entries.
    pub max_search_results: i64,
}

impl RekorState {
    pub fn new(engine: LogEngine, key: LogKey, max_search_results: i64) -> Self {
        Self {
            log: engine.view().clone(),
            engine,
            key,
            max_search_results,
        }
    }

    /// The tree ID of the active shard: a random positive 63-bit integer drawn when the log was
    /// created and kept in the database (`logs.tree_id`); the 16-hex prefix of every entry ID.
    fn tree_id(&self) -> i64 {
        self.log.tree_id()
    }

    /// The public key of the shard with this tree ID, if this log has it. One shard today; a
    /// log that rotates its tree keeps the previous ones here (and in `inactiveShards`), and
    /// `tree_id`-addressed reads go to the shard named.
    fn shard_public_key(&self, tree_id: i64) -> Option<&str> {
        (tree_id == self.tree_id()).then_some(self.key.public_pem.as_str())
    }

    /// A `treeID` query parameter as Rekor takes it (decimal); `None` when absent or empty.
    fn requested_tree(&self, raw: Option<&str>) -> Result<Option<i64>, AppError> {
        let Some(raw) = raw.filter(|r| !r.is_empty()) else {
            return Ok(None);
        };
        let id = raw
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| raw.parse::<i64>().ok())
            .flatten()
            .ok_or_else(|| {
                AppError::bad_request(format!(
                    "treeID must be a decimal 64-bit integer, got {raw:?}"
                ))
            })?;
        if self.shard_public_key(id).is_none() {
            return Err(AppError::bad_request(format!(
                "{id} is not a tree ID of this log (its tree is {})",
                self.tree_id()
            )));
        }
        Ok(Some(id))
    }

    /// The leaf an entry reference names in this log's shards: `Ok(None)` for an entry ID of a
    /// tree this log does not have (not found), `Err` for a malformed reference.
    fn resolve(&self, id: &str) -> Result<Option<Hash>, AppError> {
        match rekor::parse_entry_ref(id).map_err(AppError::BadRequest)? {
            EntryRef::Uuid(leaf) => Ok(Some(leaf)),
            EntryRef::EntryId { tree_id, leaf } => Ok(self.shard_public_key(tree_id).map(|_| leaf)),
        }
    }
}

/// Routes of the Rekor v1 API.
pub fn router(state: Arc<RekorState>) -> Api {
    Api::new()
        .get("/api/v1/log", get_log)
        .get("/api/v1/log/publicKey", get_public_key)
        .get("/api/v1/log/proof", get_proof)
        .post("/api/v1/log/entries", create_entry)
        .get("/api/v1/log/entries", get_entry_by_index)
        .get("/api/v1/log/entries/{id}", get_entry_by_uuid)
        .post("/api/v1/log/entries/retrieve", retrieve_entries)
        .post("/api/v1/log/entries/retrieve/", retrieve_entries)
        .post("/api/v1/index/retrieve", search_index)
        .with_state(state)
}

impl From<EngineError> for AppError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Duplicate { index, .. } => AppError::Conflict {
                message: format!("an equivalent entry already exists in the log at index {index}"),
                location: None,
            },
            EngineError::Overloaded => AppError::Unavailable {
                message:
                    "the log is busy: too many entries are waiting to be sequenced; retry shortly"
                        .into(),
                retry_after_secs: 1,
            },
            EngineError::ShuttingDown => AppError::Unavailable {
                message: "the log is shutting down; retry shortly".into(),
                retry_after_secs: 5,
            },
            EngineError::InvalidArgs(m) => AppError::BadRequest(m),
            EngineError::Storage(e) => AppError::internal(e),
            EngineError::Internal(m) => AppError::Internal(m),
        }
    }
}

fn body_json(body: Result<Bytes, BytesRejection>) -> Result<Value, AppError> {
    let bytes = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::TooLarge("request body is larger than the log accepts".into())
        } else {
            AppError::bad_request(format!("could not read the request body: {e}"))
        }
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| AppError::bad_request(format!("request body is not valid JSON: {e}")))
}

async fn get_log(State(s): State<Arc<RekorState>>) -> Json<Value> {
    let head = s.log.head();
    Json(json!({
        "rootHash": hex::encode(head.root),
        "treeSize": head.size,
        "signedTreeHead": String::from_utf8_lossy(&head.checkpoint),
        "treeID": s.log.tree_id().to_string(),
        "inactiveShards": [],
    }))
}

#[derive(Deserialize)]
struct TreeQuery {
    #[serde(rename = "treeID")]
    tree_id: Option<String>,
}

async fn get_public_key(
    State(s): State<Arc<RekorState>>,
    q: Result<Query<TreeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, AppError> {
    let Query(q) = q.map_err(|e| AppError::bad_request(e.body_text()))?;
    let pem = match s.requested_tree(q.tree_id.as_deref())? {
        Some(id) => s.shard_public_key(id).unwrap_or_default(),
        None => s.key.public_pem.as_str(),
    };
    Ok((
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        pem.to_string(),
    )
        .into_response())
}

#[derive(Deserialize)]
struct ProofQuery {
    #[serde(rename = "firstSize")]
    first_size: Option<String>,
    #[serde(rename = "lastSize")]
    last_size: Option<String>,
    #[serde(rename = "treeID")]
    tree_id: Option<String>,
}

fn parse_size(v: &Option<String>, name: &str) -> Result<Option<u64>, AppError> {
    v.as_deref()
        .map(|s| {
            s.parse::<u64>().map_err(|_| {
                AppError::bad_request(format!("{name} must be a non-negative integer, got {s:?}"))
            })
        })
        .transpose()
}

async fn get_proof(
    State(s): State<Arc<RekorState>>,
    q: Result<Query<ProofQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, AppError> {
    let Query(q) = q.map_err(|e| AppError::bad_request(e.body_text()))?;
    // One shard: a valid treeID can only name the active tree.
    s.requested_tree(q.tree_id.as_deref())?;
    let first = parse_size(&q.first_size, "firstSize")?.unwrap_or(1);
    let last = parse_size(&q.last_size, "lastSize")?
        .ok_or_else(|| AppError::bad_request("lastSize is required"))?;
    if first == 0 || first > last {
        return Err(AppError::bad_request(format!(
            "firstSize ({first}) must be at least 1 and not larger than lastSize ({last})"
        )));
    }
    let hashes = s.log.consistency_proof(first, last).await?;
    let root = s.log.root_at(last).await?;
    Ok(Json(json!({
        "rootHash": hex::encode(root),
        "hashes": hashes.iter().map(hex::encode).collect::<Vec<_>>(),
    })))
}

fn entry_error(e: EntryError) -> AppError {
    AppError::BadRequest(e.to_string())
}

async fn create_entry(
    State(s): State<Arc<RekorState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    let proposed = body_json(body)?;
    // Verification happens here, outside the sequencer, on the handler's task.
    let canonical = rekor::canonicalize(&proposed).map_err(entry_error)?;
    let entry_id = rekor::entry_id(tree_id_u64(&s), &canonical.uuid());
    let appended = match s
        .engine
        .append(Submission {
            leaf: LeafInput::Fixed(canonical.body.clone()),
            extra: Vec::new(),
            search_keys: canonical.search_keys,
        })
        .await
    {
        Ok(a) => a,
        Err(EngineError::Duplicate { index, .. }) => {
            return Err(AppError::Conflict {
                message: format!(
                    "an equivalent entry already exists in the log at index {index} (entry {entry_id})"
                ),
                location: Some(format!("/api/v1/log/entries/{entry_id}")),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let row = EntryRow {
        index: appended.index,
        leaf_hash: appended.leaf_hash,
        data: canonical.body,
        extra: Vec::new(),
        integrated_time: appended.integrated_time,
    };
    let entry = log_entry(
        &s,
        &row,
        Some(appended.tree.size),
        Some(appended.tree.checkpoint.clone()),
    )
    .await?;
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/log/entries/{entry_id}")) {
        headers.insert(header::LOCATION, v);
    }
    // As Rekor: the entry ID, unquoted.
    if let Ok(v) = HeaderValue::from_str(&entry_id) {
        headers.insert(header::ETAG, v);
    }
    Ok((
        StatusCode::CREATED,
        headers,
        Json(json!({ entry_id: entry })),
    )
        .into_response())
}

fn tree_id_u64(s: &RekorState) -> u64 {
    u64::try_from(s.tree_id()).unwrap_or(0)
}

/// A Rekor `LogEntry` with its signed entry timestamp and an inclusion proof in the latest
/// (or the given) checkpoint.
async fn log_entry(
    s: &RekorState,
    row: &EntryRow,
    size: Option<u64>,
    checkpoint: Option<Vec<u8>>,
) -> Result<Value, AppError> {
    let (size, checkpoint) = match (size, checkpoint) {
        (Some(n), Some(c)) => (n, c),
        _ => {
            let head = s.log.head();
            (head.size, head.checkpoint.clone())
        }
    };
    let proof = s.log.inclusion_proof(row.index, size).await?;
    let root =
        sigil_core::merkle::root_from_inclusion_proof(&row.leaf_hash, row.index, size, &proof)
            .map_err(|e| AppError::Internal(format!("stored proof does not verify: {e}")))?;
    let log_id = s.key.log_id_hex();
    let set = s
        .key
        .key
        .sign(&rekor::set_payload(
            &row.data,
            row.integrated_time,
            &log_id,
            row.index,
        ))
        .map_err(AppError::internal)?;
    Ok(json!({
        "body": STANDARD.encode(&row.data),
        "integratedTime": row.integrated_time,
        "logID": log_id,
        "logIndex": row.index,
        "verification": {
            "signedEntryTimestamp": STANDARD.encode(set),
            "inclusionProof": {
                "logIndex": row.index,
                "rootHash": hex::encode(root),
                "treeSize": size,
                "hashes": proof.iter().map(hex::encode).collect::<Vec<_>>(),
                "checkpoint": String::from_utf8_lossy(&checkpoint),
            }
        }
    }))
}

async fn entry_json(s: &RekorState, row: &EntryRow) -> Result<Value, AppError> {
    let uuid = hex::encode(row.leaf_hash);
    let id = rekor::entry_id(tree_id_u64(s), &uuid);
    Ok(json!({ id: log_entry(s, row, None, None).await? }))
}

#[derive(Deserialize)]
struct IndexQuery {
    #[serde(rename = "logIndex")]
    log_index: Option<String>,
}

async fn get_entry_by_index(
    State(s): State<Arc<RekorState>>,
    q: Result<Query<IndexQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, AppError> {
    let Query(q) = q.map_err(|e| AppError::bad_request(e.body_text()))?;
    let raw = q
        .log_index
        .ok_or_else(|| AppError::bad_request("logIndex query parameter is required"))?;
    let index: u64 = raw.parse().map_err(|_| {
        AppError::bad_request(format!(
            "logIndex must be a non-negative integer, got {raw:?}"
        ))
    })?;
    let row = fetch_index(&s, index).await?;
    Ok(Json(entry_json(&s, &row).await?))
}

async fn fetch_index(s: &RekorState, index: u64) -> Result<EntryRow, AppError> {
    let size = s.log.head().size;
    if index >= size {
        return Err(AppError::not_found(format!(
            "no entry at logIndex {index}: the log has {size} entries"
        )));
    }
    s.log
        .entry(index)
        .await?
        .ok_or_else(|| AppError::not_found(format!("no entry at logIndex {index}")))
}

async fn fetch_leaf(s: &RekorState, leaf: &Hash) -> Result<Option<EntryRow>, AppError> {
    let Some(index) = s.log.index_of_leaf(leaf).await? else {
        return Ok(None);
    };
    if index >= s.log.head().size {
        // Committed by another replica after our head; not yet visible here.
        return Ok(None);
    }
    Ok(Some(fetch_index(s, index).await?))
}

async fn get_entry_by_uuid(
    State(s): State<Arc<RekorState>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, AppError> {
    let Path(id) = id.map_err(|e| AppError::bad_request(e.body_text()))?;
    let leaf = s.resolve(&id)?.ok_or_else(|| {
        AppError::not_found(format!(
            "no entry {id}: its tree ID is not this log's; entry IDs here start with {:016x}",
            s.tree_id()
        ))
    })?;
    let row = fetch_leaf(&s, &leaf)
        .await?
        .ok_or_else(|| AppError::not_found(format!("no entry with UUID {}", hex::encode(leaf))))?;
    Ok(Json(entry_json(&s, &row).await?))
}

const MAX_RETRIEVE: usize = 100;

async fn retrieve_entries(
    State(s): State<Arc<RekorState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, AppError> {
    let req = body_json(body)?;
    let obj = req.as_object().ok_or_else(|| {
        AppError::bad_request("body must be an object {entries?, entryUUIDs?, logIndexes?}")
    })?;
    let mut rows: Vec<EntryRow> = Vec::new();
    let list = |key: &str| -> Result<Vec<Value>, AppError> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) if a.len() <= MAX_RETRIEVE => Ok(a.clone()),
            Some(Value::Array(_)) => Err(AppError::bad_request(format!(
                "{key}: at most {MAX_RETRIEVE} items per request"
            ))),
            Some(_) => Err(AppError::bad_request(format!("{key} must be an array"))),
        }
    };
    for u in list("entryUUIDs")? {
        let u = u
            .as_str()
            .ok_or_else(|| AppError::bad_request("entryUUIDs must be strings"))?;
        // An entry ID of a tree this log does not have matches nothing, as in Rekor.
        if let Some(leaf) = s.resolve(u)? {
            rows.extend(fetch_leaf(&s, &leaf).await?);
        }
    }
    for i in list("logIndexes")? {
        let i = i
            .as_u64()
            .ok_or_else(|| AppError::bad_request("logIndexes must be non-negative integers"))?;
        if i < s.log.head().size {
            rows.push(fetch_index(&s, i).await?);
        }
    }
    for e in list("entries")? {
        let canonical = rekor::canonicalize(&e).map_err(entry_error)?;
        rows.extend(fetch_leaf(&s, &canonical.leaf_hash()).await?);
    }
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        out.push(entry_json(&s, row).await?);
    }
    Ok(Json(Value::Array(out)))
}

/// How the criteria of a search combine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operator {
    And,
    Or,
}

/// A non-empty string field of a search query; empty strings count as absent, as in Rekor.
fn query_str<'a>(
    obj: &'a serde_json::Map<String, Value>,
    key: &str,
) -> Result<Option<&'a str>, AppError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(v)) if v.is_empty() => Ok(None),
        Some(Value::String(v)) => Ok(Some(v)),
        Some(_) => Err(AppError::bad_request(format!("{key} must be a string"))),
    }
}

/// Longest `subject` Rekor takes (its index key width).
const MAX_SUBJECT_LEN: usize = 512;

/// The search keys of an `/api/v1/index/retrieve` query and how to combine them. Each criterion
/// is one key; `or` (Rekor's default) answers the union of their entries, `and` the
/// intersection.
fn search_keys(req: &Value) -> Result<(Vec<String>, Operator), AppError> {
    let obj = req.as_object().ok_or_else(|| {
        AppError::bad_request(
            "body must be an object {hash?, publicKey?, email?, subject?, operator?}",
        )
    })?;
    let operator = match query_str(obj, "operator")? {
        None | Some("or") => Operator::Or,
        Some("and") => Operator::And,
        Some(other) => {
            return Err(AppError::bad_request(format!(
                "operator must be \"and\" or \"or\" (the default), got {other:?}"
            )));
        }
    };
    let mut keys = Vec::new();
    if let Some(h) = query_str(obj, "hash")? {
        keys.push(rekor::search_hash_key(h).map_err(AppError::BadRequest)?);
    }
    match obj.get("publicKey") {
        None | Some(Value::Null) => {}
        Some(Value::Object(pk)) => {
            match query_str(pk, "format")? {
                None | Some("x509") => {}
                Some(other) => {
                    return Err(AppError::bad_request(format!(
                        "publicKey.format {other:?} is not supported by this log: only x509 \
                         (PEM public keys and certificates) is"
                    )));
                }
            }
            let content = query_str(pk, "content")?.ok_or_else(|| {
                AppError::bad_request("publicKey.content (base64 of a PEM key) is required")
            })?;
            let pem = STANDARD.decode(content).map_err(|e| {
                AppError::bad_request(format!("publicKey.content is not base64: {e}"))
            })?;
            let v = rekor::parse_verifier(&pem, "publicKey.content").map_err(entry_error)?;
            keys.push(format!(
                "sha256:{}",
                hex::encode(sha256(v.canonical_pem.as_bytes()))
            ));
        }
        Some(_) => {
            return Err(AppError::bad_request(
                "publicKey must be an object {format, content}",
            ));
        }
    }
    if let Some(email) = query_str(obj, "email")? {
        let (local, domain) = email.split_once('@').unwrap_or_default();
        if local.is_empty() || domain.is_empty() || email.chars().any(char::is_whitespace) {
            return Err(AppError::bad_request(format!(
                "email {email:?} is not an e-mail address"
            )));
        }
        keys.push(email.to_lowercase());
    }
    if let Some(subject) = query_str(obj, "subject")? {
        if subject.len() > MAX_SUBJECT_LEN {
            return Err(AppError::bad_request(format!(
                "subject is {} bytes long; at most {MAX_SUBJECT_LEN}",
                subject.len()
            )));
        }
        keys.push(subject.to_lowercase());
    }
    if keys.is_empty() {
        return Err(AppError::bad_request(
            "give at least one of hash, publicKey, email or subject",
        ));
    }
    Ok((keys, operator))
}

async fn search_index(
    State(s): State<Arc<RekorState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, AppError> {
    let (keys, operator) = search_keys(&body_json(body)?)?;
    let mut result: Option<Vec<Hash>> = None;
    for k in &keys {
        let found = s.log.search(k, s.max_search_results).await?;
        result = Some(match (result, operator) {
            (None, _) => found,
            (Some(prev), Operator::And) => {
                let found: HashSet<Hash> = found.into_iter().collect();
                prev.into_iter().filter(|h| found.contains(h)).collect()
            }
            (Some(mut prev), Operator::Or) => {
                let mut seen: HashSet<Hash> = prev.iter().copied().collect();
                prev.extend(found.into_iter().filter(|h| seen.insert(*h)));
                prev
            }
        });
    }
    let tree = tree_id_u64(&s);
    let cap = usize::try_from(s.max_search_results).unwrap_or(usize::MAX);
    let ids: Vec<String> = result
        .unwrap_or_default()
        .iter()
        .take(cap)
        .map(|h| rekor::entry_id(tree, &hex::encode(h)))
        .collect();
    Ok(Json(json!(ids)))
}
