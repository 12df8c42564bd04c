//! Concurrent entry reads share one PostgreSQL query.
//!
//! Under load each entry read used to be a query of its own: a round trip and a wake-up of a
//! PostgreSQL backend per read, which on a small machine cost more than the read itself. Here a
//! read joins a queue; whoever holds one of a few batch permits takes the whole queue, reads
//! every waiting entry with its block of leaf hashes in one query (a range scan of the primary
//! key per block), and hands each waiter its rows. A lone read is a batch of one, so nothing
//! waits on a timer. If a batch fails or its leader's request goes away mid-query, each waiter
//! runs the same query for itself alone, so every caller sees its own result or error.

use std::collections::HashMap;
use std::sync::Mutex;

use sigil_core::merkle::Hash;
use sqlx::Row;
use sqlx::postgres::PgConnection;
use tokio::sync::{Semaphore, oneshot};

use super::pg_conns::{Conns, read};
use super::{EntryRow, StorageError, to_hash, to_i64, to_u64};

/// An entry and the leaf hashes of its block, or `None` when the entry is not stored.
pub(crate) type Found = Option<(EntryRow, Vec<Hash>)>;

/// One waiting read: the entry at `index` and the leaves `start <= i < end`.
struct Waiting {
    log: String,
    index: u64,
    start: u64,
    end: u64,
    reply: oneshot::Sender<Found>,
}

/// The queue of waiting reads and the permits to run a batch.
pub(crate) struct EntryBatches {
    queue: Mutex<Vec<Waiting>>,
    permits: Semaphore,
}

/// Batches in flight at once: enough to keep PostgreSQL busy while the next batch forms, few
/// enough that batches grow under load.
const BATCHES_IN_FLIGHT: usize = 2;

impl std::fmt::Debug for EntryBatches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntryBatches").finish_non_exhaustive()
    }
}

impl Default for EntryBatches {
    fn default() -> Self {
        EntryBatches {
            queue: Mutex::new(Vec::new()),
            permits: Semaphore::new(BATCHES_IN_FLIGHT),
        }
    }
}

impl EntryBatches {
    fn queue(&self) -> std::sync::MutexGuard<'_, Vec<Waiting>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The entry at `index` with the leaves `start..end`, read in a batch with whatever other
    /// reads are waiting, or alone when the batch did not answer (it failed, or its leader went
    /// away).
    pub(crate) async fn read(
        &self,
        conns: &Conns,
        log: &str,
        index: u64,
        start: u64,
        end: u64,
    ) -> Result<Found, StorageError> {
        if let Some(found) = self.batched(conns, log, index, start, end).await {
            return Ok(found);
        }
        let block = ([to_i64(start)], [to_i64(end)]);
        let rows = fetch(conns, log, (&block.0, &block.1), &[to_i64(index)]).await?;
        Ok(found(&rows_by_index(rows)?, index, start, end))
    }

    async fn batched(
        &self,
        conns: &Conns,
        log: &str,
        index: u64,
        start: u64,
        end: u64,
    ) -> Option<Found> {
        let (reply, mut rx) = oneshot::channel();
        self.queue().push(Waiting {
            log: log.to_string(),
            index,
            start,
            end,
            reply,
        });
        loop {
            tokio::select! {
                biased;
                got = &mut rx => return got.ok(),
                permit = self.permits.acquire() => {
                    let Ok(_permit) = permit else {
                        return None;
                    };
                    let taken = std::mem::take(&mut *self.queue());
                    if taken.is_empty() {
                        // Another batch took this read; it answers through `rx`.
                        drop(_permit);
                        return rx.await.ok();
                    }
                    run(conns, taken).await;
                }
            }
        }
    }
}

/// Read every waiting entry, one query per log; a failed query drops its waiters' replies.
async fn run(conns: &Conns, mut taken: Vec<Waiting>) {
    taken.sort_by(|a, b| a.log.cmp(&b.log));
    while let Some(log) = taken.first().map(|w| w.log.clone()) {
        let split = taken
            .iter()
            .position(|w| w.log != log)
            .unwrap_or(taken.len());
        let rest = taken.split_off(split);
        answer(conns, &log, taken).await;
        taken = rest;
    }
}

async fn answer(conns: &Conns, log: &str, waiting: Vec<Waiting>) {
    let mut wanted: Vec<i64> = Vec::with_capacity(waiting.len());
    let mut firsts: Vec<i64> = Vec::with_capacity(waiting.len());
    let mut stops: Vec<i64> = Vec::with_capacity(waiting.len());
    for w in &waiting {
        wanted.push(to_i64(w.index));
        let (first, stop) = (to_i64(w.start), to_i64(w.end));
        if !firsts.iter().zip(&stops).any(|b| b == (&first, &stop)) {
            firsts.push(first);
            stops.push(stop);
        }
    }
    let Ok(rows) = fetch(conns, log, (&firsts, &stops), &wanted).await else {
        return;
    };
    let Ok(by_index) = rows_by_index(rows) else {
        return;
    };
    crate::metrics::observe_read_batch(log, waiting.len());
    for w in waiting {
        // A waiter whose request went away has dropped its receiver: nothing to do.
        let _ = w.reply.send(found(&by_index, w.index, w.start, w.end));
    }
}

/// The entry at `index` and the leaves `start..end` among the rows read.
fn found(by_index: &ByIndex, index: u64, start: u64, end: u64) -> Found {
    let (leaf, body) = by_index.get(&index)?;
    let (data, extra, time) = body.as_ref()?;
    let leaves = (start..end)
        .filter_map(|i| by_index.get(&i).map(|r| r.0))
        .collect();
    let entry = EntryRow {
        index,
        leaf_hash: *leaf,
        data: data.clone(),
        extra: extra.clone(),
        integrated_time: *time,
    };
    Some((entry, leaves))
}

type Body = (Vec<u8>, Vec<u8>, i64);
/// Rows read, by entry index: the leaf hash, and the body of the entries asked for.
type ByIndex = HashMap<u64, (Hash, Option<Body>)>;

fn rows_by_index(rows: Vec<sqlx::postgres::PgRow>) -> Result<ByIndex, StorageError> {
    let mut out = HashMap::with_capacity(rows.len());
    for r in rows {
        let index = to_u64(r.try_get(0)?)?;
        let leaf = to_hash(r.try_get(1)?)?;
        let data: Option<Vec<u8>> = r.try_get(2)?;
        let extra: Option<Vec<u8>> = r.try_get(3)?;
        let body = match (data, extra) {
            (Some(d), Some(e)) => Some((d, e, r.try_get(4)?)),
            _ => None,
        };
        out.insert(index, (leaf, body));
    }
    Ok(out)
}

async fn fetch(
    conns: &Conns,
    log: &str,
    blocks: (&[i64], &[i64]),
    wanted: &[i64],
) -> Result<Vec<sqlx::postgres::PgRow>, StorageError> {
    Ok(read!(conns, c => query(c, log, blocks, wanted)))
}

/// The batch's one query: every row of the waiting reads' blocks, with the body only for the
/// entries asked for. Each block is its own ordered, limited scan of the primary key, a plan
/// PostgreSQL keeps whatever its statistics say (a plain join on the ranges was planned as a
/// scan of the whole log while the table's statistics were stale).
async fn query(
    c: &mut PgConnection,
    log: &str,
    (firsts, stops): (&[i64], &[i64]),
    wanted: &[i64],
) -> Result<Vec<sqlx::postgres::PgRow>, sqlx::Error> {
    sqlx::query(
        "SELECT e.idx, e.leaf_hash, CASE WHEN e.idx = ANY($4) THEN e.data END, \
         CASE WHEN e.idx = ANY($4) THEN e.extra END, e.integrated_time \
         FROM UNNEST($2::bigint[], $3::bigint[]) AS b(first, stop) \
         CROSS JOIN LATERAL (SELECT idx, leaf_hash, data, extra, integrated_time FROM entries \
           WHERE log_id = $1 AND idx >= b.first AND idx < b.stop ORDER BY idx LIMIT 256) e",
    )
    .bind(log)
    .bind(firsts)
    .bind(stops)
    .bind(wanted)
    .fetch_all(c)
    .await
}
