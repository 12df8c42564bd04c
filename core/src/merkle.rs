//! RFC 6962 / RFC 9162 Merkle tree hashing and proofs.
//!
//! Proofs are built in two phases so a server can fetch every stored hash it needs in one
//! query: `*_nodes` lists the complete subtrees ([`NodeId`]s) a proof is made of, and the
//! matching function asks a [`HashSource`] for exactly those. Proof elements that are hashes of
//! incomplete right-edge subtrees are folded from the complete subtrees that make them up.

use sha2::{Digest, Sha256};

/// A SHA-256 tree hash.
pub type Hash = [u8; 32];

/// `SHA-256(0x00 || data)`: the hash of a leaf.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`: the hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// `SHA-256("")`: the root of the empty tree.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Reference Merkle Tree Hash of a list of leaf hashes, straight from RFC 6962 §2.1
/// (split at the largest power of two smaller than n). O(n) hashing, O(log n) recursion.
pub fn root_from_leaves(leaf_hashes: &[Hash]) -> Hash {
    match leaf_hashes {
        [] => empty_root(),
        [one] => *one,
        _ => {
            let k = split_point(leaf_hashes.len() as u64);
            match leaf_hashes.split_at_checked(usize::try_from(k).unwrap_or(usize::MAX)) {
                Some((left, right)) => node_hash(&root_from_leaves(left), &root_from_leaves(right)),
                // Unreachable: k < len.
                None => empty_root(),
            }
        }
    }
}

/// The largest power of two strictly smaller than `n` (n >= 2).
fn split_point(n: u64) -> u64 {
    if n < 2 {
        return 0;
    }
    1u64 << (63 - (n - 1).leading_zeros())
}

/// A complete subtree: the root of leaves `[index << level, (index + 1) << level)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    pub level: u8,
    pub index: u64,
}

impl NodeId {
    pub fn new(level: u8, index: u64) -> Self {
        NodeId { level, index }
    }

    /// First leaf covered, or `None` if it does not fit in a u64.
    pub fn start(&self) -> Option<u64> {
        shl_exact(self.index, self.level)
    }

    /// One past the last leaf covered, or `None` if it does not fit in a u64.
    pub fn end(&self) -> Option<u64> {
        self.index
            .checked_add(1)
            .and_then(|i| shl_exact(i, self.level))
    }
}

/// `v << s` if no bits are lost.
fn shl_exact(v: u64, s: u8) -> Option<u64> {
    if v == 0 {
        return Some(0);
    }
    if u32::from(s) >= 64 || v.leading_zeros() < u32::from(s) {
        return None;
    }
    Some(v << s)
}

/// Where proofs get stored hashes from (DB-backed tiles on the server, a `Vec` in tests).
pub trait HashSource {
    type Error;
    /// The hashes of `nodes`, in the same order.
    fn node_hashes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>, Self::Error>;
}

/// A node a leaf-hash source cannot compute: it reaches beyond the last leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("node {0:?} is beyond the available leaves")]
pub struct NodeOutOfRange(pub NodeId);

/// A slice of leaf hashes computes any complete node it covers (O(2^level) per node).
impl HashSource for [Hash] {
    type Error = NodeOutOfRange;
    fn node_hashes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>, NodeOutOfRange> {
        nodes
            .iter()
            .map(|n| {
                let range = n
                    .start()
                    .zip(n.end())
                    .and_then(|(s, e)| Some(usize::try_from(s).ok()?..usize::try_from(e).ok()?))
                    .ok_or(NodeOutOfRange(*n))?;
                self.get(range)
                    .map(root_from_leaves)
                    .ok_or(NodeOutOfRange(*n))
            })
            .collect()
    }
}

impl HashSource for Vec<Hash> {
    type Error = NodeOutOfRange;
    fn node_hashes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>, NodeOutOfRange> {
        self.as_slice().node_hashes(nodes)
    }
}

/// Why a proof could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ProofError<E> {
    #[error("invalid proof arguments: {0}")]
    InvalidArgs(String),
    #[error("hash source failed: {0}")]
    Source(E),
}

impl ProofError<()> {
    fn widen<E>(self) -> ProofError<E> {
        match self {
            ProofError::InvalidArgs(s) => ProofError::InvalidArgs(s),
            ProofError::Source(()) => ProofError::InvalidArgs("hash source failed".into()),
        }
    }
}

/// Why a proof did not verify.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("old tree size {old} is larger than new tree size {new}")]
    SizesOutOfOrder { old: u64, new: u64 },
    #[error("proof has the wrong number of hashes")]
    WrongProofLength,
    #[error("computed root does not match the expected root")]
    RootMismatch,
}

/// The complete subtrees making up the subtree `[lo, hi)` of an RFC 6962 tree, left to right
/// (the binary decomposition of its width; `lo` is aligned to the largest of them).
fn range_nodes(lo: u64, hi: u64, out: &mut Vec<NodeId>) {
    let mut pos = lo;
    let width = hi.saturating_sub(lo);
    for level in (0..64u8).rev() {
        if width >> level & 1 == 1 {
            out.push(NodeId::new(level, pos >> level));
            pos = pos.saturating_add(1u64 << level);
        }
    }
}

/// Number of complete subtrees of the range `[lo, hi)`.
fn range_node_count(lo: u64, hi: u64) -> usize {
    hi.saturating_sub(lo).count_ones() as usize
}

/// Folds the complete-subtree hashes of one range, right to left, into its Merkle Tree Hash.
fn fold_range(hashes: &[Hash]) -> Hash {
    let mut it = hashes.iter().rev();
    match it.next() {
        None => empty_root(),
        Some(last) => it.fold(*last, |acc, h| node_hash(h, &acc)),
    }
}

/// Fetches the nodes of `ranges` from `src` and folds each range into one hash.
fn ranges_hashes<S: HashSource + ?Sized>(
    ranges: &[(u64, u64)],
    src: &S,
) -> Result<Vec<Hash>, ProofError<S::Error>> {
    let mut nodes = Vec::new();
    for &(lo, hi) in ranges {
        range_nodes(lo, hi, &mut nodes);
    }
    let hashes = if nodes.is_empty() {
        Vec::new()
    } else {
        src.node_hashes(&nodes).map_err(ProofError::Source)?
    };
    if hashes.len() != nodes.len() {
        return Err(ProofError::InvalidArgs(format!(
            "hash source returned {} hashes for {} nodes",
            hashes.len(),
            nodes.len()
        )));
    }
    let mut rest = hashes.as_slice();
    let mut out = Vec::with_capacity(ranges.len());
    for &(lo, hi) in ranges {
        let (these, tail) = rest
            .split_at_checked(range_node_count(lo, hi))
            .ok_or_else(|| ProofError::InvalidArgs("hash count mismatch".into()))?;
        out.push(fold_range(these));
        rest = tail;
    }
    Ok(out)
}

fn nodes_of(ranges: &[(u64, u64)]) -> Vec<NodeId> {
    let mut nodes = Vec::new();
    for &(lo, hi) in ranges {
        range_nodes(lo, hi, &mut nodes);
    }
    nodes
}

/// The complete subtrees whose hashes make up the root of a tree of `size` leaves.
pub fn tree_hash_nodes(size: u64) -> Vec<NodeId> {
    nodes_of(&[(0, size)])
}

/// The sibling subtrees of RFC 6962 PATH(index, D[0:size]), as leaf ranges, leaf-side first.
fn inclusion_ranges(index: u64, size: u64) -> Result<Vec<(u64, u64)>, ProofError<()>> {
    if index >= size {
        return Err(ProofError::InvalidArgs(format!(
            "leaf index {index} is not below tree size {size}"
        )));
    }
    let (mut lo, mut hi) = (0u64, size);
    let mut ranges = Vec::new();
    while hi - lo > 1 {
        let mid = lo + split_point(hi - lo);
        if index < mid {
            ranges.push((mid, hi));
            hi = mid;
        } else {
            ranges.push((lo, mid));
            lo = mid;
        }
    }
    ranges.reverse();
    Ok(ranges)
}

/// The subtrees of RFC 6962 PROOF(old, D[0:new]), as leaf ranges, in proof order.
fn consistency_ranges(old: u64, new: u64) -> Result<Vec<(u64, u64)>, ProofError<()>> {
    if old > new {
        return Err(ProofError::InvalidArgs(format!(
            "old tree size {old} is larger than new tree size {new}"
        )));
    }
    if old == 0 || old == new {
        return Ok(Vec::new());
    }
    // SUBPROOF(m, D[lo:hi], b), unrolled: descending records the sibling of each step.
    let (mut lo, mut hi, mut m) = (0u64, new, old);
    let mut complete = true;
    let mut ranges = Vec::new();
    loop {
        if m == hi - lo {
            if !complete {
                ranges.push((lo, hi));
            }
            break;
        }
        let k = split_point(hi - lo);
        if m <= k {
            ranges.push((lo + k, hi));
            hi = lo + k;
        } else {
            ranges.push((lo, lo + k));
            lo += k;
            m -= k;
            complete = false;
        }
    }
    ranges.reverse();
    Ok(ranges)
}

/// The complete subtrees an inclusion proof of leaf `index` in a tree of `size` is made of.
pub fn inclusion_proof_nodes(index: u64, size: u64) -> Result<Vec<NodeId>, ProofError<()>> {
    Ok(nodes_of(&inclusion_ranges(index, size)?))
}

/// The complete subtrees a consistency proof from `old` to `new` is made of.
pub fn consistency_proof_nodes(old: u64, new: u64) -> Result<Vec<NodeId>, ProofError<()>> {
    Ok(nodes_of(&consistency_ranges(old, new)?))
}

/// The Merkle Tree Hash of the first `size` leaves.
pub fn tree_hash<S: HashSource + ?Sized>(size: u64, src: &S) -> Result<Hash, ProofError<S::Error>> {
    let mut hashes = ranges_hashes(&[(0, size)], src)?;
    Ok(hashes.pop().unwrap_or_else(empty_root))
}

/// RFC 6962 audit path of leaf `index` in the tree of `size` leaves.
pub fn inclusion_proof<S: HashSource + ?Sized>(
    index: u64,
    size: u64,
    src: &S,
) -> Result<Vec<Hash>, ProofError<S::Error>> {
    let ranges = inclusion_ranges(index, size).map_err(ProofError::widen)?;
    ranges_hashes(&ranges, src)
}

/// RFC 6962 consistency proof between the trees of `old_size` and `new_size` leaves.
pub fn consistency_proof<S: HashSource + ?Sized>(
    old_size: u64,
    new_size: u64,
    src: &S,
) -> Result<Vec<Hash>, ProofError<S::Error>> {
    let ranges = consistency_ranges(old_size, new_size).map_err(ProofError::widen)?;
    ranges_hashes(&ranges, src)
}

/// The root an inclusion proof leads to (RFC 9162 §2.1.3.2), without comparing it to anything.
pub fn root_from_inclusion_proof(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
) -> Result<Hash, VerifyError> {
    if index >= size {
        return Err(VerifyError::IndexOutOfRange { index, size });
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return Err(VerifyError::WrongProofLength);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(VerifyError::WrongProofLength);
    }
    Ok(r)
}

/// Verifies that `leaf` is at `index` in the tree of `size` leaves with root `root`.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), VerifyError> {
    if root_from_inclusion_proof(leaf, index, size, proof)? == *root {
        Ok(())
    } else {
        Err(VerifyError::RootMismatch)
    }
}

/// Verifies that the tree of `new_size` leaves with `new_root` extends the tree of `old_size`
/// leaves with `old_root` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), VerifyError> {
    if old_size > new_size {
        return Err(VerifyError::SizesOutOfOrder {
            old: old_size,
            new: new_size,
        });
    }
    if old_size == new_size || old_size == 0 {
        if !proof.is_empty() {
            return Err(VerifyError::WrongProofLength);
        }
        // Every tree extends the empty tree, whose root is fixed.
        let expect = if old_size == 0 {
            empty_root()
        } else {
            *new_root
        };
        return if *old_root == expect {
            Ok(())
        } else {
            Err(VerifyError::RootMismatch)
        };
    }
    let (first, rest) = proof.split_first().ok_or(VerifyError::WrongProofLength)?;
    // When the old tree is a complete subtree, its root is the proof's implicit first element.
    let (start, path) = if old_size.is_power_of_two() {
        (old_root, proof)
    } else {
        (first, rest)
    };
    let (mut fn_, mut sn) = (old_size - 1, new_size - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (*start, *start);
    for c in path {
        if sn == 0 {
            return Err(VerifyError::WrongProofLength);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(VerifyError::WrongProofLength);
    }
    if fr == *old_root && sr == *new_root {
        Ok(())
    } else {
        Err(VerifyError::RootMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_points() {
        assert_eq!(split_point(2), 1);
        assert_eq!(split_point(3), 2);
        assert_eq!(split_point(4), 2);
        assert_eq!(split_point(5), 4);
        assert_eq!(split_point(u64::MAX), 1 << 63);
    }

    #[test]
    fn shl_exact_edges() {
        assert_eq!(shl_exact(1, 63), Some(1 << 63));
        assert_eq!(shl_exact(2, 63), None);
        assert_eq!(shl_exact(1, 64), None);
        assert_eq!(shl_exact(0, 200), Some(0));
    }
}
