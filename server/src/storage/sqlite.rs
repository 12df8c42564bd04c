//! The SQLite driver (the embedded default): WAL with `synchronous=FULL`, so a commit is on
//! disk before it is acknowledged; batches are written as multi-row statements in one
//! `BEGIN IMMEDIATE` transaction.

use std::collections::HashMap;
use std::str::FromStr;

use sigil_core::merkle::Hash;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, Row};

use super::{
    Batch, CommitError, EntryRow, LogRow, LogStore, NewLog, StorageError, Store, conflict_or_error,
    to_hash, to_i64, to_u64,
};

/// An SQLite connection pool.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Open, and if `migrate` create the file if needed and apply the migrations.
    pub async fn connect(url: &str, migrate: bool) -> Result<SqliteStore, StorageError> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(migrate)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit is on disk before it is acknowledged.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await?;
        if migrate {
            sqlx::migrate!("../migrations/sqlite").run(&pool).await?;
        }
        Ok(SqliteStore { pool })
    }
}

/// Rows per multi-row statement (at most 6 columns: well under the 32,766 variables SQLite
/// allows in one statement).
const ROWS: usize = 256;

/// `(?, …), (?, …)`: `rows` groups of `cols` placeholders.
fn placeholders(rows: usize, cols: usize) -> String {
    let one = format!("({})", vec!["?"; cols].join(","));
    vec![one; rows].join(",")
}

#[async_trait::async_trait]
impl LogStore for SqliteStore {
    /// SQLite connections run on threads of their own, so every runtime can share them.
    fn for_own_runtime(&self, _max_connections: u32) -> Store {
        std::sync::Arc::new(self.clone())
    }

    async fn ping(&self) -> Result<(), StorageError> {
        self.pool.acquire().await?.ping().await?;
        Ok(())
    }

    async fn load_log(&self, log_name: &str) -> Result<Option<LogRow>, StorageError> {
        let row = sqlx::query(
            "SELECT tree_id, tree_size, root_hash, checkpoint, updated_ms FROM logs WHERE log_id = $1",
        )
        .bind(log_name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(LogRow {
                tree_id: r.get(0),
                tree_size: to_u64(r.get(1))?,
                root_hash: to_hash(r.get(2))?,
                checkpoint: r.get(3),
                timestamp_ms: r.get(4),
            })
        })
        .transpose()
    }

    async fn create_log(&self, log_name: &str, new: &NewLog<'_>) -> Result<LogRow, StorageError> {
        sqlx::query(
            "INSERT INTO logs (log_id, tree_id, tree_size, root_hash, checkpoint, updated_ms) \
             VALUES ($1, $2, 0, $3, $4, $5) ON CONFLICT (log_id) DO NOTHING",
        )
        .bind(log_name)
        .bind(new.tree_id)
        .bind(&new.empty_root[..])
        .bind(new.checkpoint)
        .bind(new.timestamp_ms)
        .execute(&self.pool)
        .await?;
        self.load_log(log_name)
            .await?
            .ok_or_else(|| StorageError::Corrupt(format!("log {log_name} vanished after creation")))
    }

    async fn read_tiles(
        &self,
        log_name: &str,
        ids: &[(u8, u64)],
    ) -> Result<HashMap<(u8, u64), Vec<u8>>, StorageError> {
        let mut out = HashMap::with_capacity(ids.len());
        for (level, idx) in ids {
            let row =
                sqlx::query("SELECT data FROM tiles WHERE log_id = $1 AND level = $2 AND idx = $3")
                    .bind(log_name)
                    .bind(i64::from(*level))
                    .bind(to_i64(*idx))
                    .fetch_optional(&self.pool)
                    .await?;
            if let Some(r) = row {
                out.insert((*level, *idx), r.get(0));
            }
        }
        Ok(out)
    }

    async fn existing_leaves(
        &self,
        log_name: &str,
        leaves: &[Hash],
    ) -> Result<HashMap<Hash, u64>, StorageError> {
        let mut out = HashMap::new();
        // One query per chunk, not per leaf: each statement is a hop to the connection's thread
        // and back.
        for chunk in leaves.chunks(ROWS) {
            let sql = format!(
                "SELECT leaf_hash, idx FROM entries WHERE log_id = ? AND leaf_hash IN ({})",
                vec!["?"; chunk.len()].join(",")
            );
            let mut q = sqlx::query(&sql).persistent(false).bind(log_name);
            for h in chunk {
                q = q.bind(&h[..]);
            }
            for r in q.fetch_all(&self.pool).await? {
                out.insert(to_hash(r.get(0))?, to_u64(r.get(1))?);
            }
        }
        Ok(out)
    }

    async fn commit_batch(&self, log_name: &str, b: &Batch<'_>) -> Result<(), CommitError> {
        // BEGIN IMMEDIATE takes the write lock up front, so the CAS below cannot interleave.
        let mut conn = self.pool.acquire().await.map_err(StorageError::from)?;
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut *conn)
            .await
            .map_err(StorageError::from)?;
        match write_batch(&mut conn, log_name, b).await {
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

    async fn entries_range(
        &self,
        log_name: &str,
        start: u64,
        end: u64,
    ) -> Result<Vec<EntryRow>, StorageError> {
        let rows = sqlx::query(
            "SELECT idx, leaf_hash, data, extra, integrated_time FROM entries \
             WHERE log_id = $1 AND idx >= $2 AND idx < $3 ORDER BY idx",
        )
        .bind(log_name)
        .bind(to_i64(start))
        .bind(to_i64(end))
        .fetch_all(&self.pool)
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
            .collect()
    }

    async fn index_of_leaf(
        &self,
        log_name: &str,
        leaf: &Hash,
    ) -> Result<Option<u64>, StorageError> {
        Ok(self
            .existing_leaves(log_name, std::slice::from_ref(leaf))
            .await?
            .get(leaf)
            .copied())
    }

    async fn log_names(&self) -> Result<Vec<String>, StorageError> {
        let rows = sqlx::query("SELECT log_id FROM logs ORDER BY log_id")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }

    async fn checkpoints_after(
        &self,
        log_name: &str,
        after: u64,
        limit: i64,
    ) -> Result<Vec<(u64, Hash, Vec<u8>)>, StorageError> {
        let rows = sqlx::query(
            "SELECT tree_size, root_hash, checkpoint FROM checkpoints \
             WHERE log_id = $1 AND tree_size > $2 ORDER BY tree_size LIMIT $3",
        )
        .bind(log_name)
        .bind(to_i64(after))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| Ok((to_u64(r.get(0))?, to_hash(r.get(1))?, r.get(2))))
            .collect()
    }

    async fn setting(&self, log_name: &str, name: &str) -> Result<Option<String>, StorageError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM log_settings WHERE log_id = $1 AND name = $2")
                .bind(log_name)
                .bind(name)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn set_setting(
        &self,
        log_name: &str,
        name: &str,
        value: &str,
    ) -> Result<(), StorageError> {
        sqlx::query(
            "INSERT INTO log_settings (log_id, name, value) VALUES ($1, $2, $3) \
             ON CONFLICT (log_id, name) DO UPDATE SET value = EXCLUDED.value",
        )
        .bind(log_name)
        .bind(name)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn search_keys_after(
        &self,
        log_name: &str,
        after: &str,
        limit: i64,
    ) -> Result<Vec<String>, StorageError> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT key FROM search_index WHERE log_id = $1 AND key > $2 \
             ORDER BY key LIMIT $3",
        )
        .bind(log_name)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn rename_search_key(
        &self,
        log_name: &str,
        old: &str,
        new: Option<&str>,
    ) -> Result<u64, StorageError> {
        let mut tx = self.pool.begin().await?;
        if let Some(new) = new {
            sqlx::query(
                "INSERT INTO search_index (log_id, key, leaf_hash) \
                 SELECT log_id, $3, leaf_hash FROM search_index WHERE log_id = $1 AND key = $2 \
                 ON CONFLICT DO NOTHING",
            )
            .bind(log_name)
            .bind(old)
            .bind(new)
            .execute(&mut *tx)
            .await?;
        }
        let moved = sqlx::query("DELETE FROM search_index WHERE log_id = $1 AND key = $2")
            .bind(log_name)
            .bind(old)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(moved)
    }

    async fn search(
        &self,
        log_name: &str,
        key: &str,
        limit: i64,
    ) -> Result<Vec<Hash>, StorageError> {
        let rows = sqlx::query(
            "SELECT leaf_hash FROM search_index WHERE log_id = $1 AND key = $2 LIMIT $3",
        )
        .bind(log_name)
        .bind(key)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(|r| to_hash(r.get(0))).collect()
    }

    async fn set_checkpoint(
        &self,
        log_name: &str,
        size: u64,
        checkpoint: &[u8],
    ) -> Result<(), StorageError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE checkpoints SET checkpoint = $1 WHERE log_id = $2 AND tree_size = $3")
            .bind(checkpoint)
            .bind(log_name)
            .bind(to_i64(size))
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE logs SET checkpoint = $1 WHERE log_id = $2 AND tree_size = $3")
            .bind(checkpoint)
            .bind(log_name)
            .bind(to_i64(size))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn witness_latest(
        &self,
        origin: &str,
    ) -> Result<Option<(u64, Hash, Vec<u8>)>, StorageError> {
        let row = sqlx::query(
            "SELECT tree_size, root_hash, checkpoint FROM witness_state WHERE origin = $1",
        )
        .bind(origin)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((to_u64(r.get(0))?, to_hash(r.get(1))?, r.get(2))))
            .transpose()
    }

    async fn witness_advance(
        &self,
        origin: &str,
        old: (u64, &Hash),
        new: (u64, &Hash, &[u8]),
    ) -> Result<bool, StorageError> {
        let done = if old.0 == 0 {
            // Nothing stored yet, or a size-0 checkpoint: insert, or move the size-0 record.
            sqlx::query(
                "INSERT INTO witness_state (origin, tree_size, root_hash, checkpoint) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (origin) DO UPDATE \
                 SET tree_size = EXCLUDED.tree_size, root_hash = EXCLUDED.root_hash, \
                 checkpoint = EXCLUDED.checkpoint WHERE witness_state.tree_size = 0",
            )
            .bind(origin)
            .bind(to_i64(new.0))
            .bind(new.1.as_slice())
            .bind(new.2)
            .execute(&self.pool)
            .await?
        } else {
            sqlx::query(
                "UPDATE witness_state SET tree_size = $1, root_hash = $2, checkpoint = $3 \
                 WHERE origin = $4 AND tree_size = $5 AND root_hash = $6",
            )
            .bind(to_i64(new.0))
            .bind(new.1.as_slice())
            .bind(new.2)
            .bind(origin)
            .bind(to_i64(old.0))
            .bind(old.1.as_slice())
            .execute(&self.pool)
            .await?
        };
        Ok(done.rows_affected() == 1)
    }
}

/// The batch inside the open transaction: CAS on the tree size first, then the rows.
async fn write_batch(
    conn: &mut sqlx::SqliteConnection,
    log_name: &str,
    b: &Batch<'_>,
) -> Result<(), CommitError> {
    let updated = sqlx::query(
        "UPDATE logs SET tree_size = $2, root_hash = $3, checkpoint = $4, updated_ms = $5 \
         WHERE log_id = $1 AND tree_size = $6",
    )
    .bind(log_name)
    .bind(to_i64(b.new_size))
    .bind(&b.root_hash[..])
    .bind(b.checkpoint)
    .bind(b.timestamp_ms)
    .bind(to_i64(b.old_size))
    .execute(&mut *conn)
    .await
    .map_err(conflict_or_error)?;
    if updated.rows_affected() != 1 {
        return Err(CommitError::Conflict);
    }
    sqlx::query(
        "INSERT INTO checkpoints (log_id, tree_size, root_hash, checkpoint) VALUES ($1, $2, $3, $4)",
    )
    .bind(log_name)
    .bind(to_i64(b.new_size))
    .bind(&b.root_hash[..])
    .bind(b.checkpoint)
    .execute(&mut *conn)
    .await
    .map_err(conflict_or_error)?;
    // Multi-row statements: one hop to the connection's thread per chunk instead of per row.
    for chunk in b.entries.chunks(ROWS) {
        let sql = format!(
            "INSERT INTO entries (log_id, idx, leaf_hash, data, extra, integrated_time) VALUES {}",
            placeholders(chunk.len(), 6)
        );
        let mut q = sqlx::query(&sql).persistent(false);
        for e in chunk {
            q = q
                .bind(log_name)
                .bind(to_i64(e.index))
                .bind(&e.leaf_hash[..])
                .bind(e.data)
                .bind(e.extra)
                .bind(b.integrated_time);
        }
        q.execute(&mut *conn).await.map_err(conflict_or_error)?;
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
    for chunk in keys.chunks(ROWS) {
        let sql = format!(
            "INSERT OR IGNORE INTO search_index (log_id, key, leaf_hash) VALUES {}",
            placeholders(chunk.len(), 3)
        );
        let mut q = sqlx::query(&sql).persistent(false);
        for (k, leaf) in chunk {
            q = q.bind(log_name).bind(*k).bind(*leaf);
        }
        q.execute(&mut *conn).await.map_err(conflict_or_error)?;
    }
    for chunk in b.tiles.chunks(ROWS) {
        let sql = format!(
            "INSERT INTO tiles (log_id, level, idx, data) VALUES {} \
             ON CONFLICT (log_id, level, idx) DO UPDATE SET data = excluded.data",
            placeholders(chunk.len(), 4)
        );
        let mut q = sqlx::query(&sql).persistent(false);
        for (level, idx, data) in chunk {
            q = q
                .bind(log_name)
                .bind(i64::from(*level))
                .bind(to_i64(*idx))
                .bind(data.as_slice());
        }
        q.execute(&mut *conn).await.map_err(conflict_or_error)?;
    }
    Ok(())
}
