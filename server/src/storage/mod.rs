//! Persistence of the Merkle logs behind [`LogStore`]: exactly what the log engine needs, with a
//! native driver per database, each writing its own SQL (`postgres.rs`: the batch as one
//! statement; `sqlite.rs`: one `BEGIN IMMEDIATE` transaction of multi-row inserts), and, for
//! tests, `memory.rs`, which injects faults into commits.
//!
//! Every table is keyed by a log name (e.g. `rekor`), so one database hosts several logs. The
//! SQL column is still called `log_id`, as in the first schema; in the code a log ID is only
//! ever the hash of a log's key.

use std::collections::HashMap;
use std::sync::Arc;

use sigil_core::merkle::Hash;

mod pg_batch;
mod pg_conns;
pub mod postgres;
pub mod sqlite;

#[cfg(test)]
pub mod memory;

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("database URL {0:?} is not supported: use postgres://… or sqlite://…")]
    UnsupportedUrl(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// Only the in-memory test store fails this way (an injected fault).
    #[cfg(test)]
    #[error("injected fault: {0}")]
    Injected(&'static str),
}

/// Why a batch commit did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// Another sequencer advanced the log first (compare-and-swap on the tree size failed),
    /// or committed one of the same leaves: reload and retry.
    #[error("the log moved on concurrently")]
    Conflict,
    /// The commit's outcome is unknown or it failed: the batch may or may not be durable.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The current state of a log.
#[derive(Clone, Debug)]
pub struct LogRow {
    pub tree_id: i64,
    pub tree_size: u64,
    pub root_hash: Hash,
    pub checkpoint: Vec<u8>,
    /// When the checkpoint was committed (ms since the epoch; the batch timestamp).
    pub timestamp_ms: i64,
}

/// A log to create: its tree ID and the signed checkpoint of the empty tree.
pub struct NewLog<'a> {
    pub tree_id: i64,
    pub empty_root: Hash,
    pub checkpoint: &'a [u8],
    pub timestamp_ms: i64,
}

/// One stored entry.
#[derive(Clone, Debug)]
pub struct EntryRow {
    pub index: u64,
    pub leaf_hash: Hash,
    pub data: Vec<u8>,
    pub extra: Vec<u8>,
    pub integrated_time: i64,
}

/// A new entry in a batch.
pub struct NewEntry<'a> {
    pub index: u64,
    pub leaf_hash: Hash,
    pub data: &'a [u8],
    pub extra: &'a [u8],
    pub search_keys: &'a [String],
}

/// Everything one sequencer batch writes, in one transaction.
pub struct Batch<'a> {
    /// The compare-and-swap: the batch applies only to a log of this size.
    pub old_size: u64,
    pub new_size: u64,
    pub root_hash: Hash,
    pub checkpoint: &'a [u8],
    pub entries: Vec<NewEntry<'a>>,
    /// (level, index, bytes)
    pub tiles: Vec<(u8, u64, Vec<u8>)>,
    /// The batch's one timestamp: every entry's integrated time (seconds) and the checkpoint's
    /// (milliseconds) are this instant.
    pub integrated_time: i64,
    pub timestamp_ms: i64,
}

/// What the log engine needs of a database. Every method is keyed by the log name.
#[async_trait::async_trait]
pub trait LogStore: Send + Sync + 'static {
    /// The same database for a task on a runtime of its own (the sequencer): a PostgreSQL
    /// connection is driven by the runtime that opened it, so such a task needs its own (at
    /// most `max_connections`) rather than wait on a busy request runtime.
    fn for_own_runtime(&self, max_connections: u32) -> Store;

    /// Readiness: the database answers.
    async fn ping(&self) -> Result<(), StorageError>;

    async fn load_log(&self, log_name: &str) -> Result<Option<LogRow>, StorageError>;

    /// Create an empty log unless it exists; returns the stored row either way.
    async fn create_log(&self, log_name: &str, new: &NewLog<'_>) -> Result<LogRow, StorageError>;

    /// Tiles by (level, index); missing ones are absent from the map.
    async fn read_tiles(
        &self,
        log_name: &str,
        ids: &[(u8, u64)],
    ) -> Result<HashMap<(u8, u64), Vec<u8>>, StorageError>;

    /// Which of these leaf hashes are already in the log, with their index.
    async fn existing_leaves(
        &self,
        log_name: &str,
        leaves: &[Hash],
    ) -> Result<HashMap<Hash, u64>, StorageError>;

    /// Commit a sequenced batch atomically, guarded by compare-and-swap on the tree size: a
    /// lost race (or a leaf committed meanwhile) writes nothing and answers `Conflict`.
    async fn commit_batch(&self, log_name: &str, batch: &Batch<'_>) -> Result<(), CommitError>;

    /// Entries with start <= index < end, in order.
    async fn entries_range(
        &self,
        log_name: &str,
        start: u64,
        end: u64,
    ) -> Result<Vec<EntryRow>, StorageError>;

    /// The entry at `index` and the leaf hashes of the entries `start <= i < end` (which
    /// include it): one read for an entry and the lower nodes of its proof. `None` when the
    /// entry is not stored.
    async fn entry_with_leaves(
        &self,
        log_name: &str,
        index: u64,
        start: u64,
        end: u64,
    ) -> Result<Option<(EntryRow, Vec<Hash>)>, StorageError> {
        let rows = self.entries_range(log_name, start, end).await?;
        let leaves = rows.iter().map(|r| r.leaf_hash).collect();
        Ok(rows
            .into_iter()
            .find(|r| r.index == index)
            .map(|r| (r, leaves)))
    }

    /// The index of one leaf (the per-request lookup).
    async fn index_of_leaf(&self, log_name: &str, leaf: &Hash)
    -> Result<Option<u64>, StorageError>;

    /// Every log the database holds, by name.
    async fn log_names(&self) -> Result<Vec<String>, StorageError>;

    /// Stored checkpoints of sizes above `after`, smallest first, at most `limit`:
    /// (tree size, root hash, signed note).
    async fn checkpoints_after(
        &self,
        log_name: &str,
        after: u64,
        limit: i64,
    ) -> Result<Vec<(u64, Hash, Vec<u8>)>, StorageError>;

    /// A per-log setting (`log_settings`), if set.
    async fn setting(&self, log_name: &str, name: &str) -> Result<Option<String>, StorageError>;

    async fn set_setting(
        &self,
        log_name: &str,
        name: &str,
        value: &str,
    ) -> Result<(), StorageError>;

    /// Distinct search keys greater than `after`, in order, at most `limit`.
    async fn search_keys_after(
        &self,
        log_name: &str,
        after: &str,
        limit: i64,
    ) -> Result<Vec<String>, StorageError>;

    /// Moves every index row of `old` to `new` (or deletes them when `new` is `None`), in one
    /// transaction; returns the rows moved.
    async fn rename_search_key(
        &self,
        log_name: &str,
        old: &str,
        new: Option<&str>,
    ) -> Result<u64, StorageError>;

    /// Leaf hashes indexed under `key`, at most `limit`.
    async fn search(
        &self,
        log_name: &str,
        key: &str,
        limit: i64,
    ) -> Result<Vec<Hash>, StorageError>;

    /// Replaces the stored note of the checkpoint at `size` (the head's too, if it is the head)
    /// with the same checkpoint carrying more signatures (witness cosignatures).
    async fn set_checkpoint(
        &self,
        log_name: &str,
        size: u64,
        checkpoint: &[u8],
    ) -> Result<(), StorageError>;

    /// A witness's latest cosigned checkpoint for `origin`: its size, root and signed note.
    async fn witness_latest(
        &self,
        origin: &str,
    ) -> Result<Option<(u64, Hash, Vec<u8>)>, StorageError>;

    /// Records `new` as the witness's latest checkpoint for `origin` if the stored one is still
    /// `old` (size and root; size 0 and the empty root: none stored), in one statement. False
    /// when another request moved it first: the caller must not cosign.
    async fn witness_advance(
        &self,
        origin: &str,
        old: (u64, &Hash),
        new: (u64, &Hash, &[u8]),
    ) -> Result<bool, StorageError>;
}

/// A database handle; cheap to clone.
pub type Store = Arc<dyn LogStore>;

/// Connect to `postgres://…` or `sqlite://…` (creating an SQLite file if needed) and apply
/// the migrations.
pub async fn connect(url: &str) -> Result<Store, StorageError> {
    open(url, true, DEFAULT_POOL).await
}

/// Connect to an existing database without migrating it (a hot standby is read-only): for
/// tools that only read, such as `fsck`.
pub async fn connect_existing(url: &str) -> Result<Store, StorageError> {
    open(url, false, DEFAULT_POOL).await
}

/// PostgreSQL connections shared by a process's requests unless configured.
const DEFAULT_POOL: u32 = 16;

/// What a serving process opens: `pool` PostgreSQL connections (`database.pool_size`),
/// migrating unless `existing` (a read-only standby).
pub async fn connect_serving(url: &str, pool: u32, existing: bool) -> Result<Store, StorageError> {
    open(url, !existing, pool).await
}

async fn open(url: &str, migrate: bool, pool: u32) -> Result<Store, StorageError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(
            postgres::PgStore::connect(url, migrate, pool).await?,
        ))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::connect(url, migrate).await?))
    } else {
        Err(StorageError::UnsupportedUrl(url.to_string()))
    }
}

fn to_hash(v: Vec<u8>) -> Result<Hash, StorageError> {
    v.try_into()
        .map_err(|_| StorageError::Corrupt("hash is not 32 bytes".into()))
}

fn to_u64(v: i64) -> Result<u64, StorageError> {
    u64::try_from(v).map_err(|_| StorageError::Corrupt(format!("negative value {v}")))
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A unique violation during a commit means a racing sequencer committed one of the same
/// leaves or indexes: a lost compare-and-swap like any other.
fn conflict_or_error(e: sqlx::Error) -> CommitError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => CommitError::Conflict,
        _ => CommitError::Storage(e.into()),
    }
}
