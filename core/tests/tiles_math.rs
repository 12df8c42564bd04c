//! Tile math checked against computing everything from the leaves, around tile boundaries.
#![cfg(test)]

use std::collections::{BTreeMap, BTreeSet};

use sigil_core::merkle::{
    Hash, HashSource, NodeId, consistency_proof, consistency_proof_nodes, inclusion_proof,
    inclusion_proof_nodes, leaf_hash, node_hash, root_from_leaves, tree_hash, tree_hash_nodes,
};
use sigil_core::tiles::{
    TILE_WIDTH, TileError, TileId, TileSet, TreeEdge, tile_for_node, tiles_for_nodes,
    tiles_for_size,
};

fn leaves(n: u64) -> Vec<Hash> {
    (0..n).map(|i| leaf_hash(&i.to_le_bytes())).collect()
}

/// Every complete subtree hash, level by level, by pairwise hashing: an in-memory reference
/// tree that answers nodes in O(1) (leaf slices answer them in O(2^level)).
struct FullTree(Vec<Vec<Hash>>);

impl FullTree {
    fn new(d: &[Hash]) -> Self {
        let mut levels = vec![d.to_vec()];
        while levels.last().unwrap().len() > 1 {
            let next = levels
                .last()
                .unwrap()
                .chunks_exact(2)
                .map(|p| node_hash(&p[0], &p[1]))
                .collect();
            levels.push(next);
        }
        FullTree(levels)
    }

    /// The bytes tile `t` must have.
    fn tile(&self, t: &TileId) -> Vec<u8> {
        let first = t.index as usize * TILE_WIDTH as usize;
        self.0[8 * t.level as usize][first..first + t.width as usize].concat()
    }
}

impl HashSource for FullTree {
    type Error = ();
    fn node_hashes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>, ()> {
        nodes
            .iter()
            .map(|n| {
                self.0
                    .get(n.level as usize)
                    .and_then(|l| l.get(n.index as usize))
                    .copied()
                    .ok_or(())
            })
            .collect()
    }
}

/// Keeps the newest version of each tile, like a store keyed by (level, index).
#[derive(Default)]
struct Store(BTreeMap<(u8, u64), (TileId, Vec<u8>)>);

impl Store {
    fn write(&mut self, tiles: Vec<(TileId, Vec<u8>)>) {
        for (t, b) in tiles {
            self.0.insert((t.level, t.index), (t, b));
        }
    }
    fn tile_set(&self, only: Option<&[TileId]>) -> TileSet {
        let mut set = TileSet::new();
        for (t, b) in self.0.values() {
            if only.is_none_or(|o| o.iter().any(|x| (x.level, x.index) == (t.level, t.index))) {
                set.insert(*t, b.clone()).unwrap();
            }
        }
        set
    }
}

const CHECKPOINTS: &[u64] = &[
    1, 2, 3, 255, 256, 257, 511, 512, 513, 65_535, 65_536, 65_537, 65_791, 65_792, 65_793, 66_048,
    131_071, 131_072, 131_073, 131_329,
];

#[test]
fn tree_edge_and_tiles_agree_with_leaves() {
    let max = *CHECKPOINTS.last().unwrap();
    let d = leaves(max + 300);
    let full = FullTree::new(&d);
    let mut edge = TreeEdge::empty();
    let mut store = Store::default();
    assert_eq!(edge.root(), root_from_leaves(&[]));
    assert!(edge.take_dirty_tiles().is_empty());

    let mut prev = 0u64;
    for (step, &size) in CHECKPOINTS.iter().enumerate() {
        // Append in uneven batches, flushing dirty tiles after each.
        let mut batch = 1 + step as u64 * 37;
        while edge.size() < size {
            let end = (edge.size() + batch).min(size);
            for i in edge.size()..end {
                edge.append(d[i as usize]);
            }
            store.write(edge.take_dirty_tiles());
            batch = batch * 3 % 997 + 1;
        }
        assert_eq!(edge.size(), size);
        let root = root_from_leaves(&d[..size as usize]);
        assert_eq!(tree_hash(size, &full).unwrap(), root);
        assert_eq!(edge.root(), root, "root at {size}");

        // The store now holds exactly the tiles of this size, with the right bytes.
        let want: BTreeSet<TileId> = tiles_for_size(size).into_iter().collect();
        let have: BTreeSet<TileId> = store.0.values().map(|(t, _)| *t).collect();
        assert_eq!(have, want, "tile set at {size}");
        for (t, b) in store.0.values() {
            assert_eq!(*b, full.tile(t), "bytes of {t:?} at {size}");
        }

        // Proofs from tiles equal proofs from leaves.
        let tiles = store.tile_set(None);
        // Expected proofs come from the reference tree, itself checked against leaf slices
        // (the slow, obviously-right source) on the smaller trees.
        let leaf_src = &d[..size as usize];
        let small = size <= 1024;
        assert_eq!(tree_hash(size, &tiles).unwrap(), root);
        let needed = tiles_for_nodes(&tree_hash_nodes(size), size);
        assert_eq!(
            tree_hash(size, &store.tile_set(Some(&needed))).unwrap(),
            root
        );
        for index in [0, size / 3, size / 2 + 1, size - 1] {
            let index = index.min(size - 1);
            let want = inclusion_proof(index, size, &full).unwrap();
            if small {
                assert_eq!(inclusion_proof(index, size, leaf_src).unwrap(), want);
            }
            assert_eq!(inclusion_proof(index, size, &tiles).unwrap(), want);
            // Only the tiles the two-phase API names are needed.
            let needed = tiles_for_nodes(&inclusion_proof_nodes(index, size).unwrap(), size);
            let only = store.tile_set(Some(&needed));
            assert_eq!(
                inclusion_proof(index, size, &only).unwrap(),
                want,
                "{index}/{size}"
            );
        }
        for old in [1, prev, size / 2, size - 1, size] {
            let old = old.clamp(1, size);
            let want = consistency_proof(old, size, &full).unwrap();
            if small {
                assert_eq!(consistency_proof(old, size, leaf_src).unwrap(), want);
            }
            assert_eq!(consistency_proof(old, size, &tiles).unwrap(), want);
            let needed = tiles_for_nodes(&consistency_proof_nodes(old, size).unwrap(), size);
            let only = store.tile_set(Some(&needed));
            assert_eq!(
                consistency_proof(old, size, &only).unwrap(),
                want,
                "{old}->{size}"
            );
            // Old trees are answered from the newer (wider) tiles too.
            assert_eq!(
                tree_hash(old, &tiles).unwrap(),
                tree_hash(old, &full).unwrap()
            );
        }

        // Restarting from the partial right-edge tiles continues identically.
        let edge_tiles: Vec<(TileId, Vec<u8>)> = TreeEdge::right_edge_tiles(size)
            .into_iter()
            .map(|t| store.0[&(t.level, t.index)].clone())
            .collect();
        let mut restarted = TreeEdge::from_partial_tiles(size, &edge_tiles).unwrap();
        assert_eq!(restarted.size(), size);
        assert_eq!(restarted.root(), root);
        assert!(restarted.take_dirty_tiles().is_empty());
        let mut original = edge.clone();
        for i in size..size + 300 {
            original.append(d[i as usize]);
            restarted.append(d[i as usize]);
            if i % 97 == 0 {
                assert_eq!(restarted.take_dirty_tiles(), original.take_dirty_tiles());
            }
        }
        assert_eq!(restarted.root(), original.root());
        assert_eq!(
            restarted.root(),
            root_from_leaves(&d[..size as usize + 300])
        );
        assert_eq!(restarted.take_dirty_tiles(), original.take_dirty_tiles());
        prev = size;
    }
}

#[test]
fn right_edge_tiles_are_the_partials() {
    for size in [0u64, 1, 255, 256, 257, 65_536, 65_792, 70_000, u64::MAX] {
        let edge = TreeEdge::right_edge_tiles(size);
        assert!(edge.iter().all(|t| !t.is_full()), "{size}");
        let levels: BTreeSet<u8> = edge.iter().map(|t| t.level).collect();
        assert_eq!(levels.len(), edge.len(), "one per level at {size}");
        if size < 1 << 20 {
            let partials: Vec<TileId> = tiles_for_size(size)
                .into_iter()
                .filter(|t| !t.is_full())
                .collect();
            assert_eq!(edge, partials, "{size}");
        }
    }
    assert_eq!(
        TreeEdge::right_edge_tiles(256),
        vec![TileId {
            level: 1,
            index: 0,
            width: 1
        }]
    );
}

#[test]
fn from_partial_tiles_rejects_bad_input() {
    let d = leaves(300);
    let mut edge = TreeEdge::empty();
    for l in &d {
        edge.append(*l);
    }
    let tiles = edge.take_dirty_tiles();
    let partials: Vec<_> = tiles
        .iter()
        .filter(|(t, _)| !t.is_full())
        .cloned()
        .collect();
    assert_eq!(partials.len(), 2);
    assert!(TreeEdge::from_partial_tiles(300, &partials).is_ok());
    // Missing level-1 tile.
    assert!(matches!(
        TreeEdge::from_partial_tiles(300, &partials[..1]),
        Err(TileError::MissingEdgeTile(_))
    ));
    // Wrong size for these tiles.
    assert!(TreeEdge::from_partial_tiles(301, &partials).is_err());
    // Truncated bytes.
    let mut short = partials.clone();
    short[0].1.pop();
    assert!(matches!(
        TreeEdge::from_partial_tiles(300, &short),
        Err(TileError::BadTileLength { .. })
    ));
    // Size zero needs nothing.
    assert_eq!(TreeEdge::from_partial_tiles(0, &[]).unwrap().size(), 0);
}

#[test]
fn tile_set_errors() {
    let d = leaves(600);
    let mut edge = TreeEdge::empty();
    for l in &d {
        edge.append(*l);
    }
    let mut set = TileSet::new();
    let bad = TileId {
        level: 0,
        index: 0,
        width: 3,
    };
    assert!(matches!(
        set.insert(bad, vec![0; 95]),
        Err(TileError::BadTileLength { .. })
    ));
    assert!(matches!(
        set.insert(
            TileId {
                level: 0,
                index: 0,
                width: 0
            },
            vec![]
        ),
        Err(TileError::BadWidth(0))
    ));
    assert!(matches!(
        set.node_hash(NodeId::new(0, 5)),
        Err(TileError::MissingTile { level: 0, index: 0 })
    ));
    for (t, b) in edge.take_dirty_tiles() {
        if t.level == 0 && t.index == 2 {
            // The partial level-0 tile of width 88: narrower than a node needs.
            set.insert(t, b).unwrap();
        }
    }
    assert_eq!(set.node_hash(NodeId::new(0, 512 + 87)).unwrap(), d[599]);
    assert!(matches!(
        set.node_hash(NodeId::new(0, 512 + 88)),
        Err(TileError::TileTooNarrow {
            level: 0,
            index: 2,
            have: 88,
            need: 89
        })
    ));
    assert_eq!(
        set.node_hash(NodeId::new(3, 64 + 10)).unwrap(),
        root_from_leaves(&d[592..600])
    );
    assert!(set.node_hash(NodeId::new(4, 32 + 5)).is_err());
    // Nodes no tile can hold.
    assert!(matches!(
        set.node_hash(NodeId::new(64, 0)),
        Err(TileError::BadNode(_))
    ));
    assert!(set.node_hash(NodeId::new(7, u64::MAX)).is_err());
}

#[test]
fn tile_for_node_widths() {
    let t = |level, index, width| {
        Some(TileId {
            level,
            index,
            width,
        })
    };
    assert_eq!(tile_for_node(NodeId::new(0, 0), 1), t(0, 0, 1));
    assert_eq!(tile_for_node(NodeId::new(0, 1), 1), None);
    assert_eq!(tile_for_node(NodeId::new(0, 300), 1000), t(0, 1, 256));
    assert_eq!(tile_for_node(NodeId::new(0, 900), 1000), t(0, 3, 232));
    assert_eq!(tile_for_node(NodeId::new(7, 1), 256), t(0, 0, 256));
    assert_eq!(tile_for_node(NodeId::new(7, 1), 255), None);
    assert_eq!(tile_for_node(NodeId::new(8, 0), 256), t(1, 0, 1));
    assert_eq!(tile_for_node(NodeId::new(9, 1), 1024), t(1, 0, 4));
    assert_eq!(tile_for_node(NodeId::new(16, 0), 70_000), t(2, 0, 1));
    assert_eq!(tile_for_node(NodeId::new(63, 1), u64::MAX), None);
    assert_eq!(tile_for_node(NodeId::new(63, 0), u64::MAX), t(7, 0, 255));
    assert_eq!(tile_for_node(NodeId::new(200, 0), u64::MAX), None);
    // tiles_for_nodes deduplicates and skips incomplete nodes.
    let nodes = [
        NodeId::new(0, 1),
        NodeId::new(0, 2),
        NodeId::new(1, 0),
        NodeId::new(0, 9),
    ];
    assert_eq!(
        tiles_for_nodes(&nodes, 5),
        vec![TileId {
            level: 0,
            index: 0,
            width: 5
        }]
    );
}

#[test]
fn tiles_for_size_examples() {
    assert!(tiles_for_size(0).is_empty());
    assert_eq!(
        tiles_for_size(1),
        vec![TileId {
            level: 0,
            index: 0,
            width: 1
        }]
    );
    // "a tree of size 256 will be represented by a full level 0 tile and a partial level 1
    // tile of width 1"
    assert_eq!(
        tiles_for_size(256),
        vec![
            TileId {
                level: 0,
                index: 0,
                width: 256
            },
            TileId {
                level: 1,
                index: 0,
                width: 1
            }
        ]
    );
    let t = tiles_for_size(70_000);
    assert_eq!(t.len(), 273 + 1 + 1 + 1 + 1);
    assert_eq!(t.iter().filter(|t| t.level == 1 && t.is_full()).count(), 1);
}
