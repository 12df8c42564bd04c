//! The sequencer: the only writer of a log. It takes what is queued (up to `max_batch` entries or
//! `max_wait`), reads the clock once for the batch, finds duplicates, assigns indexes, extends
//! the tree's right edge, signs the checkpoint and commits it all in one compare-and-swap
//! transaction; only then does it answer the submitters.
//!
//! One concept: the single-writer loop (batching, pipelining the next batch on top of the one
//! committing, commit, journal, witnesses, publication, recovery from a lost compare-and-swap),
//! whose steps share its state and order; what can stand apart (preparing a batch's tiles, the
//! journal, witnessing, reloads) lives in functions and modules of its own.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sigil_core::checkpoint::{Checkpoint, sign_checkpoint};
use sigil_core::merkle::{self, Hash};
use sigil_core::note::NoteSigner;
use sigil_core::tiles::{TileId, TreeEdge};
use tokio::sync::{mpsc, oneshot};

use super::journal::Journal;
use super::{
    Appended, EngineError, LeafBuilder, LeafInput, Shared, Submission, Tiles, TreeHead, to_i64,
};
use crate::storage::{Batch, CommitError, LogStore, NewEntry, Store};

/// Compare-and-swap losses a batch survives before its submitters get an error.
const MAX_CONFLICT_ATTEMPTS: u32 = 64;

/// A submission waiting for the sequencer.
pub(super) struct Pending {
    /// Set for a timestamped leaf, rebuilt each time the entry is sequenced.
    builder: Option<LeafBuilder>,
    /// The leaf input and its hash, as last built.
    data: Vec<u8>,
    leaf_hash: Hash,
    extra: Vec<u8>,
    search_keys: Vec<String>,
    reply: oneshot::Sender<Result<Appended, EngineError>>,
}

impl Pending {
    /// A fixed leaf is hashed here, on the submitter's task, not in the sequencer.
    pub(super) fn new(
        sub: Submission,
        reply: oneshot::Sender<Result<Appended, EngineError>>,
    ) -> Self {
        let (builder, data) = match sub.leaf {
            LeafInput::Fixed(data) => (None, data),
            LeafInput::Timestamped(b) => (Some(b), Vec::new()),
        };
        Pending {
            leaf_hash: merkle::leaf_hash(&data),
            builder,
            data,
            extra: sub.extra,
            search_keys: sub.search_keys,
            reply,
        }
    }

    /// Build a timestamped leaf for this timestamp; `Err` refuses the submission.
    fn build(&mut self, timestamp_ms: u64) -> Result<(), String> {
        if let Some(b) = &self.builder {
            self.data = b(timestamp_ms)?;
            self.leaf_hash = merkle::leaf_hash(&self.data);
        }
        Ok(())
    }
}

/// What becomes of one submission in a prepared batch.
enum Fate {
    Added(u64),
    /// Already in the log (or earlier in the batch) at this index.
    Duplicate(u64),
    /// Its leaf could not be built.
    Refused(String),
}

/// A batch sequenced on top of a tree edge, ready to commit: timestamp and indexes assigned,
/// tiles and the checkpoint computed and signed.
struct Prepared {
    batch: Vec<Pending>,
    fate: Vec<Fate>,
    /// Leaves this batch adds, by index (duplicate detection for the batch sequenced after it).
    assigned: HashMap<Hash, u64>,
    old_size: u64,
    next: TreeEdge,
    root: Hash,
    checkpoint: Vec<u8>,
    dirty: Vec<(TileId, Vec<u8>)>,
    /// The batch's one timestamp (ms): integrated times, timestamped leaves, the checkpoint.
    timestamp_ms: u64,
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
            .filter_map(|(p, f)| match f {
                Fate::Added(index) => Some(NewEntry {
                    index: *index,
                    leaf_hash: p.leaf_hash,
                    data: &p.data,
                    extra: &p.extra,
                    search_keys: &p.search_keys,
                }),
                Fate::Duplicate(_) | Fate::Refused(_) => None,
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
            integrated_time: integrated_time(self.timestamp_ms),
            timestamp_ms: to_i64(self.timestamp_ms),
        }
    }
}

fn integrated_time(timestamp_ms: u64) -> i64 {
    to_i64(timestamp_ms / 1000)
}

/// Start the sequencer of `shared`'s log on a thread and runtime of its own: on the request
/// runtime its wake-ups (commit done, next submission) queued behind every request task, and
/// that wait, not the database, set the length of a commit cycle under load.
pub(super) fn start(
    shared: Arc<Shared>,
    edge: TreeEdge,
    rx: mpsc::Receiver<Pending>,
    signer: Arc<dyn NoteSigner + Send + Sync>,
    journal: Option<Journal>,
) -> Result<(), EngineError> {
    std::thread::Builder::new()
        .name(format!("sequencer-{}", shared.log_name))
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
                let store = shared.store.for_own_runtime(2);
                let edge_ms = shared.head().timestamp_ms;
                sequencer(shared, store, edge, edge_ms, rx, signer, journal).await;
            });
        })
        .map_err(|e| EngineError::Internal(format!("cannot start the sequencer: {e}")))?;
    Ok(())
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
        .fetch_sub(n, Ordering::Relaxed)
        .saturating_sub(n);
    crate::metrics::set_queue_depth(&shared.log_name, left);
}

/// The sequencer commits batch N while it receives and prepares batch N+1 on top of N's (not yet
/// durable) tree, so duplicate lookup, hashing and checkpoint signing overlap the commit. Commits
/// stay strictly one after another, each guarded by its CAS; N+1 is sent only once N is durable,
/// and is re-prepared from scratch if N fails. `edge_ms` is the timestamp of the tree `edge`:
/// batch timestamps never go below it, even if the clock steps back.
async fn sequencer(
    shared: Arc<Shared>,
    store: Store,
    mut edge: TreeEdge,
    mut edge_ms: u64,
    mut rx: mpsc::Receiver<Pending>,
    signer: Arc<dyn NoteSigner + Send + Sync>,
    mut journal: Option<Journal>,
) {
    let store = store.as_ref();
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
                    let Some(first) = idle(&shared, store, &mut rx, &mut edge, &mut edge_ms).await
                    else {
                        return; // every sender dropped: shut down after draining.
                    };
                    waiting.push(first);
                    dequeued(&shared, 1);
                    open = fill(&shared, &mut rx, &mut waiting, None).await;
                }
                let take = waiting.len().min(max_batch);
                let batch: Vec<Pending> = waiting.drain(..take).collect();
                match prepare(&shared, store, &edge, edge_ms, None, batch, signer.as_ref()).await {
                    Ok(p) => p,
                    Err((mut batch, e)) => {
                        tracing::error!(log = %shared.log_name, error = %e, "preparing a batch failed");
                        // Reload before answering, so a submitter that reads after its error
                        // sees the stored log.
                        reload_or_log(&shared, store, &mut edge, &mut edge_ms).await;
                        fail_all(&mut batch, &e.to_string());
                        continue;
                    }
                }
            }
        };
        crate::metrics::observe_batch(&shared.log_name, cur.batch.len());
        if !cur.adds_entries() {
            // Only duplicates (of durable entries) and refusals: nothing to commit.
            answer(&shared, cur, None);
            continue;
        }

        let done = tokio::sync::Notify::new();
        let commit = async {
            let b = cur.storage_batch();
            let r = store.commit_batch(&shared.log_name, &b).await;
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
                store,
                &cur.next,
                cur.timestamp_ms,
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
                // Journaled before anyone hears of the checkpoint. If that fails, the batch is
                // durable but unjournaled: its submitters and those waiting get an error (a
                // retry finds a durable entry where it is), and the next batch tries again.
                if let Some(Err(e)) = journal.as_mut().map(|j| j.append(&cur.storage_batch())) {
                    tracing::error!(log = %shared.log_name, error = %e, "journaling a committed batch failed");
                    let mut batch = cur.batch;
                    let mut requeue: Vec<Pending> = match following {
                        Some(Ok(p)) => p.batch,
                        Some(Err((b, _))) => b,
                        None => Vec::new(),
                    };
                    reload_or_log(&shared, store, &mut edge, &mut edge_ms).await;
                    fail_all(
                        &mut batch,
                        &format!("the log's journal cannot be written: {e}"),
                    );
                    requeue.extend(rest);
                    requeue.append(&mut waiting);
                    fail_all(&mut requeue, "the log's journal cannot be written");
                    continue;
                }
                edge = cur.next.clone();
                edge_ms = cur.timestamp_ms;
                let mut cur = cur;
                match super::witnessing::cosign(&shared, store, &cur.checkpoint, edge.size()).await
                {
                    Ok(Some(cosigned)) => {
                        cur.checkpoint = cosigned;
                        answer(&shared, cur, Some(&edge));
                    }
                    Ok(None) => answer(&shared, cur, Some(&edge)),
                    Err(reason) => {
                        // Another process may have committed on top of this batch, and the
                        // witnesses cosigned that checkpoint instead (they never go back to a
                        // smaller size): the batch is published in it.
                        let size = edge.size();
                        if super::witnessing::later_cosigned(&shared, store, size).await {
                            reload_or_log(&shared, store, &mut edge, &mut edge_ms).await;
                        }
                        let head = shared.head();
                        if head.size >= size {
                            tracing::info!(log = %shared.log_name, size, published = head.size, "batch published in a later checkpoint another process had cosigned");
                            reply_all(cur.batch, cur.fate, cur.timestamp_ms, Some(&head));
                        } else {
                            withhold(&shared, cur, &reason);
                        }
                    }
                }
                match following {
                    Some(Ok(p)) => ready = Some(p),
                    Some(Err((batch, e))) => {
                        // Retried once without overlap; a second failure answers with an error.
                        tracing::warn!(log = %shared.log_name, error = %e, "preparing the next batch failed");
                        requeue = batch;
                    }
                    None => {}
                }
            }
            Err(e) => {
                let mut batch = cur.batch;
                let mut failed = None;
                match e {
                    CommitError::Conflict if attempts + 1 < MAX_CONFLICT_ATTEMPTS => {
                        attempts += 1;
                        // Another sequencer won the compare-and-swap: reload the edge and retry.
                        // Each conflict means the log advanced, so retrying is progress; replicas
                        // under steady load lose several times in a row, and a small random pause
                        // breaks their lockstep.
                        tracing::warn!(log = %shared.log_name, "checkpoint moved concurrently; reloading");
                        if attempts > 1 {
                            let jitter = rand::random::<u64>() % (2 * u64::from(attempts.min(10)));
                            tokio::time::sleep(Duration::from_millis(jitter)).await;
                        }
                        requeue = batch;
                    }
                    e => {
                        attempts = 0;
                        tracing::error!(log = %shared.log_name, error = %e, "batch commit failed");
                        failed = Some((std::mem::take(&mut batch), e.to_string()));
                    }
                }
                // The following batch was built on a tree that did not become durable.
                match following {
                    Some(Ok(p)) => requeue.extend(p.batch),
                    Some(Err((b, _))) => requeue.extend(b),
                    None => {}
                }
                // The commit may have been durable although it failed (a connection lost after
                // COMMIT): serve the stored log before telling anyone the batch failed.
                reload_or_log(&shared, store, &mut edge, &mut edge_ms).await;
                if let Some((mut b, msg)) = failed {
                    fail_all(&mut b, &msg);
                }
            }
        }
        requeue.extend(rest);
        requeue.append(&mut waiting);
        waiting = requeue;
    }
}

/// Waits for the next submission. Meanwhile, every `head_refresh`, takes up what other
/// processes writing to the same database committed, so an idle process does not serve an old
/// checkpoint (nor miss their entries) for longer than that.
async fn idle(
    shared: &Arc<Shared>,
    store: &dyn LogStore,
    rx: &mut mpsc::Receiver<Pending>,
    edge: &mut TreeEdge,
    edge_ms: &mut u64,
) -> Option<Pending> {
    let mut every = shared.config.head_refresh;
    if shared.config.witnessing.is_some() {
        // A withheld checkpoint is offered to the witnesses again this often.
        every = if every.is_zero() {
            Duration::from_secs(1)
        } else {
            every.min(Duration::from_secs(1))
        };
    }
    if every.is_zero() {
        return rx.recv().await;
    }
    loop {
        tokio::select! {
            p = rx.recv() => return p,
            _ = tokio::time::sleep(every) => {
                super::witnessing::publish_withheld(shared, store, edge).await;
                match store.load_log(&shared.log_name).await {
                    Ok(Some(row)) if row.tree_size != edge.size() => {
                        tracing::debug!(log = %shared.log_name, size = row.tree_size, "the log grew elsewhere; reloading");
                        reload_or_log(shared, store, edge, edge_ms).await;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(log = %shared.log_name, error = %e, "checking the stored head failed"),
                }
            }
        }
    }
}

async fn reload_or_log(
    shared: &Shared,
    store: &dyn LogStore,
    edge: &mut TreeEdge,
    edge_ms: &mut u64,
) {
    if let Err(e) = reload(shared, store, edge, edge_ms).await {
        tracing::error!(log = %shared.log_name, error = %e, "reloading the log failed");
    }
}

fn fail_all(batch: &mut Vec<Pending>, msg: &str) {
    for p in batch.drain(..) {
        let _ = p.reply.send(Err(EngineError::Internal(msg.to_string())));
    }
}

/// Take the stored log as the truth again (after a failed or lost commit): its edge, partial
/// tiles and head.
async fn reload(
    shared: &Shared,
    store: &dyn LogStore,
    edge: &mut TreeEdge,
    edge_ms: &mut u64,
) -> Result<(), EngineError> {
    let row = store
        .load_log(&shared.log_name)
        .await?
        .ok_or_else(|| EngineError::Internal("log row vanished".into()))?;
    let (new_edge, partials) = load_edge(store, &shared.log_name, row.tree_size).await?;
    *edge = new_edge;
    let head = TreeHead::from_row(row);
    *edge_ms = (*edge_ms).max(head.timestamp_ms);
    if let Ok(mut p) = shared.partials.write() {
        *p = partials;
    }
    // With fail-closed witnesses, a stored head they did not cosign stays unpublished.
    if let Some(w) = shared.config.witnessing.as_ref()
        && w.fail_closed
        && head.size > shared.head().size
        && !w.enough(&head.checkpoint)
    {
        return Ok(());
    }
    crate::metrics::set_log_size(&shared.log_name, head.size);
    shared.set_head(Arc::new(head));
    Ok(())
}

/// Sequence `batch` on top of `base` (a tree of timestamp `base_ms`): take the batch timestamp,
/// build timestamped leaves, find duplicates (in the stored log, in `in_flight` — the batch
/// committing meanwhile — and within the batch), assign indexes, compute the changed tiles and
/// sign the new checkpoint. On failure the batch is handed back.
async fn prepare(
    shared: &Shared,
    store: &dyn LogStore,
    base: &TreeEdge,
    base_ms: u64,
    in_flight: Option<&HashMap<Hash, u64>>,
    mut batch: Vec<Pending>,
    signer: &(dyn NoteSigner + Send + Sync),
) -> Result<Prepared, (Vec<Pending>, EngineError)> {
    let timestamp_ms = shared.config.clock.unix_ms().max(base_ms);
    let refused: Vec<Option<String>> = batch
        .iter_mut()
        .map(|p| p.build(timestamp_ms).err())
        .collect();
    // Duplicates against the stored log (a racing batch may have committed them).
    let hashes: Vec<Hash> = batch
        .iter()
        .zip(&refused)
        .filter(|(_, r)| r.is_none())
        .map(|(p, _)| p.leaf_hash)
        .collect();
    let existing = match store.existing_leaves(&shared.log_name, &hashes).await {
        Ok(e) => e,
        Err(e) => return Err((batch, e.into())),
    };
    let old_size = base.size();
    let mut next = base.clone();
    let mut assigned: HashMap<Hash, u64> = HashMap::with_capacity(batch.len());
    let mut fate: Vec<Fate> = Vec::with_capacity(batch.len());
    for (p, refused) in batch.iter().zip(refused) {
        if let Some(msg) = refused {
            fate.push(Fate::Refused(msg));
            continue;
        }
        let known = existing
            .get(&p.leaf_hash)
            .or_else(|| in_flight.and_then(|m| m.get(&p.leaf_hash)))
            .or_else(|| assigned.get(&p.leaf_hash));
        if let Some(i) = known {
            fate.push(Fate::Duplicate(*i));
        } else {
            let index = next.size();
            next.append(p.leaf_hash);
            assigned.insert(p.leaf_hash, index);
            fate.push(Fate::Added(index));
        }
    }
    if let Some(seal) = &shared.config.sealer {
        let time = integrated_time(timestamp_ms);
        for (p, f) in batch.iter_mut().zip(&fate) {
            if let Fate::Added(index) = f {
                match (seal.0)(*index, time, &p.data) {
                    Ok(extra) => p.extra = extra,
                    Err(e) => {
                        let e = EngineError::Internal(format!("sealing entry {index}: {e}"));
                        return Err((batch, e));
                    }
                }
            }
        }
    }
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
        timestamp_ms,
    })
}

/// Answer every submitter of a batch. `committed` is the edge after it when it was durable
/// (publish the new head and tiles first); `None` when the batch added nothing.
fn answer(shared: &Shared, p: Prepared, committed: Option<&TreeEdge>) {
    let Prepared {
        batch,
        fate,
        root,
        checkpoint,
        dirty,
        timestamp_ms,
        ..
    } = p;
    let head = committed.map(|edge| publish(shared, edge, root, checkpoint, dirty, timestamp_ms));
    reply_all(batch, fate, timestamp_ms, head.as_ref());
}

/// Answers a batch's submitters: their entries are in the tree of `head`.
fn reply_all(
    batch: Vec<Pending>,
    fate: Vec<Fate>,
    timestamp_ms: u64,
    head: Option<&Arc<TreeHead>>,
) {
    for (p, f) in batch.into_iter().zip(fate) {
        let reply = match (f, head) {
            (Fate::Added(index), Some(head)) => Ok(Appended {
                index,
                leaf_hash: p.leaf_hash,
                timestamp_ms,
                integrated_time: integrated_time(timestamp_ms),
                extra: p.extra,
                tree: Arc::clone(head),
            }),
            (Fate::Added(_), None) => Err(EngineError::Internal(
                "an entry was sequenced but its batch not committed".into(),
            )),
            (Fate::Duplicate(index), _) => Err(EngineError::Duplicate {
                index,
                timestamp_ms: p.builder.is_some().then_some(timestamp_ms),
            }),
            (Fate::Refused(msg), _) => Err(EngineError::InvalidArgs(msg)),
        };
        let _ = p.reply.send(reply);
    }
}

/// A committed batch whose checkpoint too few witnesses cosigned: its tiles become readable
/// (the head does not move, so no reader is shown them), and its submitters learn that their
/// entries are durable but not published. The next checkpoint the witnesses cosign publishes
/// them.
fn withhold(shared: &Shared, p: Prepared, reason: &str) {
    publish_tiles(shared, p.dirty);
    for (pending, f) in p.batch.into_iter().zip(p.fate) {
        let reply = match f {
            Fate::Added(_) => Err(EngineError::Unpublished(reason.to_string())),
            Fate::Duplicate(index) => Err(EngineError::Duplicate {
                index,
                timestamp_ms: pending.builder.is_some().then_some(p.timestamp_ms),
            }),
            Fate::Refused(msg) => Err(EngineError::InvalidArgs(msg)),
        };
        let _ = pending.reply.send(reply);
    }
}

fn publish_tiles(shared: &Shared, dirty: Vec<(TileId, Vec<u8>)>) {
    for (t, data) in dirty {
        let key = (t.level, t.index);
        let data = Arc::new(data);
        if t.is_full() {
            if let Ok(mut p) = shared.partials.write() {
                p.remove(&key);
            }
            if t.level == 0 {
                shared.summaries.insert(t.index, &data);
                crate::metrics::set_summarised_tiles(&shared.log_name, shared.summaries.count());
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
}

/// Make a committed batch visible to readers: its tiles, then its head.
fn publish(
    shared: &Shared,
    edge: &TreeEdge,
    root: Hash,
    checkpoint: Vec<u8>,
    dirty: Vec<(TileId, Vec<u8>)>,
    timestamp_ms: u64,
) -> Arc<TreeHead> {
    publish_tiles(shared, dirty);
    let head = Arc::new(TreeHead {
        size: edge.size(),
        root,
        checkpoint,
        timestamp_ms,
    });
    shared.set_head(head.clone());
    crate::metrics::set_log_size(&shared.log_name, edge.size());
    head
}

pub(super) fn sign_head(
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

/// The right edge of the stored tree of `size` leaves, and its partial tiles.
pub(super) async fn load_edge(
    store: &dyn LogStore,
    log_name: &str,
    size: u64,
) -> Result<(TreeEdge, Tiles), EngineError> {
    let ids = TreeEdge::right_edge_tiles(size);
    let keys: Vec<(u8, u64)> = ids.iter().map(|t| (t.level, t.index)).collect();
    let mut rows = store.read_tiles(log_name, &keys).await?;
    let mut tiles = Vec::with_capacity(ids.len());
    let mut partials = HashMap::new();
    for t in ids {
        let data = rows.remove(&(t.level, t.index)).ok_or_else(|| {
            EngineError::Internal(format!(
                "log {log_name}: right-edge tile {} missing",
                t.path()
            ))
        })?;
        let need = usize::from(t.width) * 32;
        let data = data.get(..need).map(<[u8]>::to_vec).ok_or_else(|| {
            EngineError::Internal(format!(
                "log {log_name}: tile {} shorter than expected",
                t.path()
            ))
        })?;
        partials.insert((t.level, t.index), Arc::new(data.clone()));
        tiles.push((t, data));
    }
    let edge = TreeEdge::from_partial_tiles(size, &tiles)
        .map_err(|e| EngineError::Internal(format!("log {log_name}: {e}")))?;
    Ok((edge, partials))
}
