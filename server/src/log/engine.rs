//! The Merkle log engine: one sequencer task per log batches submissions, assigns indexes,
//! extends the right edge of the tree in memory and commits entries, changed tiles and the
//! new signed checkpoint in ONE transaction guarded by compare-and-swap on the tree size.
//! Submitters are answered only after that commit: nothing is acknowledged before it is durable.
//!
//! Reads never touch leaves: proofs come from tiles (full tiles cached in memory as immutable
//! bytes, the current partial tiles kept by the sequencer).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sigil_core::checkpoint::{Checkpoint, sign_checkpoint};
use sigil_core::merkle::{self, Hash, NodeId};
use sigil_core::note::NoteSigner;
use sigil_core::tiles::{TileId, TileSet, TreeEdge, tiles_for_nodes};
use tokio::sync::{mpsc, oneshot};

use crate::storage::{Batch, CommitError, Db, NewEntry, StorageError};

/// Sequencer tuning.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Most entries committed in one transaction.
    pub max_batch: usize,
    /// How long the sequencer waits for more entries after the first of a batch.
    pub max_wait: Duration,
    /// Submissions queued beyond this are refused with 503.
    pub queue_capacity: usize,
    /// Full tiles kept in memory (each at most 8 KiB).
    pub tile_cache_entries: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_batch: 1024,
            max_wait: Duration::from_millis(2),
            queue_capacity: 8192,
            tile_cache_entries: 16384,
        }
    }
}

/// What a log engine answers when it cannot append or read.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("entry already exists at index {index}")]
    Duplicate { index: u64 },
    #[error("the log is overloaded; retry later")]
    Overloaded,
    #[error("{0}")]
    InvalidArgs(String),
    #[error("the log is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("{0}")]
    Internal(String),
}

/// A submission: `data` is the Merkle leaf input; `extra` is stored beside it.
pub struct Submission {
    pub data: Vec<u8>,
    pub extra: Vec<u8>,
    pub search_keys: Vec<String>,
}

/// The result of a durable append.
#[derive(Clone, Debug)]
pub struct Appended {
    pub index: u64,
    pub leaf_hash: Hash,
    pub integrated_time: i64,
    /// The checkpoint that first contained the entry.
    pub tree: Arc<TreeHead>,
}

/// A committed, signed tree head.
#[derive(Debug)]
pub struct TreeHead {
    pub size: u64,
    pub root: Hash,
    /// The signed checkpoint note.
    pub checkpoint: Vec<u8>,
}

struct Pending {
    leaf_hash: Hash,
    sub: Submission,
    reply: oneshot::Sender<Result<Appended, EngineError>>,
}

struct Shared {
    db: Db,
    log_id: String,
    tree_id: i64,
    origin: String,
    head: RwLock<Arc<TreeHead>>,
    /// Current partial tiles by (level, index), as of `head`.
    partials: RwLock<Partials>,
    full_tiles: Mutex<Partials>,
    config: EngineConfig,
    queued: std::sync::atomic::AtomicUsize,
}

/// A handle on one log; cheap to clone.
#[derive(Clone)]
pub struct LogEngine {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Pending>,
}

fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

fn now_ms() -> i64 {
    i64::try_from(now().as_millis()).unwrap_or(i64::MAX)
}

impl LogEngine {
    /// Open (creating if needed) the log `log_id` and start its sequencer.
    /// `origin_prefix` names the log in checkpoints: the origin is `<prefix> - <tree id>`.
    pub async fn open(
        db: Db,
        log_id: &str,
        origin_prefix: &str,
        signer: Arc<dyn NoteSigner + Send + Sync>,
        config: EngineConfig,
    ) -> Result<LogEngine, EngineError> {
        let row = match db.load_log(log_id).await? {
            Some(row) => row,
            None => {
                // Positive 63-bit tree id, as Rekor prints them.
                let tree_id = i64::try_from(rand::random::<u64>() >> 1).unwrap_or(1);
                let origin = format!("{origin_prefix} - {tree_id}");
                let note = sign_head(&origin, 0, merkle::empty_root(), signer.as_ref())?;
                db.create_log(log_id, tree_id, merkle::empty_root(), &note, now_ms())
                    .await?
            }
        };
        let origin = format!("{origin_prefix} - {}", row.tree_id);
        let (edge, partials) = load_edge(&db, log_id, row.tree_size).await?;
        if edge.root() != row.root_hash {
            return Err(EngineError::Internal(format!(
                "log {log_id}: stored tiles give a root that differs from the checkpoint at size {}",
                row.tree_size
            )));
        }
        let shared = Arc::new(Shared {
            db,
            log_id: log_id.to_string(),
            tree_id: row.tree_id,
            origin,
            head: RwLock::new(Arc::new(TreeHead {
                size: row.tree_size,
                root: row.root_hash,
                checkpoint: row.checkpoint,
            })),
            partials: RwLock::new(partials),
            full_tiles: Mutex::new(HashMap::new()),
            config: config.clone(),
            queued: std::sync::atomic::AtomicUsize::new(0),
        });
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        tokio::spawn(sequencer(shared.clone(), edge, rx, signer));
        Ok(LogEngine { shared, tx })
    }

    pub fn log_id(&self) -> &str {
        &self.shared.log_id
    }
    pub fn tree_id(&self) -> i64 {
        self.shared.tree_id
    }
    pub fn origin(&self) -> &str {
        &self.shared.origin
    }
    pub fn db(&self) -> &Db {
        &self.shared.db
    }
    /// Submissions waiting for the sequencer.
    pub fn queue_depth(&self) -> usize {
        self.shared
            .queued
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The latest committed tree head.
    pub fn head(&self) -> Arc<TreeHead> {
        match self.shared.head.read() {
            Ok(h) => h.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Append an entry; returns once it is committed. A known leaf answers `Duplicate`.
    /// Duplicates are found by the sequencer, once per batch (one query), rather than by a
    /// lookup per request: that round trip was the largest per-entry database cost.
    pub async fn append(&self, sub: Submission) -> Result<Appended, EngineError> {
        let leaf_hash = merkle::leaf_hash(&sub.data);
        let (reply, rx) = oneshot::channel();
        let pending = Pending {
            leaf_hash,
            sub,
            reply,
        };
        // Counted before sending so the sequencer never subtracts what was not yet added.
        self.shared
            .queued
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Err(e) = self.tx.try_send(pending) {
            self.shared
                .queued
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            return Err(match e {
                mpsc::error::TrySendError::Full(_) => EngineError::Overloaded,
                mpsc::error::TrySendError::Closed(_) => EngineError::ShuttingDown,
            });
        }
        rx.await.map_err(|_| EngineError::ShuttingDown)?
    }

    /// Inclusion proof of `index` in the tree of `size` (≤ the current size).
    pub async fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, EngineError> {
        self.check_size(size)?;
        let nodes = merkle::inclusion_proof_nodes(index, size).map_err(proof_args)?;
        let tiles = self.tile_set(&nodes, size).await?;
        merkle::inclusion_proof(index, size, &tiles)
            .map_err(|e| EngineError::Internal(e.to_string()))
    }

    /// Consistency proof between two tree sizes (both ≤ the current size).
    pub async fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, EngineError> {
        self.check_size(new)?;
        let nodes = merkle::consistency_proof_nodes(old, new).map_err(proof_args)?;
        let tiles = self.tile_set(&nodes, new).await?;
        merkle::consistency_proof(old, new, &tiles)
            .map_err(|e| EngineError::Internal(e.to_string()))
    }

    /// The root hash of the tree at an earlier size, from tiles.
    pub async fn root_at(&self, size: u64) -> Result<Hash, EngineError> {
        self.check_size(size)?;
        let nodes = merkle::tree_hash_nodes(size);
        let tiles = self.tile_set(&nodes, size).await?;
        merkle::tree_hash(size, &tiles).map_err(|e| EngineError::Internal(e.to_string()))
    }

    fn check_size(&self, size: u64) -> Result<(), EngineError> {
        let current = self.head().size;
        if size > current {
            return Err(EngineError::InvalidArgs(format!(
                "tree size {size} is larger than the log's current size {current}"
            )));
        }
        Ok(())
    }

    /// A tile's bytes at the width it has at `tile.width` (served for tile reads too).
    pub async fn tile(&self, tile: TileId) -> Result<Option<Arc<Vec<u8>>>, EngineError> {
        let key = (tile.level, tile.index);
        let need = usize::from(tile.width) * 32;
        if let Ok(cache) = self.shared.full_tiles.lock()
            && let Some(t) = cache.get(&key)
        {
            return Ok(Some(truncated(t, need)));
        }
        if !tile.is_full()
            && let Ok(p) = self.shared.partials.read()
            && let Some(t) = p.get(&key)
            && t.len() >= need
        {
            return Ok(Some(truncated(t, need)));
        }
        let mut rows = self
            .shared
            .db
            .read_tiles(&self.shared.log_id, &[key])
            .await?;
        let Some(data) = rows.remove(&key) else {
            return Ok(None);
        };
        let data = Arc::new(data);
        if data.len() == 256 * 32 {
            self.cache_full(key, data.clone());
        }
        if data.len() < need {
            return Ok(None);
        }
        Ok(Some(truncated(&data, need)))
    }

    fn cache_full(&self, key: (u8, u64), data: Arc<Vec<u8>>) {
        if let Ok(mut cache) = self.shared.full_tiles.lock() {
            if cache.len() >= self.shared.config.tile_cache_entries {
                // Crude but bounded: the working set (recent tiles, upper levels) refills quickly.
                cache.clear();
            }
            cache.insert(key, data);
        }
    }

    async fn tile_set(&self, nodes: &[NodeId], size: u64) -> Result<TileSet, EngineError> {
        let mut set = TileSet::new();
        for tile in tiles_for_nodes(nodes, size) {
            let data = self.tile(tile).await?.ok_or_else(|| {
                EngineError::Internal(format!("tile {} missing from storage", tile.path()))
            })?;
            set.insert(tile, data.as_ref().clone())
                .map_err(|e| EngineError::Internal(e.to_string()))?;
        }
        Ok(set)
    }
}

fn proof_args(e: merkle::ProofError<()>) -> EngineError {
    match e {
        merkle::ProofError::InvalidArgs(m) => EngineError::InvalidArgs(m),
        merkle::ProofError::Source(()) => EngineError::Internal("proof source".into()),
    }
}

fn truncated(t: &Arc<Vec<u8>>, len: usize) -> Arc<Vec<u8>> {
    if t.len() == len {
        t.clone()
    } else {
        Arc::new(t.get(..len).unwrap_or(t.as_slice()).to_vec())
    }
}

fn sign_head(
    origin: &str,
    size: u64,
    root: Hash,
    signer: &(dyn NoteSigner + Send + Sync),
) -> Result<Vec<u8>, EngineError> {
    let cp = Checkpoint {
        origin: origin.to_string(),
        size,
        root_hash: root,
        extensions: Vec::new(),
    };
    let note = sign_checkpoint(&cp, signer)
        .map_err(|e| EngineError::Internal(format!("signing checkpoint: {e}")))?;
    Ok(note.to_bytes())
}

/// Tile bytes by (level, index).
type Partials = HashMap<(u8, u64), Arc<Vec<u8>>>;

async fn load_edge(db: &Db, log_id: &str, size: u64) -> Result<(TreeEdge, Partials), EngineError> {
    let ids = TreeEdge::right_edge_tiles(size);
    let keys: Vec<(u8, u64)> = ids.iter().map(|t| (t.level, t.index)).collect();
    let mut rows = db.read_tiles(log_id, &keys).await?;
    let mut tiles = Vec::with_capacity(ids.len());
    let mut partials = HashMap::new();
    for t in ids {
        let data = rows.remove(&(t.level, t.index)).ok_or_else(|| {
            EngineError::Internal(format!(
                "log {log_id}: right-edge tile {} missing",
                t.path()
            ))
        })?;
        let need = usize::from(t.width) * 32;
        let data = data.get(..need).map(<[u8]>::to_vec).ok_or_else(|| {
            EngineError::Internal(format!(
                "log {log_id}: tile {} shorter than expected",
                t.path()
            ))
        })?;
        partials.insert((t.level, t.index), Arc::new(data.clone()));
        tiles.push((t, data));
    }
    let edge = TreeEdge::from_partial_tiles(size, &tiles)
        .map_err(|e| EngineError::Internal(format!("log {log_id}: {e}")))?;
    Ok((edge, partials))
}

/// Compare-and-swap losses a batch survives before its submitters get an error.
const MAX_CONFLICT_ATTEMPTS: u32 = 64;

async fn sequencer(
    shared: Arc<Shared>,
    mut edge: TreeEdge,
    mut rx: mpsc::Receiver<Pending>,
    signer: Arc<dyn NoteSigner + Send + Sync>,
) {
    let cfg = shared.config.clone();
    let mut batch: Vec<Pending> = Vec::with_capacity(cfg.max_batch);
    loop {
        batch.clear();
        let Some(first) = rx.recv().await else {
            return; // every sender dropped: shut down after draining.
        };
        batch.push(first);
        let deadline = tokio::time::Instant::now() + cfg.max_wait;
        while batch.len() < cfg.max_batch {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) if cfg.max_wait.is_zero() => break,
                Err(_) => match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(p)) => batch.push(p),
                    _ => break,
                },
            }
        }
        let left = shared
            .queued
            .fetch_sub(batch.len(), std::sync::atomic::Ordering::Relaxed)
            .saturating_sub(batch.len());
        crate::metrics::observe_batch(&shared.log_id, batch.len());
        crate::metrics::set_queue_depth(&shared.log_id, left);
        let mut attempts: u32 = 0;
        loop {
            attempts += 1;
            match commit(&shared, &mut edge, &mut batch, signer.as_ref()).await {
                Ok(()) => break,
                Err(CommitError::Conflict) if attempts < MAX_CONFLICT_ATTEMPTS => {
                    // Another sequencer won the compare-and-swap: reload the edge and retry.
                    // Each conflict means the log advanced, so retrying is progress; replicas
                    // under steady load lose several times in a row, and a small random pause
                    // breaks their lockstep.
                    tracing::warn!(log = %shared.log_id, "checkpoint moved concurrently; reloading");
                    if attempts > 1 {
                        let jitter = rand::random::<u64>() % (2 * u64::from(attempts.min(10)));
                        tokio::time::sleep(Duration::from_millis(jitter)).await;
                    }
                    if let Err(e) = reload(&shared, &mut edge).await {
                        fail_all(&mut batch, &format!("reloading the log: {e}"));
                        break;
                    }
                }
                Err(e) => {
                    tracing::error!(log = %shared.log_id, error = %e, "batch commit failed");
                    fail_all(&mut batch, &e.to_string());
                    if let Err(e) = reload(&shared, &mut edge).await {
                        tracing::error!(log = %shared.log_id, error = %e, "reload after failure failed");
                    }
                    break;
                }
            }
        }
    }
}

fn fail_all(batch: &mut Vec<Pending>, msg: &str) {
    for p in batch.drain(..) {
        let _ = p.reply.send(Err(EngineError::Internal(msg.to_string())));
    }
}

async fn reload(shared: &Shared, edge: &mut TreeEdge) -> Result<(), EngineError> {
    let row = shared
        .db
        .load_log(&shared.log_id)
        .await?
        .ok_or_else(|| EngineError::Internal("log row vanished".into()))?;
    let (new_edge, partials) = load_edge(&shared.db, &shared.log_id, row.tree_size).await?;
    *edge = new_edge;
    if let Ok(mut p) = shared.partials.write() {
        *p = partials;
    }
    if let Ok(mut h) = shared.head.write() {
        *h = Arc::new(TreeHead {
            size: row.tree_size,
            root: row.root_hash,
            checkpoint: row.checkpoint,
        });
    }
    Ok(())
}

/// Sequence and commit one batch; on success every waiter is answered and `batch` is drained.
async fn commit(
    shared: &Shared,
    edge: &mut TreeEdge,
    batch: &mut Vec<Pending>,
    signer: &(dyn NoteSigner + Send + Sync),
) -> Result<(), CommitError> {
    // Duplicates against the stored log (a racing batch may have committed them) and within the batch.
    let hashes: Vec<Hash> = batch.iter().map(|p| p.leaf_hash).collect();
    let existing = shared.db.existing_leaves(&shared.log_id, &hashes).await?;
    let old_size = edge.size();
    let mut next = edge.clone();
    let mut assigned: HashMap<Hash, u64> = HashMap::with_capacity(batch.len());
    // For each pending: Ok(index, new) or Err(existing index)
    let mut fate: Vec<Result<u64, u64>> = Vec::with_capacity(batch.len());
    for p in batch.iter() {
        if let Some(i) = existing.get(&p.leaf_hash) {
            fate.push(Err(*i));
        } else if let Some(i) = assigned.get(&p.leaf_hash) {
            fate.push(Err(*i));
        } else {
            let index = next.size();
            next.append(p.leaf_hash);
            assigned.insert(p.leaf_hash, index);
            fate.push(Ok(index));
        }
    }
    let new_size = next.size();
    let integrated_time = i64::try_from(now().as_secs()).unwrap_or(i64::MAX);
    if new_size == old_size {
        for (p, f) in batch.drain(..).zip(fate) {
            let index = match f {
                Ok(i) | Err(i) => i,
            };
            let _ = p.reply.send(Err(EngineError::Duplicate { index }));
        }
        return Ok(());
    }
    let root = next.root();
    let checkpoint = sign_head(&shared.origin, new_size, root, signer)
        .map_err(|e| StorageError::Corrupt(e.to_string()))?;
    let dirty = next.take_dirty_tiles();
    let entries: Vec<NewEntry<'_>> = batch
        .iter()
        .zip(&fate)
        .filter_map(|(p, f)| {
            f.ok().map(|index| NewEntry {
                index,
                leaf_hash: p.leaf_hash,
                data: &p.sub.data,
                extra: &p.sub.extra,
                integrated_time,
                search_keys: &p.sub.search_keys,
            })
        })
        .collect();
    let b = Batch {
        old_size,
        new_size,
        root_hash: root,
        checkpoint: &checkpoint,
        entries,
        tiles: dirty
            .iter()
            .map(|(t, d)| (t.level, t.index, d.clone()))
            .collect(),
        now_ms: now_ms(),
    };
    shared.db.commit_batch(&shared.log_id, &b).await?;
    drop(b);

    // Durable: publish the new head and tiles, then answer.
    *edge = next;
    for (t, data) in dirty {
        let key = (t.level, t.index);
        let data = Arc::new(data);
        if t.is_full() {
            if let Ok(mut p) = shared.partials.write() {
                p.remove(&key);
            }
            if let Ok(mut cache) = shared.full_tiles.lock()
                && cache.len() < shared.config.tile_cache_entries
            {
                cache.insert(key, data);
            }
        } else if let Ok(mut p) = shared.partials.write() {
            p.insert(key, data);
        }
    }
    let head = Arc::new(TreeHead {
        size: new_size,
        root,
        checkpoint,
    });
    if let Ok(mut h) = shared.head.write() {
        *h = head.clone();
    }
    crate::metrics::set_log_size(&shared.log_id, new_size);
    for (p, f) in batch.drain(..).zip(fate) {
        let reply = match f {
            Ok(index) => Ok(Appended {
                index,
                leaf_hash: p.leaf_hash,
                integrated_time,
                tree: head.clone(),
            }),
            Err(index) => Err(EngineError::Duplicate { index }),
        };
        let _ = p.reply.send(reply);
    }
    Ok(())
}
