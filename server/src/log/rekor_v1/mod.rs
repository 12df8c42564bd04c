//! The Rekor v1 API (what cosign 2, sigstore-python/-js with `majorApiVersion: 1` and rekor-cli
//! speak) on top of the log engine.

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

mod search;
pub mod set;
pub use set::sealer as set_sealer;

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
        to_hex(&self.log_id)
    }
}

/// One tree of the log. The active shard takes the appends; the inactive ones (left by
/// `rotate rekor`) are read-only. As in Rekor, an entry's `logIndex` counts across shards
/// (`offset`: the entries of the shards before) while its inclusion proof's is the index in its
/// own tree.
pub struct Shard {
    pub log: LogView,
    pub key: LogKey,
    pub offset: u64,
}

/// Shared state of the Rekor v1 handlers.
pub struct RekorState {
    /// Appends (the only write path).
    pub engine: LogEngine,
    /// Reads of the active shard.
    pub log: LogView,
    pub key: LogKey,
    /// The active shard's first global log index.
    pub offset: u64,
    /// Read-only shards, oldest first.
    pub inactive: Vec<Shard>,
    /// Search answers are capped at this many entries.
    pub max_search_results: i64,
    /// Who may append (`None`: anyone).
    pub admission: Option<Arc<crate::access::Admission>>,
}

impl RekorState {
    /// `inactive`: the retired shards, oldest first, each given with its view and key.
    pub fn new(
        engine: LogEngine,
        key: LogKey,
        max_search_results: i64,
        inactive: Vec<(LogView, LogKey)>,
    ) -> Self {
        let mut offset = 0;
        let inactive = inactive
            .into_iter()
            .map(|(log, key)| {
                let shard = Shard { log, key, offset };
                offset += shard.log.head().size;
                shard
            })
            .collect();
        Self {
            log: engine.view().clone(),
            engine,
            key,
            offset,
            inactive,
            max_search_results,
            admission: None,
        }
    }

    /// The active shard's tree ID.
    fn tree_id(&self) -> i64 {
        self.log.tree_id()
    }

    /// The active shard (the fields are kept apart for the write path).
    fn active(&self) -> ShardRef<'_> {
        ShardRef {
            log: &self.log,
            key: &self.key,
            offset: self.offset,
        }
    }

    /// Every shard, the active one first.
    fn shards(&self) -> Vec<ShardRef<'_>> {
        let mut all = vec![self.active()];
        all.extend(self.inactive.iter().rev().map(|s| ShardRef {
            log: &s.log,
            key: &s.key,
            offset: s.offset,
        }));
        all
    }

    /// The shard with this tree ID, if this log has it.
    fn shard(&self, tree_id: i64) -> Option<ShardRef<'_>> {
        self.shards().into_iter().find(|s| s.tree_id() == tree_id)
    }

    /// The public key of the shard with this tree ID, if this log has it.
    fn shard_public_key(&self, tree_id: i64) -> Option<&str> {
        self.shard(tree_id).map(|s| s.key.public_pem.as_str())
    }

    /// The shard holding the entry at global log index `global`.
    fn shard_of_index(&self, global: u64) -> Option<ShardRef<'_>> {
        self.shards().into_iter().find(|s| s.holds(global))
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

    /// The leaf an entry reference names and the shards to look for it in (every shard for a
    /// bare UUID, the named one for an entry ID): no shard for an entry ID of a tree this log
    /// does not have (not found), `Err` for a malformed reference.
    fn resolve(&self, id: &str) -> Result<(Hash, Vec<ShardRef<'_>>), AppError> {
        match rekor::parse_entry_ref(id).map_err(AppError::BadRequest)? {
            EntryRef::Uuid(leaf) => Ok((leaf, self.shards())),
            EntryRef::EntryId { tree_id, leaf } => {
                Ok((leaf, self.shard(tree_id).into_iter().collect()))
            }
        }
    }
}

/// A shard as handlers read it.
#[derive(Clone, Copy)]
struct ShardRef<'a> {
    log: &'a LogView,
    key: &'a LogKey,
    offset: u64,
}

impl ShardRef<'_> {
    /// The shard's tree ID: a random positive 63-bit integer drawn when it was created and kept
    /// in the database (`logs.tree_id`); the 16-hex prefix of its entry IDs.
    fn tree_id(&self) -> i64 {
        self.log.tree_id()
    }

    fn tree_u64(&self) -> u64 {
        u64::try_from(self.tree_id()).unwrap_or(0)
    }

    /// Whether the entry at global log index `global` is in this shard.
    fn holds(&self, global: u64) -> bool {
        global >= self.offset && global - self.offset < self.log.head().size
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
        .post("/api/v1/index/retrieve", search::search_index)
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
            EngineError::Unpublished(m) => AppError::Unavailable {
                message: format!(
                    "the entry is durable but not yet published: the log publishes only \
                     checkpoints its witnesses cosigned ({m}); retry shortly"
                ),
                retry_after_secs: 5,
            },
            EngineError::ShuttingDown => AppError::Unavailable {
                message: "the log is shutting down; retry shortly".into(),
                retry_after_secs: 5,
            },
            EngineError::InvalidArgs(m) => AppError::BadRequest(m),
            EngineError::Storage(e) => e.into(),
            EngineError::Internal(m) | EngineError::Diverged(m) => AppError::Internal(m),
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
        "inactiveShards": s.inactive.iter().map(|sh| {
            let head = sh.log.head();
            json!({
                "rootHash": hex::encode(head.root),
                "treeSize": head.size,
                "signedTreeHead": String::from_utf8_lossy(&head.checkpoint),
                "treeID": sh.log.tree_id().to_string(),
            })
        }).collect::<Vec<_>>(),
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
    let shard = match s.requested_tree(q.tree_id.as_deref())? {
        Some(id) => s.shard(id).unwrap_or_else(|| s.active()),
        None => s.active(),
    };
    let first = parse_size(&q.first_size, "firstSize")?.unwrap_or(1);
    let last = parse_size(&q.last_size, "lastSize")?
        .ok_or_else(|| AppError::bad_request("lastSize is required"))?;
    if first == 0 || first > last {
        return Err(AppError::bad_request(format!(
            "firstSize ({first}) must be at least 1 and not larger than lastSize ({last})"
        )));
    }
    let hashes = shard.log.consistency_proof(first, last).await?;
    let root = shard.log.root_at(last).await?;
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
    request_headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    let proposed = body_json(body)?;
    // Verification happens here, outside the sequencer, on the handler's task.
    let canonical = rekor::canonicalize(&proposed).map_err(entry_error)?;
    if let Some(a) = &s.admission {
        a.admit(&canonical.signers, &request_headers).await?;
    }
    let entry_id = rekor::entry_id(s.active().tree_u64(), &canonical.uuid());
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
        extra: appended.extra,
        integrated_time: appended.integrated_time,
    };
    let entry = log_entry(
        s.active(),
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

/// A Rekor `LogEntry` with its signed entry timestamp and an inclusion proof in the latest
/// (or the given) checkpoint.
async fn log_entry(
    s: ShardRef<'_>,
    row: &EntryRow,
    size: Option<u64>,
    checkpoint: Option<Vec<u8>>,
) -> Result<LogEntry, AppError> {
    let (size, checkpoint) = match (size, checkpoint) {
        (Some(n), Some(c)) => (n, c),
        _ => {
            let head = s.log.head();
            (head.size, head.checkpoint.clone())
        }
    };
    let proof = s.log.inclusion_proof(row.index, size).await?;
    render_entry(s, row, size, &checkpoint, &proof)
}

/// An entry read with its inclusion proof in the checkpoint it was read at.
struct Proven {
    row: EntryRow,
    size: u64,
    checkpoint: Vec<u8>,
    proof: Vec<Hash>,
}

fn render_entry(
    s: ShardRef<'_>,
    row: &EntryRow,
    size: u64,
    checkpoint: &[u8],
    proof: &[Hash],
) -> Result<LogEntry, AppError> {
    let root =
        sigil_core::merkle::root_from_inclusion_proof(&row.leaf_hash, row.index, size, proof)
            .map_err(|e| AppError::Internal(format!("stored proof does not verify: {e}")))?;
    let set = match set::stored(&row.extra, &s.key.log_id, s.offset) {
        Some(stored) => stored.to_vec(),
        None => set::sign(s.key, &row.data, row.integrated_time, s.offset, row.index)
            .map_err(AppError::Internal)?,
    };
    Ok(LogEntry {
        body: STANDARD.encode(&row.data),
        integrated_time: row.integrated_time,
        log_id: s.key.log_id_hex(),
        log_index: s.offset + row.index,
        verification: Verification {
            inclusion_proof: InclusionProof {
                checkpoint: String::from_utf8_lossy(checkpoint).into_owned(),
                hashes: proof.iter().map(|h| to_hex(h)).collect(),
                log_index: row.index,
                root_hash: to_hex(&root),
                tree_size: size,
            },
            signed_entry_timestamp: STANDARD.encode(set),
        },
    })
}

/// A Rekor `LogEntry`, serialised directly (no intermediate JSON value on the read path). The
/// fields are in the order the JSON value gave them: sorted by name.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct LogEntry {
    body: String,
    integrated_time: i64,
    #[serde(rename = "logID")]
    log_id: String,
    log_index: u64,
    verification: Verification,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Verification {
    inclusion_proof: InclusionProof,
    signed_entry_timestamp: String,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct InclusionProof {
    checkpoint: String,
    hashes: Vec<String>,
    log_index: u64,
    root_hash: String,
    tree_size: u64,
}

/// `{entryID: LogEntry}`, as Rekor answers a read.
struct EntryMap {
    id: String,
    entry: LogEntry,
}

impl serde::Serialize for EntryMap {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry(&self.id, &self.entry)?;
        m.end()
    }
}

/// Lowercase hex, as `hex::encode` spells it, without its per-character iterator (which was a
/// twentieth of the server's CPU on entry reads).
fn to_hex(bytes: &[u8]) -> String {
    let mut out = vec![0u8; bytes.len() * 2];
    if hex::encode_to_slice(bytes, &mut out).is_err() {
        return hex::encode(bytes);
    }
    String::from_utf8(out).unwrap_or_else(|_| hex::encode(bytes))
}

fn entry_json(s: ShardRef<'_>, p: &Proven) -> Result<EntryMap, AppError> {
    let uuid = to_hex(&p.row.leaf_hash);
    let id = rekor::entry_id(s.tree_u64(), &uuid);
    let entry = render_entry(s, &p.row, p.size, &p.checkpoint, &p.proof)?;
    Ok(EntryMap { id, entry })
}

#[derive(Deserialize)]
struct IndexQuery {
    #[serde(rename = "logIndex")]
    log_index: Option<String>,
}

async fn get_entry_by_index(
    State(s): State<Arc<RekorState>>,
    q: Result<Query<IndexQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<EntryMap>, AppError> {
    let Query(q) = q.map_err(|e| AppError::bad_request(e.body_text()))?;
    let raw = q
        .log_index
        .ok_or_else(|| AppError::bad_request("logIndex query parameter is required"))?;
    let index: u64 = raw.parse().map_err(|_| {
        AppError::bad_request(format!(
            "logIndex must be a non-negative integer, got {raw:?}"
        ))
    })?;
    let (shard, p) = fetch_global(&s, index).await?;
    Ok(Json(entry_json(shard, &p)?))
}

/// The entry at global log index `global` and its shard.
async fn fetch_global(s: &RekorState, global: u64) -> Result<(ShardRef<'_>, Proven), AppError> {
    let Some(shard) = s.shard_of_index(global) else {
        let size = s.offset + s.log.head().size;
        return Err(AppError::not_found(format!(
            "no entry at logIndex {global}: the log has {size} entries"
        )));
    };
    Ok((shard, fetch_index(shard, global - shard.offset).await?))
}

/// The entry at `index` in the shard's own tree, with its proof in the current checkpoint.
async fn fetch_index(s: ShardRef<'_>, index: u64) -> Result<Proven, AppError> {
    let head = s.log.head();
    let size = head.size;
    if index >= size {
        return Err(AppError::not_found(format!(
            "no entry at logIndex {}: the log has {} entries",
            s.offset + index,
            s.offset + size
        )));
    }
    let (row, proof) =
        s.log.entry_with_proof(index, size).await?.ok_or_else(|| {
            AppError::not_found(format!("no entry at logIndex {}", s.offset + index))
        })?;
    Ok(Proven {
        row,
        size,
        checkpoint: head.checkpoint.clone(),
        proof,
    })
}

async fn fetch_leaf(s: ShardRef<'_>, leaf: &Hash) -> Result<Option<Proven>, AppError> {
    let Some(index) = s.log.index_of_leaf(leaf).await? else {
        return Ok(None);
    };
    if index >= s.log.head().size {
        // Committed by another replica after our head; not yet visible here.
        return Ok(None);
    }
    Ok(Some(fetch_index(s, index).await?))
}

/// The first of `shards` that holds `leaf`, with the entry.
async fn find_leaf<'a>(
    shards: &[ShardRef<'a>],
    leaf: &Hash,
) -> Result<Option<(ShardRef<'a>, Proven)>, AppError> {
    for sh in shards {
        if let Some(row) = fetch_leaf(*sh, leaf).await? {
            return Ok(Some((*sh, row)));
        }
    }
    Ok(None)
}

async fn get_entry_by_uuid(
    State(s): State<Arc<RekorState>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<EntryMap>, AppError> {
    let Path(id) = id.map_err(|e| AppError::bad_request(e.body_text()))?;
    let (leaf, shards) = s.resolve(&id)?;
    if shards.is_empty() {
        return Err(AppError::not_found(format!(
            "no entry {id}: its tree ID is not this log's; entry IDs here start with {:016x}",
            s.tree_id()
        )));
    }
    let (shard, p) = find_leaf(&shards, &leaf)
        .await?
        .ok_or_else(|| AppError::not_found(format!("no entry with UUID {}", hex::encode(leaf))))?;
    Ok(Json(entry_json(shard, &p)?))
}

const MAX_RETRIEVE: usize = 100;

async fn retrieve_entries(
    State(s): State<Arc<RekorState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Vec<EntryMap>>, AppError> {
    let req = body_json(body)?;
    let obj = req.as_object().ok_or_else(|| {
        AppError::bad_request("body must be an object {entries?, entryUUIDs?, logIndexes?}")
    })?;
    let mut rows: Vec<(ShardRef<'_>, Proven)> = Vec::new();
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
        let (leaf, shards) = s.resolve(u)?;
        rows.extend(find_leaf(&shards, &leaf).await?);
    }
    for i in list("logIndexes")? {
        let i = i
            .as_u64()
            .ok_or_else(|| AppError::bad_request("logIndexes must be non-negative integers"))?;
        if s.shard_of_index(i).is_some() {
            rows.push(fetch_global(&s, i).await?);
        }
    }
    for e in list("entries")? {
        let canonical = rekor::canonicalize(&e).map_err(entry_error)?;
        rows.extend(find_leaf(&s.shards(), &canonical.leaf_hash()).await?);
    }
    let mut out = Vec::with_capacity(rows.len());
    for (shard, p) in &rows {
        out.push(entry_json(*shard, p)?);
    }
    Ok(Json(out))
}
