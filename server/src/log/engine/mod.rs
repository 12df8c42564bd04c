//! The Merkle log engine: one sequencer per log batches submissions, assigns indexes and one
//! timestamp per batch, extends the right edge of the tree in memory and commits entries,
//! changed tiles and the new signed checkpoint in ONE transaction guarded by compare-and-swap on
//! the tree size (`sequencer.rs`). Submitters are answered only after that commit: nothing is
//! acknowledged before it is durable.
//!
//! Handlers append through [`LogEngine`] and read through [`LogView`] (`view.rs`), which serves
//! only committed state and never touches leaves for proofs: they come from tiles (full tiles
//! cached in memory as immutable bytes, the current partial tiles kept by the sequencer).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use sigil_core::merkle::{self, Hash, NodeId};
use sigil_core::note::NoteSigner;
use tokio::sync::{mpsc, oneshot};

use crate::clock::{self, Clock};
use crate::storage::{NewLog, StorageError, Store};

pub mod journal;
mod recover;
pub mod replica;
pub mod search_privacy;
mod sequencer;
pub mod summaries;
mod view;
pub mod witnessing;

#[cfg(test)]
mod tests;

pub use recover::recover;
pub use replica::{ReadRouting, Source};
pub use search_privacy::{IdentitySearch, SearchPrivacy};
pub use view::LogView;

/// Where the sequencer journals what it commits (see [`journal`]).
#[derive(Clone, Debug)]
pub struct JournalConfig {
    pub dir: std::path::PathBuf,
    /// Keep each batch's entries too (what recovery re-appends), not only its checkpoint.
    pub entries: bool,
}

/// Sequencer tuning, and the clock it reads.
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
    /// Proof node hashes kept in memory (about 50 bytes each). The default holds every node
    /// above the summarised tiles of a log of about 3·10^7 entries.
    pub node_cache_entries: usize,
    /// How often an idle sequencer looks for entries other processes committed to the same
    /// database (zero: never; then its head moves only with its own commits).
    pub head_refresh: Duration,
    /// The checkpoint journal; `None`: none (a restored old backup then goes undetected).
    pub journal: Option<JournalConfig>,
    /// Reads from a hot standby too (see [`replica`]).
    pub replica: Option<Arc<ReadRouting>>,
    /// Identities in the search index as keyed hashes, or not at all (see [`search_privacy`]);
    /// `None`: as they are.
    pub search_privacy: Option<Arc<SearchPrivacy>>,
    /// Where batch timestamps come from.
    pub clock: Arc<dyn Clock>,
    /// Witnesses that cosign each checkpoint before it is published (see [`witnessing`]).
    pub witnessing: Option<Arc<witnessing::Witnessing>>,
    /// Computes each entry's stored `extra` once its index and time are assigned (Rekor v1:
    /// the signed entry timestamp, so reads need not sign); `None`: the submission's own.
    pub sealer: Option<Sealer>,
}

/// `(index, integrated time, leaf input) → extra`, run by the sequencer for every entry it adds
/// (again if the batch is sequenced again). An error fails the batch (a signing key fault).
#[derive(Clone)]
pub struct Sealer(pub Arc<SealFn>);

pub type SealFn = dyn Fn(u64, i64, &[u8]) -> Result<Vec<u8>, String> + Send + Sync;

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer")
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_batch: 1024,
            max_wait: Duration::from_millis(2),
            queue_capacity: 8192,
            tile_cache_entries: 4096,
            node_cache_entries: 1 << 18,
            head_refresh: Duration::from_millis(500),
            journal: None,
            replica: None,
            search_privacy: None,
            clock: clock::system(),
            witnessing: None,
            sealer: None,
        }
    }
}

/// What a log engine answers when it cannot append or read.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The leaf is already in the log. `timestamp_ms` is set for a timestamped leaf: the
    /// timestamp its bytes hold (the same leaf, so the same timestamp as the stored one).
    #[error("entry already exists at index {index}")]
    Duplicate {
        index: u64,
        timestamp_ms: Option<u64>,
    },
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
    /// The database and the journal disagree: opening the log would fork it.
    #[error("{0}")]
    Diverged(String),
    /// Committed, but not published: too few witnesses cosigned the checkpoint.
    #[error("{0}")]
    Unpublished(String),
}

/// Builds a leaf from the batch timestamp (milliseconds since the epoch); an error refuses that
/// submission alone, with the message as a 400.
pub type LeafBuilder = Arc<dyn Fn(u64) -> Result<Vec<u8>, String> + Send + Sync>;

/// The Merkle leaf input of a submission.
pub enum LeafInput {
    /// Bytes that do not depend on when the entry is sequenced (Rekor bodies).
    Fixed(Vec<u8>),
    /// Bytes that hold the sequencing timestamp (an RFC 6962 `MerkleTreeLeaf`): the sequencer
    /// builds them with its batch timestamp, again if the batch is sequenced again.
    Timestamped(LeafBuilder),
}

/// A submission: the leaf, and `extra` bytes and search keys stored beside it.
pub struct Submission {
    pub leaf: LeafInput,
    pub extra: Vec<u8>,
    pub search_keys: Vec<String>,
}

/// The result of a durable append.
#[derive(Clone, Debug)]
pub struct Appended {
    pub index: u64,
    pub leaf_hash: Hash,
    /// The batch timestamp, in milliseconds (what a timestamped leaf holds) ...
    pub timestamp_ms: u64,
    /// ... and in seconds (Rekor's integrated time).
    pub integrated_time: i64,
    /// The entry's stored `extra` (the sealer's, if the log has one).
    pub extra: Vec<u8>,
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
    /// The timestamp of the batch that made this tree (ms; for a log that was only created, the
    /// creation time).
    pub timestamp_ms: u64,
}

impl TreeHead {
    /// The head a stored log row names.
    fn from_row(row: crate::storage::LogRow) -> Self {
        TreeHead {
            size: row.tree_size,
            root: row.root_hash,
            checkpoint: row.checkpoint,
            timestamp_ms: u64::try_from(row.timestamp_ms).unwrap_or(0),
        }
    }
}

/// Tile bytes by (level, index).
type Tiles = HashMap<(u8, u64), Arc<Vec<u8>>>;

/// What the sequencer, the handle and the views share.
struct Shared {
    /// The request runtime's database handle (the sequencer has its own).
    store: Store,
    log_name: String,
    tree_id: i64,
    origin: String,
    head: RwLock<Arc<TreeHead>>,
    /// Current partial tiles by (level, index), as of `head`.
    partials: RwLock<Tiles>,
    full_tiles: Mutex<Tiles>,
    /// Hashes of complete subtrees served in proofs. A complete node never changes, and most
    /// are folded from up to 128 tile hashes; every fresh entry's proof shares its upper
    /// nodes with its neighbours', so each is hashed once instead of once per response.
    nodes: Mutex<HashMap<NodeId, Hash, NodeHashing>>,
    /// Full level-0 tiles as the nodes proofs need (see [`summaries`]).
    summaries: Arc<summaries::Summaries>,
    config: EngineConfig,
    queued: AtomicUsize,
    /// Heads published, with when this process saw each (dates a standby's lag).
    history: Mutex<replica::HeadHistory>,
    /// The standby view of this log, if reads may go to one.
    replica: std::sync::OnceLock<Arc<replica::Replica>>,
}

impl Shared {
    fn head(&self) -> Arc<TreeHead> {
        match self.head.read() {
            Ok(h) => h.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Publishes a new head to readers.
    fn set_head(&self, head: Arc<TreeHead>) {
        if let Ok(mut h) = self.history.lock() {
            h.record(head.size);
        }
        if let Ok(mut h) = self.head.write() {
            *h = head;
        }
    }
}

/// The handle through which entries are appended to one log; cheap to clone.
#[derive(Clone)]
pub struct LogEngine {
    view: LogView,
    tx: mpsc::Sender<sequencer::Pending>,
}

impl LogEngine {
    /// Open (creating if needed) the log `log_name` and start its sequencer.
    /// `origin_prefix` names the log in checkpoints: the origin is `<prefix> - <tree id>`.
    pub async fn open(
        store: Store,
        log_name: &str,
        origin_prefix: &str,
        signer: Arc<dyn NoteSigner + Send + Sync>,
        config: EngineConfig,
    ) -> Result<LogEngine, EngineError> {
        let row = match store.load_log(log_name).await? {
            Some(row) => row,
            None => {
                // A random positive 63-bit tree ID, like a Trillian tree's (0 is not a valid one).
                let tree_id = i64::try_from(rand::random::<u64>() >> 1)
                    .unwrap_or(1)
                    .max(1);
                let origin = format!("{origin_prefix} - {tree_id}");
                let note = sequencer::sign_head(&origin, 0, merkle::empty_root(), signer.as_ref())?;
                let new = NewLog {
                    tree_id,
                    empty_root: merkle::empty_root(),
                    checkpoint: &note,
                    timestamp_ms: to_i64(config.clock.unix_ms()),
                };
                store.create_log(log_name, &new).await?
            }
        };
        let origin = format!("{origin_prefix} - {}", row.tree_id);
        let (edge, partials) =
            sequencer::load_edge(store.as_ref(), log_name, row.tree_size).await?;
        if edge.root() != row.root_hash {
            return Err(EngineError::Internal(format!(
                "log {log_name}: stored tiles give a root that differs from the checkpoint at size {}",
                row.tree_size
            )));
        }
        let journal = match &config.journal {
            Some(j) => {
                let (journal, last) = journal::Journal::open(&j.dir, log_name, j.entries)
                    .map_err(EngineError::Internal)?;
                if let Some(last) = last {
                    recover::check(store.as_ref(), log_name, &row, &last, journal.path()).await?;
                }
                Some(journal)
            }
            None => None,
        };
        if let Some(p) = &config.search_privacy {
            let n = p.upgrade_index(store.as_ref(), log_name).await?;
            if n > 0 {
                tracing::info!(
                    log = log_name,
                    rows = n,
                    "identities in the search index are now keyed hashes"
                );
            }
        }
        let shared = Arc::new(Shared {
            store,
            log_name: log_name.to_string(),
            tree_id: row.tree_id,
            origin,
            head: RwLock::new(Arc::new(TreeHead::from_row(row))),
            partials: RwLock::new(partials),
            full_tiles: Mutex::new(HashMap::new()),
            nodes: Mutex::new(HashMap::with_hasher(NodeHashing::default())),
            summaries: Arc::default(),
            config: config.clone(),
            queued: AtomicUsize::new(0),
            history: Mutex::new(replica::HeadHistory::default()),
            replica: std::sync::OnceLock::new(),
        });
        if let Ok(mut h) = shared.history.lock() {
            h.record(shared.head().size);
        }
        if let Some(routing) = &config.replica {
            let r = replica::open(&shared, routing).await?;
            let _ = shared.replica.set(r);
        }
        tokio::spawn(summaries::warm(shared.clone()));
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        sequencer::start(shared.clone(), edge, rx, signer, journal)?;
        Ok(LogEngine {
            view: LogView::new(shared),
            tx,
        })
    }

    /// The read side of this log.
    pub fn view(&self) -> &LogView {
        &self.view
    }

    /// Append an entry; returns once it is committed. A known leaf answers `Duplicate`.
    /// Duplicates are found by the sequencer, once per batch (one query), rather than by a
    /// lookup per request: that round trip was the largest per-entry database cost.
    pub async fn append(&self, mut sub: Submission) -> Result<Appended, EngineError> {
        if let Some(p) = &self.view.shared().config.search_privacy {
            sub.search_keys = p.store_keys(std::mem::take(&mut sub.search_keys));
        }
        let (reply, rx) = oneshot::channel();
        let pending = sequencer::Pending::new(sub, reply);
        let shared = self.view.shared();
        // Counted before sending so the sequencer never subtracts what was not yet added.
        shared.queued.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.tx.try_send(pending) {
            shared.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(match e {
                mpsc::error::TrySendError::Full(_) => EngineError::Overloaded,
                mpsc::error::TrySendError::Closed(_) => EngineError::ShuttingDown,
            });
        }
        rx.await.map_err(|_| EngineError::ShuttingDown)?
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The node cache's hasher. A node is two small integers, which SipHash took longer to hash
/// than the lookup it served; a folded multiply does it in a few cycles. Seeded per process, so
/// which nodes share a bucket cannot be chosen by whoever picks the entries to read.
#[derive(Clone)]
pub(crate) struct NodeHashing(u64);

impl Default for NodeHashing {
    fn default() -> Self {
        NodeHashing(rand::random())
    }
}

impl std::hash::BuildHasher for NodeHashing {
    type Hasher = NodeHasher;
    fn build_hasher(&self) -> NodeHasher {
        NodeHasher(self.0)
    }
}

pub(crate) struct NodeHasher(u64);

impl std::hash::Hasher for NodeHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        let m = u128::from(self.0 ^ n) * 0x9e37_79b9_7f4a_7c15;
        self.0 = (m as u64) ^ ((m >> 64) as u64);
    }
}
