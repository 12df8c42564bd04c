//! Proof material of complete level-0 tiles, kept small. A full level-0 tile holds 256 leaf
//! hashes (8 KiB). Below level 8 an inclusion proof needs only nodes of the entry's own tile:
//! up to five above its 8-leaf block (levels 3 to 7) and three inside that block. So each full
//! tile is kept as its nodes of levels 3, 5 and 7 (32 + 8 + 2 hashes, 1.3 KiB): a node of level
//! 4, 6 or 8 is one hash of two kept ones, so a proof costs at most three hashes here (keeping
//! level 3 alone cost 26, a tenth of the server's CPU per read). The block's leaves come with
//! the entry's own row, in one range scan. At 10^7 entries the level-0 tiles are 305 MiB, these
//! 51 MiB: all fit in memory, and a random read needs no tile from the database. (Smaller
//! blocks cost more memory for little: at 10^7, PostgreSQL served 4-, 8- and 16-row range reads
//! at 14.3k, 13.4k and 12.5k/s.)
//!
//! A complete tile never changes, so a summary is never stale, and the standby view of a log
//! shares its primary's.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use sigil_core::merkle::{self, Hash, NodeId};

use super::Shared;

/// Leaves per block: the level of the hashes a summary keeps is log2 of this.
pub const BLOCK: u64 = 8;
const BLOCK_LEVEL: u8 = 3;
/// Levels a level-0 tile spans.
const TILE_LEVELS: u8 = 8;
const TILE_LEAVES: u64 = 1 << TILE_LEVELS;
/// Where each kept level starts in a summary: 32 nodes of level 3, 8 of level 5, 2 of level 7.
const KEPT: [(u8, usize); 3] = [(3, 0), (5, 32), (7, 40)];
const SUMMARY_LEN: usize = 42;

type Summary = [Hash; SUMMARY_LEN];

/// Proof nodes with their hashes, and nodes still to look up.
type Split = (Vec<(NodeId, Hash)>, Vec<NodeId>);

/// The summaries of a log's full level-0 tiles, by tile index.
#[derive(Default)]
pub struct Summaries {
    tiles: RwLock<Vec<Option<Box<Summary>>>>,
    count: AtomicUsize,
}

impl Summaries {
    /// Keeps the summary of full level-0 tile `tile` from its bytes (256 leaf hashes).
    pub fn insert(&self, tile: u64, data: &[u8]) {
        let Some(summary) = summarise(data) else {
            return;
        };
        let Ok(i) = usize::try_from(tile) else {
            return;
        };
        if let Ok(mut tiles) = self.tiles.write() {
            if tiles.len() <= i {
                tiles.resize_with(i + 1, || None);
            }
            if let Some(slot @ None) = tiles.get_mut(i) {
                *slot = Some(Box::new(summary));
                self.count.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn has(&self, tile: u64) -> bool {
        let Ok(i) = usize::try_from(tile) else {
            return false;
        };
        self.tiles
            .read()
            .ok()
            .is_some_and(|t| t.get(i).is_some_and(Option::is_some))
    }

    /// How many tiles are summarised.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// The hash of `node` (level 3 to 8) from the summary of its tile, if kept.
    pub(super) fn node(&self, node: NodeId) -> Option<Hash> {
        if !(BLOCK_LEVEL..=TILE_LEVELS).contains(&node.level) {
            return None;
        }
        let per_tile = TILE_LEAVES >> node.level;
        let tile = usize::try_from(node.index / per_tile).ok()?;
        let at = usize::try_from(node.index % per_tile).ok()?;
        let tiles = self.tiles.read().ok()?;
        let summary = tiles.get(tile)?.as_ref()?;
        let kept = |level: u8, i: usize| {
            let (_, offset) = KEPT.iter().find(|(l, _)| *l == level)?;
            summary.get(offset + i)
        };
        match kept(node.level, at) {
            Some(h) => Some(*h),
            // Levels 4, 6 and 8: the two children, kept one level down.
            None => Some(merkle::node_hash(
                kept(node.level - 1, 2 * at)?,
                kept(node.level - 1, 2 * at + 1)?,
            )),
        }
    }
}

fn summarise(data: &[u8]) -> Option<Summary> {
    if data.len() != TILE_LEAVES as usize * 32 {
        return None;
    }
    let mut level: Vec<Hash> = data
        .chunks_exact(32)
        .map(|c| c.try_into().unwrap_or([0; 32]))
        .collect();
    let mut out = [[0u8; 32]; SUMMARY_LEN];
    for l in 1..TILE_LEVELS {
        level = level
            .chunks_exact(2)
            .map(|p| match p {
                [a, b] => merkle::node_hash(a, b),
                _ => [0; 32],
            })
            .collect();
        if let Some((_, offset)) = KEPT.iter().find(|(k, _)| *k == l) {
            out.get_mut(*offset..*offset + level.len())?
                .copy_from_slice(&level);
        }
    }
    Some(out)
}

/// The first leaf index of the block holding `index`.
pub fn block_start(index: u64) -> u64 {
    index - index % BLOCK
}

/// Whether the proof of `index` in the tree of `size` can come from a summary: its tile is
/// complete within `size` and summarised.
pub fn covers(summaries: &Summaries, index: u64, size: u64) -> bool {
    let tile = index / TILE_LEAVES;
    tile.checked_add(1)
        .and_then(|n| n.checked_mul(TILE_LEAVES))
        .is_some_and(|end| end <= size)
        && summaries.has(tile)
}

/// Splits the nodes of a proof of an entry in block `start..start + BLOCK`: the hashes of those
/// inside the block (from its `leaves`), and the nodes left to look up (from the summaries, the
/// node cache or tiles).
pub fn block_nodes(nodes: &[NodeId], start: u64, leaves: &[Hash]) -> Split {
    let mut known = Vec::with_capacity(nodes.len());
    let mut rest = Vec::new();
    for n in nodes {
        let inside = n
            .start()
            .zip(n.end())
            .and_then(|(a, b)| Some((a.checked_sub(start)?, b.checked_sub(start)?)))
            .and_then(|(a, b)| leaves.get(usize::try_from(a).ok()?..usize::try_from(b).ok()?));
        match inside {
            Some(block) if n.level < BLOCK_LEVEL => {
                known.push((*n, merkle::root_from_leaves(block)))
            }
            _ => rest.push(*n),
        }
    }
    (known, rest)
}

/// Summarises every full level-0 tile of the log that is not yet, oldest first, a few at a time
/// (what a process does once after it opens a log; proofs use tiles meanwhile).
pub(super) async fn warm(shared: Arc<Shared>) {
    const CHUNK: u64 = 64;
    let full = shared.head().size / TILE_LEAVES;
    if full == 0 {
        return;
    }
    let started = Instant::now();
    let mut tile = 0;
    while tile < full {
        let end = (tile + CHUNK).min(full);
        let ids: Vec<(u8, u64)> = (tile..end)
            .filter(|t| !shared.summaries.has(*t))
            .map(|t| (0, t))
            .collect();
        if !ids.is_empty() {
            match shared.store.read_tiles(&shared.log_name, &ids).await {
                Ok(rows) => {
                    for ((_, t), data) in rows {
                        shared.summaries.insert(t, &data);
                    }
                }
                Err(e) => {
                    tracing::warn!(log = %shared.log_name, error = %e, "summarising tiles stopped; proofs read tiles instead");
                    return;
                }
            }
        }
        tile = end;
        crate::metrics::set_summarised_tiles(&shared.log_name, shared.summaries.count());
        tokio::task::yield_now().await;
    }
    tracing::info!(
        log = %shared.log_name,
        tiles = full,
        seconds = started.elapsed().as_secs_f64(),
        "proof summaries of full tiles loaded"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_from_a_summary_equal_the_tile_roots() {
        let leaves: Vec<Hash> = (0u32..256)
            .map(|i| merkle::leaf_hash(&i.to_be_bytes()))
            .collect();
        let data: Vec<u8> = leaves.iter().flatten().copied().collect();
        let s = Summaries::default();
        s.insert(3, &data);
        assert!(s.has(3) && !s.has(2) && !s.has(4));
        for level in BLOCK_LEVEL..=8u8 {
            let per = 1usize << level;
            for (i, chunk) in leaves.chunks(per).enumerate() {
                let node = NodeId::new(level, 3 * (256 / per as u64) + i as u64);
                assert_eq!(s.node(node), Some(merkle::root_from_leaves(chunk)));
            }
        }
        assert_eq!(s.node(NodeId::new(4, 0)), None, "tile 0 was not summarised");
        assert_eq!(s.node(NodeId::new(2, 0)), None, "below the summary's level");
        assert_eq!(s.node(NodeId::new(9, 0)), None, "above the tile");
    }
}
