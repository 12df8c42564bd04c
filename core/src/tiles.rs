//! C2SP tlog-tiles: the Merkle tree served as tiles of height 8 (256 hashes wide), plus entry
//! bundles.
//!
//! The tile at level `L`, index `N` holds the hashes of the complete subtrees of height `8L`
//! numbered `256N .. 256N + 255`; at level 0 those are the leaf hashes. A tree of size `s` has
//! `floor(s / 256^L) mod 256` hashes in the partial (rightmost) tile of level `L`.

use std::collections::BTreeMap;

use crate::merkle::{Hash, HashSource, NodeId, empty_root, node_hash, root_from_leaves};

/// Height of a tile in tree levels.
pub const TILE_HEIGHT: u8 = 8;
/// Hashes in a full tile.
pub const TILE_WIDTH: u64 = 256;
/// Highest tile level a path may name (C2SP: 0..=63).
pub const MAX_PATH_LEVEL: u8 = 63;
/// Tile levels a tree with u64 leaf indices can populate: level 7 tile 0 already spans 2^64.
const LEVELS: usize = 8;
const HASH_LEN: usize = 32;
/// Most entries an entry bundle holds (one per hash of a level-0 tile).
pub const MAX_BUNDLE_ENTRIES: usize = 256;

/// Errors of tile paths, tile data, entry bundles and the tree edge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TileError {
    #[error("malformed tile path: {0}")]
    MalformedPath(&'static str),
    #[error("tile is beyond any tree with u64 sizes")]
    OutOfRange,
    #[error("tile width {0} is not in 1..=256")]
    BadWidth(u16),
    #[error("tile {tile:?} needs {expected} bytes, got {got}")]
    BadTileLength {
        tile: TileId,
        expected: usize,
        got: usize,
    },
    #[error("tile level {level} index {index} is missing")]
    MissingTile { level: u8, index: u64 },
    #[error("tile level {level} index {index} has width {have}, {need} needed")]
    TileTooNarrow {
        level: u8,
        index: u64,
        have: u16,
        need: u64,
    },
    #[error("node {0:?} cannot be in any tile")]
    BadNode(NodeId),
    #[error("right-edge tile {0:?} is missing")]
    MissingEdgeTile(TileId),
    #[error("entry of {0} bytes does not fit a u16 length prefix")]
    EntryTooLarge(usize),
    #[error("entry bundle has more than {MAX_BUNDLE_ENTRIES} entries")]
    TooManyEntries,
    #[error("entry bundle is truncated")]
    TruncatedBundle,
    #[error("tree is full")]
    TreeFull,
}

/// One tile: `width` hashes (256 = full) at `level`, number `index` within the level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileId {
    pub level: u8,
    pub index: u64,
    pub width: u16,
}

impl TileId {
    pub fn is_full(&self) -> bool {
        u64::from(self.width) == TILE_WIDTH
    }

    /// `tile/<L>/<N>[.p/<W>]`, e.g. `tile/0/x001/x234/067` or `tile/1/000.p/17`.
    pub fn path(&self) -> String {
        format!("tile/{}/{}", self.level, self.suffix())
    }

    /// `tile/entries/<N>[.p/<W>]` (only meaningful at level 0).
    pub fn entries_path(&self) -> String {
        format!("tile/entries/{}", self.suffix())
    }

    fn suffix(&self) -> String {
        let n = encode_index(self.index);
        if self.is_full() {
            n
        } else {
            format!("{n}.p/{}", self.width)
        }
    }
}

/// Leaves spanned by one hash of tile level `level`, if representable.
fn level_span(level: u8) -> Option<u128> {
    if usize::from(level) >= LEVELS {
        return None;
    }
    Some(1u128 << (u32::from(level) * u32::from(TILE_HEIGHT)))
}

/// `N` in 3-digit groups, all but the last prefixed with `x`: 1234067 → `x001/x234/067`.
fn encode_index(mut n: u64) -> String {
    let mut s = format!("{:03}", n % 1000);
    n /= 1000;
    while n > 0 {
        s = format!("x{:03}/{s}", n % 1000);
        n /= 1000;
    }
    s
}

/// A parsed tile path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TilePath {
    Hashes(TileId),
    Entries(TileId),
}

/// Parses `tile/<L>/<N>[.p/<W>]` or `tile/entries/<N>[.p/<W>]`, accepting only the canonical
/// spelling (so distinct strings never name the same tile) of a tile a u64-sized tree can have.
pub fn parse_tile_path(path: &str) -> Result<TilePath, TileError> {
    let rest = path
        .strip_prefix("tile/")
        .ok_or(TileError::MalformedPath("missing tile/ prefix"))?;
    let (entries, level, rest) = match rest.strip_prefix("entries/") {
        Some(r) => (true, 0u8, r),
        None => {
            let (l, r) = rest
                .split_once('/')
                .ok_or(TileError::MalformedPath("missing level"))?;
            (false, parse_level(l)?, r)
        }
    };
    let (index_part, width) = match rest.split_once(".p/") {
        Some((i, w)) => (i, parse_width(w)?),
        None => (rest, 256u16),
    };
    let index = parse_index(index_part)?;
    let tile = TileId {
        level,
        index,
        width,
    };
    check_in_range(&tile)?;
    let parsed = if entries {
        TilePath::Entries(tile)
    } else {
        TilePath::Hashes(tile)
    };
    // Round-trip check: rejects any spelling the encoder would not produce.
    let canonical = if entries {
        tile.entries_path()
    } else {
        tile.path()
    };
    if canonical != path {
        return Err(TileError::MalformedPath("not canonical"));
    }
    Ok(parsed)
}

/// Decimal with no leading zeroes, at most `max`.
fn parse_decimal(s: &str, max: u64, what: &'static str) -> Result<u64, TileError> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TileError::MalformedPath(what));
    }
    if s.len() > 1 && s.starts_with('0') {
        return Err(TileError::MalformedPath("leading zero"));
    }
    let v: u64 = s.parse().map_err(|_| TileError::MalformedPath(what))?;
    if v > max {
        return Err(TileError::MalformedPath(what));
    }
    Ok(v)
}

fn parse_level(s: &str) -> Result<u8, TileError> {
    let v = parse_decimal(s, u64::from(MAX_PATH_LEVEL), "bad level")?;
    u8::try_from(v).map_err(|_| TileError::MalformedPath("bad level"))
}

fn parse_width(s: &str) -> Result<u16, TileError> {
    let v = parse_decimal(s, TILE_WIDTH - 1, "bad partial width")?;
    if v == 0 {
        return Err(TileError::MalformedPath("bad partial width"));
    }
    u16::try_from(v).map_err(|_| TileError::MalformedPath("bad partial width"))
}

fn parse_index(s: &str) -> Result<u64, TileError> {
    let mut groups = s.split('/').peekable();
    let mut n: u64 = 0;
    while let Some(g) = groups.next() {
        let digits = if groups.peek().is_some() {
            g.strip_prefix('x')
                .ok_or(TileError::MalformedPath("index group lacks x prefix"))?
        } else {
            g
        };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TileError::MalformedPath("index group is not 3 digits"));
        }
        let d: u64 = digits
            .parse()
            .map_err(|_| TileError::MalformedPath("index group is not 3 digits"))?;
        n = n
            .checked_mul(1000)
            .and_then(|n| n.checked_add(d))
            .ok_or(TileError::OutOfRange)?;
    }
    Ok(n)
}

/// A tile is possible only if the leaves its hashes need fit in a u64 tree size.
fn check_in_range(tile: &TileId) -> Result<(), TileError> {
    if tile.width == 0 || u64::from(tile.width) > TILE_WIDTH {
        return Err(TileError::BadWidth(tile.width));
    }
    let span = level_span(tile.level).ok_or(TileError::OutOfRange)?;
    let need = (u128::from(tile.index) * 256 + u128::from(tile.width)) * span;
    if need > u128::from(u64::MAX) {
        return Err(TileError::OutOfRange);
    }
    Ok(())
}

/// Number of hashes at tile level `level` in a tree of `size` leaves.
fn hashes_at_level(size: u64, level: u8) -> u64 {
    size.checked_shr(u32::from(level) * u32::from(TILE_HEIGHT))
        .unwrap_or(0)
}

/// Every tile (full and partial) a tree of `size` leaves has, level by level (about
/// `size / 255` of them: meant for tests and small trees).
pub fn tiles_for_size(size: u64) -> Vec<TileId> {
    let mut out = Vec::new();
    for level in 0..LEVELS as u8 {
        let n = hashes_at_level(size, level);
        if n == 0 {
            break;
        }
        for index in 0..n / TILE_WIDTH {
            out.push(TileId {
                level,
                index,
                width: 256,
            });
        }
        if !n.is_multiple_of(TILE_WIDTH) {
            out.push(TileId {
                level,
                index: n / TILE_WIDTH,
                width: (n % TILE_WIDTH) as u16,
            });
        }
    }
    out
}

/// Where a complete node's hash comes from: tile level, tile index, first and count of the
/// hashes within that tile (node level `8L + k` = `2^k` hashes of tile level `L`).
fn node_location(node: NodeId) -> Option<(u8, u64, u64, u64)> {
    let tile_level = node.level / TILE_HEIGHT;
    let k = node.level % TILE_HEIGHT;
    if usize::from(tile_level) >= LEVELS {
        return None;
    }
    let first = node.index.checked_shl(u32::from(k))?;
    if first >> k != node.index {
        return None;
    }
    Some((
        tile_level,
        first / TILE_WIDTH,
        first % TILE_WIDTH,
        1u64 << k,
    ))
}

/// The tile holding what is needed for complete `node`, with the width it has at tree `size`;
/// `None` if the node is not complete in a tree of that size.
pub fn tile_for_node(node: NodeId, size: u64) -> Option<TileId> {
    if node.end()? > size {
        return None;
    }
    let (level, index, _, _) = node_location(node)?;
    let n = hashes_at_level(size, level);
    let width = n
        .checked_sub(index.checked_mul(TILE_WIDTH)?)?
        .min(TILE_WIDTH);
    if width == 0 {
        return None;
    }
    Some(TileId {
        level,
        index,
        width: u16::try_from(width).ok()?,
    })
}

/// The tiles (deduplicated, sorted) holding what is needed for `nodes` at tree `size`; nodes
/// not complete at that size are skipped.
pub fn tiles_for_nodes(nodes: &[NodeId], size: u64) -> Vec<TileId> {
    let mut out: Vec<TileId> = nodes
        .iter()
        .filter_map(|n| tile_for_node(*n, size))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Splits tile bytes into hashes (length must already be checked to be a multiple of 32).
fn split_hashes(data: &[u8]) -> Vec<Hash> {
    data.chunks_exact(HASH_LEN)
        .filter_map(|c| Hash::try_from(c).ok())
        .collect()
}

fn check_tile_data(tile: &TileId, data: &[u8]) -> Result<(), TileError> {
    check_in_range(tile)?;
    let expected = usize::from(tile.width) * HASH_LEN;
    if data.len() != expected {
        return Err(TileError::BadTileLength {
            tile: *tile,
            expected,
            got: data.len(),
        });
    }
    Ok(())
}

/// Read side: answers [`NodeId`] hashes from tile bytes.
#[derive(Clone, Debug, Default)]
pub struct TileSet {
    /// (level, index) → hashes of the widest version seen.
    tiles: BTreeMap<(u8, u64), Vec<Hash>>,
}

impl TileSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a tile; of several widths of one tile the widest is kept (they agree on their
    /// common prefix in an honest log).
    pub fn insert(&mut self, tile: TileId, data: Vec<u8>) -> Result<(), TileError> {
        check_tile_data(&tile, &data)?;
        let hashes = split_hashes(&data);
        let slot = self.tiles.entry((tile.level, tile.index)).or_default();
        if hashes.len() > slot.len() {
            *slot = hashes;
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.tiles.is_empty()
    }

    pub fn len(&self) -> usize {
        self.tiles.len()
    }

    /// The hash of one complete node.
    pub fn node_hash(&self, node: NodeId) -> Result<Hash, TileError> {
        let (level, index, first, count) = node_location(node).ok_or(TileError::BadNode(node))?;
        let hashes = self
            .tiles
            .get(&(level, index))
            .ok_or(TileError::MissingTile { level, index })?;
        let range = usize::try_from(first)
            .ok()
            .zip(usize::try_from(first + count).ok());
        let slice = range
            .and_then(|(a, b)| hashes.get(a..b))
            .ok_or(TileError::TileTooNarrow {
                level,
                index,
                have: hashes.len() as u16,
                need: first + count,
            })?;
        Ok(root_from_leaves(slice))
    }
}

impl HashSource for TileSet {
    type Error = TileError;
    fn node_hashes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>, TileError> {
        nodes.iter().map(|n| self.node_hash(*n)).collect()
    }
}

/// Write side: the right edge of the tree (the partial tile of each level), enough to append,
/// to produce the changed tiles and the root without reading old full tiles.
///
/// Memory is at most one partial tile per level (8 levels, < 8 KiB each), plus the tiles that
/// filled since the last [`TreeEdge::take_dirty_tiles`] (8 KiB each), so call that once per batch.
#[derive(Clone, Debug)]
pub struct TreeEdge {
    size: u64,
    /// Hashes of the partial tile of each level (fewer than 256 each).
    partial: [Vec<Hash>; LEVELS],
    /// Levels whose partial tile changed since the last `take_dirty_tiles`.
    dirty: [bool; LEVELS],
    /// Tiles that filled up since the last `take_dirty_tiles`.
    filled: Vec<(TileId, Vec<u8>)>,
}

impl Default for TreeEdge {
    fn default() -> Self {
        Self::empty()
    }
}

fn hashes_to_bytes(hashes: &[Hash]) -> Vec<u8> {
    hashes.concat()
}

impl TreeEdge {
    pub fn empty() -> Self {
        TreeEdge {
            size: 0,
            partial: Default::default(),
            dirty: [false; LEVELS],
            filled: Vec::new(),
        }
    }

    /// The partial tiles [`TreeEdge::from_partial_tiles`] needs to restart at `size`.
    pub fn right_edge_tiles(size: u64) -> Vec<TileId> {
        (0..LEVELS as u8)
            .filter_map(|level| {
                let n = hashes_at_level(size, level);
                let width = (n % TILE_WIDTH) as u16;
                (width != 0).then_some(TileId {
                    level,
                    index: n / TILE_WIDTH,
                    width,
                })
            })
            .collect()
    }

    /// Restarts from the partial right-edge tiles of a tree of `size` leaves (those named by
    /// [`TreeEdge::right_edge_tiles`]); other tiles given are ignored.
    pub fn from_partial_tiles(size: u64, tiles: &[(TileId, Vec<u8>)]) -> Result<Self, TileError> {
        let mut edge = Self::empty();
        edge.size = size;
        for need in Self::right_edge_tiles(size) {
            let (_, data) = tiles
                .iter()
                .find(|(t, _)| *t == need)
                .ok_or(TileError::MissingEdgeTile(need))?;
            check_tile_data(&need, data)?;
            if let Some(slot) = edge.partial.get_mut(usize::from(need.level)) {
                *slot = split_hashes(data);
            }
        }
        Ok(edge)
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash. At the (unreachable in practice) size `u64::MAX` the leaf is dropped;
    /// use [`TreeEdge::try_append`] to be told.
    pub fn append(&mut self, leaf: Hash) {
        let _ = self.try_append(leaf);
    }

    /// Appends a leaf hash, failing only when the tree already has `u64::MAX` leaves.
    pub fn try_append(&mut self, leaf: Hash) -> Result<(), TileError> {
        self.size = self.size.checked_add(1).ok_or(TileError::TreeFull)?;
        let mut carry = leaf;
        for level in 0..LEVELS {
            let (Some(slot), Some(dirty)) =
                (self.partial.get_mut(level), self.dirty.get_mut(level))
            else {
                break;
            };
            slot.push(carry);
            *dirty = true;
            if (slot.len() as u64) < TILE_WIDTH {
                break;
            }
            // The tile just filled: publish it and carry its root one tile level up.
            let hashes = std::mem::take(slot);
            let index = (hashes_at_level(self.size, level as u8) / TILE_WIDTH).saturating_sub(1);
            carry = root_from_leaves(&hashes);
            self.filled.push((
                TileId {
                    level: level as u8,
                    index,
                    width: 256,
                },
                hashes_to_bytes(&hashes),
            ));
        }
        Ok(())
    }

    /// The Merkle Tree Hash of the current tree.
    pub fn root(&self) -> Hash {
        // The tree's complete subtrees, left to right, are the binary decomposition of each
        // level's partial tile, highest level first.
        let mut nodes: Vec<Hash> = Vec::new();
        for hashes in self.partial.iter().rev() {
            let mut rest = hashes.as_slice();
            for k in (0..TILE_HEIGHT).rev() {
                let chunk = 1usize << k;
                if rest.len() >= chunk
                    && let Some((head, tail)) = rest.split_at_checked(chunk)
                {
                    nodes.push(root_from_leaves(head));
                    rest = tail;
                }
            }
        }
        let mut it = nodes.iter().rev();
        match it.next() {
            None => empty_root(),
            Some(last) => it.fold(*last, |acc, h| node_hash(h, &acc)),
        }
    }

    /// Tiles whose content changed since the last call: full ones that just filled, then the
    /// current partial tiles that changed, with their bytes.
    pub fn take_dirty_tiles(&mut self) -> Vec<(TileId, Vec<u8>)> {
        let mut out = std::mem::take(&mut self.filled);
        for (level, (hashes, dirty)) in self.partial.iter().zip(self.dirty.iter_mut()).enumerate() {
            if *dirty && !hashes.is_empty() {
                out.push((
                    TileId {
                        level: level as u8,
                        index: hashes_at_level(self.size, level as u8) / TILE_WIDTH,
                        width: hashes.len() as u16,
                    },
                    hashes_to_bytes(hashes),
                ));
            }
            *dirty = false;
        }
        out
    }
}

/// Encodes an entry bundle: each entry prefixed by its big-endian u16 length.
pub fn encode_entry_bundle(entries: &[&[u8]]) -> Result<Vec<u8>, TileError> {
    if entries.len() > MAX_BUNDLE_ENTRIES {
        return Err(TileError::TooManyEntries);
    }
    let mut out = Vec::with_capacity(entries.iter().map(|e| e.len() + 2).sum());
    for e in entries {
        let len = u16::try_from(e.len()).map_err(|_| TileError::EntryTooLarge(e.len()))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(e);
    }
    Ok(out)
}

/// Parses an entry bundle.
pub fn parse_entry_bundle(data: &[u8]) -> Result<Vec<Vec<u8>>, TileError> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        if out.len() == MAX_BUNDLE_ENTRIES {
            return Err(TileError::TooManyEntries);
        }
        let (len, tail) = rest
            .split_first_chunk::<2>()
            .ok_or(TileError::TruncatedBundle)?;
        let (entry, tail) = tail
            .split_at_checked(usize::from(u16::from_be_bytes(*len)))
            .ok_or(TileError::TruncatedBundle)?;
        out.push(entry.to_vec());
        rest = tail;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_encoding() {
        assert_eq!(encode_index(0), "000");
        assert_eq!(encode_index(67), "067");
        assert_eq!(encode_index(1000), "x001/000");
        assert_eq!(encode_index(1234067), "x001/x234/067");
        assert_eq!(parse_index("x001/x234/067"), Ok(1234067));
    }

    #[test]
    fn spec_example_70000() {
        let tiles = tiles_for_size(70_000);
        let full0 = tiles.iter().filter(|t| t.level == 0 && t.is_full()).count();
        assert_eq!(full0, 273);
        let partial: Vec<_> = tiles.iter().filter(|t| !t.is_full()).collect();
        assert_eq!(
            partial,
            vec![
                &TileId {
                    level: 0,
                    index: 273,
                    width: 112
                },
                &TileId {
                    level: 1,
                    index: 1,
                    width: 17
                },
                &TileId {
                    level: 2,
                    index: 0,
                    width: 1
                },
            ]
        );
    }
}
