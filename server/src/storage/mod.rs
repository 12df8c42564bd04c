//! Persistence of the Merkle logs: PostgreSQL (production) and SQLite (the embedded default).
//!
//! One small API for what the log engine needs; SQL differs per backend only where the
//! dialects do (batched inserts). Every table is keyed by a log id, so one database hosts
//! several logs.

use std::collections::HashMap;
use std::str::FromStr;

use sigil_core::merkle::Hash;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, Row};

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
}

/// Why a batch commit did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// Another sequencer advanced the log first (compare-and-swap on the tree size failed),
    /// or committed one of the same leaves: reload and retry.
    #[error("the log moved on concurrently")]
    Conflict,
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
    pub integrated_time: i64,
    pub search_keys: &'a [String],
}

/// Everything one sequencer batch writes, in one transaction.
pub struct Batch<'a> {
    pub old_size: u64,
    pub new_size: u64,
    pub root_hash: Hash,
    pub checkpoint: &'a [u8],
    pub entries: Vec<NewEntry<'a>>,
    /// (level, index, bytes)
    pub tiles: Vec<(u8, u64, Vec<u8>)>,
    pub now_ms: i64,
}

/// A database handle.
#[derive(Clone, Debug)]
pub enum Db {
    Postgres(PgPool),
    Sqlite(SqlitePool),
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

impl Db {
    /// Connect (creating an SQLite file if needed) and apply migrations.
    pub async fn connect(url: &str) -> Result<Db, StorageError> {
        let db = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .connect_with(opts)
                .await?;
            Db::Postgres(pool)
        } else if let Some(rest) = url.strip_prefix("sqlite:") {
            let opts = SqliteConnectOptions::from_str(&format!("sqlite:{rest}"))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // FULL: a commit is on disk before it is acknowledged.
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(std::time::Duration::from_secs(10));
            let pool = SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(opts)
                .await?;
            Db::Sqlite(pool)
        } else {
            return Err(StorageError::UnsupportedUrl(url.to_string()));
        };
        db.migrate().await?;
        Ok(db)
    }

    /// The same database for a task on its own runtime. A PostgreSQL connection is driven by
    /// the I/O driver of the runtime that opened it, so such a task opens its own (at most
    /// `max`) rather than wait on a busy request runtime; SQLite connections run on their own
    /// threads and are shared.
    pub fn for_own_runtime(&self, max: u32) -> Db {
        match self {
            Db::Postgres(p) => Db::Postgres(
                PgPoolOptions::new()
                    .max_connections(max)
                    .connect_lazy_with((*p.connect_options()).clone()),
            ),
            Db::Sqlite(p) => Db::Sqlite(p.clone()),
        }
    }

    pub async fn migrate(&self) -> Result<(), StorageError> {
        match self {
            Db::Postgres(p) => sqlx::migrate!("../migrations/postgres").run(p).await?,
            Db::Sqlite(p) => sqlx::migrate!("../migrations/sqlite").run(p).await?,
        }
        Ok(())
    }

    /// Readiness: the database answers.
    pub async fn ping(&self) -> Result<(), StorageError> {
        match self {
            Db::Postgres(p) => p.acquire().await?.ping().await?,
            Db::Sqlite(p) => p.acquire().await?.ping().await?,
        }
        Ok(())
    }

    pub async fn load_log(&self, log_id: &str) -> Result<Option<LogRow>, StorageError> {
        const Q: &str =
            "SELECT tree_id, tree_size, root_hash, checkpoint FROM logs WHERE log_id = $1";
        let row = match self {
            Db::Postgres(p) => sqlx::query(Q)
                .bind(log_id)
                .fetch_optional(p)
                .await?
                .map(|r| {
                    (
                        r.get::<i64, _>(0),
                        r.get::<i64, _>(1),
                        r.get::<Vec<u8>, _>(2),
                        r.get::<Vec<u8>, _>(3),
                    )
                }),
            Db::Sqlite(p) => sqlx::query(Q)
                .bind(log_id)
                .fetch_optional(p)
                .await?
                .map(|r| {
                    (
                        r.get::<i64, _>(0),
                        r.get::<i64, _>(1),
                        r.get::<Vec<u8>, _>(2),
                        r.get::<Vec<u8>, _>(3),
                    )
                }),
        };
        row.map(|(tree_id, size, root, checkpoint)| {
            Ok(LogRow {
                tree_id,
                tree_size: to_u64(size)?,
                root_hash: to_hash(root)?,
                checkpoint,
            })
        })
        .transpose()
    }

    /// Create an empty log unless it exists; returns the stored row either way.
    pub async fn create_log(
        &self,
        log_id: &str,
        tree_id: i64,
        empty_root: Hash,
        checkpoint: &[u8],
        now_ms: i64,
    ) -> Result<LogRow, StorageError> {
        const Q: &str = "INSERT INTO logs (log_id, tree_id, tree_size, root_hash, checkpoint, updated_ms) \
                         VALUES ($1, $2, 0, $3, $4, $5) ON CONFLICT (log_id) DO NOTHING";
        match self {
            Db::Postgres(p) => {
                sqlx::query(Q)
                    .bind(log_id)
                    .bind(tree_id)
                    .bind(&empty_root[..])
                    .bind(checkpoint)
                    .bind(now_ms)
                    .execute(p)
                    .await?;
            }
            Db::Sqlite(p) => {
                sqlx::query(Q)
                    .bind(log_id)
                    .bind(tree_id)
                    .bind(&empty_root[..])
                    .bind(checkpoint)
                    .bind(now_ms)
                    .execute(p)
                    .await?;
            }
        }
        self.load_log(log_id)
            .await?
            .ok_or_else(|| StorageError::Corrupt(format!("log {log_id} vanished after creation")))
    }

    /// Tiles by (level, index); missing ones are absent from the map.
    pub async fn read_tiles(
        &self,
        log_id: &str,
        ids: &[(u8, u64)],
    ) -> Result<HashMap<(u8, u64), Vec<u8>>, StorageError> {
        let mut out = HashMap::with_capacity(ids.len());
        if ids.is_empty() {
            return Ok(out);
        }
        match self {
            Db::Postgres(p) => {
                let levels: Vec<i16> = ids.iter().map(|(l, _)| i16::from(*l)).collect();
                let idxs: Vec<i64> = ids.iter().map(|(_, i)| to_i64(*i)).collect();
                let rows = sqlx::query(
                    "SELECT t.level, t.idx, t.data FROM tiles t \
                     JOIN UNNEST($2::smallint[], $3::bigint[]) AS w(level, idx) \
                     ON t.level = w.level AND t.idx = w.idx WHERE t.log_id = $1",
                )
                .bind(log_id)
                .bind(&levels)
                .bind(&idxs)
                .fetch_all(p)
                .await?;
                for r in rows {
                    let level: i16 = r.get(0);
                    let idx: i64 = r.get(1);
                    out.insert(
                        (u8::try_from(level).unwrap_or(u8::MAX), to_u64(idx)?),
                        r.get(2),
                    );
                }
            }
            Db::Sqlite(p) => {
                for (level, idx) in ids {
                    let row = sqlx::query(
                        "SELECT data FROM tiles WHERE log_id = $1 AND level = $2 AND idx = $3",
                    )
                    .bind(log_id)
                    .bind(i64::from(*level))
                    .bind(to_i64(*idx))
                    .fetch_optional(p)
                    .await?;
                    if let Some(r) = row {
                        out.insert((*level, *idx), r.get(0));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Which of these leaf hashes are already in the log, with their index.
    pub async fn existing_leaves(
        &self,
        log_id: &str,
        leaves: &[Hash],
    ) -> Result<HashMap<Hash, u64>, StorageError> {
        let mut out = HashMap::new();
        if leaves.is_empty() {
            return Ok(out);
        }
        match self {
            Db::Postgres(p) => {
                let hashes: Vec<&[u8]> = leaves.iter().map(|h| &h[..]).collect();
                // Not a cached prepared statement: PostgreSQL's generic plan, made while the
                // table was tiny, filters `= ANY` over every entry of the log (O(n) per call).
                // An unnamed statement is planned with the actual array each time.
                let rows = sqlx::query(
                    "SELECT leaf_hash, idx FROM entries WHERE log_id = $1 AND leaf_hash = ANY($2)",
                )
                .persistent(false)
                .bind(log_id)
                .bind(&hashes)
                .fetch_all(p)
                .await?;
                for r in rows {
                    out.insert(to_hash(r.get(0))?, to_u64(r.get(1))?);
                }
            }
            Db::Sqlite(p) => {
                // One query per chunk, not per leaf: each statement is a hop to the
                // connection's thread and back.
                for chunk in leaves.chunks(SQLITE_ROWS) {
                    let sql = format!(
                        "SELECT leaf_hash, idx FROM entries WHERE log_id = ? AND leaf_hash IN ({})",
                        vec!["?"; chunk.len()].join(",")
                    );
                    let mut q = sqlx::query(&sql).persistent(false).bind(log_id);
                    for h in chunk {
                        q = q.bind(&h[..]);
                    }
                    for r in q.fetch_all(p).await? {
                        out.insert(to_hash(r.get(0))?, to_u64(r.get(1))?);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Commit a sequenced batch atomically, guarded by compare-and-swap on the tree size.
    pub async fn commit_batch(&self, log_id: &str, b: &Batch<'_>) -> Result<(), CommitError> {
        let result = match self {
            Db::Postgres(p) => commit_pg(p, log_id, b).await,
            Db::Sqlite(p) => commit_sqlite(p, log_id, b).await,
        };
        match result {
            Err(CommitError::Storage(StorageError::Db(sqlx::Error::Database(e))))
                if e.is_unique_violation() =>
            {
                Err(CommitError::Conflict)
            }
            other => other,
        }
    }

    pub async fn entry_by_index(
        &self,
        log_id: &str,
        index: u64,
    ) -> Result<Option<EntryRow>, StorageError> {
        Ok(self
            .entries_range(log_id, index, index.saturating_add(1))
            .await?
            .into_iter()
            .next())
    }

    /// Entries with start <= index < end, in order.
    pub async fn entries_range(
        &self,
        log_id: &str,
        start: u64,
        end: u64,
    ) -> Result<Vec<EntryRow>, StorageError> {
        const Q: &str = "SELECT idx, leaf_hash, data, extra, integrated_time FROM entries \
                         WHERE log_id = $1 AND idx >= $2 AND idx < $3 ORDER BY idx";
        macro_rules! run {
            ($pool:expr) => {{
                let rows = sqlx::query(Q)
                    .bind(log_id)
                    .bind(to_i64(start))
                    .bind(to_i64(end))
                    .fetch_all($pool)
                    .await?;
                rows.into_iter()
                    .map(|r| {
                        Ok(EntryRow {
                            index: to_u64(r.get(0))?,
                            leaf_hash: to_hash(r.get(1))?,
                            data: r.get(2),
                            extra: r.get(3),
                            integrated_time: r.get(4),
                        })
                    })
                    .collect::<Result<Vec<_>, StorageError>>()
            }};
        }
        match self {
            Db::Postgres(p) => run!(p),
            Db::Sqlite(p) => run!(p),
        }
    }

    pub async fn index_of_leaf(
        &self,
        log_id: &str,
        leaf: &Hash,
    ) -> Result<Option<u64>, StorageError> {
        match self {
            // The per-request duplicate check: equality on the whole unique index, which every
            // plan (generic or not) serves with one index probe.
            Db::Postgres(p) => {
                let idx: Option<i64> = sqlx::query_scalar(
                    "SELECT idx FROM entries WHERE log_id = $1 AND leaf_hash = $2",
                )
                .bind(log_id)
                .bind(&leaf[..])
                .fetch_optional(p)
                .await?;
                idx.map(to_u64).transpose()
            }
            Db::Sqlite(_) => Ok(self
                .existing_leaves(log_id, std::slice::from_ref(leaf))
                .await?
                .get(leaf)
                .copied()),
        }
    }

    /// Leaf hashes indexed under `key`, at most `limit`.
    pub async fn search(
        &self,
        log_id: &str,
        key: &str,
        limit: i64,
    ) -> Result<Vec<Hash>, StorageError> {
        const Q: &str =
            "SELECT leaf_hash FROM search_index WHERE log_id = $1 AND key = $2 LIMIT $3";
        let rows: Vec<Vec<u8>> = match self {
            Db::Postgres(p) => sqlx::query(Q)
                .bind(log_id)
                .bind(key)
                .bind(limit)
                .fetch_all(p)
                .await?
                .into_iter()
                .map(|r| r.get(0))
                .collect(),
            Db::Sqlite(p) => sqlx::query(Q)
                .bind(log_id)
                .bind(key)
                .bind(limit)
                .fetch_all(p)
                .await?
                .into_iter()
                .map(|r| r.get(0))
                .collect(),
        };
        rows.into_iter().map(to_hash).collect()
    }

    /// All checkpoints of a log, oldest first (tests and audits).
    pub async fn checkpoints(
        &self,
        log_id: &str,
    ) -> Result<Vec<(u64, Hash, Vec<u8>)>, StorageError> {
        const Q: &str = "SELECT tree_size, root_hash, checkpoint FROM checkpoints WHERE log_id = $1 ORDER BY tree_size";
        let rows: Vec<(i64, Vec<u8>, Vec<u8>)> = match self {
            Db::Postgres(p) => sqlx::query(Q)
                .bind(log_id)
                .fetch_all(p)
                .await?
                .into_iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect(),
            Db::Sqlite(p) => sqlx::query(Q)
                .bind(log_id)
                .fetch_all(p)
                .await?
                .into_iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect(),
        };
        rows.into_iter()
            .map(|(s, r, c)| Ok((to_u64(s)?, to_hash(r)?, c)))
            .collect()
    }
}

/// The whole batch as ONE statement in its own implicit transaction: the compare-and-swap on the
/// tree size gates every insert (each reads the `cas` row), so a lost race writes nothing, and
/// the reply arrives after the commit. One round trip per batch instead of one per statement.
const COMMIT_PG: &str = "WITH cas AS ( \
       UPDATE logs SET tree_size = $2, root_hash = $3, checkpoint = $4, updated_ms = $5 \
       WHERE log_id = $1 AND tree_size = $6 RETURNING log_id), \
     cp AS (INSERT INTO checkpoints (log_id, tree_size, root_hash, checkpoint) \
       SELECT log_id, $2, $3, $4 FROM cas), \
     en AS (INSERT INTO entries (log_id, idx, leaf_hash, data, extra, integrated_time) \
       SELECT cas.log_id, u.* FROM cas, \
       UNNEST($7::bigint[], $8::bytea[], $9::bytea[], $10::bytea[], $11::bigint[]) AS u), \
     si AS (INSERT INTO search_index (log_id, key, leaf_hash) \
       SELECT cas.log_id, u.* FROM cas, UNNEST($12::text[], $13::bytea[]) AS u \
       ON CONFLICT DO NOTHING), \
     ti AS (INSERT INTO tiles (log_id, level, idx, data) \
       SELECT cas.log_id, u.* FROM cas, UNNEST($14::smallint[], $15::bigint[], $16::bytea[]) AS u \
       ON CONFLICT (log_id, level, idx) DO UPDATE SET data = EXCLUDED.data) \
     SELECT count(*) FROM cas";

async fn commit_pg(pool: &PgPool, log_id: &str, b: &Batch<'_>) -> Result<(), CommitError> {
    let idx: Vec<i64> = b.entries.iter().map(|e| to_i64(e.index)).collect();
    let leaf: Vec<&[u8]> = b.entries.iter().map(|e| &e.leaf_hash[..]).collect();
    let data: Vec<&[u8]> = b.entries.iter().map(|e| e.data).collect();
    let extra: Vec<&[u8]> = b.entries.iter().map(|e| e.extra).collect();
    let time: Vec<i64> = b.entries.iter().map(|e| e.integrated_time).collect();
    let mut keys: Vec<&str> = Vec::new();
    let mut key_leaves: Vec<&[u8]> = Vec::new();
    for e in &b.entries {
        for k in e.search_keys {
            keys.push(k);
            key_leaves.push(&e.leaf_hash[..]);
        }
    }
    let levels: Vec<i16> = b.tiles.iter().map(|(l, _, _)| i16::from(*l)).collect();
    let tidx: Vec<i64> = b.tiles.iter().map(|(_, i, _)| to_i64(*i)).collect();
    let tdata: Vec<&[u8]> = b.tiles.iter().map(|(_, _, d)| d.as_slice()).collect();
    let swapped: i64 = sqlx::query_scalar(COMMIT_PG)
        .bind(log_id)
        .bind(to_i64(b.new_size))
        .bind(&b.root_hash[..])
        .bind(b.checkpoint)
        .bind(b.now_ms)
        .bind(to_i64(b.old_size))
        .bind(&idx)
        .bind(&leaf)
        .bind(&data)
        .bind(&extra)
        .bind(&time)
        .bind(&keys)
        .bind(&key_leaves)
        .bind(&levels)
        .bind(&tidx)
        .bind(&tdata)
        .fetch_one(pool)
        .await
        .map_err(StorageError::from)?;
    if swapped != 1 {
        return Err(CommitError::Conflict);
    }
    Ok(())
}

/// Rows per multi-row SQLite statement (at most 6 columns: well under the 32,766 variables
/// SQLite allows in one statement).
const SQLITE_ROWS: usize = 256;

/// `(?, …), (?, …)`: `rows` groups of `cols` placeholders.
fn sqlite_rows(rows: usize, cols: usize) -> String {
    let one = format!("({})", vec!["?"; cols].join(","));
    vec![one; rows].join(",")
}

async fn commit_sqlite(pool: &SqlitePool, log_id: &str, b: &Batch<'_>) -> Result<(), CommitError> {
    // BEGIN IMMEDIATE takes the write lock up front, so the CAS below cannot interleave.
    let mut conn = pool.acquire().await.map_err(StorageError::from)?;
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut *conn)
        .await
        .map_err(StorageError::from)?;
    let result = commit_sqlite_inner(&mut conn, log_id, b).await;
    match result {
        Ok(()) => {
            sqlx::query("COMMIT")
                .execute(&mut *conn)
                .await
                .map_err(StorageError::from)?;
            Ok(())
        }
        Err(e) => {
            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            Err(e)
        }
    }
}

async fn commit_sqlite_inner(
    conn: &mut sqlx::SqliteConnection,
    log_id: &str,
    b: &Batch<'_>,
) -> Result<(), CommitError> {
    let updated = sqlx::query(
        "UPDATE logs SET tree_size = $2, root_hash = $3, checkpoint = $4, updated_ms = $5 \
         WHERE log_id = $1 AND tree_size = $6",
    )
    .bind(log_id)
    .bind(to_i64(b.new_size))
    .bind(&b.root_hash[..])
    .bind(b.checkpoint)
    .bind(b.now_ms)
    .bind(to_i64(b.old_size))
    .execute(&mut *conn)
    .await
    .map_err(StorageError::from)?;
    if updated.rows_affected() != 1 {
        return Err(CommitError::Conflict);
    }
    sqlx::query("INSERT INTO checkpoints (log_id, tree_size, root_hash, checkpoint) VALUES ($1, $2, $3, $4)")
        .bind(log_id)
        .bind(to_i64(b.new_size))
        .bind(&b.root_hash[..])
        .bind(b.checkpoint)
        .execute(&mut *conn)
        .await
        .map_err(StorageError::from)?;
    // Multi-row statements: one hop to the connection's thread per chunk instead of per row.
    for chunk in b.entries.chunks(SQLITE_ROWS) {
        let sql = format!(
            "INSERT INTO entries (log_id, idx, leaf_hash, data, extra, integrated_time) VALUES {}",
            sqlite_rows(chunk.len(), 6)
        );
        let mut q = sqlx::query(&sql).persistent(false);
        for e in chunk {
            q = q
                .bind(log_id)
                .bind(to_i64(e.index))
                .bind(&e.leaf_hash[..])
                .bind(e.data)
                .bind(e.extra)
                .bind(e.integrated_time);
        }
        q.execute(&mut *conn).await.map_err(StorageError::from)?;
    }
    let keys: Vec<(&str, &[u8])> = b
        .entries
        .iter()
        .flat_map(|e| {
            e.search_keys
                .iter()
                .map(move |k| (k.as_str(), &e.leaf_hash[..]))
        })
        .collect();
    for chunk in keys.chunks(SQLITE_ROWS) {
        let sql = format!(
            "INSERT OR IGNORE INTO search_index (log_id, key, leaf_hash) VALUES {}",
            sqlite_rows(chunk.len(), 3)
        );
        let mut q = sqlx::query(&sql).persistent(false);
        for (k, leaf) in chunk {
            q = q.bind(log_id).bind(*k).bind(*leaf);
        }
        q.execute(&mut *conn).await.map_err(StorageError::from)?;
    }
    for chunk in b.tiles.chunks(SQLITE_ROWS) {
        let sql = format!(
            "INSERT INTO tiles (log_id, level, idx, data) VALUES {} \
             ON CONFLICT (log_id, level, idx) DO UPDATE SET data = excluded.data",
            sqlite_rows(chunk.len(), 4)
        );
        let mut q = sqlx::query(&sql).persistent(false);
        for (level, idx, data) in chunk {
            q = q
                .bind(log_id)
                .bind(i64::from(*level))
                .bind(to_i64(*idx))
                .bind(data.as_slice());
        }
        q.execute(&mut *conn).await.map_err(StorageError::from)?;
    }
    Ok(())
}
