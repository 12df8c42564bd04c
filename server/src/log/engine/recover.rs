//! The journal against the database: the check at open, and recovery, which re-appends from the
//! journal what a restored database lacks.

use std::path::Path;

use sigil_core::merkle;

use super::journal::{self, Record};
use super::{EngineError, sequencer};
use crate::storage::{Batch, CommitError, LogRow, LogStore, NewEntry, Store};

/// The database must hold the journal's last checkpoint: the same root at the same size.
pub(super) async fn check(
    store: &dyn LogStore,
    log_name: &str,
    row: &LogRow,
    last: &Record,
    journal: &Path,
) -> Result<(), EngineError> {
    if last.size > row.tree_size {
        return Err(EngineError::Diverged(format!(
            "log {log_name}: the database holds {} entries, but this server published a checkpoint \
             of size {} (journal {}). The database is behind what clients may hold (was it \
             restored from an older backup?); serving it would fork the log. Stop every server \
             of this log and run `sigil-server recover` to re-append the {} missing entries \
             from the journal, or restore a newer backup.",
            row.tree_size,
            last.size,
            journal.display(),
            last.size - row.tree_size
        )));
    }
    root_matches(store, log_name, last, journal).await
}

/// The database's checkpoint at the record's size has the record's root.
async fn root_matches(
    store: &dyn LogStore,
    log_name: &str,
    r: &Record,
    journal: &Path,
) -> Result<(), EngineError> {
    if r.size == 0 {
        return Ok(());
    }
    let stored = store.checkpoints_after(log_name, r.size - 1, 1).await?;
    match stored.first() {
        Some((s, root, _)) if *s == r.size && *root == r.root => Ok(()),
        Some((s, _, _)) if *s == r.size => Err(EngineError::Diverged(format!(
            "log {log_name}: at size {s} the database's tree has another root than the checkpoint \
             this server published (journal {}): the database holds a different log. Do not \
             serve it; restore a backup of this log.",
            journal.display()
        ))),
        _ => Err(EngineError::Diverged(format!(
            "log {log_name}: the database has no checkpoint of size {}, which this server \
             published (journal {}); restore a backup of this log that has it.",
            r.size,
            journal.display()
        ))),
    }
}

/// Re-appends to the database every batch of the journal of `log_name` in `dir` beyond the
/// database's size, exactly as it was first committed. Returns the number of entries added.
/// Run it with every server of the log stopped.
pub async fn recover(store: &Store, log_name: &str, dir: &Path) -> Result<u64, EngineError> {
    let path = journal::path(dir, log_name);
    // Several processes sharing a data dir append to one journal, each after its own commit:
    // lines can be out of order, never overlapping.
    let mut records = journal::read_all(&path).map_err(EngineError::Internal)?;
    records.sort_by_key(|r| r.size);
    let row = store
        .load_log(log_name)
        .await?
        .ok_or_else(|| EngineError::Internal(format!("the database has no log {log_name}")))?;
    // What the database has must be the journal's log.
    if let Some(r) = records.iter().rev().find(|r| r.size <= row.tree_size) {
        root_matches(store.as_ref(), log_name, r, &path).await?;
    }
    let mut size = row.tree_size;
    let (mut edge, _) = sequencer::load_edge(store.as_ref(), log_name, size).await?;
    let mut added = 0;
    for r in &records {
        // Already in the database (or journaled twice by processes sharing the journal).
        if r.size <= size {
            continue;
        }
        let gap = |what: String| {
            EngineError::Diverged(format!(
                "log {log_name}: cannot recover from {}: {what}",
                path.display()
            ))
        };
        if r.old_size != size {
            return Err(gap(format!(
                "entries {size}..{} were committed by another process and are not in this \
                 journal; recover with that process's journal, or restore a newer backup",
                r.old_size
            )));
        }
        let entries = r.entries.as_ref().ok_or_else(|| {
            gap(
                "it holds checkpoints only (journal_entries = false); restore a newer backup"
                    .into(),
            )
        })?;
        if entries.len() as u64 != r.size - r.old_size {
            return Err(gap(format!("the record of size {} lacks entries", r.size)));
        }
        for e in entries {
            if e.leaf != merkle::leaf_hash(&e.data) {
                return Err(gap(format!(
                    "an entry of the record of size {} is damaged",
                    r.size
                )));
            }
            edge.try_append(e.leaf)
                .map_err(|e| EngineError::Internal(e.to_string()))?;
        }
        if edge.root() != r.root {
            return Err(gap(format!(
                "the entries of the record of size {} do not give its root",
                r.size
            )));
        }
        let tiles = edge
            .take_dirty_tiles()
            .into_iter()
            .map(|(t, d)| (t.level, t.index, d))
            .collect();
        let batch = Batch {
            old_size: r.old_size,
            new_size: r.size,
            root_hash: r.root,
            checkpoint: &r.checkpoint,
            entries: entries
                .iter()
                .zip(r.old_size..)
                .map(|(e, index)| NewEntry {
                    index,
                    leaf_hash: e.leaf,
                    data: &e.data,
                    extra: &e.extra,
                    search_keys: &e.keys,
                })
                .collect(),
            tiles,
            integrated_time: r.integrated_time,
            timestamp_ms: r.timestamp_ms,
        };
        store
            .commit_batch(log_name, &batch)
            .await
            .map_err(|e| match e {
                CommitError::Conflict => EngineError::Diverged(format!(
                    "log {log_name}: the log moved during recovery; stop every server of it first"
                )),
                CommitError::Storage(e) => EngineError::Storage(e),
            })?;
        size = r.size;
        added += entries.len() as u64;
    }
    Ok(added)
}
