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
    /// Proof node hashes kept in memory (about 50 bytes each).
    pub node_cache_entries: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_batch: 1024,
            max_wait: Duration::from_millis(2),
            queue_capacity: 8192,
            tile_cache_entries: 16384,
            node_cache_entries: 1 << 16,
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
    /// Hashes of complete subtrees served in proofs. A complete node never changes, and most
    /// are folded from up to 128 tile hashes; every fresh entry's proof shares its upper
    /// nodes with its neighbours', so each is hashed once instead of once per response.
    nodes: Mutex<HashMap<NodeId, Hash>>,
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
                // A random positive 63-bit tree ID, like a Trillian tree's (0 is not a valid one).
                let tree_id = i64::try_from(rand::random::<u64>() >> 1)
                    .unwrap_or(1)
                    .max(1);
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
            nodes: Mutex::new(HashMap::new()),
            config: config.clone(),
            queued: std::sync::atomic::AtomicUsize::new(0),
        });
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        // The sequencer gets a thread and runtime of its own: on the request runtime its
        // wake-ups (commit done, next submission) queued behind every request task, and that
        // wait, not the database, set the length of a commit cycle under load.
        let seq_shared = shared.clone();
        std::thread::Builder::new()
            .name(format!("sequencer-{log_id}"))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start the sequencer runtime");
                        return;
                    }
                };
                rt.block_on(async move {
                    let db = seq_shared.db.for_own_runtime(2);
                    sequencer(seq_shared, db, edge, rx, signer).await;
                });
            })
            .map_err(|e| EngineError::Internal(format!("cannot start the sequencer: {e}")))?;
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
        let known = self.node_hashes(&nodes, size).await?;
        merkle::inclusion_proof(index, size, &known)
            .map_err(|e| EngineError::Internal(e.to_string()))
    }

    /// Consistency proof between two tree sizes (both ≤ the current size).
    pub async fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, EngineError> {
        self.check_size(new)?;
        let nodes = merkle::consistency_proof_nodes(old, new).map_err(proof_args)?;
        let known = self.node_hashes(&nodes, new).await?;
        merkle::consistency_proof(old, new, &known)
            .map_err(|e| EngineError::Internal(e.to_string()))
    }

    /// The root hash of the tree at an earlier size, from tiles.
    pub async fn root_at(&self, size: u64) -> Result<Hash, EngineError> {
        self.check_size(size)?;
        let nodes = merkle::tree_hash_nodes(size);
        let known = self.node_hashes(&nodes, size).await?;
        merkle::tree_hash(size, &known).map_err(|e| EngineError::Internal(e.to_string()))
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

    /// The hashes of complete nodes of the tree of `size`: from the node cache, else from tiles.
    async fn node_hashes(&self, nodes: &[NodeId], size: u64) -> Result<KnownNodes, EngineError> {
        let mut known = HashMap::with_capacity(nodes.len());
        let mut missing = Vec::new();
        if let Ok(cache) = self.shared.nodes.lock() {
            for n in nodes {
                match cache.get(n) {
                    Some(h) => {
                        known.insert(*n, *h);
                    }
                    None => missing.push(*n),
                }
            }
        } else {
            missing.extend_from_slice(nodes);
        }
        if !missing.is_empty() {
            let tiles = self.tile_set(&missing, size).await?;
            for n in &missing {
                let h = tiles
                    .node_hash(*n)
                    .map_err(|e| EngineError::Internal(e.to_string()))?;
                known.insert(*n, h);
            }
            if let Ok(mut cache) = self.shared.nodes.lock() {
                if cache.len() + missing.len() > self.shared.config.node_cache_entries {
                    // Bounded like the tile cache: the hot nodes (upper levels, the right
                    // edge) come straight back.
                    cache.clear();
                }
                for n in &missing {
                    if let Some(h) = known.get(n) {
                        cache.insert(*n, *h);
                    }
                }
            }
        }
        Ok(KnownNodes(known))
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

/// Node hashes looked up for one proof.
struct KnownNodes(HashMap<NodeId, Hash>);

impl merkle::HashSource for KnownNodes {
    type Error = String;
    fn node_hashes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>, String> {
        nodes
            .iter()
            .map(|n| {
                self.0
                    .get(n)
                    .copied()
                    .ok_or_else(|| format!("node {n:?} was not looked up"))
            })
            .collect()
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

/// A batch sequenced on top of a tree edge, ready to commit: indexes assigned, tiles and the
/// checkpoint computed and signed.
struct Prepared {
    batch: Vec<Pending>,
    /// Per pending: `Ok(new index)` or `Err(index of the existing entry)`.
    fate: Vec<Result<u64, u64>>,
    /// Leaves this batch adds, by index (duplicate detection for the batch sequenced after it).
    assigned: HashMap<Hash, u64>,
    old_size: u64,
    next: TreeEdge,
    root: Hash,
    checkpoint: Vec<u8>,
    dirty: Vec<(TileId, Vec<u8>)>,
    integrated_time: i64,
}

impl Prepared {
    fn adds_entries(&self) -> bool {
        self.next.size() > self.old_size
    }

    fn storage_batch(&self) -> Batch<'_> {
        let entries = self
            .batch
            .iter()
            .zip(&self.fate)
            .filter_map(|(p, f)| {
                f.ok().map(|index| NewEntry {
                    index,
                    leaf_hash: p.leaf_hash,
                    data: &p.sub.data,
                    extra: &p.sub.extra,
                    integrated_time: self.integrated_time,
                    search_keys: &p.sub.search_keys,
                })
            })
            .collect();
        Batch {
            old_size: self.old_size,
            new_size: self.next.size(),
            root_hash: self.root,
            checkpoint: &self.checkpoint,
            entries,
            tiles: self
                .dirty
                .iter()
                .map(|(t, d)| (t.level, t.index, d.clone()))
                .collect(),
            now_ms: now_ms(),
        }
    }
}

/// Receive into `into` until it holds `max_batch` submissions or `max_wait` has passed since the
/// call; `stop` (when given) ends the wait early. Returns false once every sender is gone.
async fn fill(
    shared: &Shared,
    rx: &mut mpsc::Receiver<Pending>,
    into: &mut Vec<Pending>,
    stop: Option<&tokio::sync::Notify>,
) -> bool {
    let cfg = &shared.config;
    let before = into.len();
    let deadline = tokio::time::Instant::now() + cfg.max_wait;
    let mut open = true;
    while into.len() < cfg.max_batch {
        match rx.try_recv() {
            Ok(p) => into.push(p),
            Err(mpsc::error::TryRecvError::Disconnected) => {
                open = false;
                break;
            }
            Err(_) if cfg.max_wait.is_zero() => break,
            Err(_) => {
                let next = tokio::time::timeout_at(deadline, rx.recv());
                let got = match stop {
                    Some(stop) => tokio::select! {
                        biased;
                        p = next => p,
                        _ = stop.notified() => break,
                    },
                    None => next.await,
                };
                match got {
                    Ok(Some(p)) => into.push(p),
                    Ok(None) => {
                        open = false;
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
    }
    dequeued(shared, into.len() - before);
    open
}

/// Account for `n` submissions taken off the queue.
fn dequeued(shared: &Shared, n: usize) {
    let left = shared
        .queued
        .fetch_sub(n, std::sync::atomic::Ordering::Relaxed)
        .saturating_sub(n);
    crate::metrics::set_queue_depth(&shared.log_id, left);
}

/// The sequencer commits batch N while it receives and prepares batch N+1 on top of N's (not yet
/// durable) tree, so duplicate lookup, hashing and checkpoint signing overlap the commit. Commits
/// stay strictly one after another, each guarded by its CAS; N+1 is sent only once N is durable,
/// and is re-prepared from scratch if N fails.
async fn sequencer(
    shared: Arc<Shared>,
    db: Db,
    mut edge: TreeEdge,
    mut rx: mpsc::Receiver<Pending>,
    signer: Arc<dyn NoteSigner + Send + Sync>,
) {
    let max_batch = shared.config.max_batch.max(1);
    // Received but not yet prepared, oldest first.
    let mut waiting: Vec<Pending> = Vec::new();
    // Prepared on top of `edge`.
    let mut ready: Option<Prepared> = None;
    let mut open = true;
    let mut attempts: u32 = 0;
    loop {
        let cur = match ready.take() {
            Some(p) => p,
            None => {
                if waiting.is_empty() {
                    if !open {
                        return;
                    }
                    let Some(first) = rx.recv().await else {
                        return; // every sender dropped: shut down after draining.
                    };
                    waiting.push(first);
                    dequeued(&shared, 1);
                    open = fill(&shared, &mut rx, &mut waiting, None).await;
                }
                let take = waiting.len().min(max_batch);
                let batch: Vec<Pending> = waiting.drain(..take).collect();
                match prepare(&shared, &db, &edge, None, batch, signer.as_ref()).await {
                    Ok(p) => p,
                    Err((mut batch, e)) => {
                        tracing::error!(log = %shared.log_id, error = %e, "preparing a batch failed");
                        fail_all(&mut batch, &e.to_string());
                        reload_or_log(&shared, &db, &mut edge).await;
                        continue;
                    }
                }
            }
        };
        crate::metrics::observe_batch(&shared.log_id, cur.batch.len());
        if !cur.adds_entries() {
            // Only duplicates: nothing to commit.
            answer(&shared, cur, None);
            continue;
        }

        let done = tokio::sync::Notify::new();
        let commit = async {
            let b = cur.storage_batch();
            let r = db.commit_batch(&shared.log_id, &b).await;
            done.notify_one();
            r
        };
        let following = async {
            let mut got = std::mem::take(&mut waiting);
            let mut still_open = open;
            if got.is_empty() && open {
                tokio::select! {
                    biased;
                    p = rx.recv() => match p {
                        Some(p) => {
                            got.push(p);
                            dequeued(&shared, 1);
                        }
                        None => still_open = false,
                    },
                    _ = done.notified() => {}
                }
            }
            if !got.is_empty() && still_open && got.len() < max_batch {
                still_open = fill(&shared, &mut rx, &mut got, Some(&done)).await;
            }
            if got.is_empty() {
                return (Vec::new(), None, still_open);
            }
            let take = got.len().min(max_batch);
            let batch: Vec<Pending> = got.drain(..take).collect();
            let prepared = prepare(
                &shared,
                &db,
                &cur.next,
                Some(&cur.assigned),
                batch,
                signer.as_ref(),
            )
            .await;
            (got, Some(prepared), still_open)
        };
        let (result, (rest, following, still_open)) = tokio::join!(commit, following);
        open = still_open;
        // What the following batch held goes back in front of the rest unless it stays prepared.
        let mut requeue: Vec<Pending> = Vec::new();
        match result {
            Ok(()) => {
                attempts = 0;
                edge = cur.next.clone();
                answer(&shared, cur, Some(&edge));
                match following {
                    Some(Ok(p)) => ready = Some(p),
                    Some(Err((batch, e))) => {
                        // Retried once without overlap; a second failure answers with an error.
                        tracing::warn!(log = %shared.log_id, error = %e, "preparing the next batch failed");
                        requeue = batch;
                    }
                    None => {}
                }
            }
            Err(e) => {
                let mut batch = cur.batch;
                match e {
                    CommitError::Conflict if attempts + 1 < MAX_CONFLICT_ATTEMPTS => {
                        attempts += 1;
                        // Another sequencer won the compare-and-swap: reload the edge and retry.
                        // Each conflict means the log advanced, so retrying is progress; replicas
                        // under steady load lose several times in a row, and a small random pause
                        // breaks their lockstep.
                        tracing::warn!(log = %shared.log_id, "checkpoint moved concurrently; reloading");
                        if attempts > 1 {
                            let jitter = rand::random::<u64>() % (2 * u64::from(attempts.min(10)));
                            tokio::time::sleep(Duration::from_millis(jitter)).await;
                        }
                        requeue = batch;
                    }
                    e => {
                        attempts = 0;
                        tracing::error!(log = %shared.log_id, error = %e, "batch commit failed");
                        fail_all(&mut batch, &e.to_string());
                    }
                }
                // The following batch was built on a tree that did not become durable.
                match following {
                    Some(Ok(p)) => requeue.extend(p.batch),
                    Some(Err((b, _))) => requeue.extend(b),
                    None => {}
                }
                reload_or_log(&shared, &db, &mut edge).await;
            }
        }
        requeue.extend(rest);
        requeue.append(&mut waiting);
        waiting = requeue;
    }
}

async fn reload_or_log(shared: &Shared, db: &Db, edge: &mut TreeEdge) {
    if let Err(e) = reload(shared, db, edge).await {
        tracing::error!(log = %shared.log_id, error = %e, "reloading the log failed");
    }
}

fn fail_all(batch: &mut Vec<Pending>, msg: &str) {
    for p in batch.drain(..) {
        let _ = p.reply.send(Err(EngineError::Internal(msg.to_string())));
    }
}

async fn reload(shared: &Shared, db: &Db, edge: &mut TreeEdge) -> Result<(), EngineError> {
    let row = db
        .load_log(&shared.log_id)
        .await?
        .ok_or_else(|| EngineError::Internal("log row vanished".into()))?;
    let (new_edge, partials) = load_edge(db, &shared.log_id, row.tree_size).await?;
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

/// Sequence `batch` on top of `base`: find duplicates (in the stored log, in `in_flight` — the
/// batch committing meanwhile — and within the batch), assign indexes, compute the changed tiles
/// and sign the new checkpoint. On failure the batch is handed back.
async fn prepare(
    shared: &Shared,
    db: &Db,
    base: &TreeEdge,
    in_flight: Option<&HashMap<Hash, u64>>,
    batch: Vec<Pending>,
    signer: &(dyn NoteSigner + Send + Sync),
) -> Result<Prepared, (Vec<Pending>, EngineError)> {
    // Duplicates against the stored log (a racing batch may have committed them).
    let hashes: Vec<Hash> = batch.iter().map(|p| p.leaf_hash).collect();
    let existing = match db.existing_leaves(&shared.log_id, &hashes).await {
        Ok(e) => e,
        Err(e) => return Err((batch, e.into())),
    };
    let old_size = base.size();
    let mut next = base.clone();
    let mut assigned: HashMap<Hash, u64> = HashMap::with_capacity(batch.len());
    let mut fate: Vec<Result<u64, u64>> = Vec::with_capacity(batch.len());
    for p in &batch {
        let known = existing
            .get(&p.leaf_hash)
            .or_else(|| in_flight.and_then(|m| m.get(&p.leaf_hash)))
            .or_else(|| assigned.get(&p.leaf_hash));
        if let Some(i) = known {
            fate.push(Err(*i));
        } else {
            let index = next.size();
            next.append(p.leaf_hash);
            assigned.insert(p.leaf_hash, index);
            fate.push(Ok(index));
        }
    }
    let integrated_time = i64::try_from(now().as_secs()).unwrap_or(i64::MAX);
    let root = next.root();
    let (checkpoint, dirty) = if next.size() == old_size {
        (Vec::new(), Vec::new())
    } else {
        match sign_head(&shared.origin, next.size(), root, signer) {
            Ok(c) => (c, next.take_dirty_tiles()),
            Err(e) => return Err((batch, e)),
        }
    };
    Ok(Prepared {
        batch,
        fate,
        assigned,
        old_size,
        next,
        root,
        checkpoint,
        dirty,
        integrated_time,
    })
}

/// Answer every submitter of a batch. `committed` is the edge after it when it was durable
/// (publish the new head and tiles first); `None` when the batch held only duplicates.
fn answer(shared: &Shared, p: Prepared, committed: Option<&TreeEdge>) {
    let Prepared {
        batch,
        fate,
        root,
        checkpoint,
        dirty,
        integrated_time,
        ..
    } = p;
    let head = match committed {
        Some(edge) => {
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
                size: edge.size(),
                root,
                checkpoint,
            });
            if let Ok(mut h) = shared.head.write() {
                *h = head.clone();
            }
            crate::metrics::set_log_size(&shared.log_id, edge.size());
            Some(head)
        }
        None => None,
    };
    for (p, f) in batch.into_iter().zip(fate) {
        let reply = match (f, &head) {
            (Ok(index), Some(head)) => Ok(Appended {
                index,
                leaf_hash: p.leaf_hash,
                integrated_time,
                tree: head.clone(),
            }),
            (Ok(index) | Err(index), _) => Err(EngineError::Duplicate { index }),
        };
        let _ = p.reply.send(reply);
    }
}
