//! The PostgreSQL driver: array binds (`UNNEST`, `= ANY`) and the whole batch commit as one
//! statement.

use std::collections::HashMap;
use std::str::FromStr;

use sigil_core::merkle::Hash;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, Row};

use super::pg_batch::EntryBatches;
use super::pg_conns::{Conns, read};
use super::{
    Batch, CommitError, EntryRow, LogRow, LogStore, NewLog, StorageError, Store, conflict_or_error,
    to_hash, to_i64, to_u64,
};

/// A PostgreSQL connection pool.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    /// The hot paths' connections (no ping around each use); `pool` serves the rest.
    conns: std::sync::Arc<Conns>,
    /// Concurrent entry reads, batched into one query.
    batches: std::sync::Arc<EntryBatches>,
}

impl PgStore {
    /// Connect with at most `size` connections for the hot paths (entry, proof and search
    /// reads, commits) and a few more for the rest, and apply the migrations if `migrate`.
    pub async fn connect(url: &str, migrate: bool, size: u32) -> Result<PgStore, StorageError> {
        let opts = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(size.clamp(1, OTHER_CONNECTIONS))
            .connect_with(opts.clone())
            .await?;
        let conns = std::sync::Arc::new(Conns::new(opts, size));
        if migrate {
            sqlx::migrate!("../migrations/postgres").run(&pool).await?;
        }
        Ok(PgStore {
            pool,
            conns,
            batches: Default::default(),
        })
    }
}

/// The sqlx pool's connections at most: settings, transactions and health checks only.
const OTHER_CONNECTIONS: u32 = 4;

/// The whole batch as ONE statement in its own implicit transaction: the compare-and-swap on the
/// tree size gates every insert (each reads the `cas` row), so a lost race writes nothing, and
/// the reply arrives after the commit. One round trip per batch instead of one per statement.
const COMMIT: &str = "WITH cas AS ( \
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

#[async_trait::async_trait]
impl LogStore for PgStore {
    fn for_own_runtime(&self, max_connections: u32) -> Store {
        let opts = (*self.pool.connect_options()).clone();
        std::sync::Arc::new(PgStore {
            pool: PgPoolOptions::new()
                .max_connections(max_connections.clamp(1, OTHER_CONNECTIONS))
                .connect_lazy_with(opts.clone()),
            conns: std::sync::Arc::new(Conns::new(opts, max_connections)),
            batches: Default::default(),
        })
    }

    async fn ping(&self) -> Result<(), StorageError> {
        self.pool.acquire().await?.ping().await?;
        Ok(())
    }

    async fn load_log(&self, log_name: &str) -> Result<Option<LogRow>, StorageError> {
        let row = read!(self.conns, c => sqlx::query(
            "SELECT tree_id, tree_size, root_hash, checkpoint, updated_ms FROM logs WHERE log_id = $1",
        )
        .bind(log_name)
        .fetch_optional(c));
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
        if ids.is_empty() {
            return Ok(out);
        }
        let levels: Vec<i16> = ids.iter().map(|(l, _)| i16::from(*l)).collect();
        let idxs: Vec<i64> = ids.iter().map(|(_, i)| to_i64(*i)).collect();
        let rows = read!(self.conns, c => sqlx::query(
            "SELECT t.level, t.idx, t.data FROM tiles t \
             JOIN UNNEST($2::smallint[], $3::bigint[]) AS w(level, idx) \
             ON t.level = w.level AND t.idx = w.idx WHERE t.log_id = $1",
        )
        .bind(log_name)
        .bind(&levels)
        .bind(&idxs)
        .fetch_all(c));
        for r in rows {
            let level: i16 = r.get(0);
            let level = u8::try_from(level)
                .map_err(|_| StorageError::Corrupt(format!("tile level {level}")))?;
            out.insert((level, to_u64(r.get(1))?), r.get(2));
        }
        Ok(out)
    }

    async fn existing_leaves(
        &self,
        log_name: &str,
        leaves: &[Hash],
    ) -> Result<HashMap<Hash, u64>, StorageError> {
        let mut out = HashMap::new();
        if leaves.is_empty() {
            return Ok(out);
        }
        let hashes: Vec<&[u8]> = leaves.iter().map(|h| &h[..]).collect();
        // Not a cached prepared statement: PostgreSQL's generic plan, made while the table was
        // tiny, filters `= ANY` over every entry of the log (O(n) per call). An unnamed
        // statement is planned with the actual array each time.
        let rows = read!(self.conns, c => sqlx::query(
            "SELECT leaf_hash, idx FROM entries WHERE log_id = $1 AND leaf_hash = ANY($2)",
        )
        .persistent(false)
        .bind(log_name)
        .bind(&hashes)
        .fetch_all(c));
        for r in rows {
            out.insert(to_hash(r.get(0))?, to_u64(r.get(1))?);
        }
        Ok(out)
    }

    async fn commit_batch(&self, log_name: &str, b: &Batch<'_>) -> Result<(), CommitError> {
        let idx: Vec<i64> = b.entries.iter().map(|e| to_i64(e.index)).collect();
        let leaf: Vec<&[u8]> = b.entries.iter().map(|e| &e.leaf_hash[..]).collect();
        let data: Vec<&[u8]> = b.entries.iter().map(|e| e.data).collect();
        let extra: Vec<&[u8]> = b.entries.iter().map(|e| e.extra).collect();
        let time: Vec<i64> = vec![b.integrated_time; b.entries.len()];
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
        // Never retried: a failure leaves the outcome unknown, which the sequencer resolves.
        let mut lease = self.conns.lease().await?;
        let swapped: Result<i64, _> = sqlx::query_scalar(COMMIT)
            .bind(log_name)
            .bind(to_i64(b.new_size))
            .bind(&b.root_hash[..])
            .bind(b.checkpoint)
            .bind(b.timestamp_ms)
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
            .fetch_one(lease.conn())
            .await;
        lease.settle(&swapped);
        let swapped = swapped.map_err(conflict_or_error)?;
        if swapped != 1 {
            return Err(CommitError::Conflict);
        }
        Ok(())
    }

    async fn entries_range(
        &self,
        log_name: &str,
        start: u64,
        end: u64,
    ) -> Result<Vec<EntryRow>, StorageError> {
        let rows = read!(self.conns, c => sqlx::query(
            "SELECT idx, leaf_hash, data, extra, integrated_time FROM entries \
             WHERE log_id = $1 AND idx >= $2 AND idx < $3 ORDER BY idx",
        )
        .bind(log_name)
        .bind(to_i64(start))
        .bind(to_i64(end))
        .fetch_all(c));
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

    async fn entry_with_leaves(
        &self,
        log_name: &str,
        index: u64,
        start: u64,
        end: u64,
    ) -> Result<Option<(EntryRow, Vec<Hash>)>, StorageError> {
        self.batches
            .read(&self.conns, log_name, index, start, end)
            .await
    }

    async fn index_of_leaf(
        &self,
        log_name: &str,
        leaf: &Hash,
    ) -> Result<Option<u64>, StorageError> {
        // Equality on the whole unique index, which every plan (generic or not) serves with one
        // index probe.
        let idx: Option<i64> = read!(self.conns, c => sqlx::query_scalar(
            "SELECT idx FROM entries WHERE log_id = $1 AND leaf_hash = $2",
        )
        .bind(log_name)
        .bind(&leaf[..])
        .fetch_optional(c));
        idx.map(to_u64).transpose()
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
        let rows = read!(self.conns, c => sqlx::query(
            "SELECT tree_size, root_hash, checkpoint FROM checkpoints \
             WHERE log_id = $1 AND tree_size > $2 ORDER BY tree_size LIMIT $3",
        )
        .bind(log_name)
        .bind(to_i64(after))
        .bind(limit)
        .fetch_all(c));
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
        let rows = read!(self.conns, c => sqlx::query(
            "SELECT leaf_hash FROM search_index WHERE log_id = $1 AND key = $2 LIMIT $3",
        )
        .bind(log_name)
        .bind(key)
        .bind(limit)
        .fetch_all(c));
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
