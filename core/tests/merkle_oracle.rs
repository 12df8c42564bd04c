//! Random trees checked against `rs_merkle` as an independent oracle.
//!
//! rs_merkle builds its tree bottom-up, carrying an odd last node up unchanged, which yields
//! exactly the RFC 6962 shape; it takes leaves already hashed and hashes pairs with
//! `Hasher::concat_and_hash`. So leaves are hashed here with SHA-256(0x00 || data) and the
//! hasher below supplies the RFC 6962 node hash SHA-256(0x01 || l || r).
#![cfg(test)]

use proptest::prelude::*;
use rs_merkle::{Hasher, MerkleTree};
use sha2::{Digest, Sha256};
use sigil_core::merkle::{
    Hash, consistency_proof, consistency_proof_nodes, inclusion_proof, inclusion_proof_nodes,
    root_from_inclusion_proof, root_from_leaves, tree_hash, verify_consistency, verify_inclusion,
};

#[derive(Clone)]
struct Rfc6962;

impl Hasher for Rfc6962 {
    type Hash = [u8; 32];

    fn hash(data: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update([0u8]);
        h.update(data);
        h.finalize().into()
    }

    fn concat_and_hash(left: &[u8; 32], right: Option<&[u8; 32]>) -> [u8; 32] {
        match right {
            None => *left,
            Some(r) => {
                let mut h = Sha256::new();
                h.update([1u8]);
                h.update(left);
                h.update(r);
                h.finalize().into()
            }
        }
    }
}

fn leaves(seed: u64, n: u64) -> Vec<Hash> {
    (0..n)
        .map(|i| {
            let mut data = seed.to_be_bytes().to_vec();
            data.extend_from_slice(&i.to_be_bytes());
            data.truncate(8 + (i % 9) as usize); // vary lengths, including seed-only leaves
            Rfc6962::hash(&data)
        })
        .collect()
}

fn oracle_root(leaves: &[Hash]) -> Hash {
    MerkleTree::<Rfc6962>::from_leaves(leaves)
        .root()
        .unwrap_or_else(|| Sha256::digest([]).into())
}

/// RFC 6962 §2.1.2 SUBPROOF written from the RFC text, each element's hash from the oracle.
fn oracle_subproof(m: usize, d: &[Hash], complete: bool, out: &mut Vec<Hash>) {
    let n = d.len();
    if m == n {
        if !complete {
            out.push(oracle_root(d));
        }
        return;
    }
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    if m <= k {
        oracle_subproof(m, &d[..k], complete, out);
        out.push(oracle_root(&d[k..]));
    } else {
        oracle_subproof(m - k, &d[k..], false, out);
        out.push(oracle_root(&d[..k]));
    }
}

fn oracle_consistency(m: usize, d: &[Hash]) -> Vec<Hash> {
    let mut out = Vec::new();
    if m > 0 && m < d.len() {
        oracle_subproof(m, d, true, &mut out);
    }
    out
}

fn size_strategy() -> impl Strategy<Value = u64> {
    prop_oneof![
        6 => 1u64..=40,
        3 => 41u64..=1100,
        1 => 1101u64..=10_000,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn agrees_with_rs_merkle(
        seed in any::<u64>(),
        size in size_strategy(),
        picks in proptest::collection::vec(any::<u64>(), 3),
        flip in any::<(usize, usize, u8)>(),
    ) {
        let d = leaves(seed, size);
        let tree = MerkleTree::<Rfc6962>::from_leaves(&d);
        let root = tree.root().unwrap();
        prop_assert_eq!(root_from_leaves(&d), root);
        prop_assert_eq!(tree_hash(size, &d).unwrap(), root);

        for &p in &picks {
            let index = p % size;
            let leaf = d[index as usize];
            let proof = inclusion_proof(index, size, &d).unwrap();
            let oracle = tree.proof(&[index as usize]);
            prop_assert_eq!(&proof, &oracle.proof_hashes().to_vec(), "index {}", index);
            prop_assert_eq!(
                inclusion_proof_nodes(index, size).unwrap().len() >= proof.len(), true
            );
            verify_inclusion(&leaf, index, size, &proof, &root).unwrap();
            prop_assert_eq!(root_from_inclusion_proof(&leaf, index, size, &proof), Ok(root));

            // One flipped byte anywhere in the proof is rejected.
            if !proof.is_empty() {
                let mut bad = proof.clone();
                let (i, j, x) = flip;
                bad[i % proof.len()][j % 32] ^= x.max(1);
                prop_assert!(verify_inclusion(&leaf, index, size, &bad, &root).is_err());
            }
            // A wrong index is rejected.
            let other = (index + 1 + p / 7 % size.max(2)) % size;
            if other != index {
                prop_assert!(verify_inclusion(&leaf, other, size, &proof, &root).is_err());
            }
            prop_assert!(verify_inclusion(&leaf, size + index, size, &proof, &root).is_err());
            // A wrong size is rejected against that size's real root. (With the original root it
            // can verify: sizes sharing a proof shape share the computation.)
            let wrong = index + 1 + (p >> 20) % size;
            if wrong < size {
                let wrong_root = oracle_root(&d[..wrong as usize]);
                prop_assert!(verify_inclusion(&leaf, index, wrong, &proof, &wrong_root).is_err());
            }
        }

        // Consistency from a random older size (including the edges 0 and size).
        for &p in &picks {
            let old = p % (size + 1);
            let old_root = oracle_root(&d[..old as usize]);
            let proof = consistency_proof(old, size, &d).unwrap();
            prop_assert_eq!(&proof, &oracle_consistency(old as usize, &d), "old {}", old);
            prop_assert_eq!(consistency_proof_nodes(old, size).unwrap().len() >= proof.len(), true);
            verify_consistency(old, size, &old_root, &root, &proof).unwrap();
            if !proof.is_empty() {
                let mut bad = proof.clone();
                let (i, j, x) = flip;
                bad[i % proof.len()][j % 32] ^= x.max(1);
                prop_assert!(verify_consistency(old, size, &old_root, &root, &bad).is_err());
            }
            if old > 0 && old < size {
                // Wrong old size (with that size's real root), wrong new size.
                let o2 = 1 + (p >> 17) % (size - 1);
                if o2 != old {
                    let r2 = oracle_root(&d[..o2 as usize]);
                    prop_assert!(verify_consistency(o2, size, &r2, &root, &proof).is_err());
                }
                let n2 = old + (p >> 23) % (size - old);
                if n2 != size {
                    let r2 = oracle_root(&d[..n2 as usize]);
                    prop_assert!(verify_consistency(old, n2, &old_root, &r2, &proof).is_err());
                }
            }
        }
    }
}

#[test]
fn bad_arguments_are_errors() {
    let d = leaves(1, 10);
    assert!(inclusion_proof(10, 10, &d).is_err());
    assert!(inclusion_proof(0, 0, &d).is_err());
    assert!(consistency_proof(11, 10, &d).is_err());
    // A source too short for the requested size fails instead of panicking.
    assert!(tree_hash(11, &d).is_err());
    assert!(inclusion_proof(3, 12, &d).is_err());
    assert!(consistency_proof(3, 12, &d).is_err());
    assert!(inclusion_proof_nodes(u64::MAX, u64::MAX).is_err());
    // Huge sizes only enumerate O(log n) nodes.
    assert!(inclusion_proof_nodes(u64::MAX - 1, u64::MAX).unwrap().len() <= 64 * 64);
    assert!(
        consistency_proof_nodes(u64::MAX / 3, u64::MAX)
            .unwrap()
            .len()
            <= 64 * 64
    );
}
