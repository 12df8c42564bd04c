//! The read side of a log, for handlers: the committed head, proofs and tiles (from caches,
//! else storage), entries and the search index. Nothing here writes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use sigil_core::merkle::{self, Hash, NodeId};
use sigil_core::tiles::{TileId, TileSet, tiles_for_nodes};

use super::{EngineError, Shared, TreeHead, summaries};
use crate::clock::Clock;
use crate::storage::EntryRow;

/// Read-only access to one log; cheap to clone.
#[derive(Clone)]
pub struct LogView {
    shared: Arc<Shared>,
}

impl LogView {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    pub(super) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// What this request reads: the standby view when the request was routed there.
    fn active(&self) -> &Shared {
        match self.shared.replica.get() {
            Some(r) if super::replica::reading_replica() => &r.shared,
            _ => &self.shared,
        }
    }

    /// The log's name in the database (e.g. `rekor`).
    pub fn log_name(&self) -> &str {
        &self.active().log_name
    }
    pub fn tree_id(&self) -> i64 {
        self.active().tree_id
    }
    pub fn origin(&self) -> &str {
        &self.active().origin
    }
    /// The clock the sequencer stamps batches with.
    pub fn clock(&self) -> &dyn Clock {
        self.active().config.clock.as_ref()
    }
    /// Submissions waiting for the sequencer.
    pub fn queue_depth(&self) -> usize {
        self.shared.queued.load(Ordering::Relaxed)
    }

    /// The latest committed tree head.
    pub fn head(&self) -> Arc<TreeHead> {
        self.active().head()
    }

    /// The entry at `index`, if stored (possibly committed by another replica after our head).
    pub async fn entry(&self, index: u64) -> Result<Option<EntryRow>, EngineError> {
        Ok(self
            .entries(index, index.saturating_add(1))
            .await?
            .into_iter()
            .next())
    }

    /// Stored entries with start <= index < end, in order.
    pub async fn entries(&self, start: u64, end: u64) -> Result<Vec<EntryRow>, EngineError> {
        let shared = self.active();
        Ok(shared
            .store
            .entries_range(&shared.log_name, start, end)
            .await?)
    }

    /// The index of a stored leaf (possibly past our head, when another replica committed it).
    pub async fn index_of_leaf(&self, leaf: &Hash) -> Result<Option<u64>, EngineError> {
        let shared = self.active();
        Ok(shared.store.index_of_leaf(&shared.log_name, leaf).await?)
    }

    /// Leaf hashes the sequencer indexed under `key`, at most `limit`.
    pub async fn search(&self, key: &str, limit: i64) -> Result<Vec<Hash>, EngineError> {
        let shared = self.active();
        let key = match &shared.config.search_privacy {
            Some(p) => p.query_key(key)?,
            None => key.to_string(),
        };
        Ok(shared.store.search(&shared.log_name, &key, limit).await?)
    }

    /// The entry at `index` with its inclusion proof in the tree of `size` (≤ the current
    /// size). When the entry's tile is summarised, one database read gives both: the entry's
    /// row and its block's leaf hashes, the rest of the proof coming from memory.
    pub async fn entry_with_proof(
        &self,
        index: u64,
        size: u64,
    ) -> Result<Option<(EntryRow, Vec<Hash>)>, EngineError> {
        self.check_size(size)?;
        let shared = self.active();
        if !summaries::covers(&shared.summaries, index, size) {
            let Some(row) = self.entry(index).await? else {
                return Ok(None);
            };
            let proof = self.inclusion_proof(index, size).await?;
            return Ok(Some((row, proof)));
        }
        let start = summaries::block_start(index);
        let Some((row, leaves)) = shared
            .store
            .entry_with_leaves(&shared.log_name, index, start, start + summaries::BLOCK)
            .await?
        else {
            return Ok(None);
        };
        let nodes = merkle::inclusion_proof_nodes(index, size).map_err(proof_args)?;
        if leaves.len() as u64 != summaries::BLOCK
            || leaves.get((index - start) as usize) != Some(&row.leaf_hash)
        {
            return Err(EngineError::Internal(format!(
                "entries {start}..{} are not stored densely",
                start + summaries::BLOCK
            )));
        }
        let (lower, upper) = summaries::block_nodes(&nodes, start, &leaves);
        let mut known = self.node_hashes(&upper, size).await?;
        known.0.extend(lower);
        let proof = merkle::inclusion_proof(index, size, &known)
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        Ok(Some((row, proof)))
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

    /// A consistency proof up to a committed size that may not be published yet (what a
    /// witness is shown before the checkpoint is).
    pub(super) async fn consistency_proof_committed(
        &self,
        old: u64,
        new: u64,
    ) -> Result<Vec<Hash>, EngineError> {
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
        if let Ok(cache) = self.active().full_tiles.lock()
            && let Some(t) = cache.get(&key)
        {
            return Ok(Some(truncated(t, need)));
        }
        if !tile.is_full()
            && let Ok(p) = self.active().partials.read()
            && let Some(t) = p.get(&key)
            && t.len() >= need
        {
            return Ok(Some(truncated(t, need)));
        }
        let shared = self.active();
        let mut rows = shared.store.read_tiles(&shared.log_name, &[key]).await?;
        let Some(data) = rows.remove(&key) else {
            return Ok(None);
        };
        let data = Arc::new(data);
        if data.len() == 256 * 32 {
            if tile.level == 0 {
                shared.summaries.insert(tile.index, &data);
            }
            self.cache_full(key, data.clone());
        }
        if data.len() < need {
            return Ok(None);
        }
        Ok(Some(truncated(&data, need)))
    }

    fn cache_full(&self, key: (u8, u64), data: Arc<Vec<u8>>) {
        if let Ok(mut cache) = self.active().full_tiles.lock() {
            evict_to(
                &mut cache,
                self.active().config.tile_cache_entries.saturating_sub(1),
            );
            cache.insert(key, data);
        }
    }

    /// The hashes of complete nodes of the tree of `size`: from the node cache, else from tiles.
    async fn node_hashes(&self, nodes: &[NodeId], size: u64) -> Result<KnownNodes, EngineError> {
        let mut known = Vec::with_capacity(nodes.len());
        let mut missing = Vec::new();
        // Nodes inside summarised tiles need neither the cache nor a tile.
        let summaries = &self.active().summaries;
        let nodes: Vec<NodeId> = nodes
            .iter()
            .filter(|n| match summaries.node(**n) {
                Some(h) => {
                    known.push((**n, h));
                    false
                }
                None => true,
            })
            .copied()
            .collect();
        if let Ok(cache) = self.active().nodes.lock() {
            for n in &nodes {
                match cache.get(n) {
                    Some(h) => {
                        known.push((*n, *h));
                    }
                    None => missing.push(*n),
                }
            }
        } else {
            missing.extend_from_slice(&nodes);
        }
        if !missing.is_empty() {
            let tiles = self.tile_set(&missing, size).await?;
            for n in &missing {
                let h = tiles
                    .node_hash(*n)
                    .map_err(|e| EngineError::Internal(e.to_string()))?;
                known.push((*n, h));
            }
            if let Ok(mut cache) = self.active().nodes.lock() {
                let room = self.active().config.node_cache_entries;
                evict_to(&mut cache, room.saturating_sub(missing.len()));
                for n in &missing {
                    if let Some((_, h)) = known.iter().find(|(k, _)| k == n) {
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

/// Node hashes looked up for one proof: a few dozen at most, so a list beats a hash map.
struct KnownNodes(Vec<(NodeId, Hash)>);

impl merkle::HashSource for KnownNodes {
    type Error = String;
    fn node_hashes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>, String> {
        nodes
            .iter()
            .map(|n| {
                self.0
                    .iter()
                    .find(|(k, _)| k == n)
                    .map(|(_, h)| *h)
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

/// Keeps at most `len` entries: when over, drops arbitrary ones in one pass down to three
/// quarters of `len`, so the cost is amortised over the inserts that refill it. A hash map's
/// iteration order is as good as random here, and random eviction keeps most of a hot set
/// (upper levels, the right edge) where clearing the whole cache made every reader refill it at
/// once. (Dropping one key at a time rescanned the emptied front of the table for each, which at
/// 10^7 entries was a twentieth of the server's CPU.)
fn evict_to<K: std::hash::Hash + Eq + Copy, V, S: std::hash::BuildHasher>(
    cache: &mut HashMap<K, V, S>,
    len: usize,
) {
    if cache.len() <= len {
        return;
    }
    let mut drop = cache.len() - len * 3 / 4;
    cache.retain(|_, _| {
        if drop == 0 {
            return true;
        }
        drop -= 1;
        false
    });
}

fn truncated(t: &Arc<Vec<u8>>, len: usize) -> Arc<Vec<u8>> {
    if t.len() == len {
        t.clone()
    } else {
        Arc::new(t.get(..len).unwrap_or(t.as_slice()).to_vec())
    }
}
