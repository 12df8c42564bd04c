//! An in-memory [`LogStore`] for the engine's tests (compiled for tests only). It keeps the same
//! contract as the database drivers (compare-and-swap on the tree size, unique leaves, every
//! checkpoint kept) and fails commits on request: the next commits take their [`Fault`] from a
//! queue, so a test says exactly which commit misbehaves and how.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use sigil_core::merkle::Hash;
use tokio::sync::Semaphore;

use super::{Batch, CommitError, EntryRow, LogRow, LogStore, NewLog, StorageError, Store};

/// How one commit misbehaves.
#[derive(Clone, Debug)]
pub enum Fault {
    /// The commit fails and writes nothing.
    Fail,
    /// The commit is durable, then reports a failure (a connection lost after `COMMIT`).
    FailAfterPersist,
    /// Another writer won the compare-and-swap: nothing is written and `Conflict` is answered,
    /// although the log did not move.
    LoseCas,
    /// The commit waits for a permit of `gate` (see [`MemoryStore::gate`]), then succeeds, or
    /// misbehaves as `then`.
    Slow {
        gate: Arc<Semaphore>,
        then: Option<Box<Fault>>,
    },
    /// The commit takes this long, then succeeds.
    Delay(Duration),
}

/// One log as a database would hold it.
#[derive(Clone, Debug, Default)]
pub struct StoredLog {
    pub row: Option<LogRow>,
    pub entries: Vec<EntryRow>,
    pub leaves: HashMap<Hash, u64>,
    pub tiles: HashMap<(u8, u64), Vec<u8>>,
    /// (key, leaf hash), in insertion order, without duplicates.
    pub search: Vec<(String, Hash)>,
    /// Every committed checkpoint: (tree size, root, note).
    pub checkpoints: Vec<(u64, Hash, Vec<u8>)>,
}

#[derive(Default)]
struct State {
    logs: HashMap<String, StoredLog>,
    faults: VecDeque<Fault>,
    commit_attempts: u64,
    settings: HashMap<(String, String), String>,
    witness: HashMap<String, (u64, Hash, Vec<u8>)>,
}

/// The store; clones share it.
#[derive(Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue a fault for the next commit that has none yet.
    pub fn inject(&self, fault: Fault) {
        self.lock().faults.push_back(fault);
    }

    /// Faults not yet used.
    pub fn pending_faults(&self) -> usize {
        self.lock().faults.len()
    }

    /// A closed gate for [`Fault::Slow`]: `add_permits(1)` lets one commit on.
    pub fn gate() -> Arc<Semaphore> {
        Arc::new(Semaphore::new(0))
    }

    /// Commits attempted so far, whatever their outcome.
    pub fn commit_attempts(&self) -> u64 {
        self.lock().commit_attempts
    }

    /// Wait (up to 10 s) until at least `n` commits were attempted.
    pub async fn wait_for_commit_attempts(&self, n: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.commit_attempts() < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {} of {n} commits attempted",
                self.commit_attempts()
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// A copy of what is stored for a log.
    pub fn snapshot(&self, log_name: &str) -> StoredLog {
        self.lock().logs.get(log_name).cloned().unwrap_or_default()
    }

    /// Apply a batch under the compare-and-swap, as one atomic step.
    fn apply(&self, log_name: &str, b: &Batch<'_>) -> Result<(), CommitError> {
        let mut st = self.lock();
        let log = st
            .logs
            .get_mut(log_name)
            .ok_or_else(|| StorageError::Corrupt(format!("no log {log_name}")))?;
        let row = log
            .row
            .as_mut()
            .ok_or_else(|| StorageError::Corrupt(format!("no log {log_name}")))?;
        if row.tree_size != b.old_size {
            return Err(CommitError::Conflict);
        }
        // Unique (log, leaf) and (log, index), as the databases' keys.
        let mut fresh = std::collections::HashSet::new();
        for e in &b.entries {
            if log.leaves.contains_key(&e.leaf_hash)
                || !fresh.insert(e.leaf_hash)
                || e.index < row.tree_size
            {
                return Err(CommitError::Conflict);
            }
        }
        row.tree_size = b.new_size;
        row.root_hash = b.root_hash;
        row.checkpoint = b.checkpoint.to_vec();
        row.timestamp_ms = b.timestamp_ms;
        log.checkpoints
            .push((b.new_size, b.root_hash, b.checkpoint.to_vec()));
        for e in &b.entries {
            log.leaves.insert(e.leaf_hash, e.index);
            log.entries.push(EntryRow {
                index: e.index,
                leaf_hash: e.leaf_hash,
                data: e.data.to_vec(),
                extra: e.extra.to_vec(),
                integrated_time: b.integrated_time,
            });
            for k in e.search_keys {
                if !log
                    .search
                    .iter()
                    .any(|(sk, l)| sk == k && *l == e.leaf_hash)
                {
                    log.search.push((k.clone(), e.leaf_hash));
                }
            }
        }
        log.entries.sort_by_key(|e| e.index);
        for (level, index, data) in &b.tiles {
            log.tiles.insert((*level, *index), data.clone());
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl LogStore for MemoryStore {
    fn for_own_runtime(&self, _max_connections: u32) -> Store {
        Arc::new(self.clone())
    }

    async fn ping(&self) -> Result<(), StorageError> {
        Ok(())
    }

    async fn load_log(&self, log_name: &str) -> Result<Option<LogRow>, StorageError> {
        Ok(self.lock().logs.get(log_name).and_then(|l| l.row.clone()))
    }

    async fn create_log(&self, log_name: &str, new: &NewLog<'_>) -> Result<LogRow, StorageError> {
        let mut st = self.lock();
        let log = st.logs.entry(log_name.to_string()).or_default();
        let row = log.row.get_or_insert_with(|| LogRow {
            tree_id: new.tree_id,
            tree_size: 0,
            root_hash: new.empty_root,
            checkpoint: new.checkpoint.to_vec(),
            timestamp_ms: new.timestamp_ms,
        });
        Ok(row.clone())
    }

    async fn read_tiles(
        &self,
        log_name: &str,
        ids: &[(u8, u64)],
    ) -> Result<HashMap<(u8, u64), Vec<u8>>, StorageError> {
        let st = self.lock();
        let Some(log) = st.logs.get(log_name) else {
            return Ok(HashMap::new());
        };
        Ok(ids
            .iter()
            .filter_map(|id| log.tiles.get(id).map(|t| (*id, t.clone())))
            .collect())
    }

    async fn existing_leaves(
        &self,
        log_name: &str,
        leaves: &[Hash],
    ) -> Result<HashMap<Hash, u64>, StorageError> {
        let st = self.lock();
        let Some(log) = st.logs.get(log_name) else {
            return Ok(HashMap::new());
        };
        Ok(leaves
            .iter()
            .filter_map(|h| log.leaves.get(h).map(|i| (*h, *i)))
            .collect())
    }

    async fn commit_batch(&self, log_name: &str, b: &Batch<'_>) -> Result<(), CommitError> {
        let fault = {
            let mut st = self.lock();
            st.commit_attempts += 1;
            st.faults.pop_front()
        };
        // Wait first, then misbehave as the fault that follows the wait, if any.
        let mut fault = fault;
        while matches!(fault, Some(Fault::Slow { .. } | Fault::Delay(_))) {
            fault = match fault.take() {
                Some(Fault::Slow { gate, then }) => {
                    gate.acquire()
                        .await
                        .map_err(|_| StorageError::Injected("gate closed"))?
                        .forget();
                    then.map(|t| *t)
                }
                Some(Fault::Delay(d)) => {
                    tokio::time::sleep(d).await;
                    None
                }
                other => other,
            };
        }
        match fault {
            None | Some(Fault::Slow { .. } | Fault::Delay(_)) => self.apply(log_name, b),
            Some(Fault::Fail) => Err(StorageError::Injected("commit failed").into()),
            Some(Fault::FailAfterPersist) => {
                self.apply(log_name, b)?;
                Err(StorageError::Injected("connection lost after commit").into())
            }
            Some(Fault::LoseCas) => Err(CommitError::Conflict),
        }
    }

    async fn entries_range(
        &self,
        log_name: &str,
        start: u64,
        end: u64,
    ) -> Result<Vec<EntryRow>, StorageError> {
        let st = self.lock();
        let Some(log) = st.logs.get(log_name) else {
            return Ok(Vec::new());
        };
        Ok(log
            .entries
            .iter()
            .filter(|e| e.index >= start && e.index < end)
            .cloned()
            .collect())
    }

    async fn index_of_leaf(
        &self,
        log_name: &str,
        leaf: &Hash,
    ) -> Result<Option<u64>, StorageError> {
        Ok(self
            .lock()
            .logs
            .get(log_name)
            .and_then(|l| l.leaves.get(leaf).copied()))
    }

    async fn log_names(&self) -> Result<Vec<String>, StorageError> {
        let mut names: Vec<String> = self.lock().logs.keys().cloned().collect();
        names.sort();
        Ok(names)
    }

    async fn checkpoints_after(
        &self,
        log_name: &str,
        after: u64,
        limit: i64,
    ) -> Result<Vec<(u64, Hash, Vec<u8>)>, StorageError> {
        let st = self.lock();
        let Some(log) = st.logs.get(log_name) else {
            return Ok(Vec::new());
        };
        let mut out: Vec<_> = log
            .checkpoints
            .iter()
            .filter(|(s, _, _)| *s > after)
            .cloned()
            .collect();
        out.sort_by_key(|(s, _, _)| *s);
        out.truncate(usize::try_from(limit).unwrap_or(0));
        Ok(out)
    }

    async fn setting(&self, log_name: &str, name: &str) -> Result<Option<String>, StorageError> {
        Ok(self
            .lock()
            .settings
            .get(&(log_name.to_string(), name.to_string()))
            .cloned())
    }

    async fn set_setting(
        &self,
        log_name: &str,
        name: &str,
        value: &str,
    ) -> Result<(), StorageError> {
        self.lock()
            .settings
            .insert((log_name.to_string(), name.to_string()), value.to_string());
        Ok(())
    }

    async fn search_keys_after(
        &self,
        log_name: &str,
        after: &str,
        limit: i64,
    ) -> Result<Vec<String>, StorageError> {
        let st = self.lock();
        let Some(log) = st.logs.get(log_name) else {
            return Ok(Vec::new());
        };
        let mut keys: Vec<String> = log
            .search
            .iter()
            .map(|(k, _)| k.clone())
            .filter(|k| k.as_str() > after)
            .collect();
        keys.sort();
        keys.dedup();
        keys.truncate(usize::try_from(limit).unwrap_or(0));
        Ok(keys)
    }

    async fn rename_search_key(
        &self,
        log_name: &str,
        old: &str,
        new: Option<&str>,
    ) -> Result<u64, StorageError> {
        let mut st = self.lock();
        let Some(log) = st.logs.get_mut(log_name) else {
            return Ok(0);
        };
        let leaves: Vec<Hash> = log
            .search
            .iter()
            .filter(|(k, _)| k == old)
            .map(|(_, h)| *h)
            .collect();
        log.search.retain(|(k, _)| k != old);
        if let Some(new) = new {
            for h in &leaves {
                if !log.search.iter().any(|(k, l)| k == new && l == h) {
                    log.search.push((new.to_string(), *h));
                }
            }
        }
        Ok(leaves.len() as u64)
    }

    async fn search(
        &self,
        log_name: &str,
        key: &str,
        limit: i64,
    ) -> Result<Vec<Hash>, StorageError> {
        let st = self.lock();
        let Some(log) = st.logs.get(log_name) else {
            return Ok(Vec::new());
        };
        Ok(log
            .search
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, l)| *l)
            .take(usize::try_from(limit).unwrap_or(0))
            .collect())
    }

    async fn set_checkpoint(
        &self,
        log_name: &str,
        size: u64,
        checkpoint: &[u8],
    ) -> Result<(), StorageError> {
        let mut st = self.lock();
        if let Some(log) = st.logs.get_mut(log_name) {
            for c in log.checkpoints.iter_mut().filter(|c| c.0 == size) {
                c.2 = checkpoint.to_vec();
            }
            if let Some(row) = log.row.as_mut().filter(|r| r.tree_size == size) {
                row.checkpoint = checkpoint.to_vec();
            }
        }
        Ok(())
    }

    async fn witness_latest(
        &self,
        origin: &str,
    ) -> Result<Option<(u64, Hash, Vec<u8>)>, StorageError> {
        Ok(self.lock().witness.get(origin).cloned())
    }

    async fn witness_advance(
        &self,
        origin: &str,
        old: (u64, &Hash),
        new: (u64, &Hash, &[u8]),
    ) -> Result<bool, StorageError> {
        let mut st = self.lock();
        let current = st.witness.get(origin).map(|(s, r, _)| (*s, *r));
        let matches = match current {
            None => old.0 == 0,
            Some((0, _)) => old.0 == 0,
            Some((size, root)) => size == old.0 && &root == old.1,
        };
        if matches {
            st.witness
                .insert(origin.to_string(), (new.0, *new.1, new.2.to_vec()));
        }
        Ok(matches)
    }
}
